"""Property tests of the fleet invariants, for both stores.

Random members allocate, release, sync, die (their tasks keep running on the
agents as zombies until they finish), agents report their true counts, time
jumps.  After every step:

* for every agent, the leases of all members not known dead plus the orphans
  never exceed ``max_tasks`` (store side);
* every live member runs no more tasks on an agent than its cap, and its cap
  is within its lease in the store;
* the true number of tasks on every agent -- what live members run plus
  what killed members' tasks still run there -- never exceeds ``max_tasks``;
* orphaned slots never come back early: only after a report on that agent
  made while no killed member's task ran there (settled by the live members
  at their syncs), or once ``max_task_time_s`` has passed since a dead
  member's lease expired.

The Redis variant runs the same machine against a real redis-server, and a
differential test checks that both stores answer the same operations
identically.
"""

from __future__ import annotations

import contextlib
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from arbiter_core import AllocationRequest, AllocationStatus, ManualClock, ResourceManagerConfig
from arbiter_core.fleet import FleetMember, InMemoryLeaseStore

TTL = 10.0
MAX_TASK = 50.0
MEMBERS = ("m0", "m1", "m2")


class FleetMachine(RuleBasedStateMachine):
    """The fleet under random operations (store made by :meth:`make_store`)."""

    def make_store(self, clock):
        return InMemoryLeaseStore(lease_ttl_s=TTL, max_task_time_s=MAX_TASK, clock=clock)

    @initialize(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3))
    def setup(self, sizes):
        self.clock = ManualClock()
        self.store = self.make_store(self.clock)
        self.max = {}
        for i, n in enumerate(sizes):
            self.store.register_agent(f"a{i}", max_tasks=n)
            self.max[f"a{i}"] = n
        self.members = {
            m: FleetMember(m, self.store, ResourceManagerConfig(seed=3), clock=self.clock,
                           sync_interval_s=1.0)
            for m in MEMBERS
        }
        self.submitted = {m: [] for m in MEMBERS}
        self.zombies = {a: [] for a in self.max}   # allocation times
        self.last_sync = {}
        self.clean_report = dict.fromkeys(self.max, False)
        self.n = 0
        self.steps = {"sync": 0, "kill": 0, "report": 0, "reclaimed": 0}

    # -- rules ------------------------------------------------------------------

    @rule(m=st.sampled_from(MEMBERS), k=st.integers(1, 4))
    def allocate(self, m, k):
        mem = self.members.get(m)
        if mem is None:
            return
        for _ in range(k):
            rid = f"r{self.n}"
            self.n += 1
            mem.allocate_resources(AllocationRequest(rid, "t", timeout_s=1e6))
            self.submitted[m].append(rid)

    @rule(m=st.sampled_from(MEMBERS), pick=st.integers(0, 100), success=st.booleans())
    def release(self, m, pick, success):
        mem = self.members.get(m)
        if mem is None:
            return
        live = [r for r in self.submitted[m]
                if mem.allocation_status(r).status is AllocationStatus.ALLOCATED]
        if live:
            mem.release_resources(live[pick % len(live)], success=success)

    @rule(m=st.sampled_from(MEMBERS))
    def sync(self, m):
        mem = self.members.get(m)
        if mem is None:
            return
        # a member whose lease had expired comes back: it adopts its orphans
        back = m in self.last_sync and self.clock.now() >= self.last_sync[m] + TTL
        self.orphan_step(lambda: mem.sync(), adopting=back)
        self.last_sync[m] = self.clock.now()
        self.steps["sync"] += 1

    @rule()
    def sync_all(self):
        for m in sorted(self.members):
            self.sync(m)

    @rule(dt=st.sampled_from([0.5, 2.0, 6.0, 11.0, MAX_TASK]))
    def advance(self, dt):
        self.clock.advance(dt)
        # the members' threads run while the time passes but (unless a sync
        # rule says so) cannot reach the store: they notice their leases
        # running out -- before the tasks below end, since a lease runs out
        # (TTL) long before a task may (MAX_TASK), so no task that ends in
        # this jump can hand its slot to queued work on an expired lease
        for mem in self.members.values():
            mem.check_lease()
        # the contract behind the orphan grace period: no task runs longer
        # than max_task_time_s
        now = self.clock.now()
        for m, mem in self.members.items():
            for r in self.submitted[m]:
                st_ = mem.allocation_status(r)
                if st_.status is AllocationStatus.ALLOCATED and \
                        st_.allocated_at + MAX_TASK <= now:
                    mem.release_resources(r)
        self.zombies = {a: [t for t in ts if t + MAX_TASK > now]
                        for a, ts in self.zombies.items()}

    @precondition(lambda self: len(self.members) > 1)
    @rule(m=st.sampled_from(MEMBERS))
    def kill(self, m):
        mem = self.members.pop(m, None)
        if mem is None:
            return
        for r in self.submitted[m]:
            st_ = mem.allocation_status(r)
            if st_.status is AllocationStatus.ALLOCATED and st_.agent_id is not None:
                self.zombies[st_.agent_id].append(st_.allocated_at)
        self.steps["kill"] += 1

    @rule(pick=st.integers(0, 10))
    def zombie_finishes(self, pick):
        busy = [a for a, ts in self.zombies.items() if ts]
        if busy:
            self.zombies[busy[pick % len(busy)]].pop(0)

    @rule(pick=st.integers(0, 10))
    def report(self, pick):
        agents = sorted(self.max)
        a = agents[pick % len(agents)]
        true = len(self.zombies[a]) + sum(mem.running().get(a, 0) for mem in self.members.values())
        # a report made while no zombie runs there may free the orphans, now
        # or when the members settle it at their syncs
        if not self.zombies[a]:
            self.clean_report[a] = True
        self.orphan_step(lambda: self.store.report_agent(a, true))
        self.steps["report"] += 1

    def orphan_step(self, action, adopting=False):
        """Run ``action``; orphans may shrink only when the rules allow."""
        before = self.store.orphans()
        action()
        after = self.store.orphans()
        # a lapsed member's lease expired at its last sync + TTL (killed or
        # not: a live member that stops syncing is dead to the store too)
        timed = any(self.clock.now() >= t + TTL + MAX_TASK for t in self.last_sync.values())
        for a, n in before.items():
            if after.get(a, 0) < n:
                self.steps["reclaimed"] += 1
                assert timed or adopting or self.clean_report[a], (a, before, after)

    # -- invariants ---------------------------------------------------------------

    @invariant()
    def leases_within_max_tasks(self):
        if hasattr(self, "store"):
            self.store._check_invariants()
            for a, n in self.store.orphans().items():
                assert n <= self.max[a]

    @invariant()
    def true_running_within_max_tasks(self):
        if not hasattr(self, "store"):
            return
        for a, n in self.max.items():
            true = len(self.zombies[a]) + sum(mem.running().get(a, 0)
                                              for mem in self.members.values())
            assert true <= n, (a, true, n)

    @invariant()
    def members_within_their_caps_and_leases(self):
        if not hasattr(self, "store"):
            return
        leases = self.store.leases()
        for m, mem in self.members.items():
            caps = mem.leased_slots()
            for a, n in mem.running().items():
                assert n <= caps.get(a, 0), (m, a, n, caps)
            if m in leases:
                for a, c in caps.items():
                    assert c <= leases[m].get(a, 0), (m, a, caps, leases[m])
            s = mem.get_allocation_statistics()
            assert s.total_requests == (s.queued + s.allocated + s.rejected + s.timed_out
                                        + s.failed)

    def teardown(self):
        store = getattr(self, "store", None)
        if store is not None and hasattr(store, "clear"):
            store.clear()


