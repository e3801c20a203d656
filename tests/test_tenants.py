"""Multi-tenant isolation (issue 12): fair shares, caps, per-tenant limits, statistics."""

from __future__ import annotations

import collections

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from arbiter_core import (
    AdaptiveResourceManager,
    AllocationRequest,
    AllocationStatus,
    ManualClock,
    ResourceManagerConfig,
    TaskPriority,
    TenantPolicy,
)

A = AllocationStatus


def manager(agents=1, max_tasks=1, **cfg):
    clock = ManualClock()
    arm = AdaptiveResourceManager(ResourceManagerConfig(seed=5, **cfg), clock=clock)
    for i in range(agents):
        arm.register_agent(f"a{i}", max_tasks=max_tasks)
    return clock, arm


def req(rid, tenant, priority=TaskPriority.MEDIUM, timeout_s=1e6):
    return AllocationRequest(rid, "t", priority=priority, timeout_s=timeout_s, tenant=tenant)


def identities(arm, tenants=()):
    g = arm.get_allocation_statistics()
    assert arm.allocator._check_invariants()
    per = [arm.get_tenant_statistics(t) for t in arm.tenants()]
    for s in (g, *per):
        assert s.allocated == s.active + s.released
        assert s.total_requests == s.queued + s.allocated + s.rejected + s.timed_out + s.failed
    for field in ("total_requests", "queued", "active", "released", "rejected", "timed_out",
                  "failed"):
        assert sum(getattr(s, field) for s in per) == getattr(g, field), field
    return g


def drain(arm, order):
    """Release running tasks one at a time, recording which tenant each
    dispatch went to (a single-slot pool: one dispatch per release)."""
    served = []
    arm.allocator.on_transition(lambda rid, status, agent: served.append(rid.split("-")[0]))
    for _ in range(order):
        running = arm.allocator.active_on("a0")
        arm.release_resources(running[0])
    return served


# -- fair shares ----------------------------------------------------------------------


def test_backlogged_tenants_with_weights_2_to_1_get_dispatches_2_to_1():
    clock, arm = manager()
    arm.set_tenant_policy("gold", weight=2.0)
    arm.set_tenant_policy("bronze", weight=1.0)
    arm.allocate_resources(req("first-0", "default"))
    for k in range(600):
        arm.allocate_resources(req(f"gold-{k}", "gold"))
        arm.allocate_resources(req(f"bronze-{k}", "bronze"))
    served = drain(arm, 600)
    counts = collections.Counter(served)
    assert counts["gold"] / counts["bronze"] == pytest.approx(2.0, rel=0.03)
    # fine-grained: every window of 30 dispatches is close to 2:1 as well
    for w in range(0, 600, 30):
        window = collections.Counter(served[w:w + 30])
        assert 18 <= window["gold"] <= 22
    identities(arm)


def _cost_race(fair_share, agents=4, weights=(1.0, 1.0), costs=(10.0, 1.0), n=(400, 4000)):
    """Tenants "big" (cost-10 requests) and "small" (cost-1), both
    backlogged behind a full pool; tasks end oldest first.  Returns the cost
    each was served while both were backlogged, and each one's dispatch count."""
    clock, arm = manager(agents=agents, fair_share=fair_share)
    arm.set_tenant_policy("big", weight=weights[0])
    arm.set_tenant_policy("small", weight=weights[1])
    for k in range(agents):
        arm.allocate_resources(req(f"first-{k}", "default"))
    for k in range(max(n)):
        for name, cost, m in (("big", costs[0], n[0]), ("small", costs[1], n[1])):
            if k < m:
                arm.allocate_resources(AllocationRequest(f"{name}-{k}", "t", timeout_s=1e6,
                                                         tenant=name, cost=cost))
    running = collections.deque(f"first-{k}" for k in range(agents))
    served = {"big": 0.0, "small": 0.0}
    dispatches = {"big": 0, "small": 0}
    arm.allocator.on_transition(lambda rid, status, agent: running.append(rid))
    before = {t: arm.get_tenant_statistics(t).cost_served for t in served}
    assert before == {"big": 0.0, "small": 0.0}         # nothing of theirs ran yet
    while all(arm.get_tenant_statistics(t).queued for t in served):
        rid = running.popleft()
        arm.release_resources(rid)
        tenant = rid.split("-")[0]
        if tenant in served:
            served[tenant] += costs[0] if tenant == "big" else costs[1]
            dispatches[tenant] += 1
    identities(arm)
    return arm, served, dispatches


