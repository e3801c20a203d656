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
    AdaptiveTokenBucket,
    AgentResourceProfile,
    AllocationRequest,
    AllocationResult,
    AllocationStatistics,
    HealthThresholds,
    LoadBalancer,
    LoadBalancingDecision,
    NoAgentAvailableError,
    RateLimitConfig,
    ResourceAllocator,
    ResourceMonitor,
    ResourcePoolStats,
    ResourceRequirements,
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
    "AdaptiveTokenBucket",
    "AgentResourceProfile",
    "AgentTable",
    "AllocationRequest",
    "AllocationResult",
    "AllocationStatistics",
    "AllocationStatus",
    "BottleneckSeverity",
    "Clock",
    "HealthStatus",
    "HealthThresholds",
    "LoadBalancer",
    "LoadBalancingDecision",
    "LoadBalancingStrategy",
    "ManualClock",
    "MetricBatch",
    "MetricRing",
    "MetricType",
    "MonotonicClock",
    "NoAgentAvailableError",
    "PerformanceMetric",
    "PerformanceMonitor",
    "RateLimitConfig",
    "RecommendationType",
    "ResourceAllocator",
    "ResourceMonitor",
    "ResourcePoolStats",
    "ResourceRequirements",
    "ResourceType",
    "ScalingAction",
    "SeriesHandle",
    "TaskPriority",
    "WindowStats",
    "__version__",
    "monotonic_now",
]
