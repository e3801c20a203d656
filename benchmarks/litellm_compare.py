"""LiteLLM's built-in strategies vs ArbiterRoutingStrategy, side by side in one process.

1. The limit test: ``--deployments`` deployments with ``max_parallel_requests``
   ``--limit`` each, ``--calls`` concurrent calls, a fake provider answering
   after ``--delay`` seconds.  Reports, per strategy: calls served / failed,
   LiteLLM's own slot refusals (429s, counted at LiteLLM's slot), the highest
   number of calls a deployment served at once (the fake provider's count),
   and wall time.
2. Per-call overhead: ``--sequential`` sequential ``acompletion`` calls to a
   zero-latency fake provider, median of ``--runs`` runs, per strategy; and
   the adapter's own pick + release without LiteLLM, against arbiter's raw
   allocate + release.

Run:  .venv/bin/python benchmarks/litellm_compare.py
Needs the ``litellm`` extra.  No network (LITELLM_LOCAL_MODEL_COST_MAP).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import litellm
from litellm import Router
from litellm.router_utils import client_initalization_utils as slots

from arbiter_core import AdaptiveResourceManager, AllocationRequest
from arbiter_core.integrations.litellm import ArbiterRoutingStrategy
from litellm_fake import model_list, register

MSG = [{"role": "user", "content": "hi"}]
REFUSALS = Counter[str]()

_acquire = slots.MaxParallelRequestsLimit.acquire


def _counting_acquire(self: Any) -> None:
    try:
        _acquire(self)
    except litellm.RateLimitError:
        REFUSALS[self.model_id] += 1
        raise


slots.MaxParallelRequestsLimit.acquire = _counting_acquire  # type: ignore[method-assign]

BUILTIN = ("simple-shuffle", "least-busy")
TRIVIAL = "trivial custom"


class TrivialStrategy:
    """A custom strategy that does nothing but rotate: LiteLLM's own cost of a
    custom pick, to tell it from the adapter's."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.i = 0

    async def async_get_available_deployment(self, model: str, messages: Any = None,
                                             input: Any = None, specific_deployment: Any = False,
                                             request_kwargs: Any = None) -> Any:
        deps = self.router.registry().deployments(model)
        self.i += 1
        return deps[self.i % len(deps)]

    def get_available_deployment(self, *args: Any, **kw: Any) -> Any:
        raise NotImplementedError
ARBITER = ("least_loaded", "power_of_two", "peak_ewma")


def router_for(name: str, deployments: int, limit: int, retries: int) -> tuple[Router, Any]:
    kw: dict[str, Any] = {"num_retries": retries, "retry_after": 0}
    if name in BUILTIN:
        kw["routing_strategy"] = name
    router = Router(model_list=model_list(deployments, limit), **kw)
    strategy = None
    if name in ARBITER:
        strategy = ArbiterRoutingStrategy(name, queue_timeout_s=60.0).install(router)
    elif name == TRIVIAL:
        router.register_plugin(TrivialStrategy(router))
    return router, strategy


async def burst(router: Router, calls: int) -> tuple[int, float]:
    async def one() -> bool:
        try:
            await router.acompletion(model="gpt", messages=MSG)
            return True
        except Exception:
            return False
    t0 = time.perf_counter()
    ok = await asyncio.gather(*(one() for _ in range(calls)))
    return sum(ok), time.perf_counter() - t0


def limit_test(args: argparse.Namespace, retries: int) -> None:
    print(f"\n## limit test: {args.deployments} deployments x max_parallel_requests="
          f"{args.limit}, {args.calls} concurrent calls, provider {args.delay * 1000:.0f} ms, "
          f"num_retries={retries}\n")
    print("| strategy | served | failed | LiteLLM 429 refusals | max concurrent on a "
          "deployment | wall s |")
    print("|---|---|---|---|---|---|")
    for name in (*BUILTIN, *ARBITER):
        fake = register()
        fake.behaviour.update({f"d{i}": "sleep" for i in range(args.deployments)})
        fake.delay_s = args.delay
        REFUSALS.clear()
        router, strategy = router_for(name, args.deployments, args.limit, retries)
        served, wall = asyncio.run(burst(router, args.calls))
        label = f"arbiter {name}" if name in ARBITER else f"LiteLLM {name}"
        print(f"| {label} | {served} | {args.calls - served} | {sum(REFUSALS.values())} | "
              f"{max(fake.peak.values())} | {wall:.2f} |")
        if strategy is not None:
            assert strategy.outstanding == 0
            strategy.uninstall()


