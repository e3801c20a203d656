"""Plain-Python reference implementations of the ring's operations.

What a careful pure-Python version of each operation costs: the baseline a
Cython core has to beat by a wide margin to be worth its build.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections.abc import Sequence
from typing import Any

from resource_peers import plain_least_loaded

__all__ = [
    "PyMonitor",
    "PyPool",
    "PyRing",
    "py_count_beyond",
    "py_quantile",
    "py_slope",
    "py_stats",
    "py_window",
]


class PyRing:
    """Columnar ring in Python lists: validate, read the clock, store, advance."""

    __slots__ = ("capacity", "keys", "pos", "total", "ts", "values")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ts = [0.0] * capacity
        self.keys = [0] * capacity
        self.values = [0.0] * capacity
        self.pos = 0
        self.total = 0

    def record(self, key: int, value: float, timestamp: float | None = None) -> None:
        if not math.isfinite(value):
            raise ValueError(f"value must be finite, got {value!r}")
        p = self.pos
        self.ts[p] = time.monotonic() if timestamp is None else timestamp
        self.keys[p] = key
        self.values[p] = value
        self.pos = 0 if p + 1 == self.capacity else p + 1
        self.total += 1

    def record_many(self, key: int, values: Sequence[float]) -> None:
        record = self.record
        for v in values:
            record(key, v)


class PyMonitor:
    """``record_metric`` in plain Python: intern ``(type, source)``, then store."""

    __slots__ = ("_keys", "ring")

    def __init__(self, capacity: int) -> None:
        self.ring = PyRing(capacity)
        self._keys: dict[tuple[str, str], int] = {}

    def record_metric(self, metric_type: str, value: float, source: str = "system") -> None:
        key = self._keys.get((metric_type, source))
        if key is None:
            key = self._keys.setdefault((metric_type, source), len(self._keys))
        self.ring.record(key, value)


def py_window(ts: Sequence[float], values: Sequence[float], since: float,
              until: float) -> list[float]:
    """Values with ``since <= t <= until`` of a time-sorted series (two bisections)."""
    return list(values[bisect.bisect_left(ts, since):bisect.bisect_right(ts, until)])


def py_quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default) by sorting."""
    s = sorted(values)
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def py_stats(values: Sequence[float]) -> tuple[int, float, float, float, float]:
    """count, mean, min, max and sample std in one Welford pass."""
    n = 0
    mean = m2 = 0.0
    lo = hi = math.nan
    for x in values:
        n += 1
        if n == 1:
            lo = hi = x
        elif x < lo:
            lo = x
        elif x > hi:
            hi = x
        d = x - mean
        mean += d / n
        m2 += d * (x - mean)
    return n, mean, lo, hi, math.sqrt(m2 / (n - 1)) if n > 1 else math.nan


def py_count_beyond(values: Sequence[float], threshold: float) -> int:
    """How many values are strictly above ``threshold``."""
    n = 0
    for x in values:
        if x > threshold:
            n += 1
    return n


def py_slope(ts: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of values against time (closed form, two passes)."""
    n = len(values)
    mt = math.fsum(ts) / n
    mv = math.fsum(values) / n
    sxy = sxx = 0.0
    for t, v in zip(ts, values, strict=True):
        dt = t - mt
        sxy += dt * (v - mv)
        sxx += dt * dt
    return sxy / sxx


class PyPool:
    """Agents as a list of dicts, selected the way a plain-Python balancer would.

    The same rules as the selection core: agents that are offline or at
    ``max_tasks`` are skipped; least-loaded minimises ``task% + (cpu + mem) / 2``
    (the original's rule, :func:`resource_peers.plain_least_loaded`), weighted
    minimises ``(task%/2 + 0.3 cpu + 0.2 mem) / weight``, priority-based takes the
    most free slots, then the lowest ``(cpu + mem) / 2``; power-of-two compares
    two random agents by the least-loaded key.
    """

    def __init__(self, cpu: Sequence[float], memory: Sequence[float], tasks: Sequence[int],
                 weights: Sequence[float], max_tasks: int = 10, seed: int = 7) -> None:
        self.agents = [
            {"id": f"agent-{i}", "cpu": c, "memory": m, "tasks": t, "max_tasks": max_tasks,
             "weight": w, "health": "healthy"}
            for i, (c, m, t, w) in enumerate(zip(cpu, memory, tasks, weights, strict=True))]
        self.rng = random.Random(seed)
        self.cursor = -1

    @staticmethod
    def eligible(agent: dict[str, Any]) -> bool:
        return agent["health"] != "offline" and agent["tasks"] < agent["max_tasks"]

    @staticmethod
    def load(agent: dict[str, Any]) -> float:
        return agent["tasks"] / agent["max_tasks"] * 100 + (agent["cpu"] + agent["memory"]) / 2

    def least_loaded(self) -> str:
        return plain_least_loaded(self.agents)

    def weighted(self) -> str:
        best, best_key = None, math.inf
        for a in self.agents:
            if a["health"] == "offline" or a["tasks"] >= a["max_tasks"]:
                continue
            task = a["tasks"] / a["max_tasks"] * 100
            key = (0.5 * task + 0.3 * a["cpu"] + 0.2 * a["memory"]) / a["weight"]
            if key < best_key:
                best, best_key = a["id"], key
        assert best is not None
        return best

    def priority_based(self) -> str:
        best, best_key = None, (math.inf, math.inf)
        for a in self.agents:
            if a["health"] == "offline" or a["tasks"] >= a["max_tasks"]:
                continue
            key = (a["tasks"] - a["max_tasks"], (a["cpu"] + a["memory"]) / 2)
            if key < best_key:
                best, best_key = a["id"], key
        assert best is not None
        return best

    def round_robin(self) -> str:
        n = len(self.agents)
        for _ in range(n):
            self.cursor = (self.cursor + 1) % n
            a = self.agents[self.cursor]
            if self.eligible(a):
                return a["id"]
        raise LookupError("no eligible agent")

    def random(self) -> str:
        agents, rand = self.agents, self.rng.random
        while True:
            a = agents[int(rand() * len(agents))]
            if self.eligible(a):
                return a["id"]

    def power_of_two(self) -> str:
        agents, rand, load, eligible = self.agents, self.rng.random, self.load, self.eligible
        while True:
            a = agents[int(rand() * len(agents))]
            b = agents[int(rand() * len(agents))]
            if not eligible(a) or (eligible(b) and load(b) < load(a)):
                a = b
            if eligible(a):
                return a["id"]
