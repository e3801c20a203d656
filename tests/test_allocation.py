"""ResourceAllocator and the rate limiter (issue 5)."""

from __future__ import annotations

import asyncio
import math

import pytest

from arbiter_core import (
    AdaptiveTokenBucket,
    AllocationRequest,
    AllocationStatus,
    LoadBalancer,
    ManualClock,
    RateLimitConfig,
    ResourceAllocator,
    ResourceMonitor,
    ResourceRequirements,
    TaskPriority,
)

A = AllocationStatus
P = TaskPriority


def make(n_agents=1, max_tasks=1, **kw):
    clock = ManualClock()
    mon = ResourceMonitor(clock=clock)
    for i in range(n_agents):
        mon.register_agent(f"a{i}", max_tasks=max_tasks)
    alloc = ResourceAllocator(LoadBalancer(mon, seed=1), **kw)
    return clock, mon, alloc


def req(i, priority=P.MEDIUM, timeout_s=30.0, **kw):
    return AllocationRequest(f"r{i}", f"t{i}", priority=priority, timeout_s=timeout_s, **kw)


def check_accounting(alloc):
    s = alloc.get_allocation_statistics()
    assert s.allocated == s.active + s.released
    assert s.total_requests == s.queued + s.allocated + s.rejected + s.timed_out + s.failed
    return s


def test_allocate_queue_release_cycle():
    clock, mon, alloc = make()
    r0 = alloc.allocate(req(0))
    assert (r0.status, r0.agent_id, r0.wait_s) == (A.ALLOCATED, "a0", 0.0)
    r1 = alloc.allocate(req(1))
    assert r1.status is A.QUEUED and r1.agent_id is None
    clock.advance(2.0)
    done = alloc.release("r0", success=True, duration_s=1.5)
    assert done.status is A.RELEASED and done.finished_at == 2.0
    r1 = alloc.status("r1")
    assert (r1.status, r1.agent_id, r1.wait_s, r1.allocated_at) == (A.ALLOCATED, "a0", 2.0, 2.0)
    s = check_accounting(alloc)
    assert (s.active, s.released, s.queued) == (1, 1, 0)
    assert mon.get_agent_resources("a0").current_task_count == 1


def test_queue_order_priority_then_fifo():
    clock, mon, alloc = make()
    alloc.allocate(req("busy"))
    order = [(1, P.LOW), (2, P.MEDIUM), (3, P.CRITICAL), (4, P.MEDIUM), (5, P.HIGH), (6, P.LOW)]
    for i, p in order:
        assert alloc.allocate(req(i, p)).status is A.QUEUED
    served = []
    current = "rbusy"
    for _ in order:
        alloc.release(current)
        current = next(r for r in (f"r{i}" for i, _ in order)
                       if alloc.status(r).status is A.ALLOCATED and r not in served)
        served.append(current)
    assert served == ["r3", "r5", "r2", "r4", "r1", "r6"]


def test_aging_lets_low_priority_through_a_stream_of_high():
    clock, mon, alloc = make()
    alloc.allocate(req("busy"))
    alloc.allocate(req("low", P.LOW, timeout_s=1000.0))
    current = "rbusy"
    # a constant stream of HIGH requests, one new every 10 s, one slot
    for k in range(20):
        clock.advance(10.0)
        alloc.allocate(req(f"h{k}", P.HIGH, timeout_s=1000.0))
        alloc.release(current)
        current = next(r for r in [f"rh{j}" for j in range(k + 1)] + ["rlow"]
                       if alloc.status(r).status is A.ALLOCATED)
        if current == "rlow":
            break
    # 0.7 points/s: LOW (0) passes a fresh HIGH (75) after 75/0.7 = 107 s
    assert current == "rlow"
    assert 100.0 <= alloc.status("rlow").wait_s <= 120.0


def test_low_that_waited_two_minutes_outranks_fresh_high():
    clock, mon, alloc = make()
    alloc.allocate(req("busy"))
    alloc.allocate(req("low", P.LOW, timeout_s=500.0))
    clock.advance(120.0)
    alloc.allocate(req("high", P.HIGH))
    alloc.release("rbusy")
    assert alloc.status("rlow").status is A.ALLOCATED
    assert alloc.status("rhigh").status is A.QUEUED


