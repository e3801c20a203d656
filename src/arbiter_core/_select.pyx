# Agent state as a struct of arrays: the AgentTable.
#
# By concern: the C layout (arrays, codes, PRNG state) is declared in
# _select.pxd, which the allocation core (_alloc.pyx) cimports; the strategy
# kernels are in _select_kernels.pxi; this file holds the table itself --
# registry, usage and health rules, reservations, the selection entry points
# and reading.
#
# One slot per agent; a removed agent's slot goes on a free list and is reused
# by the next registration, so the arrays never grow past the high-water mark
# of live agents.  Every per-agent attribute is one C array indexed by slot.
#
# Concurrency: every method runs under the GIL and calls no Python code while
# it reads or changes the arrays, so each call -- in particular one
# select-and-reserve -- is atomic for other Python threads.  The scans are
# `noexcept nogil` C functions (no Python object is touched, which the compiler
# checks), but they are *called* with the GIL held on purpose: releasing it
# would let another thread reserve a slot between our scan and our
# reservation.  A scan over 10,000 agents takes about 20 microseconds.

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.math cimport exp, isfinite, INFINITY
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.string cimport memset

from ._chelpers cimport monotonic as _mono, new_record, put_field

import os

__all__ = ["AgentTable", "HEALTH_NAMES", "PICKERS", "STRATEGY_CODES"]

# The strategy, health and flag codes, the PRNG state and the table's layout
# are declared in _select.pxd (shared with the allocation core).

# Strategy codes, indexed by LoadBalancingStrategy value.
STRATEGY_CODES = {
    "round_robin": S_ROUND_ROBIN,
    "least_loaded": S_LEAST_LOADED,
    "weighted": S_WEIGHTED,
    "random": S_RANDOM,
    "priority_based": S_PRIORITY_BASED,
    "power_of_two": S_POWER_OF_TWO,
    "peak_ewma": S_PEAK_EWMA,
    "scored": S_SCORED,
}

# Picker names of a scoring profile.
PICKERS = {"min": PICK_MIN, "two_choices": PICK_TWO, "weighted_random": PICK_WEIGHTED}

# Health codes 0..3 (H_FREE = -1 marks an unused slot).
HEALTH_NAMES = ("healthy", "degraded", "unhealthy", "offline")


# ---------------------------------------------------------------------------
# The selection kernels (one file: PRNG, best-of scans, the strategies)

include "_select_kernels.pxi"
include "_scorers.pxi"


# ---------------------------------------------------------------------------
# The table

