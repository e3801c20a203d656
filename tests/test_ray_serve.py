"""ArbiterRequestRouter on a real local Ray Serve application.

Run by ``make test-ray`` (which installs the ``ray`` extra, Ray Serve
included, and fails if it is missing); ``make test`` leaves this module to it.
A deployment of 4 replicas with ``max_ongoing_requests = 4`` takes 200
concurrent requests; each replica reports how many requests it runs at once.
The replicas' work is a short ``asyncio.sleep`` (the service time of the fake
model, not a wait for time to pass in the test).
"""

from __future__ import annotations

import asyncio
import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray") if not os.environ.get("ARBITER_REQUIRE_RAY") else \
    __import__("ray")
serve = pytest.importorskip("ray.serve") if not os.environ.get("ARBITER_REQUIRE_RAY") else \
    __import__("ray.serve", fromlist=["serve"])

from ray.serve.config import RequestRouterConfig  # noqa: E402

from arbiter_core.integrations.ray_serve import ArbiterRequestRouter  # noqa: E402

LIMIT = 4
REPLICAS = 4


@serve.deployment(num_replicas=REPLICAS, max_ongoing_requests=LIMIT,
                  ray_actor_options={"num_cpus": 0},
                  request_router_config=RequestRouterConfig(
                      # by import path: each process imports the class (a
                      # class object would travel by value)
                      request_router_class="arbiter_core.integrations.ray_serve:"
                                           "ArbiterRequestRouter",
                      request_router_kwargs={"strategy": "least_loaded",
                                             "stats_period_s": 0.05},
                      request_routing_stats_period_s=0.2))
class FakeModel:
    def __init__(self) -> None:
        import ray as _ray

        self.name = _ray.get_runtime_context().get_actor_name() or "?"
        self.running = 0

    def record_routing_stats(self) -> dict[str, float]:
        # what an engine reports: a fraction of its KV cache and its queue
        return {"kv_cache_usage": 0.25, "waiting": 0, "running": self.running}

    async def __call__(self, service_s: float) -> tuple[str, int]:
        self.running += 1
        at_entry = self.running
        try:
            await asyncio.sleep(service_s)
        finally:
            self.running -= 1
        return self.name, at_entry


@pytest.fixture(scope="module")
def app():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    handle = serve.run(FakeModel.bind(), name="fake", route_prefix=None)
    yield handle
    serve.shutdown()
    ray.shutdown()


def routers() -> list[ArbiterRequestRouter]:
    r = ArbiterRequestRouter.latest("FakeModel", app="fake")
    return [] if r is None else [r]


async def fire(handle, n: int, service_s: float):
    async def one():
        try:
            return await handle.remote(service_s)
        except Exception as exc:   # a replica killed mid-request
            return exc
    return await asyncio.gather(*(one() for _ in range(n)))


def settle(check, rounds: int = 200):
    """Serve reports completions on its router loop: wait until ``check()``."""
    import time

    for _ in range(rounds):
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_200_concurrent_requests_no_replica_above_its_limit(app):
    results = asyncio.run(fire(app, 200, 0.02))
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    by_replica: dict[str, int] = {}
    for name, at_entry in results:
        by_replica[name] = max(by_replica.get(name, 0), at_entry)
    assert len(by_replica) == REPLICAS            # every replica served
    assert max(by_replica.values()) <= LIMIT      # none above its limit
    [router] = routers()
    assert router.stats().replicas == REPLICAS
    assert settle(lambda: router.outstanding == 0), router.stats()
    st = router.stats()
    assert st.chosen == st.completed + sum(st.withdrawn.values())
    # every request ran on a reservation, except those Serve's own probe sent
    # to a replica arbiter still counted full (completions reach it late)
    assert st.completed + st.unreserved >= 200
    assert router.manager.get_allocation_statistics().active == 0
    # the replicas' routing stats reached the manager (kv fraction -> percent)
    kv = {p.kv_cache_usage for p in router.manager.monitor.get_all_agent_resources()}
    assert kv == {25.0}, kv


def test_a_replica_killed_mid_run_is_routed_around_and_released(app):
    [router] = routers()
    before = router.stats()

    async def main():
        batch = asyncio.ensure_future(fire(app, 200, 0.05))
        # kill one replica while the batch runs
        while router.manager.get_allocation_statistics().active < 8:
            await asyncio.sleep(0.01)
        victims = [a for a in ray.util.list_named_actors(all_namespaces=True)
                   if "SERVE_REPLICA" in a["name"] and "FakeModel" in a["name"]]
        ray.kill(ray.get_actor(victims[0]["name"], namespace=victims[0]["namespace"]),
                 no_restart=True)
        return victims[0]["name"], await batch

    killed, results = asyncio.run(main())
    served = [r for r in results if not isinstance(r, Exception)]
    failed = [r for r in results if isinstance(r, Exception)]
    # only requests running on the killed replica may fail; the rest are served
    assert len(failed) <= LIMIT, failed[:3]
    assert len(served) + len(failed) == 200
    assert max(at for _, at in served) <= LIMIT
    after_kill = [name for name, _ in served[-50:]]
    assert killed not in after_kill                # routed around
    assert settle(lambda: router.outstanding == 0), router.stats()
    st = router.stats()
    assert st.chosen - before.chosen == (st.completed - before.completed) + \
        sum(st.withdrawn.values()) - sum(before.withdrawn.values())
    assert router.manager.get_allocation_statistics().active == 0


StickyModel = FakeModel.options(
    name="StickyModel",
    request_router_config=RequestRouterConfig(
        request_router_class="arbiter_core.integrations.ray_serve:ArbiterRequestRouter",
        request_router_kwargs={"strategy": "cache_affinity"}))


def test_a_session_sticks_to_its_replica_under_cache_affinity(app):
    # Serve's session id is the default affinity key: with cache_affinity a
    # session's requests land on one replica while its load is within the
    # bound (one request at a time, each released before the next), by
    # consistent hashing
    handle = serve.run(StickyModel.bind(), name="sticky", route_prefix=None)
    try:
        for k in range(3):
            h = handle.options(session_id=f"s{k}")
            names = []
            for _ in range(6):
                names.append(h.remote(0.001).result()[0])
                router = ArbiterRequestRouter.latest("StickyModel", app="sticky")
                assert router is not None
                assert settle(lambda r=router: r.outstanding == 0), router.stats()
            assert len(set(names)) == 1, names
        assert router.manager.balancer.strategy.value == "cache_affinity"
    finally:
        serve.delete("sticky")
