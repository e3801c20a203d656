"""The ``arbiter-core`` command (also ``python -m arbiter_core``).

Subcommands
-----------
simulate
    A deterministic scheduler simulation that drives the real manager and
    optimizer through a heterogeneous agent pool, for every strategy.
monitor
    A live terminal view: this host/process from the psutil collectors
    (optionally exported to Prometheus), or, with ``--scenario``, the real
    manager while the simulator drives it.
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


Column = tuple[str, str, int]  # (header, key in the summary row, digits)

#: ``--wide``: every column of the summary row
TABLE_COLUMNS: list[Column] = [
    ("submitted", "submitted", 0), ("completed", "completed", 0),
    ("timed_out", "timed_out", 0), ("rejected", "rejected", 0), ("failed", "failed", 0),
    ("wait_mean", "wait_mean_s", 2), ("wait_p50", "wait_p50_s", 2),
    ("wait_p95", "wait_p95_s", 2), ("wait_p99", "wait_p99_s", 2),
    ("e2e_mean", "e2e_mean_s", 2), ("e2e_p50", "e2e_p50_s", 2), ("e2e_p99", "e2e_p99_s", 2),
    ("fairness", "fairness", 3), ("failovers", "failovers", 0), ("ejections", "ejections", 0),
    ("peak_queue", "peak_queue", 0), ("bottlenecks", "bottlenecks_found", 0),
    ("health", "health_score", 0), ("capacity", "capacity_action", 0),
]
#: the default table: what answers "which strategy?"
SUMMARY_COLUMNS: list[Column] = [
    ("e2e_mean", "e2e_mean_s", 2), ("e2e_p99", "e2e_p99_s", 2), ("wait_p99", "wait_p99_s", 2),
    ("completed", "completed", 0), ("failed", "failed", 0), ("timed_out", "timed_out", 0),
    ("fairness", "fairness", 3),
]
#: LLM serving figures, shown (in both tables) when the results carry them
LLM_COLUMNS: list[Column] = [
    ("ttft_mean", "ttft_mean_s", 2), ("ttft_p99", "ttft_p99_s", 2),
    ("cache_hit", "cache_hit_rate", 3), ("tokens/s", "tokens_per_s", 0),
]
#: ``--wide``: every LLM figure
LLM_WIDE_COLUMNS: list[Column] = [
    ("ttft_mean", "ttft_mean_s", 2), ("ttft_p50", "ttft_p50_s", 2),
    ("ttft_p99", "ttft_p99_s", 2), ("cache_hit", "cache_hit_rate", 3),
    ("tokens/s", "tokens_per_s", 0),
]
#: the default table's width limit (a terminal of 100 columns)
TABLE_WIDTH = 100


def table_columns(rows: dict[str, dict[str, Any]], wide: bool = False) -> list[Column]:
    """The columns to print: the summary (or, ``wide``, every column), plus
    the LLM columns that some row has a value for."""
    base = TABLE_COLUMNS if wide else SUMMARY_COLUMNS
    llm = [c for c in (LLM_WIDE_COLUMNS if wide else LLM_COLUMNS)
           if any(r.get(c[1]) is not None for r in rows.values())]
    return base + llm


def render_table(rows: dict[str, dict[str, Any]], out: TextIO,
                 columns: Sequence[Column] | None = None,
                 width: int | None = None) -> None:
    """Print one line per strategy with ``columns`` (default: every column;
    times in seconds); with several seeds each cell is ``mean±half-width`` of
    its 95 % interval.  With ``width``, columns that would not fit go to a
    further block below (the strategy column repeated), so no line is wider.
    """
    cols = list(TABLE_COLUMNS if columns is None else columns)
    names = list(rows)
    name_w = max(len("strategy"), *(len(n) for n in names)) if names else len("strategy")
    cells = {k: [_cell(rows[n], k, d) for n in names] for _, k, d in cols}
    col_w = [max(len(h), *(len(c) for c in cells[k])) if names else len(h)
             for h, k, _ in cols]
    blocks: list[list[int]] = [[]]
    used = name_w
    for i, w in enumerate(col_w):
        if width is not None and blocks[-1] and used + 2 + w > width:
            blocks.append([])
            used = name_w
        blocks[-1].append(i)
        used += 2 + w
    for b, block in enumerate(blocks):
        if b:
            out.write("\n")
        # strategy names left-aligned, numbers right-aligned
        line = "  ".join(["strategy".ljust(name_w)] + [cols[i][0].rjust(col_w[i])
                                                       for i in block])
        out.write(line + "\n" + "-" * len(line) + "\n")
        for j, n in enumerate(names):
            out.write("  ".join([n.ljust(name_w)] + [cells[cols[i][1]][j].rjust(col_w[i])
                                                      for i in block]) + "\n")


TENANT_COLUMNS = [
    ("submitted", "submitted", 0), ("completed", "completed", 0),
    ("timed_out", "timed_out", 0), ("rejected", "rejected", 0), ("failed", "failed", 0),
    ("wait_p50", "wait_p50_s", 2), ("wait_p95", "wait_p95_s", 2),
    ("wait_p99", "wait_p99_s", 2), ("e2e_mean", "e2e_mean_s", 2),
]
#: tenants printed per strategy (the JSON has them all)
MAX_TABLE_TENANTS = 20


def tenant_cells(rows: dict[str, dict[str, Any]]
                 ) -> tuple[list[str], list[list[str]], dict[str, int]]:
    """The per-tenant block's headers, cells (one line per (strategy,
    tenant), at most ``MAX_TABLE_TENANTS`` tenants per strategy) and, per
    strategy, how many tenants were left out."""
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
    return ["strategy", "tenant"] + [h for h, _, _ in TENANT_COLUMNS], body, more


def render_tenant_table(rows: dict[str, dict[str, Any]], out: TextIO) -> None:
    """Print the per-tenant block (:func:`tenant_cells`); nothing without tenants."""
    headers, body, more = tenant_cells(rows)
    if not body:
        return
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


def capacity_line(strategy: str, seed: int, row: dict[str, Any]) -> str:
    """The capacity verdict of one run, with the pool it was taken on: the
    rule scales from the agents *online* (not offline), so "scale up to 28"
    with 28 agents in the pool means one of them is offline."""
    out = [a for a in row.get("agents_out") or [] if a.endswith(" offline")]
    ejected = [a for a in row.get("agents_out") or [] if not a.endswith(" offline")]
    line = (f"capacity when arrivals stop ({strategy}, seed {seed}): "
            f"{row['capacity_action']}, desired {row['desired_agents']} agents; "
            f"{row['online_agents']} of {row['total_agents']} agents online"
            + (f" ({', '.join(out)})" if out else "")
            + f"\n  why: {row['capacity_rationale']}")
    if ejected:
        line += f"\n  ejected then (still online, taking no new work): {', '.join(ejected)}"
    return line


def health_line(rows: dict[str, dict[str, Any]]) -> str:
    """The health scores when arrivals stop, grouped: strategies with the
    same score and the same active bottlenecks share a clause."""
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for name, r in rows.items():
        ci = (r.get("ci95") or {}).get("health_score")
        score = (f"{r['health_score']:.0f} on every seed" if ci is not None and ci[0] == ci[1]
                 else _cell(r, "health_score", 0))
        groups.setdefault((score, tuple(r.get("health_bottlenecks") or ())), []).append(name)
    parts = []
    for (score, bns), names in groups.items():
        who = "every strategy" if len(names) == len(rows) > 1 else ", ".join(names)
        parts.append(f"{score} for {who} ({', '.join(bns) or 'no active bottleneck'})")
    return ("health when arrivals stop (100 minus 20/10/5/2 per critical/high/medium/low "
            "bottleneck active then; first seed's): " + "; ".join(parts))


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
    if args.plot or args.report:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            sys.stderr.write("arbiter-core simulate: --plot and --report need matplotlib: "
                             "the extra plot (pip install '.[plot]' in a checkout)\n")
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
                             "the extra ray (pip install '.[ray]' in a checkout)\n")
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
        render_table(rows, out, table_columns(rows, args.wide),
                     None if args.wide else TABLE_WIDTH)
        render_tenant_table(rows, out)
        ci = ("" if len(seeds) == 1 else
              f"mean ± 95% CI half-width over {len(seeds)} seeds; ")
        cpu = sum(r.wall_s for per_seed in runs.values() for r in per_seed)
        procs = "1 process" if jobs == 1 or n_cases == 1 else f"{min(jobs, n_cases)} processes"
        if args.executor == "ray":
            procs = "Ray tasks"
        more = "" if args.wide else "; --wide: every column"
        out.write(f"\n(times in seconds; {ci}{n_cases} runs in {wall:.1f} s "
                  f"({cpu:.1f} s of simulation, {procs}){more})\n\n")
        lines = verdict_lines(best, means, runs, rows, seeds)
        out.write("\n".join(lines) + "\n")
    if args.plot:
        from .plotting import plot_results

        plot_results({name: per_seed[0] for name, per_seed in runs.items()}, args.plot,
                     rows=rows, scenario=scenario, seed=seeds[0], seeds=seeds)
        if not args.json:
            sys.stdout.write(f"plot written to {args.plot}\n")
    if args.report:
        _write_report(args.report, scenario, trace, seeds, runs, rows, best, means)
        if not args.json:
            sys.stdout.write(f"report written to {args.report}\n")
    return 0


def verdict_lines(best: Any, means: dict[str, float], runs: dict[str, list[Any]],
                  rows: dict[str, dict[str, Any]], seeds: list[int]) -> list[str]:
    """The lines below the table: the best strategy, its recommendations,
    the capacity and the health verdicts."""
    if best is None:
        return ["best strategy: none (no request completed after the warm-up)"]
    lines = [best.message(means)]
    if best.excluded:
        lines.append(f"  (not eligible, completed significantly fewer requests: "
                     f"{', '.join(best.excluded)})")
    first = runs[best.leader][0].table_row()
    lines.append(f"the optimizer's recommendations for {best.leader} (seed {seeds[0]}):")
    recs = first["recommendations"] or ["(none: no active bottleneck at the end)"]
    lines.extend(f"  - {rec}" for rec in recs)
    lines.append(capacity_line(best.leader, seeds[0], first))
    lines.append(health_line(rows))
    return lines


def _write_report(path: str, scenario: Any, trace: Any, seeds: list[int],
                  runs: dict[str, list[Any]], rows: dict[str, dict[str, Any]], best: Any,
                  means: dict[str, float]) -> None:
    """``--report``: the tables, the verdict, the plots and the scenario in one HTML file."""
    from .report import plot_png, render_html_report

    def cells(columns: Sequence[Column]) -> tuple[list[str], list[list[str]]]:
        return (["strategy"] + [h for h, _, _ in columns],
                [[n] + [_cell(r, k, d) for _, k, d in columns] for n, r in rows.items()])

    tables = [("summary", "Which strategy? (mean ± 95% CI half-width; times in seconds)",
               *cells(table_columns(rows))),
              ("wide", "Every column", *cells(table_columns(rows, wide=True)))]
    t_headers, t_body, _ = tenant_cells(rows)
    if t_body:
        tables.append(("tenants", "Per tenant", t_headers, t_body))
    png = plot_png({name: per_seed[0] for name, per_seed in runs.items()}, rows,
                   scenario=scenario, seed=seeds[0], seeds=seeds)
    doc = render_html_report(
        title=f"arbiter-core simulate: scenario {scenario.name!r}",
        description=_describe(scenario, trace, seeds), scenario=scenario.to_dict(),
        tables=tables, lines=verdict_lines(best, means, runs, rows, seeds), plot_png=png)
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)


# ---------------------------------------------------------------------------
# monitor


class _StopWatching(Exception):
    """The monitor's --count frames were shown: end the watched simulation."""