TestFleetInMemory = FleetMachine.TestCase
TestFleetInMemory.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])


def test_fleet_invariants_on_redis(redis_server):
    client = redis_server.client()

    class RedisFleetMachine(FleetMachine):
        def make_store(self, clock):
            from arbiter_core.fleet import RedisLeaseStore

            return RedisLeaseStore(client, pool=uuid.uuid4().hex, lease_ttl_s=TTL,
                                   max_task_time_s=MAX_TASK, clock=clock)

    run_state_machine_as_test(
        RedisFleetMachine,
        settings=settings(max_examples=25, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]))


# -- differential: the Lua script and the Python plan agree ------------------------

_ops = st.lists(st.one_of(
    st.tuples(st.just("sync"), st.sampled_from(MEMBERS), st.integers(0, 12),
              st.dictionaries(st.sampled_from(["a0", "a1", "a2"]), st.integers(0, 5)),
              st.dictionaries(st.sampled_from(["a0", "a1", "a2"]), st.integers(0, 5))),
    st.tuples(st.just("report"), st.sampled_from(["a0", "a1", "a2"]), st.integers(0, 8)),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 4.0, 11.0, 60.0])),
    st.tuples(st.just("leave"), st.sampled_from(MEMBERS),
              st.dictionaries(st.sampled_from(["a0", "a1", "a2"]), st.integers(0, 3))),
    st.tuples(st.just("remove"), st.sampled_from(["a2"])),
), max_size=40)


