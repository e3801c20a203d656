"""Shared by the resources benchmarks: the plain-Python peer and the ratio report.

The peer is what a straightforward Python scheduler does to pick the least
loaded agent: one pass over a list of agent dicts.  Each benchmark module
keeps its medians with :func:`keep` and prints them, as ratios to the peer on
the same pool size, with :func:`report` at module teardown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest


def plain_least_loaded(agents: list[dict[str, Any]]) -> str:
    """The original's least-loaded rule over dicts, skipping offline and full agents."""
    best, best_load = None, float("inf")
    for a in agents:
        if a["health"] == "offline" or a["tasks"] >= a["max_tasks"]:
            continue
        load = a["tasks"] / a["max_tasks"] * 100 + (a["cpu"] + a["memory"]) / 2
        if load < best_load:
            best, best_load = a["id"], load
    assert best is not None
    return best


def keep(medians: dict[str, float], benchmark: Any, name: str) -> None:
    """Remember the median of a benchmark that ran (not under --benchmark-disable)."""
    if benchmark.enabled and benchmark.stats is not None:
        medians[name] = benchmark.stats.stats.median


#: the reports of the modules that ran, printed in the terminal summary
#: (benchmarks/conftest.py), after pytest's progress line, never inside it
REPORTS: list[list[str]] = []


def report(request: pytest.FixtureRequest, title: str, medians: dict[str, float],
           notes: Sequence[str] = ()) -> None:
    """Keep ``name@n`` medians and their ratio to ``plain_least_loaded@n``
    for the terminal summary."""
    if not medians and not notes:
        return
    lines = [f"{title}: median time, and ratio to the plain-Python scan of the same pool"]
    for name, t in sorted(medians.items()):
        n = name.rsplit("@", 1)[1]
        base = medians.get(f"plain_least_loaded@{n}")
        ratio = f"{t / base:8.4f}x" if base else "        -"
        lines.append(f"  {name:<36} {t * 1e6:10.3f} us  {ratio}")
    lines.extend(notes)
    REPORTS.append(lines)
