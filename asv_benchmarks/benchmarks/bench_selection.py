"""LoadBalancer.select_agent: every strategy at 10 to 10,000 agents.

Skipped (NotImplementedError in setup) at commits without the selection core.
"""

from __future__ import annotations

import numpy as np

from .common import SEED, need

PICKS = 100


class Select:
    """``PICKS`` selections per timed call over a pool with varied usage."""

    params = [
        ["round_robin", "least_loaded", "weighted", "random", "priority_based",
         "power_of_two", "peak_ewma"],
        [10, 100, 1_000, 10_000],
    ]
    param_names = ["strategy", "agents"]

    def setup(self, strategy: str, agents: int) -> None:
        ManualClock, ResourceMonitor, LoadBalancer, LoadBalancingStrategy = need(
            "ManualClock", "ResourceMonitor", "LoadBalancer", "LoadBalancingStrategy")
        rng = np.random.default_rng(SEED)
        clock = ManualClock(start=0.0)
        monitor = ResourceMonitor(clock=clock)
        cpu, mem = rng.uniform(5, 65, agents), rng.uniform(5, 70, agents)
        tasks, weights = rng.integers(0, 8, agents), rng.uniform(0.5, 2.0, agents)
        for i in range(agents):
            agent = f"agent-{i}"
            monitor.register_agent(agent, max_tasks=10, weight=float(weights[i]))
            monitor.record_usage(agent, cpu=float(cpu[i]), memory=float(mem[i]))
            monitor.update_task_count(agent, int(tasks[i]))
        self.balancer = LoadBalancer(monitor, strategy=LoadBalancingStrategy(strategy),
                                     seed=SEED)

    def time_select_100(self, strategy: str, agents: int) -> None:
        select = self.balancer.select_agent
        for _ in range(PICKS):
            select()
