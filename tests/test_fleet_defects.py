"""The fleet's lease defects of issue 24, each on the in-memory store and on a
real redis-server (the store's time injected, so nothing sleeps).

Every test checks the *true* running count per agent -- what the live members
run plus what dead members' tasks still run there (zombies) -- against
``max_tasks`` after every allocate, dispatch and release.
"""

from __future__ import annotations

import uuid

import pytest

from arbiter_core import AllocationRequest, AllocationStatus, ManualClock, ResourceManagerConfig
from arbiter_core.fleet import FleetMember, InMemoryLeaseStore, RedisLeaseStore
from fleet_support import lose_state

ALLOCATED = AllocationStatus.ALLOCATED
QUEUED = AllocationStatus.QUEUED
TTL = 3.0
INTERVAL = 0.5


class Env:
    """One pool on one kind of store, with a way to lose the store's state."""

    def __init__(self, kind, server=None, max_task_time_s=100.0):
        self.clock = ManualClock()
        self.kind = kind
        self.server = server
        if kind == "memory":
            self.store = InMemoryLeaseStore(lease_ttl_s=TTL, max_task_time_s=max_task_time_s,
                                            clock=self.clock)
        else:
            self.store = RedisLeaseStore(server.client(), pool=uuid.uuid4().hex,
                                         lease_ttl_s=TTL, max_task_time_s=max_task_time_s,
                                         clock=self.clock)
        self.max: dict[str, int] = {}
        self.members: dict[str, FleetMember] = {}
        self.zombies: dict[str, int] = {}
        self.n = 0

    def agents(self, n, max_tasks):
        for i in range(n):
            self.store.register_agent(f"a{i}", max_tasks=max_tasks)
            self.max[f"a{i}"] = max_tasks
            self.zombies[f"a{i}"] = 0

    def member(self, name, clock=None, **kw):
        m = FleetMember(name, self.store, ResourceManagerConfig(seed=1),
                        clock=self.clock if clock is None else clock,
                        sync_interval_s=INTERVAL, **kw)
        self.members[name] = m
        return m

    def lose_state(self):
        lose_state(self.store, self.server)

    def allocate(self, m, k=1):
        out = []
        for _ in range(k):
            out.append(self.members[m].allocate_resources(
                AllocationRequest(f"r{self.n}", "t", timeout_s=1e6)))
            self.n += 1
            self.check()
        return out

    def release(self, m, k=1):
        mem = self.members[m]
        for _ in range(k):
            live = [r for a in self.max for r in mem.manager.allocator.active_on(a)]
            if not live:
                return
            mem.release_resources(sorted(live)[0])
            self.check()

    def sync(self, *names):
        for m in names or sorted(self.members):
            rep = self.members[m].sync()
            self.check()
        return rep

    def kill(self, m):
        """The member process dies; its tasks keep running on the agents."""
        mem = self.members.pop(m)
        for a, n in mem.running().items():
            self.zombies[a] += n

    def true_running(self):
        out = dict(self.zombies)
        for mem in self.members.values():
            for a, n in mem.running().items():
                out[a] = out.get(a, 0) + n
        return out

    def check(self):
        for a, n in self.true_running().items():
            assert n <= self.max[a], (a, n, self.max[a], self.true_running())

    def close(self):
        if self.kind == "redis":
            self.store.clear()


@pytest.fixture(scope="module")
def own_redis():
    """A redis-server of this module's own: the tests restart it."""
    from fleet_support import RedisServer

    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def env(request):
    server = request.getfixturevalue("own_redis") if request.param == "redis" else None
    e = Env(request.param, server)
    yield e
    e.close()


def make_env(request, kind, **kw):
    server = request.getfixturevalue("own_redis") if kind == "redis" else None
    return Env(kind, server, **kw)


def sync_until_ok(env, m, tries=20):
    """After a Redis restart the first call on an old connection may fail."""
    for _ in range(tries):
        if env.members[m].sync().ok:
            env.check()
            return
    raise AssertionError(f"{m} could not sync")


# -- (a) a restart that loses the store's state --------------------------------


