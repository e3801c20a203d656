# The request type's C layout, so the allocation core (_alloc.pyx) reads a
# request's fields as C values instead of Python attributes.  An
# implementation detail: Python code uses the attributes documented in
# _request.pyx.

from libc.stdint cimport uint64_t


cdef class AllocationRequest:
    cdef readonly str request_id
    cdef readonly str task_id
    cdef readonly object priority           # TaskPriority, or an int in [0, 100]
    cdef readonly double timeout_s
    cdef readonly object required_resources  # ResourceRequirements or None
    cdef readonly object metadata            # read-only mapping or None
    cdef readonly object requested_at        # float / int or None
    cdef readonly bint movable
    cdef readonly object exclude             # frozenset of str or None
    cdef readonly str tenant
    cdef readonly double cost
    cdef readonly str affinity_key           # or None
    # the prefix's block hashes as native uint64 words (None: no prefix);
    # immutable, hashable, and readable from C without a Python call per block
    cdef readonly bytes prefix_bytes
    # C copies of what the core reads
    cdef int c_prio
    cdef double c_cpu, c_mem, c_net
    cdef bint _ready

    cdef tuple _key(self)
    cdef int _set_resources(self, object res) except -1


cdef inline const uint64_t* prefix_blocks(AllocationRequest r, Py_ssize_t* n) noexcept:
    """The prefix as a C array of ``n[0]`` block hashes (NULL, 0: none)."""
    if r.prefix_bytes is None:
        n[0] = 0
        return NULL
    n[0] = len(r.prefix_bytes) // 8
    return <const uint64_t*><const char*>r.prefix_bytes
