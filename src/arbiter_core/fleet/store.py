"""Lease stores: where the replicas of a fleet agree on who may use which slots.

A store holds, for one pool: the agents (``max_tasks``, weight), the live
members (lease expiry, demand), each member's lease (slots per agent), the
orphans of dead members and the agents' own reports.  Every operation is
atomic in the store: :class:`InMemoryLeaseStore` under a lock,
:class:`~arbiter_core.fleet.RedisLeaseStore` in one Lua script.  Both run the
same rules (the Lua script mirrors :func:`_plan_sync` line by line):

* **Invariant.**  For every agent, the leases of all members not yet known
  to be dead plus the orphaned slots of dead ones never exceed
  ``max_tasks``.  A lease only grows from free slots; it shrinks only when
  its member says so (``held`` at :meth:`sync`), so a member never runs more
  tasks on an agent than its lease: a shrinking lease only drains.
* **Death.**  A member that has not synced for ``lease_ttl_s`` is dead.  The
  store notices it at its next operation and turns its lease into orphans.
  Orphaned slots on an agent come back when a report for that agent, made
  after the store noticed the death, shows no more running tasks than the
  live members *run* there at the time of the report -- or
  ``max_task_time_s`` after the lease expired.  Never earlier.  A member
  that comes back adopts its orphans.
* **Reports are settled by the members.**  What a live member runs at the
  moment of a report is known only to it, and only afterwards: a report on
  an agent with orphans stays pending until every live member holding slots
  there has synced twice; the second sync carries the member's tasks there
  that ran through the whole time between its two syncs before (the store
  asks for them in :attr:`SyncResult.pending_reports`), a lower bound of
  what it ran at the report.  The orphans come back when the report shows
  no more than the sum of these.  While one report is pending, newer ones
  on that agent are only recorded.
* **Fairness: max-min fair across members** (equal weights), on demand =
  queued + active requests.  Slots beyond the total demand go first to
  members without demand, one slot each (the floor: at most one slot in
  total per idle member), then evenly to members with demand (headroom for
  bursts).  Ties go to the member ids in sorted order, so the plan is
  stable from one sync to the next.  A member's share is a target: above it,
  the member drains (idle slots first); below it, it is granted free slots,
  spread round-robin over the agents with the most free slots.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .._validate import check_int, check_positive
from ..clock import Clock, default_clock

__all__ = [
    "AgentSpec",
    "InMemoryLeaseStore",
    "LeaseStore",
    "LeaseStoreError",
    "SyncResult",
    "fair_shares",
    "spread_grant",
]


class LeaseStoreError(RuntimeError):
    """The store could not be reached or answered badly (members keep serving)."""


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """An agent as the store knows it."""

    max_tasks: int
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one :meth:`LeaseStore.sync` granted.

    ``leases`` are the slots the member may use now (what the store counts
    for it); ``targets`` (each <= its lease) are what it should drain to;
    ``agents`` is the pool, or None when it is unchanged since the
    ``agents_version`` the member sent (of the same incarnation);
    ``agents_version`` counts the changes of the pool; ``expires_at`` is
    the lease expiry in store time;
    ``share`` is the member's fair share in total slots; ``incarnation``
    changes when the store lost its state (a Redis restart without
    persistence): members then register their agents again.  ``recovering``
    is true while the store rebuilds its leases after such a loss: it takes
    the members' claims (what they run) and grants no free slot.
    ``pending_reports`` are agents whose pending report waits for this
    member's ``steady`` counts at its next sync (see the module docstring).
    """

    leases: Mapping[str, int]
    targets: Mapping[str, int]
    agents: Mapping[str, AgentSpec] | None
    expires_at: float
    now: float
    share: int
    incarnation: str
    orphaned: Mapping[str, int] = field(default_factory=dict)
    recovering: bool = False
    pending_reports: tuple[str, ...] = ()
    agents_version: int = 0


@runtime_checkable
class LeaseStore(Protocol):
    """What :class:`~arbiter_core.fleet.FleetMember` needs from a store."""

    @property
    def lease_ttl_s(self) -> float: ...

    @property
    def max_task_time_s(self) -> float: ...

    def register_agent(self, agent_id: str, max_tasks: int, weight: float = 1.0) -> None: ...

    def remove_agent(self, agent_id: str) -> None: ...

    def report_agent(self, agent_id: str, active_tasks: int) -> None: ...

    def leases(self) -> dict[str, dict[str, int]]: ...

    def orphans(self) -> dict[str, int]: ...

    def agents(self) -> dict[str, AgentSpec]: ...

    def sync(self, member_id: str, demand: int, held: Mapping[str, int],
             usage: Mapping[str, int], *, incarnation: str = "",
             steady: Mapping[str, int] | None = None,
             agents_version: int = -1) -> SyncResult: ...

    def leave(self, member_id: str, usage: Mapping[str, int]) -> None: ...


