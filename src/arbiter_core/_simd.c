/* SIMD kernels of MetricRing.quantile (see _simd.h). */
#include "_simd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ARB_X86 1
#include <immintrin.h>
#else
#define ARB_X86 0
#endif

/* Key sets larger than this take the scalar scan (one compare per key per vector). */
#define ARB_SIMD_MAXKEYS 16

#if defined(__GNUC__) || defined(__clang__)
#define ARB_INLINE static inline __attribute__((always_inline))
#else
#define ARB_INLINE static inline
#endif

/* ------------------------------------------------------------------------ */
/* Scalar variants (also the tails of the vector loops)                     */

static inline int key_in(int64_t k, const int64_t *keys, ptrdiff_t nkeys) {
    ptrdiff_t lo = 0, hi = nkeys, mid;
    while (lo < hi) {
        mid = (lo + hi) >> 1;
        if (keys[mid] < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nkeys && keys[lo] == k;
}

ARB_INLINE int scan_scalar_body(const double *ts, const int64_t *ks, const double *vs,
                                ptrdiff_t n, double t0, double t1, const int64_t *keys,
                                ptrdiff_t nkeys, int mode, double vlo, double vhi, double *out,
                                ptrdiff_t cap, ptrdiff_t *m, int64_t *below, int64_t *above,
                                int timed) {
    ptrdiff_t i, mm = *m;
    int64_t b = 0, a = 0, k0 = mode == 1 ? keys[0] : 0;
    int match, lt, gt, rc = 0;
    double t, v;
    for (i = 0; i < n; i++) {
        v = vs[i];
        if (mode == 0)
            match = 1;
        else if (mode == 1)
            match = ks[i] == k0;
        else
            match = key_in(ks[i], keys, nkeys);
        if (timed) {
            t = ts[i];
            match &= (t >= t0) & (t <= t1);
        }
        lt = v < vlo;
        gt = v > vhi;
        b += match & lt;
        a += match & gt;
        if (out)
            out[mm] = v; /* branch-free compaction into the slack past mm */
        mm += match & !(lt | gt);
        /* every 8 samples: mm stays within cap + 8 < cap + ARB_SCAN_SLACK */
        if (out && (i & 7) == 7 && mm > cap) {
            rc = -1;
            break;
        }
    }
    if (out && mm > cap)
        rc = -1;
    *m = mm;
    *below += b;
    *above += a;
    return rc;
}

#define SCALAR_CASE(MODE, NK)                                                                  \
    (ts ? (out ? scan_scalar_body(ts, ks, vs, n, t0, t1, keys, NK, MODE, vlo, vhi, out, cap, m, \
                                  below, above, 1)                                             \
               : scan_scalar_body(ts, ks, vs, n, t0, t1, keys, NK, MODE, vlo, vhi, NULL, cap,  \
                                  m, below, above, 1))                                         \
        : (out ? scan_scalar_body(NULL, ks, vs, n, t0, t1, keys, NK, MODE, vlo, vhi, out, cap, \
                                  m, below, above, 0)                                          \
               : scan_scalar_body(NULL, ks, vs, n, t0, t1, keys, NK, MODE, vlo, vhi, NULL, cap, \
                                  m, below, above, 0)))

/* ts == NULL: no time tests (the caller knows no writer ran) */
static int scan_scalar(const double *ts, const int64_t *ks, const double *vs, ptrdiff_t n,
                       double t0, double t1, const int64_t *keys, ptrdiff_t nkeys,
                       int all_keys, double vlo, double vhi, double *out, ptrdiff_t cap,
                       ptrdiff_t *m, int64_t *below, int64_t *above) {
    if (all_keys)
        return SCALAR_CASE(0, 0);
    if (nkeys == 1)
        return SCALAR_CASE(1, 1);
    return ts ? scan_scalar_body(ts, ks, vs, n, t0, t1, keys, nkeys, 2, vlo, vhi, out, cap, m,
                                 below, above, 1)
              : scan_scalar_body(NULL, ks, vs, n, t0, t1, keys, nkeys, 2, vlo, vhi, out, cap, m,
                                 below, above, 0);
}

/* Partition src[0:n] into dst: values < p (<= p when le) fill dst from the
 * front, the others from the back.  Returns the number in front; *umin is
 * the minimum of the back part (+inf if empty).  `h` is the exclusive top. */
static void part_tail(const double *src, ptrdiff_t i, ptrdiff_t n, double p, int le,
                      double *dst, ptrdiff_t *l_, ptrdiff_t *h_, double *mn_) {
    ptrdiff_t l = *l_, h = *h_;
    double mn = *mn_, x;
    int lo;
    for (; i < n; i++) {
        x = src[i];
        lo = le ? x <= p : x < p;
        dst[l] = x; /* both slots are still unfilled, so a spare write is harmless */
        dst[h - 1] = x;
        l += lo;
        h -= !lo;
        mn = (!lo && x < mn) ? x : mn;
    }
    *l_ = l;
    *h_ = h;
    *mn_ = mn;
}

static ptrdiff_t part_scalar(const double *src, ptrdiff_t n, double p, int le, double *dst,
                             double *umin) {
    ptrdiff_t l = 0, h = n;
    double mn = INFINITY;
    part_tail(src, 0, n, p, le, dst, &l, &h, &mn);
    *umin = mn;
    return l;
}

/* ------------------------------------------------------------------------ */
/* AVX2                                                                      */

#if ARB_X86

/* permutevar8x32 indices that move the selected double lanes to the front */
static const int32_t perm4[16][8] __attribute__((aligned(32))) = {
    {0, 0, 0, 0, 0, 0, 0, 0}, {0, 1, 0, 0, 0, 0, 0, 0}, {2, 3, 0, 0, 0, 0, 0, 0},
    {0, 1, 2, 3, 0, 0, 0, 0}, {4, 5, 0, 0, 0, 0, 0, 0}, {0, 1, 4, 5, 0, 0, 0, 0},
    {2, 3, 4, 5, 0, 0, 0, 0}, {0, 1, 2, 3, 4, 5, 0, 0}, {6, 7, 0, 0, 0, 0, 0, 0},
    {0, 1, 6, 7, 0, 0, 0, 0}, {2, 3, 6, 7, 0, 0, 0, 0}, {0, 1, 2, 3, 6, 7, 0, 0},
    {4, 5, 6, 7, 0, 0, 0, 0}, {0, 1, 4, 5, 6, 7, 0, 0}, {2, 3, 4, 5, 6, 7, 0, 0},
    {0, 1, 2, 3, 4, 5, 6, 7}};
/* maskstore masks for the first c lanes */
static const int64_t prefix4[5][4] __attribute__((aligned(32))) = {
    {0, 0, 0, 0}, {-1, 0, 0, 0}, {-1, -1, 0, 0}, {-1, -1, -1, 0}, {-1, -1, -1, -1}};

__attribute__((target("avx2,popcnt"))) ARB_INLINE __m256d
compress4(__m256d v, int mask) {
    __m256i idx = _mm256_load_si256((const __m256i *)perm4[mask]);
    return _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), idx));
}

