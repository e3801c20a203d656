"""Discrete-event simulation of a scheduler built on arbiter_core.

The simulation drives the *real* :class:`AdaptiveResourceManager` and
:class:`RuntimeOptimizer` on a :class:`ManualClock`: arrivals, task
completions, usage reports and maintenance ticks are events in a heap, the
clock jumps from one to the next, and nothing sleeps.  A run is
deterministic for a given scenario, strategy and seed.

What the simulator plays (the manager only sees the calls a real scheduler
would make):

* **agents** run the tasks the manager assigns, each taking
  ``lognormal(mean_task_s) / speed`` seconds, and report cpu/memory usage
  every ``report_interval_s``;
* **faults**: a *slow* agent takes ``factor`` times longer; a *silent* agent
  stops reporting and never finishes what it holds (the manager marks it
  OFFLINE after ``stale_after_s`` and fails its work over); a *failing* agent
  fails tasks (the manager ejects it after consecutive failures);
* **the scheduler** submits requests, releases them when their task ends
  (``success=False`` for a failed task) and restarts moved tasks after a
  failover.
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..clock import ManualClock
from ..optimization import OptimizerConfig, RuntimeOptimizer
from ..resources import (
    AdaptiveResourceManager,
    AllocationRequest,
    FailoverEvent,
    RateLimitConfig,
    ResourceManagerConfig,
)
from ..scenario import Scenario
from ..types import AllocationStatus, LoadBalancingStrategy, MetricType, TaskPriority

__all__ = ["SimulationResult", "compare_strategies", "jain_index", "progress_printer", "run_simulation"]

_PRIORITY = {
    "low": TaskPriority.LOW,
    "medium": TaskPriority.MEDIUM,
    "high": TaskPriority.HIGH,
    "critical": TaskPriority.CRITICAL,
}

# event kinds, ordered so that simultaneous events resolve deterministically:
# completions free slots before new arrivals look for one
_DONE, _FAULT, _REPORT, _TICK, _SNAPSHOT, _ARRIVE = range(6)


def jain_index(loads: Iterable[float]) -> float:
    """Jain's fairness index (sum x)^2 / (n * sum x^2): 1.0 is perfectly even."""
    x = np.asarray(list(loads), dtype=float)
    if x.size == 0 or not np.any(x):
        return 1.0
    return float(x.sum() ** 2 / (x.size * np.square(x).sum()))


