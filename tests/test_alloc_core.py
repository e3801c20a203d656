"""The allocation core in Cython (issue 10): records, queue, history, listeners.

The review defects each have a test here that failed on the Python allocator:
history eviction, the fallback's double count, the dispatch that lost skipped
requests when a listener raised, and the async path that neither counted slow
decisions nor fell back.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
import threading

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from arbiter_core import (
    AdaptiveResourceManager,
    AdaptiveTokenBucket,
    AllocationRequest,
    AllocationResult,
    AllocationStatus,
    LoadBalancer,
    LoadBalancingDecision,
    LoadBalancingStrategy,
    ManualClock,
    RateLimitConfig,
    ResourceAllocator,
    ResourceManagerConfig,
    ResourceMonitor,
    TaskPriority,
)

A = AllocationStatus


def pool(agents=("a", "b"), max_tasks=2, history=100_000, **kw):
    clock = ManualClock()
    mon = ResourceMonitor(clock=clock)
    for a in agents:
        mon.register_agent(a, max_tasks=max_tasks, memory_mb=1000.0)
    alloc = ResourceAllocator(LoadBalancer(mon, seed=1), history=history, **kw)
    return clock, mon, alloc


def identities(alloc):
    s = alloc.get_allocation_statistics()
    assert s.allocated == s.active + s.released
    assert s.total_requests == s.queued + s.allocated + s.rejected + s.timed_out + s.failed
    assert alloc._check_invariants()
    return s


def boom(*args):
    raise RuntimeError("listener exploded")


# -- results are real named tuples ------------------------------------------------


def test_results_built_in_c_are_ordinary_named_tuples():
    clock, mon, alloc = pool()
    res = alloc.allocate(AllocationRequest("r1", "t1", priority=TaskPriority.HIGH))
    assert type(res) is AllocationResult and res._fields == AllocationResult._fields
    assert res == AllocationResult(*res) and hash(res) == hash(tuple(res))
    assert pickle.loads(pickle.dumps(res)) == res
    assert (res.request_id, res.task_id, res.status, res.priority) == ("r1", "t1", A.ALLOCATED, 75)
    assert res.allocated_at == 0.0 and res.finished_at is None and res.wait_s == 0.0
    d = LoadBalancer(mon, seed=1).select_agent()
    assert type(d) is LoadBalancingDecision and d == LoadBalancingDecision(*d)
    assert d.strategy is LoadBalancingStrategy.LEAST_LOADED and d.reserved is False
    assert d.decision_duration_s >= 0.0 and d.timestamp == clock.now()


# -- history: bounded, oldest first, O(1) -------------------------------------------


def test_history_keeps_the_newest_and_records_stay_bounded():
    clock, mon, alloc = pool(history=3)
    for i in range(10):
        alloc.allocate(AllocationRequest(f"r{i}", "t"))
        alloc.release(f"r{i}")
    identities(alloc)
    assert alloc.records_in_use == 3          # only the history is held
    for i in range(7):
        with pytest.raises(KeyError, match=f"r{i}"):
            alloc.status(f"r{i}")
    assert [alloc.status(f"r{i}").status for i in (7, 8, 9)] == [A.RELEASED] * 3
    s = alloc.get_allocation_statistics()
    assert s.total_requests == s.released == 10       # forgotten, still counted


def test_a_resubmitted_finished_id_starts_afresh_and_its_old_record_ages_out():
    clock, mon, alloc = pool(history=2)
    alloc.allocate(AllocationRequest("x", "first"))
    alloc.release("x", success=False)
    again = alloc.allocate(AllocationRequest("x", "second"))
    assert again.status is A.ALLOCATED and alloc.status("x").task_id == "second"
    for i in range(5):                    # push the old record out of the history
        alloc.allocate(AllocationRequest(f"y{i}", "t"))
        alloc.release(f"y{i}")
    assert alloc.status("x").task_id == "second"      # the live one is never evicted
    alloc.release("x")
    identities(alloc)


def test_history_zero_forgets_at_once_and_history_can_shrink():
    clock, mon, alloc = pool(history=0)
    alloc.allocate(AllocationRequest("r", "t"))
    assert alloc.status("r").status is A.ALLOCATED
    alloc.release("r")
    with pytest.raises(KeyError):
        alloc.status("r")
    assert alloc.records_in_use == 0
    identities(alloc)


# -- defect: fallback counted twice ---------------------------------------------------


def test_fallback_after_the_dynamic_path_raised_counts_the_request_once(monkeypatch):
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(
        seed=1, rate_limit=RateLimitConfig(max_requests=100, window_s=1.0)), clock=clock)
    arm.register_agent("a", max_tasks=4)
    arm.allocate_resources(AllocationRequest("r", "old"))
    arm.release_resources("r")

    def broken(self, now):
        raise RuntimeError("limiter exploded")

    # raises after the pick was made: the slot must be given back
    monkeypatch.setattr(AdaptiveTokenBucket, "try_acquire", broken)
    res = arm.allocate_resources(AllocationRequest("r", "new"))
    assert res.status is A.ALLOCATED and res.task_id == "new"
    s = identities(arm.allocator)
    assert (s.total_requests, s.fallback_allocations, s.active, s.released) == (2, 1, 1, 1)
    assert arm.monitor.get_agent_resources("a").current_task_count == 1   # no leaked slot
    assert arm.allocation_status("r").task_id == "new"
    arm.release_resources("r")
    assert arm.monitor.get_agent_resources("a").current_task_count == 0


# -- defect: skipped requests lost when a listener raised -----------------------------


def test_a_raising_transition_listener_loses_no_skipped_request():
    clock, mon, alloc = pool(agents=("a",), max_tasks=2)
    alloc.on_transition(boom)
    alloc.allocate(AllocationRequest("busy1", "t"))
    alloc.allocate(AllocationRequest("busy2", "t"))
    big = AllocationRequest("big", "t", priority=TaskPriority.CRITICAL,
                            required_resources={"memory_mb": 5000.0})
    assert alloc.allocate(big).status is A.QUEUED
    assert alloc.allocate(AllocationRequest("small", "t")).status is A.QUEUED
    alloc.release("busy1")              # big is skipped (no room), small is dispatched
    assert alloc.status("small").status is A.ALLOCATED
    assert alloc.status("big").status is A.QUEUED and alloc.queued_count == 1
    assert alloc.listener_errors == 1
    identities(alloc)
    mon.register_agent("huge", max_tasks=1, memory_mb=10_000.0)
    alloc.dispatch()
    assert alloc.status("big").agent_id == "huge"
    identities(alloc)


def test_raising_outcome_and_failover_listeners_change_nothing():
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=1), clock=clock)
    arm.register_agent("a", max_tasks=1)
    arm.register_agent("b", max_tasks=1)
    arm.allocator.on_outcome(boom)
    arm.on_failover(boom)
    arm.on_task_moved(boom)
    arm.allocate_resources(AllocationRequest("r1", "t"))
    arm.allocate_resources(AllocationRequest("r2", "t"))
    arm.release_resources("r1", success=False)
    ev = arm.handle_failover(arm.allocation_status("r2").agent_id)
    assert ev.tasks_transferred == 1
    s = identities(arm.allocator)
    assert s.listener_errors == 1 and (s.active, s.released) == (1, 1)


def test_unsubscribe_stops_delivery():
    clock, mon, alloc = pool(agents=("a",), max_tasks=1)
    seen = []
    stop = alloc.on_transition(lambda *ev: seen.append(ev))
    alloc.allocate(AllocationRequest("r1", "t"))
    alloc.allocate(AllocationRequest("r2", "t"))
    alloc.release("r1")
    assert seen == [("r2", A.ALLOCATED, "a")]
    stop()
    stop()                                   # idempotent
    alloc.allocate(AllocationRequest("r3", "t"))
    alloc.release("r2")
    assert len(seen) == 1
    with pytest.raises(TypeError, match="callback"):
        alloc.on_transition(42)


# -- defect: the async path ------------------------------------------------------------


def test_async_immediate_decision_counts_slow_decisions_like_the_sync_path():
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=1, max_allocation_decision_s=1e-12),
                                  clock=clock)
    arm.register_agent("a", max_tasks=2)
    arm.allocate_resources(AllocationRequest("sync", "t"))
    res = asyncio.run(arm.allocate_resources_async(AllocationRequest("async", "t")))
    assert res.status is A.ALLOCATED
    assert arm.slow_decisions == 2 == arm.get_allocation_statistics().slow_decisions


def test_async_falls_back_when_the_dynamic_path_raises(monkeypatch):
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(
        seed=1, rate_limit=RateLimitConfig(max_requests=10, window_s=1.0)), clock=clock)
    arm.register_agent("a", max_tasks=2)

    def broken(self, now):
        raise RuntimeError("limiter exploded")

    monkeypatch.setattr(AdaptiveTokenBucket, "available", broken)
    res = asyncio.run(arm.allocate_resources_async(AllocationRequest("r", "t")))
    assert res.status is A.ALLOCATED
    s = identities(arm.allocator)
    assert (s.total_requests, s.fallback_allocations) == (1, 1)


def test_async_queued_request_is_dispatched_and_cancellation_withdraws():
    clock, mon, alloc = pool(agents=("a",), max_tasks=1)

    async def main():
        alloc.allocate(AllocationRequest("first", "t"))
        waiting = asyncio.ensure_future(alloc.allocate_async(AllocationRequest("w", "t")))
        doomed = asyncio.ensure_future(alloc.allocate_async(AllocationRequest("c", "t")))
        await asyncio.sleep(0)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        alloc.release("first")
        return await waiting

    res = asyncio.run(main())
    assert res.status is A.ALLOCATED and res.agent_id == "a"
    c = alloc.status("c")
    assert (c.status, c.failure_reason) == (A.FAILED, "cancelled")
    identities(alloc)


# -- doors: the balancer's strategy, agents leaving ------------------------------------


def test_the_allocator_follows_a_strategy_switch_at_once():
    clock, mon, alloc = pool(agents=("a", "b", "c"), max_tasks=10)
    mon.record_usage("a", cpu=0.0)
    mon.record_usage("b", cpu=50.0)
    mon.record_usage("c", cpu=60.0)
    picks = [alloc.allocate(AllocationRequest(f"l{i}", "t")).agent_id for i in range(3)]
    # least loaded: a is 10 per task plus its cpu corrected by 10 % per grant
    # since its report (0, 15, 30), b is 25
    assert picks == ["a", "a", "b"]
    alloc.balancer.set_strategy("round_robin")
    picks = [alloc.allocate(AllocationRequest(f"r{i}", "t")).agent_id for i in range(3)]
    assert sorted(picks) == ["a", "b", "c"]
    identities(alloc)


def test_a_removed_agents_work_is_detached_without_a_manager():
    clock, mon, alloc = pool(agents=("a", "b"), max_tasks=1)
    alloc.allocate(AllocationRequest("r1", "t"))
    on = alloc.status("r1").agent_id
    mon.remove_agent(on)
    identities(alloc)
    assert alloc.active_on(on) == []
    mon.register_agent(on, max_tasks=1)      # the slot is reused by a new registration
    alloc.release("r1")                      # must not free the newcomer's slot
    assert mon.get_agent_resources(on).current_task_count == 0
    r2 = alloc.allocate(AllocationRequest("r2", "t"))
    assert r2.status is A.ALLOCATED
    identities(alloc)


# -- threads -----------------------------------------------------------------------------


def test_threads_with_a_tiny_switch_interval_never_oversubscribe_and_always_add_up():
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=7, max_queue=1000), clock=clock)
    for i in range(6):
        arm.register_agent(f"a{i}", max_tasks=3)
    n_threads, per_thread = 4, 1500
    errors: list[BaseException] = []
    seen_over = []
    stop = threading.Event()

    def worker(w):
        try:
            held: list[str] = []
            for k in range(per_thread):
                rid = f"w{w}-{k}"
                res = arm.allocate_resources(AllocationRequest(rid, "t", timeout_s=1e9))
                assert res.status in (A.ALLOCATED, A.QUEUED)
                held.append(rid)
                if len(held) > 4:
                    arm.release_resources(held.pop(0), success=k % 7 != 0, duration_s=0.01)
            for rid in held:
                arm.release_resources(rid)
        except BaseException as e:
            errors.append(e)

    def checker():
        while not stop.is_set():
            with arm.monitor.locked():
                seen_over.extend(p for p in arm.monitor.get_all_agent_resources()
                                 if p.current_task_count > p.max_task_capacity)
                s = arm.get_allocation_statistics()
                assert s.total_requests == (s.queued + s.allocated + s.rejected
                                            + s.timed_out + s.failed)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(w,)) for w in range(n_threads)]
        chk = threading.Thread(target=checker)
        chk.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        chk.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors and not seen_over
    # everything released: whatever was queued was dispatched and released,
    # or withdrawn by its own release (FAILED "cancelled")
    s = identities(arm.allocator)
    assert s.total_requests == n_threads * per_thread
    assert s.active == s.queued == 0
    assert s.released + s.by_reason.get("cancelled", 0) == s.total_requests
    assert all(p.current_task_count == 0 for p in arm.monitor.get_all_agent_resources())


# -- state machine: identities after every step, with raising listeners -------------------


class CoreMachine(RuleBasedStateMachine):
    """Random traffic, churn, failover, withdrawals, resubmissions, raising
    listeners and a small history; the core's own invariants after every step."""

    @initialize(history=st.sampled_from([0, 1, 5, 1000]))
    def setup(self, history):
        self.clock = ManualClock()
        self.arm = AdaptiveResourceManager(
            ResourceManagerConfig(seed=11, max_queue=6, stale_after_s=20.0), clock=self.clock)
        self.alloc = self.arm.allocator
        self.alloc._configure(self.alloc.balancer.strategy_code, 0.7, 6, history, 0.05)
        self.n = 0
        self.agents = 0
        self.submitted = 0
        self.unsubscribe = []
        self.requeued = 0           # failover may requeue past max_queue: nothing is dropped
        self.arm.on_task_moved(self._moved)

    def _moved(self, event):
        self.requeued += event.requeued

    @rule(max_tasks=st.integers(1, 3), memory=st.sampled_from([0.0, 500.0, 2000.0]))
    def register(self, max_tasks, memory):
        self.arm.register_agent(f"g{self.agents}", max_tasks=max_tasks, memory_mb=memory)
        self.agents += 1

    @rule(data=st.data())
    def remove(self, data):
        ids = self.arm.monitor.agent_ids()
        if ids:
            self.arm.remove_agent(data.draw(st.sampled_from(ids)))

    @rule(priority=st.sampled_from(list(TaskPriority)), timeout=st.sampled_from([5.0, 50.0]),
          memory=st.sampled_from([0.0, 0.0, 300.0, 1500.0]), again=st.booleans(),
          data=st.data())
    def allocate(self, priority, timeout, memory, again, data):
        if again and self.n:
            rid = f"q{data.draw(st.integers(1, self.n))}"
        else:
            self.n += 1
            rid = f"q{self.n}"
        req = AllocationRequest(rid, "t", priority=priority, timeout_s=timeout,
                                required_resources={"memory_mb": memory} if memory else None)
        try:
            self.arm.allocate_resources(req)
        except ValueError:
            return                      # still live: refused, nothing counted
        self.submitted += 1

    @rule(data=st.data(), success=st.booleans())
    def release(self, data, success):
        if self.n:
            self.arm.release_resources(f"q{data.draw(st.integers(1, self.n))}",
                                       success=success, duration_s=0.1)

    @rule(data=st.data())
    def cancel(self, data):
        if self.n:
            self.arm.cancel(f"q{data.draw(st.integers(1, self.n))}")

    @rule(data=st.data())
    def failover(self, data):
        ids = self.arm.monitor.agent_ids()
        if ids:
            self.arm.handle_failover(data.draw(st.sampled_from(ids)))

    @rule(which=st.sampled_from(["transition", "outcome", "failover"]))
    def raising_listener(self, which):
        sub = {"transition": self.alloc.on_transition, "outcome": self.alloc.on_outcome,
               "failover": self.arm.on_failover}[which]
        self.unsubscribe.append(sub(boom))

    @precondition(lambda self: self.unsubscribe)
    @rule()
    def drop_listener(self):
        self.unsubscribe.pop()()

    @rule(seconds=st.sampled_from([1.0, 10.0, 30.0]))
    def advance_and_tick(self, seconds):
        self.clock.advance(seconds)
        self.arm.tick()

    @invariant()
    def accounting(self):
        s = identities(self.alloc)
        assert s.total_requests == self.submitted
        assert s.queued <= 6 + self.requeued
        held = 0
        for p in self.arm.monitor.get_all_agent_resources():
            on = len(self.alloc.active_on(p.agent_id))
            assert p.current_task_count == on <= p.max_task_capacity
            held += on
        assert held <= s.active


