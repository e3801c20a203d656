import math
import re

import pytest

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from arbiter_core import (  # noqa: E402
    AdaptiveResourceManager,
    AllocationRequest,
    EjectionConfig,
    ManualClock,
    MetricType,
    ResourceManagerConfig,
    RuntimeOptimizer,
)
from arbiter_core.exporters.prometheus import ArbiterCollector  # noqa: E402

# Prometheus' data model: https://prometheus.io/docs/concepts/data_model/
NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def scrape_text(collector: ArbiterCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def parse(text: str):
    """name -> (type, [(labels, value)]) by prometheus_client's own parser, with
    the naming rules checked on every family and sample."""
    out = {}
    for fam in text_string_to_metric_families(text):
        assert NAME.match(fam.name), fam.name
        samples = []
        for s in fam.samples:
            assert NAME.match(s.name), s.name
            for k in s.labels:
                assert LABEL.match(k) and not k.startswith("__"), k
            assert math.isfinite(s.value), s
            if fam.type == "counter":
                assert s.name == fam.name + "_total", s.name   # counters end in _total
                assert s.value >= 0
            samples.append((s.labels, s.value))
        if fam.type == "counter":
            assert not fam.name.endswith("_total")
        out[fam.name] = (fam.type, samples)
    return out


def scrape(collector: ArbiterCollector):
    return parse(scrape_text(collector))


def values(got, name):
    return {tuple(sorted(lab.items())): v for lab, v in got[name][1]}


def one(got, name, **labels):
    want = tuple(sorted(labels.items()))
    return values(got, name)[want]


def test_optimizer_figures_are_exported():
    clock = ManualClock(start=100.0)
    opt = RuntimeOptimizer(clock=clock)
    for _ in range(5):
        opt.record_metric(MetricType.CPU, 97.0, source="worker")
        clock.advance(1)
    analysis = opt.analyze()
    got = scrape(ArbiterCollector(optimizer=opt))
    assert got["arbiter_health_score"] == ("gauge", [({}, analysis.health_score)])
    assert analysis.health_score < 100
    active = {s[0]["severity"]: s[1] for s in got["arbiter_bottlenecks_active"][1]}
    assert sum(active.values()) == len(analysis.bottlenecks) == 1
    (labels, value), = got["arbiter_bottleneck"][1]
    assert labels["component"] == "worker" and labels["metric_type"] == "cpu"
    assert value == 97.0
    assert got["arbiter_optimizer_analyses"] == ("counter", [({}, 1.0)])
    assert got["arbiter_optimizer_metrics_collected"][1] == [({}, 5.0)]
    assert got["arbiter_optimizer_running"][1] == [({}, 0.0)]


def manager_with_history():
    """Grants, a release, a failed release, a rejection (queue full), a
    timeout and a cancellation, on a manual clock."""
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(max_queue=1), clock=clock)
    arm.register_agent("a1", max_tasks=1)
    arm.register_agent("a2", max_tasks=1)
    arm.allocate_resources(AllocationRequest("r1", "t1"))
    arm.allocate_resources(AllocationRequest("r2", "t2"))
    arm.allocate_resources(AllocationRequest("r3", "t3", timeout_s=5.0))     # queued
    rej = arm.allocate_resources(AllocationRequest("r4", "t4"))              # queue full
    assert rej.status.value == "rejected"
    clock.advance(6.0)
    arm.tick()                                                               # r3 timed out
    arm.allocate_resources(AllocationRequest("r5", "t5"))                    # queued
    arm.cancel("r5")                                                         # failed
    arm.release_resources("r1", success=True, duration_s=0.5)
    arm.release_resources("r2", success=False, duration_s=2.0)
    arm.allocate_resources(AllocationRequest("r6", "t6"))                    # active
    arm.analyze_capacity()
    return arm, clock, rej.failure_reason


