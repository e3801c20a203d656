"""Configuration of the RuntimeOptimizer."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from .._validate import check_int, check_non_negative, check_positive
from ..types import MetricType
from .detector import DEFAULT_THRESHOLDS, ThresholdMap
from .monitor import coerce_metric_type

__all__ = ["OptimizerConfig"]


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Configuration of a :class:`RuntimeOptimizer` (validated on creation).

    Parameters
    ----------
    enabled : bool
        When False, :meth:`RuntimeOptimizer.tick` collects and analyses
        nothing (``analyze()`` still works when called).
    analysis_interval_s : float
        Time between analyses, 10.
    analysis_window_s : float
        Samples newer than this are analysed, 300.
    max_metrics : int
        Ring capacity (also of the cache-access ring), 10 000.
    max_overhead_pct : float
        Budget for the optimizer's own cost as a percentage of the interval;
        above it the interval is stretched.  In (0, 100], default 5.
    thresholds : mapping of MetricType to float, optional
        Overrides of the detector's defaults (finite, >= 0).
    enable_cache_optimization, enable_trend_analysis : bool
    min_data_points_for_trend : int
        Samples a series needs in the window to get a trend (>= 2), 10.
    history_size : int
        Analyses and resolved bottlenecks kept, 100.
    hysteresis_pct : float
        Recovery margin as a percentage of the threshold, 5.
    resolve_after : int
        Clear analyses in a row that resolve a bottleneck, 3.
    trend_stable_pct : float
        A fitted change over the window below this percentage of the mean is
        STABLE, 10.
    retention_s : float, optional
        Samples older than this are dropped by ``tick()``; at least the window;
        default twice the window.
    max_series : int
        Distinct (metric type, source) series and distinct cache ids, 10 000.
    """

    enabled: bool = True
    analysis_interval_s: float = 10.0
    analysis_window_s: float = 300.0
    max_metrics: int = 10_000
    max_overhead_pct: float = 5.0
    thresholds: ThresholdMap | None = None
    enable_cache_optimization: bool = True
    enable_trend_analysis: bool = True
    min_data_points_for_trend: int = 10
    history_size: int = 100
    hysteresis_pct: float = 5.0
    resolve_after: int = 3
    trend_stable_pct: float = 10.0
    retention_s: float | None = None
    max_series: int = 10_000

    def __post_init__(self) -> None:
        for name in ("enabled", "enable_cache_optimization", "enable_trend_analysis"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        check_positive(self.analysis_interval_s, "analysis_interval_s")
        check_positive(self.analysis_window_s, "analysis_window_s")
        pct = check_positive(self.max_overhead_pct, "max_overhead_pct")
        if pct > 100.0:
            raise ValueError(f"max_overhead_pct must be <= 100, got {self.max_overhead_pct!r}")
        check_int(self.max_metrics, "max_metrics", 1)
        check_int(self.min_data_points_for_trend, "min_data_points_for_trend", 2)
        check_int(self.history_size, "history_size", 1)
        check_int(self.resolve_after, "resolve_after", 1)
        check_int(self.max_series, "max_series", 1)
        if check_non_negative(self.hysteresis_pct, "hysteresis_pct") >= 100.0:
            raise ValueError(f"hysteresis_pct must be < 100, got {self.hysteresis_pct!r}")
        check_non_negative(self.trend_stable_pct, "trend_stable_pct")
        if self.retention_s is not None:
            r = check_positive(self.retention_s, "retention_s")
            if r < self.analysis_window_s:
                raise ValueError(f"retention_s must be >= analysis_window_s "
                                 f"({self.analysis_window_s}), got {self.retention_s!r}")
        if self.thresholds is not None:
            if not isinstance(self.thresholds, Mapping):
                raise TypeError("thresholds must be a mapping of MetricType to float, got "
                                f"{type(self.thresholds).__name__}")
            parsed = {coerce_metric_type(k, "thresholds key"):
                      check_non_negative(v, f"thresholds[{k!r}]")
                      for k, v in self.thresholds.items()}
            # a private copy: the caller's dict can change, this config cannot
            object.__setattr__(self, "thresholds", MappingProxyType(parsed))

    def __hash__(self) -> int:
        # the thresholds mapping is read-only but not hashable itself
        thresholds = None if self.thresholds is None else frozenset(self.thresholds.items())
        return hash(tuple(thresholds if f.name == "thresholds" else getattr(self, f.name)
                          for f in dataclasses.fields(self)))

    @property
    def effective_thresholds(self) -> dict[MetricType, float]:
        """The detector defaults with this config's overrides applied."""
        merged = dict(DEFAULT_THRESHOLDS)
        for mt, value in (self.thresholds or {}).items():
            merged[coerce_metric_type(mt)] = value   # keys are MetricType after validation
        return merged

    @property
    def effective_retention_s(self) -> float:
        return 2.0 * self.analysis_window_s if self.retention_s is None else self.retention_s
