# The agent table's C layout and the C methods other Cython modules may call
# (the allocation core in _alloc.pyx reserves and releases through these
# without a Python call).  Everything here is an implementation detail of
# arbiter_core; Python code uses the methods documented in _select.pyx.

cimport cython
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint64_t

# Strategy codes, indexed by LoadBalancingStrategy value.
cdef enum:
    S_ROUND_ROBIN = 0
    S_LEAST_LOADED = 1
    S_WEIGHTED = 2
    S_RANDOM = 3
    S_PRIORITY_BASED = 4
    S_POWER_OF_TWO = 5
    S_PEAK_EWMA = 6
    S_SCORED = 7       # the configured scoring profile (_scorers.pxi)
    N_STRATEGIES = 8

# Scoring families: each keeps a (count, reported) key pair per agent
# (_scorers.pxi).  LL serves least_loaded and power_of_two, W weighted, P the
# configured profile (scored).
cdef enum:
    FAM_LL = 0
    FAM_W = 1
    FAM_P = 2
    N_FAM = 3

# Pickers of a scoring profile.
cdef enum:
    PICK_MIN = 0
    PICK_TWO = 1
    PICK_WEIGHTED = 2

# Health codes; FREE marks an unused slot.
cdef enum:
    H_FREE = -1
    H_HEALTHY = 0
    H_DEGRADED = 1
    H_UNHEALTHY = 2
    H_OFFLINE = 3

# Bits of `_flags`.
cdef enum:
    F_CPU = 1          # cpu % reported at least once
    F_MEM = 2
    F_NET = 4
    F_REPORTED = 8     # any usage report ever: staleness applies
    F_LAT = 16         # latency EWMA has a sample
    F_STALE = 32       # OFFLINE because silent past the stale limit
    F_DOWN = 64        # OFFLINE because failed over (until a report/restore)
    F_WAITING = 128    # engine queue (waiting requests) reported
    F_RUNNING = 256    # engine running requests reported
    F_KV = 512         # KV-cache use reported
    F_CONC = 1024      # concurrency declared (else it follows max_tasks)

# Rejection sampling budget of the O(1) strategies before they fall back to an
# exact scan (a pool where fewer than about 1 in 10 agents is eligible).
cdef enum:
    SAMPLE_TRIES = 32
    MAX_ALT = 3

# PRNG state: xoshiro256** (see _select.pyx).
cdef struct Rng:
    uint64_t s0
    uint64_t s1
    uint64_t s2
    uint64_t s3


# A scoring profile: weights of the scorers (each >= 0) and the picker.
# Units: count = outstanding / concurrency; queue = estimated engine queue /
# concurrency; utilization, kv_cache = fractions in [0, 1]; latency =
# seconds (latency EWMA); affinity = matched fraction (the cache-affinity
# issue).  by_weight divides the key by the agent's weight.
cdef struct Profile:
    double count
    double queue
    double utilization
    double kv_cache
    double latency
    double affinity
    bint by_weight
    int picker


