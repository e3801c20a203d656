"""LiteLLM Router + ArbiterRoutingStrategy, with a fake provider (no network).

Ten deployments of one model group, each limited to 30 concurrent calls by
LiteLLM (``max_parallel_requests``), and 500 calls at once.  LiteLLM's own
strategies refuse the 200 calls beyond the 300 slots with a 429; routed
through arbiter, the excess waits for a free slot and every call is served.
One deployment always fails: arbiter ejects it after a few calls and the
retries go elsewhere.

Run:  python examples/litellm_router.py [--calls 500] [--builtin simple-shuffle]
Needs: pip install 'arbiter-runtime[litellm]'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")    # no network at import

import litellm
from litellm import CustomLLM, Router

from arbiter_core.integrations.litellm import ArbiterRoutingStrategy


class FakeLLM(CustomLLM):
    """Answers after ``delay_s``; counts concurrent calls per deployment."""

    def __init__(self, delay_s: float, failing: set[str]) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.failing = failing
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    async def acompletion(self, *args: Any, **kwargs: Any) -> litellm.ModelResponse:
        name = kwargs["model"].split("/", 1)[-1]
        self.now[name] += 1
        self.peak[name] = max(self.peak[name], self.now[name])
        try:
            await asyncio.sleep(self.delay_s)
            if name in self.failing:
                raise litellm.ServiceUnavailableError(message="fake outage",
                                                      llm_provider="fake", model=name)
        finally:
            self.now[name] -= 1
        return litellm.ModelResponse(
            choices=[{"message": {"role": "assistant", "content": "ok"}}], model=name)


def make_router(fake: FakeLLM, deployments: int, limit: int, **kw: Any) -> Router:
    litellm.custom_provider_map = [{"provider": "arbiterexample", "custom_handler": fake}]
    return Router(model_list=[
        {"model_name": "gpt", "model_info": {"id": f"d{i}"},
         "litellm_params": {"model": f"arbiterexample/d{i}", "max_parallel_requests": limit}}
        for i in range(deployments)], **kw)


async def burst(router: Router, calls: int) -> tuple[Counter[str], float]:
    async def one() -> str:
        try:
            await router.acompletion(model="gpt", messages=[{"role": "user", "content": "hi"}])
            return "ok"
        except Exception as exc:
            return type(exc).__name__
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(calls)))
    return Counter(results), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--deployments", type=int, default=10)
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--delay", type=float, default=0.1, help="provider latency, seconds")
    ap.add_argument("--builtin", default=None,
                    help="run a LiteLLM strategy instead (simple-shuffle, least-busy)")
    ap.add_argument("--failing", default=None,
                    help="a deployment that always fails (default: the last; '' none)")
    args = ap.parse_args()
    name = f"d{args.deployments - 1}" if args.failing is None else args.failing
    failing = {name} if name else set()
    fake = FakeLLM(args.delay, failing)
    if args.builtin:
        router = make_router(fake, args.deployments, args.limit, num_retries=2,
                             retry_after=0, routing_strategy=args.builtin)
        results, wall = asyncio.run(burst(router, args.calls))
        print(f"{args.builtin}: {dict(results)} in {wall:.2f} s; "
              f"max concurrency per deployment {max(fake.peak.values())}")
        return
    router = make_router(fake, args.deployments, args.limit, num_retries=2, retry_after=0)
    with ArbiterRoutingStrategy("least_loaded", queue_timeout_s=30.0).install(router) as s:
        results, wall = asyncio.run(burst(router, args.calls))
        st = s.stats()
        print(f"arbiter least_loaded: {dict(results)} in {wall:.2f} s; "
              f"max concurrency per deployment {max(fake.peak.values())} "
              f"(limit {args.limit})")
        print(f"  picks {st.picks}, refused {st.refused}, succeeded {st.succeeded}, "
              f"failed {st.failed}, outstanding {s.outstanding}, ejected {sorted(s.ejected())}")


if __name__ == "__main__":
    main()
