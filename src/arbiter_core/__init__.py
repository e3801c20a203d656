"""arbiter_core: the runtime core of an agent scheduler.

It watches how a system performs (a Cython metric ring, bottleneck detection,
recommendations, trends, a health score) and decides which agent gets the next
task (resource monitoring, load balancing, priority allocation, adaptive rate
limiting, failover, capacity planning).
"""

from __future__ import annotations

import logging

from ._ringbuf import MetricRing, SeriesHandle, WindowStats, monotonic_now
from ._select import AgentTable
from ._version import __version__
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
from .resources import (
    AdaptiveResourceManager,
    AdaptiveTokenBucket,
    AgentResourceProfile,
    AllocationRequest,
    AllocationResult,
    AllocationStatistics,
    CapacityAnalysis,
    CapacityConfig,
    EjectionConfig,
    FailoverEvent,
    HealthThresholds,
    LoadBalancer,
    LoadBalancingDecision,
    ManagerHealthStatus,
    NoAgentAvailableError,
    PredictedNeeds,
    RateLimitConfig,
    ResourceAllocator,
    ResourceManagerConfig,
    ResourceMonitor,
    ResourcePoolStats,
    ResourceRequirements,
    ScoringProfile,
    TaskMovedEvent,
    TenantPolicy,
    TickReport,
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

# A library does not configure logging: applications decide what is shown.  Logger
# names: arbiter_core.optimization, arbiter_core.resources (see docs/operations.md).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AdaptiveResourceManager",
    "AdaptiveTokenBucket",
    "AgentResourceProfile",
    "AgentTable",
    "AllocationRequest",
    "AllocationResult",
    "AllocationStatistics",
    "AllocationStatus",
    "Bottleneck",
    "BottleneckDetector",
    "BottleneckEvent",
    "BottleneckEventKind",
    "BottleneckSeverity",
    "CacheStatistics",
    "CapacityAnalysis",
    "CapacityConfig",
    "Clock",
    "EjectionConfig",
    "FailoverEvent",
    "HealthStatus",
    "HealthThresholds",
    "LoadBalancer",
    "LoadBalancingDecision",
    "LoadBalancingStrategy",
    "ManagerHealthStatus",
    "ManualClock",
    "MetricBatch",
    "MetricRing",
    "MetricType",
    "MonotonicClock",
    "NoAgentAvailableError",
    "OptimizationAnalysis",
    "OptimizationRecommendation",
    "OptimizerConfig",
    "OptimizerHealthStatus",
    "PerformanceMetric",
    "PerformanceMonitor",
    "PerformanceTrend",
    "PredictedNeeds",
    "RateLimitConfig",
    "RecommendationEvidence",
    "RecommendationType",
    "ResourceAllocator",
    "ResourceManagerConfig",
    "ResourceMonitor",
    "ResourcePoolStats",
    "ResourceRequirements",
    "ResourceType",
    "RuntimeOptimizer",
    "ScalingAction",
    "SeriesHandle",
    "TaskMovedEvent",
    "ScoringProfile",
    "TenantPolicy",
    "TaskPriority",
    "TickReport",
    "TrendDirection",
    "WindowStats",
    "__version__",
    "monotonic_now",
]
