/* SIMD kernels of MetricRing's queries, with runtime dispatch.
 *
 * Each kernel has a portable scalar variant and, on x86-64 with GCC or Clang,
 * AVX2 and AVX-512 variants compiled with per-function target attributes, so
 * the extension still runs on any x86-64 (no -march flags).  The level is
 * chosen once, from what the CPU (and OS) support, the first time
 * arb_simd_level() or arb_simd_set_level() is called; tests may lower it.
 *
 * No kernel allocates, calls Python, or needs the GIL.
 */
#ifndef ARBITER_SIMD_H
#define ARBITER_SIMD_H

#include <stddef.h>
#include <stdint.h>

#define ARB_SIMD_SCALAR 0
#define ARB_SIMD_AVX2 1
#define ARB_SIMD_AVX512 2

/* Extra doubles a scan output buffer needs past its capacity (whole-vector stores). */
#define ARB_SCAN_SLACK 16

/* The best level this CPU supports (detected once). */
int arb_simd_best(void);
/* The level in use. */
int arb_simd_level(void);
/* Use `level` (clamped to [0, best]); returns the level now in use. */
int arb_simd_set_level(int level);

/* One pass over n samples (ks, vs: parallel arrays) of a window whose samples
 * are all in its time range (the ring locates it and validates the pass with
 * its write sequence), so only keys are tested.  A sample *matches* when its
 * key is in keys[0:nkeys] (every key if all_keys).
 * Matching values below vlo are counted in *below, above vhi in *above, and
 * the rest are appended to out[*m:] (any order), incrementing *m.
 *
 * out must have room for cap + ARB_SCAN_SLACK doubles.  Returns 0, or -1
 * (stopping early) once *m would exceed cap.  With out == NULL the in-bracket
 * values are only counted (cap is ignored).  The counts accumulate, so a
 * window made of two segments is two calls. */
int arb_scan(const int64_t *ks, const double *vs, ptrdiff_t n, const int64_t *keys,
             ptrdiff_t nkeys, int all_keys, double vlo, double vhi, double *out, ptrdiff_t cap,
             ptrdiff_t *m, int64_t *below, int64_t *above);

/* A stratified random sample of a window of `size` samples laid out as
 * physical [a0, a0 + len0) then [a2, ...): one position drawn in each of
 * `count` equal slices.  The values of the positions that match (as in
 * arb_scan) go to out[0:count]; returns how many.  Deterministic in seed. */
ptrdiff_t arb_sample(const double *ts, const int64_t *ks, const double *vs, ptrdiff_t a0,
                     ptrdiff_t len0, ptrdiff_t a2, ptrdiff_t size, ptrdiff_t count,
                     uint64_t seed, double t0, double t1, const int64_t *keys, ptrdiff_t nkeys,
                     int all_keys, double *out);

/* The k-th smallest of a[0:n] (0 <= k < n); a and scratch (n doubles each,
 * disjoint) are clobbered.  When next is not NULL and k + 1 < n, *next is set
 * to the (k+1)-th smallest.  Values must not be NaN. */
double arb_select(double *a, double *scratch, ptrdiff_t n, ptrdiff_t k, double *next);

/* A ring's write sequence (a seqlock): a writer makes it odd while it changes
 * samples; a reader that saw the same even value before and after a nogil
 * scan knows no sample changed meanwhile, so its result is consistent. */
static inline void arb_seq_write_begin(uint64_t *seq) {
    __atomic_store_n(seq, *seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}
static inline void arb_seq_write_end(uint64_t *seq) {
    __atomic_store_n(seq, *seq + 1, __ATOMIC_RELEASE);
}
static inline uint64_t arb_seq_read_begin(const uint64_t *seq) {
    return __atomic_load_n(seq, __ATOMIC_ACQUIRE);
}
/* true when no writer was active at s0 and none has run since */
static inline int arb_seq_read_ok(const uint64_t *seq, uint64_t s0) {
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return !(s0 & 1) && __atomic_load_n(seq, __ATOMIC_RELAXED) == s0;
}

/* ---- Window kernels of MetricRing.stats, count_beyond and slope ----------
 *
 * Each takes one contiguous segment of a window whose samples are all in it
 * (the ring locates the window and validates the scan with its write
 * sequence), so only the key is tested.  Results accumulate across calls, so
 * a window of two segments is two calls.  Floating-point sums are kept in
 * eight lanes (sample i of a segment goes to lane i % 8) and reduced in a
 * fixed order, so every SIMD level gives bit-identical results. */

/* The series a query selects: every key, one key or a sorted set. */
typedef struct {
    int mode;              /* 0: every key, 1: `one`, 2: keys[0:nkeys] (sorted) */
    int64_t one;
    const int64_t *keys;
    ptrdiff_t nkeys;
} arb_keys;

typedef struct {
    int64_t n;             /* matching samples */
    double sum, mn, mx;    /* their sum, minimum and maximum (mn = +inf, mx = -inf if none) */
} arb_moments;

/* Adds the matching samples of vs[0:n] to acc (initialise with n = 0, sum = 0,
 * mn = +inf, mx = -inf). */
void arb_moments_add(const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel,
                     arb_moments *acc);
/* Sum of (v - mean)^2 over the matching samples. */
double arb_sq_dev(const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel,
                  double mean);
/* Matching samples strictly above thr (above != 0) or strictly below it. */
int64_t arb_count_beyond(const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel,
                         double thr, int above);
/* Count, sum of xs and sum of vs over the matching samples (accumulated). */
void arb_sums2(const double *xs, const int64_t *ks, const double *vs, ptrdiff_t n,
               const arb_keys *sel, int64_t *count, double *sx, double *sv);
/* Sums of (x - mx)(v - mv) and (x - mx)^2 over the matching samples (accumulated). */
void arb_comoments(const double *xs, const int64_t *ks, const double *vs, ptrdiff_t n,
                   const arb_keys *sel, double mx, double mv, double *cxv, double *cxx);
/* Index of the first (last != 0: the last) matching sample of ks[0:n], or -1. */
ptrdiff_t arb_find(const int64_t *ks, ptrdiff_t n, const arb_keys *sel, int last);

#endif
