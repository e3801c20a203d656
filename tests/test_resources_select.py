"""ResourceMonitor and LoadBalancer (issue 4)."""

from __future__ import annotations

import math
import threading
from collections import Counter

import pytest

import arbiter_core as ac
from arbiter_core import (
    HealthStatus,
    LoadBalancer,
    LoadBalancingStrategy,
    ManualClock,
    NoAgentAvailableError,
    ResourceMonitor,
    TaskPriority,
)

S = LoadBalancingStrategy


def fixture_pool(strategy=S.LEAST_LOADED):
    """The original unit tests' fixture."""
    mon = ResourceMonitor(clock=ManualClock())
    mon.register_agent("agent-1", max_tasks=10)
    mon.register_agent("agent-2", max_tasks=10)
    mon.record_usage("agent-1", cpu=20.0, memory=0.0)
    mon.update_task_count("agent-1", 2)
    mon.record_usage("agent-2", cpu=40.0, memory=0.0)
    mon.update_task_count("agent-2", 5)
    return mon, LoadBalancer(mon, strategy, seed=1)


def test_original_fixture():
    mon, lb = fixture_pool()
    d = lb.select_agent()
    assert d.selected_agent_id == "agent-1"
    assert d.score == 30.0 and d.agent_load == 20.0
    assert d.rationale == "Least loaded agent (30.0% load)"
    assert d.alternatives == ("agent-2",)
    assert d.strategy is S.LEAST_LOADED and d.decision_duration_s >= 0.0
    lb.set_strategy(S.WEIGHTED)
    d = lb.select_agent()
    assert d.selected_agent_id == "agent-1"
    assert d.rationale == "Weighted selection (score: 16.0)"
    lb.set_strategy("priority_based")
    d = lb.select_agent(TaskPriority.HIGH)
    assert d.selected_agent_id == "agent-1"
    assert d.rationale == "Priority-based selection for 75 priority task"


def test_decision_is_a_frozen_snapshot():
    _, lb = fixture_pool()
    d = lb.select_and_reserve()
    with pytest.raises(AttributeError):
        d.selected_agent_id = "x"  # type: ignore[misc]
    assert d.reserved and d.agent_load == 20.0     # the load it was chosen at
    assert lb.monitor.get_agent_resources("agent-1").current_task_count == 3


def test_every_strategy_by_name_and_distribution():
    mon = ResourceMonitor(clock=ManualClock())
    for i in range(5):
        mon.register_agent(f"a{i}", max_tasks=4)
    lb = LoadBalancer(mon, seed=3)
    for s in S:
        lb.set_strategy(s.value)
        assert lb.get_strategy() is s
        d = lb.select_and_reserve()
        assert d.strategy is s and d.selected_agent_id in mon
        assert d.rationale
    dist = lb.get_load_distribution()
    assert sum(dist.values()) == len(S)
    assert set(dist) <= set(mon.agent_ids())
    mon.remove_agent(next(iter(dist)))
    assert len(lb.get_load_distribution()) <= len(dist) - 1 or not dist
    lb.reset_load_distribution()
    assert lb.get_load_distribution() == {}
    with pytest.raises(ValueError, match="strategy"):
        lb.set_strategy("fastest")
    with pytest.raises(TypeError, match="strategy"):
        lb.set_strategy(3)  # type: ignore[arg-type]


def test_no_agent_available_is_specific():
    mon = ResourceMonitor(clock=ManualClock())
    lb = LoadBalancer(mon)
    with pytest.raises(NoAgentAvailableError, match="no agents registered"):
        lb.select_agent()
    mon.register_agent("a", max_tasks=1)
    mon.register_agent("b", max_tasks=1)
    d = lb.select_and_reserve()
    mon.set_offline("b" if d.selected_agent_id == "a" else "a")
    with pytest.raises(NoAgentAvailableError, match=r"2 registered.*1 offline, 1 full") as e:
        lb.select_and_reserve()
    assert e.value.reasons == {"offline": 1, "ejected": 0, "full": 1}
    # nothing was reserved by the failed call
    assert mon.get_pool_stats().tasks_in_progress == 1


