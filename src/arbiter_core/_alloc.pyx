# The allocation core: every request's record, the priority queue with aging,
# the deadline heap, the per-agent lists of active allocations, the history of
# finished requests and the statistics counters -- all in C arrays, so that an
# allocate + release cycle costs about a microsecond and stays flat however
# long the process runs.
#
# Records (_alloc_records.pxi), tenants and their fair shares
# (_alloc_tenants.pxi) and admission (_alloc_admit.pxi) are described where
# they live; this file keeps the state machine and the public surface.
#
# Queue.  Linear aging keeps heap order time-invariant: effective priority
# ``p + aging * (now - t)`` orders requests exactly as ``aging * t - p`` does,
# so the heap key is fixed at enqueue, with a sequence number for FIFO among
# equals.  The queues, the deadline heap and the heap of backlogged tenants
# are one indexed binary heap (_iheap.pxi: each item knows its position), so
# a withdrawn or dispatched request leaves them at once: no stale entries, no
# compaction.  Statistics and token buckets are declared once (_tally.pxi)
# for the whole allocator and for every tenant.
#
# Concurrency.  Every public method holds the resource subsystem's lock (the
# monitor's RLock, shared with the table's other users), so multi-step
# operations elsewhere (failover) see a consistent allocator.  Python code is
# called at exactly three kinds of places, all after the C state is
# consistent: the clock and the rate limiter (before anything is changed, or
# with an undo on error), and listeners, which are queued as events and
# delivered at the end of the operation (or, for outcomes, before the queue
# is served, so an ejection takes the agent out before it gets more work).
# A raising listener therefore cannot corrupt anything.

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.math cimport isfinite, INFINITY
from libc.stdint cimport int8_t, int32_t, int64_t
from libc.string cimport memset

from ._chelpers cimport monotonic as _mono, new_record, put_field as _put
from ._request cimport AllocationRequest
from ._select cimport AgentTable, S_ROUND_ROBIN

import numpy as np

from ._validate import check_choice, check_int, check_non_negative, check_positive

__all__ = ["AllocCore", "FAIR_SHARES", "STATUS_NAMES"]


# Request states (the order of AllocationStatus), plus two internal ones.
cdef enum:
    ST_QUEUED = 0
    ST_ALLOCATED = 1
    ST_RELEASED = 2
    ST_REJECTED = 3
    ST_TIMED_OUT = 4
    ST_FAILED = 5
    N_STATES = 6
    ST_NEW = 6        # being decided: not counted anywhere yet
    ST_FREE = 7       # an unused record

STATUS_NAMES = ("queued", "allocated", "released", "rejected", "timed_out", "failed")
FAIR_SHARES = ("requests", "cost")

# Admission verdicts besides the terminal states (_admit).
cdef enum:
    A_GRANT = 10      # a slot is reserved
    A_QUEUE = 11      # nobody has room: wait
    A_WAIT = 12       # others wait (or the tenant is at its cap): wait, then serve the queue

# Bits of `Rec.fl`.
cdef enum:
    R_HIGH = 1        # priority >= HIGH (the health rule)
    R_DETACHED = 2    # a newer record holds this request id
    R_ALLOCATED = 4   # was allocated at some point (allocated_at is set)
    R_FIT = 8         # needs resources (cpu / memory / network)
    R_PINNED = 16     # not movable: failover detaches it instead
    R_EXCL = 32       # has agents it must not get

# A record's Python fields: _obj[N_OBJ * i + O_...].
cdef enum:
    O_RID = 0
    O_TASK = 1
    O_RES = 2         # required resources (or None)
    O_AGENT = 3       # agent id (kept after release, for status)
    O_REASON = 4
    O_EXCL = 5        # frozenset of excluded agent ids, or None
    O_AFF = 6         # (prefix_bytes, affinity_key) for cache affinity, or None
    N_OBJ = 7

cdef enum:
    N_SAMPLES = 10000     # wait and decision samples kept for percentiles
    N_TSAMPLES = 256      # the same, per tenant
    MAX_SKIP = 1024       # queued requests passed over per dispatch (resources, exclusions)
    N_REASONS = 64        # distinct failure reasons tallied before "other"
    HIGH_PRIORITY = 75

include "_iheap.pxi"
include "_tally.pxi"


