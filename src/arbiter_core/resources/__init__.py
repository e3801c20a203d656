"""Adaptive resources: agent monitoring, load balancing, allocation, failover,
capacity planning."""

from .allocation import (
    AllocationRequest,
    AllocationResult,
    AllocationStatistics,
    ResourceAllocator,
)
from .balancer import LoadBalancer, NoAgentAvailableError
from .manager import (
    AdaptiveResourceManager,
    CapacityAnalysis,
    CapacityConfig,
    EjectionConfig,
    FailoverEvent,
    ManagerHealthStatus,
    PredictedNeeds,
    ResourceManagerConfig,
    TaskMovedEvent,
    TickReport,
)
from .monitor import ResourceMonitor
from .ratelimit import AdaptiveTokenBucket, RateLimitConfig
from .records import (
    AgentResourceProfile,
    HealthThresholds,
    LoadBalancingDecision,
    ResourcePoolStats,
    ResourceRequirements,
)
from .scoring import ScoringProfile
from .tenants import TenantPolicy

__all__ = [
    "AdaptiveResourceManager",
    "AdaptiveTokenBucket",
    "AgentResourceProfile",
    "AllocationRequest",
    "AllocationResult",
    "AllocationStatistics",
    "CapacityAnalysis",
    "CapacityConfig",
    "EjectionConfig",
    "FailoverEvent",
    "HealthThresholds",
    "LoadBalancer",
    "LoadBalancingDecision",
    "ManagerHealthStatus",
    "NoAgentAvailableError",
    "PredictedNeeds",
    "RateLimitConfig",
    "ResourceAllocator",
    "ResourceManagerConfig",
    "ResourceMonitor",
    "ResourcePoolStats",
    "ResourceRequirements",
    "TaskMovedEvent",
    "ScoringProfile",
    "TenantPolicy",
    "TickReport",
]