/* mode: 0 every key, 1 one key, 2 a set of at most ARB_SIMD_MAXKEYS */
__attribute__((target("avx2,popcnt"))) ARB_INLINE int
scan_avx2_body(const double *ts, const int64_t *ks, const double *vs, ptrdiff_t n, double t0,
               double t1, const int64_t *keys, ptrdiff_t nkeys, int mode, double vlo,
               double vhi, double *out, ptrdiff_t cap, ptrdiff_t *m, int64_t *below,
               int64_t *above, int timed) {
    const __m256d vl = _mm256_set1_pd(vlo), vh = _mm256_set1_pd(vhi);
    const __m256d all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    __m256i kv[ARB_SIMD_MAXKEYS];
    __m256i bacc = _mm256_setzero_si256(), aacc = _mm256_setzero_si256();
    __m256d tmin = _mm256_set1_pd(INFINITY), tmax = _mm256_set1_pd(-INFINITY);
    ptrdiff_t i, j, mm = *m, m0 = *m;
    int rc = 0, im;
    int64_t tmp[4] __attribute__((aligned(32)));
    double tlo[4] __attribute__((aligned(32))), thi[4] __attribute__((aligned(32)));
    for (j = 0; j < nkeys && j < ARB_SIMD_MAXKEYS; j++)
        kv[j] = _mm256_set1_epi64x(keys[j]);
    for (i = 0; i + 4 <= n; i += 4) {
        __m256d match, t, v, lt, gt, in;
        if (timed) {
            t = _mm256_loadu_pd(ts + i); /* time: extremes only, as in the AVX-512 scan */
            tmin = _mm256_min_pd(tmin, t);
            tmax = _mm256_max_pd(tmax, t);
        }
        match = all;
        if (mode != 0) {
            __m256i k = _mm256_loadu_si256((const __m256i *)(ks + i));
            __m256i km = _mm256_cmpeq_epi64(k, kv[0]);
            if (mode == 2)
                for (j = 1; j < nkeys; j++)
                    km = _mm256_or_si256(km, _mm256_cmpeq_epi64(k, kv[j]));
            match = _mm256_castsi256_pd(km);
        }
        v = _mm256_loadu_pd(vs + i);
        lt = _mm256_and_pd(match, _mm256_cmp_pd(v, vl, _CMP_LT_OQ));
        gt = _mm256_and_pd(match, _mm256_cmp_pd(v, vh, _CMP_GT_OQ));
        in = _mm256_andnot_pd(_mm256_or_pd(lt, gt), match);
        bacc = _mm256_sub_epi64(bacc, _mm256_castpd_si256(lt)); /* lanes are 0 or -1 */
        aacc = _mm256_sub_epi64(aacc, _mm256_castpd_si256(gt));
        im = _mm256_movemask_pd(in);
        if (out) {
            _mm256_storeu_pd(out + mm, compress4(v, im));
            mm += __builtin_popcount((unsigned)im);
            if (mm > cap) {
                rc = -1;
                break;
            }
        } else {
            mm += __builtin_popcount((unsigned)im);
        }
    }
    _mm256_store_pd(tlo, tmin);
    _mm256_store_pd(thi, tmax);
    for (j = 0; j < 4 && timed; j++) {
        if (tlo[j] < t0 || thi[j] > t1) {
            *m = m0; /* a sample outside the window was read: per-sample tests */
            return scan_scalar(ts, ks, vs, n, t0, t1, keys, nkeys, mode == 0, vlo, vhi, out,
                               cap, m, below, above);
        }
    }
    _mm256_store_si256((__m256i *)tmp, bacc);
    *below += tmp[0] + tmp[1] + tmp[2] + tmp[3];
    _mm256_store_si256((__m256i *)tmp, aacc);
    *above += tmp[0] + tmp[1] + tmp[2] + tmp[3];
    *m = mm;
    if (rc)
        return rc;
    return scan_scalar(timed ? ts + i : NULL, ks + i, vs + i, n - i, t0, t1, keys, nkeys,
                       mode == 0, vlo, vhi, out, cap, m, below, above);
}

