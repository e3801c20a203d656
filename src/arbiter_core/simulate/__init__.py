"""Discrete-event simulation of a scheduler built on arbiter_core.

The simulation drives the *real* :class:`~arbiter_core.AdaptiveResourceManager`
and :class:`~arbiter_core.RuntimeOptimizer` on a ManualClock.  The package is
split by concern: :mod:`.engine` (the event loop and the scheduler's side of
the manager calls).
"""

from __future__ import annotations

from .engine import (
    SimulationResult,
    compare_strategies,
    jain_index,
    progress_printer,
    run_simulation,
)

__all__ = [
    "SimulationResult",
    "compare_strategies",
    "jain_index",
    "progress_printer",
    "run_simulation",
]
