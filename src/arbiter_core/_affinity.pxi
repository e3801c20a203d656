# The cache-affinity index and the cache_affinity strategy of AgentTable.
# Included by _select.pyx (compiled into the same module); the layout (struct
# Aff) is declared in _select.pxd.
#
# What an agent holds.  An *entry* is one (block hash, slot) pair: "this
# agent holds this block".  Each entry sits on three doubly linked lists,
# threaded through parallel int32 arrays:
#
# * its agent's LRU (head = most recently used), bounded by the agent's
#   ``cache_blocks`` -- a new block past it evicts the agent's tail;
# * the global LRU, bounded by ``max_index_blocks`` -- the index's size cap
#   whatever agents declare;
# * its block's holders, whose head a hash table (open addressing, linear
#   probing, backward-shift deletion) finds from the block hash.
#
# A second table maps (block, slot) to the entry, so that recording a block
# for an agent is O(1) however many agents hold it.
#
# Memory: at most min(sum of cache_blocks, max_index_blocks) entries of 36
# bytes; the block table has at most 4 buckets of 16 bytes per entry and the
# pair table at most 4 of 4 bytes (each doubles at half full, and neither
# holds more keys than there are entries): about 120 bytes per entry at
# worst.  Nothing grows with the number of requests or of distinct blocks
# seen.
#
# Where it comes from: the router's own record (every grant of a request
# with a prefix puts the prefix's blocks at the head of the agent's LRU,
# last block first so that a prompt's first block is its most recent and
# eviction takes a prompt's tail before its head, as vLLM does), or, once an
# engine reports its cache events (report_cache), those events alone for that
# agent.
#
# The strategy (Mirrokni, Thorup & Zadimoghaddam, "Consistent hashing with
# bounded loads", SODA 2018): with L the outstanding counts of the eligible
# agents and n their number, an agent is a *candidate* when its count after
# this grant stays within ceil((1 + eps) * (sum(L) + 1) / n).  Among the
# candidates, those holding the longest run of the request's blocks from the
# first win, least loaded first, then at random.  A run shorter than
# min_match_blocks decides nothing, and a run every candidate holds (a
# shared system prompt) decides nothing by construction: the winners are then
# all candidates, i.e. plain least-loaded.  The least-loaded agent is always a
# candidate (its count is at most floor(sum / n) < ceil((sum + 1) / n)), so a
# decision never needs to go above the bound.  A request with an affinity key
# and no prefix goes to the candidate with the highest rendezvous hash
# (Thaler & Ravishankar's HRW) of (key, agent id): removing an agent moves
# only the keys it had.
#
# Allocation failures (libc realloc, no GIL) only make the index forget: a
# block that cannot be recorded is not recorded.

from libc.stdlib cimport free, realloc
from libc.math cimport ceil


cdef inline uint64_t _mix64(uint64_t z) noexcept nogil:
    # splitmix64's finalizer: block hashes from traces can be small integers
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef uint64_t _str_hash(object x):
    """A stable 64-bit hash of ``str(x)`` (FNV-1a over UTF-8): unlike
    Python's hash it is the same in every process, so rendezvous hashing
    sends a key to the same agent across restarts and replicas."""
    cdef bytes b = str(x).encode("utf-8", "surrogatepass")
    cdef const unsigned char* p = b
    cdef Py_ssize_t i, n = len(b)
    cdef uint64_t h = <uint64_t>0xCBF29CE484222325
    for i in range(n):
        h = (h ^ p[i]) * <uint64_t>0x100000001B3
    return _mix64(h)


# ---------------------------------------------------------------------------
# The hash table: block -> (first holder entry, holder count)

cdef inline Py_ssize_t _h_find(Aff* a, uint64_t b) noexcept nogil:
    cdef Py_ssize_t i, mask
    if a.hsize == 0:
        return -1
    mask = a.hsize - 1
    i = <Py_ssize_t>(_mix64(b) & <uint64_t>mask)
    while a.hval[i] >= 0:
        if a.hkey[i] == b:
            return i
        i = (i + 1) & mask
    return -1