#define AVX_CASE(BODY, NK, MODE)                                                               \
    (ts ? BODY(ts, ks, vs, n, t0, t1, keys, NK, MODE, vlo, vhi, out, cap, m, below, above, 1)    \
        : BODY(NULL, ks, vs, n, t0, t1, keys, NK, MODE, vlo, vhi, out, cap, m, below, above, 0))

__attribute__((target("avx2,popcnt"))) static int
scan_avx2(const double *ts, const int64_t *ks, const double *vs, ptrdiff_t n, double t0,
          double t1, const int64_t *keys, ptrdiff_t nkeys, int all_keys, double vlo, double vhi,
          double *out, ptrdiff_t cap, ptrdiff_t *m, int64_t *below, int64_t *above) {
    if (all_keys)
        return AVX_CASE(scan_avx2_body, 0, 0);
    if (nkeys == 1)
        return AVX_CASE(scan_avx2_body, 1, 1);
    if (nkeys == 0 || nkeys > ARB_SIMD_MAXKEYS)
        return scan_scalar(ts, ks, vs, n, t0, t1, keys, nkeys, 0, vlo, vhi, out, cap, m, below,
                           above);
    return AVX_CASE(scan_avx2_body, nkeys, 2);
}

__attribute__((target("avx2,popcnt"))) ARB_INLINE ptrdiff_t
part_avx2_body(const double *src, ptrdiff_t n, double p, int le, double *dst, double *umin) {
    const __m256d pv = _mm256_set1_pd(p), inf = _mm256_set1_pd(INFINITY);
    __m256d mnv = inf;
    ptrdiff_t i, l = 0, h = n;
    double mn, tmp[4] __attribute__((aligned(32)));
    int lo, c;
    for (i = 0; i + 4 <= n; i += 4) {
        __m256d v = _mm256_loadu_pd(src + i);
        __m256d lom = le ? _mm256_cmp_pd(v, pv, _CMP_LE_OQ) : _mm256_cmp_pd(v, pv, _CMP_LT_OQ);
        lo = _mm256_movemask_pd(lom);
        c = __builtin_popcount((unsigned)lo);
        _mm256_maskstore_pd(dst + l, _mm256_load_si256((const __m256i *)prefix4[c]),
                            compress4(v, lo));
        h -= 4 - c;
        _mm256_maskstore_pd(dst + h, _mm256_load_si256((const __m256i *)prefix4[4 - c]),
                            compress4(v, lo ^ 15));
        l += c;
        mnv = _mm256_min_pd(mnv, _mm256_blendv_pd(v, inf, lom));
    }
    _mm256_store_pd(tmp, mnv);
    mn = tmp[0];
    for (c = 1; c < 4; c++)
        mn = tmp[c] < mn ? tmp[c] : mn;
    part_tail(src, i, n, p, le, dst, &l, &h, &mn);
    *umin = mn;
    return l;
}

