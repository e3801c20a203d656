# The allocation core's tenants: their queues and place in the heap of
# backlogged tenants, creation, folding idle tenants into "other" (included
# by _alloc.pyx after the class).

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
# exactly the single queue's.  A tenant at its ``max_active`` cap is passed
# over, so it never blocks the others.
# Per-tenant counters obey the global identities; past ``max_tenants`` the
# least recently active tenant without a policy or live request is folded
# into ``"other"``.

cdef int _room_to_queue(AllocCore self, Py_ssize_t tn) except -1:
    """Room for one more queued record, globally and in tenant ``tn``."""
    ih_reserve(&self._dl, 64)
    ih_reserve(&self._t[tn].q, 8)
    return 0


cdef inline void _tenant_key(AllocCore self, Tenant* t) noexcept nogil:
    """A backlogged tenant's place: its start tag, then its head's order."""
    cdef Rec* head = &self._r[t.q.items[0]]
    t.key.b = head.qk.a
    t.key.c = head.qk.c


cdef void _heap_push(AllocCore self, Py_ssize_t i) noexcept nogil:
    """Put a record on its tenant's queue and the deadline heap (room
    made by _room_to_queue beforehand)."""
    cdef Py_ssize_t tn = self._r[i].tn
    cdef Tenant* t = &self._t[tn]
    ih_push(&t.q, <int32_t>i)
    ih_push(&self._dl, <int32_t>i)
    if t.q.n == 1:
        # newly backlogged: it starts no earlier than the virtual time,
        # nor before its last dispatch finished
        t.key.a = max(self._V, t.F, t.key.a)
        _tenant_key(self, t)
        ih_push(&self._th, <int32_t>tn)
    elif t.q.items[0] == i:
        _tenant_key(self, t)         # a new head: the tenant's order changed
        ih_fix(&self._th, <int32_t>tn)


cdef void _heap_remove(AllocCore self, Py_ssize_t i) noexcept nogil:
    """Take a record off its tenant's queue and the deadline heap."""
    cdef Py_ssize_t tn = self._r[i].tn
    cdef Tenant* t = &self._t[tn]
    cdef bint was_head = t.q.items[0] == i
    ih_remove(&t.q, <int32_t>i)
    ih_remove(&self._dl, <int32_t>i)
    if t.q.n == 0:
        if t.pos >= 0:
            ih_remove(&self._th, <int32_t>tn)
    elif was_head:
        _tenant_key(self, t)         # a new head (a non-head never overtakes it)
        ih_fix(&self._th, <int32_t>tn)


cdef Py_ssize_t _new_tenant(AllocCore self, object name) except -1:
    cdef Py_ssize_t tn = self._ntn, n
    cdef Tenant* t
    if tn == self._tcap:
        n = self._tcap * 2 if self._tcap else 8
        self._t = <Tenant*>_re(self._t, n, sizeof(Tenant))
        self._tcap = n
        self._th.items = <int32_t*>_re(self._th.items, n, sizeof(int32_t))
        self._th.cap = n
    t = &self._t[tn]
    memset(t, 0, sizeof(Tenant))
    tally_init(&t.tally, N_TSAMPLES)
    ih_init(&t.q, <char**>&self._r, sizeof(Rec), _QK, _QPOS)
    _reset_tenant(t, self._V)
    self._ntn += 1
    self._tnames.append(name)
    self._treasons.append(None)
    self._tindex[name] = tn
    return tn