def test_manager_series_follow_prometheus_conventions():
    arm, clock, reject_reason = manager_with_history()
    got = scrape(ArbiterCollector(manager=arm))
    stats = arm.get_allocation_statistics()
    assert got["arbiter_allocation_requests"] == ("counter", [({}, 6.0)])
    assert got["arbiter_allocations"][0] == "counter"
    assert values(got, "arbiter_allocations") == {
        (("outcome", "released"),): 2.0, (("outcome", "rejected"),): 1.0,
        (("outcome", "timed_out"),): 1.0, (("outcome", "failed"),): 1.0}
    assert one(got, "arbiter_allocations_granted") == 3.0
    reasons = values(got, "arbiter_allocation_failures")
    assert got["arbiter_allocation_failures"][0] == "counter"
    assert reasons[(("reason", reject_reason),)] == 1.0
    assert reasons[(("reason", "cancelled"),)] == 1.0
    assert sum(reasons.values()) == stats.rejected + stats.timed_out + stats.failed
    assert not any(name.startswith("arbiter_allocations_by_reason") for name in got)
    assert one(got, "arbiter_allocations_active") == 1.0
    assert one(got, "arbiter_queue_length") == 0.0
    assert one(got, "arbiter_pool_agents", health="healthy") == 2.0
    assert one(got, "arbiter_pool_task_slots") == 2.0
    # per agent
    busy = arm.allocation_status("r6").agent_id
    idle = ({"a1", "a2"} - {busy}).pop()
    assert values(got, "arbiter_agent_active_tasks") == {
        (("agent", busy),): 1.0, (("agent", idle),): 0.0}
    ok_agent = arm.allocation_status("r1").agent_id
    failed_agent = arm.allocation_status("r2").agent_id
    assert one(got, "arbiter_agent_latency_ewma_seconds", agent=ok_agent) > 0
    assert one(got, "arbiter_agent_tasks_failed", agent=failed_agent) == 1.0
    assert one(got, "arbiter_agent_tasks_completed", agent=ok_agent) == 1.0
    assert one(got, "arbiter_agent_health", agent="a1", health="healthy") == 1.0
    assert one(got, "arbiter_agent_ejected", agent="a1") == 0.0
    # for autoscalers
    a = arm.last_capacity_analysis
    assert one(got, "arbiter_capacity_desired_agents") == a.desired_agents
    assert one(got, "arbiter_capacity_utilization_ratio") == pytest.approx(
        a.smoothed_utilization_percent / 100)
    assert one(got, "arbiter_capacity_scaling_action", action=a.scaling_recommendation.value) \
        == 1.0
    # no monotonic-clock timestamps as values
    assert not any("time" in name and "seconds" not in name for name in got)
    assert "arbiter_health_score" not in got


def test_counters_only_grow_between_scrapes():
    arm, clock, _ = manager_with_history()
    c = ArbiterCollector(manager=arm)
    before = scrape(c)
    arm.release_resources("r6")
    arm.allocate_resources(AllocationRequest("r7", "t7"))
    after = scrape(c)
    for name, (kind, _) in before.items():
        if kind == "counter":
            b, a = values(before, name), values(after, name)
            for k, v in b.items():
                assert a[k] >= v, (name, k)


def test_ejected_agent_is_flagged():
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(
        ejection=EjectionConfig(consecutive_failures=1, max_ejection_percent=50.0)), clock=clock)
    arm.register_agent("a1", max_tasks=2)
    arm.register_agent("a2", max_tasks=2)
    arm.allocate_resources(AllocationRequest("r1", "t1"))
    arm.release_resources("r1", success=False)
    got = scrape(ArbiterCollector(manager=arm))
    assert sum(values(got, "arbiter_agent_ejected").values()) == 1.0
    assert one(got, "arbiter_pool_ejected_agents") == 1.0


def test_per_agent_cardinality_is_capped():
    arm = AdaptiveResourceManager(clock=ManualClock())
    for i in range(30):
        arm.register_agent(f"a{i:02d}", max_tasks=1)
    arm.allocate_resources(AllocationRequest("r1", "t1"))
    busy = arm.allocation_status("r1").agent_id
    got = scrape(ArbiterCollector(manager=arm, max_agent_series=5))
    agents = {dict(k)["agent"] for k in values(got, "arbiter_agent_active_tasks")}
    assert len(agents) == 5 and busy in agents            # the busiest first
    assert one(got, "arbiter_agent_series_dropped") == 25.0
    none = scrape(ArbiterCollector(manager=arm, max_agent_series=0))
    assert values(none, "arbiter_agent_active_tasks") == {}
    with pytest.raises(ValueError, match="max_agent_series"):
        ArbiterCollector(manager=arm, max_agent_series=-1)


def test_several_managers_get_a_group_label():
    a1 = AdaptiveResourceManager(clock=ManualClock())
    a1.register_agent("x", max_tasks=1)
    a2 = AdaptiveResourceManager(clock=ManualClock())
    a2.register_agent("y", max_tasks=2)
    a2.allocate_resources(AllocationRequest("r", "t"))
    got = scrape(ArbiterCollector(manager={"gpt": a1, "claude": a2}))
    assert values(got, "arbiter_allocations_active") == {
        (("group", "gpt"),): 0.0, (("group", "claude"),): 1.0}
    assert one(got, "arbiter_agent_active_tasks", agent="y", group="claude") == 1.0


def test_needs_something_to_export():
    with pytest.raises(ValueError, match="optimizer, a manager"):
        ArbiterCollector()
