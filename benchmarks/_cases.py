"""The side-by-side comparisons: each of our operations, its floor and its peers.

Every factory builds fresh state and returns a :class:`~_harness.Comparison`
whose ops all do the same job on the same data and carry a ``check`` of their
result.  ``bench_*.py`` time them with pytest-benchmark; ``report.py`` measures
them for ``BENCHMARKS.md``.
"""

from __future__ import annotations

import collections
import importlib
import itertools
import logging
import os
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from _harness import Comparison, Op
from _pyref import (
    PyMonitor,
    PyPool,
    PyRing,
    py_count_beyond,
    py_quantile,
    py_slope,
    py_stats,
    py_window,
)
from ddsketch import DDSketch
from hdrh.histogram import HdrHistogram
from prometheus_client import CollectorRegistry, Histogram

import arbiter_core
from arbiter_core import MetricRing, MetricType, PerformanceMonitor
from arbiter_core._benchfloor import RecordFloor

__all__ = [
    "ALLOCATION_CASES", "ALL_CASES", "LITELLM_CASES", "MONITOR_CASES", "OPTIMIZER_CASES",
    "RING_CASES", "SELECT_CASES", "Window", "params",
]

KEY = 1
VALUE = 12.5            # one latency sample, milliseconds
WINDOW = 10_000         # samples in a query window
Q = 0.99
THRESHOLD = 60.0        # latency threshold for count_beyond (about p90 of the data)


def _close(expected: float, rel: float = 1e-9) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert abs(float(result) - expected) <= rel * max(1.0, abs(expected)), (result, expected)
    return check


def _equal(expected: Any) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert result == expected, (result, expected)
    return check


# ---------------------------------------------------------------------------
# Recording one sample


def _ring_stored(ring: MetricRing, key: int, value: float) -> Callable[[Any], None]:
    def check(_: Any) -> None:
        ts, keys, vals = ring.latest(1)
        assert ring.total_recorded >= 1
        assert keys.tolist() == [key] and vals.tolist() == [value]
    return check


def _record_peers() -> list[Op]:
    """The recording peers, each storing one latency sample per call."""
    registry = CollectorRegistry()
    hist = Histogram("latency_ms", "request latency", registry=registry)
    hdr = HdrHistogram(1, 60_000_000, 3)          # microseconds, 3 significant digits
    sketch = DDSketch(relative_accuracy=0.01)

    def hist_check(_: Any) -> None:
        assert registry.get_sample_value("latency_ms_sum") >= VALUE

    def hdr_check(_: Any) -> None:
        assert hdr.get_total_count() >= 1

    def sketch_check(_: Any) -> None:
        assert sketch.count >= 1

    return [
        Op("prometheus_client", hist.observe, (VALUE,), check=hist_check,
           note="Histogram.observe(v), default buckets"),
        Op("hdrhistogram", hdr.record_value, (int(VALUE * 1000),), check=hdr_check,
           note="HdrHistogram(1, 6e7, 3).record_value(int_us)"),
        Op("ddsketch", sketch.add, (VALUE,), check=sketch_check,
           note="DDSketch(0.01).add(v)"),
    ]


def ring_record() -> Comparison:
    """``MetricRing.record(key, value)`` against the compiled floor."""
    ring = MetricRing(WINDOW)
    floor = RecordFloor(WINDOW)
    py = PyRing(WINDOW)

    def floor_check(_: Any) -> None:
        assert floor.written >= 1 and floor.value_at(0) == VALUE

    def py_check(_: Any) -> None:
        assert py.total >= 1 and py.values[0] == VALUE

    return Comparison(
        "MetricRing.record",
        Op("arbiter", ring.record, (KEY, VALUE), check=_ring_stored(ring, KEY, VALUE),
           note="ring.record(key, value): validate, read CLOCK_MONOTONIC, store"),
        peers=[Op("python", py.record, (KEY, VALUE), check=py_check,
                  note="pure-Python list ring with time.monotonic"),
               *_record_peers()],
        floor=Op("floor", floor.record, (KEY, VALUE), check=floor_check,
                 note="cdef-class method: read CLOCK_MONOTONIC, store into owned arrays"),
        targets={"floor": 1.5},
    )


def _monitor_case(name: str, make_op: Callable[[PerformanceMonitor], Op]) -> Comparison:
    mon = PerformanceMonitor(max_metrics=WINDOW)
    pymon = PyMonitor(WINDOW)
    floor = RecordFloor(WINDOW)

    def py_check(_: Any) -> None:
        assert pymon.ring.total >= 1

    registry = CollectorRegistry()
    labeled = Histogram("latency_ms", "request latency", ["type", "source"], registry=registry)

    def labeled_check(_: Any) -> None:
        total = registry.get_sample_value("latency_ms_sum", {"type": "latency", "source": "api"})
        assert total >= VALUE

    return Comparison(
        name,
        make_op(mon),
        peers=[*_record_peers(),
               Op("prometheus_client labels", _observe_labeled, (labeled, VALUE),
                  check=labeled_check,
                  note="Histogram(labelnames=[type, source]).labels(t, s).observe(v)"),
               Op("python", pymon.record_metric, ("latency", VALUE, "api"), check=py_check,
                  note="dict interning + pure-Python ring")],
        floor=Op("floor", floor.record, (KEY, VALUE), note="see MetricRing.record"),
        targets={"prometheus_client": 0.2, "hdrhistogram": 0.2},
    )


