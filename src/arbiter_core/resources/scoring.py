"""Selection signals: the scoring profile of the ``scored`` strategy, and the
age rule every load-aware strategy applies to reported figures.

Selection is filters, then weighted scorers, then a picker (as in the llm-d
router).  The filters are the table's eligibility rules (health tier, a free
slot, fit, ejection, a request's exclusions, tenant caps).  Each scorer turns
one signal into a number per agent, lower is better:

========== ==============================================================
scorer     signal
========== ==============================================================
count      outstanding requests / concurrency (exact: every grant and
           release passes through the allocator)
queue      the engine's waiting requests / concurrency, from the last
           report corrected by what was granted or released since
utilization the larger of cpu and memory use (fraction), corrected likewise
kv_cache   KV-cache use (fraction), corrected likewise
latency    the agent's peak EWMA latency, seconds
affinity   reserved for cache affinity (the share of the request's prefix
           the agent holds); 0 until that scorer exists
========== ==============================================================

A reported figure's weight falls as ``exp(-age / report_decay_s)``.  The
seven strategy names are presets over the same estimate: ``least_loaded`` is
``100 * count + (cpu + mem) / 2`` taking the minimum, ``weighted`` is
``(50 * count + 0.3 * cpu + 0.2 * mem) / weight``, ``power_of_two`` the
least-loaded key under two random choices; with a fresh report and nothing
granted since they are the original formulas (``count`` is task% when
concurrency is ``max_tasks``, the default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .._validate import check_non_negative

__all__ = ["PICKERS", "ScoringProfile"]

PICKERS = ("min", "two_choices", "weighted_random")

Picker = Literal["min", "two_choices", "weighted_random"]


@dataclass(frozen=True, slots=True)
class ScoringProfile:
    """Weights of the scorers and the picker of the ``scored`` strategy.

    The default is llm-d's default profile ("queue 1, kv-cache 1", here with
    the count the router keeps exactly, and ``affinity`` for the prefix
    scorer when it is used).

    Parameters
    ----------
    count, queue, utilization, kv_cache, latency, affinity : float
        Weights (finite, >= 0) of the scorers (see the module docstring).
    by_weight : bool
        Divide every agent's score by its weight.
    picker : {"min", "two_choices", "weighted_random"}
        ``min``: the lowest score (ties at random); ``two_choices``: the lower
        of two random eligible agents (O(1), no herding on old figures);
        ``weighted_random``: each eligible agent with probability
        proportional to ``1 / (1 + score)``.

    Examples
    --------
    >>> ScoringProfile(queue=1.0, kv_cache=1.0, affinity=2.0).picker
    'min'
    >>> ScoringProfile(picker="best")
    Traceback (most recent call last):
    ...
    ValueError: picker must be one of ('min', 'two_choices', 'weighted_random'), got 'best'
    """

    count: float = 1.0
    queue: float = 1.0
    utilization: float = 0.0
    kv_cache: float = 1.0
    latency: float = 0.0
    affinity: float = 2.0
    by_weight: bool = False
    picker: Picker = "min"

    def __post_init__(self) -> None:
        for name in ("count", "queue", "utilization", "kv_cache", "latency", "affinity"):
            check_non_negative(getattr(self, name), name)
        if not isinstance(self.by_weight, bool):
            raise TypeError(f"by_weight must be a bool, got {type(self.by_weight).__name__}")
        if self.picker not in PICKERS:
            raise ValueError(f"picker must be one of {PICKERS}, got {self.picker!r}")


def check_report_decay(value: object) -> float:
    """``report_decay_s``: > 0, ``math.inf`` meaning reports never lose weight."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == math.inf:
        return math.inf
    v = check_non_negative(value, "report_decay_s")
    if v == 0.0:
        raise ValueError("report_decay_s must be > 0, got 0")
    return v
