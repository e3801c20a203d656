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


# -- scenario and trace files (tests/test_fuzz_files.py) ------------------------------


def _scenario(**top):
    data = {"duration_s": 5.0,
            "pool": {"groups": [{"name": "g", "count": 2, "max_tasks": 2}]},
            "arrivals": {"rate_per_s": 3.0, "mean_task_s": 0.5}}
    data.update(top)
    return data


@pytest.mark.parametrize("change, named", [
    # JSON null in a required field: was a TypeError deep in the builder
    ({"duration_s": None}, "duration_s"),
    ({"pool": {"groups": [{"name": "g", "count": None, "max_tasks": 2}]}},
     "pool.groups[0].count"),
    # an integer too large for a float: was an OverflowError
    ({"duration_s": 10**400}, "duration_s"),
    ({"arrivals": {"rate_per_s": 10**400, "mean_task_s": 0.5}}, "arrivals.rate_per_s"),
])
def test_scenario_null_or_huge_numbers_are_a_scenario_error_naming_the_field(change, named):
    from arbiter_core.scenario import ScenarioError, scenario_from_dict

    with pytest.raises(ScenarioError, match=named.replace("[", r"\[").replace("]", r"\]")):
        scenario_from_dict(_scenario(**change))


def test_scenario_null_in_an_optional_field_means_its_default():
    from arbiter_core.scenario import scenario_from_dict

    sc = scenario_from_dict(_scenario(max_queue=None, stale_after_s=None))
    assert sc.max_queue == 10_000 and sc.stale_after_s == 10.0


@pytest.mark.parametrize("content, suffix, named", [
    # a CSV cell beyond the csv module's field limit: was _csv.Error
    ("arrival_s,work_s\n0,1\n0," + "9" * 200_000 + "\n", ".csv", "line 3"),
    # a JSON integer too large for a float: was OverflowError
    ('{"arrival_s": 0, "work_s": 1' + "0" * 400 + "}\n", ".jsonl", "line 1, column work_s"),
])
def test_trace_oversized_cells_are_a_trace_error_naming_the_line(tmp_path, content, suffix,
                                                                  named):
    from arbiter_core.simulate import TraceError, load_trace

    f = tmp_path / f"t{suffix}"
    f.write_text(content)
    with pytest.raises(TraceError, match=named) as info:
        load_trace(f)
    assert len(str(info.value)) < 1000