TestCoreMachine = CoreMachine.TestCase
TestCoreMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


# -- movable=False and exclude= (the core support integrations need) -------------------


def test_a_request_that_cannot_move_is_detached_by_failover_and_charged_to_nobody():
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=1), clock=clock)
    arm.register_agent("a", max_tasks=2)
    arm.register_agent("b", max_tasks=2)
    arm.balancer.set_strategy("round_robin")
    pinned = arm.allocate_resources(AllocationRequest("call", "t", movable=False))
    other = arm.allocate_resources(AllocationRequest("free", "t"))
    assert {pinned.agent_id, other.agent_id} == {"a", "b"}
    failed = pinned.agent_id
    ev = arm.handle_failover(failed)
    assert ev.detached == ("call",) and ev.tasks_transferred == 0 and ev.success
    assert arm.monitor.get_agent_resources(failed).current_task_count == 0
    st = arm.allocation_status("call")
    assert st.status is A.ALLOCATED and st.agent_id == failed    # still running there
    assert arm.allocator.active_on(failed) == []
    arm.release_resources("call", success=False, duration_s=1.0)
    for agent in ("a", "b"):                 # nobody is charged with the failure
        assert arm.monitor.get_agent_resources(agent).tasks_failed == 0
    identities(arm.allocator)


