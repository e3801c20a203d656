"""Allocation benchmarks through the AdaptiveResourceManager, side by side
with a plain-Python least-loaded scan over agent dicts.

Run::

    .venv/bin/pytest benchmarks/test_bench_allocation.py --benchmark-only

Goals (issue 10): allocate_resources + release_resources at 100 agents
<= 0.1x the plain scan; at 10,000 agents <= 0.01x; the cost of a block of
50,000 cycles after 400,000 requests <= 1.3x the first block.  The
500-concurrent async benchmark reports the p50/p99 of the allocation decision
time.  A ratio table is printed at the end of the module.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest
from _longrun import block_costs
from resource_peers import keep, plain_least_loaded, report

from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    AllocationStatus,
    ManualClock,
    ResourceManagerConfig,
    TaskPriority,
)

_MEDIANS: dict[str, float] = {}
_NOTES: list[str] = []


def _manager(n: int, seed: int = 1) -> tuple[AdaptiveResourceManager, list[dict[str, Any]]]:
    rng = random.Random(seed)
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=seed, max_agents=max(n, 1)),
                                  clock=ManualClock())
    agents = []
    for i in range(n):
        aid = f"agent-{i}"
        cpu, mem = rng.uniform(0, 65), rng.uniform(0, 70)
        arm.register_agent(aid, max_tasks=10)
        arm.record_usage(aid, cpu=cpu, memory=mem)
        agents.append({"id": aid, "tasks": 0, "max_tasks": 10, "cpu": cpu, "memory": mem,
                       "health": "healthy"})
    return arm, agents


def _keep(benchmark: Any, name: str) -> None:
    keep(_MEDIANS, benchmark, name)


@pytest.fixture(scope="module", autouse=True)
def _ratio_report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report(request, "allocation", _MEDIANS, _NOTES)


@pytest.mark.benchmark(group="allocate-release")
@pytest.mark.parametrize("n", [100, 10_000])
def test_plain_least_loaded(benchmark, n):
    _, agents = _manager(n)
    assert benchmark(plain_least_loaded, agents)
    _keep(benchmark, f"plain_least_loaded@{n}")


@pytest.mark.benchmark(group="allocate-release")
@pytest.mark.parametrize("n", [100, 10_000])
def test_manager_allocate_release(benchmark, n):
    arm, agents = _manager(n)
    request = AllocationRequest("bench", "task", priority=TaskPriority.MEDIUM)

    def cycle() -> str | None:
        res = arm.allocate_resources(request)
        arm.release_resources("bench", success=True, duration_s=0.01)
        return res.agent_id

    agent = benchmark(cycle)
    assert agent == plain_least_loaded(agents)       # the same choice as the peer
    s = arm.get_allocation_statistics()
    assert s.active == 0 and s.allocated == s.released == s.total_requests
    _keep(benchmark, f"allocate+release@{n}")


@pytest.mark.benchmark(group="async-500")
def test_500_concurrent_async_requests(benchmark):
    """500 concurrent requests over 50 agents x 4 slots (300 must queue)."""

    def run() -> AdaptiveResourceManager:
        arm = AdaptiveResourceManager(ResourceManagerConfig(seed=2), clock=ManualClock())
        for i in range(50):
            arm.register_agent(f"agent-{i}", max_tasks=4)

        async def one(i: int) -> None:
            rid = f"r{i}"
            res = await arm.allocate_resources_async(AllocationRequest(rid, "t", timeout_s=60.0))
            assert res.status is AllocationStatus.ALLOCATED
            await asyncio.sleep(0)
            arm.release_resources(rid, duration_s=0.01)

        async def main() -> None:
            await asyncio.gather(*(one(i) for i in range(500)))

        asyncio.run(main())
        return arm

    arm = benchmark.pedantic(run, rounds=3, iterations=1)
    s = arm.get_allocation_statistics()
    assert (s.total_requests, s.released, s.active, s.queued) == (500, 500, 0, 0)
    assert s.decision_p50_s is not None and s.decision_p99_s is not None
    _NOTES.append(f"  500 concurrent async requests: decision p50 {s.decision_p50_s * 1e6:.1f} us, "
                  f"p99 {s.decision_p99_s * 1e6:.1f} us; wait p50 {s.wait_p50_s:.3g} s "
                  f"(manual clock)")
    if benchmark.enabled and benchmark.stats is not None:
        _NOTES.append(f"  500 concurrent async requests, whole run: "
                      f"{benchmark.stats.stats.median * 1e3:.1f} ms median")


@pytest.mark.benchmark(group="long-run")
def test_long_run_cost_per_block_stays_flat(benchmark):
    """400,000 requests in blocks of 50,000: the last block costs about the
    first (the history of finished requests evicts in O(1)).  Without
    benchmarking (CI) a shortened run checks the accounting only."""
    size = {"blocks": 8, "block": 50_000} if benchmark.enabled else {"blocks": 4, "block": 2_000}
    costs = benchmark.pedantic(block_costs, kwargs=size, rounds=1, iterations=1)
    if not benchmark.enabled:
        return
    ratio = costs[-1] / costs[0]
    _NOTES.append("  long run, 8 x 50,000 allocate+release (us per cycle by block): "
                  + " ".join(f"{c / 50_000 * 1e6:.2f}" for c in costs)
                  + f"; last/first {ratio:.2f}x")
    assert ratio <= 1.3, costs
