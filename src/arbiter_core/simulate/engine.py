"""The event loop: one strategy, one seed, one scenario.

The simulation drives the *real* :class:`AdaptiveResourceManager` and
:class:`RuntimeOptimizer` on a :class:`ManualClock`: arrivals, task
completions, usage reports and maintenance ticks are events, the clock jumps
from one to the next, and nothing sleeps.  A run is deterministic for a given
scenario, strategy, seed (and trace).

What the simulator plays (the manager only sees the calls a real scheduler
would make):

* **agents** run the tasks the manager assigns under their service model
  (:mod:`.service`: independent slots, or limited processor sharing where
  tasks slow each other down) and report cpu/memory usage every
  ``report_interval_s``;
* **faults**: a *slow* agent serves ``factor`` times slower (its running
  tasks too); a *silent* agent stops reporting and never finishes what it
  holds (the manager marks it OFFLINE after ``stale_after_s`` and fails its
  work over); a *failing* agent fails tasks (the manager ejects it after
  consecutive failures);
* **the scheduler** submits requests (:mod:`.workload`: generated or from a
  trace), each under its tenant (the scenario's tenant policies are the
  manager's), releases them when their task ends (``success=False`` for a failed
  task) and restarts moved tasks from scratch after a failover.

Besides the manager's public API the simulator uses one hook,
``manager.allocator.on_transition``, the allocator's documented way for a
synchronous scheduler to learn that a queued request was dispatched or timed
out without polling.
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..clock import ManualClock
from ..fleet import FleetMember, InMemoryLeaseStore
from ..optimization import OptimizerConfig, RuntimeOptimizer
from ..resources import (
    AdaptiveResourceManager,
    AllocationRequest,
    FailoverEvent,
    RateLimitConfig,
    ResourceManagerConfig,
    TenantPolicy,
)
from ..scenario import PRIORITY_NAMES, Scenario
from ..types import AllocationStatus, LoadBalancingStrategy, MetricType, TaskPriority
from .service import AgentService
from .trace import Trace
from .workload import Workload, generate_workload

__all__ = ["TENANT_FIELDS", "SimulationResult", "compare_strategies", "jain_index",
           "progress_printer", "run_simulation"]

#: the fields of ``SimulationResult.tenants[t]`` (counts, then times in seconds)
TENANT_FIELDS = ("submitted", "completed", "timed_out", "rejected", "failed",
                 "wait_p50_s", "wait_p95_s", "wait_p99_s", "e2e_mean_s")
#: index of each outcome in a tenant's tally
_COMPLETED, _TIMED_OUT, _REJECTED, _FAILED = range(4)

_PRIORITY_VALUES = tuple(TaskPriority[name.upper()] for name in PRIORITY_NAMES)

# event kinds, ordered so that simultaneous events resolve deterministically:
# completions free slots before anything else; arrivals (kept out of the heap)
# come after every event at the same time
_DONE, _FAULT, _REPORT, _TICK, _SNAPSHOT, _SYNC = range(6)


class _SimClock(ManualClock):
    """A ManualClock the event loop moves with one store.

    The loop only ever moves it forward to finite event times it computed
    itself, so :meth:`ManualClock.set`'s checks and lock (about a tenth of a
    run's time) buy nothing here; everything else is the ManualClock.
    """

    __slots__ = ()

    def jump(self, t: float) -> float:
        self._t = t
        return t


def jain_index(loads: Iterable[float]) -> float:
    """Jain's fairness index (sum x)^2 / (n * sum x^2): 1.0 is perfectly even."""
    x = np.asarray(list(loads), dtype=float)
    if x.size == 0 or not np.any(x):
        return 1.0
    return float(x.sum() ** 2 / (x.size * np.square(x).sum()))


