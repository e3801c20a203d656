"""The recommendation catalogue (data) and the records built from it.

One :class:`RecommendationSpec` per metric type says what to recommend when
that metric is the bottleneck; :func:`make_recommendation` turns a bottleneck
and the window's evidence into a frozen
:class:`~arbiter_core.optimization.OptimizationRecommendation`.  The texts
live here as data, so changing the advice touches no logic.
:class:`Recommender` keeps one record per active bottleneck between analyses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..types import BottleneckSeverity, MetricType, RecommendationType
from .results import (
    Bottleneck,
    OptimizationRecommendation,
    PerformanceTrend,
    RecommendationEvidence,
)

__all__ = ["CATALOGUE", "PRIORITY", "RecommendationSpec", "Recommender", "fmt_number",
           "make_recommendation"]


@dataclass(frozen=True)
class RecommendationSpec:
    """What to recommend when one metric type is the bottleneck.

    ``description`` is a template with ``{v}`` (the current value) and
    ``{t}`` (the threshold), both formatted by :func:`fmt_number`.
    """

    type: RecommendationType
    title: str
    description: str
    expected_impact: str
    estimated_improvement_pct: float
    difficulty: str            # "easy", "moderate" or "hard"


CATALOGUE: Mapping[MetricType, RecommendationSpec] = MappingProxyType({
    MetricType.CPU: RecommendationSpec(
        RecommendationType.RESOURCE_ALLOCATION, "Optimize CPU Usage",
        "CPU usage at {v}% (threshold: {t}%)",
        "Reduce CPU usage by 20-30% through optimization", 25.0, "moderate"),
    MetricType.MEMORY: RecommendationSpec(
        RecommendationType.MEMORY_MANAGEMENT, "Optimize Memory Usage",
        "Memory usage at {v}% (threshold: {t}%)",
        "Reduce memory footprint and prevent leaks", 20.0, "moderate"),
    MetricType.NETWORK: RecommendationSpec(
        RecommendationType.NETWORK_OPTIMIZATION, "Reduce Network Load",
        "Network utilization at {v}% (threshold: {t}%)",
        "Relieve congestion by batching, compressing and cutting round trips", 20.0, "moderate"),
    MetricType.LATENCY: RecommendationSpec(
        RecommendationType.CONCURRENCY_TUNING, "Reduce Latency",
        "Latency at {v}ms (threshold: {t}ms)",
        "Reduce response times through concurrency optimization", 35.0, "hard"),
    # Low throughput is a capacity problem: more workers or higher limits.
    MetricType.THROUGHPUT: RecommendationSpec(
        RecommendationType.RESOURCE_ALLOCATION, "Increase Throughput",
        "Throughput at {v} req/s (minimum: {t} req/s)",
        "Raise request capacity by adding workers or raising concurrency limits",
        30.0, "moderate"),
    # Error spikes mostly come from overload: shed it before it fails requests.
    MetricType.ERROR_RATE: RecommendationSpec(
        RecommendationType.CONCURRENCY_TUNING, "Reduce Error Rate",
        "Error rate at {v}% (threshold: {t}%)",
        "Cut failures with backpressure, retries with backoff and circuit breaking",
        40.0, "moderate"),
    MetricType.CACHE_HIT_RATE: RecommendationSpec(
        RecommendationType.CACHE_OPTIMIZATION, "Improve Cache Performance",
        "Cache hit rate at {v}% (target: {t}%)",
        "Improve cache hit rate through better eviction and warming", 30.0, "easy"),
})

#: Priority of a recommendation by the severity of its bottleneck.
PRIORITY: Mapping[BottleneckSeverity, str] = MappingProxyType({
    BottleneckSeverity.CRITICAL: "high",
    BottleneckSeverity.HIGH: "high",
    BottleneckSeverity.MEDIUM: "medium",
    BottleneckSeverity.LOW: "low",
})


def fmt_number(x: float) -> str:
    """Format for messages: ``95`` for 95.0, ``92.5``, ``4463.1``, ``14.3``.

    Integers print bare; other values keep one decimal from 100 up and three
    significant digits below, so messages never carry float noise such as
    ``4463.1021236501165``.

    Examples
    --------
    >>> fmt_number(95.0), fmt_number(4463.1021236501165), fmt_number(0.014251)
    ('95', '4463.1', '0.0143')
    """
    if not math.isfinite(x):
        return repr(float(x))
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    text = f"{x:.1f}" if abs(x) >= 100 else f"{x:.3g}"
    return text[:-2] if text.endswith(".0") else text


def make_recommendation(b: Bottleneck, trend: PerformanceTrend | None, n: int, beyond: int,
                        mean: float, p95: float, now: float) -> OptimizationRecommendation:
    """The recommendation for bottleneck ``b``, with the window's evidence.

    Parameters
    ----------
    b : Bottleneck
    trend : PerformanceTrend or None
        The series' trend, when trends are computed.
    n, beyond : int
        Samples of the series in the window, and how many are beyond the threshold.
    mean, p95 : float
        The window's mean and 95th percentile (NaN when unknown).
    now : float
        ``generated_at`` of the record.
    """
    spec = CATALOGUE[b.metric_type]
    evidence = RecommendationEvidence(
        value=b.current_value, worst_value=b.worst_value, threshold=b.threshold,
        deviation=b.deviation, duration_s=b.duration_s,
        exceeding_analyses=b.exceeding_analyses, samples_beyond=beyond, window_samples=n,
        window_mean=mean, window_p95=p95,
        trend_direction=None if trend is None else trend.direction,
        trend_slope_per_s=None if trend is None else trend.slope_per_s,
        time_to_threshold_s=None if trend is None else trend.time_to_threshold_s)
    text = spec.description.format(v=fmt_number(b.current_value), t=fmt_number(b.threshold))
    detail = (f"; {b.severity.value} for {fmt_number(round(b.duration_s, 1))} s over "
              f"{b.exceeding_analyses} analyses")
    if n:
        detail += f", {beyond} of {n} samples in the window beyond the threshold"
    if trend is not None:
        detail += f", trend {trend.direction.value}"
    return OptimizationRecommendation(
        id=f"rec-{b.id}", type=spec.type, priority=PRIORITY[b.severity], component=b.component,
        metric_type=b.metric_type, title=spec.title, description=text + detail,
        expected_impact=spec.expected_impact,
        estimated_improvement_pct=spec.estimated_improvement_pct,
        implementation_difficulty=spec.difficulty, related_bottleneck_id=b.id,
        evidence=evidence, generated_at=now)


class Recommender:
    """One recommendation per active bottleneck, kept while its inputs do not change.

    Unchanged inputs give the same record (``generated_at`` = when it was
    made), which keeps an analysis with nothing new cheap.  Memory: one entry
    per active bottleneck.  Not thread-safe: the optimizer calls it under its lock.
    """

    __slots__ = ("_cache", "_ids", "generated")

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[Any, ...], OptimizationRecommendation]] = {}
        self._ids: set[str] = set()
        #: distinct recommendations made so far
        self.generated = 0

    def recommend(self, b: Bottleneck, trend: PerformanceTrend | None, n: int, beyond: int,
                  mean: float, p95: float, now: float) -> OptimizationRecommendation:
        """The record for ``b`` (see :func:`make_recommendation`), reused when unchanged."""
        inputs = (b, trend, n, beyond, mean, p95)
        cached = self._cache.get(b.id)
        if cached is not None and _same(cached[0], inputs):
            return cached[1]
        rec = make_recommendation(b, trend, n, beyond, mean, p95, now)
        self._cache[b.id] = (inputs, rec)
        return rec

    def settle(self, recs: tuple[OptimizationRecommendation, ...]) -> None:
        """Count the new ones among ``recs`` (one analysis) and forget the others."""
        ids = {r.id for r in recs}
        self.generated += len(ids - self._ids)
        self._ids = ids
        active = {r.related_bottleneck_id for r in recs}
        for bid in [bid for bid in self._cache if bid not in active]:
            del self._cache[bid]


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Records by identity, numbers by value (NaN equal to NaN)."""
    return (a[0] is b[0] and a[1] is b[1]
            and all(x == y or (x != x and y != y) for x, y in zip(a[2:], b[2:], strict=True)))
