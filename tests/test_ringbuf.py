import math
import sys
import threading
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from arbiter_core import MetricRing, SeriesHandle, WindowStats, _ringbuf
from ring_model import RingModel

sys.path.insert(0, __file__.rsplit("/", 1)[0])

# -- construction and basic contract ------------------------------------------


@pytest.mark.parametrize("bad", [0, -1])
def test_capacity_below_one_is_value_error(bad):
    with pytest.raises(ValueError, match="capacity"):
        MetricRing(bad)


@pytest.mark.parametrize("bad", [1.5, "10", None, True])
def test_capacity_must_be_int(bad):
    with pytest.raises(TypeError, match="capacity"):
        MetricRing(bad)


def test_overwrites_oldest_when_full():
    ring = MetricRing(3)
    for i in range(5):
        ring.record(7, float(i), timestamp=float(i))
    assert len(ring) == 3
    assert ring.capacity == 3
    assert ring.total_recorded == 5
    ts, keys, vals = ring.snapshot()
    assert ts.tolist() == [2.0, 3.0, 4.0]
    assert keys.tolist() == [7, 7, 7]
    assert vals.tolist() == [2.0, 3.0, 4.0]
    assert ts.dtype == np.float64 and keys.dtype == np.int64


def test_snapshot_bounds_are_inclusive_and_filter_keys():
    ring = MetricRing(10)
    for i in range(6):
        ring.record(i % 2, float(i * 10), timestamp=float(i))
    ts, _, vals = ring.snapshot(1.0, 4.0)
    assert ts.tolist() == [1.0, 2.0, 3.0, 4.0]
    _, keys, vals = ring.snapshot(1.0, 4.0, key=1)
    assert vals.tolist() == [10.0, 30.0]
    assert keys.tolist() == [1, 1]
    _, _, vals = ring.snapshot(key=[0, 1])
    assert len(vals) == 6
    _, _, vals = ring.snapshot(key=[])
    assert len(vals) == 0
    assert len(ring.snapshot(5.5, 4.0)[0]) == 0  # empty when since > until


def test_snapshot_is_a_copy():
    ring = MetricRing(4)
    ring.record(1, 1.0, 0.0)
    _, _, vals = ring.snapshot()
    vals[0] = 99.0
    assert ring.snapshot()[2].tolist() == [1.0]


def test_record_without_timestamp_reads_the_monotonic_clock():
    import time

    ring = MetricRing(4)
    before = time.monotonic()
    ring.record(1, 2.0)
    after = time.monotonic()
    (t,), _, _ = ring.snapshot()
    assert before <= t <= after


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_value_rejected_and_nothing_stored(bad):
    ring = MetricRing(4)
    ring.record(1, 1.0, 0.0)
    with pytest.raises(ValueError, match="value"):
        ring.record(1, bad, 1.0)
    with pytest.raises(ValueError, match="timestamp"):
        ring.record(1, 1.0, bad)
    assert len(ring) == 1 and ring.total_recorded == 1


