"""Cache accesses: recorded in their own ring, summarised per cache.

:class:`CacheAccessRecorder` stores every access as one ring sample whose key
packs the cache and the outcome (``4 * cache index + 2 * hit + has_latency``,
see :func:`access_key`) and whose value is the latency (0 when not given).
Each analysis turns the accesses since the previous one into a hit rate per
cache (:meth:`CacheAccessRecorder.flush`) and reports the window's counts and
latencies (:meth:`CacheAccessRecorder.statistics`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping

import numpy as np

from .._ringbuf import (
    SCAN_COLUMNS,
    SCAN_NEW_COUNT,
    WIN_COLUMNS,
    WIN_COUNT,
    WIN_FIRST_TS,
    WIN_LAST_TS,
    WIN_MEAN,
    MetricRing,
)
from .._validate import check_name, check_non_negative, check_timestamp
from .results import CacheStatistics
from .windows import grow

__all__ = ["CacheAccessRecorder", "access_key"]

# the four keys of one cache, in order: miss, timed miss, hit, timed hit
_MISS, _MISS_TIMED, _HIT, _HIT_TIMED = range(4)


def access_key(cache_index: int, hit: bool, timed: bool) -> int:
    """The ring key of one access: ``4 * cache_index + 2 * hit + timed``."""
    return 4 * cache_index + (_HIT if hit else _MISS) + timed


class CacheAccessRecorder:
    """Cache accesses of one optimizer: interning, recording, per-analysis summaries.

    Parameters
    ----------
    capacity : int
        Accesses kept (the ring's capacity).
    max_caches : callable
        Returns the current limit on distinct cache ids.
    reserve : callable
        ``reserve(cache_id)`` is called once per new cache id, before it is
        interned (the optimizer reserves the cache's hit-rate series; it
        raises ValueError to refuse the id).
    lock : threading.RLock
        Guards interning (recording needs no lock: the ring is atomic).

    Notes
    -----
    Memory: the ring (``capacity`` samples), the cache names (at most
    ``max_caches()``) and four watermarks per cache.
    """

    def __init__(self, capacity: int, max_caches: Callable[[], int],
                 reserve: Callable[[str], object], lock: threading.RLock) -> None:
        self.ring = MetricRing(capacity)
        self._max_caches = max_caches
        self._reserve = reserve
        self._lock = lock
        self._ids: dict[str, int] = {}
        self.names: list[str] = []
        self._wm_ts = np.empty(0)
        self._wm_skip = np.empty(0, dtype=np.int64)

    def record(self, cache_id: str, hit: bool, latency_ms: float | None,
               timestamp: float | None) -> None:
        """Store one access (``timestamp`` None: the ring's monotonic clock).

        Raises
        ------
        TypeError
            ``cache_id`` not a str or ``hit`` not a bool.
        ValueError
            A negative or non-finite latency or timestamp, or a new cache id
            beyond the limit; nothing is stored.
        """
        if not isinstance(hit, (bool, np.bool_)):
            raise TypeError(f"hit must be a bool, got {type(hit).__name__}")
        value = 0.0 if latency_ms is None else check_non_negative(latency_ms, "latency_ms")
        if timestamp is not None:
            check_timestamp(timestamp)
        cid = self._ids.get(cache_id) if isinstance(cache_id, str) else None
        if cid is None:   # validated above, so a bad call interns nothing
            cid = self._intern(cache_id)
        self.ring.record(access_key(cid, bool(hit), latency_ms is not None), value, timestamp)

    def _intern(self, cache_id: str) -> int:
        check_name(cache_id, "cache_id")
        with self._lock:
            cid = self._ids.get(cache_id)
            if cid is None:
                limit = self._max_caches()
                if len(self.names) >= limit:
                    raise ValueError(f"too many caches: max_series={limit} "
                                     f"reached; cannot add {cache_id!r}")
                self._reserve(cache_id)
                cid = len(self.names)
                self.names.append(cache_id)
                self._ids[cache_id] = cid
            return cid

    def resize(self, capacity: int) -> None:
        """Move the newest ``capacity`` accesses to a ring of that capacity."""
        ts, keys, vals = self.ring.snapshot()
        ring = MetricRing(capacity)
        keep = slice(max(0, len(vals) - capacity), None)
        ring.record_many(keys[keep], vals[keep], ts[keep])
        self.ring = ring

    def flush(self, since: float, now: float) -> list[tuple[str, float]]:
        """``(cache_id, hit rate %)`` of the accesses no earlier flush has seen."""
        nc = len(self.names)
        if nc == 0:
            return []
        nk = 4 * nc
        if self._wm_ts.shape[0] < nk:
            self._wm_ts = grow(self._wm_ts, nk, -np.inf)
            self._wm_skip = grow(self._wm_skip, nk, 0)
        out = np.empty((nk, SCAN_COLUMNS))
        self.ring.group_scan(since, now, self._wm_ts[:nk], self._wm_skip[:nk],
                             np.full(nk, np.nan), np.ones(nk, np.uint8), out)
        counts = out[:, SCAN_NEW_COUNT].reshape(nc, 4)
        requests = counts.sum(axis=1)
        hits = counts[:, _HIT] + counts[:, _HIT_TIMED]
        return [(self.names[c], 100.0 * hits[c] / requests[c])
                for c in np.flatnonzero(requests > 0).tolist()]

    def statistics(self, since: float, now: float,
                   hit_rate_rows: Mapping[str, np.ndarray]) -> tuple[CacheStatistics, ...]:
        """Per-cache statistics of the window ``[since, now]``.

        ``hit_rate_rows`` maps a cache id to the window statistics of its
        CACHE_HIT_RATE series (columns ``WIN_*``); a cache known only from
        such samples (recorded with ``record_metric``) is reported from them.
        """
        result: list[CacheStatistics] = []
        rows_left = dict(hit_rate_rows)
        nc = len(self.names)
        if nc:
            nk = 4 * nc
            out = np.empty((nk, WIN_COLUMNS))
            self.ring.group_window(since, now, np.ones(nk, np.uint8), np.full(nk, np.nan),
                                   np.ones(nk, np.uint8), math.nan, out)
            for c, cache_id in enumerate(self.names):
                rows = out[4 * c:4 * c + 4]
                cnt = rows[:, WIN_COUNT]
                total = int(cnt.sum())
                if total == 0:
                    continue
                misses = int(cnt[_MISS] + cnt[_MISS_TIMED])
                hits = int(cnt[_HIT] + cnt[_HIT_TIMED])
                sample_row = rows_left.pop(cache_id, None)
                result.append(CacheStatistics(
                    cache_id=cache_id, total_requests=total, hits=hits, misses=misses,
                    hit_rate=100.0 * hits / total,
                    avg_hit_time_ms=float(rows[_HIT_TIMED, WIN_MEAN])
                    if cnt[_HIT_TIMED] else None,
                    avg_miss_time_ms=float(rows[_MISS_TIMED, WIN_MEAN])
                    if cnt[_MISS_TIMED] else None,
                    window_start_time=float(np.nanmin(rows[:, WIN_FIRST_TS])),
                    window_end_time=float(np.nanmax(rows[:, WIN_LAST_TS])),
                    sample_count=0 if sample_row is None else int(sample_row[WIN_COUNT])))
        for cache_id, row in rows_left.items():
            result.append(CacheStatistics(
                cache_id=cache_id, total_requests=0, hits=0, misses=0,
                hit_rate=float(row[WIN_MEAN]), avg_hit_time_ms=None, avg_miss_time_ms=None,
                window_start_time=float(row[WIN_FIRST_TS]),
                window_end_time=float(row[WIN_LAST_TS]),
                sample_count=int(row[WIN_COUNT]), from_samples=True))
        return tuple(result)
