"""AdaptiveResourceManager: monitor + balancer + allocator from one config,
with outlier ejection, automatic failover and capacity planning.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any

import numpy as np

from .. import _aio
from .._listeners import Listeners
from .._validate import check_int, check_non_negative, check_positive, check_range
from ..clock import Clock, default_clock
from ..types import AllocationStatus, HealthStatus, LoadBalancingStrategy, ScalingAction
from .allocation import (
    AllocationRequest,
    AllocationResult,
    AllocationStatistics,
    ResourceAllocator,
)
from .balancer import LoadBalancer, coerce_strategy
from .ejection import EjectionConfig, OutlierEjector
from .monitor import ResourceMonitor
from .ratelimit import RateLimitConfig
from .records import (
    AgentResourceProfile,
    HealthThresholds,
    ResourcePoolStats,
)
from .scoring import ScoringProfile, check_report_decay
from .tenants import TenantPolicy, check_tenant

__all__ = [
    "AdaptiveResourceManager",
    "CapacityAnalysis",
    "CapacityConfig",
    "EjectionConfig",
    "FailoverEvent",
    "ManagerHealthStatus",
    "PredictedNeeds",
    "ResourceManagerConfig",
    "TaskMovedEvent",
    "TickReport",
]

log = logging.getLogger("arbiter_core.resources")


# ---------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True, slots=True)
class CapacityConfig:
    """Capacity planning (Kubernetes HPA rules).

    ``desired = ceil(current * utilization / target)`` unless
    ``|utilization / target - 1| <= tolerance``; scale-down recommendations
    are the highest desired count seen within ``scale_down_stabilization_s``.
    Utilization is an EMA (``ema_alpha``, seeded with the first observation);
    ``band_low``-``band_high`` is reported as the healthy band.
    """

    target_utilization: float = 70.0
    band_low: float = 60.0
    band_high: float = 80.0
    tolerance: float = 0.1
    scale_down_stabilization_s: float = 300.0
    ema_alpha: float = 0.5
    forecast_horizon_s: float = 300.0
    history_size: int = 64

    def __post_init__(self) -> None:
        t = check_range(self.target_utilization, "target_utilization", 1.0, 100.0)
        lo = check_range(self.band_low, "band_low")
        hi = check_range(self.band_high, "band_high")
        if not lo <= t <= hi:
            raise ValueError(f"target_utilization ({t}) must be within the band [{lo}, {hi}]")
        check_range(self.tolerance, "tolerance", 0.0, 1.0)
        check_non_negative(self.scale_down_stabilization_s, "scale_down_stabilization_s")
        if check_range(self.ema_alpha, "ema_alpha", 0.0, 1.0) == 0.0:
            raise ValueError("ema_alpha must be > 0, got 0.0")
        check_positive(self.forecast_horizon_s, "forecast_horizon_s")
        check_int(self.history_size, "history_size", 2, 100_000)


@dataclass(frozen=True, slots=True)
class ResourceManagerConfig:
    """Everything the manager needs; validated, durations in seconds.

    The original's fields (``monitoring_interval_s``, ``load_balancing_strategy``,
    ``enable_auto_failover``, ``thresholds``, ``max_allocation_decision_s``,
    ``enable_capacity_planning``, ``capacity_analysis_interval_s``), plus
    ``rate_limit`` (``None``: no limit; the original's
    ``enable_dynamic_rate_limiting`` is ``RateLimitConfig.adaptive``),
    ``max_queue``, ``stale_after_s``, ``aging_per_s``, ``ejection``,
    ``capacity``, ``history_size`` (failover events kept), ``seed``,
    ``tenants`` (``{tenant: TenantPolicy}``) and ``max_tenants``;
    ``scoring`` (the ``scored`` strategy's :class:`ScoringProfile`) and
    ``report_decay_s`` (reported figures weigh ``exp(-age / report_decay_s)``
    in every load-aware strategy; ``math.inf``: never less).
    """

    enabled: bool = True
    monitoring_interval_s: float = 5.0
    load_balancing_strategy: LoadBalancingStrategy = LoadBalancingStrategy.LEAST_LOADED
    enable_auto_failover: bool = True
    thresholds: HealthThresholds = dataclasses.field(default_factory=HealthThresholds)
    max_allocation_decision_s: float = 0.05
    enable_capacity_planning: bool = True
    capacity_analysis_interval_s: float = 300.0
    rate_limit: RateLimitConfig | None = None
    max_queue: int = 10_000
    stale_after_s: float = 30.0
    aging_per_s: float = 0.7
    ejection: EjectionConfig = dataclasses.field(default_factory=EjectionConfig)
    capacity: CapacityConfig = dataclasses.field(default_factory=CapacityConfig)
    history_size: int = 100
    max_agents: int = 100_000
    seed: int | None = None
    tenants: Mapping[str, TenantPolicy] = dataclasses.field(default_factory=dict)
    max_tenants: int = 10_000
    scoring: ScoringProfile = dataclasses.field(default_factory=ScoringProfile)
    report_decay_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("enabled", "enable_auto_failover", "enable_capacity_planning"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        check_positive(self.monitoring_interval_s, "monitoring_interval_s")
        object.__setattr__(self, "load_balancing_strategy",
                           coerce_strategy(self.load_balancing_strategy))
        if not isinstance(self.thresholds, HealthThresholds):
            raise TypeError(f"thresholds must be a HealthThresholds, "
                            f"got {type(self.thresholds).__name__}")
        check_positive(self.max_allocation_decision_s, "max_allocation_decision_s")
        check_positive(self.capacity_analysis_interval_s, "capacity_analysis_interval_s")
        if self.rate_limit is not None and not isinstance(self.rate_limit, RateLimitConfig):
            raise TypeError(f"rate_limit must be a RateLimitConfig or None, "
                            f"got {type(self.rate_limit).__name__}")
        check_int(self.max_queue, "max_queue", 0)
        check_positive(self.stale_after_s, "stale_after_s")
        check_non_negative(self.aging_per_s, "aging_per_s")
        if not isinstance(self.ejection, EjectionConfig):
            raise TypeError(f"ejection must be an EjectionConfig, "
                            f"got {type(self.ejection).__name__}")
        if not isinstance(self.capacity, CapacityConfig):
            raise TypeError(f"capacity must be a CapacityConfig, "
                            f"got {type(self.capacity).__name__}")
        check_int(self.history_size, "history_size", 1, 1_000_000)
        check_int(self.max_agents, "max_agents", 1)
        if not isinstance(self.tenants, Mapping):
            raise TypeError(f"tenants must be a mapping of tenant -> TenantPolicy, "
                            f"got {type(self.tenants).__name__}")
        for tenant, policy in self.tenants.items():
            check_tenant(tenant, "tenants key")
            if not isinstance(policy, TenantPolicy):
                raise TypeError(f"tenants[{tenant!r}] must be a TenantPolicy, "
                                f"got {type(policy).__name__}")
        object.__setattr__(self, "tenants", MappingProxyType(dict(self.tenants)))
        check_int(self.max_tenants, "max_tenants", 1, 2**31 - 2)
        if not isinstance(self.scoring, ScoringProfile):
            raise TypeError(f"scoring must be a ScoringProfile, "
                            f"got {type(self.scoring).__name__}")
        check_report_decay(self.report_decay_s)
        if self.seed is not None:
            check_int(self.seed, "seed", 0, 2**63 - 1)


# ---------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class TaskMovedEvent:
    """One request moved by a failover: to ``to_agent_id``, back to the queue
    (``requeued``), or -- submitted with ``movable=False`` -- ``detached``
    from the failed agent where it keeps running until released."""

    request_id: str
    task_id: str
    from_agent_id: str
    to_agent_id: str | None
    requeued: bool
    timestamp: float
    detached: bool = False


@dataclass(frozen=True, slots=True)
class FailoverEvent:
    """What a failover did.

    ``success`` is true when no task was lost (requeued counts as not lost).
    ``moved`` lists ``(request_id, new_agent_id)``; ``requeued`` the request
    ids put back on the queue; ``detached`` the requests that may not move
    (``movable=False``): their slots on the failed agent are freed and they
    stay allocated, bound to no agent, until released.
    """

    event_id: str
    failed_agent_id: str
    backup_agent_id: str | None
    tasks_transferred: int
    moved: tuple[tuple[str, str], ...]
    requeued: tuple[str, ...]
    timestamp: float
    duration_s: float
    failure_reason: str
    success: bool
    trigger: str
    detached: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PredictedNeeds:
    """A short-term forecast from the trend of smoothed utilization.

    ``lower``/``upper`` bound the predicted utilization (about 95 %, from the
    residuals of a least-squares line); ``None`` with fewer than three
    analyses.
    """

    horizon_s: float
    utilization_percent: float
    lower_percent: float | None
    upper_percent: float | None
    agent_count: int
    trend_percent_per_s: float


@dataclass(frozen=True, slots=True)
class CapacityAnalysis:
    """One capacity analysis (the original's fields, plus HPA detail)."""

    timestamp: float
    window_s: float
    current_agents: int
    total_agents: int
    total_task_slots: int
    active_tasks: int
    queued_tasks: int
    slot_utilization_percent: float | None
    cpu_utilization_percent: float | None
    memory_utilization_percent: float | None
    utilization_percent: float
    smoothed_utilization_percent: float
    busiest_dimension: str
    target_utilization_percent: float
    desired_agents: int
    scaling_recommendation: ScalingAction
    recommendation_rationale: str
    predicted_needs: PredictedNeeds | None
    total_cpu_capacity: float
    used_cpu_capacity: float
    total_memory_capacity: float
    used_memory_capacity: float

    @property
    def action(self) -> ScalingAction:
        return self.scaling_recommendation

    @property
    def rationale(self) -> str:
        return self.recommendation_rationale


@dataclass(frozen=True, slots=True)
class ManagerHealthStatus:
    is_running: bool
    last_monitoring_time: float | None
    last_capacity_analysis_time: float | None
    active_allocations: int
    queued: int
    failover_events: int
    ejected_agents: int
    offline_agents: int
    total_agents: int


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one :meth:`AdaptiveResourceManager.tick` did."""

    timestamp: float
    timed_out: int
    went_offline: tuple[str, ...]
    ejections_ended: tuple[str, ...]
    failovers: tuple[FailoverEvent, ...]
    dispatched: int
    capacity_analysis: CapacityAnalysis | None


# ---------------------------------------------------------------------------
# Capacity planner


class _CapacityPlanner:
    """EMA + HPA + stabilization + linear forecast; bounded history."""

    def __init__(self, config: CapacityConfig) -> None:
        self.config = config
        self.ema: float | None = None
        # (time, desired) within the stabilization window; the cap only bites
        # when analyses run more often than about every 75 ms
        self.desired: deque[tuple[float, int]] = deque(maxlen=4096)
        self.trend: deque[tuple[float, float]] = deque(maxlen=config.history_size)

    def analyze(self, now: float, interval_s: float, stats: ResourcePoolStats,
                queued: int) -> CapacityAnalysis:
        cfg = self.config
        current = stats.online_agents
        slots = stats.online_task_slots
        active = stats.online_tasks
        dims: dict[str, float] = {}
        if slots:
            # queued demand counts: utilization of slots can exceed 100 %
            dims["task_slots"] = 100.0 * (active + queued) / slots
        if stats.online_avg_cpu_percent is not None:
            dims["cpu"] = stats.online_avg_cpu_percent
        if stats.online_avg_memory_percent is not None:
            dims["memory"] = stats.online_avg_memory_percent
        busiest = max(dims, key=lambda k: dims[k]) if dims else "none"
        raw = dims[busiest] if dims else 0.0
        self.ema = raw if self.ema is None else (cfg.ema_alpha * raw
                                                 + (1.0 - cfg.ema_alpha) * self.ema)
        util = self.ema
        target = cfg.target_utilization
        ratio = util / target
        if current == 0:
            desired_now = 1 if queued else 0
        elif abs(ratio - 1.0) <= cfg.tolerance:
            desired_now = current
        else:
            desired_now = max(1, math.ceil(current * ratio - 1e-9))
        # scale-down stabilization: the highest desired count in the window
        self.desired.append((now, desired_now))
        horizon = now - cfg.scale_down_stabilization_s
        while self.desired and self.desired[0][0] < horizon:
            self.desired.popleft()
        desired = max(d for _, d in self.desired) if desired_now < current else desired_now
        band = f"healthy band {cfg.band_low:.0f}-{cfg.band_high:.0f}%"
        if current == 0 and queued:
            action = ScalingAction.SCALE_UP
            why = f"No agents online and {queued} requests waiting: add capacity"
        elif desired > current:
            action = ScalingAction.SCALE_UP
            why = (f"High utilization ({util:.1f}% smoothed, {busiest}) above target "
                   f"{target:.0f}% ({band}): scale up from {current} to {desired} agents")
        elif desired < current:
            action = ScalingAction.SCALE_DOWN
            why = (f"Low utilization ({util:.1f}% smoothed, {busiest}) below target "
                   f"{target:.0f}% ({band}): scale down from {current} to {desired} agents")
        else:
            action = ScalingAction.MAINTAIN
            why = (f"Utilization at {util:.1f}% ({busiest}); target {target:.0f}% within "
                   f"{cfg.tolerance:.0%} tolerance or held by the stabilization window; {band}")
            desired = current
        self.trend.append((now, util))
        return CapacityAnalysis(
            timestamp=now,
            window_s=interval_s,
            current_agents=current,
            total_agents=stats.total_agents,
            total_task_slots=slots,
            active_tasks=active,
            queued_tasks=queued,
            slot_utilization_percent=dims.get("task_slots"),
            cpu_utilization_percent=dims.get("cpu"),
            memory_utilization_percent=dims.get("memory"),
            utilization_percent=raw,
            smoothed_utilization_percent=util,
            busiest_dimension=busiest,
            target_utilization_percent=target,
            desired_agents=desired,
            scaling_recommendation=action,
            recommendation_rationale=why,
            predicted_needs=self._forecast(now, current),
            total_cpu_capacity=stats.total_cpu_capacity,
            used_cpu_capacity=stats.used_cpu_capacity,
            total_memory_capacity=stats.total_memory_capacity,
            used_memory_capacity=stats.used_memory_capacity,
        )

    def _forecast(self, now: float, current: int) -> PredictedNeeds:
        cfg = self.config
        h = cfg.forecast_horizon_s
        pts = np.array(self.trend, dtype=np.float64)
        n = pts.shape[0]
        last = float(pts[-1, 1])
        slope = 0.0
        pred = last
        lo = hi = None
        # a fit over an absurd time span (a clock moved by ~1e300 s) would
        # overflow: then the forecast is the last value, without an interval
        if n >= 2 and float(pts[-1, 0] - pts[0, 0]) < 1e100:
            t = pts[:, 0] - now
            u = pts[:, 1]
            tm, um = t.mean(), u.mean()
            sxx = float(((t - tm) ** 2).sum())
            if sxx > 0.0:
                slope = float(((t - tm) * (u - um)).sum() / sxx)
                pred = float(um + slope * (h - tm))
                if n >= 3:
                    resid = u - (um + slope * (t - tm))
                    s = math.sqrt(float((resid ** 2).sum()) / (n - 2))
                    # prediction interval of a new observation, z ~ 1.96
                    half = 1.96 * s * math.sqrt(1.0 + 1.0 / n + (h - tm) ** 2 / sxx)
                    lo, hi = max(0.0, pred - half), pred + half
        pred = max(0.0, pred)
        agents = math.ceil(current * pred / cfg.target_utilization - 1e-9) if current else (
            1 if pred > 0 else 0)
        return PredictedNeeds(h, pred, lo, hi, max(0, agents), slope)


# ---------------------------------------------------------------------------
# The manager


class AdaptiveResourceManager:
    """The adaptive resource manager: one object wiring the parts.

    Parameters
    ----------
    config : ResourceManagerConfig, optional
    clock : Clock, optional
        Default monotonic; tests pass a ManualClock.

    Notes
    -----
    * ``monitor``, ``balancer`` and ``allocator`` are usable on their own.
    * Failover moves a failed agent's allocations to the backup or the best
      eligible agents; what cannot be placed is requeued (nothing is lost).
      It fires automatically when an agent goes OFFLINE (stale, on
      :meth:`tick`), is ejected (at the release completing the failure
      streak), or is removed with active work (always, even with
      ``enable_auto_failover=False``, since its slots disappear).
    * An agent failed over by hand or because it went stale stays OFFLINE
      until it reports usage again or :meth:`restore_agent`; an ejected one
      comes back when the ejection ends.
    * Memory: failover history ``history_size`` events (default 100);
      capacity history ``CapacityConfig.history_size`` analyses (64) plus at
      most 4096 stabilization entries; the allocator's (``max_queue``,
      ``history``) and monitor's (``max_agents``) caps apply.

    Examples
    --------
    >>> from arbiter_core import ManualClock, AllocationRequest
    >>> arm = AdaptiveResourceManager(clock=ManualClock())
    >>> _ = arm.register_agent("a1", max_tasks=1)
    >>> arm.allocate_resources(AllocationRequest("r1", "t1")).status.value
    'allocated'
    >>> arm.allocate_resources(AllocationRequest("r2", "t2")).status.value
    'queued'
    >>> arm.release_resources("r1").status.value
    'released'
    >>> arm.allocation_status("r2").agent_id
    'a1'
    """

    def __init__(self, config: ResourceManagerConfig | None = None, *,
                 clock: Clock | None = None) -> None:
        cfg = ResourceManagerConfig() if config is None else config
        if not isinstance(cfg, ResourceManagerConfig):
            raise TypeError(f"config must be a ResourceManagerConfig, got {type(cfg).__name__}")
        self._clock: Clock = default_clock() if clock is None else clock
        self._config = cfg
        self.monitor = ResourceMonitor(clock=self._clock, stale_after_s=cfg.stale_after_s,
                                       thresholds=cfg.thresholds, max_agents=cfg.max_agents)
        self.monitor.set_signals(cfg.scoring, cfg.report_decay_s)
        self.balancer = LoadBalancer(self.monitor, cfg.load_balancing_strategy, seed=cfg.seed)
        self.allocator = ResourceAllocator(self.balancer, rate_limit=cfg.rate_limit,
                                           max_queue=cfg.max_queue, aging_per_s=cfg.aging_per_s,
                                           slow_decision_s=cfg.max_allocation_decision_s,
                                           max_tenants=cfg.max_tenants)
        for tenant, policy in cfg.tenants.items():
            self.allocator.apply_tenant_policy(tenant, policy)
        self.ejector = OutlierEjector(self.monitor, cfg.ejection)
        self._lock = self.monitor.lock
        self.allocator.on_outcome(self._on_outcome)
        self.allocator.on_agent_leaving(self._before_remove)
        self._planner = _CapacityPlanner(cfg.capacity)
        self._history: deque[FailoverEvent] = deque(maxlen=cfg.history_size)
        self._failover_count = 0
        # events to announce once the lock is released (listeners may call back in)
        self._pending: list[FailoverEvent | TaskMovedEvent] = []
        self._failover_listeners = Listeners("failover listener")
        self._move_listeners = Listeners("task-moved listener")
        self._last_tick: float | None = None
        self._last_analysis: CapacityAnalysis | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._thread_lock = threading.Lock()

    # -- configuration --------------------------------------------------------

    @property
    def config(self) -> ResourceManagerConfig:
        return self._config

    @property
    def clock(self) -> Clock:
        return self._clock

    def get_config(self) -> ResourceManagerConfig:
        return self._config

    def update_config(self, **changes: Any) -> ResourceManagerConfig:
        """Change settings live (validated; a running manager keeps running).

        Raises
        ------
        TypeError
            An unknown field.
        ValueError
            A bad value (nothing changes).
        """
        names = {f.name for f in dataclasses.fields(ResourceManagerConfig)}
        for k in changes:
            if k not in names:
                raise TypeError(f"unknown config field {k!r}")
        # the queue's heap keys are built with aging_per_s: it cannot change live
        for fixed in ("max_agents", "max_tenants", "aging_per_s"):
            if fixed in changes and changes[fixed] != getattr(self._config, fixed):
                raise ValueError(f"{fixed} cannot change on a live manager")
        new = dataclasses.replace(self._config, **changes)
        stop = False
        with self._lock:
            old = self._config
            if new.load_balancing_strategy is not old.load_balancing_strategy:
                self.balancer.set_strategy(new.load_balancing_strategy)
            if new.thresholds != old.thresholds:
                self.monitor.set_thresholds(new.thresholds)
            if new.scoring != old.scoring or new.report_decay_s != old.report_decay_s:
                self.monitor.set_signals(new.scoring, new.report_decay_s)
            self.monitor.stale_after_s = new.stale_after_s
            if new.rate_limit != old.rate_limit:
                self.allocator.set_rate_limit(new.rate_limit)
            self.allocator.max_queue = new.max_queue
            self.allocator.slow_decision_s = new.max_allocation_decision_s
            self.ejector.config = new.ejection
            if new.tenants != old.tenants:
                for tenant in old.tenants:
                    if tenant not in new.tenants:
                        self.allocator.clear_tenant_policy(tenant)
                for tenant, policy in new.tenants.items():
                    if old.tenants.get(tenant) != policy:
                        self.allocator.apply_tenant_policy(tenant, policy)
            if new.capacity != old.capacity:
                self._planner = _CapacityPlanner(new.capacity)
            if new.history_size != old.history_size:
                self._history = deque(self._history, maxlen=new.history_size)
            self._config = new
            stop = not new.enabled and self.is_running
        if stop:
            self.stop()     # outside the lock: the thread may be waiting for it
        return new

    # -- agents ---------------------------------------------------------------

    def register_agent(self, agent_id: str, max_tasks: int | None = None, weight: float = 1.0,
                       **capacity: float) -> AgentResourceProfile:
        """Register an agent (see :meth:`ResourceMonitor.register_agent`) and
        serve queued requests it can take."""
        profile = self.monitor.register_agent(agent_id, max_tasks, weight, **capacity)
        self.allocator.dispatch()
        return profile

    def remove_agent(self, agent_id: str) -> AgentResourceProfile:
        """Remove an agent; its active allocations are failed over first."""
        profile = self.monitor.remove_agent(agent_id)
        self._announce()
        return profile

    def record_usage(self, agent_id: str, cpu: float | None = None, memory: float | None = None,
                     network: float | None = None,
                     timestamp: float | None = None, *, waiting: float | None = None,
                     running: float | None = None,
                     kv_cache: float | None = None) -> HealthStatus:
        """Record usage (see :meth:`ResourceMonitor.record_usage`: percentages,
        and an engine's ``waiting``/``running`` requests and ``kv_cache`` use);
        an agent coming back from OFFLINE takes queued work at once."""
        with self._lock:
            before = self.monitor.health(agent_id)
            health = self.monitor.record_usage(agent_id, cpu, memory, network, timestamp,
                                               waiting=waiting, running=running,
                                               kv_cache=kv_cache)
            if before is not health and self.allocator.queued_count:
                self.allocator.dispatch()
        return health

    def restore_agent(self, agent_id: str) -> HealthStatus:
        """End an agent's OFFLINE state (after a failover) or its ejection."""
        with self._lock:
            health = self.monitor.restore_agent(agent_id)
            self.allocator.dispatch()
        return health

    # -- allocation -----------------------------------------------------------

    def allocate_resources(self, request: AllocationRequest) -> AllocationResult:
        """Allocate now, queue, or refuse (see :meth:`ResourceAllocator.allocate`).

        If the dynamic path raises unexpectedly, the request is allocated by
        plain round-robin instead (counted in ``fallback_allocations``,
        logged); the failed attempt leaves nothing behind, so the request is
        counted once.  Decisions slower than ``max_allocation_decision_s``
        are counted in :attr:`slow_decisions`.
        """
        try:
            res = self.allocator.allocate(request)
        except (ValueError, TypeError):
            raise          # the caller's mistake, named: not a reason to fall back
        except Exception as exc:  # the original's static fallback
            res = self.allocator.allocate_fallback(request, exc)
        if self._pending:
            self._announce()
        return res

    async def allocate_resources_async(self, request: AllocationRequest) -> AllocationResult:
        """Allocate, waiting while QUEUED (see :meth:`ResourceAllocator.allocate_async`).

        The decision takes exactly the synchronous path (fallback and slow
        decisions included); an immediate decision returns without an
        event-loop round trip.
        """
        res = self.allocate_resources(request)
        if res.status is AllocationStatus.QUEUED:
            res = await self.allocator.wait_queued(request.request_id)
            if self._pending:
                self._announce()
        return res

    def allocation_status(self, request_id: str) -> AllocationResult:
        """The request's current state; KeyError for an unknown id."""
        return self.allocator.status(request_id)

    def release_resources(self, request_id: str, success: bool = True,
                          duration_s: float | None = None) -> AllocationResult | None:
        """Release an allocation (or withdraw a queued request); unknown ids
        are harmless."""
        res = self.allocator.release(request_id, success, duration_s)
        if self._pending:
            self._announce()
        return res

    def cancel(self, request_id: str) -> AllocationResult | None:
        """Withdraw a request (FAILED, "cancelled"); ``None`` if not live."""
        res = self.allocator.withdraw(request_id, "cancelled")
        if self._pending:
            self._announce()
        return res

    # -- tenants ----------------------------------------------------------------

    def set_tenant_policy(self, tenant: str, *, weight: float = 1.0,
                          max_active: int | None = None, max_queued: int | None = None,
                          rate_per_s: float | None = None,
                          burst: float | None = None) -> TenantPolicy:
        """Replace ``tenant``'s policy (see :meth:`ResourceAllocator.set_tenant_policy`);
        the config's ``tenants`` mapping follows."""
        check_tenant(tenant)
        policy = TenantPolicy(weight=weight, max_active=max_active, max_queued=max_queued,
                              rate_per_s=rate_per_s, burst=burst)
        self.update_config(tenants={**self._config.tenants, tenant: policy})
        if self._pending:
            self._announce()
        return policy

    def get_tenant_statistics(self, tenant: str) -> AllocationStatistics:
        """Allocation statistics of one tenant; KeyError for a tenant never seen."""
        return self.allocator.get_tenant_statistics(tenant)

    def tenants(self) -> list[str]:
        """Every tenant with state of its own."""
        return self.allocator.tenants()

    # -- ejection and failover ------------------------------------------------

    def _on_outcome(self, agent_id: str, success: bool, streak: int) -> None:
        """After a failed release (lock held): eject an outlier and move its work."""
        if self.ejector.on_outcome(agent_id, success, streak) and \
                self.allocator.active_on(agent_id):
            self._failover(agent_id, None, f"ejected after {streak} consecutive failures",
                           trigger="ejection", mark_offline=False)

    def _before_remove(self, agent_id: str) -> None:
        # lock held by the monitor; the slots are about to disappear
        if self.allocator.active_on(agent_id):
            self._failover(agent_id, None, "agent removed", trigger="removal",
                           mark_offline=True)

    def handle_failover(self, failed_agent_id: str, backup_id: str | None = None,
                        reason: str = "manual failover") -> FailoverEvent:
        """Move every active allocation of ``failed_agent_id`` away.

        To ``backup_id`` when given (what it cannot take is requeued),
        otherwise to the best eligible agents by the current strategy.  The
        failed agent is OFFLINE afterwards (until it reports or is restored).

        Raises
        ------
        KeyError
            Unknown agent.
        ValueError
            ``backup_id == failed_agent_id``.
        """
        with self._lock:
            self.monitor.health(failed_agent_id)        # KeyError naming an unknown agent
            if backup_id is not None:
                self.monitor.health(backup_id)
                if backup_id == failed_agent_id:
                    raise ValueError("backup_id must differ from failed_agent_id, "
                                     f"got {backup_id!r} for both")
            event = self._failover(failed_agent_id, backup_id, reason, trigger="manual",
                                   mark_offline=True)
        self._announce()
        return event

    def _failover(self, failed: str, backup: str | None, reason: str, *, trigger: str,
                  mark_offline: bool) -> FailoverEvent:
        t0 = time.perf_counter()
        now = self._clock.now()
        alloc = self.allocator
        if mark_offline:
            # out of selection first, so no task is moved back onto it (an
            # ejected agent is out of selection already)
            self.monitor.set_offline(failed)
        moved: list[tuple[str, str]] = []
        requeued: list[str] = []
        detached: list[str] = []
        moves: list[TaskMovedEvent] = []
        for rid in alloc.active_on(failed):
            st = alloc.status(rid)
            if st.status is not AllocationStatus.ALLOCATED or st.agent_id != failed:
                continue        # a listener released or moved it meanwhile
            task_id = st.task_id
            if not alloc.is_movable(rid):
                alloc.detach(rid)
                detached.append(rid)
                moves.append(TaskMovedEvent(rid, task_id, failed, None, False, now, True))
                continue
            to = alloc.move(rid, backup)
            if to is None:
                requeued.append(rid)
            else:
                moved.append((rid, to))
            moves.append(TaskMovedEvent(rid, task_id, failed, to, to is None, now))
        event = FailoverEvent(
            event_id=str(uuid.uuid4()),
            failed_agent_id=failed,
            backup_agent_id=backup,
            tasks_transferred=len(moved) + len(requeued),
            moved=tuple(moved),
            requeued=tuple(requeued),
            timestamp=now,
            duration_s=time.perf_counter() - t0,
            failure_reason=reason,
            success=True,      # every task is on an agent, in the queue or still running
            trigger=trigger,
            detached=tuple(detached),
        )
        self._history.append(event)
        self._failover_count += 1
        self._pending.extend(moves)
        self._pending.append(event)
        log.info("failover of %r (%s): %d moved, %d requeued, %d detached", failed, trigger,
                 len(moved), len(requeued), len(detached))
        return event

    def _announce(self) -> None:
        """Call listeners outside the lock (they may call back into us):
        every moved task, then its failover event."""
        if not self._pending:
            return
        with self._lock:
            events, self._pending = self._pending, []
        for e in events:
            if isinstance(e, TaskMovedEvent):
                self._move_listeners.emit(e)
            else:
                self._failover_listeners.emit(e)

    def on_failover(self, callback: Callable[[FailoverEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` after every failover; returns a function
        that unsubscribes."""
        return self._failover_listeners.subscribe(callback)

    def on_task_moved(self, callback: Callable[[TaskMovedEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every request a failover moved or
        requeued; returns a function that unsubscribes."""
        return self._move_listeners.subscribe(callback)

    def get_failover_history(self, count: int | None = None) -> list[FailoverEvent]:
        """The last ``count`` failover events (all kept, at most ``history_size``)."""
        with self._lock:
            h = list(self._history)
        if count is None:
            return h
        check_int(count, "count", 0)
        return h[-count:] if count else []

    # -- maintenance ----------------------------------------------------------

    def tick(self) -> TickReport:
        """One maintenance cycle: deadlines, staleness (auto-failover),
        expired ejections, dispatch, capacity analysis when due."""
        cfg = self._config
        with self._lock:
            now = self._clock.now()
            alloc = self.allocator
            timed_out = alloc.tick()
            offline = self.monitor.tick()
            reason = f"stale: no usage report for {cfg.stale_after_s:g} s"
            failovers = [
                self._failover(agent, None, reason, trigger="stale", mark_offline=True)
                for agent in offline if cfg.enable_auto_failover and alloc.active_on(agent)
            ]
            ended = self.ejector.end_expired()
            dispatched = alloc.dispatch()
            analysis = None
            if cfg.enable_capacity_planning and (
                    self._last_analysis is None
                    or now - self._last_analysis.timestamp >= cfg.capacity_analysis_interval_s):
                analysis = self.analyze_capacity()
            self._last_tick = now
        self._announce()
        return TickReport(now, timed_out, tuple(offline), tuple(ended), tuple(failovers),
                          dispatched, analysis)

    def analyze_capacity(self) -> CapacityAnalysis:
        """Utilization (busiest of task slots incl. queued demand, cpu, memory;
        unreported dimensions ignored), EMA-smoothed, against the target with
        HPA's rule, stabilization and a short-term forecast."""
        with self._lock:
            now = self._clock.now()
            stats = self.monitor.get_pool_stats()
            a = self._planner.analyze(now, self._config.capacity_analysis_interval_s, stats,
                                      self.allocator.queued_count)
            self._last_analysis = a
            return a

    @property
    def last_capacity_analysis(self) -> CapacityAnalysis | None:
        return self._last_analysis

    # -- reading --------------------------------------------------------------

    def get_pool_statistics(self) -> ResourcePoolStats:
        return self.monitor.get_pool_stats()

    def get_allocation_statistics(self) -> AllocationStatistics:
        return self.allocator.get_allocation_statistics()

    def get_load_distribution(self) -> dict[str, int]:
        return self.balancer.get_load_distribution()

    @property
    def slow_decisions(self) -> int:
        """Allocations whose decision took longer than ``max_allocation_decision_s``
        (synchronous and asynchronous alike)."""
        return self.allocator.slow_decisions

    def get_health_status(self) -> ManagerHealthStatus:
        with self._lock:
            p = self.monitor.get_pool_stats()
            return ManagerHealthStatus(
                is_running=self.is_running,
                last_monitoring_time=self._last_tick,
                last_capacity_analysis_time=(None if self._last_analysis is None
                                             else self._last_analysis.timestamp),
                active_allocations=self.allocator.active_count,
                queued=self.allocator.queued_count,
                failover_events=self._failover_count,
                ejected_agents=p.ejected_agents,
                offline_agents=p.offline_agents,
                total_agents=p.total_agents,
            )

    # -- background thread ----------------------------------------------------

    @property
    def is_running(self) -> bool:
        """True while maintenance runs: on the thread or as an asyncio task."""
        t = self._thread
        return (t is not None and t.is_alive()) or _aio.running(self)

    def start(self) -> None:
        """Run :meth:`tick` every ``monitoring_interval_s`` on a daemon thread
        (idempotent; a disabled manager does not start)."""
        with self._thread_lock:
            if self.is_running or not self._config.enabled:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="arbiter-resources",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (idempotent)."""
        with self._thread_lock:
            t = self._thread
            self._stop.set()
            if t is not None:
                t.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # keep monitoring alive; logged
                log.exception("resource manager tick failed")
            self._stop.wait(self._config.monitoring_interval_s)

    def __enter__(self) -> AdaptiveResourceManager:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> AdaptiveResourceManager:
        """Run :meth:`tick` every ``monitoring_interval_s`` as a task on the
        running event loop (no thread); a disabled manager does not start."""
        if self._config.enabled:
            _aio.enter(self, self.tick, lambda: self._config.monitoring_interval_s,
                       "arbiter-resources")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop maintenance -- the asyncio task and the thread, if any -- and
        wait for it (idempotent)."""
        await _aio.close(self)
        if self._thread is not None:
            self.stop()

    def __repr__(self) -> str:
        return (f"AdaptiveResourceManager(agents={len(self.monitor)}, "
                f"strategy={self.balancer.strategy.value}, running={self.is_running})")
