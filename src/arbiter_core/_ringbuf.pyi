# Stub for the compiled module arbiter_core._ringbuf (see _ringbuf.pyx).
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, final, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import Self, disjoint_base

__all__ = ["MetricRing", "NamedRecorder", "SeriesHandle", "WindowStats", "monotonic_now",
           "SCAN_NEW_COUNT", "SCAN_EXCEED_COUNT", "SCAN_FIRST_EXCEED_TS", "SCAN_LAST_EXCEED_TS",
           "SCAN_LAST_EXCEED_VALUE", "SCAN_WORST_VALUE", "SCAN_LAST_NEW_TS",
           "SCAN_LAST_NEW_VALUE", "SCAN_COLUMNS", "WIN_COUNT", "WIN_MEAN", "WIN_MIN", "WIN_MAX",
           "WIN_STD", "WIN_FIRST_TS", "WIN_LAST_TS", "WIN_LAST_VALUE", "WIN_SLOPE",
           "WIN_MEAN_TS", "WIN_QUANTILE", "WIN_BEYOND_COUNT", "WIN_COLUMNS"]

# column layout of MetricRing.group_scan's output (one row per key)
SCAN_NEW_COUNT: int
SCAN_EXCEED_COUNT: int
SCAN_FIRST_EXCEED_TS: int
SCAN_LAST_EXCEED_TS: int
SCAN_LAST_EXCEED_VALUE: int
SCAN_WORST_VALUE: int
SCAN_LAST_NEW_TS: int
SCAN_LAST_NEW_VALUE: int
SCAN_COLUMNS: int
# column layout of MetricRing.group_window's output (one row per key)
WIN_COUNT: int
WIN_MEAN: int
WIN_MIN: int
WIN_MAX: int
WIN_STD: int
WIN_FIRST_TS: int
WIN_LAST_TS: int
WIN_LAST_VALUE: int
WIN_SLOPE: int
WIN_MEAN_TS: int
WIN_QUANTILE: int
WIN_BEYOND_COUNT: int
WIN_COLUMNS: int

class _HasNow(Protocol):
    def now(self) -> float: ...

_Key = int | Sequence[int] | npt.NDArray[np.integer[Any]] | None
_Arrays = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]]

class WindowStats(NamedTuple):
    count: int  # type: ignore[assignment]  # shadows tuple.count by design
    mean: float
    min: float
    max: float
    std: float
    first: float
    last: float

def monotonic_now() -> float: ...

# test hooks of the quantile kernels (private)
def _simd_level() -> int: ...
def _simd_best() -> int: ...
def _set_simd_level(level: int) -> int: ...
def _set_quantile_margin(sd: float, slack: float) -> tuple[float, float]: ...
def _set_window_mode(mode: int) -> int: ...

@final
class MetricRing:
    def __new__(cls, capacity: int) -> Self: ...
    @property
    def capacity(self) -> int: ...
    @property
    def total_recorded(self) -> int:
        """Samples offered since the ring was made: every ``record`` and every
        element of a ``record_many``, stored, evicted or dropped late."""
    @property
    def late_inserts(self) -> int:
        """Samples older than the newest stored one that were inserted at their
        place in time (the ring stays sorted)."""
    @property
    def dropped_late(self) -> int:
        """Late samples not stored: the ring was full and each was older than
        everything in it (the sample that would be evicted next)."""
    def __len__(self) -> int: ...
    def record(self, key: int, value: float, timestamp: float | None = None) -> None: ...
    def record_many(
        self,
        keys: int | npt.ArrayLike,
        values: npt.ArrayLike,
        timestamps: float | npt.ArrayLike | None = None,
    ) -> None: ...
    def clear_before(self, timestamp: float) -> int: ...
    def clear(self) -> None: ...
    def snapshot(
        self, since: float | None = None, until: float | None = None, key: _Key = None
    ) -> _Arrays: ...
    def latest(self, count: int, key: _Key = None) -> _Arrays: ...
    def stats(
        self, key: _Key = None, since: float | None = None, until: float | None = None
    ) -> WindowStats: ...
    @overload
    def quantile(
        self, key: _Key = None, q: float = 0.5, since: float | None = None,
        until: float | None = None,
    ) -> float: ...
    @overload
    def quantile(
        self, key: _Key, q: Sequence[float] | npt.NDArray[np.float64],
        since: float | None = None, until: float | None = None,
    ) -> npt.NDArray[np.float64]: ...
    def count_beyond(
        self, key: _Key = None, threshold: float = 0.0, above: bool = True,
        since: float | None = None, until: float | None = None,
    ) -> int: ...
    def slope(
        self, key: _Key = None, since: float | None = None, until: float | None = None
    ) -> float: ...
    def series(self, key: int, clock: _HasNow | None = None) -> SeriesHandle: ...
    # grouped kernels (RuntimeOptimizer); output columns: SCAN_* and WIN_*
    def bounds(self) -> tuple[float, float]: ...
    def group_scan(
        self, since: float, until: float,
        wm_ts: npt.NDArray[np.float64],  # double[::1], updated in place
        wm_skip: npt.NDArray[np.int64],  # int64_t[::1], updated in place
        thresholds: npt.NDArray[np.float64],  # const double[::1]
        above: npt.NDArray[np.uint8],  # const unsigned char[::1]
        out: npt.NDArray[np.float64],  # double[:, ::1], shape (nkeys, SCAN_COLUMNS)
    ) -> int: ...
    def group_window(
        self, since: float, until: float,
        mask: npt.NDArray[np.uint8],  # const unsigned char[::1]
        thresholds: npt.NDArray[np.float64],  # const double[::1]
        above: npt.NDArray[np.uint8],  # const unsigned char[::1]
        q: float,
        out: npt.NDArray[np.float64],  # double[:, ::1], shape (nkeys, WIN_COLUMNS)
    ) -> None: ...

@disjoint_base
class SeriesHandle:
    def __new__(cls, ring: MetricRing, key: int, clock: _HasNow | None = None) -> Self: ...
    @property
    def ring(self) -> MetricRing: ...
    @property
    def key(self) -> int: ...
    @property
    def clock(self) -> _HasNow | None: ...
    def record(self, value: float, timestamp: float | None = None) -> None: ...

@disjoint_base
class NamedRecorder:
    def __new__(
        cls,
        ring: MetricRing,
        keys: dict[tuple[str, str], int],
        slow: Callable[[Any, Any, Any, Any], None],
        clock: _HasNow | None = None,
        enum_cls: type | None = None,
    ) -> Self: ...
    @property
    def ring(self) -> MetricRing: ...
    def retarget(self, ring: MetricRing) -> None: ...
    def record(
        self, metric_type: Any, value: Any, source: Any = "system", timestamp: Any = None
    ) -> None: ...
