"""The examples in examples/ run as a user runs them (subprocesses; the asyncio
ones under -X dev, whose debug mode reports any callback that holds the loop
for more than 100 ms)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script: str, *args: str, dev: bool = True) -> str:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    flags = ["-X", "dev"] if dev else []
    proc = subprocess.run([sys.executable, *flags, str(EXAMPLES / script), *args],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if dev:
        assert "Executing <" not in proc.stderr, proc.stderr      # slow-callback warnings
    return proc.stdout


def test_embed_service_allocates_runs_and_releases() -> None:
    out = run("embed_service.py", "--tasks", "40", "--seed", "3", dev=False)
    assert "manager: 40 requests, 40 released" in out
    assert "all 40 requests accounted for" in out


def test_asyncio_service():
    out = run("asyncio_service.py", "--tasks", "60")
    assert "/60 served" in out
    assert "maintenance ran as asyncio tasks: manager True, optimizer True" in out
    assert "after exit: manager False, optimizer False" in out


def test_litellm_router():
    pytest.importorskip("litellm")
    # not under -X dev: LiteLLM's own first calls hold the loop for 0.1-1 s there
    # (lazy imports and client set-up), with or without arbiter
    out = run("litellm_router.py", "--calls", "200", "--deployments", "4", "--limit", "30",
              "--delay", "0", dev=False)
    assert "{'ok': 200}" in out
    assert "refused 0" in out and "outstanding 0" in out
    assert "ejected ['d3']" in out            # the last deployment always fails
