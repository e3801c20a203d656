"""Per-series window bookkeeping of the optimizer, on the ring's grouped kernels.

:class:`SeriesWindows` keeps, for every series (row k = ring key k), what one
analysis needs from the next: the watermark of the samples already examined,
the threshold and its direction, and the window statistics with the trend
built from them.  :meth:`SeriesWindows.refresh` costs two grouped passes:

1. ``MetricRing.group_scan`` examines only the samples no earlier analysis
   has seen, for every series at once; its rows become the detector's
   :class:`~arbiter_core.optimization.Observation` s, so each stored sample
   counts towards detection exactly once.
2. ``MetricRing.group_window`` recomputes the statistics of the series whose
   window content changed (new samples, samples that left the window, or
   anything the ring did that could have removed samples from it); the others
   keep their cached rows and trends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._ringbuf import (
    SCAN_COLUMNS,
    SCAN_EXCEED_COUNT,
    SCAN_FIRST_EXCEED_TS,
    SCAN_LAST_EXCEED_TS,
    SCAN_LAST_EXCEED_VALUE,
    SCAN_LAST_NEW_TS,
    SCAN_LAST_NEW_VALUE,
    SCAN_NEW_COUNT,
    SCAN_WORST_VALUE,
    WIN_COLUMNS,
    WIN_COUNT,
    WIN_FIRST_TS,
    MetricRing,
)
from ..types import MetricType
from .detector import BottleneckDetector, Observation, higher_is_bad
from .results import PerformanceTrend
from .trends import make_trend

__all__ = ["P95", "SeriesWindows", "WindowUpdate", "grow"]

#: The quantile each series' window statistics carry (``WIN_QUANTILE``).
P95 = 0.95

SeriesNames = Sequence[tuple[MetricType, str]]


@dataclass(frozen=True)
class WindowUpdate:
    """What one :meth:`SeriesWindows.refresh` did."""

    series: int                        # series known (rows in use)
    changed: npt.NDArray[np.intp]      # rows whose window statistics were recomputed
    new_samples: int                   # samples examined for the first time


class SeriesWindows:
    """Watermarks, thresholds, cached window statistics and trends, one row per series.

    Memory: a few arrays of one row per series (capacity doubles as series
    appear; the monitor caps the series at ``max_series``).  Not thread-safe:
    the optimizer calls it under its lock.
    """

    def __init__(self) -> None:
        self._cap = 0
        self._wm_ts = np.empty(0)
        self._wm_skip = np.empty(0, dtype=np.int64)
        self.thresholds = np.empty(0)
        self._above = np.empty(0, dtype=np.uint8)
        self._scan = np.empty((0, SCAN_COLUMNS))
        #: cached window statistics, columns ``WIN_*``; valid where ``computed``
        self.stats = np.empty((0, WIN_COLUMNS))
        self.computed = np.empty(0, dtype=bool)
        self.trends: list[PerformanceTrend | None] = []
        #: rows of the CACHE_HIT_RATE series
        self.hit_rate_keys: list[int] = []
        self._thr_keys = -1              # rows whose thresholds are filled in
        self._thr_version: int | None = None
        self._force_full = True          # recompute every row next time
        self.trends_stale = False        # rebuild every trend next time
        self._ring_state: tuple[Any, ...] | None = None

    def invalidate(self, thresholds: bool = False) -> None:
        """Recompute every window next time (and refill the thresholds)."""
        self._force_full = True
        if thresholds:
            self._thr_keys = -1

    def row(self, key: int) -> npt.NDArray[np.float64] | None:
        """The cached statistics of series ``key``, or None when it has none."""
        if key < self._cap and self.computed[key] and self.stats[key, WIN_COUNT] > 0:
            row: npt.NDArray[np.float64] = self.stats[key]
            return row
        return None

    # -- one analysis -------------------------------------------------------------

    def refresh(self, ring: MetricRing, names: SeriesNames, detector: BottleneckDetector,
                since: float, now: float) -> WindowUpdate:
        """Examine the new samples and recompute the windows that changed."""
        n = self._prepare(names, detector)
        full = self._force_full or self._window_invalid(ring)
        state = (ring, ring.total_recorded, len(ring), ring.late_inserts, ring.dropped_late)
        if n:
            ring.group_scan(since, now, self._wm_ts[:n], self._wm_skip[:n],
                            self.thresholds[:n], self._above[:n], self._scan[:n])
        scan, stats = self._scan[:n], self.stats[:n]
        new_counts = scan[:, SCAN_NEW_COUNT]
        dirty = (new_counts > 0) | ~self.computed[:n] | (
            (stats[:, WIN_COUNT] > 0) & (stats[:, WIN_FIRST_TS] < since))
        if full:
            dirty[:] = True
        changed = np.flatnonzero(dirty)
        if changed.size:
            ring.group_window(since, now, dirty.astype(np.uint8), self.thresholds[:n],
                              self._above[:n], P95, stats)
            self.computed[changed] = True
        self._ring_state = (*state, since)
        self._force_full = False
        return WindowUpdate(n, changed, int(new_counts.sum()) if n else 0)

    def observations(self, names: SeriesNames, n: int) -> list[Observation]:
        """What the last refresh learned about each series with new samples."""
        scan = self._scan
        obs = []
        for k in np.flatnonzero(scan[:n, SCAN_NEW_COUNT] > 0).tolist():
            row = scan[k].tolist()
            mt, src = names[k]
            obs.append(Observation(
                src, mt, int(row[SCAN_NEW_COUNT]), int(row[SCAN_EXCEED_COUNT]),
                row[SCAN_FIRST_EXCEED_TS], row[SCAN_LAST_EXCEED_TS],
                row[SCAN_LAST_EXCEED_VALUE], row[SCAN_WORST_VALUE], row[SCAN_LAST_NEW_TS],
                row[SCAN_LAST_NEW_VALUE]))
        return obs

    def update_trends(self, update: WindowUpdate, names: SeriesNames, min_points: int,
                      stable_fraction: float) -> tuple[PerformanceTrend, ...]:
        """Rebuild the trends of the changed rows (every row when stale); returns all."""
        redo = np.flatnonzero(self.computed[:update.series]) if self.trends_stale \
            else update.changed
        self.trends_stale = False
        trends = self.trends
        for k in redo.tolist():
            row = self.stats[k].tolist()
            if row[WIN_COUNT] < min_points:
                trends[k] = None
                continue
            mt, src = names[k]
            trends[k] = make_trend(mt, src, row, float(self.thresholds[k]), stable_fraction)
        return tuple(t for t in trends[:len(names)] if t is not None)

    # -- internals -----------------------------------------------------------------

    def _prepare(self, names: SeriesNames, detector: BottleneckDetector) -> int:
        """Grow the rows to the interned series; refresh thresholds when they changed."""
        n = len(names)
        version = detector.thresholds_version
        if version != self._thr_version:
            # thresholds changed (update_config or the detector directly):
            # refill them and recompute every window with the new ones
            self._thr_version = version
            self.invalidate(thresholds=True)
        if n > self._cap:
            cap = max(16, 2 * self._cap, n)
            self._wm_ts = grow(self._wm_ts, cap, -np.inf)
            self._wm_skip = grow(self._wm_skip, cap, 0)
            self.thresholds = grow(self.thresholds, cap, np.nan)
            self._above = grow(self._above, cap, 1)
            self._scan = grow(self._scan, cap, np.nan)
            self.stats = grow(self.stats, cap, np.nan)
            self.computed = grow(self.computed, cap, False)
            self._cap = cap
        if self._thr_keys != n:
            thresholds = detector.thresholds
            for k, (mt, _src) in enumerate(names):
                self.thresholds[k] = thresholds[mt]
                self._above[k] = higher_is_bad(mt)
            self.hit_rate_keys = [k for k, (mt, _src) in enumerate(names)
                                  if mt is MetricType.CACHE_HIT_RATE]
            self.trends.extend([None] * (n - len(self.trends)))
            self._thr_keys = n
        return n

    def _window_invalid(self, ring: MetricRing) -> bool:
        """True when cached window statistics may have lost samples.

        Samples leave the ring from the front (eviction when full, retention,
        ``clear_metrics``).  That is harmless when everything removed is older
        than the previous window; otherwise, and after a late (out-of-order)
        insert or a resize, every series is recomputed.
        """
        st = self._ring_state
        if st is None:
            return True
        prev_ring, total, length, late, dropped, prev_since = st
        if ring is not prev_ring or ring.late_inserts != late:
            return True
        removed = length + (ring.total_recorded - total) - (ring.dropped_late - dropped) - len(ring)
        if removed <= 0:
            return False
        oldest, _ = ring.bounds()
        return not (oldest < prev_since)  # also True for an empty ring (NaN)


def grow(arr: npt.NDArray[Any], cap: int, fill: Any) -> npt.NDArray[Any]:
    """``arr`` grown to ``cap`` rows, the new ones set to ``fill``."""
    out = np.full((cap, *arr.shape[1:]), fill, dtype=arr.dtype)
    out[:arr.shape[0]] = arr
    return out
