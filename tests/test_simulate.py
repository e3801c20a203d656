import math

import numpy as np
import pytest

from arbiter_core.scenario import (
    ScenarioError,
    default_scenario,
    load_scenario,
    scenario_from_dict,
)
from arbiter_core.simulate import (
    AgentService,
    SimulationResult,
    best_strategy,
    draw_work,
    jain_index,
    mean_ci,
    run_cases,
    run_simulation,
    seed_list,
    summarize,
    t_quantile_975,
)

SMALL = {
    "duration_s": 15.0,
    "pool": {"groups": [{"name": "a", "count": 4, "max_tasks": 2}]},
    "arrivals": {"rate_per_s": 6.0, "mean_task_s": 1.0},
}
SHARED = {
    "duration_s": 30.0,
    "pool": {"groups": [
        {"name": "big", "count": 2, "max_tasks": 8, "service": "shared", "parallelism": 4,
         "speed": 2.0},
        {"name": "small", "count": 4, "max_tasks": 4, "service": "shared", "parallelism": 1,
         "speed": 0.5},
    ]},
    "arrivals": {"rate_per_s": 6.0, "mean_task_s": 1.0, "task_distribution": "pareto",
                 "pareto_shape": 2.2},
}


def assert_littles_law(r: SimulationResult) -> None:
    """Little's law, L = lambda W, over the whole run: the time-average number
    in system (integrated over the event times) equals the arrival rate times
    the mean sojourn (summed per request at its outcome).  With an empty system
    at both ends the identity is exact, so any lost or double-counted request,
    or a clock that jumps wrongly, breaks it."""
    assert r.mean_in_system == pytest.approx(r.arrival_rate_per_s * r.sojourn_mean_s,
                                             rel=1e-9, abs=1e-12)
    assert r.completed + r.timed_out + r.rejected + r.failed == r.submitted


def test_jain_index():
    assert jain_index([1, 1, 1, 1]) == 1.0
    assert jain_index([1, 0, 0, 0]) == pytest.approx(0.25)
    assert jain_index([]) == 1.0
    assert jain_index([0, 0]) == 1.0


def test_default_scenario_is_the_documented_pool():
    sc = default_scenario()
    assert sc.agent_count == 28
    assert all(g.service == "shared" for g in sc.groups)
    assert len({g.speed for g in sc.groups}) == 3
    assert {f.kind for f in sc.faults} == {"slow", "silent", "failing"}
    assert sc.rate_limit_per_s is not None
    d = sc.to_dict()
    assert d["agent_count"] == 28 and d["total_slots"] == sum(
        g.count * g.max_tasks for g in sc.groups)


def test_default_scenario_tells_strategies_apart():
    # the demo's promise: the worst strategy's mean end-to-end time is at
    # least 1.5x the best's, on every seed (two seeds here, five in the demo)
    runs = run_cases(default_scenario(), ["random", "round_robin", "priority_based",
                                          "least_loaded"], seed_list(0, 2))
    for k in range(2):
        means = {n: rs[k].e2e_mean_s for n, rs in runs.items()}
        assert max(means.values()) >= 1.5 * min(means.values()), means
        for rs in runs.values():
            assert_littles_law(rs[k])


def test_every_request_is_accounted_for():
    sc = scenario_from_dict(SMALL)
    r = run_simulation(sc, "least_loaded", seed=1)
    assert r.submitted > 50
    assert_littles_law(r)
    assert r.simulated_s >= sc.duration_s
    assert 0 < r.wait_mean_s <= r.e2e_mean_s or r.wait_mean_s == 0
    assert r.e2e_mean_s > 0


def test_a_silent_agent_is_failed_over_and_its_tasks_finish_elsewhere():
    data = dict(SMALL, stale_after_s=3.0,
                faults=[{"kind": "silent", "agent": "a-0", "at_s": 2.0}])
    r = run_simulation(scenario_from_dict(data), "round_robin", seed=2)
    assert r.failovers >= 1
    assert_littles_law(r)
    assert r.failed == 0    # moved work completes: nothing lost with the agent


def test_a_failing_agent_is_ejected():
    data = dict(SMALL, faults=[{"kind": "failing", "agent": "a-1", "at_s": 0.0}])
    r = run_simulation(scenario_from_dict(data), "round_robin", seed=3)
    assert r.ejections >= 1
    assert r.failed >= 5
    assert_littles_law(r)


def test_overload_times_out_and_queues():
    data = dict(SMALL, arrivals={"rate_per_s": 40.0, "mean_task_s": 2.0,
                                 "priorities": [{"priority": "low", "share": 1,
                                                 "timeout_s": 1.0}]})
    r = run_simulation(scenario_from_dict(data), "least_loaded", seed=4)
    assert r.timed_out > 0 and r.peak_queue > 0
    assert_littles_law(r)
    assert not math.isnan(r.wait_p99_s)


