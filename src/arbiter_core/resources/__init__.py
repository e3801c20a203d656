"""Adaptive resources: agent monitoring, load balancing, allocation, failover,
capacity planning (the manager follows)."""

from .allocation import (
    AllocationRequest,
    AllocationResult,
    AllocationStatistics,
    ResourceAllocator,
)
from .balancer import LoadBalancer, NoAgentAvailableError
from .monitor import ResourceMonitor
from .ratelimit import AdaptiveTokenBucket, RateLimitConfig
from .records import (
    AgentResourceProfile,
    HealthThresholds,
    LoadBalancingDecision,
    ResourcePoolStats,
    ResourceRequirements,
)

__all__ = [
    "AdaptiveTokenBucket",
    "AgentResourceProfile",
    "AllocationRequest",
    "AllocationResult",
    "AllocationStatistics",
    "HealthThresholds",
    "LoadBalancer",
    "LoadBalancingDecision",
    "NoAgentAvailableError",
    "RateLimitConfig",
    "ResourceAllocator",
    "ResourceMonitor",
    "ResourcePoolStats",
    "ResourceRequirements",
]
