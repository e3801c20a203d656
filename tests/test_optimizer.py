"""RuntimeOptimizer: config, analysis, trends, caches, recommendations, cycles, threads."""

import dataclasses
import logging
import math
import threading

import numpy as np
import pytest

from arbiter_core import (
    BottleneckEventKind,
    BottleneckSeverity,
    ManualClock,
    MetricType,
    OptimizationAnalysis,
    OptimizerConfig,
    RecommendationType,
    RuntimeOptimizer,
    TrendDirection,
)
from arbiter_core.optimization.recommendations import fmt_number
from arbiter_core.optimization.trends import health_score

CPU = MetricType.CPU
SEV = BottleneckSeverity
WAIT = 10.0   # generous bound for thread hand-offs; never reached when things work


def make(clock=None, **cfg):
    clock = clock or ManualClock(start=1000.0)
    return RuntimeOptimizer(OptimizerConfig(**cfg), clock=clock), clock


def feed(opt, clock, mt, values, source="svc", step=1.0):
    for v in values:
        opt.record_metric(mt, v, source)
        clock.advance(step)


# -- config ------------------------------------------------------------------------


def test_config_defaults_match_the_issue():
    c = OptimizerConfig()
    assert (c.enabled, c.analysis_interval_s, c.analysis_window_s, c.max_metrics,
            c.max_overhead_pct, c.enable_cache_optimization, c.enable_trend_analysis,
            c.min_data_points_for_trend, c.history_size) == (
        True, 10.0, 300.0, 10_000, 5.0, True, True, 10, 100)
    assert c.effective_retention_s == 600.0


@pytest.mark.parametrize("kw, exc, match", [
    ({"analysis_interval_s": -1.0}, ValueError, "analysis_interval_s"),
    ({"analysis_window_s": 0.0}, ValueError, "analysis_window_s"),
    ({"analysis_window_s": math.nan}, ValueError, "analysis_window_s"),
    ({"max_overhead_pct": 150.0}, ValueError, "max_overhead_pct"),
    ({"max_metrics": 0}, ValueError, "max_metrics"),
    ({"max_metrics": 1.5}, TypeError, "max_metrics"),
    ({"min_data_points_for_trend": 1}, ValueError, "min_data_points_for_trend"),
    ({"history_size": 0}, ValueError, "history_size"),
    ({"thresholds": {CPU: -5.0}}, ValueError, "thresholds"),
    ({"thresholds": {CPU: math.nan}}, ValueError, "thresholds"),
    ({"thresholds": [80.0]}, TypeError, "thresholds"),
    ({"enabled": 1}, TypeError, "enabled"),
    ({"retention_s": 10.0}, ValueError, "retention_s"),
])
def test_bad_config_is_rejected_naming_the_field(kw, exc, match):
    with pytest.raises(exc, match=match):
        OptimizerConfig(**kw)


def test_config_is_immutable_and_copies_thresholds():
    th = {CPU: 50.0}
    c = OptimizerConfig(thresholds=th)
    th[CPU] = 99.0
    assert c.thresholds[CPU] == 50.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.enabled = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        RuntimeOptimizer(config={"enabled": True})  # type: ignore[arg-type]


# -- analysis ------------------------------------------------------------------------


def test_empty_analysis():
    opt, _ = make()
    a = opt.analyze()
    assert isinstance(a, OptimizationAnalysis)
    assert (a.bottlenecks, a.recommendations, a.trends, a.cache_stats) == ((), (), (), ())
    assert a.health_score == 100.0 and a.new_samples == 0 and a.window_s == 300.0


def test_one_bottleneck_per_series_and_no_double_counting():
    opt, clock = make()
    feed(opt, clock, CPU, [95.0] * 5, source="w")
    a1 = opt.analyze()
    (b,) = a1.bottlenecks
    assert b.occurrence_count == 5 and b.exceeding_analyses == 1 and b.severity is SEV.MEDIUM
    assert a1.new_samples == 5
    # the same stored samples are seen by the next analyses but never counted again
    for _ in range(12):
        clock.advance(1.0)
        a = opt.analyze()
    (b,) = a.bottlenecks
    assert b.occurrence_count == 5 and b.exceeding_analyses == 1 and b.severity is SEV.MEDIUM
    assert a.new_samples == 0
    # new samples at the very same timestamp as old ones are still new
    opt.record_metric(CPU, 96.0, "w", timestamp=clock.now())
    a = opt.analyze()
    opt.record_metric(CPU, 97.0, "w", timestamp=clock.now())
    a = opt.analyze()
    (b,) = a.bottlenecks
    assert b.occurrence_count == 7 and b.exceeding_analyses == 3
    assert b.severity is SEV.MEDIUM and b.current_value == 97.0


