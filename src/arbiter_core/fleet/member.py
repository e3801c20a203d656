"""FleetMember: one replica's AdaptiveResourceManager, inside a lease.

The member's manager sees every agent of the pool with ``max_tasks`` equal to
the slots this member may use (its *cap*): the hot path -- allocate, release,
the priority queue, failover -- is the plain manager's, in process, untouched.
:meth:`FleetMember.sync` (from :meth:`tick` or the background thread, every
``sync_interval_s``) exchanges demand and caps with the lease store and moves
the caps:

* a cap grows only after the store granted the slots (so the store's lease
  is always >= the cap, and the sum of caps over members never exceeds an
  agent's ``max_tasks``);
* a cap shrinks only as this member's tasks end (it drains): when the store
  asks for fewer slots (the *target*), a released slot is not reused while
  the agent is above its target -- not by new requests, not by the queue;
* a cap of zero is a full one-slot agent (``max_tasks=1`` with a placeholder
  task), because the manager's agents have at least one slot: the member's
  pool statistics subtract these placeholders.

When the store cannot be reached, the member keeps serving inside its caps
until its lease would have expired (``lease_ttl_s`` after the start of its
last successful sync by its own clock, less one ``sync_interval_s`` of
margin), then drains to zero; errors are logged and counted, and the next
successful sync restores everything.  The lease deadline is checked on the
hot path itself (every allocate and release reads the clock once), so a
store call that hangs cannot keep a member serving past its lease.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .._validate import check_positive
from ..clock import Clock, SteadyClock, default_clock
from ..resources.allocation import (
    AllocationRequest,
    AllocationResult,
    AllocationStatistics,
)
from ..resources.manager import (
    AdaptiveResourceManager,
    FailoverEvent,
    ManagerHealthStatus,
    ResourceManagerConfig,
    TaskMovedEvent,
    TickReport,
)
from ..resources.records import ResourcePoolStats
from ..types import HealthStatus
from .store import AgentSpec, LeaseStore, SyncResult

__all__ = ["FleetMember", "SyncReport"]

log = logging.getLogger("arbiter_core.fleet")

_OFFLINE = 3      # AgentTable health code of OFFLINE (HEALTH_NAMES order)


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one :meth:`FleetMember.sync` did.

    ``ok`` is false when the store could not be reached (``error`` says
    why); ``caps`` are the slots per agent the member may use afterwards,
    ``targets`` what it drains towards; ``dispatched`` counts queued
    requests placed into new slots; ``expired`` is true when the member's
    lease ran out without a successful sync (it drains to zero).
    """

    timestamp: float
    ok: bool
    caps: Mapping[str, int]
    targets: Mapping[str, int]
    demand: int
    share: int | None
    dispatched: int
    expired: bool = False
    error: str | None = None


