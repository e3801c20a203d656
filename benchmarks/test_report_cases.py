"""The comparisons that only ``make bench-report`` times run once here, checked.

(The optimizer's and the manager's own pytest benchmarks time the same work;
these keep the report's versions of it from rotting.)
"""

from __future__ import annotations

from typing import Any

import pytest
from _cases import ALLOCATION_CASES, OPTIMIZER_CASES, params


@pytest.mark.parametrize(("factory", "label"), params(OPTIMIZER_CASES + ALLOCATION_CASES))
def test_runs_once_and_checks(factory: Any, label: str) -> None:
    factory().op(label)()