cdef struct Rec:
    HKey qk                 # queue order: (aging * t - priority, 0, sequence number)
    HKey dk                 # deadline order: (deadline, 0, sequence number)
    double cpu
    double mem
    double net
    double req_at
    double timeout
    double alloc_at
    double fin_at
    double dec
    double cost
    int32_t prio
    int32_t slot            # agent slot while ALLOCATED (-1: none / agent gone)
    int32_t aprev           # the agent's list of allocations; anext also
    int32_t anext           # links the free records
    int32_t qpos            # position in its tenant's queue (-1: not queued)
    int32_t dpos            # position in the deadline heap
    int32_t tn              # tenant
    int8_t st
    int8_t fl


cdef struct Tenant:
    HKey key                # (S, its head's queue key, its sequence number)
    double w_inv            # 1 / weight
    double F                # finish tag of its last dispatch
    Bucket bucket
    int64_t max_active      # -1: no cap
    int64_t max_queued      # -1: no cap
    int64_t last_use        # submission counter at its latest submission
    Tally tally
    IHeap q                 # its queue of records
    int32_t pos             # position in the tenant heap (-1: not backlogged)
    bint policy


# where the heaps find keys and positions
cdef Rec _R0
cdef Tenant _T0
cdef Py_ssize_t _QK = <char*>&_R0.qk - <char*>&_R0
cdef Py_ssize_t _QPOS = <char*>&_R0.qpos - <char*>&_R0
cdef Py_ssize_t _DK = <char*>&_R0.dk - <char*>&_R0
cdef Py_ssize_t _DPOS = <char*>&_R0.dpos - <char*>&_R0
cdef Py_ssize_t _TK = <char*>&_T0.key - <char*>&_T0
cdef Py_ssize_t _TPOS = <char*>&_T0.pos - <char*>&_T0


