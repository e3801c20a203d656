"""The arbiter-core command, run as a user would: in a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "examples" / "scenarios" / "small.toml"
FLASH = ROOT / "examples" / "scenarios" / "flash_crowd.json"
STRATEGIES = ["round_robin", "least_loaded", "weighted", "random", "priority_based",
              "power_of_two", "peak_ewma"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arbiter_core", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def small_json():
    proc = run("simulate", "--scenario", str(SMALL), "--json", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_simulate_json_shape_and_accounting(small_json):
    doc = json.loads(small_json)
    assert set(doc) == {"scenario", "seed", "strategies"}
    assert doc["scenario"]["name"] == "small" and doc["scenario"]["agent_count"] == 8
    assert sorted(doc["strategies"]) == sorted(STRATEGIES)
    for name, r in doc["strategies"].items():
        assert r["submitted"] > 100, name
        # every request ends in exactly one outcome
        assert r["completed"] + r["timed_out"] + r["rejected"] + r["failed"] == r["submitted"]
        assert 0 < r["fairness"] <= 1
        assert 0 <= r["health_score"] <= 100
        assert r["capacity_action"] in {"scale_up", "scale_down", "maintain"}
        for k in ("wait_p50_s", "wait_p95_s", "wait_p99_s", "e2e_p50_s", "e2e_p99_s",
                  "failovers", "ejections", "peak_queue", "bottlenecks_found"):
            assert k in r
        assert "wall_s" not in r
    # the same arrivals reach every strategy
    assert len({r["submitted"] for r in doc["strategies"].values()}) == 1
    # the scenario's faults show up: the silent agent is failed over, the failing one ejected
    assert all(r["failovers"] >= 1 for r in doc["strategies"].values())
    assert all(r["ejections"] >= 1 for r in doc["strategies"].values())


def test_simulate_is_deterministic(small_json):
    again = run("simulate", "--scenario", str(SMALL), "--json", "--seed", "3")
    assert again.returncode == 0
    assert again.stdout == small_json
    other = run("simulate", "--scenario", str(SMALL), "--json", "--seed", "4")
    assert json.loads(other.stdout)["strategies"] != json.loads(small_json)["strategies"]


def test_simulate_table_and_single_strategy():
    proc = run("simulate", "--scenario", str(FLASH), "--strategy", "power_of_two", "--quiet")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "power_of_two" in out and "least_loaded" not in out
    for col in ("submitted", "completed", "timed_out", "rejected", "failed", "wait_p99",
                "e2e_p99", "fairness", "failovers", "ejections", "peak_queue", "health"):
        assert col in out
    assert "best strategy: power_of_two" in out


def test_simulate_plot_written(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "sim.png"
    proc = run("simulate", "--scenario", str(SMALL), "--plot", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ('duration_s = 10\n[arrivals]\nrate_per_s = 1\nmean_task_s = 1\n', ".toml",
         "pool: missing"),
        ('duration_s = 10\n[pool]\ngroups = [{count = 2, max_tasks = 0}]\n'
         '[arrivals]\nrate_per_s = 1\nmean_task_s = 1\n', ".toml",
         "pool.groups[0].max_tasks: must be an integer >= 1, got 0"),
        ('{"duration_s": -1}', ".json", "duration_s: must be > 0"),
        ('{"duration_s": 5, "pool": {"groups": [{"count": 1, "max_tasks": 1}]},'
         ' "arrivals": {"rate_per_s": 1, "mean_task_s": 1},'
         ' "faults": [{"kind": "slow", "agent": "nobody", "at_s": 1}]}', ".json",
         "faults[0].agent: no agent 'nobody'"),
        ('{"duration_s": 5, "pool": {"groups": [{"count": 1, "max_tasks": 1}]},'
         ' "arrivals": {"rate_per_s": 1, "mean_task_s": 1, "priorities":'
         ' [{"priority": "urgent", "share": 1, "timeout_s": 1}]}}', ".json",
         "arrivals.priorities[0].priority: must be one of"),
        ('{"duration_s": 5, "typo": 1}', ".json", "unknown field(s) typo"),
        ("this is = = not toml", ".toml", "not valid toml"),
    ],
)
def test_bad_scenarios_exit_2_with_the_field(tmp_path, content, suffix, message):
    f = tmp_path / f"bad{suffix}"
    f.write_text(content)
    proc = run("simulate", "--scenario", str(f))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_scenario_file_exits_2(tmp_path):
    proc = run("simulate", "--scenario", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2 and "cannot read scenario file" in proc.stderr


def test_bad_arguments_exit_2():
    assert run("simulate", "--strategy", "fastest").returncode == 2
    assert run("monitor", "--interval", "0").returncode == 2
    assert run("frobnicate").returncode == 2


def test_monitor_once_as_json():
    proc = run("monitor", "--count", "1", "--json", "--interval", "1")
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0 <= line["health_score"] <= 100
    assert isinstance(line["bottlenecks"], list)


def test_bench_runs_and_prints_ratios():
    proc = run("bench", "--scale", "0.05", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ratio" in proc.stdout and "p99 of a 10k window" in proc.stdout
    assert "select least_loaded, 10000 agents" in proc.stdout
