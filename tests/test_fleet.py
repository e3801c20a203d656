"""Fleet: lease stores and members, on the in-memory store (no Redis needed)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbiter_core import (
    AllocationRequest,
    AllocationStatus,
    ManualClock,
    ResourceManagerConfig,
)
from arbiter_core.fleet import (
    FleetMember,
    InMemoryLeaseStore,
    LeaseStore,
    LeaseStoreError,
    fair_shares,
    spread_grant,
)

ALLOCATED = AllocationStatus.ALLOCATED
QUEUED = AllocationStatus.QUEUED


def req(i, timeout_s=300.0):
    return AllocationRequest(request_id=f"r{i}", task_id=f"t{i}", timeout_s=timeout_s)


def pool(agents=2, max_tasks=4, ttl=10.0, max_task_time=100.0):
    clock = ManualClock()
    store = InMemoryLeaseStore(lease_ttl_s=ttl, max_task_time_s=max_task_time, clock=clock)
    for i in range(agents):
        store.register_agent(f"a{i}", max_tasks=max_tasks)
    return clock, store


def member(name, store, clock, **kw):
    return FleetMember(name, store, ResourceManagerConfig(seed=1), clock=clock,
                       sync_interval_s=kw.pop("sync_interval_s", 1.0), **kw)


def check(store, *members):
    """The invariants: store-side sums, and member tasks <= caps <= lease."""
    store._check_invariants()
    for m in members:
        # under the member's lock: its caps only shrink until its next sync
        # applies, so the store's lease read now is at least the caps
        with m.manager.monitor.lock:
            caps = m.leased_slots()
            running = m.running()
            leases = store.leases()
        for a, n in running.items():
            assert n <= caps.get(a, 0), (m.member_id, a, n, caps)
        if m.member_id in leases:
            for a, c in caps.items():
                assert c <= leases[m.member_id].get(a, 0), (m.member_id, a, caps, leases)


# -- the plan ------------------------------------------------------------------


@given(st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 30), min_size=1),
       st.integers(0, 60))
def test_fair_shares_are_max_min_fair_with_a_floor(demands, capacity):
    s = fair_shares(demands, capacity)
    assert sum(s.values()) <= capacity
    busy = [m for m in demands if demands[m] > 0]
    idle = [m for m in demands if demands[m] == 0]
    for m in idle:
        assert s[m] <= 1                      # the floor: at most one slot
    total = sum(demands.values())
    if total <= capacity:
        for m in busy:                        # everyone's demand met
            assert s[m] >= demands[m]
        if busy:                              # work-conserving: nothing left over
            assert sum(s.values()) == capacity
    else:
        # max-min: whoever got less than its demand got at least everyone else's
        # share capped by demand, within one slot of integer rounding
        for m in busy:
            if s[m] < demands[m]:
                for x in busy:
                    assert min(s[x], demands[x]) <= s[m] + 1
        assert sum(min(s[m], demands[m]) for m in busy) == capacity


@given(st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 9)), st.integers(0, 60))
def test_spread_grant_takes_only_free_slots_evenly(free, want):
    g = spread_grant(free, want)
    assert sum(g.values()) == min(want, sum(free.values()))
    for a, n in g.items():
        assert 0 < n <= free[a]
    # round-robin: an agent got fewer than another only if it ran out
    for a in g:
        for b in g:
            if g[a] < g[b] - 1:
                assert g[a] == free[a]


# -- store ------------------------------------------------------------------------


def test_store_is_a_lease_store_and_validates():
    clock, store = pool()
    assert isinstance(store, LeaseStore)
    with pytest.raises(ValueError, match="max_tasks"):
        store.register_agent("x", max_tasks=0)
    with pytest.raises(TypeError, match="agent_id"):
        store.register_agent(3, max_tasks=1)
    with pytest.raises(ValueError, match="demand"):
        store.sync("m", -1, {}, {})
    with pytest.raises(KeyError, match="nope"):
        store.report_agent("nope", 0)
    with pytest.raises(ValueError, match="lease_ttl_s"):
        InMemoryLeaseStore(lease_ttl_s=0)


def test_all_the_demand_gets_nearly_the_whole_pool():
    clock, store = pool(agents=3, max_tasks=4)
    a, b = member("a", store, clock), member("b", store, clock)
    b.sync()                          # idle: the floor
    a.sync()                          # learn the agents
    for i in range(20):
        a.allocate_resources(req(i))
    for _ in range(3):
        a.sync()
        b.sync()
        clock.advance(1.0)
    # 12 slots, demand 20: all of it (an idle member's floor comes only
    # from slots nobody with demand needs)
    assert sum(a.leased_slots().values()) == 12
    assert sum(b.leased_slots().values()) == 0
    assert sum(a.running().values()) == 12
    check(store, a, b)


def test_a_shrinking_lease_only_drains_and_the_queue_does_not_reuse_drained_slots():
    clock, store = pool(agents=1, max_tasks=4)
    a, b = member("a", store, clock), member("b", store, clock)
    a.sync()
    for i in range(8):
        a.allocate_resources(req(i))
    a.sync()
    b.sync()
    a.sync()
    assert a.running() == {"a0": 4} and a.leased_slots() == {"a0": 4}
    for i in range(100, 104):
        assert b.allocate_resources(req(i)).status is QUEUED
    b.sync()                          # b's share is 2, nothing free yet
    assert b.leased_slots() == {}
    a.sync()                          # a learns its target: 2
    assert a.targets() == {"a0": 2}
    # a's queue is not empty, yet its released slots are not reused
    a.release_resources("r0")
    assert a.running() == {"a0": 3} and a.leased_slots() == {"a0": 3}
    a.release_resources("r1")
    assert a.leased_slots() == {"a0": 2}
    a.release_resources("r2")         # at its target: the queue takes the slot
    assert a.running() == {"a0": 2}
    assert a.allocation_status("r4").status is ALLOCATED
    check(store, a, b)
    a.sync()                          # a gives the slots back
    b.sync()
    assert b.leased_slots() == {"a0": 2} and b.running() == {"a0": 2}
    check(store, a, b)


def test_a_new_agent_arrives_with_a_zero_cap_and_the_queue_stays_off_it():
    clock, store = pool(agents=1, max_tasks=4)
    a = member("a", store, clock)
    a.sync()
    for i in range(6):
        a.allocate_resources(req(i))
    a.sync()
    assert a.leased_slots() == {"a0": 4}
    b = member("b", store, clock)
    b.sync()
    for i in range(10, 16):
        b.allocate_resources(req(i))
    store.register_agent("new", max_tasks=2)
    b.sync()                          # b takes the new agent's free slots
    assert b.leased_slots() == {"new": 2}
    a.sync()                          # a learns the agent with nothing leased there
    assert a.running() == {"a0": 4}   # its queue stayed off it
    check(store, a, b)


def test_zero_caps_are_full_one_slot_agents_hidden_from_pool_statistics():
    clock, store = pool(agents=3, max_tasks=2)
    a, b = member("a", store, clock), member("b", store, clock)
    b.sync()
    for i in range(6):
        b.allocate_resources(req(i))
    b.sync()
    a.sync()
    assert a.leased_slots() == {} or sum(a.leased_slots().values()) <= 1
    p = a.get_pool_statistics()
    assert p.total_agents == 3
    assert p.total_task_slots == sum(a.leased_slots().values())
    assert p.tasks_in_progress == 0


def test_members_share_fairly_under_overload():
    clock, store = pool(agents=2, max_tasks=6)
    ms = [member(f"m{i}", store, clock) for i in range(3)]
    for m in ms:
        m.sync()
    n = 0
    for m in ms:
        for _ in range(10):
            m.allocate_resources(req(n))
            n += 1
    for _ in range(20):
        for m in ms:
            m.sync()
        # each member finishes its oldest task and takes a new one: demand
        # stays 10 each, released slots drain towards the fair share of 4
        for m in ms:
            running = [r for r in range(n) if _status(m, r) is ALLOCATED]
            m.release_resources(f"r{running[0]}")
            m.allocate_resources(req(n))
            n += 1
        clock.advance(1.0)
        check(store, *ms)
    caps = [sum(m.leased_slots().values()) for m in ms]
    assert caps == [4, 4, 4]


def _status(m, i):
    try:
        return m.allocation_status(f"r{i}").status
    except KeyError:
        return None


# -- death and orphans -----------------------------------------------------------


def test_dead_members_slots_come_back_by_report_and_never_earlier():
    clock, store = pool(agents=1, max_tasks=6, ttl=10.0, max_task_time=100.0)
    a, b = member("a", store, clock), member("b", store, clock)
    a.sync()
    b.sync()
    for i in range(4):
        a.allocate_resources(req(i))
    b.allocate_resources(req(99))
    a.sync()
    b.sync()
    a.sync()
    assert a.running() == {"a0": 4} and b.running() == {"a0": 1}
    held_a = store.leases()["a"]["a0"]
    # a dies (stops syncing); its tasks may still run on the agent
    clock.advance(9.0)
    b.sync()
    store.report_agent("a0", 0)
    assert store.orphans() == {} and "a" in store.leases()     # not dead yet
    clock.advance(1.0)
    store.report_agent("a0", 5)       # death noticed; 5 running > what b holds
    assert store.orphans() == {"a0": held_a} and "a" not in store.leases()
    b.sync()
    held_b = store.leases()["b"]["a0"]
    assert held_b == 6 - held_a       # the orphans are not free
    store.report_agent("a0", held_b)  # no more than b *holds*, more than it runs
    for _ in range(3):                # b settles the report: it ran 1
        clock.advance(1.0)
        b.sync()
    assert store.orphans() == {"a0": held_a}
    store.report_agent("a0", 1)       # no more than b runs: a's tasks are gone
    clock.advance(1.0)
    b.sync()
    assert store.orphans() == {"a0": held_a}     # pending: b's count is not in yet
    clock.advance(1.0)
    b.sync()
    assert store.orphans() == {}
    for i in range(10, 16):
        b.allocate_resources(req(i))
    b.sync()
    assert b.leased_slots() == {"a0": 6}
    check(store, b)


def test_dead_members_slots_come_back_after_max_task_time_never_earlier():
    clock, store = pool(agents=1, max_tasks=4, ttl=10.0, max_task_time=100.0)
    a = member("a", store, clock)
    a.sync()
    for i in range(4):
        a.allocate_resources(req(i))
    a.sync()
    a.sync()
    clock.advance(10.0)               # a's lease expired at t=10
    assert store.leases() == {}
    store.report_agent("a0", 4)
    assert store.orphans() == {"a0": 4}
    clock.advance(99.999)
    store.report_agent("a0", 4)
    assert store.orphans() == {"a0": 4}
    clock.advance(0.001)              # expiry + max_task_time
    store.report_agent("a0", 4)
    assert store.orphans() == {}


def test_a_member_that_comes_back_adopts_its_orphans():
    clock, store = pool(agents=1, max_tasks=4, ttl=10.0)
    a = member("a", store, clock)
    a.sync()
    for i in range(3):
        a.allocate_resources(req(i))
    a.sync()
    a.sync()
    clock.advance(10.0)
    store.report_agent("a0", 3)
    assert store.orphans() == {"a0": 4}
    a.sync()                          # back: its claims replace its orphans
    assert store.orphans() == {}
    assert a.running() == {"a0": 3}
    assert a.over_cap_events == 0
    check(store, a)


def test_close_frees_unused_slots_and_orphans_running_ones():
    clock, store = pool(agents=2, max_tasks=2)
    a = member("a", store, clock)
    a.sync()
    for i in range(3):
        a.allocate_resources(req(i))
    a.sync()
    a.sync()
    a.close()
    assert store.leases() == {}
    assert sum(store.orphans().values()) == 3
    assert a.leased_slots() == {"a0": 2, "a1": 1} or sum(a.leased_slots().values()) == 3


def test_removed_agents_leave_the_members_and_their_work_fails_over():
    clock, store = pool(agents=2, max_tasks=2)
    a = member("a", store, clock)
    a.sync()
    for i in range(2):
        a.allocate_resources(req(i))
    a.sync()
    a.sync()
    store.remove_agent("a1")
    a.sync()
    assert "a1" not in a.manager.monitor
    assert a.running() == {"a0": 2}
    assert len(a.get_failover_history()) <= 1
    check(store, a)


# -- a store that fails -----------------------------------------------------------


class FlakyStore:
    """Delegates to an in-memory store; ``down = True`` makes every call fail."""

    def __init__(self, inner):
        self.inner = inner
        self.down = False

    lease_ttl_s = property(lambda self: self.inner.lease_ttl_s)
    max_task_time_s = property(lambda self: self.inner.max_task_time_s)

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*a, **kw):
            if self.down:
                raise LeaseStoreError("down")
            return attr(*a, **kw)

        return call


def test_store_down_keeps_serving_inside_the_lease_until_it_expires_then_recovers():
    clock, inner = pool(agents=1, max_tasks=4, ttl=10.0)
    store = FlakyStore(inner)
    a = member("a", store, clock)
    a.sync()
    for i in range(2):
        a.allocate_resources(req(i))
    a.sync()
    a.sync()
    assert a.leased_slots() == {"a0": 4}
    store.down = True
    clock.advance(5.0)
    rep = a.sync()
    assert not rep.ok and not rep.expired and a.sync_errors == 1
    assert a.allocate_resources(req(2)).status is ALLOCATED     # inside the lease
    clock.advance(5.0)
    rep = a.sync()                     # lease gone by our own clock: drain to zero
    assert rep.expired and a.sync_errors == 2
    assert a.leased_slots() == {"a0": 3}       # drains: only the running ones
    assert a.allocate_resources(req(3)).status is QUEUED


def test_store_down_expiry_drains_and_nothing_is_lost():
    clock, inner = pool(agents=1, max_tasks=4, ttl=10.0)
    store = FlakyStore(inner)
    a = member("a", store, clock)
    a.sync()
    for i in range(3):
        a.allocate_resources(req(i))
    a.sync()
    a.sync()
    store.down = True
    clock.advance(10.0)
    assert a.sync().expired
    assert a.leased_slots() == {"a0": 3}
    assert a.allocate_resources(req(3)).status is QUEUED
    a.release_resources("r0")
    assert a.leased_slots() == {"a0": 2}
    assert a.allocation_status("r3").status is QUEUED           # waits, not lost
    store.down = False
    rep = a.sync()
    assert rep.ok and rep.dispatched == 1
    assert a.allocation_status("r3").status is ALLOCATED
    s = a.get_allocation_statistics()
    assert s.total_requests == s.queued + s.allocated + s.rejected + s.timed_out + s.failed
    check(inner, a)


def test_sync_interval_must_be_below_the_ttl_and_tick_syncs_when_due():
    clock, store = pool(ttl=2.0)
    with pytest.raises(ValueError, match="sync_interval_s"):
        member("a", store, clock, sync_interval_s=2.0)
    a = member("a", store, clock, sync_interval_s=0.5)
    a.tick()
    assert a.syncs == 1
    a.tick()
    assert a.syncs == 1
    clock.advance(0.5)
    a.tick()
    assert a.syncs == 2


def test_concurrent_members_in_threads_keep_the_invariants():
    clock, store = pool(agents=4, max_tasks=3)
    ms = [member(f"m{i}", store, clock) for i in range(4)]
    errors = []
    stop = threading.Event()

    def work(m, k):
        i = 0
        live = []
        try:
            while not stop.is_set() and i < 300:
                res = m.allocate_resources(req(f"{k}-{i}"))
                if res.status is ALLOCATED:
                    live.append(res.request_id)
                if len(live) > 2 or (live and i % 3 == 0):
                    m.release_resources(live.pop(0))
                if i % 10 == 0:
                    m.sync()
                i += 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def watch():
        while not stop.is_set():
            try:
                check(store, *ms)
            except AssertionError as exc:  # pragma: no cover
                errors.append(exc)
                return

    threads = [threading.Thread(target=work, args=(m, k)) for k, m in enumerate(ms)]
    w = threading.Thread(target=watch)
    w.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    w.join()
    assert not errors
    for m in ms:
        m.sync()
    check(store, *ms)


def test_background_thread_syncs_and_close_leaves():
    store = InMemoryLeaseStore(lease_ttl_s=5.0)
    store.register_agent("a0", max_tasks=2)
    with FleetMember("m", store, sync_interval_s=0.01) as m:
        assert m.is_running
        for _ in range(1000):          # bounded wait for the first sync
            if m.syncs:
                break
            threading.Event().wait(0.005)
        assert m.syncs >= 1
    assert not m.is_running
    assert store.leases() == {}


def test_manager_api_is_there():
    clock, store = pool()
    a = member("a", store, clock)
    a.sync()
    assert a.get_load_distribution() == {}
    assert a.get_health_status().total_agents == 2
    assert a.analyze_capacity().total_agents == 2      # the rest via the manager
    assert "FleetMember" in repr(a)
    with pytest.raises(AttributeError):
        a._nothing  # noqa: B018
