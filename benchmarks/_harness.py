"""Side-by-side timing: an operation and its peers measured in one process.

Absolute times on a shared 2-core machine drift by tens of percent, so every
claim is a ratio.  :func:`measure` times several operations with
:mod:`timeit`, interleaving their repeats (A, B, C, A, B, C, ...) so that a
slow spell of the machine hits all of them alike, and :func:`compare` reports
the median of the per-repeat ratios.

Each call is compiled by :mod:`timeit` as ``fn(a0, a1, ...)`` with ``fn`` and
the arguments bound to local variables, so the harness adds only the
``for`` loop (a few ns) to what is measured, the same for every operation.
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Comparison", "Op", "Result", "Timing", "compare", "fmt_ns", "measure"]


@dataclass(frozen=True)
class Op:
    """One timed operation: ``fn(*args)``, doing ``per`` unit operations per call.

    Parameters
    ----------
    label : str
        Short name shown in tables (``"floor"``, ``"prometheus_client"``, ...).
    fn : callable
    args : tuple
        Positional arguments, bound once.
    per : int
        Unit operations per call (e.g. 10_000 for a batch), to report ns per unit.
    check : callable, optional
        ``check(result)`` asserts that what was timed is correct.
    note : str
        What exactly is called, for the report.
    setup : callable, optional
        For operations that consume their state (a first analysis): called,
        untimed, before every call; it returns the call's arguments and
        ``args`` is ignored.
    """

    label: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    per: int = 1
    check: Callable[[Any], None] | None = None
    note: str = ""
    setup: Callable[[], tuple[Any, ...]] | None = None

    def __call__(self) -> Any:
        result = self.fn(*(self.args if self.setup is None else self.setup()))
        if self.check is not None:
            self.check(result)
        return result

    def timer(self) -> timeit.Timer | _FreshTimer:
        if self.setup is not None:
            return _FreshTimer(self.fn, self.setup)
        names = [f"a{i}" for i in range(len(self.args))]
        bound = {"_fn": self.fn, **{f"_{n}": a for n, a in zip(names, self.args, strict=True)}}
        setup = "; ".join(["fn = _fn", *(f"{n} = _{n}" for n in names)])
        return timeit.Timer(f"fn({', '.join(names)})", setup, globals=bound)


class _FreshTimer:
    """``timeit``-like timer that runs ``setup`` (untimed) before every call."""

    def __init__(self, fn: Callable[..., Any], setup: Callable[[], tuple[Any, ...]]) -> None:
        self.fn = fn
        self.setup = setup

    def timeit(self, number: int) -> float:
        total = 0.0
        for _ in range(number):
            args = self.setup()
            start = time.perf_counter()
            self.fn(*args)
            total += time.perf_counter() - start
        return total


@dataclass(frozen=True)
class Timing:
    """Per-unit times (ns) of each repeat of one operation."""

    label: str
    ns: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.ns)

    @property
    def best(self) -> float:
        return min(self.ns)


@dataclass(frozen=True)
class Comparison:
    """Our operation, its physical floor (if any) and its peers.

    ``targets`` maps a peer label (or ``"floor"``) to the ratio ours/peer that
    the project aims to stay at or below.
    """

    name: str
    ours: Op
    peers: Sequence[Op] = ()
    floor: Op | None = None
    targets: Mapping[str, float] = field(default_factory=dict)

    @property
    def others(self) -> list[Op]:
        return ([self.floor] if self.floor is not None else []) + list(self.peers)

    @property
    def ops(self) -> list[Op]:
        return [self.ours, *self.others]

    def op(self, label: str) -> Op:
        for op in self.ops:
            if op.label == label:
                return op
        raise KeyError(label)


@dataclass(frozen=True)
class Result:
    """Timings of a :class:`Comparison` and the ratios ours/other."""

    comparison: Comparison
    timings: Mapping[str, Timing]
    ratios: Mapping[str, float]

    def meets(self, label: str) -> bool | None:
        """Whether the ratio to ``label`` is within its target (None: no target)."""
        target = self.comparison.targets.get(label)
        return None if target is None else self.ratios[label] <= target


def _calibrate(timer: timeit.Timer, min_time: float) -> int:
    number = 1
    while True:
        if timer.timeit(number) >= min_time or number >= 1 << 24:
            return number
        number *= 4


def measure(ops: Sequence[Op], *, repeat: int = 7, min_time: float = 0.01) -> dict[str, Timing]:
    """Time each op ``repeat`` times, interleaved; each repeat lasts about ``min_time`` s.

    Returns
    -------
    dict
        ``label -> Timing`` with ns per unit operation.
    """
    timers = [op.timer() for op in ops]
    numbers = [_calibrate(t, min_time) for t in timers]
    samples: list[list[float]] = [[] for _ in ops]
    for _ in range(repeat):
        for op, timer, number, out in zip(ops, timers, numbers, samples, strict=True):
            out.append(timer.timeit(number) / number / op.per * 1e9)
    return {op.label: Timing(op.label, tuple(s)) for op, s in zip(ops, samples, strict=True)}


def compare(c: Comparison, *, repeat: int = 7, min_time: float = 0.01) -> Result:
    """Measure ``c`` and compute ours/other as the median of per-repeat ratios."""
    timings = measure(c.ops, repeat=repeat, min_time=min_time)
    mine = timings[c.ours.label].ns
    ratios = {
        other.label: statistics.median(
            a / b for a, b in zip(mine, timings[other.label].ns, strict=True))
        for other in c.others
    }
    return Result(c, timings, ratios)


def fmt_ns(ns: float) -> str:
    """A time in ns with a readable unit: ``83.1 ns``, ``12.4 µs``, ``1.31 ms``."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"
