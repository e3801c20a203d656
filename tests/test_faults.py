"""Faults (issue 16): raising listeners and collectors, a clock that stands
still (and one that goes back), agents flapping between silent and reporting,
an agent removed in the middle of a dispatch, a full queue under failover.

Each test checks that nothing is lost -- every request is in exactly one
state, every allocated one on an agent that counts it (or detached, or back in
the queue) -- and that the identities hold.  tests/test_alloc_core.py already
covers raising transition/outcome/failover listeners; these are the rest.
"""

from __future__ import annotations

import logging
import math

import pytest

from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    AllocationStatus,
    ManualClock,
    MetricType,
    OptimizerConfig,
    RateLimitConfig,
    ResourceManagerConfig,
    RuntimeOptimizer,
    TaskPriority,
)

A = AllocationStatus


def boom(*args):
    raise RuntimeError("listener exploded")


def manager(agents=3, max_tasks=2, clock=None, **cfg):
    clock = clock or ManualClock(start=100.0)
    cfg.setdefault("seed", 1)
    arm = AdaptiveResourceManager(ResourceManagerConfig(**cfg), clock=clock)
    for i in range(agents):
        arm.register_agent(f"a{i}", max_tasks=max_tasks)
    return clock, arm


def nothing_lost(arm, submitted=None):
    """Identities, core invariants, and every ALLOCATED request accounted for."""
    alloc = arm.allocator
    s = alloc.get_allocation_statistics()
    assert s.allocated == s.active + s.released
    assert s.total_requests == s.queued + s.allocated + s.rejected + s.timed_out + s.failed
    if submitted is not None:
        assert s.total_requests == submitted
    assert alloc._check_invariants()
    on_agents = 0
    for p in arm.monitor.get_all_agent_resources():
        ids = alloc.active_on(p.agent_id)
        assert p.current_task_count == len(ids) <= p.max_task_capacity
        on_agents += len(ids)
    assert on_agents <= s.active        # the rest are detached (movable=False)
    return s


# -- raising listeners and collectors ---------------------------------------------------


def test_raising_task_moved_agent_leaving_and_removal_listeners_lose_nothing(caplog):
    clock, arm = manager(agents=3, max_tasks=2)
    arm.on_task_moved(boom)
    arm.allocator.on_agent_leaving(boom)
    arm.monitor.on_remove(boom)
    arm.monitor.before_remove(boom)
    moved = []
    arm.on_task_moved(moved.append)       # a later listener still hears every move
    for i in range(6):
        arm.allocate_resources(AllocationRequest(f"r{i}", "t"))
    with caplog.at_level(logging.ERROR):
        arm.remove_agent("a0")
    assert len(moved) == 2                # a0's two tasks: moved or requeued, reported
    s = nothing_lost(arm, submitted=6)
    assert s.active + s.queued == 6
    assert {m.request_id for m in moved} <= {f"r{i}" for i in range(6)}
    assert arm.allocator.listener_errors >= 1
    assert "listener exploded" in caplog.text


def test_a_raising_analysis_or_bottleneck_listener_and_collector_change_no_result(caplog):
    clock = ManualClock(start=0.0)
    opt = RuntimeOptimizer(OptimizerConfig(analysis_interval_s=1.0), clock=clock)
    quiet = RuntimeOptimizer(OptimizerConfig(analysis_interval_s=1.0), clock=clock)
    opt.on_analysis(boom)
    opt.on_bottleneck(boom)
    opt.add_collector(lambda: (_ for _ in ()).throw(OSError("sensor gone")))
    opt.add_collector(lambda: [("cpu", float("nan"), "host")])   # a bad sample
    heard = []
    opt.on_analysis(heard.append)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            for o in (opt, quiet):
                o.record_metric(MetricType.CPU, 97.0, source="worker")
            clock.advance(1.0)
            a, b = opt.tick(), quiet.tick()
            assert a is not None and b is not None
            assert [x.component for x in a.bottlenecks] == [x.component for x in b.bottlenecks]
            assert a.health_score == b.health_score
    assert len(heard) == 5
    h = opt.get_health_status()
    assert h.degraded and h.collector_failures == 10 and h.analyses_run == 5
    assert "sensor gone" in caplog.text and "listener exploded" in caplog.text


