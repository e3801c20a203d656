"""Result records of the runtime optimizer: frozen snapshots.

Every record here is a frozen dataclass built from plain values (floats,
strings, enums, tuples), so nothing a caller holds changes after it is
returned (the TypeScript prototype this package reimplements handed out live
objects that later analyses mutated).  Field names are the prototype's, in
snake_case; durations are in
seconds (``_s``) and times are readings of the component's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..types import BottleneckSeverity, MetricType, RecommendationType, StrEnum

__all__ = [
    "Bottleneck",
    "BottleneckEvent",
    "BottleneckEventKind",
    "CacheStatistics",
    "OptimizationAnalysis",
    "OptimizationRecommendation",
    "OptimizerHealthStatus",
    "PerformanceTrend",
    "RecommendationEvidence",
    "TrendDirection",
]


class TrendDirection(StrEnum):
    """Where a series is heading, judged by the metric's polarity."""

    IMPROVING = "improving"
    STABLE = "stable"
    DEGRADING = "degrading"


class BottleneckEventKind(StrEnum):
    """What happened to a bottleneck (see :class:`BottleneckEvent`)."""

    DETECTED = "detected"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Bottleneck:
    """One performance problem: a (component, metric type) beyond its threshold.

    Attributes
    ----------
    id : str
        Stable for the whole episode, from detection to resolution.
    component : str
        The metric source.
    metric_type : MetricType
    severity : BottleneckSeverity
        Never lower than earlier in the same episode.
    current_value : float
        The latest value beyond the threshold.
    worst_value : float
        The value farthest beyond the threshold during the episode.
    threshold : float
        The threshold in effect at the latest update.
    deviation : float
        ``|worst_value - threshold| / threshold`` (inf for a zero threshold).
    impact : str
        Text matching the current severity.
    detected_at, last_observed_at : float
        Timestamps of the first and the latest sample beyond the threshold.
    occurrence_count : int
        Distinct samples beyond the threshold (each counted once).
    exceeding_analyses : int
        Distinct analyses that saw new samples beyond the threshold; this is
        the persistence that raises severity.
    resolved_at : float or None
        When the episode ended; None while active.
    resolution : str or None
        ``"recovered"`` (back on the good side with hysteresis),
        ``"unseen"`` (nothing beyond the threshold for a whole window) or
        ``"cleared"`` (by ``BottleneckDetector.clear_resolved_bottlenecks``).
    """

    id: str
    component: str
    metric_type: MetricType
    severity: BottleneckSeverity
    current_value: float
    worst_value: float
    threshold: float
    deviation: float
    impact: str
    detected_at: float
    last_observed_at: float
    occurrence_count: int
    exceeding_analyses: int
    resolved_at: float | None = None
    resolution: str | None = None

    @property
    def is_active(self) -> bool:
        return self.resolved_at is None

    @property
    def duration_s(self) -> float:
        """Time from the first to the latest sample beyond the threshold."""
        return self.last_observed_at - self.detected_at


@dataclass(frozen=True, slots=True)
class BottleneckEvent:
    """A bottleneck was detected, escalated or resolved.

    Attributes
    ----------
    kind : BottleneckEventKind
    bottleneck : Bottleneck
        The state right after the change.
    previous_severity : BottleneckSeverity or None
        For escalations, the severity before.
    timestamp : float
        When the analysis that caused it ran.
    """

    kind: BottleneckEventKind
    bottleneck: Bottleneck
    timestamp: float
    previous_severity: BottleneckSeverity | None = None


@dataclass(frozen=True, slots=True)
class RecommendationEvidence:
    """The numbers a recommendation rests on.

    Attributes
    ----------
    value, worst_value, threshold, deviation : float
        From the bottleneck.
    duration_s : float
        How long the problem has been observed.
    exceeding_analyses : int
        Distinct analyses that saw new samples beyond the threshold.
    samples_beyond, window_samples : int
        Samples beyond the threshold / all samples of the series in the
        current window (0 when the series has no window statistics).
    window_mean, window_p95 : float
        Of the series in the current window (NaN when unknown).
    trend_direction : TrendDirection or None
    trend_slope_per_s : float or None
    time_to_threshold_s : float or None
        From the trend, when the series is heading for its threshold.
    """

    value: float
    worst_value: float
    threshold: float
    deviation: float
    duration_s: float
    exceeding_analyses: int
    samples_beyond: int
    window_samples: int
    window_mean: float
    window_p95: float
    trend_direction: TrendDirection | None
    trend_slope_per_s: float | None
    time_to_threshold_s: float | None


