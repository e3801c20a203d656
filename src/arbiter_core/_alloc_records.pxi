# The allocation core's records: storage (one struct array, one list of
# Python fields), the free list, commits, the history ring, the per-agent
# allocation lists and results (included by _alloc.pyx after the class: these
# are its routines, written as functions of the core).

# Records.  A request is a record: an index into one array of C structs
# (`Rec`, grown by one realloc) plus its Python fields (ids, resources, agent,
# reason, exclusions) in one list, N_OBJ entries per record; free records are
# linked through `anext` and reused.  A record is live (QUEUED, ALLOCATED) or
# finished; finished records stay in a FIFO ring of ``history`` entries so
# that ``status()`` can answer for them, and the oldest is freed when the ring
# is full: eviction is O(1), never a walk.  ``_ids`` maps request ids to the
# newest record of that id; a finished id that is submitted again gets a new
# record and the old one is *detached* (it stays in the ring until evicted,
# but nobody finds it by id any more).

cdef int _grow_records(AllocCore self) except -1:
    cdef Py_ssize_t n = self._rcap * 2 if self._rcap else 64
    if n > 0x7FFFFFFF:
        raise MemoryError("too many allocation records")
    self._r = <Rec*>_re(self._r, n, sizeof(Rec))
    self._obj.extend([None] * (N_OBJ * (n - self._rcap)))
    self._rcap = n
    return 0


cdef int _grow_heads(AllocCore self, Py_ssize_t slot) except -1:
    cdef Py_ssize_t n = self._nhead * 2 if self._nhead else 16, i
    while n <= slot:
        n *= 2
    self._head = <int32_t*>_re(self._head, n, sizeof(int32_t))
    for i in range(self._nhead, n):
        self._head[i] = -1
    self._nhead = n
    return 0


cdef Py_ssize_t _new_record(AllocCore self) except -1:
    """A fresh record in state NEW (invisible until committed)."""
    cdef Py_ssize_t i
    cdef Rec* r
    if self._free >= 0:
        i = self._free
        self._free = self._r[i].anext
        self._nfree -= 1
    else:
        if self._rhw == self._rcap:
            _grow_records(self)
        i = self._rhw
        self._rhw += 1
    r = &self._r[i]
    memset(r, 0, sizeof(Rec))
    r.st = ST_NEW
    r.slot = r.aprev = r.anext = r.qpos = r.dpos = -1
    r.alloc_at = r.fin_at = INFINITY
    return i


cdef void _drop_record(AllocCore self, Py_ssize_t i):
    """Return a record to the free list (its Python fields cleared)."""
    cdef Py_ssize_t k
    self._r[i].st = ST_FREE
    self._r[i].anext = self._free
    self._free = <int32_t>i
    self._nfree += 1
    for k in range(N_OBJ * i, N_OBJ * i + N_OBJ):
        self._obj[k] = None


cdef int _commit(AllocCore self, Py_ssize_t i, object rid) except -1:
    """Make a NEW record findable by its id and count the submission."""
    cdef object old = self._ids.get(rid)
    if old is not None:
        self._r[<Py_ssize_t>old].fl |= R_DETACHED
    self._ids[rid] = i
    self._g.total += 1
    self._t[self._r[i].tn].tally.total += 1
    return 0


cdef void _evict_oldest(AllocCore self):
    cdef Py_ssize_t i = self._hist[self._hstart]
    self._hstart += 1
    if self._hstart == self._hcap_alloc:
        self._hstart = 0
    self._hn -= 1
    _forget(self, i)


cdef void _forget(AllocCore self, Py_ssize_t i):
    if not (self._r[i].fl & R_DETACHED):
        del self._ids[_get(self, i, O_RID)]
    _drop_record(self, i)


cdef void _remember(AllocCore self, Py_ssize_t i):
    """A finished record enters the history (the oldest leaves: O(1))."""
    cdef Py_ssize_t j
    if self._hist_cap == 0:
        # forgotten once the operation has built its result (_leave)
        self._limbo.append(i)
        return
    if self._hn == self._hist_cap:
        _evict_oldest(self)
    j = self._hstart + self._hn
    if j >= self._hcap_alloc:
        j -= self._hcap_alloc
    self._hist[j] = <int32_t>i
    self._hn += 1


cdef int _link(AllocCore self, Py_ssize_t i, Py_ssize_t slot) except -1:
    if slot >= self._nhead:
        _grow_heads(self, slot)
    cdef int32_t h = self._head[slot]
    cdef Rec* r = &self._r[i]
    r.slot = <int32_t>slot
    r.aprev = -1
    r.anext = h
    if h >= 0:
        self._r[h].aprev = <int32_t>i
    self._head[slot] = <int32_t>i
    return 0