def test_record_type_errors():
    ring = MetricRing(4)
    with pytest.raises(TypeError):
        ring.record(1, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ring.record(1.5, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ring.record(1, 1.0, "now")  # type: ignore[arg-type]
    assert len(ring) == 0


def test_record_many_is_all_or_nothing():
    ring = MetricRing(8)
    with pytest.raises(ValueError, match="values"):
        ring.record_many([1, 2, 3], [1.0, math.nan, 3.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="timestamps"):
        ring.record_many([1, 2, 3], [1.0, 2.0, 3.0], [0.0, math.inf, 2.0])
    with pytest.raises(ValueError, match="shape"):
        ring.record_many([1, 2], [1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="timestamps has shape"):
        ring.record_many([1, 2, 3], [1.0, 2.0, 3.0], [0.0, 1.0])
    with pytest.raises(TypeError, match="keys"):
        ring.record_many([1.5, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    with pytest.raises(TypeError):
        ring.record_many(1.5, [1.0], 0.0)
    with pytest.raises(ValueError, match="one-dimensional"):
        ring.record_many(1, [[1.0]], 0.0)
    assert len(ring) == 0 and ring.total_recorded == 0
    ring.record_many(3, [1.0, 2.0], 5.0)  # scalar key and timestamp broadcast
    ring.record_many([4, 5], np.array([3.0, 4.0]), np.array([6.0, 7.0]))
    ring.record_many([], [], [])
    ts, keys, vals = ring.snapshot()
    assert ts.tolist() == [5.0, 5.0, 6.0, 7.0]
    assert keys.tolist() == [3, 3, 4, 5]
    assert vals.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_stats_known_values():
    ring = MetricRing(16)
    for i, v in enumerate([4.0, 1.0, 3.0, 2.0]):
        ring.record(1, v, float(i))
    ring.record(2, 100.0, 1.5)
    s = ring.stats(1)
    assert isinstance(s, WindowStats)
    assert s.count == 4 and s.mean == 2.5 and s.min == 1.0 and s.max == 4.0
    assert s.first == 4.0 and s.last == 2.0
    assert s.std == pytest.approx(np.std([4, 1, 3, 2], ddof=1))
    assert ring.stats(3).count == 0 and math.isnan(ring.stats(3).mean)
    one = ring.stats(2)
    assert one.count == 1 and math.isnan(one.std) and one.mean == 100.0


def test_quantile_matches_numpy_linear():
    rng = np.random.default_rng(1)
    vals = rng.normal(size=1001)
    ring = MetricRing(2000)
    ring.record_many(1, vals, np.arange(1001.0))
    for q in (0.0, 0.01, 0.5, 0.95, 0.99, 1.0):
        assert ring.quantile(1, q) == pytest.approx(np.quantile(vals, q), abs=1e-12)
    got = ring.quantile(1, [0.5, 0.9, 0.99])
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, np.quantile(vals, [0.5, 0.9, 0.99]))
    assert math.isnan(ring.quantile(2, 0.5))


@pytest.mark.parametrize("bad", [-0.1, 1.1, math.nan, [0.5, 2.0]])
def test_quantile_q_out_of_range(bad):
    ring = MetricRing(4)
    ring.record(1, 1.0, 0.0)
    with pytest.raises(ValueError, match="q must be within"):
        ring.quantile(1, bad)


def test_count_beyond_is_strict():
    ring = MetricRing(8)
    ring.record_many(1, [79.0, 80.0, 81.0, 90.0], [0.0, 1.0, 2.0, 3.0])
    assert ring.count_beyond(1, 80.0) == 2
    assert ring.count_beyond(1, 80.0, above=False) == 1
    assert ring.count_beyond(1, 80.0, True, 2.0, 2.0) == 1
    with pytest.raises(ValueError, match="threshold"):
        ring.count_beyond(1, math.nan)


def test_slope_units_per_second():
    ring = MetricRing(100)
    t = np.arange(50.0) * 0.5 + 1e9  # large epoch: precision must survive
    ring.record_many(1, 3.0 * (t - 1e9) + 7.0, t)
    assert ring.slope(1) == pytest.approx(3.0, rel=1e-9)
    assert math.isnan(ring.slope(2))
    ring.record(3, 1.0, 2e9)
    ring.record(3, 2.0, 2e9)
    assert math.isnan(ring.slope(3))  # one timestamp: no slope
    same = MetricRing(3)
    for _ in range(3):  # 3 * 3.57 / 3 != 3.57 in floating point: must still be NaN
        same.record(0, 0.0, 3.57)
    assert math.isnan(same.slope(0))


def test_bounds_must_not_be_nan():
    ring = MetricRing(4)
    with pytest.raises(ValueError, match="since"):
        ring.stats(1, math.nan)
    with pytest.raises(ValueError, match="until"):
        ring.snapshot(None, math.nan)
    with pytest.raises(TypeError, match="since"):
        ring.slope(1, "yesterday")


def test_latest():
    ring = MetricRing(8)
    for i in range(6):
        ring.record(i % 2, float(i), float(i))
    assert ring.latest(3)[2].tolist() == [3.0, 4.0, 5.0]
    assert ring.latest(2, key=0)[2].tolist() == [2.0, 4.0]
    assert ring.latest(100, key=1)[2].tolist() == [1.0, 3.0, 5.0]
    assert len(ring.latest(0)[2]) == 0
    assert len(ring.latest(-3)[2]) == 0


def test_clear_before_and_clear():
    ring = MetricRing(5)
    for i in range(7):
        ring.record(1, float(i), float(i))
    assert ring.clear_before(4.0) == 2
    assert ring.snapshot()[0].tolist() == [4.0, 5.0, 6.0]
    ring.record(1, 7.0, 7.0)
    assert ring.snapshot()[0].tolist() == [4.0, 5.0, 6.0, 7.0]
    assert ring.clear_before(100.0) == 4
    assert len(ring) == 0
    ring.record(1, 8.0, 8.0)
    assert ring.snapshot()[0].tolist() == [8.0]
    ring.clear()
    assert len(ring) == 0 and ring.total_recorded == 9


def test_out_of_order_samples_keep_time_order():
    ring = MetricRing(4)
    ring.record(1, 10.0, 10.0)
    ring.record(1, 30.0, 30.0)
    ring.record(1, 20.0, 20.0)  # late: inserted at its place
    assert ring.snapshot()[0].tolist() == [10.0, 20.0, 30.0]
    assert ring.late_inserts == 1
    ring.record(1, 40.0, 40.0)
    ring.record(1, 5.0, 5.0)  # full and older than everything: it is the one evicted
    assert ring.snapshot()[0].tolist() == [10.0, 20.0, 30.0, 40.0]
    assert ring.dropped_late == 1 and ring.total_recorded == 5
    ring.record(1, 15.0, 15.0)  # full: evicts 10, lands between 10 and 20
    assert ring.snapshot()[0].tolist() == [15.0, 20.0, 30.0, 40.0]


def test_series_handle_records_into_its_key():
    ring = MetricRing(8)
    h = ring.series(42)
    assert isinstance(h, SeriesHandle) and h.key == 42 and h.ring is ring
    h.record(1.5, 3.0)
    h.record(2.5)
    ts, keys, vals = ring.snapshot()
    assert keys.tolist() == [42, 42] and vals.tolist() == [1.5, 2.5]
    with pytest.raises(ValueError, match="value"):
        h.record(math.nan)
    assert len(ring) == 2


def test_series_handle_uses_given_clock():
    from arbiter_core import ManualClock

    clock = ManualClock(start=100.0)
    ring = MetricRing(8)
    h = ring.series(1, clock)
    h.record(1.0)
    clock.advance(5)
    h.record(2.0)
    assert ring.snapshot()[0].tolist() == [100.0, 105.0]


# -- threads ---------------------------------------------------------------------


def test_concurrent_records_lose_nothing():
    ring = MetricRing(10_000)
    n_threads, per_thread = 8, 100_000
    start = threading.Barrier(n_threads)

    def work(k: int) -> None:
        rec = ring.record
        start.wait()
        for i in range(per_thread):
            rec(k, float(i), None)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ring.total_recorded == n_threads * per_thread
    assert len(ring) == 10_000
    ts = ring.snapshot()[0]
    assert (np.diff(ts) >= 0).all()  # still time-ordered


def test_concurrent_batches_lose_nothing():
    ring = MetricRing(50_000)
    n_threads, batches, size = 4, 20, 20_000
    start = threading.Barrier(n_threads)
    vals = np.ones(size)

    def work(k: int) -> None:
        start.wait()
        for _ in range(batches):
            ring.record_many(k, vals)
            ring.record(k, 1.0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ring.total_recorded == n_threads * batches * (size + 1)
    ts = ring.snapshot()[0]
    assert (np.diff(ts) >= 0).all()


def test_queries_concurrent_with_writers_stay_consistent():
    ring = MetricRing(1000)
    stop = threading.Event()

    def writer() -> None:
        t = 0.0
        while not stop.is_set():
            for _ in range(1000):
                t += 1.0
                ring.record(1, 5.0, t)

    th = threading.Thread(target=writer)
    th.start()
    try:
        for _ in range(100):
            s = ring.stats(1)
            assert s.count == 0 or (s.min == 5.0 and s.max == 5.0)
            assert ring.count_beyond(1, 5.0) == 0
            q = ring.quantile(1, 0.5)
            assert math.isnan(q) or q == 5.0
    finally:
        stop.set()
        th.join()


# -- property tests against the pure-Python model ---------------------------------

times = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
values = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
keys = st.integers(min_value=0, max_value=3)


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-6 * (1 + abs(b)))


class RingMachine(RuleBasedStateMachine):
    @initialize(capacity=st.integers(min_value=1, max_value=12))
    def setup(self, capacity):
        self.ring = MetricRing(capacity)
        self.model = RingModel(capacity)
        self.clock = 0.0

    @rule(key=keys, value=values, step=st.floats(min_value=0, max_value=10))
    def record_in_order(self, key, value, step):
        self.clock += step
        self.ring.record(key, value, self.clock)
        self.model.record(key, value, self.clock)

    @rule(key=keys, value=values, ts=times)
    def record_any_time(self, key, value, ts):
        self.ring.record(key, value, ts)
        self.model.record(key, value, ts)

    @rule(batch=st.lists(st.tuples(keys, values, times), max_size=20))
    def record_many(self, batch):
        ks = [b[0] for b in batch]
        vs = [b[1] for b in batch]
        ts = [b[2] for b in batch]
        self.ring.record_many(np.array(ks, dtype=np.int64), vs, ts)
        for k, v, t in batch:
            self.model.record(k, v, t)

    @rule(ts=times)
    def clear_before(self, ts):
        assert self.ring.clear_before(ts) == self.model.clear_before(ts)

    @rule(since=st.none() | times, until=st.none() | times, key=st.none() | keys)
    def snapshot(self, since, until, key):
        t, k, v = self.ring.snapshot(since, until, key)
        sel = self.model.select(since=since, until=until, key=key)
        assert list(zip(t.tolist(), k.tolist(), v.tolist())) == sel

    @rule(since=st.none() | times, until=st.none() | times, key=st.none() | keys)
    def stats(self, since, until, key):
        got = self.ring.stats(key, since, until)
        want = self.model.stats(since=since, until=until, key=key)
        assert got.count == want[0]
        for g, w in zip(got[1:], want[1:]):
            assert _close(g, w), (got, want)

    @rule(q=st.floats(0, 1), key=st.none() | keys, since=st.none() | times)
    def quantile(self, q, key, since):
        got = self.ring.quantile(key, q, since)
        assert _close(got, self.model.quantile(q, since=since, key=key))

    @rule(thr=values, above=st.booleans(), key=st.none() | keys)
    def count_beyond(self, thr, above, key):
        assert self.ring.count_beyond(key, thr, above) == self.model.count_beyond(
            thr, above, key=key)

    @precondition(lambda self: True)
    @rule(key=st.none() | keys)
    def slope(self, key):
        got = self.ring.slope(key)
        want = self.model.slope(key=key)
        ts = [t for t, _, _ in self.model.select(key=key)]
        if len(ts) >= 2 and 0 < max(ts) - min(ts) < 1e-9 * max(1.0, *map(abs, ts)):
            # a time spread of a few ulps: any slope is rounding noise, only
            # require that the ring does not crash or invent an undefined value
            assert math.isnan(got) or math.isfinite(got)
            return
        if math.isnan(want) or math.isnan(got):
            # degenerate spreads: both must agree it is undefined, unless the
            # model's float rounding differs on a nearly-zero time spread
            assert math.isnan(got) == math.isnan(want) or abs(want) > 1e12 or abs(got) > 1e12
        else:
            assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6 * (1 + abs(want)))

    @rule(count=st.integers(-2, 15), key=st.none() | keys)
    def latest(self, count, key):
        t, k, v = self.ring.latest(count, key)
        sel = self.model.select(key=key)
        want = sel[max(0, len(sel) - count):] if count > 0 else []
        assert list(zip(t.tolist(), k.tolist(), v.tolist())) == want

    @invariant()
    def sizes_agree(self):
        assert len(self.ring) == len(self.model.items)
        assert self.ring.total_recorded == self.model.total_recorded
        assert self.ring.dropped_late == self.model.dropped_late


TestRingMachine = RingMachine.TestCase


@given(st.lists(values, min_size=1, max_size=300), st.floats(0, 1))
def test_quantile_property(vals, q):
    ring = MetricRing(len(vals))
    ring.record_many(0, vals, 0.0)
    assert _close(ring.quantile(0, q), float(np.quantile(vals, q)))


# -- large windows take the sampled one-pass quantile: it must stay exact ----------
#
# The quantile kernels dispatch at run time to AVX-512, AVX2 or scalar code; every
# level this CPU supports must give numpy's answer to the last bit.

LEVELS = list(range(_ringbuf._simd_best() + 1))


@pytest.fixture(params=LEVELS, ids=["scalar", "avx2", "avx512"][: len(LEVELS)])
def simd_level(request):
    before = _ringbuf._simd_level()
    assert _ringbuf._set_simd_level(request.param) == request.param
    yield request.param
    _ringbuf._set_simd_level(before)


def test_simd_level_hook_clamps():
    before = _ringbuf._simd_level()
    try:
        assert _ringbuf._set_simd_level(99) == _ringbuf._simd_best()
        assert _ringbuf._set_simd_level(-5) == 0
        assert _ringbuf._simd_level() == 0
    finally:
        _ringbuf._set_simd_level(before)


def _organ_pipe(rng, n):
    half = np.sort(rng.normal(size=n // 2))
    return np.concatenate([half, half[::-1], rng.normal(size=n - 2 * (n // 2))])


DISTRIBUTIONS = {
    "uniform": lambda rng, n: rng.random(n),
    "sorted": lambda rng, n: np.sort(rng.normal(size=n)),
    "reversed": lambda rng, n: np.sort(rng.normal(size=n))[::-1].copy(),
    "few_values": lambda rng, n: rng.integers(0, 3, n).astype(float),
    "constant": lambda rng, n: np.full(n, 7.0),
    "heavy_tail": lambda rng, n: rng.pareto(1.1, n) * 1e3,
    "trend": lambda rng, n: np.arange(n) * 0.01 + rng.normal(size=n),
    "organ_pipe": _organ_pipe,
    "one_outlier_mass": lambda rng, n: np.where(rng.random(n) < 0.97, 1.0, rng.normal(size=n)),
    "sawtooth": lambda rng, n: (np.arange(n) % 97).astype(float),
    "signed_zeros": lambda rng, n: rng.choice([-0.0, 0.0, 1e-300, -1e-300], n),
    "huge": lambda rng, n: rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-300, 300, n),
    "grid": lambda rng, n: np.round(rng.normal(size=n), 1),
}


@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("nkeys", [1, 3])
def test_large_window_quantiles_are_exact(dist, nkeys, simd_level):
    rng = np.random.default_rng(zlib.crc32(f"{dist}/{nkeys}".encode()))
    n = 20_000
    vals = DISTRIBUTIONS[dist](rng, n)
    keys = rng.integers(0, nkeys, n)
    ring = MetricRing(n)
    ring.record_many(keys, vals, np.arange(float(n)))
    mine = vals[keys == 0]
    idx = np.arange(n)[keys == 0]
    qs = (0.0, 0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)
    for q in qs:
        assert ring.quantile(0, q) == np.quantile(mine, q), q
        assert ring.quantile(0, q, 5000.0, 15000.0) == np.quantile(
            mine[(idx >= 5000) & (idx <= 15000)], q), q
    # several quantiles at once, all keys, a key set
    np.testing.assert_array_equal(ring.quantile(0, list(qs)), np.quantile(mine, qs))
    assert ring.quantile(None, 0.9) == np.quantile(vals, 0.9)
    assert ring.quantile([0, 2], 0.75) == np.quantile(vals[(keys == 0) | (keys == 2)], 0.75)


def _wrapped_ring(vals, keys, cap):
    """A ring whose window spans the wrap-around (two physical segments)."""
    ring = MetricRing(cap)
    n = len(vals)
    ring.record_many(keys, vals, np.arange(float(n)))
    return ring, vals[n - cap:], keys[n - cap:]


@given(n=st.integers(4096, 12_000), q=st.floats(0, 1), seed=st.integers(0, 2**32 - 1),
       nkeys=st.integers(1, 4), shape=st.sampled_from(sorted(DISTRIBUTIONS)),
       extra=st.integers(0, 5000))
def test_sampled_quantile_property(n, q, seed, nkeys, shape, extra):
    rng = np.random.default_rng(seed)
    vals = DISTRIBUTIONS[shape](rng, n + extra)
    if rng.random() < 0.5:
        vals = np.round(vals * rng.integers(1, 50), rng.integers(0, 3))
    keys = rng.integers(0, nkeys, n + extra)
    ring, v, k = _wrapped_ring(vals, keys, n)
    key = int(rng.integers(0, nkeys))
    want = float(np.quantile(v[k == key], q)) if (k == key).any() else math.nan
    for level in LEVELS:
        _ringbuf._set_simd_level(level)
        try:
            got = ring.quantile(key, q)
        finally:
            _ringbuf._set_simd_level(LEVELS[-1])
        assert got == want or (math.isnan(got) and math.isnan(want)), (level, got, want)


@given(n=st.integers(4096, 9000), seed=st.integers(0, 2**32 - 1),
       since=st.floats(-100, 9000), span=st.floats(0, 9000),
       qs=st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_sampled_quantile_windows_and_key_sets(n, seed, since, span, qs):
    rng = np.random.default_rng(seed)
    vals = rng.normal(size=n) * rng.integers(1, 1000)
    keys = rng.integers(0, 20, n)          # 17-key sets exceed the SIMD key compare
    ts = np.sort(rng.uniform(0, 9000, n))
    ring = MetricRing(n)
    ring.record_many(keys, vals, ts)
    in_time = (ts >= since) & (ts <= since + span)
    for key in (3, [1, 4, 7], list(range(17)), None):
        sel = in_time & (np.isin(keys, key) if key is not None else True)
        for level in LEVELS:
            _ringbuf._set_simd_level(level)
            try:
                for q in qs:
                    got = ring.quantile(key, q, since, since + span)
                    want = float(np.quantile(vals[sel], q)) if sel.any() else math.nan
                    assert got == want or (math.isnan(got) and math.isnan(want)), (key, q)
                got_v = ring.quantile(key, qs, since, since + span)
                want_v = np.quantile(vals[sel], qs) if sel.any() else np.full(len(qs), np.nan)
                np.testing.assert_array_equal(got_v, want_v)
            finally:
                _ringbuf._set_simd_level(LEVELS[-1])


@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
def test_sampled_quantile_bracket_misses_fall_back_exactly(dist, simd_level):
    rng = np.random.default_rng(zlib.crc32(dist.encode()))
    n = 6000
    vals = DISTRIBUTIONS[dist](rng, n)
    ring = MetricRing(n)
    ring.record_many(0, vals, np.arange(float(n)))
    old = _ringbuf._set_quantile_margin(0.0, 0.0)   # a bracket this narrow misses often
    try:
        for q in np.linspace(0.0, 1.0, 41):
            assert ring.quantile(0, q) == np.quantile(vals, q), q
    finally:
        _ringbuf._set_quantile_margin(*old)
    with pytest.raises(ValueError):
        _ringbuf._set_quantile_margin(-1.0, 0.0)


def test_sampled_quantile_rare_key_and_empty_window(simd_level):
    n = 10_000
    keys = np.zeros(n, dtype=np.int64)
    keys[::500] = 1                        # too rare for the sample: the full path
    vals = np.arange(float(n))
    ring = MetricRing(n)
    ring.record_many(keys, vals, vals)
    assert ring.quantile(1, 0.5) == np.quantile(vals[keys == 1], 0.5)
    assert math.isnan(ring.quantile(2, 0.5))
    assert math.isnan(ring.quantile(0, 0.5, 20_000.0))


def test_large_window_quantile_concurrent_with_writer(simd_level):
    # old samples (5.0) are being overwritten by new ones (1000.0, later times):
    # a quantile of the old time range must never see a new value, whether or
    # not its scan overlapped a write (a raced scan is rerun holding the GIL)
    ring = MetricRing(8192)
    ring.record_many(1, np.full(8192, 5.0), np.arange(8192.0))
    stop = threading.Event()

    def writer() -> None:
        t = 8192.0
        while not stop.is_set():
            for _ in range(500):
                t += 1.0
                ring.record(1, 1000.0, t)
            ring.record_many(1, np.full(300, 1000.0), t + np.arange(1.0, 301.0))
            t += 300.0

    th = threading.Thread(target=writer)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)      # hand the GIL over often: more overlap, less waiting
    th.start()
    try:
        for _ in range(200):
            q = ring.quantile(1, 1.0, 0.0, 8191.5)
            assert math.isnan(q) or q == 5.0
            q = ring.quantile(1, 0.999, None, 8191.5)
            assert math.isnan(q) or q == 5.0
            q = ring.quantile(1, 0.5)
            assert 5.0 <= q <= 1000.0
    finally:
        stop.set()
        th.join()
        sys.setswitchinterval(switch)


# -- window kernels (stats, count_beyond, slope): SIMD levels, key modes, wraps ------


def _wrapped_window_ring(n: int, nkeys: int, seed: int) -> tuple[MetricRing, np.ndarray, np.ndarray,
                                                          np.ndarray]:
    """A full ring whose window wraps (two segments), with its samples in time order."""
    rng = np.random.default_rng(seed)
    total = n + n // 3 + 5                 # overwrite the oldest third: the start moves
    ts = np.cumsum(rng.uniform(0.0, 1.0, total)) + 1.7e9
    keys = rng.integers(0, nkeys, total)
    vals = rng.normal(100.0, 30.0, total) + 0.01 * (ts - ts[0])
    ring = MetricRing(n)
    ring.record_many(keys, vals, ts)
    return ring, ts[-n:], keys[-n:], vals[-n:]


@pytest.mark.parametrize("n", [1, 7, 8, 9, 31, 1000, 4099])
@pytest.mark.parametrize("key", [None, 1, [0, 2]], ids=["all", "one", "set"])
def test_window_kernels_match_numpy_at_every_level(simd_level, n, key):
    ring, ts, keys, vals = _wrapped_window_ring(n, 3, n)
    since, until = float(ts[n // 5]), float(ts[-1 - n // 7])
    sel = (ts >= since) & (ts <= until)
    if key is not None:
        sel &= np.isin(keys, np.atleast_1d(key))
    v, t = vals[sel], ts[sel]
    s = ring.stats(key, since, until)
    assert s.count == v.size
    if v.size:
        assert (s.min, s.max, s.first, s.last) == (v.min(), v.max(), v[0], v[-1])
        assert s.mean == pytest.approx(v.mean(), rel=1e-12)
    if v.size > 1:
        assert s.std == pytest.approx(v.std(ddof=1), rel=1e-9)
        tt = t - t.mean()
        assert ring.slope(key, since, until) == pytest.approx(
            float(tt @ (v - v.mean()) / (tt @ tt)), rel=1e-6)
    for thr in (float(np.median(vals)), -1e300, 1e300):
        assert ring.count_beyond(key, thr, True, since, until) == int((v > thr).sum())
        assert ring.count_beyond(key, thr, False, since, until) == int((v < thr).sum())


def test_window_kernels_round_alike_at_every_level():
    # eight-lane sums reduced in one order: scalar and SIMD give the same bits
    ring = _wrapped_window_ring(5003, 3, 1)[0]
    before = _ringbuf._simd_level()
    try:
        results = []
        for level in LEVELS:
            _ringbuf._set_simd_level(level)
            results.append((tuple(ring.stats(1)), tuple(ring.stats()), ring.slope(1),
                            ring.slope(), ring.count_beyond(2, 100.0)))
    finally:
        _ringbuf._set_simd_level(before)
    assert all(r == results[0] for r in results)


def test_window_modes_agree():
    ring = _wrapped_window_ring(3001, 4, 2)[0]
    out = []
    for mode in (0, 1):
        old = _ringbuf._set_window_mode(mode)
        try:
            out.append((tuple(ring.stats(1)), ring.slope(2), ring.count_beyond(3, 90.0),
                        ring.quantile(1, 0.9), tuple(ring.quantile([1, 2], [0.1, 0.5]))))
        finally:
            _ringbuf._set_window_mode(old)
    # sums may round differently (their lanes follow the segments); the rest is exact
    (s0, sl0, *exact0), (s1, sl1, *exact1) = out
    assert s0 == pytest.approx(s1, rel=1e-12) and sl0 == pytest.approx(sl1, rel=1e-12)
    assert s0[0] == s1[0] and s0[2:4] == s1[2:4] and s0[5:] == s1[5:] and exact0 == exact1
    with pytest.raises(ValueError):
        _ringbuf._set_window_mode(2)


def test_group_columns_are_named_once():
    assert _ringbuf.SCAN_COLUMNS == 8 and _ringbuf.WIN_COLUMNS == 12
    scan = [getattr(_ringbuf, n) for n in _ringbuf.__all__ if n.startswith("SCAN_")
            and n != "SCAN_COLUMNS"]
    win = [getattr(_ringbuf, n) for n in _ringbuf.__all__ if n.startswith("WIN_")
           and n != "WIN_COLUMNS"]
    assert sorted(scan) == list(range(8)) and sorted(win) == list(range(12))
