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
   rows x NV vectors (and a half vector for a row's last lanes) stay in registers while
   the loop runs over the taps (planes of input channel x depth tap, then kernel rows and
   columns, in a zero-padded copy of the group's channels; w[t*M + m] its packed
   weights, t in that order); the sums go straight to the output row, so each output
   element is written once, with no accumulator plane and no copy out (the depthwise
   layers are memory-bound: that write and the input read are the cost).
   Every lane sums bias + taps in tap order, whatever M, R, NV or the row split: the bits
   do not depend on the blocking or the thread count.  Lanes past the row's end are
   computed from the scratch's slack (or the next row) and not stored.  Vector width =
   the build variant's (64 bytes with AVX-512, 32 with AVX, 16 otherwise). */
#include <string.h>
#include "pyconv_simd.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#define PYCONV_TH_BYTES PYCONV_VBYTES
/* lanes of one vector (float); a row's reads may run this far past the padded frame */
#define PYCONV_TH_SLACK (PYCONV_TH_BYTES / 4)

/* The taps of one register block: nplanes planes (input channel x depth tap, in that
   order) at poffs[p] in the padded frame, each kh rows dh apart x kw columns dw apart
   (weights packed [plane][row][column][channel]).  brow[d], for d from -PYCONV_TH_RMAX to
   (kh-1)*dh + PYCONV_TH_RMAX, is the kernel row b with b*dh == d, or -1: output row r of a
   block reads input row i through kernel row brow[i - r]. */
#define PYCONV_TH_RMAX 4
typedef struct {
    const Py_ssize_t *poffs;
    const int *brow;
    Py_ssize_t nplanes, kh, kw, dh, dw;
    const Py_ssize_t *toffs;   /* the same taps as one list: offsets in (plane, row, column) order */
    Py_ssize_t ntaps;
} pyconv_th_taps;

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
/* half vectors: a row's last few lanes (56 = 3.5 vectors of 16 floats) cost half a full
   vector's FMA where the core splits full vectors in two (AMD Zen 4 runs a 512-bit FMA
   as two 256-bit halves), and no more than a full one elsewhere */
typedef float pyconv_thf_h __attribute__((vector_size(PYCONV_TH_BYTES / 2)));
typedef double pyconv_thd_h __attribute__((vector_size(PYCONV_TH_BYTES / 2)));
typedef float pyconv_thf_hu __attribute__((vector_size(PYCONV_TH_BYTES / 2), aligned(4), may_alias));
typedef double pyconv_thd_hu __attribute__((vector_size(PYCONV_TH_BYTES / 2), aligned(8), may_alias));

/* the first n lanes of v to p (all of them when n >= its lanes): one masked store with
   AVX-512 (VL for the half vectors), lane by lane otherwise -- through v's subscripts:
   copying v out through its address (memcpy) kept the whole accumulator tile in memory
   under AVX2, every FMA loading and storing its sum (4-channel blocks of layer e 3.3x
   slower than with the subscripts) */
#if defined(__AVX512F__) && defined(__AVX512VL__)
#define PYCONV_TH_MASKED(MS, KT, CT) { MS(p, (KT)((1u << n) - 1u), (CT)v); return; }
#else
#define PYCONV_TH_MASKED(MS, KT, CT)
#endif
#define PYCONV_TH_STORE(NAME, T, VT, VTU, MS, KT, CT) \
static inline void NAME(T *p, VT v, Py_ssize_t n) { \
    enum { VL = sizeof(VT) / sizeof(T) }; \
    if (n >= VL) { *(VTU *)p = v; return; } \
    PYCONV_TH_MASKED(MS, KT, CT) \
    for (Py_ssize_t i = 0; i < n; i++) p[i] = v[i]; \
}
PYCONV_TH_STORE(pyconv_th_store_f, float, pyconv_thf, pyconv_thf_u, _mm512_mask_storeu_ps, __mmask16, __m512)
PYCONV_TH_STORE(pyconv_th_store_d, double, pyconv_thd, pyconv_thd_u, _mm512_mask_storeu_pd, __mmask8, __m512d)
PYCONV_TH_STORE(pyconv_th_storeh_f, float, pyconv_thf_h, pyconv_thf_hu, _mm256_mask_storeu_ps, __mmask8, __m256)
PYCONV_TH_STORE(pyconv_th_storeh_d, double, pyconv_thd_h, pyconv_thd_hu, _mm256_mask_storeu_pd, __mmask8, __m256d)

/* rows rows of n values from src (ss apart) into dst (ds apart): whole vectors, then
   the last lanes in one masked move with AVX-512 (instead of a compiler-vectorised loop's
   remainder: narrower moves and a scalar tail per row) */
#define PYCONV_TH_COPY(T, VT, VTU, SFX, MASKED) \
static inline void pyconv_th_copy_rows_##SFX(T *restrict dst, Py_ssize_t ds, const T *restrict src, \
                                             Py_ssize_t ss, Py_ssize_t n, Py_ssize_t rows) { \
    enum { VL = sizeof(VT) / sizeof(T) }; \
    for (Py_ssize_t h = 0; h < rows; h++, dst += ds, src += ss) { \
        Py_ssize_t j = 0; \
        for (; j + VL <= n; j += VL) *(VTU *)(dst + j) = *(const VTU *)(src + j); \
        MASKED \
    } \
}
#if defined(__AVX512F__)
PYCONV_TH_COPY(float, pyconv_thf, pyconv_thf_u, f,
    if (j < n) { __mmask16 k_ = (__mmask16)((1u << (n - j)) - 1u);
                 _mm512_mask_storeu_ps(dst + j, k_, _mm512_maskz_loadu_ps(k_, src + j)); })
