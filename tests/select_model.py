"""A pure-Python reference model of AgentTable's eligibility, health and keys.

It is deliberately naive (dicts and loops) so that it is obviously right; the
property tests compare every kernel against it on random pools.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEALTHY, DEGRADED, UNHEALTHY, OFFLINE = 0, 1, 2, 3


@dataclass
class Agent:
    agent_id: str
    max_tasks: int = 10
    active: int = 0
    weight: float = 1.0
    cpu: float | None = None
    mem: float | None = None
    net: float | None = None
    offline: bool = False
    ejected_until: float | None = None
    cap_cpu: float = 100.0
    cap_mem: float = 0.0
    cap_net: float = 0.0
    res_cpu: float = 0.0
    res_mem: float = 0.0
    res_net: float = 0.0
    thresholds: tuple[float, float, float, float] = field(default=(70.0, 85.0, 75.0, 90.0))

    def health(self) -> int:
        if self.offline:
            return OFFLINE
        cw, cc, mw, mc = self.thresholds
        cpu, mem = self.cpu, self.mem
        if (cpu is not None and cpu >= cc) or (mem is not None and mem >= mc):
            return UNHEALTHY
        if (cpu is not None and cpu >= cw) or (mem is not None and mem >= mw):
            return DEGRADED
        return HEALTHY

    def fits(self, rc: float, rm: float, rn: float) -> bool:
        cpu = self.cpu or 0.0
        if rc > 0 and cpu + self.res_cpu + rc > self.cap_cpu:
            return False
        mem_used = (self.mem or 0.0) * 0.01 * self.cap_mem + self.res_mem
        if rm > 0 and self.cap_mem > 0 and mem_used + rm > self.cap_mem:
            return False
        net_used = (self.net or 0.0) * 0.01 * self.cap_net + self.res_net
        return not (rn > 0 and self.cap_net > 0 and net_used + rn > self.cap_net)

    def eligible(self, now: float, rc: float = 0.0, rm: float = 0.0, rn: float = 0.0) -> bool:
        if self.health() == OFFLINE or self.active >= self.max_tasks:
            return False
        if self.ejected_until is not None and self.ejected_until > now:
            return False
        return self.fits(rc, rm, rn)

    # The same floating-point operations, in the same order, as the kernels.
    def ll_key(self) -> float:
        base = ((self.cpu or 0.0) + (self.mem or 0.0)) * 0.5
        return self.active * (100.0 / self.max_tasks) + base

    def w_key(self) -> float:
        task = self.active * (100.0 / self.max_tasks)
        base = 0.3 * (self.cpu or 0.0) + 0.2 * (self.mem or 0.0)
        return (0.5 * task + base) * (1.0 / self.weight)

    def prio_key(self) -> tuple[float, float]:
        return (-float(self.max_tasks - self.active), ((self.cpu or 0.0) + (self.mem or 0.0)) * 0.5)


def candidates(agents: dict[int, Agent], now: float, high: bool,
               rc: float = 0.0, rm: float = 0.0, rn: float = 0.0) -> dict[int, Agent]:
    """The slots a request may go to under the health rule."""
    elig = {s: a for s, a in agents.items() if a.eligible(now, rc, rm, rn)}
    if high:
        healthy = {s: a for s, a in elig.items() if a.health() == HEALTHY}
        if healthy:
            return healthy
    return elig