@cython.final
cdef class AgentTable:
    # per-slot arrays
    cdef int8_t* _health
    cdef uint16_t* _flags
    cdef int32_t* _max
    cdef int32_t* _active
    cdef int32_t* _streak        # consecutive failures
    cdef int32_t* _ejections
    cdef double* _inv_cap        # 100 / max_tasks
    cdef double* _weight
    cdef double* _inv_weight
    cdef double* _cpu
    cdef double* _mem
    cdef double* _net
    cdef double* _base_ll        # (cpu + mem) / 2
    cdef double* _base_w         # 0.3 cpu + 0.2 mem
    cdef double* _key_ll         # least-loaded count key (+inf: cannot take a task)
    cdef double* _key_w          # weighted count key
    cdef double* _key_p          # profile count key
    cdef double* _rep_ll         # the reported part of each key, before decay
    cdef double* _rep_w
    cdef double* _rep_p
    cdef double* _conc           # concurrency: tasks at full speed (count term)
    cdef double* _inv_conc
    cdef double* _waiting        # engine figures of the last report
    cdef double* _running
    cdef double* _kv             # KV-cache use, percent
    cdef int32_t* _rep_active    # our outstanding count when the report came
    cdef double* _rep_scale      # exp((report time - _t0) / decay): see _scorers.pxi
    cdef double* _ejected_until
    cdef double* _lat            # peak EWMA latency, seconds
    cdef double* _lat_t          # time of the last latency sample
    cdef double* _last_report
    cdef double* _cap_cpu        # percent of the agent a request may take
    cdef double* _cap_mem        # MB, 0 = not declared
    cdef double* _cap_net        # Mbps, 0 = not declared
    cdef double* _res_cpu        # reserved by active allocations
    cdef double* _res_mem
    cdef double* _res_net
    cdef int64_t* _selected      # selections made (load distribution)
    cdef int64_t* _completed
    cdef int64_t* _failed
    cdef Py_ssize_t* _pos        # slot -> index in _dense
    cdef Py_ssize_t* _dense      # the live slots, packed, for O(1) sampling
    cdef Py_ssize_t* _free       # stack of free slots below the high-water mark

    cdef Py_ssize_t _cap         # hard maximum
    cdef Py_ssize_t _alloc       # allocated slots
    cdef Py_ssize_t _grow_to
    cdef Py_ssize_t _hw          # high-water mark: slots [0, _hw) were used
    cdef Py_ssize_t _n           # live agents
    cdef Py_ssize_t _nfree
    cdef Py_ssize_t _rr          # round-robin cursor (last slot picked)
    cdef Py_ssize_t _n_ej        # agents with an ejection set (expired or not)
    cdef Rng _rng
    cdef double _lat_mean        # pool latency EWMA, for unmeasured agents
    cdef bint _lat_any
    cdef double _cpu_warn, _cpu_crit, _mem_warn, _mem_crit
    cdef readonly double ewma_decay_s
    cdef double _decay_s         # reported figures lose weight as exp(-age / _decay_s)
    cdef double _inv_decay       # 1 / _decay_s (0: never decay)
    cdef double _t0              # reference time of _rep_scale
    cdef double _E               # exp(-(now - _t0) / decay) of the selection running
    cdef Profile _prof[N_FAM]
    cdef Py_ssize_t _alt[MAX_ALT]
    cdef int _nalt
    cdef double _last_score
    cdef list _ids
    cdef dict _index

    cdef void* _re(self, void* p, size_t size) except NULL
    cdef int _grow(self, Py_ssize_t new_alloc) except -1
    cpdef Py_ssize_t slot(self, agent_id) except -1
    cdef int _check(self, Py_ssize_t slot) except -1
    cdef int8_t _judge(self, Py_ssize_t s) noexcept nogil
    cdef bint _fits(self, Py_ssize_t s, double rc, double rm, double rn) noexcept nogil
    cdef bint _ok(self, Py_ssize_t s, int min_tier, double now, bint need_fit,
                         double rc, double rm, double rn) noexcept nogil
    cdef void _rekey(self, Py_ssize_t s) noexcept nogil
    cdef void _set_health(self, Py_ssize_t s, int8_t h) noexcept nogil
    cdef void _reserve(self, Py_ssize_t s, double rc, double rm, double rn) noexcept nogil
    cdef Py_ssize_t _select(self, int strategy, bint high, double rc, double rm,
                            double rn, double now, bint reserve) noexcept nogil
    cpdef Py_ssize_t select(self, int strategy, bint high=*, double cpu=*,
                            double memory_mb=*, double network_mbps=*, double now=*,
                            bint reserve=*) except -2
    cdef int _unreserve(self, Py_ssize_t s, double rc, double rm, double rn) noexcept nogil
    cdef void _hide(self, Py_ssize_t s) noexcept nogil
    cdef void _stamp(self, Py_ssize_t s, double t) noexcept
    cdef double _load_before(self, Py_ssize_t s, bint reserved) noexcept
    cdef tuple _alternative_ids(self)
    cdef int32_t _complete(self, Py_ssize_t s, double duration_s, bint success,
                           double now) noexcept nogil