def test_deadlines_expire_exactly_once():
    clock, mon, alloc = make()
    alloc.allocate(req(0))
    alloc.allocate(req(1, timeout_s=5.0))
    alloc.allocate(req(2, timeout_s=10.0))
    clock.advance(4.999)
    assert alloc.tick() == 0
    clock.advance(0.001)                     # at the deadline
    assert alloc.status("r1").status is A.TIMED_OUT   # lazily, on any call
    assert alloc.tick() == 0                 # not twice
    assert alloc.status("r1").failure_reason == "timeout"
    assert alloc.status("r1").wait_s == 5.0
    clock.advance(5.0)
    assert alloc.tick() == 1
    s = check_accounting(alloc)
    assert (s.timed_out, s.queued, s.active) == (2, 0, 1)
    # a release does not resurrect anything
    alloc.release("r0")
    assert alloc.status("r2").status is A.TIMED_OUT


def test_request_already_past_deadline_times_out_at_submission():
    clock, mon, alloc = make()
    clock.advance(100.0)
    r = alloc.allocate(AllocationRequest("old", "t", timeout_s=1.0, requested_at=10.0))
    assert (r.status, r.failure_reason) == (A.TIMED_OUT, "request timeout")


def test_duplicates_unknown_ids_and_withdrawal():
    clock, mon, alloc = make()
    alloc.allocate(req(0))
    alloc.allocate(req(1))
    before = alloc.get_allocation_statistics()
    for rid in (0, 1):                       # active, queued
        with pytest.raises(ValueError, match=f"r{rid}"):
            alloc.allocate(req(rid))
    assert alloc.get_allocation_statistics() == before   # nothing counted
    with pytest.raises(KeyError, match="'nope'"):
        alloc.status("nope")
    assert alloc.release("nope") is None
    assert alloc.get_allocation_statistics().unknown_releases == 1
    # releasing a QUEUED request withdraws it
    r = alloc.release("r1")
    assert (r.status, r.failure_reason) == (A.FAILED, "cancelled")
    # a finished id may be submitted again as a new request
    alloc.release("r0")
    assert alloc.release("r0") is None      # twice: harmless
    assert alloc.allocate(req(0)).status is A.ALLOCATED
    s = check_accounting(alloc)
    assert (s.total_requests, s.released, s.failed, s.active) == (3, 1, 1, 1)
    assert s.by_reason == {"cancelled": 1}


def test_empty_pool_fails_and_full_queue_rejects():
    clock = ManualClock()
    mon = ResourceMonitor(clock=clock)
    alloc = ResourceAllocator(LoadBalancer(mon), max_queue=1)
    r = alloc.allocate(req(0))
    assert (r.status, r.failure_reason) == (A.FAILED, "no agents registered")
    mon.register_agent("a", max_tasks=1)
    assert alloc.allocate(req(1)).status is A.ALLOCATED
    assert alloc.allocate(req(2)).status is A.QUEUED
    r = alloc.allocate(req(3))
    assert (r.status, r.failure_reason) == (A.REJECTED, "queue full")
    check_accounting(alloc)


def test_required_resources_fit_and_are_held_until_release():
    clock = ManualClock()
    mon = ResourceMonitor(clock=clock)
    mon.register_agent("small", max_tasks=10, memory_mb=1000.0)
    mon.register_agent("big", max_tasks=10, memory_mb=8000.0)
    alloc = ResourceAllocator(LoadBalancer(mon, seed=2))
    big = {"memory_mb": 3000.0}
    r = alloc.allocate(req(0, required_resources=big))
    assert r.agent_id == "big" and r.allocated_resources == ResourceRequirements(memory_mb=3000.0)
    alloc.allocate(req(1, required_resources=big))
    # 6000 of 8000 MB held: a third does not fit anywhere and waits ...
    assert alloc.allocate(req(2, required_resources=big)).status is A.QUEUED
    # ... while a small request passes it (no head-of-line blocking)
    assert alloc.allocate(req(3, required_resources={"memory_mb": 100.0})).status is A.ALLOCATED
    assert mon.get_agent_resources("big").reserved_memory_mb == 6000.0
    alloc.release("r0")
    assert alloc.status("r2").agent_id == "big"
    assert mon.get_agent_resources("big").reserved_memory_mb == 6000.0
    check_accounting(alloc)


# -- rate limiting --------------------------------------------------------------


def test_limit_zero_admits_nothing():
    clock, mon, alloc = make(rate_limit=RateLimitConfig(max_requests=0, window_s=1.0))
    for i in range(3):
        clock.advance(10.0)
        r = alloc.allocate(req(i))
        assert (r.status, r.failure_reason) == (A.REJECTED, "rate limit exceeded")
    assert alloc.get_allocation_statistics().rate_limit == 0.0