def test_persistence_escalates_over_distinct_analyses():
    opt, clock = make()
    sev = []
    for _ in range(10):
        opt.record_metric(CPU, 82.0, "w")
        clock.advance(10.0)
        sev.append(opt.analyze().bottlenecks[0].severity)
    assert sev[0] is SEV.LOW and sev[2] is SEV.MEDIUM and sev[4] is SEV.HIGH
    assert sev[9] is SEV.CRITICAL


def test_lifecycle_with_manual_clock():
    opt, clock = make(analysis_window_s=60.0, resolve_after=2)
    events = []
    opt.on_bottleneck(events.append)
    feed(opt, clock, CPU, [90.0, 95.0], source="w")
    opt.analyze()
    feed(opt, clock, CPU, [70.0], source="w")
    opt.analyze()
    assert len(opt.get_active_bottlenecks()) == 1
    feed(opt, clock, CPU, [60.0], source="w")
    a = opt.analyze()
    assert a.bottlenecks == () and a.recommendations == () and a.health_score == 100.0
    (r,) = a.resolved
    assert r.resolution == "recovered"
    assert [e.kind for e in events] == [BottleneckEventKind.DETECTED, BottleneckEventKind.RESOLVED]
    # a second episode that then goes silent resolves as unseen after the window
    feed(opt, clock, MetricType.MEMORY, [99.0], source="w")
    opt.analyze()
    clock.advance(61.0)
    a = opt.analyze()
    assert a.bottlenecks == () and a.resolved[0].resolution == "unseen"
    assert [b.resolution for b in opt.get_bottleneck_history("w")] == ["recovered", "unseen"]


