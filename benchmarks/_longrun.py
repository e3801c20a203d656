"""The allocator's cost per block over a long run (issue 10's decay check).

A scheduler that has served a few hundred thousand tasks must be as fast as
a fresh one.  :func:`block_costs` drives a manager through ``blocks`` blocks
of ``block`` allocate + release cycles with distinct request ids (so the
finished-request history fills and then evicts on every cycle) and returns
the cost of each block in seconds; the last block is compared with the
first.  A block is timed as five slices and costed at five times its fastest
slice, so that a burst of load from other processes on a shared machine does
not pass for decay.  Requests are built before each slice is timed.
"""

from __future__ import annotations

import time

from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    AllocationStatus,
    ManualClock,
    ResourceManagerConfig,
)


def block_costs(blocks: int = 8, block: int = 50_000, agents: int = 20,
                slots: int = 4) -> list[float]:
    """Seconds per block of ``block`` cycles (20 agents x 4 slots, default config)."""
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=3), clock=ManualClock())
    for i in range(agents):
        arm.register_agent(f"agent-{i}", max_tasks=slots)
    allocate, release = arm.allocate_resources, arm.release_resources
    costs = []
    n = 0
    part = block // 5
    for _ in range(blocks):
        slices = []
        for _ in range(5):
            reqs = [AllocationRequest(f"r{n + k}", "t") for k in range(part)]
            ids = [r.request_id for r in reqs]
            t0 = time.perf_counter()
            for req, rid in zip(reqs, ids):
                allocate(req)
                release(rid, True, 0.01)
            slices.append(time.perf_counter() - t0)
            n += part
        costs.append(5 * min(slices))
    s = arm.get_allocation_statistics()
    assert s.total_requests == s.released == n and s.active == s.queued == 0
    assert arm.allocation_status(f"r{n - 1}").status is AllocationStatus.RELEASED
    assert arm.allocator.records_in_use <= arm.allocator.history
    return costs
