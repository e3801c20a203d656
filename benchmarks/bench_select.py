"""Agent selection: every strategy at 10 to 10,000 agents against plain Python.

Skipped in builds without the selection core.
"""

from __future__ import annotations

from typing import Any

import pytest
from _cases import SELECT_CASES, params


@pytest.mark.parametrize(("factory", "label"), params(SELECT_CASES))
def test_select(side_by_side: Any, factory: Any, label: str) -> None:
    side_by_side(factory, label)
