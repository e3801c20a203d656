"""AgentTable: every selection kernel against the pure-Python reference model."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbiter_core import AgentTable
from arbiter_core._select import STRATEGY_CODES
from select_model import HEALTHY, Agent, candidates

RR = STRATEGY_CODES["round_robin"]
LL = STRATEGY_CODES["least_loaded"]
W = STRATEGY_CODES["weighted"]
RAND = STRATEGY_CODES["random"]
PRIO = STRATEGY_CODES["priority_based"]
P2C = STRATEGY_CODES["power_of_two"]
PEWMA = STRATEGY_CODES["peak_ewma"]
SCORED = STRATEGY_CODES["scored"]

NOW = 100.0

# Few distinct values so that ties (and every health band) are common.
percent = st.one_of(st.none(), st.sampled_from([0.0, 10.0, 20.0, 50.0, 69.9, 70.0, 75.0,
                                                 84.9, 85.0, 90.0, 100.0]),
                    st.floats(0.0, 100.0))


@st.composite
def agent_specs(draw):
    max_tasks = draw(st.integers(1, 6))
    active = draw(st.integers(0, max_tasks))
    return Agent(
        agent_id="",
        max_tasks=max_tasks,
        active=active,
        # the load estimate: reports of every age, grants since, engine figures
        concurrency=draw(st.sampled_from([None, None, 0.5, 1.0, 3.0])),
        report_t=draw(st.sampled_from([NOW, NOW, NOW - 2.0, NOW - 7.5, NOW - 40.0, NOW + 3.0])),
        active_at_report=draw(st.integers(0, active)),
        waiting=draw(st.one_of(st.none(), st.sampled_from([0.0, 1.0, 4.0]))),
        running=draw(st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.0, 6.0]))),
        kv=draw(percent),
        weight=draw(st.sampled_from([0.5, 1.0, 2.0, 3.5])),
        cpu=draw(percent),
        mem=draw(percent),
        net=draw(percent),
        offline=draw(st.integers(0, 4)) == 0,
        ejected_until=draw(st.sampled_from([None, None, None, NOW - 1.0, NOW + 5.0])),
        cap_cpu=draw(st.sampled_from([100.0, 100.0, 60.0])),
        cap_mem=draw(st.sampled_from([0.0, 1024.0])),
        cap_net=draw(st.sampled_from([0.0, 100.0])),
        res_cpu=draw(st.sampled_from([0.0, 0.0, 10.0, 30.0])),
        res_mem=draw(st.sampled_from([0.0, 0.0, 256.0])),
    )


@st.composite
def pools(draw):
    """A table and its reference: agents registered, some removed (slot reuse)."""
    specs = draw(st.lists(agent_specs(), min_size=0, max_size=24))
    n_removed = draw(st.integers(0, 6))
    table = AgentTable(64)
    table.seed(draw(st.integers(0, 2**32)))
    # register some throwaway agents first and remove them, so live agents
    # sit in reused slots and the dense list has been reshuffled
    for j in range(n_removed):
        table.add(f"gone{j}")
    model: dict[int, Agent] = {}
    for i, a in enumerate(specs):
        a.agent_id = f"a{i}"
        if i == len(specs) // 2:
            for j in range(n_removed):
                table.remove(f"gone{j}")
        slot = table.add(a.agent_id, max_tasks=a.max_tasks, weight=a.weight,
                         cpu_capacity=a.cap_cpu, memory_mb=a.cap_mem, network_mbps=a.cap_net,
                         concurrency=a.concurrency or 0.0)
        fields = (1 if a.cpu is not None else 0) | (2 if a.mem is not None else 0) \
            | (4 if a.net is not None else 0) | (128 if a.waiting is not None else 0) \
            | (256 if a.running is not None else 0) | (512 if a.kv is not None else 0)
        # reservations first (with resources), then the count the report saw
        if not (a.active and (a.res_cpu or a.res_mem)
                and table.reserve(slot, a.res_cpu, a.res_mem, 0.0, 0.0)):
            a.res_cpu = a.res_mem = 0.0
        table.set_task_count(slot, a.active_at_report)
        table.set_usage(slot, a.cpu or 0.0, a.mem or 0.0, a.net or 0.0, a.report_t, fields,
                        a.waiting or 0.0, a.running or 0.0, a.kv or 0.0)
        # then the grants since the report
        for _ in range(a.active - a.active_at_report):
            assert table.reserve(slot)
        if a.offline:
            table.set_offline(slot)
        if a.ejected_until is not None:
            table.eject(slot, a.ejected_until)
        model[slot] = a
    if len(specs) <= len(specs) // 2:   # no agent reached the removal point
        for j in range(n_removed):
            table.remove(f"gone{j}")
    return table, model


requests = st.tuples(st.booleans(), st.sampled_from([0.0, 0.0, 5.0, 40.0]),
                     st.sampled_from([0.0, 0.0, 100.0, 900.0]))


def _check_alternatives(table, model, chosen, cands):
    alts = table.alternatives()
    assert chosen not in alts
    assert len(set(alts)) == len(alts) <= 3
    for s in alts:
        assert s in cands
    return alts


@pytest.mark.parametrize("code,key", [(LL, Agent.ll_key), (W, Agent.w_key),
                                      (PRIO, Agent.prio_key)])
@settings(max_examples=80, deadline=None)
@given(pool=pools(), req=requests)
def test_scan_kernels_match_reference(code, key, pool, req):
    table, model = pool
    high, rc, rm = req
    cands = candidates(model, NOW, high, rc, rm)
    slot = table.select(code, high, rc, rm, 0.0, NOW)
    if not cands:
        assert slot == -1
        return
    assert slot in cands
    keys = {s: key(a, NOW) for s, a in cands.items()}
    best = min(keys.values())
    assert keys[slot] == best
    # the kernel's own key for the winner is the reference formula's
    assert table.last_score == (best[1] if code == PRIO else best)
    alts = _check_alternatives(table, model, slot, cands)
    # the alternatives are the next best, in key order
    rest = sorted(v for s, v in keys.items() if s != slot)
    assert [keys[s] for s in alts] == rest[: len(alts)]
    assert len(alts) == min(3, len(cands) - 1)


weights = st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0, 100.0])
profiles = st.fixed_dictionaries({
    "count": weights, "queue": weights, "utilization": weights, "kv_cache": weights,
    "latency": st.just(0.0), "affinity": weights, "by_weight": st.booleans()})


@settings(max_examples=120, deadline=None)
@given(pool=pools(), req=requests, prof=profiles)
def test_scored_profile_matches_reference(pool, req, prof):
    # every scorer (count, corrected queue, utilization and KV use, each
    # reported figure weighed by its age) against the pure-Python estimate
    table, model = pool
    table.set_profile(picker="min", **prof)
    high, rc, rm = req
    cands = candidates(model, NOW, high, rc, rm)
    slot = table.select(SCORED, high, rc, rm, 0.0, NOW)
    if not cands:
        assert slot == -1
        return
    keys = {s: a.profile_key(prof, NOW) for s, a in cands.items()}
    assert keys[slot] == min(keys.values())
    assert table.last_score == keys[slot]
    alts = _check_alternatives(table, model, slot, cands)
    rest = sorted(v for s, v in keys.items() if s != slot)
    assert [keys[s] for s in alts] == rest[: len(alts)]


@pytest.mark.parametrize("picker", ["two_choices", "weighted_random"])
@settings(max_examples=60, deadline=None)
@given(pool=pools(), req=requests, prof=profiles)
def test_scored_pickers_choose_eligible(picker, pool, req, prof):
    table, model = pool
    table.set_profile(picker=picker, **prof)
    high, rc, rm = req
    cands = candidates(model, NOW, high, rc, rm)
    for _ in range(5):
        slot = table.select(SCORED, high, rc, rm, 0.0, NOW)
        if not cands:
            assert slot == -1
            return
        assert slot in cands
        alts = _check_alternatives(table, model, slot, cands)
        if picker == "two_choices" and alts:
            assert model[slot].profile_key(prof, NOW) <= model[alts[0]].profile_key(prof, NOW)


@settings(max_examples=80, deadline=None)
@given(pool=pools(), req=requests, k=st.integers(1, 12))
def test_round_robin_matches_reference(pool, req, k):
    table, model = pool
    high, rc, rm = req
    order = sorted(model)
    last = -1
    for _ in range(k):
        cands = candidates(model, NOW, high, rc, rm)
        slot = table.select(RR, high, rc, rm, 0.0, NOW, True)
        if not cands:
            assert slot == -1
            return
        # the first candidate after the last pick, in slot order, wrapping
        after = [s for s in order if s > last and s in cands]
        expect = after[0] if after else min(cands)
        assert slot == expect
        model[slot].active += 1
        model[slot].res_cpu += rc
        model[slot].res_mem += rm
        last = slot


@pytest.mark.parametrize("code", [RAND, P2C, PEWMA])
@settings(max_examples=80, deadline=None)
@given(pool=pools(), req=requests)
def test_random_kernels_choose_eligible(code, pool, req):
    table, model = pool
    high, rc, rm = req
    cands = candidates(model, NOW, high, rc, rm)
    for _ in range(5):
        slot = table.select(code, high, rc, rm, 0.0, NOW)
        if not cands:
            assert slot == -1
            return
        assert slot in cands
        alts = _check_alternatives(table, model, slot, cands)
        if code == P2C and alts:
            # the winner of the two choices is the less loaded one
            assert model[slot].ll_key(NOW) <= model[alts[0]].ll_key(NOW)
        if code != RAND:
            assert len(alts) == (1 if len(cands) > 1 else 0)


@pytest.mark.parametrize("code", list(STRATEGY_CODES.values()))
@settings(max_examples=60, deadline=None)
@given(pool=pools(), req=requests, n=st.integers(1, 40))
def test_reserve_never_exceeds_capacity(code, pool, req, n):
    table, model = pool
    high, rc, rm = req
    for _ in range(n):
        cands = candidates(model, NOW, high, rc, rm)
        slot = table.select(code, high, rc, rm, 0.0, NOW, True)
        assert (slot == -1) == (not cands)
        if slot < 0:
            break
        a = model[slot]
        a.active += 1
        a.res_cpu += rc
        a.res_mem += rm
    for slot, a in model.items():
        row = table.row(slot)
        assert row["active"] == a.active <= a.max_tasks
        assert row["reserved_cpu"] == pytest.approx(a.res_cpu)
        assert row["reserved_memory_mb"] == pytest.approx(a.res_mem)


@settings(max_examples=60, deadline=None)
@given(pool=pools())
def test_health_and_pool_stats_match_reference(pool):
    table, model = pool
    for slot, a in model.items():
        assert table.health(slot) == a.health()
    p = table.pool_stats(NOW)
    assert p["total_agents"] == len(model)
    assert p["tasks_in_progress"] == sum(a.active for a in model.values())
    assert p["total_task_slots"] == sum(a.max_tasks for a in model.values())
    assert p["active_agents"] == sum(1 for a in model.values() if a.active > 0)
    assert p["idle_agents"] == sum(1 for a in model.values() if a.active == 0)
    for code, name in enumerate(("healthy", "degraded", "unhealthy", "offline")):
        assert p[f"{name}_agents"] == sum(1 for a in model.values() if a.health() == code)
    assert p["ejected_agents"] == sum(
        1 for a in model.values() if a.ejected_until is not None and a.ejected_until > NOW)
    cpus = [a.cpu for a in model.values() if a.cpu is not None]
    assert p["cpu_reporting_agents"] == len(cpus)
    assert p["cpu_percent_sum"] == pytest.approx(math.fsum(cpus))


# -- distributions -------------------------------------------------------------


def _pool(n, max_tasks=10, seed=7):
    t = AgentTable(max(n, 1))
    t.seed(seed)
    for i in range(n):
        t.add(f"a{i}", max_tasks=max_tasks)
    return t


@pytest.mark.parametrize("code", [LL, W, PRIO])
def test_ties_are_broken_at_random(code):
    # an idle pool: every agent ties; LiteLLM's least-busy sends all of these
    # to the first deployment
    t = _pool(10)
    picks = Counter(t.select(code) for _ in range(5000))
    assert set(picks) == set(range(10))
    assert max(picks.values()) < 650 and min(picks.values()) > 350


@pytest.mark.parametrize("code", list(STRATEGY_CODES.values()))
def test_no_herding(code):
    # 500 reservations over 10 agents, nothing released: load counts at once
    t = _pool(10, max_tasks=100)
    for _ in range(500):
        assert t.select(code, reserve=True) >= 0
    loads = [t.active(s) for s in range(10)]
    assert sum(loads) == 500
    if code in (RAND,):
        assert max(loads) < 80          # uniform random: binomial(500, 0.1) spread
    else:
        assert max(loads) - min(loads) <= 6


def test_weighted_traffic_follows_weights():
    t = AgentTable(4)
    t.seed(3)
    for i, w in enumerate((1.0, 2.0, 3.0, 4.0)):
        t.add(f"w{i}", max_tasks=1000, weight=w)
    for _ in range(1000):
        t.select(W, reserve=True)
    loads = [t.active(s) for s in range(4)]
    for i, w in enumerate((1, 2, 3, 4)):
        assert loads[i] == pytest.approx(100 * w, abs=3)


def test_random_is_uniform_over_eligible():
    t = _pool(8)
    t.set_offline(t.slot("a3"))
    t.eject(t.slot("a5"), NOW + 10)
    t.set_task_count(t.slot("a6"), 10)   # full
    picks = Counter(t.select(RAND, now=NOW) for _ in range(5000))
    assert set(picks) == {0, 1, 2, 4, 7}
    for c in picks.values():
        assert 850 < c < 1150


def test_sampling_falls_back_to_exact_when_few_are_eligible():
    # 1 of 500 eligible: rejection sampling gives up; the exact path finds it
    t = _pool(500, max_tasks=1)
    for s in range(500):
        if s != 321:
            t.set_task_count(s, 1)
    for code in (RAND, P2C, PEWMA):
        assert t.select(code) == 321
    t.set_task_count(321, 1)
    for code in STRATEGY_CODES.values():
        assert t.select(code) == -1


def test_power_of_two_max_load_beats_random():
    # 10,000 balls into 10,000 bins: one choice gives a max load of about
    # ln n / ln ln n (~7 here), two choices about ln ln n / ln 2 + O(1) (~3).
    n = 10_000
    maxima = {}
    for code in (P2C, RAND):
        t = _pool(n, max_tasks=1000, seed=11)
        for _ in range(n):
            t.select(code, reserve=True)
        maxima[code] = max(t.active(s) for s in range(n))
    bound = math.log(math.log(n)) / math.log(2)   # 3.17
    assert maxima[P2C] <= math.ceil(bound) + 1
    assert maxima[RAND] >= 5
    assert maxima[P2C] < maxima[RAND]


def test_peak_ewma_prefers_fast_agents_and_is_peak_sensitive():
    t = _pool(2, max_tasks=100)
    t.record_completion(0, 0.010, True, 1.0)
    t.record_completion(1, 0.100, True, 1.0)
    picks = Counter(t.select(PEWMA) for _ in range(200))
    assert picks == Counter({0: 200})     # 2 agents: both are always the choices
    # one slow response makes agent 0 look slow at once (peak), ...
    t.record_completion(0, 1.0, True, 2.0)
    assert t.row(0)["latency_ewma_s"] == 1.0
    assert t.select(PEWMA) == 1
    # ... and it decays back as fast responses come in over time
    for k in range(1, 60):
        t.record_completion(0, 0.010, True, 2.0 + k)
    assert t.row(0)["latency_ewma_s"] < 0.05
    # cost = latency x (active + 1): load moves traffic off the fast agent
    t.set_task_count(0, 99)
    assert t.select(PEWMA) == 1


def test_round_robin_is_fair_when_agents_come_and_go():
    t = _pool(4)
    seen = [t.agent_id(t.select(RR)) for _ in range(4)]
    assert sorted(seen) == ["a0", "a1", "a2", "a3"]
    t.remove("a1")
    t.add("b")            # reuses a1's slot
    counts = Counter(t.agent_id(t.select(RR)) for _ in range(400))
    assert counts == Counter({"a0": 100, "a2": 100, "a3": 100, "b": 100})


def test_high_priority_health_rule():
    t = _pool(3)
    t.set_usage(0, 75.0, 0.0, 0.0, 0.0, 1)     # DEGRADED
    t.set_usage(1, 90.0, 0.0, 0.0, 0.0, 1)     # UNHEALTHY
    t.set_usage(2, 0.0, 95.0, 0.0, 0.0, 2)     # UNHEALTHY (memory)
    for code in STRATEGY_CODES.values():
        # none HEALTHY: high priority falls back to any eligible
        assert t.select(code, True) in (0, 1, 2)
    t.set_usage(2, 10.0, 10.0, 0.0, 0.0, 3)    # now HEALTHY
    for code in STRATEGY_CODES.values():
        for _ in range(20):
            assert t.select(code, True) == 2
    # HEALTHY but full does not count: fall back again
    t.set_task_count(2, 10)
    for code in STRATEGY_CODES.values():
        assert t.select(code, True) in (0, 1)


def test_resources_fit():
    t = AgentTable(2)
    a = t.add("a", max_tasks=10, memory_mb=1000.0)
    b = t.add("b", max_tasks=10)
    t.set_usage(a, 50.0, 50.0, 0.0, 0.0, 3)      # 500 MB used
    t.set_usage(b, 0.0, 0.0, 0.0, 0.0, 3)
    # b has no declared memory: not checked for memory, but cpu is
    assert t.select(LL, False, 0.0, 400.0, 0.0, 0.0, True) == b
    assert t.reserve(a, 0.0, 400.0)          # a: 500 + 400 of 1000
    assert not t.reserve(a, 0.0, 200.0)      # would be 1100
    assert t.select(LL, False, 60.0) == b    # a: 50 % used + 60 > 100
    assert t.reserve(b, 60.0) and not t.reserve(b, 50.0)
    t.release(b, 60.0)
    assert t.reserve(b, 50.0)


def test_stale_offline_and_restore():
    t = _pool(3)
    t.set_usage(0, 10.0, 10.0, 0.0, 1.0, 3)
    t.set_usage(1, 10.0, 10.0, 0.0, 20.0, 3)
    # slot 2 never reports: never judged stale
    assert t.mark_stale(31.5, 30.0) == [0]
    assert t.health(0) == 3 and t.health(1) == HEALTHY and t.health(2) == HEALTHY
    assert t.mark_stale(31.5, 30.0) == []        # reported once, not again
    assert t.select(LL, now=31.5) in (1, 2)
    t.set_usage(0, 10.0, 10.0, 0.0, 32.0, 1)      # reports again: back
    assert t.health(0) == HEALTHY
    t.set_offline(1)
    assert t.health(1) == 3
    t.restore(1, 40.0)
    assert t.health(1) == HEALTHY


def test_ejection_expires():
    t = _pool(1)
    assert t.eject(0, 10.0) == 1
    assert t.select(LL, now=5.0) == -1
    assert t.select(LL, now=10.0) == 0       # ejected_until is exclusive
    assert t.unexpire_ejections(10.0) == [0]
    assert t.row(0)["ejected_until"] is None


def test_slots_are_reused_and_ids_checked():
    t = AgentTable(2)
    assert t.add("a") == 0 and t.add("b") == 1
    with pytest.raises(ValueError, match="full"):
        t.add("c")
    with pytest.raises(ValueError, match="'a'"):
        t.add("a")
    assert t.remove("a") == 0
    assert t.add("c") == 0 and t.agent_id(0) == "c"
    with pytest.raises(KeyError, match="'zzz'"):
        t.slot("zzz")
    with pytest.raises(KeyError):
        t.remove("a")
    with pytest.raises(TypeError, match="hashable"):
        t.add(["x"])


def test_table_grows_past_its_first_allocation():
    t = AgentTable(1000)
    for i in range(1000):
        t.add(i, max_tasks=1)
    for _ in range(1000):
        assert t.select(LL, reserve=True) >= 0
    assert t.select(LL) == -1
    assert t.pool_stats(0.0)["tasks_in_progress"] == 1000


def test_bad_input():
    t = _pool(1)
    with pytest.raises(ValueError, match="strategy"):
        t.select(len(STRATEGY_CODES))
    with pytest.raises(ValueError, match="strategy"):
        t.select(-1)
    with pytest.raises(ValueError, match="cpu"):
        t.select(LL, False, -1.0)
    with pytest.raises(ValueError, match="memory_mb"):
        t.select(LL, False, 0.0, math.nan)
    with pytest.raises(ValueError, match="now"):
        t.select(LL, now=math.inf)
    with pytest.raises(ValueError, match="cpu"):
        t.set_usage(0, math.nan, 0.0, 0.0, 0.0, 1)
    with pytest.raises(ValueError, match="memory"):
        t.set_usage(0, 0.0, -5.0, 0.0, 0.0, 2)
    with pytest.raises(ValueError, match="network"):
        t.set_usage(0, 0.0, 0.0, 101.0, 0.0, 4)
    with pytest.raises(ValueError, match="waiting"):
        t.set_usage(0, 0.0, 0.0, 0.0, 0.0, 128, -1.0)
    with pytest.raises(ValueError, match="running"):
        t.set_usage(0, 0.0, 0.0, 0.0, 0.0, 256, 0.0, math.inf)
    with pytest.raises(ValueError, match="kv_cache"):
        t.set_usage(0, 0.0, 0.0, 0.0, 0.0, 512, 0.0, 0.0, 100.5)
    with pytest.raises(ValueError, match="concurrency"):
        t.add("neg", concurrency=-1.0)
    with pytest.raises(ValueError, match="picker"):
        t.set_profile(picker="best")
    with pytest.raises(ValueError, match="queue"):
        t.set_profile(queue=math.nan)
    with pytest.raises(ValueError, match="report_decay_s"):
        t.set_report_decay(0.0)
    # a value that is not given is not checked, nor stored
    t.set_usage(0, math.nan, 20.0, 0.0, 0.0, 2)
    assert t.row(0)["cpu"] is None and t.row(0)["memory"] == 20.0
    with pytest.raises(ValueError, match="max_tasks"):
        t.add("z", max_tasks=0)
    with pytest.raises(ValueError, match="weight"):
        t.add("z", weight=0.0)
    with pytest.raises(ValueError, match="weight"):
        t.add("z", weight=math.nan)
    with pytest.raises(ValueError, match="count"):
        t.set_task_count(0, 11)
    with pytest.raises(ValueError, match="no active task"):
        t.release(0)
    with pytest.raises(KeyError, match="slot 5"):
        t.active(5)
    with pytest.raises(ValueError, match="capacity"):
        AgentTable(0)
    with pytest.raises(TypeError, match="capacity"):
        AgentTable(2.5)
    with pytest.raises(ValueError, match="cpu_warning"):
        t.set_thresholds(90.0, 80.0, 75.0, 90.0)
    assert "z" not in t and len(t) == 1


def test_same_seed_same_choices():
    a, b = _pool(50, seed=5), _pool(50, seed=5)
    for code in (RAND, P2C, LL):
        assert [a.select(code, reserve=True) for _ in range(100)] == \
            [b.select(code, reserve=True) for _ in range(100)]


def test_docstring_examples_of_the_compiled_module():
    # pytest's --doctest-modules does not look inside extension modules
    import doctest

    import arbiter_core._select as mod

    result = doctest.testmod(mod)
    assert result.attempted >= 3 and result.failed == 0
