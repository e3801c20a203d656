"""Trends and the health score: pure functions of window statistics and bottlenecks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from .._ringbuf import (
    WIN_COUNT,
    WIN_FIRST_TS,
    WIN_LAST_TS,
    WIN_MAX,
    WIN_MEAN,
    WIN_MEAN_TS,
    WIN_MIN,
    WIN_QUANTILE,
    WIN_SLOPE,
    WIN_STD,
)
from ..types import BottleneckSeverity, MetricType
from .detector import higher_is_bad
from .results import Bottleneck, PerformanceTrend, TrendDirection

__all__ = ["SEVERITY_WEIGHT", "health_score", "make_trend"]

#: Points a bottleneck of each severity takes off the health score.
SEVERITY_WEIGHT: Mapping[BottleneckSeverity, float] = MappingProxyType({
    BottleneckSeverity.CRITICAL: 20.0,
    BottleneckSeverity.HIGH: 10.0,
    BottleneckSeverity.MEDIUM: 5.0,
    BottleneckSeverity.LOW: 2.0,
})


def health_score(bottlenecks: Iterable[Bottleneck]) -> float:
    """100 minus 20/10/5/2 per CRITICAL/HIGH/MEDIUM/LOW bottleneck, floored at 0.

    Callers pass distinct bottlenecks (one per series), so a flood of samples
    about one problem costs the score once.
    """
    return max(0.0, 100.0 - sum(SEVERITY_WEIGHT[b.severity] for b in bottlenecks))


def make_trend(mt: MetricType, component: str, row: Sequence[float], threshold: float,
               stable_fraction: float) -> PerformanceTrend:
    """A :class:`PerformanceTrend` from one ``MetricRing.group_window`` row.

    Parameters
    ----------
    mt, component : MetricType, str
        The series.
    row : sequence of float
        Its window statistics, columns ``WIN_*`` of ``arbiter_core._ringbuf``.
    threshold : float
        The series' threshold (NaN: none, so no time to reach it).
    stable_fraction : float
        A fitted change over the window smaller than this fraction of the mean
        is STABLE.
    """
    slope = row[WIN_SLOPE]
    if slope != slope:  # all samples at one timestamp: no measurable trend
        slope = 0.0
    first, last = row[WIN_FIRST_TS], row[WIN_LAST_TS]
    mean = row[WIN_MEAN]
    change = slope * (last - first)
    scale = abs(mean) if mean != 0.0 else threshold
    if scale > 0.0:
        rel = change / scale
    else:
        rel = 0.0 if change == 0.0 else math.copysign(math.inf, change)
    up = higher_is_bad(mt)
    if abs(rel) < stable_fraction or change == 0.0:
        direction = TrendDirection.STABLE
    elif (change > 0.0) == up:
        direction = TrendDirection.DEGRADING
    else:
        direction = TrendDirection.IMPROVING
    fitted = mean + slope * (last - row[WIN_MEAN_TS])
    ttt: float | None = None
    if threshold == threshold:
        if (fitted > threshold) if up else (fitted < threshold):
            ttt = 0.0
        elif (slope > 0.0) if up else (slope < 0.0):
            ttt = (threshold - fitted) / slope
    return PerformanceTrend(
        metric_type=mt, component=component, direction=direction, slope_per_s=slope,
        relative_change=rel, average_value=mean, min_value=row[WIN_MIN],
        max_value=row[WIN_MAX], standard_deviation=row[WIN_STD], p95_value=row[WIN_QUANTILE],
        start_time=first, end_time=last, data_point_count=int(row[WIN_COUNT]),
        threshold=threshold if threshold == threshold else None, time_to_threshold_s=ttt)
