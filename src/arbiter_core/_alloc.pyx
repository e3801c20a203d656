# The allocation core: every request's record, the priority queue with aging,
# the deadline heap, the per-agent lists of active allocations, the history of
# finished requests and the statistics counters -- all in C arrays, so that an
# allocate + release cycle costs about a microsecond and stays flat however
# long the process runs.
#
# Records.  A request is a record index into parallel arrays; free indices go
# on a stack and are reused.  A record is live (QUEUED, ALLOCATED) or
# finished; finished records stay in a FIFO ring of ``history`` entries so
# that ``status()`` can answer for them, and the oldest is freed when the ring
# is full: eviction is O(1), never a walk.  ``_ids`` maps request ids to the
# newest record of that id; a finished id that is submitted again gets a new
# record and the old one is *detached* (it stays in the ring until evicted,
# but nobody finds it by id any more).
#
# Queue.  Linear aging keeps heap order time-invariant: effective priority
# ``p + aging * (now - t)`` orders requests exactly as ``aging * t - p`` does,
# so the heap key is fixed at enqueue, with a sequence number for FIFO among
# equals.  The queue and the deadline heap are indexed binary heaps (each
# record knows its position), so a withdrawn or dispatched request leaves both
# at once: no stale entries, no compaction.
#
# Tenants.  Every request belongs to a tenant (``"default"`` unless named);
# each tenant has its own queue heap (the order above), and the queue serves
# tenants by start-time fair queuing (Goyal et al., SFQ): a tenant's next
# dispatch carries the start tag S = max(V, F), where F is the finish tag of
# its last dispatch (S + 1 / weight; with fair shares by cost, S + cost /
# weight, the Virtual Token Counter of Sheng et al., OSDI 2024) and V the
# start tag of the latest dispatch; the backlogged tenant with the smallest S
# goes next, ties broken by the requests' own order.  Backlogged tenants
# therefore share dispatches (or cost) in proportion to their weights, an
# idle tenant's share goes to the others, and with one tenant the order is
# exactly the single queue's.  A tenant at
# its ``max_active`` cap is passed over, so it never blocks the others.
# Per-tenant counters obey the global identities; past ``max_tenants`` the
# least recently active tenant without a policy or live request is folded
# into ``"other"``.
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

__all__ = ["AllocCore", "STATUS_NAMES"]


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

# Bits of `_fl`.
cdef enum:
    R_HIGH = 1        # priority >= HIGH (the health rule)
    R_DETACHED = 2    # a newer record holds this request id
    R_ALLOCATED = 4   # was allocated at some point (allocated_at is set)
    R_FIT = 8         # needs resources (cpu / memory / network)
    R_PINNED = 16     # not movable: failover detaches it instead
    R_EXCL = 32       # has agents it must not get

cdef enum:
    N_SAMPLES = 10000     # wait and decision samples kept for percentiles
    N_TSAMPLES = 256      # the same, per tenant
    MAX_SKIP = 1024       # queued requests passed over per dispatch (resources, exclusions)
    N_REASONS = 64        # distinct failure reasons tallied before "other"
    HIGH_PRIORITY = 75


cdef struct Tenant:
    double w_inv            # 1 / weight
    double S                # SFQ start tag of its next dispatch
    double F                # finish tag of its last dispatch
    double rate             # bucket refill per second (< 0: no bucket)
    double burst
    double tokens
    double t_last           # time of the last refill
    int64_t max_active      # -1: no cap
    int64_t max_queued      # -1: no cap
    int64_t last_use        # submission counter at its latest submission
    int64_t counts[6]       # requests by state (N_STATES)
    int64_t total
    double cost_served      # the cost of the requests it was allocated
    int64_t fallbacks
    int64_t slow
    int64_t iw              # wait samples taken
    int64_t id              # decision samples taken
    int32_t* q              # its queue: a heap of record indices
    Py_ssize_t nq
    Py_ssize_t qcap
    Py_ssize_t pos          # position in the tenant heap (-1: not in it)
    bint policy
    double* waits           # the last N_TSAMPLES waits
    double* decs            # the last N_TSAMPLES decision times


