"""Runtime optimization: metric storage, bottleneck detection, recommendations."""

from .detector import DEFAULT_THRESHOLDS, BottleneckDetector, Observation
from .monitor import MetricBatch, PerformanceMonitor
from .optimizer import OptimizerConfig, RuntimeOptimizer
from .results import (
    Bottleneck,
    BottleneckEvent,
    BottleneckEventKind,
    CacheStatistics,
    OptimizationAnalysis,
    OptimizationRecommendation,
    OptimizerHealthStatus,
    PerformanceTrend,
    RecommendationEvidence,
    TrendDirection,
)

__all__ = [
    "MetricBatch",
    "PerformanceMonitor",
    "DEFAULT_THRESHOLDS",
    "Bottleneck",
    "BottleneckDetector",
    "BottleneckEvent",
    "BottleneckEventKind",
    "CacheStatistics",
    "Observation",
    "OptimizationAnalysis",
    "OptimizationRecommendation",
    "OptimizerConfig",
    "OptimizerHealthStatus",
    "PerformanceTrend",
    "RecommendationEvidence",
    "RuntimeOptimizer",
    "TrendDirection",
]
