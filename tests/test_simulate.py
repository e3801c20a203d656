import math

import pytest

from arbiter_core.scenario import (
    ScenarioError,
    default_scenario,
    load_scenario,
    scenario_from_dict,
)
from arbiter_core.simulate import jain_index, run_simulation

SMALL = {
    "duration_s": 15.0,
    "pool": {"groups": [{"name": "a", "count": 4, "max_tasks": 2}]},
    "arrivals": {"rate_per_s": 6.0, "mean_task_s": 1.0},
}


def test_jain_index():
    assert jain_index([1, 1, 1, 1]) == 1.0
    assert jain_index([1, 0, 0, 0]) == pytest.approx(0.25)
    assert jain_index([]) == 1.0
    assert jain_index([0, 0]) == 1.0


def test_default_scenario_is_the_documented_pool():
    sc = default_scenario()
    assert sc.agent_count == 40
    assert {f.kind for f in sc.faults} == {"slow", "silent", "failing"}
    assert sc.rate_limit_per_s is not None
    d = sc.to_dict()
    assert d["agent_count"] == 40 and d["total_slots"] == sum(
        g.count * g.max_tasks for g in sc.groups)


def test_every_request_is_accounted_for():
    sc = scenario_from_dict(SMALL)
    r = run_simulation(sc, "least_loaded", seed=1)
    assert r.submitted > 50
    assert r.completed + r.timed_out + r.rejected + r.failed == r.submitted
    assert r.simulated_s >= sc.duration_s


def test_a_silent_agent_is_failed_over_and_its_tasks_finish_elsewhere():
    data = dict(SMALL, stale_after_s=3.0,
                faults=[{"kind": "silent", "agent": "a-0", "at_s": 2.0}])
    r = run_simulation(scenario_from_dict(data), "round_robin", seed=2)
    assert r.failovers >= 1
    assert r.completed + r.timed_out + r.rejected + r.failed == r.submitted
    assert r.failed == 0    # moved work completes: nothing lost with the agent


def test_a_failing_agent_is_ejected():
    data = dict(SMALL, faults=[{"kind": "failing", "agent": "a-1", "at_s": 0.0}])
    r = run_simulation(scenario_from_dict(data), "round_robin", seed=3)
    assert r.ejections >= 1
    assert r.failed >= 5


def test_overload_times_out_and_queues():
    data = dict(SMALL, arrivals={"rate_per_s": 40.0, "mean_task_s": 2.0,
                                 "priorities": [{"priority": "low", "share": 1,
                                                 "timeout_s": 1.0}]})
    r = run_simulation(scenario_from_dict(data), "least_loaded", seed=4)
    assert r.timed_out > 0 and r.peak_queue > 0
    assert r.completed + r.timed_out + r.rejected + r.failed == r.submitted
    assert not math.isnan(r.wait_p99_s)


def test_scenario_file_round_trip(tmp_path):
    f = tmp_path / "s.json"
    import json

    f.write_text(json.dumps(SMALL))
    assert load_scenario(f) == scenario_from_dict(SMALL, name="s")
    with pytest.raises(ScenarioError, match="pool: missing"):
        scenario_from_dict({"duration_s": 1})