cdef class AllocCore:
    """AllocCore()
    --

    The allocator's state and hot paths in C.  Not used directly: the
    Python class :class:`arbiter_core.ResourceAllocator` extends it with
    configuration, asyncio waiting and statistics records, and documents the
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

    # configuration
    cdef int _code                  # strategy code of the balancer
    cdef double _aging
    cdef Py_ssize_t _max_queue
    cdef Py_ssize_t _hist_cap
    cdef double _slow_s
    cdef bint _by_cost              # fair shares charge cost / weight, not 1 / weight

    # records
    cdef Py_ssize_t _rcap           # allocated records
    cdef Py_ssize_t _rhw            # records [0, _rhw) have been used
    cdef Py_ssize_t _nfree
    cdef int32_t* _free
    cdef int8_t* _st
    cdef int8_t* _fl
    cdef int32_t* _prio
    cdef int32_t* _slot             # agent slot while ALLOCATED (-1: none / agent gone)
    cdef int32_t* _aprev            # doubly linked list of an agent's allocations
    cdef int32_t* _anext
    cdef int32_t* _qpos             # position in the queue heap (-1: not queued)
    cdef int32_t* _dpos             # position in the deadline heap
    cdef int64_t* _seq
    cdef double* _qkey
    cdef double* _cpu
    cdef double* _mem
    cdef double* _net
    cdef double* _req_at
    cdef double* _deadline
    cdef double* _timeout
    cdef double* _alloc_at
    cdef double* _fin_at
    cdef double* _dec
    cdef double* _cost
    cdef list _rid                  # per record: request id
    cdef list _task                 # task id
    cdef list _res                  # required resources (or None)
    cdef list _agent                # agent id (kept after release, for status)
    cdef list _reason
    cdef list _excl                 # frozenset of excluded agent ids, or None
    cdef list _aff                  # (prefix_bytes, affinity_key), or None
    cdef dict _ids                  # request id -> newest record
    cdef dict _waiters              # record -> [asyncio futures]

    # per agent (by table slot): head of its allocation list
    cdef int32_t* _head
    cdef Py_ssize_t _nhead

    # the deadline heap of every queued record (the queues are per tenant)
    cdef int32_t* _dl
    cdef Py_ssize_t _nq
    cdef Py_ssize_t _qcap
    cdef int64_t _seqno

    # tenants
    cdef Tenant* _t
    cdef Py_ssize_t _ntn            # tenants in use
    cdef Py_ssize_t _tcap           # allocated
    cdef Py_ssize_t _max_tenants
    cdef int32_t* _th               # heap of backlogged tenants, by (S, head order)
    cdef Py_ssize_t _nth
    cdef double _V                  # SFQ virtual time
    cdef int64_t _use               # submission counter (tenant recency)
    cdef Py_ssize_t _other          # the "other" tenant, -1 until needed
    cdef int32_t* _rtn              # per record: its tenant
    cdef list _tnames
    cdef dict _tindex
    cdef list _treasons

    # finished-request history: a FIFO ring of record indices
    cdef int32_t* _hist
    cdef Py_ssize_t _hstart
    cdef Py_ssize_t _hn
    cdef Py_ssize_t _hcap_alloc

    # statistics
    cdef int64_t _counts[N_STATES]
    cdef int64_t _total
    cdef int64_t _unknown
    cdef int64_t _fallbacks
    cdef int64_t _slow
    cdef double _cost_served
    cdef dict _reasons
    cdef double* _waits
    cdef double* _decs
    cdef Py_ssize_t _nw
    cdef Py_ssize_t _nd
    cdef int64_t _iw
    cdef int64_t _id

    def __cinit__(self, *args, **kwargs):
        self._rcap = self._rhw = self._nfree = 0
        self._nhead = 0
        self._nq = self._qcap = 0
        self._ntn = self._tcap = self._nth = 0
        self._max_tenants = 10000
        self._V = 0.0
        self._use = 0
        self._other = -1
        self._tnames = []
        self._tindex = {}
        self._treasons = []
        self._hstart = self._hn = self._hcap_alloc = 0
        self._seqno = 0
        memset(self._counts, 0, sizeof(self._counts))
        self._total = self._unknown = self._fallbacks = self._slow = 0
        self._cost_served = 0.0
        self._nw = self._nd = 0
        self._iw = self._id = 0
        self._rid = []
        self._task = []
        self._res = []
        self._agent = []
        self._reason = []
        self._excl = []
        self._aff = []
        self._ids = {}
        self._waiters = {}
        self._reasons = {}
        self._events = []
        self._limbo = []
        self._waits = <double*>PyMem_Realloc(NULL, N_SAMPLES * sizeof(double))
        self._decs = <double*>PyMem_Realloc(NULL, N_SAMPLES * sizeof(double))
        if self._waits == NULL or self._decs == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self._free)
        PyMem_Free(self._st)
        PyMem_Free(self._fl)
        PyMem_Free(self._prio)
        PyMem_Free(self._slot)
        PyMem_Free(self._aprev)
        PyMem_Free(self._anext)
        PyMem_Free(self._qpos)
        PyMem_Free(self._dpos)
        PyMem_Free(self._seq)
        PyMem_Free(self._qkey)
        PyMem_Free(self._cpu)
        PyMem_Free(self._mem)
        PyMem_Free(self._net)
        PyMem_Free(self._req_at)
        PyMem_Free(self._deadline)
        PyMem_Free(self._timeout)
        PyMem_Free(self._alloc_at)
        PyMem_Free(self._fin_at)
        PyMem_Free(self._dec)
        PyMem_Free(self._cost)
        PyMem_Free(self._head)
        cdef Py_ssize_t k
        for k in range(self._ntn):
            PyMem_Free(self._t[k].q)
            PyMem_Free(self._t[k].waits)
            PyMem_Free(self._t[k].decs)
        PyMem_Free(self._t)
        PyMem_Free(self._th)
        PyMem_Free(self._rtn)
        PyMem_Free(self._dl)
        PyMem_Free(self._hist)
        PyMem_Free(self._waits)
        PyMem_Free(self._decs)

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
            self._new_tenant("default")

    # -- configuration (Python sets these; validated there) -------------------

    def _configure(self, int strategy_code, double aging_per_s, Py_ssize_t max_queue,
                   Py_ssize_t history, double slow_decision_s, bint fair_share_cost=False):
        """_configure(strategy_code, aging_per_s, max_queue, history, slow_decision_s,
        fair_share_cost=False)"""
        self._code = strategy_code
        self._by_cost = fair_share_cost
        self._aging = aging_per_s
        self._max_queue = max_queue
        self._slow_s = slow_decision_s
        if history != self._hist_cap:
            self._acquire()
            try:
                self._set_history(history)
            finally:
                self._release()

    def _set_strategy_code(self, int code):
        """_set_strategy_code(code): follow the balancer's strategy."""
        self._code = code

    def _set_callbacks(self, limiter, transition, outcome, wake, leaving):
        """_set_callbacks(limiter, transition, outcome, wake, leaving)

        The rate limiter (or None) and the event sinks (each a callable or
        None): transition(request_id, status, agent_id), outcome(agent_id,
        success, streak), wake(futures), leaving(agent_id).
        """
        self._limiter = limiter
        self._transition_cb = transition
        self._outcome_cb = outcome
        self._wake_cb = wake
        self._leaving_cb = leaving

    cdef int _set_history(self, Py_ssize_t cap) except -1:
        # shrink: evict the oldest beyond the new cap; the ring is then
        # rebuilt at the new size
        cdef Py_ssize_t i, n
        cdef int32_t* ring
        while self._hn > cap:
            self._evict_oldest()
        n = self._hn
        ring = <int32_t*>PyMem_Realloc(NULL, (cap if cap > 0 else 1) * sizeof(int32_t))
        if ring == NULL:
            raise MemoryError()
        for i in range(n):
            ring[i] = self._hist[(self._hstart + i) % self._hcap_alloc]
        PyMem_Free(self._hist)
        self._hist = ring
        self._hstart = 0
        self._hcap_alloc = cap if cap > 0 else 1
        self._hist_cap = cap
        return 0

    # -- storage --------------------------------------------------------------

    cdef int _grow_records(self) except -1:
        cdef Py_ssize_t n = self._rcap * 2 if self._rcap else 64
        if n > 0x7FFFFFFF:
            raise MemoryError("too many allocation records")
        self._free = <int32_t*>_re(self._free, n, sizeof(int32_t))
        self._st = <int8_t*>_re(self._st, n, sizeof(int8_t))
        self._fl = <int8_t*>_re(self._fl, n, sizeof(int8_t))
        self._prio = <int32_t*>_re(self._prio, n, sizeof(int32_t))
        self._slot = <int32_t*>_re(self._slot, n, sizeof(int32_t))
        self._aprev = <int32_t*>_re(self._aprev, n, sizeof(int32_t))
        self._anext = <int32_t*>_re(self._anext, n, sizeof(int32_t))
        self._qpos = <int32_t*>_re(self._qpos, n, sizeof(int32_t))
        self._dpos = <int32_t*>_re(self._dpos, n, sizeof(int32_t))
        self._seq = <int64_t*>_re(self._seq, n, sizeof(int64_t))
        self._qkey = <double*>_re(self._qkey, n, sizeof(double))
        self._cpu = <double*>_re(self._cpu, n, sizeof(double))
        self._mem = <double*>_re(self._mem, n, sizeof(double))
        self._net = <double*>_re(self._net, n, sizeof(double))
        self._req_at = <double*>_re(self._req_at, n, sizeof(double))
        self._deadline = <double*>_re(self._deadline, n, sizeof(double))
        self._timeout = <double*>_re(self._timeout, n, sizeof(double))
        self._alloc_at = <double*>_re(self._alloc_at, n, sizeof(double))
        self._fin_at = <double*>_re(self._fin_at, n, sizeof(double))
        self._dec = <double*>_re(self._dec, n, sizeof(double))
        self._cost = <double*>_re(self._cost, n, sizeof(double))
        self._rtn = <int32_t*>_re(self._rtn, n, sizeof(int32_t))
        extra = [None] * (n - self._rcap)
        self._rid.extend(extra)
        self._task.extend(extra)
        self._res.extend(extra)
        self._agent.extend(extra)
        self._reason.extend(extra)
        self._excl.extend(extra)
        self._aff.extend(extra)
        self._rcap = n
        return 0

    cdef int _grow_queue(self, Py_ssize_t tn) except -1:
        """Room for one more queued record, globally and in tenant ``tn``."""
        cdef Py_ssize_t n
        cdef Tenant* t = &self._t[tn]
        if self._nq == self._qcap:
            n = self._qcap * 2 if self._qcap else 64
            self._dl = <int32_t*>_re(self._dl, n, sizeof(int32_t))
            self._qcap = n
        if t.nq == t.qcap:
            n = t.qcap * 2 if t.qcap else 8
            t.q = <int32_t*>_re(t.q, n, sizeof(int32_t))
            t.qcap = n
        return 0

    cdef int _grow_heads(self, Py_ssize_t slot) except -1:
        cdef Py_ssize_t n = self._nhead * 2 if self._nhead else 16, i
        while n <= slot:
            n *= 2
        self._head = <int32_t*>_re(self._head, n, sizeof(int32_t))
        for i in range(self._nhead, n):
            self._head[i] = -1
        self._nhead = n
        return 0

    cdef Py_ssize_t _new_record(self) except -1:
        """A fresh record in state NEW (invisible until committed)."""
        cdef Py_ssize_t i
        if self._nfree:
            self._nfree -= 1
            i = self._free[self._nfree]
        else:
            if self._rhw == self._rcap:
                self._grow_records()
            i = self._rhw
            self._rhw += 1
        self._st[i] = ST_NEW
        self._fl[i] = 0
        self._slot[i] = -1
        self._aprev[i] = -1
        self._anext[i] = -1
        self._qpos[i] = -1
        self._dpos[i] = -1
        self._dec[i] = 0.0
        self._alloc_at[i] = INFINITY
        self._fin_at[i] = INFINITY
        return i

    cdef void _drop_record(self, Py_ssize_t i):
        """Return a record to the free stack (its Python slots cleared)."""
        self._st[i] = ST_FREE
        self._rid[i] = None
        self._task[i] = None
        self._res[i] = None
        self._agent[i] = None
        self._reason[i] = None
        self._excl[i] = None
        self._aff[i] = None
        self._free[self._nfree] = <int32_t>i
        self._nfree += 1

    cdef int _commit(self, Py_ssize_t i, object rid) except -1:
        """Make a NEW record findable by its id and count the submission."""
        cdef object old = self._ids.get(rid)
        if old is not None:
            self._fl[<Py_ssize_t>old] |= R_DETACHED
        self._ids[rid] = i
        self._total += 1
        self._t[self._rtn[i]].total += 1
        return 0

    # -- history --------------------------------------------------------------

    cdef void _evict_oldest(self):
        cdef Py_ssize_t i = self._hist[self._hstart]
        self._hstart += 1
        if self._hstart == self._hcap_alloc:
            self._hstart = 0
        self._hn -= 1
        self._forget(i)

    cdef void _forget(self, Py_ssize_t i):
        if not (self._fl[i] & R_DETACHED):
            del self._ids[self._rid[i]]
        self._drop_record(i)

    cdef void _remember(self, Py_ssize_t i):
        """A finished record enters the history (the oldest leaves: O(1))."""
        cdef Py_ssize_t j
        if self._hist_cap == 0:
            # forgotten once the operation has built its result (_flush)
            self._limbo.append(i)
            return
        if self._hn == self._hist_cap:
            self._evict_oldest()
        j = self._hstart + self._hn
        if j >= self._hcap_alloc:
            j -= self._hcap_alloc
        self._hist[j] = <int32_t>i
        self._hn += 1

    # -- heaps ------------------------------------------------------------------

    cdef inline bint _qless(self, int32_t a, int32_t b) noexcept nogil:
        return self._qkey[a] < self._qkey[b] or (
            self._qkey[a] == self._qkey[b] and self._seq[a] < self._seq[b])

    cdef inline bint _dless(self, int32_t a, int32_t b) noexcept nogil:
        return self._deadline[a] < self._deadline[b] or (
            self._deadline[a] == self._deadline[b] and self._seq[a] < self._seq[b])

    cdef void _qup(self, Tenant* t, Py_ssize_t k) noexcept nogil:
        cdef int32_t x = t.q[k]
        cdef Py_ssize_t p
        while k > 0:
            p = (k - 1) >> 1
            if not self._qless(x, t.q[p]):
                break
            t.q[k] = t.q[p]
            self._qpos[t.q[k]] = <int32_t>k
            k = p
        t.q[k] = x
        self._qpos[x] = <int32_t>k

    cdef void _qdown(self, Tenant* t, Py_ssize_t k) noexcept nogil:
        cdef int32_t x = t.q[k]
        cdef Py_ssize_t c, n = t.nq
        while True:
            c = 2 * k + 1
            if c >= n:
                break
            if c + 1 < n and self._qless(t.q[c + 1], t.q[c]):
                c += 1
            if not self._qless(t.q[c], x):
                break
            t.q[k] = t.q[c]
            self._qpos[t.q[k]] = <int32_t>k
            k = c
        t.q[k] = x
        self._qpos[x] = <int32_t>k

    # the tenant heap: backlogged tenants by (start tag, their head's order)

    cdef inline bint _tless(self, int32_t a, int32_t b) noexcept nogil:
        cdef Tenant* ta = &self._t[a]
        cdef Tenant* tb = &self._t[b]
        return ta.S < tb.S or (ta.S == tb.S and self._qless(ta.q[0], tb.q[0]))

    cdef void _thup(self, Py_ssize_t k) noexcept nogil:
        cdef int32_t x = self._th[k]
        cdef Py_ssize_t p
        while k > 0:
            p = (k - 1) >> 1
            if not self._tless(x, self._th[p]):
                break
            self._th[k] = self._th[p]
            self._t[self._th[k]].pos = k
            k = p
        self._th[k] = x
        self._t[x].pos = k

    cdef void _thdown(self, Py_ssize_t k) noexcept nogil:
        cdef int32_t x = self._th[k]
        cdef Py_ssize_t c, n = self._nth
        while True:
            c = 2 * k + 1
            if c >= n:
                break
            if c + 1 < n and self._tless(self._th[c + 1], self._th[c]):
                c += 1
            if not self._tless(self._th[c], x):
                break
            self._th[k] = self._th[c]
            self._t[self._th[k]].pos = k
            k = c
        self._th[k] = x
        self._t[x].pos = k

    cdef void _th_push(self, Py_ssize_t tn) noexcept nogil:
        self._th[self._nth] = <int32_t>tn
        self._nth += 1
        self._thup(self._nth - 1)

    cdef void _th_remove(self, Py_ssize_t tn) noexcept nogil:
        cdef Py_ssize_t k = self._t[tn].pos
        cdef int32_t y
        self._t[tn].pos = -1
        self._nth -= 1
        if k != self._nth:
            y = self._th[self._nth]
            self._th[k] = y
            self._t[y].pos = k
            self._thup(k)
            self._thdown(self._t[y].pos)

    cdef void _th_fix(self, Py_ssize_t tn) noexcept nogil:
        """Restore the tenant heap after tenant ``tn``'s key changed."""
        cdef Py_ssize_t k = self._t[tn].pos
        if k >= 0:
            self._thup(k)
            self._thdown(self._t[tn].pos)

    cdef void _dup(self, Py_ssize_t k) noexcept nogil:
        cdef int32_t x = self._dl[k]
        cdef Py_ssize_t p
        while k > 0:
            p = (k - 1) >> 1
            if not self._dless(x, self._dl[p]):
                break
            self._dl[k] = self._dl[p]
            self._dpos[self._dl[k]] = <int32_t>k
            k = p
        self._dl[k] = x
        self._dpos[x] = <int32_t>k

    cdef void _ddown(self, Py_ssize_t k) noexcept nogil:
        cdef int32_t x = self._dl[k]
        cdef Py_ssize_t c, n = self._nq
        while True:
            c = 2 * k + 1
            if c >= n:
                break
            if c + 1 < n and self._dless(self._dl[c + 1], self._dl[c]):
                c += 1
            if not self._dless(self._dl[c], x):
                break
            self._dl[k] = self._dl[c]
            self._dpos[self._dl[k]] = <int32_t>k
            k = c
        self._dl[k] = x
        self._dpos[x] = <int32_t>k

    cdef int _heap_push(self, Py_ssize_t i) except -1:
        """Put a record on its tenant's queue and the deadline heap (room
        made by _grow_queue beforehand)."""
        cdef Py_ssize_t tn = self._rtn[i]
        cdef Tenant* t = &self._t[tn]
        cdef bint was_empty = t.nq == 0
        t.q[t.nq] = <int32_t>i
        t.nq += 1
        self._qup(t, t.nq - 1)
        self._dl[self._nq] = <int32_t>i
        self._nq += 1
        self._dup(self._nq - 1)
        if was_empty:
            # newly backlogged: it starts no earlier than the virtual time
            if t.S < self._V:
                t.S = self._V
            if t.F > t.S:
                t.S = t.F
            self._th_push(tn)
        elif t.q[0] == i:
            self._th_fix(tn)        # a new head: the tenant's order changed
        return 0

    cdef void _heap_remove(self, Py_ssize_t i) noexcept nogil:
        """Take a record off its tenant's queue and the deadline heap."""
        cdef Py_ssize_t k, last, tn = self._rtn[i]
        cdef Tenant* t = &self._t[tn]
        cdef int32_t y
        cdef bint was_head = t.q[0] == i
        # the tenant's queue
        t.nq -= 1
        last = t.nq
        k = self._qpos[i]
        self._qpos[i] = -1
        if k != last:
            y = t.q[last]
            t.q[k] = y
            self._qpos[y] = <int32_t>k
            self._qup(t, k)
            self._qdown(t, self._qpos[y])
        if t.nq == 0:
            if t.pos >= 0:
                self._th_remove(tn)
        elif was_head:
            self._th_fix(tn)        # a new head (a non-head never overtakes it)
        # the deadline heap
        self._nq -= 1
        last = self._nq
        k = self._dpos[i]
        self._dpos[i] = -1
        if k != last:
            y = self._dl[last]
            self._dl[k] = y
            self._dpos[y] = <int32_t>k
            self._dup(k)
            self._ddown(self._dpos[y])

    # -- state transitions (lock held) ------------------------------------------

    cdef inline void _leave_state(self, Py_ssize_t i) noexcept nogil:
        cdef int8_t s = self._st[i]
        if s < N_STATES:
            self._counts[s] -= 1
            self._t[self._rtn[i]].counts[s] -= 1

    cdef inline void _enter_state(self, Py_ssize_t i, int s) noexcept nogil:
        self._st[i] = <int8_t>s
        self._counts[s] += 1
        self._t[self._rtn[i]].counts[s] += 1

    cdef int _link(self, Py_ssize_t i, Py_ssize_t slot) except -1:
        if slot >= self._nhead:
            self._grow_heads(slot)
        cdef int32_t h = self._head[slot]
        self._slot[i] = <int32_t>slot
        self._aprev[i] = -1
        self._anext[i] = h
        if h >= 0:
            self._aprev[h] = <int32_t>i
        self._head[slot] = <int32_t>i
        return 0

    cdef void _unlink(self, Py_ssize_t i) noexcept nogil:
        cdef int32_t p = self._aprev[i], n = self._anext[i]
        cdef Py_ssize_t slot = self._slot[i]
        if slot < 0:
            return
        if p >= 0:
            self._anext[p] = n
        else:
            self._head[slot] = n
        if n >= 0:
            self._aprev[n] = p
        self._aprev[i] = -1
        self._anext[i] = -1
        self._slot[i] = -1

    cdef Py_ssize_t _unbind(self, Py_ssize_t i):
        """Free an ALLOCATED record's task slot; returns the table slot (-1:
        the agent is gone)."""
        cdef Py_ssize_t slot = self._slot[i]
        if slot < 0:
            return -1
        self._unlink(i)
        self._table._unreserve(slot, self._cpu[i], self._mem[i], self._net[i])
        return slot

    cdef int _grant(self, Py_ssize_t i, Py_ssize_t slot, double now) except -1:
        """-> ALLOCATED on ``slot`` (already reserved)."""
        cdef int8_t old = self._st[i]
        cdef Tenant* t
        if slot >= self._nhead:
            self._grow_heads(slot)      # before any change: may raise
        self._leave_state(i)
        if old == ST_QUEUED:
            self._heap_remove(i)
        self._enter_state(i, ST_ALLOCATED)
        agent = self._table._ids[slot]
        self._agent[i] = agent
        self._link(i, slot)
        if not (self._fl[i] & R_ALLOCATED):
            self._fl[i] |= R_ALLOCATED
            self._alloc_at[i] = now
            self._waits[self._iw % N_SAMPLES] = now - self._req_at[i]
            self._iw += 1
            self._cost_served += self._cost[i]
            t = &self._t[self._rtn[i]]
            t.waits[t.iw % N_TSAMPLES] = now - self._req_at[i]
            t.iw += 1
            t.cost_served += self._cost[i]
        if self._waiters:
            self._wake(i, now)
        if old == ST_QUEUED and self._transition_cb is not None:
            self._events.append((self._transition_cb,
                                 (self._rid[i], self._statuses[ST_ALLOCATED], agent)))
        return 0

    cdef int _enqueue(self, Py_ssize_t i, double key_time) except -1:
        """-> QUEUED, ordered by ``key_time`` (its submission time)."""
        self._grow_queue(self._rtn[i])  # before any change: may raise
        self._leave_state(i)
        self._enter_state(i, ST_QUEUED)
        self._seqno += 1
        self._seq[i] = self._seqno
        # min-heap on aging * t - priority == order of effective priority
        self._qkey[i] = self._aging * key_time - self._prio[i]
        self._heap_push(i)
        return 0

    cdef int _finish(self, Py_ssize_t i, int status, object reason, double now) except -1:
        """-> a terminal state (from QUEUED, ALLOCATED or NEW); the caller
        has unbound an ALLOCATED record."""
        cdef int8_t old = self._st[i]
        if reason is not None:
            # Python work first: nothing below may fail half-way
            tr = self._treasons[self._rtn[i]]
            if tr is None:
                self._treasons[self._rtn[i]] = tr = {}
            _tally(tr, reason)
            _tally(self._reasons, reason)
            self._reason[i] = reason
        self._leave_state(i)
        if old == ST_QUEUED:
            self._heap_remove(i)
        self._enter_state(i, status)
        self._fin_at[i] = now
        if self._waiters:
            self._wake(i, now)
        if old == ST_QUEUED and self._transition_cb is not None:
            self._events.append((self._transition_cb,
                                 (self._rid[i], self._statuses[status], None)))
        self._remember(i)
        return 0

    cdef int _wake(self, Py_ssize_t i, double now) except -1:
        """Queue the wake-up of a record's waiters, with its result as of now
        (they need not look it up: with no history it is forgotten)."""
        futs = self._waiters.pop(i, None)
        if futs is not None and self._wake_cb is not None:
            self._events.append((self._wake_cb, (futs, self._result(i, now))))
        return 0

    cdef int _flush(self) except -1:
        """Deliver queued events (state is consistent; they may call back in)
        and forget finished records when no history is kept."""
        cdef list ev
        while self._limbo:
            self._forget(self._limbo.pop())
        while self._events:
            ev = self._events
            self._events = []
            for cb, args in ev:
                cb(*args)
        return 0

    cdef Py_ssize_t _expire(self, double now) except -1:
        """Time out queued requests whose deadline has passed (exactly once)."""
        cdef Py_ssize_t n = 0
        cdef int32_t i
        while self._nq and self._deadline[self._dl[0]] <= now:
            i = self._dl[0]
            self._finish(i, ST_TIMED_OUT, "timeout", now)
            n += 1
        return n

    cdef bint _any_free(self, double now) noexcept:
        cdef AgentTable t = self._table
        cdef Py_ssize_t i
        for i in range(t._hw):
            if t._ok(i, 1, now, False, 0.0, 0.0, 0.0):
                return True
        return False

    cdef inline Py_ssize_t _pick(self, Py_ssize_t i, double now) except -2:
        """Select and reserve an agent for record ``i`` by the strategy, or -1."""
        cdef Py_ssize_t s
        aff = self._aff[i]
        if aff is not None:
            # the request's prefix and affinity key, for this selection only
            self._table._aim(<bytes>(<tuple>aff)[0], (<tuple>aff)[1])
            try:
                s = self._pick_with(i, self._code, now)
            finally:
                self._table._aim_clear()
            return s
        if not (self._fl[i] & R_EXCL):
            return self._table._select(self._code, self._fl[i] & R_HIGH, self._cpu[i],
                                       self._mem[i], self._net[i], now, True)
        return self._pick_with(i, self._code, now)

    cdef Py_ssize_t _pick_with(self, Py_ssize_t i, int code, double now) except -2:
        """:meth:`_pick` with strategy ``code``.  Excluded agents are hidden
        from the kernels for this one selection (their keys read +inf,
        exactly like a full agent) and rekeyed after."""
        cdef AgentTable t = self._table
        cdef Py_ssize_t s, h
        cdef list hidden = []
        if self._fl[i] & R_EXCL:
            index = t._index
            hidden = [index[a] for a in self._excl[i] if a in index]
        for h in hidden:
            t._hide(h)
        s = t._select(code, self._fl[i] & R_HIGH, self._cpu[i], self._mem[i],
                      self._net[i], now, True)
        for h in hidden:
            t._rekey(h)
        return s

    cdef Py_ssize_t _dispatch(self, double now) except -1:
        """Serve the queues while agents have room; returns the count.

        The backlogged tenant with the smallest start tag goes first; within
        it, its own order.  A tenant at its ``max_active`` cap is set aside
        for this round; a request that needs resources (or agents) nobody
        has now is set aside too, so the ones behind it may pass.
        """
        cdef Py_ssize_t served = 0, nskip = 0, naside = 0, s, k, tn
        cdef int32_t i
        cdef int32_t skipped[MAX_SKIP]
        cdef list aside
        cdef Tenant* t
        if not self._nq:
            return 0
        aside = None
        while self._nth:
            tn = self._th[0]
            t = &self._t[tn]
            if t.max_active >= 0 and t.counts[ST_ALLOCATED] >= t.max_active:
                self._th_remove(tn)
                if aside is None:
                    aside = []
                aside.append(tn)
                continue
            i = t.q[0]
            s = self._pick(i, now)
            if s < 0:
                if not (self._fl[i] & (R_FIT | R_EXCL)) or not self._any_free(now):
                    break           # no free slot anywhere: later ones cannot go either
                self._heap_remove(i)
                skipped[nskip] = i
                nskip += 1
                if nskip == MAX_SKIP:
                    break
                continue
            # start-time fair queuing: the virtual time moves to this
            # dispatch's start tag, and the tenant's next one starts at its
            # finish tag, one request (or, by cost, this one's cost) later
            self._V = t.S
            t.F = t.S + (t.w_inv * self._cost[i] if self._by_cost else t.w_inv)
            t.S = t.F
            self._grant(i, s, now)
            served += 1
        for k in range(nskip):
            self._heap_push(skipped[k])
        if aside is not None:
            for tn in aside:
                t = &self._t[tn]
                if t.pos < 0 and t.nq:
                    # held at its cap, it was not competing: no credit piles up
                    if t.S < self._V:
                        t.S = self._V
                    self._th_push(tn)
        return served

    # -- tenants ------------------------------------------------------------------

    cdef Py_ssize_t _new_tenant(self, object name) except -1:
        cdef Py_ssize_t tn = self._ntn, n
        cdef Tenant* t
        if tn == self._tcap:
            n = self._tcap * 2 if self._tcap else 8
            self._t = <Tenant*>_re(self._t, n, sizeof(Tenant))
            self._th = <int32_t*>_re(self._th, n, sizeof(int32_t))
            self._tcap = n
        t = &self._t[tn]
        memset(t, 0, sizeof(Tenant))
        t.waits = <double*>_re(NULL, N_TSAMPLES, sizeof(double))
        t.decs = <double*>PyMem_Realloc(NULL, N_TSAMPLES * sizeof(double))
        if t.decs == NULL:
            PyMem_Free(t.waits)
            raise MemoryError()
        _reset_tenant(t, self._V)
        self._ntn += 1
        self._tnames.append(name)
        self._treasons.append(None)
        self._tindex[name] = tn
        return tn

    cdef Py_ssize_t _tenant(self, object name) except -1:
        """The tenant called ``name``, created on first sight; past
        ``max_tenants`` the least recently active idle tenant without a
        policy is folded into "other" and its slot reused."""
        cdef object tn = self._tindex.get(name)
        cdef Py_ssize_t k, victim = -1
        cdef int64_t oldest = 0
        cdef Tenant* t
        if tn is not None:
            return <Py_ssize_t>tn
        if self._ntn < self._max_tenants:
            return self._new_tenant(name)
        if self._other < 0:
            # the fold target: a tenant already called "other" is it, else a
            # new one in its own slot beyond the cap
            o = self._tindex.get("other")
            self._other = self._new_tenant("other") if o is None else <Py_ssize_t>o
        for k in range(self._ntn):
            t = &self._t[k]
            if (not t.policy and k != self._other and t.nq == 0
                    and t.counts[ST_QUEUED] == 0 and t.counts[ST_ALLOCATED] == 0
                    and (victim < 0 or t.last_use < oldest)):
                victim = k
                oldest = t.last_use
        if victim < 0:
            return self._other          # everyone busy or configured: counted as "other"
        self._fold(victim, self._other)
        del self._tindex[self._tnames[victim]]
        self._tnames[victim] = name
        self._tindex[name] = victim
        return victim

    cdef void _fold(self, Py_ssize_t src, Py_ssize_t dst):
        """Add an idle tenant's tallies to another's and reset it."""
        cdef Tenant* a = &self._t[src]
        cdef Tenant* b = &self._t[dst]
        cdef int k
        for k in range(N_STATES):
            b.counts[k] += a.counts[k]
        b.total += a.total
        b.cost_served += a.cost_served
        b.fallbacks += a.fallbacks
        b.slow += a.slow
        ra = self._treasons[src]
        if ra:
            rb = self._treasons[dst]
            if rb is None:
                self._treasons[dst] = rb = {}
            for reason, n in ra.items():
                _tally(rb, reason, n)
        self._treasons[src] = None
        _reset_tenant(a, self._V)

    def _set_max_tenants(self, Py_ssize_t n):
        """_set_max_tenants(n): the cap before idle tenants fold into "other"."""
        self._max_tenants = n

    def _set_tenant_policy(self, name, double weight, int64_t max_active, int64_t max_queued,
                           double rate, double burst):
        """_set_tenant_policy(name, weight, max_active, max_queued, rate, burst)

        Replace a tenant's policy (validated by the caller; -1 = no cap,
        ``rate < 0`` = no bucket); its bucket starts full.  Serves the queue,
        since a raised cap may let work through.
        """
        cdef Py_ssize_t tn
        cdef Tenant* t
        self._acquire()
        try:
            tn = self._tindex[name] if name in self._tindex else self._new_tenant(name)
            t = &self._t[tn]
            t.policy = True
            t.w_inv = 1.0 / weight
            t.max_active = max_active
            t.max_queued = max_queued
            t.rate = rate
            t.burst = burst
            t.tokens = burst
            t.t_last = self._now()
            self._dispatch(t.t_last)
            self._flush()
        finally:
            self._release()

    def _clear_tenant_policy(self, name):
        """_clear_tenant_policy(name): back to weight 1, no caps, no bucket."""
        cdef Tenant* t
        self._acquire()
        try:
            if name not in self._tindex:
                return
            t = &self._t[<Py_ssize_t>self._tindex[name]]
            t.policy = False
            t.w_inv = 1.0
            t.max_active = t.max_queued = -1
            t.rate = -1.0
            self._dispatch(self._now())
            self._flush()
        finally:
            self._release()

    def _tenant_names(self):
        """_tenant_names(): every tenant with state, in creation order."""
        return list(self._tnames)

    def _tenant_stats(self, name):
        """_tenant_stats(name)

        :meth:`_stats` for one tenant, then its bucket ``(rate, burst)``
        (``rate < 0``: none); KeyError for a tenant never seen.
        """
        cdef Tenant* t
        cdef Py_ssize_t nw, nd
        self._acquire()
        try:
            if name not in self._tindex:
                raise KeyError(f"unknown tenant {name!r}")
            t = &self._t[<Py_ssize_t>self._tindex[name]]
            counts = tuple([t.counts[k] for k in range(N_STATES)])
            nw = min(t.iw, N_TSAMPLES)
            nd = min(t.id, N_TSAMPLES)
            waits = np.asarray(<double[:nw]>t.waits).copy() if nw else np.empty(0)
            decs = np.asarray(<double[:nd]>t.decs).copy() if nd else np.empty(0)
            reasons = self._treasons[<Py_ssize_t>self._tindex[name]]
            return (counts, t.total, 0, t.fallbacks, t.slow,
                    dict(reasons) if reasons else {}, waits, decs, t.cost_served, t.rate,
                    t.burst)
        finally:
            self._release()

    # -- results ----------------------------------------------------------------

    cdef object _result(self, Py_ssize_t i, double now):
        """The record as an AllocationResult (a named tuple built in C)."""
        cdef int8_t st = self._st[i]
        cdef double wait, alloc_at = self._alloc_at[i], fin_at = self._fin_at[i]
        cdef bint allocated = self._fl[i] & R_ALLOCATED
        if allocated:
            wait = alloc_at - self._req_at[i]
        elif st == ST_QUEUED:
            wait = now - self._req_at[i]
        else:
            wait = fin_at - self._req_at[i]
        res = new_record(self._result_type, 12)
        _put(res, 0, self._rid[i])
        _put(res, 1, self._task[i])
        _put(res, 2, self._statuses[st])
        _put(res, 3, self._agent[i])
        _put(res, 4, self._reason[i])
        _put(res, 5, wait)
        _put(res, 6, self._req_at[i])
        _put(res, 7, alloc_at if allocated else None)
        _put(res, 8, fin_at if fin_at != INFINITY else None)
        _put(res, 9, self._prio[i])
        _put(res, 10, self._res[i] if allocated else None)
        _put(res, 11, self._dec[i])
        return res

    cdef inline double _now(self) except? -1.0:
        if self._c_clock:
            return _mono()
        return self._clock_now()

    cdef Py_ssize_t _find(self, object request_id):
        """The newest record of ``request_id``, or -1."""
        cdef object i = self._ids.get(request_id)
        return -1 if i is None else <Py_ssize_t>i

    # -- submission -------------------------------------------------------------

    cdef object _submit(self, AllocationRequest request, double t0, bint fallback):
        cdef double now, req_at, timeout, cpu = 0.0, mem = 0.0, net = 0.0, dec
        cdef Py_ssize_t i, s = -1, old, tn
        cdef int prio
        cdef bint reserved = False, spent = False
        cdef AgentTable t = self._table
        cdef Tenant* tt
        rid = request.request_id
        now = self._now()
        if self._nq and self._deadline[self._dl[0]] <= now:
            self._expire(now)           # due deadlines first: a timed-out id is free again
        old = self._find(rid)
        if old >= 0 and self._st[old] <= ST_ALLOCATED:
            raise ValueError(f"request_id {rid!r} is already "
                             f"{STATUS_NAMES[self._st[old]]}")
        # C fields of the request: no attribute lookups
        prio = request.c_prio
        timeout = request.timeout_s
        ra = request.requested_at
        req_at = now if ra is None else <double>ra
        task = request.task_id
        tenant = request.tenant
        tn = self._tenant(tenant)           # may create it: a tenant seen
        excl = request.exclude
        pinned = not request.movable
        res = request.required_resources
        if res is not None and not fallback:
            cpu = request.c_cpu
            mem = request.c_mem
            net = request.c_net
        i = self._new_record()
        self._rtn[i] = <int32_t>tn
        tt = &self._t[tn]
        self._use += 1
        tt.last_use = self._use
        # the fields, not the request: the history then holds no object the
        # garbage collector must traverse, and no caller's metadata
        self._rid[i] = rid
        self._task[i] = task
        self._res[i] = res
        if excl is not None:
            self._excl[i] = excl
            self._fl[i] |= R_EXCL
        if request.prefix_bytes is not None or request.affinity_key is not None:
            self._aff[i] = (request.prefix_bytes, request.affinity_key)
        if pinned:
            self._fl[i] |= R_PINNED
        self._prio[i] = prio
        self._cost[i] = request.cost
        self._cpu[i] = cpu
        self._mem[i] = mem
        self._net[i] = net
        self._req_at[i] = req_at
        self._timeout[i] = timeout
        self._deadline[i] = req_at + timeout
        if prio >= HIGH_PRIORITY:
            self._fl[i] |= R_HIGH
        if cpu > 0.0 or mem > 0.0 or net > 0.0:
            self._fl[i] |= R_FIT
        limiter = self._limiter
        try:
            if fallback:
                # static allocation: round robin, no queue, rate limit or
                # resource fit; exclusions and the tenant's cap still hold
                self._res[i] = None
                if tt.max_active >= 0 and tt.counts[ST_ALLOCATED] >= tt.max_active:
                    s = -1
                else:
                    s = self._pick_with(i, S_ROUND_ROBIN, now)
                self._commit(i, rid)
                self._fallbacks += 1
                tt.fallbacks += 1
                if s >= 0:
                    self._grant(i, s, now)
                else:
                    self._finish(i, ST_FAILED, "no agent available (fallback)", now)
            elif t._n == 0:
                self._commit(i, rid)
                self._finish(i, ST_FAILED, "no agents registered", now)
            elif tt.rate >= 0.0 and _refill(tt, now) < 1.0:
                # the tenant's own limits first, then the global ones
                self._commit(i, rid)
                self._finish(i, ST_REJECTED, f"tenant rate limit exceeded ({tenant!r})", now)
            elif limiter is not None and limiter.available(now) < 1.0:
                self._commit(i, rid)
                self._finish(i, ST_REJECTED, "rate limit exceeded", now)
            elif now > self._deadline[i]:
                self._commit(i, rid)
                self._finish(i, ST_TIMED_OUT, "request timeout", now)
            elif self._nq or (tt.max_active >= 0
                              and tt.counts[ST_ALLOCATED] >= tt.max_active):
                # others are waiting (or the tenant is at its cap): this one
                # takes its place in line
                if tt.max_queued >= 0 and tt.counts[ST_QUEUED] >= tt.max_queued:
                    self._commit(i, rid)
                    self._finish(i, ST_REJECTED, _tenant_full(tenant, tt.max_queued), now)
                elif self._nq >= self._max_queue:
                    self._commit(i, rid)
                    self._finish(i, ST_REJECTED, "queue full", now)
                else:
                    spent = _spend(tt)
                    if limiter is not None:
                        limiter.try_acquire(now)
                    self._commit(i, rid)
                    self._enqueue(i, req_at)
                    self._dispatch(now)
            else:
                s = self._pick(i, now)
                if s >= 0:
                    reserved = True
                    spent = _spend(tt)
                    if limiter is not None:
                        limiter.try_acquire(now)
                    self._commit(i, rid)
                    reserved = False
                    self._grant(i, s, now)
                elif self._max_queue == 0:
                    self._commit(i, rid)
                    self._finish(i, ST_REJECTED, "queue full", now)
                elif tt.max_queued == 0:
                    self._commit(i, rid)
                    self._finish(i, ST_REJECTED, _tenant_full(tenant, 0), now)
                else:
                    spent = _spend(tt)
                    if limiter is not None:
                        limiter.try_acquire(now)
                    self._commit(i, rid)
                    self._enqueue(i, req_at)
        except BaseException:
            # nothing of this submission may remain: not counted, not stored
            if reserved:
                t._unreserve(s, cpu, mem, net)
            if self._st[i] == ST_NEW:
                if spent:
                    self._t[tn].tokens += 1.0
                self._drop_record(i)
            raise
        dec = _mono() - t0
        self._dec[i] = dec
        self._decs[self._id % N_SAMPLES] = dec
        self._id += 1
        tt = &self._t[tn]
        tt.decs[tt.id % N_TSAMPLES] = dec
        tt.id += 1
        if dec > self._slow_s:
            self._slow += 1
            tt.slow += 1
        return self._result(i, now)

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
        cdef double t0 = _mono()
        if not isinstance(request, AllocationRequest):
            raise TypeError(f"request must be an AllocationRequest, "
                            f"got {type(request).__name__}")
        self._acquire()
        try:
            res = self._submit(request, t0, False)
            if self._events or self._limbo:
                self._flush()
            return res
        finally:
            self._release()

    def _allocate_static(self, request):
        """_allocate_static(request): plain round-robin, counted as a fallback."""
        cdef double t0 = _mono()
        if not isinstance(request, AllocationRequest):
            raise TypeError(f"request must be an AllocationRequest, "
                            f"got {type(request).__name__}")
        self._acquire()
        try:
            res = self._submit(request, t0, True)
            self._flush()
            return res
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
        self._acquire()
        try:
            now = self._now()
            if self._nq and self._deadline[self._dl[0]] <= now:
                self._expire(now)       # a request past its deadline is timed out
            i = self._find(request_id)
            if i < 0 or self._st[i] > ST_ALLOCATED:
                self._unknown += 1
                self._flush()
                return None
            if self._st[i] == ST_QUEUED:
                self._finish(i, ST_FAILED, "cancelled", now)
                res = self._result(i, now)
                self._flush()
                return res
            agent = self._agent[i]
            slot = self._unbind(i)
            self._finish(i, ST_RELEASED, None, now)
            res = self._result(i, now)
            if slot >= 0:
                streak = self._table._complete(slot, d, success, now)
            if not success and slot >= 0 and self._outcome_cb is not None:
                # a detached request's outcome is charged to no agent
                self._events.append((self._outcome_cb, (agent, False, streak)))
            if self._events or self._limbo:
                # outcomes first: an ejection takes the agent out before the
                # queue is served
                self._flush()
            if self._nq:
                self._dispatch(now)
                self._flush()
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
        self._acquire()
        try:
            now = self._now()
            if self._nq and self._deadline[self._dl[0]] <= now:
                self._expire(now)       # a request past its deadline is timed out, not withdrawn
            i = self._find(request_id)
            if i < 0 or self._st[i] > ST_ALLOCATED:
                self._flush()
                return None
            if self._st[i] == ST_ALLOCATED:
                self._unbind(i)
            self._finish(i, ST_FAILED, reason, now)
            res = self._result(i, now)
            self._dispatch(now)
            self._flush()
            return res
        finally:
            self._release()

    def status(self, request_id):
        """status(request_id)

        The request's current result; KeyError naming an unknown id.
        """
        cdef double now
        cdef Py_ssize_t i
        self._acquire()
        try:
            now = self._now()
            if self._nq and self._deadline[self._dl[0]] <= now:
                self._expire(now)
            i = self._find(request_id)
            if i < 0:
                raise KeyError(f"unknown request_id {request_id!r}")
            res = self._result(i, now)
            self._flush()
            return res
        finally:
            self._release()

    def tick(self):
        """tick()

        Expire deadlines and serve the queue; returns how many timed out.
        """
        cdef double now
        cdef Py_ssize_t n
        self._acquire()
        try:
            now = self._now()
            n = self._expire(now)
            self._dispatch(now)
            self._flush()
            return n
        finally:
            self._release()

    def dispatch(self):
        """dispatch()

        Serve the queue now (after capacity was added); returns the count.
        """
        cdef double now
        cdef Py_ssize_t n
        self._acquire()
        try:
            now = self._now()
            self._expire(now)
            n = self._dispatch(now)
            self._flush()
            return n
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
            i = self._find(request_id)
            if i < 0 or self._st[i] != ST_QUEUED:
                return None
            futs = self._waiters.get(i)
            if futs is None:
                self._waiters[i] = [fut]
            else:
                futs.append(fut)
            return self._deadline[i]
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
            if s is None:
                return []
            slot = s
            if slot >= self._nhead:
                return []
            items = []
            i = self._head[slot]
            while i >= 0:
                items.append((-self._prio[i], self._rid[i]))
                i = self._anext[i]
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
        cdef Py_ssize_t i, to_slot = -1, s
        cdef AgentTable t = self._table
        self._acquire()
        try:
            now = self._now()
            i = self._find(request_id)
            if i < 0 or self._st[i] != ST_ALLOCATED:
                raise KeyError(f"request_id {request_id!r} is not allocated")
            if to_agent is not None:
                # resolve the target before anything changes (KeyError naming it)
                to_slot = t.slot(to_agent)
            self._grow_queue(self._rtn[i])  # a requeue below must not fail half-way
            self._unbind(i)
            s = -1
            if to_slot >= 0:
                if not ((self._fl[i] & R_EXCL) and to_agent in self._excl[i]) and \
                        t._ok(to_slot, 1, now, True, self._cpu[i], self._mem[i], self._net[i]):
                    t._reserve(to_slot, self._cpu[i], self._mem[i], self._net[i])
                    s = to_slot
            elif to_agent is None:
                s = self._pick(i, now)
            if s >= 0:
                self._grant(i, s, now)
                new = self._agent[i]
            else:
                # back to the queue: a fresh deadline, its place by submission time
                self._agent[i] = None
                self._deadline[i] = now + self._timeout[i]
                self._enqueue(i, self._req_at[i])
                new = None
                # another agent may have room: the queue decides, in its order
                self._dispatch(now)
            self._flush()
            return new
        finally:
            self._release()

    def is_movable(self, request_id):
        """is_movable(request_id)

        False for a live request submitted with ``movable=False``; KeyError
        for an unknown id.
        """
        cdef Py_ssize_t i = self._find(request_id)
        if i < 0:
            raise KeyError(f"unknown request_id {request_id!r}")
        return not (self._fl[i] & R_PINNED)

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
            i = self._find(request_id)
            if i < 0 or self._st[i] != ST_ALLOCATED or self._slot[i] < 0:
                raise KeyError(f"request_id {request_id!r} is not allocated on an agent")
            self._unbind(i)
            self._dispatch(self._now())
            self._flush()
            return self._agent[i]
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
            if s is None:
                return
            slot = s
            if slot < self._nhead:
                i = self._head[slot]
                while i >= 0:
                    nxt = self._anext[i]
                    self._aprev[i] = -1
                    self._anext[i] = -1
                    self._slot[i] = -1
                    i = nxt
                self._head[slot] = -1
            self._flush()
        finally:
            self._release()

    # -- statistics ---------------------------------------------------------------

    def _stats(self):
        """_stats()

        ``(counts, total, unknown_releases, fallbacks, slow_decisions,
        reasons, waits, decisions, cost_served)``: counts by state in
        ``STATUS_NAMES`` order, the failure reasons, the last wait / decision
        samples as numpy arrays and the cost of the requests allocated.
        """
        self._acquire()
        try:
            counts = tuple([self._counts[k] for k in range(N_STATES)])
            nw = min(self._iw, N_SAMPLES)
            nd = min(self._id, N_SAMPLES)
            waits = np.asarray(<double[:nw]>self._waits).copy() if nw else np.empty(0)
            decs = np.asarray(<double[:nd]>self._decs).copy() if nd else np.empty(0)
            return (counts, self._total, self._unknown, self._fallbacks, self._slow,
                    dict(self._reasons), waits, decs, self._cost_served)
        finally:
            self._release()

    @property
    def queued_count(self):
        """Requests waiting in the queue."""
        return self._counts[ST_QUEUED]

    @property
    def active_count(self):
        """Requests ALLOCATED now."""
        return self._counts[ST_ALLOCATED]

    @property
    def total_requests(self):
        """Submissions counted so far."""
        return self._total

    @property
    def slow_decisions(self):
        """Submissions whose decision took longer than the slow threshold."""
        return self._slow

    @property
    def records_in_use(self):
        """Records held (live plus history): bounded by live + ``history``."""
        return self._rhw - self._nfree

    cdef int _check_tenants(self) except -1:
        """Per-tenant queues, the tenant heap and per-tenant counts."""
        cdef Py_ssize_t tn, k, i, queued = 0, in_heap = 0
        cdef int64_t total = 0, sums[N_STATES]
        cdef Tenant* t
        memset(sums, 0, sizeof(sums))
        if len(self._tnames) != self._ntn or len(self._tindex) != self._ntn:
            raise AssertionError("tenant names out of step")
        for tn in range(self._ntn):
            t = &self._t[tn]
            if self._tindex[self._tnames[tn]] != tn:
                raise AssertionError(f"tenant {tn} not found by its name")
            if t.nq != t.counts[ST_QUEUED]:
                raise AssertionError(f"tenant {self._tnames[tn]!r}: {t.nq} in its queue, "
                                     f"{t.counts[ST_QUEUED]} counted")
            for k in range(t.nq):
                i = t.q[k]
                if self._qpos[i] != k or self._rtn[i] != tn or self._st[i] != ST_QUEUED:
                    raise AssertionError(f"tenant {tn} queue position {k} out of step")
                if k and self._qless(t.q[k], t.q[(k - 1) >> 1]):
                    raise AssertionError(f"tenant {tn} queue order broken at {k}")
            if (t.nq > 0) != (t.pos >= 0):
                raise AssertionError(f"tenant {self._tnames[tn]!r} backlog {t.nq} but "
                                     f"heap position {t.pos}")
            if t.pos >= 0:
                in_heap += 1
                if self._th[t.pos] != tn:
                    raise AssertionError(f"tenant heap position of {tn} out of step")
            queued += t.nq
            total += t.total
            for k in range(N_STATES):
                sums[k] += t.counts[k]
                if t.counts[k] < 0:
                    raise AssertionError(f"tenant {tn} negative count")
        if in_heap != self._nth or queued != self._nq:
            raise AssertionError("tenant heap does not hold the backlogged tenants")
        for k in range(1, self._nth):
            if self._tless(self._th[k], self._th[(k - 1) >> 1]):
                raise AssertionError(f"tenant heap order broken at {k}")
        if total != self._total:
            raise AssertionError(f"tenants' totals {total} != total {self._total}")
        for k in range(N_STATES):
            if sums[k] != self._counts[k]:
                raise AssertionError(f"tenants' {STATUS_NAMES[k]} {sums[k]} != "
                                     f"{self._counts[k]}")
        return 0

    def _check_invariants(self):
        """_check_invariants()

        Verify the core's internal consistency (for tests): counts per state,
        heap order and positions, per-agent lists, the id map, the history.
        Raises AssertionError naming the first broken rule.
        """
        cdef Py_ssize_t i, k, n_hist = 0
        cdef int64_t counts[N_STATES]
        memset(counts, 0, sizeof(counts))
        for i in range(self._rhw):
            if self._st[i] < N_STATES:
                counts[self._st[i]] += 1
            elif self._st[i] == ST_NEW:
                raise AssertionError(f"record {i} left in state NEW")
        live = counts[ST_QUEUED] + counts[ST_ALLOCATED]
        for k in range(N_STATES):
            if k <= ST_ALLOCATED and counts[k] != self._counts[k]:
                raise AssertionError(f"state {STATUS_NAMES[k]}: {counts[k]} records, "
                                     f"counted {self._counts[k]}")
        if self._nq != self._counts[ST_QUEUED]:
            raise AssertionError(f"heap holds {self._nq}, queued {self._counts[ST_QUEUED]}")
        for k in range(self._nq):
            if self._dpos[self._dl[k]] != k:
                raise AssertionError(f"deadline heap position {k} out of step")
            if k and self._dless(self._dl[k], self._dl[(k - 1) >> 1]):
                raise AssertionError(f"deadline heap order broken at {k}")
        self._check_tenants()
        on_lists = 0
        for k in range(self._nhead):
            i = self._head[k]
            while i >= 0:
                if self._st[i] != ST_ALLOCATED or self._slot[i] != k:
                    raise AssertionError(f"record {i} on agent list {k} in state "
                                         f"{self._st[i]}")
                on_lists += 1
                i = self._anext[i]
        for i in range(self._rhw):
            if self._st[i] == ST_ALLOCATED and self._slot[i] < 0:
                on_lists += 1           # detached from a removed agent
        if on_lists != self._counts[ST_ALLOCATED]:
            raise AssertionError(f"{on_lists} allocations on agent lists, "
                                 f"{self._counts[ST_ALLOCATED]} counted")
        for rid, i in self._ids.items():
            if self._rid[i] != rid or self._fl[i] & R_DETACHED or self._st[i] >= N_STATES:
                raise AssertionError(f"id map entry {rid!r} -> {i} is stale")
        if self._hn > self._hist_cap:
            raise AssertionError("history over its cap")
        if self.records_in_use != live + self._hn:
            raise AssertionError(f"{self.records_in_use} records held, "
                                 f"{live} live + {self._hn} in history")
        n_hist = 0
        for k in range(N_STATES):
            n_hist += counts[k]
        if n_hist != live + self._hn:
            raise AssertionError("records by state do not add up")
        return True


