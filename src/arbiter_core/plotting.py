"""Plots of simulation results (the ``plot`` extra: matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import IO, Any

import numpy as np

__all__ = ["LINE_STYLES", "PALETTE", "error_bars", "plot_results"]

#: Okabe and Ito's colour-blind-safe palette (yellow last: it is faint on white)
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000",
           "#F0E442")
#: a line style per strategy as well, so that no line depends on its colour alone
LINE_STYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)),
                                (0, (1, 2)), (0, (8, 2, 2, 2)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def error_bars(means: Sequence[float] | np.ndarray, intervals: Sequence[Sequence[float] | None],
               lower: float = 0.0, upper: float = np.inf) -> np.ndarray:
    """Error bar lengths ``(2, n)`` for ``means`` with 95 % ``intervals``,
    clipped to the metric's range ``[lower, upper]``.

    A Student-t interval of a skewed, non-negative figure (a mean wait near
    0 s) can reach below 0; the metric cannot, so the bar stops at the range.
    A missing interval (one seed) draws no bar.

    >>> error_bars([0.02, 2.0], [[-0.01, 0.05], None]).round(3).tolist()
    [[0.02, 0.0], [0.03, 0.0]]
    """
    err = np.zeros((2, len(means)))
    for i, (m, ci) in enumerate(zip(means, intervals)):
        if ci is None or not np.isfinite(m):
            continue
        lo, hi = max(ci[0], lower), min(ci[1], upper)
        err[:, i] = (max(m - lo, 0.0), max(hi - m, 0.0))
    return err


def _style(k: int) -> dict[str, Any]:
    return {"color": PALETTE[k % len(PALETTE)], "linestyle": LINE_STYLES[k % len(LINE_STYLES)]}


def _mark_events(ax: Any, scenario: Any) -> None:
    """Shade the scenario's bursts and draw a line at each fault."""
    if scenario is None:
        return
    for b in scenario.arrivals.bursts:
        ax.axvspan(b.start_s, b.start_s + b.duration_s, color="0.88", zorder=0,
                   label="arrival bursts")
        ax.annotate(f"burst x{b.factor:g}", xy=(b.start_s + b.duration_s / 2, 0.02),
                    xycoords=("data", "axes fraction"), ha="center", va="bottom",
                    fontsize=7, color="0.2")
    for f in scenario.faults:
        ax.axvline(f.at_s, color="0.3", linewidth=0.8, linestyle=(0, (2, 2)), zorder=1)
        what = f.agent if f.kind != "replica_crash" else f"replica {f.replica}"
        ax.annotate(f"{what} {f.kind}", xy=(f.at_s, 0.98), xycoords=("data", "axes fraction"),
                    rotation=90, va="top", ha="right", fontsize=7, color="0.2", zorder=5,
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white",
                          "edgecolor": "none", "alpha": 0.8})


