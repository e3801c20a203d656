"""The timing harness itself: labels, per-unit scaling, ratios, targets.

A fake timer makes every figure exact, so nothing here depends on the machine.
"""

from __future__ import annotations

from typing import Any

import pytest
from _harness import Comparison, Op, compare, fmt_ns, measure


class _FakeTimer:
    """``timeit(number)``: ``number`` calls of ``cost`` seconds each."""

    def __init__(self, cost: float) -> None:
        self.cost = cost

    def timeit(self, number: int) -> float:
        return number * self.cost


@pytest.fixture
def fake_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    # an op's first argument is its cost per call, in seconds
    monkeypatch.setattr(Op, "timer", lambda self: _FakeTimer(self.args[0]))


def _noop(*args: Any) -> None:
    return None


@pytest.mark.usefixtures("fake_timer")
def test_measure_reports_ns_per_unit() -> None:
    timings = measure([Op("one", _noop, (1e-6,)), Op("batch", _noop, (1e-3,), per=1000)],
                      repeat=3, min_time=0.01)
    assert set(timings) == {"one", "batch"}
    for t in timings.values():
        assert t.ns == pytest.approx((1000.0,) * 3)
        assert t.median == t.best == pytest.approx(1000.0)


@pytest.mark.usefixtures("fake_timer")
def test_compare_ratios_and_targets() -> None:
    c = Comparison("noop", Op("arbiter", _noop, (2e-6,)), peers=[Op("peer", _noop, (8e-6,))],
                   floor=Op("floor", _noop, (1e-6,)), targets={"floor": 1.5, "peer": 0.25})
    res = compare(c, repeat=3, min_time=0.01)
    assert res.ratios == pytest.approx({"floor": 2.0, "peer": 0.25})
    assert res.meets("floor") is False and res.meets("peer") is True
    assert res.meets("nothing") is None
    assert [op.label for op in c.ops] == ["arbiter", "floor", "peer"]
    assert c.op("peer").args == (8e-6,)
    with pytest.raises(KeyError):
        c.op("missing")


def test_op_runs_its_check() -> None:
    def fail(result: object) -> None:
        raise AssertionError(result)

    with pytest.raises(AssertionError):
        Op("bad", _noop, check=fail)()


def test_timer_calls_fn_with_its_args() -> None:
    calls: list[tuple[int, str]] = []
    Op("append", lambda a, b: calls.append((a, b)), (5, "x")).timer().timeit(3)
    assert calls == [(5, "x")] * 3


def test_fmt_ns_picks_a_readable_unit() -> None:
    assert [fmt_ns(x) for x in (83.14, 12_400.0, 1.31e6, 2.5e9)] == [
        "83.1 ns", "12.4 µs", "1.31 ms", "2.5 s"]
