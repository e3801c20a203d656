# Columnar metric ring buffer and its window kernels.
#
# Layout: three parallel C arrays (timestamps, keys, values) of fixed capacity,
# kept in time order.  The logical index i (0 = oldest) lives at physical slot
# (start + i) % capacity.  Because the ring is time-ordered, a time window is
# two binary searches, and every kernel below is one pass over that range.
#
# Concurrency: every method that changes the ring runs entirely under the GIL
# and calls no Python code while it mutates, so it is atomic for other Python
# threads, and it bumps the ring's write sequence (a seqlock: odd while a write
# is in progress).  Every query kernel computes from one consistent set of
# samples: it locates its window under the GIL (a _Window: two physical
# segments plus the write sequence read before locating), scans it without the
# GIL, and then checks the sequence.  If a writer ran meanwhile the result is
# thrown away, the window located again and the kernel run once more holding
# the GIL, when no writer can run.  Because a validated window holds exactly
# the samples in [since, until], the kernels test only keys, never times.
# (_set_window_mode(1) switches to copying the window out under the GIL and
# scanning the copy: the alternative, kept for measuring and testing.)

cimport cython
from cpython.long cimport PyLong_CheckExact
from cpython.mem cimport PyMem_Malloc, PyMem_Free, PyMem_RawMalloc, PyMem_RawFree
from libc.float cimport DBL_MAX
from libc.math cimport isfinite, sqrt, NAN, INFINITY, floor, ceil
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stddef cimport ptrdiff_t
from libc.string cimport memcpy
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

import operator
from collections import namedtuple

import numpy as np

__all__ = ["MetricRing", "NamedRecorder", "SeriesHandle", "WindowStats", "monotonic_now",
           "SCAN_NEW_COUNT", "SCAN_EXCEED_COUNT", "SCAN_FIRST_EXCEED_TS", "SCAN_LAST_EXCEED_TS",
           "SCAN_LAST_EXCEED_VALUE", "SCAN_WORST_VALUE", "SCAN_LAST_NEW_TS",
           "SCAN_LAST_NEW_VALUE", "SCAN_COLUMNS", "WIN_COUNT", "WIN_MEAN", "WIN_MIN", "WIN_MAX",
           "WIN_STD", "WIN_FIRST_TS", "WIN_LAST_TS", "WIN_LAST_VALUE", "WIN_SLOPE",
           "WIN_MEAN_TS", "WIN_QUANTILE", "WIN_BEYOND_COUNT", "WIN_COLUMNS"]

# The quantile scan and selection kernels are C with runtime SIMD dispatch
# (_simd.c: scalar, AVX2, AVX-512; the best the CPU supports is used).
cdef extern from "_simd.h" nogil:
    enum: ARB_SCAN_SLACK
    int arb_simd_best() noexcept
    int arb_simd_level() noexcept
    int arb_simd_set_level(int level) noexcept
    int arb_scan(const int64_t* ks, const double* vs, ptrdiff_t n, const int64_t* keys,
                 ptrdiff_t nkeys, int all_keys, double vlo, double vhi, double* out,
                 ptrdiff_t cap, ptrdiff_t* m, int64_t* below, int64_t* above) noexcept
    ptrdiff_t arb_sample(const double* ts, const int64_t* ks, const double* vs, ptrdiff_t a0,
                         ptrdiff_t len0, ptrdiff_t a2, ptrdiff_t size, ptrdiff_t count,
                         uint64_t seed, double t0, double t1, const int64_t* keys,
                         ptrdiff_t nkeys, int all_keys, double* out) noexcept
    double arb_select(double* a, double* scratch, ptrdiff_t n, ptrdiff_t k,
                      double* next) noexcept
    void arb_seq_write_begin(uint64_t* seq) noexcept
    void arb_seq_write_end(uint64_t* seq) noexcept
    uint64_t arb_seq_read_begin(const uint64_t* seq) noexcept
    bint arb_seq_read_ok(const uint64_t* seq, uint64_t s0) noexcept
    ctypedef struct arb_keys:
        int mode
        int64_t one
        const int64_t* keys
        ptrdiff_t nkeys
    ctypedef struct arb_moments:
        int64_t n
        double sum
        double mn
        double mx
    void arb_moments_add(const int64_t* ks, const double* vs, ptrdiff_t n,
                         const arb_keys* sel, arb_moments* acc) noexcept
    double arb_sq_dev(const int64_t* ks, const double* vs, ptrdiff_t n, const arb_keys* sel,
                      double mean) noexcept
    int64_t arb_count_beyond(const int64_t* ks, const double* vs, ptrdiff_t n,
                             const arb_keys* sel, double thr, int above) noexcept
    void arb_sums2(const double* xs, const int64_t* ks, const double* vs, ptrdiff_t n,
                   const arb_keys* sel, int64_t* count, double* sx, double* sv) noexcept
    void arb_comoments(const double* xs, const int64_t* ks, const double* vs, ptrdiff_t n,
                       const arb_keys* sel, double mx, double mv, double* cxv,
                       double* cxx) noexcept
    ptrdiff_t arb_find(const int64_t* ks, ptrdiff_t n, const arb_keys* sel, int last) noexcept

arb_simd_set_level(arb_simd_best())


def _simd_level():
    """The SIMD level the quantile kernels use: 0 scalar, 1 AVX2, 2 AVX-512."""
    return arb_simd_level()


def _simd_best():
    """The best SIMD level this CPU supports (capped by ``ARBITER_SIMD=0|1|2``)."""
    return arb_simd_best()


def _set_simd_level(int level):
    """Use SIMD ``level`` (clamped to what the CPU supports); returns the level in use.

    A test hook: every level gives bit-identical results, so switching while
    another thread computes a quantile is harmless.
    """
    return arb_simd_set_level(level)

WindowStats = namedtuple("WindowStats", "count mean min max std first last")
WindowStats.__doc__ = """Statistics of one series over a time window.

``std`` is the sample standard deviation (ddof=1); it is NaN below two samples,
and every field but ``count`` is NaN for an empty window.
"""


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


def monotonic_now():
    """Read CLOCK_MONOTONIC in seconds, the clock ``record(timestamp=None)`` uses.

    It is the same clock as :func:`time.monotonic` on Linux.
    """
    return _now()


# ---------------------------------------------------------------------------
# Key filters
#
# A query may ask for one key, every key, or a set of keys.  A set is passed
# to the kernels as a sorted int64 array and tested by binary search, which
# stays cheap for the handful of keys a metric type maps to.

cdef inline bint _key_in(int64_t k, const int64_t* keys, Py_ssize_t nkeys) noexcept nogil:
    cdef Py_ssize_t lo = 0, hi = nkeys, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < k:
            lo = mid + 1
        else:
            hi = mid
    return lo < nkeys and keys[lo] == k


cdef inline bint _match(const arb_keys* spec, int64_t k) noexcept nogil:
    # the mode is loop-invariant, so gcc unswitches the scan loops on it
    if spec.mode == 0:
        return True
    if spec.mode == 1:
        return k == spec.one
    return _key_in(k, spec.keys, spec.nkeys)


@cython.final
cdef class _KeyFilter:
    """A parsed ``key=`` argument: all keys, one key, or a sorted set."""
    cdef arb_keys spec
    cdef object arr          # keeps the sorted array alive

    def __cinit__(self, key):
        cdef const int64_t[::1] view
        self.spec.mode = 0
        self.spec.nkeys = 0
        self.spec.keys = NULL
        if key is None:
            return
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            self.spec.mode = 1
            self.spec.one = key
            return
        try:
            arr = np.unique(np.asarray(key, dtype=np.int64).ravel())
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(
                f"key must be None, an int or a sequence of ints, got {key!r}") from None
        self.arr = arr
        self.spec.mode = 2
        self.spec.nkeys = arr.shape[0]
        if self.spec.nkeys:
            view = arr
            self.spec.keys = &view[0]

    cdef inline bint match(self, int64_t k) noexcept nogil:
        return _match(&self.spec, k)


cdef inline double _bound(object x, double default, str name) except? -1.0:
    cdef double v
    if x is None:
        return default
    try:
        v = x
    except TypeError:
        raise TypeError(f"{name} must be a number or None, got {type(x).__name__}") from None
    if v != v:
        raise ValueError(f"{name} must not be NaN")
    return v


# ---------------------------------------------------------------------------
# The window: where a query's samples are, located once under the GIL
#
# Every query kernel takes a _Window: the ring's columns, the window as (at
# most) two physical segments [seg[0], seg[1]) and [seg[2], seg[3]), its time
# bounds, the key selection, and the write sequence read before locating it.
# MetricRing._run locates the window, runs the kernel without the GIL, and
# when the sequence shows that a writer ran meanwhile, locates it again and
# reruns the kernel holding the GIL.  A kernel only reads the ring and writes
# its own context (and caller-owned output), so a discarded run is harmless.

