"""Selection on old reports: the tables of docs/guide/resources.md ("Which
strategy") and BENCHMARKS.md ("Selection signals"), measured now.

    .venv/bin/python benchmarks/signals_report.py [--seeds N] [--duration S]

Two pools, every strategy, usage reports every 5 s and every 0.1 s:

* ten processor-sharing agents (parallelism 1, room for any number of tasks)
  at utilisation 0.8 with lognormal work (sigma 1): random routing gives an
  M/G/1-PS queue each, 5 s mean sojourn; join-the-shortest-queue about a
  quarter of it;
* the supermarket model: 100 such agents at 0.9 per agent with exponential
  work; two choices tend to 2.61 s as n grows (Mitzenmacher 2001), random to
  10 s.

Prints a markdown table of mean end-to-end time (mean over seeds, with the
95 % interval half-width).
"""

from __future__ import annotations

import argparse
import time

from arbiter_core.scenario import scenario_from_dict
from arbiter_core.simulate import mean_ci, run_cases

STRATEGIES = ["random", "round_robin", "least_loaded", "weighted", "power_of_two",
              "peak_ewma", "priority_based", "scored"]


def pool(n: int, rate: float, dist: str, report_s: float, duration: float) -> object:
    return scenario_from_dict({
        "duration_s": duration, "warmup_s": min(100.0, duration / 10),
        "report_interval_s": report_s,
        "pool": {"groups": [{"name": "ps", "count": n, "max_tasks": 100_000,
                             "service": "shared", "parallelism": 1}]},
        "arrivals": {"rate_per_s": rate, "mean_task_s": 1.0, "task_distribution": dist,
                     "task_sigma": 1.0,
                     "priorities": [{"priority": "medium", "share": 1, "timeout_s": 1e6}]},
    })


def table(title: str, cases: dict[str, object], seeds: list[int], jobs: int) -> str:
    cols = list(cases)
    res = {c: run_cases(sc, STRATEGIES, seeds, jobs=jobs) for c, sc in cases.items()}
    lines = [f"**{title}** (mean end-to-end s, ± 95 % half-width over {len(seeds)} seeds)", "",
             "| strategy | " + " | ".join(cols) + " |",
             "|---|" + "---|" * len(cols)]
    for s in STRATEGIES:
        cells = []
        for c in cols:
            m, lo, hi = mean_ci([r.e2e_mean_s for r in res[c][s]])
            cells.append(f"{m:.2f} ± {(hi - lo) / 2:.2f}" if len(seeds) > 1 else f"{m:.2f}")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2000.0)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    seeds = list(range(a.seeds))
    t0 = time.time()
    print(table("10 PS agents, utilisation 0.8, lognormal work", {
        "reports every 5 s": pool(10, 8.0, "lognormal", 5.0, a.duration),
        "reports every 0.1 s": pool(10, 8.0, "lognormal", 0.1, a.duration),
    }, seeds, a.jobs))
    print()
    print(table("supermarket model: 100 agents, 0.9 per agent, exponential work", {
        "reports every 5 s": pool(100, 90.0, "exponential", 5.0, a.duration / 2),
        "reports every 0.05 s": pool(100, 90.0, "exponential", 0.05, a.duration / 2),
    }, seeds, a.jobs))
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
