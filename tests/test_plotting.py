"""The simulation plots: intervals within the metric's range, labelled
panels, bursts and faults marked, a colour-blind-safe style per strategy."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbiter_core.plotting import LINE_STYLES, PALETTE, error_bars

SMALL = Path(__file__).resolve().parents[1] / "examples" / "scenarios" / "small.toml"
finite = st.floats(-1e3, 1e3, allow_nan=False)


@given(st.lists(st.tuples(st.floats(0, 1e3), finite, finite), min_size=1, max_size=8))
def test_error_bars_never_leave_the_metric_range(cases):
    means = [m for m, _, _ in cases]
    cis = [[m - abs(a), m + abs(b)] for m, a, b in cases]
    err = error_bars(means, cis)
    assert err.shape == (2, len(means)) and (err >= 0).all()
    for i, m in enumerate(means):
        assert m - err[0, i] >= -1e-9                    # never below 0 s
        assert m - err[0, i] == pytest.approx(max(cis[i][0], 0.0), abs=1e-9)
        assert m + err[1, i] == pytest.approx(cis[i][1], abs=1e-9)


def test_error_bars_respect_an_upper_bound_and_missing_intervals():
    err = error_bars([0.95, 0.5], [[0.9, 1.02], None], lower=0.0, upper=1.0)
    assert err[:, 0] == pytest.approx([0.05, 0.05])
    assert (err[:, 1] == 0).all()


def test_every_strategy_has_its_own_colour_and_line_style():
    assert len(set(PALETTE)) == 8 and len(set(map(str, LINE_STYLES))) == 8


def test_plot_labels_its_panels_and_marks_bursts_and_faults():
    pytest.importorskip("matplotlib")
    import matplotlib

    from arbiter_core.plotting import plot_results
    from arbiter_core.scenario import load_scenario
    from arbiter_core.simulate import run_cases, summarize

    scenario = load_scenario(str(SMALL))
    runs = run_cases(scenario, ["least_loaded", "random"], [0, 1])
    rows = {n: summarize(r) for n, r in runs.items()}
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text
        plot_results({n: r[0] for n, r in runs.items()}, buf, rows, scenario=scenario,
                     seed=0, seeds=[0, 1], fmt="svg")
    svg = buf.getvalue().decode()
    text = " ".join(re.findall(r">([^<>]+)</text>", svg))
    assert "End-to-end latency CDF, completed tasks (seed 0)" in text
    assert "Queue length (seed 0; bursts shaded, faults marked)" in text
    assert "Per-agent load, busiest first (seed 0)" in text
    assert "mean over seeds 0..1; 95% CI, clipped to the range" in text
    for b in scenario.arrivals.bursts:
        assert f"burst x{b.factor:g}" in text
    for f in scenario.faults:
        assert f"{f.agent} {f.kind}" in text
    # the strategies' lines: the palette's first two colours, two line styles
    assert PALETTE[0].lower() in svg.lower() and PALETTE[1].lower() in svg.lower()
    assert np.isfinite([rows[n]["wait_mean_s"] for n in rows]).all()