def test_fair_shares_by_cost_serve_equal_cost_to_equal_weights():
    arm, served, dispatches = _cost_race("cost")
    # released tasks; the statistics count what was allocated (a few more)
    stats = {t: arm.get_tenant_statistics(t).cost_served for t in served}
    assert stats["big"] >= served["big"] and stats["small"] >= served["small"]
    assert served["big"] / served["small"] == pytest.approx(1.0, rel=0.05)
    assert dispatches["small"] == pytest.approx(10 * dispatches["big"], rel=0.05)
    g = arm.get_allocation_statistics()
    assert g.cost_served == pytest.approx(sum(stats.values()) + 4)    # + the four "first"


def test_fair_shares_by_requests_serve_equal_requests_whatever_the_cost():
    # today's behaviour, the default: the cost-10 tenant gets ten times the cost
    arm, served, dispatches = _cost_race("requests")
    assert dispatches["big"] == pytest.approx(dispatches["small"], rel=0.05)
    assert served["big"] / served["small"] == pytest.approx(10.0, rel=0.05)


def test_fair_shares_by_cost_follow_weights():
    # weight 3 : 1 with equal costs per token: big gets 3x the cost served
    arm, served, _ = _cost_race("cost", weights=(3.0, 1.0), costs=(7.0, 2.0), n=(900, 2000))
    assert served["big"] / served["small"] == pytest.approx(3.0, rel=0.05)


def test_fair_share_validates_and_changes_live():
    with pytest.raises(ValueError, match="fair_share"):
        ResourceManagerConfig(fair_share="tokens")
    with pytest.raises(TypeError, match="fair_share"):
        ResourceManagerConfig(fair_share=1)
    clock, arm = manager()
    assert arm.allocator.fair_share == "requests"
    arm.update_config(fair_share="cost")
    assert arm.allocator.fair_share == "cost" and arm.config.fair_share == "cost"
    with pytest.raises(ValueError, match="fair_share"):
        arm.allocator.fair_share = "bytes"
    assert arm.allocator.fair_share == "cost"
    for bad, exc in ((0.0, ValueError), (-1.0, ValueError), (float("inf"), ValueError),
                     (float("nan"), ValueError), ("1", TypeError), (True, TypeError)):
        with pytest.raises(exc, match="cost"):
            AllocationRequest("r", "t", cost=bad)


def test_cost_served_folds_into_other_with_the_tenant():
    clock, arm = manager(agents=1, max_tasks=1000, max_tenants=3)
    for k in range(20):
        arm.allocate_resources(AllocationRequest(f"r{k}", "t", tenant=f"t{k}", cost=2.5))
        arm.release_resources(f"r{k}")
    total = sum(arm.get_tenant_statistics(t).cost_served for t in arm.tenants())
    assert total == arm.get_allocation_statistics().cost_served == 50.0


def test_an_idle_tenants_share_goes_to_the_others_and_priorities_order_within_a_tenant():
    clock, arm = manager()
    arm.set_tenant_policy("x", weight=1.0)
    arm.set_tenant_policy("y", weight=9.0)
    arm.allocate_resources(req("first-0", "default"))
    arm.allocate_resources(req("x-low", "x", TaskPriority.LOW))
    arm.allocate_resources(req("x-crit", "x", TaskPriority.CRITICAL))
    for k in range(3):
        arm.allocate_resources(req(f"x-{k}", "x"))
    served = []
    arm.allocator.on_transition(lambda rid, s, a: served.append(rid))
    for _ in range(5):
        arm.release_resources(arm.allocator.active_on("a0")[0])
    # y is idle: x gets every dispatch, in its own priority order
    assert served == ["x-crit", "x-0", "x-1", "x-2", "x-low"]
    identities(arm)