cdef int _h_resize(Aff* a, Py_ssize_t size) noexcept nogil:
    """Rehash into ``size`` buckets (a power of two); -1 without memory."""
    cdef uint64_t* k = <uint64_t*>realloc(NULL, size * sizeof(uint64_t))
    cdef int32_t* v = <int32_t*>realloc(NULL, size * sizeof(int32_t))
    cdef int32_t* c = <int32_t*>realloc(NULL, size * sizeof(int32_t))
    cdef Py_ssize_t i, j, mask = size - 1
    if k == NULL or v == NULL or c == NULL:
        free(k)
        free(v)
        free(c)
        return -1
    for i in range(size):
        v[i] = -1
    for i in range(a.hsize):
        if a.hval[i] >= 0:
            j = <Py_ssize_t>(_mix64(a.hkey[i]) & <uint64_t>mask)
            while v[j] >= 0:
                j = (j + 1) & mask
            k[j] = a.hkey[i]
            v[j] = a.hval[i]
            c[j] = a.hcnt[i]
    free(a.hkey)
    free(a.hval)
    free(a.hcnt)
    a.hkey = k
    a.hval = v
    a.hcnt = c
    a.hsize = size
    return 0


cdef Py_ssize_t _h_insert(Aff* a, uint64_t b, int32_t e) noexcept nogil:
    """A new bucket for block ``b`` (not present) holding entry ``e``; -1
    without memory.  The table doubles at half full."""
    cdef Py_ssize_t i, mask
    if (a.hused + 1) * 2 > a.hsize:
        if _h_resize(a, a.hsize * 2 if a.hsize else 64) < 0:
            return -1
    mask = a.hsize - 1
    i = <Py_ssize_t>(_mix64(b) & <uint64_t>mask)
    while a.hval[i] >= 0:
        i = (i + 1) & mask
    a.hkey[i] = b
    a.hval[i] = e
    a.hcnt[i] = 1
    a.hused += 1
    return i


cdef void _h_delete(Aff* a, Py_ssize_t i) noexcept nogil:
    """Empty bucket ``i``, shifting back the entries of its probe run
    (linear probing needs no tombstones then)."""
    cdef Py_ssize_t j = i, k, mask = a.hsize - 1
    while True:
        j = (j + 1) & mask
        if a.hval[j] < 0:
            break
        k = <Py_ssize_t>(_mix64(a.hkey[j]) & <uint64_t>mask)
        # j stays when its home k lies cyclically in (i, j]
        if (i <= j and i < k <= j) or (i > j and (k > i or k <= j)):
            continue
        a.hkey[i] = a.hkey[j]
        a.hval[i] = a.hval[j]
        a.hcnt[i] = a.hcnt[j]
        i = j
    a.hval[i] = -1
    a.hused -= 1


# ---------------------------------------------------------------------------
# The pair table: (block, slot) -> entry

cdef inline Py_ssize_t _p_home(Aff* a, uint64_t b, Py_ssize_t s) noexcept nogil:
    return <Py_ssize_t>(_mix64(b ^ (<uint64_t>(s + 1) * <uint64_t>0x9E3779B97F4A7C15))
                        & <uint64_t>(a.psize - 1))


cdef inline Py_ssize_t _p_find(Aff* a, uint64_t b, Py_ssize_t s) noexcept nogil:
    """The bucket of slot ``s``'s entry for block ``b``, or -1."""
    cdef Py_ssize_t i, mask
    cdef int32_t e
    if a.psize == 0:
        return -1
    mask = a.psize - 1
    i = _p_home(a, b, s)
    while True:
        e = a.ptab[i]
        if e < 0:
            return -1
        if a.blk[e] == b and a.eslot[e] == s:
            return i
        i = (i + 1) & mask


cdef int _p_resize(Aff* a, Py_ssize_t size) noexcept nogil:
    cdef int32_t* old = a.ptab
    cdef int32_t* t = <int32_t*>realloc(NULL, size * sizeof(int32_t))
    cdef Py_ssize_t i, j, osize = a.psize
    cdef int32_t e
    if t == NULL:
        return -1
    for i in range(size):
        t[i] = -1
    a.ptab = t
    a.psize = size
    for i in range(osize):
        e = old[i]
        if e >= 0:
            j = _p_home(a, a.blk[e], a.eslot[e])
            while t[j] >= 0:
                j = (j + 1) & (size - 1)
            t[j] = e
    free(old)
    return 0


