"""Hostile scenario files, trace files and command lines (issue 16).

A scenario built from a valid one with one field replaced by something
hostile either loads or raises ScenarioError naming that field's path; a
file of random bytes raises ScenarioError; ``arbiter-core simulate`` with a
bad file exits 2 with one line naming the field, never a traceback; random
argument lists exit through argparse (2) or run, never with a traceback.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _hostile import COUNTS, Big, examples, numbers
from arbiter_core.cli import main
from arbiter_core.scenario import ScenarioError, load_scenario, scenario_from_dict

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "examples" / "scenarios" / "small.toml"

VALID = {
    "name": "fuzz",
    "duration_s": 5.0,
    "pool": {"groups": [{"name": "g", "count": 2, "max_tasks": 2, "speed": 1.0}]},
    "arrivals": {"rate_per_s": 3.0, "mean_task_s": 0.5,
                 "bursts": [{"start_s": 1.0, "duration_s": 1.0, "factor": 2.0}],
                 "priorities": [{"priority": "high", "share": 1.0, "timeout_s": 5.0}]},
    "faults": [{"kind": "slow", "agent": "g-0", "at_s": 1.0}],
    "rate_limit": {"per_s": 10.0, "burst": 5},
    "max_queue": 100,
}


def paths(node, prefix=()):
    """Every (path, value) in the scenario, tables and lists included."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, (*prefix, i))


PATHS = [p for p, _ in paths(VALID) if p]
FIELD = re.compile(r"^(scenario|[a-z_]+(\.[a-z_]+|\[\d+\])*)$")
hostile = st.one_of(numbers, st.text(max_size=5), st.just([]), st.just({}),
                    st.just([1, "x"]), st.just({"x": 1}), st.just(Big("x" * 100_000)))


def dotted(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def fuzz(n: int):
    return settings(max_examples=examples(n), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


@fuzz(300)
@given(path=st.sampled_from(PATHS), value=hostile, drop=st.booleans())
def test_one_hostile_field_loads_or_names_its_path(path, value, drop):
    COUNTS["fuzzed scenarios"] += 1
    data = copy.deepcopy(VALID)
    node = data
    for p in path[:-1]:
        node = node[p]
    if drop and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    try:
        scenario_from_dict(data)
    except ScenarioError as exc:
        # the message starts with the path of a field ("pool.groups[0].max_tasks:"),
        # possibly another one than was changed (a renamed group leaves a fault
        # naming an agent that is no longer there)
        head = str(exc).split(":", 1)[0]
        assert FIELD.match(head), str(exc)[:300]


@fuzz(200)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
       suffix=st.sampled_from([".toml", ".json", ".txt", ""]))
def test_random_bytes_are_a_scenario_error(tmp_path, raw, suffix):
    COUNTS["fuzzed scenarios"] += 1
    f = tmp_path / f"s{suffix}"
    f.write_bytes(raw)
    with contextlib.suppress(ScenarioError):
        load_scenario(f)


def run_main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


@pytest.mark.parametrize("field, value, named", [
    (("pool", "groups", 0, "max_tasks"), 0, "pool.groups[0].max_tasks"),
    (("arrivals", "rate_per_s"), "fast", "arrivals.rate_per_s"),
    (("duration_s",), float("inf"), "duration_s"),
    (("faults", 0, "agent"), "nobody", "faults[0].agent"),
    (("rate_limit", "burst"), -1, "rate_limit.burst"),
])
def test_simulate_with_a_bad_file_exits_2_naming_the_field(tmp_path, field, value, named):
    data = copy.deepcopy(VALID)
    node = data
    for p in field[:-1]:
        node = node[p]
    node[field[-1]] = value
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(data, allow_nan=True))
    code, err = run_main(["simulate", "--scenario", str(f), "--quiet"])
    assert code == 2 and named in err and "Traceback" not in err, err


@fuzz(150)
@given(argv=st.lists(st.one_of(
    st.sampled_from(["simulate", "demo", "bench", "monitor", "--scenario", "--seed",
                     "--seeds", "--jobs", "--trace", "--strategy", "--samples", "--capacity",
                     "--scale", "--interval", "--count", "--json", "-1", "0", "nan", "1e999",
                     "x", "", "--nope", "/nonexistent.toml", str(SMALL)]),
    st.text(max_size=6)), max_size=5))
def test_random_command_lines_exit_cleanly(argv):
    """Parsing and validation only: the subcommands themselves are stubbed
    (they are driven with real files by the tests above and in test_cli.py)."""
    COUNTS["fuzzed command lines"] += 1
    stubs = {name: (lambda args: 0) for name in ("_simulate", "_monitor", "_bench", "_demo")}
    with mock.patch.multiple("arbiter_core.cli", **stubs):
        code, err = run_main(argv)
    assert code in (0, 1, 2), (argv, code)
    assert "Traceback" not in err, err


# -- trace files ---------------------------------------------------------------------

cells = st.one_of(
    st.sampled_from(["0", "1.5", "-1", "nan", "inf", "1e999", "", " ", "high", "LOW", "x",
                     "acme", Big("1" * 400), Big("a" * 300), Big("a" * 200_000), '"', "\x00",
                     "\n", "1,2"]),
    st.text(max_size=8),
)
json_values = st.one_of(numbers, st.text(max_size=6), st.just(10**400), st.just([1]),
                        st.just({"a": 1}), st.sampled_from(["high", Big("a" * 300)]))


@fuzz(300)
@given(header=st.lists(st.sampled_from(["arrival_s", "work_s", "priority", "timeout_s",
                                        "tenant", "bogus", ""]), max_size=6),
       rows=st.lists(st.lists(cells, max_size=6), max_size=5))
