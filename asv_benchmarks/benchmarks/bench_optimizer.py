"""RuntimeOptimizer.analyze: a full first analysis and an incremental one.

Skipped (NotImplementedError in setup) at commits without the optimizer.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .common import latency_stream, need

SOURCES = ("api", "db", "cache", "queue", "worker")


def fill(opt: Any, clock: Any, ts: np.ndarray, values: np.ndarray) -> None:
    """Record a stream round-robin over 4 metric types x 5 sources; move ``clock`` to its end.

    Latency in ms, cpu and memory in percent, error rate as a fraction: some
    series cross their thresholds, so the analysis has bottlenecks to report.
    """
    (MetricType,) = need("MetricType")
    types = (MetricType.LATENCY, MetricType.CPU, MetricType.MEMORY, MetricType.ERROR_RATE)
    series = [opt.monitor.key_for(t, s) for s in SOURCES for t in types]
    n = len(values)
    keys = np.asarray(series, dtype=np.int64)[np.arange(n) % len(series)]
    kind = np.arange(n) % len(types)
    scaled = np.select([kind == 0, kind < 3], [values, values % 100.0], values / 1000.0)
    opt.monitor.ring.record_many(keys, scaled, ts)
    clock.advance(max(float(ts[-1]) - clock.now(), 0.0))


class OptimizerAnalyze:
    """``analyze()`` over ``samples`` metrics in 20 series.

    ``full``: the first analysis of everything recorded.  ``incremental``: an
    analysis after a previous one, with 1% new (and worse) samples since.
    """

    params = [[1_000, 10_000, 100_000]]
    param_names = ["samples"]
    number = 1            # each timed call needs a fresh optimizer, built in setup
    repeat = (5, 20, 20.0)

    def setup(self, samples: int) -> None:
        ManualClock, OptimizerConfig, RuntimeOptimizer = need(
            "ManualClock", "OptimizerConfig", "RuntimeOptimizer")
        logging.getLogger("arbiter_core.optimization").setLevel(logging.ERROR)
        ts, values = latency_stream(samples)
        window = float(ts[-1]) + 1.0          # the whole stream is in the analysis window
        config = OptimizerConfig(max_metrics=2 * samples, analysis_window_s=window)
        clock = ManualClock(start=0.0)
        self.fresh = RuntimeOptimizer(config, clock=clock)
        fill(self.fresh, clock, ts, values)
        clock = ManualClock(start=0.0)
        self.warm = RuntimeOptimizer(config, clock=clock)
        fill(self.warm, clock, ts, values)
        self.warm.analyze()
        t_new, v_new = latency_stream(max(samples // 100, 1), seed=8)
        fill(self.warm, clock, t_new + ts[-1] + 0.01, v_new * 3.0)

    def time_analyze_full(self, samples: int) -> None:
        self.fresh.analyze()

    def time_analyze_incremental(self, samples: int) -> None:
        self.warm.analyze()
