"""The simulator against queueing theory.

The simulator's only inventions are its models of agents and traffic; these
tests check them, driven through the real manager, against closed forms:

* M/M/c with a central FIFO queue: Erlang C mean wait;
* M/G/1 processor sharing behind random routing: mean sojourn 1/(mu - lambda/n),
  whatever the work distribution (insensitivity);
* join-the-shortest-queue beats random routing on a processor-sharing pool,
  and is bounded below by the central-queue M/M/c;
* Little's law on every run.

Each check runs several independent seeds of long runs (a warm-up excluded)
and compares the theory with the mean over seeds: the difference must be
within three standard errors of that mean (a Student-t interval of about
99 % for 8 seeds) *and* within a stated relative tolerance, so a wrong model
cannot pass on noise and a right one does not fail on it.  The seeds are
fixed, so the outcome is deterministic.  The cases run in two processes.
"""

from __future__ import annotations

import math

import pytest

from arbiter_core.scenario import scenario_from_dict
from arbiter_core.simulate import SimulationResult, mean_ci, run_cases

SEEDS = list(range(8))
JOBS = 2


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load a = lambda/mu
    (Erlang's C formula; Kleinrock, Queueing Systems Vol. I, the M/M/m queue):
    C = [a^c / c! / (1 - a/c)] / [sum_{k<c} a^k / k! + a^c / c! / (1 - a/c)]."""
    top = a ** c / math.factorial(c) / (1.0 - a / c)
    return top / (sum(a ** k / math.factorial(k) for k in range(c)) + top)


def scenario(groups: list[dict], rate: float, dist: str, duration: float, warmup: float):
    return scenario_from_dict({
        "duration_s": duration, "warmup_s": warmup,
        # no usage reports: the balancer sees task counts only (a report is
        # always a little stale, which the closed forms know nothing of)
        "usage_reports": False,
        "pool": {"groups": groups},
        "arrivals": {"rate_per_s": rate, "mean_task_s": 1.0, "task_distribution": dist,
                     "task_sigma": 1.0, "pareto_shape": 3.0,
                     # one class, deadlines that never expire: a pure FIFO queue
                     "priorities": [{"priority": "medium", "share": 1, "timeout_s": 1e6}]},
    })


def check_littles_law(runs: list[SimulationResult]) -> None:
    # Little's law L = lambda W (J. D. C. Little, "A proof for the queuing formula
    # L = lambda W", Operations Research 9, 1961) over each whole run: time-average
    # number in system against arrival rate times mean sojourn, exact for a run
    # that starts and ends empty
    for r in runs:
        assert r.mean_in_system == pytest.approx(r.arrival_rate_per_s * r.sojourn_mean_s,
                                                 rel=1e-9)
        assert r.completed == r.submitted


def compare(label: str, theory: float, values: list[float], rel_tol: float) -> float:
    """Assert the theory is within 3 standard errors and ``rel_tol`` of the
    mean over seeds; returns the mean."""
    m, lo, hi = mean_ci(values)
    se = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1) / len(values))
    err = (m - theory) / theory
    print(f"{label}: theory {theory:.4f}, simulated {m:.4f} (95% CI {lo:.4f}..{hi:.4f}, "
          f"{len(values)} seeds), error {err:+.1%}")
    assert abs(m - theory) <= 3 * se, (label, theory, m, se)
    assert abs(err) <= rel_tol, (label, theory, m)
    return m


def test_mmc_central_queue_matches_erlang_c():
    # c single-slot agents, Poisson arrivals, exponential work: M/M/c with the
    # manager's queue as the central FIFO queue.  Erlang C:
    #   Wq = C(c, a) / (c mu - lambda),  W = Wq + 1/mu
    c, lam, mu = 4, 2.8, 1.0
    sc = scenario([{"name": "s", "count": c, "max_tasks": 1}], lam, "exponential",
                  duration=6000.0, warmup=200.0)
    runs = run_cases(sc, ["least_loaded"], SEEDS, jobs=JOBS)["least_loaded"]
    check_littles_law(runs)
    wq = erlang_c(c, lam / mu) / (c * mu - lam)
    compare("M/M/4 rho=0.7 mean wait (Erlang C)", wq, [r.wait_mean_s for r in runs], 0.10)
    compare("M/M/4 rho=0.7 mean sojourn", wq + 1 / mu, [r.e2e_mean_s for r in runs], 0.03)


@pytest.mark.parametrize(("dist", "first_seed"),
                         [("exponential", 100), ("deterministic", 200), ("lognormal", 300),
                          ("pareto", 400)])
def test_processor_sharing_with_random_routing_is_insensitive(dist, first_seed):
    # n processor-sharing agents (parallelism 1, room for any number of tasks)
    # behind uniform random routing: each is an M/G/1-PS queue fed at lambda/n,
    # whose mean sojourn is 1/(mu - lambda/n) for ANY work distribution with
    # mean 1/mu: under processor sharing E[T | work x] = x / (1 - rho) (Kleinrock,
    # Queueing Systems Vol. II, processor sharing; the insensitivity of PS).
    n, lam, mu = 10, 6.0, 1.0
    sc = scenario([{"name": "ps", "count": n, "max_tasks": 1000, "service": "shared",
                    "parallelism": 1}], lam, dist, duration=1000.0, warmup=100.0)
    # seeds of their own: a seed fixes the arrival times, and the four checks
    # should be independent evidence
    seeds = [first_seed + k for k in SEEDS]
    runs = run_cases(sc, ["random"], seeds, jobs=JOBS)["random"]
    check_littles_law(runs)
    assert all(r.wait_mean_s == 0 for r in runs)      # never a queue: PS takes all
    compare(f"M/G/1-PS x{n}, random routing, rho=0.6, {dist} work",
            1 / (mu - lam / n), [r.e2e_mean_s for r in runs], 0.05)


def test_join_the_shortest_queue_beats_random_on_a_processor_sharing_pool():
    # Ten PS agents at 80 % load.  Random routing: 1/(mu - lambda/n) = 5 s.
    # Least-loaded without usage reports is join-the-shortest-queue, which
    # theory puts at about a quarter of that (Gupta, Harchol-Balter, Sigman,
    # Whitt, "Analysis of join-the-shortest-queue routing for web server farms",
    # Performance Evaluation 64, 2007) and never below the central-queue M/M/10
    # (a central queue keeps min(N, c) servers busy, the most any policy can).
    n, lam, mu = 10, 8.0, 1.0
    sc = scenario([{"name": "ps", "count": n, "max_tasks": 1000, "service": "shared",
                    "parallelism": 1}], lam, "exponential", duration=1000.0, warmup=100.0)
    runs = run_cases(sc, ["random", "least_loaded"], SEEDS, jobs=JOBS)
    for rs in runs.values():
        check_littles_law(rs)
    rnd = compare("PS x10 rho=0.8 random routing", 1 / (mu - lam / n),
                  [r.e2e_mean_s for r in runs["random"]], 0.08)
    jsq = [r.e2e_mean_s for r in runs["least_loaded"]]
    m, lo, hi = mean_ci(jsq)
    bound = 1 / mu + erlang_c(n, lam / mu) / (n * mu - lam)
    print(f"PS x10 rho=0.8 join-the-shortest-queue: {m:.4f} (95% CI {lo:.4f}..{hi:.4f}), "
          f"{m / rnd:.2f} of random, {m / 5.0:.2f} of random's closed form; "
          f"M/M/10 bound {bound:.4f}")
    assert lo > bound                  # above the central-queue bound
    assert hi < 0.35 * 5.0             # about a quarter of random's 5 s
    # and better than random on every seed (paired: the same arrivals)
    assert all(j < 0.5 * r.e2e_mean_s for j, r in zip(jsq, runs["random"]))