class FleetMember:
    """The :class:`~arbiter_core.AdaptiveResourceManager` API for one replica
    of a fleet that shares a pool of agents through a lease store.

    Parameters
    ----------
    member_id : str
        Unique in the pool (a host name plus a process id, say).
    store : LeaseStore
        :class:`~arbiter_core.fleet.InMemoryLeaseStore` or
        :class:`~arbiter_core.fleet.RedisLeaseStore`.
    config : ResourceManagerConfig, optional
        The member's manager configuration.
    clock : Clock, optional
        The member's time (default monotonic); tests pass a ManualClock.
    sync_interval_s : float
        :meth:`tick` and the background thread sync this often (default 1 s;
        must be below the store's ``lease_ttl_s``).

    Notes
    -----
    ``allocate_resources`` and ``release_resources`` are the manager's
    methods behind one check of the lease deadline (a clock reading and a
    comparison); a release on a draining agent also keeps the freed slot
    from the queue.  ``close()`` waits at most ``sync_interval_s`` for the
    background thread (a store call may hang in it) and leaves the pool
    with one store call (bound the store's own timeouts: see
    :class:`~arbiter_core.fleet.RedisLeaseStore`).  The agents come from
    the store: register them there (:meth:`LeaseStore.register_agent`); a
    member registers them in its manager at its next sync.  Usage reports,
    health, ejection and failover are per member, as on one manager.

    Examples
    --------
    >>> from arbiter_core import ManualClock, AllocationRequest
    >>> from arbiter_core.fleet import InMemoryLeaseStore, FleetMember
    >>> clock = ManualClock()
    >>> store = InMemoryLeaseStore(clock=clock)
    >>> store.register_agent("a1", max_tasks=4)
    >>> m1 = FleetMember("m1", store, clock=clock)
    >>> m1.sync().caps                # no demand yet: the floor, one slot
    {'a1': 1}
    >>> m1.allocate_resources(AllocationRequest("r1", "t1")).status.value
    'allocated'
    >>> m1.allocate_resources(AllocationRequest("r2", "t2")).status.value
    'queued'
    >>> m1.sync().dispatched          # demand 2: the store grants the pool
    1
    >>> m1.leased_slots()
    {'a1': 4}
    """

    def __init__(self, member_id: str, store: LeaseStore,
                 config: ResourceManagerConfig | None = None, *,
                 clock: Clock | None = None, sync_interval_s: float = 1.0) -> None:
        if not isinstance(member_id, str):
            raise TypeError(f"member_id must be a str, got {type(member_id).__name__}")
        if not member_id:
            raise ValueError("member_id must not be empty")
        if not isinstance(store, LeaseStore):
            raise TypeError(f"store must be a LeaseStore, got {type(store).__name__}")
        self._interval = check_positive(sync_interval_s, "sync_interval_s")
        if self._interval >= store.lease_ttl_s:
            raise ValueError(f"sync_interval_s ({self._interval}) must be below the store's "
                             f"lease_ttl_s ({store.lease_ttl_s})")
        self.member_id = member_id
        self._store = store
        self._clock: Clock = default_clock() if clock is None else clock
        # intervals and the lease deadline on readings that never go back:
        # a clock stepping back must not stop the syncs
        self._steady = SteadyClock(self._clock)
        self._manager = AdaptiveResourceManager(config, clock=self._clock)
        mgr = self._manager
        self._monitor = mgr.monitor
        self._table = mgr.monitor.table
        self._alloc = mgr.allocator
        self._lock = mgr.monitor.lock
        self._caps: dict[str, int] = {}
        self._targets: dict[str, int] = {}
        self._placeholder: set[str] = set()
        self._draining: set[str] = set()
        self._specs: dict[str, AgentSpec] = {}
        self._incarnation: str | None = None
        self._valid_until = -math.inf
        # the same deadline on the raw clock, for the hot path: a reading
        # outside [_raw_from, _raw_until) -- past the deadline, or a clock
        # that stepped back -- takes the full check on the steady readings
        self._raw_from = math.inf
        self._raw_until = -math.inf
        self._expired = True             # no lease before the first sync
        self._last_sync: float | None = None
        self._last_report: SyncReport | None = None
        # the snapshots (clock readings) of the last two syncs the store
        # answered, and the agents whose pending reports await our counts
        self._snaps: list[tuple[float, int]] = [(-math.inf, 0), (-math.inf, 0)]
        self._asked: tuple[str, ...] = ()
        self._agents_version = -1        # of the pool we know (the store's counter)
        self._closed = False
        #: store calls that failed (each one logged)
        self.sync_errors = 0
        #: successful syncs
        self.syncs = 0
        #: tasks found above the cap after the store cut a claim (only when a
        #: member comes back after its orphans were reclaimed)
        self.over_cap_events = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._thread_lock = threading.Lock()
        self._mgr_allocate = mgr.allocate_resources
        self._mgr_release = mgr.release_resources
        self.release_resources: Callable[..., AllocationResult | None] = self._release

    # -- the hot path: the manager's, behind the lease deadline ---------------

    def allocate_resources(self, request: AllocationRequest) -> AllocationResult:
        """Allocate (the manager's method) inside this member's lease."""
        if not self._expired and not self._raw_from <= self._clock.now() < self._raw_until:
            self.check_lease()
        return self._mgr_allocate(request)

    def _release(self, request_id: str, success: bool = True,
                 duration_s: float | None = None) -> AllocationResult | None:
        # a release serves the queue: not past the lease
        if not self._expired and not self._raw_from <= self._clock.now() < self._raw_until \
                and self.check_lease():
            return self._release_draining(request_id, success, duration_s)
        return self._mgr_release(request_id, success, duration_s)

    # -- the manager's API ----------------------------------------------------

    @property
    def manager(self) -> AdaptiveResourceManager:
        """The member's manager (its ``max_tasks`` are this member's caps)."""
        return self._manager

    @property
    def store(self) -> LeaseStore:
        return self._store

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def sync_interval_s(self) -> float:
        return self._interval

    async def allocate_resources_async(self, request: AllocationRequest) -> AllocationResult:
        """Allocate, waiting while QUEUED (new slots arrive at :meth:`sync`)."""
        if not self._expired and not self._raw_from <= self._clock.now() < self._raw_until:
            self.check_lease()
        return await self._manager.allocate_resources_async(request)

    def allocation_status(self, request_id: str) -> AllocationResult:
        return self._manager.allocation_status(request_id)

    def cancel(self, request_id: str) -> AllocationResult | None:
        """Withdraw a request (see :meth:`AdaptiveResourceManager.cancel`)."""
        if not self._draining:
            return self._manager.cancel(request_id)
        with self._lock:
            agent = self._agent_of(request_id)
            res = self._manager.cancel(request_id)
            if agent is not None and agent in self._draining:
                self._fit(agent)
        return res

    def record_usage(self, agent_id: str, cpu: float | None = None,
                     memory: float | None = None, network: float | None = None,
                     timestamp: float | None = None, *, waiting: float | None = None,
                     running: float | None = None,
                     kv_cache: float | None = None) -> HealthStatus:
        return self._manager.record_usage(agent_id, cpu, memory, network, timestamp,
                                          waiting=waiting, running=running, kv_cache=kv_cache)

    def restore_agent(self, agent_id: str) -> HealthStatus:
        return self._manager.restore_agent(agent_id)

    def handle_failover(self, failed_agent_id: str, backup_id: str | None = None,
                        reason: str = "manual failover") -> FailoverEvent:
        return self._manager.handle_failover(failed_agent_id, backup_id, reason)

    def on_failover(self, callback: Callable[[FailoverEvent], None]) -> Callable[[], None]:
        return self._manager.on_failover(callback)

    def on_task_moved(self, callback: Callable[[TaskMovedEvent], None]) -> Callable[[], None]:
        return self._manager.on_task_moved(callback)

    def get_allocation_statistics(self) -> AllocationStatistics:
        return self._manager.get_allocation_statistics()

    def get_load_distribution(self) -> dict[str, int]:
        """Selections made per agent (as on the manager)."""
        return self._manager.get_load_distribution()

    def get_pool_statistics(self) -> ResourcePoolStats:
        """The manager's pool statistics over this member's caps (agents with
        a zero cap count no slot and no task)."""
        with self._lock:
            p = self._manager.get_pool_statistics()
            n = len(self._placeholder)
            online = sum(1 for a in self._placeholder
                         if self._table.health(self._table.slot(a)) != _OFFLINE)
        if not n:
            return p
        return dataclasses.replace(
            p, tasks_in_progress=p.tasks_in_progress - n,
            total_task_slots=p.total_task_slots - n,
            active_agents=max(0, p.active_agents - n),
            idle_agents=p.idle_agents + n,
            online_task_slots=p.online_task_slots - online,
            online_tasks=p.online_tasks - online)

    def get_health_status(self) -> ManagerHealthStatus:
        return self._manager.get_health_status()

    def get_failover_history(self, count: int | None = None) -> list[FailoverEvent]:
        return self._manager.get_failover_history(count)

    # -- leases ---------------------------------------------------------------

    def leased_slots(self) -> dict[str, int]:
        """Slots per agent this member may use now (its caps; the store's
        lease for it is at least this).  Agents with none are left out."""
        with self._lock:
            return {a: c for a, c in self._caps.items() if c > 0}

    def targets(self) -> dict[str, int]:
        """What the store last asked this member to drain to, per agent."""
        with self._lock:
            return dict(self._targets)

    def running(self) -> dict[str, int]:
        """Tasks this member runs per agent (placeholders excluded)."""
        with self._lock:
            return {a: n for a in self._caps if (n := self._active(a)) > 0}

    @property
    def last_sync(self) -> SyncReport | None:
        return self._last_report

    @property
    def lease_valid_until(self) -> float:
        """When this member's lease runs out without a sync, on the member's
        steady readings of its clock (equal to the clock's own while it
        never stepped back)."""
        return self._valid_until

    def sync(self) -> SyncReport:
        """Heartbeat, report demand (queued + active) and caps, receive the
        new lease, dispatch queued work into new slots.

        Never raises for a store failure: the error is logged, counted in
        :attr:`sync_errors` and reported; the member keeps its caps until its
        lease would have expired, then drains to zero.
        """
        t0 = self._clock.now()
        s0 = self._steady.now()
        snap = (t0, self._steady.steps_back)
        with self._lock:
            usage = {a: n for a in self._caps if (n := self._active(a)) > 0}
            held = {a: c for a, c in self._caps.items() if c > 0}
            demand = self._alloc.queued_count + self._alloc.active_count
            steady = self._ran_through(self._asked, self._snaps[0])
        store = self._store
        known = self._incarnation or ""
        try:
            res = store.sync(self.member_id, demand, held, usage, incarnation=known,
                             steady=steady, agents_version=self._agents_version)
            self._snaps = [self._snaps[1], snap]
            if known and res.incarnation != known:
                # the store lost its state (a restart): register what we know
                # and claim what we run (the store grants nothing free until
                # every member had the time to claim)
                log.warning("lease store of %r lost its state; registering %d agents again",
                            self.member_id, len(self._specs))
                for a, spec in self._specs.items():
                    store.register_agent(a, spec.max_tasks, spec.weight)
                res = store.sync(self.member_id, demand, held, usage,
                                 incarnation=res.incarnation)
                self._snaps = [self._snaps[1], snap]
        except Exception as exc:
            return self._failed_sync(t0, s0, demand, exc)
        if self._closed:
            # a call that hung past close(): give back what it granted
            self._leave()
            return self._failed_sync(t0, s0, demand, RuntimeError("closed"))
        removed = self._apply(res, s0, t0)
        for a in removed:            # outside the lock: failover listeners run
            self._manager.remove_agent(a)
        with self._lock:
            dispatched = self._alloc.dispatch()
            self._last_sync = s0
            self.syncs += 1
            rep = SyncReport(t0, True, {a: c for a, c in self._caps.items() if c > 0},
                             dict(self._targets), demand, res.share, dispatched)
            self._last_report = rep
        return rep

    def _ran_through(self, agents: tuple[str, ...], snap: tuple[float, int]) -> dict[str, int]:
        """Our tasks per agent allocated before the snapshot ``snap`` (lock
        held): they ran through the whole time from then to now, so at any
        report the store made in between we ran at least this many there.
        Allocation times and snapshots are readings of our clock: if it
        stepped back since, nothing is known to have run through (zero)."""
        since, steps_back = snap
        if steps_back != self._steady.steps_back:
            since = -math.inf
        out = {}
        for a in agents:
            if a in self._caps:
                out[a] = sum(1 for r in self._alloc.active_on(a)
                             if (t := self._alloc.status(r).allocated_at) is not None
                             and t < since)
        return out

    def _failed_sync(self, t0: float, s0: float, demand: int,
                     exc: BaseException) -> SyncReport:
        self.sync_errors += 1
        log.warning("fleet member %r: lease store sync failed (%d so far): %r",
                    self.member_id, self.sync_errors, exc)
        with self._lock:
            self._last_sync = s0
            # judged when the call ended: it may have waited past the lease
            expired = self._steady.now() >= self._valid_until
            if expired and not self._expired:
                # our lease may be gone in the store: use nothing new
                self._drain_all()
                self._expired = True
            rep = SyncReport(t0, False, {a: c for a, c in self._caps.items() if c > 0},
                             dict(self._targets), demand, None, 0, expired, repr(exc))
            self._last_report = rep
        return rep

    def _apply(self, res: SyncResult, t0: float, raw_t0: float) -> list[str]:
        """Take a sync result (lock taken here; ``t0``: the steady reading at
        the start of the sync); returns agents to remove."""
        with self._lock:
            self._incarnation = res.incarnation
            self._asked = tuple(res.pending_reports)
            # stop using the lease one sync interval before the store could
            # call us dead: the thread notices expiry at most that late
            self._valid_until = t0 + self._store.lease_ttl_s - self._interval
            self._raw_from = raw_t0
            self._raw_until = raw_t0 + (self._valid_until - t0)
            self._expired = False
            self._agents_version = res.agents_version
            removed: list[str] = []
            if res.agents is not None:
                for a, spec in res.agents.items():
                    old = self._specs.get(a)
                    if a not in self._caps:
                        # the monitor's register (the manager's would serve the
                        # queue at once, before the agent has its zero cap)
                        self._monitor.register_agent(a, max_tasks=1, weight=spec.weight)
                        self._caps[a] = 1
                        self._set_cap(a, 0)
                    elif old is not None and old.weight != spec.weight:
                        self._monitor.set_weight(a, spec.weight)
                    self._specs[a] = spec
                removed = [a for a in self._caps if a not in res.agents]
                check: Iterable[str] = res.agents
            else:
                check = self._changed(res)
            targets = self._targets
            for a in removed:
                targets.pop(a, None)
                self._draining.discard(a)
            for a in check:
                lease = res.leases.get(a, 0)
                target = min(res.targets.get(a, 0), lease)
                r = self._active(a)
                cap = min(lease, max(target, r))
                if r > cap:
                    self.over_cap_events += 1
                    log.error("fleet member %r runs %d tasks on %r but holds %d slots",
                              self.member_id, r, a, lease)
                    cap = r
                self._set_cap(a, cap)
                targets[a] = target
                if cap > target:
                    self._draining.add(a)
                else:
                    self._draining.discard(a)
            self._rewire()
            for a in removed:
                self._caps.pop(a, None)
                self._targets.pop(a, None)
                self._specs.pop(a, None)
                if a in self._placeholder:
                    self._placeholder.discard(a)
                    self._monitor.update_task_count(a, 0)
        return removed

    def _changed(self, res: SyncResult) -> set[str]:
        """The agents whose lease or target moved, and those draining (lock
        held): the others keep their caps (cost in what changed)."""
        caps, targets = self._caps, self._targets
        out = set(self._draining)
        for a, n in res.leases.items():
            if caps.get(a) != n:
                out.add(a)
        for a, t in res.targets.items():
            if targets.get(a) != t:
                out.add(a)
        for a, c in caps.items():
            if c > 0 and a not in res.leases:
                out.add(a)
        for a, t in targets.items():
            if t > 0 and a not in res.targets:
                out.add(a)
        return {a for a in out if a in caps}

    # -- caps -----------------------------------------------------------------

    def _active(self, agent: str) -> int:
        n = int(self._table.active(self._table.slot(agent)))
        return n - 1 if agent in self._placeholder else n

    def _set_cap(self, agent: str, cap: int) -> None:
        """Make the manager's max_tasks for ``agent`` equal ``cap`` (lock held;
        ``cap`` >= the member's tasks there)."""
        mon = self._monitor
        if cap <= 0:
            if agent not in self._placeholder:
                mon.set_max_tasks(agent, 1)
                mon.update_task_count(agent, 1)
                self._placeholder.add(agent)
            self._caps[agent] = 0
            return
        if agent in self._placeholder:
            mon.update_task_count(agent, 0)
            self._placeholder.discard(agent)
        if self._caps.get(agent) != cap or \
                int(self._table.row(self._table.slot(agent))["max_tasks"]) != cap:
            mon.set_max_tasks(agent, cap)
        self._caps[agent] = cap

    def _drain_all(self) -> None:
        """Targets zero everywhere (lock held): use nothing new, keep what runs."""
        self._targets = dict.fromkeys(self._caps, 0)
        self._draining = {a for a, c in self._caps.items() if c > 0}
        for a in list(self._draining):
            self._fit(a)
        self._rewire()

    def _fit(self, agent: str) -> None:
        """Drain step (lock held): the cap follows the tasks down to the target."""
        if agent not in self._caps:
            return
        target = self._targets.get(agent, 0)
        cap = max(target, self._active(agent))
        if cap < self._caps[agent]:
            self._set_cap(agent, cap)
        if self._caps[agent] <= target:
            self._draining.discard(agent)
            if not self._draining:
                self._rewire()

    def _rewire(self) -> None:
        # the plain (lease-checked) release while nothing drains
        self.release_resources = self._release_draining if self._draining else self._release

    def _agent_of(self, request_id: str) -> str | None:
        try:
            return self._alloc.status(request_id).agent_id
        except KeyError:
            return None

    def _release_draining(self, request_id: str, success: bool = True,
                          duration_s: float | None = None) -> AllocationResult | None:
        """Release while some agent drains: a slot freed on a draining agent
        goes back to the store, not to the next request or the queue."""
        if not self._expired and not self._raw_from <= self._clock.now() < self._raw_until:
            self.check_lease()         # then every agent drains
        with self._lock:
            agent = self._agent_of(request_id)
            if agent is None or agent not in self._draining:
                return self._manager.release_resources(request_id, success, duration_s)
            table = self._table
            slot = table.slot(agent)
            # the allocator serves its queue inside the release: keep the
            # agent out of selection for that instant.  set_offline/restore
            # leave nothing behind for an agent that is neither OFFLINE nor
            # ejected (a success resets the failure streak anyway; restoring
            # at its last report time leaves its silence clock alone).
            hide = (success is True and self._alloc.queued_count > 0
                    and table.health(slot) != _OFFLINE
                    and table.row(slot)["ejected_until"] is None)
            if hide:
                last = table.row(slot)["last_report"]
                table.set_offline(slot)
                try:
                    res = self._manager.release_resources(request_id, success, duration_s)
                finally:
                    table.restore(slot, last)
            else:
                res = self._manager.release_resources(request_id, success, duration_s)
            self._fit(agent)
        return res

    # -- maintenance ----------------------------------------------------------

    def check_lease(self) -> bool:
        """Drain to zero if the lease ran out without a successful sync
        (:meth:`tick` does this before every sync, the hot path when its
        clock reading passes the deadline); returns whether it had."""
        with self._lock:
            if self._steady.now() < self._valid_until or self._expired:
                return self._expired
            log.warning("fleet member %r: lease expired without a sync; draining",
                        self.member_id)
            self._drain_all()
            self._expired = True
            return True

    def tick(self) -> TickReport:
        """Sync when ``sync_interval_s`` has passed since the last one (else
        check that the lease still holds), then one manager maintenance
        cycle.  Call it at least every ``sync_interval_s`` -- or
        :meth:`start` the thread that does."""
        # first the lease: the sync below may wait in the store past it
        self.check_lease()
        now = self._steady.now()
        if self._last_sync is None or now - self._last_sync >= self._interval:
            self.sync()
        return self._manager.tick()

    @property
    def is_running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def start(self) -> None:
        """Run :meth:`tick` on a daemon thread (idempotent)."""
        with self._thread_lock:
            if self.is_running:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"arbiter-fleet-{self.member_id}")
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it, at most ``sync_interval_s``
        (idempotent); the lease stays until it expires (see :meth:`close`).
        A thread still inside a hung store call ends when the call returns
        (its result is then given back: see :meth:`sync`)."""
        with self._thread_lock:
            t = self._thread
            self._stop.set()
            if t is not None:
                t.join(self._interval)
            self._thread = None

    def close(self) -> None:
        """Stop and leave the pool: unused slots go back at once, the slots
        of still-running tasks become orphans (see the store)."""
        self.stop()
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._drain_all()
        self._leave()

    def _leave(self) -> None:
        with self._lock:
            usage = {a: n for a in self._caps if (n := self._active(a)) > 0}
        try:
            self._store.leave(self.member_id, usage)
        except Exception as exc:
            self.sync_errors += 1
            log.warning("fleet member %r could not leave the pool: %r", self.member_id, exc)

    def _run(self) -> None:
        period = min(self._interval, self._manager.config.monitoring_interval_s)
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("fleet member tick failed")
            self._stop.wait(period)

    def __enter__(self) -> FleetMember:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        # the rest of the manager's API (update_config, analyze_capacity, ...)
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._manager, name)

    def __repr__(self) -> str:
        return (f"FleetMember({self.member_id!r}, slots={sum(self._caps.values())}, "
                f"draining={len(self._draining)}, syncs={self.syncs})")
