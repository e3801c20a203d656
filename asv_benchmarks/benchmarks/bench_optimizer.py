"""RuntimeOptimizer.analyze: a full first analysis and an incremental one.

Skipped (NotImplementedError in setup) at commits without the optimizer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import latency_stream, need

SOURCES = ("api", "db", "cache", "queue", "worker")


def fill(opt: Any, clock: Any, types: tuple[Any, ...], ts: np.ndarray,
         values: np.ndarray) -> None:
    """Record a stream round-robin over metric types and sources, moving ``clock``."""
    for i, (t, v) in enumerate(zip(ts.tolist(), values.tolist(), strict=True)):
        kind = i % len(types)
        # latency in ms; cpu and memory in percent; error rate as a fraction
        value = v if kind == 0 else (v % 100.0 if kind < 3 else v / 1000.0)
        if t > clock.now():
            clock.advance(t - clock.now())
        opt.record_metric(types[kind], value, SOURCES[i % len(SOURCES)], t)


class OptimizerAnalyze:
    """``analyze()`` over ``samples`` metrics of 4 types from 5 sources.

    ``full``: the first analysis of everything recorded.  ``incremental``: an
    analysis after a previous one, with 1% new (and worse) samples since.
    """

    params = [[1_000, 10_000]]
    param_names = ["samples"]
    number = 1            # each timed call needs a fresh optimizer, built in setup
    repeat = (5, 20, 20.0)

    def setup(self, samples: int) -> None:
        ManualClock, MetricType, RuntimeOptimizer = need(
            "ManualClock", "MetricType", "RuntimeOptimizer")
        types = (MetricType.LATENCY, MetricType.CPU, MetricType.MEMORY, MetricType.ERROR_RATE)
        ts, values = latency_stream(samples)
        clock = ManualClock(start=0.0)
        self.fresh = RuntimeOptimizer(clock=clock)
        fill(self.fresh, clock, types, ts, values)
        clock = ManualClock(start=0.0)
        self.warm = RuntimeOptimizer(clock=clock)
        fill(self.warm, clock, types, ts, values)
        self.warm.analyze()
        t_new, v_new = latency_stream(max(samples // 100, 1), seed=8)
        fill(self.warm, clock, types, t_new + ts[-1] + 0.01, v_new * 3.0)

    def time_analyze_full(self, samples: int) -> None:
        self.fresh.analyze()

    def time_analyze_incremental(self, samples: int) -> None:
        self.warm.analyze()
