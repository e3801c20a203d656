"""The requests a run replays: generated from the scenario, or read from a trace.

A :class:`Workload` is columns (numpy arrays) in arrival order.  It is drawn
once per seed from the seed's *arrival* stream, before the run starts, so
every strategy sees exactly the same requests (times, work, priorities,
deadlines, failure draws); only the agents' noise and the balancer's own
random choices differ between strategies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..scenario import PRIORITY_NAMES, Arrivals, Scenario

__all__ = ["Tokens", "Workload", "draw_work", "generate_workload"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int8]]
Int64Array = np.ndarray[Any, np.dtype[np.int64]]
UInt64Array = np.ndarray[Any, np.dtype[np.uint64]]


@dataclass(frozen=True, eq=False)
class Tokens:
    """The LLM side of a workload's requests: token counts and prompt prefixes.

    ``prompt[i]`` and ``output[i]`` are request ``i``'s prompt and output
    tokens; its prefix (the prompt's block hashes, possibly none) is
    ``blocks[offsets[i]:offsets[i + 1]]`` -- one flat array for all
    requests, eight bytes a block.
    """

    prompt: Int64Array
    output: Int64Array
    blocks: UInt64Array
    offsets: Int64Array

    def __len__(self) -> int:
        return int(self.prompt.size)

    def prefix(self, i: int) -> list[int]:
        """Request ``i``'s block hashes."""
        return self.blocks[self.offsets[i]:self.offsets[i + 1]].tolist()  # type: ignore[no-any-return]

    def take(self, idx: Int64Array) -> Tokens:
        """The requests ``idx``, in that order."""
        lengths = np.diff(self.offsets)[idx]
        offsets = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # each kept block's position in the old array: its run's old start
        # plus its place in the run
        shift = np.repeat(self.offsets[:-1][idx] - offsets[:-1], lengths)
        where = shift + np.arange(int(offsets[-1]), dtype=np.int64)
        return Tokens(prompt=self.prompt[idx], output=self.output[idx],
                      blocks=self.blocks[where], offsets=offsets)


@dataclass(frozen=True, eq=False)
class Workload:
    """Requests in arrival order.

    ``priority`` holds indices into ``PRIORITY_NAMES`` (low, medium, high,
    critical); ``fail_draw`` is a uniform draw per request (the task fails on
    an agent whose failure rate exceeds it); ``tenant`` is each request's
    tenant (an empty tuple when the workload has none; an empty name is the
    manager's ``"default"`` tenant).  ``duration_s`` is how long requests arrive.
    ``tokens`` holds the requests' token counts and prefixes (an LLM trace's;
    ``None`` otherwise, and then ``work_s`` is the work).
    """

    arrival_s: FloatArray
    work_s: FloatArray
    priority: IntArray
    timeout_s: FloatArray
    fail_draw: FloatArray
    duration_s: float
    tenant: tuple[str, ...] = field(default=())
    tokens: Tokens | None = None

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def mean_work_s(self) -> float:
        return float(self.work_s.mean()) if self.work_s.size else 0.0


def draw_work(arrivals: Arrivals, rng: np.random.Generator, n: int) -> FloatArray:
    """``n`` task works with mean ``arrivals.mean_task_s`` from its distribution."""
    mean = arrivals.mean_task_s
    dist = arrivals.task_distribution
    if dist == "exponential":
        return rng.exponential(mean, n)
    if dist == "deterministic" or (dist == "lognormal" and arrivals.task_sigma == 0):
        return np.full(n, mean)
    if dist == "pareto":
        # classic Pareto (type I) with minimum x_m: mean = a x_m / (a - 1);
        # numpy's pareto() is the Lomax distribution, i.e. Pareto I - 1 with x_m = 1
        a = arrivals.pareto_shape
        x_m = mean * (a - 1.0) / a
        return (rng.pareto(a, n) + 1.0) * x_m
    sigma = arrivals.task_sigma
    return rng.lognormal(math.log(mean) - sigma * sigma / 2.0, sigma, n)


def _arrival_times(arrivals: Arrivals, duration_s: float,
                   rng: np.random.Generator) -> FloatArray:
    # The rate is piecewise constant (bursts multiply it), so on each piece a
    # Poisson process is a Poisson number of points placed uniformly.
    edges = sorted({0.0, duration_s, *(e for b in arrivals.bursts
                                      for e in (b.start_s, b.start_s + b.duration_s)
                                      if 0.0 < e < duration_s)})
    parts = []
    for a, b in zip(edges, edges[1:]):
        k = int(rng.poisson(arrivals.rate_at(a) * (b - a)))
        parts.append(np.sort(rng.uniform(a, b, k)))
    return np.concatenate(parts) if parts else np.empty(0)


def _draw(ar: Arrivals, duration_s: float, rng: np.random.Generator) -> Workload:
    times = _arrival_times(ar, duration_s, rng)
    n = times.size
    shares = np.array([p.share for p in ar.priorities], dtype=float)
    cls = rng.choice(len(shares), size=n, p=shares / shares.sum())
    prio_index = np.array([PRIORITY_NAMES.index(p.priority) for p in ar.priorities],
                          dtype=np.int8)
    timeouts = np.array([p.timeout_s for p in ar.priorities], dtype=float)
    work = draw_work(ar, rng, n)
    fail = rng.random(n)
    return Workload(arrival_s=times, work_s=work, priority=prio_index[cls],
                    timeout_s=timeouts[cls], fail_draw=fail, duration_s=duration_s)


def _name_key(name: str) -> list[int]:
    # a stable key (hash() is salted per process): four 32-bit words of SHA-256
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return [int.from_bytes(digest[k:k + 4], "little") for k in range(0, 16, 4)]


def generate_workload(scenario: Scenario, rng: np.random.Generator) -> Workload:
    """Draw the scenario's arrivals (Poisson with bursts) and their work.

    With tenants every tenant has its own Poisson stream of its
    ``arrival_rate_per_s`` (the bursts multiply it), drawn from a generator
    keyed by the seed and the tenant's *name*: a tenant's requests stay the
    same when other tenants are added, removed or change their rates, so
    runs with and without a neighbour compare like for like.  The streams
    are merged in time order (ties in tenant order).
    """
    if not scenario.tenants:
        return _draw(scenario.arrivals, scenario.duration_s, rng)
    base = [int(x) for x in rng.integers(0, 2**32, size=2, dtype=np.uint64)]
    parts = []
    for t in scenario.tenants:
        ar = dataclasses.replace(scenario.arrivals, rate_per_s=t.arrival_rate_per_s)
        parts.append(_draw(ar, scenario.duration_s,
                           np.random.default_rng([*base, *_name_key(t.name)])))
    times = np.concatenate([p.arrival_s for p in parts])
    order = np.argsort(times, kind="stable")
    names = [t.name for t in scenario.tenants]
    who = np.concatenate([np.full(len(p), k, dtype=np.int64) for k, p in enumerate(parts)])
    return Workload(
        arrival_s=times[order],
        work_s=np.concatenate([p.work_s for p in parts])[order],
        priority=np.concatenate([p.priority for p in parts])[order],
        timeout_s=np.concatenate([p.timeout_s for p in parts])[order],
        fail_draw=np.concatenate([p.fail_draw for p in parts])[order],
        duration_s=scenario.duration_s,
        tenant=tuple(names[k] for k in who[order].tolist()))