def test_a_quiet_tenant_keeps_its_share_beside_a_flood():
    clock, arm = manager(agents=10, max_tasks=1)
    arm.set_tenant_policy("quiet", weight=1.0)
    arm.set_tenant_policy("flood", weight=1.0, max_queued=500)
    n = 0
    for step in range(400):
        for _ in range(5):                       # the flood: 5 per step, pool serves 2
            n += 1
            arm.allocate_resources(req(f"flood-{n}", "flood", timeout_s=30.0))
        if step % 10 == 0:                       # the quiet tenant: one per 10 steps
            arm.allocate_resources(req(f"quiet-{step}", "quiet", timeout_s=30.0))
        clock.advance(0.1)
        for agent in ("a0", "a1"):               # two completions per step
            running = arm.allocator.active_on(agent)
            if running:
                arm.release_resources(running[0], duration_s=0.1)
        arm.tick()
    q = arm.get_tenant_statistics("quiet")
    f = arm.get_tenant_statistics("flood")
    assert q.rejected == 0 and q.timed_out == 0 and q.failed == 0
    assert f.rejected > 0                       # the flood hits its own queue limit
    assert q.wait_p99_s is not None and q.wait_p99_s <= 1.0
    identities(arm)


# -- caps and limits ----------------------------------------------------------------


def test_max_queued_rejects_naming_the_tenant_and_the_global_queue_still_applies():
    clock, arm = manager(max_queue=5)
    arm.set_tenant_policy("t", max_queued=2)
    arm.allocate_resources(req("busy", "other-team"))
    results = [arm.allocate_resources(req(f"t{k}", "t")).status for k in range(4)]
    assert results == [A.QUEUED, A.QUEUED, A.REJECTED, A.REJECTED]
    reason = arm.allocation_status("t2").failure_reason
    assert "tenant queue full" in reason and "'t'" in reason and "max_queued=2" in reason
    for k in range(3):
        arm.allocate_resources(req(f"o{k}", "o"))
    assert arm.allocate_resources(req("o3", "o")).failure_reason == "queue full"
    identities(arm)


def test_max_active_holds_a_tenant_at_its_cap_without_blocking_others():
    clock, arm = manager(agents=1, max_tasks=4)
    arm.set_tenant_policy("capped", max_active=1)
    assert arm.allocate_resources(req("c0", "capped")).status is A.ALLOCATED
    assert arm.allocate_resources(req("c1", "capped")).status is A.QUEUED
    assert arm.allocate_resources(req("free0", "free")).status is A.ALLOCATED   # not blocked
    assert arm.allocate_resources(req("free1", "free")).status is A.ALLOCATED
    assert arm.get_tenant_statistics("capped").active == 1
    arm.release_resources("c0")
    assert arm.allocation_status("c1").status is A.ALLOCATED
    # max_active=0 pauses the tenant: its requests wait and may time out
    arm.set_tenant_policy("paused", max_active=0)
    assert arm.allocate_resources(req("p0", "paused", timeout_s=1.0)).status is A.QUEUED
    clock.advance(2.0)
    arm.tick()
    assert arm.allocation_status("p0").status is A.TIMED_OUT
    identities(arm)


def test_lowering_max_active_lets_running_tasks_finish():
    clock, arm = manager(agents=1, max_tasks=4)
    for k in range(3):
        arm.allocate_resources(req(f"t{k}", "t"))
    arm.set_tenant_policy("t", max_active=1)
    arm.allocate_resources(req("t3", "t"))
    assert arm.get_tenant_statistics("t").active == 3          # nothing is stopped
    arm.release_resources("t0")
    arm.release_resources("t1")
    assert arm.allocation_status("t3").status is A.QUEUED      # still at 1 >= cap
    arm.release_resources("t2")
    assert arm.allocation_status("t3").status is A.ALLOCATED
    identities(arm)