cdef int _p_insert(Aff* a, int32_t e) noexcept nogil:
    """Index entry ``e`` (its block and slot set; not counted in a.n yet)."""
    cdef Py_ssize_t i
    if (a.n + 1) * 2 > a.psize:
        if _p_resize(a, a.psize * 2 if a.psize else 64) < 0:
            return -1
    i = _p_home(a, a.blk[e], a.eslot[e])
    while a.ptab[i] >= 0:
        i = (i + 1) & (a.psize - 1)
    a.ptab[i] = e
    return 0


cdef void _p_delete(Aff* a, Py_ssize_t i) noexcept nogil:
    """Empty bucket ``i`` (backward shift, as _h_delete)."""
    cdef Py_ssize_t j = i, k, mask = a.psize - 1
    cdef int32_t e
    while True:
        j = (j + 1) & mask
        e = a.ptab[j]
        if e < 0:
            break
        k = _p_home(a, a.blk[e], a.eslot[e])
        if (i <= j and i < k <= j) or (i > j and (k > i or k <= j)):
            continue
        a.ptab[i] = e
        i = j
    a.ptab[i] = -1


# ---------------------------------------------------------------------------
# Entries

cdef int32_t _e_new(Aff* a) noexcept nogil:
    """A free entry, or -1 without memory."""
    cdef int32_t e
    cdef Py_ssize_t n
    if a.efree >= 0:
        e = a.efree
        a.efree = a.lnext[e]
        return e
    if a.ehw == a.ecap:
        n = a.ecap * 2 if a.ecap else 256
        if n > a.max_n:
            n = a.max_n
        if n <= a.ecap or _e_resize(a, n) < 0:
            return -1
    e = <int32_t>a.ehw
    a.ehw += 1
    return e


cdef int _e_resize(Aff* a, Py_ssize_t n) noexcept nogil:
    cdef void* p
    p = realloc(a.blk, n * sizeof(uint64_t))
    if p == NULL:
        return -1
    a.blk = <uint64_t*>p
    p = realloc(a.eslot, n * sizeof(int32_t))
    if p == NULL:
        return -1
    a.eslot = <int32_t*>p
    p = realloc(a.lprev, n * sizeof(int32_t))
    if p == NULL:
        return -1
    a.lprev = <int32_t*>p
    p = realloc(a.lnext, n * sizeof(int32_t))
    if p == NULL:
        return -1
    a.lnext = <int32_t*>p
    p = realloc(a.gprev, n * sizeof(int32_t))
    if p == NULL:
        return -1
    a.gprev = <int32_t*>p
    p = realloc(a.gnext, n * sizeof(int32_t))
    if p == NULL:
        return -1
    a.gnext = <int32_t*>p
    p = realloc(a.hprev, n * sizeof(int32_t))
    if p == NULL:
        return -1
    a.hprev = <int32_t*>p
    p = realloc(a.hnext, n * sizeof(int32_t))
    if p == NULL:
        return -1
    a.hnext = <int32_t*>p
    a.ecap = n
    return 0


cdef void _aff_free(Aff* a) noexcept nogil:
    free(a.blk)
    free(a.eslot)
    free(a.lprev)
    free(a.lnext)
    free(a.gprev)
    free(a.gnext)
    free(a.hprev)
    free(a.hnext)
    free(a.hkey)
    free(a.hval)
    free(a.hcnt)
    free(a.ptab)


cdef inline void _l_front(Aff* a, int32_t e, Py_ssize_t s) noexcept nogil:
    """Link entry ``e`` at the head of slot ``s``'s LRU and of the global LRU."""
    a.lprev[e] = -1
    a.lnext[e] = a.head[s]
    if a.head[s] >= 0:
        a.lprev[a.head[s]] = e
    else:
        a.tail[s] = e
    a.head[s] = e
    a.gprev[e] = -1
    a.gnext[e] = a.ghead
    if a.ghead >= 0:
        a.gprev[a.ghead] = e
    else:
        a.gtail = e
    a.ghead = e


