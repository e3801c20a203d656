"""arbiter_core: the runtime core of an agent scheduler.

It watches how a system performs (a Cython metric ring, bottleneck detection,
recommendations, trends, a health score) and decides which agent gets the next
task (resource monitoring, load balancing, priority allocation, adaptive rate
limiting, failover, capacity planning).
"""

from __future__ import annotations

from ._ringbuf import MetricRing, SeriesHandle, WindowStats, monotonic_now
from ._select import AgentTable
from .clock import Clock, ManualClock, MonotonicClock
from .optimization import MetricBatch, PerformanceMonitor
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
    TaskMovedEvent,
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

__version__ = "0.1.0"

__all__ = [
    "AdaptiveResourceManager",
    "AdaptiveTokenBucket",
    "AgentResourceProfile",
    "AgentTable",
    "AllocationRequest",
    "AllocationResult",
    "AllocationStatistics",
    "AllocationStatus",
    "BottleneckSeverity",
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
    "PerformanceMetric",
    "PerformanceMonitor",
    "PredictedNeeds",
    "RateLimitConfig",
    "RecommendationType",
    "ResourceAllocator",
    "ResourceManagerConfig",
    "ResourceMonitor",
    "ResourcePoolStats",
    "ResourceRequirements",
    "ResourceType",
    "ScalingAction",
    "SeriesHandle",
    "TaskMovedEvent",
    "TaskPriority",
    "TickReport",
    "WindowStats",
    "__version__",
    "monotonic_now",
]
