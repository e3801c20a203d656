"""``arbiter-core bench``: a quick side-by-side micro benchmark.

Each operation is timed against the peers that are installed, in the same
process and interleaved, and reported as a ratio (ours / peer; below 1 is
faster).  Absolute times on a shared machine are noise; ratios measured side
by side are what to read.  A peer that is not installed is named at the end,
with the package it needs (all of them: the ``bench`` extra).  The full suites
are ``make bench`` and asv, from a source checkout.
"""

from __future__ import annotations

import functools
import random
import time
import timeit
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

__all__ = ["run_quick_bench"]


def _best_ns(fn: Callable[[], Any], number: int, repeat: int = 5) -> float:
    """Best-of-``repeat`` nanoseconds per call of ``fn`` (run ``number`` times)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e9


def _loop(op: Callable[..., Any], args: tuple[Any, ...], n: int) -> Callable[[], None]:
    def body() -> None:
        for _ in range(n):
            op(*args)
    return body


def _plain_pool(n: int) -> list[dict[str, float]]:
    rng = random.Random(1)
    return [{"id": i, "tasks": rng.randint(0, 8), "max": 10, "cpu": rng.uniform(0, 90),
             "mem": rng.uniform(0, 90), "healthy": True} for i in range(n)]


def _plain_least_loaded(pool: list[dict[str, float]]) -> Any:
    best, best_load = None, float("inf")
    for a in pool:
        if not a["healthy"] or a["tasks"] >= a["max"]:
            continue
        load = a["tasks"] / a["max"] * 100 + (a["cpu"] + a["mem"]) / 2
        if load < best_load:
            best, best_load = a, load
    return best


def run_quick_bench(out: TextIO, scale: float = 1.0) -> list[dict[str, Any]]:
    """Run the quick benchmark, print a table to ``out`` and return its rows."""
    from . import AdaptiveResourceManager, ManualClock, MetricRing, PerformanceMonitor
    from .resources import AllocationRequest, LoadBalancer, ResourceMonitor

    n = max(1000, int(20_000 * scale))
    rows: list[dict[str, Any]] = []
    # peers that are not installed: {peer: the package it needs}
    skipped: dict[str, str] = {}

    def row(op: str, ours_ns: float, peers: dict[str, float]) -> None:
        rows.append({"operation": op, "ours_ns": ours_ns, "peers_ns": peers})

    # -- record -------------------------------------------------------------------
    mon = PerformanceMonitor(max_metrics=10_000)
    handle = mon.series("latency", "api")
    ours = _best_ns(_loop(handle.record, (12.5,), n), 1) / n
    ours_named = _best_ns(_loop(mon.record_metric, ("latency", 12.5, "api"), n), 1) / n
    peers: dict[str, float] = {}
    try:
        from prometheus_client import CollectorRegistry, Histogram

        hist = Histogram("q_latency", "x", registry=CollectorRegistry())
        peers["prometheus_client Histogram.observe"] = _best_ns(
            _loop(hist.observe, (12.5,), n), 1) / n
    except ImportError:
        skipped["prometheus_client Histogram.observe"] = "prometheus_client"
    try:
        from hdrh.histogram import HdrHistogram

        hdr = HdrHistogram(1, 3_600_000, 3)
        peers["hdrhistogram record_value"] = _best_ns(_loop(hdr.record_value, (12,), n), 1) / n
    except ImportError:
        skipped["hdrhistogram record_value"] = "hdrhistogram"
    dq: deque[tuple[float, float]] = deque(maxlen=10_000)

    def plain_record(v: float) -> None:
        dq.append((time.monotonic(), v))

    peers["plain Python deque + time.monotonic"] = _best_ns(
        _loop(plain_record, (12.5,), n), 1) / n
    row("record (series handle)", ours, peers)
    row("record_metric (named)", ours_named, peers)

    # -- quantile over a 10k window --------------------------------------------------
    vals = np.random.default_rng(1).gamma(2.0, 20.0, 10_000)
    ring = MetricRing(10_000)
    ring.record_many(1, vals, np.arange(10_000.0))
    q_ours = _best_ns(lambda: ring.quantile(1, 0.99), 50)
    q_peers = {
        "np.partition (p99)": _best_ns(lambda: np.partition(vals, 9899)[9899], 50),
        "np.percentile (p99)": _best_ns(lambda: np.percentile(vals, 99), 50),
    }
    lst = vals.tolist()
    q_peers["plain Python sorted()"] = _best_ns(lambda: sorted(lst)[9899], 10)
    row("p99 of a 10k window", q_ours, q_peers)

    # -- select (least loaded) over 100 and 10,000 agents -------------------------------
    for size in (100, 10_000):
        rmon = ResourceMonitor(clock=ManualClock())
        for i in range(size):
            rmon.register_agent(f"a{i}", max_tasks=10)
            rmon.record_usage(f"a{i}", cpu=float(i % 90), memory=float((i * 7) % 90))
        lb = LoadBalancer(rmon, strategy="least_loaded", seed=1)
        reps = max(20, int(2000 * scale * 100 / size))
        s_ours = _best_ns(lb.select_agent, reps)
        pool = _plain_pool(size)
        s_plain = _best_ns(functools.partial(_plain_least_loaded, pool), reps)
        row(f"select least_loaded, {size} agents", s_ours,
            {"plain Python scan over dicts": s_plain})

    # -- allocate + release through the manager -------------------------------------------
    arm = AdaptiveResourceManager(clock=ManualClock())
    for i in range(100):
        arm.register_agent(f"a{i}", max_tasks=10)
    ids = [f"r{i}" for i in range(n)]
    counter = iter(range(10**9))

    def cycle() -> None:
        rid = ids[next(counter) % n]
        arm.allocate_resources(AllocationRequest(request_id=rid, task_id=rid))
        arm.release_resources(rid)

    reps = max(200, int(5000 * scale))
    a_ours = _best_ns(cycle, reps)
    pool = _plain_pool(100)

    def plain_cycle() -> None:
        a = _plain_least_loaded(pool)
        a["tasks"] += 1
        a["tasks"] -= 1

    a_plain = _best_ns(plain_cycle, reps)
    row("allocate+release, 100 agents", a_ours, {"plain Python least-loaded + count": a_plain})

    _print(out, rows, skipped)
    return rows


def _human(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def _print(out: TextIO, rows: list[dict[str, Any]], skipped: dict[str, str]) -> None:
    out.write("arbiter-core quick benchmark (best of 5; ratio = ours / peer, < 1 is faster)\n\n")
    for r in rows:
        out.write(f"{r['operation']}: {_human(r['ours_ns'])}\n")
        for peer, ns in r["peers_ns"].items():
            out.write(f"    vs {peer:<40} {_human(ns):>10}   ratio {r['ours_ns'] / ns:6.3f}\n")
    if skipped:
        out.write("\nskipped, not installed: "
                  + "; ".join(f"{peer} (package {pkg})" for peer, pkg in skipped.items())
                  + "\n  install them: pip install " + " ".join(sorted(set(skipped.values())))
                  + ", or the extra bench from a checkout: pip install '.[bench]'\n")
    out.write("\nThe full suites need a source checkout: make bench (pytest-benchmark), "
              "asv (asv_benchmarks/).\n")
