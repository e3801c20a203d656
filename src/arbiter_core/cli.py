"""The ``arbiter-core`` command (also ``python -m arbiter_core``).

Subcommands
-----------
simulate
    A deterministic scheduler simulation that drives the real manager and
    optimizer through a heterogeneous agent pool, for every strategy.
monitor
    Live health of this host/process from the psutil collectors, optionally
    exported to Prometheus.
bench
    A quick side-by-side micro benchmark against the installed peers.
demo
    Record and query a metric stream (the foundation's demonstration).

Exit codes: 0 success, 1 runtime failure, 2 bad arguments or scenario file.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from ._version import __version__
from .types import LoadBalancingStrategy

STRATEGIES = [s.value for s in LoadBalancingStrategy]


# ---------------------------------------------------------------------------
# simulate


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


TABLE_COLUMNS = [
    # (header, key, digits)
    ("submitted", "submitted", 0), ("completed", "completed", 0),
    ("timed_out", "timed_out", 0), ("rejected", "rejected", 0), ("failed", "failed", 0),
    ("wait_p50", "wait_p50_s", 2), ("wait_p95", "wait_p95_s", 2), ("wait_p99", "wait_p99_s", 2),
    ("e2e_p50", "e2e_p50_s", 2), ("e2e_p99", "e2e_p99_s", 2), ("fairness", "fairness", 3),
    ("failovers", "failovers", 0), ("ejections", "ejections", 0),
    ("peak_queue", "peak_queue", 0), ("bottlenecks", "bottlenecks_found", 0),
    ("health", "health_score", 0), ("capacity", "capacity_action", 0),
]


def render_table(rows: dict[str, dict[str, Any]], out: TextIO) -> None:
    """Print one line per strategy with the table columns (times in seconds)."""
    headers = ["strategy"] + [h for h, _, _ in TABLE_COLUMNS]
    body = [[name] + [_fmt(r[k], d) for _, k, d in TABLE_COLUMNS] for name, r in rows.items()]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(headers)]
    def fmt_line(cells: list[str]) -> str:
        # strategy names left-aligned, numbers right-aligned
        return "  ".join(c.rjust(w) if i else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    line = fmt_line(headers)
    out.write(line + "\n" + "-" * len(line) + "\n")
    for b in body:
        out.write(fmt_line(b) + "\n")


def _best(rows: dict[str, dict[str, Any]]) -> str:
    """The strategy that completed most, then with the lowest p99 end-to-end time."""
    def key(name: str) -> tuple[float, float]:
        r = rows[name]
        p99 = r["e2e_p99_s"] if r["e2e_p99_s"] is not None else math.inf
        return (-r["completed"], p99)
    return min(rows, key=key)


def _simulate(args: argparse.Namespace) -> int:
    from .scenario import ScenarioError, default_scenario, load_scenario
    from .simulate import compare_strategies, progress_printer

    # the library logs every ejection and bottleneck; the table says it all
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    try:
        scenario = load_scenario(args.scenario) if args.scenario else default_scenario()
    except ScenarioError as exc:
        sys.stderr.write(f"arbiter-core simulate: bad scenario: {exc}\n")
        return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            sys.stderr.write("arbiter-core simulate: --plot needs matplotlib: "
                             "pip install 'arbiter-runtime[plot]'\n")
            return 2
    strategies = [args.strategy] if args.strategy else STRATEGIES
    show_progress = not args.quiet and sys.stderr.isatty()
    progress = progress_printer(scenario.duration_s, len(strategies)) if show_progress else None
    results = compare_strategies(scenario, strategies, seed=args.seed, progress=progress)
    if show_progress:
        sys.stderr.write("\r" + " " * 80 + "\r")
    rows = {name: r.table_row() for name, r in results.items()}
    for name, r in rows.items():
        total = r["completed"] + r["timed_out"] + r["rejected"] + r["failed"]
        if total != r["submitted"]:  # the simulator's own invariant: never hide a loss
            sys.stderr.write(f"arbiter-core simulate: accounting broken for {name}: "
                             f"{total} != {r['submitted']}\n")
            return 1
    if args.json:
        doc = {"scenario": scenario.to_dict(), "seed": args.seed, "strategies": rows}
        for r in doc["strategies"].values():
            r.pop("wall_s", None)  # the only non-deterministic figure
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        out = sys.stdout
        out.write(f"scenario {scenario.name!r}: {scenario.agent_count} agents, "
                  f"{sum(g.count * g.max_tasks for g in scenario.groups)} task slots, "
                  f"{scenario.duration_s:g} s of arrivals at {scenario.arrivals.rate_per_s:g}/s "
                  f"(bursts x{', x'.join(f'{b.factor:g}' for b in scenario.arrivals.bursts)}), "
                  f"seed {args.seed}\n\n")
        render_table(rows, out)
        wall = sum(r.wall_s for r in results.values())
        out.write(f"\n(times in seconds; {len(results)} strategies simulated in {wall:.1f} s)\n")
        best = _best(rows)
        out.write(f"\nbest strategy: {best}; the optimizer's recommendations for it:\n")
        recs = rows[best]["recommendations"] or ["(none: no active bottleneck at the end)"]
        for rec in recs:
            out.write(f"  - {rec}\n")
        cap = rows[best]
        out.write(f"capacity: {cap['capacity_action']} (desired agents "
                  f"{cap['desired_agents']} of {scenario.agent_count})\n")
    if args.plot:
        from .plotting import plot_results

        plot_results(results, args.plot)
        if not args.json:
            sys.stdout.write(f"plot written to {args.plot}\n")
    return 0


# ---------------------------------------------------------------------------
# monitor


def _monitor(args: argparse.Namespace) -> int:
    from . import collectors
    from .optimization import OptimizerConfig, RuntimeOptimizer

    opt = RuntimeOptimizer(config=OptimizerConfig(analysis_interval_s=args.interval,
                                                  analysis_window_s=max(60.0, 10 * args.interval)))
    for c in collectors.default_collectors():
        opt.add_collector(c)
    if args.prometheus_port is not None:
        try:
            from .exporters.prometheus import serve
        except ImportError as exc:
            sys.stderr.write(f"arbiter-core monitor: {exc}\n")
            return 2
        serve(args.prometheus_port, optimizer=opt, bind=args.bind)
        sys.stderr.write(f"serving Prometheus metrics on http://{args.bind}:"
                         f"{args.prometheus_port}/metrics\n")
    n = 0
    try:
        while args.count is None or n < args.count:
            if n:
                time.sleep(args.interval)
            opt.collect()
            a = opt.analyze()
            n += 1
            if args.json:
                sys.stdout.write(json.dumps({
                    "timestamp": time.time(),
                    "health_score": a.health_score,
                    "bottlenecks": [{"component": b.component, "metric_type": str(b.metric_type),
                                     "severity": str(b.severity),
                                     "current_value": b.current_value,
                                     "threshold": b.threshold} for b in a.bottlenecks],
                    "recommendations": [r.title for r in a.recommendations],
                }) + "\n")
            else:
                bs = ", ".join(f"{b.component}/{b.metric_type}={b.current_value:.1f} "
                               f"({b.severity})" for b in a.bottlenecks) or "none"
                sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] health {a.health_score:5.1f}"
                                 f"  bottlenecks: {bs}\n")
                for r in a.recommendations:
                    sys.stdout.write(f"    -> {r.title}\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    return 0


# ---------------------------------------------------------------------------
# bench


def _bench(args: argparse.Namespace) -> int:
    from .quickbench import run_quick_bench

    run_quick_bench(sys.stdout, scale=args.scale)
    return 0


# ---------------------------------------------------------------------------
# demo


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    from .clock import ManualClock
    from .optimization import PerformanceMonitor
    from .types import MetricType

    rng = np.random.default_rng(args.seed)
    clock = ManualClock(start=0.0)
    mon = PerformanceMonitor(max_metrics=args.capacity, retention_s=600.0, clock=clock)
    latency = mon.series(MetricType.LATENCY, "api")
    n = args.samples
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
    out = sys.stdout
    out.write(f"recorded {ring.total_recorded} samples in {elapsed * 1e3:.1f} ms; "
              f"stored {mon.metric_count}\n")
    out.write(f"latency/api, last 60 s: n={stats.count} mean={stats.mean:.1f} ms "
              f"p50={p50:.1f} p95={p95:.1f} p99={p99:.1f} "
              f"above 1000 ms: {ring.count_beyond(key, 1000.0, True, *window)} "
              f"trend {ring.slope(key, *window):+.3f} ms/s\n")
    return 0


# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arbiter-core",
        description="Runtime core of an agent scheduler: simulate, monitor, benchmark.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="compare strategies on a simulated agent pool")
    sim.add_argument("--strategy", choices=STRATEGIES, help="run only this strategy")
    sim.add_argument("--scenario", metavar="FILE", help="a .toml or .json scenario file")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument("--json", action="store_true", help="print one JSON document")
    sim.add_argument("--plot", metavar="FILE.png", help="write plots (needs matplotlib)")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.add_argument("--verbose", action="store_true", help="log manager/optimizer events")
    sim.set_defaults(func=_simulate)

    mon = sub.add_parser("monitor", help="live health of this host/process")
    mon.add_argument("--interval", type=float, default=5.0, help="seconds between reports")
    mon.add_argument("--count", type=int, default=None, help="stop after N reports")
    mon.add_argument("--json", action="store_true", help="JSON lines")
    mon.add_argument("--prometheus-port", type=int, default=None, metavar="PORT")
    mon.add_argument("--bind", default="127.0.0.1", help="address for --prometheus-port")
    mon.set_defaults(func=_monitor)

    bench = sub.add_parser("bench", help="quick side-by-side micro benchmark")
    bench.add_argument("--scale", type=float, default=1.0, help="work multiplier")
    bench.set_defaults(func=_bench)

    demo = sub.add_parser("demo", help="record and query a built-in metric stream")
    demo.add_argument("--samples", type=int, default=100_000)
    demo.add_argument("--capacity", type=int, default=10_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "monitor" and (args.interval <= 0 or (args.count is not None
                                                             and args.count < 1)):
        parser.error("--interval must be > 0 and --count >= 1")
    if args.command == "demo" and (args.samples < 1 or args.capacity < 1):
        parser.error("--samples and --capacity must be >= 1")
    if args.command == "bench" and not args.scale > 0:
        parser.error("--scale must be > 0")
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
