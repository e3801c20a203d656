"""Replication statistics: means over seeds, Student-t intervals, the winner.

Every strategy runs on the same seeds, and a seed fixes the workload, so the
runs are paired (common random numbers): strategies are compared on their
per-seed differences, which removes the workload's own variation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .engine import SimulationResult

__all__ = ["BestStrategy", "best_strategy", "mean_ci", "summarize", "t_quantile_975"]

# two-sided 95 % Student-t critical values t_{0.975, df}, df = 1..30
_T975 = (12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851,
         2.364624252, 2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830,
         2.160368656, 2.144786688, 2.131449546, 2.119905299, 2.109815578, 2.100922040,
         2.093024054, 2.085963447, 2.079613845, 2.073873068, 2.068657610, 2.063898562,
         2.059538553, 2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456)
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom.

    Exact (to 9 digits) for df <= 30 from a table, then the Cornish-Fisher
    expansion in 1/df (error below 1e-6 there).

    >>> round(t_quantile_975(4), 4)
    2.7764
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4


def mean_ci(values: Sequence[float]) -> tuple[float, float, float] | None:
    """Mean and 95 % Student-t interval ``(mean, lo, hi)``; None for < 2 values."""
    n = len(values)
    if n < 2:
        return None
    m = math.fsum(values) / n
    var = math.fsum((v - m) ** 2 for v in values) / (n - 1)
    h = t_quantile_975(n - 1) * math.sqrt(var / n)
    return m, m - h, m + h


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    x = float(v)
    return None if math.isnan(x) else x


def summarize(runs: Sequence[SimulationResult]) -> dict[str, Any]:
    """One table row for a strategy run on several seeds.

    Every numeric field becomes its mean over the seeds (a field missing on
    some seeds -- e.g. no task waited -- averages the seeds that have it), and
    with two or more seeds ``row["ci95"][field] = [lo, hi]`` is its 95 %
    Student-t interval.  ``capacity_action`` is the most frequent one (first
    seed on ties), ``recommendations`` are the first seed's, and every
    ``tenants[t]`` is summarized the same way (its interval in
    ``tenants[t]["ci95"]``).  One seed gives exactly that run's row.
    """
    rows = [r.table_row() for r in runs]
    if len(rows) == 1:
        return rows[0]
    out: dict[str, Any] = {}
    ci: dict[str, list[float] | None] = {}
    for key, first in rows[0].items():
        if key == "capacity_action":
            out[key] = Counter(r[key] for r in rows).most_common(1)[0][0]
        elif key == "recommendations":
            out[key] = first
        elif key == "tenants":
            out[key] = _summarize_tenants([r[key] for r in rows])
        elif isinstance(first, (int, float)) or first is None:
            out[key], ci[key] = _mean_and_ci([r[key] for r in rows])
        else:
            out[key] = first
    out["ci95"] = ci
    return out


def _mean_and_ci(values: Sequence[Any]) -> tuple[float | None, list[float] | None]:
    """The mean of the seeds that have a value, and its 95 % interval."""
    vals = [x for x in (_num(v) for v in values) if x is not None]
    if not vals:
        return None, None
    mc = mean_ci(vals)
    return (round(math.fsum(vals) / len(vals), 6),
            None if mc is None else [round(mc[1], 6), round(mc[2], 6)])


def _summarize_tenants(per_seed: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Per tenant, every field's mean over the seeds and, in
    ``tenants[t]["ci95"]``, its interval.  A tenant missing on a seed counts
    as nothing submitted there (zeros, no times)."""
    names = list(dict.fromkeys(t for tenants in per_seed for t in tenants))
    out: dict[str, Any] = {}
    for t in names:
        rows = [tenants.get(t, {}) for tenants in per_seed]
        fields = list(dict.fromkeys(k for row in rows for k in row))
        row_out: dict[str, Any] = {}
        ci: dict[str, list[float] | None] = {}
        for key in fields:
            # a count is 0 on a seed without the tenant; a time is absent
            default = None if key.endswith("_s") else 0
            row_out[key], ci[key] = _mean_and_ci([row.get(key, default) for row in rows])
        row_out["ci95"] = ci
        out[t] = row_out
    return out


