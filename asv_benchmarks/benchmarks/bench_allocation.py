"""AdaptiveResourceManager: allocate/release cycles, queue churn, a 10,000-agent pool.

Skipped (NotImplementedError in setup) at commits without the manager.
"""

from __future__ import annotations

import itertools
from typing import Any

from .common import need

CYCLES = 1_000


def manager(agents: int, max_tasks: int) -> tuple[Any, Any]:
    """A manager on a manual clock with ``agents`` idle agents; returns (manager, clock)."""
    ManualClock, AdaptiveResourceManager = need("ManualClock", "AdaptiveResourceManager")
    clock = ManualClock(start=0.0)
    arm = AdaptiveResourceManager(clock=clock)
    for i in range(agents):
        arm.register_agent(f"agent-{i}", max_tasks=max_tasks, weight=1.0)
    return arm, clock


class AllocateRelease:
    """``CYCLES`` allocate + release pairs per timed call (nothing ever queues)."""

    params = [[10, 1_000, 10_000]]
    param_names = ["agents"]

    def setup(self, agents: int) -> None:
        AllocationRequest, TaskPriority = need("AllocationRequest", "TaskPriority")
        self.arm, self.clock = manager(agents, max_tasks=10)
        self.request = AllocationRequest
        self.priorities = list(TaskPriority)
        self.ids = itertools.count()

    def time_allocate_release_1k(self, agents: int) -> None:
        allocate, release = self.arm.allocate_resources, self.arm.release_resources
        request, priorities = self.request, self.priorities
        for n in itertools.islice(self.ids, CYCLES):
            rid = f"r{n}"
            allocate(request(request_id=rid, task_id=f"t{n}",
                             priority=priorities[n % len(priorities)], timeout_s=5.0))
            release(rid, success=True, duration_s=0.01)


class QueueChurn:
    """Overload a small pool: 1,000 requests queue, some dispatch, the rest time out.

    One timed call submits ``CYCLES`` requests to 10 agents of 2 slots, releases
    the 20 running ones (which dispatches 20 queued), then moves the clock past
    every deadline and ticks, timing the rest out.
    """

    number = 1
    repeat = (5, 20, 20.0)

    def setup(self) -> None:
        AllocationRequest, TaskPriority = need("AllocationRequest", "TaskPriority")
        self.arm, self.clock = manager(10, max_tasks=2)
        priorities = list(TaskPriority)
        self.requests = [
            AllocationRequest(request_id=f"r{n}", task_id=f"t{n}",
                              priority=priorities[n % len(priorities)], timeout_s=5.0)
            for n in range(CYCLES)]

    def time_queue_churn_1k(self) -> None:
        arm = self.arm
        allocate = arm.allocate_resources
        for req in self.requests:
            allocate(req)
        for req in self.requests[:20]:
            arm.release_resources(req.request_id, success=True, duration_s=0.01)
        self.clock.advance(10.0)
        arm.tick()


class ManagerMemory:
    """Peak memory of a manager with 10,000 registered agents."""

    def setup(self) -> None:
        need("AdaptiveResourceManager")

    def peakmem_manager_10k_agents(self) -> None:
        manager(10_000, max_tasks=10)
