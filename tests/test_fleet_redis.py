"""The fleet on a real redis-server: members in threads and processes, a
killed member, Redis restarts.  Skipped when redis-server is not installed."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import uuid

import pytest

from arbiter_core import AllocationRequest, AllocationStatus, ManualClock
from arbiter_core.fleet import FleetMember, RedisLeaseStore
from fleet_support import RedisServer, fleet_worker

ALLOCATED = AllocationStatus.ALLOCATED
QUEUED = AllocationStatus.QUEUED

def req(i):
    return AllocationRequest(f"r{i}", "t", timeout_s=600.0)

def poll(cond, timeout_s=10.0):
    """Wait for ``cond()`` (bounded): for what real TTLs and other processes do."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()

@pytest.fixture
def store_factory(redis_server):
    made = []

    def make(**kw):
        s = RedisLeaseStore(redis_server.client(), pool=uuid.uuid4().hex, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.clear()

def test_members_on_redis_with_an_injected_clock(store_factory):
    clock = ManualClock()
    store = store_factory(lease_ttl_s=10.0, max_task_time_s=100.0, clock=clock)
    store.register_agent("a0", max_tasks=4)
    a = FleetMember("a", store, clock=clock)
    b = FleetMember("b", store, clock=clock)
    a.sync()
    b.sync()
    for i in range(6):
        a.allocate_resources(req(i))
    for m in (a, b, b, a):                 # b gives its idle floor back
        m.sync()
    assert a.running() == {"a0": 4}
    for i in range(10, 12):
        b.allocate_resources(req(i))
    b.sync()
    a.sync()                               # a's target is now 2: it drains
    a.release_resources("r0")
    a.release_resources("r1")
    a.sync()
    b.sync()
    assert b.running() == {"a0": 2} and a.running() == {"a0": 2}
    store._check_invariants()
    clock.advance(10.0)                    # both silent: dead at the next operation
    store.report_agent("a0", 4)
    assert store.leases() == {} and store.orphans() == {"a0": 4}
    clock.advance(100.0)
    store.report_agent("a0", 4)
    assert store.orphans() == {}

def test_a_silent_members_key_expires_by_itself(store_factory):
    store = store_factory(lease_ttl_s=0.3)           # Redis TIME and real key TTLs
    store.register_agent("a0", max_tasks=3)
    m = FleetMember("m", store, sync_interval_s=0.05)
    for i in range(2):
        m.sync()
        m.allocate_resources(req(i))
    m.sync()
    assert store.leases() == {"m": {"a0": 3}}
    key = f"arbiter:fleet:{{{store.pool}}}:m:m"
    assert 0 < store.client.pttl(key) <= 300
    assert poll(lambda: store.leases() == {})          # nobody syncs: it expires
    store.report_agent("a0", 2)
    assert store.orphans() == {"a0": 3}
    assert m.check_lease()                             # the member noticed too
    assert m.allocate_resources(req(9)).status is QUEUED
    store.report_agent("a0", 0)                        # the tasks are gone
    assert store.orphans() == {}

def test_concurrent_members_in_threads_on_redis(store_factory):
    store = store_factory(lease_ttl_s=2.0)
    for i in range(3):
        store.register_agent(f"a{i}", max_tasks=3)
    ms = [FleetMember(f"m{i}", store, sync_interval_s=0.05) for i in range(4)]
    errors = []

    def work(m):
        live = []
        m.sync()
        for i in range(400):
            res = m.allocate_resources(req(f"{m.member_id}-{i}"))
            if res.status is ALLOCATED:
                live.append(res.request_id)
            if len(live) > 2 or (live and i % 2):
                m.release_resources(live.pop(0))
            if i % 20 == 0:
                m.sync()
            with m.manager.monitor.lock:
                caps = m.leased_slots()
                if any(n > caps.get(a, 0) for a, n in m.running().items()):
                    errors.append((m.member_id, caps))

    threads = [threading.Thread(target=work, args=(m,)) for m in ms]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        store._check_invariants()
    for t in threads:
        t.join()
    assert not errors
    store._check_invariants()
    assert sum(m.syncs for m in ms) >= 4 * 20 and sum(m.sync_errors for m in ms) == 0

def test_members_in_processes_and_a_killed_member(redis_server):
    ctx = mp.get_context("spawn")
    pool = uuid.uuid4().hex
    store = RedisLeaseStore(redis_server.client(), pool=pool, lease_ttl_s=1.0)
    for i in range(3):
        store.register_agent(f"a{i}", max_tasks=4)
    ready, out = ctx.Queue(), ctx.Queue()
    victim = ctx.Process(target=fleet_worker,
                         args=(redis_server.port, pool, "victim", 1.0, -1, ready, out))
    workers = [ctx.Process(target=fleet_worker,
                           args=(redis_server.port, pool, f"w{i}", 1.0, 3000, ready, out))
               for i in range(2)]
    try:
        victim.start()
        for w in workers:
            w.start()
        started = {ready.get(timeout=60) for _ in range(3)}
        assert started == {"victim", "w0", "w1"}
        while any(w.is_alive() for w in workers):
            store._check_invariants()
            leases = store.leases()
            # mid-run, once a worker holds slots (the victim's stay orphaned until
            # the reports at the end: killed first, it could hold them all)
            if victim.is_alive() and leases.get("victim") and \
                    (leases.get("w0") or leases.get("w1")):
                os.kill(victim.pid, signal.SIGKILL)
        if victim.is_alive():                 # the workers were quicker
            os.kill(victim.pid, signal.SIGKILL)
        results = {r[0]: r for r in (out.get(timeout=60) for _ in workers)}
        for w in workers:
            w.join(timeout=60)
        victim.join(timeout=60)
        assert victim.exitcode == -signal.SIGKILL
        for name, allocated, violations, syncs, errors in results.values():
            assert violations == 0 and allocated > 0 and syncs > 0 and errors == 0, \
                (name, allocated, violations, syncs, errors)
        # the victim's lease expires by itself; its slots come back by report
        assert poll(lambda: "victim" not in store.leases())
        for i in range(3):
            store.report_agent(f"a{i}", 0)
        assert store.orphans() == {}
        store._check_invariants()
    finally:
        for p in (victim, *workers):
            if p.is_alive():
                p.kill()
        store.clear()

def test_redis_restart_members_keep_serving_then_recover():
    server = RedisServer()
    try:
        store = RedisLeaseStore(server.client(), pool="restart", lease_ttl_s=5.0)
        store.register_agent("a0", max_tasks=4)
        store.register_agent("a1", max_tasks=4)
        a = FleetMember("a", store, sync_interval_s=0.5)
        b = FleetMember("b", store, sync_interval_s=0.5)
        for m in (a, b):
            m.sync()
        for i in range(3):
            a.allocate_resources(req(i))
        for m in (a, b, a):
            m.sync()
        caps = a.leased_slots()
        server.stop()
        rep = a.sync()
        assert not rep.ok and a.sync_errors == 1 and not rep.expired
        assert a.leased_slots() == caps                   # serving inside the lease
        assert a.allocate_resources(req(3)).status is ALLOCATED
        server.start()                                    # empty: the state is gone
        rep = a.sync()                                    # a registers its agents again
        assert rep.ok
        assert set(store.agents()) == {"a0", "a1"}
        b.sync()
        a.sync()
        assert a.running() and sum(a.running().values()) == 4
        store._check_invariants()
        for i in range(4):
            a.release_resources(f"r{i}")
        s = a.get_allocation_statistics()
        assert s.released == 4 and s.failed == 0           # nothing lost
    finally:
        server.stop()