cdef inline void _l_unlink(Aff* a, int32_t e, Py_ssize_t s) noexcept nogil:
    """Take entry ``e`` off both LRU lists."""
    cdef int32_t p = a.lprev[e], q = a.lnext[e]
    if p >= 0:
        a.lnext[p] = q
    else:
        a.head[s] = q
    if q >= 0:
        a.lprev[q] = p
    else:
        a.tail[s] = p
    p = a.gprev[e]
    q = a.gnext[e]
    if p >= 0:
        a.gnext[p] = q
    else:
        a.ghead = q
    if q >= 0:
        a.gprev[q] = p
    else:
        a.gtail = p


cdef void _e_evict(Aff* a, int32_t e) noexcept nogil:
    """Forget entry ``e`` (its agent no longer holds its block)."""
    cdef Py_ssize_t s = a.eslot[e], i
    cdef int32_t p, q
    _p_delete(a, _p_find(a, a.blk[e], s))
    _l_unlink(a, e, s)
    a.cnt[s] -= 1
    i = _h_find(a, a.blk[e])
    p = a.hprev[e]
    q = a.hnext[e]
    if p >= 0:
        a.hnext[p] = q
    else:
        a.hval[i] = q
    if q >= 0:
        a.hprev[q] = p
    a.hcnt[i] -= 1
    if a.hcnt[i] == 0:
        _h_delete(a, i)
    a.lnext[e] = a.efree
    a.efree = e
    a.n -= 1


cdef inline int32_t _cap_of(Aff* a, Py_ssize_t s) noexcept nogil:
    return a.capb[s] if a.capb[s] > 0 else a.def_cap


cdef void _touch(Aff* a, Py_ssize_t s, uint64_t b) noexcept nogil:
    """Slot ``s`` holds block ``b``, most recently used: move its entry to
    the front, or add one, evicting the agent's LRU tail past its capacity
    and the global tail past the index's cap."""
    cdef Py_ssize_t i = _p_find(a, b, s)
    cdef int32_t e, cap = _cap_of(a, s), h
    if i >= 0:
        e = a.ptab[i]
        _l_unlink(a, e, s)
        _l_front(a, e, s)
        return
    if cap <= 0 or a.max_n <= 0:
        return
    while a.cnt[s] >= cap:
        _e_evict(a, a.tail[s])
    while a.n >= a.max_n:
        _e_evict(a, a.gtail)
    e = _e_new(a)
    if e < 0:
        return
    a.blk[e] = b
    a.eslot[e] = <int32_t>s
    if _p_insert(a, e) < 0:
        a.lnext[e] = a.efree
        a.efree = e
        return
    # the evictions may have moved or emptied the block's bucket
    i = _h_find(a, b)
    if i < 0:
        if _h_insert(a, b, e) < 0:
            _p_delete(a, _p_find(a, b, s))
            a.lnext[e] = a.efree
            a.efree = e
            return
        a.hprev[e] = -1
        a.hnext[e] = -1
    else:
        h = a.hval[i]
        a.hprev[e] = -1
        a.hnext[e] = h
        a.hprev[h] = e
        a.hval[i] = e
        a.hcnt[i] += 1
    _l_front(a, e, s)
    a.cnt[s] += 1
    a.n += 1


cdef void _aff_record(Aff* a, Py_ssize_t s, const uint64_t* blocks,
                      Py_ssize_t n) noexcept nogil:
    """A prompt went to slot ``s``: it now holds the prompt's first
    min(n, capacity) blocks, the first one most recently used."""
    cdef Py_ssize_t j, k = n
    cdef int32_t cap = _cap_of(a, s)
    if k > cap:
        k = cap
    for j in range(k - 1, -1, -1):
        _touch(a, s, blocks[j])


cdef void _aff_forget(Aff* a, Py_ssize_t s, uint64_t b) noexcept nogil:
    cdef Py_ssize_t i = _p_find(a, b, s)
    if i >= 0:
        _e_evict(a, a.ptab[i])


cdef void _aff_clear_slot(Aff* a, Py_ssize_t s) noexcept nogil:
    while a.head[s] >= 0:
        _e_evict(a, a.head[s])


cdef void _aff_trim(Aff* a) noexcept nogil:
    while a.n > a.max_n:
        _e_evict(a, a.gtail)


# ---------------------------------------------------------------------------
# The strategy

