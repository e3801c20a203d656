"""pytest-benchmark plumbing: time one op of a comparison, record its ratios.

With ``--benchmark-disable`` (CI) each op runs once and its result is checked;
nothing is timed.  In a benchmark run the ``arbiter`` op of each comparison
also measures every peer side by side (:func:`_harness.compare`) and stores
``ratio_vs_<peer>`` in ``benchmark.extra_info``; the ratios are printed at the
end of the session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _harness import Comparison, Result, compare, fmt_ns

_RESULTS: list[Result] = []


@pytest.fixture
def side_by_side(benchmark: Any) -> Callable[[Callable[[], Comparison], str], Any]:
    """Run op ``label`` of a fresh comparison under ``benchmark`` and check it."""

    def run(factory: Callable[[], Comparison], label: str) -> Any:
        c = factory()
        op = c.op(label)
        benchmark.group = c.name
        benchmark.extra_info["note"] = op.note
        if op.setup is None:
            result = benchmark(op.fn, *op.args)
        else:
            result = benchmark.pedantic(op.fn, setup=lambda: (op.setup(), {}), rounds=10)
        if op.check is not None:
            op.check(result)
        if label == c.ours.label and not benchmark.disabled:
            res = compare(factory())
            for other, ratio in res.ratios.items():
                benchmark.extra_info[f"ratio_vs_{other}"] = round(ratio, 4)
            _RESULTS.append(res)
        return result

    return run


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from resource_peers import REPORTS

    tr = terminalreporter
    if REPORTS:
        tr.section("allocation and selection, side by side")
        for lines in REPORTS:
            for line in lines:
                tr.write_line(line)
    if not _RESULTS:
        return
    tr.section("ratios ours/other (median of interleaved timeit repeats)")
    for res in _RESULTS:
        ours = res.timings[res.comparison.ours.label]
        parts = []
        for label, ratio in res.ratios.items():
            ok = res.meets(label)
            mark = "" if ok is None else (" <= target" if ok else " MISSES target")
            target = res.comparison.targets.get(label)
            parts.append(f"{label} {ratio:.3g}x" + (f" (target {target}x{mark})" if target else ""))
        tr.write_line(f"{res.comparison.name}: {fmt_ns(ours.median)}/op; " + "; ".join(parts))
