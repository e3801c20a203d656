"""The simulator's LLM-serving model (issue 21): prefix caches, time to first
token, and replay of the public LLM traces in their own formats.

The hand-computed cases use an agent that prefills 1,000 tokens/s and
decodes 10 tokens/s per request at full speed, with 100-token blocks.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbiter_core.scenario import ScenarioError, load_scenario, scenario_from_dict
from arbiter_core.simulate import (
    AgentService,
    PrefixCache,
    Trace,
    TraceError,
    load_trace,
    prefix_hit_bound,
    run_simulation,
    summarize,
)
from test_simulate import SMALL, assert_littles_law

ROOT = Path(__file__).resolve().parent.parent
MOONCAKE = ROOT / "examples" / "traces" / "mooncake_synthetic.jsonl.gz"


def llm_scenario(count: int = 1, parallelism: int = 1, max_tasks: int = 4,
                 cache_blocks: int = 1000, **top: object) -> object:
    return scenario_from_dict({
        "duration_s": 100.0, "block_tokens": 100, "usage_reports": False,
        "pool": {"groups": [{"name": "g", "count": count, "max_tasks": max_tasks,
                             "service": "llm", "parallelism": parallelism,
                             "prefill_tokens_per_s": 1000.0, "decode_tokens_per_s": 10.0,
                             "cache_blocks": cache_blocks}]},
        "arrivals": {"priorities": [{"priority": "medium", "share": 1, "timeout_s": 1e4}]},
        "trace": "unused.jsonl", **top})


def mooncake(tmp_path: Path, rows: list[dict[str, object]], name: str = "t.jsonl") -> Trace:
    f = tmp_path / name
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_trace(f)


def req(ms: float, prompt: int, output: int, hashes: list[int]) -> dict[str, object]:
    return {"timestamp": ms, "input_length": prompt, "output_length": output,
            "hash_ids": hashes}


# -- hand-computed cases --------------------------------------------------------------


def test_a_cold_and_a_warm_request_alone(tmp_path):
    # cold: 1,000 prompt tokens prefilled in 1 s, then 20 tokens in 2 s;
    # warm (10 s later): its first 6 blocks are cached, 400 tokens in 0.4 s
    tr = mooncake(tmp_path, [req(0, 1000, 20, list(range(10))),
                             req(10_000, 1000, 20, [*range(6), 11, 12, 13, 14])])
    r = run_simulation(llm_scenario(), "least_loaded", seed=0, trace=tr)
    assert r.completed == 2
    assert r.ttft_mean_s == pytest.approx((1.0 + 0.4) / 2)
    assert r.ttft_p50_s == pytest.approx(0.7)
    assert r.e2e_mean_s == pytest.approx((3.0 + 2.4) / 2)
    assert r.cache_hit_rate == pytest.approx(600 / 2000)
    assert r.tokens_per_s == pytest.approx(40 / r.simulated_s)
    assert r.wait_mean_s == 0.0
    assert_littles_law(r)


def test_a_partial_last_block_and_a_fully_cached_prompt(tmp_path):
    # 950 tokens in 10 blocks (the last one half full): all cached the
    # second time, so its first token comes at once
    tr = mooncake(tmp_path, [req(0, 950, 10, list(range(10))),
                             req(5_000, 950, 10, list(range(10)))])
    r = run_simulation(llm_scenario(), "round_robin", seed=0, trace=tr)
    assert r.ttft_mean_s == pytest.approx((0.95 + 0.0) / 2)
    assert r.cache_hit_rate == pytest.approx(950 / 1900)


def test_sharing_slows_prefill_and_a_prefix_is_cached_only_once_prefilled(tmp_path):
    # one agent, parallelism 1: the second request arrives at 0.5 s, while
    # the first still prefills, so it finds nothing cached; from then on
    # both run at half speed: the first's remaining 0.5 s of prefill takes
    # 1 s (first token at 1.5 s), the second's 1 s of prefill has had 0.5 by
    # then and ends at 2.5 s (2.0 s after it arrived)
    tr = mooncake(tmp_path, [req(0, 1000, 20, list(range(10))),
                             req(500, 1000, 20, list(range(10)))])
    r = run_simulation(llm_scenario(), "least_loaded", seed=0, trace=tr)
    assert r.cache_hit_rate == 0.0
    assert r.ttft_mean_s == pytest.approx((1.5 + 2.0) / 2)
    assert r.ttft_p99_s == pytest.approx(1.5 + 0.99 * 0.5)


def test_two_agents_and_a_shared_prefix(tmp_path):
    # one slot each: the first two requests (same 5-block system prompt,
    # different rest) land on different agents and are both cold; by 20 s
    # both agents hold the shared prefix, so the third finds 500 of its
    # 1,000 tokens wherever it lands
    shared = list(range(5))
    tr = mooncake(tmp_path, [req(0, 1000, 100, [*shared, 10, 11, 12, 13, 14]),
                             req(500, 1000, 100, [*shared, 20, 21, 22, 23, 24]),
                             req(20_000, 1000, 100, [*shared, 30, 31, 32, 33, 34])])
    for strategy in ("round_robin", "least_loaded", "random"):
        r = run_simulation(llm_scenario(count=2, max_tasks=1), strategy, seed=1, trace=tr)
        assert r.completed == 3 and r.wait_mean_s == 0.0
        assert r.cache_hit_rate == pytest.approx(500 / 3000)
        assert r.ttft_mean_s == pytest.approx((1.0 + 1.0 + 0.5) / 3)


def test_a_small_cache_evicts_the_least_recently_used(tmp_path):
    # 10 blocks of cache: A (blocks 0-9) then B (100-109) evicts all of A
    tr = mooncake(tmp_path, [req(0, 1000, 1, list(range(10))),
                             req(5_000, 1000, 1, list(range(100, 110))),
                             req(10_000, 1000, 1, list(range(10)))])
    r = run_simulation(llm_scenario(cache_blocks=10), "least_loaded", seed=0, trace=tr)
    assert r.cache_hit_rate == 0.0
    r = run_simulation(llm_scenario(cache_blocks=20), "least_loaded", seed=0, trace=tr)
    assert r.cache_hit_rate == pytest.approx(1000 / 3000)
    r = run_simulation(llm_scenario(cache_blocks=0), "least_loaded", seed=0, trace=tr)
    assert r.cache_hit_rate == 0.0


def test_without_llm_agents_the_llm_fields_are_none():


    r = run_simulation(scenario_from_dict(SMALL), "random", seed=0)
    row = r.table_row()
    for key in ("ttft_mean_s", "ttft_p50_s", "ttft_p99_s", "cache_hit_rate", "tokens_per_s"):
        assert row[key] is None


def test_service_milestones_by_hand():
    seen: list[tuple[str, float]] = []
    s = AgentService(speed=1.0, parallelism=1)
    s.on_milestone = lambda rid, t: seen.append((rid, t))
    s.add("a", 3.0, now=0.0, milestone=1.0)
    s.add("b", 2.0, now=0.5, milestone=0.5)     # both at half speed from 0.5
    s.add("c", 1.0, now=0.5, milestone=0.0)     # at once
    assert seen == [("c", 0.5)]
    s.remove("c", now=0.5)
    assert s.next_completion() == pytest.approx(0.5 + 2 * 2.0)   # b: 2.0 at half speed
    s.advance(10.0)
    # a: 0.5 done at 0.5, 0.5 more at half speed -> 1.5; b: 0.5 at half -> 1.5
    assert sorted(seen[1:]) == [("a", pytest.approx(1.5)), ("b", pytest.approx(1.5))]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0.01, 4), st.floats(0, 1)),
                min_size=1, max_size=8),
       st.integers(1, 3))
def test_service_milestones_match_a_step_simulation(jobs, p):
    """Each milestone's time against a small time-stepped reference."""
    seen: dict[str, float] = {}
    s = AgentService(speed=1.0, parallelism=p)
    s.on_milestone = lambda rid, t: seen.setdefault(rid, t)
    jobs = sorted(jobs)
    events = [(a, k) for k, (a, _, _) in enumerate(jobs)]
    finished: dict[str, float] = {}
    i = 0
    now = 0.0
    while i < len(events) or s.n:
        t_next = s.next_completion()
        if i < len(events) and (t_next is None or events[i][0] <= t_next):
            now, k = events[i]
            s.add(f"j{k}", jobs[k][1], now, milestone=jobs[k][1] * jobs[k][2])
            i += 1
        else:
            assert t_next is not None
            now = t_next
            finished[s.pop(now)] = now
    # reference: tiny steps of processor sharing
    dt = 1e-3
    left = {k: w for k, (_, w, _) in enumerate(jobs)}
    mark = {k: w * f for k, (_, w, f) in enumerate(jobs)}
    got = dict.fromkeys(left, 0.0)
    ref: dict[int, float] = {}
    t = 0.0
    while len(ref) < len(jobs) and t < 100:
        running = [k for k in left if jobs[k][0] <= t and got[k] < left[k]]
        rate = min(1.0, p / len(running)) if running else 0.0
        for k in running:
            before = got[k]
            got[k] += rate * dt
            if k not in ref and before <= mark[k] <= got[k]:
                ref[k] = t + (mark[k] - before) / rate if rate else t
        for k, (a, _, _) in enumerate(jobs):
            if k not in ref and a <= t + dt and mark[k] == 0.0:
                ref[k] = a
        t += dt
    for k in range(len(jobs)):
        assert seen[f"j{k}"] == pytest.approx(ref[k], abs=0.02 * len(jobs))
        assert seen[f"j{k}"] <= finished[f"j{k}"] + 1e-9