__attribute__((target("avx2,popcnt"))) static ptrdiff_t
part_avx2(const double *src, ptrdiff_t n, double p, int le, double *dst, double *umin) {
    return le ? part_avx2_body(src, n, p, 1, dst, umin) : part_avx2_body(src, n, p, 0, dst, umin);
}

/* ------------------------------------------------------------------------ */
/* AVX-512                                                                   */

/* One vector of the scan; returns the in-bracket mask.  Ports 0 and 5 bound
 * this loop, so it uses two chained compares (>= vlo, then <= vhi among
 * those) and counts matching and >= vlo lanes with masked adds, leaving the
 * masks in mask registers: below and above follow from those counts. */
__attribute__((target("avx512f,popcnt"))) ARB_INLINE __mmask8
scan8_avx512(const double *ts, const int64_t *ks, const double *vs, const __m512i *kv,
             ptrdiff_t nkeys, int mode, __m512d vl, __m512d vh, __m512i one, __m512d *tmin,
             __m512d *tmax, __m512i *macc, __m512i *gacc, int timed) {
    __mmask8 match = 0xFF, ge;
    __m512d t, v;
    ptrdiff_t j;
    if (mode != 0) {
        __m512i k = _mm512_loadu_si512((const void *)ks);
        match = _mm512_cmpeq_epi64_mask(k, kv[0]);
        if (mode == 2)
            for (j = 1; j < nkeys; j++)
                match |= _mm512_cmpeq_epi64_mask(k, kv[j]);
        *macc = _mm512_mask_add_epi64(*macc, match, *macc, one);
    }
    /* the window's samples are in [t0, t1] unless a writer raced the scan:
     * keep the extremes (cheap) instead of testing every sample (two
     * compares on the busiest port), and check them at the end */
    if (timed) {
        t = _mm512_loadu_pd(ts);
        *tmin = _mm512_min_pd(*tmin, t);
        *tmax = _mm512_max_pd(*tmax, t);
    }
    v = _mm512_loadu_pd(vs);
    ge = _mm512_mask_cmp_pd_mask(match, v, vl, _CMP_GE_OQ);
    *gacc = _mm512_mask_add_epi64(*gacc, ge, *gacc, one);
    return _mm512_mask_cmp_pd_mask(ge, v, vh, _CMP_LE_OQ);
}

