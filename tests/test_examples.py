"""The examples in examples/ run as documented (they are part of the docs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_embed_service_allocates_runs_and_releases() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "embed_service.py"),
                           "--tasks", "40", "--seed", "3"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "manager: 40 requests, 40 released" in proc.stdout
    assert "all 40 requests accounted for" in proc.stdout