def test_excluded_agents_are_never_chosen_even_from_the_queue():
    clock, mon, alloc = pool(agents=("a", "b", "c"), max_tasks=1)
    res = alloc.allocate(AllocationRequest("r1", "t", exclude={"a", "b"}))
    assert res.agent_id == "c"
    assert alloc.allocate(AllocationRequest("r2", "t", exclude=["c", "ghost"])).agent_id in "ab"
    free = "b" if alloc.status("r2").agent_id == "a" else "a"
    q = alloc.allocate(AllocationRequest("r3", "t", exclude=("a", "b")))
    assert q.status is A.QUEUED                       # only c would do, and it is busy
    behind = alloc.allocate(AllocationRequest("r4", "t"))
    assert behind.agent_id == free                    # gets past the excluded head
    alloc.release("r2")                               # frees a or b: r3 may not take it
    assert alloc.status("r3").status is A.QUEUED
    alloc.release("r1")                               # c is free: now r3 goes
    assert alloc.status("r3").agent_id == "c"
    identities(alloc)
    with pytest.raises(TypeError, match="exclude"):
        AllocationRequest("x", "t", exclude="abc")
    with pytest.raises(TypeError, match="movable"):
        AllocationRequest("x", "t", movable=1)


# -- defects found in review (each failed before its fix) ------------------------------