cdef class AllocCore:
    """AllocCore()
    --

    The allocator's state and hot paths in C.  Not used directly: the
    Python class :class:`arbiter_core.ResourceAllocator` extends it with
    asyncio waiting, listeners and statistics records, and documents the
    behaviour.  Call :meth:`_setup` once before anything else.
    """

    # collaborators
    cdef AgentTable _table
    cdef object _clock_now          # clock.now, unless _c_clock
    cdef bint _c_clock              # the clock is CLOCK_MONOTONIC: read it in C
    cdef object _acquire
    cdef object _release
    cdef type _result_type
    cdef tuple _statuses
    cdef object _limiter            # AdaptiveTokenBucket or None
    cdef object _transition_cb      # callables or None; called via events
    cdef object _outcome_cb
    cdef object _wake_cb
    cdef object _leaving_cb
    cdef list _events
    cdef list _limbo                # finished records to forget (history 0)
    cdef object _why                # the reason of _admit's verdict

    # configuration (the properties below validate it)
    cdef int _code                  # strategy code of the balancer
    cdef double _aging
    cdef Py_ssize_t _max_queue
    cdef Py_ssize_t _hist_cap
    cdef double _slow_s
    cdef bint _by_cost              # fair shares charge cost / weight, not 1 / weight

    # records
    cdef Rec* _r
    cdef Py_ssize_t _rcap           # allocated records
    cdef Py_ssize_t _rhw            # records [0, _rhw) have been used
    cdef Py_ssize_t _nfree
    cdef int32_t _free              # first free record (-1: none)
    cdef list _obj                  # N_OBJ Python fields per record
    cdef dict _ids                  # request id -> newest record
    cdef dict _waiters              # record -> [asyncio futures]

    # per agent (by table slot): head of its allocation list
    cdef int32_t* _head
    cdef Py_ssize_t _nhead

    cdef IHeap _dl                  # every queued record, by deadline
    cdef int64_t _seqno

    # tenants
    cdef Tenant* _t
    cdef Py_ssize_t _ntn            # tenants in use
    cdef Py_ssize_t _tcap           # allocated
    cdef Py_ssize_t _max_tenants
    cdef IHeap _th                  # backlogged tenants, by (S, head order)
    cdef double _V                  # SFQ virtual time
    cdef int64_t _use               # submission counter (tenant recency)
    cdef Py_ssize_t _other          # the "other" tenant, -1 until needed
    cdef list _tnames
    cdef dict _tindex
    cdef list _treasons

    # finished-request history: a FIFO ring of record indices
    cdef int32_t* _hist
    cdef Py_ssize_t _hstart
    cdef Py_ssize_t _hn
    cdef Py_ssize_t _hcap_alloc

    # statistics
    cdef Tally _g
    cdef int64_t _unknown
    cdef dict _reasons

    def __cinit__(self, *args, **kwargs):
        self._free = -1
        self._max_tenants = 10000
        self._other = -1
        self._obj = []
        self._tnames = []
        self._tindex = {}
        self._treasons = []
        self._ids = {}
        self._waiters = {}
        self._reasons = {}
        self._events = []
        self._limbo = []
        ih_init(&self._dl, <char**>&self._r, sizeof(Rec), _DK, _DPOS)
        ih_init(&self._th, <char**>&self._t, sizeof(Tenant), _TK, _TPOS)
        tally_init(&self._g, N_SAMPLES)

    def __dealloc__(self):
        cdef Py_ssize_t k
        for k in range(self._ntn):
            PyMem_Free(self._t[k].q.items)
            tally_free(&self._t[k].tally)
        PyMem_Free(self._t)
        PyMem_Free(self._th.items)
        PyMem_Free(self._dl.items)
        PyMem_Free(self._r)
        PyMem_Free(self._head)
        PyMem_Free(self._hist)
        tally_free(&self._g)

    def _setup(self, AgentTable table not None, lock, clock, bint c_clock, type result_type,
               tuple statuses):
        """_setup(table, lock, clock, c_clock, result_type, statuses)

        Wire the core: the agent table, the lock every public method holds,
        the clock (``c_clock``: it reads CLOCK_MONOTONIC, so C may read it
        directly), the result type and the status members in
        ``STATUS_NAMES`` order.
        """
        if len(statuses) != N_STATES:
            raise ValueError(f"statuses must have {N_STATES} members")
        self._table = table
        self._acquire = lock.acquire
        self._release = lock.release
        self._clock_now = clock.now
        self._c_clock = c_clock
        self._result_type = result_type
        self._statuses = statuses
        if self._ntn == 0:
            _new_tenant(self, "default")

    # -- configuration: one source of truth, validated here --------------------

    def _configure(self, int strategy_code, aging_per_s, max_queue, history, slow_decision_s,
                   fair_share="requests"):
        """_configure(strategy_code, aging_per_s, max_queue, history, slow_decision_s,
        fair_share="requests")

        The initial configuration (each value validated, naming it).
        """
        self._code = strategy_code
        self._aging = check_non_negative(aging_per_s, "aging_per_s")
        self.max_queue = max_queue
        self.slow_decision_s = slow_decision_s
        self.fair_share = fair_share
        history = check_int(history, "history", 0, 2**31 - 1)
        if history != self._hist_cap or self._hist == NULL:
            self._acquire()
            try:
                _set_history(self, history)
            finally:
                self._release()

    @property
    def max_queue(self):
        """Cap on queued requests; beyond it requests are REJECTED (settable)."""
        return self._max_queue

    @max_queue.setter
    def max_queue(self, value):
        self._max_queue = check_int(value, "max_queue", 0)

    @property
    def aging_per_s(self):
        """Priority points a queued request gains per second of waiting."""
        return self._aging

    @property
    def history(self):
        """Finished requests kept for :meth:`status`."""
        return self._hist_cap

    @property
    def slow_decision_s(self):
        """Submissions slower than this are counted in ``slow_decisions`` (settable)."""
        return self._slow_s

    @slow_decision_s.setter
    def slow_decision_s(self, value):
        self._slow_s = check_positive(value, "slow_decision_s")

    @property
    def fair_share(self):
        """What tenants' fair shares count: ``"requests"`` or ``"cost"``
        (settable live: it applies from the next dispatch)."""
        return FAIR_SHARES[self._by_cost]

    @fair_share.setter
    def fair_share(self, value):
        self._by_cost = check_choice(value, "fair_share", FAIR_SHARES) == "cost"

    @property
    def rate_limiter(self):
        """The global :class:`~arbiter_core.AdaptiveTokenBucket`, or None."""
        return self._limiter

    def _set_strategy_code(self, int code):
        """_set_strategy_code(code): follow the balancer's strategy."""
        self._code = code

    def _set_limiter(self, limiter):
        """_set_limiter(limiter): the global rate limiter (or None)."""
        self._limiter = limiter

    def _set_callbacks(self, transition, outcome, wake, leaving):
        """_set_callbacks(transition, outcome, wake, leaving)

        The event sinks (each a callable or None): transition(request_id,
        status, agent_id), outcome(agent_id, success, streak), wake(futures),
        leaving(agent_id).
        """
        self._transition_cb = transition
        self._outcome_cb = outcome
        self._wake_cb = wake
        self._leaving_cb = leaving

    # -- opening and closing a public operation -----------------------------------

    cdef double _enter(self, bint expire=True) except? -1.0:
        """Take the lock, read the clock and (``expire``) time out the
        requests whose deadline has passed (a timed-out id is free again);
        returns now.  The caller releases the lock in a ``finally``."""
        cdef double now
        self._acquire()
        try:
            now = self._now()
            if expire and self._dl.n and ih_key(&self._dl, self._dl.items[0]).a <= now:
                _expire(self, now)
        except BaseException:
            self._release()
            raise
        return now

    cdef object _leave(self, object result):
        """Deliver the queued events (the state is consistent; they may call
        back in) and forget finished records when no history is kept;
        returns ``result``."""
        cdef list ev
        while self._limbo:
            _forget(self, self._limbo.pop())
        while self._events:
            ev = self._events
            self._events = []
            for cb, args in ev:
                cb(*args)
        return result

    # -- records --------------------------------------------------------------

    # -- history --------------------------------------------------------------

    # -- queues ---------------------------------------------------------------

    # -- state transitions (lock held) ------------------------------------------

    cdef int _grant(self, Py_ssize_t i, Py_ssize_t slot, double now) except -1:
        """-> ALLOCATED on ``slot`` (already reserved)."""
        cdef Rec* r = &self._r[i]
        cdef int8_t old = r.st
        cdef Tally* tt = &self._t[r.tn].tally
        if slot >= self._nhead:
            _grow_heads(self, slot)      # before any change: may raise
        if old == ST_QUEUED:
            _heap_remove(self, i)
        _to_state(self, i, ST_ALLOCATED)
        agent = self._table._ids[slot]
        _set(self, i, O_AGENT, agent)
        _link(self, i, slot)
        if not (r.fl & R_ALLOCATED):
            r.fl |= R_ALLOCATED
            r.alloc_at = now
            tally_wait(&self._g, now - r.req_at)
            tally_wait(tt, now - r.req_at)
            self._g.cost_served += r.cost
            tt.cost_served += r.cost
        if self._waiters:
            _wake(self, i, now)
        if old == ST_QUEUED and self._transition_cb is not None:
            self._events.append((self._transition_cb,
                                 (_get(self, i, O_RID), self._statuses[ST_ALLOCATED], agent)))
        return 0

    cdef int _enqueue(self, Py_ssize_t i, double key_time) except -1:
        """-> QUEUED, ordered by ``key_time`` (its submission time)."""
        cdef Rec* r = &self._r[i]
        _room_to_queue(self, r.tn)       # before any change: may raise
        _to_state(self, i, ST_QUEUED)
        self._seqno += 1
        # min-heap on aging * t - priority == order of effective priority
        r.qk.a = self._aging * key_time - r.prio
        r.qk.c = r.dk.c = self._seqno
        _heap_push(self, i)
        return 0

    cdef int _finish(self, Py_ssize_t i, int status, object reason, double now) except -1:
        """-> a terminal state (from QUEUED, ALLOCATED or NEW); the caller
        has unbound an ALLOCATED record."""
        cdef int8_t old = self._r[i].st
        cdef Py_ssize_t tn = self._r[i].tn
        if reason is not None:
            # Python work first: nothing below may fail half-way
            tr = self._treasons[tn]
            if tr is None:
                self._treasons[tn] = tr = {}
            _tally(tr, reason)
            _tally(self._reasons, reason)
            _set(self, i, O_REASON, reason)
        if old == ST_QUEUED:
            _heap_remove(self, i)
        _to_state(self, i, status)
        self._r[i].fin_at = now
        if self._waiters:
            _wake(self, i, now)
        if old == ST_QUEUED and self._transition_cb is not None:
            self._events.append((self._transition_cb,
                                 (_get(self, i, O_RID), self._statuses[status], None)))
        _remember(self, i)
        return 0

    # -- tenants ------------------------------------------------------------------

    def _set_max_tenants(self, n):
        """_set_max_tenants(n): the cap before idle tenants fold into "other"."""
        self._max_tenants = check_int(n, "max_tenants", 1, 2**31 - 2)

    def _set_tenant_policy(self, name, double weight, int64_t max_active, int64_t max_queued,
                           double rate, double burst):
        """_set_tenant_policy(name, weight, max_active, max_queued, rate, burst)

        Replace a tenant's policy (validated by the caller; -1 = no cap,
        ``rate < 0`` = no bucket); its bucket starts full.  Serves the queue,
        since a raised cap may let work through.
        """
        cdef Py_ssize_t tn
        cdef Tenant* t
        cdef double now = self._enter()
        try:
            tn = self._tindex[name] if name in self._tindex else _new_tenant(self, name)
            t = &self._t[tn]
            t.policy = True
            t.w_inv = 1.0 / weight
            t.max_active = max_active
            t.max_queued = max_queued
            bucket_set(&t.bucket, rate, burst, now)
            _dispatch(self, now)
            self._leave(None)
        finally:
            self._release()

    def _clear_tenant_policy(self, name):
        """_clear_tenant_policy(name): back to weight 1, no caps, no bucket."""
        cdef Tenant* t
        cdef double now = self._enter()
        try:
            if name in self._tindex:
                t = &self._t[<Py_ssize_t>self._tindex[name]]
                t.policy = False
                t.w_inv = 1.0
                t.max_active = t.max_queued = -1
                t.bucket.rate = -1.0
                _dispatch(self, now)
            self._leave(None)
        finally:
            self._release()

    def _tenant_names(self):
        """_tenant_names(): every tenant with state, in creation order."""
        return list(self._tnames)

    def _tenant_stats(self, name):
        """_tenant_stats(name)

        :meth:`_stats` for one tenant (``unknown`` 0), plus its bucket
        ``rate`` and ``burst`` (``rate < 0``: none); KeyError for a tenant
        never seen.
        """
        cdef Tenant* t
        cdef Py_ssize_t tn
        self._acquire()
        try:
            if name not in self._tindex:
                raise KeyError(f"unknown tenant {name!r}")
            tn = self._tindex[name]
            t = &self._t[tn]
            d = tally_dict(&t.tally, self._treasons[tn])
            d.update(unknown=0, rate=t.bucket.rate, burst=t.bucket.burst)
            return d
        finally:
            self._release()

    # -- results ----------------------------------------------------------------

    cdef inline double _now(self) except? -1.0:
        if self._c_clock:
            return _mono()
        return self._clock_now()

    # -- submission -------------------------------------------------------------

    cdef object _submit(self, AllocationRequest request, double t0, double now,
                        bint fallback):
        cdef Py_ssize_t i, s, old
        cdef int verdict
        cdef double dec
        cdef Tally* tt
        rid = request.request_id
        old = _find(self, rid)
        if _live(self, old):
            raise ValueError(f"request_id {rid!r} is already "
                             f"{STATUS_NAMES[self._r[old].st]}")
        i = _new_request(self, request, now, fallback)
        try:
            verdict = _admit(self, i, request.tenant, now, fallback, &s)
        except BaseException:
            # nothing of this submission may remain: not counted, not stored
            _drop_record(self, i)
            raise
        # one commit, then the verdict (room for it was made by _admit)
        _commit(self, i, rid)
        tt = &self._t[self._r[i].tn].tally
        if fallback:
            self._g.fallbacks += 1
            tt.fallbacks += 1
        if verdict == A_GRANT:
            self._grant(i, s, now)
        elif verdict == A_QUEUE or verdict == A_WAIT:
            self._enqueue(i, self._r[i].req_at)
            if verdict == A_WAIT:
                _dispatch(self, now)
        else:
            self._finish(i, verdict, self._why, now)
        self._why = None
        dec = _mono() - t0
        self._r[i].dec = dec
        tally_decision(&self._g, dec, dec > self._slow_s)
        tally_decision(&self._t[self._r[i].tn].tally, dec, dec > self._slow_s)
        return _result(self, i, now)

    def allocate(self, request):
        """allocate(request)

        Submit a request; never blocks.

        Returns
        -------
        AllocationResult
            ALLOCATED when an eligible agent has room now; QUEUED when it must
            wait (others are waiting, or no agent has room); REJECTED by the
            rate limit or a full queue; FAILED when the pool is empty;
            TIMED_OUT when its deadline had already passed.

        Raises
        ------
        ValueError
            ``request_id`` is still queued or active (nothing changes, nothing
            is counted).
        TypeError
            ``request`` is not an :class:`AllocationRequest`.
        """
        return self._submit_locked(request, False)

    def _allocate_static(self, request):
        """_allocate_static(request): plain round-robin, counted as a fallback."""
        return self._submit_locked(request, True)

    cdef object _submit_locked(self, object request, bint fallback):
        cdef double t0 = _mono(), now
        if not isinstance(request, AllocationRequest):
            raise TypeError(f"request must be an AllocationRequest, "
                            f"got {type(request).__name__}")
        now = self._enter()
        try:
            return self._leave(self._submit(request, t0, now, fallback))
        finally:
            self._release()

    def release(self, request_id, success=True, duration_s=None):
        """release(request_id, success=True, duration_s=None)

        Finish an allocated request: free its slot, feed the agent's latency
        and failure tracking and the adaptive limit, then serve the queue
        (outcome listeners run first, so an ejection takes effect before).

        A QUEUED request is withdrawn instead (FAILED, "cancelled").  An
        unknown or already finished id is harmless: it is counted in
        ``unknown_releases`` and ``None`` is returned.

        Raises
        ------
        TypeError
            ``success`` is not a bool or ``duration_s`` not a number.
        ValueError
            ``duration_s`` is negative, NaN or infinite.
        """
        cdef double d = -1.0, now
        cdef Py_ssize_t i, slot
        cdef int32_t streak = 0
        if success is not True and success is not False:
            raise TypeError(f"success must be a bool, got {type(success).__name__}")
        if duration_s is not None:
            if type(duration_s) is float:
                d = duration_s
            elif isinstance(duration_s, (int, float)) and not isinstance(duration_s, bool):
                d = float(duration_s)
            else:
                raise TypeError(f"duration_s must be a number or None, "
                                f"got {type(duration_s).__name__}")
            if not (isfinite(d) and d >= 0.0):
                raise ValueError(f"duration_s must be finite and >= 0, got {duration_s!r}")
        now = self._enter()
        try:
            i = _find(self, request_id)
            if not _live(self, i):
                self._unknown += 1
                return self._leave(None)
            if self._r[i].st == ST_QUEUED:
                self._finish(i, ST_FAILED, "cancelled", now)
                return self._leave(_result(self, i, now))
            agent = _get(self, i, O_AGENT)
            slot = _unbind(self, i)
            self._finish(i, ST_RELEASED, None, now)
            res = _result(self, i, now)
            if slot >= 0:
                streak = self._table._complete(slot, d, success, now)
            if not success and slot >= 0 and self._outcome_cb is not None:
                # a detached request's outcome is charged to no agent
                self._events.append((self._outcome_cb, (agent, False, streak)))
            # outcomes first: an ejection takes the agent out before the
            # queue is served
            self._leave(None)
            if self._dl.n:
                _dispatch(self, now)
                self._leave(None)
            if self._limiter is not None:
                # last: if it raised, the slot would be served already
                self._limiter.record_outcome(success, None if d < 0.0 else d, now)
            return res
        finally:
            self._release()

    def withdraw(self, request_id, reason="cancelled"):
        """withdraw(request_id, reason="cancelled")

        Withdraw a QUEUED request (or give back an ALLOCATED one): FAILED with
        ``reason``.  Returns the final result, or None if the id is not live.
        """
        cdef double now
        cdef Py_ssize_t i
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, got {type(reason).__name__}")
        now = self._enter()     # a request past its deadline is timed out, not withdrawn
        try:
            i = _find(self, request_id)
            if not _live(self, i):
                return self._leave(None)
            if self._r[i].st == ST_ALLOCATED:
                _unbind(self, i)
            self._finish(i, ST_FAILED, reason, now)
            res = _result(self, i, now)
            _dispatch(self, now)
            return self._leave(res)
        finally:
            self._release()

    def status(self, request_id):
        """status(request_id)

        The request's current result; KeyError naming an unknown id.
        """
        cdef double now = self._enter()
        cdef Py_ssize_t i
        try:
            i = _find(self, request_id)
            if i < 0:
                raise KeyError(f"unknown request_id {request_id!r}")
            return self._leave(_result(self, i, now))
        finally:
            self._release()

    def tick(self):
        """tick()

        Expire deadlines and serve the queue; returns how many timed out.
        """
        cdef Py_ssize_t n
        cdef double now = self._enter(False)
        try:
            n = _expire(self, now)
            _dispatch(self, now)
            return self._leave(n)
        finally:
            self._release()

    def dispatch(self):
        """dispatch()

        Serve the queue now (after capacity was added); returns the count.
        """
        cdef double now = self._enter()
        try:
            return self._leave(_dispatch(self, now))
        finally:
            self._release()

    def _add_waiter(self, request_id, fut):
        """_add_waiter(request_id, fut)

        Wake ``fut`` (through the wake callback) when the request leaves the
        queue.  Returns the request's deadline, or None if it is not QUEUED.
        """
        cdef Py_ssize_t i
        self._acquire()
        try:
            i = _find(self, request_id)
            if i < 0 or self._r[i].st != ST_QUEUED:
                return None
            futs = self._waiters.get(i)
            if futs is None:
                self._waiters[i] = [fut]
            else:
                futs.append(fut)
            return self._r[i].dk.a
        finally:
            self._release()

    # -- failover support -------------------------------------------------------

    def active_on(self, agent_id):
        """active_on(agent_id)

        Ids of the requests allocated on ``agent_id``, highest priority first
        (then in allocation order); ``[]`` for an unknown agent.
        """
        cdef Py_ssize_t slot
        cdef int32_t i
        self._acquire()
        try:
            s = self._table._index.get(agent_id)
            if s is None or <Py_ssize_t>s >= self._nhead:
                return []
            items = []
            i = self._head[<Py_ssize_t>s]
            while i >= 0:
                items.append((-self._r[i].prio, _get(self, i, O_RID)))
                i = self._r[i].anext
            items.reverse()             # the list is newest first
            items.sort(key=_first)
            return [rid for _, rid in items]
        finally:
            self._release()

    def move(self, request_id, to_agent=None):
        """move(request_id, to_agent=None)

        Move an ALLOCATED request off its agent (failover).

        With ``to_agent`` the slot is taken there if it can be; with ``None``
        the balancer's strategy picks the best eligible agent.  A request
        that cannot be placed goes back to the queue with a fresh deadline
        (``timeout_s`` from now), its priority and its place ahead of newer
        requests (its original submission time); it spends no token.

        Returns
        -------
        str or None
            The new agent, or ``None`` when it was queued.

        Raises
        ------
        KeyError
            The request is not ALLOCATED, or ``to_agent`` is unknown (nothing
            changes).
        """
        cdef double now
        cdef Py_ssize_t i, to_slot = -1, s = -1
        cdef AgentTable t = self._table
        cdef Rec* r
        self._acquire()
        try:
            now = self._now()
            i = _find(self, request_id)
            if i < 0 or self._r[i].st != ST_ALLOCATED:
                raise KeyError(f"request_id {request_id!r} is not allocated")
            if to_agent is not None:
                # resolve the target before anything changes (KeyError naming it)
                to_slot = t.slot(to_agent)
            r = &self._r[i]
            _room_to_queue(self, r.tn)   # a requeue below must not fail half-way
            _unbind(self, i)
            if to_slot >= 0:
                if not ((r.fl & R_EXCL) and to_agent in _get(self, i, O_EXCL)) and \
                        t._ok(to_slot, 1, now, True, r.cpu, r.mem, r.net):
                    t._reserve(to_slot, r.cpu, r.mem, r.net)
                    s = to_slot
            elif to_agent is None:
                s = _pick(self, i, now)
            if s >= 0:
                self._grant(i, s, now)
                return self._leave(_get(self, i, O_AGENT))
            # back to the queue: a fresh deadline, its place by submission time
            _set(self, i, O_AGENT, None)
            r.dk.a = now + r.timeout
            self._enqueue(i, r.req_at)
            # another agent may have room: the queue decides, in its order
            _dispatch(self, now)
            return self._leave(None)
        finally:
            self._release()

    def is_movable(self, request_id):
        """is_movable(request_id)

        False for a live request submitted with ``movable=False``; KeyError
        for an unknown id.
        """
        cdef Py_ssize_t i = _find(self, request_id)
        if i < 0:
            raise KeyError(f"unknown request_id {request_id!r}")
        return not (self._r[i].fl & R_PINNED)

    def detach(self, request_id):
        """detach(request_id)

        Free an ALLOCATED request's slot on its (failed) agent without moving
        it: it stays ALLOCATED, bound to no agent, until released, and its
        outcome is then charged to no agent.  Returns the agent it left.

        Raises
        ------
        KeyError
            The request is not ALLOCATED on an agent.
        """
        cdef Py_ssize_t i
        self._acquire()
        try:
            i = _find(self, request_id)
            if i < 0 or self._r[i].st != ST_ALLOCATED or self._r[i].slot < 0:
                raise KeyError(f"request_id {request_id!r} is not allocated on an agent")
            _unbind(self, i)
            _dispatch(self, self._now())
            return self._leave(_get(self, i, O_AGENT))
        finally:
            self._release()

    def agent_leaving(self, agent_id):
        """agent_leaving(agent_id)

        Called (lock held) just before ``agent_id`` leaves the table: the
        ``leaving`` callback runs (the manager fails the agent's work over),
        then whatever is still allocated there is detached from the agent
        (it stays ALLOCATED until released; its slot is gone with the agent).
        """
        cdef Py_ssize_t slot
        cdef int32_t i, nxt
        self._acquire()
        try:
            if self._leaving_cb is not None:
                self._leaving_cb(agent_id)
            s = self._table._index.get(agent_id)
            if s is not None and <Py_ssize_t>s < self._nhead:
                slot = s
                i = self._head[slot]
                while i >= 0:
                    nxt = self._r[i].anext
                    self._r[i].aprev = self._r[i].anext = self._r[i].slot = -1
                    i = nxt
                self._head[slot] = -1
            self._leave(None)
        finally:
            self._release()

    # -- statistics ---------------------------------------------------------------

    def _stats(self):
        """_stats()

        The global counters as a dict: ``counts`` by state in
        ``STATUS_NAMES`` order, ``total``, ``unknown`` (releases),
        ``fallbacks``, ``slow``, ``cost_served``, ``reasons`` and the last
        ``waits`` / ``decisions`` samples as numpy arrays.
        """
        self._acquire()
        try:
            d = tally_dict(&self._g, self._reasons)
            d["unknown"] = self._unknown
            return d
        finally:
            self._release()

    @property
    def queued_count(self):
        """Requests waiting in the queue."""
        return self._g.counts[ST_QUEUED]

    @property
    def active_count(self):
        """Requests ALLOCATED now."""
        return self._g.counts[ST_ALLOCATED]

    @property
    def total_requests(self):
        """Submissions counted so far."""
        return self._g.total

    @property
    def slow_decisions(self):
        """Submissions whose decision took longer than the slow threshold."""
        return self._g.slow

    @property
    def records_in_use(self):
        """Records held (live plus history): bounded by live + ``history``."""
        return self._rhw - self._nfree

    def _records(self):
        """_records()

        A copy of the records in use so far as a numpy structured array
        (the C struct's fields; for the invariant checks).
        """
        if self._rhw == 0:
            return np.empty(0, dtype=np.asarray(<Rec[:1]>&_R0).dtype)
        return np.asarray(<Rec[:self._rhw]>self._r).copy()

    def _check_invariants(self):
        """_check_invariants()

        Verify the core's internal consistency (for tests): counts per state,
        heap order and positions, per-agent lists, the id map, the history.
        Raises AssertionError naming the first broken rule.
        """
        self._acquire()
        try:
            return _check(self)
        finally:
            self._release()


def _first(item):
    return item[0]


include "_alloc_records.pxi"
include "_alloc_tenants.pxi"
include "_alloc_admit.pxi"
include "_alloc_check.pxi"
