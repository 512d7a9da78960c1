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
   M output channels (1, 2 or 4: a group's outputs share every input load) x R output
   rows x NV vectors stay in registers while the loop runs over the taps (t over input
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

/* rows per register block for M = 1 and 2 output channels, vectors per chunk for M = 4:
   16 accumulators of AVX-512's 32 registers, 8 of AVX2's / SSE's 16 */
#if PYCONV_TH_BYTES == 64
#define PYCONV_TH_R1 4
#define PYCONV_TH_R2 2
#define PYCONV_TH_NV4 4
#else
#define PYCONV_TH_R1 2
#define PYCONV_TH_R2 1
#define PYCONV_TH_NV4 2
#endif

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


/* R output rows (xs apart in the padded frame, os apart in the output) x n (<= NV*VL)
   positions of M output channels (ldo apart) */
#define PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, NV, NAME) \
static inline void NAME(const T *restrict x, Py_ssize_t xs, const Py_ssize_t *restrict toffs, \
                        Py_ssize_t ntaps, const T *restrict w, const T *restrict bias, T *restrict out, \
                        Py_ssize_t os, Py_ssize_t ldo, Py_ssize_t n) { \
    enum { VL = sizeof(VT) / sizeof(T) }; \
    VT acc[M][R][NV]; \
    _Pragma("GCC unroll 4") for (int m = 0; m < M; m++) \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[m][r][v] = (VT){0} + bias[m]; \
    for (Py_ssize_t t = 0; t < ntaps; t++) { \
        const T *xt = x + toffs[t]; \
        VT xv[R][NV]; \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) xv[r][v] = *(const VTU *)(xt + r * xs + v * VL); \
        _Pragma("GCC unroll 4") for (int m = 0; m < M; m++) { \
            const T wm = w[t * M + m]; \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[m][r][v] += wm * xv[r][v]; \
        } \
    } \
    _Pragma("GCC unroll 4") for (int m = 0; m < M; m++) \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) \
                if (n > v * VL) STORE(out + m * ldo + r * os + v * VL, acc[m][r][v], n - v * VL); \
}
#else
#define PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, NV, NAME) \
static void NAME(const T *x, Py_ssize_t xs, const Py_ssize_t *toffs, Py_ssize_t ntaps, const T *w, \
                 const T *bias, T *out, Py_ssize_t os, Py_ssize_t ldo, Py_ssize_t n) { \
    for (int m = 0; m < M; m++) for (int r = 0; r < R; r++) for (Py_ssize_t j = 0; j < n; j++) { \
        T s = bias[m]; \
        for (Py_ssize_t t = 0; t < ntaps; t++) s += w[t * M + m] * x[toffs[t] + r * xs + j]; \
        out[m * ldo + r * os + j] = s; \
    } \
}
#endif

/* R rows of one register-block shape: full chunks of NV vectors, then one chunk of the
   vectors the rest of the row needs */
#define PYCONV_TH_SWEEP(T, VT, VTU, STORE, M, R, NV, SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, 1, pyconv_th##M##_##R##_1##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, 2, pyconv_th##M##_##R##_2##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, 3, pyconv_th##M##_##R##_3##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, 4, pyconv_th##M##_##R##_4##SFX) \
static void pyconv_th##M##_##R##SFX(const T *x, Py_ssize_t xs, const Py_ssize_t *toffs, Py_ssize_t ntaps, \
                                    const T *w, const T *bias, T *out, Py_ssize_t os, Py_ssize_t ldo, \
                                    Py_ssize_t OW) { \
    enum { VL = PYCONV_TH_BYTES / sizeof(T) }; \
    Py_ssize_t j = 0, r; \
    for (; j + NV * VL <= OW; j += NV * VL) { \
        if (NV == 4) pyconv_th##M##_##R##_4##SFX(x + j, xs, toffs, ntaps, w, bias, out + j, os, ldo, 4 * VL); \
        else pyconv_th##M##_##R##_2##SFX(x + j, xs, toffs, ntaps, w, bias, out + j, os, ldo, 2 * VL); \
    } \
    r = OW - j; \
    switch ((r + VL - 1) / VL) { \
    case 1: pyconv_th##M##_##R##_1##SFX(x + j, xs, toffs, ntaps, w, bias, out + j, os, ldo, r); break; \
    case 2: pyconv_th##M##_##R##_2##SFX(x + j, xs, toffs, ntaps, w, bias, out + j, os, ldo, r); break; \
    case 3: pyconv_th##M##_##R##_3##SFX(x + j, xs, toffs, ntaps, w, bias, out + j, os, ldo, r); break; \
    case 4: pyconv_th##M##_##R##_4##SFX(x + j, xs, toffs, ntaps, w, bias, out + j, os, ldo, r); break; \
    default: break; \
    } \
}