def test_token_bucket_has_no_double_burst_at_a_window_edge():
    cfg = RateLimitConfig(max_requests=10, window_s=10.0, adaptive=False)
    clock, mon, alloc = make(n_agents=1, max_tasks=1000, rate_limit=cfg)
    clock.advance(9.9)
    admitted = sum(alloc.allocate(req(i)).status is A.ALLOCATED for i in range(20))
    assert admitted == 10                     # the full bucket, just before the "edge"
    clock.advance(0.2)                        # just after it: a fixed window would reset
    admitted = sum(alloc.allocate(req(100 + i)).status is A.ALLOCATED for i in range(20))
    assert admitted == 0                      # only 0.2 tokens refilled
    clock.advance(0.8)                        # 1 token per second
    assert alloc.allocate(req(200)).status is A.ALLOCATED
    assert alloc.allocate(req(201)).status is A.REJECTED
    clock.advance(100.0)                      # refill stops at the bucket size
    admitted = sum(alloc.allocate(req(300 + i)).status is A.ALLOCATED for i in range(20))
    assert admitted == 10


def test_queued_requests_spend_a_token_dispatch_spends_none():
    cfg = RateLimitConfig(max_requests=2, window_s=100.0, adaptive=False)
    clock, mon, alloc = make(rate_limit=cfg)
    assert alloc.allocate(req(0)).status is A.ALLOCATED
    assert alloc.allocate(req(1)).status is A.QUEUED
    assert alloc.allocate(req(2)).status is A.REJECTED
    alloc.release("r0")
    assert alloc.status("r1").status is A.ALLOCATED
    assert alloc.rate_limiter.available(clock.now()) < 1.0


def test_adaptive_limit_moves_down_on_failures_and_up_when_healthy():
    b = AdaptiveTokenBucket(RateLimitConfig(max_requests=100, window_s=60.0), now=0.0)
    for _ in range(5):
        b.record_outcome(False, 0.1)
    assert b.limit == pytest.approx(100 * 0.9 ** 5)
    low = b.limit
    for _ in range(10):
        b.record_outcome(True, 0.1)
    assert b.limit == pytest.approx(low + 10)           # additive increase
    for _ in range(50):
        b.record_outcome(True, 0.1)
    assert b.limit == 100.0                             # back up, capped at max
    for _ in range(100):
        b.record_outcome(False, None)
    assert b.limit == 10.0                              # min_limit = max_requests / 10


def test_adaptive_limit_shrinks_when_latency_rises_above_baseline():
    b = AdaptiveTokenBucket(RateLimitConfig(max_requests=100, window_s=60.0), now=0.0)
    for _ in range(50):
        b.record_outcome(True, 0.1)
    assert b.limit == 100.0
    for _ in range(30):
        b.record_outcome(True, 1.0)                    # 10x slower, still "successes"
    assert b.limit < 100.0


def test_adaptive_limit_is_fed_by_releases_and_reported():
    cfg = RateLimitConfig(max_requests=50, window_s=60.0)
    clock, mon, alloc = make(max_tasks=100, rate_limit=cfg)
    for i in range(10):
        alloc.allocate(req(i))
        alloc.release(f"r{i}", success=False)
    s = alloc.get_allocation_statistics()
    # ten failures in one instant are one round: one decrease, not ten
    assert s.rate_limit == pytest.approx(50 * 0.9)
    assert s.rate_limit_per_s == pytest.approx(s.rate_limit / 60.0)
    for i in range(10, 20):
        clock.advance(6.0)              # a new round each time (window_s / 10)
        alloc.allocate(req(i))
        alloc.release(f"r{i}", success=False)
    assert alloc.get_allocation_statistics().rate_limit == pytest.approx(50 * 0.9 ** 11)


def test_one_decrease_per_round_never_collapses_the_limit():
    b = AdaptiveTokenBucket(RateLimitConfig(max_requests=100, window_s=10.0), now=0.0)
    for _ in range(20):
        b.record_outcome(True, 2.0, 0.0)    # baseline latency 2 s
    # a burst of failures within one latency round
    for k in range(30):
        b.record_outcome(False, None, 1.0 + k * 0.01)
    assert b.limit == pytest.approx(100 * 0.9)
    # slow successes keep the latency signal bad: at most one decrease per round
    t = 2.0
    for _ in range(40):
        t += 0.05
        b.record_outcome(True, 10.0, t)
    rounds = 1 + math.floor((t - 1.0) / 2.0) + 1   # generous bound on rounds elapsed
    assert b.limit >= 100 * 0.9 ** rounds
    assert b.limit > 50


def test_rate_limit_config_validation():
    with pytest.raises(ValueError, match="max_requests"):
        RateLimitConfig(max_requests=-1)
    with pytest.raises(ValueError, match="window_s"):
        RateLimitConfig(window_s=0.0)
    with pytest.raises(ValueError, match="backoff_ratio"):
        RateLimitConfig(backoff_ratio=1.5)
    with pytest.raises(ValueError, match="min_limit"):
        RateLimitConfig(max_requests=10, min_limit=20)
    with pytest.raises(TypeError, match="adaptive"):
        RateLimitConfig(adaptive="yes")  # type: ignore[arg-type]


