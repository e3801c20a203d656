"""Time sources.

Every time-dependent component in arbiter_core takes ``clock=``: an object
with a ``now() -> float`` method returning seconds.  Production code uses
:class:`MonotonicClock` (the default); tests and the simulator use
:class:`ManualClock` and advance it explicitly, so nothing ever sleeps.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

from ._validate import check_number as _finite

__all__ = [
    "Clock",
    "ManualClock",
    "MonotonicClock",
    "SteadyClock",
    "default_clock",
    "is_monotonic_default",
]


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now() -> float`` (seconds, never decreasing)."""

    def now(self) -> float: ...


class MonotonicClock:
    """The process's monotonic clock (``time.monotonic``, CLOCK_MONOTONIC on Linux).

    The Cython ring reads the same clock in C when it is given no timestamp,
    so samples stamped either way are comparable.
    """

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "MonotonicClock()"


class ManualClock:
    """A clock that only moves when told to.

    Parameters
    ----------
    start : float
        The initial reading in seconds.

    Examples
    --------
    >>> clock = ManualClock(start=10.0)
    >>> clock.advance(2.5)
    12.5
    >>> clock.now()
    12.5
    """

    __slots__ = ("_lock", "_t")

    def __init__(self, start: float = 0.0) -> None:
        self._t = _finite(start, "start")
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new reading."""
        seconds = _finite(seconds, "seconds")
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0 (a clock never goes back), got {seconds}")
        with self._lock:
            self._t += seconds
            return self._t

    def set(self, t: float) -> float:
        """Jump to time ``t`` (not earlier than now) and return it."""
        t = _finite(t, "t")
        with self._lock:
            if t < self._t:
                raise ValueError(f"t must be >= now ({self._t}), got {t}")
            self._t = t
            return t

    def __repr__(self) -> str:
        return f"ManualClock(now={self._t!r})"


class SteadyClock:
    """Readings of another clock that never go back: for measuring intervals
    on a clock that may step (a wall clock, NTP, a VM resumed).

    A step back counts as no time passing (and is counted in
    :attr:`steps_back`); a step forward counts in full, so a deadline
    measured on it comes early, never late.

    Examples
    --------
    >>> class Wall:
    ...     t = 100.0
    ...     def now(self):
    ...         return self.t
    >>> wall = Wall()
    >>> steady = SteadyClock(wall)
    >>> wall.t = 70.0                 # a step back of 30 s
    >>> steady.now(), steady.steps_back
    (100.0, 1)
    >>> wall.t = 71.5
    >>> steady.now()
    101.5
    """

    __slots__ = ("_clock", "_last", "_lock", "_t", "steps_back")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = clock.now()
        self._t = self._last
        self._lock = threading.Lock()
        #: how many times the underlying clock was seen stepping back
        self.steps_back = 0

    def now(self) -> float:
        r = self._clock.now()
        with self._lock:
            d = r - self._last
            self._last = r
            if d > 0:
                self._t += d
            elif d < 0:
                self.steps_back += 1
            return self._t

    def __repr__(self) -> str:
        return f"SteadyClock({self._clock!r})"


_DEFAULT = MonotonicClock()


def default_clock() -> MonotonicClock:
    """The shared :class:`MonotonicClock` instance used when ``clock=None``."""
    return _DEFAULT


def is_monotonic_default(clock: Clock) -> bool:
    """True when ``clock`` reads CLOCK_MONOTONIC, so C code may read it directly."""
    return type(clock) is MonotonicClock