def _frame_sink(args: argparse.Namespace, title: str) -> tuple[Callable[[dict[str, Any]], None],
                                                              Callable[[], None]]:
    """Where frames go, and how to close it: JSON lines, a live rich view
    refreshed in place (a terminal), rich frames one after another (not a
    terminal, or ``--plain``), or one plain line a frame (no rich)."""
    out = sys.stdout
    if args.json:
        def emit_json(state: dict[str, Any]) -> None:
            out.write(json.dumps(state) + "\n")
            out.flush()
        return emit_json, lambda: None
    try:
        from rich.console import Console
        from rich.live import Live
    except ImportError:
        def emit_line(state: dict[str, Any]) -> None:
            bs = ", ".join(f"{b['component']}/{b['metric_type']}={b['current_value']:.1f} "
                           f"({b['severity']})" for b in state.get("bottlenecks", [])) or "none"
            line = f"[{state['at']}] health {state.get('health_score', math.nan):5.1f}"
            if "agents" in state:
                q = state["queue"]
                busy = sum(a["tasks"] for a in state["agents"])
                line += (f"  agents {len(state['agents'])} running {busy} "
                         f"queued {q['queued']}")
            out.write(f"{line}  bottlenecks: {bs}\n")
            for r in state.get("recommendations", []):
                out.write(f"    -> {r}\n")
            out.flush()
        return emit_line, lambda: None
    from .dashboard import render_dashboard

    console = Console(file=out)
    if console.is_terminal and not args.plain:
        live = Live(console=console, auto_refresh=False, transient=False)
        live.start()

        def emit_live(state: dict[str, Any]) -> None:
            # what fits the terminal's height: the rest of the frame is ~20 lines
            rows = max(5, console.height - 20)
            live.update(render_dashboard(state, f"{title} -- {state['at']}", rows),
                        refresh=True)
        return emit_live, live.stop

    def emit_frame(state: dict[str, Any]) -> None:
        console.print(render_dashboard(state, f"{title} -- {state['at']}"))
    return emit_frame, lambda: None


