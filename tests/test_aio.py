"""The asyncio-native lifecycle: ``async with manager:`` / ``async with optimizer:``.

No sleeping for time to pass: the first cycle runs at the task's first step,
further cycles are waited for with events (``AsyncMaintenance.wake``).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    AllocationStatus,
    ManualClock,
    MetricType,
    ResourceManagerConfig,
    RuntimeOptimizer,
)
from arbiter_core._aio import AsyncMaintenance


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_manager_runs_maintenance_as_a_task_not_a_thread():
    clock = ManualClock()
    arm = AdaptiveResourceManager(clock=clock)
    arm.register_agent("a1", max_tasks=1)
    threads = threading.active_count()

    async def main():
        async with arm as m:
            assert m is arm
            assert arm.is_running and arm.get_health_status().is_running
            assert arm._thread is None
            assert threading.active_count() == threads
            await turns()
            assert arm.get_health_status().last_monitoring_time == 0.0
            task = arm._aio_maintenance._task
            assert task.get_name() == "arbiter-resources"
        assert task.done()
        assert not arm.is_running

    asyncio.run(main())


def test_manager_ticks_again_when_due_and_expires_queued_requests():
    clock = ManualClock()
    arm = AdaptiveResourceManager(clock=clock)
    arm.register_agent("a1", max_tasks=1)

    async def main():
        async with arm:
            arm.allocate_resources(AllocationRequest("r1", "t1"))
            waiter = asyncio.create_task(
                arm.allocate_resources_async(AllocationRequest("r2", "t2", timeout_s=5.0)))
            await turns()
            assert arm.allocation_status("r2").status is AllocationStatus.QUEUED
            clock.advance(5.0)
            m = arm._aio_maintenance
            before = m.cycles
            m.wake()                                  # the next cycle, now
            res = await waiter
            assert m.cycles > before
            assert res.status is AllocationStatus.TIMED_OUT

    asyncio.run(main())


def test_interval_follows_the_config_and_cycles_repeat():
    arm = AdaptiveResourceManager(ResourceManagerConfig(monitoring_interval_s=0.001))

    async def main():
        done = asyncio.Event()
        real_tick = arm.tick
        calls = 0

        def tick():
            nonlocal calls
            calls += 1
            if calls == 3:
                done.set()
            return real_tick()

        arm.tick = tick
        async with arm:
            await asyncio.wait_for(done.wait(), 10)
        assert calls >= 3

    asyncio.run(main())


def test_disabled_manager_does_not_start_and_aclose_is_idempotent():
    arm = AdaptiveResourceManager(ResourceManagerConfig(enabled=False))

    async def main():
        async with arm:
            assert not arm.is_running
        await arm.aclose()
        arm2 = AdaptiveResourceManager()
        await arm2.aclose()                     # never started
        async with arm2:
            assert arm2.is_running
        async with arm2:                        # restartable
            assert arm2.is_running
        assert not arm2.is_running

    asyncio.run(main())


def test_aclose_also_stops_a_thread():
    arm = AdaptiveResourceManager()
    arm.start()
    assert arm.is_running

    async def main():
        await arm.aclose()

    asyncio.run(main())
    assert not arm.is_running and arm._thread is None


def test_optimizer_async_with():
    clock = ManualClock()
    opt = RuntimeOptimizer(clock=clock)
    opt.record_metric(MetricType.CPU, 97.0, source="w")

    async def main():
        async with opt:
            assert opt.is_running and opt.get_health_status().is_running
            await turns()
            assert opt.last_analysis is not None
            assert opt._worker is None
        assert not opt.is_running

    asyncio.run(main())


def test_failing_cycle_is_logged_and_maintenance_goes_on(caplog):
    calls = 0
    done = None

    def tick():
        nonlocal calls
        calls += 1
        if calls == 2:
            done.set()
        raise RuntimeError("boom")

    async def main():
        nonlocal done
        done = asyncio.Event()
        m = AsyncMaintenance(tick, lambda: 3600.0, "t")
        m.start()
        await turns()
        m.wake()
        await asyncio.wait_for(done.wait(), 10)
        await m.aclose()
        assert not m.running

    asyncio.run(main())
    assert calls == 2
    assert "maintenance cycle failed" in caplog.text


def test_start_needs_a_running_loop_and_one_loop_only():
    m = AsyncMaintenance(lambda: None, lambda: 3600.0, "t")
    with pytest.raises(RuntimeError):
        m.start()

    async def first():
        m.start()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(first())
        with pytest.raises(RuntimeError, match="another event loop"):
            asyncio.run(first())
        loop.run_until_complete(m.aclose())
    finally:
        loop.close()


def _loop_in_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    loop.set_debug(True)         # a cross-thread call_soon raises there
    started = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert started.wait(30)
    return loop, t


def test_aclose_from_another_threads_loop_is_handed_to_the_owning_loop():
    arm = AdaptiveResourceManager(ResourceManagerConfig(monitoring_interval_s=3600.0))
    loop, thread = _loop_in_thread()
    errors: list[dict] = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    try:
        asyncio.run_coroutine_threadsafe(arm.__aenter__(), loop).result(30)
        task = arm._aio_maintenance._task
        assert arm.is_running and task.get_loop() is loop

        async def elsewhere():           # another thread, another loop
            await arm.aclose()
            return task.done(), task.cancelled()

        assert asyncio.run(elsewhere()) == (True, True)
        assert not arm.is_running
        pending = asyncio.run_coroutine_threadsafe(_others(), loop).result(30)
        assert pending == []             # nothing left behind on the owning loop
        assert errors == []
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


async def _others() -> list[asyncio.Task]:
    me = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not me]


def test_aclose_after_the_owning_loop_stopped_or_closed():
    m = AsyncMaintenance(lambda: None, lambda: 3600.0, "t")
    loop = asyncio.new_event_loop()

    async def first():
        m.start()

    loop.run_until_complete(first())
    task = m._task
    asyncio.run(m.aclose())                 # the owner is stopped: cancelled when it runs
    assert not m.running or not task.done()
    loop.run_until_complete(turns())
    assert task.cancelled()
    loop.close()

    m2 = AsyncMaintenance(lambda: None, lambda: 3600.0, "t2")
    loop2 = asyncio.new_event_loop()

    async def second():
        m2.start()

    loop2.run_until_complete(second())
    loop2.close()
    asyncio.run(m2.aclose())                # a closed owner: nothing to do, no error
    assert not m2.running or m2._task is None