def test_a_listener_sees_the_tenant_policy_that_let_its_request_through():
    """Found by the tenant state machine under the sanitizer run: a dispatch
    that a new policy allows was announced while tenant_policy() still gave
    the old one (max_active=0), so a listener saw a tenant above its cap."""
    clock, arm = manager(agents=1, max_tasks=2)
    arm.set_tenant_policy("a", max_active=0)
    assert arm.allocate_resources(AllocationRequest("q1", "t", tenant="a")).status is A.QUEUED
    seen = []

    def check(rid, status, agent):
        cap = arm.allocator.tenant_policy("a").max_active
        seen.append((rid, status, cap))

    arm.allocator.on_transition(check)
    arm.set_tenant_policy("a", max_active=None)
    assert seen == [("q1", A.ALLOCATED, None)]
    seen.clear()
    arm.set_tenant_policy("a", max_active=0)
    assert arm.allocate_resources(AllocationRequest("q2", "t", tenant="a")).status is A.QUEUED
    arm.allocator.clear_tenant_policy("a")
    assert seen == [("q2", A.ALLOCATED, None)]
    nothing_lost(arm, submitted=2)


# -- clocks ----------------------------------------------------------------------------


def test_a_clock_that_stands_still():
    """No time passes: nothing times out, the bucket never refills (rejections
    are counted), analyses at one instant count nothing twice, capacity
    forecasts from one instant stay finite."""
    clock = ManualClock(start=50.0)
    _, arm = manager(agents=2, max_tasks=1, clock=clock, max_queue=3,
                     rate_limit=RateLimitConfig(max_requests=6, window_s=1.0))
    results = [arm.allocate_resources(AllocationRequest(f"r{i}", "t", timeout_s=1e-9))
               for i in range(10)]
    statuses = [r.status for r in results]
    assert statuses.count(A.ALLOCATED) == 2 and statuses.count(A.QUEUED) == 3
    assert statuses.count(A.REJECTED) == 5            # queue full, then the bucket empty
    for _ in range(50):
        assert arm.tick().timed_out == 0              # a deadline 1 ns ahead never comes
        a = arm.analyze_capacity()
        assert math.isfinite(a.utilization_percent)
        needs = a.predicted_needs
        assert needs is not None and math.isfinite(needs.utilization_percent)
    arm.release_resources("r0")
    arm.release_resources("r1")
    s = nothing_lost(arm, submitted=10)
    assert s.active == 2 and s.queued == 1 and s.released == 2

    opt = RuntimeOptimizer(clock=ManualClock(start=10.0))
    for _ in range(20):
        opt.record_metric(MetricType.LATENCY, 5000.0, source="api")
    first = opt.analyze()
    for _ in range(10):
        again = opt.analyze()
    assert [b.occurrence_count for b in again.bottlenecks] == \
        [b.occurrence_count for b in first.bottlenecks]
    assert all(not math.isinf(t.slope_per_s) for t in again.trends)


class BackwardsClock:
    """A broken clock that jumps back now and then (the protocol forbids it;
    the library must still keep its books)."""

    def __init__(self):
        self.t = 1000.0
        self.n = 0

    def now(self):
        self.n += 1
        return self.t - (30.0 if self.n % 7 == 0 else 0.0)


def test_a_clock_that_jumps_back_breaks_no_identity():
    clock = BackwardsClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=2, max_queue=5), clock=clock)
    for i in range(3):
        arm.register_agent(f"a{i}", max_tasks=1)
    n = 0
    for step in range(400):
        clock.t += 0.5
        arm.allocate_resources(AllocationRequest(f"r{step}", "t", timeout_s=3.0))
        n += 1
        if step % 3 == 0:
            arm.release_resources(f"r{step - 2}", success=step % 2 == 0, duration_s=0.1)
        if step % 5 == 0:
            arm.record_usage(f"a{step % 3}", cpu=40.0)
            arm.tick()
    nothing_lost(arm, submitted=n)


# -- agents flapping -------------------------------------------------------------------


