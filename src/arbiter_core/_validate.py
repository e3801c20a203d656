"""Argument validation shared by the whole package.

One wording for every number: a bad argument raises ``TypeError`` (wrong type;
bools are never numbers here) or ``ValueError`` (wrong value), and both name
the argument.  numpy scalars are accepted (``numbers.Real``/``Integral``).
"""

from __future__ import annotations

import math
import numbers

__all__ = ["INT_MAX", "MAX_ID_LENGTH", "MAX_NAME_LENGTH", "check_choice", "check_int",
           "check_name",
           "check_non_negative", "check_number", "check_optional_number", "check_positive",
           "check_range", "check_time_bound", "check_timestamp"]


def check_number(value: object, name: str) -> float:
    """``value`` as a finite float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def check_optional_number(value: object, name: str) -> float | None:
    """``value`` as a finite float, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def check_timestamp(value: object, name: str = "timestamp") -> float | None:
    """A sample's timestamp: a finite number, or None (read the clock)."""
    return check_optional_number(value, name)


def check_time_bound(value: object, name: str, *, allow_none: bool) -> float | None:
    """A query's time bound: a number (infinities allowed) but not NaN; None if allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number{' or None' if allow_none else ''}, "
                        f"got {type(value).__name__}")
    v = float(value)
    if v != v:
        raise ValueError(f"{name} must not be NaN")
    return v


def check_non_negative(value: object, name: str) -> float:
    """A finite number >= 0."""
    v = check_number(value, name)
    if v < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def check_positive(value: object, name: str) -> float:
    """A finite number > 0."""
    v = check_number(value, name)
    if v <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def check_range(value: object, name: str, lo: float = 0.0, hi: float = 100.0) -> float:
    """A finite number within [lo, hi] (default: a percentage)."""
    v = check_number(value, name)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be within [{lo:g}, {hi:g}], got {value!r}")
    return v


#: The largest count any argument may give (the C core keeps counts in 32-bit ints).
INT_MAX = 2**31 - 1


def check_int(value: object, name: str, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int within ``[minimum, maximum]``; ``maximum`` defaults
    to :data:`INT_MAX`, so no count reaches C code as an overflow."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    hi = INT_MAX if maximum is None else maximum
    if v < minimum or v > hi:
        raise ValueError(f"{name} must be within [{minimum}, {hi}], got {v}")
    return v


#: Longest name accepted (characters): agent ids, tenants, metric sources, cache ids.
MAX_NAME_LENGTH = 256
#: Longest request or task id accepted (characters).
MAX_ID_LENGTH = 1024


def check_name(value: object, name: str, limit: int = MAX_NAME_LENGTH) -> str:
    """``value`` as a non-empty str of at most ``limit`` characters.

    The message gives the length, never the value: an enormous name must not
    make an enormous error message or log line.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not 0 < len(value) <= limit:
        raise ValueError(f"{name} must be 1 to {limit} characters, got {len(value)}")
    return value


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """``value`` as one of the strings ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                         f"got {value!r}")
    return value
