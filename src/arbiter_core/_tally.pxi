# Statistics and token buckets of the allocation core, declared once and used
# for the whole allocator and for every tenant alike (included by _alloc.pyx
# after its state enum, so N_STATES is known).

from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport int64_t
from libc.string cimport memset


cdef struct Tally:
    int64_t counts[N_STATES]    # requests by current state
    int64_t total               # submissions counted
    int64_t fallbacks
    int64_t slow                # decisions slower than the threshold
    double cost_served          # the cost of the requests allocated
    int64_t iw                  # wait samples taken (the last nkeep are kept)
    int64_t id                  # decision samples taken
    Py_ssize_t nkeep
    double* waits
    double* decs


cdef int tally_init(Tally* t, Py_ssize_t nkeep) except -1:
    memset(t, 0, sizeof(Tally))
    t.nkeep = nkeep
    t.waits = <double*>PyMem_Realloc(NULL, nkeep * sizeof(double))
    t.decs = <double*>PyMem_Realloc(NULL, nkeep * sizeof(double))
    if t.waits == NULL or t.decs == NULL:
        tally_free(t)
        raise MemoryError()
    return 0


cdef void tally_free(Tally* t) noexcept:
    PyMem_Free(t.waits)
    PyMem_Free(t.decs)
    t.waits = t.decs = NULL


cdef void tally_reset(Tally* t) noexcept nogil:
    """Zero the counters (the sample buffers are kept)."""
    cdef double* w = t.waits
    cdef double* d = t.decs
    cdef Py_ssize_t n = t.nkeep
    memset(t, 0, sizeof(Tally))
    t.waits, t.decs, t.nkeep = w, d, n


cdef inline void tally_wait(Tally* t, double wait) noexcept nogil:
    t.waits[t.iw % t.nkeep] = wait
    t.iw += 1


cdef inline void tally_decision(Tally* t, double dec, bint slow) noexcept nogil:
    t.decs[t.id % t.nkeep] = dec
    t.id += 1
    if slow:
        t.slow += 1


cdef void tally_fold(Tally* dst, const Tally* src) noexcept nogil:
    """Add ``src``'s counters to ``dst`` (samples stay where they were)."""
    cdef int k
    for k in range(N_STATES):
        dst.counts[k] += src.counts[k]
    dst.total += src.total
    dst.fallbacks += src.fallbacks
    dst.slow += src.slow
    dst.cost_served += src.cost_served


cdef dict tally_dict(const Tally* t, object reasons):
    """The counters as keyword arguments of the statistics record (the last
    samples as numpy arrays)."""
    cdef Py_ssize_t nw = min(t.iw, t.nkeep), nd = min(t.id, t.nkeep)
    return {
        "counts": tuple([t.counts[k] for k in range(N_STATES)]),
        "total": t.total, "fallbacks": t.fallbacks, "slow": t.slow,
        "cost_served": t.cost_served, "reasons": dict(reasons) if reasons else {},
        "waits": np.asarray(<double[:nw]>t.waits).copy() if nw else np.empty(0),
        "decisions": np.asarray(<double[:nd]>t.decs).copy() if nd else np.empty(0),
    }


cdef struct Bucket:
    # A token bucket: ``burst`` tokens, refilled at ``rate`` per second
    # (``rate < 0``: no bucket, everything passes).
    double rate
    double burst
    double tokens
    double t_last


cdef inline void bucket_set(Bucket* b, double rate, double burst, double now) noexcept nogil:
    """A new bucket (``rate < 0``: none), starting full."""
    b.rate = rate
    b.burst = burst
    b.tokens = burst
    b.t_last = now


cdef inline void bucket_resize(Bucket* b, double rate, double burst, double now) noexcept nogil:
    """A new size and rate for a bucket in use (the adaptive limit): what it
    earned so far is kept, but it never holds more than its size."""
    bucket_refill(b, now)
    b.rate = rate
    b.burst = burst
    if b.tokens > burst:
        b.tokens = burst


cdef inline double bucket_refill(Bucket* b, double now) noexcept nogil:
    """Refill to ``now``; returns the tokens held (+inf without a bucket)."""
    if b.rate < 0.0:
        return INFINITY
    if now > b.t_last:
        b.tokens += (now - b.t_last) * b.rate
        if b.tokens > b.burst:
            b.tokens = b.burst
        b.t_last = now
    return b.tokens


cdef inline bint bucket_spend(Bucket* b) noexcept nogil:
    """Take one token at admission (refilled by the check); False when there
    is no bucket."""
    if b.rate < 0.0:
        return False
    b.tokens -= 1.0
    return True
