"""ResourceAllocator: requests, the priority queue, deadlines, rate limiting.

Every request ends in exactly one state at every moment -- QUEUED, ALLOCATED,
RELEASED, REJECTED, TIMED_OUT or FAILED -- and the statistics count
submissions by their current state, so ``allocated = active + released`` and
``total = queued + allocated + rejected + timed_out + failed`` always hold.

Selection and the slot reservation are one atomic call into the Cython
table, so concurrent allocations can never oversubscribe an agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from .._select import STRATEGY_CODES
from .._validate import check_int, check_non_negative, check_number, check_positive
from ..clock import is_monotonic_default
from ..types import AllocationStatus, TaskPriority
from .balancer import LoadBalancer
from .ratelimit import AdaptiveTokenBucket, RateLimitConfig
from .records import (
    ResourceRequirements,
)

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
_LIVE = (QUEUED, ALLOCATED)
_HIGH = int(TaskPriority.HIGH)
_PRIORITIES = {int(p): p for p in TaskPriority}
_RR = STRATEGY_CODES["round_robin"]
_tuple_new = tuple.__new__


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    """A request for one task slot.

    Parameters
    ----------
    request_id : str
        Unique among live (queued or allocated) requests.
    task_id : str
    priority : TaskPriority or int
        0-100; CRITICAL > HIGH > MEDIUM > LOW.
    timeout_s : float
        How long it may wait in the queue (> 0); the deadline is
        ``requested_at + timeout_s``.
    required_resources : ResourceRequirements or mapping, optional
        ``cpu_percent``, ``memory_mb``, ``network_mbps``.
    metadata : mapping, optional
        Kept as a read-only copy.
    requested_at : float, optional
        Submission time; ``None`` = the allocator's clock at submission.
    """

    request_id: str
    task_id: str
    priority: TaskPriority | int = TaskPriority.MEDIUM
    timeout_s: float = 30.0
    required_resources: ResourceRequirements | None = None
    metadata: Mapping[str, Any] | None = None
    requested_at: float | None = None

    def __post_init__(self) -> None:
        for name in ("request_id", "task_id"):
            v = getattr(self, name)
            if not isinstance(v, str):
                raise TypeError(f"{name} must be a str, got {type(v).__name__}")
            if not v:
                raise ValueError(f"{name} must not be empty")
        p = check_int(self.priority, "priority", 0, 100)
        object.__setattr__(self, "priority", _PRIORITIES.get(p, p))
        check_positive(self.timeout_s, "timeout_s")
        res = self.required_resources
        if isinstance(res, Mapping):
            object.__setattr__(self, "required_resources", ResourceRequirements(**res))
        elif res is not None and not isinstance(res, ResourceRequirements):
            raise TypeError("required_resources must be a ResourceRequirements, a mapping or "
                            f"None, got {type(res).__name__}")
        if self.metadata is not None:
            if not isinstance(self.metadata, Mapping):
                raise TypeError(f"metadata must be a mapping, got {type(self.metadata).__name__}")
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        if self.requested_at is not None:
            check_number(self.requested_at, "requested_at")


class AllocationResult(NamedTuple):
    """The state of one request, as a snapshot.

    A named tuple rather than a dataclass because two are built per
    allocation on the hot path (it is immutable all the same).

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
    failure reasons (at most 64 distinct ones, the rest as "other").
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


class _Req:
    """A request's mutable internal record (never handed out)."""

    __slots__ = (
        "request", "request_id", "priority", "high", "cpu", "mem", "net", "status", "agent_id",
        "reason", "requested_at", "deadline", "qseq", "allocated_at", "finished_at",
        "waiters", "decision_s", "timeout_s",
    )

    def __init__(self, request: AllocationRequest, requested_at: float) -> None:
        self.request = request
        self.request_id = request.request_id
        p = int(request.priority)
        self.priority = p
        self.high = p >= _HIGH
        res = request.required_resources
        if res is None:
            self.cpu = self.mem = self.net = 0.0
        else:
            self.cpu, self.mem, self.net = res.cpu_percent, res.memory_mb, res.network_mbps
        self.status = QUEUED
        self.agent_id: str | None = None
        self.reason: str | None = None
        self.requested_at = requested_at
        self.timeout_s = float(request.timeout_s)
        self.deadline = requested_at + self.timeout_s
        self.qseq = -1
        self.allocated_at: float | None = None
        self.finished_at: float | None = None
        self.waiters: list[asyncio.Future[None]] | None = None
        self.decision_s = 0.0


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _notify(fut: asyncio.Future[None]) -> None:
    # thread-safe: the state may change on another thread (tick, release);
    # a closed loop means nobody is waiting any more
    with contextlib.suppress(RuntimeError):
        fut.get_loop().call_soon_threadsafe(_wake, fut)


