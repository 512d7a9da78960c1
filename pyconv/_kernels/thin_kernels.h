/* thin_kernels.h: C micro-kernels of thin_direct.pyx (included by it with cdef extern from "thin_kernels.h"). */
#ifndef PYCONV_THIN_KERNELS_H
#define PYCONV_THIN_KERNELS_H

/* Two outputs of a 3x3 tap set in one pass.  Written in C only to mark the
   pointers `restrict`: without it GCC cannot prove the two accumulators and
   the three input rows disjoint and leaves the loop scalar. */

#define PYCONV_F3X3_2(T, NAME) \
static inline void NAME(T *restrict A, T *restrict B, const T *restrict r0, const T *wa, \
                        const T *wb, Py_ssize_t L, Py_ssize_t rs, Py_ssize_t cs) { \
    const T a0 = wa[0], a1 = wa[1], a2 = wa[2], a3 = wa[3], a4 = wa[4], a5 = wa[5], \
            a6 = wa[6], a7 = wa[7], a8 = wa[8]; \
    const T b0 = wb[0], b1 = wb[1], b2 = wb[2], b3 = wb[3], b4 = wb[4], b5 = wb[5], \
            b6 = wb[6], b7 = wb[7], b8 = wb[8]; \
    const T *restrict r1 = r0 + rs, *restrict r2 = r0 + 2 * rs; \
    for (Py_ssize_t q = 0; q < L; q++) { \
        T x0 = r0[q], x1 = r0[q + cs], x2 = r0[q + 2 * cs]; \
        T x3 = r1[q], x4 = r1[q + cs], x5 = r1[q + 2 * cs]; \
        T x6 = r2[q], x7 = r2[q + cs], x8 = r2[q + 2 * cs]; \
        A[q] += ((a0 * x0 + a1 * x1 + a2 * x2) + (a3 * x3 + a4 * x4 + a5 * x5)) \
                + (a6 * x6 + a7 * x7 + a8 * x8); \
        B[q] += ((b0 * x0 + b1 * x1 + b2 * x2) + (b3 * x3 + b4 * x4 + b5 * x5)) \
                + (b6 * x6 + b7 * x7 + b8 * x8); \
    } \
}
PYCONV_F3X3_2(float, pyconv_f3x3_2_f)
PYCONV_F3X3_2(double, pyconv_f3x3_2_d)

/* Register-blocked rows of the stride-1 thin kernel ('thin_reg', thin_direct.direct_conv_reg).
   M output channels (1, 2 or 4: a group's outputs share every input load) x NV vectors
   of one output row stay in registers while the loop runs over the taps (t over input
   channel, depth, row, column: xp[toffs[t] + j] in a zero-padded copy of the group's
   channels, w[t*M + m] its packed weights); the sums go straight to the output row, so
   each output element is written once, with no accumulator plane and no copy out (the
   depthwise layers are memory-bound: that write and the input read are the cost).
   Every lane sums bias + taps in tap order, whatever M, NV or the row split: the bits
   do not depend on the blocking or the thread count.  Lanes past the row's end are
   computed from the scratch's slack (or the next row) and not stored.  Vector width =
   the build variant's (64 bytes with AVX-512, 32 with AVX, 16 otherwise). */
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#define PYCONV_TH_BYTES 64
#elif defined(__AVX__)
#define PYCONV_TH_BYTES 32
#else
#define PYCONV_TH_BYTES 16
#endif
/* lanes of one vector (float); a row's reads may run this far past the padded frame */
#define PYCONV_TH_SLACK (PYCONV_TH_BYTES / 4)

#if defined(__GNUC__) || defined(__clang__)
typedef float pyconv_thf __attribute__((vector_size(PYCONV_TH_BYTES)));
typedef double pyconv_thd __attribute__((vector_size(PYCONV_TH_BYTES)));
typedef float pyconv_thf_u __attribute__((vector_size(PYCONV_TH_BYTES), aligned(4), may_alias));
typedef double pyconv_thd_u __attribute__((vector_size(PYCONV_TH_BYTES), aligned(8), may_alias));

/* the first n lanes of v to p (all of them when n >= VL) */
static inline void pyconv_th_store_f(float *p, pyconv_thf v, Py_ssize_t n) {
    enum { VL = PYCONV_TH_BYTES / 4 };
    if (n >= VL) { *(pyconv_thf_u *)p = v; return; }
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), (__m512)v);
#else
    float t[VL];
    memcpy(t, &v, sizeof v);
    for (Py_ssize_t i = 0; i < n; i++) p[i] = t[i];
#endif
}
static inline void pyconv_th_store_d(double *p, pyconv_thd v, Py_ssize_t n) {
    enum { VL = PYCONV_TH_BYTES / 8 };
    if (n >= VL) { *(pyconv_thd_u *)p = v; return; }
#if defined(__AVX512F__)
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1u), (__m512d)v);
#else
    double t[VL];
    memcpy(t, &v, sizeof v);
    for (Py_ssize_t i = 0; i < n; i++) p[i] = t[i];