/* nrows output rows of an M-channel block: R rows at a time, then single rows (the
   sweeps' names carry R's macro name: pyconv_th1_PYCONV_TH_R1f is M = 1, R = PYCONV_TH_R1).
   pf, pfn: memory the caller reads next (the next task's input), prefetched into L2 a
   share of it per row block, so reading it overlaps this block's arithmetic instead of
   following it */
#define PYCONV_TH_PF(T) \
    if (pfn > 0) { \
        Py_ssize_t e_ = pf0 + per; \
        if (e_ > pfn) e_ = pfn; \
        for (; pf0 < e_; pf0 += 64 / (Py_ssize_t)sizeof(T)) PYCONV_PREFETCH(pf + pf0); \
    }
#if defined(__GNUC__) || defined(__clang__)
#define PYCONV_PREFETCH(p) __builtin_prefetch((p), 0, 2)
#else
#define PYCONV_PREFETCH(p) ((void)0)
#endif
#define PYCONV_TH_ROW(T, VT, VTU, STORE, SFX) \
PYCONV_TH_SWEEP(T, VT, VTU, STORE, 1, PYCONV_TH_R1, 4, SFX) \
PYCONV_TH_SWEEP(T, VT, VTU, STORE, 2, PYCONV_TH_R2, 4, SFX) \
PYCONV_TH_SWEEP(T, VT, VTU, STORE, 4, 1, PYCONV_TH_NV4, SFX) \
PYCONV_TH_SWEEP(T, VT, VTU, STORE, 1, 1, 4, SFX) \
PYCONV_TH_SWEEP(T, VT, VTU, STORE, 2, 1, 4, SFX) \
static void pyconv_th_rows_##SFX(int M, const T *x, Py_ssize_t xs, const Py_ssize_t *toffs, \
                                 Py_ssize_t ntaps, const T *w, const T *bias, T *out, Py_ssize_t os, \
                                 Py_ssize_t ldo, Py_ssize_t OW, Py_ssize_t nrows, const T *pf, \
                                 Py_ssize_t pfn) { \
    Py_ssize_t h = 0, pf0 = 0, per = pfn / (nrows > 0 ? nrows : 1) + 64; \
    if (M == 4) { \
        for (; h < nrows; h++) { \
            PYCONV_TH_PF(T) \
            pyconv_th4_1##SFX(x + h * xs, xs, toffs, ntaps, w, bias, out + h * os, os, ldo, OW); \
        } \
    } else if (M == 2) { \
        for (; h + PYCONV_TH_R2 <= nrows; h += PYCONV_TH_R2) { \
            PYCONV_TH_PF(T) PYCONV_TH_PF(T) \
            pyconv_th2_PYCONV_TH_R2##SFX(x + h * xs, xs, toffs, ntaps, w, bias, out + h * os, os, ldo, OW); \
        } \
        for (; h < nrows; h++) pyconv_th2_1##SFX(x + h * xs, xs, toffs, ntaps, w, bias, out + h * os, os, ldo, OW); \
    } else { \
        for (; h + PYCONV_TH_R1 <= nrows; h += PYCONV_TH_R1) { \
            PYCONV_TH_PF(T) PYCONV_TH_PF(T) PYCONV_TH_PF(T) PYCONV_TH_PF(T) \
            pyconv_th1_PYCONV_TH_R1##SFX(x + h * xs, xs, toffs, ntaps, w, bias, out + h * os, os, ldo, OW); \
        } \
        for (; h < nrows; h++) pyconv_th1_1##SFX(x + h * xs, xs, toffs, ntaps, w, bias, out + h * os, os, ldo, OW); \
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