def _monitor(args: argparse.Namespace) -> int:
    if args.scenario is not None:
        return _monitor_scenario(args)
    from . import collectors
    from .dashboard import dashboard_state
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
    emit, close = _frame_sink(args, "arbiter-core monitor: this host and process")
    n = 0
    try:
        while args.count is None or n < args.count:
            if n:
                time.sleep(args.interval)
            opt.collect()
            state = dashboard_state(analysis=opt.analyze())
            state["timestamp"] = time.time()
            state["at"] = time.strftime("%H:%M:%S")
            n += 1
            emit(state)
    except KeyboardInterrupt:
        pass
    finally:
        close()
    return 0


def _monitor_scenario(args: argparse.Namespace) -> int:
    """Watch the real manager and optimizer while the simulator drives them
    through a scenario, at ``--speed`` simulated seconds per second."""
    from .dashboard import dashboard_state
    from .scenario import ScenarioError, default_scenario, load_scenario
    from .simulate import run_simulation

    try:
        scenario = (default_scenario() if args.scenario == "default"
                    else load_scenario(args.scenario))
    except ScenarioError as exc:
        sys.stderr.write(f"arbiter-core monitor: bad scenario: {exc}\n")
        return 2
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    emit, close = _frame_sink(
        args, f"arbiter-core monitor: scenario {scenario.name!r}, {args.strategy}, "
              f"seed {args.seed}, simulated")
    shown = 0
    next_frame = 0.0
    start = time.monotonic()

    def observe(now: float, manager: Any, optimizer: Any) -> None:
        nonlocal shown, next_frame
        if now < next_frame:
            return
        next_frame = now + args.interval
        if args.speed > 0:  # keep simulated time in step with the wall clock
            ahead = start + now / args.speed - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        # the optimizer's own last analysis: analysing here would change the run
        state = dashboard_state(manager, analysis=optimizer.last_analysis)
        state["simulated_s"] = now
        state["at"] = f"t = {now:.0f} s"
        emit(state)
        shown += 1
        if args.count is not None and shown >= args.count:
            raise _StopWatching

    try:
        run_simulation(scenario, args.strategy, args.seed, observe=observe)
    except (_StopWatching, KeyboardInterrupt):
        pass
    finally:
        close()
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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, except where there is none to
    show (a flag that is off, an option that is unset) or the help already
    says what happens without it ("default: ...")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action) or text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arbiter-core", formatter_class=_HelpFormatter,
        description="Runtime core of an agent scheduler: simulate, monitor, benchmark.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="compare strategies on a simulated agent pool",
                         formatter_class=_HelpFormatter,
                         description="Run every balancing strategy on a simulated pool "
                                     "and name the best one.")
    sim.add_argument("--strategy", choices=STRATEGIES,
                     help="run only this strategy (default: all of them)")
    sim.add_argument("--scenario", metavar="FILE",
                     help="a .toml or .json scenario file (default: the built-in scenario)")
    sim.add_argument("--seed", type=int, default=0, help="first random seed")
    sim.add_argument("--seeds", type=int, default=5, metavar="N",
                     help="replications: run every strategy on seeds SEED..SEED+N-1 and "
                          "report means with 95%% intervals")
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
    sim.add_argument("--wide", action="store_true",
                     help="print every column (without it: the columns that answer "
                          f"'which strategy?', within {TABLE_WIDTH} characters)")
    sim.add_argument("--plot", metavar="FILE.png", help="write plots (extra plot)")
    sim.add_argument("--report", metavar="FILE.html",
                     help="write one self-contained HTML file: the tables, the verdict, "
                          "the plots and the scenario (extra plot)")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.add_argument("--verbose", action="store_true", help="log manager/optimizer events")
    sim.set_defaults(func=_simulate)

    mon = sub.add_parser(
        "monitor", help="live view of this host, or of a simulated pool's manager",
        formatter_class=_HelpFormatter,
        description="A live terminal view (extra monitor: rich), refreshed in place: the "
                    "health score, bottlenecks and recommendations of this host and process "
                    "(psutil collectors); with --scenario, the real manager and optimizer "
                    "while the simulator drives them: agents (load, health, ejection), "
                    "queue and tenants, limits and capacity.")
    mon.add_argument("--interval", type=float, default=5.0,
                     help="seconds between refreshes (simulated seconds with --scenario)")
    mon.add_argument("--count", type=int, default=None,
                     help="stop after N refreshes (default: run until Ctrl-C, or the end "
                          "of the scenario)")
    mon.add_argument("--json", action="store_true",
                     help="one JSON document a refresh, instead of the view")
    mon.add_argument("--plain", action="store_true",
                     help="print the frames one after another instead of refreshing in "
                          "place (automatic when the output is not a terminal)")
    mon.add_argument("--scenario", metavar="FILE|default",
                     help="watch a simulated pool instead: 'default' (the built-in "
                          "scenario) or a .toml/.json scenario file")
    mon.add_argument("--strategy", choices=STRATEGIES, default="least_loaded",
                     help="the balancing strategy of the --scenario pool")
    mon.add_argument("--seed", type=int, default=0, help="the --scenario run's seed")
    mon.add_argument("--speed", type=float, default=5.0,
                     help="simulated seconds per second for --scenario (0: as fast as "
                          "possible)")
    mon.add_argument("--prometheus-port", type=int, default=None, metavar="PORT",
                     help="also serve this host's metrics for Prometheus on this port "
                          "(extra prometheus; default: not served)")
    mon.add_argument("--bind", default="127.0.0.1", help="address for --prometheus-port")
    mon.set_defaults(func=_monitor)

    bench = sub.add_parser("bench", help="quick side-by-side micro benchmark",
                           formatter_class=_HelpFormatter,
                           description="Time the hot operations against the peers "
                                       "installed (extra bench) and print ratios.")
    bench.add_argument("--scale", type=float, default=1.0,
                       help="work multiplier (the number of calls timed)")
    bench.set_defaults(func=_bench)

    demo = sub.add_parser("demo", help="record and query a built-in metric stream",
                          formatter_class=_HelpFormatter,
                          description="Record a synthetic latency stream into a "
                                      "PerformanceMonitor on a manual clock, then query the "
                                      "last 60 s: count, mean, p50/p95/p99, samples beyond "
                                      "1000 ms and the trend.")
    demo.add_argument("--samples", type=int, default=100_000,
                      help="latency samples recorded, 10 ms apart")
    demo.add_argument("--capacity", type=int, default=10_000,
                      help="the ring's capacity (max_metrics): older samples drop out")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the stream")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "monitor" and (args.interval <= 0 or (args.count is not None
                                                             and args.count < 1)):
        parser.error("--interval must be > 0 and --count >= 1")
    if args.command == "monitor" and not args.speed >= 0:
        parser.error("--speed must be >= 0")
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
