# Small C helpers shared by the Cython modules (inlined into each).

from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_SET_ITEM


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec* tp)
    int CLOCK_MONOTONIC


cdef extern from "Python.h":
    # tp_alloc of a tuple subclass, which is what tuple.__new__(cls, ...) does
    # inside: a named tuple is built without an intermediate tuple or a frame
    object PyType_GenericAlloc(type tp, Py_ssize_t nitems)


cdef inline double monotonic() noexcept nogil:
    """CLOCK_MONOTONIC in seconds (what time.monotonic and perf_counter read)."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef inline object new_record(type tp, Py_ssize_t n):
    """An empty instance of the named tuple ``tp`` with ``n`` fields; fill
    every field with :func:`put_field` before anyone sees it."""
    return PyType_GenericAlloc(tp, n)


cdef inline void put_field(object t, Py_ssize_t k, object v):
    Py_INCREF(v)
    PyTuple_SET_ITEM(t, k, v)
