"""Simulation sweeps on Ray: a local 2-CPU instance gives exactly the results
of --jobs 1.  Skipped when Ray is not installed (``make test-ray`` installs
the ``ray`` extra and runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install arbiter-runtime[ray]; "
                                  "make test-ray)")

SMALL = {
    "duration_s": 10.0,
    "pool": {"groups": [{"name": "a", "count": 4, "max_tasks": 2}]},
    "arrivals": {"rate_per_s": 6.0, "mean_task_s": 1.0},
    "replicas": 2,
}


def simulate(path, *extra):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-m", "arbiter_core", "simulate", "--scenario",
                          str(path), "--seeds", "2", "--json", "--strategy", "least_loaded",
                          *extra], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_ray_executor_gives_the_results_of_one_process(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps(SMALL))
    local = simulate(f, "--jobs", "1")
    on_ray = simulate(f, "--executor", "ray", "--jobs", "2")
    assert on_ray == local
    assert local["strategies"]["least_loaded"]["oversubscribed"] == 0
