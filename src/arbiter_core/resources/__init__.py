"""Adaptive resources: agent monitoring, load balancing, allocation."""

from .balancer import LoadBalancer, NoAgentAvailableError
from .monitor import ResourceMonitor
from .records import (
    AgentResourceProfile,
    HealthThresholds,
    LoadBalancingDecision,
    ResourcePoolStats,
    ResourceRequirements,
)

__all__ = [
    "AgentResourceProfile",
    "HealthThresholds",
    "LoadBalancer",
    "LoadBalancingDecision",
    "NoAgentAvailableError",
    "ResourceMonitor",
    "ResourcePoolStats",
    "ResourceRequirements",
]
