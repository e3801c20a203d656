"""MetricRing against its compiled floor, numpy and plain Python, side by side.

Targets (issue 2): ``record`` <= 1.5x the floor; ``quantile`` over a 10k
window <= 1x ``np.partition`` on the same data.  Run ``make bench`` for the
numbers; in CI each body runs once and checks its result.
"""

from __future__ import annotations

from typing import Any

import pytest
from _cases import RING_CASES, params


@pytest.mark.parametrize(("factory", "label"), params(RING_CASES))
def test_ring(side_by_side: Any, factory: Any, label: str) -> None:
    side_by_side(factory, label)
