"""The private benchmark floor module does what it says.

It is built with ARBITER_BENCHFLOOR=ON, as `make test` does; release wheels leave it out.
"""

from __future__ import annotations

import numpy as np
import pytest

from arbiter_core._benchfloor import RecordFloor


def test_record_wraps_and_counts() -> None:
    floor = RecordFloor(3)
    for v in (1.0, 2.0, 3.0, 4.0):
        floor.record(7, v)
    assert floor.written == 4
    assert [floor.value_at(i) for i in range(3)] == [4.0, 2.0, 3.0]


def test_record_many_and_window_sum() -> None:
    floor = RecordFloor(4)
    floor.record_many(1, np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert floor.written == 5
    assert floor.window_sum(2) == 9.0
    assert floor.window_sum(4) == 14.0
    assert floor.window_sum(0) == 0.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RecordFloor(0)
    floor = RecordFloor(2)
    with pytest.raises(ValueError, match="n must be"):
        floor.window_sum(3)
    with pytest.raises(IndexError):
        floor.value_at(2)