class ResourceAllocator:
    """Allocate task slots to requests: now, or from a priority queue.

    Parameters
    ----------
    balancer : LoadBalancer
        Supplies the strategy and the pool (its monitor's table and clock).
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
        are forgotten first, but stay counted in the statistics).

    Notes
    -----
    Queue order is effective priority ``priority + aging_per_s * (now -
    enqueued)``, FIFO among equals.  Linear aging keeps the heap order
    time-invariant: it equals the order of ``priority - aging_per_s *
    enqueued``, so the heap never needs re-sorting and aging applies whenever
    the queue dispatches.  Deadlines expire queued requests exactly once:
    lazily on every call, on :meth:`tick`, and by a timer for async waiters
    (when the clock is the default monotonic clock; with a manual clock the
    waiters wake on the next call or tick after the clock passes the
    deadline).

    All state is guarded by the monitor's lock (one lock for the whole
    resource subsystem, so there is no lock-order problem with the monitor).
    """

    def __init__(
        self,
        balancer: LoadBalancer,
        *,
        rate_limit: RateLimitConfig | None = None,
        max_queue: int = 10_000,
        aging_per_s: float = 0.7,
        history: int = 100_000,
    ) -> None:
        if not isinstance(balancer, LoadBalancer):
            raise TypeError(f"balancer must be a LoadBalancer, got {type(balancer).__name__}")
        self._balancer = balancer
        self._monitor = balancer.monitor
        self._table = self._monitor.table
        self._clock = self._monitor.clock
        self._lock = self._monitor.lock
        self._max_queue = check_int(max_queue, "max_queue", 0)
        self._aging = check_non_negative(aging_per_s, "aging_per_s")
        self._history_cap = check_int(history, "history", 0)
        self._limiter: AdaptiveTokenBucket | None = None
        self.set_rate_limit(rate_limit)
        self._live: dict[str, _Req] = {}
        self._done: dict[str, _Req] = {}
        self._by_agent: dict[str, dict[str, _Req]] = {}
        self._queue: list[tuple[float, int, _Req]] = []
        self._deadlines: list[tuple[float, int, _Req]] = []
        self._seq = 0
        self._n_queued = 0
        self._counts = dict.fromkeys(AllocationStatus, 0)
        self._total = 0
        self._unknown_releases = 0
        self._fallbacks = 0
        self._reasons: dict[str, int] = {}
        self._waits: deque[float] = deque(maxlen=10_000)
        self._decisions: deque[float] = deque(maxlen=10_000)
        self._timer_ok = is_monotonic_default(self._clock)
        #: called as ``listener(agent_id, success, consecutive_failures)``
        #: after every failed release of an allocated request (under the
        #: lock); successes only reset the streak, so they are not reported.
        self.outcome_listener: Callable[[str, bool, int], None] | None = None
        #: called as ``listener(request_id, status, agent_id)`` whenever a QUEUED
        #: request leaves the queue on its own (dispatched to an agent, timed
        #: out) -- under the lock, so it must only record, never call back in.
        #: A synchronous scheduler uses it instead of polling ``status``.
        self.transition_listener: Callable[[str, AllocationStatus, str | None], None] | None = None

    # -- configuration --------------------------------------------------------

    @property
    def balancer(self) -> LoadBalancer:
        return self._balancer

    @property
    def max_queue(self) -> int:
        return self._max_queue

    @max_queue.setter
    def max_queue(self, value: int) -> None:
        self._max_queue = check_int(value, "max_queue", 0)

    @property
    def aging_per_s(self) -> float:
        return self._aging

    def set_rate_limit(self, config: RateLimitConfig | None) -> None:
        """Replace the rate limit (``None`` removes it); the bucket starts full."""
        if config is not None and not isinstance(config, RateLimitConfig):
            raise TypeError(
                f"rate_limit must be a RateLimitConfig or None, got {type(config).__name__}")
        with self._lock:
            self._limiter = None if config is None else AdaptiveTokenBucket(
                config, self._clock.now())

    @property
    def rate_limiter(self) -> AdaptiveTokenBucket | None:
        return self._limiter

    # -- state transitions (lock held) ----------------------------------------

    def _snapshot(self, r: _Req, now: float) -> AllocationResult:
        if r.allocated_at is not None:
            wait = r.allocated_at - r.requested_at
        else:
            wait = (r.finished_at if r.finished_at is not None else now) - r.requested_at
        res = r.request.required_resources
        # tuple.__new__ directly: the named tuple's own __new__ is one more
        # Python frame, on a path that builds two results per allocation
        return _tuple_new(AllocationResult, (
            r.request_id, r.request.task_id, r.status, r.agent_id, r.reason, wait,
            r.requested_at, r.allocated_at, r.finished_at, r.priority,
            res if r.allocated_at is not None else None, r.decision_s))

    def _finish(self, r: _Req, status: AllocationStatus, reason: str | None,
                now: float) -> None:
        """Move a request to a terminal state (from QUEUED, ALLOCATED or new)."""
        rid = r.request_id
        counts = self._counts
        was_queued = False
        if self._live.pop(rid, None) is not None:
            old = r.status
            counts[old] -= 1
            if old is QUEUED:
                self._n_queued -= 1
                was_queued = True
        counts[status] += 1
        r.status = status
        r.finished_at = now
        if reason is not None:
            r.reason = reason
            # callers may pass their own withdrawal reasons: cap the tally
            key = reason if reason in self._reasons or len(self._reasons) < 64 else "other"
            self._reasons[key] = self._reasons.get(key, 0) + 1
        done = self._done
        done[rid] = r
        if len(done) > self._history_cap:
            # dicts keep insertion order: the first key is the oldest
            del done[next(iter(done))]
        if r.waiters:
            self._wake_waiters(r)
        if was_queued and self.transition_listener is not None:
            self.transition_listener(rid, status, None)

    def _wake_waiters(self, r: _Req) -> None:
        if r.waiters:
            for fut in r.waiters:
                _notify(fut)
            r.waiters = None

    def _grant(self, r: _Req, agent_id: str, now: float) -> None:
        """QUEUED (or new) -> ALLOCATED on ``agent_id`` (slot already reserved)."""
        rid = r.request_id
        live = self._live
        counts = self._counts
        was_queued = False
        if rid in live:
            counts[r.status] -= 1
            if r.status is QUEUED:
                self._n_queued -= 1
                was_queued = True
        counts[ALLOCATED] += 1
        r.status = ALLOCATED
        r.agent_id = agent_id
        if r.allocated_at is None:
            r.allocated_at = now
            self._waits.append(now - r.requested_at)
        live[rid] = r
        per = self._by_agent.get(agent_id)
        if per is None:
            per = self._by_agent[agent_id] = {}
        per[rid] = r
        if r.waiters:
            self._wake_waiters(r)
        if was_queued and self.transition_listener is not None:
            self.transition_listener(rid, ALLOCATED, agent_id)

    def _enqueue(self, r: _Req, key_time: float) -> None:
        """New or moved-back request -> QUEUED, ordered by ``key_time``."""
        if r.request_id in self._live:
            self._counts[r.status] -= 1
        self._counts[QUEUED] += 1
        self._n_queued += 1
        r.status = QUEUED
        self._live[r.request_id] = r
        self._seq += 1
        r.qseq = self._seq
        # min-heap on aging_per_s * t - priority == order of effective priority
        heapq.heappush(self._queue, (self._aging * key_time - r.priority, r.qseq, r))
        heapq.heappush(self._deadlines, (r.deadline, r.qseq, r))
        limit = 2 * self._n_queued + 64
        if len(self._queue) > limit or len(self._deadlines) > limit:
            self._compact()

    def _compact(self) -> None:
        """Drop stale heap entries (served, withdrawn, requeued), so both
        heaps stay within about twice the queued count."""
        live = self._live

        def keep(e: tuple[float, int, _Req]) -> bool:
            r = e[2]
            return r.status is QUEUED and r.qseq == e[1] and live.get(r.request_id) is r

        self._queue = [e for e in self._queue if keep(e)]
        heapq.heapify(self._queue)
        self._deadlines = [e for e in self._deadlines if keep(e)]
        heapq.heapify(self._deadlines)

    def _unbind(self, r: _Req) -> int:
        """Forget an ALLOCATED request's agent binding and free its slot;
        returns the agent's table slot (-1 if the agent is gone)."""
        agent = r.agent_id
        assert agent is not None
        per = self._by_agent.get(agent)
        if per is not None:
            per.pop(r.request_id, None)
            if not per:
                del self._by_agent[agent]
        table = self._table
        if agent not in table:
            return -1
        slot = table.slot(agent)
        table.release(slot, r.cpu, r.mem, r.net)
        return slot

    def _expire(self, now: float) -> int:
        """Time out queued requests whose deadline has passed (exactly once)."""
        n = 0
        dl = self._deadlines
        while dl and dl[0][0] <= now:
            deadline, seq, r = heapq.heappop(dl)
            # stale heap entries (dispatched, withdrawn, requeued) are skipped
            if r.status is QUEUED and r.qseq == seq and self._live.get(r.request_id) is r:
                self._finish(r, TIMED_OUT, "timeout", now)
                n += 1
        return n

    def _dispatch(self, now: float) -> int:
        """Serve the queue in order while agents have room; returns the count."""
        q = self._queue
        if not q or not self._n_queued:
            if not self._n_queued:
                q.clear()
            return 0
        table = self._table
        code = self._balancer._current[1]
        decide = table.decide
        served = 0
        skipped: list[tuple[float, int, _Req]] = []
        while q:
            item = q[0]
            r = item[2]
            if r.status is not QUEUED or r.qseq != item[1] or self._live.get(r.request_id) is not r:
                heapq.heappop(q)
                continue
            d = decide(code, r.high, r.cpu, r.mem, r.net, now, True)
            if d is None:
                if not (r.cpu or r.mem or r.net) or not table.any_eligible(now):
                    break          # no free slot anywhere: later ones cannot go either
                # this one needs resources nobody has now; let smaller ones past
                skipped.append(heapq.heappop(q))
                if len(skipped) >= 64:
                    break
                continue
            heapq.heappop(q)
            self._grant(r, str(d[0]), now)
            served += 1
        for item in skipped:
            heapq.heappush(q, item)
        return served

    # -- public API -----------------------------------------------------------

    def allocate(self, request: AllocationRequest) -> AllocationResult:
        """Submit a request; never blocks.

        Returns
        -------
        AllocationResult
            ALLOCATED when an eligible agent has room now; QUEUED when it must
            wait; REJECTED by the rate limit or a full queue; FAILED when the
            pool is empty; TIMED_OUT when its deadline had already passed.

        Raises
        ------
        ValueError
            ``request_id`` is still queued or active (nothing changes, nothing
            is counted).
        TypeError
            ``request`` is not an :class:`AllocationRequest`.
        """
        t0 = time.perf_counter()
        if type(request) is not AllocationRequest and not isinstance(request, AllocationRequest):
            raise TypeError(f"request must be an AllocationRequest, got {type(request).__name__}")
        with self._lock:
            now = self._clock.now()
            rid = request.request_id
            if rid in self._live:
                raise ValueError(f"request_id {rid!r} is already {self._live[rid].status.value}")
            if self._deadlines and self._deadlines[0][0] <= now:
                self._expire(now)
            r = _Req(request, now if request.requested_at is None else request.requested_at)
            self._total += 1
            self._done.pop(rid, None)       # a resubmitted finished id starts afresh
            table = self._table
            limiter = self._limiter
            if len(table) == 0:
                self._finish(r, FAILED, "no agents registered", now)
            elif limiter is not None and limiter.available(now) < 1.0:
                self._finish(r, REJECTED, "rate limit exceeded", now)
            elif now > r.deadline:
                self._finish(r, TIMED_OUT, "request timeout", now)
            elif self._n_queued:
                # others are waiting: this one takes its place in line
                if self._n_queued >= self._max_queue:
                    self._finish(r, REJECTED, "queue full", now)
                else:
                    if limiter is not None:
                        limiter.try_acquire(now)
                    self._enqueue(r, r.requested_at)
                    self._dispatch(now)
            else:
                d = table.decide(self._balancer._current[1], r.high, r.cpu, r.mem, r.net,
                                 now, True)
                if d is not None:
                    if limiter is not None:
                        limiter.try_acquire(now)
                    self._grant(r, str(d[0]), now)
                elif self._max_queue == 0:
                    self._finish(r, REJECTED, "queue full", now)
                else:
                    if limiter is not None:
                        limiter.try_acquire(now)
                    self._enqueue(r, r.requested_at)
            r.decision_s = time.perf_counter() - t0
            self._decisions.append(r.decision_s)
            return self._snapshot(r, now)

    def allocate_fallback(self, request: AllocationRequest,
                          error: BaseException) -> AllocationResult:
        """Static allocation: plain round-robin over eligible agents.

        Used by the manager when the dynamic path raises unexpectedly (the
        original's "fallback to static allocation"); counted and logged.  No
        queue, rate limit or resource fit: ALLOCATED or FAILED.
        """
        log.error("allocation of %r fell back to round-robin: %r", request.request_id, error)
        t0 = time.perf_counter()
        with self._lock:
            now = self._clock.now()
            rid = request.request_id
            if rid in self._live:
                raise ValueError(f"request_id {rid!r} is already {self._live[rid].status.value}")
            self._fallbacks += 1
            self._total += 1
            self._done.pop(rid, None)
            r = _Req(request, now if request.requested_at is None else request.requested_at)
            r.cpu = r.mem = r.net = 0.0
            slot = self._table.select(_RR, False, 0.0, 0.0, 0.0, now, True)
            if slot >= 0:
                self._grant(r, str(self._table.agent_id(slot)), now)
            else:
                self._finish(r, FAILED, "no agent available (fallback)", now)
            r.decision_s = time.perf_counter() - t0
            return self._snapshot(r, now)

    async def allocate_async(self, request: AllocationRequest) -> AllocationResult:
        """Submit and, while QUEUED, wait until ALLOCATED or TIMED_OUT.

        Woken by events, never by polling.  Cancelling the awaiting task
        withdraws the request (FAILED, "cancelled"); a slot it won in the
        same instant is given back.
        """
        res = self.allocate(request)
        if res.status is not QUEUED:
            return res
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        rid = request.request_id
        with self._lock:
            r = self._live.get(rid)
            if r is None or r.status is not QUEUED:
                return self.status(rid)
            if r.waiters is None:
                r.waiters = []
            r.waiters.append(fut)
            deadline = r.deadline
        timer = None
        if self._timer_ok:
            timer = loop.call_later(max(0.0, deadline - self._clock.now()) + 1e-3,
                                    self._on_timer)
        try:
            await fut
        except asyncio.CancelledError:
            self.withdraw(rid, "cancelled")
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return self.status(rid)

    def _on_timer(self) -> None:
        with self._lock:
            self._expire(self._clock.now())

    def withdraw(self, request_id: str, reason: str = "cancelled") -> AllocationResult | None:
        """Withdraw a QUEUED request (or give back an ALLOCATED one): FAILED.

        Returns the final snapshot, or ``None`` if the id is not live.
        """
        with self._lock:
            now = self._clock.now()
            r = self._live.get(request_id)
            if r is None:
                return None
            if r.status is ALLOCATED:
                self._unbind(r)
            self._finish(r, FAILED, reason, now)
            self._dispatch(now)
            return self._snapshot(r, now)

    def status(self, request_id: str) -> AllocationResult:
        """The request's current state; KeyError naming an unknown id."""
        with self._lock:
            now = self._clock.now()
            if self._deadlines and self._deadlines[0][0] <= now:
                self._expire(now)
            r = self._live.get(request_id) or self._done.get(request_id)
            if r is None:
                raise KeyError(f"unknown request_id {request_id!r}")
            return self._snapshot(r, now)

    def release(
        self, request_id: str, success: bool = True, duration_s: float | None = None
    ) -> AllocationResult | None:
        """Finish an allocated request: free its slot, feed the agent's
        latency/failure tracking and the adaptive limit, serve the queue.

        A QUEUED request is withdrawn instead (FAILED, "cancelled").  An
        unknown or already finished id is harmless: it is counted in
        ``unknown_releases`` and ``None`` is returned.
        """
        if not isinstance(success, bool):
            raise TypeError(f"success must be a bool, got {type(success).__name__}")
        d = None
        if type(duration_s) is float and duration_s >= 0.0 and duration_s != math.inf:
            d = duration_s      # the common case, without a function call
        elif duration_s is not None:
            d = check_non_negative(duration_s, "duration_s")
        with self._lock:
            now = self._clock.now()
            r = self._live.get(request_id)
            if r is None:
                self._unknown_releases += 1
                return None
            if r.status is QUEUED:
                self._finish(r, FAILED, "cancelled", now)
                return self._snapshot(r, now)
            agent = r.agent_id
            assert agent is not None
            slot = self._unbind(r)
            self._finish(r, RELEASED, None, now)
            streak = 0
            if slot >= 0:
                streak = self._table.record_completion(slot, -1.0 if d is None else d,
                                                       success, now)
            if self._limiter is not None:
                self._limiter.record_outcome(success, d, now)
            if not success and self.outcome_listener is not None:
                self.outcome_listener(agent, success, streak)
            if self._n_queued:
                if self._deadlines and self._deadlines[0][0] <= now:
                    self._expire(now)
                self._dispatch(now)
            return self._snapshot(r, now)

    def tick(self) -> int:
        """Expire deadlines and serve the queue; returns how many timed out."""
        with self._lock:
            now = self._clock.now()
            n = self._expire(now)
            self._dispatch(now)
            return n

    def dispatch(self) -> int:
        """Serve the queue now (after capacity was added); returns the count."""
        with self._lock:
            now = self._clock.now()
            self._expire(now)
            return self._dispatch(now)

    # -- failover support -----------------------------------------------------

    def active_on(self, agent_id: str) -> list[str]:
        """Ids of the requests allocated on ``agent_id``, highest priority first."""
        with self._lock:
            per = self._by_agent.get(agent_id, {})
            return [r.request_id for r in sorted(per.values(), key=lambda r: -r.priority)]

    def move(self, request_id: str, to_agent: str | None) -> str | None:
        """Move an ALLOCATED request off its agent (failover).

        With ``to_agent`` the slot is taken there if it can be; with ``None``
        the balancer's strategy picks the best eligible agent.  A request
        that cannot be placed goes back to the queue with a fresh deadline
        (``timeout_s`` from now), its priority and its place ahead of newer
        requests (its original submission time); it spends no token.

        Returns
        -------
        str or None
            The new agent, or ``None`` when it was queued.
        """
        with self._lock:
            now = self._clock.now()
            r = self._live.get(request_id)
            if r is None or r.status is not ALLOCATED:
                raise KeyError(f"request_id {request_id!r} is not allocated")
            table = self._table
            # resolve the target before anything changes (KeyError naming it)
            to_slot = -1 if to_agent is None else table.slot(to_agent)
            self._unbind(r)
            new: str | None = None
            if to_agent is not None:
                if table.reserve(to_slot, r.cpu, r.mem, r.net, now):
                    new = to_agent
            else:
                d = table.decide(self._balancer._current[1], r.high, r.cpu, r.mem, r.net,
                                 now, True)
                if d is not None:
                    new = str(d[0])
            # keep the ALLOCATED count stable while moving between agents
            self._counts[ALLOCATED] -= 1
            self._live.pop(request_id)
            if new is not None:
                self._grant(r, new, now)
            else:
                r.agent_id = None
                r.deadline = now + r.timeout_s
                self._enqueue(r, r.requested_at)
            return new

    # -- statistics -----------------------------------------------------------

    def counts(self) -> dict[AllocationStatus, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def queued_count(self) -> int:
        return self._n_queued

    @property
    def active_count(self) -> int:
        return self._counts[ALLOCATED]

    def get_allocation_statistics(self) -> AllocationStatistics:
        with self._lock:
            c = self._counts
            waits = np.fromiter(self._waits, dtype=np.float64, count=len(self._waits))
            decisions = np.fromiter(self._decisions, dtype=np.float64,
                                    count=len(self._decisions))
            lim = self._limiter
            active, released = c[ALLOCATED], c[RELEASED]
            return AllocationStatistics(
                total_requests=self._total,
                queued=c[QUEUED],
                active=active,
                released=released,
                allocated=active + released,
                rejected=c[REJECTED],
                timed_out=c[TIMED_OUT],
                failed=c[FAILED],
                unknown_releases=self._unknown_releases,
                fallback_allocations=self._fallbacks,
                wait_p50_s=_q(waits, 0.5),
                wait_p95_s=_q(waits, 0.95),
                wait_p99_s=_q(waits, 0.99),
                decision_p50_s=_q(decisions, 0.5),
                decision_p99_s=_q(decisions, 0.99),
                rate_limit=None if lim is None else lim.limit,
                rate_limit_per_s=None if lim is None else lim.rate_per_s,
                by_reason=MappingProxyType(dict(self._reasons)),
            )

    def __repr__(self) -> str:
        return (f"ResourceAllocator(active={self._counts[ALLOCATED]}, "
                f"queued={self._n_queued}, total={self._total})")


def _q(a: np.ndarray[Any, np.dtype[np.float64]], q: float) -> float | None:
    return float(np.quantile(a, q)) if a.size else None