cdef inline void _reset_tenant(Tenant* t, double v) noexcept nogil:
    """A tenant without policy or history (its buffers are kept)."""
    cdef int k
    t.w_inv = 1.0
    t.S = v
    t.F = v
    t.rate = -1.0
    t.burst = 0.0
    t.tokens = 0.0
    t.t_last = 0.0
    t.max_active = -1
    t.max_queued = -1
    t.last_use = 0
    for k in range(N_STATES):
        t.counts[k] = 0
    t.total = t.fallbacks = t.slow = 0
    t.cost_served = 0.0
    t.iw = t.id = 0
    t.nq = 0
    t.pos = -1
    t.policy = False


cdef inline double _refill(Tenant* t, double now) noexcept nogil:
    """Refill a tenant's bucket to ``now``; returns the tokens held."""
    if now > t.t_last:
        t.tokens += (now - t.t_last) * t.rate
        if t.tokens > t.burst:
            t.tokens = t.burst
        t.t_last = now
    return t.tokens


cdef inline bint _spend(Tenant* t) noexcept nogil:
    """Take one token at admission (the bucket was refilled by the check)."""
    if t.rate < 0.0:
        return False
    t.tokens -= 1.0
    return True


cdef str _tenant_full(object tenant, int64_t n):
    return f"tenant queue full ({tenant!r}: max_queued={n})"


cdef int _tally(dict reasons, object reason, int64_t n=1) except -1:
    # callers may pass their own withdrawal reasons: cap the tally
    key = reason if (reason in reasons or len(reasons) < N_REASONS) else "other"
    reasons[key] = reasons.get(key, 0) + n
    return 0


cdef void* _re(void* p, Py_ssize_t n, size_t size) except NULL:
    cdef void* q = PyMem_Realloc(p, <size_t>n * size)
    if q == NULL:
        raise MemoryError(f"cannot grow the allocator's arrays to {n} records")
    return q


def _first(item):
    return item[0]
