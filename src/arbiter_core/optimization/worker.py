"""The optimizer's background thread and its overhead budget."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Protocol

__all__ = ["OverheadBudget", "Worker"]

logger = logging.getLogger("arbiter_core.optimization")


class _Ticking(Protocol):
    def tick(self) -> object: ...

    @property
    def effective_interval_s(self) -> float: ...


class Worker:
    """One background thread running ``target.tick()`` every interval.

    It has its own stop and wake events and holds the target only through a
    weak reference (and only during a cycle), so a target dropped without
    ``stop()`` is collected and its thread ends.
    """

    __slots__ = ("finalizer", "stop", "thread", "wake")

    def __init__(self, target: _Ticking) -> None:
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=_run, args=(self, weakref.ref(target)),
                                       name="arbiter-optimizer", daemon=True)
        # wakes the thread when the target is collected; detached by stop()
        self.finalizer = weakref.finalize(target, self.wake.set)


def _run(worker: Worker, ref: weakref.ReferenceType[_Ticking]) -> None:
    while not worker.stop.is_set():
        target = ref()
        if target is None:
            break
        # cleared before the cycle, so a wake() during it is not lost
        worker.wake.clear()
        try:
            target.tick()
        except Exception:  # tick isolates its parts; this is a last resort
            logger.exception("optimizer cycle failed")
        interval = target.effective_interval_s
        del target         # no strong reference while sleeping
        if worker.stop.is_set():
            break
        worker.wake.wait(interval)


class OverheadBudget:
    """The interval between cycles, stretched when cycles cost more than their budget.

    A cycle may cost at most ``max_pct`` percent of the interval; the cost is
    smoothed (EWMA, weight 0.3) so that one slow cycle (a GC pause) does not
    stretch the interval.  Not thread-safe: the optimizer calls it under its lock.
    """

    __slots__ = ("_cost_ewma", "interval_s", "max_pct", "target_s")

    def __init__(self, target_s: float, max_pct: float) -> None:
        self.target_s = target_s
        self.max_pct = max_pct
        self.interval_s = target_s           # the interval in use
        self._cost_ewma: float | None = None

    def account(self, cost_s: float) -> None:
        """Add one cycle's cost and stretch (or restore) the interval."""
        prev = self._cost_ewma
        self._cost_ewma = cost_s if prev is None else 0.7 * prev + 0.3 * cost_s
        self.restretch()

    def configure(self, target_s: float, max_pct: float) -> None:
        self.target_s = target_s
        self.max_pct = max_pct
        self.restretch()

    def restretch(self) -> None:
        if self._cost_ewma is None:
            self.interval_s = self.target_s
            return
        needed = self._cost_ewma * 100.0 / self.max_pct
        stretched = max(self.target_s, needed)
        if stretched > self.target_s and self.interval_s <= self.target_s:
            logger.warning("optimizer overhead above %.1f%%: interval stretched from %.3g s "
                           "to %.3g s", self.max_pct, self.target_s, stretched)
        self.interval_s = stretched

    @property
    def overhead_pct(self) -> float:
        """Smoothed cost of a cycle as a percentage of the interval in use."""
        if self._cost_ewma is None:
            return 0.0
        return 100.0 * self._cost_ewma / self.interval_s

    @property
    def stretched(self) -> bool:
        return self.interval_s > self.target_s
