/* pad_rows.h: zero-padded row copies shared by the kernels' per-task scratch buffers
   (declared in _common.pxd, called through its pad_rows_at). */
#ifndef PYCONV_PAD_ROWS_H
#define PYCONV_PAD_ROWS_H

#include <string.h>
/* rows rows of W values from src (ss apart) into rows of wp values at dst (ds apart),
   src's column c at dst's column pw + c (pw >= 0), zeros in the other columns: the padded
   rows of a kernel's scratch.  With AVX-512 each vector of a row is one masked
   load and one masked store (a vector that starts left of the row's first value loads
   from that value and moves its lanes up with one permute: no address before the source
   row is read or formed), the masks worked out once per call: copied by a vectorised
   loop, its remainder and the zeros around it, a row of 56 values took a third of a
   depthwise weight gradient at 1 thread (perf). */
#define PYCONV_PAD_ROWS_PLAIN(T, SFX) \
static inline void pyconv_pad_rows_plain_##SFX(T *dst, Py_ssize_t ds, const T *src, Py_ssize_t ss, \
                                               Py_ssize_t W, Py_ssize_t pw, Py_ssize_t wp, Py_ssize_t rows) { \
    Py_ssize_t lo = pw > wp ? wp : pw, hi = pw + W > wp ? wp : pw + W; \
    if (hi < lo) hi = lo; \
    for (Py_ssize_t h = 0; h < rows; h++, dst += ds, src += ss) { \
        memset(dst, 0, lo * sizeof(T)); \
        if (hi > lo) memcpy(dst + lo, src, (hi - lo) * sizeof(T)); \
        memset(dst + hi, 0, (wp - hi) * sizeof(T)); \
    } \
}
PYCONV_PAD_ROWS_PLAIN(float, f)
PYCONV_PAD_ROWS_PLAIN(double, d)
#if defined(__AVX512F__)
#include <immintrin.h>
/* T, vector, mask, index vector types; masked load, permute, masked store; index splat,
   subtraction, 0..L-1 */
#define PYCONV_PAD_ROWS(T, VT, MT, IT, LOAD, PERM, STORE, SET1, SUB, IOTA, SFX) \
static inline void pyconv_pad_rows_##SFX(T *dst, Py_ssize_t ds, const T *src, Py_ssize_t ss, Py_ssize_t W, \
                                  Py_ssize_t pw, Py_ssize_t wp, Py_ssize_t rows) { \
    enum { L = 64 / sizeof(T), NMAX = 32 }; \
    const Py_ssize_t nv = (wp + L - 1) / L; \
    MT ml[NMAX], ms[NMAX]; \
    IT ix[NMAX]; \
    int up[NMAX]; \
    Py_ssize_t off[NMAX]; \
    if (nv > NMAX) { pyconv_pad_rows_plain_##SFX(dst, ds, src, ss, W, pw, wp, rows); return; } \
    for (Py_ssize_t k = 0; k < nv; k++) { \
        /* lanes [a, b) of vector k hold source columns k*L + lane - pw; lanes < e are stored */ \
        Py_ssize_t j = k * L, a = pw - j, b = pw + W - j, e = wp - j; \
        if (a < 0) a = 0; \
        if (b > L) b = L; \
        if (e > L) e = L; \
        if (b > e) b = e; \
        ms[k] = (MT)((1ull << e) - 1); \
        up[k] = j < pw ? (int)(pw - j < L ? pw - j : L) : 0; \
        off[k] = j < pw ? 0 : j - pw; \
        /* the load fills lanes [a - up, b - up); a permute moves lane l - up to lane l */ \
        ml[k] = a < b ? (MT)(((1ull << (b - a)) - 1) << (a - up[k])) : (MT)0; \
        ix[k] = SUB(IOTA, SET1(up[k])); \
    } \
    for (Py_ssize_t h = 0; h < rows; h++, dst += ds, src += ss) \
        for (Py_ssize_t k = 0; k < nv; k++) { \
            VT v = LOAD(ml[k], src + off[k]); \
            if (up[k]) v = PERM((MT)(ml[k] << up[k]), ix[k], v); \
            STORE(dst + k * L, ms[k], v); \
        } \
}
PYCONV_PAD_ROWS(float, __m512, __mmask16, __m512i, _mm512_maskz_loadu_ps, _mm512_maskz_permutexvar_ps,
                _mm512_mask_storeu_ps, _mm512_set1_epi32, _mm512_sub_epi32,
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), f)
PYCONV_PAD_ROWS(double, __m512d, __mmask8, __m512i, _mm512_maskz_loadu_pd, _mm512_maskz_permutexvar_pd,
                _mm512_mask_storeu_pd, _mm512_set1_epi64, _mm512_sub_epi64, _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7), d)
