import pytest

pytest.importorskip("opentelemetry.sdk.metrics")
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    ManualClock,
    MetricType,
    ResourceManagerConfig,
    RuntimeOptimizer,
)
from arbiter_core.exporters.opentelemetry import instrument


def read(reader: InMemoryMetricReader) -> dict:
    """instrument name -> {frozenset(attributes): value}"""
    out: dict = {}
    data = reader.get_metrics_data()
    if data is None:          # nothing observed
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "arbiter_core"
            for m in sm.metrics:
                out[m.name] = {frozenset(p.attributes.items()): p.value
                               for p in m.data.data_points}
    return out


def setup():
    reader = InMemoryMetricReader()
    return reader, MeterProvider(metric_readers=[reader])


def busy_manager():
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(max_queue=1), clock=clock)
    arm.register_agent("a1", max_tasks=1)
    arm.allocate_resources(AllocationRequest("r1", "t1"))
    arm.allocate_resources(AllocationRequest("r2", "t2", timeout_s=1.0))     # queued
    arm.allocate_resources(AllocationRequest("r3", "t3"))                    # rejected
    arm.analyze_capacity()
    return arm, clock


def test_manager_instruments():
    reader, provider = setup()
    arm, clock = busy_manager()
    instrument(manager=arm, meter_provider=provider)
    got = read(reader)
    outcomes = got["arbiter.allocations"]
    assert outcomes[frozenset({("outcome", "rejected")})] == 1
    assert outcomes[frozenset({("outcome", "released")})] == 0
    assert got["arbiter.allocation.requests"] == {frozenset(): 3}
    assert got["arbiter.queue.length"] == {frozenset(): 1}
    assert got["arbiter.allocations.active"] == {frozenset(): 1}
    assert got["arbiter.agent.active_tasks"] == {frozenset({("agent", "a1")}): 1}
    assert got["arbiter.agent.ejected"] == {frozenset({("agent", "a1")}): 0}
    assert got["arbiter.capacity.desired_agents"] == {
        frozenset(): arm.last_capacity_analysis.desired_agents}
    assert sum(got["arbiter.allocation.failures"].values()) == 1
    # the counters are cumulative: the next collection sees the new state
    clock.advance(2.0)
    arm.tick()                                                   # r2 times out
    arm.release_resources("r1")
    got = read(reader)
    outcomes = got["arbiter.allocations"]
    assert outcomes[frozenset({("outcome", "timed_out")})] == 1
    assert outcomes[frozenset({("outcome", "released")})] == 1
    assert got["arbiter.queue.length"] == {frozenset(): 0}


def test_optimizer_instruments():
    reader, provider = setup()
    clock = ManualClock(start=10.0)
    opt = RuntimeOptimizer(clock=clock)
    for _ in range(5):
        opt.record_metric(MetricType.CPU, 97.0, source="w")
        clock.advance(1)
    a = opt.analyze()
    instrument(optimizer=opt, meter_provider=provider)
    got = read(reader)
    assert got["arbiter.health.score"] == {frozenset(): a.health_score}
    assert sum(got["arbiter.bottlenecks.active"].values()) == 1


def test_groups_caps_and_close():
    reader, provider = setup()
    a1, _ = busy_manager()
    a2 = AdaptiveResourceManager(clock=ManualClock())
    for i in range(5):
        a2.register_agent(f"x{i}", max_tasks=1)
    handle = instrument(manager={"gpt": a1, "claude": a2}, meter_provider=provider,
                        max_agent_series=2)
    got = read(reader)
    assert got["arbiter.queue.length"] == {frozenset({("group", "gpt")}): 1,
                                           frozenset({("group", "claude")}): 0}
    per_agent = got["arbiter.agent.active_tasks"]
    assert sum(1 for k in per_agent if ("group", "claude") in k) == 2
    handle.close()
    got = read(reader)
    assert not any(got.get(name) for name in ("arbiter.queue.length",
                                              "arbiter.agent.active_tasks"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="manager, an optimizer"):
        instrument()
    with pytest.raises(ValueError, match="max_agent_series"):
        instrument(optimizer=RuntimeOptimizer(), max_agent_series=-1)