def test_withdraw_with_a_bad_reason_changes_nothing():
    clock, mon, alloc = pool(agents=("a",), max_tasks=1)
    alloc.allocate(AllocationRequest("r1", "t"))
    alloc.allocate(AllocationRequest("r2", "t"))
    with pytest.raises(TypeError, match="reason"):
        alloc.withdraw("r2", ["not", "hashable"])
    assert alloc.status("r2").status is A.QUEUED
    identities(alloc)


def test_a_tenant_named_other_is_the_fold_target_and_nothing_breaks():
    clock, mon, alloc = pool(agents=("a",), max_tasks=100)
    alloc._set_max_tenants(2)
    alloc.set_tenant_policy("other", weight=2.0)
    for k in range(6):
        alloc.allocate(AllocationRequest(f"r{k}", "t", tenant=f"team{k}"))
        alloc.release(f"r{k}")
        identities(alloc)
    assert alloc.tenants().count("other") == 1
    assert alloc.get_tenant_statistics("other").released >= 4
    assert alloc.tenant_policy("other").weight == 2.0


def test_a_request_past_its_deadline_is_timed_out_not_a_duplicate_or_cancelled():
    clock, mon, alloc = pool(agents=("a",), max_tasks=1)
    alloc.allocate(AllocationRequest("busy", "t"))
    alloc.allocate(AllocationRequest("r2", "t", timeout_s=1.0))
    alloc.allocate(AllocationRequest("r3", "t", timeout_s=1.0))
    clock.advance(2.0)
    again = alloc.allocate(AllocationRequest("r2", "t", timeout_s=5.0))   # not "already queued"
    assert again.status is A.QUEUED
    assert alloc.release("r3") is None                                   # timed out, not cancelled
    s = identities(alloc)
    assert s.timed_out == 2 and s.by_reason.get("cancelled", 0) == 0