@dataclass
class SimulationResult:
    """The outcome of one strategy on one scenario and seed (all counts add up).

    ``submitted = completed + timed_out + rejected + failed``, where *failed*
    counts requests the manager failed, tasks that ran and failed, and the
    requests of a crashed replica (also counted in ``lost_in_crash``).

    ``oversubscribed`` counts the moments an agent ran more tasks than its
    ``max_tasks`` (summed over replicas when there are several): it must be 0.

    Wait and end-to-end statistics cover the requests that arrived at or after
    the scenario's ``warmup_s``; wait is submission to first allocation (every
    request that got an agent), end-to-end is submission to completion
    (completed tasks).  ``mean_in_system`` is the time average of the number
    of requests in the system (queued or running), integrated over the whole
    run, and ``sojourn_mean_s`` the mean time from submission to any outcome
    (0 for a rejection): Little's law says ``mean_in_system ==
    arrival_rate_per_s * sojourn_mean_s``, and the simulator's bookkeeping
    keeps it exact.

    ``tenants`` breaks the counts and times down by tenant when the workload
    has tenants (the scenario's ``[[tenants]]`` or a trace's ``tenant``
    column; requests without one are ``"default"``): ``tenants[t]`` has the
    :data:`TENANT_FIELDS`, with the same identity per tenant, and the
    tenants' counts add up to the totals.  Empty without tenants.
    """

    strategy: str
    seed: int = 0
    submitted: int = 0
    completed: int = 0
    timed_out: int = 0
    rejected: int = 0
    failed: int = 0
    wait_mean_s: float = math.nan
    wait_p50_s: float = math.nan
    wait_p95_s: float = math.nan
    wait_p99_s: float = math.nan
    e2e_mean_s: float = math.nan
    e2e_p50_s: float = math.nan
    e2e_p99_s: float = math.nan
    fairness: float = math.nan
    failovers: int = 0
    tasks_moved: int = 0
    ejections: int = 0
    peak_queue: int = 0
    bottlenecks_found: int = 0
    health_score: float = math.nan
    capacity_action: str = ""
    desired_agents: int = 0
    rate_limit_final: float = math.nan
    mean_in_system: float = math.nan
    arrival_rate_per_s: float = math.nan
    sojourn_mean_s: float = math.nan
    simulated_s: float = 0.0
    wall_s: float = 0.0
    replicas: int = 1
    oversubscribed: int = 0
    lost_in_crash: int = 0
    recommendations: list[str] = field(default_factory=list)
    tenants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # time series for plots (not part of the table)
    timeline: dict[str, list[float]] = field(default_factory=dict, repr=False)
    e2e_samples: list[float] = field(default_factory=list, repr=False)
    agent_busy_s: dict[str, float] = field(default_factory=dict, repr=False)

    def table_row(self) -> dict[str, Any]:
        """The JSON/table view: every field but the name, seed and the plot series."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in _NOT_IN_TABLE}
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = None if math.isnan(v) else round(v, 6)
        return out


_NOT_IN_TABLE = frozenset({"strategy", "seed", "timeline", "e2e_samples", "agent_busy_s"})


class _Task:
    __slots__ = ("agent", "began", "fail_draw", "index", "replica", "request_id", "started",
                 "submitted_at", "tenant", "work_s")

    def __init__(self, request_id: str, index: int, work_s: float, submitted_at: float,
                 fail_draw: float, tenant: int) -> None:
        self.request_id = request_id
        self.tenant = tenant       # index into the run's tenant names; -1: no tenants
        self.index = index
        self.work_s = work_s
        self.submitted_at = submitted_at
        # a uniform draw fixed at arrival: fails where the failure rate > it
        self.fail_draw = fail_draw
        self.agent: str | None = None
        self.began = math.nan      # when it started on its current agent
        self.started = False       # ever allocated (the wait is measured once)
        self.replica = 0           # the scheduler replica that holds it


class _Simulation:
    def __init__(self, scenario: Scenario, strategy: LoadBalancingStrategy, seed: int,
                 progress: Callable[[float], None] | None,
                 trace: Trace | None = None) -> None:
        self.sc = scenario
        self.strategy = strategy
        # independent streams: the workload (times, priorities, work, failure
        # draws) is identical for every strategy; only the noise differs
        arrival_ss, noise_ss, route_ss = np.random.SeedSequence(seed).spawn(3)
        rng = np.random.default_rng(arrival_ss)
        self.noise = np.random.default_rng(noise_ss)
        self.route = np.random.default_rng(route_ss)
        self.work: Workload = (generate_workload(scenario, rng) if trace is None
                               else trace.to_workload(scenario, rng))
        self.duration = self.work.duration_s
        self.clock = _SimClock(start=0.0)
        self.progress = progress
        rate_limit = None
        if scenario.rate_limit_per_s is not None:
            burst = scenario.rate_limit_burst or max(1, int(scenario.rate_limit_per_s))
            rate_limit = RateLimitConfig(max_requests=burst,
                                         window_s=burst / scenario.rate_limit_per_s
                                         if scenario.rate_limit_per_s > 0 else 1.0,
                                         adaptive=True)
        self._init_tenants()

        def config(k: int) -> ResourceManagerConfig:
            return ResourceManagerConfig(
                load_balancing_strategy=strategy,
                tenants={t.name: TenantPolicy(weight=t.weight, max_active=t.max_active,
                                              max_queued=t.max_queued,
                                              rate_per_s=t.rate_per_s, burst=t.burst)
                         for t in scenario.tenants},
                rate_limit=rate_limit,
                stale_after_s=scenario.stale_after_s,
                max_queue=scenario.max_queue,
                # the simulator ticks every tick_interval_s; analyse capacity
                # every 15 s so the run sees the recommendation move
                capacity_analysis_interval_s=15.0,
                seed=seed + 1_000_003 * k,
            )

        # one manager, or N fleet members sharing the pool through a store
        self.store: InMemoryLeaseStore | None = None
        self.members: list[FleetMember] = []
        if scenario.replicas == 1:
            self.arms = [AdaptiveResourceManager(config=config(0), clock=self.clock)]
            self.allocs: list[Callable[[AllocationRequest], Any]] = [
                self.arms[0].allocate_resources]
        else:
            self.store = InMemoryLeaseStore(lease_ttl_s=scenario.lease_ttl_s,
                                            clock=self.clock)
            self.members = [FleetMember(f"replica-{k}", self.store, config(k),
                                        clock=self.clock,
                                        sync_interval_s=scenario.sync_interval_s)
                            for k in range(scenario.replicas)]
            self.arms = [m.manager for m in self.members]
            self.allocs = [m.allocate_resources for m in self.members]
        self.arm = self.arms[0]
        self.live = list(range(scenario.replicas))
        self.crashed: set[int] = set()
        self.opt = RuntimeOptimizer(
            config=OptimizerConfig(
                analysis_interval_s=5.0,
                analysis_window_s=30.0,
                thresholds={MetricType.LATENCY: scenario.latency_threshold_ms,
                            MetricType.THROUGHPUT: scenario.throughput_threshold_per_s},
                enable_cache_optimization=False,
            ),
            clock=self.clock,
        )
        self.result = SimulationResult(strategy=strategy.value, seed=seed,
                                       replicas=scenario.replicas)
        self.events: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.tasks: dict[str, _Task] = {}
        # insertion-ordered (a dict, not a set) so runs are deterministic
        self.queued: dict[str, None] = {}
        self.transitions: list[tuple[str, AllocationStatus, str | None]] = []
        self.services: dict[str, AgentService] = {}
        self.silent: set[str] = set()
        self.slow: dict[str, float] = {}
        self.fail_rate: dict[str, float] = {}
        self.memory: dict[str, tuple[float, float]] = {}
        self.max_tasks: dict[str, int] = {}
        self.waits: list[float] = []
        self.e2e: list[float] = []
        self.bottleneck_keys: set[tuple[str, str]] = set()
        self.timeline: dict[str, list[float]] = {"t": [], "queue": [], "utilization": []}
        self.completed_window = 0
        self.failed_window = 0
        # Little's law: the integral of the number in system, and the sum of
        # the time each request spent in it
        self.area = 0.0
        self.sojourn_sum = 0.0

    def _init_tenants(self) -> None:
        """The run's tenants: the scenario's, then any other the workload
        names (a trace's), in order of appearance; "default" for requests
        that name none."""
        w = self.work
        # the tenant of every request, 4 bytes each (a trace may hold millions)
        self.tenant_of = array("i")
        if not self.sc.tenants and not w.tenant:
            self.tenant_names: list[str] = []
        else:
            names = dict.fromkeys(t.name for t in self.sc.tenants)
            if w.tenant:
                names.update(dict.fromkeys(n or "default" for n in w.tenant))
            elif len(w):
                names["default"] = None      # a trace that names no tenant
            index = {n: k for k, n in enumerate(names)}
            self.tenant_names = list(names)
            if w.tenant:
                self.tenant_of.extend(index[n or "default"] for n in w.tenant)
            else:
                self.tenant_of.extend([index["default"]] * len(w))
        k = len(self.tenant_names)
        self.t_submitted = [0] * k
        self.t_outcomes = [[0, 0, 0, 0] for _ in range(k)]
        self.t_waits: list[list[float]] = [[] for _ in range(k)]
        self.t_e2e: list[list[float]] = [[] for _ in range(k)]

    # -- setup -----------------------------------------------------------------

    def _push(self, at: float, kind: int, payload: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, kind, self.seq, payload))

    def setup(self) -> None:
        for g in self.sc.groups:
            for i in range(g.count):
                aid = f"{g.name}-{i}"
                # the load estimate's count term divides by what the agent
                # serves at full speed, not by max_tasks (a hard cap)
                concurrency = g.speed * g.effective_parallelism
                if self.store is None:
                    self.arm.register_agent(aid, max_tasks=g.max_tasks,
                                            weight=g.effective_weight, concurrency=concurrency)
                else:
                    # (the lease store carries no concurrency: members
                    # count against max_tasks)
                    self.store.register_agent(aid, max_tasks=g.max_tasks,
                                              weight=g.effective_weight)
                self.services[aid] = AgentService(g.speed, g.effective_parallelism)
                self.memory[aid] = (g.base_memory, g.memory_per_task)
                self.max_tasks[aid] = g.max_tasks
        for arm in self.arms:
            arm.on_failover(self._on_failover)
            arm.allocator.on_transition(self._on_transition)
        if self.members:
            for m in self.members:      # learn the agents (each gets its floor)
                m.sync()
            self._push(self.sc.sync_interval_s, _SYNC)
        self.opt.on_bottleneck(self._on_bottleneck)
        for f in self.sc.faults:
            self._push(f.at_s, _FAULT, f)
        self._push(0.0, _REPORT)
        # the health verdict is taken when arrivals stop, not after the drain
        # (an idle pool's throughput would read as a bottleneck)
        self._push(self.duration, _SNAPSHOT)
        self._push(self.sc.tick_interval_s, _TICK)

    # -- arrivals and outcomes -----------------------------------------------------

    def _arrive(self, i: int, now: float) -> None:
        w = self.work
        rid = f"r{i}"
        self.result.submitted += 1
        tenant = -1
        if self.tenant_of:
            tenant = self.tenant_of[i]
            self.t_submitted[tenant] += 1
        task = _Task(rid, i, float(w.work_s[i]), now, float(w.fail_draw[i]), tenant)
        self.tasks[rid] = task
        req = AllocationRequest(request_id=rid, task_id=f"t{i}",
                                priority=_PRIORITY_VALUES[w.priority[i]],
                                timeout_s=float(w.timeout_s[i]),
                                tenant=self.tenant_names[tenant] if tenant >= 0 else "default")
        if len(self.arms) > 1:
            task.replica = self.live[int(self.route.integers(len(self.live)))]
        res = self.allocs[task.replica](req)
        if res.status is AllocationStatus.ALLOCATED:
            self._start(task, res.agent_id, now)
        elif res.status is AllocationStatus.QUEUED:
            self.queued[rid] = None
        elif res.status is AllocationStatus.REJECTED:
            self.result.rejected += 1
            self._tally(task, _REJECTED)
            self._end(task, now)
        else:
            self.result.failed += 1
            self._tally(task, _FAILED)
            self._end(task, now)
        self._dispatch_queued(now)   # a call may expire other queued requests

    def _tally(self, task: _Task, outcome: int) -> None:
        if task.tenant >= 0:
            self.t_outcomes[task.tenant][outcome] += 1

    def _end(self, task: _Task, now: float) -> None:
        self.sojourn_sum += now - task.submitted_at
        del self.tasks[task.request_id]

    # -- running tasks -------------------------------------------------------------

    def _reschedule(self, agent: str) -> None:
        """Make the agent's pending completion event match its state."""
        svc = self.services[agent]
        t = svc.next_completion()
        pending = svc.scheduled
        if t is not None and pending is not None and abs(t - pending) <= 1e-12 * max(1.0, t):
            # the same task still ends at the same time (a start that neither
            # changed the rate nor finishes first): the pending event stands;
            # it differs from t by rounding at most
            return
        svc.epoch += 1
        svc.scheduled = t
        if t is not None:
            self._push(t, _DONE, (agent, svc.epoch))

    def _start(self, task: _Task, agent: str | None, now: float) -> None:
        assert agent is not None
        task.agent = agent
        task.began = now
        if not task.started:
            task.started = True
            if task.submitted_at >= self.sc.warmup_s:
                self.waits.append(now - task.submitted_at)
                if task.tenant >= 0:
                    self.t_waits[task.tenant].append(now - task.submitted_at)
        svc = self.services[agent]
        svc.add(task.request_id, task.work_s, now)
        if svc.n > self.max_tasks[agent]:
            self.result.oversubscribed += 1
        self._reschedule(agent)

    def _stop_running(self, task: _Task, now: float) -> None:
        """Take a task off its agent unfinished (failover moved or requeued it)."""
        if task.agent is not None:
            self.services[task.agent].remove(task.request_id, now)
            self._reschedule(task.agent)
            task.agent = None

    def _finish(self, payload: tuple[str, int], now: float) -> None:
        agent, epoch = payload
        svc = self.services[agent]
        if epoch != svc.epoch:
            return          # superseded: the agent's load or speed changed since
        svc.scheduled = None
        rid = svc.pop(now)
        self._reschedule(agent)
        task = self.tasks[rid]
        task.agent = None
        success = task.fail_draw >= self.fail_rate.get(agent, 0.0)
        if task.replica in self.crashed:
            # the agent finished it, but the replica that would deliver the
            # result (and release the slot) is gone
            self.result.failed += 1
            self.result.lost_in_crash += 1
            self._end(task, now)
            return
        if self.members:
            self.members[task.replica].release_resources(rid, success=success,
                                                         duration_s=now - task.began)
        else:
            self.arm.release_resources(rid, success=success, duration_s=now - task.began)
        self._end(task, now)
        e2e = now - task.submitted_at
        self.opt.record_metric(MetricType.LATENCY, e2e * 1000.0, source="scheduler",
                               timestamp=now)
        if success:
            self.result.completed += 1
            self._tally(task, _COMPLETED)
            if task.submitted_at >= self.sc.warmup_s:
                self.e2e.append(e2e)
                if task.tenant >= 0:
                    self.t_e2e[task.tenant].append(e2e)
            self.completed_window += 1
        else:
            self.result.failed += 1
            self._tally(task, _FAILED)
            self.failed_window += 1
        self._dispatch_queued(now)

    def _on_transition(self, rid: str, status: AllocationStatus, agent: str | None) -> None:
        # called from inside a manager call: only record, act after the call returns
        self.transitions.append((rid, status, agent))

    def _dispatch_queued(self, now: float) -> None:
        """Start every queued request the manager has since allocated, or end it."""
        pending, self.transitions = self.transitions, []
        for rid, status, agent in pending:
            if rid not in self.queued:
                continue        # e.g. moved by failover and dispatched in the same call
            del self.queued[rid]
            task = self.tasks[rid]
            if status is AllocationStatus.ALLOCATED:
                self._start(task, agent, now)
            else:
                if status is AllocationStatus.TIMED_OUT:
                    self.result.timed_out += 1
                    self._tally(task, _TIMED_OUT)
                else:
                    self.result.failed += 1
                    self._tally(task, _FAILED)
                self._end(task, now)

    def _on_failover(self, event: FailoverEvent) -> None:
        now = self.clock.now()
        self.result.failovers += 1
        for rid, new_agent in event.moved:
            task = self.tasks.get(rid)
            if task is None:
                continue
            self.result.tasks_moved += 1
            self._stop_running(task, now)
            self._start(task, new_agent, now)
        for rid in event.requeued:
            task = self.tasks.get(rid)
            if task is None:
                continue
            self._stop_running(task, now)
            self.queued[rid] = None

    def _on_bottleneck(self, event: Any) -> None:
        b = event.bottleneck
        self.bottleneck_keys.add((b.component, str(b.metric_type)))

    # -- periodic work ---------------------------------------------------------------

    def _report(self, now: float) -> None:
        total_running = 0
        for aid, svc in self.services.items():
            n = svc.n
            total_running += n
            if self.store is not None and aid not in self.silent:
                # the agent's own count: frees a crashed replica's slots
                self.store.report_agent(aid, n)
            if aid in self.silent or not self.sc.usage_reports:
                continue
            # cpu follows how busy the agent is: the share of its parallel
            # capacity in use (n / max_tasks for slots)
            busy = min(1.0, n / svc.parallelism)
            slow = self.slow.get(aid, 1.0)
            cpu = min(100.0, 8.0 + 80.0 * busy * min(slow, 1.2) + self.noise.normal(0, 2.0))
            base, per_task = self.memory[aid]
            mem = min(100.0, base + per_task * n + self.noise.normal(0, 1.0))
            # and, as an engine does, its running and waiting requests
            running = min(n, svc.parallelism)
            for k in self.live:
                self.arms[k].record_usage(aid, cpu=max(cpu, 0.0), memory=max(mem, 0.0),
                                          waiting=n - running, running=running)
        self._dispatch_queued(now)
        interval = self.sc.report_interval_s
        self.opt.record_metric(MetricType.THROUGHPUT, self.completed_window / interval,
                               source="scheduler", timestamp=now)
        ended = self.completed_window + self.failed_window
        if ended:
            self.opt.record_metric(MetricType.ERROR_RATE, 100.0 * self.failed_window / ended,
                                   source="scheduler", timestamp=now)
        self.completed_window = self.failed_window = 0
        slots = sum(self.max_tasks.values())
        queue = len(self.queued)
        self.result.peak_queue = max(self.result.peak_queue, queue)
        self.timeline["t"].append(now)
        self.timeline["queue"].append(float(queue))
        self.timeline["utilization"].append(100.0 * total_running / slots)
        if now < self.duration or self.tasks:
            self._push(now + interval, _REPORT)

    def _tick(self, now: float) -> None:
        if self.members:
            for k in self.live:
                self.members[k].tick()
        else:
            self.arm.tick()
        self.opt.tick()
        self._dispatch_queued(now)
        self.result.peak_queue = max(self.result.peak_queue, len(self.queued))
        if self.progress is not None:
            self.progress(now)
        if now < self.duration or self.tasks:
            self._push(now + self.sc.tick_interval_s, _TICK)

    def _sync(self, now: float) -> None:
        for k in self.live:
            self.members[k].sync()
        self._dispatch_queued(now)
        if now < self.duration or self.tasks:
            self._push(now + self.sc.sync_interval_s, _SYNC)

    def _crash(self, k: int, now: float) -> None:
        """Replica ``k`` stops: its queued requests are lost with it; what it
        started runs on (its slots stay leased until the store frees them)."""
        if k in self.crashed or len(self.live) <= 1:
            return
        self.crashed.add(k)
        self.live.remove(k)
        self._dispatch_queued(now)
        for rid in [r for r in self.queued if self.tasks[r].replica == k]:
            del self.queued[rid]
            self.result.failed += 1
            self.result.lost_in_crash += 1
            self._end(self.tasks[rid], now)

    def _fault(self, f: Any, now: float) -> None:
        if f.kind == "replica_crash":
            if self.members:
                self._crash(f.replica, now)
            return
        svc = self.services[f.agent]
        if f.kind == "slow":
            self.slow[f.agent] = f.factor
            svc.set_slowdown(f.factor, now)
            self._reschedule(f.agent)
        elif f.kind == "silent":
            self.silent.add(f.agent)
            svc.stop(now)
            self._reschedule(f.agent)
        elif f.kind == "failing":
            self.fail_rate[f.agent] = f.failure_rate

    def _snapshot_health(self) -> None:
        analysis = self.opt.analyze()
        r = self.result
        r.health_score = float(analysis.health_score)
        r.recommendations = [f"[{rec.priority}] {rec.component}: {rec.title} -- "
                             f"{rec.description}" for rec in analysis.recommendations]
        cap = self.arm.analyze_capacity()
        r.capacity_action = str(cap.action)
        r.desired_agents = int(cap.desired_agents)

    # -- main loop ----------------------------------------------------------------------

    def run(self) -> SimulationResult:
        wall = time.perf_counter()
        self.setup()
        # a hard stop far past any deadline guarantees termination
        longest_timeout = float(self.work.timeout_s.max()) if len(self.work) else 0.0
        horizon = self.duration + 10 * max(longest_timeout, self.sc.stale_after_s) \
            + 100 * max(self.work.mean_work_s, self.sc.arrivals.mean_task_s)
        arrivals = self.work.arrival_s.tolist()
        n = len(arrivals)
        i = 0
        events = self.events
        clock = self.clock
        now = 0.0
        while True:
            t_arrive = arrivals[i] if i < n else math.inf
            if events and events[0][0] <= t_arrive:
                at, kind, _, payload = heapq.heappop(events)
                if at > horizon:
                    break
                if at > now:
                    self.area += len(self.tasks) * (at - now)
                    now = clock.jump(at)
                if kind == _DONE:
                    self._finish(payload, at)
                elif kind == _REPORT:
                    self._report(at)
                elif kind == _TICK:
                    self._tick(at)
                elif kind == _SNAPSHOT:
                    self._snapshot_health()
                elif kind == _SYNC:
                    self._sync(at)
                else:
                    self._fault(payload, at)
            elif i < n:
                if t_arrive > now:
                    self.area += len(self.tasks) * (t_arrive - now)
                    now = clock.jump(t_arrive)
                self._arrive(i, t_arrive)
                i += 1
            else:
                break
        self._close(time.perf_counter() - wall)
        return self.result

    def _close(self, wall_s: float) -> None:
        r = self.result
        now = self.clock.now()
        # whatever is still open after the horizon (only possible with a
        # scenario whose work never ends) is counted as failed, never dropped
        for task in list(self.tasks.values()):
            r.failed += 1
            self._tally(task, _FAILED)
            self._end(task, now)
        if self.waits:
            r.wait_mean_s = float(np.mean(self.waits))
            r.wait_p50_s, r.wait_p95_s, r.wait_p99_s = (
                float(x) for x in np.quantile(self.waits, [0.5, 0.95, 0.99]))
        if self.e2e:
            r.e2e_mean_s = float(np.mean(self.e2e))
            r.e2e_p50_s, r.e2e_p99_s = (float(x) for x in np.quantile(self.e2e, [0.5, 0.99]))
        elapsed = max(now, 1e-9)
        busy: dict[str, float] = {}
        for aid, svc in self.services.items():
            svc.advance(now)
            busy[aid] = svc.busy_area
        loads = [busy[a] / (self.max_tasks[a] * elapsed) for a in busy]
        r.fairness = jain_index(loads)
        r.bottlenecks_found = len(self.bottleneck_keys)
        stats = self.arm.get_allocation_statistics()
        r.ejections = sum(p.ejection_count for arm in self.arms
                          for p in arm.monitor.get_all_agent_resources())
        r.rate_limit_final = math.nan if stats.rate_limit is None else float(stats.rate_limit)
        r.mean_in_system = self.area / elapsed
        r.arrival_rate_per_s = r.submitted / elapsed
        r.sojourn_mean_s = self.sojourn_sum / r.submitted if r.submitted else math.nan
        r.simulated_s = now
        r.wall_s = wall_s
        r.timeline = self.timeline
        r.e2e_samples = self.e2e
        r.agent_busy_s = busy
        r.tenants = {name: self._tenant_row(k) for k, name in enumerate(self.tenant_names)}

    def _tenant_row(self, k: int) -> dict[str, Any]:
        completed, timed_out, rejected, failed = self.t_outcomes[k]
        row: dict[str, Any] = {"submitted": self.t_submitted[k], "completed": completed,
                               "timed_out": timed_out, "rejected": rejected, "failed": failed}
        waits, e2e = self.t_waits[k], self.t_e2e[k]
        qs = [round(float(x), 6) for x in np.quantile(waits, [0.5, 0.95, 0.99])] \
            if waits else [None, None, None]
        row["wait_p50_s"], row["wait_p95_s"], row["wait_p99_s"] = qs
        row["e2e_mean_s"] = round(float(np.mean(e2e)), 6) if e2e else None
        return row


def run_simulation(scenario: Scenario, strategy: LoadBalancingStrategy | str, seed: int = 0,
                   progress: Callable[[float], None] | None = None,
                   trace: Trace | None = None) -> SimulationResult:
    """Run one strategy on ``scenario``; deterministic for a given seed.

    ``trace`` (a :class:`~arbiter_core.simulate.Trace`) replaces the scenario's
    generated arrivals with the trace's requests.
    """
    strat = LoadBalancingStrategy(strategy)
    return _Simulation(scenario, strat, seed, progress, trace).run()


def compare_strategies(scenario: Scenario, strategies: Iterable[LoadBalancingStrategy | str],
                       seed: int = 0, progress: Callable[[str, float], None] | None = None,
                       trace: Trace | None = None) -> dict[str, SimulationResult]:
    """Run every strategy on the same scenario and seed (one process)."""
    out: dict[str, SimulationResult] = {}
    for s in strategies:
        name = LoadBalancingStrategy(s).value
        cb = None if progress is None else (lambda t, n=name: progress(n, t))
        out[name] = run_simulation(scenario, s, seed, cb, trace)
    return out


def progress_printer(total_s: float, n_strategies: int) -> Callable[[str, float], None]:
    """A one-line progress bar on stderr (used only when stderr is a terminal)."""
    done: dict[str, float] = {}

    def show(name: str, t: float) -> None:
        done[name] = min(t / total_s, 1.0)
        frac = sum(done.values()) / n_strategies
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r  simulating [{bar:<30}] {frac * 100:5.1f}%  {name:<15}")
        sys.stderr.flush()

    return show