@dataclass
class SimulationResult:
    """The outcome of one strategy on one scenario (all counts add up).

    ``submitted = completed + timed_out + rejected + failed``, where *failed*
    counts requests the manager failed and tasks that ran and failed.
    """

    strategy: str
    submitted: int = 0
    completed: int = 0
    timed_out: int = 0
    rejected: int = 0
    failed: int = 0
    wait_p50_s: float = math.nan
    wait_p95_s: float = math.nan
    wait_p99_s: float = math.nan
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
    simulated_s: float = 0.0
    wall_s: float = 0.0
    recommendations: list[str] = field(default_factory=list)
    # time series for plots (not part of the table)
    timeline: dict[str, list[float]] = field(default_factory=dict, repr=False)
    e2e_samples: list[float] = field(default_factory=list, repr=False)
    agent_busy_s: dict[str, float] = field(default_factory=dict, repr=False)

    def table_row(self) -> dict[str, Any]:
        """The JSON/table view: every field but the name and the plot series."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in _NOT_IN_TABLE}
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = None if math.isnan(v) else round(v, 6)
        return out


_NOT_IN_TABLE = frozenset({"strategy", "timeline", "e2e_samples", "agent_busy_s"})


@dataclass
class _Task:
    request_id: str
    priority: str
    work_s: float
    submitted_at: float
    fail_draw: float = 0.0  # uniform draw fixed at arrival: fails where failure rate > it
    agent: str | None = None
    started_at: float = math.nan
    epoch: int = 0        # bumps when the task is moved: stale completions are ignored


class _Simulation:
    def __init__(self, scenario: Scenario, strategy: LoadBalancingStrategy, seed: int,
                 progress: Callable[[float], None] | None) -> None:
        self.sc = scenario
        self.strategy = strategy
        # independent streams: the arrivals (times, priorities, work, failure
        # draws) are identical for every strategy; only the noise differs
        arrival_ss, noise_ss = np.random.SeedSequence(seed).spawn(2)
        self.rng = np.random.default_rng(arrival_ss)
        self.noise = np.random.default_rng(noise_ss)
        self.clock = ManualClock(start=0.0)
        self.progress = progress
        rate_limit = None
        if scenario.rate_limit_per_s is not None:
            burst = scenario.rate_limit_burst or max(1, int(scenario.rate_limit_per_s))
            rate_limit = RateLimitConfig(max_requests=burst,
                                         window_s=burst / scenario.rate_limit_per_s
                                         if scenario.rate_limit_per_s > 0 else 1.0,
                                         adaptive=True)
        self.arm = AdaptiveResourceManager(
            config=ResourceManagerConfig(
                load_balancing_strategy=strategy,
                rate_limit=rate_limit,
                stale_after_s=scenario.stale_after_s,
                max_queue=scenario.max_queue,
                # the simulator ticks every tick_interval_s; analyse capacity
                # every 15 s so the run sees the recommendation move
                capacity_analysis_interval_s=15.0,
                seed=seed,
            ),
            clock=self.clock,
        )
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
        self.result = SimulationResult(strategy=strategy.value)
        self.events: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.tasks: dict[str, _Task] = {}
        # insertion-ordered (a dict, not a set) so runs are deterministic
        self.queued: dict[str, None] = {}
        self.transitions: list[tuple[str, AllocationStatus, str | None]] = []
        self.running: dict[str, set[str]] = {}
        self.speed: dict[str, float] = {}
        self.slow: dict[str, float] = {}
        self.silent: set[str] = set()
        self.fail_rate: dict[str, float] = {}
        self.memory: dict[str, tuple[float, float]] = {}
        self.max_tasks: dict[str, int] = {}
        self.busy_s: dict[str, float] = {}
        self.waits: list[float] = []
        self.e2e: list[float] = []
        self.bottleneck_keys: set[tuple[str, str]] = set()
        self.timeline: dict[str, list[float]] = {"t": [], "queue": [], "utilization": []}
        self.completed_window = 0
        self.failed_window = 0

    # -- setup -----------------------------------------------------------------

    def _push(self, at: float, kind: int, payload: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, kind, self.seq, payload))

    def setup(self) -> None:
        for g in self.sc.groups:
            for i in range(g.count):
                aid = f"{g.name}-{i}"
                weight = g.weight if g.weight is not None else g.max_tasks * g.speed
                self.arm.register_agent(aid, max_tasks=g.max_tasks, weight=weight)
                self.speed[aid] = g.speed
                self.memory[aid] = (g.base_memory, g.memory_per_task)
                self.max_tasks[aid] = g.max_tasks
                self.running[aid] = set()
                self.busy_s[aid] = 0.0
        self.arm.on_failover(self._on_failover)
        self.arm.allocator.transition_listener = self._on_transition
        self.opt.on_bottleneck(self._on_bottleneck)
        for f in self.sc.faults:
            self._push(f.at_s, _FAULT, f)
        self._push(0.0, _REPORT)
        # the health verdict is taken when arrivals stop, not after the drain
        # (an idle pool's throughput would read as a bottleneck)
        self._push(self.sc.duration_s, _SNAPSHOT)
        self._push(self.sc.tick_interval_s, _TICK)
        self._schedule_arrival(0.0)

    # -- arrivals ----------------------------------------------------------------

    def _rate_at(self, t: float) -> float:
        rate = self.sc.arrivals.rate_per_s
        for b in self.sc.arrivals.bursts:
            if b.start_s <= t < b.start_s + b.duration_s:
                rate *= b.factor
        return rate

    def _schedule_arrival(self, now: float) -> None:
        # thinning-free: the rate is piecewise constant, so draw from the
        # current rate and re-draw when the gap crosses a burst edge
        t = now + self.rng.exponential(1.0 / self._rate_at(now))
        edges = [e for b in self.sc.arrivals.bursts for e in (b.start_s, b.start_s + b.duration_s)
                 if now < e < t]
        if edges:
            t = min(edges)
            self._push(t, _ARRIVE, False)   # a rate change, not an arrival
            return
        if t < self.sc.duration_s:
            self._push(t, _ARRIVE, True)

    def _arrive(self, now: float) -> None:
        ar = self.sc.arrivals
        shares = np.array([p.share for p in ar.priorities])
        pc = ar.priorities[int(self.rng.choice(len(shares), p=shares / shares.sum()))]
        mu = math.log(ar.mean_task_s) - ar.task_sigma ** 2 / 2
        work = float(self.rng.lognormal(mu, ar.task_sigma)) if ar.task_sigma > 0 else ar.mean_task_s
        rid = f"r{self.result.submitted}"
        self.result.submitted += 1
        task = _Task(rid, pc.priority, work, now, fail_draw=float(self.rng.random()))
        self.tasks[rid] = task
        req = AllocationRequest(request_id=rid, task_id=f"t{self.result.submitted}",
                                priority=_PRIORITY[pc.priority], timeout_s=pc.timeout_s)
        res = self.arm.allocate_resources(req)
        if res.status is AllocationStatus.ALLOCATED:
            self._start(task, res.agent_id, now)
        elif res.status is AllocationStatus.QUEUED:
            self.queued[rid] = None
        elif res.status is AllocationStatus.REJECTED:
            self.result.rejected += 1
            del self.tasks[rid]
        else:
            self.result.failed += 1
            del self.tasks[rid]
        self._dispatch_queued(now)   # a call may expire other queued requests

    # -- running tasks -------------------------------------------------------------

    def _start(self, task: _Task, agent: str | None, now: float) -> None:
        assert agent is not None
        task.agent = agent
        task.epoch += 1
        if math.isnan(task.started_at):
            task.started_at = now
            self.waits.append(now - task.submitted_at)
        self.running[agent].add(task.request_id)
        if agent in self.silent:
            return          # a crashed agent never finishes; failover will move it
        duration = task.work_s / self.speed[agent] * self.slow.get(agent, 1.0)
        self._push(now + duration, _DONE, (task.request_id, task.epoch, now))

    def _finish(self, payload: tuple[str, int, float], now: float) -> None:
        rid, epoch, began = payload
        task = self.tasks.get(rid)
        if task is None or task.epoch != epoch or task.agent is None:
            return          # moved or already ended
        agent = task.agent
        self.running[agent].discard(rid)
        self.busy_s[agent] += now - began
        success = task.fail_draw >= self.fail_rate.get(agent, 0.0)
        self.arm.release_resources(rid, success=success, duration_s=now - began)
        del self.tasks[rid]
        e2e = now - task.submitted_at
        self.opt.record_metric(MetricType.LATENCY, e2e * 1000.0, source="scheduler",
                               timestamp=now)
        if success:
            self.result.completed += 1
            self.e2e.append(e2e)
            self.completed_window += 1
        else:
            self.result.failed += 1
            self.failed_window += 1
        self._dispatch_queued(now)

    def _on_transition(self, rid: str, status: AllocationStatus, agent: str | None) -> None:
        # called under the manager's lock: only record, act after the call returns
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
                else:
                    self.result.failed += 1
                del self.tasks[rid]

    def _on_failover(self, event: FailoverEvent) -> None:
        now = self.clock.now()
        self.result.failovers += 1
        for rid, new_agent in event.moved:
            task = self.tasks.get(rid)
            if task is None:
                continue
            self.result.tasks_moved += 1
            if task.agent is not None:
                self.running[task.agent].discard(rid)
            self._start(task, new_agent, now)
        for rid in event.requeued:
            task = self.tasks.get(rid)
            if task is None:
                continue
            if task.agent is not None:
                self.running[task.agent].discard(rid)
            task.agent = None
            task.epoch += 1
            self.queued[rid] = None

    def _on_bottleneck(self, event: Any) -> None:
        b = event.bottleneck
        self.bottleneck_keys.add((b.component, str(b.metric_type)))

    # -- periodic work ---------------------------------------------------------------

    def _report(self, now: float) -> None:
        total_running = 0
        for aid, tasks in self.running.items():
            if aid in self.silent:
                continue
            n = len(tasks)
            total_running += n
            share = n / self.max_tasks[aid]
            slow = self.slow.get(aid, 1.0)
            cpu = min(100.0, 8.0 + 80.0 * share * min(slow, 1.2) + self.noise.normal(0, 2.0))
            base, per_task = self.memory[aid]
            mem = min(100.0, base + per_task * n + self.noise.normal(0, 1.0))
            self.arm.record_usage(aid, cpu=max(cpu, 0.0), memory=max(mem, 0.0))
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
        if now < self.sc.duration_s or self.tasks:
            self._push(now + interval, _REPORT)

    def _tick(self, now: float) -> None:
        self.arm.tick()
        self.opt.tick()
        self._dispatch_queued(now)
        self.result.peak_queue = max(self.result.peak_queue, len(self.queued))
        if self.progress is not None:
            self.progress(now)
        if now < self.sc.duration_s or self.tasks:
            self._push(now + self.sc.tick_interval_s, _TICK)

    def _fault(self, f: Any, now: float) -> None:
        if f.kind == "slow":
            self.slow[f.agent] = f.factor
        elif f.kind == "silent":
            self.silent.add(f.agent)
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
        horizon = self.sc.duration_s + 10 * max(
            [p.timeout_s for p in self.sc.arrivals.priorities] + [self.sc.stale_after_s]
        ) + 100 * self.sc.arrivals.mean_task_s
        while self.events:
            at, kind, _, payload = heapq.heappop(self.events)
            if at > horizon:
                break
            if at > self.clock.now():
                self.clock.set(at)
            if kind == _DONE:
                self._finish(payload, at)
            elif kind == _ARRIVE:
                if payload:
                    self._arrive(at)
                self._schedule_arrival(at)
            elif kind == _REPORT:
                self._report(at)
            elif kind == _TICK:
                self._tick(at)
            elif kind == _SNAPSHOT:
                self._snapshot_health()
            else:
                self._fault(payload, at)
        self._close(time.perf_counter() - wall)
        return self.result

    def _close(self, wall_s: float) -> None:
        r = self.result
        # whatever is still open after the horizon (only possible with a
        # scenario whose work never ends) is counted as failed, never dropped
        for rid in list(self.tasks):
            r.failed += 1
            del self.tasks[rid]
        if self.waits:
            r.wait_p50_s, r.wait_p95_s, r.wait_p99_s = (
                float(x) for x in np.quantile(self.waits, [0.5, 0.95, 0.99]))
        if self.e2e:
            r.e2e_p50_s, r.e2e_p99_s = (float(x) for x in np.quantile(self.e2e, [0.5, 0.99]))
        elapsed = max(self.clock.now(), 1e-9)
        loads = [self.busy_s[a] / (self.max_tasks[a] * elapsed) for a in self.busy_s]
        r.fairness = jain_index(loads)
        r.bottlenecks_found = len(self.bottleneck_keys)
        stats = self.arm.get_allocation_statistics()
        r.ejections = sum(p.ejection_count for p in self.arm.monitor.get_all_agent_resources())
        r.rate_limit_final = math.nan if stats.rate_limit is None else float(stats.rate_limit)
        r.simulated_s = self.clock.now()
        r.wall_s = wall_s
        r.timeline = self.timeline
        r.e2e_samples = self.e2e
        r.agent_busy_s = self.busy_s


def run_simulation(scenario: Scenario, strategy: LoadBalancingStrategy | str, seed: int = 0,
                   progress: Callable[[float], None] | None = None) -> SimulationResult:
    """Run one strategy on ``scenario``; deterministic for a given seed."""
    strat = LoadBalancingStrategy(strategy)
    return _Simulation(scenario, strat, seed, progress).run()


def compare_strategies(scenario: Scenario, strategies: Iterable[LoadBalancingStrategy | str],
                       seed: int = 0, progress: Callable[[str, float], None] | None = None,
                       ) -> dict[str, SimulationResult]:
    """Run every strategy on the same scenario and seed."""
    out: dict[str, SimulationResult] = {}
    for s in strategies:
        name = LoadBalancingStrategy(s).value
        cb = None if progress is None else (lambda t, n=name: progress(n, t))
        out[name] = run_simulation(scenario, s, seed, cb)
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