# -- the prefix cache against a model ----------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 8), st.lists(st.lists(st.integers(0, 12), max_size=6), max_size=30))
def test_prefix_cache_matches_an_lru_model(capacity, prompts):
    c = PrefixCache(capacity)
    model: list[int] = []             # least recently used first

    def touch(blocks: list[int]) -> None:
        for h in reversed(blocks):    # the head becomes the most recent
            if h in model:
                model.remove(h)
            model.append(h)

    for prompt in prompts:
        k = 0
        while k < len(prompt) and prompt[k] in model:
            k += 1
        assert c.match(prompt) == k
        touch(prompt[:k])
        evicted = c.store(prompt)
        expected: list[int] = []
        if capacity:
            touch(prompt[:capacity])
            expected = model[:max(0, len(model) - capacity)]
            del model[:len(expected)]
        assert evicted == expected
        assert len(c) == len(model) <= capacity


def test_prefix_cache_rejects_a_bad_capacity():
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="capacity"):
            PrefixCache(bad)  # type: ignore[arg-type]


# -- the upper bound on the shared Mooncake trace -----------------------------------------


def unbounded_hit_rate(trace: Trace, block_tokens: int) -> float:
    """One agent with an unbounded cache serving the requests one after
    another: prompt tokens of the longest cached prefix over all prompt
    tokens (a set, independent of PrefixCache)."""
    tok = trace.tokens
    assert tok is not None
    seen: set[int] = set()
    hit = 0
    for i in range(len(trace)):
        blocks = tok.prefix(i)
        k = 0
        while k < len(blocks) and blocks[k] in seen:
            k += 1
        hit += min(k * block_tokens, int(tok.prompt[i]))
        seen.update(blocks)
    return hit / int(tok.prompt.sum())


