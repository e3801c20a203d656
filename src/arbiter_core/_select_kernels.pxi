# The selection kernels of AgentTable: the PRNG, the best-of scan state and
# one C function per strategy (the keys they compare: _scorers.pxi).  Included by _select.pyx (compiled into the
# same module, so the table's arrays are read directly and everything inlines).
# Every function takes the table as ``t`` and runs without the GIL's help:
# ``noexcept nogil``, no Python object touched.

# ---------------------------------------------------------------------------
# PRNG: xoshiro256** seeded through splitmix64 (Blackman & Vigna).  Fast, good
# statistical quality, and reproducible from one 64-bit seed.


cdef inline uint64_t _splitmix(uint64_t* x) noexcept nogil:
    cdef uint64_t z
    x[0] += <uint64_t>0x9E3779B97F4A7C15
    z = x[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline void _rng_seed(Rng* r, uint64_t seed) noexcept nogil:
    cdef uint64_t x = seed
    r.s0 = _splitmix(&x)
    r.s1 = _splitmix(&x)
    r.s2 = _splitmix(&x)
    r.s3 = _splitmix(&x)


cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline uint64_t _rng_next(Rng* r) noexcept nogil:
    cdef uint64_t result = _rotl(r.s1 * 5, 7) * 9
    cdef uint64_t t = r.s1 << 17
    r.s2 ^= r.s0
    r.s3 ^= r.s1
    r.s1 ^= r.s2
    r.s0 ^= r.s3
    r.s2 ^= t
    r.s3 = _rotl(r.s3, 45)
    return result


cdef inline uint64_t _rng_below(Rng* r, uint64_t n) noexcept nogil:
    # Lemire's multiply-shift on the top 32 bits: unbiased enough for n < 2**32
    # (bias < n / 2**32), and far cheaper than a modulo.
    return ((_rng_next(r) >> 32) * n) >> 32


# ---------------------------------------------------------------------------
# Best-of scan state: the winner and the next MAX_ALT candidates in key
# order (the alternatives).  Ties with the winner are resolved by the scan
# loop itself (skip-ahead reservoir sampling, see _next_win).

cdef struct Best:
    double k1[4]
    double k2[4]
    Py_ssize_t slot[4]
    int n


cdef inline bint _less(double a1, double a2, double b1, double b2) noexcept nogil:
    return a1 < b1 or (a1 == b1 and a2 < b2)


cdef inline void _best_insert(Best* b, int pos, double k1, double k2,
                              Py_ssize_t slot) noexcept nogil:
    """Insert at ``pos``, shifting the rest down and dropping a fifth entry."""
    cdef int j
    if b.n < 4:
        b.n += 1
    j = b.n - 1
    while j > pos:
        b.k1[j] = b.k1[j - 1]
        b.k2[j] = b.k2[j - 1]
        b.slot[j] = b.slot[j - 1]
        j -= 1
    b.k1[pos] = k1
    b.k2[pos] = k2
    b.slot[pos] = slot


cdef inline void _best_place(Best* b, double k1, double k2, Py_ssize_t slot) noexcept nogil:
    """Insert a candidate that is worse than the winner where it belongs."""
    cdef int pos = b.n if b.n < 4 else 3
    while pos > 1 and _less(k1, k2, b.k1[pos - 1], b.k2[pos - 1]):
        pos -= 1
    _best_insert(b, pos, k1, k2, slot)


cdef inline int64_t _next_win(int64_t ties, Rng* rng) noexcept nogil:
    """Skip-ahead reservoir sampling (the idea of Li's Algorithm L, for k=1).

    The plain reservoir lets the k-th tie win with probability 1/k, which
    makes every tied agent equally likely.  With ``ties`` candidates seen, the
    next one to win is at count j > ties with P(j > m) = ties / m, i.e.
    j = floor(ties / u) + 1 for u uniform on (0, 1].  That is one draw per
    replacement (O(log n) per scan) instead of one per tie, which matters when
    a whole idle pool ties.
    """
    cdef double u = (<double>((_rng_next(rng) >> 11) + 1)) * (1.0 / 9007199254740992.0)
    cdef double j = <double>ties / u + 1.0
    if j >= 9.0e18:
        return <int64_t>9000000000000000000
    return <int64_t>j


cdef struct Scan:
    Best b
    Rng rng
    double win1        # the winner's key
    double win2
    double worst1      # the 4th best key (+inf while fewer are held)
    double worst2
    int64_t ties       # candidates seen with the winner's key
    int64_t next_win   # the tie count at which the next tie takes over


cdef inline void _scan_init(Scan* st, Rng rng) noexcept nogil:
    st.b.n = 0
    st.rng = rng
    st.win1 = INFINITY
    st.win2 = INFINITY
    st.worst1 = INFINITY
    st.worst2 = INFINITY
    st.ties = 0
    st.next_win = 0


cdef inline void _scan_offer(Scan* st, double k1, double k2, Py_ssize_t i) noexcept nogil:
    """Consider candidate ``i`` with key (k1, k2); lower is better."""
    if k1 == INFINITY:
        return
    if k1 == st.win1 and k2 == st.win2:
        # a tie with the winner: it takes over at the reservoir's chosen
        # count, so every tied agent is equally likely (no first-in-list
        # herding)
        st.ties += 1
        if st.ties == st.next_win:
            _best_insert(&st.b, 0, k1, k2, i)
            st.next_win = _next_win(st.ties, &st.rng)
        elif st.b.n < 4 or _less(k1, k2, st.worst1, st.worst2):
            # a tie outranks any worse alternative
            _best_insert(&st.b, 1, k1, k2, i)
        else:
            return
    elif not _less(k1, k2, st.worst1, st.worst2):
        return
    elif _less(k1, k2, st.win1, st.win2):
        _best_insert(&st.b, 0, k1, k2, i)
        st.win1 = k1
        st.win2 = k2
        st.ties = 1
        st.next_win = _next_win(1, &st.rng)
    else:
        _best_place(&st.b, k1, k2, i)
    if st.b.n == 4:
        st.worst1 = st.b.k1[3]
        st.worst2 = st.b.k2[3]


# ---------------------------------------------------------------------------
# The strategies


cdef Py_ssize_t _scan(AgentTable t, int strategy, int min_tier, double now, bint need_fit,
                      double rc, double rm, double rn) noexcept nogil:
    """Full scan for LEAST_LOADED / WEIGHTED / PRIORITY_BASED / SCORED (min).

    The key of a slot is its family's count key plus its reported part
    weighted by the report's age (_scorers.pxi): three arrays and a min.
    The arrays and the PRNG are copied into locals first: the compiler
    cannot otherwise prove that the PRNG writes do not alias the table's
    pointers, and reloads them every iteration (3x slower).
    """
    cdef Scan st
    cdef int fam = _family(strategy)
    cdef const int8_t* health = t._health
    cdef const int32_t* active = t._active
    cdef const int32_t* mx = t._max
    cdef const double* base_ll = t._base_ll
    cdef const double* key_ll = t._key_ll
    cdef const double* keys = key_ll if fam == FAM_LL else (t._key_w if fam == FAM_W
                                                            else t._key_p)
    cdef const double* reps = t._rep_ll if fam == FAM_LL else (t._rep_w if fam == FAM_W
                                                               else t._rep_p)
    cdef const double* scale = t._rep_scale
    cdef double E = t._E
    cdef double win1, worst1, w
    cdef int64_t ties, next_win
    cdef const double* ej = t._ejected_until
    cdef Py_ssize_t i, hw = t._hw
    cdef double k1
    cdef bint has_ej = t._n_ej > 0
    cdef int j
    _scan_init(&st, t._rng)
    if strategy != S_PRIORITY_BASED and min_tier == 1 and not need_fit and not has_ej:
        # The common case: the key alone says everything (+inf = cannot
        # take a task), so the loop reads the key arrays and compares twice.
        # _scan_offer's logic, specialised with the hot state in
        # registers (through the struct, a pool of ties costs 2x).
        win1 = INFINITY
        worst1 = INFINITY
        ties = 0
        next_win = 0
        for i in range(hw):
            w = scale[i] * E
            k1 = keys[i] + reps[i] * (w if w < 1.0 else 1.0)
            if k1 == win1:
                if k1 == INFINITY:
                    continue
                ties += 1
                if ties == next_win:
                    _best_insert(&st.b, 0, k1, 0.0, i)
                    next_win = _next_win(ties, &st.rng)
                elif st.b.n < 4 or k1 < worst1:
                    _best_insert(&st.b, 1, k1, 0.0, i)
                else:
                    continue
            elif k1 < worst1:
                if k1 < win1:
                    _best_insert(&st.b, 0, k1, 0.0, i)
                    win1 = k1
                    ties = 1
                    next_win = _next_win(1, &st.rng)
                else:
                    _best_place(&st.b, k1, 0.0, i)
            else:
                continue
            if st.b.n == 4:
                worst1 = st.b.k1[3]
    else:
        for i in range(hw):
            if key_ll[i] == INFINITY or (has_ej and ej[i] > now):
                continue
            if min_tier == 2 and health[i] != H_HEALTHY:
                continue
            if need_fit and not t._fits(i, rc, rm, rn):
                continue
            if strategy == S_PRIORITY_BASED:
                _scan_offer(&st, -<double>(mx[i] - active[i]), base_ll[i], i)
            else:
                w = scale[i] * E
                _scan_offer(&st, keys[i] + reps[i] * (w if w < 1.0 else 1.0), 0.0, i)
    t._rng = st.rng
    if st.b.n == 0:
        return -1
    t._nalt = st.b.n - 1
    for j in range(1, st.b.n):
        t._alt[j - 1] = st.b.slot[j]
    t._last_score = st.b.k1[0] if strategy != S_PRIORITY_BASED else st.b.k2[0]
    return st.b.slot[0]


cdef Py_ssize_t _round_robin(AgentTable t, int min_tier, double now, bint need_fit,
                             double rc, double rm, double rn) noexcept nogil:
    cdef Py_ssize_t hw = t._hw, k, i, start, found = -1
    if hw == 0:
        return -1
    start = t._rr + 1
    t._nalt = 0
    for k in range(hw):
        i = start + k
        if i >= hw:
            i -= hw
        if t._ok(i, min_tier, now, need_fit, rc, rm, rn):
            if found < 0:
                found = i
            else:
                t._alt[t._nalt] = i
                t._nalt += 1
                if t._nalt == MAX_ALT:
                    break
    if found >= 0:
        t._rr = found
        t._last_score = t._active[found] * t._inv_cap[found]
    return found


cdef Py_ssize_t _sample(AgentTable t, int min_tier, double now, bint need_fit, double rc,
                        double rm, double rn, Py_ssize_t avoid) noexcept nogil:
    """A uniformly random eligible slot other than ``avoid``, or -1 (O(1) expected)."""
    cdef int attempt
    cdef Py_ssize_t s, i, m = 0, k
    if t._n == 0:
        return -1
    for attempt in range(SAMPLE_TRIES):
        s = <Py_ssize_t>_rng_below(&t._rng, <uint64_t>t._n)
        if t._n != t._hw:
            # holes in the slot range: draw from the packed list instead
            # (without holes slot == a uniform index: one cache miss less)
            s = t._dense[s]
        if s != avoid and t._ok(s, min_tier, now, need_fit, rc, rm, rn):
            return s
    # few eligible agents: count them and take the k-th (still uniform)
    for i in range(t._hw):
        if i != avoid and t._ok(i, min_tier, now, need_fit, rc, rm, rn):
            m += 1
    if m == 0:
        return -1
    k = <Py_ssize_t>_rng_below(&t._rng, <uint64_t>m)
    for i in range(t._hw):
        if i != avoid and t._ok(i, min_tier, now, need_fit, rc, rm, rn):
            if k == 0:
                return i
            k -= 1
    return -1


cdef inline double _p2c_cost(AgentTable t, int strategy, Py_ssize_t s) noexcept nogil:
    cdef double lat
    if strategy == S_PEAK_EWMA:
        if t._flags[s] & F_LAT:
            lat = t._lat[s]
        else:
            lat = t._lat_mean if t._lat_any else 1.0
        return lat * (t._active[s] + 1)
    return _key(t, _family(strategy), s)


cdef Py_ssize_t _two_choices(AgentTable t, int strategy, int min_tier, double now, bint need_fit,
                             double rc, double rm, double rn) noexcept nogil:
    cdef Py_ssize_t a, b
    cdef double ca, cb
    a = _sample(t, min_tier, now, need_fit, rc, rm, rn, -1)
    t._nalt = 0
    if a < 0:
        return -1
    b = _sample(t, min_tier, now, need_fit, rc, rm, rn, a)
    ca = _p2c_cost(t, strategy, a)
    if b < 0:
        t._last_score = ca
        return a
    cb = _p2c_cost(t, strategy, b)
    if cb < ca or (cb == ca and (_rng_next(&t._rng) >> 63)):
        a, b = b, a
        ca = cb
    t._alt[0] = b
    t._nalt = 1
    t._last_score = ca
    return a


cdef Py_ssize_t _random(AgentTable t, int min_tier, double now, bint need_fit,
                        double rc, double rm, double rn) noexcept nogil:
    cdef Py_ssize_t s, x
    cdef int k
    s = _sample(t, min_tier, now, need_fit, rc, rm, rn, -1)
    t._nalt = 0
    if s < 0:
        return -1
    # a few other eligible agents as alternatives, best effort and O(1)
    for k in range(2 * MAX_ALT):
        x = t._dense[_rng_below(&t._rng, <uint64_t>t._n)]
        if x != s and t._ok(x, min_tier, now, need_fit, rc, rm, rn) \
                and (t._nalt < 1 or t._alt[0] != x) \
                and (t._nalt < 2 or t._alt[1] != x):
            t._alt[t._nalt] = x
            t._nalt += 1
            if t._nalt == MAX_ALT:
                break
    t._last_score = t._active[s] * t._inv_cap[s]
    return s


cdef Py_ssize_t _select1(AgentTable t, int strategy, int min_tier, double now, bint need_fit,
                         double rc, double rm, double rn) noexcept nogil:
    if strategy == S_ROUND_ROBIN:
        return _round_robin(t, min_tier, now, need_fit, rc, rm, rn)
    if strategy == S_RANDOM:
        return _random(t, min_tier, now, need_fit, rc, rm, rn)
    if strategy == S_POWER_OF_TWO or strategy == S_PEAK_EWMA:
        return _two_choices(t, strategy, min_tier, now, need_fit, rc, rm, rn)
    if strategy == S_SCORED:
        if t._prof[FAM_P].picker == PICK_TWO:
            return _two_choices(t, strategy, min_tier, now, need_fit, rc, rm, rn)
        if t._prof[FAM_P].picker == PICK_WEIGHTED:
            return _weighted_draw(t, min_tier, now, need_fit, rc, rm, rn)
    return _scan(t, strategy, min_tier, now, need_fit, rc, rm, rn)