def test_results_are_snapshots():
    opt, clock = make()
    feed(opt, clock, CPU, [85.0], source="w")
    a1 = opt.analyze()
    feed(opt, clock, CPU, [150.0], source="w")
    a2 = opt.analyze()
    assert a1.bottlenecks[0].severity is SEV.LOW and a1.bottlenecks[0].current_value == 85.0
    assert a2.bottlenecks[0].severity is SEV.CRITICAL
    assert a1.recommendations[0].priority == "low" and a2.recommendations[0].priority == "high"
    assert isinstance(a1.bottlenecks, tuple) and isinstance(a1.trends, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a1.health_score = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("mt, value, rtype", [
    (CPU, 95.0, RecommendationType.RESOURCE_ALLOCATION),
    (MetricType.MEMORY, 95.0, RecommendationType.MEMORY_MANAGEMENT),
    (MetricType.NETWORK, 95.0, RecommendationType.NETWORK_OPTIMIZATION),
    (MetricType.LATENCY, 1500.0, RecommendationType.CONCURRENCY_TUNING),
    (MetricType.THROUGHPUT, 40.0, RecommendationType.RESOURCE_ALLOCATION),
    (MetricType.ERROR_RATE, 9.0, RecommendationType.CONCURRENCY_TUNING),
    (MetricType.CACHE_HIT_RATE, 40.0, RecommendationType.CACHE_OPTIMIZATION),
])
def test_every_metric_type_gets_a_recommendation_with_evidence(mt, value, rtype):
    opt, clock = make()
    feed(opt, clock, mt, [value] * 12, source="svc")
    a = opt.analyze()
    (b,) = a.bottlenecks
    (r,) = a.recommendations
    assert r.type is rtype and r.related_bottleneck_id == b.id and r.component == "svc"
    assert r.priority == {SEV.LOW: "low", SEV.MEDIUM: "medium"}.get(b.severity, "high")
    assert r.implementation_difficulty in {"easy", "moderate", "hard"}
    assert r.estimated_improvement_pct > 0 and r.title and r.expected_impact
    assert fmt_number(value) in r.description
    ev = r.evidence
    assert (ev.value, ev.threshold, ev.window_samples, ev.samples_beyond) == (
        value, b.threshold, 12, 12)
    assert ev.duration_s == 11.0 and ev.window_mean == value and ev.window_p95 == value
    assert ev.trend_direction is TrendDirection.STABLE and ev.trend_slope_per_s == 0.0
    assert ev.time_to_threshold_s == 0.0     # already beyond


def test_recommendation_id_is_stable_per_episode_and_counted_once():
    opt, clock = make()
    feed(opt, clock, CPU, [95.0], source="w")
    r1 = opt.analyze().recommendations[0]
    clock.advance(1.0)
    r2 = opt.analyze().recommendations[0]
    assert r1 is r2    # nothing changed: the same record
    feed(opt, clock, CPU, [99.0], source="w")
    r3 = opt.analyze().recommendations[0]
    assert r3.id == r1.id and r3.evidence.value == 99.0
    assert opt.get_health_status().recommendations_generated == 1


def test_health_score_counts_distinct_bottlenecks_by_severity():
    opt, clock = make()
    for i in range(3):
        feed(opt, clock, CPU, [130.0] * 200, source=f"c{i}", step=0.01)   # CRITICAL
    feed(opt, clock, MetricType.MEMORY, [90.0] * 500, source="m", step=0.01)  # LOW
    a = opt.analyze()
    assert len(a.bottlenecks) == 4
    assert a.health_score == 100.0 - 3 * 20.0 - 2.0
    assert health_score(a.bottlenecks * 10) == 0.0


# -- trends --------------------------------------------------------------------------


def _trend(mt, values, step=1.0, **cfg):
    opt, clock = make(**cfg)
    feed(opt, clock, mt, values, source="s", step=step)
    (t,) = opt.analyze().trends
    return t


def test_trend_polarity_falling_cache_hit_rate_and_throughput_degrade():
    t = _trend(MetricType.CACHE_HIT_RATE, np.linspace(95.0, 75.0, 20))
    assert t.direction is TrendDirection.DEGRADING and t.slope_per_s < 0
    t = _trend(MetricType.THROUGHPUT, np.linspace(500.0, 300.0, 20))
    assert t.direction is TrendDirection.DEGRADING
    t = _trend(MetricType.THROUGHPUT, np.linspace(300.0, 500.0, 20))
    assert t.direction is TrendDirection.IMPROVING
    t = _trend(MetricType.LATENCY, np.linspace(100.0, 300.0, 20))
    assert t.direction is TrendDirection.DEGRADING
    t = _trend(CPU, np.linspace(60.0, 20.0, 20))
    assert t.direction is TrendDirection.IMPROVING


def test_trend_constant_and_zero_means_are_stable():
    for values in ([42.0] * 15, [0.0] * 15):
        t = _trend(CPU, values)
        assert t.direction is TrendDirection.STABLE
        assert t.slope_per_s == 0.0 and t.relative_change == 0.0
        assert t.standard_deviation == 0.0
    # a zero mean with movement is measured against the threshold
    t = _trend(MetricType.ERROR_RATE, [-1.0, 1.0] * 5 + [0.0] * 0)
    assert math.isfinite(t.relative_change)
    # negative means keep their direction (the original called them all stable)
    t = _trend(MetricType.LATENCY, np.linspace(-100.0, -10.0, 20))
    assert t.direction is TrendDirection.DEGRADING


def test_trend_statistics_and_time_to_threshold():
    values = np.arange(50.0, 70.0)          # +1 per second towards cpu 80
    t = _trend(CPU, values)
    assert t.data_point_count == 20 and t.slope_per_s == pytest.approx(1.0)
    assert (t.min_value, t.max_value, t.average_value) == (50.0, 69.0, 59.5)
    assert t.standard_deviation == pytest.approx(np.std(values, ddof=1))
    assert t.p95_value == pytest.approx(np.quantile(values, 0.95))
    assert t.time_to_threshold_s == pytest.approx(11.0)
    assert t.direction is TrendDirection.DEGRADING and t.threshold == 80.0
    away = _trend(CPU, values[::-1])
    assert away.time_to_threshold_s is None
    # throughput heading down towards its minimum of 100
    t = _trend(MetricType.THROUGHPUT, np.linspace(200.0, 150.0, 11), step=1.0)
    assert t.time_to_threshold_s == pytest.approx(10.0)


def test_trend_needs_min_points_and_can_be_disabled():
    opt, clock = make(min_data_points_for_trend=5)
    feed(opt, clock, CPU, [1.0] * 4, source="s")
    assert opt.analyze().trends == ()
    feed(opt, clock, CPU, [1.0], source="s")
    assert len(opt.analyze().trends) == 1
    opt.update_config(enable_trend_analysis=False)
    assert opt.analyze().trends == ()


# -- incremental window statistics ---------------------------------------------------


def test_only_changed_series_are_recomputed_and_results_stay_exact():
    opt, clock = make(analysis_window_s=100.0, max_metrics=10_000)
    for i in range(5):
        feed(opt, clock, CPU, [10.0 + i] * 10, source=f"s{i}", step=0.5)
    a = opt.analyze()
    assert a.series_recomputed == 5
    opt.record_metric(CPU, 30.0, "s2")
    a = opt.analyze()
    assert a.series_recomputed == 1
    t2 = next(t for t in a.trends if t.component == "s2")
    assert t2.data_point_count == 11 and t2.max_value == 30.0
    assert opt.analyze().series_recomputed == 0
    # sliding the window past the oldest samples recomputes exactly the series that lost some
    clock.advance(100.0 - 25.0 + 0.1)   # s0 recorded at 1000..1004.5, s1 at 1005..
    a = opt.analyze()
    assert a.series_recomputed == 1
    assert [t.component for t in a.trends] == ["s1", "s2", "s3", "s4"]
    ring = opt.monitor.ring
    for t in a.trends:
        key = opt.monitor.lookup_key(CPU, t.component)
        st = ring.stats(key, clock.now() - 100.0, clock.now())
        assert (t.data_point_count, t.average_value) == (st.count, pytest.approx(st.mean))


def test_eviction_and_late_samples_force_exact_recompute():
    opt, clock = make(max_metrics=20, analysis_window_s=1000.0, min_data_points_for_trend=2)
    feed(opt, clock, CPU, [1.0] * 10, source="a")
    feed(opt, clock, CPU, [2.0] * 10, source="b")
    opt.analyze()
    feed(opt, clock, CPU, [3.0] * 5, source="c")      # evicts 5 samples of "a"
    a = opt.analyze()
    counts = {t.component: t.data_point_count for t in a.trends}
    assert counts == {"a": 5, "b": 10, "c": 5}
    opt.record_metric(CPU, 9.0, "b", timestamp=clock.now() - 3.0)   # late insert
    a = opt.analyze()
    assert {t.component: t.max_value for t in a.trends}["b"] == 9.0


# -- caches ----------------------------------------------------------------------------


def test_cache_statistics_from_real_counters():
    opt, clock = make()
    for i in range(10):
        opt.record_cache_access("users", hit=i < 7, latency_ms=1.0 if i < 7 else 20.0)
    opt.record_cache_access("users", hit=False)
    opt.record_cache_access("tokens", hit=True)
    clock.advance(1.0)
    a = opt.analyze()
    stats = {c.cache_id: c for c in a.cache_stats}
    u = stats["users"]
    assert (u.total_requests, u.hits, u.misses) == (11, 7, 4)
    assert u.hit_rate == pytest.approx(700.0 / 11)
    assert u.avg_hit_time_ms == 1.0 and u.avg_miss_time_ms == 20.0
    assert (u.window_start_time, u.window_end_time) == (1000.0, 1000.0) and not u.from_samples
    assert stats["tokens"].avg_hit_time_ms is None and stats["tokens"].hit_rate == 100.0
    # the accesses became a hit-rate sample: 63.6% < 70% is a cache bottleneck
    (b,) = a.bottlenecks
    assert (b.component, b.metric_type) == ("users", MetricType.CACHE_HIT_RATE)
    assert a.recommendations[0].type is RecommendationType.CACHE_OPTIMIZATION
    # hit-rate samples recorded as metrics still count
    opt.record_metric(MetricType.CACHE_HIT_RATE, 50.0, "legacy")
    opt.record_metric(MetricType.CACHE_HIT_RATE, 70.0, "legacy")
    s = {c.cache_id: c for c in opt.analyze().cache_stats}["legacy"]
    assert s.from_samples and s.hit_rate == 60.0 and s.sample_count == 2 and s.total_requests == 0
    assert opt.get_cache_statistics() == opt.last_analysis.cache_stats


def test_cache_access_validation():
    opt, _ = make()
    with pytest.raises(TypeError, match="hit"):
        opt.record_cache_access("c", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latency_ms"):
        opt.record_cache_access("c", True, latency_ms=-1.0)
    with pytest.raises(TypeError, match="cache_id"):
        opt.record_cache_access(7, True)  # type: ignore[arg-type]
    opt.update_config(enable_cache_optimization=False)
    opt.record_cache_access("c", True)
    assert opt.analyze().cache_stats == ()


# -- cycles, collectors, overhead -------------------------------------------------------


def test_tick_runs_analysis_when_due_and_applies_retention():
    opt, clock = make(analysis_interval_s=10.0, analysis_window_s=60.0)
    opt.record_metric(CPU, 10.0, "w")
    assert opt.tick() is not None          # first analysis is due at once
    clock.advance(5.0)
    assert opt.tick() is None
    clock.advance(5.0)
    assert opt.tick() is not None
    clock.advance(200.0)                   # retention = 2 x window = 120 s
    opt.tick()
    assert opt.monitor.metric_count == 0
    assert opt.get_health_status().analyses_run == 3
    opt.update_config(enabled=False)
    clock.advance(100.0)
    assert opt.tick() is None


def test_failing_collector_is_isolated(caplog):
    opt, clock = make()
    calls = []

    def good():
        calls.append(1)
        return [(CPU, 99.0, "host")]

    def bad():
        raise OSError("sensor gone")

    opt.add_collector(bad, name="bad")
    remove_good = opt.add_collector(good)
    with caplog.at_level(logging.WARNING, logger="arbiter_core.optimization"):
        a = opt.tick()
    assert a is not None and len(a.bottlenecks) == 1 and calls == [1]
    st = opt.get_health_status()
    assert st.degraded and st.collector_failures == 1
    assert "collector bad failed" in caplog.text
    opt.add_collector(lambda: [(CPU, math.nan, "host")], name="nan")
    clock.advance(10.0)
    opt.tick()
    assert opt.get_health_status().collector_failures == 3
    remove_good()
    with pytest.raises(TypeError, match="collector"):
        opt.add_collector(5)  # type: ignore[arg-type]


def test_collector_recovery_clears_degraded():
    opt, _ = make()
    state = {"fail": True}

    def flaky():
        if state["fail"]:
            raise RuntimeError("boom")
        return [(CPU, 10.0, "h")]

    opt.add_collector(flaky)
    opt.collect()
    assert opt.get_health_status().degraded
    state["fail"] = False
    assert opt.collect() == 1
    assert not opt.get_health_status().degraded


def test_failed_analysis_marks_degraded_and_tick_survives(monkeypatch, caplog):
    opt, clock = make()

    def broken():
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(opt, "analyze", broken)
    assert opt.tick() is None
    assert opt.get_health_status().degraded
    assert "analysis failed" in caplog.text


class FakeTimer:
    """A cost timer that advances by ``cost`` on every second reading."""

    def __init__(self, cost):
        self.t = 0.0
        self.cost = cost
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls % 2 == 0:
            self.t += self.cost
        return self.t


def test_overhead_is_measured_and_stretches_the_interval():
    clock = ManualClock(start=0.0)
    timer = FakeTimer(cost=1.0)      # every cycle "costs" 1 s: 10% of a 10 s interval
    opt = RuntimeOptimizer(OptimizerConfig(analysis_interval_s=10.0, max_overhead_pct=5.0),
                           clock=clock, cost_timer=timer)
    opt.tick()
    st = opt.get_health_status()
    assert st.interval_stretched and st.effective_interval_s >= 20.0
    assert st.overhead_pct <= 5.0 + 1e-9
    clock.advance(10.0)
    assert opt.tick() is None          # not due yet at the stretched interval
    clock.advance(st.effective_interval_s)
    assert opt.tick() is not None
    opt.update_config(max_overhead_pct=50.0)
    assert opt.effective_interval_s == 10.0 and not opt.get_health_status().interval_stretched


def test_update_config_live_and_validated():
    opt, clock = make()
    feed(opt, clock, CPU, [85.0], source="w")
    assert len(opt.analyze().bottlenecks) == 1
    with pytest.raises(TypeError, match="no_such_field"):
        opt.update_config(no_such_field=1)
    with pytest.raises(ValueError, match="analysis_window_s"):
        opt.update_config(analysis_window_s=-1.0)
    assert opt.config.analysis_window_s == 300.0
    opt.update_config(thresholds={CPU: 90.0}, max_metrics=50, history_size=2)
    assert opt.detector.threshold_for(CPU) == 90.0
    assert opt.monitor.max_metrics == 50
    feed(opt, clock, CPU, [85.0] * 3, source="w")
    a = opt.analyze()
    assert a.bottlenecks == () or a.bottlenecks[0].occurrence_count == 1
    for _ in range(3):
        opt.analyze()
    assert len(opt.get_analysis_history()) == 2
    assert opt.get_health_status().metrics_collected == 4


def test_start_stop_idempotent_and_context_manager():
    opt, _ = make()
    analysed = threading.Event()
    opt.on_analysis(lambda a: analysed.set())
    with opt as running:
        assert running is opt and opt.is_running
        opt.start()
        assert opt.is_running
        assert analysed.wait(WAIT)
        assert opt.get_health_status().is_running
    assert not opt.is_running
    opt.stop()
    opt.start()
    assert opt.is_running
    opt.stop()
    assert not opt.get_health_status().is_running


def test_config_updates_while_running_take_effect_without_stopping():
    opt, clock = make(analysis_interval_s=10.0)
    analyses = []
    done = threading.Event()

    def listener(a):
        analyses.append(a)
        done.set()

    opt.on_analysis(listener)
    opt.record_metric(CPU, 85.0, "w")
    opt.start()
    try:
        assert done.wait(WAIT)
        assert analyses[0].bottlenecks[0].threshold == 80.0
        done.clear()
        clock.advance(10.0)
        opt.record_metric(CPU, 85.0, "w")
        opt.update_config(thresholds={CPU: 84.0}, analysis_interval_s=5.0)   # wakes the thread
        assert done.wait(WAIT)
        assert opt.is_running
        assert analyses[-1].bottlenecks[0].threshold == 84.0
        assert opt.effective_interval_s == 5.0
    finally:
        opt.stop()
    assert not opt.is_running


def test_health_status_fields():
    opt, clock = make()
    st = opt.get_health_status()
    assert (st.is_running, st.last_analysis_time, st.metrics_collected, st.active_bottlenecks,
            st.recommendations_generated, st.degraded) == (False, None, 0, 0, 0, False)
    feed(opt, clock, CPU, [99.0], source="w")
    opt.analyze()
    st = opt.get_health_status()
    assert (st.last_analysis_time, st.metrics_collected, st.active_bottlenecks,
            st.recommendations_generated) == (1001.0, 1, 1, 1)


def test_record_metric_validation():
    opt, _ = make()
    with pytest.raises(ValueError):
        opt.record_metric(CPU, math.nan)
    with pytest.raises(ValueError, match="metric_type"):
        opt.record_metric("gpu", 1.0)
    assert opt.monitor.metric_count == 0


def test_analysis_listener_errors_are_logged(caplog):
    opt, _ = make()

    def boom(a):
        raise RuntimeError("listener bug")

    opt.on_analysis(boom)
    opt.analyze()
    assert "analysis listener" in caplog.text


def test_thresholds_changed_on_the_detector_apply_to_the_next_analysis():
    # opt.detector is public; a threshold set there must drive detection and
    # the window statistics, not only the detector's own bookkeeping
    opt, clock = make(min_data_points_for_trend=2)
    feed(opt, clock, CPU, [60.0, 60.0], source="w")
    assert opt.analyze().bottlenecks == ()
    opt.detector.update_thresholds({CPU: 50.0})
    feed(opt, clock, CPU, [60.0], source="w")
    a = opt.analyze()
    assert [(b.component, b.threshold) for b in a.bottlenecks] == [("w", 50.0)]
    assert a.recommendations[0].evidence.samples_beyond == 3
    assert a.trends[0].threshold == 50.0


def test_cache_access_beyond_max_series_is_refused_at_the_call():
    # the hit-rate series of a new cache counts against max_series; when the
    # table is full the access is refused up front (nothing stored), instead of
    # every later analysis failing and the cache's accesses being lost
    opt, clock = make(max_series=2)
    opt.record_metric(CPU, 1.0, "a")
    opt.record_metric(CPU, 1.0, "b")
    with pytest.raises(ValueError, match="max_series"):
        opt.record_cache_access("c1", True)
    a = opt.analyze()
    assert a.cache_stats == ()
    assert not opt.get_health_status().degraded

    opt, clock = make(max_series=2)
    opt.record_metric(CPU, 1.0, "a")
    opt.record_cache_access("c1", False)
    with pytest.raises(ValueError, match="max_series"):
        opt.record_metric(CPU, 1.0, "b")          # c1's hit-rate series holds the slot
    a = opt.analyze()
    assert [(c.cache_id, c.misses) for c in a.cache_stats] == [("c1", 1)]
    assert [b.component for b in a.bottlenecks] == ["c1"]     # 0 % hit rate


@pytest.mark.parametrize("kw", [{"latency_ms": -1.0}, {"latency_ms": math.nan},
                                {"timestamp": math.nan}, {"timestamp": "now"}])
def test_bad_cache_access_interns_nothing(kw):
    opt, clock = make()
    with pytest.raises((ValueError, TypeError)):
        opt.record_cache_access("fresh", True, **kw)
    assert opt.monitor.series_names == ()
    assert opt.analyze().cache_stats == ()


def test_start_after_a_stop_that_has_not_finished_runs_again():
    # stop(timeout) can return while a cycle is still running (or stop() is
    # called from the background thread itself, e.g. in a listener); a start()
    # right after must leave the optimizer running, not silently stopped
    opt, _ = make()
    entered, gate = threading.Event(), threading.Event()
    calls = []

    def slow_collector():
        calls.append(1)
        entered.set()
        gate.wait(WAIT)
        return []

    opt.add_collector(slow_collector)
    opt.start()
    try:
        assert entered.wait(WAIT)
        entered.clear()
        opt.stop(timeout=0)            # the cycle is still inside the collector
        assert not opt.is_running      # stopping counts as not running
        opt.start()
        assert opt.is_running
        gate.set()
        assert entered.wait(WAIT)      # a cycle ran after the restart
        assert opt.is_running
    finally:
        gate.set()
        opt.stop()
    assert not opt.is_running


def test_stop_and_start_from_a_listener_on_the_background_thread():
    opt, clock = make()
    restarted, again = threading.Event(), threading.Event()

    def listener(a):
        if not restarted.is_set():
            opt.stop()                 # from the optimizer's own thread: no join
            opt.start()
            restarted.set()
        else:
            again.set()

    opt.on_analysis(listener)
    opt.start()
    try:
        assert restarted.wait(WAIT)
        assert opt.is_running
        clock.advance(10.0)            # the next analysis is due
        opt.wake()
        assert again.wait(WAIT)
    finally:
        opt.stop()
    assert not opt.is_running


def test_configs_with_thresholds_are_hashable_and_compare_by_value():
    a = OptimizerConfig(thresholds={CPU: 90.0})
    b = OptimizerConfig(thresholds={"cpu": 90})
    assert a == b and hash(a) == hash(b) and len({a, b, OptimizerConfig()}) == 2


@pytest.mark.parametrize(("change", "expected"), [
    ({"min_data_points_for_trend": 3}, []),
    ({"trend_stable_pct": 80.0}, [(2, "stable")]),
    ({"enable_trend_analysis": False}, []),
])
def test_trend_settings_changed_live_apply_to_unchanged_series(change, expected):
    # the series gets no new samples, so its window statistics stay cached;
    # its trend must still follow the new settings
    opt, clock = make(min_data_points_for_trend=2)
    feed(opt, clock, CPU, [10.0, 20.0], source="w")
    assert [(t.data_point_count, t.direction.value) for t in opt.analyze().trends] == [
        (2, "degrading")]
    opt.update_config(**change)
    assert [(t.data_point_count, t.direction.value) for t in opt.analyze().trends] == expected


def test_trends_resume_from_current_data_when_re_enabled():
    opt, clock = make(min_data_points_for_trend=2)
    feed(opt, clock, CPU, [10.0, 20.0], source="w")
    opt.analyze()
    opt.update_config(enable_trend_analysis=False)
    feed(opt, clock, CPU, [20.0], source="w")
    assert opt.analyze().trends == ()
    opt.update_config(enable_trend_analysis=True)
    [t] = opt.analyze().trends            # nothing new since: cached statistics
    assert (t.data_point_count, t.max_value) == (3, 20.0)


def test_a_dropped_running_optimizer_is_collected_and_its_thread_ends():
    # the background thread must not keep an optimizer the program dropped
    # without stop() alive forever (the original leaked its timers this way)
    import gc
    import weakref

    opt, _ = make()
    ticked = threading.Event()
    opt.on_analysis(lambda a: ticked.set())
    opt.start()
    assert ticked.wait(WAIT)
    thread = opt._worker.thread
    ref = weakref.ref(opt)
    del opt
    gc.collect()
    assert ref() is None
    thread.join(WAIT)
    assert not thread.is_alive()
