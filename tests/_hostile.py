"""Hostile inputs for the fuzzers, and the tally the test run reports.

``call(fn, *args, allowed=...)`` runs one public call with whatever the
fuzzer drew and lets through only the documented exceptions (``ValueError``,
``TypeError``, ``KeyError`` unless told otherwise); anything else -- an
``AttributeError``, an ``IndexError``, a ``SystemError`` from C, a
``RecursionError`` -- fails the test with the call that caused it.  A
documented exception must also say something: an empty message is a failure.

``COUNTS`` is printed at the end of the run (tests/conftest.py), so CI's log
says how many calls were fuzzed, how many steps the soak took, and so on.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

#: tallies for the end-of-run summary: "fuzz calls", "fuzz steps", ...
COUNTS: Counter[str] = Counter()

DOCUMENTED: tuple[type[BaseException], ...] = (ValueError, TypeError, KeyError)
#: the ring takes C scalars: an int outside its C type is an OverflowError (documented)
RING: tuple[type[BaseException], ...] = (*DOCUMENTED, OverflowError)

#: a string far beyond every documented size limit (1 MiB)
ENORMOUS = "x" * (1 << 20)


class Big(str):
    """A long str whose repr is short: hypothesis reprs the strategies and
    steps it runs, and a plain 1 MiB constant in a strategy made it build
    megabytes of reprs per step (GBs of RSS over a few hundred examples)."""

    def __repr__(self) -> str:
        return f"<str of {len(self)} characters>"


HUGE = Big(ENORMOUS)


def examples(default: int) -> int:
    """Examples per fuzzer: ``ARBITER_FUZZ_EXAMPLES`` overrides (the sanitizer
    run and ``make soak`` raise it)."""
    return int(os.environ.get("ARBITER_FUZZ_EXAMPLES", default))


def call(fn: Callable[..., Any], *args: Any, allowed: tuple[type[BaseException], ...] = DOCUMENTED,
         **kwargs: Any) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, exception)`` for a documented exception."""
    COUNTS["fuzz calls"] += 1
    try:
        return True, fn(*args, **kwargs)
    except allowed as exc:
        COUNTS["fuzz calls refused"] += 1
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        assert str(msg), f"{type(exc).__name__} without a message from {_name(fn)}{args!r:.200}"
        return False, exc


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))


class _Opaque:
    """An object no API should accept as a number or a name."""

    def __repr__(self) -> str:
        return "<opaque>"


NAN, INF = math.nan, math.inf

# numbers: the plain, the edges, the non-finite, the absurd and the wrong types
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 0.0, -0.0, 1e-300, 1e300, 1e308, -1e308, 2**63, -(2**63),
                     2**31, NAN, INF, -INF, 100.0, 100.0000001, 50.0]),
    st.booleans(),
    st.none(),
    st.sampled_from(["1", "", b"1", [], {}, (), _Opaque(), 1j]),
)
small_ints = st.one_of(st.integers(-3, 20), st.sampled_from([0, 2**31, 2**63, -(2**63)]),
                       numbers)
timestamps = st.one_of(st.none(), st.floats(-1e6, 1e6), numbers)

# names: valid, empty, enormous, control characters, surrogates, wrong types
_text = st.text(st.characters(codec="utf-8"), max_size=12)
names = st.one_of(
    _text,
    st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", Big("é" * 300), Big("a" * 256),
                     Big("a" * 257), Big("a" * 1024), Big("a" * 1025), HUGE]),
    st.integers(-5, 5), st.none(), st.binary(max_size=4),
    st.sampled_from([("a",), ["a"], _Opaque(), 1.5]),
)
