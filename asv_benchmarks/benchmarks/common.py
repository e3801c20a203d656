"""Shared helpers for the asv suite.

Benchmarks of a subsystem that is not in the checked-out commit must still
import: they look their classes up with :func:`need` inside ``setup``, which
raises ``NotImplementedError`` (asv reports the benchmark as skipped).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

SEED = 7


def need(*names: str) -> tuple[Any, ...]:
    """Return ``arbiter_core.<name>`` for each name, or skip the benchmark."""
    module = importlib.import_module("arbiter_core")
    missing = [n for n in names if not hasattr(module, n)]
    if missing:
        raise NotImplementedError(f"arbiter_core has no {', '.join(missing)} at this commit")
    return tuple(getattr(module, n) for n in names)


def latency_stream(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``n`` timestamps 10 ms apart and a slowly degrading latency series (ms)."""
    rng = np.random.default_rng(seed)
    ts = np.arange(n) * 0.01
    return ts, 40.0 + 0.05 * ts + rng.gamma(2.0, 5.0, n)