def _observe_labeled(hist: Any, value: float) -> None:
    hist.labels("latency", "api").observe(value)


def _monitor_stored(mon: PerformanceMonitor) -> Callable[[Any], None]:
    def check(_: Any) -> None:
        latest = mon.get_latest_metrics(1)
        assert [(m.metric_type, m.source, m.value) for m in latest] == [
            (MetricType.LATENCY, "api", VALUE)]
    return check


def monitor_record_metric() -> Comparison:
    """``PerformanceMonitor.record_metric`` against prometheus_client and hdrhistogram."""
    return _monitor_case("PerformanceMonitor.record_metric", lambda mon: Op(
        "arbiter", mon.record_metric, (MetricType.LATENCY, VALUE, "api"),
        check=_monitor_stored(mon), note="mon.record_metric(MetricType.LATENCY, v, 'api')"))


def series_record() -> Comparison:
    """The pre-bound ``mon.series(type, source).record(value)`` handle."""
    return _monitor_case("SeriesHandle.record", lambda mon: Op(
        "arbiter", mon.series(MetricType.LATENCY, "api").record, (VALUE,),
        check=_monitor_stored(mon), note="mon.series(LATENCY, 'api').record(v)"))


# ---------------------------------------------------------------------------
# Batches and window queries over the same data


class Window:
    """A ring of ``2 * WINDOW`` latency samples; queries cover the newest ``WINDOW``.

    ``ts`` and ``values`` (numpy) and ``ts_list``/``values_list`` (Python) hold
    exactly the samples in ``[since, until]``, for the peers.
    """

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        n = 2 * WINDOW
        ts = np.arange(n) * 0.01
        values = 40.0 + 0.05 * ts + rng.gamma(2.0, 5.0, n)   # slowly degrading latency
        self.ring = MetricRing(n)
        self.ring.record_many(KEY, values, ts)
        self.floor = RecordFloor(n)
        self.floor.record_many(KEY, values)
        self.since, self.until = float(ts[-WINDOW]), float(ts[-1])
        self.ts, self.values = ts[-WINDOW:].copy(), values[-WINDOW:].copy()
        self.ts_list, self.values_list = self.ts.tolist(), self.values.tolist()
        self.ts_all, self.keys_all, self.values_all = ts, np.full(n, KEY), values

    def floor_op(self) -> Op:
        return Op("floor", self.floor.window_sum, (WINDOW,), check=_close(self.values.sum()),
                  note="one compiled nogil pass summing the window")


def _np_window(ts: Any, keys: Any, values: Any, since: float, until: float) -> Any:
    lo, hi = np.searchsorted(ts, since, "left"), np.searchsorted(ts, until, "right")
    return ts[lo:hi].copy(), keys[lo:hi].copy(), values[lo:hi].copy()


def _np_store(ts: Any, keys: Any, values: Any, key: int, batch: Any) -> None:
    ts[:] = np.float64(0.0)
    keys[:] = key
    values[:] = batch


def _np_stats(a: Any) -> tuple[int, float, float, float, float]:
    return a.size, a.mean(), a.min(), a.max(), a.std(ddof=1)


def _np_count_beyond(a: Any, threshold: float) -> int:
    return int(np.count_nonzero(a > threshold))


def _np_slope(t: Any, a: Any) -> float:
    dt = t - t.mean()
    return float(dt @ (a - a.mean()) / (dt @ dt))


def _np_polyfit_slope(t: Any, a: Any) -> float:
    return float(np.polyfit(t, a, 1)[0])


def _np_partition(a: Any, k: int) -> float:
    return float(np.partition(a, k)[k])


def ring_record_many() -> Comparison:
    """``record_many`` of a 10k batch (one key, one clock read)."""
    w = Window()
    batch = w.values
    ring, floor, py = MetricRing(WINDOW), RecordFloor(WINDOW), PyRing(WINDOW)
    bufs = (np.empty(WINDOW), np.empty(WINDOW, np.int64), np.empty(WINDOW))

    def ring_check(_: Any) -> None:
        assert len(ring) == WINDOW and np.array_equal(ring.snapshot()[2], batch)

    return Comparison(
        "MetricRing.record_many",
        Op("arbiter", ring.record_many, (KEY, batch), per=WINDOW, check=ring_check,
           note="ring.record_many(key, values[10k])"),
        peers=[Op("numpy", _np_store, (*bufs, KEY, batch), per=WINDOW,
                  note="three slice assignments into preallocated arrays"),
               Op("python", py.record_many, (KEY, w.values_list), per=WINDOW,
                  note="PyRing.record in a Python loop")],
        floor=Op("floor", floor.record_many, (KEY, batch), per=WINDOW,
                 note="compiled nogil copy into owned arrays"),
    )


