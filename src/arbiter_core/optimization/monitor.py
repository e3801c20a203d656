"""PerformanceMonitor: named metrics on top of the Cython :class:`MetricRing`.

Each ``(source, metric_type)`` pair is interned once to an int64 ring key;
after that, recording is a dict hit plus one C call, or only the C call
through a pre-bound :meth:`PerformanceMonitor.series` handle.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .._ringbuf import MetricRing, NamedRecorder, SeriesHandle, WindowStats
from .._validate import (
    check_int,
    check_name,
    check_number,
    check_positive,
    check_time_bound,
    check_timestamp,
)
from ..clock import Clock, default_clock, is_monotonic_default
from ..types import METRIC_UNITS, MetricType, PerformanceMetric, coerce_enum

__all__ = ["MetricBatch", "PerformanceMonitor"]

logger = logging.getLogger("arbiter_core.optimization")

F = TypeVar("F", bound=Callable[..., Any])



def coerce_metric_type(metric_type: object, name: str = "metric_type") -> MetricType:
    """Return ``metric_type`` as a :class:`MetricType`, accepting its string value."""
    if type(metric_type) is MetricType:     # the hot path: no call
        return metric_type
    return coerce_enum(MetricType, metric_type, name)


@dataclass(frozen=True, eq=False)
class MetricBatch:
    """A columnar result of a metric query; iterates as :class:`PerformanceMetric`.

    Attributes
    ----------
    timestamps, values : ndarray of float64
        In time order.
    keys : ndarray of int64
        Interned series ids.
    series_names : tuple of (MetricType, str)
        ``series_names[key]`` is the (metric type, source) a key stands for.
    """

    timestamps: npt.NDArray[np.float64]
    keys: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    series_names: tuple[tuple[MetricType, str], ...]

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __eq__(self, other: object) -> bool:
        """Same samples: timestamps, values, metric types and sources, in order."""
        if not isinstance(other, MetricBatch):
            return NotImplemented
        return (np.array_equal(self.timestamps, other.timestamps)
                and np.array_equal(self.values, other.values)
                and self.metric_types == other.metric_types and self.sources == other.sources)

    __hash__ = None  # type: ignore[assignment]  # holds (mutable) numpy arrays

    @property
    def metric_types(self) -> list[MetricType]:
        """The metric type of each sample."""
        names = self.series_names
        return [names[k][0] for k in self.keys.tolist()]

    @property
    def sources(self) -> list[str]:
        """The source of each sample."""
        names = self.series_names
        return [names[k][1] for k in self.keys.tolist()]

    def __iter__(self) -> Iterator[PerformanceMetric]:
        names = self.series_names
        columns = (self.timestamps.tolist(), self.keys.tolist(), self.values.tolist())
        for t, k, v in zip(*columns, strict=True):
            mt, src = names[k]
            yield PerformanceMetric(mt, v, t, src, METRIC_UNITS[mt])

    def __getitem__(self, i: int) -> PerformanceMetric:
        k = int(self.keys[i])
        mt, src = self.series_names[k]
        return PerformanceMetric(mt, float(self.values[i]), float(self.timestamps[i]), src,
                                 METRIC_UNITS[mt])


class _Timer:
    """Context manager and decorator recording elapsed milliseconds.

    It records through the monitor's current ring at each exit, so a timer
    made once (say a decorator applied at import) keeps working after
    :meth:`PerformanceMonitor.resize`.
    """

    __slots__ = ("_clock", "_key", "_monitor", "_start")

    def __init__(self, monitor: PerformanceMonitor, key: int) -> None:
        self._monitor = monitor
        self._key = key
        self._clock = monitor.clock
        self._start = math.nan

    def __enter__(self) -> _Timer:
        self._start = self._clock.now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._clock.now()
        self._monitor._live_handle(self._key).record((end - self._start) * 1000.0, end)

    def __call__(self, fn: F) -> F:
        monitor, key, clock = self._monitor, self._key, self._clock

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock.now()
            try:
                return fn(*args, **kwargs)
            finally:
                end = clock.now()
                monitor._live_handle(key).record((end - start) * 1000.0, end)

        return timed  # type: ignore[return-value]


class PerformanceMonitor:
    """Bounded store of performance metrics with window queries.

    Parameters
    ----------
    max_metrics : int
        Ring capacity; the oldest sample is overwritten once full.  Memory is
        24 bytes per sample plus the interned series names.
    retention_s : float
        Samples older than this are dropped by :meth:`tick`.
    max_series : int
        Most distinct ``(source, metric_type)`` pairs; the interning table is
        bounded by it (a new pair beyond it is a ValueError).
    clock : Clock, optional
        Time source; defaults to the monotonic clock.

    Notes
    -----
    Unlike the TypeScript prototype this package reimplements, the buffer is
    a real ring (O(1) insert), window queries return samples in time order,
    values are validated, and ``get_latest_metrics(0)`` returns nothing (the
    prototype returned everything through JavaScript's ``slice(-0)``).

    Examples
    --------
    >>> from arbiter_core import ManualClock, MetricType
    >>> clock = ManualClock(start=100.0)
    >>> mon = PerformanceMonitor(max_metrics=1000, clock=clock)
    >>> mon.record_metric(MetricType.LATENCY, 12.5, source="api")
    >>> clock.advance(1.0)
    101.0
    >>> mon.record_metric("latency", 20.0, source="api")
    >>> [m.value for m in mon.get_metrics(100.0, 101.0)]
    [12.5, 20.0]
    """

    def __init__(
        self,
        max_metrics: int = 10_000,
        retention_s: float = 3600.0,
        *,
        max_series: int = 10_000,
        clock: Clock | None = None,
    ) -> None:
        check_int(max_metrics, "max_metrics", 1)
        check_int(max_series, "max_series", 1)
        self.retention_s = check_positive(retention_s, "retention_s")
        self.max_series = max_series
        self.clock: Clock = default_clock() if clock is None else clock
        if not callable(getattr(self.clock, "now", None)):
            raise TypeError("clock must have a now() method")
        self._c_clock = is_monotonic_default(self.clock)
        self._ring = MetricRing(max_metrics)
        # never rebound: the C recorder below shares this dict
        self._keys: dict[tuple[str, str], int] = {}
        self._names: list[tuple[MetricType, str]] = []
        self._handles: dict[int, SeriesHandle] = {}
        self._intern_lock = threading.Lock()
        self._handed_out = False     # series() handles exist (resize detaches them)
        self._bind_recorder()

    # -- configuration -------------------------------------------------------

    @property
    def ring(self) -> MetricRing:
        """The underlying ring (read it; record through the monitor)."""
        return self._ring

    @property
    def max_metrics(self) -> int:
        return int(self._ring.capacity)

    @property
    def metric_count(self) -> int:
        """Samples currently stored."""
        return len(self._ring)

    @property
    def series_names(self) -> tuple[tuple[MetricType, str], ...]:
        """``(metric_type, source)`` of every interned key, indexed by key."""
        return tuple(self._names)

    def _bind_recorder(self) -> None:
        # record_metric's hot path runs in C (NamedRecorder) and falls back to
        # _record_slow for anything unusual; the instance attribute shadows the
        # documented method below, which keeps the same contract.
        self._recorder = NamedRecorder(self._ring, self._keys, self._record_slow,
                                       None if self._c_clock else self.clock, MetricType)
        self.record_metric = self._recorder.record  # type: ignore[method-assign]

    def resize(self, max_metrics: int) -> None:
        """Change the capacity, keeping the newest samples that fit.

        The samples move to a new :class:`MetricRing`.  Handles from
        :meth:`series` stay bound to the old ring, so samples recorded through
        them afterwards are not stored here: call :meth:`series` again (a
        warning is logged when handles were handed out).  Timers from
        :meth:`time` and :meth:`record_metric` are unaffected.
        """
        check_int(max_metrics, "max_metrics", 1)
        ts, keys, vals = self._ring.snapshot()
        ring = MetricRing(max_metrics)
        keep = slice(max(0, len(vals) - max_metrics), None)
        ring.record_many(keys[keep], vals[keep], ts[keep])
        self._ring = ring
        self._handles = {}
        # the same recorder, pointed at the new ring: a record_metric bound
        # before the resize keeps storing here
        self._recorder.retarget(ring)
        if self._handed_out:
            logger.warning("PerformanceMonitor resized to %d: series handles handed out "
                           "before are detached from it; call series() again", max_metrics)
            self._handed_out = False

    # -- recording -----------------------------------------------------------

    def key_for(self, metric_type: MetricType | str, source: str = "system") -> int:
        """The ring key of ``(metric_type, source)``, interning it on first use."""
        name = metric_type._value_ if metric_type.__class__ is MetricType else metric_type
        try:
            key = self._keys.get((name, source))
        except TypeError:
            key = None
        if key is not None:
            return key
        mt = coerce_metric_type(metric_type)
        check_name(source, "source")
        with self._intern_lock:
            key = self._keys.get((mt.value, source))
            if key is None:
                if len(self._names) >= self.max_series:
                    raise ValueError(
                        f"too many series: max_series={self.max_series} reached; "
                        f"cannot add ({mt.value!r}, {source!r})")
                key = len(self._names)
                self._names.append((mt, source))
                self._keys[(mt.value, source)] = key
            return key

    def lookup_key(self, metric_type: MetricType | str, source: str) -> int | None:
        """The key of an existing series, or None (never interns)."""
        mt = coerce_metric_type(metric_type)
        return self._keys.get((mt.value, source))

    def record_metric(
        self,
        metric_type: MetricType | str,
        value: float,
        source: str = "system",
        timestamp: float | None = None,
    ) -> None:
        """Store one sample.

        Parameters
        ----------
        metric_type : MetricType or str
        value : float
            Must be finite.
        source : str
            Component or operation the sample is about; 1 to 256 characters
            (``MAX_NAME_LENGTH``).
        timestamp : float, optional
            Seconds on the monitor's clock; defaults to now.

        Raises
        ------
        ValueError
            Unknown metric type, or a non-finite value or timestamp; nothing is stored.
        TypeError
            A value or timestamp that is not a real number (bools included),
            a source that is not a str.  (A source that is empty or longer
            than 256 characters is a ValueError.)
        """
        self._record_slow(metric_type, value, source, timestamp)

    def _record_slow(self, metric_type: MetricType | str, value: float,
                     source: str = "system", timestamp: float | None = None) -> None:
        # the full path: validation with named errors, interning, then the ring
        # Hashing an enum member goes through a Python-level slot (~0.3 µs);
        # its plain str value hashes in C and is the interning key anyway.
        name = metric_type._value_ if metric_type.__class__ is MetricType else metric_type
        try:
            key = self._keys.get((name, source))
        except TypeError:  # unhashable argument: let key_for name it
            key = None
        if key is None or value.__class__ is not float or not (
                timestamp is None or timestamp.__class__ is float):
            # Anything but plain floats is checked here (the ring would take a
            # bool as 1.0), and a new series' sample is checked before it is
            # interned, so a bad call interns nothing.  NaN/inf floats are
            # refused by the ring itself.
            check_number(value, "value")
            check_timestamp(timestamp)
            if key is None:
                key = self.key_for(metric_type, source)
        if timestamp is None and not self._c_clock:
            timestamp = self.clock.now()
        self._ring.record(key, value, timestamp)

    def series(self, metric_type: MetricType | str, source: str = "system") -> SeriesHandle:
        """A pre-bound handle: ``handle.record(value)`` costs about one C call.

        The handle is bound to the current ring: after :meth:`resize` (or
        ``RuntimeOptimizer.update_config(max_metrics=...)``) get a new one.

        Examples
        --------
        >>> mon = PerformanceMonitor()
        >>> lat = mon.series("latency", "api")
        >>> lat.record(3.0)
        >>> mon.metric_count
        1
        """
        self._handed_out = True
        return self._live_handle(self.key_for(metric_type, source))

    def _live_handle(self, key: int) -> SeriesHandle:
        handle = self._handles.get(key)
        if handle is None or handle.ring is not self._ring:
            handle = SeriesHandle(self._ring, key, None if self._c_clock else self.clock)
            self._handles[key] = handle
        return handle

    def time(self, metric_type: MetricType | str = MetricType.LATENCY,
             source: str = "system") -> _Timer:
        """Context manager / decorator recording the elapsed time in milliseconds.

        Examples
        --------
        >>> mon = PerformanceMonitor()
        >>> with mon.time("latency", "db"):
        ...     pass
        >>> mon.metric_count
        1
        """
        return _Timer(self, self.key_for(metric_type, source))

    # -- querying ------------------------------------------------------------

    def _type_keys(self, metric_type: MetricType | str | None,
                   source: str | None) -> list[int] | None:
        if metric_type is None and source is None:
            return None
        mt = None if metric_type is None else coerce_metric_type(metric_type)
        return [k for k, (t, s) in enumerate(self._names)
                if (mt is None or t is mt) and (source is None or s == source)]

    def _batch(self, arrays: tuple[Any, Any, Any]) -> MetricBatch:
        ts, keys, vals = arrays
        return MetricBatch(ts, keys, vals, tuple(self._names))

    def get_metrics(
        self,
        start: float | None,
        end: float | None,
        metric_type: MetricType | str | None = None,
        source: str | None = None,
    ) -> MetricBatch:
        """Samples with ``start <= timestamp <= end``, in time order.

        ``None`` leaves a side open.  NaN is a ValueError, a non-number a
        TypeError, each naming the argument.
        """
        check_time_bound(start, "start", allow_none=True)
        check_time_bound(end, "end", allow_none=True)
        keys = self._type_keys(metric_type, source)
        return self._batch(self._ring.snapshot(start, end, keys))

    def get_latest_metrics(self, count: int,
                           metric_type: MetricType | str | None = None) -> MetricBatch:
        """The newest ``count`` samples (of ``metric_type``), oldest first.

        ``count <= 0`` returns an empty batch; any count beyond what is
        stored returns everything.
        """
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
            raise TypeError(f"count must be an int, got {type(count).__name__}")
        keys = self._type_keys(metric_type, None)
        # at most the ring's capacity exists; a larger count asks for everything
        return self._batch(self._ring.latest(max(0, min(int(count), self._ring.capacity)), keys))

    def stats(self, metric_type: MetricType | str, source: str = "system",
              since: float | None = None, until: float | None = None) -> WindowStats:
        """Window statistics of one series (see :meth:`MetricRing.stats`)."""
        key = self.lookup_key(metric_type, source)
        return self._ring.stats(-1 if key is None else key, since, until)

    def clear_metrics(self, older_than: float) -> int:
        """Drop samples strictly older than ``older_than``; returns how many.

        ``-inf`` drops nothing and ``inf`` everything; NaN is a ValueError and
        a non-number a TypeError, each naming ``older_than``.
        """
        check_time_bound(older_than, "older_than", allow_none=False)
        return int(self._ring.clear_before(older_than))

    def tick(self) -> int:
        """Apply retention now; returns the number of samples dropped."""
        return self.clear_metrics(self.clock.now() - self.retention_s)

    def __repr__(self) -> str:
        return (f"PerformanceMonitor(max_metrics={self.max_metrics}, "
                f"metric_count={self.metric_count}, series={len(self._names)})")