def plot_results(results: Mapping[str, Any], path: str | IO[bytes],
                 rows: Mapping[str, Mapping[str, Any]] | None = None, *,
                 scenario: Any = None, seed: int | None = None,
                 seeds: Sequence[int] | None = None, fmt: str | None = None) -> None:
    """Write a 2x3 figure to ``path`` (3x3 with the LLM-serving model).

    Top: end-to-end latency CDF, queue length, task-slot utilization (one
    seed's run, named in each title; the scenario's bursts shaded and its
    faults marked); bottom: per-agent load (the same run), and the mean wait
    and mean end-to-end time per strategy with their 95 % intervals over the
    seeds, clipped at 0 s (a time is never negative).  Every strategy has its
    own colour from a colour-blind-safe palette and its own line style.
    With LLM agents a third row has the mean time to first token, the
    prefix-cache hit rate and the output tokens per second, with their
    intervals.

    Parameters
    ----------
    results : mapping of strategy name to SimulationResult
        One run per strategy (the first seed) for the time series.
    path : str or binary file
        Output; the format follows the extension (``.png``, ``.svg``, ...)
        or ``fmt``.
    rows : mapping of strategy name to summary row, optional
        :func:`arbiter_core.simulate.summarize` rows (means and ``ci95``);
        without them the bars show ``results`` alone.
    scenario : Scenario, optional
        Marks its bursts and faults on the time series.
    seed : int, optional
        The seed of ``results`` (default: the first result's).
    seeds : sequence of int, optional
        The seeds behind ``rows``, for the bar charts' titles.
    fmt : str, optional
        The image format when ``path`` is a file object (``"png"``, ``"svg"``).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    if seed is None:
        seed = next((getattr(r, "seed", 0) for r in results.values()), 0)
    run = f"seed {seed}"
    if rows is None:
        rows = {name: r.table_row() for name, r in results.items()}
    llm = any(row.get("ttft_mean_s") is not None for row in rows.values())
    fig, axes = plt.subplots(3 if llm else 2, 3, figsize=(18, 13.5 if llm else 9),
                             constrained_layout=True)
    (ax_cdf, ax_queue, ax_util), (ax_load, ax_wait, ax_e2e) = axes[:2]
    for k, (name, r) in enumerate(results.items()):
        style = _style(k)
        e2e = np.sort(np.asarray(r.e2e_samples, dtype=float))
        if e2e.size:
            ax_cdf.plot(e2e, np.arange(1, e2e.size + 1) / e2e.size, label=name, **style)
        t = r.timeline.get("t", [])
        ax_queue.plot(t, r.timeline.get("queue", []), label=name, linewidth=1.2, **style)
        ax_util.plot(t, r.timeline.get("utilization", []), label=name, linewidth=1.2, **style)
        busy = np.sort(np.asarray(list(r.agent_busy_s.values()), dtype=float))[::-1]
        if busy.size and r.simulated_s > 0:
            ax_load.plot(np.arange(busy.size), busy / r.simulated_s, label=name,
                         marker=_MARKERS[k % len(_MARKERS)], markersize=4, linewidth=1, **style)
    for ax in (ax_queue, ax_util):
        _mark_events(ax, scenario)
    names = list(rows)
    if seeds is not None and len(seeds) > 1:
        over = f"mean over seeds {seeds[0]}..{seeds[-1]}; 95% CI, clipped to the range"
    elif any((rows[n].get("ci95") or {}) for n in names):
        over = "mean over seeds; 95% CI, clipped to the range"
    else:
        over = f"{run}, no interval"
    bars = [(ax_wait, "wait_mean_s", "Mean wait (queueing)", "seconds", np.inf),
            (ax_e2e, "e2e_mean_s", "Mean end-to-end time", "seconds", np.inf)]
    if llm:
        ax_ttft, ax_hit, ax_tps = axes[2]
        bars += [(ax_ttft, "ttft_mean_s", "Mean time to first token", "seconds", np.inf),
                 (ax_hit, "cache_hit_rate", "Prefix-cache hit rate (prompt tokens)",
                  "fraction", 1.0),
                 (ax_tps, "tokens_per_s", "Output tokens per second", "tokens/s", np.inf)]
    for ax, key, title, unit, upper in bars:
        means = np.array([np.nan if rows[n].get(key) is None else rows[n][key]
                          for n in names], dtype=float)
        err = error_bars(means, [(rows[n].get("ci95") or {}).get(key) for n in names],
                         upper=upper)
        bars = ax.bar(names, np.nan_to_num(means), yerr=err, capsize=4, ecolor="0.45",
                      color=[PALETTE[i % len(PALETTE)] for i in range(len(names))],
                      edgecolor="black", linewidth=0.6)
        for i, bar in enumerate(bars):  # hatching: the bars differ without colour too
            bar.set_hatch(("", "//", "\\\\", "xx", "..", "oo", "--", "++")[i % 8])
        ax.set(title=f"{title}\n({over})", ylabel=unit)
        ax.set_ylim(bottom=0)
        ax.tick_params(axis="x", labelrotation=30)
    ax_cdf.set(title=f"End-to-end latency CDF, completed tasks ({run})", xlabel="seconds",
               ylabel="fraction", xscale="log")
    ax_queue.set(title=f"Queue length ({run}; bursts shaded, faults marked)",
                 xlabel="simulated time (s)", ylabel="queued requests")
    ax_util.set(title=f"Task-slot utilization ({run}; bursts shaded, faults marked)",
                xlabel="simulated time (s)", ylabel="% of slots")
    ax_load.set(title=f"Per-agent load, busiest first ({run})",
                xlabel="agent rank", ylabel="mean running tasks (busy task-s per s)")
    for ax in (ax_cdf, ax_queue, ax_util, ax_load):
        handles, labels = ax.get_legend_handles_labels()
        seen = dict(zip(labels, handles))  # one legend entry for the bursts
        ax.legend(seen.values(), seen.keys(), fontsize=8)
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100, format=fmt)
    plt.close(fig)

