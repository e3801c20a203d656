"""RuntimeOptimizer.analyze() against a plain numpy baseline, side by side.

Run: ``.venv/bin/pytest benchmarks/bench_optimizer.py --benchmark-only``

The workload is a full analysis window of 100,000 samples in 100 series.
The baseline does the minimum per-series work with numpy: group by key with
argsort, then mean, max, least-squares slope and p95 per group.  The
optimizer does more (detection of every new sample, min/std/count beyond the
threshold, trends, recommendations, health) and must not be slower.  The
incremental case adds 10 new samples to 2 series of that window and analyses
again; it must cost far less than the full analysis.

Under ``make test`` (``--benchmark-disable``) each function runs once, and the
assertions check that the optimizer and the baseline agree.
"""

import logging

import numpy as np
import pytest

from arbiter_core import ManualClock, MetricType, OptimizerConfig, RuntimeOptimizer

N_SAMPLES = 100_000
N_SERIES = 100
WINDOW_S = 300.0
NOW = 10_000.0
TYPES = list(MetricType)
# typical values per type: comfortably on the good side of the default thresholds
CENTRE = {MetricType.CPU: 45.0, MetricType.MEMORY: 60.0, MetricType.NETWORK: 30.0,
          MetricType.LATENCY: 200.0, MetricType.THROUGHPUT: 400.0, MetricType.ERROR_RATE: 1.0,
          MetricType.CACHE_HIT_RATE: 95.0}
N_BAD = 5   # series pushed beyond their threshold


def _data():
    rng = np.random.default_rng(42)
    ts = np.sort(rng.uniform(NOW - 0.9 * WINDOW_S, NOW, N_SAMPLES))
    keys = rng.integers(0, N_SERIES, N_SAMPLES).astype(np.int64)
    centre = np.array([CENTRE[TYPES[k % len(TYPES)]] for k in range(N_SERIES)])
    centre[:N_BAD] *= np.where([TYPES[k % len(TYPES)] in (MetricType.THROUGHPUT,
                                                           MetricType.CACHE_HIT_RATE)
                                for k in range(N_BAD)], 0.2, 6.0)
    vals = centre[keys] * (1.0 + 0.05 * rng.standard_normal(N_SAMPLES)) + 0.01 * (ts - NOW)
    return ts, keys, vals


TS, KEYS, VALS = _data()


def numpy_baseline(ts, keys, vals):
    """Group by key (argsort), then mean/max/slope/p95 per group."""
    order = np.argsort(keys, kind="stable")
    k, t, v = keys[order], ts[order], vals[order]
    cuts = np.flatnonzero(np.diff(k)) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(k)]
    out = {}
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        tv, vv = t[s:e], v[s:e]
        tc = tv - tv.mean()
        out[int(k[s])] = (vv.mean(), vv.max(), (tc * (vv - vv.mean())).sum() / (tc * tc).sum(),
                          np.percentile(vv, 95))
    return out


def fresh_optimizer():
    clock = ManualClock(start=NOW)
    opt = RuntimeOptimizer(OptimizerConfig(max_metrics=2 * N_SAMPLES,
                                           analysis_window_s=WINDOW_S), clock=clock)
    series = [opt.monitor.key_for(TYPES[k % len(TYPES)], f"svc{k}") for k in range(N_SERIES)]
    assert series == list(range(N_SERIES))
    opt.monitor.ring.record_many(KEYS, VALS, TS)
    return opt, clock


@pytest.fixture(autouse=True)
def _quiet_detection_logs():
    # detection warnings are part of the product, but 5 log lines per round to
    # pytest's capture would measure the logging setup, not the analysis
    logger = logging.getLogger("arbiter_core.optimization")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _check_against_baseline(analysis):
    base = numpy_baseline(TS, KEYS, VALS)
    trends = {int(t.component[3:]): t for t in analysis.trends}
    assert len(trends) == N_SERIES
    for k, (mean, mx, slope, p95) in base.items():
        t = trends[k]
        np.testing.assert_allclose([t.average_value, t.max_value, t.slope_per_s, t.p95_value],
                                   [mean, mx, slope, p95], rtol=1e-7, atol=1e-9)
    assert len(analysis.bottlenecks) == N_BAD and len(analysis.recommendations) == N_BAD


@pytest.mark.benchmark(group="analyze-100k-samples-100-series")
def test_numpy_baseline(benchmark):
    out = benchmark(numpy_baseline, TS, KEYS, VALS)
    assert len(out) == N_SERIES


@pytest.mark.benchmark(group="analyze-100k-samples-100-series")
def test_optimizer_full_analysis(benchmark):
    def setup():
        return (fresh_optimizer()[0],), {}

    analysis = benchmark.pedantic(lambda opt: opt.analyze(), setup=setup, rounds=15)
    assert analysis.new_samples == N_SAMPLES and analysis.series_recomputed == N_SERIES
    _check_against_baseline(analysis)


@pytest.mark.benchmark(group="analyze-100k-samples-100-series")
def test_optimizer_incremental_analysis(benchmark):
    opt, clock = fresh_optimizer()
    opt.analyze()

    def setup():
        clock.advance(0.1)
        for i in range(10):
            opt.record_metric(TYPES[(10 + i % 2) % len(TYPES)], 50.0, f"svc{10 + i % 2}")
        return (), {}

    analysis = benchmark.pedantic(opt.analyze, setup=setup, rounds=50)
    assert analysis.new_samples == 10 and analysis.series_recomputed == 2
    assert len(analysis.trends) == N_SERIES