PYCONV_TH_COPY(double, pyconv_thd, pyconv_thd_u, d,
    if (j < n) { __mmask8 k_ = (__mmask8)((1u << (n - j)) - 1u);
                 _mm512_mask_storeu_pd(dst + j, k_, _mm512_maskz_loadu_pd(k_, src + j)); })
#else
PYCONV_TH_COPY(float, pyconv_thf, pyconv_thf_u, f, for (; j < n; j++) dst[j] = src[j];)
PYCONV_TH_COPY(double, pyconv_thd, pyconv_thd_u, d, for (; j < n; j++) dst[j] = src[j];)
#endif

/* R output rows (xs apart in the padded frame, os apart in the output) x n (<= NV*VL)
   positions of M output channels (ldo apart).  The loop runs over the input rows the R
   output rows read rather than over each output row's taps: one load of an input row's
   vectors serves every output row of the block that reads it (4 rows of a 3x3 kernel: 6
   input rows loaded per column tap, not 12), while each output row still adds its taps in
   (plane, kernel row, column) order. */
/* the M channels' accumulators A[m][v] (full) and AH[m][0] (half) += weight WEXPR (of m)
   times the loaded xv, xh */
#define PYCONV_TH_FMA(T, VT, HT, M, NV, NH, A, AH, WEXPR) \
    _Pragma("GCC unroll 4") for (int m = 0; m < M; m++) { \
        /* one broadcast serves both widths: the half is its low lanes \
           (w - 0 is w for every w, so no add is emitted; 0 + w is not) */ \
        const VT wv = (WEXPR) - (VT){0}; \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) A[v] += wv * xv[v]; \
        if (NH) { \
            HT wh; \
            memcpy(&wh, &wv, sizeof wh); \
            AH[0] += wh * xh; \
        } \
    }