def test_redis_store_answers_exactly_like_the_in_memory_store(redis_server):
    from arbiter_core.fleet import RedisLeaseStore

    client = redis_server.client()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.integers(1, 6), min_size=3, max_size=3), _ops)
    def run(sizes, ops):
        clock = ManualClock()
        mem = InMemoryLeaseStore(lease_ttl_s=TTL, max_task_time_s=MAX_TASK, clock=clock)
        red = RedisLeaseStore(client, pool=uuid.uuid4().hex, lease_ttl_s=TTL,
                              max_task_time_s=MAX_TASK, clock=clock)
        try:
            for i, n in enumerate(sizes):
                for s in (mem, red):
                    s.register_agent(f"a{i}", max_tasks=n, weight=1.5)
            for op in ops:
                if op[0] == "sync":
                    _, m, d, held, usage = op
                    x, y = (s.sync(m, d, held, usage) for s in (mem, red))
                    assert dict(x.leases) == dict(y.leases), op
                    assert {a: t for a, t in x.targets.items() if t} == \
                        {a: t for a, t in y.targets.items() if t}, op
                    assert x.share == y.share and x.now == y.now
                    assert dict(x.agents) == dict(y.agents)
                    assert dict(x.orphaned) == dict(y.orphaned)
                elif op[0] == "report":
                    for s in (mem, red):
                        with contextlib.suppress(KeyError):
                            s.report_agent(op[1], op[2])
                elif op[0] == "advance":
                    clock.advance(op[1])
                elif op[0] == "leave":
                    for s in (mem, red):
                        s.leave(op[1], op[2])
                elif op[0] == "remove":
                    for s in (mem, red):
                        s.remove_agent(op[1])
                assert mem.leases() == red.leases(), op
                assert mem.orphans() == red.orphans(), op
                red._check_invariants()
        finally:
            red.clear()

    run()


def test_redis_store_validates_and_reports_errors(redis_server):
    from arbiter_core.fleet import LeaseStoreError, RedisLeaseStore

    store = RedisLeaseStore(redis_server.client(decode_responses=True), pool="v")
    with pytest.raises(KeyError, match="nope"):
        store.report_agent("nope", 1)
    with pytest.raises(ValueError, match="newline"):
        store.register_agent("a\nb", 1)
    with pytest.raises(ValueError, match="braces"):
        RedisLeaseStore(redis_server.client(), pool="{x}")
    store.register_agent("a", 2)
    assert store.sync("m", 1, {}, {}).leases == {"a": 2}     # decode_responses=True too
    store.clear()
    dead = RedisLeaseStore(__import__("redis").Redis(port=1, socket_connect_timeout=0.2),
                           pool="x")
    with pytest.raises(LeaseStoreError):
        dead.leases()


def test_a_failed_report_changes_nothing_in_either_store(redis_server):
    from arbiter_core.fleet import RedisLeaseStore

    clock = ManualClock()
    stores = [InMemoryLeaseStore(lease_ttl_s=TTL, clock=clock),
              RedisLeaseStore(redis_server.client(), pool=uuid.uuid4().hex, lease_ttl_s=TTL,
                              clock=clock)]
    for s in stores:
        s.register_agent("a0", max_tasks=1)
        s.sync("m0", 0, {}, {})
    clock.advance(TTL + 1)
    for s in stores:
        with pytest.raises(KeyError):
            s.report_agent("gone", 0)
        assert s.orphans() == {}        # the death is not processed by a failed call
        s.report_agent("a0", 1)
        assert s.orphans() == {"a0": 1}
    stores[1].clear()
