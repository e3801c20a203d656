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

ARB_INLINE int scan_scalar_body(const int64_t *ks, const double *vs, ptrdiff_t n,
                                const int64_t *keys, ptrdiff_t nkeys, int mode, double vlo,
                                double vhi, double *out, ptrdiff_t cap, ptrdiff_t *m,
                                int64_t *below, int64_t *above) {
    ptrdiff_t i, mm = *m;
    int64_t b = 0, a = 0, k0 = mode == 1 ? keys[0] : 0;
    int match, lt, gt, rc = 0;
    double v;
    for (i = 0; i < n; i++) {
        v = vs[i];
        if (mode == 0)
            match = 1;
        else if (mode == 1)
            match = ks[i] == k0;
        else
            match = key_in(ks[i], keys, nkeys);
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
    (out ? scan_scalar_body(ks, vs, n, keys, NK, MODE, vlo, vhi, out, cap, m, below, above)    \
         : scan_scalar_body(ks, vs, n, keys, NK, MODE, vlo, vhi, NULL, cap, m, below, above))

static int scan_scalar(const int64_t *ks, const double *vs, ptrdiff_t n, const int64_t *keys,
                       ptrdiff_t nkeys, int all_keys, double vlo, double vhi, double *out,
                       ptrdiff_t cap, ptrdiff_t *m, int64_t *below, int64_t *above) {
    if (all_keys)
        return SCALAR_CASE(0, 0);
    if (nkeys == 1)
        return SCALAR_CASE(1, 1);
    return scan_scalar_body(ks, vs, n, keys, nkeys, 2, vlo, vhi, out, cap, m, below, above);
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
scan_avx2_body(const int64_t *ks, const double *vs, ptrdiff_t n, const int64_t *keys,
               ptrdiff_t nkeys, int mode, double vlo, double vhi, double *out, ptrdiff_t cap,
               ptrdiff_t *m, int64_t *below, int64_t *above) {
    const __m256d vl = _mm256_set1_pd(vlo), vh = _mm256_set1_pd(vhi);
    const __m256d all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    __m256i kv[ARB_SIMD_MAXKEYS];
    __m256i bacc = _mm256_setzero_si256(), aacc = _mm256_setzero_si256();
    ptrdiff_t i, j, mm = *m;
    int rc = 0, im;
    int64_t tmp[4] __attribute__((aligned(32)));
    for (j = 0; j < nkeys && j < ARB_SIMD_MAXKEYS; j++)
        kv[j] = _mm256_set1_epi64x(keys[j]);
    for (i = 0; i + 4 <= n; i += 4) {
        __m256d match, v, lt, gt, in;
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
    _mm256_store_si256((__m256i *)tmp, bacc);
    *below += tmp[0] + tmp[1] + tmp[2] + tmp[3];
    _mm256_store_si256((__m256i *)tmp, aacc);
    *above += tmp[0] + tmp[1] + tmp[2] + tmp[3];
    *m = mm;
    if (rc)
        return rc;
    return scan_scalar(ks + i, vs + i, n - i, keys, nkeys, mode == 0, vlo, vhi, out, cap, m,
                       below, above);
}

#define AVX_CASE(BODY, NK, MODE)                                                               \
    BODY(ks, vs, n, keys, NK, MODE, vlo, vhi, out, cap, m, below, above)

__attribute__((target("avx2,popcnt"))) static int
scan_avx2(const int64_t *ks, const double *vs, ptrdiff_t n, const int64_t *keys,
          ptrdiff_t nkeys, int all_keys, double vlo, double vhi, double *out, ptrdiff_t cap,
          ptrdiff_t *m, int64_t *below, int64_t *above) {
    if (all_keys)
        return AVX_CASE(scan_avx2_body, 0, 0);
    if (nkeys == 1)
        return AVX_CASE(scan_avx2_body, 1, 1);
    if (nkeys == 0 || nkeys > ARB_SIMD_MAXKEYS)
        return scan_scalar(ks, vs, n, keys, nkeys, 0, vlo, vhi, out, cap, m, below, above);
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
scan8_avx512(const int64_t *ks, const double *vs, const __m512i *kv, ptrdiff_t nkeys, int mode,
             __m512d vl, __m512d vh, __m512i one, __m512i *macc, __m512i *gacc) {
    __mmask8 match = 0xFF, ge;
    __m512d v;
    ptrdiff_t j;
    if (mode != 0) {
        __m512i k = _mm512_loadu_si512((const void *)ks);
        match = _mm512_cmpeq_epi64_mask(k, kv[0]);
        if (mode == 2)
            for (j = 1; j < nkeys; j++)
                match |= _mm512_cmpeq_epi64_mask(k, kv[j]);
        *macc = _mm512_mask_add_epi64(*macc, match, *macc, one);
    }
    v = _mm512_loadu_pd(vs);
    ge = _mm512_mask_cmp_pd_mask(match, v, vl, _CMP_GE_OQ);
    *gacc = _mm512_mask_add_epi64(*gacc, ge, *gacc, one);
    return _mm512_mask_cmp_pd_mask(ge, v, vh, _CMP_LE_OQ);
}

__attribute__((target("avx512f,popcnt"))) ARB_INLINE int
scan_avx512_body(const int64_t *ks, const double *vs, ptrdiff_t n, const int64_t *keys,
                 ptrdiff_t nkeys, int mode, double vlo, double vhi, double *out, ptrdiff_t cap,
                 ptrdiff_t *m, int64_t *below, int64_t *above) {
    const __m512d vl = _mm512_set1_pd(vlo), vh = _mm512_set1_pd(vhi);
    const __m512i one = _mm512_set1_epi64(1);
    __m512i kv[ARB_SIMD_MAXKEYS];
    __m512i macc = _mm512_setzero_si512(), gacc = _mm512_setzero_si512();
    ptrdiff_t i, j, mm = *m, m0 = *m;
    int64_t matched, ge;
    int rc = 0;
    for (j = 0; j < nkeys && j < ARB_SIMD_MAXKEYS; j++)
        kv[j] = _mm512_set1_epi64(keys[j]);
    /* two vectors a step: their masks are independent, only the stores
     * wait for each other's counts */
    for (i = 0; i + 16 <= n; i += 16) {
        __mmask8 in0, in1;
        in0 = scan8_avx512(ks + i, vs + i, kv, nkeys, mode, vl, vh, one, &macc, &gacc);
        in1 = scan8_avx512(ks + i + 8, vs + i + 8, kv, nkeys, mode, vl, vh, one, &macc, &gacc);
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
    matched = mode == 0 ? (int64_t)i : _mm512_reduce_add_epi64(macc);
    ge = _mm512_reduce_add_epi64(gacc);
    *below += matched - ge;
    *above += ge - (mm - m0);
    *m = mm;
    if (rc)
        return rc;
    return scan_scalar(ks + i, vs + i, n - i, keys, nkeys, mode == 0, vlo, vhi, out, cap, m,
                       below, above);
}

__attribute__((target("avx512f,popcnt"))) static int
scan_avx512(const int64_t *ks, const double *vs, ptrdiff_t n, const int64_t *keys,
            ptrdiff_t nkeys, int all_keys, double vlo, double vhi, double *out, ptrdiff_t cap,
            ptrdiff_t *m, int64_t *below, int64_t *above) {
    if (all_keys)
        return AVX_CASE(scan_avx512_body, 0, 0);
    if (nkeys == 1)
        return AVX_CASE(scan_avx512_body, 1, 1);
    if (nkeys == 0 || nkeys > ARB_SIMD_MAXKEYS)
        return scan_scalar(ks, vs, n, keys, nkeys, 0, vlo, vhi, out, cap, m, below, above);
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

typedef int (*scan_fn)(const int64_t *, const double *, ptrdiff_t, const int64_t *, ptrdiff_t,
                       int, double, double, double *, ptrdiff_t, ptrdiff_t *, int64_t *,
                       int64_t *);
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

int arb_scan(const int64_t *ks, const double *vs, ptrdiff_t n, const int64_t *keys,
             ptrdiff_t nkeys, int all_keys, double vlo, double vhi, double *out, ptrdiff_t cap,
             ptrdiff_t *m, int64_t *below, int64_t *above) {
    if (n <= 0)
        return 0;
    return cur_scan(ks, vs, n, keys, nkeys, all_keys, vlo, vhi, out, cap, m, below, above);
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

/* ------------------------------------------------------------------------ */
/* Window kernels: stats, count_beyond, slope (see _simd.h)                 */
/*                                                                          */
/* Sums live in eight lanes: sample i of a segment goes to lane i % 8, the  */
/* lanes reduce in one fixed order, so the scalar and the AVX2 variants     */
/* round identically.  A sample that does not match adds +0.0 (a masked     */
/* value), never a branch.  Key sets (mode 2) take the scalar variant.      */

ARB_INLINE int sel_match(const arb_keys *sel, int mode, int64_t k) {
    if (mode == 0)
        return 1;
    if (mode == 1)
        return k == sel->one;
    return key_in(k, sel->keys, sel->nkeys);
}

ARB_INLINE double lanes_sum(const double *l) {
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

#define WK_SCALAR_DISPATCH(BODY, ...)                                                          \
    do {                                                                                       \
        if (sel->mode == 0)                                                                    \
            BODY(__VA_ARGS__, 0);                                                              \
        else if (sel->mode == 1)                                                               \
            BODY(__VA_ARGS__, 1);                                                              \
        else                                                                                   \
            BODY(__VA_ARGS__, 2);                                                              \
    } while (0)

ARB_INLINE void moments_scalar(const int64_t *ks, const double *vs, ptrdiff_t i, ptrdiff_t n,
                               const arb_keys *sel, double *s, int64_t *c, double *mn,
                               double *mx, int mode) {
    double x, lo = *mn, hi = *mx;
    int64_t cc = 0;
    int m;
    for (; i < n; i++) {
        m = sel_match(sel, mode, ks[i]);
        x = vs[i];
        s[i & 7] += m ? x : 0.0;
        cc += m;
        lo = (m && x < lo) ? x : lo;
        hi = (m && x > hi) ? x : hi;
    }
    *c += cc;
    *mn = lo;
    *mx = hi;
}

ARB_INLINE double sq_dev_scalar(const int64_t *ks, const double *vs, ptrdiff_t i, ptrdiff_t n,
                                const arb_keys *sel, double mean, double *s, int mode) {
    double d;
    for (; i < n; i++) {
        d = sel_match(sel, mode, ks[i]) ? vs[i] - mean : 0.0;
        s[i & 7] += d * d;
    }
    return 0.0;
}

ARB_INLINE int64_t beyond_scalar(const int64_t *ks, const double *vs, ptrdiff_t i, ptrdiff_t n,
                                 const arb_keys *sel, double thr, int above, int mode) {
    int64_t c = 0;
    for (; i < n; i++)
        c += sel_match(sel, mode, ks[i]) & (above ? vs[i] > thr : vs[i] < thr);
    return c;
}

ARB_INLINE void sums2_scalar(const double *xs, const int64_t *ks, const double *vs, ptrdiff_t i,
                             ptrdiff_t n, const arb_keys *sel, int64_t *c, double *sx,
                             double *sv, int mode) {
    int64_t cc = 0;
    int m;
    for (; i < n; i++) {
        m = sel_match(sel, mode, ks[i]);
        cc += m;
        sx[i & 7] += m ? xs[i] : 0.0;
        sv[i & 7] += m ? vs[i] : 0.0;
    }
    *c += cc;
}

ARB_INLINE void comoments_scalar(const double *xs, const int64_t *ks, const double *vs,
                                 ptrdiff_t i, ptrdiff_t n, const arb_keys *sel, double mx,
                                 double mv, double *cxv, double *cxx, int mode) {
    double dx, dv;
    int m;
    for (; i < n; i++) {
        m = sel_match(sel, mode, ks[i]);
        dx = m ? xs[i] - mx : 0.0;
        dv = m ? vs[i] - mv : 0.0;
        cxv[i & 7] += dx * dv;
        cxx[i & 7] += dx * dx;
    }
}

#if ARB_X86
/* mode 0: every lane matches; mode 1: lanes whose key equals kv */
#define WK_MASK(ks, kv, mode)                                                                  \
    ((mode) == 0 ? _mm256_castsi256_pd(_mm256_set1_epi64x(-1))                                 \
                 : _mm256_castsi256_pd(                                                        \
                       _mm256_cmpeq_epi64(_mm256_loadu_si256((const __m256i *)(ks)), (kv))))

__attribute__((target("avx2"))) ARB_INLINE ptrdiff_t
moments_avx2(const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel, double *s,
             int64_t *c, double *mn, double *mx, int mode) {
    const __m256i kv = _mm256_set1_epi64x(sel->one);
    const __m256d inf = _mm256_set1_pd(INFINITY), ninf = _mm256_set1_pd(-INFINITY);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, lo0 = inf, lo1 = inf, hi0 = ninf, hi1 = ninf;
    __m256i c0 = _mm256_setzero_si256(), c1 = c0;
    double l[8] __attribute__((aligned(32)));
    int64_t ci[8] __attribute__((aligned(32)));
    ptrdiff_t i, j;
    for (i = 0; i + 8 <= n; i += 8) {
        __m256d m0 = WK_MASK(ks + i, kv, mode), m1 = WK_MASK(ks + i + 4, kv, mode);
        __m256d x0 = _mm256_loadu_pd(vs + i), x1 = _mm256_loadu_pd(vs + i + 4);
        s0 = _mm256_add_pd(s0, _mm256_and_pd(x0, m0));
        s1 = _mm256_add_pd(s1, _mm256_and_pd(x1, m1));
        lo0 = _mm256_min_pd(lo0, _mm256_blendv_pd(inf, x0, m0));
        lo1 = _mm256_min_pd(lo1, _mm256_blendv_pd(inf, x1, m1));
        hi0 = _mm256_max_pd(hi0, _mm256_blendv_pd(ninf, x0, m0));
        hi1 = _mm256_max_pd(hi1, _mm256_blendv_pd(ninf, x1, m1));
        c0 = _mm256_sub_epi64(c0, _mm256_castpd_si256(m0)); /* lanes are 0 or -1 */
        c1 = _mm256_sub_epi64(c1, _mm256_castpd_si256(m1));
    }
    _mm256_store_pd(l, s0);
    _mm256_store_pd(l + 4, s1);
    for (j = 0; j < 8; j++)
        s[j] += l[j];
    _mm256_store_si256((__m256i *)ci, _mm256_add_epi64(c0, c1));
    *c += ci[0] + ci[1] + ci[2] + ci[3];
    _mm256_store_pd(l, _mm256_min_pd(lo0, lo1));
    _mm256_store_pd(l + 4, _mm256_max_pd(hi0, hi1));
    for (j = 0; j < 4; j++) {
        *mn = l[j] < *mn ? l[j] : *mn;
        *mx = l[4 + j] > *mx ? l[4 + j] : *mx;
    }
    return i;
}

__attribute__((target("avx2"))) ARB_INLINE ptrdiff_t
sq_dev_avx2(const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel, double mean,
            double *s, int mode) {
    const __m256i kv = _mm256_set1_epi64x(sel->one);
    const __m256d mu = _mm256_set1_pd(mean);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0;
    double l[8] __attribute__((aligned(32)));
    ptrdiff_t i, j;
    for (i = 0; i + 8 <= n; i += 8) {
        __m256d d0 = _mm256_and_pd(_mm256_sub_pd(_mm256_loadu_pd(vs + i), mu),
                                   WK_MASK(ks + i, kv, mode));
        __m256d d1 = _mm256_and_pd(_mm256_sub_pd(_mm256_loadu_pd(vs + i + 4), mu),
                                   WK_MASK(ks + i + 4, kv, mode));
        s0 = _mm256_add_pd(s0, _mm256_mul_pd(d0, d0));
        s1 = _mm256_add_pd(s1, _mm256_mul_pd(d1, d1));
    }
    _mm256_store_pd(l, s0);
    _mm256_store_pd(l + 4, s1);
    for (j = 0; j < 8; j++)
        s[j] += l[j];
    return i;
}

__attribute__((target("avx2"))) ARB_INLINE int64_t
beyond_avx2(const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel, double thr,
            int above, ptrdiff_t *end, int mode) {
    const __m256i kv = _mm256_set1_epi64x(sel->one);
    const __m256d t = _mm256_set1_pd(thr);
    __m256i c0 = _mm256_setzero_si256(), c1 = c0;
    int64_t ci[4] __attribute__((aligned(32)));
    ptrdiff_t i;
    for (i = 0; i + 8 <= n; i += 8) {
        __m256d x0 = _mm256_loadu_pd(vs + i), x1 = _mm256_loadu_pd(vs + i + 4);
        __m256d b0 = above ? _mm256_cmp_pd(x0, t, _CMP_GT_OQ) : _mm256_cmp_pd(x0, t, _CMP_LT_OQ);
        __m256d b1 = above ? _mm256_cmp_pd(x1, t, _CMP_GT_OQ) : _mm256_cmp_pd(x1, t, _CMP_LT_OQ);
        c0 = _mm256_sub_epi64(c0, _mm256_castpd_si256(_mm256_and_pd(b0, WK_MASK(ks + i, kv, mode))));
        c1 = _mm256_sub_epi64(c1,
                              _mm256_castpd_si256(_mm256_and_pd(b1, WK_MASK(ks + i + 4, kv, mode))));
    }
    _mm256_store_si256((__m256i *)ci, _mm256_add_epi64(c0, c1));
    *end = i;
    return ci[0] + ci[1] + ci[2] + ci[3];
}

__attribute__((target("avx2"))) ARB_INLINE ptrdiff_t
sums2_avx2(const double *xs, const int64_t *ks, const double *vs, ptrdiff_t n,
           const arb_keys *sel, int64_t *c, double *sx, double *sv, int mode) {
    const __m256i kv = _mm256_set1_epi64x(sel->one);
    __m256d x0 = _mm256_setzero_pd(), x1 = x0, v0 = x0, v1 = x0;
    __m256i c0 = _mm256_setzero_si256(), c1 = c0;
    double l[8] __attribute__((aligned(32)));
    int64_t ci[4] __attribute__((aligned(32)));
    ptrdiff_t i, j;
    for (i = 0; i + 8 <= n; i += 8) {
        __m256d m0 = WK_MASK(ks + i, kv, mode), m1 = WK_MASK(ks + i + 4, kv, mode);
        x0 = _mm256_add_pd(x0, _mm256_and_pd(_mm256_loadu_pd(xs + i), m0));
        x1 = _mm256_add_pd(x1, _mm256_and_pd(_mm256_loadu_pd(xs + i + 4), m1));
        v0 = _mm256_add_pd(v0, _mm256_and_pd(_mm256_loadu_pd(vs + i), m0));
        v1 = _mm256_add_pd(v1, _mm256_and_pd(_mm256_loadu_pd(vs + i + 4), m1));
        c0 = _mm256_sub_epi64(c0, _mm256_castpd_si256(m0));
        c1 = _mm256_sub_epi64(c1, _mm256_castpd_si256(m1));
    }
    _mm256_store_pd(l, x0);
    _mm256_store_pd(l + 4, x1);
    for (j = 0; j < 8; j++)
        sx[j] += l[j];
    _mm256_store_pd(l, v0);
    _mm256_store_pd(l + 4, v1);
    for (j = 0; j < 8; j++)
        sv[j] += l[j];
    _mm256_store_si256((__m256i *)ci, _mm256_add_epi64(c0, c1));
    *c += ci[0] + ci[1] + ci[2] + ci[3];
    return i;
}

__attribute__((target("avx2"))) ARB_INLINE ptrdiff_t
comoments_avx2(const double *xs, const int64_t *ks, const double *vs, ptrdiff_t n,
               const arb_keys *sel, double mx, double mv, double *cxv, double *cxx, int mode) {
    const __m256i kv = _mm256_set1_epi64x(sel->one);
    const __m256d mxv = _mm256_set1_pd(mx), mvv = _mm256_set1_pd(mv);
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, b0 = a0, b1 = a0;
    double l[8] __attribute__((aligned(32)));
    ptrdiff_t i, j;
    for (i = 0; i + 8 <= n; i += 8) {
        __m256d m0 = WK_MASK(ks + i, kv, mode), m1 = WK_MASK(ks + i + 4, kv, mode);
        __m256d dx0 = _mm256_and_pd(_mm256_sub_pd(_mm256_loadu_pd(xs + i), mxv), m0);
        __m256d dx1 = _mm256_and_pd(_mm256_sub_pd(_mm256_loadu_pd(xs + i + 4), mxv), m1);
        __m256d dv0 = _mm256_and_pd(_mm256_sub_pd(_mm256_loadu_pd(vs + i), mvv), m0);
        __m256d dv1 = _mm256_and_pd(_mm256_sub_pd(_mm256_loadu_pd(vs + i + 4), mvv), m1);
        a0 = _mm256_add_pd(a0, _mm256_mul_pd(dx0, dv0));
        a1 = _mm256_add_pd(a1, _mm256_mul_pd(dx1, dv1));
        b0 = _mm256_add_pd(b0, _mm256_mul_pd(dx0, dx0));
        b1 = _mm256_add_pd(b1, _mm256_mul_pd(dx1, dx1));
    }
    _mm256_store_pd(l, a0);
    _mm256_store_pd(l + 4, a1);
    for (j = 0; j < 8; j++)
        cxv[j] += l[j];
    _mm256_store_pd(l, b0);
    _mm256_store_pd(l + 4, b1);
    for (j = 0; j < 8; j++)
        cxx[j] += l[j];
    return i;
}
/* entry points per key mode: the bodies inline into them with the mode constant */
#define WK_ENTRY(RET, NAME, MODE, PARAMS, ...)                                                 \
    __attribute__((target("avx2"))) static RET NAME##_##MODE PARAMS {                          \
        return NAME(__VA_ARGS__, MODE);                                                        \
    }
#define WK_ENTRIES(RET, NAME, PARAMS, ...)                                                     \
    WK_ENTRY(RET, NAME, 0, PARAMS, __VA_ARGS__) WK_ENTRY(RET, NAME, 1, PARAMS, __VA_ARGS__)

WK_ENTRIES(ptrdiff_t, moments_avx2,
           (const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel, double *s,
            int64_t *c, double *mn, double *mx),
           ks, vs, n, sel, s, c, mn, mx)
WK_ENTRIES(ptrdiff_t, sq_dev_avx2,
           (const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel, double mean,
            double *s),
           ks, vs, n, sel, mean, s)
WK_ENTRIES(int64_t, beyond_avx2,
           (const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel, double thr,
            int above, ptrdiff_t *end),
           ks, vs, n, sel, thr, above, end)
WK_ENTRIES(ptrdiff_t, sums2_avx2,
           (const double *xs, const int64_t *ks, const double *vs, ptrdiff_t n,
            const arb_keys *sel, int64_t *c, double *sx, double *sv),
           xs, ks, vs, n, sel, c, sx, sv)
WK_ENTRIES(ptrdiff_t, comoments_avx2,
           (const double *xs, const int64_t *ks, const double *vs, ptrdiff_t n,
            const arb_keys *sel, double mx, double mv, double *cxv, double *cxx),
           xs, ks, vs, n, sel, mx, mv, cxv, cxx)
#define WK_VECTOR(sel) (cur_level >= ARB_SIMD_AVX2 && (sel)->mode != 2)
#else
#define WK_VECTOR(sel) 0
#endif

void arb_moments_add(const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel,
                     arb_moments *acc) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t i = 0;
    if (n <= 0)
        return;
#if ARB_X86
    if (WK_VECTOR(sel))
        i = sel->mode == 0 ? moments_avx2_0(ks, vs, n, sel, s, &acc->n, &acc->mn, &acc->mx)
                           : moments_avx2_1(ks, vs, n, sel, s, &acc->n, &acc->mn, &acc->mx);
#endif
    WK_SCALAR_DISPATCH(moments_scalar, ks, vs, i, n, sel, s, &acc->n, &acc->mn, &acc->mx);
    acc->sum += lanes_sum(s);
}

double arb_sq_dev(const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel,
                  double mean) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t i = 0;
    if (n <= 0)
        return 0.0;
#if ARB_X86
    if (WK_VECTOR(sel))
        i = sel->mode == 0 ? sq_dev_avx2_0(ks, vs, n, sel, mean, s)
                           : sq_dev_avx2_1(ks, vs, n, sel, mean, s);
#endif
    WK_SCALAR_DISPATCH(sq_dev_scalar, ks, vs, i, n, sel, mean, s);
    return lanes_sum(s);
}

int64_t arb_count_beyond(const int64_t *ks, const double *vs, ptrdiff_t n, const arb_keys *sel,
                         double thr, int above) {
    int64_t c = 0;
    ptrdiff_t i = 0;
    if (n <= 0)
        return 0;
#if ARB_X86
    if (WK_VECTOR(sel))
        c = sel->mode == 0 ? beyond_avx2_0(ks, vs, n, sel, thr, above, &i)
                           : beyond_avx2_1(ks, vs, n, sel, thr, above, &i);
#endif
    if (sel->mode == 0)
        c += beyond_scalar(ks, vs, i, n, sel, thr, above, 0);
    else if (sel->mode == 1)
        c += beyond_scalar(ks, vs, i, n, sel, thr, above, 1);
    else
        c += beyond_scalar(ks, vs, i, n, sel, thr, above, 2);
    return c;
}

void arb_sums2(const double *xs, const int64_t *ks, const double *vs, ptrdiff_t n,
               const arb_keys *sel, int64_t *count, double *sx, double *sv) {
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t i = 0;
    if (n <= 0)
        return;
#if ARB_X86
    if (WK_VECTOR(sel))
        i = sel->mode == 0 ? sums2_avx2_0(xs, ks, vs, n, sel, count, a, b)
                           : sums2_avx2_1(xs, ks, vs, n, sel, count, a, b);
#endif
    WK_SCALAR_DISPATCH(sums2_scalar, xs, ks, vs, i, n, sel, count, a, b);
    *sx += lanes_sum(a);
    *sv += lanes_sum(b);
}

void arb_comoments(const double *xs, const int64_t *ks, const double *vs, ptrdiff_t n,
                   const arb_keys *sel, double mx, double mv, double *cxv, double *cxx) {
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t i = 0;
    if (n <= 0)
        return;
#if ARB_X86
    if (WK_VECTOR(sel))
        i = sel->mode == 0 ? comoments_avx2_0(xs, ks, vs, n, sel, mx, mv, a, b)
                           : comoments_avx2_1(xs, ks, vs, n, sel, mx, mv, a, b);
#endif
    WK_SCALAR_DISPATCH(comoments_scalar, xs, ks, vs, i, n, sel, mx, mv, a, b);
    *cxv += lanes_sum(a);
    *cxx += lanes_sum(b);
}

ptrdiff_t arb_find(const int64_t *ks, ptrdiff_t n, const arb_keys *sel, int last) {
    ptrdiff_t i;
    if (last) {
        for (i = n - 1; i >= 0; i--)
            if (sel_match(sel, sel->mode, ks[i]))
                return i;
    } else {
        for (i = 0; i < n; i++)
            if (sel_match(sel, sel->mode, ks[i]))
                return i;
    }
    return -1;
}
