"""MetricRing against its compiled floor, numpy and plain Python, side by side.

Targets: ``record`` <= 1.5x the floor; ``quantile`` over a 10k window <= 1x
``np.partition`` on the same data; ``stats``, ``count_beyond`` and ``slope`` of
one series among three (10k of its samples in the window) <= 0.5x numpy making
the same time and key selection on the same columns (the "keyed" cases, which
also time the copy-out window mode against validate-and-retry).  Run ``make bench`` for the
numbers; in CI each body runs once and checks its result.
"""

from __future__ import annotations

from typing import Any

import pytest
from _cases import RING_CASES, params


@pytest.mark.parametrize(("factory", "label"), params(RING_CASES))
def test_ring(side_by_side: Any, factory: Any, label: str) -> None:
    side_by_side(factory, label)
