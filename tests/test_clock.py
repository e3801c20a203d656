import math

import pytest

from arbiter_core import Clock, ManualClock, MonotonicClock


def test_manual_clock_advances_only_when_told():
    clock = ManualClock(start=5.0)
    assert clock.now() == 5.0
    assert clock.now() == 5.0
    assert clock.advance(2.5) == 7.5
    assert clock.now() == 7.5
    assert clock.advance(0) == 7.5


def test_manual_clock_default_start_is_zero():
    assert ManualClock().now() == 0.0


@pytest.mark.parametrize("bad", [-1.0, -1e-9])
def test_negative_advance_is_value_error_and_changes_nothing(bad):
    clock = ManualClock(start=1.0)
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(bad)
    assert clock.now() == 1.0


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_advance_and_start_rejected(bad):
    with pytest.raises(ValueError, match="seconds"):
        ManualClock().advance(bad)
    with pytest.raises(ValueError, match="start"):
        ManualClock(start=bad)


def test_type_errors_name_the_argument():
    with pytest.raises(TypeError, match="seconds"):
        ManualClock().advance("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="start"):
        ManualClock(start=None)  # type: ignore[arg-type]


def test_set_refuses_to_go_back():
    clock = ManualClock(start=10.0)
    assert clock.set(12.0) == 12.0
    with pytest.raises(ValueError, match="t must be >= now"):
        clock.set(11.0)
    assert clock.now() == 12.0


def test_monotonic_clock_never_decreases_and_is_a_clock():
    clock = MonotonicClock()
    readings = [clock.now() for _ in range(1000)]
    assert readings == sorted(readings)
    assert isinstance(clock, Clock)
    assert isinstance(ManualClock(), Clock)


def test_ring_c_clock_matches_time_monotonic():
    import time

    from arbiter_core import monotonic_now

    a = time.monotonic()
    b = monotonic_now()
    c = time.monotonic()
    assert a <= b <= c


def test_numpy_numbers_are_numbers():
    import numpy as np

    clock = ManualClock(start=np.int64(5))
    assert clock.advance(np.int32(2)) == 7.0
    assert clock.advance(np.float32(0.5)) == 7.5
    assert clock.set(np.int64(10)) == 10.0
    assert type(clock.now()) is float
    with pytest.raises(TypeError, match="seconds"):
        clock.advance(np.bool_(True))


def test_steady_clock_never_goes_back_and_counts_forward_steps_in_full():
    from arbiter_core.clock import SteadyClock

    class Wall:
        t = 10.0

        def now(self):
            return self.t

    wall = Wall()
    steady = SteadyClock(wall)
    readings = [steady.now()]
    for t in (11.0, 5.0, 6.5, 6.0, 100.0, 101.0):
        wall.t = t
        readings.append(steady.now())
    # back steps count as no time, forward steps in full
    assert readings == [10.0, 11.0, 11.0, 12.5, 12.5, 106.5, 107.5]
    assert steady.steps_back == 2