def test_agents_flapping_between_silent_and_reporting_lose_no_task():
    clock, arm = manager(agents=4, max_tasks=2, stale_after_s=5.0, max_queue=100)
    moved = []
    arm.on_task_moved(moved.append)
    n = 0
    failovers = 0
    for cycle in range(60):
        for i in range(4):
            # agents 0 and 1 flap: they report for a while, then fall silent
            if i >= 2 or (cycle // 3 + i) % 2 == 0:
                arm.record_usage(f"a{i}", cpu=30.0 + i, memory=40.0)
        for _ in range(3):
            arm.allocate_resources(AllocationRequest(f"r{n}", "t", timeout_s=1e6,
                                                     priority=TaskPriority.HIGH if n % 4 else
                                                     TaskPriority.LOW))
            n += 1
        for rid in [f"r{k}" for k in range(max(0, n - 12), n - 9)]:
            if arm.allocation_status(rid).status is A.ALLOCATED:
                arm.release_resources(rid, success=True, duration_s=0.2)
        clock.advance(2.0)
        failovers += len(arm.tick().failovers)
        s = nothing_lost(arm, submitted=n)
        # nothing was dropped, refused or withdrawn: every request is running,
        # waiting or done
        assert s.rejected == s.timed_out == s.failed == 0
        assert s.active + s.queued + s.released == n
    assert failovers >= 10 and moved
    for ev in arm.get_failover_history():
        assert ev.success and ev.tasks_transferred == len(ev.moved) + len(ev.requeued)
    # the silent-then-reporting agents came back and took work again
    assert any(p.current_task_count for p in arm.monitor.get_all_agent_resources()
               if p.agent_id in ("a0", "a1"))


# -- an agent removed in the middle of a dispatch --------------------------------------------


def test_an_agent_removed_by_a_listener_in_the_middle_of_a_dispatch():
    """A transition listener that removes the agent a queued request was just
    dispatched to: the removal fails the request over (to another agent or
    back to the queue) and the dispatch in progress carries on."""
    clock, arm = manager(agents=3, max_tasks=1, max_queue=50)
    removed = []

    def remove_where_dispatched(rid, status, agent):
        if status is A.ALLOCATED and agent in arm.monitor and len(arm.monitor) > 1 \
                and not removed:
            removed.append(agent)
            arm.remove_agent(agent)

    for i in range(8):
        arm.allocate_resources(AllocationRequest(f"r{i}", "t", timeout_s=1e6))
    arm.allocator.on_transition(remove_where_dispatched)
    arm.release_resources("r0")           # frees a slot: r3 is dispatched, its agent removed
    assert removed
    s = nothing_lost(arm, submitted=8)
    assert s.active + s.queued == 7 and s.released == 1
    assert removed[0] not in arm.monitor
    for i in range(1, 8):
        st = arm.allocation_status(f"r{i}")
        assert st.status in (A.ALLOCATED, A.QUEUED)
        if st.status is A.ALLOCATED:
            assert st.agent_id in arm.monitor


def test_removing_every_agent_with_work_everywhere_requeues_all_of_it():
    clock, arm = manager(agents=4, max_tasks=3, max_queue=5)
    for i in range(12):
        arm.allocate_resources(AllocationRequest(f"r{i}", "t", timeout_s=60.0))
    for i in range(4):
        arm.remove_agent(f"a{i}")
    s = nothing_lost(arm, submitted=12)
    assert s.queued == 12 and s.active == 0       # beyond max_queue: requeued, not dropped
    arm.register_agent("fresh", max_tasks=12)
    s = nothing_lost(arm, submitted=12)
    assert s.active == 12 and s.queued == 0


# -- a full queue under failover -----------------------------------------------------------


@pytest.mark.parametrize("trigger", ["manual", "stale", "ejection"])
def test_a_full_queue_under_failover_drops_nothing(trigger):
    clock, arm = manager(agents=2, max_tasks=2, max_queue=3, stale_after_s=5.0,
                         enable_auto_failover=True)
    arm.update_config(ejection=arm.config.ejection.__class__(consecutive_failures=2))
    for i in range(4):
        arm.record_usage(f"a{i % 2}", cpu=20.0)
    for i in range(7):
        arm.allocate_resources(AllocationRequest(f"r{i}", "t", timeout_s=30.0))
    s = nothing_lost(arm, submitted=7)
    assert s.active == 4 and s.queued == 3       # the queue is full
    victim = arm.allocation_status("r0").agent_id
    if trigger == "manual":
        ev = arm.handle_failover(victim)
    elif trigger == "stale":
        other = "a1" if victim == "a0" else "a0"
        clock.advance(6.0)
        arm.record_usage(other, cpu=20.0)
        (ev,) = arm.tick().failovers
    else:
        mine = arm.allocator.active_on(victim)
        for rid in mine:
            arm.release_resources(rid, success=False, duration_s=0.1)
        ev = arm.get_failover_history()[-1] if arm.get_failover_history() else None
    s = nothing_lost(arm, submitted=7)
    if ev is not None:
        assert ev.success
        assert ev.tasks_transferred == len(ev.moved) + len(ev.requeued)
    # the queue may now hold more than max_queue (nothing is dropped), and a
    # new request is refused while it does
    assert s.queued + s.active + s.released == 7
    extra = arm.allocate_resources(AllocationRequest("late", "t"))
    assert extra.status in (A.REJECTED, A.ALLOCATED)
    nothing_lost(arm, submitted=8)