# ---------------------------------------------------------------------------
# The plan: pure functions on integers, mirrored by the Lua script


def fair_shares(demands: Mapping[str, int], capacity: int) -> dict[str, int]:
    """Max-min fair shares of ``capacity`` slots (see the module docstring).

    >>> fair_shares({"a": 10, "b": 1, "c": 0}, 8)
    {'a': 7, 'b': 1, 'c': 0}
    >>> fair_shares({"a": 2, "b": 1, "c": 0}, 8)
    {'a': 4, 'b': 3, 'c': 1}
    """
    ids = sorted(demands)
    share = dict.fromkeys(ids, 0)
    rem = max(0, capacity)
    unmet = [m for m in ids if demands[m] > 0]
    while rem > 0 and unmet:
        q = rem // len(unmet)
        if q == 0:
            for m in unmet[:rem]:
                share[m] += 1
            rem = 0
            break
        nxt = []
        for m in unmet:
            give = min(q, demands[m] - share[m])
            share[m] += give
            rem -= give
            if share[m] < demands[m]:
                nxt.append(m)
        unmet = nxt
    for m in ids:            # the floor: one slot for a member without demand
        if rem <= 0:
            break
        if demands[m] <= 0:
            share[m] = 1
            rem -= 1
    busy = [m for m in ids if demands[m] > 0]
    if rem > 0 and busy:      # headroom: the rest evenly over members with demand
        q, r = divmod(rem, len(busy))
        for i, m in enumerate(busy):
            share[m] += q + (1 if i < r else 0)
    return share


def spread_grant(free: Mapping[str, int], want: int) -> dict[str, int]:
    """Take up to ``want`` slots from ``free`` round-robin over the agents (in
    id order), one per agent per round: the agents with the most free slots
    give the most.

    >>> spread_grant({"a": 3, "b": 1, "c": 0}, 3)
    {'a': 2, 'b': 1}
    """
    ids = [a for a in sorted(free) if free[a] > 0]
    got: dict[str, int] = {}
    left = max(0, want)
    level = 0
    while left > 0 and ids:
        nxt = []
        for a in ids:
            if left <= 0:
                break
            got[a] = got.get(a, 0) + 1
            left -= 1
            if free[a] > level + 1:
                nxt.append(a)
        level += 1
        ids = nxt
    return got


def _shed(held: Mapping[str, int], usage: Mapping[str, int], excess: int) -> dict[str, int]:
    """Targets after shedding ``excess`` slots: idle ones first, then busy
    ones, agents in id order."""
    targets = dict(held)
    left = excess
    for a in sorted(targets):
        if left <= 0:
            break
        idle = targets[a] - min(max(usage.get(a, 0), 0), targets[a])
        take = min(idle, left)
        targets[a] -= take
        left -= take
    for a in sorted(targets):
        if left <= 0:
            break
        take = min(targets[a], left)
        targets[a] -= take
        left -= take
    return targets


@dataclass(slots=True)
class _Orphan:
    slots: int
    expired_at: float
    noticed: int          # the store operation (sequence number) that noticed it


@dataclass(slots=True)
class _Pending:
    """A report waiting for the live members' counts of what they ran then."""

    active: int
    seq: int
    need: frozenset[str]
    got: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _State:
    incarnation: str
    agents: dict[str, AgentSpec] = field(default_factory=dict)
    expires: dict[str, float] = field(default_factory=dict)       # member -> lease expiry
    demand: dict[str, int] = field(default_factory=dict)
    leases: dict[str, dict[str, int]] = field(default_factory=dict)
    orphans: dict[str, dict[str, _Orphan]] = field(default_factory=dict)  # agent -> member ->
    reports: dict[str, tuple[int, float]] = field(default_factory=dict)
    # operations are numbered: reports, deaths and syncs are ordered by this,
    # not by time (many happen at one reading of a test clock)
    seq: int = 0
    synced: dict[str, tuple[int, int]] = field(default_factory=dict)  # member -> last two
    pending: dict[str, _Pending] = field(default_factory=dict)
    # no free slot is granted before this (store time): the leases are being
    # rebuilt from the members' claims after the state was lost
    recover_until: float = -math.inf
    agents_version: int = 0          # +1 at every register and remove


