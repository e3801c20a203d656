"""RuntimeOptimizer: analysis cycles over a PerformanceMonitor (the orchestrator).

One analysis (:meth:`RuntimeOptimizer.analyze`) is a sequence of parts, each
owned by its own module:

- :mod:`.caches` turns the cache accesses since the previous analysis into
  hit-rate samples;
- :mod:`.windows` examines the new samples of every series and recomputes the
  window statistics that changed (two grouped kernel passes over the ring);
- :mod:`.detector` turns what was new into bottlenecks with a lifecycle;
- :mod:`.trends` and :mod:`.recommendations` build the frozen trend and
  recommendation records (the catalogue of advice is data), and the health
  score;
- :mod:`.worker` runs cycles on a background thread within an overhead
  budget, and :mod:`.collection` polls the collectors.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .. import _aio
from .._ringbuf import WIN_BEYOND_COUNT, WIN_COUNT, WIN_MEAN, WIN_QUANTILE
from ..clock import Clock, default_clock, is_monotonic_default
from ..types import MetricType
from .caches import CacheAccessRecorder
from .collection import Collector, CollectorSet
from .config import OptimizerConfig
from .detector import BottleneckDetector, BottleneckListener, subscribe
from .monitor import PerformanceMonitor
from .recommendations import Recommender
from .results import (
    Bottleneck,
    CacheStatistics,
    OptimizationAnalysis,
    OptimizationRecommendation,
    OptimizerHealthStatus,
    PerformanceTrend,
)
from .trends import health_score
from .windows import SeriesWindows
from .worker import OverheadBudget, Worker

__all__ = ["Collector", "OptimizerConfig", "RuntimeOptimizer"]

logger = logging.getLogger("arbiter_core.optimization")

AnalysisListener = Callable[[OptimizationAnalysis], object]


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
        self._collectors = CollectorSet(self._lock)
        for fn in collectors:
            self.add_collector(fn)
        self._windows = SeriesWindows()
        # A new cache reserves its hit-rate series at once: analyses record
        # into it, and a full series table must refuse the access, not make
        # every later analysis fail (ValueError naming max_series).
        self._caches = CacheAccessRecorder(
            config.max_metrics, lambda: self._config.max_series,
            lambda cache_id: self._monitor.key_for(MetricType.CACHE_HIT_RATE, cache_id),
            self._lock)
        self._c_clock = is_monotonic_default(self.clock)   # the ring reads the same clock
        self._recommender = Recommender()
        self._budget = OverheadBudget(config.analysis_interval_s, config.max_overhead_pct)
        self._last_analysis: OptimizationAnalysis | None = None
        self._analyses = 0
        self._retired_total = 0      # samples recorded into rings replaced by a resize
        self._analysis_failed = False
        self._worker: Worker | None = None   # a new Worker per start()

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
                self._windows.invalidate(thresholds=True)
            det.window_s = new.analysis_window_s
            det.hysteresis_pct = new.hysteresis_pct
            det.resolve_after = new.resolve_after
            if new.history_size != old.history_size:
                det.set_history_size(new.history_size)
                self._history = deque(self._history, maxlen=new.history_size)
            if new.analysis_window_s != old.analysis_window_s:
                self._windows.invalidate()
            if (new.min_data_points_for_trend, new.trend_stable_pct) != (
                    old.min_data_points_for_trend, old.trend_stable_pct):
                self._windows.trends_stale = True
            self._monitor.retention_s = new.effective_retention_s
            self._monitor.max_series = new.max_series
            if new.max_metrics != old.max_metrics:
                ring = self._monitor.ring
                self._retired_total += ring.total_recorded
                self._monitor.resize(new.max_metrics)
                self._retired_total -= self._monitor.ring.total_recorded
                self._caches.resize(new.max_metrics)
            self._budget.configure(new.analysis_interval_s, new.max_overhead_pct)
        logger.info("optimizer config updated: %s", ", ".join(sorted(changes)))
        self.wake()
        return new

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
        if timestamp is None and not self._c_clock:
            timestamp = self.clock.now()
        self._caches.record(cache_id, hit, latency_ms, timestamp)

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
        return self._collectors.add(fn, name)

    def collect(self) -> int:
        """Run every collector once now; returns the number of samples recorded."""
        return self._collectors.run(self._monitor.record_metric)

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
            for cache_id, rate in self._caches.flush(since, now):
                self._monitor.record_metric(MetricType.CACHE_HIT_RATE, rate, cache_id, now)
            names = self._monitor.series_names
            update = self._windows.refresh(self._monitor.ring, names, self._detector, since, now)
            events = self._detector.process(self._windows.observations(names, update.series),
                                            now, notify=False)
            if cfg.enable_trend_analysis:
                # after a change of the trend settings (or a pause) every
                # series' trend is rebuilt from its cached statistics
                trends = self._windows.update_trends(update, names,
                                                     cfg.min_data_points_for_trend,
                                                     cfg.trend_stable_pct / 100.0)
            else:
                trends = ()
                self._windows.trends_stale = True   # statistics move on without them
            active = self._detector.get_active_bottlenecks()
            recs = tuple(self._recommend(b, now) for b in active)
            self._recommender.settle(recs)
            caches = self._cache_statistics(since, now, names) \
                if cfg.enable_cache_optimization else ()
            resolved = tuple(e.bottleneck for e in events if e.bottleneck.resolved_at is not None)
            analysis = OptimizationAnalysis(
                timestamp=now, window_s=cfg.analysis_window_s, bottlenecks=active,
                resolved=resolved, recommendations=recs, trends=trends, cache_stats=caches,
                health_score=health_score(active), duration_s=self._cost_timer() - t0,
                new_samples=update.new_samples, series_recomputed=int(update.changed.size))
            self._history.append(analysis)
            self._last_analysis = analysis
            self._analyses += 1
            self._analysis_failed = False
            listeners = list(self._analysis_listeners)
        logger.debug("analysis: %d new samples, %d series recomputed, %d bottlenecks, "
                     "health %.0f, %.3f ms", update.new_samples, update.changed.size,
                     len(active), analysis.health_score, analysis.duration_s * 1e3)
        self._detector.notify(events)
        for cb in listeners:
            try:
                cb(analysis)
            except Exception:
                logger.exception("analysis listener %r failed", cb)
        return analysis

    def _recommend(self, b: Bottleneck, now: float) -> OptimizationRecommendation:
        """The recommendation for ``b``, with its series' window evidence and trend."""
        key = self._monitor.lookup_key(b.metric_type, b.component)
        trend: PerformanceTrend | None = None
        n = beyond = 0
        mean = p95 = math.nan
        if key is not None:
            row = self._windows.row(key)
            if row is not None:
                n, beyond = int(row[WIN_COUNT]), int(row[WIN_BEYOND_COUNT])
                mean, p95 = float(row[WIN_MEAN]), float(row[WIN_QUANTILE])
            if self._config.enable_trend_analysis and key < len(self._windows.trends):
                trend = self._windows.trends[key]
        return self._recommender.recommend(b, trend, n, beyond, mean, p95, now)

    def _cache_statistics(self, since: float, now: float,
                          names: tuple[tuple[MetricType, str], ...]
                          ) -> tuple[CacheStatistics, ...]:
        rows = {}
        for k in self._windows.hit_rate_keys:
            row = self._windows.row(k)
            if row is not None:
                rows[names[k][1]] = row
        return self._caches.statistics(since, now, rows)

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
        if last is None or now - last.timestamp >= self._budget.interval_s:
            try:
                result = self.analyze()
            except Exception:
                self._analysis_failed = True
                logger.exception("analysis failed")
        retention = cfg.effective_retention_s
        self._monitor.clear_metrics(now - retention)
        self._caches.ring.clear_before(now - retention)
        if result is not None:
            with self._lock:
                self._budget.account(self._cost_timer() - t0)
        return result

    @property
    def overhead_pct(self) -> float:
        """Smoothed cost of a cycle as a percentage of the interval in use."""
        return self._budget.overhead_pct

    @property
    def effective_interval_s(self) -> float:
        return self._budget.interval_s

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
            worker = Worker(self)
            self._worker = worker
            worker.thread.start()
        logger.info("optimizer started (interval %.3g s)", self._budget.interval_s)

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
                recommendations_generated=self._recommender.generated,
                analyses_run=self._analyses,
                degraded=self._analysis_failed or self._collectors.last_failed,
                collector_failures=self._collectors.failures,
                overhead_pct=self._budget.overhead_pct,
                effective_interval_s=self._budget.interval_s,
                interval_stretched=self._budget.stretched)

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
