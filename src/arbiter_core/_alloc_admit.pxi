# The allocation core's admission: a request's record, the one decision
# (grant, queue or a terminal state with its reason) and agent selection
# (included by _alloc.pyx after the class).

cdef Py_ssize_t _new_request(AllocCore self, AllocationRequest request, double now,
                             bint fallback) except -1:
    """A NEW record holding the request's fields (not the request: the
    history then holds no object the garbage collector must traverse,
    and no caller's metadata)."""
    cdef double req_at = now if request.requested_at is None else \
        <double>request.requested_at
    cdef Py_ssize_t tn = _tenant(self, request.tenant)   # may create it: a tenant seen
    cdef Py_ssize_t i = _new_record(self), o = N_OBJ * i
    cdef Rec* r = &self._r[i]
    self._use += 1
    self._t[tn].last_use = self._use
    r.tn = <int32_t>tn
    r.prio = request.c_prio
    r.cost = request.cost
    r.timeout = request.timeout_s
    r.req_at = req_at
    r.dk.a = req_at + r.timeout
    self._obj[o + O_RID] = request.request_id
    self._obj[o + O_TASK] = request.task_id
    if request.required_resources is not None and not fallback:
        self._obj[o + O_RES] = request.required_resources
        r.cpu, r.mem, r.net = request.c_cpu, request.c_mem, request.c_net
        if r.cpu > 0.0 or r.mem > 0.0 or r.net > 0.0:
            r.fl |= R_FIT
    if request.exclude is not None:
        self._obj[o + O_EXCL] = request.exclude
        r.fl |= R_EXCL
    if request.prefix_bytes is not None or request.affinity_key is not None:
        self._obj[o + O_AFF] = (request.prefix_bytes, request.affinity_key)
    if not request.movable:
        r.fl |= R_PINNED
    if r.prio >= HIGH_PRIORITY:
        r.fl |= R_HIGH
    return i


cdef int _admit(AllocCore self, Py_ssize_t i, object tenant, double now, bint fallback,
                Py_ssize_t* slot) except -1:
    """Decide a NEW record: A_GRANT (``slot`` reserved), A_QUEUE or
    A_WAIT (admitted: a token spent in each bucket, room made for it),
    or the terminal state it ends in (reason in ``_why``).  Changes
    nothing else, and undoes the reservation and the tokens if it
    raises."""
    cdef Rec* r = &self._r[i]
    cdef Tenant* t = &self._t[r.tn]
    cdef int verdict
    cdef bint spent = False
    slot[0] = -1
    limiter = self._limiter
    if fallback:
        # static allocation: round robin, no queue, rate limit or
        # resource fit; exclusions and the tenant's cap still hold
        if not _at_cap(self, t):
            slot[0] = _pick_with(self, i, S_ROUND_ROBIN, now)
        if slot[0] < 0:
            self._why = "no agent available (fallback)"
            return ST_FAILED
        verdict = A_GRANT
        limiter = None
    elif self._table._n == 0:
        self._why = "no agents registered"
        return ST_FAILED
    # the tenant's own limits first, then the global ones
    elif bucket_refill(&t.bucket, now) < 1.0:
        self._why = f"tenant rate limit exceeded ({tenant!r})"
        return ST_REJECTED
    elif limiter is not None and limiter.available(now) < 1.0:
        self._why = "rate limit exceeded"
        return ST_REJECTED
    elif now > r.dk.a:
        self._why = "request timeout"
        return ST_TIMED_OUT
    elif self._dl.n or _at_cap(self, t):
        # others are waiting (or the tenant is at its cap): this one
        # takes its place in line
        if t.max_queued >= 0 and t.tally.counts[ST_QUEUED] >= t.max_queued:
            self._why = _tenant_full(tenant, t.max_queued)
            return ST_REJECTED
        if self._dl.n >= self._max_queue:
            self._why = "queue full"
            return ST_REJECTED
        verdict = A_WAIT
    else:
        slot[0] = _pick(self, i, now)
        if slot[0] >= 0:
            verdict = A_GRANT
        elif self._max_queue == 0:
            self._why = "queue full"
            return ST_REJECTED
        elif t.max_queued == 0:
            self._why = _tenant_full(tenant, 0)
            return ST_REJECTED
        else:
            verdict = A_QUEUE
    if not fallback:
        spent = bucket_spend(&t.bucket)
    try:
        if verdict == A_GRANT:
            if slot[0] >= self._nhead:
                _grow_heads(self, slot[0])
        else:
            _room_to_queue(self, r.tn)
        if limiter is not None:
            limiter.try_acquire(now)
    except BaseException:
        if spent:
            t.bucket.tokens += 1.0
        if slot[0] >= 0:
            self._table._unreserve(slot[0], r.cpu, r.mem, r.net)
        raise
    return verdict


cdef inline Py_ssize_t _pick(AllocCore self, Py_ssize_t i, double now) except -2:
    """Select and reserve an agent for record ``i`` by the strategy, or -1."""
    cdef Rec* r = &self._r[i]
    cdef Py_ssize_t s
    aff = self._obj[N_OBJ * i + O_AFF]
    if aff is not None:
        # the request's prefix and affinity key, for this selection only
        self._table._aim(<bytes>(<tuple>aff)[0], (<tuple>aff)[1])
        try:
            s = _pick_with(self, i, self._code, now)
        finally:
            self._table._aim_clear()
        return s
    if not (r.fl & R_EXCL):
        return self._table._select(self._code, r.fl & R_HIGH, r.cpu, r.mem, r.net, now,
                                   True)
    return _pick_with(self, i, self._code, now)


cdef Py_ssize_t _pick_with(AllocCore self, Py_ssize_t i, int code, double now) except -2:
    """:meth:`_pick` with strategy ``code``.  Excluded agents are hidden
    from the kernels for this one selection (their keys read +inf,
    exactly like a full agent) and rekeyed after."""
    cdef AgentTable t = self._table
    cdef Py_ssize_t s, h
    cdef list hidden = []
    cdef Rec* r = &self._r[i]
    if r.fl & R_EXCL:
        index = t._index
        hidden = [index[a] for a in _get(self, i, O_EXCL) if a in index]
    for h in hidden:
        t._hide(h)
    s = t._select(code, r.fl & R_HIGH, r.cpu, r.mem, r.net, now, True)
    for h in hidden:
        t._rekey(h)
    return s


cdef bint _any_free(AllocCore self, double now) noexcept:
    cdef AgentTable t = self._table
    cdef Py_ssize_t i
    for i in range(t._hw):
        if t._ok(i, 1, now, False, 0.0, 0.0, 0.0):
            return True
    return False