def _check_usage(mapping: Mapping[str, int], name: str) -> dict[str, int]:
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name} must be a mapping of agent id to int, "
                        f"got {type(mapping).__name__}")
    out = {}
    for a, n in mapping.items():
        # the common case (plain non-negative ints from a member) skips the checker
        out[str(a)] = n if type(n) is int and n >= 0 else check_int(n, f"{name}[{a!r}]", 0)
    return out


class InMemoryLeaseStore:
    """A lease store in this process: for one process's members, tests and
    the simulator.

    Parameters
    ----------
    lease_ttl_s : float
        A member that has not synced for this long is dead (default 10 s).
    max_task_time_s : float
        The longest a task may run: a dead member's slots come back at the
        latest this long after its lease expired (default 3600 s).
    clock : Clock, optional
        The store's time (default monotonic); tests pass a ManualClock.

    Notes
    -----
    Memory: one record per agent, per member and per (agent, dead member)
    orphan; orphans end by report or after ``max_task_time_s``.  Every
    method is atomic (one lock).

    Examples
    --------
    >>> from arbiter_core import ManualClock
    >>> store = InMemoryLeaseStore(clock=ManualClock())
    >>> store.register_agent("a1", max_tasks=4)
    >>> r = store.sync("m1", demand=3, held={}, usage={})
    >>> dict(r.leases), r.share
    ({'a1': 4}, 4)
    """

    def __init__(self, lease_ttl_s: float = 10.0, max_task_time_s: float = 3600.0, *,
                 clock: Clock | None = None) -> None:
        self._ttl = check_positive(lease_ttl_s, "lease_ttl_s")
        self._max_task = check_positive(max_task_time_s, "max_task_time_s")
        self._clock: Clock = default_clock() if clock is None else clock
        self._lock = threading.Lock()
        self._s = _State(incarnation=uuid.uuid4().hex)

    @property
    def lease_ttl_s(self) -> float:
        return self._ttl

    @property
    def max_task_time_s(self) -> float:
        return self._max_task

    @property
    def clock(self) -> Clock:
        return self._clock

    # -- agents ---------------------------------------------------------------

    def register_agent(self, agent_id: str, max_tasks: int, weight: float = 1.0) -> None:
        """Add an agent, or update its ``max_tasks``/weight.  Lowering
        ``max_tasks`` below what is leased takes effect as members drain."""
        _check_agent_id(agent_id)
        spec = AgentSpec(check_int(max_tasks, "max_tasks", 1), check_positive(weight, "weight"))
        with self._lock:
            self._s.agents[agent_id] = spec
            self._s.agents_version += 1

    def remove_agent(self, agent_id: str) -> None:
        """Remove an agent (unknown ids are harmless); members drop it at
        their next sync."""
        with self._lock:
            s = self._s
            s.agents.pop(agent_id, None)
            s.agents_version += 1
            s.orphans.pop(agent_id, None)
            s.reports.pop(agent_id, None)
            s.pending.pop(agent_id, None)
            for lease in s.leases.values():
                lease.pop(agent_id, None)

    def report_agent(self, agent_id: str, active_tasks: int) -> None:
        """The agent's own count of the tasks it runs (from any replica or
        the agent itself); it may free a dead member's orphaned slots."""
        n = check_int(active_tasks, "active_tasks", 0)
        with self._lock:
            s = self._s
            if agent_id not in s.agents:
                raise KeyError(f"unknown agent_id {agent_id!r}")
            now = self._clock.now()
            s.seq += 1
            self._maintain(now)
            s.reports[agent_id] = (n, now)
            if s.orphans.get(agent_id) and agent_id not in s.pending:
                # the members that may run tasks there settle it (module docstring)
                need = frozenset(m for m, lease in s.leases.items() if lease.get(agent_id, 0) > 0)
                s.pending[agent_id] = _Pending(n, s.seq, need)
                _settle(s, agent_id)

    # -- reading --------------------------------------------------------------

    def leases(self) -> dict[str, dict[str, int]]:
        """Live members' leases ``{member_id: {agent_id: slots}}``, an atomic
        snapshot; expired members are not listed."""
        with self._lock:
            s = self._s
            now = self._clock.now()
            return {m: {a: n for a, n in s.leases.get(m, {}).items() if n > 0}
                    for m, exp in s.expires.items() if exp > now}

    def orphans(self) -> dict[str, int]:
        """Orphaned slots per agent (dead members' leases not yet back)."""
        with self._lock:
            return {a: sum(o.slots for o in om.values())
                    for a, om in self._s.orphans.items() if om}

    def agents(self) -> dict[str, AgentSpec]:
        with self._lock:
            return dict(self._s.agents)

    def demands(self) -> dict[str, int]:
        """Live members' last reported demand."""
        with self._lock:
            now = self._clock.now()
            return {m: self._s.demand[m] for m, exp in self._s.expires.items() if exp > now}

    # -- members --------------------------------------------------------------

    def sync(self, member_id: str, demand: int, held: Mapping[str, int],
             usage: Mapping[str, int], *, incarnation: str = "",
             steady: Mapping[str, int] | None = None,
             agents_version: int = -1) -> SyncResult:
        """Heartbeat, demand and lease exchange for one member, atomically.

        Parameters
        ----------
        member_id : str
        demand : int
            Queued + active requests of the member.
        held : mapping
            The member's current caps per agent (<= its lease; lower when it
            has drained).  The store's lease becomes this (capped by what is
            free, which only matters for a member coming back from the dead).
        usage : mapping
            Tasks the member runs per agent (idle slots are shed first).
        incarnation : str
            The store incarnation the member last saw (``""`` for none).  A
            different one means the store lost its state since: for
            ``lease_ttl_s`` from then on the store only takes claims (every
            member with a valid lease syncs in that time and claims what it
            runs) and grants no free slot, so nothing is granted twice.
        steady : mapping, optional
            For the agents of the last result's ``pending_reports``: the
            member's tasks there that have run since before its sync before
            last (a lower bound of what it ran at a pending report).
        agents_version : int
            The ``agents_version`` of the member's last result: the pool is
            sent only if it changed since (or the incarnation did).
        """
        _check_agent_id(member_id, "member_id")
        d = check_int(demand, "demand", 0)
        h = _check_usage(held, "held")
        u = _check_usage(usage, "usage")
        inc = _check_incarnation(incarnation)
        st = _check_usage(steady or {}, "steady")
        av = check_int(agents_version, "agents_version", -1)
        with self._lock:
            now = self._clock.now()
            s = self._s
            s.seq += 1
            self._maintain(now)
            if inc and inc != s.incarnation:
                s.recover_until = max(s.recover_until, now + self._ttl)
            _settle_with(s, member_id, st)
            res = _plan_sync(s, member_id, d, h, u, now, self._ttl)
            if av == s.agents_version and inc == s.incarnation:
                res = dataclasses.replace(res, agents=None)
            return res

    def reset(self) -> None:
        """Lose the whole state, as a Redis restart without persistence
        does (tests and the simulator): a new incarnation, no agents."""
        with self._lock:
            self._s = _State(incarnation=uuid.uuid4().hex)

    def leave(self, member_id: str, usage: Mapping[str, int]) -> None:
        """A member going away: slots it does not use are free at once, the
        ones its still-running tasks use become orphans.  The same holds for
        a member the store already declared dead: its orphans shrink to what
        ``usage`` says still runs (a clean leave reports zero and frees them)."""
        u = _check_usage(usage, "usage")
        with self._lock:
            now = self._clock.now()
            s = self._s
            s.seq += 1
            self._maintain(now)
            lease = s.leases.pop(member_id, {})
            s.expires.pop(member_id, None)
            s.demand.pop(member_id, None)
            s.synced.pop(member_id, None)
            for a, n in lease.items():
                keep = min(n, u.get(a, 0))
                if keep > 0:
                    s.orphans.setdefault(a, {})[member_id] = _Orphan(keep, now, s.seq)
            if not lease:
                # declared dead before it left: it knows what its tasks still use
                for a in list(s.orphans):
                    o = s.orphans[a].get(member_id)
                    if o is None:
                        continue
                    o.slots = min(o.slots, u.get(a, 0))
                    if o.slots <= 0:
                        del s.orphans[a][member_id]
                        if not s.orphans[a]:
                            del s.orphans[a]

    # -- internals ------------------------------------------------------------

    def _maintain(self, now: float) -> None:
        """Notice deaths (leases -> orphans) and end orphans past their time."""
        s = self._s
        for m in [m for m, exp in s.expires.items() if exp <= now]:
            exp = s.expires.pop(m)
            s.demand.pop(m, None)
            s.synced.pop(m, None)
            for a, n in s.leases.pop(m, {}).items():
                if n > 0:
                    om = s.orphans.setdefault(a, {})
                    old = om.get(m)
                    om[m] = _Orphan(n + (old.slots if old else 0), exp, s.seq)
        limit = now - self._max_task
        for a in list(s.orphans):
            om = s.orphans[a]
            for m in [m for m, o in om.items() if o.expired_at <= limit]:
                del om[m]
            if not om:
                del s.orphans[a]

    def _check_invariants(self) -> None:
        """Raise AssertionError unless sum(leases) + orphans <= max_tasks
        for every agent (tests)."""
        with self._lock:
            s = self._s
            for a, spec in s.agents.items():
                used = sum(lease.get(a, 0) for lease in s.leases.values())
                used += sum(o.slots for o in s.orphans.get(a, {}).values())
                assert used <= spec.max_tasks, (a, used, spec.max_tasks)

    def __repr__(self) -> str:
        return (f"InMemoryLeaseStore(agents={len(self._s.agents)}, "
                f"members={len(self._s.expires)}, lease_ttl_s={self._ttl})")


