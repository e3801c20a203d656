"""The cost of cache affinity: allocate + release through the manager at
100 agents with a 32-block prefix under ``cache_affinity``, side by side with
a plain allocate + release (``least_loaded``, no prefix).

Run::

    .venv/bin/pytest benchmarks/test_bench_affinity.py --benchmark-only

Goal (issue 21): <= 2x the plain cycle.  The prefixes are those of LLM
traffic: 64 conversations whose 32-block prompts share an 8-block system
prompt, so the index holds shared blocks (held by every agent, skipped in
O(1)) and per-conversation runs (held by one or two agents).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    LoadBalancingStrategy,
    ManualClock,
    ResourceManagerConfig,
)

_MEDIANS: dict[str, float] = {}


def _manager(strategy: LoadBalancingStrategy, n: int = 100) -> AdaptiveResourceManager:
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=1, max_agents=n,
                                                        load_balancing_strategy=strategy),
                                  clock=ManualClock())
    for i in range(n):
        arm.register_agent(f"agent-{i}", max_tasks=10, cache_blocks=4096)
    return arm


def _requests(with_prefix: bool, count: int = 64) -> list[AllocationRequest]:
    rng = random.Random(3)
    system = [rng.getrandbits(64) for _ in range(8)]
    out = []
    for c in range(count):
        prefix = system + [rng.getrandbits(64) for _ in range(24)]
        out.append(AllocationRequest(f"bench-{c}", "task",
                                     prefix=prefix if with_prefix else None))
    return out


@pytest.fixture(scope="module", autouse=True)
def _ratio_report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    base = _MEDIANS.get("plain")
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if not base or tr is None or capman is None:
        return
    with capman.global_and_fixture_disabled():
        tr.write_line("")
        tr.write_line("affinity: allocate + release at 100 agents, ratio to the plain cycle")
        for name, t in sorted(_MEDIANS.items()):
            tr.write_line(f"  {name:<28} {t * 1e6:9.3f} us  {t / base:6.2f}x")


def _cycle(benchmark: Any, name: str, strategy: LoadBalancingStrategy,
           with_prefix: bool) -> None:
    arm = _manager(strategy)
    reqs = _requests(with_prefix)
    k = [0]

    def cycle() -> None:
        r = reqs[k[0] % len(reqs)]
        k[0] += 1
        arm.allocate_resources(r)
        arm.release_resources(r.request_id, success=True, duration_s=0.01)

    for _ in range(2 * len(reqs)):      # warm: every conversation cached somewhere
        cycle()
    benchmark(cycle)
    if benchmark.enabled and benchmark.stats is not None:
        _MEDIANS[name] = benchmark.stats.stats.median
    assert arm.monitor.affinity_stats()["violations"] == 0


@pytest.mark.benchmark(group="affinity")
def test_plain_allocate_release(benchmark):
    _cycle(benchmark, "plain", LoadBalancingStrategy.LEAST_LOADED, False)


@pytest.mark.benchmark(group="affinity")
def test_cache_affinity_32_block_prefix(benchmark):
    _cycle(benchmark, "cache_affinity+prefix32", LoadBalancingStrategy.CACHE_AFFINITY, True)


@pytest.mark.benchmark(group="affinity")
def test_least_loaded_recording_32_block_prefix(benchmark):
    _cycle(benchmark, "least_loaded+prefix32", LoadBalancingStrategy.LEAST_LOADED, True)
