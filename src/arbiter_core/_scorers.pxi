# The load estimate and the scorers of AgentTable.  Included by _select.pyx
# (compiled into the same module, so everything inlines); the table keeps the
# state, this file says what it means.
#
# What the allocator knows exactly comes first.  Every grant and release goes
# through the table (_reserve/_unreserve), so ``active`` -- the outstanding
# count -- is exact and current.  A usage report is a measurement from the
# past.  Between reports an agent's load is estimated as
#
#     key = count part + reported part * w(age)
#
# * count part: outstanding / concurrency, where concurrency is how many
#   tasks the agent serves at full speed (declared, else max_tasks, which is a
#   hard cap and says nothing about speed when it is large);
# * reported part: the report's figures corrected by what was granted or
#   released since (d = active now - active when the report came): each
#   grant adds 100 / concurrency percent of cpu, one request in flight, and
#   the KV share of one running request;
# * w(age) = exp(-age / report_decay_s): the correction cannot see work that
#   reached the agent from elsewhere, so an old figure is believed less.
#
# Why: a scheduler that trusts an old report more than its own counts sends
# every request until the next report to whoever reported idle last
# (herding: M. Mitzenmacher, "How useful is old information?", IEEE TPDS 11,
# 2000).  Counting what it sent itself is what makes Envoy's least-request and
# Finagle's P2C work with no reports at all; the reported part keeps what only
# the engine knows (other routers' work, its queue, its KV cache).
#
# w(age) is computed without an exp per agent and per selection: each report
# stores scale = exp((t_report - t0) / decay) and a selection computes
# E = exp(-(now - t0) / decay) once, so w = min(1, scale * E) (the min caps a
# report stamped in the future at full weight).  t0 moves forward when scales
# would grow past exp(300) (_rebase).

from libc.math cimport exp


cdef inline double _clamp100(double x) noexcept nogil:
    if x < 0.0:
        return 0.0
    if x > 100.0:
        return 100.0
    return x


cdef inline double _est_cpu(AgentTable t, Py_ssize_t s, double d) noexcept nogil:
    """Reported cpu % corrected by ``d`` grants since: a task at full speed
    takes 100 / concurrency percent."""
    if not (t._flags[s] & F_CPU):
        return 0.0
    return _clamp100(t._cpu[s] + 100.0 * d * t._inv_conc[s])


cdef inline double _est_mem(AgentTable t, Py_ssize_t s) noexcept nogil:
    # a task's memory footprint is unknown: the report stands as it is
    return t._mem[s] if t._flags[s] & F_MEM else 0.0


cdef inline double _est_queue(AgentTable t, Py_ssize_t s, double d) noexcept nogil:
    """The engine's waiting requests now: grants since the report first fill
    the room it had (concurrency - running; our own count stands in for
    running when it was not reported), then wait; each release lets one
    waiting request start."""
    cdef double room, q
    if not (t._flags[s] & F_WAITING):
        return 0.0
    q = t._waiting[s]
    if d > 0.0:
        if q > 0.0:
            room = 0.0
        elif t._flags[s] & F_RUNNING:
            room = t._conc[s] - t._running[s]
        else:
            room = t._conc[s] - t._rep_active[s]
        if room < 0.0:
            room = 0.0
        if d > room:
            q += d - room
    else:
        q += d
    return q if q > 0.0 else 0.0


cdef inline double _est_kv(AgentTable t, Py_ssize_t s, double d) noexcept nogil:
    """KV-cache use % corrected by the average share of a request in flight
    at the report (unknown for an idle engine: no correction)."""
    cdef double n
    if not (t._flags[s] & F_KV):
        return 0.0
    n = t._running[s] if t._flags[s] & F_RUNNING else <double>t._rep_active[s]
    if n <= 0.0:
        return t._kv[s]
    return _clamp100(t._kv[s] * (1.0 + d / n))


