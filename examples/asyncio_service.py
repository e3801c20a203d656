"""An asyncio service with arbiter's lifecycle on its event loop.

``async with manager, optimizer:`` runs their maintenance as tasks on the
running loop (no threads).  Workers wait for a slot with
``allocate_resources_async``, report their latency to the optimizer, and
release.  Run it under ``python -X dev`` to see that nothing holds the loop
up (asyncio reports callbacks slower than 100 ms).

Run:  python -X dev examples/asyncio_service.py [--tasks 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    AllocationStatus,
    MetricType,
    OptimizerConfig,
    ResourceManagerConfig,
    RuntimeOptimizer,
)


async def handle(i: int, arm: AdaptiveResourceManager, opt: RuntimeOptimizer,
                 rng: random.Random) -> bool:
    res = await arm.allocate_resources_async(
        AllocationRequest(f"req-{i}", f"task-{i}", timeout_s=10.0))
    if res.status is not AllocationStatus.ALLOCATED:
        return False
    t0 = time.perf_counter()
    ok = True
    try:
        await asyncio.sleep(rng.uniform(0.001, 0.02))        # the work
        ok = rng.random() > 0.02
    finally:
        took = time.perf_counter() - t0
        arm.release_resources(res.request_id, success=ok, duration_s=took)
        opt.record_metric(MetricType.LATENCY, took * 1000.0, source=res.agent_id or "?")
    return ok


async def main(tasks: int) -> None:
    arm = AdaptiveResourceManager(ResourceManagerConfig(monitoring_interval_s=0.05,
                                                        capacity_analysis_interval_s=0.2))
    for i in range(4):
        arm.register_agent(f"worker-{i}", max_tasks=8)
    opt = RuntimeOptimizer(OptimizerConfig(analysis_interval_s=0.1))
    rng = random.Random(7)
    async with arm, opt:
        results = await asyncio.gather(*(handle(i, arm, opt, rng) for i in range(tasks)))
        st = arm.get_allocation_statistics()
        print(f"{sum(results)}/{tasks} served; released {st.released}, queued now {st.queued}, "
              f"wait p99 {1000 * (st.wait_p99_s or 0):.1f} ms")
        a = arm.last_capacity_analysis
        if a is not None:
            print(f"capacity: {a.scaling_recommendation.value}, desired agents "
                  f"{a.desired_agents} ({a.smoothed_utilization_percent:.0f}% smoothed)")
        print(f"maintenance ran as asyncio tasks: manager {arm.is_running}, "
              f"optimizer {opt.is_running}")
    print(f"after exit: manager {arm.is_running}, optimizer {opt.is_running}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200)
    asyncio.run(main(ap.parse_args().tasks))