def ring_snapshot() -> Comparison:
    """Copy out a 10k-sample time window (three columns)."""
    w = Window()

    def check(result: Any) -> None:
        assert np.array_equal(result[0], w.ts) and np.array_equal(result[2], w.values)

    return Comparison(
        "MetricRing.snapshot",
        Op("arbiter", w.ring.snapshot, (w.since, w.until), check=check,
           note="ring.snapshot(since, until) over 10k of 20k samples"),
        peers=[Op("numpy", _np_window, (w.ts_all, w.keys_all, w.values_all, w.since, w.until),
                  check=check, note="2x searchsorted + 3 slice copies"),
               Op("python", py_window, (w.ts_all.tolist(), w.values_all.tolist(),
                                        w.since, w.until),
                  check=_equal(w.values_list), note="2x bisect + list slice")],
    )


def ring_stats() -> Comparison:
    """count, mean, min, max, std over a 10k window."""
    w = Window()
    a = w.values

    def check(r: Any) -> None:
        assert r[0] == WINDOW
        _close(a.mean())(r[1])
        assert (r[2], r[3]) == (a.min(), a.max())
        _close(a.std(ddof=1))(r[4])

    return Comparison(
        "MetricRing.stats",
        Op("arbiter", w.ring.stats, (KEY, w.since, w.until),
           check=lambda r: check((r.count, r.mean, r.min, r.max, r.std)),
           note="ring.stats(key, since, until)"),
        peers=[Op("numpy", _np_stats, (a,), check=check,
                  note="a.mean(), a.min(), a.max(), a.std(ddof=1) on the window"),
               Op("python", py_stats, (w.values_list,), check=check,
                  note="one Welford pass over a list")],
        floor=w.floor_op(),
    )


def ring_quantile() -> Comparison:
    """Exact p99 over a 10k window against ``np.partition`` on the same data."""
    w = Window()
    a = w.values
    k = int((WINDOW - 1) * Q)
    exact = float(np.quantile(a, Q))
    sketch = DDSketch(relative_accuracy=0.01)
    for v in w.values_list:
        sketch.add(v)
    kth = float(np.sort(a)[k])

    def sketch_check(r: Any) -> None:
        assert abs(r - exact) <= 0.02 * exact

    return Comparison(
        "MetricRing.quantile",
        Op("arbiter", w.ring.quantile, (KEY, Q, w.since, w.until), check=_close(exact),
           note="ring.quantile(key, 0.99, since, until): copy + quickselect"),
        peers=[Op("np.partition", _np_partition, (a, k), check=_close(kth),
                  note="np.partition(a, k)[k] on the window's values"),
               Op("np.percentile", np.percentile, (a, 99.0), check=_close(exact),
                  note="np.percentile(a, 99)"),
               Op("ddsketch", sketch.get_quantile_value, (Q,), check=sketch_check,
                  note="DDSketch(0.01) query, sketch prebuilt (1% relative error)"),
               Op("python", py_quantile, (w.values_list, Q), check=_close(exact),
                  note="sorted() + interpolation")],
        floor=w.floor_op(),
        targets={"np.partition": 1.0},
    )


def ring_count_beyond() -> Comparison:
    """Threshold scan of a 10k window."""
    w = Window()
    expected = int(np.count_nonzero(w.values > THRESHOLD))
    return Comparison(
        "MetricRing.count_beyond",
        Op("arbiter", w.ring.count_beyond, (KEY, THRESHOLD, True, w.since, w.until),
           check=_equal(expected), note="ring.count_beyond(key, thr, True, since, until)"),
        peers=[Op("numpy", _np_count_beyond, (w.values, THRESHOLD), check=_equal(expected),
                  note="np.count_nonzero(a > thr)"),
               Op("python", py_count_beyond, (w.values_list, THRESHOLD), check=_equal(expected),
                  note="a Python loop")],
        floor=w.floor_op(),
    )


def ring_slope() -> Comparison:
    """Least-squares trend over a 10k window."""
    w = Window()
    expected = _np_slope(w.ts, w.values)
    return Comparison(
        "MetricRing.slope",
        Op("arbiter", w.ring.slope, (KEY, w.since, w.until), check=_close(expected, 1e-6),
           note="ring.slope(key, since, until): one pass"),
        peers=[Op("numpy", _np_slope, (w.ts, w.values), check=_close(expected, 1e-6),
                  note="closed-form OLS with two dot products"),
               Op("np.polyfit", _np_polyfit_slope, (w.ts, w.values),
                  check=_close(expected, 1e-6), note="np.polyfit(t, a, 1)[0]"),
               Op("python", py_slope, (w.ts_list, w.values_list),
                  check=_close(expected, 1e-6), note="closed form over lists")],
        floor=w.floor_op(),
    )


