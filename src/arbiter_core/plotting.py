"""Plots of simulation results (the ``plot`` extra: matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["plot_results"]


def plot_results(results: Mapping[str, Any], path: str,
                 rows: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Write a 2x3 figure to ``path`` (3x3 with the LLM-serving model).

    Top: end-to-end latency CDF, queue length, task-slot utilization; then
    per-agent load, and the mean wait and mean end-to-end time per strategy
    with their 95 % intervals; with LLM agents a third row has the mean time
    to first token, the prefix-cache hit rate and the output tokens per
    second, with their intervals.

    Parameters
    ----------
    results : mapping of strategy name to SimulationResult
        One run per strategy (the first seed) for the time series.
    path : str
        Output file; the format follows the extension (``.png``, ``.svg``, ...).
    rows : mapping of strategy name to summary row, optional
        :func:`arbiter_core.simulate.summarize` rows (means and ``ci95``);
        without them the bars show ``results`` alone.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    if rows is None:
        rows = {name: r.table_row() for name, r in results.items()}
    llm = any(row.get("ttft_mean_s") is not None for row in rows.values())
    fig, axes = plt.subplots(3 if llm else 2, 3, figsize=(18, 13.5 if llm else 9),
                             constrained_layout=True)
    (ax_cdf, ax_queue, ax_util), (ax_load, ax_wait, ax_e2e) = axes[:2]
    for name, r in results.items():
        e2e = np.sort(np.asarray(r.e2e_samples, dtype=float))
        if e2e.size:
            ax_cdf.plot(e2e, np.arange(1, e2e.size + 1) / e2e.size, label=name)
        t = r.timeline.get("t", [])
        ax_queue.plot(t, r.timeline.get("queue", []), label=name, linewidth=1)
        ax_util.plot(t, r.timeline.get("utilization", []), label=name, linewidth=1)
        busy = np.sort(np.asarray(list(r.agent_busy_s.values()), dtype=float))[::-1]
        if busy.size and r.simulated_s > 0:
            ax_load.plot(np.arange(busy.size), busy / r.simulated_s, label=name,
                         marker=".", linewidth=1)
    bars = [(ax_wait, "wait_mean_s", "Mean wait (queueing)", "seconds"),
            (ax_e2e, "e2e_mean_s", "Mean end-to-end time", "seconds")]
    if llm:
        ax_ttft, ax_hit, ax_tps = axes[2]
        bars += [(ax_ttft, "ttft_mean_s", "Mean time to first token", "seconds"),
                 (ax_hit, "cache_hit_rate", "Prefix-cache hit rate (prompt tokens)",
                  "fraction"),
                 (ax_tps, "tokens_per_s", "Output tokens per second", "tokens/s")]
    for ax, key, title, unit in bars:
        _bar(ax, rows, key, title, unit)
    ax_cdf.set(title="End-to-end latency CDF (completed tasks)", xlabel="seconds",
               ylabel="fraction", xscale="log")
    ax_queue.set(title="Queue length", xlabel="simulated time (s)", ylabel="queued requests")
    ax_util.set(title="Task-slot utilization", xlabel="simulated time (s)", ylabel="% of slots")
    ax_load.set(title="Per-agent load (busy task-seconds per second), busiest first",
                xlabel="agent rank", ylabel="mean running tasks")
    for ax in (ax_cdf, ax_queue, ax_util, ax_load):
        ax.legend(fontsize=8)
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bar(ax: Any, rows: Mapping[str, Mapping[str, Any]], key: str, title: str,
         unit: str) -> None:
    """One bar per strategy: the mean of ``key``, with its 95 % interval."""
    names = list(rows)
    means = np.array([np.nan if rows[n].get(key) is None else rows[n][key] for n in names],
                     dtype=float)
    err = np.zeros((2, len(names)))
    note = ""
    for i, n in enumerate(names):
        ci = (rows[n].get("ci95") or {}).get(key)
        if ci is not None:
            err[:, i] = (means[i] - ci[0], ci[1] - means[i])
            note = " (95% CI over seeds)"
    ax.bar(names, means, yerr=err, capsize=4, color=[f"C{i}" for i in range(len(names))])
    ax.set(title=title + note, ylabel=unit)
    ax.tick_params(axis="x", labelrotation=30)