__attribute__((target("avx512f,popcnt"))) ARB_INLINE int
scan_avx512_body(const double *ts, const int64_t *ks, const double *vs, ptrdiff_t n, double t0,
                 double t1, const int64_t *keys, ptrdiff_t nkeys, int mode, double vlo,
                 double vhi, double *out, ptrdiff_t cap, ptrdiff_t *m, int64_t *below,
                 int64_t *above, int timed) {
    const __m512d vl = _mm512_set1_pd(vlo), vh = _mm512_set1_pd(vhi);
    const __m512i one = _mm512_set1_epi64(1);
    __m512i kv[ARB_SIMD_MAXKEYS];
    __m512i macc = _mm512_setzero_si512(), gacc = _mm512_setzero_si512();
    __m512d tmin = _mm512_set1_pd(INFINITY), tmax = _mm512_set1_pd(-INFINITY);
    ptrdiff_t i, j, mm = *m, m0 = *m;
    int64_t matched, ge;
    int rc = 0;
    for (j = 0; j < nkeys && j < ARB_SIMD_MAXKEYS; j++)
        kv[j] = _mm512_set1_epi64(keys[j]);
    /* two vectors a step: their masks are independent, only the stores
     * wait for each other's counts */
    for (i = 0; i + 16 <= n; i += 16) {
        __mmask8 in0, in1;
        in0 = scan8_avx512(timed ? ts + i : ts, ks + i, vs + i, kv, nkeys, mode, vl, vh, one,
                           &tmin, &tmax, &macc, &gacc, timed);
        in1 = scan8_avx512(timed ? ts + i + 8 : ts, ks + i + 8, vs + i + 8, kv, nkeys, mode, vl,
                           vh, one, &tmin, &tmax, &macc, &gacc, timed);
        if (out) {
            /* compress in a register and store whole: the memory form of
             * vcompresspd is slow on several cores; out has slack for it */
            _mm512_storeu_pd(out + mm, _mm512_maskz_compress_pd(in0, _mm512_loadu_pd(vs + i)));
            mm += __builtin_popcount((unsigned)in0);
            _mm512_storeu_pd(out + mm,
                             _mm512_maskz_compress_pd(in1, _mm512_loadu_pd(vs + i + 8)));
            mm += __builtin_popcount((unsigned)in1);
            if (mm > cap) {
                rc = -1; /* the caller discards the counts */
                break;
            }
        } else {
            mm += __builtin_popcount((unsigned)in0) + __builtin_popcount((unsigned)in1);
        }
    }
    if (timed && (_mm512_reduce_min_pd(tmin) < t0 || _mm512_reduce_max_pd(tmax) > t1)) {
        /* a sample outside the window was read: redo with per-sample tests */
        *m = m0;
        return scan_scalar(ts, ks, vs, n, t0, t1, keys, nkeys, mode == 0, vlo, vhi, out, cap,
                           m, below, above);
    }
    matched = mode == 0 ? (int64_t)i : _mm512_reduce_add_epi64(macc);
    ge = _mm512_reduce_add_epi64(gacc);
    *below += matched - ge;
    *above += ge - (mm - m0);
    *m = mm;
    if (rc)
        return rc;
    return scan_scalar(timed ? ts + i : NULL, ks + i, vs + i, n - i, t0, t1, keys, nkeys,
                       mode == 0, vlo, vhi, out, cap, m, below, above);
}