def overhead(args: argparse.Namespace) -> None:
    print(f"\n## per-call overhead: {args.sequential} sequential acompletion calls, "
          f"zero-latency fake provider, {args.deployments} deployments, median of "
          f"{args.runs} runs (interleaved)\n")
    routers = {}
    for name in (*BUILTIN, TRIVIAL, *ARBITER):
        register()
        routers[name] = router_for(name, args.deployments, args.limit, 0)

    async def seq(router: Router) -> float:
        t0 = time.perf_counter()
        for _ in range(args.sequential):
            await router.acompletion(model="gpt", messages=MSG)
        return (time.perf_counter() - t0) / args.sequential

    async def all_runs() -> dict[str, list[float]]:
        for r, _ in routers.values():         # warm up every path
            await seq(r)
        times: dict[str, list[float]] = {n: [] for n in routers}
        for _ in range(args.runs):
            for n, (r, _) in routers.items():
                times[n].append(await seq(r))
        return times

    times = asyncio.run(all_runs())
    base = min(times["simple-shuffle"])
    print("| strategy | best run, per call | median run | worst run | best vs simple-shuffle |")
    print("|---|---|---|---|---|")
    for n, ts in times.items():
        label = f"arbiter {n}" if n in ARBITER else f"LiteLLM {n}"
        if n == TRIVIAL:
            label = "custom strategy that only rotates"
        m = statistics.median(ts)
        print(f"| {label} | {min(ts) * 1e3:.2f} ms | {m * 1e3:.2f} ms | {max(ts) * 1e3:.2f} ms "
              f"| {min(ts) / base:.2f}x |")
    for _, s in routers.values():
        if s is not None:
            s.uninstall()

    # the adapter's own work per call, without LiteLLM: pick + release
    register()
    router = Router(model_list=model_list(args.deployments, args.limit))
    strat = ArbiterRoutingStrategy("least_loaded").install(router)
    n = 20_000

    async def adapter_loop() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            kw: dict[str, Any] = {"metadata": {}}
            await strat.async_get_available_deployment("gpt", request_kwargs=kw)
            strat._finish(kw["metadata"]["arbiter_hold"], True)
        return (time.perf_counter() - t0) / n

    async def adapter_best() -> float:
        return min([await adapter_loop() for _ in range(5)])

    adapter = asyncio.run(adapter_best())
    strat.uninstall()
    arm = AdaptiveResourceManager()
    for i in range(args.deployments):
        arm.register_agent(f"d{i}", max_tasks=args.limit)

    def raw() -> float:
        t0 = time.perf_counter()
        for i in range(n):
            rid = f"r{i}"
            arm.allocate_resources(AllocationRequest(rid, rid, movable=False))
            arm.release_resources(rid, True, 0.01)
        return (time.perf_counter() - t0) / n

    rawt = min(raw() for _ in range(5))
    print(f"\nadapter pick + release (no LiteLLM), best of 5 x {n}: {adapter * 1e6:.1f} us; "
          f"raw arbiter allocate + release: {rawt * 1e6:.1f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--deployments", type=int, default=10)
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--delay", type=float, default=0.1)
    ap.add_argument("--retries", type=int, nargs="*", default=[0, 2])
    ap.add_argument("--sequential", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-overhead", action="store_true")
    args = ap.parse_args()
    from importlib.metadata import version
    print(f"litellm {version('litellm')}, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for r in args.retries:
        limit_test(args, r)
    if not args.skip_overhead:
        overhead(args)


if __name__ == "__main__":
    main()