def test_upper_bound_on_the_mooncake_trace():
    tr = load_trace(MOONCAKE)
    assert tr.format == "mooncake" and len(tr) == 3993
    bound = unbounded_hit_rate(tr, 512)
    assert 0.64 < bound < 0.66
    assert tr.tokens is not None
    assert prefix_hit_bound(tr.tokens, 512) == pytest.approx(bound, rel=1e-12)
    # the simulator, one agent with a cache holding every block and requests
    # far apart (x1/1000) and fast: every request but those arriving in the
    # same millisecond sees all earlier prefixes, so it nearly reaches the bound
    sc = scenario_from_dict({
        "duration_s": 1.0, "usage_reports": False,
        # a slow trace: few reports and ticks (they are not what is measured)
        "report_interval_s": 1000.0, "tick_interval_s": 1000.0,
        "pool": {"groups": [{"name": "g", "count": 1, "max_tasks": 64, "service": "llm",
                             "parallelism": 64, "prefill_tokens_per_s": 1e9,
                             "decode_tokens_per_s": 1e9, "cache_blocks": 1_000_000}]},
        "arrivals": {"priorities": [{"priority": "medium", "share": 1, "timeout_s": 1e9}]},
        "trace": str(MOONCAKE)})
    r = run_simulation(sc, "least_loaded", seed=0, trace=tr.replay(speed=1e-3))
    assert r.completed == len(tr)
    assert bound - 0.01 < r.cache_hit_rate <= bound + 1e-12


