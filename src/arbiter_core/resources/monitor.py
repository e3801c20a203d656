"""ResourceMonitor: agent registry, usage reports and health, over an AgentTable.

The monitor owns the Cython :class:`~arbiter_core.AgentTable` that holds every
agent's state as arrays; this class adds names, validation, the clock and
snapshots.  The load balancer and the allocator select and reserve directly
on the same table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .._listeners import Listeners
from .._select import HEALTH_NAMES, AgentTable
from .._validate import (
    check_int,
    check_name,
    check_non_negative,
    check_number,
    check_positive,
    check_range,
)
from ..clock import Clock, default_clock
from ..types import HealthStatus
from .affinity import AffinityConfig
from .records import (
    AgentResourceProfile,
    HealthThresholds,
    ResourcePoolStats,
)
from .scoring import ScoringProfile, check_report_decay

__all__ = ["ResourceMonitor"]

_HEALTH = tuple(HealthStatus(name) for name in HEALTH_NAMES)
_CAPACITY_KEYS = {"cpu_percent": "cpu_capacity", "memory_mb": "memory_mb",
                  "network_mbps": "network_mbps", "concurrency": "concurrency",
                  "cache_blocks": "cache_blocks"}


class ResourceMonitor:
    """Registry and health of the agents in a pool.

    Parameters
    ----------
    clock : Clock, optional
        Time source (default monotonic); tests pass a ManualClock.
    stale_after_s : float
        An agent that has reported usage and then stays silent for longer
        than this is OFFLINE (default 30 s).  Agents that never report usage
        are never judged stale.
    thresholds : HealthThresholds, optional
        cpu/memory health thresholds (defaults 70/85 and 75/90, inclusive).
    max_agents : int
        Cap on registered agents (default 100,000); memory is about 230
        bytes per agent in the table's C arrays plus its id.
    default_max_tasks : int
        ``max_tasks`` of agents registered without one (default 10).

    Notes
    -----
    Health is recomputed on every usage report and on :meth:`tick`
    (staleness).  All public methods are thread-safe: mutations hold one lock
    and the table's kernels are atomic under the GIL.

    Examples
    --------
    >>> from arbiter_core import ManualClock
    >>> mon = ResourceMonitor(clock=ManualClock())
    >>> _ = mon.register_agent("a1", max_tasks=4)
    >>> mon.record_usage("a1", cpu=72.0)
    <HealthStatus.DEGRADED: 'degraded'>
    >>> mon.get_agent_resources("a1").cpu_usage
    72.0
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        stale_after_s: float = 30.0,
        thresholds: HealthThresholds | None = None,
        max_agents: int = 100_000,
        default_max_tasks: int = 10,
    ) -> None:
        self._clock: Clock = default_clock() if clock is None else clock
        if not callable(getattr(self._clock, "now", None)):
            raise TypeError(f"clock must have a now() method, got {type(clock).__name__}")
        self._stale_after_s = check_positive(stale_after_s, "stale_after_s")
        self._default_max_tasks = check_int(default_max_tasks, "default_max_tasks", 1)
        self._table = AgentTable(check_int(max_agents, "max_agents", 1))
        self._lock = threading.RLock()
        self._thresholds = HealthThresholds()
        self.set_thresholds(HealthThresholds() if thresholds is None else thresholds)
        self._removal_listeners = Listeners("removal listener")
        self._before_remove = Listeners("before-remove hook")

    # -- configuration --------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def table(self) -> AgentTable:
        """The underlying Cython table (shared with the balancer and allocator)."""
        return self._table

    @property
    def lock(self) -> threading.RLock:
        """The lock that serializes registry changes (re-entrant)."""
        return self._lock

    @property
    def stale_after_s(self) -> float:
        return self._stale_after_s

    @stale_after_s.setter
    def stale_after_s(self, value: float) -> None:
        self._stale_after_s = check_positive(value, "stale_after_s")

    @property
    def thresholds(self) -> HealthThresholds:
        return self._thresholds

    def set_thresholds(self, thresholds: HealthThresholds) -> None:
        """Replace the health thresholds; every agent's health is recomputed."""
        if not isinstance(thresholds, HealthThresholds):
            raise TypeError(
                f"thresholds must be a HealthThresholds, got {type(thresholds).__name__}")
        with self._lock:
            self._table.set_thresholds(thresholds.cpu_warning, thresholds.cpu_critical,
                                       thresholds.memory_warning, thresholds.memory_critical)
            self._thresholds = thresholds

    def set_signals(self, profile: ScoringProfile, report_decay_s: float) -> None:
        """The ``scored`` strategy's profile and the age rule of reported
        figures (``exp(-age / report_decay_s)``; see :mod:`.scoring`)."""
        if not isinstance(profile, ScoringProfile):
            raise TypeError(f"scoring must be a ScoringProfile, got {type(profile).__name__}")
        decay = check_report_decay(report_decay_s)
        with self._lock:
            self._table.set_profile(profile.count, profile.queue, profile.utilization,
                                    profile.kv_cache, profile.latency, profile.affinity,
                                    profile.by_weight, profile.picker)
            self._table.set_report_decay(decay)

    def set_affinity(self, config: AffinityConfig) -> None:
        """The ``cache_affinity`` strategy's settings (see :mod:`.affinity`)."""
        if not isinstance(config, AffinityConfig):
            raise TypeError(f"affinity must be an AffinityConfig, got {type(config).__name__}")
        with self._lock:
            self._table.set_affinity(config.epsilon, config.min_match_blocks,
                                     config.max_index_blocks, config.cache_blocks)

    def report_cache(self, agent_id: str, stored: Any = (), evicted: Any = ()) -> None:
        """An engine's exact prefix-cache events for ``agent_id``: the block
        hashes it ``stored`` (prompt order) and ``evicted``.  From the first
        report on they replace the router's own record for that agent."""
        with self._lock:
            self._table.report_cache(self._table.slot(agent_id), stored, evicted)

    def cached_blocks(self, agent_id: str) -> list[int]:
        """The block hashes the affinity index holds for ``agent_id``, most
        recently used first."""
        with self._lock:
            return list(self._table.cached_blocks(self._table.slot(agent_id)))

    def affinity_stats(self) -> dict[str, Any]:
        """The affinity index's size and the strategy's counters (see
        ``AgentTable.affinity_stats``)."""
        with self._lock:
            return dict(self._table.affinity_stats())

    # -- registry -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._table

    def agent_ids(self) -> list[str]:
        """Ids of the registered agents."""
        return [str(a) for a in self._table.agent_ids()]

    def register_agent(
        self,
        agent_id: str,
        max_tasks: int | None = None,
        weight: float = 1.0,
        **capacity: float,
    ) -> AgentResourceProfile:
        """Add an agent to the pool.

        Parameters
        ----------
        agent_id : str
            Unique; 1 to 256 characters (``MAX_NAME_LENGTH``).
        max_tasks : int, optional
            Task slots (>= 1); default ``default_max_tasks``.
        weight : float
            > 0, for the WEIGHTED strategy.
        **capacity
            Declared capacities: ``cpu_percent`` (share of the agent that
            reservations may take, default 100), ``memory_mb``,
            ``network_mbps``, and ``concurrency``: how many tasks the agent
            serves at full speed (> 0; default ``max_tasks``), the
            denominator of the load estimate's count term.  Declare it when
            ``max_tasks`` is only a hard cap (a processor-sharing agent or an
            LLM engine that batches: its parallelism times its speed).
            ``cache_blocks`` (an int >= 0): the agent's prefix cache in
            blocks, which bounds what the ``cache_affinity`` index records
            for it; 0 or absent: ``AffinityConfig.cache_blocks``.

        Returns
        -------
        AgentResourceProfile

        Raises
        ------
        ValueError
            Duplicate ``agent_id`` or a bad value (nothing is registered).
        TypeError
            A wrong type or an unknown capacity keyword.
        """
        check_name(agent_id, "agent_id")
        mt = self._default_max_tasks if max_tasks is None else check_int(max_tasks, "max_tasks", 1)
        w = check_positive(weight, "weight")
        kwargs: dict[str, Any] = {}
        for key, value in capacity.items():
            if key not in _CAPACITY_KEYS:
                valid = ", ".join(sorted(_CAPACITY_KEYS))
                raise TypeError(f"unknown capacity {key!r}; expected one of {valid}")
            if key == "cache_blocks":
                kwargs[key] = check_int(value, key, 0)
                continue
            v = check_non_negative(value, key)
            if key == "cpu_percent" and not 0.0 < v <= 100.0:
                raise ValueError(f"cpu_percent must be within (0, 100], got {value!r}")
            if key == "concurrency" and not v > 0.0:
                raise ValueError(f"concurrency must be > 0, got {value!r}")
            kwargs[_CAPACITY_KEYS[key]] = v
        with self._lock:
            if agent_id in self._table:
                raise ValueError(f"agent_id {agent_id!r} is already registered")
            slot = self._table.add(agent_id, mt, w, now=self._clock.now(), **kwargs)
            return self._profile(slot)

    def remove_agent(self, agent_id: str) -> AgentResourceProfile:
        """Remove an agent; returns its last snapshot.  KeyError when unknown.

        :meth:`before_remove` hooks run first (under the lock), so work on the
        agent can be moved while its slot still exists.
        """
        with self._lock:
            self._table.slot(agent_id)
            self._before_remove.emit(agent_id)
            profile = self._profile(self._table.slot(agent_id))
            self._table.remove(agent_id)
        self._removal_listeners.emit(agent_id)
        return profile

    def before_remove(self, hook: Callable[[str], None]) -> Callable[[], None]:
        """Call ``hook(agent_id)`` under the lock just before an agent is
        removed (its slot still exists, so its work can be moved).  Returns a
        function that unsubscribes; a hook that raises is logged and counted
        and the removal goes on."""
        return self._before_remove.subscribe(hook)

    def on_remove(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(agent_id)`` after every :meth:`remove_agent`
        (outside the lock).  Returns a function that unsubscribes."""
        return self._removal_listeners.subscribe(callback)

    # -- reports --------------------------------------------------------------

    def record_usage(
        self,
        agent_id: str,
        cpu: float | None = None,
        memory: float | None = None,
        network: float | None = None,
        timestamp: float | None = None,
        *,
        waiting: float | None = None,
        running: float | None = None,
        kv_cache: float | None = None,
    ) -> HealthStatus:
        """Record a (partial) usage report; returns the new health.

        ``cpu``, ``memory``, ``network`` and ``kv_cache`` are percentages;
        ``waiting`` and ``running`` are an engine's request counts, as vLLM
        exports them (``num_requests_waiting``, ``num_requests_running``;
        its ``kv_cache_usage_perc`` is a fraction: pass it times 100).
        Values left ``None`` keep their last report.  A report brings an
        OFFLINE agent (stale or failed over) back.

        The report is the baseline of the agent's load estimate: grants and
        releases from now on correct it, and it weighs less as it ages
        (``exp(-age / report_decay_s)``; see the concepts page, "Signals").

        Raises
        ------
        ValueError
            NaN, infinite, negative or > 100 values (nothing is recorded).
        TypeError
            Non-numbers.
        KeyError
            Unknown ``agent_id``.
        """
        # the table's field bits, in its argument order: a value not given
        # is neither checked nor stored
        fields = 0
        values = [0.0] * 6
        for k, (bit, name, value, check) in enumerate((
                (1, "cpu", cpu, check_range), (2, "memory", memory, check_range),
                (4, "network", network, check_range),
                (128, "waiting", waiting, check_non_negative),
                (256, "running", running, check_non_negative),
                (512, "kv_cache", kv_cache, check_range))):
            if value is not None:
                values[k] = check(value, name)
                fields |= bit
        c, m, n, w, r, kv = values
        ts = self._clock.now() if timestamp is None else check_number(timestamp, "timestamp")
        table = self._table
        with self._lock:
            slot = table.slot(agent_id)
            table.set_usage(slot, c, m, n, ts, fields, w, r, kv)
            return _HEALTH[table.health(slot)]

    def update_task_count(self, agent_id: str, count: int) -> None:
        """Overwrite an agent's active task count (0 <= count <= max_tasks)."""
        check_int(count, "count", 0)
        with self._lock:
            slot = self._table.slot(agent_id)
            self._table.set_task_count(slot, count)

    def set_max_tasks(self, agent_id: str, max_tasks: int) -> None:
        """Change an agent's task capacity (not below its active count)."""
        check_int(max_tasks, "max_tasks", 1)
        with self._lock:
            self._table.set_max_tasks(self._table.slot(agent_id), max_tasks)

    def set_weight(self, agent_id: str, weight: float) -> None:
        """Change an agent's weight (> 0)."""
        w = check_positive(weight, "weight")
        with self._lock:
            self._table.set_weight(self._table.slot(agent_id), w)

    def record_task_completion(
        self, agent_id: str, duration_s: float | None, success: bool = True
    ) -> int:
        """Feed a finished task into the agent's latency EWMA and failure streak.

        Parameters
        ----------
        duration_s : float or None
            Task duration in seconds (>= 0); ``None`` when unknown.
        success : bool

        Returns
        -------
        int
            Consecutive failures after this outcome.
        """
        d = -1.0 if duration_s is None else check_non_negative(duration_s, "duration_s")
        if not isinstance(success, bool):
            raise TypeError(f"success must be a bool, got {type(success).__name__}")
        with self._lock:
            slot = self._table.slot(agent_id)
            return self._table.record_completion(slot, d, success, self._clock.now())

    def set_offline(self, agent_id: str) -> None:
        """Take an agent out of selection (OFFLINE) until it reports or is restored."""
        with self._lock:
            self._table.set_offline(self._table.slot(agent_id))

    def restore_agent(self, agent_id: str) -> HealthStatus:
        """End an agent's OFFLINE state and any ejection; returns its health."""
        with self._lock:
            slot = self._table.slot(agent_id)
            self._table.restore(slot, self._clock.now())
            return _HEALTH[self._table.health(slot)]

    def eject(self, agent_id: str, until: float) -> int:
        """Take an agent out of selection until time ``until`` (outlier
        ejection); returns how many times it has been ejected."""
        with self._lock:
            return int(self._table.eject(self._table.slot(agent_id), until))

    def end_ejections(self) -> list[str]:
        """End the ejections that are over by now; returns those agents."""
        with self._lock:
            table = self._table
            return [str(table.agent_id(s)) for s in table.unexpire_ejections(self._clock.now())]

    def tick(self) -> list[str]:
        """Recompute staleness; returns the agents that just went OFFLINE."""
        with self._lock:
            table = self._table
            slots = table.mark_stale(self._clock.now(), self._stale_after_s)
            return [str(table.agent_id(s)) for s in slots]

    # -- reading --------------------------------------------------------------

    def health(self, agent_id: str) -> HealthStatus:
        """An agent's current health."""
        with self._lock:
            return _HEALTH[self._table.health(self._table.slot(agent_id))]

    def _profile(self, slot: int) -> AgentResourceProfile:
        r: dict[str, Any] = self._table.row(slot)
        reported = r["reported"]
        return AgentResourceProfile(
            agent_id=str(r["agent_id"]),
            cpu_usage=r["cpu"],
            memory_usage=r["memory"],
            network_usage=r["network"],
            current_task_count=r["active"],
            max_task_capacity=r["max_tasks"],
            health_status=_HEALTH[r["health"]],
            last_updated=r["last_report"] if reported else None,
            avg_task_completion_s=r["latency_ewma_s"],
            weight=r["weight"],
            ejected_until=r["ejected_until"],
            ejection_count=r["ejections"],
            consecutive_failures=r["consecutive_failures"],
            tasks_completed=r["completed"],
            tasks_failed=r["failed"],
            reserved_cpu_percent=r["reserved_cpu"],
            reserved_memory_mb=r["reserved_memory_mb"],
            reserved_network_mbps=r["reserved_network_mbps"],
            cpu_capacity_percent=r["cpu_capacity"],
            memory_capacity_mb=r["memory_mb"],
            network_capacity_mbps=r["network_mbps"],
            concurrency=r["concurrency"],
            requests_waiting=r["waiting"],
            requests_running=r["running"],
            kv_cache_usage=r["kv_cache"],
            estimated_waiting=r["estimated_waiting"],
            estimated_kv_cache=r["estimated_kv_cache"],
        )

    def get_agent_resources(self, agent_id: str) -> AgentResourceProfile:
        """A snapshot of one agent; KeyError when unknown."""
        with self._lock:
            return self._profile(self._table.slot(agent_id))

    def get_all_agent_resources(self) -> list[AgentResourceProfile]:
        """Snapshots of every agent, in slot order."""
        with self._lock:
            table = self._table
            return [self._profile(table.slot(a)) for a in table.agent_ids()]

    def __iter__(self) -> Iterator[AgentResourceProfile]:
        return iter(self.get_all_agent_resources())

    def get_pool_stats(self) -> ResourcePoolStats:
        """Pool aggregates (one pass over the table in C), as the one typed
        record every reader uses."""
        now = self._clock.now()
        with self._lock:
            p = self._table.pool_stats(now)
        return ResourcePoolStats(
            total_agents=p["total_agents"],
            active_agents=p["active_agents"],
            idle_agents=p["idle_agents"],
            healthy_agents=p["healthy_agents"],
            degraded_agents=p["degraded_agents"],
            unhealthy_agents=p["unhealthy_agents"],
            offline_agents=p["offline_agents"],
            ejected_agents=p["ejected_agents"],
            tasks_in_progress=p["tasks_in_progress"],
            total_task_slots=p["total_task_slots"],
            available_task_slots=p["available_task_slots"],
            total_cpu_capacity=100.0 * p["cpu_reporting_agents"],
            used_cpu_capacity=p["cpu_percent_sum"],
            total_memory_capacity=p["total_memory_mb"],
            used_memory_capacity=p["used_memory_mb"],
            avg_cpu_percent=_mean(p["cpu_percent_sum"], p["cpu_reporting_agents"]),
            avg_memory_percent=_mean(p["memory_percent_sum"], p["memory_reporting_agents"]),
            avg_network_percent=_mean(p["network_percent_sum"], p["network_reporting_agents"]),
            avg_task_completion_s=_mean(p["latency_sum_s"], p["latency_agents"]),
            tasks_completed=p["tasks_completed"],
            tasks_failed=p["tasks_failed"],
            last_updated=now,
            online_agents=p["online_agents"],
            online_task_slots=p["online_task_slots"],
            online_tasks=p["online_tasks"],
            online_avg_cpu_percent=_mean(p["online_cpu_percent_sum"], p["online_cpu_reporting"]),
            online_avg_memory_percent=_mean(p["online_memory_percent_sum"],
                                            p["online_memory_reporting"]),
        )

    @contextmanager
    def locked(self) -> Iterator[AgentTable]:
        """Hold the registry lock and yield the table (multi-step updates)."""
        with self._lock:
            yield self._table

    def __repr__(self) -> str:
        return f"ResourceMonitor(agents={len(self._table)}, stale_after_s={self._stale_after_s})"


def _mean(total: float, count: int) -> float | None:
    return total / count if count else None
