"""Query kernels of MetricRing under concurrent writers.

Every query must compute from one consistent set of samples that were in its
window at one instant.  The writers make that checkable: writer ``k`` records
key ``k`` with ``value = k * 1e9 + s`` at ``timestamp = s``, where ``s`` comes
from one shared counter.  So a key's values rise with time, the key of a value
is ``value // 1e9``, and a window ``[since, until]`` of key ``k`` can only hold
values in ``[k*1e9 + since, k*1e9 + until]``; first == min, last == max, and
the values are exactly linear in time (slope 1).

The ring is small and full, so every write evicts the oldest sample, and the
windows end well before the newest sample: a scan racing a writer sees slots of
its window being overwritten by samples from after it.  A short GIL switch
interval makes the threads interleave often.  Each test does a bounded number
of queries (a few seconds at most); before the fix each one failed well
within that number.
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from arbiter_core import MetricRing
from arbiter_core._ringbuf import _set_window_mode

CAP = 1024
KEYS = (1, 2, 3)
SCALE = 1e9


def _lo(k: int, t: float) -> float:
    return k * SCALE + t


@contextmanager
def _writers(ring: MetricRing, keys: tuple[int, ...] = KEYS,
             batch: bool = True) -> Iterator[Callable[[], int]]:
    """Writer threads for ``keys`` (plus one batch writer); yields ``newest()``."""
    counter = itertools.count(1)
    last = [0]
    stop = threading.Event()

    def write(k: int) -> None:
        while not stop.is_set():
            for _ in range(200):
                s = next(counter)
                ring.record(k, k * SCALE + s, float(s))
                last[0] = s

    def write_batches(k: int) -> None:
        while not stop.is_set():
            t = np.array([next(counter) for _ in range(16)], dtype=np.float64)
            ring.record_many(k, k * SCALE + t, t)
            last[0] = int(t[-1])

    # prefill so that the ring is full before any query
    s0 = next(counter)
    for i in range(ring.capacity):
        s0 = next(counter)
        ring.record(keys[i % len(keys)], keys[i % len(keys)] * SCALE + s0, float(s0))
    last[0] = s0
    threads = [threading.Thread(target=write, args=(k,)) for k in keys]
    if batch:
        # a key of its own: the numbers a batch reserves are not contiguous
        # (other writers draw from the counter meanwhile), so sharing a key
        # could store one value twice
        threads.append(threading.Thread(target=write_batches, args=(max(keys) + 1,)))
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    for th in threads:
        th.start()
    try:
        yield lambda: last[0]
    finally:
        stop.set()
        for th in threads:
            th.join()
        sys.setswitchinterval(switch)


def _window(ring: MetricRing, newest: int) -> tuple[float, float]:
    """A window ending halfway between the oldest stored time and the newest."""
    oldest = ring.bounds()[0]
    if math.isnan(oldest):
        oldest = newest - ring.capacity
    until = (oldest + newest) / 2 + 0.5
    return oldest - 10.0, until


ROUNDS = 40000


@pytest.fixture(params=[0, 1], ids=["seqlock", "copy-out"])
def window_mode(request: pytest.FixtureRequest) -> Iterator[int]:
    old = _set_window_mode(request.param)
    yield request.param
    _set_window_mode(old)


def _run(check: Callable[[MetricRing, int, float, float], str | None],
         rounds: int = ROUNDS, keys: tuple[int, ...] = KEYS, batch: bool = True,
         capacity: int = CAP) -> None:
    ring = MetricRing(capacity)
    bad: list[str] = []
    with _writers(ring, keys, batch) as newest:
        for i in range(rounds):
            since, until = _window(ring, newest())
            err = check(ring, keys[i % len(keys)], since, until)
            if err:
                bad.append(err)
                if len(bad) >= 3:
                    break
    assert not bad, bad


def _single_writer_probe(query: Callable[[MetricRing, float], bool]) -> int:
    """The issue's reproduction: one writer, value = timestamp, full ring of 1024;
    ``query(ring, until)`` with ``until`` halfway; returns how many were wrong."""
    ring = MetricRing(1024)
    for s in range(1024):
        ring.record(1, float(s), float(s))
    stop = threading.Event()
    newest = [1023]

    def write() -> None:
        s = 1024
        while not stop.is_set():
            ring.record(1, float(s), float(s))
            newest[0] = s
            s += 1

    th = threading.Thread(target=write)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    th.start()
    bad = 0
    try:
        for _ in range(3 * ROUNDS):
            bad += not query(ring, newest[0] - 512 + 0.5)
            if bad >= 3:
                break
    finally:
        stop.set()
        th.join()
        sys.setswitchinterval(switch)
    return bad


def test_count_beyond_minimal_reproduction(window_mode: int) -> None:
    # nothing in the window can exceed its end
    assert _single_writer_probe(
        lambda ring, until: ring.count_beyond(1, until, True, None, until) == 0) == 0


def test_quantile_minimal_reproduction(window_mode: int) -> None:
    def query(ring: MetricRing, until: float) -> bool:
        q = ring.quantile(1, 1.0, None, until)
        return math.isnan(q) or q <= until

    assert _single_writer_probe(query) == 0


def test_stats_under_writers(window_mode: int) -> None:
    def check(ring: MetricRing, k: int, since: float, until: float) -> str | None:
        s = ring.stats(k, since, until)
        if s.count == 0:
            return None
        lo, hi = _lo(k, since), _lo(k, until)
        ok = (lo <= s.min <= s.max <= hi and s.first == s.min and s.last == s.max
              and s.min <= s.mean <= s.max and s.count <= s.max - s.min + 1)
        if s.count > 1:
            # a consistent set of distinct values: std > 0 and within the range
            ok = ok and 0.0 < s.std <= s.max - s.min
        return None if ok else f"stats({k}, {since}, {until}) = {s}"

    _run(check, 2 * ROUNDS)


def test_count_beyond_under_writers(window_mode: int) -> None:
    def check(ring: MetricRing, k: int, since: float, until: float) -> str | None:
        above = ring.count_beyond(k, _lo(k, until), True, since, until)
        below = ring.count_beyond(k, _lo(k, since), False, since, until)
        # keys farther apart than any window: a value of another key counts
        other = ring.count_beyond(k, _lo(k, until) + 1.0, True, None, until)
        if above or below or other:
            return f"count_beyond({k}, {since}, {until}): {above}, {below}, {other}"
        return None

    _run(check, 2 * ROUNDS)


def test_quantile_under_writers(window_mode: int) -> None:
    def check(ring: MetricRing, k: int, since: float, until: float) -> str | None:
        lo_bound, hi_bound = _lo(k, since), _lo(k, until)
        # separate calls see different moments: each is checked on its own
        got = [ring.quantile(k, q, since, until) for q in (0.0, 1.0)]
        ok = all(math.isnan(g) or lo_bound <= g <= hi_bound for g in got)
        qs = ring.quantile(k, [0.0, 0.5, 1.0], since, until)
        if not math.isnan(qs[0]):
            ok = ok and lo_bound <= qs[0] <= qs[1] <= qs[2] <= hi_bound
        return None if ok else f"quantile({k}, {since}, {until}): {got}, {qs}"

    # windows of ~12k samples (4k per key): the sampled one-pass path as well
    _run(check, ROUNDS // 16, capacity=24 * CAP)


def test_slope_under_writers(window_mode: int) -> None:
    def check(ring: MetricRing, k: int, since: float, until: float) -> str | None:
        got = ring.slope(k, since, until)
        # value = k*1e9 + t exactly: the slope is 1 (or undefined)
        if math.isnan(got) or abs(got - 1.0) < 1e-6:
            return None
        return f"slope({k}, {since}, {until}) = {got}"

    _run(check, 2 * ROUNDS)


def test_group_window_under_writers(window_mode: int) -> None:
    nk = max(KEYS) + 1
    out = np.empty((nk, 12))
    mask = np.ones(nk, np.uint8)
    above = np.ones(nk, np.uint8)

    def check(ring: MetricRing, k: int, since: float, until: float) -> str | None:
        thr = np.array([_lo(j, until) for j in range(nk)])
        ring.group_window(since, until, mask, thr, above, 1.0 if k % 2 else np.nan, out)
        for j in KEYS:
            row = out[j]
            n = row[0]
            if n == 0:
                continue
            lo, hi = _lo(j, since), _lo(j, until)
            ok = (lo <= row[2] <= row[1] <= row[3] <= hi and row[11] == 0
                  and since <= row[5] <= row[6] <= until and row[7] == _lo(j, row[6])
                  and row[3] == row[7] and row[2] == _lo(j, row[5])
                  and n <= row[3] - row[2] + 1)
            if n > 1:
                ok = ok and 0.0 < row[4] <= row[3] - row[2] and abs(row[8] - 1.0) < 1e-6
            if k % 2:
                ok = ok and row[10] == row[3]
            if not ok:
                return f"group_window key {j}, {since}, {until}: {row.tolist()}"
        return None

    _run(check, ROUNDS // 2)


def test_group_scan_under_writers(window_mode: int) -> None:
    nk = max(KEYS) + 1
    out = np.empty((nk, 8))
    above = np.ones(nk, np.uint8)

    def check(ring: MetricRing, k: int, since: float, until: float) -> str | None:
        wm_ts = np.full(nk, -np.inf)
        wm_skip = np.zeros(nk, np.int64)
        thr = np.array([_lo(j, until) for j in range(nk)])
        ring.group_scan(since, until, wm_ts, wm_skip, thr, above, out)
        for j in KEYS:
            row = out[j]
            if row[0] == 0:
                continue
            ok = (row[1] == 0 and since <= row[6] <= until and row[7] == _lo(j, row[6])
                  and wm_ts[j] == row[6])
            if not ok:
                return f"group_scan key {j}, {since}, {until}: {row.tolist()}"
        return None

    _run(check, ROUNDS // 2)


def test_snapshot_under_writers(window_mode: int) -> None:
    def check(ring: MetricRing, k: int, since: float, until: float) -> str | None:
        t, ks, v = ring.snapshot(since, until, k)
        ok = (bool((ks == k).all()) and bool((v == k * SCALE + t).all())
              and bool(((t >= since) & (t <= until)).all()))
        return None if ok else f"snapshot({k}, {since}, {until})"

    _run(check, ROUNDS // 2)