def test_failover_to_a_backup_respects_exclude_and_requeued_work_finds_idle_agents():
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=1), clock=clock)
    for a in ("a", "b", "c"):
        arm.register_agent(a, max_tasks=1)
    arm.allocate_resources(AllocationRequest("r1", "t", exclude={"b", "c"}))   # on a
    arm.allocate_resources(AllocationRequest("r2", "t", exclude={"a", "b"}))   # on c
    ev = arm.handle_failover("a", backup_id="b")
    assert ev.requeued == ("r1",) and arm.allocation_status("r1").status is A.QUEUED
    # and a task the full backup cannot take goes to an idle agent at once
    clock2 = ManualClock()
    arm2 = AdaptiveResourceManager(ResourceManagerConfig(seed=1), clock=clock2)
    for a in ("a", "b", "c"):
        arm2.register_agent(a, max_tasks=1)
    arm2.balancer.set_strategy("round_robin")
    on = {arm2.allocate_resources(AllocationRequest(f"r{k}", "t")).agent_id: f"r{k}"
          for k in range(2)}
    idle = ({"a", "b", "c"} - set(on)).pop()
    failed, backup = sorted(on)
    arm2.handle_failover(failed, backup_id=backup)
    assert arm2.allocation_status(on[failed]).agent_id == idle
    identities(arm.allocator)
    identities(arm2.allocator)