cdef inline void _score(AgentTable t, Py_ssize_t s) noexcept nogil:
    """Every family's (count, reported) key pair of an eligible slot."""
    cdef double d = <double>(t._active[s] - t._rep_active[s])
    cdef double load = t._active[s] * t._inv_conc[s]
    cdef double cpu = _est_cpu(t, s, d)
    cdef double mem = _est_mem(t, s)
    cdef double iw = t._inv_weight[s]
    cdef double lat, rep, k
    cdef Profile* p = &t._prof[FAM_P]
    # least_loaded, power_of_two: 100 * load + (cpu + mem) / 2
    t._key_ll[s] = 100.0 * load
    t._rep_ll[s] = (cpu + mem) * 0.5
    # weighted: (0.5 * task% + 0.3 * cpu + 0.2 * mem) / weight
    t._key_w[s] = 50.0 * load * iw
    t._rep_w[s] = (0.3 * cpu + 0.2 * mem) * iw
    # the configured profile
    k = p.count * load
    if p.latency != 0.0:
        if t._flags[s] & F_LAT:
            lat = t._lat[s]
        else:
            lat = t._lat_mean if t._lat_any else 0.0
        k += p.latency * lat
    rep = 0.0
    if p.queue != 0.0:
        rep += p.queue * _est_queue(t, s, d) * t._inv_conc[s]
    if p.utilization != 0.0:
        rep += p.utilization * 0.01 * (cpu if cpu > mem else mem)
    if p.kv_cache != 0.0:
        rep += p.kv_cache * 0.01 * _est_kv(t, s, d)
    if p.by_weight:
        k *= iw
        rep *= iw
    t._key_p[s] = k
    t._rep_p[s] = rep


cdef inline double _decay_now(AgentTable t, double now) noexcept nogil:
    """E = exp(-(now - t0) / decay), the factor every report's scale meets."""
    cdef double x
    if t._inv_decay == 0.0:
        return 1.0
    x = (now - t._t0) * t._inv_decay
    if x > 700.0:
        x = 700.0
    elif x < -700.0:
        x = -700.0
    return exp(-x)


cdef inline double _weight_of(AgentTable t, Py_ssize_t s) noexcept nogil:
    """w(age) of slot ``s``'s report at the selection running (uses t._E)."""
    cdef double w = t._rep_scale[s] * t._E
    return w if w < 1.0 else 1.0


cdef inline double _key(AgentTable t, int fam, Py_ssize_t s) noexcept nogil:
    """The full key of slot ``s`` in family ``fam`` (+inf: ineligible)."""
    if fam == FAM_LL:
        return t._key_ll[s] + t._rep_ll[s] * _weight_of(t, s)
    if fam == FAM_W:
        return t._key_w[s] + t._rep_w[s] * _weight_of(t, s)
    return t._key_p[s] + t._rep_p[s] * _weight_of(t, s)


cdef inline int _family(int strategy) noexcept nogil:
    if strategy == S_WEIGHTED:
        return FAM_W
    if strategy == S_SCORED:
        return FAM_P
    return FAM_LL


cdef Py_ssize_t _weighted_draw(AgentTable t, int min_tier, double now, bint need_fit,
                               double rc, double rm, double rn) noexcept nogil:
    """The profile's weighted-random picker: each eligible agent with
    probability proportional to 1 / (1 + key), so a lightly loaded agent is
    likelier but none is starved (llm-d's weighted random picker, on costs).
    One pass with a running total (reservoir over weights: Efraimidis-Spirakis
    for k = 1 reduces to this)."""
    cdef Py_ssize_t i, win = -1
    cdef double total = 0.0, w, u
    t._nalt = 0
    for i in range(t._hw):
        if not t._ok(i, min_tier, now, need_fit, rc, rm, rn):
            continue
        w = 1.0 / (1.0 + _key(t, FAM_P, i))
        total += w
        u = (<double>((_rng_next(&t._rng) >> 11) + 1)) * (1.0 / 9007199254740992.0)
        if u * total <= w:
            if win >= 0 and t._nalt < MAX_ALT:
                t._alt[t._nalt] = win
                t._nalt += 1
            win = i
        elif t._nalt < MAX_ALT:
            t._alt[t._nalt] = i
            t._nalt += 1
    if win >= 0:
        t._last_score = _key(t, FAM_P, win)
    return win