def _settle(s: _State, agent: str) -> None:
    """End the pending report on ``agent`` once every member it waits for
    has answered (or died: then it counts as running nothing, which errs on
    the safe side); free the orphans noticed before it if the report shows no
    more tasks than the members ran."""
    p = s.pending[agent]
    if any(m not in p.got and m in s.expires for m in p.need):
        return
    del s.pending[agent]
    om = s.orphans.get(agent)
    if om and p.active <= sum(p.got.values()):
        for m in [m for m, o in om.items() if o.noticed <= p.seq]:
            del om[m]
        if not om:
            del s.orphans[agent]


def _settle_with(s: _State, m: str, steady: Mapping[str, int]) -> None:
    """Take member ``m``'s answers to the pending reports (at its sync).

    Its ``steady`` counts ran through the time between its sync before last
    and its last sync, so they answer a report made in between; a report
    made earlier was missed (counted as zero); a later one waits."""
    prev2, prev1 = s.synced.get(m, (-1, -1))
    for a in sorted(s.pending):
        p = s.pending[a]
        if m not in p.need or m in p.got:
            continue
        if prev2 < p.seq < prev1:
            p.got[m] = steady.get(a, 0)
        elif p.seq < prev2:
            p.got[m] = 0
        else:
            continue
        _settle(s, a)
    s.synced[m] = (prev1, s.seq)