cdef Py_ssize_t _tenant(AllocCore self, object name) except -1:
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
        return _new_tenant(self, name)
    if self._other < 0:
        # the fold target: a tenant already called "other" is it, else a
        # new one in its own slot beyond the cap
        o = self._tindex.get("other")
        self._other = _new_tenant(self, "other") if o is None else <Py_ssize_t>o
    for k in range(self._ntn):
        t = &self._t[k]
        if (not t.policy and k != self._other and t.q.n == 0
                and t.tally.counts[ST_QUEUED] == 0 and t.tally.counts[ST_ALLOCATED] == 0
                and (victim < 0 or t.last_use < oldest)):
            victim = k
            oldest = t.last_use
    if victim < 0:
        return self._other          # everyone busy or configured: counted as "other"
    _fold(self, victim, self._other)
    del self._tindex[self._tnames[victim]]
    self._tnames[victim] = name
    self._tindex[name] = victim
    return victim


cdef void _fold(AllocCore self, Py_ssize_t src, Py_ssize_t dst):
    """Add an idle tenant's tallies to another's and reset it."""
    tally_fold(&self._t[dst].tally, &self._t[src].tally)
    ra = self._treasons[src]
    if ra:
        rb = self._treasons[dst]
        if rb is None:
            self._treasons[dst] = rb = {}
        for reason, n in ra.items():
            _tally(rb, reason, n)
    self._treasons[src] = None
    _reset_tenant(&self._t[src], self._V)


cdef inline void _reset_tenant(Tenant* t, double v) noexcept nogil:
    """A tenant without policy or history (its buffers are kept)."""
    t.w_inv = 1.0
    t.key.a = v
    t.F = v
    bucket_set(&t.bucket, -1.0, 0.0, 0.0)
    t.max_active = -1
    t.max_queued = -1
    t.last_use = 0
    tally_reset(&t.tally)
    t.q.n = 0
    t.pos = -1
    t.policy = False


cdef str _tenant_full(object tenant, int64_t n):
    return f"tenant queue full ({tenant!r}: max_queued={n})"


cdef Py_ssize_t _dispatch(AllocCore self, double now) except -1:
    """Serve the queues while agents have room; returns the count.

    The backlogged tenant with the smallest start tag goes first; within
    it, its own order.  A tenant at its ``max_active`` cap is set aside
    for this round; a request that needs resources (or agents) nobody
    has now is set aside too, so the ones behind it may pass.
    """
    cdef Py_ssize_t served = 0, nskip = 0, s, k, tn
    cdef int32_t i
    cdef int32_t skipped[MAX_SKIP]
    cdef list aside = None
    cdef Tenant* t
    if not self._dl.n:
        return 0
    while self._th.n:
        tn = self._th.items[0]
        t = &self._t[tn]
        if _at_cap(self, t):
            ih_remove(&self._th, <int32_t>tn)
            if aside is None:
                aside = []
            aside.append(tn)
            continue
        i = t.q.items[0]
        s = _pick(self, i, now)
        if s < 0:
            if not (self._r[i].fl & (R_FIT | R_EXCL)) or not _any_free(self, now):
                break           # no free slot anywhere: later ones cannot go either
            _heap_remove(self, i)
            skipped[nskip] = i
            nskip += 1
            if nskip == MAX_SKIP:
                break
            continue
        # start-time fair queuing: the virtual time moves to this
        # dispatch's start tag, and the tenant's next one starts at its
        # finish tag, one request (or, by cost, this one's cost) later
        self._V = t.key.a
        t.F = t.key.a + (t.w_inv * self._r[i].cost if self._by_cost else t.w_inv)
        t.key.a = t.F
        self._grant(i, s, now)      # its head leaves: the tenant heap is fixed
        served += 1
    for k in range(nskip):
        _heap_push(self, skipped[k])
    if aside is not None:
        for tn in aside:
            t = &self._t[tn]
            if t.pos < 0 and t.q.n:
                # held at its cap, it was not competing: no credit piles up
                if t.key.a < self._V:
                    t.key.a = self._V
                _tenant_key(self, t)
                ih_push(&self._th, <int32_t>tn)
    return served


cdef inline bint _at_cap(AllocCore self, Tenant* t) noexcept nogil:
    return t.max_active >= 0 and t.tally.counts[ST_ALLOCATED] >= t.max_active