@pytest.mark.parametrize("strategy", ["round_robin", "least_loaded", "weighted", "random",
                                      "priority_based", "power_of_two", "peak_ewma"])
def test_shared_pool_with_faults_obeys_littles_law(strategy):
    data = dict(SHARED, stale_after_s=3.0, faults=[
        {"kind": "slow", "agent": "big-0", "at_s": 5.0, "factor": 3.0},
        {"kind": "silent", "agent": "small-1", "at_s": 8.0},
        {"kind": "failing", "agent": "small-2", "at_s": 1.0, "failure_rate": 0.5}])
    r = run_simulation(scenario_from_dict(data), strategy, seed=5)
    assert r.submitted > 100 and r.completed > 0
    assert_littles_law(r)


def test_runs_are_deterministic_and_strategies_share_the_workload():
    sc = scenario_from_dict(SHARED)
    a = run_simulation(sc, "power_of_two", seed=9).table_row()
    b = run_simulation(sc, "power_of_two", seed=9).table_row()
    a.pop("wall_s")
    b.pop("wall_s")
    assert a == b
    other = run_simulation(sc, "random", seed=9)
    assert other.submitted == a["submitted"]


# -- service models -------------------------------------------------------------------


def test_processor_sharing_by_hand():
    s = AgentService(speed=1.0, parallelism=1)
    s.add("a", 3.0, now=0.0)
    assert s.next_completion() == pytest.approx(3.0)
    s.add("b", 1.0, now=1.0)           # a has 2 left; both at half speed from t=1
    assert s.next_completion() == pytest.approx(3.0)   # b: 1 unit at 0.5/s
    assert s.pop(3.0) == "b"
    assert s.next_completion() == pytest.approx(4.0)   # a: 1 unit left, alone
    s.set_slowdown(2.0, now=3.5)       # half speed: 0.5 left takes 1 s
    assert s.next_completion() == pytest.approx(4.5)
    assert s.pop(4.5) == "a" and s.n == 0
    assert s.busy_area == pytest.approx(2 * 2.0 + 1 * 1.0 + 1 * 1.5)


def test_limited_processor_sharing_and_removal():
    s = AgentService(speed=2.0, parallelism=2)
    for k in range(2):
        s.add(f"t{k}", 4.0, now=0.0)   # 2 <= p: full speed, 2 s each
    assert s.next_completion() == pytest.approx(2.0)
    s.add("t2", 4.0, now=1.0)          # 3 > p: each at 2 * 2/3 per s
    # t0/t1 have 2 units left at 4/3 per s -> 1.5 s
    assert s.next_completion() == pytest.approx(2.5)
    s.remove("t0", now=1.5)            # moved away: back to full speed
    # t1: 2 - 0.5*4/3 = 4/3 left at 2/s -> 2/3 s
    assert s.next_completion() == pytest.approx(1.5 + 2 / 3)
    assert s.pop(1.5 + 2 / 3) == "t1"
    s.stop(now=2.5)                    # a crash: nothing finishes
    assert s.next_completion() is None and s.n == 1
    with pytest.raises(ValueError, match="already runs"):
        s.add("t2", 1.0, now=2.5)


def test_slot_model_is_parallelism_max_tasks():
    # the slot model is LPS with p = max_tasks: a task's time never depends on load
    s = AgentService(speed=0.5, parallelism=4)
    for k in range(4):
        s.add(str(k), 1.0 + k, now=0.0)
    ends = []
    while s.n:
        t = s.next_completion()
        ends.append((s.pop(t), t))
    assert ends == [(str(k), pytest.approx(2.0 * (1.0 + k))) for k in range(4)]


@pytest.mark.parametrize("dist", ["lognormal", "exponential", "deterministic", "pareto"])
def test_work_distributions_have_the_scenario_mean(dist):
    sc = scenario_from_dict({**SMALL, "arrivals": {
        "rate_per_s": 1.0, "mean_task_s": 2.5, "task_distribution": dist,
        "pareto_shape": 3.5, "task_sigma": 0.7}})
    w = draw_work(sc.arrivals, np.random.default_rng(1), 400_000)
    assert (w > 0).all()
    assert w.mean() == pytest.approx(2.5, rel=0.01)
    if dist == "exponential":
        assert w.std() == pytest.approx(2.5, rel=0.02)
    elif dist == "deterministic":
        assert w.std() == 0
    elif dist == "pareto":
        assert w.min() == pytest.approx(2.5 * 2.5 / 3.5, rel=1e-3)   # x_m = mean (a-1)/a
    else:
        assert np.log(w).std() == pytest.approx(0.7, rel=0.01)