class KeyedWindow:
    """A ring of three interleaved series; a window holds ``WINDOW`` samples of ``KEY``.

    The peers get the ring's three columns as numpy arrays and make the same
    selection the ring makes (two ``searchsorted`` on the time column, a key
    mask), then compute; ``ts``/``values`` are that selection, for checks.
    """

    NKEYS = 3

    def __init__(self, seed: int = 11) -> None:
        rng = np.random.default_rng(seed)
        n = 2 * WINDOW * self.NKEYS
        ts = np.arange(n) * (0.01 / self.NKEYS)
        keys = np.arange(n, dtype=np.int64) % self.NKEYS     # KEY is one of 0, 1, 2
        values = 40.0 + 0.05 * ts + rng.gamma(2.0, 5.0, n)
        self.ring = MetricRing(n)
        self.ring.record_many(keys, values, ts)
        self.cols = (ts, keys, values)
        lo = n - WINDOW * self.NKEYS
        self.since, self.until = float(ts[lo]), float(ts[-1])
        sel = keys[lo:] == KEY
        self.ts, self.values = ts[lo:][sel].copy(), values[lo:][sel].copy()
        assert self.values.size == WINDOW


def _np_select(ts: Any, keys: Any, values: Any, key: int, since: float,
               until: float) -> tuple[Any, Any]:
    """numpy's version of the ring's window selection: time range, then key."""
    lo, hi = np.searchsorted(ts, since, "left"), np.searchsorted(ts, until, "right")
    m = keys[lo:hi] == key
    return ts[lo:hi][m], values[lo:hi][m]


def _np_stats_sel(ts: Any, keys: Any, values: Any, key: int, since: float,
                  until: float) -> tuple[int, float, float, float, float]:
    return _np_stats(_np_select(ts, keys, values, key, since, until)[1])


def _np_count_beyond_sel(ts: Any, keys: Any, values: Any, key: int, since: float,
                         until: float, threshold: float) -> int:
    return _np_count_beyond(_np_select(ts, keys, values, key, since, until)[1], threshold)


def _np_slope_sel(ts: Any, keys: Any, values: Any, key: int, since: float,
                  until: float) -> float:
    return _np_slope(*_np_select(ts, keys, values, key, since, until))


