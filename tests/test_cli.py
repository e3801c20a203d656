"""The arbiter-core command, run as a user would: in a subprocess."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "examples" / "scenarios" / "small.toml"
FLASH = ROOT / "examples" / "scenarios" / "flash_crowd.json"
TRACE = ROOT / "examples" / "traces" / "requests.csv"
LLM = ROOT / "examples" / "scenarios" / "llm_prefix.toml"
STRATEGIES = ["round_robin", "least_loaded", "weighted", "random", "priority_based",
              "power_of_two", "peak_ewma", "scored", "cache_affinity"]


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
    assert set(doc) == {"scenario", "seed", "seeds", "strategies", "best"}
    assert doc["seed"] == 3 and doc["seeds"] == [3, 4, 5, 6, 7]   # --seeds defaults to 5
    assert doc["scenario"]["name"] == "small" and doc["scenario"]["agent_count"] == 8
    assert sorted(doc["strategies"]) == sorted(STRATEGIES)
    for name, r in doc["strategies"].items():
        assert r["submitted"] > 100, name
        # every request ends in exactly one outcome (means over seeds: up to rounding)
        assert r["completed"] + r["timed_out"] + r["rejected"] + r["failed"] == pytest.approx(
            r["submitted"], abs=1e-5)
        assert 0 < r["fairness"] <= 1
        assert 0 <= r["health_score"] <= 100
        assert r["capacity_action"] in {"scale_up", "scale_down", "maintain"}
        for k in ("wait_mean_s", "wait_p50_s", "wait_p95_s", "wait_p99_s", "e2e_mean_s",
                  "e2e_p50_s", "e2e_p99_s", "failovers", "ejections", "peak_queue",
                  "bottlenecks_found"):
            assert k in r
            lo, hi = r["ci95"][k]
            assert lo <= r[k] <= hi
        assert "wall_s" not in r and "wall_s" not in r["ci95"]
        # Little's law holds on every seed, so on the means too
        assert r["mean_in_system"] == pytest.approx(r["arrival_rate_per_s"]
                                                    * r["sojourn_mean_s"], rel=0.05)
    best = doc["best"]
    assert best["metric"] == "e2e_mean_s" and best["leader"] in STRATEGIES
    assert best["strategy"] in (None, best["leader"])
    # the same arrivals reach every strategy
    assert len({r["submitted"] for r in doc["strategies"].values()}) == 1
    # the scenario's faults show up: the silent agent is failed over, the failing one ejected
    # (means over seeds: weighted sends the slow, failing agent little work, on some
    # seeds too little for an ejection)
    assert all(r["failovers"] >= 1 for r in doc["strategies"].values())
    assert all(r["ejections"] > 0 for r in doc["strategies"].values())


def test_simulate_is_deterministic(small_json):
    again = run("simulate", "--scenario", str(SMALL), "--json", "--seed", "3")
    assert again.returncode == 0
    assert again.stdout == small_json
    other = run("simulate", "--scenario", str(SMALL), "--json", "--seed", "4")
    assert json.loads(other.stdout)["strategies"] != json.loads(small_json)["strategies"]


def test_one_seed_is_the_single_seed_run(small_json):
    proc = run("simulate", "--scenario", str(SMALL), "--json", "--seed", "5", "--seeds", "1")
    assert proc.returncode == 0, proc.stderr
    one = json.loads(proc.stdout)
    assert one["seeds"] == [5]
    five = json.loads(small_json)   # seeds 3..7 include 5; a mean is not one run
    for name, r in one["strategies"].items():
        assert "ci95" not in r
        assert isinstance(r["submitted"], int)
        assert r["completed"] + r["timed_out"] + r["rejected"] + r["failed"] == r["submitted"]
        assert r["submitted"] != five["strategies"][name]["submitted"]
    assert one["best"]["strategy"] is None   # one seed: no significance, no winner
    assert "not decided on one seed" in one["best"]["message"]


def test_jobs_do_not_change_the_results(small_json):
    for jobs in ("1", "3"):
        proc = run("simulate", "--scenario", str(SMALL), "--json", "--seed", "3",
                   "--jobs", jobs)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == small_json, jobs


def test_simulate_table_and_single_strategy():
    wide = ("submitted", "rejected", "wait_mean", "wait_p50", "e2e_p50", "failovers",
            "ejections", "peak_queue", "bottlenecks", "health", "capacity")
    summary = ("completed", "timed_out", "failed", "wait_p99", "e2e_mean", "e2e_p99",
               "fairness")
    proc = run("simulate", "--scenario", str(FLASH), "--strategy", "power_of_two", "--quiet",
               "--seeds", "2", "--wide")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "power_of_two" in out and "least_loaded" not in out
    header = next(line for line in out.splitlines() if line.startswith("strategy "))
    assert all(col in header.split() for col in wide + summary)
    assert "±" in out and "over 2 seeds" in out
    assert "best strategy: power_of_two (the only strategy run)" in out
    # the default: the summary columns only, within 100 characters
    proc = run("simulate", "--scenario", str(FLASH), "--strategy", "power_of_two", "--quiet",
               "--seeds", "2")
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("\n\n")[1]
    assert table.splitlines()[0].split() == ["strategy", "e2e_mean", "e2e_p99", "wait_p99",
                                             "completed", "failed", "timed_out", "fairness"]
    assert max(len(line) for line in table.splitlines()) <= 100
    assert "--wide: every column" in proc.stdout


def test_default_demo_separates_the_strategies():
    # what `make demo` prints: every strategy, five seeds, intervals, a verdict;
    # the load-aware presets (on the allocator's exact counts) are
    # significantly faster end to end than random and round-robin
    proc = run("simulate", "--quiet")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "seeds 0..4" in out and "mean ± 95% CI half-width over 5 seeds" in out
    assert all(s in out for s in STRATEGIES)
    best = [line for line in out.splitlines() if line.startswith("best strategy:")]
    assert len(best) == 1, out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("strategy"))
    col = header.split().index("e2e_mean")
    e2e = {}
    for line in lines:
        cells = line.split()
        if cells and cells[0] in STRATEGIES and len(cells) > col:
            m, h = (float(x) for x in cells[col].split("±"))
            e2e[cells[0]] = (m - h, m + h)
    blind = min(e2e["random"][0], e2e["round_robin"][0])
    for s in ("least_loaded", "weighted", "priority_based", "scored"):
        assert e2e[s][1] < blind, (s, e2e)
    leader = best[0].split()[2] if "none" not in best[0] else best[0].split()[6]
    assert leader not in ("random", "round_robin"), best[0]
    table = out.split("\n\n")[1]
    assert max(len(line) for line in table.splitlines()) <= 100, table
    # the capacity verdict names the pool it was taken on: large-1 went
    # silent at 30 s (OFFLINE), so 27 of the 28 agents are online
    cap = out[out.index("capacity when arrivals stop"):]
    assert "27 of 28 agents online (large-1 offline)" in cap, cap
    assert "why: " in cap and "High utilization" not in cap.splitlines()[1], cap
    health = next(line for line in out.splitlines() if line.startswith("health when"))
    assert "for every strategy" in health and "scheduler/latency" in health, health


def test_trace_replay_csv_and_json_lines_agree(tmp_path):
    csv_proc = run("simulate", "--scenario", str(SMALL), "--trace", str(TRACE), "--json",
                   "--seeds", "2", "--strategy", "least_loaded")
    assert csv_proc.returncode == 0, csv_proc.stderr
    doc = json.loads(csv_proc.stdout)
    rows = TRACE.read_text().strip().splitlines()
    assert doc["trace"]["requests"] == len(rows) - 1
    r = doc["strategies"]["least_loaded"]
    assert r["submitted"] == len(rows) - 1    # exactly the trace's requests, on every seed
    assert r["ci95"]["submitted"] == [r["submitted"], r["submitted"]]
    # the same requests as JSON lines give the same results
    header = rows[0].split(",")
    lines = []
    for row in rows[1:]:
        cells = dict(zip(header, row.split(",")))
        obj = {k: (float(v) if k in ("arrival_s", "work_s", "timeout_s") else v)
               for k, v in cells.items() if v != ""}
        lines.append(json.dumps(obj))
    jl = tmp_path / "requests.jsonl"
    jl.write_text("\n".join(lines) + "\n")
    jl_proc = run("simulate", "--scenario", str(SMALL), "--trace", str(jl), "--json",
                  "--seeds", "2", "--strategy", "least_loaded")
    assert jl_proc.returncode == 0, jl_proc.stderr
    jdoc = json.loads(jl_proc.stdout)
    assert jdoc["strategies"] == doc["strategies"]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("arrival_s,work_s\n0.5,1.0\n1.0,abc\n", ".csv",
         "line 3, column work_s: must be a number, got 'abc'"),
        ("arrival_s,work_s\n0.5,0\n", ".csv", "line 2, column work_s: must be > 0, got '0'"),
        ("arrival_s,work_s,priority\n0.5,1,urgent\n", ".csv",
         "line 2, column priority: must be one of low, medium, high, critical, got 'urgent'"),
        ("arrival_s,work_s,timeout_s\n\n-1,1,\n", ".csv",
         "line 3, column arrival_s: must be >= 0, got '-1'"),
        ("arrival_s,work_s,timeout_s\n1,1,nan\n", ".csv",
         "line 2, column timeout_s: must be finite, got 'nan'"),
        ("arrival_s,work,tenant\n1,1,a\n", ".csv", "line 1, column work: unknown column"),
        ("arrival_s,tenant\n1,a\n", ".csv", "line 1, column work_s: missing from the header"),
        ("arrival_s,work_s\n", ".csv", "no requests"),
        ('{"arrival_s": 0, "work_s": 1}\n{"arrival_s": 1, "work_s": "x"}\n', ".jsonl",
         "line 2, column work_s: must be a number, got 'x'"),
        ('{"arrival_s": 0, "work_s": 1}\n{"arrival_s": 1}\n', ".jsonl",
         "line 2, column work_s: missing"),
        ('{"arrival_s": 0, "work_s": 1}\n[1, 2]\n', ".jsonl",
         "line 2: must be a JSON object"),
        ('{"arrival_s": 0, "work_s": 1, "gpu": 1}\n', ".jsonl", "line 1, column gpu: unknown"),
        ('{"arrival_s": 0, "work_s": true}\n', ".jsonl",
         "line 1, column work_s: must be a number, got True"),
    ],
)
def test_bad_traces_exit_2_naming_line_and_column(tmp_path, content, suffix, message):
    f = tmp_path / f"trace{suffix}"
    f.write_text(content)
    proc = run("simulate", "--scenario", str(SMALL), "--trace", str(f), "--seeds", "1")
    assert proc.returncode == 2
    assert "bad trace" in proc.stderr and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_simulate_plot_written(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "sim.png"
    proc = run("simulate", "--scenario", str(SMALL), "--plot", str(out), "--quiet",
               "--seeds", "2")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000


def test_llm_trace_replay_limited_and_sped_up(tmp_path):
    """The LLM example's own trace (from the scenario), its first 600 requests
    (154 s) twice as fast (past its 60 s warm-up): the table and plot gain
    the LLM columns and panels."""
    proc = run("simulate", "--scenario", str(LLM), "--trace-limit", "600", "--trace-speed",
               "2", "--seeds", "2", "--strategy", "least_loaded", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    tr = doc["trace"]
    assert tr["format"] == "mooncake" and tr["requests"] == 600
    assert tr["speed"] == 2.0 and tr["limit"] == 600
    full = run("simulate", "--scenario", str(LLM), "--trace-limit", "600", "--seeds", "1",
               "--strategy", "least_loaded", "--json")
    assert full.returncode == 0, full.stderr
    assert json.loads(full.stdout)["trace"]["duration_s"] == pytest.approx(2 * tr["duration_s"])
    r = doc["strategies"]["least_loaded"]
    assert r["submitted"] == 600 and r["completed"] == 600
    for key in ("ttft_mean_s", "ttft_p50_s", "ttft_p99_s", "cache_hit_rate", "tokens_per_s"):
        assert r[key] is not None and key in r["ci95"], key
    assert 0.0 < r["cache_hit_rate"] < 1.0
    assert 0.0 < r["ttft_p50_s"] <= r["ttft_p99_s"]
    args = ["simulate", "--scenario", str(LLM), "--trace-limit", "200", "--seeds", "2",
            "--strategy", "random", "--quiet"]
    table = run(*args)
    assert table.returncode == 0, table.stderr
    # the LLM columns that have values (here all requests fall in the warm-up
    # for the time figures) follow the summary, wrapped into a second block
    # so that no line passes 100 columns
    lines = table.stdout.splitlines()
    headers = [w for line in lines if line.startswith("strategy") for w in line.split()]
    assert "cache_hit" in headers and "tokens/s" in headers, table.stdout
    assert max(len(line) for line in lines if line.startswith(("strategy", "random"))) <= 100
    assert "(mooncake): 200 requests" in table.stdout
    plain = run("simulate", "--scenario", str(SMALL), "--seeds", "1", "--strategy", "random")
    assert "ttft_mean" not in plain.stdout
    if importlib.util.find_spec("matplotlib") is not None:
        png = tmp_path / "llm.png"
        proc = run(*args, "--plot", str(png))
        assert proc.returncode == 0, proc.stderr
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_llm_pool_and_trace_must_fit(tmp_path):
    proc = run("simulate", "--scenario", str(LLM), "--trace", str(TRACE))
    assert proc.returncode == 2
    assert "the requests trace carries no tokens" in proc.stderr, proc.stderr
    moon = tmp_path / "m.jsonl"
    moon.write_text('{"timestamp": 0, "input_length": 10, "output_length": 1}\n')
    proc = run("simulate", "--scenario", str(SMALL), "--trace", str(moon))
    assert proc.returncode == 2 and "replay it on service" in proc.stderr, proc.stderr
    proc = run("simulate", "--scenario", str(SMALL), "--trace-limit", "5")
    assert proc.returncode == 2 and "need a trace" in proc.stderr
    for bad in (["--trace-speed", "0"], ["--trace-speed", "nan"], ["--trace-limit", "0"]):
        proc = run("simulate", "--scenario", str(LLM), *bad)
        assert proc.returncode == 2 and "--trace-" in proc.stderr, bad
        assert "Traceback" not in proc.stderr


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
    proc = run("simulate", "--trace", str(tmp_path / "nope.csv"))
    assert proc.returncode == 2 and "cannot read trace file" in proc.stderr


def test_bad_arguments_exit_2():
    assert run("simulate", "--strategy", "fastest").returncode == 2
    assert run("simulate", "--seeds", "0").returncode == 2
    assert run("simulate", "--jobs", "0").returncode == 2
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


# -- the table and the verdict lines (in this process) ---------------------------------

def _row(**extra):
    base = {"submitted": 4044.0, "completed": 4032.0, "timed_out": 0.0, "rejected": 0.0,
            "failed": 12.0, "wait_mean_s": 0.11, "wait_p50_s": 0.0, "wait_p95_s": 0.4,
            "wait_p99_s": 3.0, "e2e_mean_s": 3.28, "e2e_p50_s": 1.76, "e2e_p99_s": 21.43,
            "fairness": 0.893, "failovers": 2.8, "ejections": 1.8, "peak_queue": 117.0,
            "bottlenecks_found": 2.8, "health_score": 80.0, "capacity_action": "scale_up"}
    base.update(extra)
    base["ci95"] = {k: [v - 0.5 * abs(v) - 1.0, v + 0.5 * abs(v) + 1.0]
                    for k, v in base.items() if isinstance(v, float)}
    return base


def test_llm_columns_show_when_present_and_the_table_stays_within_100():
    from io import StringIO

    from arbiter_core.cli import TABLE_WIDTH, render_table, table_columns

    names = ["round_robin", "least_loaded", "priority_based", "power_of_two"]
    plain = {n: _row() for n in names}
    assert "ttft_mean_s" not in [k for _, k, _ in table_columns(plain)]
    # present but null (a model without TTFT): still not shown
    nulls = {n: _row(ttft_mean_s=None, ttft_p99_s=None) for n in names}
    assert "ttft_mean_s" not in [k for _, k, _ in table_columns(nulls)]
    llm = {n: _row(ttft_mean_s=0.412, ttft_p99_s=2.318, cache_hit_rate=0.731,
                   tokens_per_s=18234.0) for n in names}
    cols = table_columns(llm)
    keys = [k for _, k, _ in cols]
    assert keys[-4:] == ["ttft_mean_s", "ttft_p99_s", "cache_hit_rate", "tokens_per_s"]
    out = StringIO()
    render_table(llm, out, cols, TABLE_WIDTH)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    headers = [line.split() for line in lines if line.startswith("strategy")]
    assert len(headers) == 2  # the LLM columns wrapped into a second block
    assert [h for hs in headers for h in hs if h != "strategy"] == [h for h, _, _ in cols]
    assert sum(line.startswith("priority_based") for line in lines) == 2
    # --wide: one block, every column (ttft_p50 too, when the results have it)
    out = StringIO()
    render_table(llm, out, table_columns(llm, wide=True), None)
    header = out.getvalue().splitlines()[0].split()
    assert len(header) == 1 + 19 + 4
    for r in llm.values():
        r["ttft_p50_s"] = 0.3
    assert "ttft_p50" in [h for h, _, _ in table_columns(llm, wide=True)]
    assert "ttft_p50" not in [h for h, _, _ in table_columns(llm)]


def test_capacity_and_health_lines_say_what_they_mean():
    from arbiter_core.cli import capacity_line, health_line

    row = {"capacity_action": "scale_up", "desired_agents": 28, "online_agents": 27,
           "total_agents": 28, "capacity_rationale": "Held by the scale-down window",
           "agents_out": ["large-1 offline", "small-2 ejected until 41.0 s"]}
    text = capacity_line("weighted", 0, row)
    assert text.startswith("capacity when arrivals stop (weighted, seed 0): scale_up, "
                           "desired 28 agents; 27 of 28 agents online (large-1 offline)")
    assert "why: Held by the scale-down window" in text
    assert "ejected then (still online, taking no new work): small-2 ejected until 41.0 s" \
        in text
    rows = {"a": {"health_score": 80.0, "ci95": {"health_score": [80.0, 80.0]},
                  "health_bottlenecks": ["scheduler/latency (critical)"]},
            "b": {"health_score": 80.0, "ci95": {"health_score": [80.0, 80.0]},
                  "health_bottlenecks": ["scheduler/latency (critical)"]}}
    assert health_line(rows).endswith(
        "80 on every seed for every strategy (scheduler/latency (critical))")
    rows["b"] = {"health_score": 90.0, "health_bottlenecks": ["scheduler/latency (high)"]}
    assert health_line(rows).endswith("80 on every seed for a (scheduler/latency "
                                      "(critical)); 90 for b (scheduler/latency (high))")


def test_bench_names_the_peers_it_skipped_and_how_to_install_them(tmp_path):
    # prometheus_client and hdrh that cannot be imported (a shadowing package)
    for pkg in ("prometheus_client", "hdrh"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text(f"raise ImportError('no {pkg} here')\n")
    import os

    proc = subprocess.run([sys.executable, "-m", "arbiter_core", "bench", "--scale", "0.05"],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "vs prometheus_client" not in out
    assert ("skipped, not installed: prometheus_client Histogram.observe (package "
            "prometheus_client); hdrhistogram record_value (package hdrhistogram)") in out
    assert "pip install hdrhistogram prometheus_client" in out
    assert "pip install '.[bench]'" in out
    # with them installed (make test installs the bench extra) nothing is skipped
    proc = run("bench", "--scale", "0.05", timeout=300)
    assert "vs prometheus_client Histogram.observe" in proc.stdout
    assert "skipped" not in proc.stdout