cdef struct _Window:
    const double* ts
    const int64_t* ks
    const double* vs
    Py_ssize_t seg[4]           # physical [seg[0], seg[1]) then [seg[2], seg[3])
    Py_ssize_t size             # samples in the window
    double start                # locate from the first sample at or after start
    double t0                   # the window's time bounds (inclusive)
    double t1
    arb_keys spec
    const uint64_t* seq         # the ring's write sequence (NULL: a private copy)
    uint64_t seq0               # its value (even) read under the GIL before locating
    void* copy                  # the copied columns (window mode 1), or NULL


# A kernel: reads the window, writes ctx; returns < 0 only when out of memory.
ctypedef int (*_WindowKernel)(const _Window* w, void* ctx) noexcept nogil


cdef int _window_mode = 0       # 0: validate with the write sequence, 1: copy out


def _set_window_mode(int mode):
    """Use window mode 0 (validate and retry) or 1 (copy out); returns the previous mode.

    A test and benchmark hook: both modes give the same results (sums may
    differ in the last bit: their eight lanes follow the physical segments).
    """
    global _window_mode
    if mode not in (0, 1):
        raise ValueError(f"mode must be 0 or 1, got {mode}")
    old = _window_mode
    _window_mode = mode
    return old


cdef inline bint _window_consistent(const _Window* w) noexcept nogil:
    """True when no writer changed the ring since the window was located."""
    return w.seq == NULL or arb_seq_read_ok(w.seq, w.seq0)


cdef inline void _window_release(_Window* w) noexcept nogil:
    PyMem_RawFree(w.copy)
    w.copy = NULL


cdef inline void _window_init(_Window* w, double start, double t0, double t1,
                              const arb_keys* spec) noexcept nogil:
    w.start = start
    w.t0 = t0
    w.t1 = t1
    w.spec = spec[0]
    w.copy = NULL
    w.size = 0


cdef inline Py_ssize_t _window_find(const _Window* w, bint last) noexcept nogil:
    """Physical index of the window's first (or last) selected sample, or -1."""
    cdef Py_ssize_t i, h
    if last:
        for h in range(2, -1, -2):
            i = arb_find(w.ks + w.seg[h], w.seg[h + 1] - w.seg[h], &w.spec, 1)
            if i >= 0:
                return w.seg[h] + i
    else:
        for h in range(0, 4, 2):
            i = arb_find(w.ks + w.seg[h], w.seg[h + 1] - w.seg[h], &w.spec, 0)
            if i >= 0:
                return w.seg[h] + i
    return -1


# ---------------------------------------------------------------------------
# Quantile interpolation (selection itself is arb_select in _simd.c)

cdef inline double _lerp(double a, double b, double t) noexcept nogil:
    # numpy's formulation (numpy/lib/_function_base_impl.py::_lerp), so that
    # results agree with numpy.quantile to the last bit
    cdef double d = b - a
    if t >= 0.5:
        return b - d * (1.0 - t)
    return a + d * t


# ---------------------------------------------------------------------------
# MetricRing.quantile: the window scan and the sampled one-pass selection
#
# A scalar q on a large window takes one pass: a random sample of the window
# (only matching samples count) gives two values bracketing the wanted rank
# with high probability; one SIMD pass then counts the matching values below
# and above the bracket and compacts only those inside it, and the answer is
# selected from that small buffer.  When the bracket misses the rank (rare, or
# a value repeated so often that the bracket overflows its buffer) the exact
# full path runs: compact every matching value, then select.

cdef enum:
    _SAMPLE_MIN_WINDOW = 4096   # smaller windows take the full path
    _SAMPLE_MIN = 128           # positions sampled (matching or not), see below,
    _SAMPLE_MAX = 2048          # within these bounds
    _SAMPLE_MIN_MATCH = 24      # fewer matching samples: the full path


# The bracket spans the wanted sample rank +- (_margin_sd standard deviations +
# _margin_slack); a miss costs one more pass.  Tests narrow it to force misses.
cdef double _margin_sd = 3.0
cdef double _margin_slack = 2.0


def _set_quantile_margin(double sd, double slack):
    """Set the sampled quantile's bracket margin; returns the previous (sd, slack).

    A test hook: a narrow margin makes the bracket miss often, which exercises
    the fallback.  Results are exact with any margin.
    """
    global _margin_sd, _margin_slack
    if not (sd >= 0.0 and slack >= 0.0):
        raise ValueError("sd and slack must be >= 0")
    old = (_margin_sd, _margin_slack)
    _margin_sd = sd
    _margin_slack = slack
    return old


cdef int _scan_window(const _Window* w, double vlo, double vhi, double* out, Py_ssize_t cap,
                      ptrdiff_t* m, int64_t* below, int64_t* above) noexcept nogil:
    """arb_scan over both segments; -1 when more than cap values are in [vlo, vhi]."""
    cdef Py_ssize_t h, a
    cdef const int64_t* keys = &w.spec.one if w.spec.mode == 1 else w.spec.keys
    cdef Py_ssize_t nkeys = 1 if w.spec.mode == 1 else w.spec.nkeys
    m[0] = 0
    below[0] = 0
    above[0] = 0
    for h in range(0, 4, 2):
        a = w.seg[h]
        if arb_scan(w.ks + a, w.vs + a, w.seg[h + 1] - a, keys, nkeys, w.spec.mode == 0,
                    vlo, vhi, out, cap, m, below, above) < 0:
            return -1
    return 0


cdef inline double _pick(double* a, double* scratch, Py_ssize_t m, Py_ssize_t k,
                         double frac, bint need_next) noexcept nogil:
    """Order statistic k of a[0:m], interpolated towards k + 1 by frac (numpy's lerp)."""
    cdef double nxt = 0.0
    cdef double v = arb_select(a, scratch, m, k, &nxt if need_next else NULL)
    return _lerp(v, nxt, frac) if need_next else v


cdef inline double _quantile_of(double* a, double* scratch, Py_ssize_t n,
                                double q) noexcept nogil:
    """Quantile ``q`` of a[0:n] (n > 0) by numpy's linear method; reorders a."""
    cdef double h = (n - 1) * q
    cdef Py_ssize_t k = <Py_ssize_t>floor(h)
    cdef double frac = h - k
    return _pick(a, scratch, n, k, frac, frac != 0.0 and k + 1 < n)


cdef int _quantile_full(const _Window* w, Py_ssize_t size, const double* qs, Py_ssize_t nq,
                        double* out, Py_ssize_t* count) noexcept nogil:
    """Compact every matching value, then select each quantile; -1 if out of memory."""
    cdef Py_ssize_t n, i
    cdef ptrdiff_t m
    cdef int64_t b, a
    cdef double* work
    cdef double* scratch
    cdef double* buf = <double*>PyMem_RawMalloc(
        ((3 if nq > 1 else 2) * size + ARB_SCAN_SLACK) * sizeof(double))
    if buf == NULL:
        return -1
    scratch = buf + size + ARB_SCAN_SLACK
    _scan_window(w, -INFINITY, INFINITY, buf, size, &m, &b, &a)
    n = m
    count[0] = n
    if n:
        for i in range(nq):
            if nq > 1:
                work = scratch + size
                memcpy(work, buf, n * sizeof(double))
            else:
                work = buf
            out[i] = _quantile_of(work, scratch, n, qs[i])
    PyMem_RawFree(buf)
    return 0


