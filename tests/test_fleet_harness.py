"""The fleet under faults: a small harness that runs in CI.

Four members share a pool through a lease store (in memory, or a real
redis-server) and allocate and release under a random workload while faults
are injected: the store loses its state (Redis killed and started empty),
the store freezes (Redis SIGSTOPped), a slow and lossy link (delays of
0.2-2 s on the test clock before or after the store runs the call, 5 % of the
calls lost -- half of them after the store ran them), members killed (their
tasks run on as zombies) with and without agents reporting, and member
clocks stepping back and forward.  The *true* number of tasks per agent --
what live members run plus the zombies -- is checked against ``max_tasks``
after every allocate, release and tick (where syncs dispatch): zero breaches.

Time is a ManualClock (the store's) that the harness moves; members read it
through their own wall clocks, which the clock-step fault shifts.  Only the
frozen Redis costs real time (its calls time out after 50 ms).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import uuid

import pytest

from arbiter_core import AllocationRequest, AllocationStatus, ManualClock, ResourceManagerConfig
from arbiter_core.fleet import FleetMember, InMemoryLeaseStore, LeaseStoreError, RedisLeaseStore
from fleet_support import lose_state

TTL = 3.0
INTERVAL = 0.5
MAX_TASK = 20.0
AGENTS = 6
SLOTS = 3
MEMBERS = 4
STEP = 0.1
ALLOCATED = AllocationStatus.ALLOCATED


class WallClock:
    """A member's clock: the true time plus an offset that steps."""

    def __init__(self, true):
        self.true = true
        self.offset = 0.0

    def now(self):
        return self.true.now() + self.offset


