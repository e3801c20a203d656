"""Embedding arbiter-core in a small asyncio service: allocate, run, release.

A pool of three simulated agents serves a burst of tasks.  Each task asks the
manager for a slot (``allocate_resources_async`` waits while the pool is full),
runs on the agent it was given, and releases the slot with its outcome and
duration, which feed the manager's load and failure statistics.  A maintenance
coroutine reports agent usage and calls ``tick()``; task latencies go to a
``RuntimeOptimizer``, whose analysis is printed at the end.

Run it with ``python examples/embed_service.py [--tasks N] [--seed S]``.  It
takes about a second, uses the real monotonic clock, and exits non-zero if any
request is unaccounted for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
from dataclasses import dataclass

import arbiter_core as ac


@dataclass
class Agent:
    """A stand-in for a real worker: it runs a task by sleeping ``work / speed``."""

    name: str
    max_tasks: int
    speed: float
    failure_rate: float = 0.0
    running: int = 0

    async def run(self, work_s: float, rng: random.Random) -> None:
        self.running += 1
        try:
            await asyncio.sleep(work_s / self.speed)
            if rng.random() < self.failure_rate:
                raise RuntimeError(f"{self.name} failed the task")
        finally:
            self.running -= 1


class Service:
    """The service: one manager, one optimizer, a pool of agents."""

    def __init__(self, agents: list[Agent], seed: int) -> None:
        self.agents = {a.name: a for a in agents}
        self.rng = random.Random(seed)
        self.manager = ac.AdaptiveResourceManager(ac.ResourceManagerConfig(
            load_balancing_strategy=ac.LoadBalancingStrategy.LEAST_LOADED, seed=seed))
        for a in agents:
            self.manager.register_agent(a.name, max_tasks=a.max_tasks, weight=a.speed)
        # a 40 ms latency objective: the slower agents will show up as bottlenecks
        self.optimizer = ac.RuntimeOptimizer(ac.OptimizerConfig(
            thresholds={ac.MetricType.LATENCY: 40.0}))
        self.outcomes: dict[str, int] = {}

    async def handle(self, i: int, priority: ac.TaskPriority) -> None:
        """One task: wait for a slot, run it, release the slot with the outcome."""
        request_id = f"req-{i}"
        req = ac.AllocationRequest(request_id, f"task-{i}", priority=priority, timeout_s=2.0)
        res = await self.manager.allocate_resources_async(req)
        if res.status is not ac.AllocationStatus.ALLOCATED:   # TIMED_OUT or REJECTED
            self._count(res.status.value)
            return
        assert res.agent_id is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        success = False
        try:
            await self.agents[res.agent_id].run(self.rng.uniform(0.02, 0.08), self.rng)
            success = True
        except RuntimeError:
            pass
        finally:
            # always release: the slot comes back and the outcome is counted
            elapsed = loop.time() - started
            self.manager.release_resources(request_id, success=success, duration_s=elapsed)
            self.optimizer.record_metric(ac.MetricType.LATENCY, elapsed * 1000.0,
                                         source=res.agent_id)
        self._count("completed" if success else "failed")

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def maintain(self, stop: asyncio.Event, interval_s: float = 0.05) -> None:
        """Report each agent's usage and run the manager's maintenance cycle."""
        while not stop.is_set():
            for a in self.agents.values():
                busy = 100.0 * a.running / a.max_tasks
                self.manager.record_usage(a.name, cpu=0.6 * busy, memory=30.0 + 0.3 * busy)
            self.manager.tick()
            self.optimizer.tick()
            with contextlib.suppress(asyncio.TimeoutError):   # the interval elapsed
                await asyncio.wait_for(stop.wait(), interval_s)


async def main(tasks: int, seed: int) -> int:
    service = Service([Agent("fast", max_tasks=4, speed=2.0),
                       Agent("steady", max_tasks=3, speed=1.0),
                       Agent("flaky", max_tasks=2, speed=1.0, failure_rate=0.3)], seed)
    stop = asyncio.Event()
    maintenance = asyncio.create_task(service.maintain(stop))
    priorities = list(ac.TaskPriority)
    await asyncio.gather(*(service.handle(i, service.rng.choice(priorities))
                           for i in range(tasks)))
    stop.set()
    await maintenance

    stats = service.manager.get_allocation_statistics()
    analysis = service.optimizer.analyze()
    print(f"{tasks} tasks: {dict(sorted(service.outcomes.items()))}")
    print(f"manager: {stats.total_requests} requests, {stats.released} released, "
          f"{stats.timed_out} timed out, {stats.rejected} rejected, {stats.active} active; "
          f"wait p95 {stats.wait_p95_s or 0.0:.3f} s")
    print(f"optimizer: health {analysis.health_score:.0f}, "
          f"{len(analysis.bottlenecks)} bottleneck(s)")
    for rec in analysis.recommendations[:3]:
        print(f"  - [{rec.priority}] {rec.component}: {rec.title}")
    ended = stats.released + stats.timed_out + stats.rejected + stats.failed
    if stats.total_requests != tasks or ended != tasks or stats.active or stats.queued:
        print("accounting broken: some request did not end", file=sys.stderr)
        return 1
    print(f"all {tasks} requests accounted for")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    # the library only logs; the application decides what is shown
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main(args.tasks, args.seed)))
