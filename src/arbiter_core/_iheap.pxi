# One indexed binary min-heap, used by the allocation core for the tenants'
# queues, the deadline heap and the heap of backlogged tenants (included by
# _alloc.pyx; the heaps differ only in where their items keep key and
# position, so there is one set of sift routines).
#
# Items are int32 indices into an array of structs (records or tenants)
# that may move when it grows: the heap holds the address of the array
# pointer (`base`), the struct size, and the offsets of the item's key (an
# HKey) and of its position (an int32, -1 while not in the heap).  Every
# routine keeps `pos` exact, so an item leaves the heap from anywhere in
# O(log n): no stale entries, no compaction.

from cpython.mem cimport PyMem_Realloc
from libc.stdint cimport int32_t, int64_t


cdef struct HKey:
    # compared as (a, b, c): records use (key, 0, sequence number); tenants
    # use (start tag, their head's key, its sequence number)
    double a
    double b
    int64_t c


cdef struct IHeap:
    int32_t* items
    Py_ssize_t n
    Py_ssize_t cap
    char** base             # address of the struct array's pointer
    Py_ssize_t stride       # sizeof the struct
    Py_ssize_t koff         # offset of its HKey
    Py_ssize_t poff         # offset of its int32 position


cdef inline void ih_init(IHeap* h, char** base, Py_ssize_t stride, Py_ssize_t koff,
                         Py_ssize_t poff) noexcept nogil:
    h.items = NULL
    h.n = h.cap = 0
    h.base = base
    h.stride = stride
    h.koff = koff
    h.poff = poff


cdef inline bint hk_less(const HKey* x, const HKey* y) noexcept nogil:
    return x.a < y.a or (x.a == y.a and (x.b < y.b or (x.b == y.b and x.c < y.c)))


cdef inline HKey* ih_key(const IHeap* h, int32_t x) noexcept nogil:
    return <HKey*>(h.base[0] + x * h.stride + h.koff)


cdef inline int32_t* ih_pos(const IHeap* h, int32_t x) noexcept nogil:
    return <int32_t*>(h.base[0] + x * h.stride + h.poff)


cdef inline bint ih_less(const IHeap* h, int32_t x, int32_t y) noexcept nogil:
    return hk_less(ih_key(h, x), ih_key(h, y))


cdef void ih_up(IHeap* h, Py_ssize_t k) noexcept nogil:
    cdef int32_t x = h.items[k]
    cdef Py_ssize_t p
    while k > 0:
        p = (k - 1) >> 1
        if not ih_less(h, x, h.items[p]):
            break
        h.items[k] = h.items[p]
        ih_pos(h, h.items[k])[0] = <int32_t>k
        k = p
    h.items[k] = x
    ih_pos(h, x)[0] = <int32_t>k


cdef void ih_down(IHeap* h, Py_ssize_t k) noexcept nogil:
    cdef int32_t x = h.items[k]
    cdef Py_ssize_t c, n = h.n
    while True:
        c = 2 * k + 1
        if c >= n:
            break
        if c + 1 < n and ih_less(h, h.items[c + 1], h.items[c]):
            c += 1
        if not ih_less(h, h.items[c], x):
            break
        h.items[k] = h.items[c]
        ih_pos(h, h.items[k])[0] = <int32_t>k
        k = c
    h.items[k] = x
    ih_pos(h, x)[0] = <int32_t>k


cdef int ih_reserve(IHeap* h, Py_ssize_t first_cap) except -1:
    """Room for one more item (the only routine that may fail)."""
    cdef Py_ssize_t n
    cdef int32_t* p
    if h.n == h.cap:
        n = h.cap * 2 if h.cap else first_cap
        p = <int32_t*>PyMem_Realloc(h.items, <size_t>n * sizeof(int32_t))
        if p == NULL:
            raise MemoryError("cannot grow an allocator heap")
        h.items = p
        h.cap = n
    return 0


cdef inline void ih_push(IHeap* h, int32_t x) noexcept nogil:
    """Add ``x`` (room made by ih_reserve)."""
    h.items[h.n] = x
    h.n += 1
    ih_up(h, h.n - 1)


cdef void ih_remove(IHeap* h, int32_t x) noexcept nogil:
    cdef int32_t* px = ih_pos(h, x)
    cdef Py_ssize_t k = px[0]
    cdef int32_t y
    px[0] = -1
    h.n -= 1
    if k != h.n:
        y = h.items[h.n]
        h.items[k] = y
        ih_pos(h, y)[0] = <int32_t>k
        ih_up(h, k)
        ih_down(h, ih_pos(h, y)[0])


cdef inline void ih_fix(IHeap* h, int32_t x) noexcept nogil:
    """Restore the order after ``x``'s key changed (no-op when not in it)."""
    cdef Py_ssize_t k = ih_pos(h, x)[0]
    if k >= 0:
        ih_up(h, k)
        ih_down(h, ih_pos(h, x)[0])


cdef int ih_check(const IHeap* h, str what) except -1:
    """Positions and order (for the invariant checks); AssertionError naming
    ``what`` at the first broken rule."""
    cdef Py_ssize_t k
    for k in range(h.n):
        if ih_pos(h, h.items[k])[0] != k:
            raise AssertionError(f"{what} position {k} out of step")
        if k and ih_less(h, h.items[k], h.items[(k - 1) >> 1]):
            raise AssertionError(f"{what} order broken at {k}")
    return 0