def _copy_out(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run in the ring's copy-out window mode (the alternative to validate-and-retry)."""
    from arbiter_core._ringbuf import _set_window_mode

    def run(*args: Any) -> Any:
        old = _set_window_mode(1)
        try:
            return fn(*args)
        finally:
            _set_window_mode(old)
    return run


def ring_stats_keyed() -> Comparison:
    """stats of one series among three, 10k of its samples in the window."""
    w = KeyedWindow()
    a = w.values

    def check(r: Any) -> None:
        assert r[0] == WINDOW
        _close(a.mean())(r[1])
        assert (r[2], r[3]) == (a.min(), a.max())
        _close(a.std(ddof=1))(r[4])

    args = (KEY, w.since, w.until)
    return Comparison(
        "MetricRing.stats (keyed)",
        Op("arbiter", w.ring.stats, args,
           check=lambda r: check((r.count, r.mean, r.min, r.max, r.std)),
           note="ring.stats(key, since, until): 1 key of 3, 30k samples in the time range"),
        peers=[Op("numpy", _np_stats_sel, (*w.cols, *args), check=check,
                  note="searchsorted x2, key mask, then mean/min/max/std(ddof=1)"),
               Op("copy-out", _copy_out(w.ring.stats), args,
                  check=lambda r: check((r.count, r.mean, r.min, r.max, r.std)),
                  note="the same kernel on a copy of the window taken under the GIL")],
        targets={"numpy": 0.5},
    )


def ring_count_beyond_keyed() -> Comparison:
    """count_beyond of one series among three, 10k of its samples in the window."""
    w = KeyedWindow()
    expected = int(np.count_nonzero(w.values > THRESHOLD))
    args = (KEY, THRESHOLD, True, w.since, w.until)
    return Comparison(
        "MetricRing.count_beyond (keyed)",
        Op("arbiter", w.ring.count_beyond, args, check=_equal(expected),
           note="ring.count_beyond(key, thr, True, since, until): 1 key of 3"),
        peers=[Op("numpy", _np_count_beyond_sel,
                  (*w.cols, KEY, w.since, w.until, THRESHOLD), check=_equal(expected),
                  note="searchsorted x2, key mask, then count_nonzero(a > thr)"),
               Op("copy-out", _copy_out(w.ring.count_beyond), args, check=_equal(expected),
                  note="the same kernel on a copy of the window taken under the GIL")],
        targets={"numpy": 0.5},
    )


def ring_slope_keyed() -> Comparison:
    """slope of one series among three, 10k of its samples in the window."""
    w = KeyedWindow()
    expected = _np_slope(w.ts, w.values)
    args = (KEY, w.since, w.until)
    return Comparison(
        "MetricRing.slope (keyed)",
        Op("arbiter", w.ring.slope, args, check=_close(expected, 1e-6),
           note="ring.slope(key, since, until): 1 key of 3, two passes"),
        peers=[Op("numpy", _np_slope_sel, (*w.cols, *args), check=_close(expected, 1e-6),
                  note="searchsorted x2, key mask, then closed-form OLS (two dot products)"),
               Op("copy-out", _copy_out(w.ring.slope), args, check=_close(expected, 1e-6),
                  note="the same kernel on a copy of the window taken under the GIL")],
        targets={"numpy": 0.5},
    )


# ---------------------------------------------------------------------------
# Agent selection (needs the selection core: skipped in builds without it)

SELECT_STRATEGIES = ("least_loaded", "weighted", "priority_based", "round_robin", "random",
                     "power_of_two", "peak_ewma")
SELECT_SIZES = (10, 100, 1_000, 10_000)
_SCANS = ("least_loaded", "weighted", "priority_based")   # they look at every agent


def need(*names: str) -> tuple[Any, ...]:
    """``arbiter_core.<name>`` for each name, or NotImplementedError (not in this build)."""
    missing = [n for n in names if not hasattr(arbiter_core, n)]
    if missing:
        raise NotImplementedError(f"arbiter_core has no {', '.join(missing)} in this build")
    return tuple(getattr(arbiter_core, n) for n in names)


def pool_usage(n: int, seed: int = 7) -> tuple[list[float], list[float], list[int], list[float]]:
    """cpu %, memory %, running tasks (of 10) and weight of ``n`` agents."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(5, 65, n).tolist(), rng.uniform(5, 70, n).tolist(),
            rng.integers(0, 8, n).tolist(), rng.uniform(0.5, 2.0, n).tolist())


def balancer(strategy: str, n: int) -> Any:
    """A LoadBalancer over ``n`` agents with the :func:`pool_usage` figures."""
    ManualClock, ResourceMonitor, LoadBalancer = need(
        "ManualClock", "ResourceMonitor", "LoadBalancer")
    monitor = ResourceMonitor(clock=ManualClock(start=0.0))
    for i, (c, m, t, w) in enumerate(zip(*pool_usage(n), strict=True)):
        monitor.register_agent(f"agent-{i}", max_tasks=10, weight=w)
        monitor.record_usage(f"agent-{i}", cpu=c, memory=m)
        monitor.update_task_count(f"agent-{i}", t)
    return LoadBalancer(monitor, strategy=strategy, seed=7)


def select_case(strategy: str, n: int) -> Callable[[], Comparison]:
    """The factory comparing ``LoadBalancer.select_agent`` with a plain-Python pool."""

    def factory() -> Comparison:
        lb = balancer(strategy, n)
        usage = pool_usage(n)
        py = PyPool(*usage)
        ids = {f"agent-{i}" for i in range(n)}

        deterministic = strategy in _SCANS     # the scans must agree with the reference

        def check(decision: Any) -> None:
            if deterministic:
                assert decision.selected_agent_id == getattr(PyPool(*usage), strategy)()
            assert decision.selected_agent_id in ids

        def py_check(agent_id: Any) -> None:
            assert agent_id in ids

        if strategy in _SCANS:
            floor = RecordFloor(n)
            floor.record_many(KEY, np.asarray(usage[0]))
            floor_op = Op("floor", floor.window_sum, (n,), note="one compiled pass over n loads")
        else:
            floor_op = Op("floor", RecordFloor(1).record, (KEY, VALUE),
                          note="a compiled method call reading the clock")
        # peak EWMA needs latency history; the plain-Python pool has none to offer
        peers = ([Op("python", getattr(py, strategy), (), check=py_check,
                     note="list of dicts, plain Python")] if hasattr(py, strategy) else [])
        return Comparison(
            f"select {strategy} n={n}",
            Op("arbiter", lb.select_agent, (), check=check,
               note=f"LoadBalancer(strategy={strategy!r}).select_agent()"),
            peers=peers,
            floor=floor_op,
        )

    factory.__name__ = f"select_{strategy}_{n}"
    return factory


SELECT_CASES = [select_case(s, n) for s in SELECT_STRATEGIES for n in SELECT_SIZES]

# ---------------------------------------------------------------------------
# RuntimeOptimizer.analyze, on the workload of bench_optimizer.py (100k samples
# in 100 series) against its numpy baseline


def _optimizer_workload() -> Any:
    try:
        workload = importlib.import_module("bench_optimizer")
    except ImportError as exc:       # no optimizer in this build
        raise NotImplementedError(f"no RuntimeOptimizer in this build ({exc})") from None
    return workload


def optimizer_full() -> Comparison:
    """The first analysis of a full window."""
    w = _optimizer_workload()

    def check(analysis: Any) -> None:
        assert analysis.new_samples == w.N_SAMPLES and len(analysis.trends) == w.N_SERIES

    return Comparison(
        "RuntimeOptimizer.analyze, full",
        Op("arbiter", lambda opt: opt.analyze(), check=check,
           setup=lambda: (w.fresh_optimizer()[0],),
           note="first analyze(): detection, stats, trends, recommendations of 100 series"),
        peers=[Op("numpy", w.numpy_baseline, (w.TS, w.KEYS, w.VALS),
                  check=lambda out: _equal(w.N_SERIES)(len(out)),
                  note="argsort group-by, then mean, max, slope, p95 per series")],
    )


def optimizer_incremental() -> Comparison:
    """An analysis after 10 new samples in 2 series."""
    w = _optimizer_workload()
    opt, clock = w.fresh_optimizer()
    opt.analyze()
    types = w.TYPES

    def add_samples() -> tuple[()]:
        clock.advance(0.1)
        for i in range(10):
            opt.record_metric(types[(10 + i % 2) % len(types)], 50.0, f"svc{10 + i % 2}")
        return ()

    def check(analysis: Any) -> None:
        assert analysis.new_samples == 10 and analysis.series_recomputed == 2

    return Comparison(
        "RuntimeOptimizer.analyze, incremental",
        Op("arbiter", opt.analyze, check=check, setup=add_samples,
           note="analyze() after 10 new samples in 2 of 100 series"),
        peers=[Op("numpy", w.numpy_baseline, (w.TS, w.KEYS, w.VALS),
                  check=lambda out: _equal(w.N_SERIES)(len(out)),
                  note="the numpy baseline has to recompute everything")],
    )


OPTIMIZER_CASES = [optimizer_full, optimizer_incremental]

# ---------------------------------------------------------------------------
# Allocation through the manager (needs the manager: skipped without it)

ALLOCATION_SIZES = (100, 10_000)


def allocation_case(n: int) -> Callable[[], Comparison]:
    """The factory comparing one allocate+release cycle with a plain-Python scan."""

    def factory() -> Comparison:
        ManualClock, AdaptiveResourceManager, ResourceManagerConfig, AllocationRequest = need(
            "ManualClock", "AdaptiveResourceManager", "ResourceManagerConfig",
            "AllocationRequest")
        config = ResourceManagerConfig(load_balancing_strategy="least_loaded", max_agents=n,
                                       seed=7)
        arm = AdaptiveResourceManager(config, clock=ManualClock(start=0.0))
        usage = pool_usage(n)
        for i, (c, m, t, w) in enumerate(zip(*usage, strict=True)):
            arm.register_agent(f"agent-{i}", max_tasks=10, weight=w)
            arm.record_usage(f"agent-{i}", cpu=c, memory=m)
            arm.monitor.update_task_count(f"agent-{i}", t)
        request = AllocationRequest("bench", "task")
        py = PyPool(*usage)
        expected = py.least_loaded()

        def cycle() -> Any:
            res = arm.allocate_resources(request)
            arm.release_resources("bench", success=True, duration_s=0.01)
            return res.agent_id

        return Comparison(
            f"allocate+release n={n}",
            Op("arbiter", cycle, check=_equal(expected),
               note="manager.allocate_resources(req) then release_resources(id), least loaded"),
            peers=[Op("python", py.least_loaded, check=_equal(expected),
                      note="the least-loaded scan alone, over a list of dicts")],
            targets={"python": 0.06 if n <= 100 else 0.01},
        )

    factory.__name__ = f"allocation_{n}"
    return factory


def request_build() -> Comparison:
    """Building the common request: the compiled type against the frozen
    dataclass it replaced (kept in ``_dataclass_request.py``)."""
    (AllocationRequest,) = need("AllocationRequest")
    from _dataclass_request import DataclassRequest

    def check(r: Any) -> None:
        assert r.request_id == "bench" and r.timeout_s == 30.0

    return Comparison(
        "request build",
        Op("arbiter", lambda: AllocationRequest("bench", "task"), check=check,
           note='AllocationRequest("bench", "task"): the compiled type'),
        peers=[Op("dataclass", lambda: DataclassRequest("bench", "task"), check=check,
                  note="the frozen dataclass it was before (issue 23)")],
        targets={"dataclass": 0.5},
    )


def user_path_case(n: int) -> Callable[[], Comparison]:
    """The factory comparing what a user pays -- build a request, allocate,
    release -- with a plain-Python scan."""

    def factory() -> Comparison:
        ManualClock, AdaptiveResourceManager, ResourceManagerConfig, AllocationRequest = need(
            "ManualClock", "AdaptiveResourceManager", "ResourceManagerConfig",
            "AllocationRequest")
        arm = AdaptiveResourceManager(ResourceManagerConfig(
            load_balancing_strategy="least_loaded", max_agents=n, seed=7),
            clock=ManualClock(start=0.0))
        usage = pool_usage(n)
        for i, (c, m, t, w) in enumerate(zip(*usage, strict=True)):
            arm.register_agent(f"agent-{i}", max_tasks=10, weight=w)
            arm.record_usage(f"agent-{i}", cpu=c, memory=m)
            arm.monitor.update_task_count(f"agent-{i}", t)
        py = PyPool(*usage)
        expected = py.least_loaded()
        allocate, release = arm.allocate_resources, arm.release_resources

        def cycle() -> Any:
            res = allocate(AllocationRequest("bench", "task"))
            release("bench", True, 0.01)
            return res.agent_id

        return Comparison(
            f"construct+allocate+release n={n}",
            Op("arbiter", cycle, check=_equal(expected),
               note="AllocationRequest(...), allocate_resources, release_resources"),
            peers=[Op("python", py.least_loaded, check=_equal(expected),
                      note="the least-loaded scan alone, over a list of dicts")],
            targets={"python": 0.08},
        )

    factory.__name__ = f"user_path_{n}"
    return factory


def _cycling_manager(strategy: str, n: int) -> Callable[[], Any]:
    """An allocate+release cycle through a manager of ``n`` agents (10 slots each)."""
    ManualClock, AdaptiveResourceManager, ResourceManagerConfig, AllocationRequest = need(
        "ManualClock", "AdaptiveResourceManager", "ResourceManagerConfig", "AllocationRequest")
    arm = AdaptiveResourceManager(ResourceManagerConfig(
        load_balancing_strategy=strategy, max_agents=n, seed=7), clock=ManualClock())
    usage = pool_usage(n)
    for i, (c, m, t, w) in enumerate(zip(*usage, strict=True)):
        arm.register_agent(f"agent-{i}", max_tasks=10, weight=w)
        arm.record_usage(f"agent-{i}", cpu=c, memory=m)
        arm.monitor.update_task_count(f"agent-{i}", t)
    request = AllocationRequest("bench", "task")

    def cycle() -> Any:
        res = arm.allocate_resources(request)
        arm.release_resources("bench", success=True, duration_s=0.01)
        return res.agent_id

    return cycle


def p2c_flat() -> Comparison:
    """POWER_OF_TWO allocate+release at 10,000 agents against 10 agents: O(1)."""
    big, small = _cycling_manager("power_of_two", 10_000), _cycling_manager("power_of_two", 10)

    def check(agent: Any) -> None:
        assert isinstance(agent, str)

    return Comparison(
        "allocate+release power_of_two n=10,000 vs n=10",
        Op("arbiter", big, check=check, note="power_of_two through the manager, 10,000 agents"),
        peers=[Op("n=10", small, check=check, note="the same cycle on 10 agents")],
        targets={"n=10": 1.3},
    )


class _DeepQueue:
    """A pool of 100 single-slot agents, all busy, and ``depth`` requests waiting
    (mixed priorities, so the heap is really exercised).

    One operation releases the oldest running task (which dispatches the head
    of the queue into its slot) and submits a new MEDIUM request, so the
    queue keeps its depth.  The clock stands still, so nothing ages: LOW
    requests stay at the back, and a new request is served within ``depth``
    operations.  The new requests are built ahead (an AllocationRequest costs
    more than what is measured) and reused in a cycle of ``depth + 200``:
    each has been served and released before its id comes round again.
    """

    def __init__(self, depth: int, seed: int = 3) -> None:
        (ManualClock, AdaptiveResourceManager, ResourceManagerConfig, AllocationRequest,
         TaskPriority) = need("ManualClock", "AdaptiveResourceManager", "ResourceManagerConfig",
                              "AllocationRequest", "TaskPriority")
        rng = random.Random(seed)
        self.arm = arm = AdaptiveResourceManager(
            ResourceManagerConfig(max_queue=depth + 10, seed=seed), clock=ManualClock())
        for i in range(100):
            arm.register_agent(f"agent-{i}", max_tasks=1)
        prios = list(TaskPriority)
        self.running: collections.deque[str] = collections.deque()
        arm.allocator.on_transition(self._moved)
        for i in range(100 + depth):
            res = arm.allocate_resources(AllocationRequest(f"s{i}", "t", timeout_s=1e9,
                                                           priority=rng.choice(prios)))
            if res.status.value == "allocated":
                self.running.append(res.request_id)
        self.depth = depth
        self.fresh = itertools.cycle([AllocationRequest(f"n{i}", "t", timeout_s=1e9)
                                      for i in range(depth + 200)])

    def _moved(self, request_id: str, status: Any, agent: Any) -> None:
        self.running.append(request_id)

    def op(self) -> int:
        self.arm.release_resources(self.running.popleft(), True, 0.01)
        self.arm.allocate_resources(next(self.fresh))
        return self.arm.allocator.queued_count

    def check(self, queued: int) -> None:
        assert queued == self.depth


def deep_queue() -> Comparison:
    """Release-with-dispatch + submit at a 100,000-deep queue against depth 100."""
    deep, shallow = _DeepQueue(100_000), _DeepQueue(100)
    return Comparison(
        "release+dispatch+submit queue 100,000 vs 100",
        Op("arbiter", deep.op, check=deep.check,
           note="release (dispatches the queue head) + submit, 100,000 waiting, mixed priorities"),
        peers=[Op("depth 100", shallow.op, check=shallow.check,
                  note="the same at 100 waiting")],
        targets={"depth 100": 3.0},
    )


def tenants_overhead() -> Comparison:
    """allocate+release with tenants in use (policies, three tenants in turn)
    against the same pool with no tenants at all."""
    ManualClock, AdaptiveResourceManager, ResourceManagerConfig, AllocationRequest = need(
        "ManualClock", "AdaptiveResourceManager", "ResourceManagerConfig", "AllocationRequest")

    def build(tenants: bool) -> Callable[[], Any]:
        arm = AdaptiveResourceManager(ResourceManagerConfig(seed=7), clock=ManualClock())
        for i in range(100):
            arm.register_agent(f"agent-{i}", max_tasks=10)
        names = ["gold", "silver", "bronze"] if tenants else ["default"]
        if tenants:
            arm.set_tenant_policy("gold", weight=3.0, max_active=500, rate_per_s=1e9)
            arm.set_tenant_policy("silver", weight=2.0, max_queued=1000)
            arm.set_tenant_policy("bronze", weight=1.0)
        reqs = itertools.cycle([AllocationRequest(f"bench-{t}", "task", tenant=t)
                                for t in names])

        def cycle() -> Any:
            r = next(reqs)
            res = arm.allocate_resources(r)
            arm.release_resources(r.request_id, True, 0.01)
            return res.status.value

        return cycle

    def check(status: Any) -> None:
        assert status == "allocated"

    return Comparison(
        "allocate+release with tenants vs none",
        Op("arbiter", build(True), check=check,
           note="three tenants with weights, caps and a bucket, in turn; 100 agents"),
        peers=[Op("no tenants", build(False), check=check,
                  note="the same cycle, every request in the default tenant")],
        targets={"no tenants": 1.1},
    )


ALLOCATION_CASES = [allocation_case(n) for n in ALLOCATION_SIZES] + [
    request_build, user_path_case(100), p2c_flat, deep_queue, tenants_overhead]

# LiteLLM's Router (optional: only where litellm is installed, never in CI).
# Each of its strategies against ours with the closest policy.
LITELLM_PAIRS = (("simple-shuffle", "weighted"), ("least-busy", "least_loaded"),
                 ("latency-based-routing", "peak_ewma"))
LITELLM_SIZES = (10, 100)


def _litellm_pick(router: Any, messages: Any) -> Any:
    return router.get_available_deployment(model="m", messages=messages)


def litellm_case(routing: str, strategy: str, n: int) -> Callable[[], Comparison]:
    """The factory comparing LiteLLM ``Router.get_available_deployment`` with ours."""

    def factory() -> Comparison:
        try:
            # LiteLLM fetches a model cost map over the network at import
            # unless told to use its bundled copy: never leave the machine
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            router_cls = importlib.import_module("litellm").Router
        except ImportError:
            raise NotImplementedError("litellm is not installed") from None
        logging.getLogger("LiteLLM").setLevel(logging.ERROR)
        lb = balancer(strategy, n)
        model_list = [
            {"model_name": "m",
             "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "unused",
                                "api_base": "http://127.0.0.1:9", "rpm": 10**6, "tpm": 10**9},
             "model_info": {"id": f"agent-{i}"}}
            for i in range(n)]
        router = router_cls(model_list=model_list, routing_strategy=routing)
        ids = {f"agent-{i}" for i in range(n)}

        def check(decision: Any) -> None:
            assert decision.selected_agent_id in ids

        def router_check(deployment: Any) -> None:
            assert deployment["model_info"]["id"] in ids

        return Comparison(
            f"select vs LiteLLM {routing} n={n}",
            Op("arbiter", lb.select_agent, (), check=check,
               note=f"LoadBalancer(strategy={strategy!r}).select_agent()"),
            peers=[Op(f"litellm {routing}", _litellm_pick,
                      (router, [{"role": "user", "content": "hi"}]), check=router_check,
                      note="Router.get_available_deployment(model, messages), no network")],
        )

    factory.__name__ = f"litellm_{routing}_{n}"
    return factory


LITELLM_CASES = [litellm_case(r, s, n) for r, s in LITELLM_PAIRS for n in LITELLM_SIZES]

RING_CASES: list[Callable[[], Comparison]] = [
    ring_record, ring_record_many, ring_snapshot, ring_stats, ring_quantile,
    ring_count_beyond, ring_slope, ring_stats_keyed, ring_count_beyond_keyed, ring_slope_keyed,
]
MONITOR_CASES: list[Callable[[], Comparison]] = [monitor_record_metric, series_record]
ALL_CASES = (RING_CASES + MONITOR_CASES + OPTIMIZER_CASES + SELECT_CASES + ALLOCATION_CASES
             + LITELLM_CASES)


def params(factories: list[Callable[[], Comparison]]) -> list[Any]:
    """``(factory, label)`` pytest params for every op of every comparison.

    A factory whose subsystem is not in this build (NotImplementedError) gives
    one skipped param.
    """
    out = []
    for f in factories:
        try:
            c = f()
        except NotImplementedError as exc:
            out.append(pytest.param(f, "", id=f.__name__, marks=pytest.mark.skip(reason=str(exc))))
            continue
        out += [pytest.param(f, op.label, id=f"{c.name}-{op.label}") for op in c.ops]
    return out