cdef int _quantile_sampled(const _Window* w, Py_ssize_t size, double q, double* result,
                           Py_ssize_t* count) noexcept nogil:
    """The one-pass sampled quantile: 1 done, 0 missed (take the full path), -1 no memory."""
    cdef double samp[_SAMPLE_MAX]
    cdef double work[_SAMPLE_MAX]
    cdef double scr[_SAMPLE_MAX]
    cdef Py_ssize_t ns, ms, rlo, rhi, cap, n, k
    cdef ptrdiff_t m
    cdef int64_t b, a
    cdef double r, d, vlo = -INFINITY, vhi = INFINITY, h, frac
    cdef double* buf
    cdef bint need_next
    cdef int rc = 0
    # stratified: one random position in each of ns equal slices of the window
    # (no worse than a simple random sample for the bracket, much better on
    # trends, and the ascending addresses are cache friendly)
    # A sample of s matching values leaves a bracket of ~ 6 sqrt(q(1-q)/s) of
    # the window to select from; sampling costs ~ s, selecting ~ window *
    # sqrt(q(1-q)/s).  Their sum is least near s ~ (window sqrt(q(1-q)))^(2/3);
    # the factor is measured (sampling a position costs ~10x scanning one).
    ns = <Py_ssize_t>(1.4 * (size * sqrt(q * (1.0 - q))) ** (2.0 / 3.0))
    ns = _SAMPLE_MIN if ns < _SAMPLE_MIN else (_SAMPLE_MAX if ns > _SAMPLE_MAX else ns)
    ms = arb_sample(w.ts, w.ks, w.vs, w.seg[0], w.seg[1] - w.seg[0], w.seg[2], size, ns, 0x2545F4914F6CDD1DULL ^ <uint64_t>size, w.t0, w.t1,
                    &w.spec.one if w.spec.mode == 1 else w.spec.keys,
                    1 if w.spec.mode == 1 else w.spec.nkeys, w.spec.mode == 0, samp)
    if ms < _SAMPLE_MIN_MATCH:
        return 0
    # sample ranks ~3 standard deviations either side of the wanted one (the
    # sample rank of the wanted quantile is about binomial(ms, q))
    r = q * (ms - 1)
    d = _margin_sd * sqrt(ms * q * (1.0 - q)) + _margin_slack
    rlo = <Py_ssize_t>floor(r - d)
    rhi = <Py_ssize_t>ceil(r + d)
    if rlo >= 0:
        memcpy(work, samp, ms * sizeof(double))
        vlo = arb_select(work, scr, ms, rlo, NULL)
    else:
        rlo = 0
    if rhi < ms:
        memcpy(work, samp, ms * sizeof(double))
        vhi = arb_select(work, scr, ms, rhi, NULL)
    else:
        rhi = ms - 1
    if vlo == vhi:
        # every value in the bracket is vlo: count them, store nothing
        _scan_window(w, vlo, vhi, NULL, 0, &m, &b, &a)
        buf = NULL
    else:
        # twice the expected number of values in the bracket
        cap = 2 * size * (rhi - rlo + 1) // ns + 64
        if cap > size:
            cap = size
        buf = <double*>PyMem_RawMalloc((2 * cap + ARB_SCAN_SLACK) * sizeof(double))
        if buf == NULL:
            return -1
        if _scan_window(w, vlo, vhi, buf, cap, &m, &b, &a) < 0:
            PyMem_RawFree(buf)
            return 0
    n = b + m + a
    count[0] = n
    if n == 0:
        rc = 1
    else:
        h = (n - 1) * q
        k = <Py_ssize_t>floor(h)
        frac = h - k
        need_next = frac != 0.0 and k + 1 < n
        if b <= k and k + need_next < b + m:
            rc = 1
            if buf == NULL:
                result[0] = _lerp(vlo, vlo, frac) if need_next else vlo
            else:
                result[0] = _pick(buf, buf + cap + ARB_SCAN_SLACK, m, k - b, frac, need_next)
    PyMem_RawFree(buf)
    return rc


# ---------------------------------------------------------------------------
# Window kernels of stats, count_beyond, slope and quantile
#
# Each is one C function over a _Window, its per-segment passes in _simd.c
# (SIMD, eight-lane sums, key test only).  Variance and slope take two
# passes, exact about the mean, instead of Welford's per-sample division.

ctypedef struct _StatsCtx:
    arb_moments mom
    double m2
    double first
    double last


cdef int _stats_kernel(const _Window* w, void* p) noexcept nogil:
    cdef _StatsCtx* c = <_StatsCtx*>p
    cdef Py_ssize_t h, a, i
    cdef double mean
    c.mom.n = 0
    c.mom.sum = 0.0
    c.mom.mn = INFINITY
    c.mom.mx = -INFINITY
    c.m2 = 0.0
    for h in range(0, 4, 2):
        a = w.seg[h]
        arb_moments_add(w.ks + a, w.vs + a, w.seg[h + 1] - a, &w.spec, &c.mom)
    if c.mom.n:
        mean = c.mom.sum / c.mom.n
        for h in range(0, 4, 2):
            a = w.seg[h]
            c.m2 += arb_sq_dev(w.ks + a, w.vs + a, w.seg[h + 1] - a, &w.spec, mean)
        # (-1 only in a run a writer raced, whose result is discarded)
        i = _window_find(w, False)
        c.first = w.vs[i] if i >= 0 else NAN
        i = _window_find(w, True)
        c.last = w.vs[i] if i >= 0 else NAN
    return 0


ctypedef struct _BeyondCtx:
    double threshold
    int above
    int64_t n


cdef int _beyond_kernel(const _Window* w, void* p) noexcept nogil:
    cdef _BeyondCtx* c = <_BeyondCtx*>p
    cdef Py_ssize_t h, a
    c.n = 0
    for h in range(0, 4, 2):
        a = w.seg[h]
        c.n += arb_count_beyond(w.ks + a, w.vs + a, w.seg[h + 1] - a, &w.spec, c.threshold,
                                c.above)
    return 0


ctypedef struct _SlopeCtx:
    int64_t n
    double st
    double sv
    double cxy
    double cxx
    double tlo
    double thi


cdef int _slope_kernel(const _Window* w, void* p) noexcept nogil:
    cdef _SlopeCtx* c = <_SlopeCtx*>p
    cdef Py_ssize_t h, a, i
    cdef double mt, mv
    c.n = 0
    c.st = 0.0
    c.sv = 0.0
    c.cxy = 0.0
    c.cxx = 0.0
    for h in range(0, 4, 2):
        a = w.seg[h]
        arb_sums2(w.ts + a, w.ks + a, w.vs + a, w.seg[h + 1] - a, &w.spec, &c.n, &c.st, &c.sv)
    if c.n >= 2:
        # the window is in time order: its time extremes are the first and last match
        i = _window_find(w, False)
        c.tlo = w.ts[i] if i >= 0 else NAN
        i = _window_find(w, True)
        c.thi = w.ts[i] if i >= 0 else NAN
        # second pass about the means: exact co-moments, no cancellation
        mt = c.st / c.n
        mv = c.sv / c.n
        for h in range(0, 4, 2):
            a = w.seg[h]
            arb_comoments(w.ts + a, w.ks + a, w.vs + a, w.seg[h + 1] - a, &w.spec, mt, mv,
                          &c.cxy, &c.cxx)
    return 0


ctypedef struct _QuantileCtx:
    const double* qs
    Py_ssize_t nq
    double* out
    bint scalar_q
    Py_ssize_t count


cdef int _quantile_kernel(const _Window* w, void* p) noexcept nogil:
    cdef _QuantileCtx* c = <_QuantileCtx*>p
    cdef int rc = 0
    c.count = 0
    if w.size == 0 or c.nq == 0:
        return 0
    if c.scalar_q and w.size >= _SAMPLE_MIN_WINDOW:
        rc = _quantile_sampled(w, w.size, c.qs[0], c.out, &c.count)
    if rc == 0:
        rc = _quantile_full(w, w.size, c.qs, c.nq, c.out, &c.count)
    return rc


# ---------------------------------------------------------------------------
# Column layout of the grouped kernels' outputs, named once: the kernels write
# by these names and Python reads by the exported ones (SCAN_*, WIN_*).

cdef enum:
    # group_scan: one row per key, _SCAN_NCOLS columns
    _SCAN_NEW_COUNT = 0         # samples past the watermark
    _SCAN_EXCEED_COUNT = 1      # ... of which beyond the threshold
    _SCAN_FIRST_EXCEED_TS = 2
    _SCAN_LAST_EXCEED_TS = 3
    _SCAN_LAST_EXCEED_VALUE = 4
    _SCAN_WORST_VALUE = 5       # the exceeding value farthest beyond the threshold
    _SCAN_LAST_NEW_TS = 6
    _SCAN_LAST_NEW_VALUE = 7
    _SCAN_NCOLS = 8

cdef enum:
    # group_window: one row per key, _WIN_NCOLS columns
    _WIN_COUNT = 0
    _WIN_MEAN = 1
    _WIN_MIN = 2
    _WIN_MAX = 3
    _WIN_STD = 4                # sample standard deviation (ddof=1)
    _WIN_FIRST_TS = 5
    _WIN_LAST_TS = 6
    _WIN_LAST_VALUE = 7
    _WIN_SLOPE = 8              # least squares, units per second
    _WIN_MEAN_TS = 9
    _WIN_QUANTILE = 10
    _WIN_BEYOND_COUNT = 11      # values beyond the threshold
    _WIN_NCOLS = 12