def test_async_waiters_get_their_result_even_without_history():
    clock, mon, alloc = pool(agents=("a",), max_tasks=1, history=0)

    async def main():
        alloc.allocate(AllocationRequest("r1", "t"))
        waiting = asyncio.ensure_future(alloc.allocate_async(AllocationRequest("r2", "t")))
        await asyncio.sleep(0)
        alloc.release("r1")
        return await waiting

    res = asyncio.run(main())
    assert res.status is A.ALLOCATED and res.request_id == "r2"


def test_many_unplaceable_requests_do_not_block_plain_ones_behind_them():
    clock = ManualClock()
    mon = ResourceMonitor(clock=clock)
    mon.register_agent("a", max_tasks=200, memory_mb=1000.0)
    alloc = ResourceAllocator(LoadBalancer(mon, seed=1))
    alloc.allocate(AllocationRequest("first", "t"))
    for k in range(100):
        alloc.allocate(AllocationRequest(f"big{k}", "t", priority=TaskPriority.CRITICAL,
                                         required_resources={"memory_mb": 5000.0}))
    small = alloc.allocate(AllocationRequest("small", "t", priority=TaskPriority.LOW))
    assert small.status is A.ALLOCATED
    identities(alloc)


def test_a_tenant_held_at_its_cap_gains_no_credit():
    clock, mon, alloc = pool(agents=("a",), max_tasks=1)
    alloc.set_tenant_policy("A", max_active=0)
    alloc.allocate(AllocationRequest("x0", "t"))
    for k in range(40):
        alloc.allocate(AllocationRequest(f"A{k}", "t", tenant="A", timeout_s=1e6))
        alloc.allocate(AllocationRequest(f"B{k}", "t", tenant="B", timeout_s=1e6))
    cur, order = "x0", []
    for _ in range(10):
        alloc.release(cur)
        cur = alloc.active_on("a")[0]
        order.append(cur[0])
    alloc.set_tenant_policy("A")
    for _ in range(20):
        alloc.release(cur)
        cur = alloc.active_on("a")[0]
        order.append(cur[0])
    assert "".join(order[:10]) == "B" * 10
    tail = "".join(order[10:])
    # back in competition it starts at the virtual time: at most one extra
    # dispatch (a tie broken by arrival order), never a run of catch-up
    assert "AAA" not in tail and abs(tail.count("A") - tail.count("B")) <= 2
    identities(alloc)


