"""PerformanceMonitor recording against prometheus_client, hdrhistogram and DDSketch.

Targets (issue 2): ``record_metric`` (and the ``series().record`` handle)
<= 0.2x prometheus_client ``Histogram.observe`` and <= 0.2x hdrhistogram
``record_value``.
"""

from __future__ import annotations

from typing import Any

import pytest
from _cases import MONITOR_CASES, params


@pytest.mark.parametrize(("factory", "label"), params(MONITOR_CASES))
def test_monitor(side_by_side: Any, factory: Any, label: str) -> None:
    side_by_side(factory, label)
