"""MetricRing: recording and window kernels.

ns-scale calls are batched inside each timed body (asv's own per-call
overhead is hundreds of ns); the batch size is in the benchmark name.
"""

from __future__ import annotations

import numpy as np

from arbiter_core import MetricRing

from .common import latency_stream

BATCH = 10_000


class RingRecord:
    """``record`` one sample at a time, 10k per timed call."""

    params = [[10_000, 1_000_000]]
    param_names = ["capacity"]

    def setup(self, capacity: int) -> None:
        self.ring = MetricRing(capacity)
        ts, values = latency_stream(BATCH)
        self.values = values.tolist()
        self.pairs = list(zip(ts.tolist(), self.values, strict=True))
        self.handle = self.ring.series(1)

    def time_record_10k(self, capacity: int) -> None:
        record = self.ring.record
        for v in self.values:
            record(1, v)

    def time_record_timestamped_10k(self, capacity: int) -> None:
        record = self.ring.record
        for t, v in self.pairs:
            record(1, v, t)

    def time_series_handle_record_10k(self, capacity: int) -> None:
        record = self.handle.record
        for v in self.values:
            record(v)


class RingRecordMany:
    """``record_many`` of one batch, with a key array and per-sample timestamps."""

    params = [[100, 10_000, 100_000]]
    param_names = ["batch"]

    def setup(self, batch: int) -> None:
        self.ring = MetricRing(100_000)
        self.ts, self.values = latency_stream(batch)
        self.keys = np.arange(batch, dtype=np.int64) % 8

    def time_record_many(self, batch: int) -> None:
        self.ring.record_many(1, self.values)

    def time_record_many_keys_timestamps(self, batch: int) -> None:
        self.ring.record_many(self.keys, self.values, self.ts)


class RingWindow:
    """Window kernels over the newest ``window`` of ``2 * window`` samples.

    Two series are interleaved, so ``key=1`` selects half of the window.
    """

    params = [[1_000, 10_000, 100_000]]
    param_names = ["window"]

    def setup(self, window: int) -> None:
        n = 2 * window
        ts, values = latency_stream(n)
        self.ring = MetricRing(n)
        self.ring.record_many(np.arange(n) % 2, values, ts)
        self.since, self.until = float(ts[-window]), float(ts[-1])

    def time_snapshot(self, window: int) -> None:
        self.ring.snapshot(self.since, self.until)

    def time_snapshot_key(self, window: int) -> None:
        self.ring.snapshot(self.since, self.until, 1)

    def time_latest_100(self, window: int) -> None:
        self.ring.latest(100, 1)

    def time_stats(self, window: int) -> None:
        self.ring.stats(1, self.since, self.until)

    def time_quantile_p99(self, window: int) -> None:
        self.ring.quantile(1, 0.99, self.since, self.until)

    def time_quantile_4(self, window: int) -> None:
        self.ring.quantile(1, [0.5, 0.9, 0.95, 0.99], self.since, self.until)

    def time_count_beyond(self, window: int) -> None:
        self.ring.count_beyond(1, 60.0, True, self.since, self.until)

    def time_slope(self, window: int) -> None:
        self.ring.slope(1, self.since, self.until)


class RingMemory:
    """Peak memory of a full ring (24 bytes a sample plus a constant).

    The process's peak also holds the 16 bytes a sample of input built in setup.
    """

    params = [[10_000, 1_000_000]]
    param_names = ["capacity"]

    def setup(self, capacity: int) -> None:
        self.ts, self.values = latency_stream(capacity)

    def peakmem_fill(self, capacity: int) -> None:
        ring = MetricRing(capacity)
        ring.record_many(1, self.values, self.ts)
