"""Selection benchmarks, side by side with a plain-Python least-loaded scan.

Run::

    .venv/bin/pytest benchmarks/test_bench_select.py --benchmark-only

The ratio table (median of ours / median of the plain scan over the same pool)
is printed at the end of the module.  Goals (issue 4): LoadBalancer selection
at 100 agents <= 0.2x the plain scan; the LEAST_LOADED kernel at 10,000 agents
<= 0.02x; POWER_OF_TWO independent of the pool size.  Under
``--benchmark-disable`` (CI) every body runs once as a correctness check.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from resource_peers import keep, plain_least_loaded, report

from arbiter_core import LoadBalancer, LoadBalancingStrategy, ManualClock, ResourceMonitor
from arbiter_core._select import STRATEGY_CODES

_MEDIANS: dict[str, float] = {}


def _pool(n: int, seed: int = 1) -> tuple[ResourceMonitor, list[dict[str, Any]]]:
    """A monitor and the same agents as plain dicts (the peer's data)."""
    rng = random.Random(seed)
    mon = ResourceMonitor(clock=ManualClock(), max_agents=n)
    agents = []
    for i in range(n):
        aid = f"agent-{i}"
        cpu, mem, tasks = rng.uniform(0, 65), rng.uniform(0, 70), rng.randint(0, 9)
        mon.register_agent(aid, max_tasks=10)
        mon.record_usage(aid, cpu=cpu, memory=mem)
        mon.update_task_count(aid, tasks)
        agents.append({"id": aid, "tasks": tasks, "max_tasks": 10, "cpu": cpu,
                       "memory": mem, "health": "healthy"})
    return mon, agents


@pytest.fixture(scope="module")
def pool100() -> tuple[ResourceMonitor, list[dict[str, Any]]]:
    return _pool(100)


@pytest.fixture(scope="module")
def pool10k() -> tuple[ResourceMonitor, list[dict[str, Any]]]:
    return _pool(10_000)


def _keep(benchmark: Any, name: str) -> None:
    keep(_MEDIANS, benchmark, name)


@pytest.fixture(scope="module", autouse=True)
def _ratio_report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    p100, p10k = _MEDIANS.get("table_power_of_two@100"), _MEDIANS.get("table_power_of_two@10000")
    notes = ([f"  POWER_OF_TWO kernel, 10,000 vs 100 agents: {p10k / p100:.2f}x"]
             if p100 and p10k else [])
    report(request, "selection", _MEDIANS, notes)


@pytest.mark.benchmark(group="select-100")
def test_plain_least_loaded_100(benchmark, pool100):
    mon, agents = pool100
    best = benchmark(plain_least_loaded, agents)
    assert best in mon
    _keep(benchmark, "plain_least_loaded@100")


@pytest.mark.benchmark(group="select-100")
@pytest.mark.parametrize("strategy", list(LoadBalancingStrategy), ids=lambda s: s.value)
def test_balancer_select_agent_100(benchmark, pool100, strategy):
    mon, agents = pool100
    lb = LoadBalancer(mon, strategy, seed=5)
    d = benchmark(lb.select_agent)
    assert d.selected_agent_id in mon
    if strategy is LoadBalancingStrategy.LEAST_LOADED:
        # same answer as the peer on the same data (no ties with random floats)
        assert d.selected_agent_id == plain_least_loaded(agents)
    _keep(benchmark, f"select_agent[{strategy.value}]@100")


@pytest.mark.benchmark(group="select-10k")
def test_plain_least_loaded_10k(benchmark, pool10k):
    mon, agents = pool10k
    assert benchmark(plain_least_loaded, agents) in mon
    _keep(benchmark, "plain_least_loaded@10000")


@pytest.mark.benchmark(group="select-10k")
def test_table_least_loaded_10k(benchmark, pool10k):
    mon, agents = pool10k
    table = mon.table
    slot = benchmark(table.select, STRATEGY_CODES["least_loaded"])
    assert table.agent_id(slot) == plain_least_loaded(agents)
    _keep(benchmark, "table_least_loaded@10000")


@pytest.mark.benchmark(group="select-10k")
def test_balancer_least_loaded_10k(benchmark, pool10k):
    mon, agents = pool10k
    lb = LoadBalancer(mon, LoadBalancingStrategy.LEAST_LOADED)
    d = benchmark(lb.select_agent)
    assert d.selected_agent_id == plain_least_loaded(agents)
    _keep(benchmark, "select_agent[least_loaded]@10000")


@pytest.mark.benchmark(group="power-of-two")
@pytest.mark.parametrize("n", [100, 10_000])
def test_table_power_of_two_scaling(benchmark, pool100, pool10k, n):
    mon, _ = pool100 if n == 100 else pool10k
    table = mon.table
    slot = benchmark(table.select, STRATEGY_CODES["power_of_two"])
    assert slot >= 0
    _keep(benchmark, f"table_power_of_two@{n}")


@pytest.mark.benchmark(group="power-of-two")
def test_balancer_power_of_two_10k(benchmark, pool10k):
    mon, _ = pool10k
    lb = LoadBalancer(mon, LoadBalancingStrategy.POWER_OF_TWO, seed=5)
    assert benchmark(lb.select_agent).selected_agent_id in mon
    _keep(benchmark, "select_agent[power_of_two]@10000")


@pytest.mark.benchmark(group="reserve")
def test_select_and_reserve_release_100(benchmark, pool100):
    mon, _ = pool100
    lb = LoadBalancer(mon, LoadBalancingStrategy.LEAST_LOADED, seed=5)
    before = mon.get_pool_stats().tasks_in_progress

    def cycle() -> str:
        d = lb.select_and_reserve()
        lb.release(d.selected_agent_id)
        return d.selected_agent_id

    assert benchmark(cycle) in mon
    assert mon.get_pool_stats().tasks_in_progress == before
    _keep(benchmark, "reserve+release@100")
