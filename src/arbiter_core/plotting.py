"""Plots of simulation results (the ``plot`` extra: matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["plot_results"]


def plot_results(results: Mapping[str, Any], path: str,
                 rows: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Write a 2x3 figure to ``path``.

    Top: end-to-end latency CDF, queue length, task-slot utilization; bottom:
    per-agent load, and the mean wait and mean end-to-end time per strategy
    with their 95 % intervals.

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

    fig, axes = plt.subplots(2, 3, figsize=(18, 9), constrained_layout=True)
    (ax_cdf, ax_queue, ax_util), (ax_load, ax_wait, ax_e2e) = axes
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
    if rows is None:
        rows = {name: r.table_row() for name, r in results.items()}
    names = list(rows)
    seeds_note = ""
    for ax, key, title in ((ax_wait, "wait_mean_s", "Mean wait (queueing)"),
                           (ax_e2e, "e2e_mean_s", "Mean end-to-end time")):
        means = np.array([np.nan if rows[n][key] is None else rows[n][key] for n in names],
                         dtype=float)
        err = np.zeros((2, len(names)))
        for i, n in enumerate(names):
            ci = (rows[n].get("ci95") or {}).get(key)
            if ci is not None:
                err[:, i] = (means[i] - ci[0], ci[1] - means[i])
                seeds_note = " (95% CI over seeds)"
        ax.bar(names, means, yerr=err, capsize=4, color=[f"C{i}" for i in range(len(names))])
        ax.set(title=title + seeds_note, ylabel="seconds")
        ax.tick_params(axis="x", labelrotation=30)
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
