"""ArbiterRoutingStrategy against the real LiteLLM Router and a fake provider.

The fake provider (tests/litellm_fake.py) is the ground truth: it counts the
calls running on each deployment.  No network, no sleeping for time to pass:
calls yield to the loop or wait on events; queue deadlines and leases run on
a ManualClock.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")   # no fetch at import
litellm = pytest.importorskip("litellm")

from litellm import Router  # noqa: E402
from litellm.types.router import RouterRateLimitError  # noqa: E402

from arbiter_core import EjectionConfig, ManualClock  # noqa: E402
from arbiter_core.integrations.litellm import (  # noqa: E402
    METADATA_KEY,
    ArbiterRoutingStrategy,
    default_is_deployment_failure,
)
from litellm_fake import model_list, register  # noqa: E402

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fake():
    return register()


@pytest.fixture
def installed():
    strategies: list[ArbiterRoutingStrategy] = []

    def install(router: Router, **kw) -> ArbiterRoutingStrategy:
        s = ArbiterRoutingStrategy(**kw).install(router)
        strategies.append(s)
        return s

    yield install
    for s in strategies:
        s.uninstall()


async def flush_logging() -> None:
    """Deliver what LiteLLM's logging worker has queued (log events)."""
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    for _ in range(20):        # the stream wrapper hands its end over in a task
        await asyncio.sleep(0)
    await GLOBAL_LOGGING_WORKER.flush()


async def gather_calls(router: Router, n: int, model: str = "gpt", **kw):
    async def one():
        try:
            await router.acompletion(model=model, messages=MSG, **kw)
        except Exception as exc:
            return exc
        return None
    return await asyncio.gather(*(one() for _ in range(n)))


def test_500_concurrent_calls_wait_instead_of_being_refused(fake, installed):
    router = Router(model_list=model_list(10, 30), num_retries=0)
    s = installed(router)

    async def main():
        return await gather_calls(router, 500)

    errors = [e for e in asyncio.run(main()) if e is not None]
    assert errors == []
    assert sum(fake.calls.values()) == 500
    assert max(fake.peak.values()) <= 30              # never above LiteLLM's limit
    # and the deployments ran many calls at once, not one by one: how many of
    # the 300 slots were busy at the same moment depends on how LiteLLM's own
    # awaits interleave on a loaded 2-core machine (300 alone, 221 under load)
    assert sum(fake.peak.values()) >= 150
    st = s.stats()
    assert (st.picks, st.granted, st.refused, st.succeeded) == (500, 500, 0, 500)
    assert st.withdrawn == {}          # no attempt was refused before its call
    assert s.outstanding == 0
    assert set(s.in_flight().values()) == {0}
    g = st.groups["gpt"]
    assert g.released == 500 and g.queued == 0 and g.active == 0


def test_builtin_strategy_refuses_at_the_limit(fake):
    # the comparison the adapter exists for: LiteLLM's own strategy fails the excess
    router = Router(model_list=model_list(10, 30), num_retries=0,
                    routing_strategy="simple-shuffle")
    errors = [e for e in asyncio.run(gather_calls(router, 500)) if e is not None]
    assert len(errors) == 200
    assert all(isinstance(e, litellm.RateLimitError) for e in errors)


def test_limits_follow_litellms_rule(fake, installed):
    ml = model_list(4, None)
    ml[0]["litellm_params"]["max_parallel_requests"] = 3
    ml[0]["litellm_params"]["rpm"] = 50
    ml[1]["litellm_params"]["rpm"] = 7
    ml[2]["litellm_params"]["tpm"] = 2000              # 2000/1000*6 = 12
    router = Router(model_list=ml, default_max_parallel_requests=9)
    s = installed(router, default_max_parallel_requests=5)
    caps = {p.agent_id: p.max_task_capacity
            for p in s.manager("gpt").monitor.get_all_agent_resources()}
    assert caps == {"d0": 3, "d1": 7, "d2": 12, "d3": 9}
    router2 = Router(model_list=model_list(1, None, group="solo", prefix="s"))
    s2 = installed(router2, default_max_parallel_requests=5)
    assert s2.manager("solo").monitor.get_agent_resources("s0").max_task_capacity == 5