cdef Py_ssize_t _cache_affinity(AgentTable t, int min_tier, double now, bint need_fit,
                                double rc, double rm, double rn) noexcept nogil:
    """Select for S_CACHE_AFFINITY (see the top of this file)."""
    cdef Aff* a = &t._aff
    cdef Py_ssize_t i, k, hw = t._hw, ne = 0, nc = 0, b, s, nwin = 0
    cdef int64_t total = 0
    cdef double bound
    cdef int32_t prev = 0, tag = 0, L_c = 0, L_all = 0, ns, nsc, nsurv, nsurvc
    cdef int32_t e
    cdef bint by_prefix = False, by_key = False
    cdef uint64_t best_h = 0, best_all = 0, hv
    cdef Py_ssize_t key_win = -1, key_all = -1
    cdef Scan st
    a.gen += 1
    if a.gen == 0:
        memset(a.stamp, 0, t._alloc * sizeof(uint32_t))
        a.gen = 1
    # eligible agents and their mean load, this request included
    for i in range(hw):
        if t._ok(i, min_tier, now, need_fit, rc, rm, rn):
            a.stamp[i] = a.gen
            a.run[i] = 0
            total += t._active[i]
            ne += 1
    if ne == 0:
        return -1
    bound = ceil((1.0 + a.eps) * (<double>(total + 1) / <double>ne))
    for i in range(hw):
        if a.stamp[i] == a.gen:
            a.cand[i] = (t._active[i] + 1) <= bound
            nc += a.cand[i]
    nsurv = <int32_t>ne
    nsurvc = <int32_t>nc
    if a.nreq > 0:
        # walk the blocks from the first; survivors (eligible agents that
        # hold every block so far) carry run == prev.  A block every live
        # agent holds is skipped in O(1): no survivor drops out on it.
        for k in range(a.nreq):
            b = _h_find(a, a.req[k])
            if b < 0:
                break
            if a.hcnt[b] != t._n:
                ns = 0
                nsc = 0
                e = a.hval[b]
                while e >= 0:
                    s = a.eslot[e]
                    if a.stamp[s] == a.gen and a.run[s] == prev:
                        a.run[s] = <int32_t>(k + 1)
                        ns += 1
                        nsc += a.cand[s]
                    e = a.hnext[e]
                if ns == 0:
                    break
                prev = <int32_t>(k + 1)
                nsurv = ns
                nsurvc = nsc
            L_all = <int32_t>(k + 1)
            if nsurvc > 0:
                L_c = L_all
                tag = prev
                nwin = nsurvc
            if nsurv == 1 and nsurvc == 1 and L_c >= a.min_match:
                break       # one agent left, and a candidate: it wins
        by_prefix = L_c >= a.min_match and nwin < nc
        if L_all > L_c and L_all >= a.min_match:
            a.fallbacks += 1
    elif a.has_key:
        for i in range(hw):
            if a.stamp[i] == a.gen:
                hv = _mix64(a.key ^ a.idh[i])
                if key_all < 0 or hv > best_all:
                    best_all = hv
                    key_all = i
                if a.cand[i] and (key_win < 0 or hv > best_h):
                    best_h = hv
                    key_win = i
        by_key = True
        if key_all != key_win:
            a.fallbacks += 1
    # the least loaded among the winners, ties at random
    _scan_init(&st, t._rng)
    if by_key:
        _scan_offer(&st, _key(t, FAM_LL, key_win), 0.0, key_win)
        st.b.n = 1
    else:
        for i in range(hw):
            if a.stamp[i] == a.gen and a.cand[i] and (not by_prefix or a.run[i] >= tag):
                _scan_offer(&st, _key(t, FAM_LL, i), 0.0, i)
    t._rng = st.rng
    if st.b.n == 0:
        return -1       # every candidate full by its key (cannot happen: _ok)
    s = st.b.slot[0]
    a.decisions += 1
    if by_prefix:
        a.by_prefix += 1
    elif by_key:
        a.by_key += 1
    if t._active[s] + 1 > bound:
        a.violations += 1
    t._nalt = st.b.n - 1
    for k in range(1, st.b.n):
        t._alt[k - 1] = st.b.slot[k]
    t._last_score = st.b.k1[0]
    return s