def _plan_sync(s: _State, m: str, demand: int, held: dict[str, int], usage: dict[str, int],
               now: float, ttl: float) -> SyncResult:
    """The sync rules on the state (deaths already processed)."""
    # a member coming back adopts its orphans: its claims replace them
    for a in list(s.orphans):
        if s.orphans[a].pop(m, None) is not None and not s.orphans[a]:
            del s.orphans[a]
    osum = {a: n for a, om in s.orphans.items() if (n := sum(o.slots for o in om.values()))}
    others: dict[str, int] = {}
    for x, held_x in s.leases.items():
        if x != m:
            for a, n in held_x.items():
                others[a] = others.get(a, 0) + n
    lease: dict[str, int] = {}
    for a, h in sorted(held.items()):
        spec = s.agents.get(a)
        if spec is None or h <= 0:
            continue
        # normally h <= the old lease; the cap matters only after a death
        v = min(h, max(0, spec.max_tasks - others.get(a, 0) - osum.get(a, 0)))
        if v > 0:
            lease[a] = v
    s.leases[m] = lease
    s.expires[m] = now + ttl
    s.demand[m] = demand
    capacity = sum(max(0, spec.max_tasks - osum.get(a, 0)) for a, spec in s.agents.items())
    share = fair_shares(s.demand, capacity)[m]
    total = sum(lease.values())
    recovering = now < s.recover_until
    if total > share:
        targets = _shed(lease, usage, total - share)
    elif recovering:
        # the leases are being rebuilt: a free slot may be another member's
        # running task that has not been claimed yet
        targets = dict(lease)
    else:
        free: dict[str, int] = {}
        for a, spec in s.agents.items():
            used = others.get(a, 0) + lease.get(a, 0) + osum.get(a, 0)
            if spec.max_tasks > used:
                free[a] = spec.max_tasks - used
        for a, g in spread_grant(free, share - total).items():
            lease[a] = lease.get(a, 0) + g
        targets = dict(lease)
    wanted = tuple(a for a in sorted(s.pending)
                   if m in s.pending[a].need and m not in s.pending[a].got)
    return SyncResult(leases=dict(lease), targets=targets, agents=dict(s.agents),
                      expires_at=now + ttl, now=now, share=share,
                      incarnation=s.incarnation, orphaned=osum, recovering=recovering,
                      pending_reports=wanted, agents_version=s.agents_version)


def _check_agent_id(agent_id: object, name: str = "agent_id") -> str:
    if not isinstance(agent_id, str):
        raise TypeError(f"{name} must be a str, got {type(agent_id).__name__}")
    if not agent_id:
        raise ValueError(f"{name} must not be empty")
    return agent_id


def _check_incarnation(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"incarnation must be a str, got {type(value).__name__}")
    return value


def _ceil_ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000.0))