/* dst[j] = src[2 j] for j < n (im2col of stride-2 rows): per 16 (8) outputs two loads, one
   two-source permute and a store, instead of a scalar loop the compiler leaves to rows
   shorter than its vector loop (a 14-position row: layer b's weight gradient, 1.02-1.04x
   at 1 thread, 1.00-1.04x at 2, alternated in one process); loads never reach past
   src[2 n - 2] (masked) */
#define PYCONV_COPY_S2(T, VT, MT, IT, LOAD, MLOAD, PERM2, STORE, MSTORE, IDX, SFX) \
static inline void pyconv_copy_s2_##SFX(T *dst, const T *src, Py_ssize_t n) { \
    enum { L = 64 / sizeof(T) }; \
    const IT even = IDX; \
    Py_ssize_t j = 0; \
    for (; j + L <= n; j += L) \
        STORE(dst + j, PERM2(LOAD(src + 2 * j), even, MLOAD((MT)((1ull << (L - 1)) - 1), src + 2 * j + L))); \
    if (j < n) { \
        Py_ssize_t m = n - j, need = 2 * m - 1; \
        MT ka = (MT)(need >= L ? (1ull << L) - 1 : (1ull << need) - 1); \
        MT kb = (MT)(need > L ? (1ull << (need - L)) - 1 : 0); \
        MSTORE(dst + j, (MT)((1ull << m) - 1), PERM2(MLOAD(ka, src + 2 * j), even, MLOAD(kb, src + 2 * j + L))); \
    } \
}
PYCONV_COPY_S2(float, __m512, __mmask16, __m512i, _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_permutex2var_ps,
               _mm512_storeu_ps, _mm512_mask_storeu_ps,
               _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), f)
PYCONV_COPY_S2(double, __m512d, __mmask8, __m512i, _mm512_loadu_pd, _mm512_maskz_loadu_pd, _mm512_permutex2var_pd,
               _mm512_storeu_pd, _mm512_mask_storeu_pd, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), d)
/* dst[2 j] += src[j] for j < n (col2im of stride-2 rows, the adjoint of pyconv_copy_s2):
   per 16 (8) values one load, two permutes spreading them over the even lanes of two
   vectors, and masked loads, adds and stores of those lanes only (the odd elements are
   neither read nor written; each even one gets the same single addition as in a scalar
   loop: the same bits).  A scalar loop of 56-position rows took a fifth of layer j's
   input gradient at 1 thread (perf). */
#define PYCONV_ADD_S2(T, VT, MT, IT, MLOAD, PERM, MADD, MSTORE, ILO, IHI, EVEN, SFX) \
static inline void pyconv_add_s2_##SFX(T *dst, const T *src, Py_ssize_t n) { \
    enum { L = 64 / sizeof(T) }; \
    const IT lo = ILO, hi = IHI; \
    for (Py_ssize_t j = 0; j < n; j += L) { \
        Py_ssize_t m = n - j < L ? n - j : L, need = 2 * m - 1; \
        MT ka = (MT)((need >= L ? (1ull << L) - 1 : (1ull << need) - 1) & EVEN); \
        MT kb = (MT)((need > L ? (1ull << (need - L)) - 1 : 0) & EVEN); \
        VT s = MLOAD((MT)((1ull << m) - 1), src + j), a = MLOAD(ka, dst + 2 * j); \
        MSTORE(dst + 2 * j, ka, MADD(a, ka, a, PERM(lo, s))); \
        if (kb) { \
            VT b = MLOAD(kb, dst + 2 * j + L); \
            MSTORE(dst + 2 * j + L, kb, MADD(b, kb, b, PERM(hi, s))); \
        } \
    } \
}
PYCONV_ADD_S2(float, __m512, __mmask16, __m512i, _mm512_maskz_loadu_ps, _mm512_permutexvar_ps, _mm512_mask_add_ps,
              _mm512_mask_storeu_ps, _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
              _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15), 0x5555u, f)
