"""The simulator with scheduler replicas sharing the pool through leases."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from arbiter_core.scenario import Fault, ScenarioError, default_scenario, scenario_from_dict
from arbiter_core.simulate import run_cases, run_simulation

SMALL = {
    "duration_s": 20.0,
    "pool": {"groups": [{"name": "a", "count": 4, "max_tasks": 3}]},
    "arrivals": {"rate_per_s": 9.0, "mean_task_s": 1.0},
    "replicas": 3,
    "sync_interval_s": 0.2,
    "lease_ttl_s": 4.0,
    "faults": [{"kind": "replica_crash", "at_s": 8.0, "replica": 2}],
}


def accounted(r):
    return r.completed + r.timed_out + r.rejected + r.failed == r.submitted


def test_four_replicas_on_the_default_scenario_never_oversubscribe_and_keep_up():
    sc = default_scenario()
    one = run_simulation(sc, "least_loaded", 0)
    four = run_simulation(dataclasses.replace(sc, replicas=4), "least_loaded", 0)
    assert one.oversubscribed == 0 and four.oversubscribed == 0
    assert four.replicas == 4 and accounted(four)
    assert four.e2e_mean_s <= 1.3 * one.e2e_mean_s
    assert four.completed >= 0.99 * one.completed


def test_a_replica_crash_loses_its_requests_only_and_its_slots_come_back():
    sc = scenario_from_dict(SMALL)
    assert sc.replicas == 3 and sc.faults[0].kind == "replica_crash"
    r = run_simulation(sc, "least_loaded", 1)
    assert r.oversubscribed == 0 and accounted(r)
    assert 0 < r.lost_in_crash <= r.failed
    # the crashed replica's slots came back: late arrivals were served
    late = dataclasses.replace(sc, duration_s=40.0)
    r2 = run_simulation(late, "least_loaded", 1)
    assert r2.oversubscribed == 0 and accounted(r2)
    assert r2.completed > r.completed


def test_replica_runs_are_deterministic_and_jobs_do_not_change_them():
    sc = scenario_from_dict(SMALL)
    a = run_cases(sc, ["least_loaded", "random"], [0, 1], jobs=1)
    b = run_cases(sc, ["least_loaded", "random"], [0, 1], jobs=2)
    def rows(runs):
        return [{k: v for k, v in r.table_row().items() if k != "wall_s"} for r in runs]

    for name in a:
        assert rows(a[name]) == rows(b[name])


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"replicas": 0}, "replicas"),
        ({"sync_interval_s": 5.0}, "sync_interval_s: must be below lease_ttl_s"),
        ({"faults": [{"kind": "replica_crash", "at_s": 1.0, "replica": 3}]},
         "faults[0].replica: no replica 3"),
    ],
)
def test_replica_fields_are_validated(patch, message):
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict({**SMALL, **patch})
    assert message in str(exc.value)


def test_replica_crash_without_replicas_does_nothing():
    sc = dataclasses.replace(default_scenario(), duration_s=10.0,
                             faults=(Fault("replica_crash", "", 2.0),))
    r = run_simulation(sc, "least_loaded", 0)
    assert r.lost_in_crash == 0 and r.oversubscribed == 0 and accounted(r)


def test_cli_replicas_and_the_oversubscribed_field(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({**SMALL, "faults": []}))
    out = subprocess.run([sys.executable, "-m", "arbiter_core", "simulate", "--scenario",
                          str(f), "--replicas", "2", "--seeds", "1", "--json",
                          "--strategy", "least_loaded"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    row = doc["strategies"]["least_loaded"]
    assert row["oversubscribed"] == 0 and row["replicas"] == 2
    assert doc["scenario"]["replicas"] == 2
    bad = subprocess.run([sys.executable, "-m", "arbiter_core", "simulate", "--scenario",
                          str(tmp_path / "s.json"), "--replicas", "0"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--replicas" in bad.stderr


def test_the_replicas_example_scenario_runs_clean():
    from pathlib import Path

    from arbiter_core.scenario import load_scenario

    root = Path(__file__).resolve().parents[1]
    sc = load_scenario(root / "examples" / "scenarios" / "llm_serving_replicas.toml")
    assert sc.replicas == 4 and sc.faults[-1].kind == "replica_crash"
    r = run_simulation(sc, "least_loaded", 0)
    assert r.oversubscribed == 0 and accounted(r) and r.lost_in_crash > 0