# -- scenario fields ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"pool": {"groups": [{"count": 1, "max_tasks": 2, "service": "batch"}]}},
         "pool.groups[0].service: must be one of slots, shared, llm, got 'batch'"),
        ({"pool": {"groups": [{"count": 1, "max_tasks": 2, "service": "shared",
                               "parallelism": 3}]}},
         "pool.groups[0].parallelism: must be an integer >= 1 and <= 2, got 3"),
        ({"pool": {"groups": [{"count": 1, "max_tasks": 2, "parallelism": 1}]}},
         "pool.groups[0].parallelism: only for service = \"shared\" or \"llm\""),
        ({"arrivals": {"rate_per_s": 1, "mean_task_s": 1, "task_distribution": "zipf"}},
         "arrivals.task_distribution: must be one of lognormal, exponential, "
         "deterministic, pareto, got 'zipf'"),
        ({"arrivals": {"rate_per_s": 1, "mean_task_s": 1, "pareto_shape": 1.0}},
         "arrivals.pareto_shape: must be > 1"),
        ({"warmup_s": 15.0}, "warmup_s: must be < duration_s (15), got 15"),
        ({"usage_reports": "no"}, "usage_reports: must be true or false, got 'no'"),
        ({"duration_s": 86_400.0, "arrivals": {"rate_per_s": 1e6, "mean_task_s": 1}},
         "arrivals.rate_per_s: about 8.64e+10 requests"),
    ],
)
def test_new_scenario_fields_are_validated_with_their_path(patch, message):
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict({**SMALL, **patch})
    assert message in str(exc.value)


def test_shared_group_defaults():
    sc = scenario_from_dict(SHARED)
    big, small = sc.groups
    assert (big.effective_parallelism, big.effective_weight) == (4, 8.0)
    assert (small.effective_parallelism, small.effective_weight) == (1, 0.5)
    slots = scenario_from_dict(SMALL).groups[0]
    assert (slots.service, slots.effective_parallelism, slots.effective_weight) == (
        "slots", 2, 2.0)


def test_scenario_file_round_trip(tmp_path):
    f = tmp_path / "s.json"
    import json

    f.write_text(json.dumps(SHARED))
    assert load_scenario(f) == scenario_from_dict(SHARED, name="s")
    with pytest.raises(ScenarioError, match="pool: missing"):
        scenario_from_dict({"duration_s": 1})


# -- replications and statistics ---------------------------------------------------------


def _t_cdf(x: float, df: int) -> float:
    # Student's t CDF by integrating its density (Simpson, fine grid): an
    # independent check of the table and the expansion
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    grid = np.linspace(0.0, x, 200_001)
    pdf = c * (1 + grid ** 2 / df) ** (-(df + 1) / 2)
    h = grid[1] - grid[0]
    integral = h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())
    return 0.5 + float(integral)


@pytest.mark.parametrize("df", [1, 2, 4, 9, 29, 30, 31, 60, 1000])
def test_t_quantile_is_the_975_quantile(df):
    assert _t_cdf(t_quantile_975(df), df) == pytest.approx(0.975, abs=2e-7)


def test_mean_ci():
    assert mean_ci([1.0]) is None
    m, lo, hi = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5
    half = t_quantile_975(3) * math.sqrt(np.var([1, 2, 3, 4], ddof=1) / 4)
    assert (lo, hi) == pytest.approx((2.5 - half, 2.5 + half))


def _fake(name: str, seed: int, e2e: float, completed: int = 100) -> SimulationResult:
    return SimulationResult(strategy=name, seed=seed, submitted=100, completed=completed,
                            e2e_mean_s=e2e)


def test_summarize_means_and_intervals():
    runs = [run_simulation(scenario_from_dict(SMALL), "random", seed=s) for s in (1, 2, 3)]
    row = summarize(runs)
    assert row["submitted"] == pytest.approx(np.mean([r.submitted for r in runs]), abs=1e-6)
    lo, hi = row["ci95"]["e2e_mean_s"]
    assert lo < row["e2e_mean_s"] < hi
    m, lo2, hi2 = mean_ci([r.e2e_mean_s for r in runs])
    assert (lo, hi) == pytest.approx((lo2, hi2), abs=1e-6)
    single = summarize(runs[:1])
    assert "ci95" not in single and single == runs[0].table_row()


