"""A small pure-Python model of MetricRing, the reference for property tests."""

from __future__ import annotations

import bisect
import math

import numpy as np


class RingModel:
    """Time-ordered bounded list of (timestamp, key, value); same contract as MetricRing."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: list[tuple[float, int, float]] = []
        self.total_recorded = 0
        self.dropped_late = 0

    def record(self, key: int, value: float, ts: float) -> None:
        self.total_recorded += 1
        if len(self.items) == self.capacity:
            if ts < self.items[0][0]:
                self.dropped_late += 1  # it would be the next one evicted
                return
            self.items.pop(0)
        times = [t for t, _, _ in self.items]
        self.items.insert(bisect.bisect_right(times, ts), (ts, key, value))

    def clear_before(self, ts: float) -> int:
        keep = [it for it in self.items if it[0] >= ts]
        dropped = len(self.items) - len(keep)
        self.items = keep
        return dropped

    def select(self, since=None, until=None, key=None):
        keys = None if key is None else ({key} if isinstance(key, int) else set(key))
        return [
            it for it in self.items
            if (since is None or it[0] >= since) and (until is None or it[0] <= until)
            and (keys is None or it[1] in keys)
        ]

    def values(self, **kw) -> list[float]:
        return [v for _, _, v in self.select(**kw)]

    def stats(self, **kw):
        vals = self.values(**kw)
        n = len(vals)
        if not n:
            return (0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
        arr = np.array(vals)
        std = float(arr.std(ddof=1)) if n > 1 else math.nan
        return (n, float(arr.mean()), min(vals), max(vals), std, vals[0], vals[-1])

    def quantile(self, q, **kw) -> float:
        vals = self.values(**kw)
        return float(np.quantile(vals, q)) if vals else math.nan

    def count_beyond(self, threshold: float, above: bool, **kw) -> int:
        vals = self.values(**kw)
        return sum(1 for v in vals if (v > threshold if above else v < threshold))

    def slope(self, **kw) -> float:
        sel = self.select(**kw)
        if len(sel) < 2:
            return math.nan
        t = np.array([s[0] for s in sel])
        v = np.array([s[2] for s in sel])
        t = t - t[0]
        dt = t - t.mean()
        sxx = float((dt * dt).sum())
        if sxx <= 0:
            return math.nan
        return float((dt * (v - v.mean())).sum() / sxx)
