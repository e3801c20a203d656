"""The grouped kernels of MetricRing against numpy and against each other."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbiter_core import MetricRing

K = 5


def _ring(ts, keys, vals, capacity=None):
    ring = MetricRing(capacity or max(1, len(vals)))
    ring.record_many(np.asarray(keys, dtype=np.int64), vals, ts)
    return ring


def _scan_arrays(nkeys, thr=80.0, above=1):
    return (np.full(nkeys, -np.inf), np.zeros(nkeys, np.int64), np.full(nkeys, thr),
            np.full(nkeys, above, np.uint8), np.empty((nkeys, 8)))


def test_group_window_matches_numpy():
    rng = np.random.default_rng(3)
    n = 5000
    ts = np.sort(rng.uniform(0.0, 100.0, n)) + 1.7e9   # large epoch: shifted sums stay precise
    keys = rng.integers(0, K, n)
    vals = rng.normal(50.0, 10.0, n) + 0.2 * (ts - 1.7e9)
    ring = _ring(ts, keys, vals)
    out = np.full((K, 12), -1.0)
    mask = np.ones(K, np.uint8)
    ring.group_window(1.7e9 + 10.0, 1.7e9 + 90.0, mask, np.full(K, 60.0), mask, 0.95, out)
    for k in range(K):
        sel = (keys == k) & (ts >= 1.7e9 + 10.0) & (ts <= 1.7e9 + 90.0)
        v, t = vals[sel], ts[sel]
        slope = np.polyfit(t - t[0], v, 1)[0]
        expected = [sel.sum(), v.mean(), v.min(), v.max(), v.std(ddof=1), t[0], t[-1], v[-1],
                    slope, t.mean(), np.quantile(v, 0.95), (v > 60.0).sum()]
        np.testing.assert_allclose(out[k], expected, rtol=1e-9, atol=1e-9)


def test_group_window_leaves_unmasked_rows_and_reports_empty_series():
    ring = _ring([1.0, 2.0], [0, 0], [5.0, 7.0])
    out = np.full((3, 12), 42.0)
    mask = np.array([1, 0, 1], np.uint8)
    ring.group_window(0.0, 10.0, mask, np.full(3, np.nan), np.ones(3, np.uint8), np.nan, out)
    assert out[0, 0] == 2 and out[0, 1] == 6.0 and np.isnan(out[0, 10])
    assert out[0, 11] == 0          # a NaN threshold counts nothing
    assert (out[1] == 42.0).all()   # untouched
    assert out[2, 0] == 0 and np.isnan(out[2, 1:11]).all() and out[2, 11] == 0


def test_group_window_single_timestamp_has_no_slope():
    ring = _ring([5.0, 5.0, 5.0], [0, 0, 0], [1.0, 2.0, 3.0])
    out = np.empty((1, 12))
    one = np.ones(1, np.uint8)
    ring.group_window(0.0, 10.0, one, np.array([2.0]), np.zeros(1, np.uint8), 0.5, out)
    assert np.isnan(out[0, 8])
    assert out[0, 10] == 2.0
    assert out[0, 11] == 1          # below 2.0 is bad when above=0


def test_group_window_validates_arguments():
    ring = MetricRing(4)
    one = np.ones(2, np.uint8)
    with pytest.raises(ValueError, match="q must be"):
        ring.group_window(0.0, 1.0, one, np.zeros(2), one, 1.5, np.empty((2, 12)))
    with pytest.raises(ValueError, match="out must have shape"):
        ring.group_window(0.0, 1.0, one, np.zeros(2), one, 0.5, np.empty((2, 11)))
    with pytest.raises(ValueError, match="thresholds and above"):
        ring.group_window(0.0, 1.0, one, np.zeros(3), one, 0.5, np.empty((2, 12)))
    with pytest.raises(ValueError, match="since and until"):
        ring.group_window(np.nan, 1.0, one, np.zeros(2), one, 0.5, np.empty((2, 12)))


def test_group_scan_reports_each_sample_once_with_ties():
    ring = MetricRing(16)
    for _ in range(3):
        ring.record(0, 90.0, 5.0)
    wm, skip, thr, above, out = _scan_arrays(1)
    ring.group_scan(0.0, 5.0, wm, skip, thr, above, out)
    assert out[0, :2].tolist() == [3, 3]
    assert (wm[0], skip[0]) == (5.0, 3)
    ring.record(0, 70.0, 5.0)       # same timestamp, recorded after the scan
    ring.group_scan(0.0, 5.0, wm, skip, thr, above, out)
    assert out[0, :2].tolist() == [1, 0]
    assert out[0, 6:].tolist() == [5.0, 70.0]
    ring.group_scan(0.0, 5.0, wm, skip, thr, above, out)
    assert out[0, 0] == 0 and np.isnan(out[0, 2:]).all()


def test_group_scan_summaries_and_direction():
    ring = _ring([1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1], [90.0, 85.0, 60.0, 75.0])
    wm, skip, thr, _, out = _scan_arrays(2, thr=80.0)
    above = np.array([1, 0], np.uint8)      # key 1: below 80 is bad
    ring.group_scan(0.0, 10.0, wm, skip, thr, above, out)
    # new, exceed, first_exc_ts, last_exc_ts, last_exc_v, worst, last_ts, last_v
    assert out[0].tolist() == [2, 2, 1.0, 2.0, 85.0, 90.0, 2.0, 85.0]
    assert out[1].tolist() == [2, 2, 3.0, 4.0, 75.0, 60.0, 4.0, 75.0]


def test_group_scan_leaves_future_samples_for_later_and_ignores_unknown_keys():
    ring = _ring([1.0, 2.0, 9.0], [0, 7, 0], [1.0, 1.0, 2.0])
    wm, skip, thr, above, out = _scan_arrays(1)
    assert ring.group_scan(0.0, 5.0, wm, skip, thr, above, out) == 2
    assert out[0, 0] == 1
    ring.group_scan(0.0, 10.0, wm, skip, thr, above, out)
    assert out[0, 0] == 1 and out[0, 7] == 2.0


def test_group_scan_validates_arguments():
    ring = MetricRing(4)
    wm, skip, thr, above, out = _scan_arrays(2)
    with pytest.raises(ValueError, match="wm_skip, thresholds and above"):
        ring.group_scan(0.0, 1.0, wm, skip[:1], thr, above, out)
    with pytest.raises(ValueError, match="out must have shape"):
        ring.group_scan(0.0, 1.0, wm, skip, thr, above, np.empty((2, 7)))
    assert ring.bounds()[0] != ring.bounds()[0]   # NaN when empty


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20), st.floats(0, 100)),
                min_size=1, max_size=60),
       st.lists(st.integers(0, 20), min_size=1, max_size=6))
def test_group_scan_partitions_the_stream(samples, cut_times):
    """Scanning in steps (any cut points) sees every sample exactly once."""
    samples.sort(key=lambda s: s[1])
    ring = MetricRing(len(samples))
    wm, skip, thr, above, out = _scan_arrays(4, thr=50.0)
    seen = np.zeros(4)
    exceeded = np.zeros(4)
    recorded = 0
    for cut in sorted(cut_times) + [20]:
        while recorded < len(samples) and samples[recorded][1] <= cut:
            k, t, v = samples[recorded]
            ring.record(k, v, float(t))
            recorded += 1
        ring.group_scan(0.0, float(cut), wm, skip, thr, above, out)
        seen += out[:, 0]
        exceeded += out[:, 1]
    for k in range(4):
        assert seen[k] == sum(1 for s in samples if s[0] == k)
        assert exceeded[k] == sum(1 for s in samples if s[0] == k and s[2] > 50.0)
