import pytest

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from arbiter_core import (  # noqa: E402
    AdaptiveResourceManager,
    AllocationRequest,
    ManualClock,
    MetricType,
    RuntimeOptimizer,
)
from arbiter_core.exporters.prometheus import ArbiterCollector  # noqa: E402


def scrape(collector: ArbiterCollector) -> dict[str, list]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = [(s.labels, s.value) for s in fam.samples]
    return out


def test_optimizer_figures_are_exported():
    clock = ManualClock(start=100.0)
    opt = RuntimeOptimizer(clock=clock)
    for _ in range(5):
        opt.record_metric(MetricType.CPU, 97.0, source="worker")
        clock.advance(1)
    analysis = opt.analyze()
    got = scrape(ArbiterCollector(optimizer=opt))
    assert got["arbiter_health_score"] == [({}, analysis.health_score)]
    assert analysis.health_score < 100
    active = {s[0]["severity"]: s[1] for s in got["arbiter_bottlenecks_active"]}
    assert sum(active.values()) == len(analysis.bottlenecks) == 1
    (labels, value), = got["arbiter_bottleneck"]
    assert labels["component"] == "worker" and labels["metric_type"] == "cpu"
    assert value == 97.0


def test_manager_figures_are_exported():
    clock = ManualClock()
    arm = AdaptiveResourceManager(clock=clock)
    arm.register_agent("a1", max_tasks=1)
    arm.register_agent("a2", max_tasks=1)
    for i in range(3):
        arm.allocate_resources(AllocationRequest(f"r{i}", f"t{i}"))
    got = scrape(ArbiterCollector(manager=arm))
    stats = arm.get_allocation_statistics()
    assert got["arbiter_allocations_active"] == [({}, float(stats.active))] == [({}, 2.0)]
    assert got["arbiter_allocations_queued"] == [({}, 1.0)]
    assert got["arbiter_allocations_total_requests"] == [({}, 3.0)]
    assert any(name.startswith("arbiter_pool_") for name in got)
    assert "arbiter_health_score" not in got


def test_needs_something_to_export():
    with pytest.raises(ValueError, match="optimizer, a manager"):
        ArbiterCollector()
