"""ResourceAllocator: requests, the priority queue, deadlines, rate limiting.

Every request ends in exactly one state at every moment -- QUEUED, ALLOCATED,
RELEASED, REJECTED, TIMED_OUT or FAILED -- and the statistics count
submissions by their current state, so ``allocated = active + released`` and
``total = queued + allocated + rejected + timed_out + failed`` always hold.

The state and the hot paths (records, queue, deadlines, per-agent lists,
history, counters) live in the Cython core :class:`arbiter_core._alloc.AllocCore`;
this class adds configuration, asyncio waiting, listeners and statistics
records.  Selection and the slot reservation are one C call into the agent
table, so concurrent allocations can never oversubscribe an agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from .._alloc import FAIR_SHARES, STATUS_NAMES, AllocCore
from .._listeners import Listeners
from .._request import AllocationRequest
from .._validate import check_choice
from ..clock import is_monotonic_default
from ..types import AllocationStatus
from .balancer import LoadBalancer
from .ratelimit import AdaptiveTokenBucket, RateLimitConfig
from .records import (
    ResourceRequirements,
)
from .tenants import TenantPolicy, check_tenant

__all__ = [
    "AllocationRequest",
    "AllocationResult",
    "AllocationStatistics",
    "ResourceAllocator",
]

log = logging.getLogger("arbiter_core.resources")

QUEUED = AllocationStatus.QUEUED
ALLOCATED = AllocationStatus.ALLOCATED
RELEASED = AllocationStatus.RELEASED
REJECTED = AllocationStatus.REJECTED
TIMED_OUT = AllocationStatus.TIMED_OUT
FAILED = AllocationStatus.FAILED
_STATUSES = tuple(AllocationStatus(name) for name in STATUS_NAMES)


class AllocationResult(NamedTuple):
    """The state of one request, as a snapshot.

    A named tuple rather than a dataclass because two are built per
    allocation on the hot path (the core builds it in C; it is immutable all
    the same).

    Attributes
    ----------
    request_id, task_id : str
    status : AllocationStatus
    agent_id : str or None
        The agent holding (or that held) the task.
    failure_reason : str or None
        Why it was REJECTED, TIMED_OUT or FAILED ("cancelled" for a
        withdrawn request).
    wait_s : float
        Time from submission to allocation (or to now / to the end while not
        allocated).
    requested_at : float
    allocated_at, finished_at : float or None
    priority : int
    allocated_resources : ResourceRequirements or None
    decision_duration_s : float
        Time the allocator spent deciding the submission.
    """

    request_id: str
    task_id: str
    status: AllocationStatus
    agent_id: str | None
    failure_reason: str | None
    wait_s: float
    requested_at: float
    allocated_at: float | None
    finished_at: float | None
    priority: int
    allocated_resources: ResourceRequirements | None
    decision_duration_s: float

    @property
    def success(self) -> bool:
        """Allocated now or earlier (ALLOCATED or RELEASED)."""
        return self.status is ALLOCATED or self.status is RELEASED


@dataclass(frozen=True, slots=True)
class AllocationStatistics:
    """Requests counted by their current state, plus timings.

    ``allocated == active + released`` and ``total_requests == queued +
    allocated + rejected + timed_out + failed`` hold at every moment.
    Percentiles cover the last 10,000 allocations; ``by_reason`` counts
    failure reasons (at most 64 distinct ones, the rest as "other");
    ``slow_decisions`` counts submissions that took longer than the slow
    threshold (the manager's ``max_allocation_decision_s``);
    ``listener_errors`` counts listener calls that raised; ``cost_served``
    sums the ``cost`` of every request allocated (once per request, however
    often it was moved).
    """

    total_requests: int
    queued: int
    active: int
    released: int
    allocated: int
    rejected: int
    timed_out: int
    failed: int
    unknown_releases: int
    fallback_allocations: int
    wait_p50_s: float | None
    wait_p95_s: float | None
    wait_p99_s: float | None
    decision_p50_s: float | None
    decision_p99_s: float | None
    rate_limit: float | None
    rate_limit_per_s: float | None
    by_reason: Mapping[str, int] = field(default_factory=dict)
    slow_decisions: int = 0
    listener_errors: int = 0
    cost_served: float = 0.0


def _wake_futures(futures: list[asyncio.Future[AllocationResult]],
                  result: AllocationResult) -> None:
    # thread-safe: the state may change on another thread (tick, release);
    # a closed loop means nobody is waiting any more
    for fut in futures:
        with contextlib.suppress(RuntimeError):
            fut.get_loop().call_soon_threadsafe(_set_done, fut, result)


def _set_done(fut: asyncio.Future[AllocationResult], result: AllocationResult) -> None:
    if not fut.done():
        fut.set_result(result)


class ResourceAllocator(AllocCore):
    """Allocate task slots to requests: now, or from a priority queue.

    Parameters
    ----------
    balancer : LoadBalancer
        Supplies the strategy and the pool (its monitor's table, clock and lock).
    rate_limit : RateLimitConfig, optional
        Admission token bucket; ``None`` (default) admits everything.
    max_queue : int
        Cap on queued requests (default 10,000); beyond it requests are
        REJECTED.
    aging_per_s : float
        Priority points a queued request gains per second of waiting
        (default 0.7: a LOW request that has waited two minutes, 84 points,
        outranks a fresh HIGH one, 75).
    history : int
        Finished requests kept for :meth:`status` (default 100,000; the oldest
        are forgotten first, in O(1), but stay counted in the statistics).
    slow_decision_s : float
        A submission that takes longer than this is counted in
        ``slow_decisions`` (default 0.05 s).
    max_tenants : int
        Tenants with their own state (default 10,000); past it, the least
        recently active tenant without a policy or live request is folded
        into ``"other"`` (its tallies move there), so per-tenant totals still
        add up to the global ones.
    fair_share : {"requests", "cost"}
        What tenants' fair shares of the queue count: dispatches
        (``"requests"``, the default: a tenant's virtual time advances by
        ``1 / weight`` per request) or cost (``"cost"``: by
        ``request.cost / weight``, so backlogged tenants of equal weight are
        served equal cost, e.g. equal tokens, whatever their request sizes).

    Notes
    -----
    Queue order is effective priority ``priority + aging_per_s * (now -
    enqueued)``, FIFO among equals.  Linear aging keeps the heap order
    time-invariant: it equals the order of ``priority - aging_per_s *
    enqueued``, so the heap never needs re-sorting and aging applies whenever
    the queue dispatches.  Priorities therefore compare across the whole
    queue, never per agent.  Deadlines expire queued requests exactly once:
    lazily on every call, on :meth:`tick`, and by a timer for async waiters
    (when the clock is the default monotonic clock; with a manual clock the
    waiters wake on the next call or tick after the clock passes the
    deadline).

    Memory: records for the live requests (at most ``max_queue`` queued plus
    the pool's task slots) and ``history`` finished ones, about 110 bytes
    each plus the request object.

    All state is guarded by the monitor's lock (one lock for the whole
    resource subsystem, so there is no lock-order problem with the monitor).
    Listeners (:meth:`on_transition`, :meth:`on_outcome`,
    :meth:`on_agent_leaving`) are called once the state is consistent, under
    that lock; one that raises is logged and counted, and changes nothing.
    """

    def __init__(
        self,
        balancer: LoadBalancer,
        *,
        rate_limit: RateLimitConfig | None = None,
        max_queue: int = 10_000,
        aging_per_s: float = 0.7,
        history: int = 100_000,
        slow_decision_s: float = 0.05,
        max_tenants: int = 10_000,
        fair_share: str = "requests",
    ) -> None:
        if not isinstance(balancer, LoadBalancer):
            raise TypeError(f"balancer must be a LoadBalancer, got {type(balancer).__name__}")
        self._balancer = balancer
        monitor = balancer.monitor
        self._clock = monitor.clock
        self._lock = monitor.lock
        self._timer_ok = is_monotonic_default(self._clock)
        self._setup(monitor.table, self._lock, self._clock, self._timer_ok, AllocationResult,
                    _STATUSES)
        # the core holds (and validates) the configuration: one source of truth
        self._configure(balancer.strategy_code, aging_per_s, max_queue, history,
                        slow_decision_s, fair_share)
        self._set_max_tenants(max_tenants)
        self._transitions = Listeners("transition listener", self._wire)
        self._outcomes = Listeners("outcome listener", self._wire)
        self._leaving = Listeners("agent-leaving listener", self._wire)
        self._wire()
        self._policies: dict[str, TenantPolicy] = {}
        self.set_rate_limit(rate_limit)
        # follow the balancer's strategy in C, without a call per allocation
        balancer.on_strategy_change(self._on_strategy)
        monitor.before_remove(self.agent_leaving)

    # -- configuration --------------------------------------------------------

    def _on_strategy(self, strategy: object, code: int) -> None:
        self._set_strategy_code(code)

    def _wire(self, _: bool = True) -> None:
        """Hand the core the event sinks that have subscribers."""
        self._set_callbacks(
            self._transitions.emit if self._transitions else None,
            self._outcomes.emit if self._outcomes else None,
            _wake_futures,
            self._leaving.emit if self._leaving else None,
        )

    @property
    def balancer(self) -> LoadBalancer:
        return self._balancer

    # max_queue, aging_per_s, history, slow_decision_s, fair_share and
    # rate_limiter are the core's properties (validated there)

    def set_rate_limit(self, config: RateLimitConfig | None) -> None:
        """Replace the rate limit (``None`` removes it); the bucket starts full."""
        if config is not None and not isinstance(config, RateLimitConfig):
            raise TypeError(
                f"rate_limit must be a RateLimitConfig or None, got {type(config).__name__}")
        with self._lock:
            self._set_limiter(None if config is None else AdaptiveTokenBucket(
                config, self._clock.now()))

    # -- listeners ------------------------------------------------------------

    def on_transition(
        self, callback: Callable[[str, AllocationStatus, str | None], None]
    ) -> Callable[[], None]:
        """Call ``callback(request_id, status, agent_id)`` whenever a QUEUED
        request leaves the queue (dispatched to an agent, timed out,
        withdrawn).  A synchronous scheduler uses it instead of polling
        :meth:`status`.  Returns a function that unsubscribes."""
        return self._transitions.subscribe(callback)

    def on_outcome(self, callback: Callable[[str, bool, int], None]) -> Callable[[], None]:
        """Call ``callback(agent_id, success, consecutive_failures)`` after
        every failed release of an allocated request (successes only reset
        the streak, so they are not reported), before the queue is served.
        Returns a function that unsubscribes."""
        return self._outcomes.subscribe(callback)

    def on_agent_leaving(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(agent_id)`` just before an agent is removed, while
        its allocations can still be moved (the manager's failover).  What is
        still allocated there afterwards stays ALLOCATED, detached from the
        agent, until released.  Returns a function that unsubscribes."""
        return self._leaving.subscribe(callback)

    @property
    def listener_errors(self) -> int:
        """Listener calls that raised (each one logged)."""
        return self._transitions.errors + self._outcomes.errors + self._leaving.errors

    # -- public API -----------------------------------------------------------
    #
    # allocate(request), release(request_id, success=True, duration_s=None),
    # withdraw(request_id, reason), status(request_id), tick(), dispatch(),
    # active_on(agent_id) and move(request_id, to_agent) are the core's C
    # methods, inherited as they are (no Python frame on the hot path).

    def allocate_fallback(self, request: AllocationRequest,
                          error: BaseException) -> AllocationResult:
        """Static allocation: plain round-robin over eligible agents.

        Used by the manager when the dynamic path raises unexpectedly (the
        original's "fallback to static allocation"); counted and logged.  No
        queue, rate limit or resource fit: ALLOCATED or FAILED.  The failed
        attempt left nothing behind, so the request is counted once.
        """
        log.error("allocation of %r fell back to round-robin: %r",
                  getattr(request, "request_id", request), error)
        return self._allocate_static(request)

    async def allocate_async(self, request: AllocationRequest) -> AllocationResult:
        """Submit and, while QUEUED, wait until ALLOCATED or TIMED_OUT.

        An immediate decision returns without an event-loop round trip.
        Woken by events, never by polling.  Cancelling the awaiting task
        withdraws the request (FAILED, "cancelled"); a slot it won in the
        same instant is given back.
        """
        res = self.allocate(request)
        if res.status is not QUEUED:
            return res
        return await self.wait_queued(request.request_id)

    async def wait_queued(self, request_id: str) -> AllocationResult:
        """Wait while ``request_id`` is QUEUED; returns its state afterwards
        (see :meth:`allocate_async` for cancellation)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[AllocationResult] = loop.create_future()
        deadline = self._add_waiter(request_id, fut)
        if deadline is None:
            return self.status(request_id)
        timer = None
        if self._timer_ok:
            timer = loop.call_later(max(0.0, deadline - self._clock.now()) + 1e-3,
                                    self._on_timer)
        try:
            # the result comes with the wake-up: with no history the record is
            # forgotten by the time we run
            return await fut
        except asyncio.CancelledError:
            self.withdraw(request_id, "cancelled")
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _on_timer(self) -> None:
        self.tick()

    # -- tenants --------------------------------------------------------------

    def set_tenant_policy(self, tenant: str, *, weight: float = 1.0,
                          max_active: int | None = None, max_queued: int | None = None,
                          rate_per_s: float | None = None,
                          burst: float | None = None) -> TenantPolicy:
        """Replace ``tenant``'s whole policy (see :class:`TenantPolicy`); its
        bucket starts full.  Lowering ``max_active`` below the running count
        lets running tasks finish and dispatches nothing for the tenant until
        it is below the cap.  A tenant with a policy counts as seen.

        Raises
        ------
        TypeError, ValueError
            A bad value, naming the argument (nothing changes).
        """
        check_tenant(tenant)
        policy = TenantPolicy(weight=weight, max_active=max_active, max_queued=max_queued,
                              rate_per_s=rate_per_s, burst=burst)
        return self.apply_tenant_policy(tenant, policy)

    def apply_tenant_policy(self, tenant: str, policy: TenantPolicy) -> TenantPolicy:
        """:meth:`set_tenant_policy` with a ready :class:`TenantPolicy`."""
        check_tenant(tenant)
        if not isinstance(policy, TenantPolicy):
            raise TypeError(f"policy must be a TenantPolicy, got {type(policy).__name__}")
        with self._lock:
            # recorded first: listeners of the dispatch it triggers see it
            before = self._policies.get(tenant)
            self._policies[tenant] = policy
            try:
                self._set_tenant_policy(tenant, *policy.core_args())
            except BaseException:
                if before is None:
                    self._policies.pop(tenant, None)
                else:
                    self._policies[tenant] = before
                raise
        return policy

    def clear_tenant_policy(self, tenant: str) -> None:
        """Back to the default policy (weight 1, no caps, no bucket)."""
        with self._lock:
            self._policies.pop(tenant, None)
            self._clear_tenant_policy(tenant)

    def tenant_policy(self, tenant: str) -> TenantPolicy:
        """``tenant``'s policy (the default one when it has none)."""
        return self._policies.get(tenant, _DEFAULT_POLICY)

    def tenants(self) -> list[str]:
        """Every tenant with state of its own (``"other"`` included once used)."""
        return self._tenant_names()

    def get_tenant_statistics(self, tenant: str) -> AllocationStatistics:
        """:meth:`get_allocation_statistics` for one tenant: the same
        identities hold, and tenants' totals add up to the global ones.
        ``rate_limit``/``rate_limit_per_s`` are the tenant's bucket;
        percentiles cover its last 256 samples; ``unknown_releases`` and
        ``listener_errors`` cannot be attributed and are 0.

        Raises
        ------
        KeyError
            A tenant never seen (no request, no policy).
        """
        d = self._tenant_stats(tenant)
        rate, burst = d.pop("rate"), d.pop("burst")
        return _statistics(**d, rate_limit=None if rate < 0 else burst,
                           rate_per_s=None if rate < 0 else rate, listener_errors=0)

    # -- statistics -----------------------------------------------------------

    def counts(self) -> dict[AllocationStatus, int]:
        """Requests by current state."""
        return dict(zip(_STATUSES, self._stats()["counts"]))

    def get_allocation_statistics(self) -> AllocationStatistics:
        """Requests by state (the identities hold), timings, the rate limit."""
        lim = self.rate_limiter
        return _statistics(**self._stats(), rate_limit=None if lim is None else lim.limit,
                           rate_per_s=None if lim is None else lim.rate_per_s,
                           listener_errors=self.listener_errors)

    def __repr__(self) -> str:
        return (f"ResourceAllocator(active={self.active_count}, "
                f"queued={self.queued_count}, total={self.total_requests})")


_DEFAULT_POLICY = TenantPolicy()


def check_fair_share(value: object) -> str:
    """``value`` as a fair-share basis: one of ``FAIR_SHARES``."""
    return check_choice(value, "fair_share", FAIR_SHARES)


def _statistics(*, counts: tuple[int, ...], total: int, unknown: int, fallbacks: int,
                slow: int, reasons: dict[str, int],
                waits: np.ndarray[Any, np.dtype[np.float64]],
                decisions: np.ndarray[Any, np.dtype[np.float64]], cost_served: float,
                rate_limit: float | None, rate_per_s: float | None,
                listener_errors: int) -> AllocationStatistics:
    c = dict(zip(_STATUSES, counts))
    active, released = c[ALLOCATED], c[RELEASED]
    return AllocationStatistics(
        total_requests=total,
        queued=c[QUEUED],
        active=active,
        released=released,
        allocated=active + released,
        rejected=c[REJECTED],
        timed_out=c[TIMED_OUT],
        failed=c[FAILED],
        unknown_releases=unknown,
        fallback_allocations=fallbacks,
        wait_p50_s=_q(waits, 0.5),
        wait_p95_s=_q(waits, 0.95),
        wait_p99_s=_q(waits, 0.99),
        decision_p50_s=_q(decisions, 0.5),
        decision_p99_s=_q(decisions, 0.99),
        rate_limit=rate_limit,
        rate_limit_per_s=rate_per_s,
        by_reason=MappingProxyType(reasons),
        slow_decisions=slow,
        listener_errors=listener_errors,
        cost_served=cost_served,
    )


def _q(a: np.ndarray[Any, np.dtype[np.float64]], q: float) -> float | None:
    return float(np.quantile(a, q)) if a.size else None