SCAN_NEW_COUNT = _SCAN_NEW_COUNT
SCAN_EXCEED_COUNT = _SCAN_EXCEED_COUNT
SCAN_FIRST_EXCEED_TS = _SCAN_FIRST_EXCEED_TS
SCAN_LAST_EXCEED_TS = _SCAN_LAST_EXCEED_TS
SCAN_LAST_EXCEED_VALUE = _SCAN_LAST_EXCEED_VALUE
SCAN_WORST_VALUE = _SCAN_WORST_VALUE
SCAN_LAST_NEW_TS = _SCAN_LAST_NEW_TS
SCAN_LAST_NEW_VALUE = _SCAN_LAST_NEW_VALUE
SCAN_COLUMNS = _SCAN_NCOLS
WIN_COUNT = _WIN_COUNT
WIN_MEAN = _WIN_MEAN
WIN_MIN = _WIN_MIN
WIN_MAX = _WIN_MAX
WIN_STD = _WIN_STD
WIN_FIRST_TS = _WIN_FIRST_TS
WIN_LAST_TS = _WIN_LAST_TS
WIN_LAST_VALUE = _WIN_LAST_VALUE
WIN_SLOPE = _WIN_SLOPE
WIN_MEAN_TS = _WIN_MEAN_TS
WIN_QUANTILE = _WIN_QUANTILE
WIN_BEYOND_COUNT = _WIN_BEYOND_COUNT
WIN_COLUMNS = _WIN_NCOLS


# ---------------------------------------------------------------------------
# Per-key accumulator of MetricRing.group_window (see the grouped kernels below)

ctypedef struct _GroupAcc:
    int64_t n
    int64_t beyond
    double t0           # first sample: the origin of the shifted sums
    double v0
    double st           # sums of dt, dv, dt*dt, dt*dv, dv*dv (shifted by t0, v0)
    double sv
    double stt
    double stv
    double svv
    double mn
    double mx
    double last_t
    double last_v


# ---------------------------------------------------------------------------
# MetricRing