cdef void _unlink(AllocCore self, Py_ssize_t i) noexcept nogil:
    cdef Rec* r = &self._r[i]
    cdef int32_t p = r.aprev, n = r.anext
    if r.slot < 0:
        return
    if p >= 0:
        self._r[p].anext = n
    else:
        self._head[r.slot] = n
    if n >= 0:
        self._r[n].aprev = p
    r.aprev = r.anext = r.slot = -1


cdef object _result(AllocCore self, Py_ssize_t i, double now):
    """The record as an AllocationResult (a named tuple built in C)."""
    cdef Rec* r = &self._r[i]
    cdef double wait
    cdef bint allocated = r.fl & R_ALLOCATED
    cdef Py_ssize_t o = N_OBJ * i
    if allocated:
        wait = r.alloc_at - r.req_at
    elif r.st == ST_QUEUED:
        wait = now - r.req_at
    else:
        wait = r.fin_at - r.req_at
    res = new_record(self._result_type, 12)
    _put(res, 0, self._obj[o + O_RID])
    _put(res, 1, self._obj[o + O_TASK])
    _put(res, 2, self._statuses[r.st])
    _put(res, 3, self._obj[o + O_AGENT])
    _put(res, 4, self._obj[o + O_REASON])
    _put(res, 5, wait)
    _put(res, 6, r.req_at)
    _put(res, 7, r.alloc_at if allocated else None)
    _put(res, 8, r.fin_at if r.fin_at != INFINITY else None)
    _put(res, 9, r.prio)
    _put(res, 10, self._obj[o + O_RES] if allocated else None)
    _put(res, 11, r.dec)
    return res


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


cdef inline void _to_state(AllocCore self, Py_ssize_t i, int s) noexcept nogil:
    cdef Rec* r = &self._r[i]
    cdef Tally* tt = &self._t[r.tn].tally
    if r.st < N_STATES:
        self._g.counts[r.st] -= 1
        tt.counts[r.st] -= 1
    r.st = <int8_t>s
    self._g.counts[s] += 1
    tt.counts[s] += 1


cdef Py_ssize_t _unbind(AllocCore self, Py_ssize_t i):
    """Free an ALLOCATED record's task slot; returns the table slot (-1:
    the agent is gone)."""
    cdef Rec* r = &self._r[i]
    cdef Py_ssize_t slot = r.slot
    if slot < 0:
        return -1
    _unlink(self, i)
    self._table._unreserve(slot, r.cpu, r.mem, r.net)
    return slot


cdef int _set_history(AllocCore self, Py_ssize_t cap) except -1:
    # shrink: evict the oldest beyond the new cap; the ring is then
    # rebuilt at the new size
    cdef Py_ssize_t i, n
    cdef int32_t* ring
    while self._hn > cap:
        _evict_oldest(self)
    n = self._hn
    ring = <int32_t*>_re(NULL, cap if cap > 0 else 1, sizeof(int32_t))
    for i in range(n):
        ring[i] = self._hist[(self._hstart + i) % self._hcap_alloc]
    PyMem_Free(self._hist)
    self._hist = ring
    self._hstart = 0
    self._hcap_alloc = cap if cap > 0 else 1
    self._hist_cap = cap
    return 0


cdef inline object _get(AllocCore self, Py_ssize_t i, int field):
    return self._obj[N_OBJ * i + field]


cdef inline void _set(AllocCore self, Py_ssize_t i, int field, object value):
    self._obj[N_OBJ * i + field] = value


cdef int _wake(AllocCore self, Py_ssize_t i, double now) except -1:
    """Queue the wake-up of a record's waiters, with its result as of now
    (they need not look it up: with no history it is forgotten)."""
    futs = self._waiters.pop(i, None)
    if futs is not None and self._wake_cb is not None:
        self._events.append((self._wake_cb, (futs, _result(self, i, now))))
    return 0


cdef Py_ssize_t _expire(AllocCore self, double now) except -1:
    """Time out queued requests whose deadline has passed (exactly once)."""
    cdef Py_ssize_t n = 0
    while self._dl.n and ih_key(&self._dl, self._dl.items[0]).a <= now:
        self._finish(self._dl.items[0], ST_TIMED_OUT, "timeout", now)
        n += 1
    return n


cdef Py_ssize_t _find(AllocCore self, object request_id):
    """The newest record of ``request_id``, or -1."""
    cdef object i = self._ids.get(request_id)
    return -1 if i is None else <Py_ssize_t>i


cdef inline bint _live(AllocCore self, Py_ssize_t i) noexcept:
    return i >= 0 and self._r[i].st <= ST_ALLOCATED
