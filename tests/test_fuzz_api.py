"""Hostile input to the public API (issue 16): random calls with NaN, inf,
huge and negative numbers, wrong types, unknown and duplicate ids, empty and
enormous strings, interleaved with valid work.

Every call may only raise what is documented (ValueError, TypeError,
KeyError; NoAgentAvailableError from ``select_agent``), a refused call
changes nothing that is counted, and after every step the accounting holds:
the identities of AllocationStatistics, the allocation core's own invariants,
per-agent task counts against the allocator's lists, per-tenant totals against
the global ones, bounded queues, histories and rings, and no NaN stored.

Example counts follow the hypothesis profile (tests/conftest.py);
``ARBITER_FUZZ_EXAMPLES`` raises them for the sanitizer run and ``make soak``.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from _hostile import (
    COUNTS,
    ENORMOUS,
    RING,
    call,
    examples,
    names,
    numbers,
    small_ints,
    timestamps,
)
from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    AllocationStatus,
    LoadBalancingStrategy,
    ManualClock,
    MetricRing,
    MetricType,
    NoAgentAvailableError,
    OptimizerConfig,
    RateLimitConfig,
    ResourceManagerConfig,
    RuntimeOptimizer,
    TaskPriority,
)
from arbiter_core._ringbuf import SCAN_COLUMNS, WIN_COLUMNS

STEPS = 50


def fuzz_settings(default: int) -> settings:
    return settings(max_examples=examples(default), stateful_step_count=STEPS, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                    derandomize=False)


def _huge_valid_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 100_000 < v < 2**31


#: hostile values for sizes (max_metrics, max_queue, ...): everything but a
#: huge valid count, which is taken at its word (max_metrics=10**9 allocates two
#: rings of 24 GB: the OOM killer, not a test, answers; RELIABILITY.md, section 4)
sizes = numbers.filter(lambda v: not _huge_valid_count(v))


def either(valid, hostile=numbers, p_valid: int = 3):
    """Mostly valid values, sometimes hostile ones (valid work must happen)."""
    return st.one_of(*([valid] * p_valid), hostile)


AGENTS = [f"g{i}" for i in range(6)]
agent_ids = either(st.sampled_from(AGENTS), names)
priorities = either(st.sampled_from(list(TaskPriority)) | st.integers(0, 100), numbers)
tenant_names = either(st.sampled_from(["default", "acme", "zeta"]), names)
strategies = either(st.sampled_from(list(LoadBalancingStrategy)),
                    st.sampled_from(["round_robin", "nope", "", None, 3]))


# ---------------------------------------------------------------------------
# the manager, its allocator and its monitor


class ManagerFuzz(RuleBasedStateMachine):

    @initialize(strategy=st.sampled_from(list(LoadBalancingStrategy)),
                limited=st.booleans())
    def setup(self, strategy, limited):
        self.clock = ManualClock(start=1000.0)
        cfg = ResourceManagerConfig(
            seed=5, max_queue=12, load_balancing_strategy=strategy, stale_after_s=30.0,
            rate_limit=RateLimitConfig(max_requests=40, window_s=10.0) if limited else None)
        self.arm = AdaptiveResourceManager(cfg, clock=self.clock)
        self.alloc = self.arm.allocator
        self.submitted = 0
        self.rids: list[str] = []
        self.events = 0
        self.arm.on_failover(lambda e: setattr(self, "events", self.events + 1))

    def _rid(self, data) -> object:
        if self.rids and data.draw(st.booleans()):
            return data.draw(st.sampled_from(self.rids))
        return data.draw(either(st.sampled_from(["r-new", "r0"]), names, 1))

    # -- agents ------------------------------------------------------------------

    @rule(agent=agent_ids, max_tasks=either(st.integers(1, 3), small_ints),
          weight=either(st.floats(0.1, 5.0)), memory=either(st.floats(0.0, 4000.0)),
          cpu=either(st.floats(1.0, 100.0)))
    def register(self, agent, max_tasks, weight, memory, cpu):
        before = len(self.arm.monitor)
        ok, _ = call(self.arm.register_agent, agent, max_tasks, weight,
                     memory_mb=memory, cpu_percent=cpu)
        assert len(self.arm.monitor) == before + ok

    @rule(agent=agent_ids)
    def remove(self, agent):
        before = len(self.arm.monitor)
        ok, _ = call(self.arm.remove_agent, agent)
        assert len(self.arm.monitor) == before - ok

    @rule(agent=agent_ids, cpu=either(st.floats(0, 100)), memory=either(st.floats(0, 100)),
          network=either(st.none()), ts=st.one_of(st.none(), st.none(), timestamps))
    def report(self, agent, cpu, memory, network, ts):
        call(self.arm.record_usage, agent, cpu, memory, network, ts)

    @rule(agent=agent_ids, value=either(st.integers(1, 4), small_ints),
          which=st.sampled_from(["set_max_tasks", "set_weight", "eject", "restore_agent",
                                 "set_offline", "health", "get_agent_resources"]))
    def monitor_call(self, agent, value, which):
        mon = self.arm.monitor
        if which in ("restore_agent", "health", "get_agent_resources", "set_offline"):
            call(getattr(mon if which != "restore_agent" else self.arm, which), agent)
        elif which == "eject":
            call(mon.eject, agent, value)
        else:
            call(getattr(mon, which), agent, value)

    # -- requests ----------------------------------------------------------------

    @rule(data=st.data(), task=either(st.just("t"), names),
          priority=priorities, timeout=either(st.sampled_from([5.0, 60.0])),
          tenant=tenant_names, memory=either(st.sampled_from([0.0, 500.0, 3000.0])),
          movable=either(st.booleans(), numbers, 5),
          exclude=either(st.none(), st.sampled_from([{"g1"}, ["g2", "ghost"], "g1", [3]]), 2),
          requested_at=either(st.none(), timestamps, 5),
          prefix=either(st.none() | st.lists(st.integers(0, 6), max_size=5), numbers, 4),
          affinity_key=either(st.none() | st.sampled_from(["s1", "s2"]), numbers, 4))
    def allocate(self, data, task, priority, timeout, tenant, memory, movable, exclude,
                 requested_at, prefix, affinity_key):
        rid = self._rid(data)
        kwargs = {"priority": priority, "timeout_s": timeout, "tenant": tenant,
                  "movable": movable, "exclude": exclude, "requested_at": requested_at,
                  "required_resources": {"memory_mb": memory} if memory else None,
                  "prefix": prefix, "affinity_key": affinity_key}
        ok, req = call(AllocationRequest, rid, task, **kwargs)
        if not ok:
            return
        before = self.alloc.total_requests
        ok, res = call(self.arm.allocate_resources, req)
        if ok:
            self.submitted += 1
            assert res.request_id == rid
            if isinstance(rid, str) and rid not in self.rids:
                self.rids.append(rid)
        else:
            assert self.alloc.total_requests == before, "a refused request was counted"

    @rule(agent=agent_ids, stored=either(st.lists(st.integers(0, 6), max_size=4), numbers, 4),
          evicted=either(st.lists(st.integers(0, 6), max_size=2), numbers, 4))
    def report_cache(self, agent, stored, evicted):
        call(self.arm.report_cache, agent, stored, evicted)

    @rule(data=st.data(), success=either(st.booleans(), numbers),
          duration=either(st.none() | st.floats(0, 10), numbers))
    def release(self, data, success, duration):
        call(self.arm.release_resources, self._rid(data), success, duration)

    @rule(data=st.data(), which=st.sampled_from(["cancel", "status", "is_movable",
                                                 "detach", "withdraw"]))
    def request_call(self, data, which):
        rid = self._rid(data)
        if which == "cancel":
            call(self.arm.cancel, rid)
        elif which == "status":
            call(self.arm.allocation_status, rid)
        else:
            call(getattr(self.alloc, which), rid)

    @rule(data=st.data(), to=either(st.none() | st.sampled_from(AGENTS), names))
    def move(self, data, to):
        call(self.alloc.move, self._rid(data), to)

    @rule(agent=agent_ids, backup=either(st.none() | st.sampled_from(AGENTS), names, 2))
    def failover(self, agent, backup):
        call(self.arm.handle_failover, agent, backup)

    @rule(agent=agent_ids)
    def active_on(self, agent):
        ok, ids = call(self.alloc.active_on, agent)
        if ok:
            assert len(set(ids)) == len(ids)

    # -- tenants, config, time --------------------------------------------------------

    @rule(tenant=tenant_names, weight=either(st.floats(0.1, 4.0)),
          max_active=either(st.none() | st.integers(0, 3), small_ints, 2),
          max_queued=either(st.none() | st.integers(0, 3), small_ints, 2),
          rate=either(st.none() | st.floats(0.0, 5.0), numbers, 2))
    def tenant_policy(self, tenant, weight, max_active, max_queued, rate):
        call(self.arm.set_tenant_policy, tenant, weight=weight, max_active=max_active,
             max_queued=max_queued, rate_per_s=rate)

    @rule(tenant=tenant_names)
    def tenant_stats(self, tenant):
        call(self.arm.get_tenant_statistics, tenant)

    @rule(field=st.sampled_from(["max_queue", "stale_after_s", "aging_per_s",
                                 "load_balancing_strategy", "max_allocation_decision_s",
                                 "history_size", "rate_limit", "max_agents", "bogus",
                                 "monitoring_interval_s", "enable_auto_failover"]),
          value=st.one_of(sizes, strategies))
    def update_config(self, field, value):
        call(self.arm.update_config, **{field: value})

    @rule(request=st.one_of(st.none(), numbers))
    def select(self, request):
        call(self.arm.balancer.select_agent, request,
             allowed=(ValueError, TypeError, KeyError, NoAgentAvailableError))

    @rule(count=st.one_of(st.none(), small_ints))
    def read(self, count):
        call(self.arm.get_failover_history, count)
        self.arm.get_pool_statistics()
        self.arm.get_health_status()
        self.arm.get_load_distribution()
        a = self.arm.analyze_capacity()
        assert math.isfinite(a.utilization_percent) and a.desired_agents >= 0
        p = a.predicted_needs
        assert p is not None and all(v is None or math.isfinite(v) for v in (
            p.utilization_percent, p.trend_percent_per_s, p.lower_percent, p.upper_percent))

    @rule(seconds=either(st.sampled_from([0.0, 1.0, 7.0, 31.0, 400.0]), numbers))
    def advance_and_tick(self, seconds):
        call(self.clock.advance, seconds)
        report = self.arm.tick()
        assert report.timed_out >= 0 and report.dispatched >= 0

    # -- after every step ----------------------------------------------------------------

    @invariant()
    def accounting(self):
        COUNTS["fuzz steps"] += 1
        alloc = self.alloc
        s = alloc.get_allocation_statistics()
        assert s.allocated == s.active + s.released
        assert s.total_requests == s.queued + s.allocated + s.rejected + s.timed_out + s.failed
        assert s.total_requests == self.submitted
        assert 0 <= s.queued <= alloc.max_queue or s.queued <= 12
        assert alloc._check_invariants()
        assert alloc.records_in_use <= s.queued + s.active + alloc.history
        aff = self.arm.monitor.affinity_stats()
        assert aff["violations"] == 0 and aff["entries"] <= aff["max_index_blocks"]
        for q in (s.wait_p50_s, s.wait_p99_s, s.decision_p99_s):
            assert q is None or (math.isfinite(q) and q >= 0)
        held = 0
        for p in self.arm.monitor.get_all_agent_resources():
            on = alloc.active_on(p.agent_id)
            assert p.current_task_count == len(on) <= p.max_task_capacity, p
            held += len(on)
            for rid in on:
                ex = alloc.status(rid)
                assert ex.status is AllocationStatus.ALLOCATED and ex.agent_id == p.agent_id
        assert held <= s.active
        totals = [alloc.get_tenant_statistics(t) for t in alloc.tenants()]
        if totals:
            assert sum(t.total_requests for t in totals) == s.total_requests
            assert sum(t.active for t in totals) == s.active
            assert sum(t.queued for t in totals) == s.queued
        pool = self.arm.get_pool_statistics()
        assert 0 <= pool.available_task_slots <= pool.total_task_slots
        assert len(self.arm.get_failover_history()) <= self.arm.config.history_size


TestManagerFuzz = ManagerFuzz.TestCase
TestManagerFuzz.settings = fuzz_settings(60)


# ---------------------------------------------------------------------------
# the optimizer and its performance monitor

metric_types = either(st.sampled_from(list(MetricType)) | st.sampled_from(["cpu", "latency"]),
                      st.one_of(names, st.sampled_from(["CPU", "gpu"])))
sources = either(st.sampled_from(["api", "db", "system"]), names)


def _collector(kind: str):
    def fn():
        if kind == "raises":
            raise RuntimeError("collector exploded")
        if kind == "garbage":
            return 42
        if kind == "bad sample":
            return [("cpu", math.nan, "host"), ("nope", 1.0, "host"), ("cpu", 1.0)]
        return [(MetricType.CPU, 50.0, "host"), ("latency", 12.0, "api")]
    return fn


class OptimizerFuzz(RuleBasedStateMachine):

    @initialize(max_metrics=st.sampled_from([1, 7, 64]), max_series=st.sampled_from([1, 4, 50]))
    def setup(self, max_metrics, max_series):
        self.clock = ManualClock(start=100.0)
        self.opt = RuntimeOptimizer(OptimizerConfig(max_metrics=max_metrics,
                                                    max_series=max_series,
                                                    analysis_window_s=60.0, history_size=5),
                                    clock=self.clock)
        self.mon = self.opt.monitor
        self.recorded_total = 0

    @rule(mt=metric_types, value=either(st.floats(0, 2000)), source=sources,
          ts=st.one_of(st.none(), st.none(), timestamps))
    def record(self, mt, value, source, ts):
        call(self.opt.record_metric, mt, value, source, ts)

    @rule(mt=metric_types, source=sources, value=either(st.floats(0, 2000)))
    def record_via_handle(self, mt, source, value):
        ok, h = call(self.mon.series, mt, source)
        if ok:
            call(h.record, value)

    @rule(cache=sources, hit=either(st.booleans(), numbers),
          latency=either(st.none() | st.floats(0, 50), numbers),
          ts=st.one_of(st.none(), st.none(), timestamps))
    def cache_access(self, cache, hit, latency, ts):
        call(self.opt.record_cache_access, cache, hit, latency, ts)

    @rule(start=timestamps, end=timestamps, mt=st.one_of(st.none(), metric_types),
          source=st.one_of(st.none(), sources), count=small_ints)
    def query(self, start, end, mt, source, count):
        ok, batch = call(self.mon.get_metrics, start, end, mt, source)
        if ok:
            ts = np.asarray(batch.timestamps)
            assert np.all(np.diff(ts) >= 0), "get_metrics out of time order"
        call(self.mon.get_latest_metrics, count, mt)
        call(self.mon.stats, mt, source if source is not None else "system")

    @rule(older=numbers)
    def clear(self, older):
        call(self.mon.clear_metrics, older)

    @rule(field=st.sampled_from(["max_metrics", "max_series", "analysis_window_s",
                                 "history_size", "hysteresis_pct", "resolve_after",
                                 "analysis_interval_s", "enable_trend_analysis", "bogus",
                                 "retention_s", "min_data_points_for_trend"]),
          value=either(st.sampled_from([1, 3, 10, 30.0]), sizes))
    def update_config(self, field, value):
        call(self.opt.update_config, **{field: value})

    @rule(kind=st.sampled_from(["raises", "garbage", "bad sample", "good", "not callable"]))
    def collector(self, kind):
        fn = 42 if kind == "not callable" else _collector(kind)
        call(self.opt.add_collector, fn)

    @rule(seconds=either(st.sampled_from([0.0, 1.0, 10.0, 100.0]), numbers))
    def analyze_or_tick(self, seconds):
        call(self.clock.advance, seconds)
        a = self.opt.analyze()
        assert 0.0 <= a.health_score <= 100.0
        for b in a.bottlenecks:
            assert math.isfinite(b.current_value) and b.occurrence_count >= 1
        self.opt.tick()

    @invariant()
    def bounded(self):
        COUNTS["fuzz steps"] += 1
        mon, cfg = self.mon, self.opt.config
        assert mon.metric_count <= mon.max_metrics == cfg.max_metrics
        assert len(mon.series_names) <= cfg.max_series
        ts, keys, vals = mon.ring.snapshot()
        assert np.all(np.isfinite(vals)) and np.all(np.isfinite(ts))
        assert np.all((keys >= 0) & (keys < max(1, len(mon.series_names))))
        assert len(self.opt.get_analysis_history()) <= cfg.history_size
        h = self.opt.get_health_status()
        assert h.metrics_collected >= self.recorded_total
        self.recorded_total = h.metrics_collected


TestOptimizerFuzz = OptimizerFuzz.TestCase
TestOptimizerFuzz.settings = fuzz_settings(40)


# ---------------------------------------------------------------------------
# the ring, straight


keys = either(st.integers(0, 3), st.one_of(small_ints, st.just([0, 1]), st.just(np.array([2]))))
bounds = st.one_of(st.none(), st.floats(-10, 1e3), numbers)


def arrays(draw_n):
    return st.one_of(
        st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=draw_n),
        st.lists(st.integers(-5, 5), max_size=draw_n),
        st.sampled_from([np.zeros((2, 2)), np.array(["a"]), np.array([], dtype=np.int8),
                         np.arange(3, dtype=np.int32), [[1.0]], "abc", None, 3.0]),
    )


class RingFuzz(RuleBasedStateMachine):

    @initialize(capacity=st.sampled_from([1, 2, 5, 16]))
    def setup(self, capacity):
        self.ring = MetricRing(capacity)
        self.t = 0.0
        self.total = 0

    @rule(key=keys, value=either(st.floats(-100, 100)), advance=st.floats(0, 3),
          explicit=st.booleans(), ts=timestamps)
    def record(self, key, value, advance, explicit, ts):
        self.t += advance
        call(self.ring.record, key, value, self.t if explicit else ts, allowed=RING)

    @rule(ks=st.one_of(keys, arrays(6)), vs=arrays(6), ts=st.one_of(st.none(), arrays(6),
                                                                       st.floats(0, 10)))
    def record_many(self, ks, vs, ts):
        call(self.ring.record_many, ks, vs, ts, allowed=RING)

    @rule(key=st.one_of(st.none(), keys), since=bounds, until=bounds,
          q=either(st.floats(0, 1) | st.lists(st.floats(0, 1), max_size=3), numbers),
          threshold=numbers, above=either(st.booleans(), numbers), count=small_ints)
    def queries(self, key, since, until, q, threshold, above, count):
        ok, snap = call(self.ring.snapshot, since, until, key, allowed=RING)
        if ok:
            ts, _, vals = snap
            assert np.all(np.diff(ts) >= 0) and np.all(np.isfinite(vals))
        ok, stats = call(self.ring.stats, key, since, until, allowed=RING)
        if ok:
            assert stats.count >= 0 and (stats.count == 0 or stats.min <= stats.max)
        call(self.ring.quantile, key, q, since, until, allowed=RING)
        ok, n = call(self.ring.count_beyond, key, threshold, above, since, until,
                     allowed=RING)
        assert not ok or n >= 0
        call(self.ring.slope, key, since, until, allowed=RING)
        call(self.ring.latest, count, key, allowed=RING)

    @rule(nkeys=st.integers(0, 5), mismatch=st.sampled_from([None, "wm_skip", "out", "above"]),
          since=bounds, until=bounds, q=numbers)
    def grouped(self, nkeys, mismatch, since, until, q):
        n = nkeys + (mismatch is not None)
        wm_ts = np.full(nkeys, -np.inf)
        wm_skip = np.zeros(n if mismatch == "wm_skip" else nkeys, dtype=np.int64)
        thr = np.full(nkeys, 10.0)
        above = np.ones(n if mismatch == "above" else nkeys, dtype=np.uint8)
        out = np.zeros((n if mismatch == "out" else nkeys, SCAN_COLUMNS))
        call(self.ring.group_scan, since, until, wm_ts, wm_skip, thr, above, out,
             allowed=RING)
        win = np.zeros((n if mismatch == "out" else nkeys, WIN_COLUMNS))
        mask = np.ones(nkeys, dtype=np.uint8)
        call(self.ring.group_window, since, until, mask, thr,
             above[:nkeys] if mismatch != "above" else above, q, win, allowed=RING)

    @rule(ts=numbers)
    def clear_before(self, ts):
        call(self.ring.clear_before, ts, allowed=RING)

    @invariant()
    def bounded(self):
        COUNTS["fuzz steps"] += 1
        r = self.ring
        assert 0 <= len(r) <= r.capacity
        assert r.total_recorded >= self.total
        self.total = r.total_recorded
        ts, _, vals = r.snapshot()
        assert ts.size == len(r) and np.all(np.diff(ts) >= 0)
        assert np.all(np.isfinite(vals)) and np.all(np.isfinite(ts))


TestRingFuzz = RingFuzz.TestCase
TestRingFuzz.settings = fuzz_settings(40)


def test_enormous_names_are_refused_naming_the_limit():
    """Names have a documented size limit (RELIABILITY.md): agent ids, request
    and task ids, tenants, metric sources and cache ids."""
    arm = AdaptiveResourceManager(clock=ManualClock())
    opt = RuntimeOptimizer(clock=ManualClock())
    for fn, args in [(arm.register_agent, (ENORMOUS,)),
                     (AllocationRequest, (ENORMOUS, "t")),
                     (AllocationRequest, ("r", ENORMOUS)),
                     (AllocationRequest, ("r", "t", 50, 1.0, None, None, None, True, None,
                                          ENORMOUS)),
                     (opt.record_metric, ("cpu", 1.0, ENORMOUS)),
                     (opt.record_cache_access, (ENORMOUS, True))]:
        ok, exc = call(fn, *args)
        assert not ok and isinstance(exc, ValueError), fn
        assert "characters" in str(exc) and len(str(exc)) < 500, str(exc)[:500]
    assert len(arm.monitor) == 0 and opt.monitor.series_names == ()
