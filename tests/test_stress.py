"""Concurrency stress (issue 16): one test per shared object -- ring, monitor,
optimizer, manager, allocator -- with several threads and a switch interval of
one microsecond, so threads interleave between almost any two bytecodes.

Results are checked against what is possible, not just "no crash": a
query sees a state some prefix of the writes could produce (a series whose
value equals its timestamp has slope 1 and mean between min and max, counts
never exceed what was written), no sample is lost or stored under another
series, no agent is ever oversubscribed, and the books balance exactly at
the end.  tests/test_ringbuf_race.py checks each ring kernel against an exact
window under writers; tests/test_alloc_core.py has the allocate/release
hammer.  These add the other objects and mixed work.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from _hostile import COUNTS
from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    AllocationStatus,
    LoadBalancer,
    ManualClock,
    MetricRing,
    MetricType,
    OptimizerConfig,
    PerformanceMonitor,
    ResourceAllocator,
    ResourceManagerConfig,
    ResourceMonitor,
    RuntimeOptimizer,
)

A = AllocationStatus


@contextmanager
def tiny_switch_interval():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def hammer(workers: list[Callable[[], None]], checker: Callable[[], None] | None = None) -> None:
    """Run ``workers`` to completion (and ``checker`` until they end); any
    exception in any thread fails the test."""
    errors: list[BaseException] = []
    done = threading.Event()

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:
                errors.append(e)
        return run

    def check_loop():
        while not done.is_set():
            checker()

    threads = [threading.Thread(target=wrap(fn)) for fn in workers]
    chk = threading.Thread(target=wrap(check_loop)) if checker else None
    COUNTS["stress threads"] += len(threads) + (chk is not None)
    with tiny_switch_interval():
        if chk:
            chk.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        if chk:
            chk.join()
    if errors:
        raise errors[0]


# -- ring -----------------------------------------------------------------------------


def test_ring_writers_and_readers_see_only_possible_states():
    ring = MetricRing(4096)
    n_keys, per = 3, 6000

    def writer(k):
        def run():
            for i in range(per):
                t = float(i)
                ring.record(k, t, t)          # value == timestamp: slope 1, sorted
        return run

    def batch_writer():
        for i in range(0, per, 100):
            ts = np.arange(i, i + 100, dtype=np.float64)
            ring.record_many(7, ts, ts)

    def reader():
        for j in range(400):
            k = (0, 1, 2, 7)[j % 4]
            s = ring.stats(k)
            if s.count:
                assert s.min <= s.mean <= s.max and s.count <= ring.capacity
                assert s.min >= 0 and s.max < per
            if s.count > 2:
                slope = ring.slope(k)
                assert math.isnan(slope) or abs(slope - 1.0) < 1e-6, slope
            q = ring.quantile(k, 0.5)
            assert math.isnan(q) or 0 <= q < per
            ts, keys, vals = ring.snapshot(key=k)
            assert np.all(keys == k) and np.array_equal(ts, vals)
            c = ring.count_beyond(k, -1.0)
            assert 0 <= c <= ring.capacity

    hammer([writer(k) for k in range(n_keys)] + [batch_writer, reader, reader])
    assert ring.total_recorded == n_keys * per + per
    assert len(ring) == ring.capacity


# -- performance monitor ------------------------------------------------------------------


def test_monitor_interning_and_recording_from_many_threads_lose_and_mix_nothing():
    clock = ManualClock()
    mon = PerformanceMonitor(max_metrics=200_000, max_series=1000, clock=clock)
    n_threads, per = 6, 3000

    def writer(w):
        def run():
            for i in range(per):
                # every thread interns the same 20 series in a different order,
                # and the value says which series it belongs to
                s = (i * (w + 1)) % 20
                mon.record_metric(MetricType.LATENCY, float(s), source=f"svc-{s}",
                                  timestamp=float(i))
        return run

    def reader():
        for _ in range(200):
            b = mon.get_latest_metrics(50)
            for key, v in zip(b.keys, b.values):
                assert mon.series_names[key][1] == f"svc-{int(v)}"

    hammer([writer(w) for w in range(n_threads)] + [reader])
    names = mon.series_names
    assert len(names) == len(set(names)) == 20
    assert mon.metric_count == n_threads * per
    for s in range(20):
        b = mon.get_metrics(None, None, MetricType.LATENCY, f"svc-{s}")
        assert np.all(b.values == s)
    COUNTS["stress records"] += n_threads * per


# -- optimizer -----------------------------------------------------------------------------


def test_optimizer_recording_analyzing_and_reconfiguring_at_once():
    clock = ManualClock()
    opt = RuntimeOptimizer(OptimizerConfig(max_metrics=100_000, analysis_window_s=1e6),
                           clock=clock)
    per, writers = 3000, 4
    analyses = []

    def writer(w):
        def run():
            for i in range(per):
                opt.record_metric(MetricType.CPU, 95.0 if w == 0 else 10.0,
                                  source=f"w{w}", timestamp=float(i))
                opt.record_cache_access("c", True, 1.0, timestamp=float(i))
        return run

    def analyzer():
        for i in range(60):
            a = opt.analyze()
            analyses.append(a)
            assert 0.0 <= a.health_score <= 100.0
            # only the hot writer can be a bottleneck
            assert {b.component for b in a.bottlenecks} <= {"w0"}
            if i % 10 == 0:
                opt.update_config(hysteresis_pct=5.0 + i % 3, resolve_after=3 + i % 2)

    hammer([writer(w) for w in range(writers)] + [analyzer])
    final = opt.analyze()
    assert {b.component for b in final.bottlenecks} == {"w0"}
    h = opt.get_health_status()
    assert h.analyses_run == len(analyses) + 1
    assert h.metrics_collected >= writers * per
    (cs,) = final.cache_stats
    assert cs.misses == 0 and cs.hits <= writers * per
    COUNTS["stress records"] += 2 * writers * per


# -- manager: allocation, churn, failover, ticks ---------------------------------------------


def test_manager_under_churn_failover_and_ticks_never_oversubscribes_and_balances():
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=4, max_queue=100_000,
                                                        stale_after_s=1e9), clock=clock)
    for i in range(6):
        arm.register_agent(f"a{i}", max_tasks=3)
    per, n_alloc = 1200, 4
    over = []

    def allocator(w):
        def run():
            held = []
            for k in range(per):
                res = arm.allocate_resources(AllocationRequest(f"w{w}-{k}", "t", timeout_s=1e9))
                assert res.status in (A.ALLOCATED, A.QUEUED), res
                held.append(res.request_id)
                if len(held) > 3:
                    arm.release_resources(held.pop(0), success=k % 9 != 0, duration_s=0.01)
            for rid in held:
                arm.release_resources(rid)
        return run

    def churn():
        for k in range(150):
            name = f"x{k}"
            arm.register_agent(name, max_tasks=2)
            if k % 3 == 0:
                arm.handle_failover(f"a{k % 6}")
                arm.restore_agent(f"a{k % 6}")
            arm.remove_agent(name)

    def ticker():
        for _ in range(300):
            clock.advance(0.01)
            arm.tick()

    def checker():
        with arm.monitor.locked():
            over.extend(p for p in arm.monitor.get_all_agent_resources()
                        if p.current_task_count > p.max_task_capacity)
            s = arm.get_allocation_statistics()
            assert s.total_requests == s.queued + s.allocated + s.rejected + s.timed_out + \
                s.failed
            assert s.allocated == s.active + s.released

    hammer([allocator(w) for w in range(n_alloc)] + [churn, ticker], checker)
    assert not over
    s = arm.get_allocation_statistics()
    assert arm.allocator._check_invariants()
    assert s.total_requests == n_alloc * per and s.active == s.queued == 0
    # each request was released, or withdrawn by its own release while queued
    assert s.released + s.by_reason.get("cancelled", 0) == s.total_requests
    assert all(p.current_task_count == 0 for p in arm.monitor.get_all_agent_resources())
    COUNTS["stress allocations"] += n_alloc * per


# -- allocator on its own: move, withdraw, status -------------------------------------------


def test_allocator_moves_withdrawals_and_status_reads_from_many_threads():
    clock = ManualClock()
    mon = ResourceMonitor(clock=clock)
    for i in range(4):
        mon.register_agent(f"a{i}", max_tasks=4)
    alloc = ResourceAllocator(LoadBalancer(mon, seed=2), max_queue=100_000)
    per, n = 1500, 3
    ids = [[f"t{w}-{k}" for k in range(per)] for w in range(n)]

    def submitter(w):
        def run():
            for k, rid in enumerate(ids[w]):
                alloc.allocate(AllocationRequest(rid, "t", timeout_s=1e9))
                if k >= 2:
                    old = ids[w][k - 2]
                    if k % 5 == 0:
                        alloc.withdraw(old)
                    else:
                        alloc.release(old)
            for rid in ids[w][-2:]:
                alloc.release(rid)
        return run

    def mover():
        for k in range(2000):
            rid = ids[k % n][(k * 7) % per]
            try:
                alloc.move(rid, None if k % 2 else f"a{k % 4}")
                st = alloc.status(rid)
            except KeyError:
                continue             # not allocated (or not submitted yet): nothing changes
            assert st.status in tuple(A)

    hammer([submitter(w) for w in range(n)] + [mover])
    s = alloc.get_allocation_statistics()
    assert alloc._check_invariants()
    assert s.total_requests == n * per and s.active == s.queued == 0
    assert s.released + s.failed == s.total_requests
    assert all(p.current_task_count == 0 for p in mon.get_all_agent_resources())
    COUNTS["stress allocations"] += n * per