def test_a_store_that_lost_its_state_rebuilds_the_leases_before_granting(env):
    env.agents(2, 4)
    for m in ("m0", "m1", "m2", "m3"):
        env.member(m)
    env.sync()
    for m in ("m0", "m1", "m2", "m3"):
        env.allocate(m, 3)                    # demand 12 on 8 slots
    for _ in range(3):
        env.sync()
        env.clock.advance(INTERVAL)
    assert sum(sum(r.values()) for r in
               (mem.running() for mem in env.members.values())) == 8
    env.lose_state()
    env.release("m0")                         # one slot of m0 ends: m0's queue takes it
    # m1 comes first: the empty store must not hand it the others' slots
    sync_until_ok(env, "m1")
    assert env.members["m1"].last_sync.share is not None
    for m in ("m0", "m2", "m3"):
        sync_until_ok(env, m)
    env.allocate("m1", 5)
    for _ in range(int(TTL / INTERVAL) + 4):  # through the recovery and after it
        env.clock.advance(INTERVAL)
        env.sync()
        env.release("m2")
    env.store._check_invariants()
    # recovered: the pool is in use again
    assert sum(sum(mem.running().values()) for mem in env.members.values()) == 8


# -- (b) a report frees a dead member's slots only when its tasks are gone ------


def test_a_report_frees_a_dead_members_slots_only_when_the_live_members_run_the_count(env):
    env.agents(1, 8)
    m0 = env.member("m0")
    env.member("m1")
    env.sync()
    env.allocate("m0", 1)
    env.allocate("m1", 2)
    for _ in range(3):
        env.sync()
        env.clock.advance(INTERVAL)
    # m0 holds idle spare slots: lease 4, one task
    assert env.store.leases()["m0"]["a0"] > sum(m0.running().values()) == 1
    env.kill("m1")                              # 2 tasks keep running as zombies
    for _ in range(int(TTL / INTERVAL)):       # m0 syncs on, m1 is silent: dead
        env.clock.advance(INTERVAL)
        env.sync()
    env.store.report_agent("a0", 3)            # 1 live + 2 zombies, below m0's lease
    env.allocate("m0", 12)                      # m0 wants the whole pool
    for _ in range(6):
        env.sync()
        env.clock.advance(INTERVAL)
        env.store.report_agent("a0", env.true_running()["a0"])
    assert env.store.orphans() == {"a0": 4}     # not back while m1's tasks run
    env.zombies["a0"] = 0                       # they end
    for _ in range(4):
        env.store.report_agent("a0", env.true_running()["a0"])
        env.sync()
        env.clock.advance(INTERVAL)
    assert env.store.orphans() == {}            # back once the report shows it
    assert m0.running() == {"a0": 8}
    env.store._check_invariants()


# -- (c) a store call that hangs ------------------------------------------------