def test_always_failing_deployment_is_ejected_and_retries_go_elsewhere(fake, installed):
    fake.behaviour["d0"] = "fail"
    router = Router(model_list=model_list(4, 5), num_retries=1, retry_after=0)
    s = installed(router, strategy="round_robin")

    async def main():
        for _ in range(20):
            await router.acompletion(model="gpt", messages=MSG)   # never raises: retried

    asyncio.run(main())
    assert s.ejected() == frozenset({"d0"})
    assert fake.calls["d0"] == 3                       # ejected after the third failure
    st = s.stats()
    assert st.failed == 3 and st.succeeded == 20
    assert st.withdrawn == {}          # LiteLLM refused no retry
    assert s.outstanding == 0


def test_retry_never_gets_the_deployment_that_failed(fake, installed):
    fake.behaviour["d0"] = "fail"
    router = Router(model_list=model_list(2, 5), num_retries=1, retry_after=0)
    s = installed(router, strategy="least_loaded",
                  ejection=EjectionConfig(enabled=False))

    async def main():
        for _ in range(10):
            await router.acompletion(model="gpt", messages=MSG)

    asyncio.run(main())
    # each failed first attempt on d0 was retried on d1, never on d0 again
    assert fake.calls["d1"] == 10
    assert s.stats().failed == fake.calls["d0"]
    assert s.outstanding == 0


def test_fallback_to_another_group(fake, installed):
    ml = model_list(2, 5, group="a", prefix="a") + model_list(2, 5, group="b", prefix="b")
    fake.behaviour.update(a0="fail", a1="fail")
    router = Router(model_list=ml, num_retries=0, fallbacks=[{"a": ["b"]}])
    s = installed(router, ejection=EjectionConfig(enabled=False))

    async def main():
        return await gather_calls(router, 6, model="a")

    assert asyncio.run(main()) == [None] * 6
    assert fake.calls["b0"] + fake.calls["b1"] == 6
    st = s.stats()
    assert st.failed == 6 and st.succeeded == 6
    assert s.outstanding == 0
    assert set(s.managers()) == {"a", "b"}


def test_cancelled_calls_give_their_slots_back(fake, installed):
    router = Router(model_list=model_list(2, 2), num_retries=0)
    s = installed(router)

    async def main():
        fake.gate = asyncio.Event()
        fake.behaviour.update(d0="gate", d1="gate")
        fake.started_event = asyncio.Event()
        fake.start_target = 4
        tasks = [asyncio.create_task(router.acompletion(model="gpt", messages=MSG))
                 for _ in range(10)]
        await fake.started_event.wait()                # 4 running, 6 queued in arbiter
        assert s.outstanding == 4
        assert s.manager("gpt").allocator.queued_count == 6
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert s.outstanding == 0
        assert s.manager("gpt").allocator.queued_count == 0
        # the slots are free again: new calls run at once
        fake.behaviour.clear()
        assert await gather_calls(router, 4) == [None] * 4

    asyncio.run(main())
    st = s.stats()
    assert st.withdrawn["task_done"] == 4 and st.failed == 0
    assert s.outstanding == 0


def test_streams_release_at_their_end_and_abandoned_ones_by_lease(fake, installed):
    clock = ManualClock()
    router = Router(model_list=model_list(1, 3), num_retries=0)
    s = installed(router, lease_s=60.0, clock=clock)

    async def main():
        stream = await router.acompletion(model="gpt", messages=MSG, stream=True)
        chunks = [c async for c in stream]
        assert chunks
        await flush_logging()          # the stream's end is logged through LiteLLM's worker
        assert s.outstanding == 0
        abandoned = await router.acompletion(model="gpt", messages=MSG, stream=True)
        await abandoned.__anext__()
        assert s.outstanding == 1
        return abandoned

    keep = asyncio.run(main())
    assert s.outstanding == 1                          # the task ended: a stream is not released
    clock.advance(61.0)
    assert s.tick() == 1
    assert s.outstanding == 0
    assert s.stats().withdrawn["lease_expired"] == 1
    del keep


