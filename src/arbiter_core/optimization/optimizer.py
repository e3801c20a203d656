"""RuntimeOptimizer: analysis cycles over a PerformanceMonitor.

One analysis (:meth:`RuntimeOptimizer.analyze`) costs two grouped kernel
passes over the ring instead of work per sample in Python:

1. ``MetricRing.group_scan`` examines, for all series at once, only the
   samples no earlier analysis has seen (per-series watermarks).  Its
   per-series summaries feed the :class:`BottleneckDetector`, so each stored
   sample counts towards detection and persistence exactly once.
2. ``MetricRing.group_window`` recomputes the window statistics (count, mean,
   min, max, std, least-squares slope, p95, samples beyond the threshold) of
   the series whose window content changed: new samples, samples that left
   the window, or anything the ring did that could have removed samples from
   it.  The other series keep their cached statistics and trends.

Python then builds the frozen result records: one bottleneck per series with
a problem, one recommendation per bottleneck, a trend per series, cache
statistics and a health score.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _aio
from .._ringbuf import MetricRing
from .._validate import check_int, check_non_negative, check_positive
from ..clock import Clock, default_clock, is_monotonic_default
from ..types import BottleneckSeverity, MetricType, RecommendationType
from .detector import (
    DEFAULT_THRESHOLDS,
    BottleneckDetector,
    BottleneckListener,
    Observation,
    ThresholdMap,
    higher_is_bad,
    subscribe,
)
from .monitor import PerformanceMonitor, coerce_metric_type
from .results import (
    Bottleneck,
    CacheStatistics,
    OptimizationAnalysis,
    OptimizationRecommendation,
    OptimizerHealthStatus,
    PerformanceTrend,
    RecommendationEvidence,
    TrendDirection,
)

__all__ = ["Collector", "OptimizerConfig", "RuntimeOptimizer"]

logger = logging.getLogger("arbiter_core.optimization")

#: A collector returns samples ``(metric_type, value, source)``.
Collector = Callable[[], Iterable[tuple[MetricType | str, float, str]]]
AnalysisListener = Callable[[OptimizationAnalysis], object]

_SEVERITY_WEIGHT = {
    BottleneckSeverity.CRITICAL: 20.0,
    BottleneckSeverity.HIGH: 10.0,
    BottleneckSeverity.MEDIUM: 5.0,
    BottleneckSeverity.LOW: 2.0,
}
_PRIORITY = {
    BottleneckSeverity.CRITICAL: "high",
    BottleneckSeverity.HIGH: "high",
    BottleneckSeverity.MEDIUM: "medium",
    BottleneckSeverity.LOW: "low",
}

# type, title, description, expected impact, estimated %, difficulty
_RECOMMENDATIONS: dict[MetricType, tuple[RecommendationType, str, str, str, float, str]] = {
    MetricType.CPU: (
        RecommendationType.RESOURCE_ALLOCATION, "Optimize CPU Usage",
        "CPU usage at {v}% (threshold: {t}%)",
        "Reduce CPU usage by 20-30% through optimization", 25.0, "moderate"),
    MetricType.MEMORY: (
        RecommendationType.MEMORY_MANAGEMENT, "Optimize Memory Usage",
        "Memory usage at {v}% (threshold: {t}%)",
        "Reduce memory footprint and prevent leaks", 20.0, "moderate"),
    MetricType.NETWORK: (
        RecommendationType.NETWORK_OPTIMIZATION, "Reduce Network Load",
        "Network utilization at {v}% (threshold: {t}%)",
        "Relieve congestion by batching, compressing and cutting round trips", 20.0, "moderate"),
    MetricType.LATENCY: (
        RecommendationType.CONCURRENCY_TUNING, "Reduce Latency",
        "Latency at {v}ms (threshold: {t}ms)",
        "Reduce response times through concurrency optimization", 35.0, "hard"),
    # Low throughput is a capacity problem: more workers or higher limits.
    MetricType.THROUGHPUT: (
        RecommendationType.RESOURCE_ALLOCATION, "Increase Throughput",
        "Throughput at {v} req/s (minimum: {t} req/s)",
        "Raise request capacity by adding workers or raising concurrency limits",
        30.0, "moderate"),
    # Error spikes mostly come from overload: shed it before it fails requests.
    MetricType.ERROR_RATE: (
        RecommendationType.CONCURRENCY_TUNING, "Reduce Error Rate",
        "Error rate at {v}% (threshold: {t}%)",
        "Cut failures with backpressure, retries with backoff and circuit breaking",
        40.0, "moderate"),
    MetricType.CACHE_HIT_RATE: (
        RecommendationType.CACHE_OPTIMIZATION, "Improve Cache Performance",
        "Cache hit rate at {v}% (target: {t}%)",
        "Improve cache hit rate through better eviction and warming", 30.0, "easy"),
}

_P95 = 0.95
# columns of the group_scan / group_window outputs (see _ringbuf.pyx)
_S_NEW, _S_EXC, _S_FIRST_EXC, _S_LAST_EXC, _S_LAST_EXC_V, _S_WORST, _S_LAST_TS, _S_LAST_V = \
    range(8)
(_W_N, _W_MEAN, _W_MIN, _W_MAX, _W_STD, _W_FIRST, _W_LAST, _W_LAST_V, _W_SLOPE, _W_MEAN_TS,
 _W_Q, _W_BEYOND) = range(12)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Configuration of a :class:`RuntimeOptimizer` (validated on creation).

    Parameters
    ----------
    enabled : bool
        When False, :meth:`RuntimeOptimizer.tick` collects and analyses
        nothing (``analyze()`` still works when called).
    analysis_interval_s : float
        Time between analyses (the original's ``collectionIntervalMs``), 10.
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
        STABLE, 10 (the original's 0.1).
    retention_s : float, optional
        Samples older than this are dropped by ``tick()``; at least the window;
        default twice the window (as the original).
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


class _CollectorEntry:
    __slots__ = ("failures", "fn", "name")

    def __init__(self, fn: Collector, name: str) -> None:
        self.fn = fn
        self.name = name
        self.failures = 0

    def __call__(self) -> Iterable[tuple[MetricType | str, float, str]]:
        return self.fn()


class _Worker:
    """One background thread with its own stop and wake events.

    The thread holds the optimizer only through a weak reference (and only
    during a cycle), so an optimizer dropped without ``stop()`` is collected
    and its thread ends.
    """

    __slots__ = ("finalizer", "stop", "thread", "wake")

    def __init__(self, optimizer: RuntimeOptimizer) -> None:
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=_run_worker, args=(self, weakref.ref(optimizer)),
                                       name="arbiter-optimizer", daemon=True)
        # wakes the thread when the optimizer is collected; detached by stop()
        self.finalizer = weakref.finalize(optimizer, self.wake.set)


def _run_worker(worker: _Worker, ref: weakref.ReferenceType[RuntimeOptimizer]) -> None:
    while not worker.stop.is_set():
        opt = ref()
        if opt is None:
            break
        # cleared before the cycle, so a wake() during it is not lost
        worker.wake.clear()
        try:
            opt.tick()
        except Exception:  # tick isolates its parts; this is a last resort
            logger.exception("optimizer cycle failed")
        interval = opt.effective_interval_s
        del opt            # no strong reference while sleeping
        if worker.stop.is_set():
            break
        worker.wake.wait(interval)


class RuntimeOptimizer:
    """Watches metrics, finds bottlenecks, recommends fixes, reports health.

    Parameters
    ----------
    config : OptimizerConfig, optional
    clock : Clock, optional
        Time source for samples, windows and scheduling (monotonic default).
    collectors : iterable of callables, optional
        Registered as by :meth:`add_collector`.
    cost_timer : callable, optional
        Measures the optimizer's own cost (default ``time.perf_counter``);
        tests inject a fake one.

    Notes
    -----
    Memory is bounded: two rings of ``max_metrics`` samples (metrics and
    cache accesses), per-series arrays for at most ``max_series`` series,
    ``history_size`` analyses and resolved bottlenecks.

    Threads: every public method may be called from any thread.  Recording
    does not take the optimizer's lock (the ring is atomic under the GIL).
    Listeners are called after the lock is released.

    Detection sees each stored sample once, in the first analysis whose
    window contains it.  A sample recorded with a timestamp older than the
    newest sample of its series that an analysis already examined (an
    out-of-order arrival) is stored and counts in window statistics, but is
    not examined for detection; neither is a sample that leaves the window
    before any analysis runs.  Samples stamped in the future wait until the
    clock reaches them.

    Examples
    --------
    >>> from arbiter_core import ManualClock, MetricType
    >>> clock = ManualClock(start=0.0)
    >>> opt = RuntimeOptimizer(clock=clock)
    >>> for _ in range(3):
    ...     opt.record_metric(MetricType.CPU, 95.0, source="worker")
    ...     _ = clock.advance(1.0)
    >>> a = opt.analyze()
    >>> [(b.component, b.severity.value) for b in a.bottlenecks]
    [('worker', 'medium')]
    >>> a.recommendations[0].type.value, a.health_score
    ('resource_allocation', 95.0)
    """

    def __init__(
        self,
        config: OptimizerConfig | None = None,
        *,
        clock: Clock | None = None,
        collectors: Iterable[Collector] = (),
        cost_timer: Callable[[], float] | None = None,
    ) -> None:
        if config is None:
            config = OptimizerConfig()
        if not isinstance(config, OptimizerConfig):
            raise TypeError(f"config must be an OptimizerConfig, got {type(config).__name__}")
        self._config = config
        self.clock: Clock = default_clock() if clock is None else clock
        if not callable(getattr(self.clock, "now", None)):
            raise TypeError("clock must have a now() method")
        self._cost_timer = time.perf_counter if cost_timer is None else cost_timer
        self._monitor = PerformanceMonitor(
            config.max_metrics, config.effective_retention_s,
            max_series=config.max_series, clock=self.clock)
        self._detector = BottleneckDetector(
            config.effective_thresholds, hysteresis_pct=config.hysteresis_pct,
            resolve_after=config.resolve_after, window_s=config.analysis_window_s,
            history_size=config.history_size, clock=self.clock)
        self._lock = threading.RLock()
        self._history: deque[OptimizationAnalysis] = deque(maxlen=config.history_size)
        self._analysis_listeners: list[AnalysisListener] = []
        self._collectors: list[_CollectorEntry] = []
        for fn in collectors:
            self.add_collector(fn)
        # per-series state, grown as series appear (capacity doubles)
        self._cap = 0
        self._wm_ts = np.empty(0)
        self._wm_skip = np.empty(0, dtype=np.int64)
        self._thr = np.empty(0)
        self._above = np.empty(0, dtype=np.uint8)
        self._scan = np.empty((0, 8))
        self._stats = np.empty((0, 12))
        self._computed = np.empty(0, dtype=bool)
        self._trends: list[PerformanceTrend | None] = []
        self._thr_keys = -1          # series whose thresholds are filled in
        self._thr_version = self._detector.thresholds_version
        self._hit_rate_keys: list[int] = []   # CACHE_HIT_RATE series, for cache stats
        self._force_full = True      # recompute every series' window next time
        self._trends_stale = False   # rebuild every trend next time (settings changed)
        self._ring_state: tuple[Any, ...] | None = None
        # cache accesses: key = 4 * cache index + 2 * hit + has_latency
        self._cache_ring = MetricRing(config.max_metrics)
        self._cache_ids: dict[str, int] = {}
        self._cache_names: list[str] = []
        self._cache_wm_ts = np.empty(0)
        self._cache_wm_skip = np.empty(0, dtype=np.int64)
        self._c_clock = is_monotonic_default(self.clock)
        # counters and status
        self._last_analysis: OptimizationAnalysis | None = None
        self._analyses = 0
        self._rec_ids: set[str] = set()
        self._rec_cache: dict[str, tuple[tuple[Any, ...], OptimizationRecommendation]] = {}
        self._recs_generated = 0
        self._retired_total = 0
        self._analysis_failed = False
        self._collector_failed = False
        self._collector_failures = 0
        self._cost_ewma: float | None = None
        self._effective_interval = config.analysis_interval_s
        # background thread (a new _Worker per start(), see start())
        self._worker: _Worker | None = None

    # -- parts and configuration ---------------------------------------------

    @property
    def config(self) -> OptimizerConfig:
        return self._config

    def get_config(self) -> OptimizerConfig:
        """The configuration in effect (immutable)."""
        return self._config

    @property
    def monitor(self) -> PerformanceMonitor:
        """The metric store (query it freely)."""
        return self._monitor

    @property
    def detector(self) -> BottleneckDetector:
        return self._detector

    def update_config(self, **changes: Any) -> OptimizerConfig:
        """Apply configuration changes live, without stopping anything.

        Every change is validated before any is applied; a running optimizer
        keeps running and the next cycle uses the new values (a sleeping
        background thread is woken so a new interval takes effect at once).

        Changing ``max_metrics`` moves the samples to new rings: handles from
        ``monitor.series()`` must be fetched again afterwards, and a sample
        recorded by another thread during the move can be lost.

        Raises
        ------
        TypeError
            An unknown field or a value of the wrong type.
        ValueError
            An invalid value; nothing changes.
        """
        fields = {f.name for f in dataclasses.fields(OptimizerConfig)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise TypeError(f"unknown OptimizerConfig field(s): {', '.join(unknown)}")
        with self._lock:
            old = self._config
            new = dataclasses.replace(old, **changes)
            if new.max_series < len(self._monitor.series_names):
                raise ValueError(f"max_series must be >= the {len(self._monitor.series_names)} "
                                 f"series already stored, got {new.max_series}")
            self._config = new
            det = self._detector
            if new.effective_thresholds != old.effective_thresholds:
                det.update_thresholds(new.effective_thresholds)
                self._thr_keys = -1
                self._force_full = True
            det.window_s = new.analysis_window_s
            det.hysteresis_pct = new.hysteresis_pct
            det.resolve_after = new.resolve_after
            if new.history_size != old.history_size:
                det.set_history_size(new.history_size)
                self._history = deque(self._history, maxlen=new.history_size)
            if new.analysis_window_s != old.analysis_window_s:
                self._force_full = True
            if (new.min_data_points_for_trend, new.trend_stable_pct) != (
                    old.min_data_points_for_trend, old.trend_stable_pct):
                self._trends_stale = True
            self._monitor.retention_s = new.effective_retention_s
            self._monitor.max_series = new.max_series
            if new.max_metrics != old.max_metrics:
                ring = self._monitor.ring
                self._retired_total += ring.total_recorded
                self._monitor.resize(new.max_metrics)
                self._retired_total -= self._monitor.ring.total_recorded
                self._resize_cache_ring(new.max_metrics)
            self._restretch()
        logger.info("optimizer config updated: %s", ", ".join(sorted(changes)))
        self.wake()
        return new

    def _resize_cache_ring(self, capacity: int) -> None:
        ts, keys, vals = self._cache_ring.snapshot()
        ring = MetricRing(capacity)
        keep = slice(max(0, len(vals) - capacity), None)
        ring.record_many(keys[keep], vals[keep], ts[keep])
        self._cache_ring = ring

    # -- ingest ----------------------------------------------------------------

    def record_metric(self, metric_type: MetricType | str, value: float,
                      source: str = "system", timestamp: float | None = None) -> None:
        """Store one sample (see :meth:`PerformanceMonitor.record_metric`)."""
        self._monitor.record_metric(metric_type, value, source, timestamp)

    def record_cache_access(self, cache_id: str, hit: bool, latency_ms: float | None = None,
                            timestamp: float | None = None) -> None:
        """Count one cache request: a hit or a miss, optionally with its latency.

        Each analysis turns the accesses since the previous one into a
        CACHE_HIT_RATE sample for ``cache_id``, so detection and trends see
        real hit rates; :class:`CacheStatistics` report the counts in the
        window.

        Raises
        ------
        TypeError
            ``cache_id`` not a str or ``hit`` not a bool.
        ValueError
            A negative or non-finite latency or timestamp, or a new
            ``cache_id`` when ``max_series`` is reached (its hit-rate series
            counts against it); nothing is stored.
        """
        if not isinstance(hit, (bool, np.bool_)):
            raise TypeError(f"hit must be a bool, got {type(hit).__name__}")
        value = 0.0 if latency_ms is None else check_non_negative(latency_ms, "latency_ms")
        if timestamp is not None:
            _check_timestamp(timestamp)
        cid = self._cache_ids.get(cache_id) if isinstance(cache_id, str) else None
        if cid is None:   # validated above, so a bad call interns nothing
            cid = self._intern_cache(cache_id)
        key = 4 * cid + (2 if hit else 0) + (latency_ms is not None)
        if timestamp is None and not self._c_clock:
            timestamp = self.clock.now()
        self._cache_ring.record(key, value, timestamp)

    def _intern_cache(self, cache_id: str) -> int:
        if not isinstance(cache_id, str):
            raise TypeError(f"cache_id must be a str, got {type(cache_id).__name__}")
        with self._lock:
            cid = self._cache_ids.get(cache_id)
            if cid is None:
                if len(self._cache_names) >= self._config.max_series:
                    raise ValueError(f"too many caches: max_series={self._config.max_series} "
                                     f"reached; cannot add {cache_id!r}")
                # Reserve the cache's hit-rate series now: analyses record into
                # it, and a full series table must refuse this call, not make
                # every later analysis fail (ValueError naming max_series).
                self._monitor.key_for(MetricType.CACHE_HIT_RATE, cache_id)
                cid = len(self._cache_names)
                self._cache_names.append(cache_id)
                self._cache_ids[cache_id] = cid
            return cid

    def add_collector(self, fn: Collector, name: str | None = None) -> Callable[[], None]:
        """Run ``fn()`` every cycle and record the ``(metric_type, value, source)`` it returns.

        A collector that raises (or returns a bad sample) is isolated: the
        failure is counted and logged, the other collectors and the analysis
        go on, and the health status reports ``degraded``.

        Returns
        -------
        callable
            Removes the collector.
        """
        if not callable(fn):
            raise TypeError(f"collector must be callable, got {type(fn).__name__}")
        entry = _CollectorEntry(fn, name or str(getattr(fn, "__name__", type(fn).__name__)))
        return subscribe(self._collectors, entry, self._lock, "collector")

    def collect(self) -> int:
        """Run every collector once now; returns the number of samples recorded."""
        with self._lock:
            entries = list(self._collectors)
        recorded = 0
        failed = False
        for entry in entries:
            try:
                for metric_type, value, source in entry():
                    self._monitor.record_metric(metric_type, value, source)
                    recorded += 1
            except Exception as exc:
                failed = True
                entry.failures += 1
                with self._lock:
                    self._collector_failures += 1
                logger.warning("collector %s failed (%d so far): %r", entry.name,
                               entry.failures, exc)
        self._collector_failed = failed
        return recorded

    # -- listeners -------------------------------------------------------------

    def on_bottleneck(self, callback: BottleneckListener) -> Callable[[], None]:
        """Subscribe to detected/escalated/resolved events; returns an unsubscribe function."""
        return self._detector.on_bottleneck(callback)

    def on_analysis(self, callback: AnalysisListener) -> Callable[[], None]:
        """Call ``callback(analysis)`` after every analysis; returns an unsubscribe function."""
        return subscribe(self._analysis_listeners, callback, self._lock, "callback")

    # -- analysis --------------------------------------------------------------

    def analyze(self) -> OptimizationAnalysis:
        """Run one analysis over the window ending now.

        Returns
        -------
        OptimizationAnalysis
            A frozen snapshot; also kept in the bounded history.
        """
        t0 = self._cost_timer()
        with self._lock:
            cfg = self._config
            now = self.clock.now()
            since = now - cfg.analysis_window_s
            self._flush_cache_accesses(now)
            n = self._prepare_series()
            ring = self._monitor.ring
            full = self._force_full or self._window_invalid(ring)
            state = (ring, ring.total_recorded, len(ring), ring.late_inserts, ring.dropped_late)
            if n:
                ring.group_scan(since, now, self._wm_ts[:n], self._wm_skip[:n], self._thr[:n],
                                self._above[:n], self._scan[:n])
            scan, stats = self._scan[:n], self._stats[:n]
            new_counts = scan[:, _S_NEW]
            dirty = (new_counts > 0) | ~self._computed[:n] | (
                (stats[:, _W_N] > 0) & (stats[:, _W_FIRST] < since))
            if full:
                dirty[:] = True
            changed = np.flatnonzero(dirty)
            if changed.size:
                ring.group_window(since, now, dirty.astype(np.uint8), self._thr[:n],
                                  self._above[:n], _P95, stats)
                self._computed[changed] = True
            self._ring_state = (*state, since)
            self._force_full = False
            new_total = int(new_counts.sum()) if n else 0
            events = self._detector.process(self._observations(n), now, notify=False)
            names = self._monitor.series_names
            if not cfg.enable_trend_analysis:
                trends: tuple[PerformanceTrend, ...] = ()
                self._trends_stale = True        # statistics move on without them
            else:
                # after a change of the trend settings (or a pause) every series'
                # trend is rebuilt from its cached statistics (no ring pass)
                redo = np.flatnonzero(self._computed[:n]) if self._trends_stale else changed
                self._trends_stale = False
                trends = self._update_trends(redo, names, cfg)
            active = self._detector.get_active_bottlenecks()
            recs = tuple(self._recommend(b, now) for b in active)
            self._count_recommendations(recs)
            caches = self._cache_statistics(since, now, names) \
                if cfg.enable_cache_optimization else ()
            resolved = tuple(e.bottleneck for e in events if e.bottleneck.resolved_at is not None)
            analysis = OptimizationAnalysis(
                timestamp=now, window_s=cfg.analysis_window_s, bottlenecks=active,
                resolved=resolved, recommendations=recs, trends=trends, cache_stats=caches,
                health_score=health_score(active), duration_s=self._cost_timer() - t0,
                new_samples=new_total, series_recomputed=int(changed.size))
            self._history.append(analysis)
            self._last_analysis = analysis
            self._analyses += 1
            self._analysis_failed = False
            listeners = list(self._analysis_listeners)
        logger.debug("analysis: %d new samples, %d series recomputed, %d bottlenecks, "
                     "health %.0f, %.3f ms", new_total, changed.size, len(active),
                     analysis.health_score, analysis.duration_s * 1e3)
        self._detector.notify(events)
        for cb in listeners:
            try:
                cb(analysis)
            except Exception:
                logger.exception("analysis listener %r failed", cb)
        return analysis

    def _prepare_series(self) -> int:
        """Grow the per-series arrays to the interned series; refresh thresholds."""
        names = self._monitor.series_names
        n = len(names)
        version = self._detector.thresholds_version
        if version != self._thr_version:
            # thresholds changed (update_config or opt.detector directly):
            # refill them and recompute every window with the new ones
            self._thr_version = version
            self._thr_keys = -1
            self._force_full = True
        if n > self._cap:
            cap = max(16, 2 * self._cap, n)
            self._wm_ts = _grow(self._wm_ts, cap, -np.inf)
            self._wm_skip = _grow(self._wm_skip, cap, 0)
            self._thr = _grow(self._thr, cap, np.nan)
            self._above = _grow(self._above, cap, 1)
            self._scan = _grow(self._scan, cap, np.nan)
            self._stats = _grow(self._stats, cap, np.nan)
            self._computed = _grow(self._computed, cap, False)
            self._cap = cap
        if self._thr_keys != n:
            thresholds = self._detector.thresholds
            for k, (mt, _src) in enumerate(names):
                self._thr[k] = thresholds[mt]
                self._above[k] = higher_is_bad(mt)
            self._hit_rate_keys = [k for k, (mt, _src) in enumerate(names)
                                   if mt is MetricType.CACHE_HIT_RATE]
            self._trends.extend([None] * (n - len(self._trends)))
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

    def _observations(self, n: int) -> list[Observation]:
        scan = self._scan
        names = self._monitor.series_names
        obs = []
        for k in np.flatnonzero(scan[:n, _S_NEW] > 0).tolist():
            row = scan[k].tolist()
            mt, src = names[k]
            obs.append(Observation(src, mt, int(row[_S_NEW]), int(row[_S_EXC]),
                                   row[_S_FIRST_EXC], row[_S_LAST_EXC], row[_S_LAST_EXC_V],
                                   row[_S_WORST], row[_S_LAST_TS], row[_S_LAST_V]))
        return obs

    def _update_trends(self, changed: npt.NDArray[np.intp],
                       names: tuple[tuple[MetricType, str], ...],
                       cfg: OptimizerConfig) -> tuple[PerformanceTrend, ...]:
        trends = self._trends
        stats = self._stats
        min_points = cfg.min_data_points_for_trend
        stable = cfg.trend_stable_pct / 100.0
        for k in changed.tolist():
            row = stats[k].tolist()
            if row[_W_N] < min_points:
                trends[k] = None
                continue
            mt, src = names[k]
            trends[k] = make_trend(mt, src, row, float(self._thr[k]), stable)
        return tuple(t for t in trends[:len(names)] if t is not None)

    def _recommend(self, b: Bottleneck, now: float) -> OptimizationRecommendation:
        key = self._monitor.lookup_key(b.metric_type, b.component)
        trend = None
        n = beyond = 0
        mean = p95 = math.nan
        if key is not None and key < len(self._trends):
            row = self._stats[key]
            if self._computed[key] and row[_W_N] > 0:
                n, beyond = int(row[_W_N]), int(row[_W_BEYOND])
                mean, p95 = float(row[_W_MEAN]), float(row[_W_Q])
            trend = self._trends[key] if self._config.enable_trend_analysis else None
        # Unchanged inputs give the same record (generated_at = when it was
        # made), which keeps an analysis with nothing new cheap.
        inputs = (b, trend, n, beyond, mean, p95)
        cached = self._rec_cache.get(b.id)
        if cached is not None and _same(cached[0], inputs):
            return cached[1]
        rec = self._make_recommendation(b, trend, n, beyond, mean, p95, now)
        self._rec_cache[b.id] = (inputs, rec)
        return rec

    def _make_recommendation(self, b: Bottleneck, trend: PerformanceTrend | None, n: int,
                             beyond: int, mean: float, p95: float,
                             now: float) -> OptimizationRecommendation:
        kind, title, template, impact, pct, difficulty = _RECOMMENDATIONS[b.metric_type]
        evidence = RecommendationEvidence(
            value=b.current_value, worst_value=b.worst_value, threshold=b.threshold,
            deviation=b.deviation, duration_s=b.duration_s,
            exceeding_analyses=b.exceeding_analyses, samples_beyond=beyond, window_samples=n,
            window_mean=mean, window_p95=p95,
            trend_direction=None if trend is None else trend.direction,
            trend_slope_per_s=None if trend is None else trend.slope_per_s,
            time_to_threshold_s=None if trend is None else trend.time_to_threshold_s)
        text = template.format(v=fmt_number(b.current_value), t=fmt_number(b.threshold))
        detail = (f"; {b.severity.value} for {fmt_number(round(b.duration_s, 1))} s over "
                  f"{b.exceeding_analyses} analyses")
        if n:
            detail += f", {beyond} of {n} samples in the window beyond the threshold"
        if trend is not None:
            detail += f", trend {trend.direction.value}"
        return OptimizationRecommendation(
            id=f"rec-{b.id}", type=kind, priority=_PRIORITY[b.severity], component=b.component,
            metric_type=b.metric_type, title=title, description=text + detail,
            expected_impact=impact, estimated_improvement_pct=pct,
            implementation_difficulty=difficulty, related_bottleneck_id=b.id,
            evidence=evidence, generated_at=now)

    def _count_recommendations(self, recs: tuple[OptimizationRecommendation, ...]) -> None:
        ids = {r.id for r in recs}
        self._recs_generated += len(ids - self._rec_ids)
        self._rec_ids = ids
        # bounded by the active bottlenecks: drop entries of resolved ones
        active = {r.related_bottleneck_id for r in recs}
        for bid in [bid for bid in self._rec_cache if bid not in active]:
            del self._rec_cache[bid]

    # -- caches ----------------------------------------------------------------

    def _flush_cache_accesses(self, now: float) -> None:
        """Turn the accesses since the previous analysis into hit-rate samples."""
        nc = len(self._cache_names)
        if nc == 0:
            return
        nk = 4 * nc
        if self._cache_wm_ts.shape[0] < nk:
            self._cache_wm_ts = _grow(self._cache_wm_ts, nk, -np.inf)
            self._cache_wm_skip = _grow(self._cache_wm_skip, nk, 0)
        out = np.empty((nk, 8))
        self._cache_ring.group_scan(
            now - self._config.analysis_window_s, now, self._cache_wm_ts[:nk],
            self._cache_wm_skip[:nk], np.full(nk, np.nan), np.ones(nk, np.uint8), out)
        counts = out[:, _S_NEW].reshape(nc, 4)
        requests = counts.sum(axis=1)
        hits = counts[:, 2] + counts[:, 3]
        for c in np.flatnonzero(requests > 0).tolist():
            self._monitor.record_metric(MetricType.CACHE_HIT_RATE,
                                        100.0 * hits[c] / requests[c],
                                        self._cache_names[c], now)

    def _cache_statistics(self, since: float, now: float,
                          names: tuple[tuple[MetricType, str], ...]
                          ) -> tuple[CacheStatistics, ...]:
        result: list[CacheStatistics] = []
        nc = len(self._cache_names)
        sample_rows = {names[k][1]: k for k in self._hit_rate_keys
                       if self._computed[k] and self._stats[k, _W_N] > 0}
        if nc:
            nk = 4 * nc
            out = np.empty((nk, 12))
            self._cache_ring.group_window(since, now, np.ones(nk, np.uint8),
                                          np.full(nk, np.nan), np.ones(nk, np.uint8),
                                          math.nan, out)
            for c, cache_id in enumerate(self._cache_names):
                rows = out[4 * c:4 * c + 4]
                cnt = rows[:, _W_N]
                total = int(cnt.sum())
                if total == 0:
                    continue
                misses, hits = int(cnt[0] + cnt[1]), int(cnt[2] + cnt[3])
                k = sample_rows.pop(cache_id, None)
                result.append(CacheStatistics(
                    cache_id=cache_id, total_requests=total, hits=hits, misses=misses,
                    hit_rate=100.0 * hits / total,
                    avg_hit_time_ms=float(rows[3, _W_MEAN]) if cnt[3] else None,
                    avg_miss_time_ms=float(rows[1, _W_MEAN]) if cnt[1] else None,
                    window_start_time=float(np.nanmin(rows[:, _W_FIRST])),
                    window_end_time=float(np.nanmax(rows[:, _W_LAST])),
                    sample_count=0 if k is None else int(self._stats[k, _W_N])))
        for cache_id, k in sample_rows.items():
            row = self._stats[k]
            result.append(CacheStatistics(
                cache_id=cache_id, total_requests=0, hits=0, misses=0,
                hit_rate=float(row[_W_MEAN]), avg_hit_time_ms=None, avg_miss_time_ms=None,
                window_start_time=float(row[_W_FIRST]), window_end_time=float(row[_W_LAST]),
                sample_count=int(row[_W_N]), from_samples=True))
        return tuple(result)

    # -- cycles ----------------------------------------------------------------

    def tick(self) -> OptimizationAnalysis | None:
        """One cycle: collect, analyse when due, apply retention, account the cost.

        Returns
        -------
        OptimizationAnalysis or None
            The analysis when one ran.  An analysis that raises is logged and
            marks the optimizer degraded; the cycle itself does not raise.
        """
        cfg = self._config
        if not cfg.enabled:
            return None
        t0 = self._cost_timer()
        self.collect()
        now = self.clock.now()
        result = None
        last = self._last_analysis
        if last is None or now - last.timestamp >= self._effective_interval:
            try:
                result = self.analyze()
            except Exception:
                self._analysis_failed = True
                logger.exception("analysis failed")
        retention = cfg.effective_retention_s
        self._monitor.clear_metrics(now - retention)
        self._cache_ring.clear_before(now - retention)
        if result is not None:
            self._account_cost(self._cost_timer() - t0)
        return result

    def _account_cost(self, cost: float) -> None:
        with self._lock:
            # smoothing keeps one slow cycle (a GC pause) from stretching the interval
            prev = self._cost_ewma
            self._cost_ewma = cost if prev is None else 0.7 * prev + 0.3 * cost
            self._restretch()

    def _restretch(self) -> None:
        cfg = self._config
        if self._cost_ewma is None:
            self._effective_interval = cfg.analysis_interval_s
            return
        needed = self._cost_ewma * 100.0 / cfg.max_overhead_pct
        stretched = max(cfg.analysis_interval_s, needed)
        if stretched > cfg.analysis_interval_s and \
                self._effective_interval <= cfg.analysis_interval_s:
            logger.warning("optimizer overhead above %.1f%%: interval stretched from %.3g s "
                           "to %.3g s", cfg.max_overhead_pct, cfg.analysis_interval_s, stretched)
        self._effective_interval = stretched

    @property
    def overhead_pct(self) -> float:
        """Smoothed cost of a cycle as a percentage of the interval in use."""
        if self._cost_ewma is None:
            return 0.0
        return 100.0 * self._cost_ewma / self._effective_interval

    @property
    def effective_interval_s(self) -> float:
        return self._effective_interval

    @property
    def is_running(self) -> bool:
        """True while the background thread runs and no stop was requested."""
        w = self._worker
        return (w is not None and w.thread.is_alive() and not w.stop.is_set()) \
            or _aio.running(self)

    def start(self) -> None:
        """Run :meth:`tick` on a background thread every interval (idempotent).

        After a :meth:`stop` that has not finished (a timed-out join, or a stop
        from the background thread itself), a new thread is started; the old
        one ends after its current cycle.
        """
        with self._lock:
            if self.is_running:
                return
            worker = _Worker(self)
            self._worker = worker
            worker.thread.start()
        logger.info("optimizer started (interval %.3g s)", self._effective_interval)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the background thread and wait for it (idempotent).

        Parameters
        ----------
        timeout : float, optional
            Longest wait for a running cycle to finish; the thread still ends
            after it.  Called from the background thread itself, it does not wait.
        """
        with self._lock:
            worker = self._worker
            if worker is not None:
                worker.stop.set()
                worker.wake.set()
                worker.finalizer.detach()
        if worker is None:
            return
        if worker.thread is not threading.current_thread():
            worker.thread.join(timeout)
        with self._lock:
            if self._worker is worker and not worker.thread.is_alive():
                self._worker = None
        logger.info("optimizer stopped")

    def wake(self) -> None:
        """Make a sleeping background thread run its next cycle now."""
        w = self._worker
        if w is not None:
            w.wake.set()

    def __enter__(self) -> RuntimeOptimizer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> RuntimeOptimizer:
        """Run :meth:`tick` every interval as a task on the running event loop
        (no thread)."""
        _aio.enter(self, self.tick, lambda: self.effective_interval_s, "arbiter-optimizer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop maintenance -- the asyncio task and the thread, if any (idempotent)."""
        await _aio.close(self)
        if self._worker is not None:
            self.stop()

    # -- queries ---------------------------------------------------------------

    def get_health_status(self) -> OptimizerHealthStatus:
        """Running state, counters, degradation and overhead."""
        with self._lock:
            last = self._last_analysis
            return OptimizerHealthStatus(
                is_running=self.is_running, enabled=self._config.enabled,
                last_analysis_time=None if last is None else last.timestamp,
                metrics_collected=self._retired_total + self._monitor.ring.total_recorded,
                active_bottlenecks=self._detector.active_count,
                recommendations_generated=self._recs_generated,
                analyses_run=self._analyses,
                degraded=self._analysis_failed or self._collector_failed,
                collector_failures=self._collector_failures,
                overhead_pct=self.overhead_pct,
                effective_interval_s=self._effective_interval,
                interval_stretched=self._effective_interval > self._config.analysis_interval_s)

    def get_analysis_history(self) -> tuple[OptimizationAnalysis, ...]:
        """The latest ``history_size`` analyses, oldest first."""
        with self._lock:
            return tuple(self._history)

    @property
    def last_analysis(self) -> OptimizationAnalysis | None:
        return self._last_analysis

    def get_active_bottlenecks(self) -> tuple[Bottleneck, ...]:
        return self._detector.get_active_bottlenecks()

    def get_bottleneck_history(self, component: str | None = None) -> tuple[Bottleneck, ...]:
        return self._detector.get_bottleneck_history(component)

    def get_cache_statistics(self) -> tuple[CacheStatistics, ...]:
        """Cache statistics of the latest analysis (empty before the first)."""
        last = self._last_analysis
        return () if last is None else last.cache_stats

    def get_performance_trends(self) -> tuple[PerformanceTrend, ...]:
        """Trends of the latest analysis (empty before the first)."""
        last = self._last_analysis
        return () if last is None else last.trends

    def __repr__(self) -> str:
        return (f"RuntimeOptimizer(running={self.is_running}, "
                f"series={len(self._monitor.series_names)}, "
                f"active_bottlenecks={self._detector.active_count})")


# -- pure helpers ----------------------------------------------------------------


def health_score(bottlenecks: Iterable[Bottleneck]) -> float:
    """100 minus 20/10/5/2 per CRITICAL/HIGH/MEDIUM/LOW bottleneck, floored at 0.

    Callers pass distinct bottlenecks (one per series), so a flood of samples
    about one problem costs the score once.
    """
    return max(0.0, 100.0 - sum(_SEVERITY_WEIGHT[b.severity] for b in bottlenecks))


def make_trend(mt: MetricType, component: str, row: list[float], threshold: float,
               stable_fraction: float) -> PerformanceTrend:
    """A :class:`PerformanceTrend` from one ``group_window`` row."""
    slope = row[_W_SLOPE]
    if slope != slope:  # all samples at one timestamp: no measurable trend
        slope = 0.0
    first, last = row[_W_FIRST], row[_W_LAST]
    mean = row[_W_MEAN]
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
    fitted = mean + slope * (last - row[_W_MEAN_TS])
    ttt: float | None = None
    if threshold == threshold:
        if (fitted > threshold) if up else (fitted < threshold):
            ttt = 0.0
        elif (slope > 0.0) if up else (slope < 0.0):
            ttt = (threshold - fitted) / slope
    return PerformanceTrend(
        metric_type=mt, component=component, direction=direction, slope_per_s=slope,
        relative_change=rel, average_value=mean, min_value=row[_W_MIN],
        max_value=row[_W_MAX], standard_deviation=row[_W_STD], p95_value=row[_W_Q],
        start_time=first, end_time=last, data_point_count=int(row[_W_N]),
        threshold=threshold if threshold == threshold else None, time_to_threshold_s=ttt)


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Records by identity, numbers by value (NaN equal to NaN)."""
    return (a[0] is b[0] and a[1] is b[1]
            and all(x == y or (x != x and y != y) for x, y in zip(a[2:], b[2:], strict=True)))


def fmt_number(x: float) -> str:
    """Format for messages: ``95`` for 95.0, ``92.5``, ``4463.1``, ``14.3``.

    Integers print bare (as the original's JavaScript did); other values keep
    one decimal from 100 up and three significant digits below, so messages
    never carry float noise such as ``4463.1021236501165``.
    """
    if not math.isfinite(x):
        return repr(float(x))
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    text = f"{x:.1f}" if abs(x) >= 100 else f"{x:.3g}"
    return text[:-2] if text.endswith(".0") else text


def _check_timestamp(x: object) -> None:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"timestamp must be a number or None, got {type(x).__name__}")
    if not math.isfinite(float(x)):
        raise ValueError(f"timestamp must be finite, got {x!r}")


def _grow(arr: npt.NDArray[Any], cap: int, fill: Any) -> npt.NDArray[Any]:
    out = np.full((cap, *arr.shape[1:]), fill, dtype=arr.dtype)
    out[:arr.shape[0]] = arr
    return out