def test_resources_come_back_when_the_task_count_was_overwritten():
    clock, mon, alloc = pool(agents=("a",), max_tasks=4)
    alloc.allocate(AllocationRequest("r1", "t", required_resources={"memory_mb": 600.0}))
    mon.update_task_count("a", 0)            # the agent's own count overrides ours
    alloc.release("r1")
    assert mon.get_agent_resources("a").reserved_memory_mb == 0.0
    r2 = alloc.allocate(AllocationRequest("r2", "t", required_resources={"memory_mb": 600.0}))
    assert r2.status is A.ALLOCATED


def test_a_raising_rate_limiter_outcome_still_serves_the_queue(monkeypatch):
    clock, mon, alloc = pool(agents=("a",), max_tasks=1,
                             rate_limit=RateLimitConfig(max_requests=100, window_s=1.0))
    alloc.allocate(AllocationRequest("r1", "t"))
    alloc.allocate(AllocationRequest("r2", "t"))

    def broken(self, *args):
        raise RuntimeError("limiter bug")

    monkeypatch.setattr(AdaptiveTokenBucket, "record_outcome", broken)
    with pytest.raises(RuntimeError, match="limiter bug"):
        alloc.release("r1")
    assert alloc.status("r2").status is A.ALLOCATED
    identities(alloc)


def test_the_fallback_honours_exclusions_and_tenant_caps_and_claims_no_resources(monkeypatch):
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(
        seed=1, rate_limit=RateLimitConfig(max_requests=100, window_s=1.0)), clock=clock)
    for a in ("a", "b"):
        arm.register_agent(a, max_tasks=4)
    arm.set_tenant_policy("paused", max_active=0)

    def broken(self, now):
        raise RuntimeError("limiter exploded")

    monkeypatch.setattr(AdaptiveTokenBucket, "available", broken)
    res = arm.allocate_resources(AllocationRequest(
        "r1", "t", exclude={"a"}, required_resources={"memory_mb": 1.0}))
    assert res.agent_id == "b" and res.allocated_resources is None
    assert arm.allocate_resources(AllocationRequest("p", "t", tenant="paused")).status is A.FAILED
    s = identities(arm.allocator)
    assert s.fallback_allocations == 2


def test_a_detached_requests_failure_is_reported_against_no_agent():
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=1), clock=clock)
    arm.register_agent("a", max_tasks=1)
    outcomes = []
    arm.allocator.on_outcome(lambda *o: outcomes.append(o))
    arm.allocate_resources(AllocationRequest("call", "t", movable=False))
    arm.handle_failover("a")
    arm.release_resources("call", success=False)
    assert outcomes == []


def test_aging_cannot_change_on_a_live_manager():
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=1), clock=clock)
    with pytest.raises(ValueError, match="aging_per_s"):
        arm.update_config(aging_per_s=5.0)