def test_select_and_reserve_is_atomic_across_threads():
    mon = ResourceMonitor(clock=ManualClock())
    for i in range(20):
        mon.register_agent(f"a{i}", max_tasks=5)
    lb = LoadBalancer(mon, S.POWER_OF_TWO, seed=9)
    wins: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        for _ in range(50):
            try:
                d = lb.select_and_reserve()
            except NoAgentAvailableError:
                continue
            with lock:
                wins.append(d.selected_agent_id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 200 attempts, 100 slots: exactly 100 granted, none oversubscribed
    assert len(wins) == 100
    assert all(c == 5 for c in Counter(wins).values())
    assert all(p.current_task_count == 5 for p in mon.get_all_agent_resources())


def test_release_gives_back_slot_and_resources():
    mon = ResourceMonitor(clock=ManualClock())
    mon.register_agent("a", max_tasks=1, memory_mb=1000.0)
    lb = LoadBalancer(mon)
    req = ac.ResourceRequirements(cpu_percent=30.0, memory_mb=500.0)

    class Req:
        priority = TaskPriority.MEDIUM
        required_resources = req

    d = lb.select_and_reserve(Req())
    p = mon.get_agent_resources("a")
    assert (p.current_task_count, p.reserved_cpu_percent, p.reserved_memory_mb) == (1, 30.0, 500.0)
    with pytest.raises(NoAgentAvailableError):
        lb.select_and_reserve()
    lb.release(d.selected_agent_id, Req())
    p = mon.get_agent_resources("a")
    assert (p.current_task_count, p.reserved_cpu_percent, p.reserved_memory_mb) == (0, 0.0, 0.0)


def test_health_thresholds_are_inclusive():
    mon = ResourceMonitor(clock=ManualClock())
    mon.register_agent("a")
    cases = [((50.0, None), HealthStatus.HEALTHY), ((69.99, None), HealthStatus.HEALTHY),
             ((70.0, None), HealthStatus.DEGRADED), ((85.0, None), HealthStatus.UNHEALTHY),
             ((0.0, 75.0), HealthStatus.DEGRADED), ((0.0, 90.0), HealthStatus.UNHEALTHY),
             ((0.0, 74.9), HealthStatus.HEALTHY)]
    for (cpu, mem), expect in cases:
        assert mon.record_usage("a", cpu=cpu, memory=mem if mem is not None else 0.0) is expect
    # a partial report keeps the other values
    mon.record_usage("a", cpu=72.0, memory=10.0)
    assert mon.record_usage("a", memory=20.0) is HealthStatus.DEGRADED
    p = mon.get_agent_resources("a")
    assert (p.cpu_usage, p.memory_usage, p.network_usage) == (72.0, 20.0, None)
    mon.set_thresholds(ac.HealthThresholds(cpu_warning=80.0, cpu_critical=95.0))
    assert mon.health("a") is HealthStatus.HEALTHY


def test_staleness_on_tick():
    clock = ManualClock()
    mon = ResourceMonitor(clock=clock, stale_after_s=30.0)
    mon.register_agent("reports")
    mon.register_agent("silent")
    mon.record_usage("reports", cpu=10.0)
    clock.advance(30.0)
    assert mon.tick() == []                   # exactly 30 s: not yet
    clock.advance(0.5)
    assert mon.tick() == ["reports"]
    assert mon.health("reports") is HealthStatus.OFFLINE
    assert mon.health("silent") is HealthStatus.HEALTHY    # never reported: not judged
    assert mon.record_usage("reports", cpu=10.0) is HealthStatus.HEALTHY
    assert mon.tick() == []


def test_task_completion_feeds_latency_and_streak():
    clock = ManualClock()
    mon = ResourceMonitor(clock=clock)
    mon.register_agent("a")
    assert mon.record_task_completion("a", 0.2, success=False) == 1
    assert mon.record_task_completion("a", None, success=False) == 2
    assert mon.record_task_completion("a", 0.1, success=True) == 0
    p = mon.get_agent_resources("a")
    assert p.tasks_completed == 1 and p.tasks_failed == 2
    assert 0.1 < p.avg_task_completion_s <= 0.2


def test_pool_stats():
    clock = ManualClock()
    mon = ResourceMonitor(clock=clock)
    mon.register_agent("a", max_tasks=4, memory_mb=2000.0)
    mon.register_agent("b", max_tasks=6)
    mon.register_agent("c", max_tasks=2)
    mon.record_usage("a", cpu=40.0, memory=50.0)
    mon.record_usage("b", cpu=90.0)
    mon.update_task_count("a", 3)
    s = mon.get_pool_stats()
    assert (s.total_agents, s.active_agents, s.idle_agents) == (3, 1, 2)
    assert (s.healthy_agents, s.unhealthy_agents) == (2, 1)
    assert (s.tasks_in_progress, s.total_task_slots, s.available_task_slots) == (3, 12, 9)
    assert s.avg_cpu_percent == 65.0 and s.total_cpu_capacity == 200.0
    assert s.used_cpu_capacity == 130.0
    assert s.avg_memory_percent == 50.0 and s.avg_network_percent is None
    assert (s.total_memory_capacity, s.used_memory_capacity) == (2000.0, 1000.0)


def test_monitor_bad_input():
    mon = ResourceMonitor(clock=ManualClock())
    mon.register_agent("a")
    with pytest.raises(ValueError, match="already registered"):
        mon.register_agent("a")
    with pytest.raises(TypeError, match="agent_id"):
        mon.register_agent(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_tasks"):
        mon.register_agent("b", max_tasks=0)
    with pytest.raises(TypeError, match="max_tasks"):
        mon.register_agent("b", max_tasks=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight"):
        mon.register_agent("b", weight=-1.0)
    with pytest.raises(TypeError, match="gpu"):
        mon.register_agent("b", gpu=1.0)
    assert "b" not in mon
    for bad, exc in ((math.nan, ValueError), (math.inf, ValueError), (-1.0, ValueError),
                     (100.5, ValueError), ("50", TypeError), (True, TypeError)):
        with pytest.raises(exc, match="cpu"):
            mon.record_usage("a", cpu=bad)
    assert mon.get_agent_resources("a").cpu_usage is None    # nothing stored
    with pytest.raises(KeyError, match="'ghost'"):
        mon.record_usage("ghost", cpu=1.0)
    with pytest.raises(KeyError, match="'ghost'"):
        mon.get_agent_resources("ghost")
    with pytest.raises(KeyError, match="'ghost'"):
        mon.remove_agent("ghost")
    with pytest.raises(ValueError, match="count"):
        mon.update_task_count("a", -1)
    with pytest.raises(ValueError, match="duration_s"):
        mon.record_task_completion("a", -0.5)
    with pytest.raises(ValueError, match="stale_after_s"):
        ResourceMonitor(stale_after_s=0.0)
    with pytest.raises(TypeError, match="monitor"):
        LoadBalancer(object())  # type: ignore[arg-type]


def test_high_priority_request_prefers_healthy_agents():
    mon = ResourceMonitor(clock=ManualClock())
    mon.register_agent("hot")
    mon.register_agent("cool")
    mon.record_usage("hot", cpu=80.0)         # DEGRADED, load 40
    mon.record_usage("cool", cpu=60.0)
    mon.update_task_count("cool", 9)          # HEALTHY, load 90 + 30
    lb = LoadBalancer(mon, seed=2)
    assert lb.select_agent(TaskPriority.MEDIUM).selected_agent_id == "hot"
    assert lb.select_agent(TaskPriority.HIGH).selected_agent_id == "cool"
    assert lb.select_agent(TaskPriority.CRITICAL).selected_agent_id == "cool"
    mon.update_task_count("cool", 10)         # full: fall back to DEGRADED
    assert lb.select_agent(TaskPriority.HIGH).selected_agent_id == "hot"
