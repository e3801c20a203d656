"""arbiter-core monitor's view: the frame's figures against a manager whose
state is known, the rendered view (rich, to a string console), the command
(frames, JSON lines, refreshing in place) and a run watched is the same run."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    EjectionConfig,
    ManualClock,
    ResourceManagerConfig,
    RuntimeOptimizer,
)
from arbiter_core.dashboard import dashboard_state

ROOT = Path(__file__).resolve().parents[1]
NOISY = ROOT / "examples" / "scenarios" / "noisy_neighbour.toml"
SMALL = ROOT / "examples" / "scenarios" / "small.toml"


@pytest.fixture
def pool():
    """Four agents: 'bad' ejected (3 failures), 'gone' offline (silent past the
    stale limit), 'busy' full, 'idle' empty; two tenants with limits, one
    queued request."""
    clock = ManualClock(start=1000.0)
    arm = AdaptiveResourceManager(ResourceManagerConfig(
        seed=1, stale_after_s=10.0, max_queue=50,
        ejection=EjectionConfig(consecutive_failures=3, base_ejection_s=30.0,
                                max_ejection_percent=50.0)), clock=clock)
    arm.set_tenant_policy("batch", weight=1.0, max_active=2, max_queued=5)
    arm.set_tenant_policy("web", weight=3.0, rate_per_s=20.0, burst=20.0)
    arm.register_agent("bad", max_tasks=3)
    for i in range(3):
        assert arm.allocate_resources(AllocationRequest(f"f{i}", f"f{i}", tenant="web")
                                      ).agent_id == "bad"
    for i in range(3):
        arm.release_resources(f"f{i}", success=False)
    arm.register_agent("gone", max_tasks=2)
    arm.record_usage("gone", cpu=10.0, memory=10.0)
    clock.advance(11.0)                                 # 'gone' is stale now
    for name in ("busy", "idle"):
        arm.register_agent(name, max_tasks=2)
        arm.record_usage(name, cpu=50.0, memory=40.0)
    arm.tick()                                          # 'gone' goes OFFLINE
    for i in range(2):
        assert arm.allocate_resources(AllocationRequest(f"b{i}", f"b{i}", tenant="batch")
                                      ).agent_id in ("busy", "idle")
    # 'batch' is at its max_active: the next one waits
    arm.allocate_resources(AllocationRequest("b2", "b2", tenant="batch", timeout_s=60.0))
    arm.analyze_capacity()
    return clock, arm


def test_state_has_the_agents_queue_tenants_and_limits(pool):
    clock, arm = pool
    st = dashboard_state(arm)
    agents = {a["agent"]: a for a in st["agents"]}
    assert set(agents) == {"bad", "gone", "busy", "idle"}
    assert agents["bad"]["ejected_for_s"] == pytest.approx(30.0 - 11.0)
    assert agents["bad"]["ejections"] == 1 and agents["bad"]["failed"] == 3
    assert agents["gone"]["health"] == "offline" and agents["gone"]["ejected_for_s"] is None
    running = sum(a["tasks"] for a in st["agents"])
    assert running == 2 and st["queue"]["active"] == 2 and st["queue"]["queued"] == 1
    # busiest first
    loads = [a["load"] for a in st["agents"]]
    assert loads == sorted(loads, reverse=True)
    assert st["tenants"]["batch"]["queued"] == 1 and st["tenants"]["batch"]["active"] == 2
    assert st["tenants"]["batch"]["max_active"] == 2 and st["tenants"]["web"]["weight"] == 3.0
    assert st["tenants"]["web"]["rate_per_s"] == 20.0
    assert st["limits"]["max_queue"] == 50
    cap = st["capacity"]
    assert (cap["online_agents"], cap["total_agents"]) == (3, 4)
    assert "health_score" not in st                     # no optimizer given
    json.dumps(st)                                      # plain data


def test_view_renders_every_part_within_80_columns(pool):
    from rich.console import Console

    from arbiter_core.dashboard import render_dashboard

    clock, arm = pool
    opt = RuntimeOptimizer(clock=clock)
    for ms in (120.0, 4500.0, 5200.0, 6100.0):
        opt.record_metric("latency", ms, source="api")
    st = dashboard_state(arm, opt)
    assert st["health_score"] < 100 and st["bottlenecks"]
    buf = io.StringIO()
    Console(file=buf, width=80, color_system=None).print(render_dashboard(st, "test view"))
    text = buf.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for needle in ("test view", "health ", "latency", "agents (4, busiest first)", "bad",
                   "19 s more", "offline", "0/3", "queue 1 waiting, 2 running",
                   "queue bound 50", "capacity ", "3 of 4 agents online", "batch",
                   "2 active, 5 queued", "20/s"):
        assert needle in text, (needle, text)
    # at most max_agents rows, and a line saying how many more
    buf = io.StringIO()
    Console(file=buf, width=80, color_system=None).print(render_dashboard(st, max_agents=2))
    assert "(2 more agents)" in buf.getvalue()


def test_watching_a_run_does_not_change_it():
    from arbiter_core.scenario import load_scenario
    from arbiter_core.simulate import run_simulation

    scenario = load_scenario(str(SMALL))
    seen = []

    def observe(now, manager, optimizer):
        seen.append((now, dashboard_state(manager, analysis=optimizer.last_analysis)))

    watched = run_simulation(scenario, "least_loaded", 3, observe=observe)
    plain = run_simulation(scenario, "least_loaded", 3)
    a, b = watched.table_row(), plain.table_row()
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b
    times = [t for t, _ in seen]
    assert times == sorted(times) and len(times) >= scenario.duration_s / 1.0
    # the frames follow the run: the last one has every request accounted for
    last = seen[-1][1]["queue"]
    assert last["allocated"] + last["rejected"] + last["timed_out"] + last["failed"] \
        + last["queued"] == watched.submitted


def _monitor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arbiter_core", "monitor", *args],
                          capture_output=True, text=True, timeout=300, check=False,
                          env=None if env is None else {**os.environ, **env})


def test_monitor_scenario_frames_show_agents_queue_and_tenants():
    proc = _monitor("--scenario", str(NOISY), "--speed", "0", "--count", "3",
                    "--interval", "5", "--plain")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count("arbiter-core monitor: scenario 'noisy_neighbour'") == 3
    # the manager ticks every simulated second from t = 1 s; a frame every 5 s
    for t in ("t = 1 s", "t = 6 s", "t = 11 s"):
        assert t in out
    assert "agents (20, busiest first)" in out and "worker-0" in out
    assert "flood" in out and "quiet" in out and "200 queued" in out
    assert "queue " in out and "limits " in out and "capacity " in out


def test_monitor_scenario_json_lines():
    proc = _monitor("--scenario", str(NOISY), "--speed", "0", "--count", "4",
                    "--interval", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    frames = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [f["simulated_s"] for f in frames] == [1.0, 3.0, 5.0, 7.0]
    assert all(len(f["agents"]) == 20 for f in frames)
    assert frames[-1]["tenants"]["flood"]["max_queued"] == 200
    assert frames[-1]["queue"]["allocated"] > frames[0]["queue"]["allocated"]


def test_monitor_refreshes_in_place_on_a_terminal():
    # rich takes FORCE_COLOR as "this is a terminal": the live view then
    # redraws each frame over the last (cursor up, erase line)
    proc = _monitor("--scenario", str(SMALL), "--speed", "0", "--count", "3",
                    "--interval", "2", env={"FORCE_COLOR": "1", "COLUMNS": "100",
                                            "LINES": "60"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\x1b[1A" in out and "\x1b[2K" in out, repr(out[:300])
    # three frames (the live view draws the last one once more as it stops)
    assert {f"t = {t} s" for t in (1, 3, 5)} <= set(re.findall(r"t = \d+ s", out))
    assert "t = 7 s" not in out


def test_monitor_help_shows_every_default():
    from arbiter_core.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help, (name, action.dest)
            text = p.formatter_class("x")._get_help_string(action)
            shown = action.default is None or action.default is False or "default" in text
            assert shown, (name, action.dest, text)


def test_monitor_without_rich_prints_one_line_a_frame(tmp_path):
    # a rich that cannot be imported: the plain fallback
    (tmp_path / "rich").mkdir()
    (tmp_path / "rich" / "__init__.py").write_text("raise ImportError('no rich here')\n")
    proc = _monitor("--scenario", str(SMALL), "--speed", "0", "--count", "2",
                    "--interval", "2", env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[t = ")]
    assert len(lines) == 2 and "agents 8 running" in lines[1]


def test_rendering_leaves_the_state_alone(pool):
    # rendering reads the state only
    from arbiter_core.dashboard import render_dashboard

    _, arm = pool
    st = dashboard_state(arm)
    before = json.dumps(st, sort_keys=True)
    render_dashboard(st)
    assert json.dumps(st, sort_keys=True) == before