def test_select_without_a_call_is_released(fake, installed):
    router = Router(model_list=model_list(2, 1), num_retries=0)
    s = installed(router)

    async def main():
        await router.select("gpt", {"messages": MSG})
        await router.select("gpt", {"messages": MSG})
        assert s.outstanding == 1                      # the second pick released the first
        assert sum(s.in_flight().values()) == 1

    asyncio.run(main())
    assert s.outstanding == 0
    # given back uncharged: the first when its request data went (or by the
    # second pick of the task), the second likewise or when the task ended
    withdrawn = s.stats().withdrawn
    assert sum(withdrawn.values()) == 2
    assert set(withdrawn) <= {"collected", "superseded", "task_done"}


def test_queue_timeout_raises_litellms_rate_limit_error(fake, installed):
    clock = ManualClock()
    router = Router(model_list=model_list(1, 1), num_retries=0)
    s = installed(router, queue_timeout_s=5.0, clock=clock)

    async def main():
        fake.gate = asyncio.Event()
        fake.behaviour["d0"] = "gate"
        fake.started_event = asyncio.Event()
        fake.start_target = 1
        first = asyncio.create_task(router.acompletion(model="gpt", messages=MSG))
        await fake.started_event.wait()
        second = asyncio.create_task(router.acompletion(model="gpt", messages=MSG))
        for _ in range(50):
            await asyncio.sleep(0)
        assert s.manager("gpt").allocator.queued_count == 1
        clock.advance(5.0)
        s.tick()
        with pytest.raises(Exception) as err:
            await second
        fake.gate.set()
        await first
        return err.value

    exc = asyncio.run(main())
    assert isinstance(exc, (RouterRateLimitError, litellm.RateLimitError)) or \
        getattr(exc, "status_code", None) == 429
    st = s.stats()
    assert st.refused == 1 and st.succeeded == 1 and s.outstanding == 0
    assert st.groups["gpt"].timed_out == 1


def test_sync_router_waits_for_a_slot(fake, installed):
    router = Router(model_list=model_list(2, 1), num_retries=0)
    s = installed(router)
    errors: list[BaseException] = []

    def worker():
        for _ in range(5):
            try:
                router.completion(model="gpt", messages=MSG)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(fake.calls.values()) == 20
    assert max(fake.peak.values()) <= 1
    end = time.monotonic() + 10
    while s.outstanding and time.monotonic() < end:
        time.sleep(0.001)      # the logging thread's delivery
    assert s.outstanding == 0
    assert s.stats().succeeded == 20


def test_metadata_is_copied_not_shared(fake, installed):
    router = Router(model_list=model_list(2, 5), num_retries=0)
    s = installed(router)
    shared = {"user": "x"}

    async def main():
        await gather_calls(router, 3, metadata=shared)

    asyncio.run(main())
    assert shared["user"] == "x"
    assert METADATA_KEY not in shared      # our stamp went into a copy
    assert s.outstanding == 0


def test_removed_deployment_leaves_the_group(fake, installed):
    from litellm.router_api import ChangeSet

    router = Router(model_list=model_list(3, 5), num_retries=0)
    s = installed(router)
    assert set(s.in_flight()) == {"d0", "d1", "d2"}
    router.apply(ChangeSet(delete=["d1"]))

    async def main():
        return await gather_calls(router, 10)

    assert asyncio.run(main()) == [None] * 10
    assert fake.calls["d1"] == 0
    assert set(s.in_flight()) == {"d0", "d2"}


def test_uninstall_restores_the_router(fake):
    router = Router(model_list=model_list(2, 5), num_retries=0)
    with ArbiterRoutingStrategy().install(router) as s:
        assert s._logger in litellm.callbacks
        asyncio.run(gather_calls(router, 2))
        assert s.stats().granted == 2
    assert s._logger not in litellm.callbacks
    assert s.router is None
    assert asyncio.run(gather_calls(router, 2)) == [None, None]
    assert s.stats().granted == 2                      # no longer asked
    with pytest.raises(RuntimeError, match="not installed"):
        s.get_available_deployment("gpt")


def test_install_twice_is_refused(fake, installed):
    router = Router(model_list=model_list(1, 5))
    s = installed(router)
    with pytest.raises(RuntimeError, match="already installed"):
        s.install(router)