@cython.final
cdef class MetricRing:
    """MetricRing(capacity)
    --

    Fixed-capacity, columnar, time-ordered ring of ``(timestamp, key, value)``.

    Parameters
    ----------
    capacity : int
        Number of samples kept; the oldest is overwritten once full.  Memory is
        ``24 * capacity`` bytes plus a constant.

    Notes
    -----
    Timestamps are seconds (float64) on any clock the caller chooses;
    ``timestamp=None`` reads CLOCK_MONOTONIC in C.  Keys are int64 series ids.

    **Out-of-order timestamps.**  The ring always stays sorted by time.  A sample
    older than the newest stored one is inserted at its place in time (stable:
    after samples with the same timestamp), at a cost proportional to the number
    of newer samples.  When the ring is full and the late sample is older than
    everything stored, it is exactly the sample that would be evicted next, so
    it is not stored; it still counts in ``total_recorded`` and is counted in
    ``dropped_late``.  ``late_inserts`` counts the late samples that were stored.

    Examples
    --------
    >>> ring = MetricRing(4)
    >>> for t in range(6):
    ...     ring.record(1, float(t), timestamp=float(t))
    >>> len(ring), ring.total_recorded
    (4, 6)
    >>> ring.stats(1).mean
    3.5
    """

    cdef double* _ts
    cdef int64_t* _keys
    cdef double* _vals
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _start      # physical index of the oldest sample
    cdef Py_ssize_t _count
    cdef uint64_t _seq          # write sequence (seqlock): odd while a writer runs
    cdef readonly uint64_t total_recorded
    cdef readonly uint64_t late_inserts
    cdef readonly uint64_t dropped_late

    def __cinit__(self, capacity):
        cdef Py_ssize_t cap
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if capacity > (1 << 40):
            raise ValueError(f"capacity is too large: {capacity}")
        cap = capacity
        self._ts = <double*>PyMem_Malloc(cap * sizeof(double))
        self._keys = <int64_t*>PyMem_Malloc(cap * sizeof(int64_t))
        self._vals = <double*>PyMem_Malloc(cap * sizeof(double))
        if self._ts == NULL or self._keys == NULL or self._vals == NULL:
            raise MemoryError(f"cannot allocate a ring of {capacity} samples")
        self._cap = cap
        self._start = 0
        self._count = 0

    def __dealloc__(self):
        PyMem_Free(self._ts)
        PyMem_Free(self._keys)
        PyMem_Free(self._vals)

    @property
    def capacity(self):
        """Maximum number of samples kept."""
        return self._cap

    def __len__(self):
        return self._count

    def __repr__(self):
        return (f"MetricRing(capacity={self._cap}, len={self._count}, "
                f"total_recorded={self.total_recorded})")

    # -- writing ------------------------------------------------------------

    cdef inline Py_ssize_t _phys(self, Py_ssize_t i) noexcept nogil:
        cdef Py_ssize_t p = self._start + i
        if p >= self._cap:
            p -= self._cap
        return p

    cdef inline void _put(self, int64_t key, double value, double ts) noexcept nogil:
        """Store one validated sample, keeping time order (the only writer)."""
        arb_seq_write_begin(&self._seq)
        self._put_unsync(key, value, ts)
        arb_seq_write_end(&self._seq)

    cdef inline void _put_unsync(self, int64_t key, double value, double ts) noexcept nogil:
        """_put without the write sequence (a batch bumps it once around its loop)."""
        cdef Py_ssize_t cap = self._cap, n = self._count, pos, prev
        self.total_recorded += 1
        if n and ts < self._ts[self._phys(n - 1)]:
            self._put_late(key, value, ts)
        else:
            pos = self._start + n
            if pos >= cap:
                pos -= cap
            self._ts[pos] = ts
            self._keys[pos] = key
            self._vals[pos] = value
            if n < cap:
                self._count = n + 1
            else:
                prev = self._start + 1
                self._start = 0 if prev == cap else prev

    cdef void _put_late(self, int64_t key, double value, double ts) noexcept nogil:
        cdef Py_ssize_t cap = self._cap, n = self._count, i, src, dst
        if n == cap:
            if ts < self._ts[self._start]:
                self.dropped_late += 1
                return
            # evict the oldest to make room; the late sample is newer than it
            self._start = self._start + 1
            if self._start == cap:
                self._start = 0
            n -= 1
            self._count = n
        # shift the samples newer than ts one slot towards the end
        i = n
        while i > 0:
            src = self._phys(i - 1)
            if self._ts[src] <= ts:
                break
            dst = self._phys(i)
            self._ts[dst] = self._ts[src]
            self._keys[dst] = self._keys[src]
            self._vals[dst] = self._vals[src]
            i -= 1
        dst = self._phys(i)
        self._ts[dst] = ts
        self._keys[dst] = key
        self._vals[dst] = value
        self._count = n + 1
        self.late_inserts += 1

    cpdef void record(self, object key, double value, object timestamp=None) except *:
        """record(key, value, timestamp=None)

        Store one sample in O(1) (O(k) for a sample k places late).

        Parameters
        ----------
        key : int
            Series id (int64).
        value : float
            Must be finite.
        timestamp : float, optional
            Seconds; ``None`` reads CLOCK_MONOTONIC.

        Raises
        ------
        ValueError
            If ``value`` or ``timestamp`` is NaN or infinite; nothing is stored.
        """
        cdef double ts
        cdef int64_t k
        # exact ints take the fast path; anything else must be a true integer
        # (operator.index refuses floats instead of truncating them)
        k = key if PyLong_CheckExact(key) else operator.index(key)
        if not isfinite(value):
            raise ValueError(f"value must be finite, got {value!r}")
        if timestamp is None:
            ts = _now()
        else:
            ts = timestamp
            if not isfinite(ts):
                raise ValueError(f"timestamp must be finite, got {timestamp!r}")
        self._put(k, value, ts)

    cdef inline void record_c(self, int64_t key, double value, double ts) noexcept:
        """C-level record for other Cython code; caller has validated."""
        self._put(key, value, ts)

    def record_many(self, keys, values, timestamps=None):
        """record_many(keys, values, timestamps=None)

        Store a batch in one C loop, all or nothing, atomically with respect
        to other writers.

        Parameters
        ----------
        keys : int or array_like of int
            One key for every value, or a key per value.
        values : array_like of float
        timestamps : float or array_like of float, optional
            One timestamp per value, a single timestamp for all, or ``None``
            (the monotonic clock, read once for the batch).

        Raises
        ------
        ValueError
            On a length mismatch or any non-finite value or timestamp; nothing
            is stored.
        """
        cdef const double[::1] vv
        cdef const int64_t[::1] kv
        cdef const double[::1] tv
        cdef Py_ssize_t n, i
        cdef int64_t one_key = 0
        cdef double one_ts = 0.0
        cdef bint key_scalar, ts_scalar
        varr = np.ascontiguousarray(values, dtype=np.float64)
        if varr.ndim != 1:
            raise ValueError(f"values must be one-dimensional, got shape {varr.shape}")
        n = varr.shape[0]
        if not np.isfinite(varr).all():
            raise ValueError("values must all be finite (found NaN or inf)")
        key_scalar = np.ndim(keys) == 0
        if key_scalar:
            one_key = operator.index(keys)
            kv = np.zeros(1, dtype=np.int64)
        else:
            karr = np.asarray(keys)
            if karr.size and karr.dtype.kind not in "iu":
                raise TypeError(f"keys must be integers, got dtype {karr.dtype}")
            karr = np.ascontiguousarray(karr, dtype=np.int64)
            if karr.shape != (n,):
                raise ValueError(f"keys has shape {karr.shape}, values has ({n},)")
            kv = karr
        ts_scalar = timestamps is None or np.ndim(timestamps) == 0
        if timestamps is None:
            tv = np.zeros(1)      # the clock is read just before the write below
        elif ts_scalar:
            one_ts = float(timestamps)
            if not isfinite(one_ts):
                raise ValueError(f"timestamps must be finite, got {timestamps!r}")
            tv = np.zeros(1)
        else:
            tarr = np.ascontiguousarray(timestamps, dtype=np.float64)
            if tarr.shape != (n,):
                raise ValueError(f"timestamps has shape {tarr.shape}, values has ({n},)")
            if not np.isfinite(tarr).all():
                raise ValueError("timestamps must all be finite (found NaN or inf)")
            tv = tarr
        if n == 0:
            return
        vv = varr
        if timestamps is None:
            # read after validation (numpy may release the GIL meanwhile), so
            # batches from several threads land in time order, never "late"
            one_ts = _now()
        # One C loop that keeps the GIL on purpose: every writer holds it, so
        # a batch is atomic with respect to record() and other batches from
        # other threads (releasing it let concurrent writers corrupt the ring).
        # Readers scanning without the GIL see one write-sequence bump.
        arb_seq_write_begin(&self._seq)
        for i in range(n):
            self._put_unsync(one_key if key_scalar else kv[i], vv[i],
                             one_ts if ts_scalar else tv[i])
        arb_seq_write_end(&self._seq)

    def clear_before(self, double timestamp):
        """Drop every sample with ``timestamp`` strictly older than ``timestamp``.

        Returns
        -------
        int
            How many samples were dropped.
        """
        cdef Py_ssize_t k
        if timestamp != timestamp:
            raise ValueError("timestamp must not be NaN")
        k = self._lower(timestamp)
        arb_seq_write_begin(&self._seq)
        if k == self._count:
            self._start = 0
        else:
            self._start = self._phys(k)
        self._count -= k
        arb_seq_write_end(&self._seq)
        return k

    def clear(self):
        """Drop every sample (``total_recorded`` is kept)."""
        arb_seq_write_begin(&self._seq)
        self._start = 0
        self._count = 0
        arb_seq_write_end(&self._seq)

    # -- searching ----------------------------------------------------------

    cdef inline Py_ssize_t _lower(self, double t) noexcept nogil:
        """First logical index with timestamp >= t."""
        cdef Py_ssize_t lo = 0, hi = self._count, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self._ts[self._phys(mid)] < t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef inline Py_ssize_t _upper(self, double t) noexcept nogil:
        """First logical index with timestamp > t."""
        cdef Py_ssize_t lo = 0, hi = self._count, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self._ts[self._phys(mid)] <= t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    # -- queries ------------------------------------------------------------

    def snapshot(self, since=None, until=None, key=None):
        """snapshot(since=None, until=None, key=None)

        Copy the samples in ``[since, until]`` (inclusive) in time order.

        Parameters
        ----------
        since, until : float, optional
            Inclusive time bounds; ``None`` is unbounded.
        key : int or sequence of int, optional
            Keep only these series.

        Returns
        -------
        (timestamps, keys, values) : tuple of ndarray
            float64, int64 and float64 copies.  O(log n + k).
        """
        cdef Py_ssize_t h, j, m = 0
        cdef _KeyFilter kf = _KeyFilter(key)
        cdef _Window w
        self._query(&w, kf, since, until)
        # located and copied holding the GIL: no writer can run meanwhile
        self._locate(&w, False)
        out_t = np.empty(w.size, dtype=np.float64)
        out_k = np.empty(w.size, dtype=np.int64)
        out_v = np.empty(w.size, dtype=np.float64)
        cdef double[::1] ot = out_t
        cdef int64_t[::1] ok = out_k
        cdef double[::1] ov = out_v
        for h in range(0, 4, 2):
            for j in range(w.seg[h], w.seg[h + 1]):
                if _match(&w.spec, w.ks[j]):
                    ot[m] = w.ts[j]
                    ok[m] = w.ks[j]
                    ov[m] = w.vs[j]
                    m += 1
        if m != w.size:
            return out_t[:m].copy(), out_k[:m].copy(), out_v[:m].copy()
        return out_t, out_k, out_v

    def latest(self, Py_ssize_t count, key=None):
        """latest(count, key=None)

        The newest ``count`` samples (of ``key``), oldest first.

        Returns
        -------
        (timestamps, keys, values) : tuple of ndarray
            At most ``count`` samples; ``count <= 0`` gives empty arrays.
        """
        cdef Py_ssize_t i, p, m = 0, want
        cdef _KeyFilter kf = _KeyFilter(key)
        want = count if count > 0 else 0
        if want > self._count:
            want = self._count
        out_t = np.empty(want, dtype=np.float64)
        out_k = np.empty(want, dtype=np.int64)
        out_v = np.empty(want, dtype=np.float64)
        cdef double[::1] ot = out_t
        cdef int64_t[::1] ok = out_k
        cdef double[::1] ov = out_v
        i = self._count
        while i > 0 and m < want:
            i -= 1
            p = self._phys(i)
            if kf.match(self._keys[p]):
                m += 1
                ot[want - m] = self._ts[p]
                ok[want - m] = self._keys[p]
                ov[want - m] = self._vals[p]
        if m != want:
            return out_t[want - m:].copy(), out_k[want - m:].copy(), out_v[want - m:].copy()
        return out_t, out_k, out_v

    # -- the window (see _Window) ----------------------------------------------

    cdef inline void _segments(self, Py_ssize_t lo, Py_ssize_t hi,
                               Py_ssize_t* seg) noexcept nogil:
        """Physical [seg[0], seg[1]) and [seg[2], seg[3]) covering logical [lo, hi)."""
        cdef Py_ssize_t p0 = self._phys(lo) if hi > lo else 0
        cdef Py_ssize_t n = hi - lo
        seg[0] = p0
        if p0 + n <= self._cap:
            seg[1] = p0 + n
            seg[2] = 0
            seg[3] = 0
        else:
            seg[1] = self._cap
            seg[2] = 0
            seg[3] = p0 + n - self._cap

    cdef int _locate(self, _Window* w, bint copy=True) except -1:
        """Locate w in the ring as it is now (GIL held): [start, t1], two segments.

        In window mode 1 (and with ``copy``) the window's samples are copied
        out, and w points at the copy.
        """
        cdef Py_ssize_t lo, hi, n0
        cdef char* buf
        _window_release(w)
        w.seq = &self._seq
        w.seq0 = arb_seq_read_begin(&self._seq)
        lo = 0 if w.start == -INFINITY else self._lower(w.start)
        hi = self._count if w.t1 == INFINITY else self._upper(w.t1)
        if hi < lo:
            hi = lo
        w.size = hi - lo
        w.ts = self._ts
        w.ks = self._keys
        w.vs = self._vals
        self._segments(lo, hi, w.seg)
        if copy and _window_mode == 1 and w.size:
            # copy the window out while writers are held off, scan the copy
            buf = <char*>PyMem_RawMalloc(w.size * (2 * sizeof(double) + sizeof(int64_t)))
            if buf == NULL:
                raise MemoryError()
            w.copy = buf
            n0 = w.seg[1] - w.seg[0]
            w.ts = <double*>buf
            w.vs = <double*>(buf + w.size * sizeof(double))
            w.ks = <int64_t*>(buf + 2 * w.size * sizeof(double))
            memcpy(<void*>w.ts, self._ts + w.seg[0], n0 * sizeof(double))
            memcpy(<void*>w.vs, self._vals + w.seg[0], n0 * sizeof(double))
            memcpy(<void*>w.ks, self._keys + w.seg[0], n0 * sizeof(int64_t))
            memcpy(<void*>(w.ts + n0), self._ts, (w.size - n0) * sizeof(double))
            memcpy(<void*>(w.vs + n0), self._vals, (w.size - n0) * sizeof(double))
            memcpy(<void*>(w.ks + n0), self._keys, (w.size - n0) * sizeof(int64_t))
            w.seg[0] = 0
            w.seg[1] = w.size
            w.seg[2] = 0
            w.seg[3] = 0
            w.seq = NULL
        return 0

    cdef int _run(self, _Window* w, _WindowKernel kernel, void* ctx) except -1:
        """Locate w and run kernel over it on one consistent set of samples.

        The first run releases the GIL; if a writer changed the ring meanwhile,
        its result is discarded and the kernel runs again on the window located
        anew, holding the GIL (no writer can run, so it cannot be raced).
        Returns the kernel's result; MemoryError when it ran out of memory.
        """
        cdef int rc
        try:
            self._locate(w)
            with nogil:
                rc = kernel(w, ctx)
            if not _window_consistent(w):
                self._locate(w)
                rc = kernel(w, ctx)
        finally:
            _window_release(w)
        if rc < 0:
            raise MemoryError()
        return rc

    cdef inline void _query(self, _Window* w, _KeyFilter kf, since, until) except *:
        """Set up w for a query of kf's keys over [since, until] (None: unbounded).

        w points into kf (a key set's array): the caller keeps kf alive while w is used.
        """
        cdef double t0 = _bound(since, -INFINITY, "since")
        cdef double t1 = _bound(until, INFINITY, "until")
        _window_init(w, t0, t0, t1, &kf.spec)

    def stats(self, key=None, since=None, until=None):
        """stats(key=None, since=None, until=None)

        Count, mean, min, max, sample std, first and last value of a window.

        Returns
        -------
        WindowStats
        """
        cdef _Window w
        cdef _StatsCtx c
        cdef _KeyFilter kf = _KeyFilter(key)   # owns the key set the window points to
        self._query(&w, kf, since, until)
        self._run(&w, _stats_kernel, &c)
        if c.mom.n == 0:
            return WindowStats(0, NAN, NAN, NAN, NAN, NAN, NAN)
        return WindowStats(c.mom.n, c.mom.sum / c.mom.n, c.mom.mn, c.mom.mx,
                           sqrt(c.m2 / (c.mom.n - 1)) if c.mom.n > 1 else NAN,
                           c.first, c.last)

    def quantile(self, key=None, q=0.5, since=None, until=None):
        """quantile(key=None, q=0.5, since=None, until=None)

        Exact quantile(s) of the values in the window, by selection (no sort).

        Parameters
        ----------
        q : float or sequence of float
            In [0, 1]; linear interpolation between order statistics, as
            ``numpy.quantile``'s default.

        Returns
        -------
        float or ndarray
            NaN for an empty window.

        Notes
        -----
        A single ``q`` on a window of 4096 samples or more takes one pass: a
        stratified random sample brackets the wanted rank, one SIMD scan counts
        the values below and above the bracket and keeps those inside, and the
        answer is selected from those (an exact full pass follows in the rare
        case the bracket misses).  Otherwise every matching value is gathered
        and each quantile selected.  The result is exact either way.
        """
        cdef Py_ssize_t nq
        cdef double one_q = 0.0, one_out = NAN
        cdef bint scalar_q = isinstance(q, float) or (
            isinstance(q, int) and not isinstance(q, bool))
        cdef _KeyFilter kf = _KeyFilter(key)
        cdef _Window w
        cdef _QuantileCtx c
        cdef const double[::1] qv
        cdef double[::1] ov
        c.qs = &one_q
        c.out = &one_out
        if scalar_q:
            # fast path without numpy: one float in, one float out
            one_q = q
            if not (0.0 <= one_q <= 1.0):
                raise ValueError(f"q must be within [0, 1], got {q!r}")
            nq = 1
        else:
            qarr = np.atleast_1d(np.asarray(q, dtype=np.float64))
            if qarr.ndim != 1 or not ((qarr >= 0.0) & (qarr <= 1.0)).all():
                raise ValueError(f"q must be within [0, 1], got {q!r}")
            qv = np.ascontiguousarray(qarr)
            nq = qv.shape[0]
            out = np.full(nq, np.nan)
            ov = out
            if nq:
                c.qs = &qv[0]
                c.out = &ov[0]
        c.nq = nq
        c.scalar_q = scalar_q
        self._query(&w, kf, since, until)
        self._run(&w, _quantile_kernel, &c)
        if scalar_q:
            return one_out if c.count else NAN
        if c.count == 0 and nq:
            out[:] = np.nan
        return out

    def count_beyond(self, key=None, double threshold=0.0, bint above=True,
                     since=None, until=None):
        """count_beyond(key=None, threshold=0.0, above=True, since=None, until=None)

        How many values are strictly above (or below) ``threshold``.
        """
        cdef _Window w
        cdef _BeyondCtx c
        if threshold != threshold:
            raise ValueError("threshold must not be NaN")
        c.threshold = threshold
        c.above = above
        cdef _KeyFilter kf = _KeyFilter(key)   # owns the key set the window points to
        self._query(&w, kf, since, until)
        self._run(&w, _beyond_kernel, &c)
        return c.n

    def slope(self, key=None, since=None, until=None):
        """slope(key=None, since=None, until=None)

        Least-squares slope of value against time, in units per second.

        Returns
        -------
        float
            NaN with fewer than two samples or when all share one timestamp.
        """
        cdef _Window w
        cdef _SlopeCtx c
        cdef _KeyFilter kf = _KeyFilter(key)   # owns the key set the window points to
        self._query(&w, kf, since, until)
        self._run(&w, _slope_kernel, &c)
        if c.n < 2 or c.tlo == c.thi or c.cxx <= 0.0:
            return NAN      # one timestamp (or none): no slope is defined
        return c.cxy / c.cxx

    def series(self, key, clock=None):
        """A handle bound to ``key`` whose ``record(value)`` is one C call."""
        return SeriesHandle(self, operator.index(key), clock)

    # -----------------------------------------------------------------------
    # Grouped kernels (used by the RuntimeOptimizer; their kernels are the
    # "Grouped kernels" section below the class)
    #
    # One pass over a time range computes per-key results for every key in
    # the dense range [0, nkeys), so an analysis of many series costs one
    # scan instead of one scan per series.  Keys outside the range are
    # skipped.  Results go into caller-owned arrays: the caller keeps them
    # between analyses (watermarks, cached statistics) and nothing here
    # allocates per key from Python.  Output columns are named by the
    # module's SCAN_* and WIN_* constants.

    def bounds(self):
        """bounds()

        Timestamps of the oldest and the newest stored sample.

        Returns
        -------
        (oldest, newest) : tuple of float
            ``(nan, nan)`` when the ring is empty.
        """
        if self._count == 0:
            return (NAN, NAN)
        return (self._ts[self._start], self._ts[self._phys(self._count - 1)])

    def group_scan(self, double since, double until, double[::1] wm_ts,
                   int64_t[::1] wm_skip, const double[::1] thresholds,
                   const unsigned char[::1] above, double[:, ::1] out):
        """group_scan(since, until, wm_ts, wm_skip, thresholds, above, out)

        Examine the samples no earlier scan has seen, per key, in one pass.

        A per-key watermark ``(wm_ts[k], wm_skip[k])`` says that every sample
        of key ``k`` older than ``wm_ts[k]``, and the first ``wm_skip[k]``
        samples stamped exactly ``wm_ts[k]``, were already examined.  The
        scan covers ``[since, until]`` (inclusive), starts at the oldest
        watermark that is inside that range, reports only samples past the
        watermarks, and then moves the watermarks.  A caller that keeps the
        arrays between calls therefore sees each stored sample once; the
        cost is proportional to the new samples (plus the old ones of any
        key whose watermark lags behind).

        Samples that arrive later than their key's watermark (out of order)
        are not reported; samples with a timestamp after ``until`` are left
        for a later scan.

        Parameters
        ----------
        since, until : float
            The time range (inclusive); ``until`` also caps the watermarks.
        wm_ts : float64 array, shape (nkeys,)
            Watermark timestamps, updated in place; ``-inf`` for a key never
            scanned.
        wm_skip : int64 array, shape (nkeys,)
            Samples at ``wm_ts`` already seen, updated in place.
        thresholds : float64 array, shape (nkeys,)
            Per-key threshold; NaN means the key has none (never exceeds).
        above : uint8 array, shape (nkeys,)
            1 if values strictly above the threshold are bad, 0 if values
            strictly below it are.
        out : float64 array, shape (nkeys, SCAN_COLUMNS), written
            Per key, columns ``SCAN_NEW_COUNT, SCAN_EXCEED_COUNT,
            SCAN_FIRST_EXCEED_TS, SCAN_LAST_EXCEED_TS, SCAN_LAST_EXCEED_VALUE,
            SCAN_WORST_VALUE, SCAN_LAST_NEW_TS, SCAN_LAST_NEW_VALUE`` (NaN
            where undefined).  The worst value is the exceeding value
            farthest beyond the threshold.

        Returns
        -------
        int
            Number of samples looked at (new or not).
        """
        cdef Py_ssize_t nkeys = wm_ts.shape[0], k
        cdef double start_t = INFINITY, w_k
        cdef _Window w
        cdef _ScanCtx c
        cdef arb_keys every
        if since != since or until != until:
            raise ValueError("since and until must not be NaN")
        if (wm_skip.shape[0] != nkeys or thresholds.shape[0] != nkeys
                or above.shape[0] != nkeys):
            raise ValueError(
                f"wm_skip, thresholds and above must have {nkeys} entries like wm_ts")
        if out.shape[0] != nkeys or out.shape[1] != _SCAN_NCOLS:
            raise ValueError(f"out must have shape ({nkeys}, {_SCAN_NCOLS}), got "
                             f"({out.shape[0]}, {out.shape[1]})")
        if nkeys == 0:
            return 0
        for k in range(nkeys):
            w_k = wm_ts[k] if wm_ts[k] > since else since
            if w_k < start_t:
                start_t = w_k
        c.nkeys = nkeys
        c.since = since
        c.until = until
        c.wm_ts = &wm_ts[0]
        c.wm_skip = &wm_skip[0]
        c.thresholds = &thresholds[0]
        c.above = &above[0]
        c.out = &out[0, 0]
        c.stride = out.strides[0] // sizeof(double)
        c.cur_ts = <double*>PyMem_Malloc(nkeys * sizeof(double))
        c.cur_n = <int64_t*>PyMem_Malloc(nkeys * sizeof(int64_t))
        try:
            if c.cur_ts == NULL or c.cur_n == NULL:
                raise MemoryError()
            every.mode = 0
            _window_init(&w, start_t, since, until, &every)
            self._run(&w, _scan_kernel, &c)
            # move the watermarks only now, from the run that was consistent
            for k in range(nkeys):
                if c.cur_ts[k] != wm_ts[k] or c.cur_n[k] > 0:
                    wm_ts[k] = c.cur_ts[k]
                    wm_skip[k] = c.cur_n[k]
        finally:
            PyMem_Free(c.cur_ts)
            PyMem_Free(c.cur_n)
        return w.size

    def group_window(self, double since, double until, const unsigned char[::1] mask,
                     const double[::1] thresholds, const unsigned char[::1] above,
                     double q, double[:, ::1] out):
        """group_window(since, until, mask, thresholds, above, q, out)

        Window statistics of many series in one pass (two with a quantile).

        For every key ``k`` in ``[0, nkeys)`` with ``mask[k]`` set, the
        samples in ``[since, until]`` (inclusive) give one row of ``out``;
        rows of unmasked keys are left untouched, so a caller can keep
        cached rows and refresh only the series that changed.

        Parameters
        ----------
        since, until : float
            Inclusive time bounds.
        mask : uint8 array, shape (nkeys,)
            Which keys to compute.
        thresholds : float64 array, shape (nkeys,)
            For the ``beyond`` count; NaN counts nothing.
        above : uint8 array, shape (nkeys,)
            Direction of each threshold (1: above is bad).
        q : float
            Quantile to compute per key, in [0, 1], as ``numpy.quantile``'s
            default (linear); NaN skips it (and the second pass).
        out : float64 array, shape (nkeys, WIN_COLUMNS), written for masked keys
            Columns ``WIN_COUNT, WIN_MEAN, WIN_MIN, WIN_MAX, WIN_STD`` (ddof=1),
            ``WIN_FIRST_TS, WIN_LAST_TS, WIN_LAST_VALUE, WIN_SLOPE`` (units
            per second, least squares), ``WIN_MEAN_TS, WIN_QUANTILE,
            WIN_BEYOND_COUNT``.  NaN where undefined: everything but the
            counts for an empty series, the std below two samples, the slope
            below two distinct timestamps.

        Notes
        -----
        Moments use sums shifted by each series' first sample, which keeps
        them precise for large epoch timestamps.  The scan is one pass over the
        ring; with a quantile it also gathers the selected values (scratch of
        two words per selected sample, freed on return), so selecting a few
        series costs one cheap pass plus work proportional to their samples.
        """
        cdef Py_ssize_t nkeys = mask.shape[0], i, k, m
        cdef bint want_q = q == q
        cdef _Window w
        cdef _GroupCtx c
        cdef arb_keys every
        cdef int64_t* off = NULL
        cdef double* buf = NULL
        if since != since or until != until:
            raise ValueError("since and until must not be NaN")
        if want_q and not (0.0 <= q <= 1.0):
            raise ValueError(f"q must be within [0, 1] or NaN, got {q!r}")
        if thresholds.shape[0] != nkeys or above.shape[0] != nkeys:
            raise ValueError(f"thresholds and above must have {nkeys} entries like mask")
        if out.shape[0] != nkeys or out.shape[1] != _WIN_NCOLS:
            raise ValueError(f"out must have shape ({nkeys}, {_WIN_NCOLS}), got "
                             f"({out.shape[0]}, {out.shape[1]})")
        if nkeys >= 2147483647:
            raise ValueError(f"too many keys: {nkeys}")
        if nkeys == 0:
            return
        c.nkeys = nkeys
        c.mask = &mask[0]
        c.thresholds = &thresholds[0]
        c.above = &above[0]
        c.out = &out[0, 0]
        c.stride = out.strides[0] // sizeof(double)
        c.want_q = want_q
        c.tk = NULL
        c.tv = NULL
        c.gather_cap = 0
        c.gathered = 0
        every.mode = 0
        _window_init(&w, since, since, until, &every)
        c.acc = <_GroupAcc*>PyMem_Malloc(nkeys * sizeof(_GroupAcc))
        try:
            if c.acc == NULL:
                raise MemoryError()
            if want_q:
                off = <int64_t*>PyMem_RawMalloc((nkeys + 1) * sizeof(int64_t))
                if off == NULL:
                    raise MemoryError()
            self._run(&w, _group_kernel, &c)
            m = c.gathered
            if want_q and m > 0:
                # the values sorted by key, then a scratch region for arb_select
                buf = <double*>PyMem_RawMalloc(2 * m * sizeof(double))
                if buf == NULL:
                    raise MemoryError()
                with nogil:
                    # counting sort of the gathered values by key, then select
                    off[0] = 0
                    for k in range(nkeys):
                        off[k + 1] = off[k] + c.acc[k].n
                        c.acc[k].n = off[k]            # reused as the fill position
                    for i in range(m):
                        k = c.tk[i]
                        buf[c.acc[k].n] = c.tv[i]
                        c.acc[k].n += 1
                    for k in range(nkeys):
                        if off[k + 1] > off[k]:
                            out[k, _WIN_QUANTILE] = _quantile_of(
                                buf + off[k], buf + m, off[k + 1] - off[k], q)
        finally:
            PyMem_Free(c.acc)
            PyMem_RawFree(c.tk)
            PyMem_RawFree(c.tv)
            PyMem_RawFree(off)
            PyMem_RawFree(buf)


