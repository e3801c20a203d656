"""The optimizer's collectors: callables polled every cycle, failures isolated."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from ..types import MetricType
from .detector import subscribe

__all__ = ["Collector", "CollectorSet"]

logger = logging.getLogger("arbiter_core.optimization")

#: A collector returns samples ``(metric_type, value, source)``.
Collector = Callable[[], Iterable[tuple[MetricType | str, float, str]]]


class _Entry:
    __slots__ = ("failures", "fn", "name")

    def __init__(self, fn: Collector, name: str) -> None:
        self.fn = fn
        self.name = name
        self.failures = 0

    def __call__(self) -> Iterable[tuple[MetricType | str, float, str]]:
        return self.fn()


class CollectorSet:
    """Registered collectors and their failure counts.

    A collector that raises (or returns a bad sample) is isolated: the failure
    is counted and logged and the other collectors go on.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._entries: list[_Entry] = []
        #: failures of every collector so far
        self.failures = 0
        #: whether the latest run had a failure
        self.last_failed = False

    def add(self, fn: Collector, name: str | None = None) -> Callable[[], None]:
        """Register ``fn``; returns a function that removes it."""
        if not callable(fn):
            raise TypeError(f"collector must be callable, got {type(fn).__name__}")
        entry = _Entry(fn, name or str(getattr(fn, "__name__", type(fn).__name__)))
        return subscribe(self._entries, entry, self._lock, "collector")

    def run(self, record: Callable[[MetricType | str, float, str], object]) -> int:
        """Call every collector once, ``record`` each sample; returns how many."""
        with self._lock:
            entries = list(self._entries)
        recorded = 0
        failed = False
        for entry in entries:
            try:
                for metric_type, value, source in entry():
                    record(metric_type, value, source)
                    recorded += 1
            except Exception as exc:
                failed = True
                entry.failures += 1
                with self._lock:
                    self.failures += 1
                logger.warning("collector %s failed (%d so far): %r", entry.name,
                               entry.failures, exc)
        self.last_failed = failed
        return recorded