def test_best_strategy_names_only_a_significant_winner():
    # a is better than b on every seed by about 0.5: significant (paired)
    clear = {"a": [_fake("a", s, 1.0 + 0.1 * s) for s in range(4)],
             "b": [_fake("b", s, 1.5 + 0.1 * s + 0.01 * (-1) ** s) for s in range(4)],
             "c": [_fake("c", s, 3.0) for s in range(4)]}
    v = best_strategy(clear)
    assert (v.winner, v.runner_up) == ("a", "b") and v.diff_ci[0] > 0
    assert "best strategy: a" in v.message({"a": 1.15, "b": 1.65})
    # a and b swap places from seed to seed: no winner, said plainly
    noisy = {"a": [_fake("a", s, 1.0 + (0.3 if s % 2 else -0.3)) for s in range(4)],
             "b": [_fake("b", s, 1.05 + (-0.3 if s % 2 else 0.3)) for s in range(4)]}
    v = best_strategy(noisy)
    assert v.winner is None and v.leader == "a"
    assert "none significantly better" in v.message({"a": 1.0, "b": 1.05})
    # one seed: never a winner
    v = best_strategy({k: rs[:1] for k, rs in clear.items()})
    assert v.winner is None and "not decided on one seed" in v.message(
        {"a": 1.0, "b": 1.5, "c": 3.0})
    # a lower time bought by completing fewer requests does not win
    dropper = {"a": [_fake("a", s, 0.5, completed=80 + s) for s in range(4)],
               "b": [_fake("b", s, 1.0 + 0.01 * s) for s in range(4)],
               "c": [_fake("c", s, 2.0 + 0.01 * s) for s in range(4)]}
    v = best_strategy(dropper)
    assert v.excluded == ("a",) and v.winner == "b"


def test_run_cases_is_identical_in_parallel():
    sc = scenario_from_dict(SHARED)
    one = run_cases(sc, ["least_loaded", "random"], [0, 1], jobs=1)
    two = run_cases(sc, ["least_loaded", "random"], [0, 1], jobs=2)
    assert list(one) == list(two) == ["least_loaded", "random"]
    for name in one:
        for a, b in zip(one[name], two[name]):
            ra, rb = a.table_row(), b.table_row()
            ra.pop("wall_s")
            rb.pop("wall_s")
            assert ra == rb and a.seed == b.seed
            assert a.e2e_samples == b.e2e_samples


def test_shared_with_parallelism_max_tasks_is_the_slot_model():
    slots = scenario_from_dict(SMALL)
    shared = scenario_from_dict({**SMALL, "pool": {"groups": [
        {"name": "a", "count": 4, "max_tasks": 2, "service": "shared", "parallelism": 2}]}})
    a = run_simulation(slots, "least_loaded", seed=7).table_row()
    b = run_simulation(shared, "least_loaded", seed=7).table_row()
    a.pop("wall_s")
    b.pop("wall_s")
    assert a == b


def test_identical_single_slot_agents_make_every_strategy_equal():
    # work-conserving routing onto identical single-slot agents is one M/M/c
    # sample path whatever picks the agent: the results must be identical
    sc = scenario_from_dict({"duration_s": 100.0, "pool": {"groups": [
        {"name": "a", "count": 6, "max_tasks": 1}]}, "arrivals": {
        "rate_per_s": 5.0, "mean_task_s": 1.0,
        "priorities": [{"priority": "medium", "share": 1, "timeout_s": 1000.0}]}})
    runs = run_cases(sc, ["round_robin", "least_loaded", "weighted", "random",
                          "priority_based", "power_of_two", "peak_ewma"], [0])
    seen = {(r[0].completed, r[0].wait_mean_s, r[0].e2e_mean_s, r[0].e2e_p99_s)
            for r in runs.values()}
    assert len(seen) == 1


def test_trace_rows_are_sorted_defaulted_and_carry_tenants(tmp_path):
    from arbiter_core.simulate import load_trace

    f = tmp_path / "t.csv"
    f.write_text("\ufeffarrival_s,work_s,priority,timeout_s,tenant\n"
                 "2.0,1.0,high,,acme\n"
                 "0.5,2.0,,7,\n"
                 "0.5,3.0,LOW,,globex\n")
    tr = load_trace(f)
    assert tr.arrival_s.tolist() == [0.5, 0.5, 2.0]       # stable: file order on ties
    assert tr.work_s.tolist() == [2.0, 3.0, 1.0]
    sc = scenario_from_dict({**SMALL, "arrivals": {"rate_per_s": 1, "mean_task_s": 1,
                                                   "priorities": [
                                                       {"priority": "high", "share": 1,
                                                        "timeout_s": 4.0},
                                                       {"priority": "low", "share": 1,
                                                        "timeout_s": 9.0}]}})
    w = tr.to_workload(sc, np.random.default_rng(0))
    # medium by default; timeouts: given 7, the scenario's low 9 and high 4
    assert w.priority.tolist() == [1, 0, 2]
    assert w.timeout_s.tolist() == [7.0, 9.0, 4.0]
    assert w.tenant == ("", "globex", "acme")
    assert w.duration_s == 2.0
    r = run_simulation(sc, "least_loaded", seed=0, trace=tr)
    assert r.submitted == 3 and r.completed == 3
    assert_littles_law(r)
