"""A pure-Python reference model of AgentTable's eligibility, health and keys.

It is deliberately naive (dicts and loops) so that it is obviously right; the
property tests compare every kernel against it on random pools.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

HEALTHY, DEGRADED, UNHEALTHY, OFFLINE = 0, 1, 2, 3

# The table's default age rule: reported figures weigh exp(-age / DECAY_S).
DECAY_S = 10.0


def report_weight(report_t: float, now: float, decay_s: float = DECAY_S) -> float:
    """exp(-(now - report_t) / decay_s), capped at 1, computed as the table
    does (a scale per report and one factor per selection, reference time 0)
    so that keys compare exactly."""
    if math.isinf(decay_s):
        return 1.0
    inv = 1.0 / decay_s
    x = (now - 0.0) * inv
    x = min(700.0, max(-700.0, x))
    w = math.exp((report_t - 0.0) * inv) * math.exp(-x)
    return min(w, 1.0)


def clamp100(x: float) -> float:
    return min(100.0, max(0.0, x))


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
    # the load estimate: declared concurrency (None: max_tasks), the report's
    # time, our count when it came (None: the count now), engine figures
    concurrency: float | None = None
    report_t: float = 0.0
    active_at_report: int | None = None
    waiting: float | None = None
    running: float | None = None
    kv: float | None = None

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
    def conc(self) -> float:
        return float(self.max_tasks) if self.concurrency is None else self.concurrency

    def delta(self) -> float:
        return float(self.active - (self.active if self.active_at_report is None
                                    else self.active_at_report))

    def est_cpu(self) -> float:
        if self.cpu is None:
            return 0.0
        return clamp100(self.cpu + 100.0 * self.delta() * (1.0 / self.conc()))

    def est_queue(self) -> float:
        if self.waiting is None:
            return 0.0
        d, q = self.delta(), self.waiting
        if d > 0:
            if q > 0:
                room = 0.0
            elif self.running is not None:
                room = self.conc() - self.running
            else:
                base = self.active if self.active_at_report is None else self.active_at_report
                room = self.conc() - base
            room = max(room, 0.0)
            if d > room:
                q += d - room
        else:
            q += d
        return max(q, 0.0)

    def est_kv(self) -> float:
        if self.kv is None:
            return 0.0
        if self.running is not None:
            n = self.running
        else:
            n = float(self.active if self.active_at_report is None else self.active_at_report)
        if n <= 0:
            return self.kv
        return clamp100(self.kv * (1.0 + self.delta() / n))

    def w(self, now: float | None) -> float:
        return report_weight(self.report_t, self.report_t if now is None else now)

    def ll_key(self, now: float | None = None) -> float:
        load = self.active * (1.0 / self.conc())
        rep = (self.est_cpu() + (self.mem or 0.0)) * 0.5
        return 100.0 * load + rep * self.w(now)

    def w_key(self, now: float | None = None) -> float:
        load = self.active * (1.0 / self.conc())
        iw = 1.0 / self.weight
        rep = (0.3 * self.est_cpu() + 0.2 * (self.mem or 0.0)) * iw
        return 50.0 * load * iw + rep * self.w(now)

    def prio_key(self, now: float | None = None) -> tuple[float, float]:
        return (-float(self.max_tasks - self.active), ((self.cpu or 0.0) + (self.mem or 0.0)) * 0.5)

    def profile_key(self, p: dict[str, float], now: float | None = None,
                    lat: float = 0.0) -> float:
        """The ``scored`` strategy's key under profile ``p`` (weights by name)."""
        inv_conc = 1.0 / self.conc()
        k = p["count"] * (self.active * inv_conc)
        if p["latency"] != 0.0:
            k += p["latency"] * lat
        rep = 0.0
        if p["queue"] != 0.0:
            rep += p["queue"] * self.est_queue() * inv_conc
        if p["utilization"] != 0.0:
            cpu, mem = self.est_cpu(), self.mem or 0.0
            rep += p["utilization"] * 0.01 * (cpu if cpu > mem else mem)
        if p["kv_cache"] != 0.0:
            rep += p["kv_cache"] * 0.01 * self.est_kv()
        if p.get("by_weight"):
            iw = 1.0 / self.weight
            k *= iw
            rep *= iw
        return k + rep * self.w(now)


def candidates(agents: dict[int, Agent], now: float, high: bool,
               rc: float = 0.0, rm: float = 0.0, rn: float = 0.0) -> dict[int, Agent]:
    """The slots a request may go to under the health rule."""
    elig = {s: a for s, a in agents.items() if a.eligible(now, rc, rm, rn)}
    if high:
        healthy = {s: a for s, a in elig.items() if a.health() == HEALTHY}
        if healthy:
            return healthy
    return elig
