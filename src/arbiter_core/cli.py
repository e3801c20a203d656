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

Exit codes: 0 success, 1 runtime failure, 2 bad arguments, scenario or trace file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
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


def _cell(row: dict[str, Any], key: str, digits: int) -> str:
    """``mean`` or, with intervals, ``mean±half-width``."""
    v = row[key]
    ci = (row.get("ci95") or {}).get(key)
    if isinstance(v, float) and digits == 0 and key != "health_score":
        # a mean of counts: one decimal where it says something
        digits = 1 if ci is not None and abs(v) < 100 else 0
    if ci is None or v is None or isinstance(v, str):
        return _fmt(v, digits)
    half = (ci[1] - ci[0]) / 2
    return f"{_fmt(v, digits)}±{_fmt(float(half), digits)}"


TABLE_COLUMNS = [
    # (header, key, digits)
    ("submitted", "submitted", 0), ("completed", "completed", 0),
    ("timed_out", "timed_out", 0), ("rejected", "rejected", 0), ("failed", "failed", 0),
    ("wait_mean", "wait_mean_s", 2), ("wait_p50", "wait_p50_s", 2),
    ("wait_p95", "wait_p95_s", 2), ("wait_p99", "wait_p99_s", 2),
    ("e2e_mean", "e2e_mean_s", 2), ("e2e_p50", "e2e_p50_s", 2), ("e2e_p99", "e2e_p99_s", 2),
    ("fairness", "fairness", 3), ("failovers", "failovers", 0), ("ejections", "ejections", 0),
    ("peak_queue", "peak_queue", 0), ("bottlenecks", "bottlenecks_found", 0),
    ("health", "health_score", 0), ("capacity", "capacity_action", 0),
]


#: added to the table when the runs used the LLM-serving model (service = "llm")
LLM_COLUMNS = [
    ("ttft_mean", "ttft_mean_s", 2), ("ttft_p50", "ttft_p50_s", 2),
    ("ttft_p99", "ttft_p99_s", 2), ("cache_hit", "cache_hit_rate", 3),
    ("tokens/s", "tokens_per_s", 1),
]


def table_columns(rows: dict[str, dict[str, Any]]) -> list[tuple[str, str, int]]:
    """The table's columns for these rows: the LLM ones only when a row has them."""
    llm = any(r.get(key) is not None for r in rows.values() for _, key, _ in LLM_COLUMNS)
    return TABLE_COLUMNS + (LLM_COLUMNS if llm else [])


def render_table(rows: dict[str, dict[str, Any]], out: TextIO) -> None:
    """Print one line per strategy with the table columns (times in seconds);
    with several seeds each cell is ``mean±half-width`` of its 95 % interval."""
    columns = table_columns(rows)
    headers = ["strategy"] + [h for h, _, _ in columns]
    body = [[name] + [_cell(r, k, d) for _, k, d in columns] for name, r in rows.items()]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(headers)]

    def fmt_line(cells: list[str]) -> str:
        # strategy names left-aligned, numbers right-aligned
        return "  ".join(c.rjust(w) if i else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    line = fmt_line(headers)
    out.write(line + "\n" + "-" * len(line) + "\n")
    for b in body:
        out.write(fmt_line(b) + "\n")


TENANT_COLUMNS = [
    ("submitted", "submitted", 0), ("completed", "completed", 0),
    ("timed_out", "timed_out", 0), ("rejected", "rejected", 0), ("failed", "failed", 0),
    ("wait_p50", "wait_p50_s", 2), ("wait_p95", "wait_p95_s", 2),
    ("wait_p99", "wait_p99_s", 2), ("e2e_mean", "e2e_mean_s", 2),
]
#: tenants printed per strategy (the JSON has them all)
MAX_TABLE_TENANTS = 20


def render_tenant_table(rows: dict[str, dict[str, Any]], out: TextIO) -> None:
    """Print the per-tenant block: one line per (strategy, tenant), at most
    ``MAX_TABLE_TENANTS`` tenants per strategy; nothing without tenants."""
    body: list[list[str]] = []
    more: dict[str, int] = {}
    for name, r in rows.items():
        tenants = r.get("tenants") or {}
        for k, (tenant, t) in enumerate(tenants.items()):
            if k == MAX_TABLE_TENANTS:
                more[name] = len(tenants) - k
                break
            body.append([name if k == 0 else "", tenant]
                        + [_cell(t, key, d) for _, key, d in TENANT_COLUMNS])
    if not body:
        return
    headers = ["strategy", "tenant"] + [h for h, _, _ in TENANT_COLUMNS]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(headers)]

    def fmt_line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    line = fmt_line(headers)
    out.write("\nper tenant:\n" + line + "\n" + "-" * len(line) + "\n")
    for b in body:
        out.write(fmt_line(b) + "\n")
    for name, n in more.items():
        out.write(f"({name}: {n} more tenants in --json)\n")


