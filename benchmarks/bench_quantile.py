"""MetricRing.quantile against np.partition on the same values, side by side.

Run: ``.venv/bin/pytest benchmarks -k quantile --benchmark-only``
or, for interleaved side-by-side ratios (CPU time, best of many rounds):
``.venv/bin/python benchmarks/bench_quantile.py``

Each case is a ring window of ``window`` samples whose keys cycle through
``nkeys`` series; the query asks for one series.  The peer is ``np.partition``
of that series' values (already gathered in a contiguous array, so the ring
also pays for finding them in the window).  The goal is a ratio <= 1.

Under ``make test`` (``--benchmark-disable``) each function runs once and the
assertions check that the ring agrees with ``np.quantile`` exactly.
"""

from __future__ import annotations

import sys
import time
import timeit
from collections.abc import Callable

import numpy as np
import pytest

from arbiter_core import MetricRing

CASES = [(10_000, 1), (10_000, 3), (30_000, 3), (100_000, 1), (100_000, 3)]
QS = [0.99, 0.5]


def make_case(window: int, nkeys: int) -> tuple[MetricRing, np.ndarray]:
    """A full ring of lognormal latencies, keys interleaved; returns it and key 0's values."""
    rng = np.random.default_rng(window + nkeys)
    vals = rng.lognormal(3.0, 1.0, window)
    keys = np.arange(window) % nkeys
    ring = MetricRing(window)
    ring.record_many(keys, vals, np.arange(float(window)))
    return ring, vals[keys == 0].copy()


def _partition_quantile(values: np.ndarray, q: float) -> np.ndarray:
    """The peer: np.partition at the rank the quantile needs (the lower one)."""
    k = int(q * (len(values) - 1))
    return np.partition(values, k)


_CACHE: dict[tuple[int, int], tuple[MetricRing, np.ndarray]] = {}


def _case(window: int, nkeys: int) -> tuple[MetricRing, np.ndarray]:
    if (window, nkeys) not in _CACHE:
        _CACHE[(window, nkeys)] = make_case(window, nkeys)
    return _CACHE[(window, nkeys)]


def _ids(case: tuple[int, int]) -> str:
    return f"w{case[0]}-k{case[1]}"


@pytest.mark.parametrize("q", QS)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_quantile_ring(benchmark, case, q):
    ring, mine = _case(*case)
    benchmark.group = f"quantile {_ids(case)} q={q}"
    got = benchmark(ring.quantile, 0, q)
    assert got == np.quantile(mine, q)


@pytest.mark.parametrize("q", QS)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_quantile_np_partition(benchmark, case, q):
    _, mine = _case(*case)
    benchmark.group = f"quantile {_ids(case)} q={q}"
    part = benchmark(_partition_quantile, mine, q)
    k = int(q * (len(mine) - 1))
    assert part[k] == np.sort(mine)[k]


def side_by_side(f: Callable[[], object], g: Callable[[], object], number: int,
                 rounds: int = 30) -> tuple[float, float]:
    """Best per-call CPU time of f and of g, measured in alternation."""
    best_f = best_g = float("inf")
    for _ in range(rounds):
        best_f = min(best_f, timeit.timeit(f, number=number, timer=time.thread_time) / number)
        best_g = min(best_g, timeit.timeit(g, number=number, timer=time.thread_time) / number)
    return best_f, best_g


def main() -> None:
    from arbiter_core import _ringbuf

    levels = [int(a) for a in sys.argv[1:]] or [_ringbuf._simd_best()]
    for level in levels:
        _ringbuf._set_simd_level(level)
        for window, nkeys in CASES:
            ring, mine = make_case(window, nkeys)
            for q in QS:
                number = max(2, 200_000 // window)
                tr, tp = side_by_side(lambda ring=ring, q=q: ring.quantile(0, q),
                                      lambda mine=mine, q=q: _partition_quantile(mine, q),
                                      number)
                print(f"simd={level} window={window:>6} keys={nkeys} ({len(mine):>6} values) "
                      f"q={q:<4}: ring {tr * 1e6:7.1f} us  np.partition {tp * 1e6:7.1f} us  "
                      f"ratio {tr / tp:.2f}")


if __name__ == "__main__":
    main()