def test_failure_classification():
    assert default_is_deployment_failure(None)
    assert default_is_deployment_failure(TimeoutError())
    for code in (401, 403, 408, 429, 500, 503):
        exc = Exception("x")
        exc.status_code = code   # type: ignore[attr-defined]
        assert default_is_deployment_failure(exc), code
    for code in (400, 404, 422):
        exc = Exception("x")
        exc.status_code = code   # type: ignore[attr-defined]
        assert not default_is_deployment_failure(exc), code
    assert not default_is_deployment_failure(ValueError("bad request"))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="queue_timeout_s"):
        ArbiterRoutingStrategy(queue_timeout_s=0)
    with pytest.raises(ValueError, match="default_max_parallel_requests"):
        ArbiterRoutingStrategy(default_max_parallel_requests=0)
    with pytest.raises(TypeError, match="ejection"):
        ArbiterRoutingStrategy(ejection={"enabled": False})
    with pytest.raises(TypeError, match="is_deployment_failure"):
        ArbiterRoutingStrategy(is_deployment_failure=3)
    with pytest.raises(TypeError, match="respect_cooldowns"):
        ArbiterRoutingStrategy(respect_cooldowns="yes")
    with pytest.raises(ValueError):
        ArbiterRoutingStrategy("fastest")


def test_specific_deployment_is_honoured_and_counted(fake, installed):
    router = Router(model_list=model_list(3, 5), num_retries=0)
    s = installed(router)

    async def main():
        for _ in range(3):
            await router.acompletion(model="d1", specific_deployment=True, messages=MSG)

    asyncio.run(main())
    assert fake.calls == {"d1": 3}
    assert s.stats().succeeded == 3 and s.outstanding == 0
    assert s.manager("gpt").monitor.get_agent_resources("d1").tasks_completed == 3


def test_priority_from_metadata_orders_the_queue(fake, installed):
    clock = ManualClock()
    router = Router(model_list=model_list(1, 1), num_retries=0)
    s = installed(router, clock=clock)
    order: list[str] = []

    async def call(tag: str, prio: int | None):
        md = {"tag": tag} if prio is None else {"tag": tag, "arbiter_priority": prio}
        await router.acompletion(model="gpt", messages=MSG, metadata=md)
        order.append(tag)

    async def main():
        fake.gate = asyncio.Event()
        fake.behaviour["d0"] = "gate"
        fake.started_event = asyncio.Event()
        fake.start_target = 1
        first = asyncio.create_task(call("first", None))
        await fake.started_event.wait()
        fake.behaviour["d0"] = "ok"
        low = asyncio.create_task(call("low", 0))
        await asyncio.sleep(0)
        high = asyncio.create_task(call("high", 100))
        for _ in range(50):
            await asyncio.sleep(0)
        assert s.manager("gpt").allocator.queued_count == 2
        fake.gate.set()
        await asyncio.gather(first, low, high)

    asyncio.run(main())
    assert order == ["first", "high", "low"]
    assert s.outstanding == 0


def test_the_only_deployment_of_a_group_is_never_ejected(fake, installed):
    fake.behaviour["s0"] = "fail"
    router = Router(model_list=model_list(1, 5, group="solo", prefix="s"), num_retries=0)
    s = installed(router)

    async def main():
        return await gather_calls(router, 6, model="solo")

    errors = asyncio.run(main())
    assert all(e is not None for e in errors)
    assert s.ejected() == frozenset()
    assert s.stats().failed == 6 and s.stats().refused == 0
    assert not s.manager("solo").config.ejection.enabled


def test_added_and_changed_deployments_are_followed(fake, installed):
    from litellm.router_api import ChangeSet
    from litellm.types.router import Deployment

    router = Router(model_list=model_list(2, 5), num_retries=0)
    s = installed(router)
    router.apply(ChangeSet(upsert=[Deployment(**model_list(3, 7)[2]),      # new d2
                                   Deployment(**model_list(1, 9)[0])]))    # d0: 5 -> 9

    async def main():
        return await gather_calls(router, 6)

    assert asyncio.run(main()) == [None] * 6
    caps = {p.agent_id: p.max_task_capacity
            for p in s.manager("gpt").monitor.get_all_agent_resources()}
    assert caps == {"d0": 9, "d1": 5, "d2": 7}