__attribute__((target("avx512f,popcnt"))) static int
scan_avx512(const double *ts, const int64_t *ks, const double *vs, ptrdiff_t n, double t0,
            double t1, const int64_t *keys, ptrdiff_t nkeys, int all_keys, double vlo,
            double vhi, double *out, ptrdiff_t cap, ptrdiff_t *m, int64_t *below,
            int64_t *above) {
    if (all_keys)
        return AVX_CASE(scan_avx512_body, 0, 0);
    if (nkeys == 1)
        return AVX_CASE(scan_avx512_body, 1, 1);
    if (nkeys == 0 || nkeys > ARB_SIMD_MAXKEYS)
        return scan_scalar(ts, ks, vs, n, t0, t1, keys, nkeys, 0, vlo, vhi, out, cap, m, below,
                           above);
    return AVX_CASE(scan_avx512_body, nkeys, 2);
}

__attribute__((target("avx512f,popcnt"))) ARB_INLINE ptrdiff_t
part_avx512_body(const double *src, ptrdiff_t n, double p, int le, double *dst, double *umin) {
    const __m512d pv = _mm512_set1_pd(p);
    __m512d mnv = _mm512_set1_pd(INFINITY), v;
    ptrdiff_t i, l = 0, h = n, rem;
    __mmask8 lo, hi, tail;
    int c, hc;
    for (i = 0; i + 8 <= n; i += 8) {
        v = _mm512_loadu_pd(src + i);
        lo = le ? _mm512_cmp_pd_mask(v, pv, _CMP_LE_OQ) : _mm512_cmp_pd_mask(v, pv, _CMP_LT_OQ);
        hi = (__mmask8)~lo;
        c = __builtin_popcount((unsigned)lo);
        hc = 8 - c;
        /* masked whole-register stores write exactly c (hc) doubles */
        _mm512_mask_storeu_pd(dst + l, (__mmask8)((1u << c) - 1), _mm512_maskz_compress_pd(lo, v));
        h -= hc;
        _mm512_mask_storeu_pd(dst + h, (__mmask8)((1u << hc) - 1),
                              _mm512_maskz_compress_pd(hi, v));
        l += c;
        mnv = _mm512_mask_min_pd(mnv, hi, mnv, v);
    }
    rem = n - i;
    if (rem) {
        tail = (__mmask8)((1u << rem) - 1);
        v = _mm512_maskz_loadu_pd(tail, src + i);
        lo = le ? _mm512_mask_cmp_pd_mask(tail, v, pv, _CMP_LE_OQ)
                : _mm512_mask_cmp_pd_mask(tail, v, pv, _CMP_LT_OQ);
        hi = (__mmask8)(~lo & tail);
        c = __builtin_popcount((unsigned)lo);
        hc = (int)rem - c;
        _mm512_mask_storeu_pd(dst + l, (__mmask8)((1u << c) - 1), _mm512_maskz_compress_pd(lo, v));
        h -= hc;
        _mm512_mask_storeu_pd(dst + h, (__mmask8)((1u << hc) - 1),
                              _mm512_maskz_compress_pd(hi, v));
        l += c;
        mnv = _mm512_mask_min_pd(mnv, hi, mnv, v);
    }
    *umin = _mm512_reduce_min_pd(mnv);
    return l;
}

__attribute__((target("avx512f,popcnt"))) static ptrdiff_t
part_avx512(const double *src, ptrdiff_t n, double p, int le, double *dst, double *umin) {
    return le ? part_avx512_body(src, n, p, 1, dst, umin)
              : part_avx512_body(src, n, p, 0, dst, umin);
}

#endif /* ARB_X86 */

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */

typedef int (*scan_fn)(const double *, const int64_t *, const double *, ptrdiff_t, double,
                       double, const int64_t *, ptrdiff_t, int, double, double, double *,
                       ptrdiff_t, ptrdiff_t *, int64_t *, int64_t *);
typedef ptrdiff_t (*part_fn)(const double *, ptrdiff_t, double, int, double *, double *);