# ---------------------------------------------------------------------------
# Grouped kernels (MetricRing.group_scan, MetricRing.group_window)

ctypedef struct _ScanCtx:
    Py_ssize_t nkeys
    double since
    double until
    const double* wm_ts         # watermarks: read here, moved by group_scan afterwards
    const int64_t* wm_skip
    const double* thresholds
    const unsigned char* above
    double* out                 # rows of _SCAN_NCOLS, `stride` doubles apart
    Py_ssize_t stride
    double* cur_ts              # the new watermarks
    int64_t* cur_n


cdef int _scan_kernel(const _Window* w, void* p) noexcept nogil:
    """group_scan over the window: per-key rows of the samples past the watermarks."""
    cdef _ScanCtx* c = <_ScanCtx*>p
    cdef Py_ssize_t k, h, j, i
    cdef int64_t key
    cdef double ts, x, thr
    cdef double* row
    cdef bint up
    for k in range(c.nkeys):
        c.cur_ts[k] = c.wm_ts[k]
        c.cur_n[k] = 0
        row = c.out + k * c.stride
        row[_SCAN_NEW_COUNT] = 0.0
        row[_SCAN_EXCEED_COUNT] = 0.0
        for i in range(2, _SCAN_NCOLS):
            row[i] = NAN
    for h in range(0, 4, 2):
        for j in range(w.seg[h], w.seg[h + 1]):
            key = w.ks[j]
            if key < 0 or key >= c.nkeys:
                continue
            k = <Py_ssize_t>key
            ts = w.ts[j]
            # the window starts at the oldest watermark: skip what this key has seen
            if ts < c.wm_ts[k]:
                continue
            # samples are in time order, so a key's timestamps never go back
            if ts == c.cur_ts[k]:
                c.cur_n[k] += 1
            else:
                c.cur_ts[k] = ts
                c.cur_n[k] = 1
            if ts == c.wm_ts[k] and c.cur_n[k] <= c.wm_skip[k]:
                continue
            x = w.vs[j]
            row = c.out + k * c.stride
            row[_SCAN_NEW_COUNT] += 1.0
            row[_SCAN_LAST_NEW_TS] = ts
            row[_SCAN_LAST_NEW_VALUE] = x
            thr = c.thresholds[k]
            up = c.above[k] != 0
            if (x > thr) if up else (x < thr):
                row[_SCAN_EXCEED_COUNT] += 1.0
                if row[_SCAN_EXCEED_COUNT] == 1.0:
                    row[_SCAN_FIRST_EXCEED_TS] = ts
                    row[_SCAN_WORST_VALUE] = x
                elif (x > row[_SCAN_WORST_VALUE]) if up else (x < row[_SCAN_WORST_VALUE]):
                    row[_SCAN_WORST_VALUE] = x
                row[_SCAN_LAST_EXCEED_TS] = ts
                row[_SCAN_LAST_EXCEED_VALUE] = x
    return 0


