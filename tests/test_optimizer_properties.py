"""Property tests: random metric streams against simple reference facts."""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from arbiter_core import (
    BottleneckSeverity,
    ManualClock,
    MetricType,
    OptimizerConfig,
    RuntimeOptimizer,
)
from arbiter_core.optimization.detector import DEFAULT_THRESHOLDS, higher_is_bad
from arbiter_core.optimization.results import Bottleneck
from arbiter_core.optimization.trends import health_score

TYPES = list(MetricType)
SOURCES = ["a", "b", "c"]

# one step: record a sample (type index, source, value, time step) or run an analysis
record = st.tuples(st.just("rec"), st.integers(0, len(TYPES) - 1), st.sampled_from(SOURCES),
                   st.floats(0.0, 2000.0, allow_nan=False), st.sampled_from([0.0, 0.5, 3.0]))
analyse = st.tuples(st.just("ana"), st.just(0), st.just(""), st.just(0.0),
                    st.sampled_from([0.0, 1.0, 30.0]))


def _bad(mt, v):
    t = DEFAULT_THRESHOLDS[mt]
    return v > t if higher_is_bad(mt) else v < t


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(record, analyse), min_size=1, max_size=80))
def test_random_streams_keep_the_invariants(steps):
    clock = ManualClock(start=0.0)
    opt = RuntimeOptimizer(OptimizerConfig(analysis_window_s=50.0, min_data_points_for_trend=2),
                           clock=clock)
    # reference model: a sample is examined by the first analysis after it is
    # recorded, if it is still inside that analysis' window, and never again
    pending = []
    examined_bad = Counter()
    examined = 0
    episode_ids = {}
    for kind, ti, src, value, dt in steps + [("ana", 0, "", 0.0, 0.0)]:
        if kind == "rec":
            mt = TYPES[ti]
            opt.record_metric(mt, value, src)
            pending.append((clock.now(), (src, mt), _bad(mt, value)))
        else:
            a = opt.analyze()
            fresh = [(key, bad) for ts, key, bad in pending if ts >= clock.now() - 50.0]
            pending = []
            examined += len(fresh)
            examined_bad.update(key for key, bad in fresh if bad)
            assert a.new_samples == len(fresh)
            keys = [(b.component, b.metric_type) for b in a.bottlenecks]
            assert len(keys) == len(set(keys))                       # one per series
            assert sorted(r.related_bottleneck_id for r in a.recommendations) == sorted(
                b.id for b in a.bottlenecks)                         # exactly one each
            assert 0.0 <= a.health_score <= 100.0
            assert a.health_score == health_score(a.bottlenecks)
            for b in a.bottlenecks:
                assert _bad(b.metric_type, b.current_value)
                assert b.detected_at <= b.last_observed_at
            for r in a.resolved:
                episode_ids.pop((r.component, r.metric_type), None)
            for b in a.bottlenecks:
                # an episode keeps its id while active
                assert episode_ids.setdefault((b.component, b.metric_type), b.id) == b.id
        clock.advance(dt)
    # each bad sample is counted exactly once, in whichever episode saw it
    seen = Counter()
    for b in opt.get_bottleneck_history() + opt.get_active_bottlenecks():
        seen[(b.component, b.metric_type)] += b.occurrence_count
    assert seen == examined_bad
    assert examined <= opt.monitor.ring.total_recorded


SEVS = list(BottleneckSeverity)


def _b(i, sev):
    return Bottleneck(id=str(i), component=f"c{i}", metric_type=MetricType.CPU, severity=sev,
                      current_value=90.0, worst_value=90.0, threshold=80.0, deviation=0.1,
                      impact="", detected_at=0.0, last_observed_at=0.0, occurrence_count=1,
                      exceeding_analyses=1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=12), st.data())
def test_health_score_is_bounded_and_monotone_in_severity(levels, data):
    bs = [_b(i, SEVS[lv]) for i, lv in enumerate(levels)]
    score = health_score(bs)
    assert 0.0 <= score <= 100.0
    if bs:
        i = data.draw(st.integers(0, len(bs) - 1))
        up = min(3, levels[i] + data.draw(st.integers(0, 3)))
        worse = list(bs)
        worse[i] = _b(i, SEVS[up])
        assert health_score(worse) <= score
        assert health_score(bs + [_b(99, SEVS[0])]) <= score     # one more problem never helps
