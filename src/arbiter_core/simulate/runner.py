"""Replications: every (strategy, seed) case, in this process or in several.

A case is deterministic (its result depends only on the scenario, the trace,
the strategy and the seed), so running the cases in ``jobs`` worker
processes gives exactly the results of running them one after another.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from ..scenario import Scenario
from ..types import LoadBalancingStrategy
from .engine import SimulationResult, run_simulation
from .trace import Trace

__all__ = ["EXECUTORS", "default_jobs", "run_cases", "seed_list"]

Case = tuple[str, int]
#: progress(cases finished, cases in all, fraction of the running cases done)
Progress = Callable[[int, int, float], None]


def seed_list(seed: int, seeds: int) -> list[int]:
    """The seeds of ``seeds`` replications starting at ``seed`` (``seed``,
    ``seed + 1``, ...): one replication is exactly the single-seed run."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    return [seed + k for k in range(seeds)]


def default_jobs(cases: int) -> int:
    """One process per CPU this process may use, at most one per case."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, cases))


def _worker_init(log_level: int) -> None:
    # a spawned worker starts with default logging: quiet it as the parent is
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(log_level)


def _run_case(scenario: Scenario, trace: Trace | None, strategy: str,
              seed: int) -> SimulationResult:
    return run_simulation(scenario, strategy, seed, trace=trace)


EXECUTORS = ("process", "ray")


def _run_on_ray(scenario: Scenario, trace: Trace | None, cases: list[Case], jobs: int,
                done: dict[Case, SimulationResult], progress: Progress | None) -> None:
    """Every case as a Ray task: on the cluster at ``RAY_ADDRESS`` when set
    (``ray.init()`` reads it), else on a local instance with ``jobs`` CPUs."""
    # a local instance of ours sends no usage statistics anywhere (Ray's
    # default is to report them); a user's own setting wins
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("the ray executor needs Ray: the extra ray (pip install "
                           "'.[ray]' in a checkout of arbiter-core)") from exc
    started = False
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=jobs, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=1)(_run_case)
        # the scenario and trace go to the object store once, not per case
        sc_ref, tr_ref = ray.put(scenario), ray.put(trace)
        pending = {task.remote(sc_ref, tr_ref, name, seed): (name, seed)
                   for name, seed in cases}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                done[pending.pop(ref)] = ray.get(ref)
            if progress is not None:
                progress(len(done), len(cases), 0.0)
    finally:
        if started:
            ray.shutdown()


def run_cases(scenario: Scenario, strategies: Sequence[LoadBalancingStrategy | str],
              seeds: Sequence[int], *, jobs: int = 1, trace: Trace | None = None,
              progress: Progress | None = None,
              executor: str = "process") -> dict[str, list[SimulationResult]]:
    """Run every strategy on every seed.

    Returns ``{strategy: [result per seed, in seed order]}`` in strategy
    order, identical whatever ``jobs`` and ``executor`` are.  With
    ``jobs == 1`` the cases run in this process and ``progress`` also sees
    the running case's simulated time; with more, ``progress`` counts
    finished cases.  ``executor="ray"`` runs every case as a Ray task (on
    the cluster at ``RAY_ADDRESS``, else a local instance with ``jobs``
    CPUs; extra ``ray``).
    """
    names = [LoadBalancingStrategy(s).value for s in strategies]
    cases: list[Case] = [(n, s) for n in names for s in seeds]
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    done: dict[Case, SimulationResult] = {}
    total = len(cases)
    if executor == "ray":
        _run_on_ray(scenario, trace, cases, jobs, done, progress)
    elif jobs == 1 or total == 1:
        for name, seed in cases:
            cb = None
            if progress is not None:
                k = len(done)
                duration = trace.duration_s if trace is not None else scenario.duration_s

                def cb(t: float, k: int = k, duration: float = duration) -> None:
                    progress(k, total, min(t / duration, 1.0) if duration > 0 else 1.0)
            done[(name, seed)] = run_simulation(scenario, name, seed, cb, trace)
            if progress is not None:
                progress(len(done), total, 0.0)
    else:
        level = logging.getLogger().getEffectiveLevel()
        with ProcessPoolExecutor(max_workers=min(jobs, total), initializer=_worker_init,
                                 initargs=(level,)) as pool:
            pending: dict[Future[SimulationResult], Case] = {
                pool.submit(_run_case, scenario, trace, name, seed): (name, seed)
                for name, seed in cases}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    done[pending.pop(fut)] = fut.result()
                if progress is not None:
                    progress(len(done), total, 0.0)
    return {n: [done[(n, s)] for s in seeds] for n in names}