#define PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, NV, NAME) PYCONV_TH_CHUNKH(T, VT, VTU, STORE, VT, VTU, STORE, M, R, NV, 0, NAME)
/* NV full vectors then NH (0 or 1) half vectors: HT, HTU, STOREH */
#define PYCONV_TH_CHUNKH(T, VT, VTU, STORE, HT, HTU, STOREH, M, R, NV, NH, NAME) \
static inline void NAME(const T *restrict x, Py_ssize_t xs, const pyconv_th_taps *tp, \
                        const T *restrict w, const T *restrict bias, T *restrict out, \
                        Py_ssize_t os, Py_ssize_t ldo, Py_ssize_t n) { \
    enum { VL = sizeof(VT) / sizeof(T), NVA = NV > 0 ? NV : 1, NHA = NH > 0 ? NH : 1 }; \
    VT acc[M][R][NVA]; \
    HT acch[M][R][NHA]; \
    _Pragma("GCC unroll 4") for (int m = 0; m < M; m++) \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) { \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[m][r][v] = (VT){0} + bias[m]; \
            if (NH) acch[m][r][0] = (HT){0} + bias[m]; \
        } \
    if (PYCONV_TH_BYTES == 64 && M == 1 && R > 1 && NV + NH >= 3 && tp->nplanes == 1 && tp->kh == 3 \
        && tp->kw == 3 && tp->dh == 1 && tp->dw == 1) { \
        /* one channel, 3x3, no dilation (the depthwise layers): the shared loop below with \
           its bounds known, so the nine weights stay in registers (with 32 of them) instead \
           of a broadcast load per input row, column and output row; the same sums in the \
           same order */ \
        const T *xp = x + tp->poffs[0]; \
        VT wk[9]; \
        _Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) wk[t] = w[t] - (VT){0}; \
        _Pragma("GCC unroll 8") for (int i = 0; i < R + 2; i++) \
            _Pragma("GCC unroll 3") for (int e = 0; e < 3; e++) { \
                VT xv[NVA]; \
                HT xh = {0}; \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) xv[v] = *(const VTU *)(xp + i * xs + e + v * VL); \
                if (NH) xh = *(const HTU *)(xp + i * xs + e + NV * VL); \
                _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) { \
                    if (i - r < 0 || i - r > 2) continue; \
                    PYCONV_TH_FMA(T, VT, HT, M, NV, NH, acc[m][r], acch[m][r], wk[(i - r) * 3 + e]) \
                } \
            } \
    } else if (R == 1 || (R < 4 && PYCONV_TH_BYTES < 64) || NV + NH < 3) { \
        /* one output row, or two in a 16-register build (little to share: AVX2's 2-row \
           blocks of layer d ran 3.90 ms flat against 4.37 shared), or rows of at most \
           two vectors (too few FMAs per load to pay the shared loop's bookkeeping: \
           28-wide depthwise rows ran 9% slower through it): one flat loop over the \
           taps, each row loading its own vectors (a loop of kw columns inside loops over \
           planes and rows cost float64 layer e 10%) */ \
        for (Py_ssize_t t = 0; t < tp->ntaps; t++) { \
            const T *xt = x + tp->toffs[t]; \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) { \
                VT xv[NVA]; \
                HT xh = {0}; \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) xv[v] = *(const VTU *)(xt + r * xs + v * VL); \
                if (NH) xh = *(const HTU *)(xt + r * xs + NV * VL); \
                PYCONV_TH_FMA(T, VT, HT, M, NV, NH, acc[m][r], acch[m][r], w[t * M + m]) \
            } \
        } \
    } else { \
        const Py_ssize_t kw = tp->kw, dw = tp->dw, wrow = tp->kw * M; \
        const Py_ssize_t span = R + (tp->kh - 1) * tp->dh; \
        const int *brow = tp->brow; \
        for (Py_ssize_t p = 0; p < tp->nplanes; p++) { \
            const T *xp = x + tp->poffs[p], *wp = w + p * tp->kh * wrow; \
            for (Py_ssize_t i = 0; i < span; i++) { \
                const T *wr[R]; \
                int any = 0; \
                _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) { \
                    const int b = brow[i - r]; \
                    wr[r] = b >= 0 ? wp + b * wrow : 0; \
                    any |= b >= 0; \
                } \
                if (!any) continue; \
                const T *xi = xp + i * xs; \
                for (Py_ssize_t e = 0; e < kw; e++) { \
                    VT xv[NVA]; \
                    HT xh = {0}; \
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) xv[v] = *(const VTU *)(xi + e * dw + v * VL); \
                    if (NH) xh = *(const HTU *)(xi + e * dw + NV * VL); \
                    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) { \
                        if (!wr[r]) continue; \
                        PYCONV_TH_FMA(T, VT, HT, M, NV, NH, acc[m][r], acch[m][r], wr[r][e * M + m]) \
                    } \
                } \
            } \
        } \
    } \
    _Pragma("GCC unroll 4") for (int m = 0; m < M; m++) \
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) { \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) \
                if (n > v * VL) STORE(out + m * ldo + r * os + v * VL, acc[m][r][v], n - v * VL); \
            if (NH) STOREH(out + m * ldo + r * os + NV * VL, acch[m][r][0], n - NV * VL); \
        } \
}
#else
#define PYCONV_TH_COPY(T, SFX) \
static void pyconv_th_copy_rows_##SFX(T *dst, Py_ssize_t ds, const T *src, Py_ssize_t ss, Py_ssize_t n, \
                                      Py_ssize_t rows) { \
    for (Py_ssize_t h = 0; h < rows; h++) memcpy(dst + h * ds, src + h * ss, n * sizeof(T)); \
}
PYCONV_TH_COPY(float, f)
PYCONV_TH_COPY(double, d)
#define PYCONV_TH_CHUNKH(T, VT, VTU, STORE, HT, HTU, STOREH, M, R, NV, NH, NAME) \
    PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, NV + NH, NAME)
