"""The ``arbiter-core`` command.

Subcommands
-----------
demo
    A short built-in demonstration: record a synthetic latency and cpu stream
    into a PerformanceMonitor on a manual clock and query it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from .clock import ManualClock
from .optimization import PerformanceMonitor
from .types import MetricType


def _demo(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    clock = ManualClock(start=0.0)
    mon = PerformanceMonitor(max_metrics=args.capacity, retention_s=600.0, clock=clock)
    latency = mon.series(MetricType.LATENCY, "api")
    n = args.samples
    # a latency stream that degrades slowly, with a burst of slow requests
    base = 40.0 + 0.0002 * np.arange(n) + rng.gamma(2.0, 5.0, n)
    base[-n // 100 :: 7] += 1500.0
    start = time.perf_counter()
    for i in range(n):
        clock.advance(0.01)
        latency.record(float(base[i]))
        if i % 100 == 0:
            mon.record_metric(MetricType.CPU, 50.0 + 30.0 * rng.random(), source="host")
    elapsed = time.perf_counter() - start
    now = clock.now()
    key = mon.lookup_key(MetricType.LATENCY, "api")
    ring = mon.ring
    window = (now - 60.0, now)
    stats = ring.stats(key, *window)
    p50, p95, p99 = ring.quantile(key, [0.5, 0.95, 0.99], *window)
    over = ring.count_beyond(key, 1000.0, True, *window)
    slope = ring.slope(key, *window)
    out = sys.stdout
    out.write("arbiter-core demo: PerformanceMonitor on a manual clock\n")
    out.write(f"  recorded {ring.total_recorded} samples in {elapsed * 1e3:.1f} ms "
              f"({elapsed / ring.total_recorded * 1e9:.0f} ns each, incl. the Python loop)\n")
    out.write(f"  stored {mon.metric_count} (capacity {mon.max_metrics}); "
              f"series: {', '.join(f'{t.value}/{s}' for t, s in mon.series_names)}\n")
    out.write(f"  latency/api over the last 60 s: n={stats.count} mean={stats.mean:.1f} ms "
              f"min={stats.min:.1f} max={stats.max:.1f} std={stats.std:.1f}\n")
    out.write(f"  quantiles: p50={p50:.1f} p95={p95:.1f} p99={p99:.1f} ms; "
              f"above 1000 ms: {over}; trend {slope:+.3f} ms/s\n")
    latest = mon.get_latest_metrics(3, MetricType.CPU)
    out.write("  latest cpu samples: "
              + ", ".join(f"{m.value:.1f}{m.unit} @ {m.timestamp:.2f}s" for m in latest) + "\n")
    dropped = mon.tick()
    out.write(f"  retention tick dropped {dropped} samples older than 600 s\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arbiter-core", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="record and query metrics on a built-in stream")
    demo.add_argument("--samples", type=int, default=100_000)
    demo.add_argument("--capacity", type=int, default=10_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "samples", 1) < 1 or getattr(args, "capacity", 1) < 1:
        parser.error("--samples and --capacity must be >= 1")
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
