# The allocation core's invariant checks (for tests; included by _alloc.pyx,
# so they read the core's C state directly).  Each raises AssertionError
# naming the first broken rule.


cdef object _check(AllocCore c):
    """Counts per state, heaps, per-agent lists, the id map, the free list
    and the history agree with the records."""
    cdef Py_ssize_t i, k, n
    recs = c._records()
    st = recs["st"]
    if (st == ST_NEW).any():
        raise AssertionError(f"record {int(np.argmax(st == ST_NEW))} left in state NEW")
    counts = np.bincount(st[st < N_STATES], minlength=N_STATES)
    for k in (ST_QUEUED, ST_ALLOCATED):
        if counts[k] != c._g.counts[k]:
            raise AssertionError(f"state {STATUS_NAMES[k]}: {counts[k]} records, "
                                 f"counted {c._g.counts[k]}")
    live = int(counts[ST_QUEUED] + counts[ST_ALLOCATED])
    if c._dl.n != c._g.counts[ST_QUEUED]:
        raise AssertionError(f"heap holds {c._dl.n}, queued {c._g.counts[ST_QUEUED]}")
    ih_check(&c._dl, "deadline heap")
    _check_tenants(c)
    # every ALLOCATED record is on its agent's list, or detached from a gone agent
    on_lists = int(((st == ST_ALLOCATED) & (recs["slot"] < 0)).sum())
    for k in range(c._nhead):
        i = c._head[k]
        while i >= 0:
            if c._r[i].st != ST_ALLOCATED or c._r[i].slot != k:
                raise AssertionError(f"record {i} on agent list {k} in state {c._r[i].st}")
            on_lists += 1
            i = c._r[i].anext
    if on_lists != c._g.counts[ST_ALLOCATED]:
        raise AssertionError(f"{on_lists} allocations on agent lists, "
                             f"{c._g.counts[ST_ALLOCATED]} counted")
    for rid, i in c._ids.items():
        if _get(c, i, O_RID) != rid or c._r[i].fl & R_DETACHED or c._r[i].st >= N_STATES:
            raise AssertionError(f"id map entry {rid!r} -> {i} is stale")
    n = 0
    i = c._free
    while i >= 0 and n <= c._nfree:
        if c._r[i].st != ST_FREE:
            raise AssertionError(f"record {i} on the free list in state {c._r[i].st}")
        n += 1
        i = c._r[i].anext
    if n != c._nfree or int((st == ST_FREE).sum()) != c._nfree:
        raise AssertionError(f"free list holds {n}, {c._nfree} counted")
    if c._hn > c._hist_cap:
        raise AssertionError("history over its cap")
    if c.records_in_use != live + c._hn or int(counts.sum()) != live + c._hn:
        raise AssertionError(f"{c.records_in_use} records held, "
                             f"{live} live + {c._hn} in history")
    return True


cdef int _check_tenants(AllocCore c) except -1:
    """Per-tenant queues, the tenant heap and per-tenant counts."""
    cdef Py_ssize_t tn, k, i, queued = 0, in_heap = 0
    cdef int64_t total = 0
    cdef Tenant* t
    sums = np.zeros(N_STATES, dtype=np.int64)
    if len(c._tnames) != c._ntn or len(c._tindex) != c._ntn:
        raise AssertionError("tenant names out of step")
    for tn in range(c._ntn):
        t = &c._t[tn]
        name = c._tnames[tn]
        if c._tindex[name] != tn:
            raise AssertionError(f"tenant {tn} not found by its name")
        if t.q.n != t.tally.counts[ST_QUEUED]:
            raise AssertionError(f"tenant {name!r}: {t.q.n} in its queue, "
                                 f"{t.tally.counts[ST_QUEUED]} counted")
        ih_check(&t.q, f"tenant {name!r} queue")
        for k in range(t.q.n):
            i = t.q.items[k]
            if c._r[i].tn != tn or c._r[i].st != ST_QUEUED:
                raise AssertionError(f"tenant {name!r} queue holds record {i} of tenant "
                                     f"{c._r[i].tn} in state {c._r[i].st}")
        if (t.q.n > 0) != (t.pos >= 0):
            raise AssertionError(f"tenant {name!r} backlog {t.q.n} but heap position {t.pos}")
        if t.pos >= 0:
            in_heap += 1
            i = t.q.items[0]
            if t.key.b != c._r[i].qk.a or t.key.c != c._r[i].qk.c:
                raise AssertionError(f"tenant {name!r} key does not follow its head")
        queued += t.q.n
        total += t.tally.total
        for k in range(N_STATES):
            if t.tally.counts[k] < 0:
                raise AssertionError(f"tenant {name!r} negative count")
            sums[k] += t.tally.counts[k]
    if in_heap != c._th.n or queued != c._dl.n:
        raise AssertionError("tenant heap does not hold the backlogged tenants")
    ih_check(&c._th, "tenant heap")
    if total != c._g.total:
        raise AssertionError(f"tenants' totals {total} != total {c._g.total}")
    for k in range(N_STATES):
        if sums[k] != c._g.counts[k]:
            raise AssertionError(f"tenants' {STATUS_NAMES[k]} {sums[k]} != {c._g.counts[k]}")
    return 0
