"""AdaptiveResourceManager: failover, ejection, capacity planning, lifecycle (issue 5)."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    AllocationStatus,
    CapacityConfig,
    EjectionConfig,
    HealthStatus,
    LoadBalancingStrategy,
    ManualClock,
    RateLimitConfig,
    ResourceManagerConfig,
    ScalingAction,
    TaskPriority,
)

A = AllocationStatus


def make(agents=(), max_tasks=2, **cfg):
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=1, **cfg), clock=clock)
    for a in agents:
        arm.register_agent(a, max_tasks=max_tasks)
    return clock, arm


def req(i, priority=TaskPriority.MEDIUM, timeout_s=30.0):
    return AllocationRequest(f"r{i}", f"t{i}", priority=priority, timeout_s=timeout_s)


def check_invariants(arm):
    s = arm.get_allocation_statistics()
    assert s.allocated == s.active + s.released
    assert s.total_requests == s.queued + s.allocated + s.rejected + s.timed_out + s.failed
    # the table's slot counts agree with the allocator's records, and no
    # agent holds more than its capacity
    total = 0
    for p in arm.monitor.get_all_agent_resources():
        held = len(arm.allocator.active_on(p.agent_id))
        assert p.current_task_count == held <= p.max_task_capacity
        total += held
    assert total == s.active
    return s


# -- failover ---------------------------------------------------------------------


def test_failover_moves_everything_and_queues_what_does_not_fit():
    clock, arm = make(["a", "b", "c"], max_tasks=2)
    for i in range(6):
        arm.allocate_resources(req(i))
    on_a = set(arm.allocator.active_on("a"))
    assert len(on_a) == 2
    # b and c are full: nothing fits, both go back to the queue
    moved_events = []
    arm.on_task_moved(moved_events.append)
    ev = arm.handle_failover("a")
    assert ev.tasks_transferred == 2 and ev.moved == () and set(ev.requeued) == on_a
    assert ev.success and ev.trigger == "manual"
    assert {m.request_id for m in moved_events} == on_a and all(m.requeued for m in moved_events)
    assert arm.monitor.health("a") is HealthStatus.OFFLINE
    s = check_invariants(arm)
    assert (s.active, s.queued) == (4, 2)
    # capacity elsewhere: the requeued tasks go there, ahead of newer requests
    arm.allocate_resources(req(99))
    arm.register_agent("d", max_tasks=2)
    assert {arm.allocation_status(r).agent_id for r in on_a} == {"d"}
    assert arm.allocation_status("r99").status is A.QUEUED
    check_invariants(arm)


def test_failover_to_backup_and_to_best_agents():
    clock, arm = make(["a", "b", "c"], max_tasks=4)
    for i in range(3):
        arm.allocate_resources(req(i))
    arm.handle_failover("a", backup_id="b")   # whatever was on a is now on b
    assert arm.allocator.active_on("a") == []
    clock.advance(1.0)
    ev = arm.handle_failover("b")
    assert ev.requeued == () and {to for _, to in ev.moved} <= {"c"}
    assert len(arm.allocator.active_on("c")) == 3
    assert [e.failed_agent_id for e in arm.get_failover_history()] == ["a", "b"]
    assert arm.get_failover_history(1)[0].failed_agent_id == "b"
    with pytest.raises(ValueError, match="backup_id"):
        arm.handle_failover("c", backup_id="c")
    with pytest.raises(KeyError, match="'zz'"):
        arm.handle_failover("zz")
    # a failed-over agent is OFFLINE until it reports again or is restored
    assert arm.monitor.health("a") is HealthStatus.OFFLINE
    arm.record_usage("a", cpu=10.0)
    assert arm.monitor.health("a") is HealthStatus.HEALTHY
    arm.restore_agent("b")
    assert arm.monitor.health("b") is HealthStatus.HEALTHY
    check_invariants(arm)


def test_requeued_task_gets_fresh_deadline_and_keeps_its_place():
    clock, arm = make(["a"], max_tasks=1)
    arm.allocate_resources(req("old", timeout_s=10.0))
    clock.advance(50.0)
    arm.allocate_resources(req("new", timeout_s=100.0))     # same priority, newer
    arm.handle_failover("a")
    clock.advance(9.0)
    arm.tick()
    assert arm.allocation_status("rold").status is A.QUEUED   # deadline 50 + 10
    arm.restore_agent("a")
    assert arm.allocation_status("rold").status is A.ALLOCATED
    assert arm.allocation_status("rnew").status is A.QUEUED
    check_invariants(arm)


def test_auto_failover_on_stale_reports():
    clock, arm = make(["a", "b"], max_tasks=2, stale_after_s=30.0)
    arm.record_usage("a", cpu=10.0)
    arm.record_usage("b", cpu=10.0)
    for i in range(2):
        arm.allocate_resources(req(i))
    events = []
    arm.on_failover(events.append)
    clock.advance(20.0)
    arm.record_usage("b", cpu=10.0)
    clock.advance(15.0)                       # a silent for 35 s, b for 15 s
    report = arm.tick()
    assert report.went_offline == ("a",)
    assert [e.failed_agent_id for e in events] == ["a"] and events[0].trigger == "stale"
    assert arm.allocator.active_on("a") == []
    assert len(arm.allocator.active_on("b")) == 2
    check_invariants(arm)


def test_auto_failover_on_ejection_at_the_release_completing_the_streak():
    ej = EjectionConfig(consecutive_failures=3, base_ejection_s=30.0, max_ejection_s=300.0,
                        max_ejection_percent=50.0)
    clock, arm = make(["bad"], max_tasks=10, ejection=ej)
    for i in range(4):
        assert arm.allocate_resources(req(i)).agent_id == "bad"
    arm.register_agent("good", max_tasks=10)
    events = []
    arm.on_failover(events.append)
    arm.release_resources("r0", success=False)
    arm.release_resources("r1", success=False)
    assert not events
    arm.release_resources("r2", success=False)
    # ejected at the third failed release, before any tick
    assert arm.monitor.table.is_ejected(arm.monitor.table.slot("bad"), clock.now())
    assert events and events[-1].trigger == "ejection" and events[-1].failed_agent_id == "bad"
    assert arm.allocator.active_on("bad") == []
    assert arm.allocation_status("r3").agent_id == "good"
    assert arm.get_health_status().ejected_agents == 1
    assert arm.monitor.health("bad") is not HealthStatus.OFFLINE   # ejected, not offline
    clock.advance(29.0)
    assert arm.tick().ejections_ended == ()
    clock.advance(1.0)
    assert arm.tick().ejections_ended == ("bad",)
    assert arm.get_health_status().ejected_agents == 0
    check_invariants(arm)


def test_ejection_cap_but_always_one():
    ej = EjectionConfig(consecutive_failures=1, max_ejection_percent=10.0)
    clock, arm = make(["a", "b", "c"], max_tasks=1, ejection=ej)
    for i in range(3):
        arm.allocate_resources(req(i))
    for i in range(3):
        arm.release_resources(f"r{i}", success=False)
    # 10 % of 3 agents rounds down to 0, but one may always be ejected
    assert arm.get_health_status().ejected_agents == 1


def test_removal_with_active_work_fails_over_first():
    clock, arm = make(["a", "b"], max_tasks=2)
    for i in range(2):
        arm.allocate_resources(req(i))
    on_a = arm.allocator.active_on("a")
    events = []
    arm.on_failover(events.append)
    arm.remove_agent("a")
    assert "a" not in arm.monitor
    assert events and events[0].trigger == "removal"
    assert all(arm.allocation_status(r).agent_id == "b" for r in on_a)
    # removing through the monitor directly is covered too
    arm.monitor.remove_agent("b")
    s = check_invariants(arm)
    assert (s.active, s.queued) == (0, 2)


# -- capacity ---------------------------------------------------------------------


def capacity_pool(busy, agents=10, slots=10):
    clock, arm = make([f"a{i}" for i in range(agents)], max_tasks=slots)
    for i in range(busy):
        assert arm.allocate_resources(req(i)).status is A.ALLOCATED
    return clock, arm


def test_capacity_scale_up_when_95_of_100_slots_busy():
    clock, arm = capacity_pool(95)
    a = arm.analyze_capacity()
    assert a.scaling_recommendation is ScalingAction.SCALE_UP
    assert a.slot_utilization_percent == 95.0
    assert a.desired_agents == 14 > a.current_agents == 10        # ceil(10 * 95 / 70)
    assert "scale up" in a.recommendation_rationale


def test_capacity_scale_down_when_10_percent_busy():
    clock, arm = capacity_pool(10)
    a = arm.analyze_capacity()
    assert a.scaling_recommendation is ScalingAction.SCALE_DOWN
    assert a.desired_agents == 2 < a.current_agents                # ceil(10 * 10 / 70)


def test_capacity_cpu_at_100_without_memory_reports_scales_up():
    clock, arm = capacity_pool(0)
    for i in range(10):
        arm.record_usage(f"a{i}", cpu=100.0)
    a = arm.analyze_capacity()
    assert a.memory_utilization_percent is None       # unreported: ignored, not 0
    assert a.busiest_dimension == "cpu" and a.utilization_percent == 100.0
    assert a.scaling_recommendation is ScalingAction.SCALE_UP


def test_capacity_within_tolerance_maintains_and_queued_demand_counts():
    clock, arm = capacity_pool(72)                    # 72 / 70 within 10 %
    assert arm.analyze_capacity().scaling_recommendation is ScalingAction.MAINTAIN
    clock2, arm2 = capacity_pool(100)
    for i in range(100, 150):                         # 50 waiting
        assert arm2.allocate_resources(req(i)).status is A.QUEUED
    a = arm2.analyze_capacity()
    assert a.slot_utilization_percent == 150.0 and a.desired_agents == 22


def test_empty_pool_with_waiting_work_scales_up():
    clock, arm = make([])
    assert arm.analyze_capacity().scaling_recommendation is ScalingAction.MAINTAIN
    arm.register_agent("a", max_tasks=1)
    arm.allocate_resources(req(0))
    arm.allocate_resources(req(1))
    arm.remove_agent("a")                             # both wait now
    a = arm.analyze_capacity()
    assert a.scaling_recommendation is ScalingAction.SCALE_UP and a.desired_agents >= 1


def test_scale_down_stabilization_takes_the_highest_recent_recommendation():
    clock, arm = capacity_pool(95)
    cap = CapacityConfig(ema_alpha=1.0)              # no smoothing: see the rule alone
    arm.update_config(capacity=cap)
    assert arm.analyze_capacity().desired_agents == 14
    for i in range(85):
        arm.release_resources(f"r{i}")               # 10 % busy now
    clock.advance(100.0)
    a = arm.analyze_capacity()
    # within 300 s of the 14 recommendation: no scale-down yet
    assert a.scaling_recommendation is ScalingAction.SCALE_UP and a.desired_agents == 14
    # and the rationale says so (not "high utilization" at 10 %)
    assert a.rationale.startswith("Held by the scale-down stabilization window: 14 agents")
    assert "alone would mean 2" in a.rationale
    clock.advance(250.0)
    a = arm.analyze_capacity()
    assert a.scaling_recommendation is ScalingAction.SCALE_DOWN and a.desired_agents == 2


def test_utilization_is_smoothed_and_forecast_has_an_interval():
    clock, arm = capacity_pool(50)
    a1 = arm.analyze_capacity()
    assert a1.smoothed_utilization_percent == 50.0   # seeded with the first observation
    for i in range(50, 80):
        arm.allocate_resources(req(i))
    clock.advance(60.0)
    a2 = arm.analyze_capacity()
    assert 50.0 < a2.smoothed_utilization_percent < 80.0
    for i in range(80, 90):
        arm.allocate_resources(req(i))
    clock.advance(60.0)
    a3 = arm.analyze_capacity()
    f = a3.predicted_needs
    assert f is not None and f.trend_percent_per_s > 0
    assert f.lower_percent is not None and f.lower_percent <= f.utilization_percent
    assert f.utilization_percent <= f.upper_percent
    assert f.utilization_percent > a3.smoothed_utilization_percent


# -- configuration and lifecycle ------------------------------------------------


def test_config_validation_and_live_update():
    with pytest.raises(ValueError, match="monitoring_interval_s"):
        ResourceManagerConfig(monitoring_interval_s=0.0)
    with pytest.raises(ValueError, match="strategy"):
        ResourceManagerConfig(load_balancing_strategy="fastest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="consecutive_failures"):
        EjectionConfig(consecutive_failures=0)
    with pytest.raises(ValueError, match="target_utilization"):
        CapacityConfig(target_utilization=90.0)
    with pytest.raises(TypeError, match="rate_limit"):
        ResourceManagerConfig(rate_limit=100)  # type: ignore[arg-type]
    clock, arm = make(["a"])
    assert ResourceManagerConfig().rate_limit is None
    arm.start()
    try:
        arm.update_config(load_balancing_strategy="round_robin", max_queue=5,
                          rate_limit=RateLimitConfig(max_requests=10, window_s=1.0))
        assert arm.is_running                       # the original stopped here
        assert arm.balancer.get_strategy() is LoadBalancingStrategy.ROUND_ROBIN
        assert arm.allocator.max_queue == 5
        assert arm.get_allocation_statistics().rate_limit == 10.0
        with pytest.raises(TypeError, match="bogus"):
            arm.update_config(bogus=1)
        with pytest.raises(ValueError, match="max_queue"):
            arm.update_config(max_queue=-1)
        assert arm.allocator.max_queue == 5
    finally:
        arm.stop()


def test_start_stop_thread_ticks_and_is_idempotent():
    clock, arm = make(["a"], monitoring_interval_s=0.01)
    ticked = threading.Event()
    real_tick = arm.tick

    def tick():
        report = real_tick()
        ticked.set()
        return report

    arm.tick = tick  # type: ignore[method-assign]
    with arm:
        arm.start()
        assert arm.is_running
        assert ticked.wait(5.0)
    assert not arm.is_running
    arm.stop()
    h = arm.get_health_status()
    assert h.last_monitoring_time == 0.0 and not h.is_running
    disabled = AdaptiveResourceManager(ResourceManagerConfig(enabled=False), clock=clock)
    disabled.start()
    assert not disabled.is_running


def test_fallback_to_round_robin_when_the_dynamic_path_breaks(monkeypatch):
    clock, arm = make(["a", "b"], max_tasks=2)

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(arm.allocator, "allocate", broken)
    results = [arm.allocate_resources(req(i)) for i in range(5)]
    assert [r.status for r in results] == [A.ALLOCATED] * 4 + [A.FAILED]
    assert {r.agent_id for r in results[:4]} == {"a", "b"}
    s = check_invariants(arm)
    assert s.fallback_allocations == 5


def test_health_status_and_statistics():
    clock, arm = make(["a", "b"], max_tasks=1)
    arm.allocate_resources(req(0))
    arm.allocate_resources(req(1))
    arm.allocate_resources(req(2))
    arm.handle_failover("a")
    h = arm.get_health_status()
    assert (h.active_allocations, h.queued, h.failover_events, h.offline_agents) == (1, 2, 1, 1)
    p = arm.get_pool_statistics()
    assert p.total_agents == 2 and p.tasks_in_progress == 1


# -- concurrency ----------------------------------------------------------------


def test_500_concurrent_async_requests_over_50_agents_all_accounted():
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=3), clock=clock)
    for i in range(50):
        arm.register_agent(f"agent-{i}", max_tasks=4)
    rng = random.Random(5)
    peak = 0

    async def one(i):
        nonlocal peak
        r = AllocationRequest(f"r{i}", f"t{i}", priority=rng.choice(list(TaskPriority)),
                              timeout_s=1e6)
        res = await arm.allocate_resources_async(r)
        assert res.status is A.ALLOCATED
        peak = max(peak, arm.get_allocation_statistics().active)
        await asyncio.sleep(0)            # "work": yield to the other tasks
        arm.release_resources(r.request_id, success=True, duration_s=0.01)
        return res

    async def main():
        return await asyncio.gather(*(one(i) for i in range(500)))

    results = asyncio.run(main())
    assert len(results) == 500 and peak == 200
    s = check_invariants(arm)
    assert (s.total_requests, s.released, s.active, s.queued) == (500, 500, 0, 0)
    assert all(p.current_task_count == 0 for p in arm.monitor.get_all_agent_resources())


class ManagerMachine(RuleBasedStateMachine):
    """Random register/remove/allocate/release/fail/tick/advance sequences."""

    @initialize()
    def setup(self):
        self.clock = ManualClock()
        cfg = ResourceManagerConfig(
            seed=4, max_queue=8, stale_after_s=30.0,
            ejection=EjectionConfig(consecutive_failures=2, max_ejection_percent=50.0),
            rate_limit=RateLimitConfig(max_requests=40, window_s=10.0))
        self.arm = AdaptiveResourceManager(cfg, clock=self.clock)
        self.n = 0
        self.agents = 0
        self.submitted = 0

    @rule(max_tasks=st.integers(1, 3))
    def register(self, max_tasks):
        self.arm.register_agent(f"g{self.agents}", max_tasks=max_tasks)
        self.agents += 1

    @rule(data=st.data())
    def remove(self, data):
        ids = self.arm.monitor.agent_ids()
        if ids:
            self.arm.remove_agent(data.draw(st.sampled_from(ids)))

    @rule(priority=st.sampled_from(list(TaskPriority)), timeout=st.sampled_from([5.0, 50.0]))
    def allocate(self, priority, timeout):
        self.n += 1
        self.arm.allocate_resources(
            AllocationRequest(f"q{self.n}", "t", priority=priority, timeout_s=timeout))
        self.submitted += 1

    @rule(data=st.data(), success=st.booleans())
    def release(self, data, success):
        if self.n:
            rid = f"q{data.draw(st.integers(1, self.n))}"
            self.arm.release_resources(rid, success=success, duration_s=0.1)

    @rule(data=st.data())
    def failover(self, data):
        ids = self.arm.monitor.agent_ids()
        if ids:
            self.arm.handle_failover(data.draw(st.sampled_from(ids)))

    @rule(data=st.data(), cpu=st.floats(0, 100))
    def report(self, data, cpu):
        ids = self.arm.monitor.agent_ids()
        if ids:
            self.arm.record_usage(data.draw(st.sampled_from(ids)), cpu=cpu)

    @rule(seconds=st.sampled_from([1.0, 10.0, 40.0]))
    def advance_and_tick(self, seconds):
        self.clock.advance(seconds)
        self.arm.tick()

    @invariant()
    def accounting(self):
        s = check_invariants(self.arm)
        assert s.total_requests == self.submitted
        assert s.queued <= 8


TestManagerMachine = ManagerMachine.TestCase
TestManagerMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


def test_disabling_a_running_manager_stops_it():
    clock, arm = make(["a"], monitoring_interval_s=0.01)
    arm.start()
    assert arm.is_running
    arm.update_config(enabled=False)
    assert not arm.is_running
    arm.start()                              # disabled: stays stopped
    assert not arm.is_running


def test_move_to_an_unknown_agent_changes_nothing():
    clock, arm = make(["a", "b"], max_tasks=2)
    res = arm.allocate_resources(req(0))
    with pytest.raises(KeyError, match="'ghost'"):
        arm.allocator.move("r0", "ghost")
    assert arm.allocation_status("r0").agent_id == res.agent_id
    check_invariants(arm)
