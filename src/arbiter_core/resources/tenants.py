"""Tenant policies: weights, caps and rate limits per tenant.

Every request belongs to a tenant (``AllocationRequest.tenant``, default
``"default"``).  A tenant's policy is its share of dispatches from the queue
(``weight``), its caps (``max_active`` allocations at once, ``max_queued``
waiting) and its own token bucket (``rate_per_s``, ``burst``).  Admission
checks the tenant's limits first, then the global ones; a rejected request
spends no token anywhere.

How priorities and tenants interact: the queue first chooses a *tenant*, by
weighted fair queuing (start-time fair queuing over dispatches), then that
tenant's best request by the usual order (priority with aging, FIFO among
equals).  Priorities therefore order work within a tenant; they never let one
tenant take another's share.  A CRITICAL request of a tenant that has used
its share waits for the tenants with a smaller start tag.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validate import MAX_NAME_LENGTH, check_int, check_name, check_non_negative, check_positive

__all__ = ["MAX_TENANT_NAME", "TenantPolicy", "check_tenant"]

#: Longest tenant name accepted (characters): the package's name limit.
MAX_TENANT_NAME = MAX_NAME_LENGTH


def check_tenant(tenant: object, name: str = "tenant") -> str:
    """``tenant`` as a valid tenant name: a non-empty str of at most 256 characters."""
    return check_name(tenant, name, MAX_TENANT_NAME)


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """One tenant's share and limits (validated).

    Parameters
    ----------
    weight : float
        Share of dispatches while backlogged, relative to the other
        backlogged tenants (> 0, default 1).
    max_active : int, optional
        At most this many ALLOCATED requests at once; more wait QUEUED
        (0 pauses the tenant).  ``None``: no cap.
    max_queued : int, optional
        At most this many QUEUED; beyond it requests are REJECTED naming the
        tenant's queue limit.  ``None``: no cap (the global ``max_queue``
        still applies).
    rate_per_s : float, optional
        The tenant's token bucket refill rate; ``None``: no bucket.
    burst : float, optional
        The bucket's size (it starts full); default ``max(1, rate_per_s)``.
        0 admits nothing.  Given without ``rate_per_s`` it is an error.
    """

    weight: float = 1.0
    max_active: int | None = None
    max_queued: int | None = None
    rate_per_s: float | None = None
    burst: float | None = None

    def __post_init__(self) -> None:
        w = check_positive(self.weight, "weight")
        object.__setattr__(self, "weight", w)
        for name in ("max_active", "max_queued"):
            v = getattr(self, name)
            if v is not None:
                check_int(v, name, 0)
        if self.rate_per_s is None:
            if self.burst is not None:
                raise ValueError("burst needs rate_per_s (a bucket without a refill rate)")
        else:
            rate = check_non_negative(self.rate_per_s, "rate_per_s")
            object.__setattr__(self, "rate_per_s", rate)
            burst = max(1.0, rate) if self.burst is None else check_non_negative(
                self.burst, "burst")
            object.__setattr__(self, "burst", float(burst))

    def core_args(self) -> tuple[float, int, int, float, float]:
        """``(weight, max_active, max_queued, rate, burst)`` for the C core
        (-1: no cap; a negative rate: no bucket)."""
        return (self.weight,
                -1 if self.max_active is None else self.max_active,
                -1 if self.max_queued is None else self.max_queued,
                -1.0 if self.rate_per_s is None else self.rate_per_s,
                0.0 if self.burst is None else self.burst)