class FaultyLink:
    """The store behind a link that can be slow, lossy or down (frozen
    in-memory store); delays move the test clock."""

    def __init__(self, inner, clock, rng):
        self.inner = inner
        self.clock = clock
        self.rng = rng
        self.slow = False
        self.down = False
        self.calls = self.lost = 0

    lease_ttl_s = property(lambda self: self.inner.lease_ttl_s)
    max_task_time_s = property(lambda self: self.inner.max_task_time_s)

    def _call(self, name, *a, **kw):
        self.calls += 1
        if self.down:
            raise LeaseStoreError("down")
        if not self.slow:
            return getattr(self.inner, name)(*a, **kw)
        self.clock.advance(self.rng.uniform(0.2, 2.0) / 2)      # the request travels
        if self.rng.random() < 0.025:
            self.lost += 1
            raise LeaseStoreError("connection dropped before the store ran the call")
        out = getattr(self.inner, name)(*a, **kw)
        self.clock.advance(self.rng.uniform(0.2, 2.0) / 2)      # the answer travels
        if self.rng.random() < 0.025:
            self.lost += 1
            raise LeaseStoreError("connection dropped after the store ran the call")
        return out

    def sync(self, *a, **kw):
        return self._call("sync", *a, **kw)

    def leave(self, *a, **kw):
        return self._call("leave", *a, **kw)

    def register_agent(self, *a, **kw):
        return self._call("register_agent", *a, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class Harness:
    def __init__(self, kind, server, seed):
        self.rng = random.Random(seed)
        self.kind = kind
        self.server = server
        self.clock = ManualClock()
        if kind == "memory":
            self.store = InMemoryLeaseStore(lease_ttl_s=TTL, max_task_time_s=MAX_TASK,
                                            clock=self.clock)
        else:
            self.store = RedisLeaseStore(server.client(), pool=uuid.uuid4().hex, lease_ttl_s=TTL,
                                         max_task_time_s=MAX_TASK, clock=self.clock,
                                         timeout_s=0.05, retries=0)
        self.link = FaultyLink(self.store, self.clock, self.rng)
        self.max = {f"a{i}": SLOTS for i in range(AGENTS)}
        for a in self.max:
            self.store.register_agent(a, max_tasks=SLOTS)
        self.walls = {}
        self.members = {}
        self.tasks = {}           # member -> {request id: end time or duration}
        for k in range(MEMBERS):
            self.add_member(f"m{k}")
        self.zombies = {a: [] for a in self.max}      # end times
        self.n = 0
        self.checks = self.breaches = 0
        self.frozen = False

    def add_member(self, name):
        wall = WallClock(self.clock)
        self.walls[name] = wall
        self.members[name] = FleetMember(name, self.link, ResourceManagerConfig(seed=7),
                                         clock=wall, sync_interval_s=INTERVAL)
        self.tasks[name] = {}

    # -- the truth -------------------------------------------------------------

    def check(self):
        now = self.clock.now()
        true = {a: sum(1 for t in ts if t > now) for a, ts in self.zombies.items()}
        for mem in self.members.values():
            for a, n in mem.running().items():
                true[a] += n
        self.checks += 1
        for a, n in true.items():
            if n > self.max[a]:
                self.breaches += 1
        return true

    # -- the workload ----------------------------------------------------------

    def step(self, reports):
        self.clock.advance(STEP)
        now = self.clock.now()
        for name in sorted(self.members):
            mem = self.members[name]
            tasks = self.tasks[name]
            if self.rng.random() < 0.6:
                rid = f"r{self.n}"
                self.n += 1
                mem.allocate_resources(AllocationRequest(rid, "t", timeout_s=1e6))
                tasks[rid] = -self.rng.uniform(0.2, 5.0)       # a duration, from allocation
                self.check()
            for rid, end in list(tasks.items()):
                st = mem.allocation_status(rid)
                if st.status is ALLOCATED and end < 0:
                    tasks[rid] = now - end
                elif st.status is ALLOCATED and now >= end:
                    mem.release_resources(rid, success=self.rng.random() < 0.95)
                    del tasks[rid]
                    self.check()
                elif st.status not in (ALLOCATED, AllocationStatus.QUEUED):
                    del tasks[rid]
            mem.tick()
            self.check()
        if reports and not self.frozen and self.rng.random() < 0.5:
            a = self.rng.choice(sorted(self.max))
            self.report(a)

    def report(self, a):
        true = self.check()[a]
        # a store that lost its agents says KeyError: the members register them
        with contextlib.suppress(LeaseStoreError, KeyError):
            self.link.report_agent(a, true)

    # -- faults ----------------------------------------------------------------

    def lose_state(self):
        lose_state(self.store, self.server)

    def freeze(self, on):
        self.frozen = on
        if self.kind == "memory":
            self.link.down = on
        else:
            os.kill(self.server.proc.pid, signal.SIGSTOP if on else signal.SIGCONT)

    def kill(self, name):
        mem = self.members.pop(name)
        now = self.clock.now()
        for rid, end in self.tasks.pop(name).items():
            st = mem.allocation_status(rid)
            if st.status is ALLOCATED and st.agent_id is not None:
                # it runs on; the contract: no task runs past max_task_time_s
                self.zombies[st.agent_id].append(min(now - end if end < 0 else end,
                                                     now + MAX_TASK - 1.0))

    def step_clock(self, name, dt):
        self.walls[name].offset += dt


def slow(on):
    """The fault that makes the link slow and lossy (or fast again)."""
    def fault(h):
        h.link.slow = on
    return fault


def run(h, steps, faults, reports=True):
    """Run ``steps`` steps with ``faults`` ({step: action}); all members
    finish at the end (their tasks released, the pool left)."""
    for i in range(steps):
        if i in faults:
            faults[i](h)
        h.step(reports)
    if h.frozen:
        h.freeze(False)
    return h


@pytest.fixture(scope="module")
def harness_redis():
    from fleet_support import RedisServer

    server = RedisServer()
    yield server
    server.stop()


def make(request, kind, seed):
    server = request.getfixturevalue("harness_redis") if kind == "redis" else None
    return Harness(kind, server, seed)


KINDS = ["memory", "redis"]


@pytest.mark.parametrize("kind", KINDS)
def test_store_killed_and_started_empty(request, kind):
    h = make(request, kind, 1)
    run(h, 240, {60: Harness.lose_state, 150: Harness.lose_state})
    assert h.breaches == 0 and h.checks > 1000
    assert sum(m.syncs for m in h.members.values()) > 100


@pytest.mark.parametrize("kind", KINDS)
def test_store_frozen(request, kind):
    h = make(request, kind, 2)
    run(h, 200, {50: lambda h: h.freeze(True), 90: lambda h: h.freeze(False)})
    assert h.breaches == 0
    assert sum(m.sync_errors for m in h.members.values()) > 0     # it was down


@pytest.mark.parametrize("kind", KINDS)
def test_slow_and_lossy_link(request, kind):
    h = make(request, kind, 3)
    run(h, 200, {20: slow(True), 180: slow(False)})
    assert h.breaches == 0
    assert h.link.lost > 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reports", [True, False])
def test_members_killed(request, kind, reports):
    h = make(request, kind, 4)
    run(h, 300, {40: lambda h: h.kill("m1"), 120: lambda h: h.kill("m3")}, reports=reports)
    assert h.breaches == 0
    assert set(h.members) == {"m0", "m2"}


@pytest.mark.parametrize("kind", KINDS)
def test_member_clocks_step_both_ways(request, kind):
    h = make(request, kind, 5)
    run(h, 240, {30: lambda h: h.step_clock("m0", -30.0),
                 60: lambda h: h.step_clock("m1", +30.0),
                 100: lambda h: h.step_clock("m2", -5.0),
                 140: lambda h: h.step_clock("m0", +30.0)})
    assert h.breaches == 0
    for mem in h.members.values():          # nobody stopped syncing
        assert mem.last_sync is not None and mem.last_sync.ok


@pytest.mark.parametrize("kind", KINDS)
def test_all_faults_together(request, kind):
    h = make(request, kind, 6)
    run(h, 400, {30: slow(True), 60: lambda h: h.step_clock("m0", -20.0),
                 90: Harness.lose_state, 120: slow(False), 140: lambda h: h.kill("m2"),
                 200: lambda h: h.freeze(True), 220: lambda h: h.freeze(False),
                 260: lambda h: h.step_clock("m1", 20.0), 300: Harness.lose_state})
    assert h.breaches == 0 and h.checks > 1000
