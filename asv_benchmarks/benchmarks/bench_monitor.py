"""PerformanceMonitor: named recording and queries on top of the ring."""

from __future__ import annotations

from arbiter_core import ManualClock, MetricType, PerformanceMonitor

from .common import latency_stream

BATCH = 10_000


class MonitorRecord:
    """Record 10k samples per timed call through each recording path."""

    def setup(self) -> None:
        self.mon = PerformanceMonitor(max_metrics=100_000)
        self.values = latency_stream(BATCH)[1].tolist()
        self.handle = self.mon.series(MetricType.LATENCY, "api")

    def time_record_metric_10k(self) -> None:
        record = self.mon.record_metric
        for v in self.values:
            record(MetricType.LATENCY, v, "api")

    def time_record_metric_str_10k(self) -> None:
        record = self.mon.record_metric
        for v in self.values:
            record("latency", v, "api")

    def time_series_record_10k(self) -> None:
        record = self.handle.record
        for v in self.values:
            record(v)

    def time_timer_10k(self) -> None:
        timer = self.mon.time(MetricType.LATENCY, "api")
        for _ in range(BATCH):
            with timer:
                pass


class MonitorQuery:
    """Queries over a full 10k monitor holding 4 series."""

    def setup(self) -> None:
        self.clock = ManualClock(start=0.0)
        self.mon = PerformanceMonitor(max_metrics=10_000, clock=self.clock)
        ts, values = latency_stream(10_000)
        sources = ("api", "db", "cache", "queue")
        for i, (t, v) in enumerate(zip(ts.tolist(), values.tolist(), strict=True)):
            self.mon.record_metric(MetricType.LATENCY, v, sources[i % 4], t)
        self.end = float(ts[-1])

    def time_get_metrics_all(self) -> None:
        self.mon.get_metrics(0.0, self.end)

    def time_get_metrics_one_source(self) -> None:
        self.mon.get_metrics(0.0, self.end, MetricType.LATENCY, "db")

    def time_get_latest_metrics_100(self) -> None:
        self.mon.get_latest_metrics(100, MetricType.LATENCY)

    def time_iterate_1k(self) -> None:
        for _ in self.mon.get_latest_metrics(1_000):
            pass


class MonitorMemory:
    """Peak memory of a 1M-sample monitor after 1M records."""

    def setup(self) -> None:
        self.values = latency_stream(1_000_000)[1]   # 8 MB of the peak is this input

    def peakmem_monitor_1m(self) -> None:
        mon = PerformanceMonitor(max_metrics=1_000_000)
        handle = mon.series(MetricType.LATENCY, "api")
        for v in self.values:
            handle.record(v)
