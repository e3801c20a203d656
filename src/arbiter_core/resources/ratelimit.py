"""Admission rate limiting: a token bucket whose rate adapts to outcomes.

The bucket holds ``limit`` tokens, starts full and refills continuously at
``limit / window_s`` per second, so no interval of length t admits more than
``limit + t * limit / window_s`` requests: there is no double burst at a
window edge as with the original's fixed-window counter.  ``limit = 0``
admits nothing.

With ``adaptive=True`` the limit moves in the manner of adaptive concurrency
limiters (Netflix concurrency-limits' AIMD, with Gradient2's latency signal):
a failed task, or a short-term latency EWMA rising above ``latency_tolerance``
times its long-term baseline, multiplies the limit by ``backoff_ratio`` (at
most once per round, see :meth:`AdaptiveTokenBucket.record_outcome`); a
healthy outcome adds ``increase``; the limit stays within
``[min_limit, max_limit]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._validate import check_non_negative, check_number, check_positive, check_range

__all__ = ["AdaptiveTokenBucket", "RateLimitConfig"]


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Token-bucket admission limit.

    Parameters
    ----------
    max_requests : float
        Bucket size and tokens per window (the starting limit); >= 0.
    window_s : float
        Refill period in seconds (> 0): the rate is ``max_requests / window_s``.
    adaptive : bool
        Let outcomes move the limit (the original's
        ``enable_dynamic_rate_limiting``).
    min_limit, max_limit : float, optional
        Bounds of the adaptive limit; default ``max_requests / 10`` (at least
        1 when ``max_requests >= 1``) and ``max_requests``.
    backoff_ratio : float
        Multiplicative decrease on a bad outcome, in (0, 1); default 0.9
        (Netflix AIMD's default).
    increase : float
        Additive increase on a good outcome (> 0); default 1.
    latency_tolerance : float
        A short-term latency above this multiple of the long-term baseline
        counts as bad (Gradient2's tolerance); default 2.
    """

    max_requests: float = 1000.0
    window_s: float = 60.0
    adaptive: bool = True
    min_limit: float | None = None
    max_limit: float | None = None
    backoff_ratio: float = 0.9
    increase: float = 1.0
    latency_tolerance: float = 2.0

    def __post_init__(self) -> None:
        check_non_negative(self.max_requests, "max_requests")
        check_positive(self.window_s, "window_s")
        if not isinstance(self.adaptive, bool):
            raise TypeError(f"adaptive must be a bool, got {type(self.adaptive).__name__}")
        lo, hi = self.bounds
        if lo > hi:
            raise ValueError(f"min_limit ({lo}) must be <= max_limit ({hi})")
        if not lo <= self.max_requests <= hi:
            raise ValueError(
                f"max_requests ({self.max_requests}) must be within [min_limit, max_limit] "
                f"= [{lo}, {hi}]")
        b = check_number(self.backoff_ratio, "backoff_ratio")
        if not 0.0 < b < 1.0:
            raise ValueError(f"backoff_ratio must be within (0, 1), got {b}")
        check_positive(self.increase, "increase")
        check_range(self.latency_tolerance, "latency_tolerance", 1.0, float("inf"))

    @property
    def bounds(self) -> tuple[float, float]:
        """``(min_limit, max_limit)`` with the defaults filled in."""
        m = float(self.max_requests)
        lo = (check_non_negative(self.min_limit, "min_limit") if self.min_limit is not None
              else (max(1.0, m / 10.0) if m >= 1.0 else m))
        hi = (check_non_negative(self.max_limit, "max_limit") if self.max_limit is not None
              else m)
        return lo, hi


class AdaptiveTokenBucket:
    """The limiter behind :class:`RateLimitConfig` (not thread-safe: the
    allocator calls it under its lock).  O(1) state.

    Examples
    --------
    >>> b = AdaptiveTokenBucket(RateLimitConfig(max_requests=2, window_s=10.0), now=0.0)
    >>> [b.try_acquire(0.0) for _ in range(3)]
    [True, True, False]
    >>> b.try_acquire(5.0)      # refilled 1 token in 5 s
    True
    """

    __slots__ = ("_cfg", "_limit", "_lo", "_hi", "_tokens", "_t", "_short", "_long", "_n",
                 "_hold_until")

    def __init__(self, config: RateLimitConfig, now: float) -> None:
        self._cfg = config
        self._lo, self._hi = config.bounds
        self._limit = float(config.max_requests)
        self._tokens = self._limit
        self._t = now
        self._short = 0.0     # latency EWMAs (Gradient2's short and long windows)
        self._long = 0.0
        self._n = 0
        self._hold_until = -math.inf   # no second decrease before this time

    @property
    def config(self) -> RateLimitConfig:
        return self._cfg

    @property
    def limit(self) -> float:
        """Current bucket size (tokens per window)."""
        return self._limit

    @property
    def rate_per_s(self) -> float:
        return self._limit / self._cfg.window_s

    def _refill(self, now: float) -> None:
        dt = now - self._t
        if dt > 0.0:
            self._tokens = min(self._limit, self._tokens + dt * self._limit / self._cfg.window_s)
            self._t = now

    def available(self, now: float) -> float:
        """Tokens available at ``now``."""
        self._refill(now)
        return self._tokens

    def try_acquire(self, now: float) -> bool:
        """Spend one token if one is available."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def record_outcome(self, success: bool, duration_s: float | None,
                       now: float | None = None) -> None:
        """Feed one finished task (only moves the limit when adaptive).

        With ``now``, decreases are applied at most once per *round*: after a
        decrease, bad outcomes within the next round (the short-term task
        latency, or ``window_s / 10`` before any latency is known) are not
        counted again, as TCP reduces its window once per round trip.  Those
        outcomes belong to tasks admitted before the decrease took effect;
        counting each of them would compound ``backoff_ratio`` and collapse
        admission after one burst of failures (for example a single failing
        agent before it is ejected).  Without ``now`` every bad outcome
        decreases the limit (plain AIMD).
        """
        if not self._cfg.adaptive:
            return
        bad = not success
        if duration_s is not None and success and math.isfinite(duration_s):
            self._n += 1
            if self._n == 1:
                self._short = self._long = duration_s
            else:
                # short window ~ 10 samples, long ~ 500 (Gradient2's defaults)
                self._short += 0.1 * (duration_s - self._short)
                self._long += 0.002 * (duration_s - self._long)
                if self._n >= 10 and self._short > self._cfg.latency_tolerance * self._long:
                    bad = True
        if bad:
            if now is not None:
                if now < self._hold_until:
                    return
                round_s = self._short if self._n else self._cfg.window_s / 10.0
                self._hold_until = now + round_s
            self._set_limit(self._limit * self._cfg.backoff_ratio)
        else:
            self._set_limit(self._limit + self._cfg.increase)

    def _set_limit(self, limit: float) -> None:
        limit = min(self._hi, max(self._lo, limit))
        self._limit = limit
        # a shrinking bucket cannot hold more tokens than its size
        if self._tokens > limit:
            self._tokens = limit