def test_a_tenant_rate_limit_rejects_that_tenant_only():
    clock, arm = manager(agents=1, max_tasks=100)
    arm.set_tenant_policy("metered", rate_per_s=2.0, burst=3)
    got = [arm.allocate_resources(req(f"m{k}", "metered")).status for k in range(5)]
    assert got == [A.ALLOCATED] * 3 + [A.REJECTED] * 2
    assert arm.allocation_status("m3").failure_reason == "tenant rate limit exceeded ('metered')"
    assert all(arm.allocate_resources(req(f"x{k}", "x")).status is A.ALLOCATED
               for k in range(10))
    clock.advance(1.0)                                        # two more tokens
    got = [arm.allocate_resources(req(f"n{k}", "metered")).status for k in range(3)]
    assert got == [A.ALLOCATED, A.ALLOCATED, A.REJECTED]
    s = arm.get_tenant_statistics("metered")
    assert (s.rate_limit, s.rate_limit_per_s) == (3.0, 2.0)
    arm.set_tenant_policy("closed", rate_per_s=5.0, burst=0)
    assert arm.allocate_resources(req("c", "closed")).status is A.REJECTED
    identities(arm)


def test_a_rejected_request_spends_no_token_anywhere():
    clock, arm = manager(agents=1, max_tasks=1, max_queue=0)
    arm.set_tenant_policy("t", rate_per_s=1.0, burst=1)
    arm.allocate_resources(req("busy", "x"))
    assert arm.allocate_resources(req("r0", "t")).failure_reason == "queue full"
    arm.release_resources("busy")
    assert arm.allocate_resources(req("r1", "t")).status is A.ALLOCATED   # token unspent


# -- statistics, policies, bounds ------------------------------------------------------


def test_tenant_statistics_add_up_and_unknown_tenants_raise():
    clock, arm = manager(agents=2, max_tasks=1, max_queue=3)
    arm.set_tenant_policy("configured")
    s = arm.get_tenant_statistics("configured")               # seen, zeros
    assert s.total_requests == 0
    for k in range(8):
        arm.allocate_resources(req(f"r{k}", "ab"[k % 2], timeout_s=1.0))
    clock.advance(2.0)
    arm.tick()
    g = identities(arm)
    assert g.total_requests == 8 and g.timed_out > 0 and g.rejected > 0
    with pytest.raises(KeyError, match="nobody"):
        arm.get_tenant_statistics("nobody")
    assert set(arm.tenants()) >= {"default", "configured", "a", "b"}


def test_many_tenants_fold_into_other_and_totals_still_add_up():
    clock, arm = manager(agents=1, max_tasks=1000, max_tenants=5)
    for k in range(40):
        arm.allocate_resources(req(f"r{k}", f"tenant-{k}"))
        arm.release_resources(f"r{k}")
    names = arm.tenants()
    assert len(names) <= 6 and "other" in names
    g = identities(arm)
    assert g.total_requests == 40
    assert arm.get_tenant_statistics("other").released >= 30


def test_policies_validate_and_name_the_argument():
    clock, arm = manager()
    for kwargs, exc, word in (
            ({"weight": 0}, ValueError, "weight"), ({"weight": float("nan")}, ValueError, "weight"),
            ({"weight": "1"}, TypeError, "weight"), ({"max_active": -1}, ValueError, "max_active"),
            ({"max_queued": 1.5}, TypeError, "max_queued"),
            ({"rate_per_s": -1.0}, ValueError, "rate_per_s"),
            ({"burst": 3}, ValueError, "burst")):
        with pytest.raises(exc, match=word):
            arm.set_tenant_policy("t", **kwargs)
    with pytest.raises(ValueError, match="tenant"):
        AllocationRequest("r", "t", tenant="")
    with pytest.raises(TypeError, match="tenant"):
        AllocationRequest("r", "t", tenant=7)
    with pytest.raises(ValueError, match="tenant"):
        AllocationRequest("r", "t", tenant="x" * 257)
    assert TenantPolicy(rate_per_s=0.5).burst == 1.0 and TenantPolicy(rate_per_s=5).burst == 5.0


