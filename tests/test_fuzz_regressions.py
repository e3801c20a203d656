"""What the fuzzers found (issue 16), each kept as a plain test.

The hostile-input state machines (tests/test_fuzz_api.py) draw at random, so
a finding is pinned here with the smallest input that showed it.
"""

from __future__ import annotations

import pytest

from arbiter_core import AdaptiveResourceManager, ManualClock, TaskPriority


@pytest.mark.parametrize("priority", [-62_564_871_666_772_048, 2**70, 101, -1])
def test_select_agent_refuses_a_priority_out_of_range_naming_it(priority):
    # was: OverflowError from the kernel ("value too large to convert to int")
    arm = AdaptiveResourceManager(clock=ManualClock())
    arm.register_agent("a", max_tasks=1)
    with pytest.raises(ValueError, match="priority"):
        arm.balancer.select_agent(priority)

    class Req:
        required_resources = None

    Req.priority = priority
    with pytest.raises(ValueError, match="priority"):
        arm.balancer.select_and_reserve(Req())
    assert arm.balancer.select_agent(TaskPriority.CRITICAL).selected_agent_id == "a"
    assert arm.monitor.get_agent_resources("a").current_task_count == 0


@pytest.mark.parametrize("call", [
    lambda arm: arm.register_agent("a", max_tasks=3_295_529_450_407_508),
    lambda arm: arm.update_config(max_queue=2**63),
    lambda arm: arm.monitor.set_max_tasks("g", 2**40),
    lambda arm: arm.monitor.update_task_count("g", 2**64),
])
def test_counts_beyond_the_c_range_are_a_value_error_naming_the_argument(call):
    # was: OverflowError from the table or the allocation core
    arm = AdaptiveResourceManager(clock=ManualClock())
    arm.register_agent("g", max_tasks=2)
    with pytest.raises(ValueError, match=r"max_tasks|max_queue|count") as info:
        call(arm)
    assert "2147483647" in str(info.value)
    assert arm.config.max_queue == 10_000 and len(arm.monitor) == 1


def test_get_latest_metrics_with_an_enormous_count_returns_everything():
    # was: OverflowError converting the count to the ring's C size type
    from arbiter_core import PerformanceMonitor

    mon = PerformanceMonitor(max_metrics=4, clock=ManualClock())
    for v in range(6):
        mon.record_metric("cpu", float(v), timestamp=float(v))
    assert list(mon.get_latest_metrics(2**63).values) == [2.0, 3.0, 4.0, 5.0]
    assert len(mon.get_latest_metrics(-(2**70))) == 0


def test_a_capacity_forecast_across_an_enormous_clock_jump_stays_finite():
    # was: overflow in the least-squares sums (RuntimeWarning) and a NaN/inf
    # forecast, after the fuzzer advanced the clock by 1e300 s between analyses
    import math
    import warnings

    clock = ManualClock()
    arm = AdaptiveResourceManager(clock=clock)
    arm.register_agent("a", max_tasks=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in (0.0, 1.0, 1e300, 1.0, 1e300):
            clock.advance(step)
            needs = arm.analyze_capacity().predicted_needs
            assert needs is not None
            for v in (needs.utilization_percent, needs.trend_percent_per_s,
                      needs.lower_percent, needs.upper_percent):
                assert v is None or math.isfinite(v), needs