static int best_level = -1;
static int cur_level = ARB_SIMD_SCALAR;
static scan_fn cur_scan = scan_scalar;
static part_fn cur_part = part_scalar;

static void detect(void) {
    const char *env;
    best_level = ARB_SIMD_SCALAR;
#if ARB_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("popcnt")) {
        if (__builtin_cpu_supports("avx512f"))
            best_level = ARB_SIMD_AVX512;
        else if (__builtin_cpu_supports("avx2"))
            best_level = ARB_SIMD_AVX2;
    }
#endif
    /* ARBITER_SIMD=0|1|2 caps the level (a switch for debugging and CI) */
    env = getenv("ARBITER_SIMD");
    if (env && env[0] >= '0' && env[0] <= '2' && env[1] == '\0' && env[0] - '0' < best_level)
        best_level = env[0] - '0';
}

int arb_simd_best(void) {
    if (best_level < 0)
        detect();
    return best_level;
}

int arb_simd_set_level(int level) {
    int best = arb_simd_best();
    if (level > best)
        level = best;
    if (level < 0)
        level = 0;
    cur_level = level;
    cur_scan = scan_scalar;
    cur_part = part_scalar;
#if ARB_X86
    if (level == ARB_SIMD_AVX2) {
        cur_scan = scan_avx2;
        cur_part = part_avx2;
    } else if (level == ARB_SIMD_AVX512) {
        cur_scan = scan_avx512;
        cur_part = part_avx512;
    }
#endif
    return cur_level;
}

int arb_simd_level(void) {
    return cur_level;
}

int arb_scan(const double *ts, const int64_t *ks, const double *vs, ptrdiff_t n, double t0,
             double t1, const int64_t *keys, ptrdiff_t nkeys, int all_keys, double vlo,
             double vhi, double *out, ptrdiff_t cap, ptrdiff_t *m, int64_t *below,
             int64_t *above) {
    if (n <= 0)
        return 0;
    return cur_scan(ts, ks, vs, n, t0, t1, keys, nkeys, all_keys, vlo, vhi, out, cap, m, below,
                    above);
}

/* ------------------------------------------------------------------------ */
/* Stratified sample of a window                                             */

static inline uint64_t xorshift(uint64_t *r) {
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    return *r;
}

/* a uniform index in [0, n) (n < 2**32 in practice; a modulo beyond) */
static inline ptrdiff_t rand_below(uint64_t *r, ptrdiff_t n) {
    uint64_t x = xorshift(r);
    if (n < ((ptrdiff_t)1 << 32))
        return (ptrdiff_t)(((x >> 32) * (uint64_t)n) >> 32);
    return (ptrdiff_t)(x % (uint64_t)n);
}

#define ARB_SAMPLE_CHUNK 64

ARB_INLINE ptrdiff_t sample_body(const double *ts, const int64_t *ks, const double *vs,
                                 ptrdiff_t a0, ptrdiff_t len0, ptrdiff_t a2, ptrdiff_t size,
                                 ptrdiff_t count, uint64_t rng, double t0, double t1,
                                 const int64_t *keys, ptrdiff_t nkeys, int mode, double *out) {
    ptrdiff_t pos[ARB_SAMPLE_CHUNK];
    ptrdiff_t c, i, j, p, e, ms = 0;
    uint64_t z;
    int match;
    double t, step = (double)size / (double)count;
    for (c = 0; c < count; c += ARB_SAMPLE_CHUNK) {
        e = count - c < ARB_SAMPLE_CHUNK ? count - c : ARB_SAMPLE_CHUNK;
        /* the positions first (arithmetic only), then the loads, which are
         * then all independent and overlap their cache misses */
        for (i = 0; i < e; i++) {
            /* a uniform position in slice c + i: a counter-based hash (no
             * serial dependency between draws) and floating point (no division) */
            z = (rng + (uint64_t)(c + i)) * 0x9E3779B97F4A7C15ULL;
            z = (z ^ (z >> 29)) * 0xBF58476D1CE4E5B9ULL;
            j = (ptrdiff_t)(((double)(c + i) + (double)(z >> 11) * 0x1p-53) * step);
            j = j < size ? j : size - 1;
            pos[i] = j < len0 ? a0 + j : a2 + (j - len0);
        }
        for (i = 0; i < e; i++) {
            p = pos[i];
            t = ts[p];
            match = mode == 0 ? 1 : mode == 1 ? ks[p] == keys[0] : key_in(ks[p], keys, nkeys);
            out[ms] = vs[p];
            ms += match & (t >= t0) & (t <= t1);
        }
    }
    return ms;
}