# -- requests -------------------------------------------------------------------


def test_request_validation():
    with pytest.raises(TypeError, match="request_id"):
        AllocationRequest(1, "t")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="request_id"):
        AllocationRequest("", "t")
    with pytest.raises(ValueError, match="priority"):
        AllocationRequest("r", "t", priority=101)
    with pytest.raises(TypeError, match="priority"):
        AllocationRequest("r", "t", priority=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_s"):
        AllocationRequest("r", "t", timeout_s=0.0)
    with pytest.raises(ValueError, match="timeout_s"):
        AllocationRequest("r", "t", timeout_s=math.nan)
    with pytest.raises(ValueError, match="memory_mb"):
        AllocationRequest("r", "t", required_resources={"memory_mb": -1.0})
    with pytest.raises(TypeError, match="metadata"):
        AllocationRequest("r", "t", metadata=[1])  # type: ignore[arg-type]
    r = AllocationRequest("r", "t", priority=75, metadata={"k": 1})
    assert r.priority is P.HIGH
    with pytest.raises(TypeError):
        r.metadata["k"] = 2  # type: ignore[index]
    clock, mon, alloc = make()
    with pytest.raises(TypeError, match="AllocationRequest"):
        alloc.allocate({"request_id": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duration_s"):
        alloc.release("x", duration_s=-1.0)


# -- async ------------------------------------------------------------------------


def test_async_waiter_woken_by_release():
    clock, mon, alloc = make()

    async def main():
        assert (await alloc.allocate_async(req(0))).status is A.ALLOCATED
        waiter = asyncio.create_task(alloc.allocate_async(req(1)))
        await asyncio.sleep(0)
        assert not waiter.done() and alloc.status("r1").status is A.QUEUED
        clock.advance(3.0)
        alloc.release("r0")
        res = await waiter
        assert (res.status, res.agent_id, res.wait_s) == (A.ALLOCATED, "a0", 3.0)

    asyncio.run(main())
    check_accounting(alloc)


def test_async_waiter_times_out_on_tick():
    clock, mon, alloc = make()

    async def main():
        alloc.allocate(req(0))
        waiter = asyncio.create_task(alloc.allocate_async(req(1, timeout_s=5.0)))
        await asyncio.sleep(0)
        clock.advance(5.0)
        alloc.tick()
        res = await waiter
        assert res.status is A.TIMED_OUT

    asyncio.run(main())
    assert check_accounting(alloc).timed_out == 1


def test_async_cancellation_withdraws_the_request():
    clock, mon, alloc = make()

    async def main():
        alloc.allocate(req(0))
        waiter = asyncio.create_task(alloc.allocate_async(req(1)))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(main())
    r = alloc.status("r1")
    assert (r.status, r.failure_reason) == (A.FAILED, "cancelled")
    s = check_accounting(alloc)
    assert (s.failed, s.queued, s.active) == (1, 0, 1)
    alloc.release("r0")
    assert mon.get_agent_resources("a0").current_task_count == 0


def test_async_timer_with_the_monotonic_clock():
    # the one test on the real clock: a 50 ms deadline, woken by the timer
    mon = ResourceMonitor()
    mon.register_agent("a", max_tasks=1)
    alloc = ResourceAllocator(LoadBalancer(mon))

    async def main():
        alloc.allocate(req(0))
        return await asyncio.wait_for(alloc.allocate_async(req(1, timeout_s=0.05)), 5.0)

    assert asyncio.run(main()).status is A.TIMED_OUT


def test_threads_allocating_and_releasing_keep_the_accounting():
    import threading

    clock, mon, alloc = make(n_agents=5, max_tasks=3, max_queue=1000)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(w):
        try:
            barrier.wait()
            mine = []
            for i in range(150):
                rid = f"w{w}-{i}"
                alloc.allocate(AllocationRequest(rid, "t", timeout_s=1e6))
                mine.append(rid)
                if i % 3 == 2:
                    for old in mine[-3:-1]:
                        alloc.release(old, success=(i % 2 == 0), duration_s=0.01)
                held = mon.get_pool_stats().tasks_in_progress
                assert held <= 15
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = check_accounting(alloc)
    assert s.total_requests == 600
    assert s.active == mon.get_pool_stats().tasks_in_progress <= 15
    assert s.active == sum(len(alloc.active_on(f"a{i}")) for i in range(5))