@dataclass(frozen=True)
class BestStrategy:
    """The verdict of :func:`best_strategy`.

    ``winner`` is set only when the lowest mean end-to-end time is
    significantly lower than the runner-up's (the paired 95 % interval of
    their difference excludes 0).  ``leader`` is the lowest mean either way.
    """

    metric: str
    leader: str
    winner: str | None
    runner_up: str | None
    diff: float | None = None           # runner-up minus leader, mean over seeds
    diff_ci: tuple[float, float] | None = None
    seeds: int = 1
    excluded: tuple[str, ...] = ()      # completed significantly fewer requests

    def message(self, means: Mapping[str, float]) -> str:
        """A plain sentence for the table's footer."""
        m = self.metric
        if self.runner_up is None:
            if self.excluded:
                return (f"best strategy: {self.leader} -- every other strategy completed "
                        f"significantly fewer requests")
            return f"best strategy: {self.leader} (the only strategy run)"
        lead, ru = means[self.leader], means[self.runner_up]
        if self.seeds < 2:
            return (f"best strategy: not decided on one seed -- {self.leader} has the lowest "
                    f"{m} ({lead:.3f} s, {self.runner_up} next at {ru:.3f} s); run --seeds N "
                    f"(N >= 2) for intervals and a significance test")
        assert self.diff is not None and self.diff_ci is not None
        lo, hi = self.diff_ci
        paired = (f"by {self.diff:.3f} s [{lo:.3f}, {hi:.3f}] (paired 95% CI over "
                  f"{self.seeds} seeds)")
        if self.winner is not None:
            return (f"best strategy: {self.winner} -- lowest {m} ({lead:.3f} s), "
                    f"significantly below the runner-up {self.runner_up} ({ru:.3f} s) {paired}")
        return (f"best strategy: none significantly better -- {self.leader} ({lead:.3f} s) "
                f"and {self.runner_up} ({ru:.3f} s) differ {paired}, an interval that "
                f"includes 0")


def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float] | None:
    return mean_ci([x - y for x, y in zip(a, b)])


def best_strategy(runs: Mapping[str, Sequence[SimulationResult]],
                  metric: str = "e2e_mean_s") -> BestStrategy | None:
    """Pick the strategy with the lowest mean ``metric`` and test it against
    the runner-up.

    ``runs[name]`` are that strategy's runs, one per seed, in the same seed
    order for every strategy.  A strategy that completes fewer requests than
    the best completer -- significantly, and by more than ``1 %`` of the
    submitted requests -- cannot win (a lower end-to-end time bought by timing
    requests out is no win).  None when no strategy has a value for ``metric``.
    """
    def series(name: str, key: str) -> list[float]:
        return [math.nan if _num(getattr(r, key)) is None else float(getattr(r, key))
                for r in runs[name]]

    names = [n for n in runs if not any(math.isnan(x) for x in series(n, metric))]
    if not names:
        return None
    seeds = min(len(runs[n]) for n in names)
    excluded: list[str] = []
    if seeds >= 2:
        top = max(names, key=lambda n: math.fsum(series(n, "completed")))
        margin = 0.01 * math.fsum(series(top, "submitted")) / seeds
        for n in names:
            d = _paired(series(top, "completed"), series(n, "completed"))
            if n != top and d is not None and d[1] > margin:
                excluded.append(n)
    candidates = [n for n in names if n not in excluded]
    ordered = sorted(candidates, key=lambda n: math.fsum(series(n, metric)))
    leader = ordered[0]
    if len(ordered) == 1:
        # the only strategy run, or every other one completed significantly fewer
        return BestStrategy(metric, leader, leader, None, seeds=seeds,
                            excluded=tuple(excluded))
    ru = ordered[1]
    d = _paired(series(ru, metric), series(leader, metric)) if seeds >= 2 else None
    if d is None:
        return BestStrategy(metric, leader, None, ru, seeds=seeds, excluded=tuple(excluded))
    mean, lo, hi = d
    return BestStrategy(metric, leader, leader if lo > 0 else None, ru, diff=mean,
                        diff_ci=(lo, hi), seeds=seeds, excluded=tuple(excluded))