def check_accounting(name: str, r: Any) -> str | None:
    """Why a run's counts do not add up, or None: every request has one
    outcome, per tenant too, and the tenants add up to the totals."""
    keys = ("submitted", "completed", "timed_out", "rejected", "failed")
    total = r.completed + r.timed_out + r.rejected + r.failed
    if total != r.submitted:
        return f"accounting broken for {name} (seed {r.seed}): {total} != {r.submitted}"
    if not r.tenants:
        return None
    for tenant, t in r.tenants.items():
        total = t["completed"] + t["timed_out"] + t["rejected"] + t["failed"]
        if total != t["submitted"]:
            return (f"accounting broken for {name} (seed {r.seed}), tenant {tenant!r}: "
                    f"{total} != {t['submitted']}")
    for key in keys:
        total = sum(t[key] for t in r.tenants.values())
        if total != getattr(r, key):
            return (f"accounting broken for {name} (seed {r.seed}): the tenants' {key} "
                    f"add up to {total}, not {getattr(r, key)}")
    return None


def _progress_bar(label: str) -> Callable[[int, int, float], None]:
    """A one-line bar on stderr counting finished cases (strategy x seed)."""
    def show(done: int, total: int, frac: float) -> None:
        f = (done + frac) / total
        bar = "#" * int(f * 30)
        sys.stderr.write(f"\r  {label} [{bar:<30}] {done}/{total} cases")
        sys.stderr.flush()

    return show


def _describe(scenario: Any, trace: Any, seeds: list[int]) -> str:
    groups = scenario.groups
    shared = sum(g.count for g in groups if g.service == "shared")
    pool = (f"{scenario.agent_count} agents"
            + (f" ({shared} shared-service)" if shared else "")
            + f", {sum(g.count * g.max_tasks for g in groups)} task slots")
    if trace is not None:
        kind = "" if trace.format == "requests" else f" ({trace.format})"
        load = (f"trace {trace.path}{kind}: {len(trace)} requests over "
                f"{trace.duration_s:g} s")
    else:
        ar = scenario.arrivals
        bursts = (f" (bursts x{', x'.join(f'{b.factor:g}' for b in ar.bursts)})"
                  if ar.bursts else "")
        load = (f"{scenario.duration_s:g} s of arrivals at {ar.rate_per_s:g}/s{bursts}, "
                f"{ar.task_distribution} work of mean {ar.mean_task_s:g} s")
    if scenario.tenants:
        load += ", tenants " + ", ".join(_describe_tenant(t, trace is None)
                                         for t in scenario.tenants)
    seed_txt = (f"seed {seeds[0]}" if len(seeds) == 1
                else f"seeds {seeds[0]}..{seeds[-1]}")
    return f"scenario {scenario.name!r}: {pool}, {load}, {seed_txt}"


def _describe_tenant(t: Any, rate: bool) -> str:
    policy = [f"weight {t.weight:g}"]
    for key in ("max_active", "max_queued", "rate_per_s", "burst"):
        v = getattr(t, key)
        if v is not None:
            policy.append(f"{key} {v:g}")
    return f"{t.name}" + (f" {t.arrival_rate_per_s:g}/s" if rate else "") + \
        f" ({', '.join(policy)})"


