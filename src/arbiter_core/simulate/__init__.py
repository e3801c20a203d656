"""Discrete-event simulation of a scheduler built on arbiter_core.

The simulation drives the *real* :class:`~arbiter_core.AdaptiveResourceManager`
and :class:`~arbiter_core.RuntimeOptimizer` on a ManualClock.  The package is
split by concern:

* :mod:`.engine` -- the event loop and the scheduler's side of the manager calls;
* :mod:`.service` -- agent service models (slots, limited processor sharing);
* :mod:`.llm` -- the LLM-serving model's prefix cache and request work;
* :mod:`.workload` -- the requests of a run: Poisson arrivals (one stream per
  tenant) and work distributions;
* :mod:`.trace` -- trace files (CSV or JSON lines; Mooncake and Azure LLM
  traces) replayed instead;
* :mod:`.runner` -- (strategy x seed) cases, in this process or in several;
* :mod:`.stats` -- means over seeds, Student-t intervals, the significant winner.
"""

from __future__ import annotations

from .engine import (
    LLM_FIELDS,
    TENANT_FIELDS,
    SimulationResult,
    check_workload,
    compare_strategies,
    jain_index,
    progress_printer,
    run_simulation,
)
from .llm import PrefixCache, llm_work, prefix_hit_bound
from .runner import default_jobs, run_cases, seed_list
from .service import AgentService
from .stats import BestStrategy, best_strategy, mean_ci, summarize, t_quantile_975
from .trace import Trace, TraceError, load_trace
from .workload import Tokens, Workload, draw_work, generate_workload

__all__ = [
    "LLM_FIELDS",
    "TENANT_FIELDS",
    "AgentService",
    "BestStrategy",
    "PrefixCache",
    "SimulationResult",
    "Tokens",
    "Trace",
    "TraceError",
    "Workload",
    "best_strategy",
    "check_workload",
    "compare_strategies",
    "default_jobs",
    "draw_work",
    "generate_workload",
    "jain_index",
    "llm_work",
    "load_trace",
    "prefix_hit_bound",
    "mean_ci",
    "progress_printer",
    "run_cases",
    "run_simulation",
    "seed_list",
    "summarize",
    "t_quantile_975",
]