ptrdiff_t arb_sample(const double *ts, const int64_t *ks, const double *vs, ptrdiff_t a0,
                     ptrdiff_t len0, ptrdiff_t a2, ptrdiff_t size, ptrdiff_t count, uint64_t seed,
                     double t0, double t1, const int64_t *keys, ptrdiff_t nkeys, int all_keys,
                     double *out) {
    uint64_t rng = seed ? seed : 0x2545F4914F6CDD1DULL;
    if (size <= 0 || count <= 0)
        return 0;
    if (all_keys)
        return sample_body(ts, ks, vs, a0, len0, a2, size, count, rng, t0, t1, keys, 0, 0, out);
    if (nkeys == 1)
        return sample_body(ts, ks, vs, a0, len0, a2, size, count, rng, t0, t1, keys, 1, 1, out);
    return sample_body(ts, ks, vs, a0, len0, a2, size, count, rng, t0, t1, keys, nkeys, 2, out);
}

/* ------------------------------------------------------------------------ */
/* Selection: out-of-place quickselect, ping-ponging between two buffers.    */

static inline double median3(double x, double y, double z) {
    double t;
    if (x > y) {
        t = x;
        x = y;
        y = t;
    }
    if (y > z)
        y = z;
    return x > y ? x : y;
}

double arb_select(double *a, double *scratch, ptrdiff_t n, ptrdiff_t k, double *next) {
    double *src = a, *dst = scratch, *tmp;
    double pivot, um, x, nx = INFINITY; /* nx: least value dropped above the region */
    uint64_t rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    ptrdiff_t c, e, i, j;
    part_fn part = cur_part;
    while (n > 16) {
        pivot = median3(src[rand_below(&rng, n)], src[rand_below(&rng, n)],
                        src[rand_below(&rng, n)]);
        if (n > 256) /* a median of three medians: better splits on large regions */
            pivot = median3(pivot,
                            median3(src[rand_below(&rng, n)], src[rand_below(&rng, n)],
                                    src[rand_below(&rng, n)]),
                            median3(src[rand_below(&rng, n)], src[rand_below(&rng, n)],
                                    src[rand_below(&rng, n)]));
        c = part(src, n, pivot, 0, dst, &um); /* dst[:c] < pivot <= dst[c:n] */
        if (k < c) {
            nx = um < nx ? um : nx;
            n = c;
        } else if (c > 0) {
            /* dst[c:n] >= pivot is a smaller region: go on there */
            k -= c;
            dst += c;
            n -= c;
        } else {
            /* the pivot is the least value: split dst into == pivot (never
             * empty) and > pivot, so that duplicates still make progress */
            e = part(dst, n, pivot, 1, src, &um);
            if (k < e) {
                if (next)
                    *next = k + 1 < e ? pivot : (um < nx ? um : nx);
                return pivot;
            }
            k -= e;
            src += e;
            n -= e;
            continue;
        }
        tmp = src;
        src = dst;
        dst = tmp;
    }
    for (i = 1; i < n; i++) {
        x = src[i];
        j = i - 1;
        while (j >= 0 && src[j] > x) {
            src[j + 1] = src[j];
            j--;
        }
        src[j + 1] = x;
    }
    if (next)
        *next = k + 1 < n ? src[k + 1] : nx;
    return src[k];
}