def _write_verdict(out: TextIO, best: Any, means: dict[str, float],
                   runs: dict[str, Any], seeds: list[int], agents: int) -> None:
    """The best strategy, and the optimizer's view of the leader's first run."""
    out.write(best.message(means) + "\n")
    if best.excluded:
        out.write(f"  (not eligible, completed significantly fewer requests: "
                  f"{', '.join(best.excluded)})\n")
    first = runs[best.leader][0].table_row()
    out.write(f"the optimizer's recommendations for {best.leader} (seed {seeds[0]}):\n")
    recs = first["recommendations"] or ["(none: no active bottleneck at the end)"]
    for rec in recs:
        out.write(f"  - {rec}\n")
    out.write(f"capacity: {first['capacity_action']} (desired agents "
              f"{first['desired_agents']} of {agents})\n")


def _simulate(args: argparse.Namespace) -> int:
    from .scenario import ScenarioError, default_scenario, load_scenario
    from .simulate import (
        TraceError,
        best_strategy,
        check_workload,
        default_jobs,
        load_trace,
        run_cases,
        seed_list,
        summarize,
    )

    # the library logs every ejection and bottleneck; the table says it all
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    try:
        scenario = load_scenario(args.scenario) if args.scenario else default_scenario()
    except ScenarioError as exc:
        sys.stderr.write(f"arbiter-core simulate: bad scenario: {exc}\n")
        return 2
    if args.replicas is not None:
        from .scenario import check_replicas

        try:
            if args.replicas < 1:
                raise ScenarioError(f"--replicas must be >= 1, got {args.replicas}")
            scenario = dataclasses.replace(scenario, replicas=args.replicas)
            check_replicas(scenario)
        except ScenarioError as exc:
            sys.stderr.write(f"arbiter-core simulate: {exc}\n")
            return 2
    trace = None
    trace_path = args.trace or scenario.trace
    if trace_path:
        try:
            trace = load_trace(trace_path, speed=args.trace_speed, limit=args.trace_limit)
        except TraceError as exc:
            sys.stderr.write(f"arbiter-core simulate: bad trace: {exc}\n")
            return 2
    elif args.trace_speed != 1.0 or args.trace_limit is not None:
        sys.stderr.write("arbiter-core simulate: --trace-speed and --trace-limit need a "
                         "trace (--trace, or the scenario's trace)\n")
        return 2
    try:
        check_workload(scenario, trace)
    except ValueError as exc:
        sys.stderr.write(f"arbiter-core simulate: {exc}\n")
        return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            sys.stderr.write("arbiter-core simulate: --plot needs matplotlib: "
                             "pip install 'arbiter-runtime[plot]'\n")
            return 2
    strategies = [args.strategy] if args.strategy else STRATEGIES
    seeds = seed_list(args.seed, args.seeds)
    n_cases = len(strategies) * len(seeds)
    jobs = args.jobs if args.jobs is not None else default_jobs(n_cases)
    show_progress = not args.quiet and sys.stderr.isatty()
    wall = time.perf_counter()
    if args.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            sys.stderr.write("arbiter-core simulate: --executor ray needs Ray: "
                             "pip install 'arbiter-runtime[ray]'\n")
            return 2
    runs = run_cases(scenario, strategies, seeds, jobs=jobs, trace=trace,
                     progress=_progress_bar("simulating") if show_progress else None,
                     executor=args.executor)
    wall = time.perf_counter() - wall
    if show_progress:
        sys.stderr.write("\r" + " " * 80 + "\r")
    for name, per_seed in runs.items():
        for r in per_seed:
            broken = check_accounting(name, r)
            if broken is not None:  # the simulator's own invariant: never hide a loss
                sys.stderr.write(f"arbiter-core simulate: {broken}\n")
                return 1
    rows = {name: summarize(per_seed) for name, per_seed in runs.items()}
    best = best_strategy(runs)
    means = {name: row["e2e_mean_s"] for name, row in rows.items()
             if row["e2e_mean_s"] is not None}
    if args.json:
        for row in rows.values():
            row.pop("wall_s", None)  # the only non-deterministic figure
            if "ci95" in row:
                row["ci95"].pop("wall_s", None)
        doc: dict[str, Any] = {"scenario": scenario.to_dict(), "seed": args.seed,
                               "seeds": seeds, "strategies": rows}
        if trace is not None:
            doc["trace"] = {"path": trace.path, "format": trace.format,
                            "requests": len(trace), "duration_s": trace.duration_s,
                            "speed": args.trace_speed, "limit": args.trace_limit}
        doc["best"] = None if best is None else {
            "metric": best.metric, "strategy": best.winner, "leader": best.leader,
            "runner_up": best.runner_up, "difference": best.diff,
            "difference_ci95": None if best.diff_ci is None else list(best.diff_ci),
            "excluded_fewer_completed": list(best.excluded),
            "message": best.message(means)}
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        out = sys.stdout
        out.write(_describe(scenario, trace, seeds) + "\n\n")
        render_table(rows, out)
        render_tenant_table(rows, out)
        ci = ("" if len(seeds) == 1 else
              f"mean ± 95% CI half-width over {len(seeds)} seeds; ")
        cpu = sum(r.wall_s for per_seed in runs.values() for r in per_seed)
        procs = "1 process" if jobs == 1 or n_cases == 1 else f"{min(jobs, n_cases)} processes"
        if args.executor == "ray":
            procs = "Ray tasks"
        out.write(f"\n(times in seconds; {ci}{n_cases} runs in {wall:.1f} s "
                  f"({cpu:.1f} s of simulation, {procs}))\n\n")
        if best is None:
            # (the plot below is still written)
            out.write("best strategy: none (no request completed after the warm-up)\n")
        else:
            _write_verdict(out, best, means, runs, seeds, scenario.agent_count)
    if args.plot:
        from .plotting import plot_results

        plot_results({name: per_seed[0] for name, per_seed in runs.items()}, args.plot,
                     rows=rows)
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
    sim.add_argument("--seed", type=int, default=0,
                     help="first random seed (default 0)")
    sim.add_argument("--seeds", type=int, default=5, metavar="N",
                     help="replications: run every strategy on seeds SEED..SEED+N-1 and "
                          "report means with 95%% intervals (default 5)")
    sim.add_argument("--jobs", type=int, default=None, metavar="N",
                     help="run the (strategy x seed) cases in N processes; the results "
                          "do not depend on it (default: one per CPU)")
    sim.add_argument("--trace", metavar="FILE",
                     help="replay these requests instead of the scenario's arrivals: "
                          "CSV with a header or JSON lines, a Mooncake JSON-lines trace or "
                          "an Azure LLM inference CSV (.gz read through gzip)")
    sim.add_argument("--trace-speed", type=float, default=1.0, metavar="F",
                     help="replay the trace F times as fast (arrival rates x F; default 1)")
    sim.add_argument("--trace-limit", type=int, default=None, metavar="N",
                     help="replay only the trace's first N requests")
    sim.add_argument("--executor", choices=("process", "ray"), default="process",
                     help="where the cases run: local processes (--jobs), or Ray tasks "
                          "on the cluster at RAY_ADDRESS, else a local Ray with --jobs "
                          "CPUs (extra ray)")
    sim.add_argument("--replicas", type=int, default=None, metavar="N",
                     help="N scheduler replicas sharing the pool through slot leases "
                          "(default: the scenario's, 1)")
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
    if args.command == "simulate" and (args.seeds < 1 or (args.jobs is not None
                                                           and args.jobs < 1)):
        parser.error("--seeds and --jobs must be >= 1")
    if args.command == "simulate" and (not (math.isfinite(args.trace_speed)
                                             and args.trace_speed > 0)
                                        or (args.trace_limit is not None
                                            and args.trace_limit < 1)):
        parser.error("--trace-speed must be > 0 and --trace-limit >= 1")
    if args.command == "bench" and not args.scale > 0:
        parser.error("--scale must be > 0")
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