def test_random_csv_traces_load_or_name_line_and_column(tmp_path, header, rows):
    from arbiter_core.simulate import TraceError, load_trace

    COUNTS["fuzzed traces"] += 1
    f = tmp_path / "t.csv"
    f.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")
    try:
        tr = load_trace(f)
    except TraceError as exc:
        assert str(exc).startswith(str(f)) and len(str(exc)) < 2000, str(exc)[:300]
    else:
        assert len(tr) >= 1 and np.all(np.isfinite(tr.arrival_s)) and np.all(tr.work_s > 0)


@fuzz(300)
@given(rows=st.lists(st.one_of(
    st.dictionaries(st.sampled_from(["arrival_s", "work_s", "priority", "timeout_s", "tenant",
                                     "bogus"]), json_values, max_size=5),
    st.sampled_from(["[1, 2]", "null", "{", "3"])), min_size=1, max_size=4))
def test_random_json_line_traces_load_or_name_line_and_column(tmp_path, rows):
    from arbiter_core.simulate import TraceError, load_trace

    COUNTS["fuzzed traces"] += 1
    f = tmp_path / "t.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r, default=repr) for r in rows]
    f.write_text("\n".join(lines) + "\n")
    try:
        tr = load_trace(f)
    except TraceError as exc:
        assert str(exc).startswith(str(f)) and len(str(exc)) < 2000, str(exc)[:300]
    else:
        assert len(tr) >= 1 and np.all(np.isfinite(tr.arrival_s)) and np.all(tr.work_s > 0)


def _check_llm_trace(tr) -> None:
    """What a loaded LLM trace promises: sorted finite arrivals from 0, counts
    in range, every request's blocks in the flat array."""
    tok = tr.tokens
    assert tok is not None and len(tok) == len(tr) >= 1
    assert np.all(np.isfinite(tr.arrival_s)) and np.all(tr.arrival_s >= 0)
    assert np.all(np.diff(tr.arrival_s) >= 0)
    assert np.all(tok.prompt >= 1) and np.all(tok.output >= 0)
    assert tok.offsets[0] == 0 and tok.offsets[-1] == tok.blocks.size
    assert np.all(np.diff(tok.offsets) >= 0)


@fuzz(300)
@given(rows=st.lists(st.one_of(
    st.dictionaries(st.sampled_from(["timestamp", "input_length", "output_length", "hash_ids",
                                     "bogus"]),
                    st.one_of(json_values, st.lists(st.integers(-5, 2**64 + 5), max_size=4),
                              st.just([True]), st.just([1.5])),
                    max_size=5),
    st.sampled_from(["[1, 2]", "null", "{"])), min_size=1, max_size=4))
def test_random_mooncake_traces_load_or_name_line_and_column(tmp_path, rows):
    from arbiter_core.simulate import TraceError, load_trace

    COUNTS["fuzzed traces"] += 1
    f = tmp_path / "t.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r, default=repr) for r in rows]
    f.write_text("\n".join(lines) + "\n")
    try:
        tr = load_trace(f)
    except TraceError as exc:
        assert str(exc).startswith(str(f)) and len(str(exc)) < 2000, str(exc)[:300]
    else:
        if tr.format != "requests":
            _check_llm_trace(tr)


@fuzz(200)
@given(header=st.lists(st.sampled_from(["TIMESTAMP", "ContextTokens", "GeneratedTokens",
                                        "bogus", ""]), max_size=4),
       rows=st.lists(st.lists(st.one_of(cells, st.sampled_from(
           ["2023-11-16 18:17:03.9799600", "2023-11-16T18:17:03Z", "2023-13-01 00:00:00",
            "2023-11-16 18:17:03+05:30", "4808", "0", "12.0"])), max_size=4), max_size=5))
def test_random_azure_traces_load_or_name_line_and_column(tmp_path, header, rows):
    from arbiter_core.simulate import TraceError, load_trace

    COUNTS["fuzzed traces"] += 1
    f = tmp_path / "t.csv"
    f.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")
    try:
        tr = load_trace(f)
    except TraceError as exc:
        assert str(exc).startswith(str(f)) and len(str(exc)) < 2000, str(exc)[:300]
    else:
        if tr.format == "azure":
            _check_llm_trace(tr)
            assert tr.arrival_s[0] == 0.0


@pytest.mark.parametrize("content, suffix, named", [
    ("arrival_s,work_s\n0,1\n0," + "9" * 200_000 + "\n", ".csv", "line 3"),
    ('{"arrival_s": 0, "work_s": 1' + "0" * 400 + "}\n", ".jsonl", "column work_s"),
    ("arrival_s,work_s\n0,nan\n", ".csv", "line 2, column work_s"),
])
def test_simulate_with_a_bad_trace_exits_2_naming_line_and_column(tmp_path, content, suffix,
                                                                    named):
    f = tmp_path / f"t{suffix}"
    f.write_text(content)
    code, err = run_main(["simulate", "--scenario", str(SMALL), "--trace", str(f),
                          "--seeds", "1", "--quiet"])
    assert code == 2 and named in err and "Traceback" not in err, err[:500]
    assert len(err) < 2000


def test_a_bad_file_as_the_user_sees_it(tmp_path):
    """The same in a subprocess: exit status 2, one line, no traceback."""
    f = tmp_path / "bad.toml"
    f.write_text('duration_s = 5\n[pool]\ngroups = [{count = 2, max_tasks = "many"}]\n'
                 '[arrivals]\nrate_per_s = 1\nmean_task_s = 1\n')
    proc = subprocess.run([sys.executable, "-m", "arbiter_core", "simulate", "--scenario",
                           str(f)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "pool.groups[0].max_tasks" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