def test_prometheus_scrape_of_every_model_group(fake, installed):
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from arbiter_core.exporters.prometheus import ArbiterCollector

    fake.behaviour["d3"] = "fail"
    router = Router(model_list=model_list(4, 5), num_retries=1, retry_after=0)
    s = installed(router, strategy="round_robin")
    asyncio.run(gather_calls(router, 12))
    reg = CollectorRegistry()
    reg.register(ArbiterCollector(manager=s.managers()))
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}
    ejected = {smp.labels["agent"]: smp.value for smp in fams["arbiter_agent_ejected"].samples}
    assert ejected == {"d0": 0.0, "d1": 0.0, "d2": 0.0, "d3": 1.0}
    assert all(smp.labels["group"] == "gpt" for smp in fams["arbiter_agent_ejected"].samples)
    released = [smp.value for smp in fams["arbiter_allocations"].samples
                if smp.labels["outcome"] == "released"]
    assert released == [s.stats().succeeded + s.stats().failed]


async def turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.mark.parametrize("how", ["break", "aclose", "cancel"])
def test_abandoned_streams_give_their_slots_back(fake, installed, how):
    # two streams the caller stops reading fill a deployment of two slots; the
    # next call must not wait for the lease (the clock never moves here)
    clock = ManualClock()
    router = Router(model_list=model_list(1, 2), num_retries=0)
    s = installed(router, lease_s=600.0, clock=clock)

    async def read_one_chunk():
        stream = await router.acompletion(model="gpt", messages=MSG, stream=True)
        if how == "aclose":
            await stream.__anext__()
            await stream.aclose()
            return
        async for _ in stream:
            if how == "break":
                break
            # "cancel": the provider holds the stream after its first chunk

    async def main():
        fake.gate = asyncio.Event()
        fake.behaviour["d0"] = "gate" if how == "cancel" else "ok"
        readers = [asyncio.create_task(read_one_chunk()) for _ in range(2)]
        if how == "cancel":
            fake.started_event = asyncio.Event()
            fake.start_target = 2
            await fake.started_event.wait()
            await turns()
            assert s.outstanding == 2
            for t in readers:
                t.cancel()
        # the caller may keep its tasks (a cancelled one keeps its frames, and
        # so the stream, alive): the cancellation itself must release
        await asyncio.gather(*readers, return_exceptions=True)
        await turns()
        assert s.outstanding == 0, f"{how}: the abandoned streams still hold their slots"
        assert s.manager("gpt").allocator.active_count == 0
        fake.behaviour["d0"] = "ok"
        assert await gather_calls(router, 4) == [None] * 4

    asyncio.run(main())
    st = s.stats()
    assert st.withdrawn == {"task_done" if how == "cancel" else "collected": 2}
    assert st.failed == 0 and s.outstanding == 0


def test_a_stream_still_being_read_keeps_its_slot(fake, installed):
    # the release on collection must not come early: a stream the caller still
    # holds (here after one chunk, the rest gated) keeps its slot through a full
    # garbage collection, and the provider never runs more than the limit
    import gc

    router = Router(model_list=model_list(1, 1), num_retries=0)
    s = installed(router, clock=ManualClock())

    async def main():
        fake.gate = asyncio.Event()
        fake.behaviour["d0"] = "gate"
        stream = await router.acompletion(model="gpt", messages=MSG, stream=True)
        await stream.__anext__()
        gc.collect()
        await turns()
        assert s.outstanding == 1
        waiting = asyncio.create_task(router.acompletion(model="gpt", messages=MSG))
        await turns()
        assert s.manager("gpt").allocator.queued_count == 1     # the slot is still taken
        fake.gate.set()
        assert len([c async for c in stream]) >= 1
        fake.behaviour["d0"] = "ok"
        await waiting

    asyncio.run(main())
    assert fake.peak["d0"] == 1
    st = s.stats()
    assert st.succeeded == 2 and s.outstanding == 0