def test_the_llm_prefix_example_offers_085_of_capacity_without_caching():
    sc = load_scenario(ROOT / "examples" / "scenarios" / "llm_prefix.toml")
    assert sc.trace is not None and Path(sc.trace).resolve() == MOONCAKE.resolve()
    tr = load_trace(sc.trace)
    tok = tr.tokens
    assert tok is not None and sc.agent_count == 8
    work = 0.0
    capacity = 0.0
    for g in sc.groups:
        assert g.prefill_tokens_per_s and g.decode_tokens_per_s
        capacity += g.count * g.effective_parallelism * g.speed
        # every agent of the example is the same: the work of the trace on one
        work = float(tok.prompt.sum() / g.prefill_tokens_per_s
                     + tok.output.sum() / g.decode_tokens_per_s)
    load = work / tr.duration_s / capacity
    assert 0.8 <= load <= 0.9


# -- trace formats --------------------------------------------------------------------------


def test_mooncake_rows_sorted_with_their_prefixes(tmp_path):
    tr = mooncake(tmp_path, [req(2000, 30, 3, [7, 8]), req(500, 10, 1, []),
                             {"timestamp": 500, "input_length": 20, "output_length": 0},
                             req(1000, 40, 4, [2**64 - 1])])
    assert tr.format == "mooncake"
    assert tr.arrival_s.tolist() == [0.5, 0.5, 1.0, 2.0]
    tok = tr.tokens
    assert tok is not None
    assert tok.prompt.tolist() == [10, 20, 40, 30]
    assert tok.output.tolist() == [1, 0, 4, 3]
    assert [tok.prefix(i) for i in range(4)] == [[], [], [2**64 - 1], [7, 8]]
    assert np.isnan(tr.work_s).all()
    short = tr.replay(speed=2.0, limit=3)
    assert short.arrival_s.tolist() == [0.25, 0.25, 0.5]
    assert short.tokens is not None and short.tokens.prefix(2) == [2**64 - 1]
    assert len(short) == 3 and short.duration_s == 0.5
    # gzip: the same trace
    gz = tmp_path / "t.jsonl.gz"
    gz.write_bytes(gzip.compress((tmp_path / "t.jsonl").read_bytes()))
    again = load_trace(gz, limit=3, speed=2.0)
    assert again.arrival_s.tolist() == short.arrival_s.tolist()
    assert again.tokens is not None
    assert again.tokens.blocks.tolist() == short.tokens.blocks.tolist()


def test_azure_rows_count_from_the_first_arrival(tmp_path):
    f = tmp_path / "azure.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 "2023-11-16 18:17:04.0319600,3180,8\n"
                 "2023-11-16 18:17:03.9799600,4808,10\n"
                 "2023-11-16 18:18:03.9799600+00:00,100,0\n"
                 "2023-11-16T19:18:04Z,7,1\n")
    tr = load_trace(f)
    assert tr.format == "azure"
    assert tr.arrival_s == pytest.approx([0.0, 0.052, 60.0, 3660.02004])
    assert tr.tokens is not None
    assert tr.tokens.prompt.tolist() == [4808, 3180, 100, 7]
    assert tr.tokens.output.tolist() == [10, 8, 0, 1]
    assert tr.tokens.blocks.size == 0                       # no prefix information
    sc = llm_scenario(count=2)
    r = run_simulation(sc, "least_loaded", seed=0, trace=tr)
    assert r.completed == 4 and r.cache_hit_rate == 0.0
    assert_littles_law(r)


@pytest.mark.parametrize("content, suffix, message", [
    ('{"timestamp": 0, "input_length": 10, "output_length": 1}\n'
     '{"timestamp": -1, "input_length": 10, "output_length": 1}\n',
     ".jsonl", "line 2, column timestamp: must be >= 0"),
    ('{"timestamp": 0, "input_length": 0, "output_length": 1}\n', ".jsonl",
     "line 1, column input_length: must be >= 1"),
    ('{"timestamp": 0, "input_length": 10.5, "output_length": 1}\n', ".jsonl",
     "line 1, column input_length: must be a whole number"),
    ('{"timestamp": 0, "input_length": 1e300, "output_length": 1}\n', ".jsonl",
     "line 1, column input_length: at most 1,000,000,000 tokens"),
    ('{"timestamp": 0, "input_length": 10}\n', ".jsonl",
     "line 1, column output_length: missing"),
    ('{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": 3}\n', ".jsonl",
     "line 1, column hash_ids: must be a list"),
    ('{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [1, -2]}\n',
     ".jsonl", "line 1, column hash_ids: item 1 must be an integer in [0, 2**64)"),
    ('{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [18446744073709551616]}\n',  # noqa: E501
     ".jsonl", "column hash_ids: item 0"),
    ('{"timestamp": 0, "input_length": 10, "output_length": 1, "work_s": 1}\n', ".jsonl",
     "line 1, column work_s: unknown column"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03,10,1\nyesterday,10,1\n",
     ".csv", "line 3, column TIMESTAMP: must be a time"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-02-30 18:17:03,10,1\n",
     ".csv", "line 2, column TIMESTAMP: not a valid time"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03,10,x\n",
     ".csv", "line 2, column GeneratedTokens: must be a number"),
    ("TIMESTAMP,ContextTokens\n2023-11-16 18:17:03,10\n",
     ".csv", "line 1, column GeneratedTokens: missing from the header"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens,work_s\n",
     ".csv", "line 1, column work_s: unknown column"),
])
def test_bad_llm_trace_rows_name_line_and_column(tmp_path, content, suffix, message):
    f = tmp_path / f"trace{suffix}"
    f.write_text(content)
    with pytest.raises(TraceError) as exc:
        load_trace(f)
    assert message in str(exc.value)
    assert str(f) in str(exc.value)