def test_tenants_in_the_config_and_live_through_update_config():
    clock, arm = manager(agents=1, max_tasks=10,
                         tenants={"t": TenantPolicy(max_active=1)})
    arm.allocate_resources(req("t0", "t"))
    assert arm.allocate_resources(req("t1", "t")).status is A.QUEUED
    arm.update_config(tenants={"t": TenantPolicy(max_active=2)})
    assert arm.allocation_status("t1").status is A.ALLOCATED
    arm.update_config(tenants={})                           # back to no caps
    assert arm.allocate_resources(req("t2", "t")).status is A.ALLOCATED
    arm.set_tenant_policy("u", weight=3.0)
    assert arm.config.tenants["u"].weight == 3.0
    with pytest.raises(TypeError, match="TenantPolicy"):
        ResourceManagerConfig(tenants={"t": {"weight": 2}})
    with pytest.raises(ValueError, match="max_tenants"):
        arm.update_config(max_tenants=3)
    identities(arm)


# -- state machine ------------------------------------------------------------------------


class TenantMachine(RuleBasedStateMachine):
    """Several tenants with random policies, traffic, releases, cancellations,
    failover and time; every identity after every step, per tenant too."""

    @initialize()
    def setup(self):
        self.clock = ManualClock()
        self.arm = AdaptiveResourceManager(
            ResourceManagerConfig(seed=9, max_queue=12, max_tenants=4), clock=self.clock)
        for k in range(3):
            self.arm.register_agent(f"g{k}", max_tasks=2)
        self.n = 0
        self.submitted = 0
        self.tenant_of = {}
        self.over_cap = []
        self.arm.allocator.on_transition(self._dispatched)

    def _dispatched(self, rid, status, agent):
        # a dispatch never takes a tenant above its max_active
        if status is A.ALLOCATED:
            t = self.tenant_of[rid]
            cap = self.arm.allocator.tenant_policy(t).max_active
            if cap is not None and self.arm.get_tenant_statistics(t).active > cap:
                self.over_cap.append((rid, t))

    @rule(tenant=st.sampled_from(["a", "b", "c", "d", "e", "f"]),
          priority=st.sampled_from(list(TaskPriority)), timeout=st.sampled_from([2.0, 50.0]))
    def allocate(self, tenant, priority, timeout):
        self.n += 1
        self.tenant_of[f"q{self.n}"] = tenant
        self.arm.allocate_resources(req(f"q{self.n}", tenant, priority, timeout))
        self.submitted += 1

    @rule(tenant=st.sampled_from(["a", "b", "c"]), weight=st.sampled_from([0.5, 1.0, 3.0]),
          max_active=st.sampled_from([None, 0, 1, 3]), max_queued=st.sampled_from([None, 0, 2]),
          rate=st.sampled_from([None, 1.0, 5.0]))
    def policy(self, tenant, weight, max_active, max_queued, rate):
        self.arm.set_tenant_policy(tenant, weight=weight, max_active=max_active,
                                   max_queued=max_queued, rate_per_s=rate)

    @rule(data=st.data(), success=st.booleans())
    def release(self, data, success):
        if self.n:
            self.arm.release_resources(f"q{data.draw(st.integers(1, self.n))}",
                                       success=success, duration_s=0.1)

    @rule(data=st.data())
    def cancel(self, data):
        if self.n:
            self.arm.cancel(f"q{data.draw(st.integers(1, self.n))}")

    @rule(data=st.data())
    def failover(self, data):
        self.arm.handle_failover(data.draw(st.sampled_from(["g0", "g1", "g2"])))

    @rule(data=st.data())
    def restore(self, data):
        self.arm.restore_agent(data.draw(st.sampled_from(["g0", "g1", "g2"])))

    @rule(seconds=st.sampled_from([0.5, 3.0]))
    def advance_and_tick(self, seconds):
        self.clock.advance(seconds)
        self.arm.tick()

    @invariant()
    def accounting(self):
        g = identities(self.arm)
        assert g.total_requests == self.submitted
        assert not self.over_cap


TestTenantMachine = TenantMachine.TestCase
TestTenantMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