def test_a_stream_handed_to_another_task_lives_on_then_is_collected(fake, installed):
    # the picking task ends normally and returns the stream (its result holds
    # it): the slot stays until the stream is read to its end or dropped
    router = Router(model_list=model_list(1, 2), num_retries=0)
    s = installed(router, clock=ManualClock())

    async def main():
        opener = asyncio.create_task(
            router.acompletion(model="gpt", messages=MSG, stream=True))
        stream = await opener
        await turns()
        assert opener.done() and s.outstanding == 1     # the task's end released nothing
        await stream.__anext__()
        del stream
        await turns()
        assert s.outstanding == 1                       # the done task still holds it
        del opener
        await turns()
        assert s.outstanding == 0

    asyncio.run(main())
    assert s.stats().withdrawn == {"collected": 1}


def test_uninstall_mid_traffic_withdraws_queued_picks_and_can_reinstall(fake):
    clock = ManualClock()
    router = Router(model_list=model_list(1, 2), num_retries=0)
    s = ArbiterRoutingStrategy(clock=clock).install(router)

    async def main():
        fake.gate = asyncio.Event()
        fake.behaviour["d0"] = "gate"
        fake.started_event = asyncio.Event()
        fake.start_target = 2
        calls = [asyncio.create_task(router.acompletion(model="gpt", messages=MSG))
                 for _ in range(6)]
        await fake.started_event.wait()
        await turns()
        mgr = s.manager("gpt")
        assert s.outstanding == 2 and mgr.allocator.queued_count == 4
        s.uninstall()
        # the queued picks end now (refused: LiteLLM's 429), none is granted later
        assert mgr.allocator.queued_count == 0 and mgr.allocator.active_count == 0
        await turns()
        queued = [t for t in calls if t.done()]
        assert len(queued) == 4
        assert all(isinstance(t.exception(), (RouterRateLimitError, litellm.RateLimitError))
                   for t in queued)
        assert s.outstanding == 0 and s.managers() == {}
        fake.gate.set()
        await asyncio.gather(*calls, return_exceptions=True)
        assert fake.peak["d0"] == 2
        # the same object installs again, clean: every call is served through it
        s.install(router)
        fake.behaviour["d0"] = "ok"
        before = s.stats()
        assert await gather_calls(router, 6) == [None] * 6
        after = s.stats()
        assert after.granted - before.granted == 6 and after.refused == before.refused
        assert s.manager("gpt").get_allocation_statistics().released == 6
        s.uninstall()

    asyncio.run(main())
    st = s.stats()
    assert st.outstanding == 0
    assert st.picks == st.granted + st.refused
    assert st.granted == st.succeeded + st.failed + sum(st.withdrawn.values())
    assert st.withdrawn == {"uninstalled": 2}
    assert st.refused == 4


def _cooling(router: Router, ids: list[str]) -> set[str]:
    return {did for did, _ in router.health().cooldowns.get_active_cooldowns(ids, None)}


def test_deployments_litellm_cooled_down_are_not_picked(fake, installed):
    fake.behaviour["d0"] = "fail"
    router = Router(model_list=model_list(3, 5), num_retries=0, allowed_fails=0,
                    cooldown_time=3600)
    s = installed(router, strategy="round_robin", ejection=EjectionConfig(enabled=False))

    async def main():
        errors = [e for e in await gather_calls(router, 3) if e is not None]
        assert len(errors) == 1                        # d0's turn, once
        assert _cooling(router, ["d0", "d1", "d2"]) == {"d0"}
        # round robin would come back to d0 every third call: it is cooling down
        assert await gather_calls(router, 12) == [None] * 12

    asyncio.run(main())
    assert fake.calls["d0"] == 1
    assert fake.calls["d1"] + fake.calls["d2"] == 14
    assert s.outstanding == 0


def test_when_litellm_cools_down_every_deployment_the_pick_goes_on_load(fake, installed):
    fake.behaviour.update(d0="fail", d1="fail")
    router = Router(model_list=model_list(2, 5), num_retries=0, allowed_fails=0,
                    cooldown_time=3600)
    s = installed(router, ejection=EjectionConfig(enabled=False))

    async def main():
        await gather_calls(router, 4)
        assert _cooling(router, ["d0", "d1"]) == {"d0", "d1"}
        fake.behaviour.clear()            # recovered; LiteLLM still counts them cooling
        return await gather_calls(router, 4)

    assert asyncio.run(main()) == [None] * 4
    assert s.outstanding == 0
