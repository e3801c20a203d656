"""Result records and small configuration objects of the resources subsystem.

Every record is a frozen dataclass: a snapshot that never changes after it
is returned.  Field names follow the original's in snake_case, with
durations in seconds (``_s``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .._validate import check_non_negative, check_range
from ..types import HealthStatus, LoadBalancingStrategy

__all__ = [
    "AgentResourceProfile",
    "HealthThresholds",
    "LoadBalancingDecision",
    "ResourcePoolStats",
    "ResourceRequirements",
]


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """Usage thresholds (percent, inclusive) for agent health.

    ``cpu >= cpu_warning`` or ``memory >= memory_warning`` is DEGRADED; at or
    above the critical values it is UNHEALTHY.  Defaults are the original's.
    """

    cpu_warning: float = 70.0
    cpu_critical: float = 85.0
    memory_warning: float = 75.0
    memory_critical: float = 90.0

    def __post_init__(self) -> None:
        for name in ("cpu_warning", "cpu_critical", "memory_warning", "memory_critical"):
            check_range(getattr(self, name), name)
        if self.cpu_warning > self.cpu_critical:
            raise ValueError("cpu_warning must be <= cpu_critical, got "
                             f"{self.cpu_warning} > {self.cpu_critical}")
        if self.memory_warning > self.memory_critical:
            raise ValueError("memory_warning must be <= memory_critical, got "
                             f"{self.memory_warning} > {self.memory_critical}")


@dataclass(frozen=True, slots=True)
class ResourceRequirements:
    """What one task needs on its agent (the original's ``requiredResources``).

    Attributes
    ----------
    cpu_percent : float
        Percent of one agent's cpu.
    memory_mb : float
    network_mbps : float
    """

    cpu_percent: float = 0.0
    memory_mb: float = 0.0
    network_mbps: float = 0.0

    def __post_init__(self) -> None:
        for name in ("cpu_percent", "memory_mb", "network_mbps"):
            check_non_negative(getattr(self, name), name)
        if self.cpu_percent > 100.0:
            raise ValueError(f"cpu_percent must be <= 100, got {self.cpu_percent}")

    @property
    def is_empty(self) -> bool:
        return self.cpu_percent == 0.0 and self.memory_mb == 0.0 and self.network_mbps == 0.0


@dataclass(frozen=True, slots=True)
class AgentResourceProfile:
    """A snapshot of one agent.

    Attributes
    ----------
    agent_id : str
    cpu_usage, memory_usage, network_usage : float or None
        Last reported percent; ``None`` when never reported.
    current_task_count, max_task_capacity : int
    health_status : HealthStatus
    last_updated : float or None
        Time of the last usage report (``None``: never reported).
    avg_task_completion_s : float or None
        Peak-sensitive EWMA of task durations.
    weight : float
    ejected_until : float or None
        End of the current outlier ejection, if any.
    ejection_count, consecutive_failures, tasks_completed, tasks_failed : int
    reserved_cpu_percent, reserved_memory_mb, reserved_network_mbps : float
        Resources held by the agent's active allocations.
    cpu_capacity_percent, memory_capacity_mb, network_capacity_mbps : float
        Declared capacities (0 MB / 0 Mbps: not declared).
    concurrency : float
        Tasks served at full speed (declared, else ``max_task_capacity``): the
        denominator of the load estimate's count term.
    requests_waiting, requests_running : float or None
        The engine's last reported queue and running requests.
    kv_cache_usage : float or None
        The engine's last reported KV-cache use, percent.
    estimated_waiting, estimated_kv_cache : float or None
        Those reports corrected by what was granted or released since
        (what the scorers use, before the age weight).
    """

    agent_id: str
    cpu_usage: float | None
    memory_usage: float | None
    network_usage: float | None
    current_task_count: int
    max_task_capacity: int
    health_status: HealthStatus
    last_updated: float | None
    avg_task_completion_s: float | None
    weight: float
    ejected_until: float | None
    ejection_count: int
    consecutive_failures: int
    tasks_completed: int
    tasks_failed: int
    reserved_cpu_percent: float
    reserved_memory_mb: float
    reserved_network_mbps: float
    cpu_capacity_percent: float
    memory_capacity_mb: float
    network_capacity_mbps: float
    concurrency: float = 0.0
    requests_waiting: float | None = None
    requests_running: float | None = None
    kv_cache_usage: float | None = None
    estimated_waiting: float | None = None
    estimated_kv_cache: float | None = None

    @property
    def task_load_percent(self) -> float:
        """``100 * current_task_count / max_task_capacity``."""
        return 100.0 * self.current_task_count / self.max_task_capacity

    @property
    def available_capacity(self) -> int:
        """Free task slots."""
        return self.max_task_capacity - self.current_task_count


@dataclass(frozen=True, slots=True)
class ResourcePoolStats:
    """Aggregates over the whole pool, computed in one pass.

    ``total_cpu_capacity`` is 100 per agent that reports cpu and
    ``used_cpu_capacity`` the sum of their cpu percentages, so the ratio is the
    mean utilization of the reporting agents (agents that never reported do
    not dilute it).  Memory is in MB over the agents that declared a capacity.
    The ``online_*`` fields count only agents that are not OFFLINE (what
    capacity planning looks at).
    """

    total_agents: int
    active_agents: int
    idle_agents: int
    healthy_agents: int
    degraded_agents: int
    unhealthy_agents: int
    offline_agents: int
    ejected_agents: int
    tasks_in_progress: int
    total_task_slots: int
    available_task_slots: int
    total_cpu_capacity: float
    used_cpu_capacity: float
    total_memory_capacity: float
    used_memory_capacity: float
    avg_cpu_percent: float | None
    avg_memory_percent: float | None
    avg_network_percent: float | None
    avg_task_completion_s: float | None
    tasks_completed: int
    tasks_failed: int
    last_updated: float
    online_agents: int = 0
    online_task_slots: int = 0
    online_tasks: int = 0
    online_avg_cpu_percent: float | None = None
    online_avg_memory_percent: float | None = None


class LoadBalancingDecision(NamedTuple):
    """One selection.

    A named tuple rather than a dataclass: one is built per selection on the
    hot path, and a tuple is built in a third of the time (it is immutable
    all the same).

    Attributes
    ----------
    selected_agent_id : str
    strategy : LoadBalancingStrategy
    agent_load : float
        The selected agent's task load in percent when it was chosen.
    alternatives : tuple of str
        Up to three other agents the strategy considered (next best, or the
        losing random choice).
    decision_duration_s : float
        Time spent choosing (in the selection kernel).
    timestamp : float
        The balancer's clock at the decision.
    score : float
        The strategy's key for the winner (least-loaded load, weighted
        score, peak-EWMA cost, ...).
    priority : int
        The request's priority.
    reserved : bool
        Whether a task slot was reserved on the agent with the decision.
    rationale : str
        Why this agent (derived from the fields above on access, so the hot
        path does not format text nobody reads).
    """

    selected_agent_id: str
    strategy: LoadBalancingStrategy
    agent_load: float
    alternatives: tuple[str, ...]
    decision_duration_s: float
    timestamp: float
    score: float
    priority: int = 50
    reserved: bool = False

    @property
    def rationale(self) -> str:
        """The original's wording where it had one."""
        s = self.strategy
        score = self.score
        if s is LoadBalancingStrategy.LEAST_LOADED:
            return f"Least loaded agent ({score:.1f}% load)"
        if s is LoadBalancingStrategy.WEIGHTED:
            return f"Weighted selection (score: {score:.1f})"
        if s is LoadBalancingStrategy.PRIORITY_BASED:
            return f"Priority-based selection for {self.priority} priority task"
        if s is LoadBalancingStrategy.ROUND_ROBIN:
            return "Round-robin selection"
        if s is LoadBalancingStrategy.RANDOM:
            return "Random selection"
        if s is LoadBalancingStrategy.POWER_OF_TWO:
            return ("Power of two choices: the less loaded of two random agents "
                    f"({score:.1f}% load)")
        if s is LoadBalancingStrategy.SCORED:
            return f"Scored by the configured profile (score: {score:.4g})"
        return f"Peak EWMA: the lower cost of two random agents (cost {score:.4g})"
