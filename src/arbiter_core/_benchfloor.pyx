# Physical floors for the benchmarks: the least the ring's operations can cost.
#
# Private; shipped only so that `benchmarks/` can compare MetricRing against
# compiled code built with the same compiler and directives.  Nothing here
# validates its input or keeps time order: each method is the bare minimum of
# what the corresponding MetricRing operation must do.

from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.stdint cimport int64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

__all__ = ["RecordFloor"]


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef inline double _sum(const double* a, Py_ssize_t n) noexcept nogil:
    # four independent accumulators: the loop is bound by loads, not by the
    # latency of one long chain of dependent additions
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        s0 += a[i]
        s1 += a[i + 1]
        s2 += a[i + 2]
        s3 += a[i + 3]
        i += 4
    while i < n:
        s0 += a[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


cdef class RecordFloor:
    """RecordFloor(capacity)
    --

    Columnar arrays of ``capacity`` samples with nothing but a write cursor.

    Parameters
    ----------
    capacity : int
        Number of slots (>= 1); the cursor wraps.
    """

    cdef double* _ts
    cdef int64_t* _keys
    cdef double* _vals
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _pos
    cdef readonly Py_ssize_t written

    def __cinit__(self, Py_ssize_t capacity):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._ts = <double*>PyMem_Malloc(capacity * sizeof(double))
        self._keys = <int64_t*>PyMem_Malloc(capacity * sizeof(int64_t))
        self._vals = <double*>PyMem_Malloc(capacity * sizeof(double))
        if self._ts == NULL or self._keys == NULL or self._vals == NULL:
            raise MemoryError()
        self._cap = capacity
        self._pos = 0
        self.written = 0

    def __dealloc__(self):
        PyMem_Free(self._ts)
        PyMem_Free(self._keys)
        PyMem_Free(self._vals)

    cpdef void record(self, int64_t key, double value) noexcept:
        """record(key, value)

        Read CLOCK_MONOTONIC and store ``(now, key, value)`` at the cursor.
        """
        cdef Py_ssize_t p = self._pos
        self._ts[p] = _now()
        self._keys[p] = key
        self._vals[p] = value
        p += 1
        self._pos = 0 if p == self._cap else p
        self.written += 1

    def record_many(self, int64_t key, const double[::1] values):
        """record_many(key, values)

        Store a batch under one clock reading (one nogil loop).
        """
        cdef Py_ssize_t i, p = self._pos, n = values.shape[0]
        cdef double t
        with nogil:
            t = _now()
            for i in range(n):
                self._ts[p] = t
                self._keys[p] = key
                self._vals[p] = values[i]
                p += 1
                if p == self._cap:
                    p = 0
        self._pos = p
        self.written += n

    def window_sum(self, Py_ssize_t n):
        """window_sum(n)

        Sum the values of the newest ``n`` slots: one nogil pass over at most
        two contiguous segments, the floor of every window kernel (stats,
        quantile, count_beyond, slope).
        """
        cdef Py_ssize_t start
        cdef double s
        if n < 0 or n > self._cap:
            raise ValueError(f"n must be within [0, {self._cap}], got {n}")
        with nogil:
            start = self._pos - n
            if start >= 0:
                s = _sum(self._vals + start, n)
            else:
                s = _sum(self._vals + self._cap + start, -start) + _sum(self._vals, self._pos)
        return s

    def value_at(self, Py_ssize_t i):
        """value_at(i)

        The value stored in slot ``i`` (for checking what was written).
        """
        if i < 0 or i >= self._cap:
            raise IndexError(i)
        return self._vals[i]