@cython.final
cdef class AgentTable:
    """AgentTable(capacity)
    --

    Per-agent state as parallel C arrays, and selection kernels over it.

    Parameters
    ----------
    capacity : int
        Maximum number of agents held at once (>= 1).  The arrays start small
        and double as agents are added, up to ``capacity``; removed agents'
        slots are reused.  Memory is about 230 bytes per slot in C
        arrays, plus the id and its dict entry.

    Notes
    -----
    Agents are addressed by *slot* (an int) in the per-call methods, which take
    C scalars only; :meth:`slot` maps an agent id to its slot.  An agent is
    *eligible* for a request when it is not OFFLINE, not ejected, has a free
    task slot and the request's resources fit.  Requests marked ``high``
    (priority >= HIGH) only go to HEALTHY agents while any eligible one exists,
    and fall back to any eligible agent otherwise.

    Strategies (codes in ``STRATEGY_CODES``):

    * ``round_robin``: rotation over slots from the last pick, skipping
      ineligible ones, so agents that come and go do not disturb the others.
    * ``least_loaded``: minimum of ``100 * active / max_tasks + (cpu + mem) / 2``.
    * ``weighted``: minimum of ``(0.5 * task% + 0.3 * cpu + 0.2 * mem) / weight``.
    * ``priority_based``: most free task slots, then lowest ``(cpu + mem) / 2``.
    * ``random``: uniform over eligible agents.
    * ``power_of_two``: two distinct random eligible agents, the one with the
      lower least-loaded score wins (Envoy's least-request); O(1) expected.
    * ``peak_ewma``: two random choices compared by Finagle's cost
      ``peak_ewma_latency * (active + 1)``; O(1) expected.  An agent with no
      latency sample yet is costed at the pool's mean latency, so new agents
      are neither starved nor flooded.

    Every tie is broken uniformly at random by the table's seeded PRNG.  The
    scans return the winner and up to three alternatives (the next best, or
    the losing random choice).

    Examples
    --------
    >>> t = AgentTable(8)
    >>> a = t.add("a", max_tasks=2)
    >>> b = t.add("b", max_tasks=2)
    >>> t.set_usage(a, 90.0, 0.0, 0.0, 0.0, 1)  # cpu 90 %: UNHEALTHY
    >>> t.select(STRATEGY_CODES["least_loaded"], False, 0.0, 0.0, 0.0, 0.0, True) == b
    True
    """


    def __cinit__(self, capacity):
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if capacity > (1 << 31) - 1:
            raise ValueError(f"capacity is too large: {capacity}")
        self._cap = capacity
        self._alloc = 0
        self._hw = 0
        self._n = 0
        self._nfree = 0
        self._rr = -1
        self._n_ej = 0
        self._ids = []
        self._index = {}
        self._cpu_warn = 70.0
        self._cpu_crit = 85.0
        self._mem_warn = 75.0
        self._mem_crit = 90.0
        self.ewma_decay_s = 10.0
        self._decay_s = 10.0
        self._inv_decay = 0.1
        self._t0 = 0.0
        self._E = 1.0
        memset(self._prof, 0, sizeof(self._prof))
        self._prof[FAM_P].count = 1.0
        self._prof[FAM_P].queue = 1.0
        self._prof[FAM_P].kv_cache = 1.0
        self._prof[FAM_P].picker = PICK_MIN
        self._lat_mean = 0.0
        self._lat_any = False
        self._nalt = 0
        self._last_score = 0.0
        _rng_seed(&self._rng, int.from_bytes(os.urandom(8), "little"))
        self._grow(capacity if capacity < 16 else 16)

    def __dealloc__(self):
        PyMem_Free(self._health)
        PyMem_Free(self._flags)
        PyMem_Free(self._max)
        PyMem_Free(self._active)
        PyMem_Free(self._streak)
        PyMem_Free(self._ejections)
        PyMem_Free(self._inv_cap)
        PyMem_Free(self._weight)
        PyMem_Free(self._inv_weight)
        PyMem_Free(self._cpu)
        PyMem_Free(self._mem)
        PyMem_Free(self._net)
        PyMem_Free(self._base_ll)
        PyMem_Free(self._base_w)
        PyMem_Free(self._key_ll)
        PyMem_Free(self._key_w)
        PyMem_Free(self._key_p)
        PyMem_Free(self._rep_ll)
        PyMem_Free(self._rep_w)
        PyMem_Free(self._rep_p)
        PyMem_Free(self._conc)
        PyMem_Free(self._inv_conc)
        PyMem_Free(self._waiting)
        PyMem_Free(self._running)
        PyMem_Free(self._kv)
        PyMem_Free(self._rep_active)
        PyMem_Free(self._rep_scale)
        PyMem_Free(self._ejected_until)
        PyMem_Free(self._lat)
        PyMem_Free(self._lat_t)
        PyMem_Free(self._last_report)
        PyMem_Free(self._cap_cpu)
        PyMem_Free(self._cap_mem)
        PyMem_Free(self._cap_net)
        PyMem_Free(self._res_cpu)
        PyMem_Free(self._res_mem)
        PyMem_Free(self._res_net)
        PyMem_Free(self._selected)
        PyMem_Free(self._completed)
        PyMem_Free(self._failed)
        PyMem_Free(self._pos)
        PyMem_Free(self._dense)
        PyMem_Free(self._free)

    cdef void* _re(self, void* p, size_t size) except NULL:
        # every array grows to self._grow_to elements; a failure leaves the
        # arrays grown so far larger than _alloc, which is harmless
        cdef void* q = PyMem_Realloc(p, size * <size_t>self._grow_to)
        if q == NULL:
            raise MemoryError(f"cannot grow the agent table to {self._grow_to} slots")
        return q

    cdef int _grow(self, Py_ssize_t new_alloc) except -1:
        """Reallocate every array to ``new_alloc`` slots (registration only)."""
        cdef Py_ssize_t old = self._alloc, i
        self._grow_to = new_alloc
        self._health = <int8_t*>self._re(self._health, sizeof(int8_t))
        self._flags = <uint16_t*>self._re(self._flags, sizeof(uint16_t))
        self._max = <int32_t*>self._re(self._max, sizeof(int32_t))
        self._active = <int32_t*>self._re(self._active, sizeof(int32_t))
        self._streak = <int32_t*>self._re(self._streak, sizeof(int32_t))
        self._ejections = <int32_t*>self._re(self._ejections, sizeof(int32_t))
        self._inv_cap = <double*>self._re(self._inv_cap, sizeof(double))
        self._weight = <double*>self._re(self._weight, sizeof(double))
        self._inv_weight = <double*>self._re(self._inv_weight, sizeof(double))
        self._cpu = <double*>self._re(self._cpu, sizeof(double))
        self._mem = <double*>self._re(self._mem, sizeof(double))
        self._net = <double*>self._re(self._net, sizeof(double))
        self._base_ll = <double*>self._re(self._base_ll, sizeof(double))
        self._base_w = <double*>self._re(self._base_w, sizeof(double))
        self._key_ll = <double*>self._re(self._key_ll, sizeof(double))
        self._key_w = <double*>self._re(self._key_w, sizeof(double))
        self._key_p = <double*>self._re(self._key_p, sizeof(double))
        self._rep_ll = <double*>self._re(self._rep_ll, sizeof(double))
        self._rep_w = <double*>self._re(self._rep_w, sizeof(double))
        self._rep_p = <double*>self._re(self._rep_p, sizeof(double))
        self._conc = <double*>self._re(self._conc, sizeof(double))
        self._inv_conc = <double*>self._re(self._inv_conc, sizeof(double))
        self._waiting = <double*>self._re(self._waiting, sizeof(double))
        self._running = <double*>self._re(self._running, sizeof(double))
        self._kv = <double*>self._re(self._kv, sizeof(double))
        self._rep_active = <int32_t*>self._re(self._rep_active, sizeof(int32_t))
        self._rep_scale = <double*>self._re(self._rep_scale, sizeof(double))
        self._ejected_until = <double*>self._re(self._ejected_until, sizeof(double))
        self._lat = <double*>self._re(self._lat, sizeof(double))
        self._lat_t = <double*>self._re(self._lat_t, sizeof(double))
        self._last_report = <double*>self._re(self._last_report, sizeof(double))
        self._cap_cpu = <double*>self._re(self._cap_cpu, sizeof(double))
        self._cap_mem = <double*>self._re(self._cap_mem, sizeof(double))
        self._cap_net = <double*>self._re(self._cap_net, sizeof(double))
        self._res_cpu = <double*>self._re(self._res_cpu, sizeof(double))
        self._res_mem = <double*>self._re(self._res_mem, sizeof(double))
        self._res_net = <double*>self._re(self._res_net, sizeof(double))
        self._selected = <int64_t*>self._re(self._selected, sizeof(int64_t))
        self._completed = <int64_t*>self._re(self._completed, sizeof(int64_t))
        self._failed = <int64_t*>self._re(self._failed, sizeof(int64_t))
        self._pos = <Py_ssize_t*>self._re(self._pos, sizeof(Py_ssize_t))
        self._dense = <Py_ssize_t*>self._re(self._dense, sizeof(Py_ssize_t))
        self._free = <Py_ssize_t*>self._re(self._free, sizeof(Py_ssize_t))
        for i in range(old, new_alloc):
            self._health[i] = H_FREE
            self._key_ll[i] = INFINITY
            self._key_w[i] = INFINITY
            self._key_p[i] = INFINITY
            self._rep_ll[i] = 0.0
            self._rep_w[i] = 0.0
            self._rep_p[i] = 0.0
            self._rep_scale[i] = 0.0
            self._ids.append(None)
        self._alloc = new_alloc
        return 0

    # -- registry -------------------------------------------------------------

    @property
    def capacity(self):
        """Maximum number of agents."""
        return self._cap

    def __len__(self):
        return self._n

    def __contains__(self, agent_id):
        return agent_id in self._index

    def __repr__(self):
        return f"AgentTable(capacity={self._cap}, agents={self._n})"

    def add(self, agent_id, int max_tasks=10, double weight=1.0,
            double cpu_capacity=100.0, double memory_mb=0.0, double network_mbps=0.0,
            double now=0.0, double concurrency=0.0):
        """add(agent_id, max_tasks=10, weight=1.0, cpu_capacity=100.0, memory_mb=0.0, network_mbps=0.0, now=0.0, concurrency=0.0)

        Register an agent and return its slot.

        Parameters
        ----------
        agent_id : hashable
            Unique id (normally a str).
        max_tasks : int
            Task slots, >= 1.
        weight : float
            > 0; the WEIGHTED strategy divides the score by it.
        cpu_capacity : float
            Percent of the agent that reservations may take, in (0, 100].
        memory_mb, network_mbps : float
            Declared capacities (0 = not declared: requests are not checked
            against that dimension).
        now : float
            Registration time (the latency EWMA starts here).
        concurrency : float
            How many tasks the agent serves at full speed (> 0), the count
            term's denominator; 0 = follow ``max_tasks``.

        Raises
        ------
        ValueError
            Duplicate id, a bad value, or a full table.
        """
        cdef Py_ssize_t s
        try:
            hash(agent_id)
        except TypeError:
            raise TypeError(
                f"agent_id must be hashable, got {type(agent_id).__name__}") from None
        if agent_id in self._index:
            raise ValueError(f"agent_id {agent_id!r} is already registered")
        _check_max_tasks(max_tasks)
        _check_weight(weight)
        if not (isfinite(cpu_capacity) and 0.0 < cpu_capacity <= 100.0):
            raise ValueError(f"cpu_capacity must be within (0, 100], got {cpu_capacity!r}")
        _check_nonneg(memory_mb, "memory_mb")
        _check_nonneg(network_mbps, "network_mbps")
        _check_finite(now, "now")
        _check_nonneg(concurrency, "concurrency")
        if self._n >= self._cap:
            raise ValueError(f"the agent table is full (capacity {self._cap})")
        if self._nfree:
            self._nfree -= 1
            s = self._free[self._nfree]
        else:
            if self._hw == self._alloc:
                self._grow(min(self._cap, 2 * self._alloc))
            s = self._hw
            self._hw += 1
        self._health[s] = H_HEALTHY
        self._flags[s] = F_CONC if concurrency > 0.0 else 0
        self._conc[s] = concurrency if concurrency > 0.0 else <double>max_tasks
        self._inv_conc[s] = 1.0 / self._conc[s]
        self._waiting[s] = 0.0
        self._running[s] = 0.0
        self._kv[s] = 0.0
        self._rep_active[s] = 0
        self._rep_scale[s] = 0.0
        self._max[s] = max_tasks
        self._active[s] = 0
        self._streak[s] = 0
        self._ejections[s] = 0
        self._inv_cap[s] = 100.0 / max_tasks
        self._weight[s] = weight
        self._inv_weight[s] = 1.0 / weight
        self._cpu[s] = 0.0
        self._mem[s] = 0.0
        self._net[s] = 0.0
        self._base_ll[s] = 0.0
        self._base_w[s] = 0.0
        self._ejected_until[s] = -INFINITY
        self._lat[s] = 0.0
        self._lat_t[s] = now
        self._last_report[s] = now
        self._cap_cpu[s] = cpu_capacity
        self._cap_mem[s] = memory_mb
        self._cap_net[s] = network_mbps
        self._res_cpu[s] = 0.0
        self._res_mem[s] = 0.0
        self._res_net[s] = 0.0
        self._selected[s] = 0
        self._completed[s] = 0
        self._failed[s] = 0
        self._pos[s] = self._n
        self._dense[self._n] = s
        self._n += 1
        self._ids[s] = agent_id
        self._index[agent_id] = s
        self._rekey(s)
        return s

    def remove(self, agent_id):
        """remove(agent_id)

        Unregister an agent and return the slot it had (now free for reuse).

        Raises
        ------
        KeyError
            Unknown ``agent_id``.
        """
        cdef Py_ssize_t s = self.slot(agent_id), p, last
        del self._index[agent_id]
        self._ids[s] = None
        if self._ejected_until[s] != -INFINITY:
            self._n_ej -= 1
        self._health[s] = H_FREE
        self._rekey(s)
        # swap-remove from the dense list
        p = self._pos[s]
        last = self._dense[self._n - 1]
        self._dense[p] = last
        self._pos[last] = p
        self._n -= 1
        self._free[self._nfree] = s
        self._nfree += 1
        return s

    cpdef Py_ssize_t slot(self, agent_id) except -1:
        """slot(agent_id)

        The slot of ``agent_id``; KeyError naming it when unknown.
        """
        try:
            return self._index[agent_id]
        except KeyError:
            raise KeyError(f"unknown agent_id {agent_id!r}") from None
        except TypeError:
            raise TypeError(f"agent_id must be hashable, got {type(agent_id).__name__}") from None

    def agent_id(self, Py_ssize_t slot):
        """agent_id(slot)

        The id of the agent in ``slot``; KeyError for a free slot.
        """
        self._check(slot)
        return self._ids[slot]

    def agent_ids(self):
        """agent_ids()

        The ids of all live agents, in slot order.
        """
        return [self._ids[i] for i in range(self._hw) if self._health[i] != H_FREE]

    cdef inline int _check(self, Py_ssize_t slot) except -1:
        if slot < 0 or slot >= self._hw or self._health[slot] == H_FREE:
            raise KeyError(f"no agent in slot {slot}")
        return 0

    # -- state updates (C scalars only) ---------------------------------------

    def set_thresholds(self, double cpu_warning, double cpu_critical,
                       double memory_warning, double memory_critical):
        """set_thresholds(cpu_warning, cpu_critical, memory_warning, memory_critical)

        Health thresholds in percent, inclusive (defaults 70/85, 75/90).
        Every agent's health is recomputed.
        """
        for v, name in ((cpu_warning, "cpu_warning"), (cpu_critical, "cpu_critical"),
                        (memory_warning, "memory_warning"), (memory_critical, "memory_critical")):
            if not (isfinite(v) and 0.0 <= v <= 100.0):
                raise ValueError(f"{name} must be within [0, 100], got {v!r}")
        if cpu_warning > cpu_critical:
            raise ValueError(f"cpu_warning ({cpu_warning}) must be <= cpu_critical ({cpu_critical})")
        if memory_warning > memory_critical:
            raise ValueError(
                f"memory_warning ({memory_warning}) must be <= memory_critical ({memory_critical})")
        self._cpu_warn = cpu_warning
        self._cpu_crit = cpu_critical
        self._mem_warn = memory_warning
        self._mem_crit = memory_critical
        cdef Py_ssize_t i
        for i in range(self._hw):
            if self._health[i] != H_FREE:
                self._set_health(i, self._judge(i))

    @property
    def thresholds(self):
        """(cpu_warning, cpu_critical, memory_warning, memory_critical)."""
        return (self._cpu_warn, self._cpu_crit, self._mem_warn, self._mem_crit)

    cdef inline int8_t _judge(self, Py_ssize_t s) noexcept nogil:
        """Health from the flags and the last usage report."""
        cdef uint16_t f = self._flags[s]
        if f & (F_STALE | F_DOWN):
            return H_OFFLINE
        if ((f & F_CPU) and self._cpu[s] >= self._cpu_crit) or \
           ((f & F_MEM) and self._mem[s] >= self._mem_crit):
            return H_UNHEALTHY
        if ((f & F_CPU) and self._cpu[s] >= self._cpu_warn) or \
           ((f & F_MEM) and self._mem[s] >= self._mem_warn):
            return H_DEGRADED
        return H_HEALTHY

    def set_usage(self, Py_ssize_t slot, double cpu, double memory, double network,
                  double now, int fields=7, double waiting=0.0, double running=0.0,
                  double kv_cache=0.0):
        """set_usage(slot, cpu, memory, network, now, fields=7, waiting=0.0, running=0.0, kv_cache=0.0)

        Record a usage report and recompute the agent's health.

        ``cpu``, ``memory``, ``network`` and ``kv_cache`` are percentages;
        ``waiting`` and ``running`` are an engine's request counts (vLLM's
        ``num_requests_waiting`` / ``num_requests_running``).  ``fields`` says
        which values are given (bits 1 cpu, 2 memory, 4 network, 128
        waiting, 256 running, 512 kv_cache); the others keep their last
        value.  The report is the baseline of the load estimate: what is
        granted or released from now on corrects it, and it loses weight
        with its age (``now`` is its time).  A report clears an OFFLINE state
        (stale or failed over): the agent is back.

        Raises
        ------
        ValueError
            A given value that is not finite, or outside [0, 100] (percent)
            or below 0 (counts).
        """
        self._check(slot)
        if fields & F_CPU:
            _check_percent(cpu, "cpu")
        if fields & F_MEM:
            _check_percent(memory, "memory")
        if fields & F_NET:
            _check_percent(network, "network")
        if fields & F_WAITING:
            _check_nonneg(waiting, "waiting")
        if fields & F_RUNNING:
            _check_nonneg(running, "running")
        if fields & F_KV:
            _check_percent(kv_cache, "kv_cache")
        _check_finite(now, "now")
        cdef uint16_t f = self._flags[slot] & ~(F_STALE | F_DOWN)
        if fields & F_CPU:
            self._cpu[slot] = cpu
            f |= F_CPU
        if fields & F_MEM:
            self._mem[slot] = memory
            f |= F_MEM
        if fields & F_NET:
            self._net[slot] = network
            f |= F_NET
        if fields & F_WAITING:
            self._waiting[slot] = waiting
            f |= F_WAITING
        if fields & F_RUNNING:
            self._running[slot] = running
            f |= F_RUNNING
        if fields & F_KV:
            self._kv[slot] = kv_cache
            f |= F_KV
        self._flags[slot] = f | F_REPORTED
        self._base_ll[slot] = (self._cpu[slot] + self._mem[slot]) * 0.5
        self._base_w[slot] = 0.3 * self._cpu[slot] + 0.2 * self._mem[slot]
        if now > self._last_report[slot] or not (f & F_REPORTED):
            self._last_report[slot] = now
        self._rep_active[slot] = self._active[slot]
        self._stamp(slot, now)
        self._set_health(slot, self._judge(slot))

    cdef void _stamp(self, Py_ssize_t s, double t) noexcept:
        """Set slot ``s``'s report time to ``t`` (its age's origin)."""
        cdef Py_ssize_t i
        cdef double x, f
        if self._inv_decay == 0.0:
            self._rep_scale[s] = 1.0
            return
        x = (t - self._t0) * self._inv_decay
        if x > 300.0:
            # move the reference time forward; scales of much older reports
            # underflow to 0, which is their weight anyway
            f = exp(-x)
            for i in range(self._hw):
                self._rep_scale[i] *= f
            self._t0 = t
            x = 0.0
        elif x < -300.0:
            x = -300.0
        self._rep_scale[s] = exp(x)

    def set_report_decay(self, double decay_s):
        """set_report_decay(decay_s)

        How fast reported figures lose weight: ``exp(-age / decay_s)``
        (> 0; ``inf`` = never).  Reports already held keep their age.
        """
        cdef Py_ssize_t i
        if not (decay_s > 0.0):
            raise ValueError(f"report_decay_s must be > 0, got {decay_s!r}")
        self._decay_s = decay_s
        self._inv_decay = 0.0 if not isfinite(decay_s) else 1.0 / decay_s
        for i in range(self._hw):
            if self._health[i] != H_FREE and self._flags[i] & F_REPORTED:
                self._stamp(i, self._last_report[i])

    @property
    def report_decay_s(self):
        """Reported figures weigh ``exp(-age / report_decay_s)``."""
        return self._decay_s

    def set_profile(self, double count=1.0, double queue=1.0, double utilization=0.0,
                    double kv_cache=1.0, double latency=0.0, double affinity=0.0,
                    bint by_weight=False, picker="min"):
        """set_profile(count=1.0, queue=1.0, utilization=0.0, kv_cache=1.0, latency=0.0, affinity=0.0, by_weight=False, picker="min")

        The ``scored`` strategy's profile: a weight (>= 0, finite) per scorer
        and a picker (``"min"``, ``"two_choices"``, ``"weighted_random"``).
        """
        cdef Py_ssize_t i
        for v, name in ((count, "count"), (queue, "queue"), (utilization, "utilization"),
                        (kv_cache, "kv_cache"), (latency, "latency"), (affinity, "affinity")):
            _check_nonneg(v, name)
        if picker not in PICKERS:
            raise ValueError(f"picker must be one of {sorted(PICKERS)}, got {picker!r}")
        cdef Profile* p = &self._prof[FAM_P]
        p.count = count
        p.queue = queue
        p.utilization = utilization
        p.kv_cache = kv_cache
        p.latency = latency
        p.affinity = affinity
        p.by_weight = by_weight
        p.picker = PICKERS[picker]
        for i in range(self._hw):
            self._rekey(i)

    def set_concurrency(self, Py_ssize_t slot, double concurrency):
        """set_concurrency(slot, concurrency)

        Declare how many tasks the agent serves at full speed (> 0), or 0 to
        follow ``max_tasks`` again.
        """
        self._check(slot)
        _check_nonneg(concurrency, "concurrency")
        if concurrency > 0.0:
            self._flags[slot] |= F_CONC
            self._conc[slot] = concurrency
        else:
            self._flags[slot] &= ~F_CONC
            self._conc[slot] = self._max[slot]
        self._inv_conc[slot] = 1.0 / self._conc[slot]
        self._rekey(slot)

    def set_task_count(self, Py_ssize_t slot, int count):
        """set_task_count(slot, count)

        Overwrite the active task count, 0 <= count <= max_tasks.
        """
        self._check(slot)
        if count < 0 or count > self._max[slot]:
            raise ValueError(
                f"count must be within [0, max_tasks={self._max[slot]}], got {count}")
        self._active[slot] = count
        # an overwrite is a statement of the truth, not a grant: the report's
        # correction starts again from here
        self._rep_active[slot] = count
        self._rekey(slot)

    def set_max_tasks(self, Py_ssize_t slot, int max_tasks):
        """set_max_tasks(slot, max_tasks)

        Change the task capacity (>= the active count).
        """
        self._check(slot)
        _check_max_tasks(max_tasks)
        if max_tasks < self._active[slot]:
            raise ValueError(
                f"max_tasks ({max_tasks}) is below the active task count ({self._active[slot]})")
        self._max[slot] = max_tasks
        self._inv_cap[slot] = 100.0 / max_tasks
        if not (self._flags[slot] & F_CONC):
            self._conc[slot] = max_tasks
            self._inv_conc[slot] = 1.0 / max_tasks
        self._rekey(slot)

    def set_weight(self, Py_ssize_t slot, double weight):
        """set_weight(slot, weight)

        Change the WEIGHTED strategy's weight (> 0).
        """
        self._check(slot)
        _check_weight(weight)
        self._weight[slot] = weight
        self._inv_weight[slot] = 1.0 / weight
        self._rekey(slot)

    cdef int32_t _complete(self, Py_ssize_t s, double duration_s, bint success,
                           double now) noexcept nogil:
        """One finished task: peak EWMA latency (``duration_s >= 0``) and the
        failure streak, which it returns.  Arguments already checked."""
        cdef double w, lat
        if duration_s >= 0.0:
            if self._flags[s] & F_LAT:
                lat = self._lat[s]
                if duration_s > lat:
                    # peak sensitivity: a slow response is believed at once
                    lat = duration_s
                else:
                    w = exp(-(now - self._lat_t[s]) / self.ewma_decay_s) \
                        if now > self._lat_t[s] else 1.0
                    # w = 1 (no time passed) would ignore the sample forever;
                    # give every sample at least a small say
                    if w > 0.9:
                        w = 0.9
                    lat = lat * w + duration_s * (1.0 - w)
                self._lat[s] = lat
            else:
                self._lat[s] = duration_s
                self._flags[s] |= F_LAT
            self._lat_t[s] = now
            if self._lat_any:
                self._lat_mean += 0.1 * (duration_s - self._lat_mean)
            else:
                self._lat_mean = duration_s
                self._lat_any = True
        if self._prof[FAM_P].latency != 0.0:
            self._rekey(s)
        if success:
            self._streak[s] = 0
            self._completed[s] += 1
        else:
            self._streak[s] += 1
            self._failed[s] += 1
        return self._streak[s]

    def record_completion(self, Py_ssize_t slot, double duration_s, bint success,
                          double now):
        """record_completion(slot, duration_s, success, now)

        Feed one finished task into the agent's peak EWMA latency (when
        ``duration_s >= 0``; pass -1 for "unknown") and its failure streak.

        Returns
        -------
        int
            The consecutive failure count after this outcome.
        """
        self._check(slot)
        _check_finite(now, "now")
        if not isfinite(duration_s):
            raise ValueError(f"duration_s must be finite, got {duration_s!r}")
        return self._complete(slot, duration_s, success, now)

    def eject(self, Py_ssize_t slot, double until):
        """eject(slot, until)

        Take the agent out of selection until time ``until``; counts an
        ejection.  Returns the number of times it has been ejected.
        """
        self._check(slot)
        _check_finite(until, "until")
        if self._ejected_until[slot] == -INFINITY:
            self._n_ej += 1
        self._ejected_until[slot] = until
        self._ejections[slot] += 1
        self._streak[slot] = 0
        return self._ejections[slot]

    def unexpire_ejections(self, double now):
        """unexpire_ejections(now)

        Clear the ejections that have ended by ``now``; returns their slots.
        """
        cdef Py_ssize_t i
        out = []
        for i in range(self._hw):
            if self._health[i] != H_FREE and self._ejected_until[i] != -INFINITY \
                    and self._ejected_until[i] <= now:
                self._ejected_until[i] = -INFINITY
                self._n_ej -= 1
                out.append(i)
        return out

    def set_offline(self, Py_ssize_t slot):
        """set_offline(slot)

        Mark the agent OFFLINE (failed over) until it reports usage again or
        :meth:`restore` is called.
        """
        self._check(slot)
        self._flags[slot] |= F_DOWN
        self._set_health(slot, H_OFFLINE)

    def restore(self, Py_ssize_t slot, double now):
        """restore(slot, now)

        Bring an OFFLINE or ejected agent back; its silence clock restarts.
        """
        self._check(slot)
        _check_finite(now, "now")
        self._flags[slot] &= ~(F_STALE | F_DOWN)
        if self._ejected_until[slot] != -INFINITY:
            self._n_ej -= 1
            self._ejected_until[slot] = -INFINITY
        self._streak[slot] = 0
        if now > self._last_report[slot]:
            self._last_report[slot] = now
        self._set_health(slot, self._judge(slot))

    def mark_stale(self, double now, double stale_after_s):
        """mark_stale(now, stale_after_s)

        Mark OFFLINE every agent that has reported usage and been silent for
        longer than ``stale_after_s``; return the slots that just went offline.
        Agents that never reported are not judged.
        """
        cdef Py_ssize_t i
        cdef double limit = now - stale_after_s
        out = []
        for i in range(self._hw):
            if self._health[i] != H_FREE and (self._flags[i] & F_REPORTED) \
                    and not (self._flags[i] & F_STALE) and self._last_report[i] < limit:
                self._flags[i] |= F_STALE
                if self._health[i] != H_OFFLINE:
                    out.append(i)
                self._set_health(i, H_OFFLINE)
        return out

    # -- reservations ---------------------------------------------------------

    cdef inline bint _fits(self, Py_ssize_t s, double rc, double rm, double rn) noexcept nogil:
        # Conservative: reported usage is treated as load outside our
        # reservations, so a request only goes where it certainly fits.
        if rc > 0.0 and self._cpu[s] + self._res_cpu[s] + rc > self._cap_cpu[s]:
            return False
        if rm > 0.0 and self._cap_mem[s] > 0.0 and \
                self._mem[s] * 0.01 * self._cap_mem[s] + self._res_mem[s] + rm > self._cap_mem[s]:
            return False
        if rn > 0.0 and self._cap_net[s] > 0.0 and \
                self._net[s] * 0.01 * self._cap_net[s] + self._res_net[s] + rn > self._cap_net[s]:
            return False
        return True

    cdef inline bint _ok(self, Py_ssize_t s, int min_tier, double now, bint need_fit,
                         double rc, double rm, double rn) noexcept nogil:
        """Eligible at ``min_tier`` (1: any eligible agent, 2: HEALTHY only)?

        The least-loaded key is +inf exactly when the slot is free, OFFLINE or
        full, so one load answers all three; the O(1) strategies then touch
        two or three cache lines per candidate, not six.
        """
        if self._key_ll[s] == INFINITY:
            return False
        if self._n_ej and self._ejected_until[s] > now:
            return False
        if need_fit and not self._fits(s, rc, rm, rn):
            return False
        return min_tier < 2 or self._health[s] == H_HEALTHY

    cdef inline void _rekey(self, Py_ssize_t s) noexcept nogil:
        # The scan keys are kept current here, on every change of load,
        # usage, capacity, weight or health, so that a scan reads a few
        # arrays (_scorers.pxi).  +inf marks a slot that cannot take a task
        # (free, OFFLINE or full).
        cdef int8_t h = self._health[s]
        if h == H_FREE or h == H_OFFLINE or self._active[s] >= self._max[s]:
            self._key_ll[s] = INFINITY
            self._key_w[s] = INFINITY
            self._key_p[s] = INFINITY
            return
        _score(self, s)

    cdef void _hide(self, Py_ssize_t s) noexcept nogil:
        """Make an agent ineligible for the next selection only (a request's
        ``exclude``); :meth:`_rekey` brings it back."""
        self._key_ll[s] = INFINITY
        self._key_w[s] = INFINITY
        self._key_p[s] = INFINITY

    cdef inline void _set_health(self, Py_ssize_t s, int8_t h) noexcept nogil:
        self._health[s] = h
        self._rekey(s)

    cdef inline void _reserve(self, Py_ssize_t s, double rc, double rm, double rn) noexcept nogil:
        self._active[s] += 1
        self._rekey(s)
        self._res_cpu[s] += rc
        self._res_mem[s] += rm
        self._res_net[s] += rn

    def reserve(self, Py_ssize_t slot, double cpu=0.0, double memory_mb=0.0,
                double network_mbps=0.0, double now=0.0):
        """reserve(slot, cpu=0.0, memory_mb=0.0, network_mbps=0.0, now=0.0)

        Take one task slot (and resources) on a specific agent if it is
        eligible now.  Returns True on success, False when it is not eligible.
        """
        self._check(slot)
        _check_request(cpu, memory_mb, network_mbps)
        if not self._ok(slot, 1, now, True, cpu, memory_mb, network_mbps):
            return False
        self._reserve(slot, cpu, memory_mb, network_mbps)
        return True

    cdef int _unreserve(self, Py_ssize_t s, double rc, double rm, double rn) noexcept nogil:
        """Give back one task slot and its resources; -1 if no slot was held
        (the count was overwritten by set_task_count): the resources are
        given back all the same."""
        cdef int held = self._active[s] > 0
        if held:
            self._active[s] -= 1
        # clamp: float round-off must never leave a tiny negative reservation
        self._res_cpu[s] = max(0.0, self._res_cpu[s] - rc)
        self._res_mem[s] = max(0.0, self._res_mem[s] - rm)
        self._res_net[s] = max(0.0, self._res_net[s] - rn)
        self._rekey(s)
        return 0 if held else -1

    def release(self, Py_ssize_t slot, double cpu=0.0, double memory_mb=0.0,
                double network_mbps=0.0):
        """release(slot, cpu=0.0, memory_mb=0.0, network_mbps=0.0)

        Give back one task slot and the resources reserved with it.
        """
        self._check(slot)
        _check_request(cpu, memory_mb, network_mbps)
        if self._unreserve(slot, cpu, memory_mb, network_mbps) < 0:
            raise ValueError(f"slot {slot} has no active task to release")

    # -- selection ------------------------------------------------------------

    cdef Py_ssize_t _select(self, int strategy, bint high, double rc, double rm,
                            double rn, double now, bint reserve) noexcept nogil:
        cdef Py_ssize_t s = -1
        cdef bint need_fit = rc > 0.0 or rm > 0.0 or rn > 0.0
        self._nalt = 0
        self._E = _decay_now(self, now)
        if high:
            # HIGH/CRITICAL: HEALTHY agents with a free slot first ...
            s = _select1(self, strategy, 2, now, need_fit, rc, rm, rn)
        if s < 0:
            # ... and any eligible agent only when there is none
            s = _select1(self, strategy, 1, now, need_fit, rc, rm, rn)
        if s >= 0:
            self._selected[s] += 1
            if reserve:
                self._reserve(s, rc, rm, rn)
        return s

    cpdef Py_ssize_t select(self, int strategy, bint high=False, double cpu=0.0,
                            double memory_mb=0.0, double network_mbps=0.0, double now=0.0,
                            bint reserve=False) except -2:
        """select(strategy, high=False, cpu=0.0, memory_mb=0.0, network_mbps=0.0, now=0.0, reserve=False)

        Choose an eligible agent with one kernel call; optionally reserve it.

        Parameters
        ----------
        strategy : int
            A code from ``STRATEGY_CODES``.
        high : bool
            The request's priority is HIGH or CRITICAL (the health rule).
        cpu, memory_mb, network_mbps : float
            Resources the request needs (0 = none).
        now : float
            The current time, for ejections.
        reserve : bool
            Take the slot (and resources) in the same atomic step.

        Returns
        -------
        int
            The chosen slot, or -1 when no agent is eligible.  The
            alternatives are then available from :meth:`alternatives`.
        """
        if <unsigned int>strategy >= N_STRATEGIES:
            raise ValueError(f"strategy must be a code in [0, {N_STRATEGIES}), got {strategy}")
        if not (cpu >= 0.0 and memory_mb >= 0.0 and network_mbps >= 0.0
                and isfinite(cpu + memory_mb + network_mbps)):
            _check_request(cpu, memory_mb, network_mbps)
        if not isfinite(now):
            raise ValueError(f"now must be finite, got {now!r}")
        return self._select(strategy, high, cpu, memory_mb, network_mbps, now, reserve)

    def decide(self, int strategy, bint high=False, double cpu=0.0, double memory_mb=0.0,
               double network_mbps=0.0, double now=0.0, bint reserve=False):
        """decide(strategy, high=False, cpu=0.0, memory_mb=0.0, network_mbps=0.0, now=0.0, reserve=False)

        :meth:`select`, returning everything a decision record needs in one
        atomic call: ``(agent_id, score, task_load, alternative_ids)``, or
        ``None`` when no agent is eligible.  ``task_load`` is the agent's
        task load in percent before any reservation; ``score`` is the
        strategy's key for the winner (see the class notes).
        """
        cdef Py_ssize_t s = self.select(strategy, high, cpu, memory_mb, network_mbps, now,
                                        reserve)
        if s < 0:
            return None
        return (self._ids[s], self._last_score, self._load_before(s, reserve),
                self._alternative_ids())

    def decision(self, type record, strategy, int code, bint high, double cpu,
                 double memory_mb, double network_mbps, double now, bint reserve,
                 int priority):
        """decision(record, strategy, code, high, cpu, memory_mb, network_mbps, now, reserve, priority)

        :meth:`decide`, returning the decision record itself: an instance of
        the named tuple ``record`` with the fields ``(selected_agent_id,
        strategy, agent_load, alternatives, decision_duration_s, timestamp,
        score, priority, reserved)`` built in C, or ``None`` when no agent is
        eligible.  ``decision_duration_s`` is the time spent in this call.
        """
        cdef double t0 = _mono()
        cdef Py_ssize_t s = self.select(code, high, cpu, memory_mb, network_mbps, now, reserve)
        if s < 0:
            return None
        d = new_record(record, 9)
        put_field(d, 0, self._ids[s])
        put_field(d, 1, strategy)
        put_field(d, 2, self._load_before(s, reserve))
        put_field(d, 3, self._alternative_ids())
        put_field(d, 5, now)
        put_field(d, 6, self._last_score)
        put_field(d, 7, priority)
        put_field(d, 8, reserve)
        put_field(d, 4, _mono() - t0)
        return d

    cdef inline double _load_before(self, Py_ssize_t s, bint reserved) noexcept:
        """The task load (percent) of slot ``s`` before the selection's reservation."""
        return (self._active[s] - (1 if reserved else 0)) * self._inv_cap[s]

    cdef tuple _alternative_ids(self):
        """The ids of the last selection's alternatives (up to three)."""
        cdef int k = self._nalt
        ids = self._ids
        if k == 0:
            return ()
        if k == 1:
            return (ids[self._alt[0]],)
        if k == 2:
            return (ids[self._alt[0]], ids[self._alt[1]])
        return (ids[self._alt[0]], ids[self._alt[1]], ids[self._alt[2]])

    def any_eligible(self, double now):
        """any_eligible(now)

        Whether some agent could take a plain request (no resources, any
        priority) now.  Stops at the first one; does not count a selection.
        """
        cdef Py_ssize_t i
        for i in range(self._hw):
            if self._ok(i, 1, now, False, 0.0, 0.0, 0.0):
                return True
        return False

    def alternatives(self):
        """alternatives()

        The alternative slots of the last :meth:`select` (up to three).
        """
        return tuple([self._alt[j] for j in range(self._nalt)])

    @property
    def last_score(self):
        """The winner's strategy key in the last :meth:`select`."""
        return self._last_score

    def seed(self, seed):
        """seed(seed)

        Reseed the PRNG (an int; reproducible choices and tie-breaks).
        """
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        _rng_seed(&self._rng, <uint64_t>(seed & 0xFFFFFFFFFFFFFFFF))

    def random_below(self, uint64_t n):
        """random_below(n)

        One draw in [0, n) from the table's PRNG (for tests and simulations).
        """
        if n == 0:
            raise ValueError("n must be >= 1")
        return _rng_below(&self._rng, n)

    # -- reading --------------------------------------------------------------

    def health(self, Py_ssize_t slot):
        """health(slot)

        Health code: 0 healthy, 1 degraded, 2 unhealthy, 3 offline.
        """
        self._check(slot)
        return self._health[slot]

    def active(self, Py_ssize_t slot):
        """active(slot)

        Active (reserved) task count.
        """
        self._check(slot)
        return self._active[slot]

    def is_ejected(self, Py_ssize_t slot, double now):
        """is_ejected(slot, now)"""
        self._check(slot)
        return self._ejected_until[slot] > now

    def row(self, Py_ssize_t slot):
        """row(slot)

        Everything known about one agent, as a dict (a copy).
        """
        self._check(slot)
        cdef uint16_t f = self._flags[slot]
        cdef double d = <double>(self._active[slot] - self._rep_active[slot])
        return {
            "agent_id": self._ids[slot],
            "slot": slot,
            "health": self._health[slot],
            "max_tasks": self._max[slot],
            "active": self._active[slot],
            "weight": self._weight[slot],
            "cpu": self._cpu[slot] if f & F_CPU else None,
            "memory": self._mem[slot] if f & F_MEM else None,
            "network": self._net[slot] if f & F_NET else None,
            "reported": bool(f & F_REPORTED),
            "last_report": self._last_report[slot],
            "ejected_until": (None if self._ejected_until[slot] == -INFINITY
                              else self._ejected_until[slot]),
            "ejections": self._ejections[slot],
            "consecutive_failures": self._streak[slot],
            "latency_ewma_s": self._lat[slot] if f & F_LAT else None,
            "cpu_capacity": self._cap_cpu[slot],
            "memory_mb": self._cap_mem[slot],
            "network_mbps": self._cap_net[slot],
            "reserved_cpu": self._res_cpu[slot],
            "reserved_memory_mb": self._res_mem[slot],
            "reserved_network_mbps": self._res_net[slot],
            "concurrency": self._conc[slot],
            "waiting": self._waiting[slot] if f & F_WAITING else None,
            "running": self._running[slot] if f & F_RUNNING else None,
            "kv_cache": self._kv[slot] if f & F_KV else None,
            "estimated_waiting": _est_queue(self, slot, d) if f & F_WAITING else None,
            "estimated_kv_cache": _est_kv(self, slot, d) if f & F_KV else None,
            "selections": self._selected[slot],
            "completed": self._completed[slot],
            "failed": self._failed[slot],
        }

    def selections(self):
        """selections()

        ``{agent_id: selections made}`` for the live agents with at least one.
        """
        cdef Py_ssize_t i
        return {self._ids[i]: self._selected[i] for i in range(self._hw)
                if self._health[i] != H_FREE and self._selected[i]}

    def reset_selections(self):
        """reset_selections()

        Zero every agent's selection count.
        """
        cdef Py_ssize_t i
        for i in range(self._hw):
            self._selected[i] = 0

    def pool_stats(self, double now):
        """pool_stats(now)

        Pool aggregates in one pass, as a dict of numbers (see
        :class:`arbiter_core.resources.ResourcePoolStats`).
        """
        cdef Py_ssize_t i
        cdef int64_t n = 0, busy = 0, idle = 0, tasks = 0, slots = 0, free_slots = 0
        cdef int64_t online = 0, online_slots = 0, online_tasks = 0
        cdef int64_t by_health[4]
        cdef int64_t ejected = 0, ncpu = 0, nmem = 0, nnet = 0, nlat = 0
        cdef double cpu_sum = 0.0, mem_sum = 0.0, net_sum = 0.0, lat_sum = 0.0
        cdef double mem_cap = 0.0, mem_used = 0.0, on_cpu = 0.0, on_mem = 0.0
        cdef int64_t on_ncpu = 0, on_nmem = 0
        cdef int8_t h
        cdef uint16_t f
        cdef int64_t completed = 0, failed = 0
        memset(by_health, 0, sizeof(by_health))
        with nogil:
            for i in range(self._hw):
                h = self._health[i]
                if h == H_FREE:
                    continue
                f = self._flags[i]
                n += 1
                by_health[h] += 1
                tasks += self._active[i]
                slots += self._max[i]
                if self._active[i] > 0:
                    busy += 1
                else:
                    idle += 1
                if h != H_OFFLINE:
                    online += 1
                    online_slots += self._max[i]
                    online_tasks += self._active[i]
                if self._ejected_until[i] > now:
                    ejected += 1
                elif h != H_OFFLINE:
                    free_slots += self._max[i] - self._active[i]
                if f & F_CPU:
                    ncpu += 1
                    cpu_sum += self._cpu[i]
                    if h != H_OFFLINE:
                        on_ncpu += 1
                        on_cpu += self._cpu[i]
                if f & F_MEM:
                    nmem += 1
                    mem_sum += self._mem[i]
                    if h != H_OFFLINE:
                        on_nmem += 1
                        on_mem += self._mem[i]
                    if self._cap_mem[i] > 0.0:
                        mem_used += self._mem[i] * 0.01 * self._cap_mem[i]
                if f & F_NET:
                    nnet += 1
                    net_sum += self._net[i]
                if f & F_LAT:
                    nlat += 1
                    lat_sum += self._lat[i]
                mem_cap += self._cap_mem[i]
                completed += self._completed[i]
                failed += self._failed[i]
        return {
            "total_agents": n, "active_agents": busy, "idle_agents": idle,
            "healthy_agents": by_health[H_HEALTHY], "degraded_agents": by_health[H_DEGRADED],
            "unhealthy_agents": by_health[H_UNHEALTHY], "offline_agents": by_health[H_OFFLINE],
            "ejected_agents": ejected, "tasks_in_progress": tasks, "total_task_slots": slots,
            "available_task_slots": free_slots, "online_agents": online,
            "online_task_slots": online_slots, "online_tasks": online_tasks,
            "cpu_reporting_agents": ncpu, "cpu_percent_sum": cpu_sum,
            "memory_reporting_agents": nmem, "memory_percent_sum": mem_sum,
            "network_reporting_agents": nnet, "network_percent_sum": net_sum,
            "latency_agents": nlat, "latency_sum_s": lat_sum,
            "online_cpu_reporting": on_ncpu, "online_cpu_percent_sum": on_cpu,
            "online_memory_reporting": on_nmem, "online_memory_percent_sum": on_mem,
            "total_memory_mb": mem_cap, "used_memory_mb": mem_used,
            "tasks_completed": completed, "tasks_failed": failed,
        }

    def ineligibility(self, double now):
        """ineligibility(now)

        Why agents cannot take a plain request now: counts of
        ``offline``, ``ejected`` and ``full`` agents (for error messages).
        """
        cdef Py_ssize_t i
        cdef int64_t off = 0, ej = 0, full = 0
        for i in range(self._hw):
            if self._health[i] == H_FREE:
                continue
            if self._health[i] == H_OFFLINE:
                off += 1
            elif self._ejected_until[i] > now:
                ej += 1
            elif self._active[i] >= self._max[i]:
                full += 1
        return {"offline": off, "ejected": ej, "full": full}


# ---------------------------------------------------------------------------
# Argument checks (Python boundary only)

cdef inline int _check_finite(double x, str name) except -1:
    if not isfinite(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return 0


cdef inline int _check_nonneg(double x, str name) except -1:
    if not (isfinite(x) and x >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0, got {x!r}")
    return 0


cdef inline int _check_percent(double x, str name) except -1:
    if not (isfinite(x) and 0.0 <= x <= 100.0):
        raise ValueError(f"{name} must be a percentage within [0, 100], got {x!r}")
    return 0


cdef inline int _check_max_tasks(long n) except -1:
    if n < 1:
        raise ValueError(f"max_tasks must be >= 1, got {n}")
    return 0


cdef inline int _check_weight(double w) except -1:
    if not (isfinite(w) and w > 0.0):
        raise ValueError(f"weight must be finite and > 0, got {w!r}")
    return 0


cdef inline int _check_request(double cpu, double mem, double net) except -1:
    _check_nonneg(cpu, "cpu")
    _check_nonneg(mem, "memory_mb")
    _check_nonneg(net, "network_mbps")
    return 0
