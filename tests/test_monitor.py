import math
import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbiter_core import (
    ManualClock,
    MetricBatch,
    MetricType,
    PerformanceMetric,
    PerformanceMonitor,
)

NOW = 10_000.0


@pytest.fixture
def clock():
    return ManualClock(start=NOW)


@pytest.fixture
def mon(clock):
    return PerformanceMonitor(clock=clock)


# -- the original's worked examples (original-design.md §5.1) --------------------


def test_recording_increments_the_count(mon):
    mon.record_metric(MetricType.CPU, 50.0)
    assert mon.metric_count == 1


def test_max_metrics_keeps_the_newest(clock):
    mon = PerformanceMonitor(max_metrics=5, clock=clock)
    for i in range(10):
        mon.record_metric(MetricType.CPU, float(i))
        clock.advance(1)
    assert mon.metric_count == 5
    assert [m.value for m in mon.get_latest_metrics(10)] == [5.0, 6.0, 7.0, 8.0, 9.0]


def test_window_query_is_inclusive_and_in_time_order(mon):
    mon.record_metric(MetricType.CPU, 60.0, timestamp=NOW - 120)
    mon.record_metric(MetricType.CPU, 75.0, timestamp=NOW - 60)
    mon.record_metric(MetricType.CPU, 90.0, timestamp=NOW)
    got = mon.get_metrics(NOW - 60, NOW)
    assert [m.value for m in got] == [75.0, 90.0]


def test_window_query_filters_by_type_and_source(mon):
    mon.record_metric(MetricType.CPU, 50.0, source="a")
    mon.record_metric(MetricType.MEMORY, 60.0, source="a")
    mon.record_metric(MetricType.CPU, 70.0, source="b")
    cpu = mon.get_metrics(NOW - 1, NOW, MetricType.CPU)
    assert [m.value for m in cpu] == [50.0, 70.0]
    assert all(m.type is MetricType.CPU for m in cpu)
    assert [m.value for m in mon.get_metrics(NOW - 1, NOW, "cpu", source="b")] == [70.0]
    assert [m.value for m in mon.get_metrics(None, None, source="a")] == [50.0, 60.0]


def test_latest_three(mon, clock):
    for v in (0.0, 10.0, 20.0, 30.0, 40.0):
        mon.record_metric(MetricType.LATENCY, v)
        clock.advance(1)
    assert [m.value for m in mon.get_latest_metrics(3)] == [20.0, 30.0, 40.0]


def test_latest_of_a_type(mon, clock):
    mon.record_metric(MetricType.CPU, 50.0)
    mon.record_metric(MetricType.MEMORY, 60.0)
    mon.record_metric(MetricType.CPU, 70.0)
    assert [m.value for m in mon.get_latest_metrics(2, MetricType.CPU)] == [50.0, 70.0]


def test_clear_older_than(mon):
    mon.record_metric(MetricType.CPU, 1.0, timestamp=NOW - 3600)
    mon.record_metric(MetricType.CPU, 2.0, timestamp=NOW)
    assert mon.clear_metrics(NOW - 1800) == 1
    assert [m.value for m in mon.get_latest_metrics(10)] == [2.0]
    assert mon.clear_metrics(NOW - 3600) == 0  # a recent sample survives
    assert mon.metric_count == 1


def test_clear_keeps_the_cutoff_itself(mon):
    mon.record_metric(MetricType.CPU, 1.0, timestamp=NOW - 10)
    mon.record_metric(MetricType.CPU, 2.0, timestamp=NOW - 5)
    assert mon.clear_metrics(NOW - 5) == 1
    assert mon.metric_count == 1


def test_empty_window_and_latest_beyond_size(mon):
    assert len(mon.get_metrics(NOW, NOW)) == 0
    mon.record_metric(MetricType.CPU, 1.0)
    assert len(mon.get_latest_metrics(100)) == 1


def test_latest_zero_returns_nothing_unlike_the_original(mon):
    mon.record_metric(MetricType.CPU, 1.0)
    assert len(mon.get_latest_metrics(0)) == 0
    assert len(mon.get_latest_metrics(-1)) == 0