ctypedef struct _GroupCtx:
    Py_ssize_t nkeys
    const unsigned char* mask
    const double* thresholds
    const unsigned char* above
    double* out                 # rows of _WIN_NCOLS, `stride` doubles apart
    Py_ssize_t stride
    _GroupAcc* acc
    bint want_q                 # gather the values (keys in tk, values in tv)
    int32_t* tk
    double* tv
    Py_ssize_t gather_cap
    Py_ssize_t gathered


cdef int _group_kernel(const _Window* w, void* p) noexcept nogil:
    """group_window's pass: per-key sums, rows written, values gathered for quantiles."""
    cdef _GroupCtx* c = <_GroupCtx*>p
    cdef Py_ssize_t h, j, m = 0
    cdef int64_t key
    cdef double ts, x, dt, dv
    cdef _GroupAcc* a
    if c.want_q and w.size > c.gather_cap:
        PyMem_RawFree(c.tk)
        PyMem_RawFree(c.tv)
        c.tk = <int32_t*>PyMem_RawMalloc(w.size * sizeof(int32_t))
        c.tv = <double*>PyMem_RawMalloc(w.size * sizeof(double))
        c.gather_cap = w.size
        if c.tk == NULL or c.tv == NULL:
            c.gather_cap = 0
            return -1
    for j in range(c.nkeys):
        c.acc[j].n = 0
        c.acc[j].beyond = 0
    for h in range(0, 4, 2):
        for j in range(w.seg[h], w.seg[h + 1]):
            key = w.ks[j]
            if key < 0 or key >= c.nkeys or not c.mask[key]:
                continue
            ts = w.ts[j]
            x = w.vs[j]
            a = &c.acc[key]
            if a.n == 0:
                a.t0 = ts
                a.v0 = x
                a.st = 0.0
                a.sv = 0.0
                a.stt = 0.0
                a.stv = 0.0
                a.svv = 0.0
                a.mn = x
                a.mx = x
            else:
                a.mn = x if x < a.mn else a.mn
                a.mx = x if x > a.mx else a.mx
            a.n += 1
            a.last_t = ts
            a.last_v = x
            a.beyond += (x > c.thresholds[key]) if c.above[key] else (x < c.thresholds[key])
            dt = ts - a.t0
            dv = x - a.v0
            a.st += dt
            a.sv += dv
            a.stt += dt * dt
            a.stv += dt * dv
            a.svv += dv * dv
            if c.want_q:
                c.tk[m] = <int32_t>key
                c.tv[m] = x
                m += 1
    c.gathered = m
    for j in range(c.nkeys):
        if c.mask[j]:
            _group_row(&c.acc[j], c.out + j * c.stride)
    return 0