PYCONV_ADD_S2(double, __m512d, __mmask8, __m512i, _mm512_maskz_loadu_pd, _mm512_permutexvar_pd, _mm512_mask_add_pd,
              _mm512_mask_storeu_pd, _mm512_setr_epi64(0, 0, 1, 1, 2, 2, 3, 3),
              _mm512_setr_epi64(4, 4, 5, 5, 6, 6, 7, 7), 0x55u, d)
/* d0[k] = x(start + 2 k), d1[k] = x(start + 2 k + 1) for k < n, where x(i) = src[i] for
   0 <= i < W and 0 elsewhere (either output may be NULL): one zero-padded row split into its
   two column phases in one pass, per 16 (8) outputs two masked loads from the row's first
   value on (no address before the row is formed) and two zero-masking two-source permutes
   (thin_phase's planes: two strided copies and a zeroed plane per row took twice as long) */
#define PYCONV_SPLIT_S2(T, VT, MT, IT, MLOAD, MPERM2, MSTORE, SET1, SUB, ADD, CMPGE, IOTA2, ONES, SFX) \
static inline void pyconv_split_s2_##SFX(const T *src, Py_ssize_t W, Py_ssize_t start, T *d0, T *d1, \
                                         Py_ssize_t n) { \
    enum { L = 64 / sizeof(T) }; \
    const IT iota2 = IOTA2, zero = SET1(0), one = ONES, iota2p1 = ADD(iota2, one); \
    for (Py_ssize_t k0 = 0; k0 < n; k0 += L) { \
        Py_ssize_t i0 = start + 2 * k0, u = i0 < 0 ? -i0 : 0, base = i0 + u, va = W - base; \
        if (u > 2 * L) u = 2 * L; \
        MT ma = (MT)(va >= L ? (MT)~(MT)0 : va > 0 ? (MT)((1ull << va) - 1) : (MT)0); \
        MT mb = (MT)(va >= 2 * L ? (MT)~(MT)0 : va > L ? (MT)((1ull << (va - L)) - 1) : (MT)0); \
        VT a = MLOAD(ma, src + (ma ? base : 0)), b = MLOAD(mb, src + (mb ? base + L : 0)); \
        /* output lane k holds position base + 2k - u (+1): lane 2k - u of (a, b) when >= 0 \
           (u > 0 only where the row starts inside the chunk: the padding before it) */ \
        IT ie = iota2, io = iota2p1; \
        MT me = (MT)~(MT)0, mo = (MT)~(MT)0; \
        if (u) { \
            ie = SUB(iota2, SET1(u)); \
            io = ADD(ie, one); \
            me = CMPGE(ie, zero); \
            mo = CMPGE(io, zero); \
        } \
        Py_ssize_t m = n - k0 < L ? n - k0 : L; \
        MT ms = (MT)(m >= L ? (MT)~(MT)0 : (MT)((1ull << m) - 1)); \
        if (d0) MSTORE(d0 + k0, ms, MPERM2(me, a, ie, b)); \
        if (d1) MSTORE(d1 + k0, ms, MPERM2(mo, a, io, b)); \
    } \
}
PYCONV_SPLIT_S2(float, __m512, __mmask16, __m512i, _mm512_maskz_loadu_ps, _mm512_maskz_permutex2var_ps,
                _mm512_mask_storeu_ps, _mm512_set1_epi32, _mm512_sub_epi32, _mm512_add_epi32, _mm512_cmpge_epi32_mask,
                _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), _mm512_set1_epi32(1), f)
PYCONV_SPLIT_S2(double, __m512d, __mmask8, __m512i, _mm512_maskz_loadu_pd, _mm512_maskz_permutex2var_pd,
                _mm512_mask_storeu_pd, _mm512_set1_epi64, _mm512_sub_epi64, _mm512_add_epi64, _mm512_cmpge_epi64_mask,
                _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), _mm512_set1_epi64(1), d)
/* pyconv_split_s2 over rows rows (src rows ss apart, d0 / d1 rows ds apart).  Rows of at
   most one vector of outputs (small maps) keep the masks and permute indices, the same for
   every row, in registers, worked out once per call (one call per row spent more on them
   than on the moves: the 16 rows of a 14-wide map took half of a strided depthwise
   forward); longer rows go one call per row (the masks are then a small part). */