#endif
}

/* n (<= NV*VL) positions of M output rows ldo apart */
#define PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, NV, NAME) \
static inline void NAME(const T *restrict x, const Py_ssize_t *restrict toffs, Py_ssize_t ntaps, \
                        const T *restrict w, const T *restrict bias, T *restrict out, Py_ssize_t ldo, \
                        Py_ssize_t n) { \
    enum { VL = sizeof(VT) / sizeof(T) }; \
    VT acc[M][NV]; \
    _Pragma("GCC unroll 4") for (int m = 0; m < M; m++) \
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[m][v] = (VT){0} + bias[m]; \
    for (Py_ssize_t t = 0; t < ntaps; t++) { \
        const T *xt = x + toffs[t]; \
        VT xv[NV]; \
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) xv[v] = *(const VTU *)(xt + v * VL); \
        _Pragma("GCC unroll 4") for (int m = 0; m < M; m++) { \
            const T wm = w[t * M + m]; \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[m][v] += wm * xv[v]; \
        } \
    } \
    _Pragma("GCC unroll 4") for (int m = 0; m < M; m++) \
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) \
            if (n > v * VL) STORE(out + m * ldo + v * VL, acc[m][v], n - v * VL); \
}
#else
#define PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, NV, NAME) \
static void NAME(const T *x, const Py_ssize_t *toffs, Py_ssize_t ntaps, const T *w, const T *bias, \
                 T *out, Py_ssize_t ldo, Py_ssize_t n) { \
    for (int m = 0; m < M; m++) for (Py_ssize_t j = 0; j < n; j++) { \
        T s = bias[m]; \
        for (Py_ssize_t t = 0; t < ntaps; t++) s += w[t * M + m] * x[toffs[t] + j]; \
        out[m * ldo + j] = s; \
    } \
}
#endif

/* one output row of OW positions: full chunks of NV vectors, then one chunk of the
   vectors the rest needs (NV = 4 for M = 1, 2; 2 for M = 4: 8 accumulators) */
#define PYCONV_TH_ROW(T, VT, VTU, STORE, SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, 1, 1, pyconv_th1x1_##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, 1, 2, pyconv_th1x2_##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, 1, 3, pyconv_th1x3_##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, 1, 4, pyconv_th1x4_##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, 2, 1, pyconv_th2x1_##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, 2, 2, pyconv_th2x2_##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, 2, 3, pyconv_th2x3_##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, 2, 4, pyconv_th2x4_##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, 4, 1, pyconv_th4x1_##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, 4, 2, pyconv_th4x2_##SFX) \
static void pyconv_th_row_##SFX(int M, const T *x, const Py_ssize_t *toffs, Py_ssize_t ntaps, \
                                const T *w, const T *bias, T *out, Py_ssize_t ldo, Py_ssize_t OW) { \
    enum { VL = PYCONV_TH_BYTES / sizeof(T) }; \
    Py_ssize_t j = 0, r, nv; \
    if (M == 4) { \
        for (; j + 2 * VL <= OW; j += 2 * VL) \
            pyconv_th4x2_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, 2 * VL); \
        r = OW - j; \
        if (r > VL) pyconv_th4x2_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, r); \
        else if (r > 0) pyconv_th4x1_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, r); \
        return; \
    } \
    for (; j + 4 * VL <= OW; j += 4 * VL) { \
        if (M == 2) pyconv_th2x4_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, 4 * VL); \
        else pyconv_th1x4_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, 4 * VL); \
    } \
    r = OW - j; \
    nv = (r + VL - 1) / VL; \
    if (M == 2) { \
        switch (nv) { \
        case 1: pyconv_th2x1_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, r); break; \
        case 2: pyconv_th2x2_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, r); break; \
        case 3: pyconv_th2x3_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, r); break; \
        case 4: pyconv_th2x4_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, r); break; \
        default: break; \
        } \
    } else { \
        switch (nv) { \
        case 1: pyconv_th1x1_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, r); break; \
        case 2: pyconv_th1x2_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, r); break; \
        case 3: pyconv_th1x3_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, r); break; \
        case 4: pyconv_th1x4_##SFX(x + j, toffs, ntaps, w, bias, out + j, ldo, r); break; \
        default: break; \
        } \
    } \
}
#if defined(__GNUC__) || defined(__clang__)
PYCONV_TH_ROW(float, pyconv_thf, pyconv_thf_u, pyconv_th_store_f, f)
PYCONV_TH_ROW(double, pyconv_thd, pyconv_thd_u, pyconv_th_store_d, d)
#else
PYCONV_TH_ROW(float, float, float, 0, f)
PYCONV_TH_ROW(double, double, double, 0, d)
#endif

#endif  /* PYCONV_THIN_KERNELS_H */
