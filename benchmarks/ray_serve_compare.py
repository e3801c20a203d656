"""ArbiterRequestRouter beside Ray Serve's default power-of-two router.

One local Ray instance, two Serve applications of the same fake model (4
replicas, ``max_ongoing_requests = 4``), one routed by arbiter, one by Ray's
default router.  The model's latency grows with its own load: a request that
finds ``k`` requests running on its replica takes ``base * (1 + slope * (k -
1))``.  ``--clients`` closed-loop clients each send ``--requests`` requests;
per run: throughput (requests/s) and p50/p99 latency seen by the client.  The
routers alternate run by run; the table gives the median over ``--runs``.

    .venv/bin/python benchmarks/ray_serve_compare.py --output benchmarks/results/ray_serve.md

(needs the ``ray`` extra: ``make install-ray``)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from ray import serve
from ray.serve.config import RequestRouterConfig

ROUTER = "arbiter_core.integrations.ray_serve:ArbiterRequestRouter"


@serve.deployment(num_replicas=4, max_ongoing_requests=4, ray_actor_options={"num_cpus": 0})
class LoadModel:
    def __init__(self, base_s: float, slope: float) -> None:
        self.base_s = base_s
        self.slope = slope
        self.running = 0

    async def __call__(self, _: int) -> int:
        self.running += 1
        k = self.running
        try:
            await asyncio.sleep(self.base_s * (1.0 + self.slope * (k - 1)))
        finally:
            self.running -= 1
        return k


async def run_once(handle, clients: int, requests: int) -> tuple[float, list[float]]:
    lat: list[float] = []

    async def client() -> None:
        for i in range(requests):
            t0 = time.perf_counter()
            await handle.remote(i)
            lat.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - start, lat


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=24)
    p.add_argument("--requests", type=int, default=20, help="per client per run")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--base-ms", type=float, default=20.0)
    p.add_argument("--slope", type=float, default=0.5)
    p.add_argument("--output", type=Path)
    args = p.parse_args(argv)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    apps = {}
    for name, cfg in (("arbiter least_loaded", RequestRouterConfig(
            request_router_class=ROUTER, request_router_kwargs={"strategy": "least_loaded"})),
                      ("Ray power-of-two (default)", None)):
        dep = LoadModel.options(name=f"m{len(apps)}", **(
            {"request_router_config": cfg} if cfg is not None else {}))
        apps[name] = serve.run(dep.bind(args.base_ms / 1000, args.slope),
                               name=f"app{len(apps)}", route_prefix=None)
    results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in apps}
    for h in apps.values():                                # warm-up
        asyncio.run(run_once(h, args.clients, 2))
    for _ in range(args.runs):
        for n, h in apps.items():
            wall, lat = asyncio.run(run_once(h, args.clients, args.requests))
            results[n].append((len(lat) / wall, pct(lat, 0.5), pct(lat, 0.99)))
    serve.shutdown()
    ray.shutdown()

    total = args.clients * args.requests
    lines = [
        "## Ray Serve request router",
        "",
        f"Measured by `benchmarks/ray_serve_compare.py` (Ray {ray.__version__}, 2 CPUs): "
        f"4 replicas, `max_ongoing_requests = 4`, a fake model taking "
        f"{args.base_ms:g} ms × (1 + {args.slope:g} × (requests running on it − 1)); "
        f"{args.clients} closed-loop clients, {total} requests a run, median of "
        f"{args.runs} alternating runs.",
        "",
        "| router | throughput (req/s) | p50 latency | p99 latency |",
        "|---|---|---|---|",
    ]
    for n, rs in results.items():
        thr = statistics.median(r[0] for r in rs)
        p50 = statistics.median(r[1] for r in rs)
        p99 = statistics.median(r[2] for r in rs)
        lines.append(f"| {n} | {thr:.0f} | {p50 * 1e3:.0f} ms | {p99 * 1e3:.0f} ms |")
    lines += ["", "Command: `.venv/bin/python benchmarks/ray_serve_compare.py "
              + " ".join(sys.argv[1:]) + "`", ""]
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