#define PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, NV, NAME) \
static void NAME(const T *x, Py_ssize_t xs, const pyconv_th_taps *tp, const T *w, \
                 const T *bias, T *out, Py_ssize_t os, Py_ssize_t ldo, Py_ssize_t n) { \
    for (int m = 0; m < M; m++) for (int r = 0; r < R; r++) for (Py_ssize_t j = 0; j < n; j++) { \
        T s = bias[m]; \
        for (Py_ssize_t p = 0; p < tp->nplanes; p++) \
            for (Py_ssize_t b = 0; b < tp->kh; b++) \
                for (Py_ssize_t e = 0; e < tp->kw; e++) \
                    s += w[((p * tp->kh + b) * tp->kw + e) * M + m] \
                         * x[tp->poffs[p] + (r + b * tp->dh) * xs + e * tp->dw + j]; \
        out[m * ldo + r * os + j] = s; \
    } \
}
#endif

/* R rows of one register-block shape: full chunks of NV vectors, then one chunk of the
   vectors the rest of the row needs */
#define PYCONV_TH_SWEEP(T, VT, VTU, STORE, HT, HTU, STOREH, M, R, NV, SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, 1, pyconv_th##M##_##R##_1##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, 2, pyconv_th##M##_##R##_2##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, 3, pyconv_th##M##_##R##_3##SFX) \
PYCONV_TH_CHUNK(T, VT, VTU, STORE, M, R, 4, pyconv_th##M##_##R##_4##SFX) \
PYCONV_TH_CHUNKH(T, VT, VTU, STORE, HT, HTU, STOREH, M, R, 0, 1, pyconv_th##M##_##R##_0h##SFX) \
PYCONV_TH_CHUNKH(T, VT, VTU, STORE, HT, HTU, STOREH, M, R, 1, 1, pyconv_th##M##_##R##_1h##SFX) \
PYCONV_TH_CHUNKH(T, VT, VTU, STORE, HT, HTU, STOREH, M, R, 2, 1, pyconv_th##M##_##R##_2h##SFX) \
PYCONV_TH_CHUNKH(T, VT, VTU, STORE, HT, HTU, STOREH, M, R, 3, 1, pyconv_th##M##_##R##_3h##SFX) \
static void pyconv_th##M##_##R##SFX(const T *x, Py_ssize_t xs, const pyconv_th_taps *tp, \
                                    const T *w, const T *bias, T *out, Py_ssize_t os, Py_ssize_t ldo, \
                                    Py_ssize_t OW) { \
    enum { VL = PYCONV_TH_BYTES / sizeof(T) }; \
    Py_ssize_t j = 0, r; \
    for (; j + NV * VL <= OW; j += NV * VL) { \
        if (NV == 4) pyconv_th##M##_##R##_4##SFX(x + j, xs, tp, w, bias, out + j, os, ldo, 4 * VL); \
        else pyconv_th##M##_##R##_2##SFX(x + j, xs, tp, w, bias, out + j, os, ldo, 2 * VL); \
    } \
    r = OW - j; \
    if (r % VL != 0 && r % VL <= VL / 2) { \
        /* the last lanes fit a half vector */ \
        switch (r / VL) { \
        case 0: pyconv_th##M##_##R##_0h##SFX(x + j, xs, tp, w, bias, out + j, os, ldo, r); break; \
        case 1: pyconv_th##M##_##R##_1h##SFX(x + j, xs, tp, w, bias, out + j, os, ldo, r); break; \
        case 2: pyconv_th##M##_##R##_2h##SFX(x + j, xs, tp, w, bias, out + j, os, ldo, r); break; \
        case 3: pyconv_th##M##_##R##_3h##SFX(x + j, xs, tp, w, bias, out + j, os, ldo, r); break; \
        default: break; \
        } \
        return; \
    } \
    switch ((r + VL - 1) / VL) { \
    case 1: pyconv_th##M##_##R##_1##SFX(x + j, xs, tp, w, bias, out + j, os, ldo, r); break; \
    case 2: pyconv_th##M##_##R##_2##SFX(x + j, xs, tp, w, bias, out + j, os, ldo, r); break; \
    case 3: pyconv_th##M##_##R##_3##SFX(x + j, xs, tp, w, bias, out + j, os, ldo, r); break; \
    case 4: pyconv_th##M##_##R##_4##SFX(x + j, xs, tp, w, bias, out + j, os, ldo, r); break; \
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
/* the output rows the next block of R rows will store (M channels, ldo apart), fetched
   now: each line's trip from memory overlaps this block's arithmetic instead of stalling
   its stores (8x256x56x56 float32, 1 thread: depthwise 3x3 6-13% faster, 2 output
   channels per group 10%; a plain read prefetch where the build's ISA has no
   PREFETCHW), one per cache line.  Not for M = 4 (layer e: no gain) */
#define PYCONV_TH_PFW(R, M) \
    if (h + 2 * (R) <= nrows) \
        for (Py_ssize_t m_ = 0; m_ < (M); m_++) \
            for (Py_ssize_t r_ = h + (R); r_ < h + 2 * (R); r_++) \
                for (Py_ssize_t k_ = 0; k_ < OW; k_ += 64 / (Py_ssize_t)sizeof(*out)) \
                    PYCONV_PREFETCHW(out + m_ * ldo + r_ * os + k_);
#if defined(__GNUC__) || defined(__clang__)
#define PYCONV_PREFETCH(p) __builtin_prefetch((p), 0, 2)
#define PYCONV_PREFETCHW(p) __builtin_prefetch((p), 1, 3)
#else
#define PYCONV_PREFETCH(p) ((void)0)
#define PYCONV_PREFETCHW(p) ((void)0)
#endif
#define PYCONV_TH_ROW(T, VT, VTU, STORE, HT, HTU, STOREH, SFX) \
PYCONV_TH_SWEEP(T, VT, VTU, STORE, HT, HTU, STOREH, 1, PYCONV_TH_R1, 4, SFX) \
PYCONV_TH_SWEEP(T, VT, VTU, STORE, HT, HTU, STOREH, 2, PYCONV_TH_R2, 4, SFX) \
PYCONV_TH_SWEEP(T, VT, VTU, STORE, HT, HTU, STOREH, 4, 1, PYCONV_TH_NV4, SFX) \
PYCONV_TH_SWEEP(T, VT, VTU, STORE, HT, HTU, STOREH, 1, 1, 4, SFX) \
PYCONV_TH_SWEEP(T, VT, VTU, STORE, HT, HTU, STOREH, 2, 1, 4, SFX) \
static void pyconv_th_rows_##SFX(int M, const T *x, Py_ssize_t xs, const pyconv_th_taps *tp, \
                                 const T *w, const T *bias, T *out, Py_ssize_t os, \
                                 Py_ssize_t ldo, Py_ssize_t OW, Py_ssize_t nrows, const T *pf, \
                                 Py_ssize_t pfn) { \
    Py_ssize_t h = 0, pf0 = 0, per = pfn / (nrows > 0 ? nrows : 1) + 64; \
    if (M == 4) { \
        for (; h < nrows; h++) { \
            PYCONV_TH_PF(T) \
            pyconv_th4_1##SFX(x + h * xs, xs, tp, w, bias, out + h * os, os, ldo, OW); \
        } \
    } else if (M == 2) { \
        for (; h + PYCONV_TH_R2 <= nrows; h += PYCONV_TH_R2) { \
            PYCONV_TH_PF(T) PYCONV_TH_PF(T) PYCONV_TH_PFW(PYCONV_TH_R2, 2) \
            pyconv_th2_PYCONV_TH_R2##SFX(x + h * xs, xs, tp, w, bias, out + h * os, os, ldo, OW); \
        } \
        for (; h < nrows; h++) pyconv_th2_1##SFX(x + h * xs, xs, tp, w, bias, out + h * os, os, ldo, OW); \
    } else { \
        for (; h + PYCONV_TH_R1 <= nrows; h += PYCONV_TH_R1) { \
            PYCONV_TH_PF(T) PYCONV_TH_PF(T) PYCONV_TH_PF(T) PYCONV_TH_PF(T) PYCONV_TH_PFW(PYCONV_TH_R1, 1) \
            pyconv_th1_PYCONV_TH_R1##SFX(x + h * xs, xs, tp, w, bias, out + h * os, os, ldo, OW); \
        } \
        for (; h < nrows; h++) pyconv_th1_1##SFX(x + h * xs, xs, tp, w, bias, out + h * os, os, ldo, OW); \
    } \
}
#if defined(__GNUC__) || defined(__clang__)
PYCONV_TH_ROW(float, pyconv_thf, pyconv_thf_u, pyconv_th_store_f, pyconv_thf_h, pyconv_thf_hu, pyconv_th_storeh_f, f)
PYCONV_TH_ROW(double, pyconv_thd, pyconv_thd_u, pyconv_th_store_d, pyconv_thd_h, pyconv_thd_hu, pyconv_th_storeh_d, d)
#else
PYCONV_TH_ROW(float, float, float, 0, float, float, 0, f)
PYCONV_TH_ROW(double, double, double, 0, double, double, 0, d)
#endif

#endif  /* PYCONV_THIN_KERNELS_H */