def test_concurrent_records(clock):
    mon = PerformanceMonitor(clock=clock)
    threads = [threading.Thread(target=mon.record_metric, args=(MetricType.CPU, float(i)))
               for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mon.metric_count == 10


# -- batch results -----------------------------------------------------------------


def test_metric_batch_is_columnar_and_iterates_records(mon, clock):
    mon.record_metric("latency", 12.5, source="api")
    clock.advance(1)
    mon.record_metric(MetricType.CPU, 40.0, source="host")
    batch = mon.get_metrics(None, None)
    assert isinstance(batch, MetricBatch) and len(batch) == 2
    assert batch.timestamps.tolist() == [NOW, NOW + 1]
    assert batch.values.tolist() == [12.5, 40.0]
    assert batch.metric_types == [MetricType.LATENCY, MetricType.CPU]
    assert batch.sources == ["api", "host"]
    first = batch[0]
    assert first == PerformanceMetric(MetricType.LATENCY, 12.5, NOW, "api", "ms")
    assert first.metric_type is MetricType.LATENCY
    with pytest.raises(AttributeError):
        first.value = 1.0  # type: ignore[misc]
    assert list(batch)[1].unit == "%"


def test_enum_and_string_types_share_a_series(mon):
    mon.record_metric(MetricType.CPU, 1.0, "x")
    mon.record_metric("cpu", 2.0, "x")
    assert len(mon.series_names) == 1
    assert mon.stats("cpu", "x").count == 2


# -- series handles and timers -------------------------------------------------------


def test_series_handle_uses_the_monitor_clock(mon, clock):
    h = mon.series(MetricType.LATENCY, "api")
    h.record(5.0)
    clock.advance(2)
    h.record(7.0)
    batch = mon.get_metrics(None, None, MetricType.LATENCY, "api")
    assert batch.timestamps.tolist() == [NOW, NOW + 2]
    assert mon.series(MetricType.LATENCY, "api") is h


def test_timer_context_and_decorator_record_milliseconds(mon, clock):
    with mon.time(MetricType.LATENCY, "db"):
        clock.advance(0.25)

    @mon.time(MetricType.LATENCY, "fn")
    def work(x):
        clock.advance(0.5)
        return x * 2

    assert work(3) == 6
    assert mon.get_metrics(None, None, source="db").values.tolist() == [250.0]
    assert mon.get_metrics(None, None, source="fn").values.tolist() == [500.0]
    assert work.__name__ == "work"


def test_timer_records_even_when_the_body_raises(mon, clock):
    with pytest.raises(RuntimeError), mon.time("latency", "boom"):
        clock.advance(0.1)
        raise RuntimeError("x")
    assert mon.get_metrics(None, None, source="boom").values.tolist() == [pytest.approx(100.0)]


def test_default_clock_records_with_monotonic_time():
    import time

    mon = PerformanceMonitor()
    before = time.monotonic()
    mon.record_metric("cpu", 1.0)
    mon.series("cpu", "h").record(2.0)
    after = time.monotonic()
    ts = mon.get_metrics(None, None).timestamps
    assert ((ts >= before) & (ts <= after)).all()


# -- retention ---------------------------------------------------------------------


def test_tick_applies_retention(clock):
    mon = PerformanceMonitor(retention_s=60.0, clock=clock)
    mon.record_metric("cpu", 1.0)
    clock.advance(30)
    mon.record_metric("cpu", 2.0)
    clock.advance(40)
    assert mon.tick() == 1
    assert [m.value for m in mon.get_latest_metrics(5)] == [2.0]


def test_resize_keeps_newest(mon, clock):
    for i in range(10):
        mon.record_metric("cpu", float(i))
        clock.advance(1)
    handle = mon.series("cpu", "system")
    mon.resize(4)
    assert mon.max_metrics == 4 and mon.metric_count == 4
    assert [m.value for m in mon.get_latest_metrics(10)] == [6.0, 7.0, 8.0, 9.0]
    new_handle = mon.series("cpu", "system")
    assert new_handle is not handle and new_handle.ring is mon.ring
    new_handle.record(10.0)
    assert mon.metric_count == 4


# -- bad input: clear errors, state unchanged --------------------------------------

BAD_RECORDS = [
    (("gpu", 1.0), ValueError, "metric_type"),
    ((None, 1.0), TypeError, "metric_type"),
    (([1], 1.0), TypeError, "metric_type"),
    (("cpu", math.nan), ValueError, "value"),
    (("cpu", math.inf), ValueError, "value"),
    (("cpu", "1.0"), TypeError, "value"),
    (("cpu", None), TypeError, "value"),
    (("cpu", 1.0, 5), TypeError, "source"),
    (("cpu", 1.0, "s", math.nan), ValueError, "timestamp"),
    (("cpu", 1.0, "s", "now"), TypeError, "timestamp"),
    # on an existing series too (the fast path), and bools are not numbers
    (("cpu", True), TypeError, "^value"),
    (("cpu", "1.0"), TypeError, "^value must be a number, got str$"),
    (("cpu", 1.0, "system", True), TypeError, "^timestamp"),
    (("cpu", 1.0, "system", "now"), TypeError, "^timestamp"),
]


@pytest.mark.parametrize(("args", "exc", "word"), BAD_RECORDS)
def test_bad_records_raise_and_store_nothing(mon, args, exc, word):
    mon.record_metric("cpu", 1.0)
    before = (mon.metric_count, mon.ring.total_recorded, mon.series_names)
    with pytest.raises(exc, match=word):
        mon.record_metric(*args)
    assert (mon.metric_count, mon.ring.total_recorded, mon.series_names) == before


@pytest.mark.parametrize(
    ("kwargs", "exc", "word"),
    [
        ({"max_metrics": 0}, ValueError, "max_metrics"),
        ({"max_metrics": 1.5}, TypeError, "max_metrics"),
        ({"retention_s": 0}, ValueError, "retention_s"),
        ({"retention_s": math.nan}, ValueError, "retention_s"),
        ({"retention_s": "1h"}, TypeError, "retention_s"),
        ({"max_series": 0}, ValueError, "max_series"),
        ({"clock": object()}, TypeError, "clock"),
    ],
)
def test_bad_config(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        PerformanceMonitor(**kwargs)


def test_series_table_is_bounded(clock):
    mon = PerformanceMonitor(max_series=2, clock=clock)
    mon.record_metric("cpu", 1.0, "a")
    mon.record_metric("cpu", 1.0, "b")
    with pytest.raises(ValueError, match="max_series"):
        mon.record_metric("cpu", 1.0, "c")
    assert len(mon.series_names) == 2 and mon.metric_count == 2


def test_latest_count_must_be_int(mon):
    with pytest.raises(TypeError, match="count"):
        mon.get_latest_metrics(1.5)  # type: ignore[arg-type]


# -- bounded memory ------------------------------------------------------------------


def test_one_million_records_into_a_10k_monitor_stay_bounded(clock):
    tracemalloc.start()
    try:
        mon = PerformanceMonitor(max_metrics=10_000, clock=clock)
        base, _ = tracemalloc.get_traced_memory()
        h = mon.series("latency", "api")
        chunk = np.arange(10_000, dtype=np.float64)
        key = h.key
        for i in range(95):
            mon.ring.record_many(key, chunk, float(i))
        for i in range(50_000):
            h.record(float(i))
        for i in range(1000):
            mon.record_metric("cpu", float(i), source=f"s{i % 50}")
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert mon.ring.total_recorded == 1_001_000
    assert mon.metric_count == 10_000
    assert current - base < 2 * 1024 * 1024  # a few MB at most, whatever the count


# -- property: the monitor agrees with a plain list of records --------------------

records = st.lists(
    st.tuples(
        st.sampled_from(list(MetricType)),
        st.sampled_from(["a", "b", "c"]),
        st.floats(-1e6, 1e6, allow_nan=False),
        st.floats(0, 100),
    ),
    max_size=60,
)


@given(records, st.floats(0, 100), st.floats(0, 100), st.sampled_from([None, *MetricType]))
def test_get_metrics_matches_a_plain_filter(recs, a, b, mtype):
    clock = ManualClock(start=0.0)
    mon = PerformanceMonitor(max_metrics=1000, clock=clock)
    for mt, src, v, t in recs:
        mon.record_metric(mt, v, src, t)
    lo, hi = min(a, b), max(a, b)
    got = [(m.type, m.source, m.value, m.timestamp) for m in mon.get_metrics(lo, hi, mtype)]
    want = sorted(
        ((mt, src, v, t) for mt, src, v, t in recs
         if lo <= t <= hi and (mtype is None or mt is mtype)),
        key=lambda r: r[3],
    )
    assert got == want
    assert np.all(np.diff(mon.get_metrics(None, None).timestamps) >= 0)


def test_timers_keep_recording_after_a_resize(mon, clock):
    # a decorator applied once (at import time, say) must not go silent when
    # the capacity changes (RuntimeOptimizer.update_config(max_metrics=...))
    timer = mon.time("latency", "db")

    @mon.time("latency", "fn")
    def work():
        clock.advance(0.002)

    mon.resize(50)
    with timer:
        clock.advance(0.001)
    work()
    assert sorted((m.source, round(m.value, 6)) for m in mon.get_latest_metrics(10)) == [
        ("db", 1.0), ("fn", 2.0)]


def test_resize_warns_that_handed_out_series_handles_are_detached(mon, caplog):
    mon.resize(20)                      # no handles yet: nothing to say
    assert "series handle" not in caplog.text
    mon.series("cpu", "system")
    mon.resize(30)
    assert "series handle" in caplog.text


def test_metric_batches_compare_by_content(mon, clock):
    mon.record_metric("cpu", 1.0)
    clock.advance(1)
    mon.record_metric("memory", 2.0, "db")
    a, b = mon.get_metrics(None, None), mon.get_metrics(None, None)
    assert a == b and a in [b]
    clock.advance(1)
    mon.record_metric("cpu", 3.0, "new")        # a new series does not change the answer
    assert a == mon.get_metrics(None, clock.now() - 0.5)
    assert a != mon.get_metrics(None, None)
    assert a != mon.get_latest_metrics(1)
    assert (a == "x") is False


@pytest.mark.parametrize(("call", "exc", "word"), [
    (lambda m: m.clear_metrics(math.nan), ValueError, "older_than"),
    (lambda m: m.clear_metrics("yesterday"), TypeError, "older_than"),
    (lambda m: m.clear_metrics(None), TypeError, "older_than"),
    (lambda m: m.get_metrics(math.nan, 1.0), ValueError, "start"),
    (lambda m: m.get_metrics(0.0, "now"), TypeError, "end"),
    (lambda m: m.get_metrics(True, 1.0), TypeError, "start"),
])
def test_query_arguments_are_named_in_errors(mon, call, exc, word):
    mon.record_metric("cpu", 1.0)
    with pytest.raises(exc, match=word):
        call(mon)
    assert mon.metric_count == 1


def test_clear_metrics_accepts_infinite_cutoffs(mon):
    mon.record_metric("cpu", 1.0)
    assert mon.clear_metrics(-math.inf) == 0
    assert mon.clear_metrics(math.inf) == 1


def test_record_metric_fast_path_follows_resize_and_new_series(clock):
    mon = PerformanceMonitor(max_metrics=8, clock=clock)
    mon.record_metric(MetricType.CPU, 1.0, "a")          # interns (slow path)
    mon.record_metric(MetricType.CPU, 2.0, "a")          # fast path (C)
    mon.record_metric("cpu", 3.0, "a")                   # fast path, str name
    mon.resize(4)
    mon.record_metric(MetricType.CPU, 4.0, "a")          # into the new ring
    mon.record_metric(MetricType.MEMORY, 5.0, "b")       # new series after resize
    assert [m.value for m in mon.get_latest_metrics(10)] == [1.0, 2.0, 3.0, 4.0, 5.0][-4:]
    assert mon.ring.total_recorded == 5  # 3 copied by resize + 2 new
    with pytest.raises(ValueError, match="value"):
        mon.record_metric(MetricType.CPU, math.inf, "a")
    with pytest.raises(ValueError, match="timestamp"):
        mon.record_metric(MetricType.CPU, 1.0, "a", math.nan)
    assert mon.metric_count == 4


def test_a_record_metric_bound_before_resize_keeps_storing_in_the_monitor(clock):
    # issue 10 review: the bound method kept writing to the old ring
    mon = PerformanceMonitor(max_metrics=10, clock=clock)
    record = mon.record_metric
    record(MetricType.CPU, 1.0, "a")
    mon.resize(5)
    record(MetricType.CPU, 2.0, "a")
    assert mon.metric_count == 2
    assert list(mon.get_latest_metrics(5).values) == [1.0, 2.0]