class HangingStore:
    """An in-memory store whose ``sync`` hangs while ``hang`` is set (until
    ``free`` is set): a store call that does not return."""

    def __init__(self, inner):
        import threading

        self.inner = inner
        self.hang = False
        self.entered = threading.Event()
        self.free = threading.Event()

    lease_ttl_s = property(lambda self: self.inner.lease_ttl_s)
    max_task_time_s = property(lambda self: self.inner.max_task_time_s)

    def sync(self, *a, **kw):
        if self.hang:
            self.entered.set()
            self.free.wait(30)
        return self.inner.sync(*a, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def freeze(env):
    """Make the store's calls hang; returns the undo."""
    import os
    import signal

    if env.kind == "memory":
        hanging = HangingStore(env.store)
        hanging.hang = True
        return hanging, hanging.free.set
    os.kill(env.server.proc.pid, signal.SIGSTOP)
    return env.store, lambda: os.kill(env.server.proc.pid, signal.SIGCONT)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_hung_store_call_does_not_keep_a_member_serving_past_its_lease(request, kind):
    import threading
    import time

    env = make_env(request, kind)
    env.agents(1, 4)
    try:
        store, thaw = None, None
        if kind == "memory":
            store = HangingStore(env.store)
            env.store = store
        env.member("m0")
        env.sync()
        env.allocate("m0", 2)
        env.sync()
        env.sync()
        assert env.members["m0"].leased_slots() == {"a0": 4}
        if kind == "memory":
            store.hang, thaw = True, store.free.set
        else:
            _, thaw = freeze(env)
        t = threading.Thread(target=env.members["m0"].sync)
        t.start()                                  # hangs in the store
        if kind == "memory":
            assert store.entered.wait(10)
        env.clock.advance(TTL)                     # the lease runs out meanwhile
        res = env.allocate("m0", 1)[0]
        assert res.status is QUEUED                # not on an expired lease
        env.release("m0")
        assert env.members["m0"].allocation_status(res.request_id).status is QUEUED
        assert env.members["m0"].leased_slots() == {"a0": 1}      # drains
        # close() returns soon although a store call hangs in the thread
        m = env.members["m0"]
        m.start()
        start = time.monotonic()
        closer = threading.Thread(target=m.close)
        closer.start()
        closer.join(8.0)
        alive = closer.is_alive()
        thaw()
        t.join(30)
        closer.join(30)
        assert not alive, f"close() blocked for {time.monotonic() - start:.1f} s"
    finally:
        if kind == "redis":
            import os
            import signal

            os.kill(env.server.proc.pid, signal.SIGCONT)
        env.close()


# -- (d) a failed sync is judged when it ends; tick checks the lease first -------


class SlowFailingStore:
    """An in-memory store whose ``sync`` fails after ``delay`` seconds of the
    test clock (a timeout) while ``failing``; it records what the member had
    when the call began."""

    def __init__(self, inner, clock, member=None):
        self.inner = inner
        self.clock = clock
        self.failing = False
        self.delay = 0.0
        self.member = member
        self.seen: list[dict[str, int]] = []

    lease_ttl_s = property(lambda self: self.inner.lease_ttl_s)
    max_task_time_s = property(lambda self: self.inner.max_task_time_s)

    def sync(self, *a, **kw):
        if self.failing:
            if self.member is not None:
                self.seen.append(self.member.leased_slots())
            self.clock.advance(self.delay)
            from arbiter_core.fleet import LeaseStoreError

            raise LeaseStoreError("timed out")
        return self.inner.sync(*a, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_failed_sync_is_judged_by_when_it_ended_on_the_in_memory_store():
    env = Env("memory")
    env.agents(1, 4)
    store = SlowFailingStore(env.store, env.clock)
    env.store = store
    m = env.member("m0")
    env.sync()
    env.allocate("m0", 2)
    env.sync()
    assert m.leased_slots() == {"a0": 4}
    env.clock.advance(TTL - 1.0)          # 2.0 s: the lease holds until 2.5 s
    store.failing, store.delay = True, 1.9
    rep = m.sync()                        # ends at 3.9 s: past the lease
    assert not rep.ok and rep.expired
    assert m.leased_slots() == {"a0": 2}  # drains


def test_a_failed_sync_is_judged_by_when_it_ended_on_redis(request):
    import threading

    env = make_env(request, "redis")
    env.agents(1, 4)
    try:
        m = env.member("m0")
        env.sync()
        env.allocate("m0", 2)
        env.sync()
        env.clock.advance(TTL - 1.0)      # the lease holds until 2.5 s
        _, thaw = freeze(env)
        try:
            # while the call waits for the frozen Redis, 1.9 s pass
            timer = threading.Timer(0.1, env.clock.advance, args=(1.9,))
            timer.start()
            rep = m.sync()
            timer.join()
        finally:
            thaw()
        assert not rep.ok and rep.expired, rep
        assert m.leased_slots() == {"a0": 2}
    finally:
        env.close()


def test_tick_checks_the_lease_before_it_starts_a_sync():
    env = Env("memory")
    env.agents(1, 4)
    store = SlowFailingStore(env.store, env.clock)
    env.store = store
    m = env.member("m0")
    store.member = m
    env.sync()
    env.allocate("m0", 2)
    env.sync()
    store.failing, store.delay = True, 0.0
    env.clock.advance(TTL - 0.4)          # 2.6 s: past the lease (2.5 s), sync due
    m.tick()
    assert store.seen == [{"a0": 2}]      # drained before the store was called


# -- (e) a clock that steps ---------------------------------------------------------


class SteppingClock:
    """A wall clock: moves when told, both ways (NTP steps, a VM resumed)."""

    def __init__(self, t=1000.0):
        self.t = t

    def now(self):
        return self.t

    def advance(self, dt):
        self.t += dt


@pytest.mark.parametrize("step", [-10.0, 10.0])
def test_a_member_keeps_syncing_when_its_clock_steps(env, step):
    env.agents(1, 4)
    wall = SteppingClock()
    m = env.member("m0", clock=wall)

    def tick():
        env.clock.advance(INTERVAL)        # true time (the store's)
        wall.advance(INTERVAL)
        m.tick()
        env.check()

    tick()
    env.allocate("m0", 2)
    for _ in range(3):
        tick()
    wall.advance(step)
    syncs = m.syncs
    for _ in range(int(3 * TTL / INTERVAL)):
        tick()
        assert "m0" in env.store.leases()   # never silent long enough to die
        env.allocate("m0", 1)
        env.release("m0")
    assert m.syncs >= syncs + int(3 * TTL / INTERVAL) - 1
    assert m.last_sync.ok and m.leased_slots() == {"a0": 4}


# -- (f) leaving after the store declared the member dead -------------------------


def test_a_clean_leave_after_the_store_declared_the_member_dead_frees_its_slots(env):
    env.agents(1, 4)
    m0, m1 = env.member("m0"), env.member("m1")
    env.sync()
    env.allocate("m0", 3)
    for _ in range(2):
        env.sync("m0")
    assert env.store.leases()["m0"] == {"a0": 3}     # m1 keeps its floor
    env.clock.advance(TTL)                  # m0 was cut off: dead to the store
    env.sync("m1")
    assert env.store.orphans() == {"a0": 3}
    env.release("m0", 2)                    # its tasks end, but one
    m0.close()                              # it leaves, reporting what still runs
    assert env.store.orphans() == {"a0": 1}
    del env.members["m0"]
    env.zombies["a0"] = 1                   # (the one still running)
    env.allocate("m1", 4)
    env.sync("m1")
    assert m1.running() == {"a0": 3}
    env.store._check_invariants()


# -- sync in proportion to change: the pool is sent only when it changed ----------


def test_the_pool_is_sent_only_when_it_changed_or_the_state_was_lost(env):
    env.agents(3, 2)
    r1 = env.store.sync("m0", 1, {}, {})
    assert set(r1.agents) == {"a0", "a1", "a2"}
    r2 = env.store.sync("m0", 1, r1.leases, {}, incarnation=r1.incarnation,
                        agents_version=r1.agents_version)
    assert r2.agents is None and r2.agents_version == r1.agents_version
    env.store.register_agent("a3", max_tasks=1)
    env.max["a3"], env.zombies["a3"] = 1, 0
    r3 = env.store.sync("m0", 1, r2.leases, {}, incarnation=r2.incarnation,
                        agents_version=r2.agents_version)
    assert set(r3.agents) == {"a0", "a1", "a2", "a3"} and r3.agents_version > r2.agents_version
    env.store.remove_agent("a0")
    r4 = env.store.sync("m0", 1, r3.leases, {}, incarnation=r3.incarnation,
                        agents_version=r3.agents_version)
    assert set(r4.agents) == {"a1", "a2", "a3"}
    env.store.leave("m0", {})
    # a member keeps its caps and learns changes through the short answers
    m = env.member("m1")
    env.sync()
    env.allocate("m1", 3)
    for _ in range(3):
        env.clock.advance(INTERVAL)
        env.sync()
    assert m.last_sync.ok and sum(m.running().values()) == 3
    env.store.register_agent("a9", max_tasks=2)
    env.max["a9"], env.zombies["a9"] = 2, 0
    env.sync()
    assert "a9" in m.manager.monitor
    env.store._check_invariants()
