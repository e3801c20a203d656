"""arbiter_core: the runtime core of an agent scheduler.

It watches how a system performs (a Cython metric ring, bottleneck detection,
recommendations, trends, a health score) and decides which agent gets the next
task (resource monitoring, load balancing, priority allocation, adaptive rate
limiting, failover, capacity planning).
"""

from __future__ import annotations

from ._ringbuf import MetricRing, SeriesHandle, WindowStats, monotonic_now
from .clock import Clock, ManualClock, MonotonicClock
from .optimization import (
    Bottleneck,
    BottleneckDetector,
    BottleneckEvent,
    BottleneckEventKind,
    CacheStatistics,
    MetricBatch,
    OptimizationAnalysis,
    OptimizationRecommendation,
    OptimizerConfig,
    OptimizerHealthStatus,
    PerformanceMonitor,
    PerformanceTrend,
    RecommendationEvidence,
    RuntimeOptimizer,
    TrendDirection,
)
from .types import (
    AllocationStatus,
    BottleneckSeverity,
    HealthStatus,
    LoadBalancingStrategy,
    MetricType,
    PerformanceMetric,
    RecommendationType,
    ResourceType,
    ScalingAction,
    TaskPriority,
)

__version__ = "0.1.0"

__all__ = [
    "AllocationStatus",
    "BottleneckSeverity",
    "Clock",
    "HealthStatus",
    "LoadBalancingStrategy",
    "ManualClock",
    "MetricBatch",
    "MetricRing",
    "MetricType",
    "MonotonicClock",
    "PerformanceMetric",
    "PerformanceMonitor",
    "RecommendationType",
    "ResourceType",
    "ScalingAction",
    "SeriesHandle",
    "TaskPriority",
    "WindowStats",
    "__version__",
    "monotonic_now",
    "Bottleneck",
    "BottleneckDetector",
    "BottleneckEvent",
    "BottleneckEventKind",
    "CacheStatistics",
    "OptimizationAnalysis",
    "OptimizationRecommendation",
    "OptimizerConfig",
    "OptimizerHealthStatus",
    "PerformanceTrend",
    "RecommendationEvidence",
    "RuntimeOptimizer",
    "TrendDirection",
]