def test_too_long_a_prefix_is_refused(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(req(0, 10, 1, list(range(65_537)))) + "\n")
    with pytest.raises(TraceError, match="line 1, column hash_ids: at most 65,536"):
        load_trace(f)


def test_a_broken_gzip_names_the_file(tmp_path):
    f = tmp_path / "t.jsonl.gz"
    f.write_bytes(b"not gzip at all")
    with pytest.raises(TraceError, match="not a valid gzip file"):
        load_trace(f)


@pytest.mark.parametrize("kwargs, message", [
    ({"speed": 0}, "speed"), ({"speed": math.inf}, "speed"), ({"speed": True}, "speed"),
    ({"limit": 0}, "limit"), ({"limit": 2.0}, "limit"),
])
def test_replay_arguments_are_checked(tmp_path, kwargs, message):
    tr = mooncake(tmp_path, [req(0, 10, 1, [])])
    with pytest.raises(ValueError, match=message):
        tr.replay(**kwargs)
    with pytest.raises(ValueError, match=message):
        load_trace(tmp_path / "t.jsonl", **kwargs)


# -- scenario fields and workload checks ---------------------------------------------------


@pytest.mark.parametrize("group, top, message", [
    ({"service": "llm", "decode_tokens_per_s": 1.0}, {},
     "pool.groups[0].prefill_tokens_per_s: missing"),
    ({"service": "llm", "prefill_tokens_per_s": 1.0, "decode_tokens_per_s": 0}, {},
     "pool.groups[0].decode_tokens_per_s: must be > 0"),
    ({"service": "llm", "prefill_tokens_per_s": 1.0, "decode_tokens_per_s": 1.0,
      "cache_blocks": -1}, {}, "pool.groups[0].cache_blocks: must be an integer >= 0"),
    ({"service": "shared", "cache_blocks": 4}, {},
     "pool.groups[0].cache_blocks: only for service = \"llm\""),
    ({"service": "llm", "prefill_tokens_per_s": 1.0, "decode_tokens_per_s": 1.0},
     {"block_tokens": 0}, "block_tokens: must be an integer >= 1"),
    ({"service": "llm", "prefill_tokens_per_s": 1.0, "decode_tokens_per_s": 1.0},
     {"trace": ""}, "trace: must be a non-empty string"),
])
def test_llm_scenario_fields_are_validated(group, top, message):
    data = {"duration_s": 10.0, "arrivals": {"rate_per_s": 1.0, "mean_task_s": 1.0},
            "pool": {"groups": [{"name": "g", "count": 1, "max_tasks": 2, **group}]}, **top}
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("*", r"\*")):
        scenario_from_dict(data)


def test_llm_groups_cannot_mix_with_others():
    with pytest.raises(ScenarioError, match="cannot be mixed"):
        scenario_from_dict({"duration_s": 10.0,
                            "arrivals": {"rate_per_s": 1.0, "mean_task_s": 1.0},
                            "pool": {"groups": [
                                {"name": "a", "count": 1, "max_tasks": 2},
                                {"name": "b", "count": 1, "max_tasks": 2, "service": "llm",
                                 "prefill_tokens_per_s": 1.0, "decode_tokens_per_s": 1.0}]}})