@dataclass(frozen=True, slots=True)
class OptimizationRecommendation:
    """What to do about one active bottleneck.

    ``id`` is derived from the bottleneck's id, so the recommendation for an
    episode keeps its id across analyses.  ``priority`` is ``"high"`` for
    HIGH/CRITICAL, ``"medium"`` for MEDIUM and ``"low"`` for LOW;
    ``implementation_difficulty`` is ``"easy"``, ``"moderate"`` or ``"hard"``.
    """

    id: str
    type: RecommendationType
    priority: str
    component: str
    metric_type: MetricType
    title: str
    description: str
    expected_impact: str
    estimated_improvement_pct: float
    implementation_difficulty: str
    related_bottleneck_id: str
    evidence: RecommendationEvidence
    generated_at: float


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    """Cache behaviour over the analysis window, per cache id.

    Counts come from :meth:`RuntimeOptimizer.record_cache_access` (real
    requests).  A cache known only through CACHE_HIT_RATE metric samples has
    zero counts and ``hit_rate`` = the mean of those samples
    (``from_samples=True``).

    Attributes
    ----------
    cache_id : str
    total_requests, hits, misses : int
        ``hits + misses == total_requests``.
    hit_rate : float
        Percent; NaN when there is nothing to go on.
    avg_hit_time_ms, avg_miss_time_ms : float or None
        Means over the accesses that reported a latency; None if none did.
    window_start_time, window_end_time : float
        First and last access (or sample) in the window.
    sample_count : int
        CACHE_HIT_RATE metric samples of this cache in the window.
    from_samples : bool
    """

    cache_id: str
    total_requests: int
    hits: int
    misses: int
    hit_rate: float
    avg_hit_time_ms: float | None
    avg_miss_time_ms: float | None
    window_start_time: float
    window_end_time: float
    sample_count: int = 0
    from_samples: bool = False


@dataclass(frozen=True, slots=True)
class PerformanceTrend:
    """The least-squares trend of one (component, metric type) in the window.

    Attributes
    ----------
    metric_type : MetricType
    component : str
    direction : TrendDirection
        Polarity-aware: a falling cache hit rate or throughput is DEGRADING.
        STABLE when the fitted change over the window is below the optimizer's
        ``trend_stable_pct`` of the mean (of the threshold when the mean is 0).
    slope_per_s : float
        Least-squares slope in units per second (0 when all samples share a
        timestamp).
    relative_change : float
        Fitted change over the window divided by ``|mean|`` (by the
        threshold when the mean is 0; inf with neither).
    average_value, min_value, max_value, standard_deviation, p95_value : float
        ``standard_deviation`` is the sample std (ddof=1).
    start_time, end_time : float
        First and last sample in the window.
    data_point_count : int
    threshold : float or None
    time_to_threshold_s : float or None
        Predicted seconds, counted from ``end_time`` (the newest sample, not
        the analysis time), until the fitted line crosses the threshold, when
        it is heading there (0 when the fitted value at ``end_time`` is
        already beyond); None otherwise.
    """

    metric_type: MetricType
    component: str
    direction: TrendDirection
    slope_per_s: float
    relative_change: float
    average_value: float
    min_value: float
    max_value: float
    standard_deviation: float
    p95_value: float
    start_time: float
    end_time: float
    data_point_count: int
    threshold: float | None
    time_to_threshold_s: float | None


@dataclass(frozen=True, slots=True)
class OptimizationAnalysis:
    """The result of one :meth:`RuntimeOptimizer.analyze` call.

    Attributes
    ----------
    timestamp : float
        Clock reading when the analysis ran (the window's end).
    window_s : float
    bottlenecks : tuple of Bottleneck
        Every active bottleneck, one per (component, metric type).
    resolved : tuple of Bottleneck
        Bottlenecks this analysis resolved.
    recommendations : tuple of OptimizationRecommendation
        Exactly one per active bottleneck.
    trends : tuple of PerformanceTrend
    cache_stats : tuple of CacheStatistics
    health_score : float
        0-100: 100 minus 20/10/5/2 per CRITICAL/HIGH/MEDIUM/LOW active
        bottleneck, floored at 0.
    duration_s : float
        Wall time the analysis took.
    new_samples : int
        Samples examined for detection (never examined before).
    series_recomputed : int
        Series whose window statistics changed and were recomputed.
    """

    timestamp: float
    window_s: float
    bottlenecks: tuple[Bottleneck, ...]
    resolved: tuple[Bottleneck, ...]
    recommendations: tuple[OptimizationRecommendation, ...]
    trends: tuple[PerformanceTrend, ...]
    cache_stats: tuple[CacheStatistics, ...]
    health_score: float
    duration_s: float
    new_samples: int
    series_recomputed: int


@dataclass(frozen=True, slots=True)
class OptimizerHealthStatus:
    """What :meth:`RuntimeOptimizer.get_health_status` reports.

    Attributes
    ----------
    is_running : bool
        The background thread is running.
    enabled : bool
    last_analysis_time : float or None
    metrics_collected : int
        Samples ever recorded (including evicted ones).
    active_bottlenecks : int
    recommendations_generated : int
        Distinct recommendations (one per bottleneck episode).
    analyses_run : int
    degraded : bool
        The last analysis failed or a collector failed in the last cycle.
    collector_failures : int
        Collector calls that raised, in total.
    overhead_pct : float
        Smoothed cost of the optimizer's cycles as a percentage of the time
        between them.
    effective_interval_s : float
        The analysis interval in use: the configured one, or longer when it
        was stretched to keep the overhead within ``max_overhead_pct``.
    interval_stretched : bool
    """

    is_running: bool
    enabled: bool
    last_analysis_time: float | None
    metrics_collected: int
    active_bottlenecks: int
    recommendations_generated: int
    analyses_run: int
    degraded: bool
    collector_failures: int
    overhead_pct: float
    effective_interval_s: float
    interval_stretched: bool