#define PYCONV_SPLIT_S2_ROWS(T, VT, MT, IT, MLOAD, MPERM2, MSTORE, SET1, SUB, ADD, CMPGE, IOTA2, ONES, SFX) \
static inline void pyconv_split_s2_rows_##SFX(const T *src, Py_ssize_t ss, Py_ssize_t W, Py_ssize_t start, \
                                              T *d0, T *d1, Py_ssize_t ds, Py_ssize_t n, Py_ssize_t rows) { \
    enum { L = 64 / sizeof(T) }; \
    if (n > L) { \
        for (Py_ssize_t r = 0; r < rows; r++) \
            pyconv_split_s2_##SFX(src + r * ss, W, start, d0 ? d0 + r * ds : d0, d1 ? d1 + r * ds : d1, n); \
        return; \
    } \
    const IT iota2 = IOTA2, zero = SET1(0), one = ONES; \
    /* output lane k holds position base + 2k - u (+1), as in pyconv_split_s2's one chunk */ \
    Py_ssize_t u = start < 0 ? -start : 0, base = start + u, va = W - base; \
    if (u > 2 * L) u = 2 * L; \
    const MT ma = (MT)(va >= L ? (MT)~(MT)0 : va > 0 ? (MT)((1ull << va) - 1) : (MT)0); \
    const MT mb = (MT)(va >= 2 * L ? (MT)~(MT)0 : va > L ? (MT)((1ull << (va - L)) - 1) : (MT)0); \
    const MT ms = (MT)(n >= L ? (MT)~(MT)0 : (MT)((1ull << n) - 1)); \
    IT ie = iota2, io = ADD(iota2, one); \
    MT me = (MT)~(MT)0, mo = (MT)~(MT)0; \
    if (u) { \
        ie = SUB(iota2, SET1(u)); \
        io = ADD(ie, one); \
        me = CMPGE(ie, zero); \
        mo = CMPGE(io, zero); \
    } \
    const Py_ssize_t oa = ma ? base : 0, ob = mb ? base + L : 0; \
    for (Py_ssize_t r = 0; r < rows; r++, src += ss) { \
        VT a = MLOAD(ma, src + oa), b = MLOAD(mb, src + ob); \
        if (d0) MSTORE(d0 + r * ds, ms, MPERM2(me, a, ie, b)); \
        if (d1) MSTORE(d1 + r * ds, ms, MPERM2(mo, a, io, b)); \
    } \
}
PYCONV_SPLIT_S2_ROWS(float, __m512, __mmask16, __m512i, _mm512_maskz_loadu_ps, _mm512_maskz_permutex2var_ps,
                     _mm512_mask_storeu_ps, _mm512_set1_epi32, _mm512_sub_epi32, _mm512_add_epi32,
                     _mm512_cmpge_epi32_mask,
                     _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), _mm512_set1_epi32(1), f)
PYCONV_SPLIT_S2_ROWS(double, __m512d, __mmask8, __m512i, _mm512_maskz_loadu_pd, _mm512_maskz_permutex2var_pd,
                     _mm512_mask_storeu_pd, _mm512_set1_epi64, _mm512_sub_epi64, _mm512_add_epi64,
                     _mm512_cmpge_epi64_mask, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), _mm512_set1_epi64(1), d)
/* dst[2 k] = a[k], dst[2 k + 1] = b[k] for the n values of dst (the adjoint of
   pyconv_split_s2 without its padding: a transposed convolution's two column phases
   interleaved into an output row, 'thin_phase' transposed): per 32 (16) outputs two loads
   and two two-source permutes; a and b are read only where they have values (masked). */