def test_a_scenario_trace_is_relative_to_its_file(tmp_path):
    d = tmp_path / "sc"
    d.mkdir()
    f = d / "x.toml"
    f.write_text('duration_s = 5.0\ntrace = "../t.jsonl"\n'
                 '[pool]\ngroups = [{ name = "g", count = 1, max_tasks = 1, service = "llm", '
                 'prefill_tokens_per_s = 10.0, decode_tokens_per_s = 1.0 }]\n')
    sc = load_scenario(f)
    assert sc.trace is not None and Path(sc.trace).resolve() == (tmp_path / "t.jsonl").resolve()
    assert sc.block_tokens == 512 and sc.llm
    assert sc.arrivals.rate_per_s == 0.0     # no generated arrivals
    with pytest.raises(ScenarioError, match="arrivals: missing"):
        scenario_from_dict({"duration_s": 5.0,
                            "pool": {"groups": [{"name": "g", "count": 1, "max_tasks": 1}]}})


def test_the_pool_and_the_trace_must_fit(tmp_path):


    tr = mooncake(tmp_path, [req(0, 10, 1, [])])
    with pytest.raises(ValueError, match="carries tokens, not work"):
        run_simulation(scenario_from_dict(SMALL), "random", trace=tr)
    with pytest.raises(ValueError, match="generated arrivals carries no tokens"):
        run_simulation(llm_scenario(), "random")
    f = tmp_path / "w.csv"
    f.write_text("arrival_s,work_s\n0,1\n")
    with pytest.raises(ValueError, match="the requests trace carries no tokens"):
        run_simulation(llm_scenario(), "random", trace=load_trace(f))


def test_summarize_gives_the_llm_fields_intervals(tmp_path):
    rows = [req(100 * k, 1000, 20, [k % 3, 100 + k]) for k in range(40)]
    tr = mooncake(tmp_path, rows)
    runs = [run_simulation(llm_scenario(count=3, parallelism=2), "random", seed=s, trace=tr)
            for s in (0, 1, 2)]
    row = summarize(runs)
    for key in ("ttft_mean_s", "ttft_p99_s", "cache_hit_rate", "tokens_per_s"):
        vals = [getattr(r, key) for r in runs]
        assert row[key] == pytest.approx(sum(vals) / 3, abs=1e-6)
        lo, hi = row["ci95"][key]
        assert lo <= row[key] <= hi


def test_without_a_cache_an_llm_pool_is_the_shared_model(tmp_path):
    """With nothing cached an LLM request is shared-service work of prompt /
    prefill + output / decode: the same run, event for event, as the
    queueing-theory-checked ``shared`` model given that work."""
    rng = np.random.default_rng(7)
    n = 300
    arrivals = np.sort(rng.uniform(0, 60_000, n)).round().tolist()
    prompt = rng.integers(1, 3000, n).tolist()
    output = rng.integers(0, 60, n).tolist()
    tr = mooncake(tmp_path, [req(float(a), int(p), int(o), [int(k)])
                             for k, (a, p, o) in enumerate(zip(arrivals, prompt, output))])
    f = tmp_path / "work.csv"
    f.write_text("arrival_s,work_s\n" + "".join(
        f"{a / 1000!r},{p / 1000.0 + o / 10.0!r}\n"
        for a, p, o in zip(arrivals, prompt, output)))
    plain = load_trace(f)
    shared = scenario_from_dict({
        "duration_s": 100.0, "usage_reports": False,
        "pool": {"groups": [{"name": "g", "count": 3, "max_tasks": 4, "service": "shared",
                             "parallelism": 2}]},
        "arrivals": {"rate_per_s": 1.0, "mean_task_s": 1.0,
                     "priorities": [{"priority": "medium", "share": 1, "timeout_s": 1e4}]}})
    for strategy in ("least_loaded", "round_robin", "power_of_two"):
        a = run_simulation(llm_scenario(count=3, parallelism=2, cache_blocks=0), strategy,
                           seed=3, trace=tr)
        b = run_simulation(shared, strategy, seed=3, trace=plain)
        assert a.completed == b.completed == n
        assert a.e2e_mean_s == pytest.approx(b.e2e_mean_s, rel=1e-9)
        assert a.wait_p99_s == pytest.approx(b.wait_p99_s, rel=1e-9, abs=1e-12)
        assert a.e2e_p99_s == pytest.approx(b.e2e_p99_s, rel=1e-9)
        assert a.cache_hit_rate == 0.0 and b.cache_hit_rate is None