cdef void _group_row(const _GroupAcc* a, double* row) noexcept nogil:
    """Write one group_window output row from its accumulator."""
    cdef double n, mt, mv, var, cxx
    cdef Py_ssize_t j
    row[_WIN_COUNT] = <double>a.n
    row[_WIN_BEYOND_COUNT] = <double>a.beyond
    for j in range(_WIN_MEAN, _WIN_BEYOND_COUNT):
        row[j] = NAN
    if a.n == 0:
        return
    n = <double>a.n
    mt = a.st / n
    mv = a.sv / n
    row[_WIN_MEAN] = a.v0 + mv
    row[_WIN_MIN] = a.mn
    row[_WIN_MAX] = a.mx
    row[_WIN_FIRST_TS] = a.t0
    row[_WIN_LAST_TS] = a.last_t
    row[_WIN_LAST_VALUE] = a.last_v
    row[_WIN_MEAN_TS] = a.t0 + mt
    if a.n > 1:
        var = (a.svv - a.sv * mv) / (n - 1.0)
        row[_WIN_STD] = sqrt(var) if var > 0.0 else 0.0
        cxx = a.stt - a.st * mt
        if cxx > 0.0:
            row[_WIN_SLOPE] = (a.stv - a.st * mv) / cxx


cdef inline int _store_checked(MetricRing ring, int64_t key, double value, object timestamp,
                               object now_fn) except -1:
    """Validate a sample, resolve its time (C clock or ``now_fn()``) and store it."""
    cdef double ts
    if not isfinite(value):
        raise ValueError(f"value must be finite, got {value!r}")
    if timestamp is None:
        ts = _now() if now_fn is None else now_fn()
    else:
        ts = timestamp
    if not isfinite(ts):
        raise ValueError(f"timestamp must be finite, got {timestamp!r}")
    ring._put(key, value, ts)
    return 0


cdef class SeriesHandle:
    """SeriesHandle(ring, key, clock=None)
    --

    A ring pre-bound to one series key: ``handle.record(value)`` validates the
    value, reads the time and stores the sample without touching a dict.

    Parameters
    ----------
    ring : MetricRing
    key : int
    clock : object with ``now()``, optional
        ``None`` reads CLOCK_MONOTONIC in C; otherwise ``clock.now()`` is called.
    """
    cdef readonly MetricRing ring
    cdef readonly int64_t key
    cdef readonly object clock
    cdef object _now_fn

    def __cinit__(self, MetricRing ring not None, int64_t key, clock=None):
        self.ring = ring
        self.key = key
        self.clock = clock
        self._now_fn = None if clock is None else clock.now

    cpdef void record(self, double value, object timestamp=None) except *:
        """record(value, timestamp=None)

        Store ``value`` now (or at ``timestamp``) in this series.
        """
        _store_checked(self.ring, self.key, value, timestamp, self._now_fn)

    def __repr__(self):
        return f"SeriesHandle(key={self.key})"


cdef class NamedRecorder:
    """NamedRecorder(ring, keys, slow, clock=None, enum_cls=None)
    --

    The hot path of ``PerformanceMonitor.record_metric`` in C: one lookup of
    ``(metric type value, source)`` in the monitor's interning dict and one
    store.  Everything unusual -- a series not interned yet, a value or
    timestamp that is not a plain float, an unhashable argument -- is handed
    to ``slow`` (the monitor's full Python path), so validation and error
    messages stay in one place.

    Parameters
    ----------
    ring : MetricRing
    keys : dict
        ``{(metric type value, source): ring key}``, shared with the monitor
        (new series it interns are seen at once).
    slow : callable
        ``slow(metric_type, value, source, timestamp)``.
    clock : object with ``now()``, optional
        ``None`` reads CLOCK_MONOTONIC in C.
    enum_cls : type, optional
        Members of this enum are looked up by their ``_value_``.
    """
    cdef readonly MetricRing ring
    cdef dict _keys
    cdef object _slow
    cdef object _now_fn
    cdef object _enum_cls

    def __cinit__(self, MetricRing ring not None, dict keys not None, slow, clock=None,
                  enum_cls=None):
        self.ring = ring
        self._keys = keys
        self._slow = slow
        self._now_fn = None if clock is None else clock.now
        self._enum_cls = enum_cls

    def retarget(self, MetricRing ring not None):
        """retarget(ring)

        Record into ``ring`` from now on (after its owner resized), so that a
        ``record`` method bound before keeps storing where it should.
        """
        self.ring = ring

    def record(self, metric_type, value, source="system", timestamp=None):
        """record(metric_type, value, source="system", timestamp=None)

        Store one sample; see ``PerformanceMonitor.record_metric``.
        """
        cdef object name = metric_type
        cdef object key
        if type(value) is not float or (timestamp is not None and type(timestamp) is not float):
            return self._slow(metric_type, value, source, timestamp)
        if type(metric_type) is self._enum_cls:
            # an enum member's own hash goes through a Python-level slot;
            # its str value hashes in C and is the interning key anyway
            name = metric_type._value_
        try:
            key = self._keys.get((name, source))
        except TypeError:           # unhashable: the slow path names the argument
            key = None
        if key is None:
            return self._slow(metric_type, value, source, timestamp)
        _store_checked(self.ring, key, value, timestamp, self._now_fn)