#define PYCONV_MERGE_S2(T, VT, MT, IT, LOAD, MLOAD, PERM2, STORE, MSTORE, ILO, IHI, SFX) \
static inline void pyconv_merge_s2_##SFX(T *dst, const T *a, const T *b, Py_ssize_t n) { \
    enum { L = 64 / sizeof(T) }; \
    const IT lo = ILO, hi = IHI; \
    Py_ssize_t j = 0; \
    for (; j + 2 * L <= n; j += 2 * L) { \
        VT va = LOAD(a + j / 2), vb = LOAD(b + j / 2); \
        STORE(dst + j, PERM2(va, lo, vb)); \
        STORE(dst + j + L, PERM2(va, hi, vb)); \
    } \
    if (j < n) { \
        Py_ssize_t m = n - j, na = (m + 1) / 2, nb = m / 2; \
        VT va = MLOAD((MT)((1ull << na) - 1), a + j / 2), vb = MLOAD((MT)((1ull << nb) - 1), b + j / 2); \
        MSTORE(dst + j, (MT)(m >= L ? (MT)~(MT)0 : (MT)((1ull << m) - 1)), PERM2(va, lo, vb)); \
        if (m > L) MSTORE(dst + j + L, (MT)((1ull << (m - L)) - 1), PERM2(va, hi, vb)); \
    } \
}
PYCONV_MERGE_S2(float, __m512, __mmask16, __m512i, _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_permutex2var_ps,
                _mm512_storeu_ps, _mm512_mask_storeu_ps,
                _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
                _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), f)
PYCONV_MERGE_S2(double, __m512d, __mmask8, __m512i, _mm512_loadu_pd, _mm512_maskz_loadu_pd, _mm512_permutex2var_pd,
                _mm512_storeu_pd, _mm512_mask_storeu_pd, _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11),
                _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15), d)
#else
#define pyconv_pad_rows_f pyconv_pad_rows_plain_f
#define pyconv_pad_rows_d pyconv_pad_rows_plain_d
#define PYCONV_COPY_S2_PLAIN(T, SFX) \
static inline void pyconv_copy_s2_##SFX(T *dst, const T *src, Py_ssize_t n) { \
    for (Py_ssize_t j = 0; j < n; j++) dst[j] = src[2 * j]; \
}
PYCONV_COPY_S2_PLAIN(float, f)
PYCONV_COPY_S2_PLAIN(double, d)
#define PYCONV_ADD_S2_PLAIN(T, SFX) \
static inline void pyconv_add_s2_##SFX(T *dst, const T *src, Py_ssize_t n) { \
    for (Py_ssize_t j = 0; j < n; j++) dst[2 * j] += src[j]; \
}
PYCONV_ADD_S2_PLAIN(float, f)
PYCONV_ADD_S2_PLAIN(double, d)
#define PYCONV_SPLIT_S2_PLAIN(T, SFX) \
static inline void pyconv_split_s2_##SFX(const T *src, Py_ssize_t W, Py_ssize_t start, T *d0, T *d1, \
                                         Py_ssize_t n) { \
    for (Py_ssize_t k = 0; k < n; k++) { \
        Py_ssize_t i = start + 2 * k; \
        if (d0) d0[k] = i >= 0 && i < W ? src[i] : 0; \
        if (d1) d1[k] = i + 1 >= 0 && i + 1 < W ? src[i + 1] : 0; \
    } \
}
PYCONV_SPLIT_S2_PLAIN(float, f)
PYCONV_SPLIT_S2_PLAIN(double, d)
#define PYCONV_SPLIT_S2_ROWS_PLAIN(T, SFX) \
static inline void pyconv_split_s2_rows_##SFX(const T *src, Py_ssize_t ss, Py_ssize_t W, Py_ssize_t start, \
                                              T *d0, T *d1, Py_ssize_t ds, Py_ssize_t n, Py_ssize_t rows) { \
    for (Py_ssize_t r = 0; r < rows; r++) \
        pyconv_split_s2_##SFX(src + r * ss, W, start, d0 ? d0 + r * ds : d0, d1 ? d1 + r * ds : d1, n); \
}
PYCONV_SPLIT_S2_ROWS_PLAIN(float, f)
PYCONV_SPLIT_S2_ROWS_PLAIN(double, d)
#define PYCONV_MERGE_S2_PLAIN(T, SFX) \
static inline void pyconv_merge_s2_##SFX(T *dst, const T *a, const T *b, Py_ssize_t n) { \
    for (Py_ssize_t j = 0; j < n; j++) dst[j] = j % 2 ? b[j / 2] : a[j / 2]; \
}
PYCONV_MERGE_S2_PLAIN(float, f)
PYCONV_MERGE_S2_PLAIN(double, d)
#endif


#endif  /* PYCONV_PAD_ROWS_H */
