"""Plots of simulation results (the ``plot`` extra: matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["plot_results"]


def plot_results(results: Mapping[str, Any], path: str) -> None:
    """Write a 2x2 figure to ``path``: latency CDF, queue length, utilization, agent load.

    Parameters
    ----------
    results : mapping of strategy name to SimulationResult
    path : str
        Output file; the format follows the extension (``.png``, ``.svg``, ...).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9), constrained_layout=True)
    ax_cdf, ax_queue, ax_util, ax_load = axes.ravel()
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
    ax_cdf.set(title="End-to-end latency CDF (completed tasks)", xlabel="seconds",
               ylabel="fraction", xscale="log")
    ax_queue.set(title="Queue length", xlabel="simulated time (s)", ylabel="queued requests")
    ax_util.set(title="Task-slot utilization", xlabel="simulated time (s)", ylabel="% of slots")
    ax_load.set(title="Per-agent load (busy task-seconds per second), busiest first",
                xlabel="agent rank", ylabel="mean running tasks")
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
