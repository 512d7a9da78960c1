/* dense_kernels.h: C micro-kernels of dense_direct.pyx (included by it with cdef extern from "dense_kernels.h"). */
#ifndef PYCONV_DENSE_KERNELS_H
#define PYCONV_DENSE_KERNELS_H

/* Register-blocked micro-kernel of the dense stride-1 direct convolution:
   OB output channels x 2 vectors of positions stay in registers while the
   loop runs over input channels and taps (one vector load of the input feeds
   OB x 2 FMAs).  OB is 8 (PYCONV_OBW), or 4 for groups of at most 4 output
   channels (grouped layers: an 8-wide block would spend half its FMAs on zero
   weights).  GCC/Clang vector extensions give explicit SIMD without
   intrinsics; other compilers get the same loop in plain C.  ``accumulate``:
   continue the sums already in ``out`` (the caller splits the input channels
   into blocks whose weights stay in L1; the sums run in the same order). */

#include <string.h>
#include "pyconv_simd.h"
/* output channels per register block of the dense kernel (12, with 24
   accumulators, measured 3-12% slower than 8 on the suite's dense layers) */
#define PYCONV_OBW 8
#define PYCONV_OBW_NARROW 4
#if defined(__GNUC__) || defined(__clang__)
/* The tile runs in the build's native vectors: OB x 2 accumulators of 64 bytes would
   take 32 of AVX2's 16 registers (64 of SSE's), and the spilled tile ran 8x64x56x56 *
   64x3x3 float32 at 1 thread in 1167 ms against 18.6 with AVX-512 on an AMD EPYC.  With
   16 registers it runs as groups of 4 output channels x 2 native vectors of positions
   (8 accumulators), each group a pass over the channels and taps; every sum still adds
   (channel, tap) in order, so the bits do not depend on the grouping. */
#define PYCONV_MK(T, OB, NAME) \
static void NAME(const T *restrict x, Py_ssize_t cstride, const Py_ssize_t *restrict offs, \
                 Py_ssize_t ntaps, Py_ssize_t Cg, const T *restrict wb, T *restrict out, \
                 Py_ssize_t ldo, int accumulate) { \
    typedef T VN __attribute__((vector_size(PYCONV_VBYTES))); \
    typedef T VNU __attribute__((vector_size(PYCONV_VBYTES), aligned(sizeof(T)), may_alias)); \
    enum { VL = PYCONV_VBYTES / sizeof(T), NVT = 128 / PYCONV_VBYTES, \
           NVG = PYCONV_VBYTES == 64 ? NVT : 2, OBG = PYCONV_VBYTES == 64 ? OB : (OB < 4 ? OB : 4) }; \
    for (int og = 0; og < OB; og += OBG) \
    for (int vg = 0; vg < NVT; vg += NVG) { \
        VN acc[OBG][NVG]; \
        T *o0 = out + og * ldo + vg * VL; \
        _Pragma("GCC unroll 8") for (int o = 0; o < OBG; o++) \
            _Pragma("GCC unroll 8") for (int v = 0; v < NVG; v++) \
                if (accumulate) acc[o][v] = *(const VNU *)(o0 + o * ldo + v * VL); else acc[o][v] = (VN){0}; \
        for (Py_ssize_t c = 0; c < Cg; c++) { \
            const T *xc = x + c * cstride + vg * VL; \
            const T *wc = wb + c * ntaps * OB + og; \
            for (Py_ssize_t t = 0; t < ntaps; t++) { \
                VN xv[NVG]; \
                _Pragma("GCC unroll 8") for (int v = 0; v < NVG; v++) xv[v] = *(const VNU *)(xc + offs[t] + v * VL); \
                const T *w8 = wc + t * OB; \
                _Pragma("GCC unroll 8") for (int o = 0; o < OBG; o++) \
                    _Pragma("GCC unroll 8") for (int v = 0; v < NVG; v++) acc[o][v] += w8[o] * xv[v]; \
            } \
        } \
        _Pragma("GCC unroll 8") for (int o = 0; o < OBG; o++) \
            _Pragma("GCC unroll 8") for (int v = 0; v < NVG; v++) *(VNU *)(o0 + o * ldo + v * VL) = acc[o][v]; \
    } \
}
#else
#define PYCONV_MK(T, OB, NAME) \
static void NAME(const T *x, Py_ssize_t cstride, const Py_ssize_t *offs, Py_ssize_t ntaps, \
                 Py_ssize_t Cg, const T *wb, T *out, Py_ssize_t ldo, int accumulate) { \
    enum { QB = 128 / sizeof(T) }; \
    if (!accumulate) \
        for (int o = 0; o < OB; o++) for (int j = 0; j < QB; j++) out[o * ldo + j] = 0; \
    for (Py_ssize_t c = 0; c < Cg; c++) for (Py_ssize_t t = 0; t < ntaps; t++) \
        for (int o = 0; o < OB; o++) for (int j = 0; j < QB; j++) \
            out[o * ldo + j] += wb[(c * ntaps + t) * OB + o] * x[c * cstride + offs[t] + j]; \
}
#endif
PYCONV_MK(float, PYCONV_OBW, pyconv_mk_f)
PYCONV_MK(double, PYCONV_OBW, pyconv_mk_d)
PYCONV_MK(float, PYCONV_OBW_NARROW, pyconv_mk4_f)
PYCONV_MK(double, PYCONV_OBW_NARROW, pyconv_mk4_d)
/* the last, partial block of positions: reads only its nq positions (ob output channels) */
#define PYCONV_MK_TAIL(T, NAME) \
static void NAME(const T *x, Py_ssize_t cstride, const Py_ssize_t *offs, Py_ssize_t ntaps, \
                 Py_ssize_t Cg, const T *wb, T *out, Py_ssize_t ldo, Py_ssize_t nq, int accumulate, int ob) { \
    if (!accumulate) \
        for (int o = 0; o < ob; o++) for (Py_ssize_t j = 0; j < nq; j++) out[o * ldo + j] = 0; \
    for (Py_ssize_t c = 0; c < Cg; c++) for (Py_ssize_t t = 0; t < ntaps; t++) { \
        const T *xr = x + c * cstride + offs[t]; \
        const T *w8 = wb + (c * ntaps + t) * ob; \
        for (int o = 0; o < ob; o++) for (Py_ssize_t j = 0; j < nq; j++) \
            out[o * ldo + j] += w8[o] * xr[j]; \
    } \
}
PYCONV_MK_TAIL(float, pyconv_mk_tail_f)
PYCONV_MK_TAIL(double, pyconv_mk_tail_d)

/* Software prefetch of rows the next chunk reads: a pointwise layer streams one
   row per input channel, more streams than the hardware prefetchers follow. */

static inline void pyconv_prefetch_rows(const char *p, Py_ssize_t nrows, Py_ssize_t rstride,
                                        Py_ssize_t nbytes) {
#if defined(__GNUC__) || defined(__clang__)
    for (Py_ssize_t r = 0; r < nrows; r++)
        for (Py_ssize_t b = 0; b < nbytes; b += 64) __builtin_prefetch(p + r * rstride + b, 0, 2);
    /* GCC counts prefetches as no side effect: a function that only prefetches (or
       calls this) would be found const and its calls deleted as dead code */
    __asm__ __volatile__("");
#else
    (void)p; (void)nrows; (void)rstride; (void)nbytes;
#endif
}

/* Register-blocked micro-kernel of the weight gradient: MR rows of the implicit
   im2col matrix (input channel, tap) x NV vectors of output channels stay in
   registers while the loop runs over output positions (K): per position NV
   vector loads of the packed grad_output row and MR broadcasts of the input.
   Positions run output row by output row (each row's frame start is computed),
   so the frame's padding columns are never read. */

#if defined(__GNUC__) || defined(__clang__)
/* The tile runs in native vectors of the build (64 bytes with AVX-512, 32 with AVX, 16
   otherwise): the packed rows hold NV 64-byte blocks, and with 16 registers the
   MR x NV block of 64-byte accumulators would not fit (under AVX2 on an AMD EPYC, layer
   a's weight gradient took 389 ms against 17.5 with AVX-512, and the calibration sent
   every dense weight gradient to GEMM), so there it runs as groups of MRG rows x NVG
   native vectors (at most 12 accumulators; 8 when a row holds two vectors), each group a
   pass over the positions: a 17.8 ms, the conv3d h 77 -> 9.8.  The rows split into groups
   of equal size (8 rows as 4 + 4, not 6 + 2: a pass of 4 accumulators waits on the FMA
   latency; AVX2 float64 conv3d h 26.5-27.1 -> 19.9 ms).  Each sum still adds the
   positions in order: the bits do not depend on the grouping. */
#define PYCONV_WK(T, NV, MR, NAME) \
static void NAME(const T *const *ap, Py_ssize_t r0, Py_ssize_t nr, Py_ssize_t OH, Py_ssize_t Hq, \
                 Py_ssize_t Wq, Py_ssize_t j0, Py_ssize_t OW, const T *restrict B, Py_ssize_t ldb, \
                 T *restrict C, Py_ssize_t ldc, int mr) { \
    typedef T VN __attribute__((vector_size(PYCONV_VBYTES))); \
    typedef T VNU __attribute__((vector_size(PYCONV_VBYTES), aligned(sizeof(T)), may_alias)); \
    enum { VL = PYCONV_VBYTES / sizeof(T), NVT = NV * (64 / PYCONV_VBYTES), \
           NVG = PYCONV_VBYTES == 64 ? NVT : (NVT < 2 ? NVT : 2), \
           MRX = NVT <= 2 ? 4 : 12 / NVG, NGR = (MR + MRX - 1) / MRX, \
           MRG = PYCONV_VBYTES == 64 ? MR : (MR + NGR - 1) / NGR }; \
    for (int cg = 0; cg < NVT; cg += NVG) \
    for (int rg = 0; rg < mr; rg += MRG) { \
        VN acc[MRG][NVG]; \
        const T *a[MRG]; \
        _Pragma("GCC unroll 8") for (int i = 0; i < MRG; i++) \
            _Pragma("GCC unroll 8") for (int v = 0; v < NVG; v++) acc[i][v] = (VN){0}; \
        const T *b = B + cg * VL; \
        /* row r0 + i's (depth, row), stepped instead of divided out per row (weight \
           gradients a and j 1.01-1.07x, h and i within 1%, same bits) */ \
        Py_ssize_t od = r0 / OH, oh = r0 - od * OH; \
        for (Py_ssize_t i = 0; i < nr; i++, oh = oh + 1 < OH ? oh + 1 : 0, od += oh == 0) { \
            Py_ssize_t fq = (od * Hq + oh) * Wq + j0; \
            _Pragma("GCC unroll 8") for (int m = 0; m < MRG; m++) a[m] = ap[rg + m < mr ? rg + m : rg] + fq; \
            for (Py_ssize_t j = 0; j < OW; j++, b += ldb) { \
                VN bv[NVG]; \
                _Pragma("GCC unroll 8") for (int v = 0; v < NVG; v++) bv[v] = *(const VNU *)(b + v * VL); \
                _Pragma("GCC unroll 8") for (int m = 0; m < MRG; m++) { \
                    const T s = a[m][j]; \
                    _Pragma("GCC unroll 8") for (int v = 0; v < NVG; v++) acc[m][v] += s * bv[v]; \
                } \
            } \
        } \
        _Pragma("GCC unroll 8") for (int m = 0; m < MRG; m++) \
            _Pragma("GCC unroll 8") for (int v = 0; v < NVG; v++) \
                if (rg + m < mr) { \
                    T *cp = C + (rg + m) * ldc + (cg + v) * VL; \
                    *(VNU *)cp = *(const VNU *)cp + acc[m][v]; \
                } \
    } \
}
#else
#define PYCONV_WK(T, NV, MR, NAME) \
static void NAME(const T *const *ap, Py_ssize_t r0, Py_ssize_t nr, Py_ssize_t OH, Py_ssize_t Hq, \
                 Py_ssize_t Wq, Py_ssize_t j0, Py_ssize_t OW, const T *B, Py_ssize_t ldb, T *C, \
                 Py_ssize_t ldc, int mr) { \
    enum { VL = 64 / sizeof(T) }; \
    for (int m = 0; m < mr; m++) { \
        const T *b = B; \
        for (Py_ssize_t i = 0; i < nr; i++) { \
            Py_ssize_t rr = r0 + i, od = rr / OH, oh = rr - od * OH; \
            const T *a = ap[m] + (od * Hq + oh) * Wq + j0; \
            for (Py_ssize_t j = 0; j < OW; j++, b += ldb) \
                for (int v = 0; v < NV * VL; v++) C[m * ldc + v] += a[j] * b[v]; \
        } \
    } \
}
#endif
PYCONV_WK(float, 4, 6, pyconv_wk4_f)
PYCONV_WK(float, 2, 8, pyconv_wk2_f)
PYCONV_WK(float, 1, 8, pyconv_wk1_f)
PYCONV_WK(double, 4, 6, pyconv_wk4_d)
PYCONV_WK(double, 2, 8, pyconv_wk2_d)
PYCONV_WK(double, 1, 8, pyconv_wk1_d)

/* Weight-gradient micro-kernel with vectors along OUTPUT POSITIONS ('dense_pos'): for
   groups of few output channels, where the kernel above fills 4 of its 16 float32 lanes
   with an output channel each (the rest are zeros).  A register tile of MR (input channel,
   tap) rows x NO output channels, each accumulator a vector of partial sums over the
   positions of its lanes; per vector of positions NO aligned loads of grad_output and MR
   unaligned loads of the input rows.  The positions come in runs of frame positions: run
   k reads the rows ap[m] + runs[3k] + j and grad_output gp[o] + runs[3k + 2] + j for j <
   runs[3k + 1] (packed per channel, padded with zeros to whole vectors).  A run is one
   output row, or (when the caller knows the input rows it reads are finite) every row of
   the unit in one depth slice, the frame's padding columns between them carrying zero
   grad_output: no work per row, and rows narrower than a vector share one.  The last
   vector of a run masks the input lanes past it to zero (an Inf or NaN read there must
   not make 0 * inf; nor may the rows beyond, not yet built).  The partial sums are added
   into C[m * ldc + o * L] (L = 64 bytes of lanes; the first VL hold this build's vector),
   summed over lanes by the caller.  Rows past ``mr`` and channels past ``no`` repeat the
   last (computed, not stored). */
#if defined(__GNUC__) || defined(__clang__)
#if PYCONV_VBYTES == 64
#define PYCONV_WKP_MR 6
#define PYCONV_WKP_NO 4
#else
#define PYCONV_WKP_MR 3
#define PYCONV_WKP_NO 3
#endif
#define PYCONV_WKP(T, IT, NAME) \
static void NAME(const T *const *ap, const Py_ssize_t *runs, Py_ssize_t nrun, const T *const *gp, \
                 T *restrict C, Py_ssize_t ldc, int mr, int no) { \
    typedef T VN __attribute__((vector_size(PYCONV_VBYTES))); \
    typedef T VNU __attribute__((vector_size(PYCONV_VBYTES), aligned(sizeof(T)), may_alias)); \
    typedef IT VI __attribute__((vector_size(PYCONV_VBYTES))); \
    enum { VL = PYCONV_VBYTES / sizeof(T), L = 64 / sizeof(T), MR = PYCONV_WKP_MR, NO = PYCONV_WKP_NO }; \
    VN acc[MR][NO]; \
    _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) \
        _Pragma("GCC unroll 8") for (int o = 0; o < NO; o++) acc[m][o] = (VN){0}; \
    for (Py_ssize_t k = 0; k < nrun; k++) { \
        const Py_ssize_t q0 = runs[3 * k], n = runs[3 * k + 1], full = n / VL * VL; \
        const T *a[MR]; \
        const T *g[NO]; \
        _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) a[m] = ap[m] + q0; \
        _Pragma("GCC unroll 8") for (int o = 0; o < NO; o++) g[o] = gp[o] + runs[3 * k + 2]; \
        /* whole vectors, then the masked last one (a loop of its own: one loop with both \
           spilled the grad_output vectors every step) */ \
        Py_ssize_t j = 0; \
        for (; j < full; j += VL) { \
            VN gv[NO]; \
            _Pragma("GCC unroll 8") for (int o = 0; o < NO; o++) { gv[o] = *(const VN *)(g[o] + j); PYCONV_IN_REG(gv[o]); } \
            _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) { \
                VN xv = *(const VNU *)(a[m] + j); \
                PYCONV_IN_REG(xv); \
                _Pragma("GCC unroll 8") for (int o = 0; o < NO; o++) acc[m][o] += xv * gv[o]; \
            } \
        } \
        if (j < n) { \
            VI keep; \
            _Pragma("GCC unroll 16") for (int l = 0; l < VL; l++) keep[l] = full + l < n ? (IT)-1 : 0; \
            VN gv[NO]; \
            _Pragma("GCC unroll 8") for (int o = 0; o < NO; o++) gv[o] = *(const VN *)(g[o] + j); \
            _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) { \
                const VN xv = (VN)((VI)*(const VNU *)(a[m] + j) & keep); \
                _Pragma("GCC unroll 8") for (int o = 0; o < NO; o++) acc[m][o] += xv * gv[o]; \
            } \
        } \
    } \
    _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) \
        _Pragma("GCC unroll 8") for (int o = 0; o < NO; o++) \
            if (m < mr && o < no) { \
                T *cp = C + m * ldc + o * L; \
                *(VNU *)cp = *(const VNU *)cp + acc[m][o]; \
            } \
}
#else
#define PYCONV_WKP_MR 4
#define PYCONV_WKP_NO 4
#define PYCONV_WKP(T, IT, NAME) \
static void NAME(const T *const *ap, const Py_ssize_t *runs, Py_ssize_t nrun, const T *const *gp, T *C, \
                 Py_ssize_t ldc, int mr, int no) { \
    for (int m = 0; m < mr; m++) \
        for (int o = 0; o < no; o++) { \
            T s = 0; \
            for (Py_ssize_t k = 0; k < nrun; k++) { \
                const T *a = ap[m] + runs[3 * k], *g = gp[o] + runs[3 * k + 2]; \
                for (Py_ssize_t j = 0; j < runs[3 * k + 1]; j++) s += a[j] * g[j]; \
            } \
            C[m * ldc + o * (64 / sizeof(T))] += s; \
        } \
}
#endif
PYCONV_WKP(float, int, pyconv_wkp_f)
PYCONV_WKP(double, long long, pyconv_wkp_d)

/* ---------------------------------------------------------------------------------
   Dense forward with vectors along OUTPUT CHANNELS (algorithm 'dense_oc'): a register
   tile of P output positions of one row x V vectors of output channels.  Per (input
   channel, tap) the tile takes V vector loads of packed weights and P scalar broadcasts
   of the input, read straight from a zero-padded copy of the rows a work unit needs
   (stride and dilation are only the broadcast addresses: no phase planes).  The sums
   come out as [position][channel] and are transposed to NCHW through VL x VL register
   transposes.  Vector width = the build variant's (64 bytes with AVX-512, 32 with AVX,
   16 otherwise); P fills the register file: V = 2 takes P x 2 accumulators + 2 weight
   vectors + 1 broadcast (14 x 2 of AVX-512's 32 registers, 6 x 2 of 16), V = 1 (groups
   of at most VL output channels) P x 1.  Each position's sum runs over (channel, tap)
   in the same order whatever tile or tail kernel computes it: the bits do not depend
   on P, the tiling or the thread count. */
#define PYCONV_OC_BYTES PYCONV_VBYTES
#if PYCONV_VBYTES == 64
#define PYCONV_OC_P2 14
#define PYCONV_OC_P1 28
#else
#define PYCONV_OC_P2 6
#define PYCONV_OC_P1 12
#endif
/* lanes of one vector: float, double */
#define PYCONV_OC_VLF (PYCONV_OC_BYTES / 4)
#define PYCONV_OC_VLD (PYCONV_OC_BYTES / 8)

#if defined(__GNUC__) || defined(__clang__)
typedef float pyconv_ocf __attribute__((vector_size(PYCONV_OC_BYTES)));
typedef double pyconv_ocd __attribute__((vector_size(PYCONV_OC_BYTES)));
/* unaligned, aliasing views for loads and stores: a memcpy of a 64-byte vector may be
   lowered to two 32-byte moves, and a 64-byte load of them then misses store forwarding */
typedef float pyconv_ocf_u __attribute__((vector_size(PYCONV_OC_BYTES), aligned(4), may_alias));
typedef double pyconv_ocd_u __attribute__((vector_size(PYCONV_OC_BYTES), aligned(8), may_alias));
typedef int pyconv_oci __attribute__((vector_size(PYCONV_OC_BYTES)));
typedef long long pyconv_ocl __attribute__((vector_size(PYCONV_OC_BYTES)));

/* the register tile: x points at the tile's first position (tap 0) of the first channel,
   channels cs apart, positions sw apart, taps toffs[t] further; R rows of P positions
   (R = 2: the second row's inputs xr further, its sums orr further); w: [c][t][V*VL], the
   channels wcs apart (wcs > ntaps*V*VL: a run of a channel's taps, the runs of a row whose
   other taps read padding rows);
   o: P rows of V*VL sums, ``os`` apart (continued when ``accumulate``); pf: NULL, or
   where the tile's sums will be stored, pfn channels pfld apart (P positions each): the
   line each channel's run starts in is fetched into L2 for the store (the next tile's
   fetches cover where the run ends), one every fourth (channel, tap) iteration, spread
   over the tile's arithmetic, so the transposition's stores find their lines in cache.
   (Intel Xeon, the two builds alternated in one process, benchmarks/ab_kernel.py: 1 thread
   j 1.02-1.06x, a 1.00-1.04x, b 1.00-1.02x, f 1.02-1.03x, i 1.01-1.02x; 2 threads
   0.96-1.03x, around 1.0; again with the order flipped every round, together with the
   other dense kernel changes of 2026-12-06: 1 thread j 1.20x, a 1.03x, f 1.02x, 2 threads
   0.99x; without the prefetch at 2 threads 0.99-1.01x, so it stays on at both.  Fetched in one burst before each row instead: j
   0.92-0.96x; the first and last line of every run, into L1 or L2: j at 2 threads
   0.96-0.99x) */
#define PYCONV_OCK(T, VT, VTU, P, V, R, SW, NAME) \
static void NAME(const T *restrict x, Py_ssize_t cs, Py_ssize_t swr, Py_ssize_t xr, \
                 const Py_ssize_t *restrict toffs, Py_ssize_t ntaps, Py_ssize_t nc, const T *restrict w, \
                 Py_ssize_t wcs, T *restrict o, Py_ssize_t os, Py_ssize_t orr, int accumulate, \
                 const T *pf, Py_ssize_t pfld, Py_ssize_t pfn) { \
    enum { VL = sizeof(VT) / sizeof(T) }; \
    const Py_ssize_t sw = SW ? SW : swr; \
    Py_ssize_t pi = 0; \
    const Py_ssize_t pe = pf ? 4 * pfn : 0; \
    VT acc[R][P][V]; \
    if (accumulate) { \
        _Pragma("GCC unroll 2") for (int i = 0; i < R; i++) \
            _Pragma("GCC unroll 32") for (int p = 0; p < P; p++) \
                _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) \
                    acc[i][p][v] = *(const VTU *)(o + i * orr + p * os + v * VL); \
    } else { \
        _Pragma("GCC unroll 2") for (int i = 0; i < R; i++) \
            _Pragma("GCC unroll 32") for (int p = 0; p < P; p++) \
                _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[i][p][v] = (VT){0}; \
    } \
    for (Py_ssize_t c = 0; c < nc; c++) { \
        const T *xc = x + c * cs; \
        const T *wc = w + c * wcs; \
        for (Py_ssize_t t = 0; t < ntaps; t++) { \
            const T *xt = xc + toffs[t]; \
            VT wv[V]; \
            if (pi < pe) { \
                if (!(pi & 3)) __builtin_prefetch(pf + (pi >> 2) * pfld, 1, 2); \
                pi++; \
            } \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) wv[v] = *(const VTU *)(wc + (t * V + v) * VL); \
            _Pragma("GCC unroll 2") for (int i = 0; i < R; i++) \
                _Pragma("GCC unroll 32") for (int p = 0; p < P; p++) { \
                    const T b = xt[i * xr + p * sw]; \
                    _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[i][p][v] += wv[v] * b; \
                } \
        } \
    } \
    _Pragma("GCC unroll 2") for (int i = 0; i < R; i++) \
        _Pragma("GCC unroll 32") for (int p = 0; p < P; p++) \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) *(VTU *)(o + i * orr + p * os + v * VL) = acc[i][p][v]; \
}

/* in-register transpose of VL rows of VL lanes: each stage swaps the off-diagonal
   h x h blocks (lane bit h against row bit h), h = VL/2 ... 1 */
#define PYCONV_OC_TR(T, VT, IT, NAME) \
static inline void NAME(VT *r) { \
    enum { VL = sizeof(VT) / sizeof(T) }; \
    _Pragma("GCC unroll 8") for (int h = VL / 2; h >= 1; h /= 2) { \
        IT lo, hi; \
        for (int e = 0; e < VL; e++) { \
            lo[e] = (e & h) ? VL + e - h : e; \
            hi[e] = (e & h) ? VL + e : e + h; \
        } \
        _Pragma("GCC unroll 16") for (int i = 0; i < VL; i++) \
            if (!(i & h)) { \
                VT a = r[i], b = r[i + h]; \
                r[i] = __builtin_shuffle(a, b, lo); \
                r[i + h] = __builtin_shuffle(a, b, hi); \
            } \
    } \
}

/* out[j * ld + k] = buf[k * B + j] (+ bias[j]) for k < nk, j < oe (oe <= B): the
   [position][channel] sums of a unit to NCHW, VL x VL blocks through the registers */
#define PYCONV_OC_OUT(T, VT, VTU, TR, NAME) \
__attribute__((noinline)) static void NAME##_blk(const T *s, Py_ssize_t B, T *d, Py_ssize_t ld, Py_ssize_t je, \
                                                 const T *bias) { \
    enum { VL = sizeof(VT) / sizeof(T) }; \
    VT r[VL]; \
    _Pragma("GCC unroll 16") for (int i = 0; i < VL; i++) r[i] = *(const VTU *)(s + i * B); \
    TR(r); \
    if (bias) { for (Py_ssize_t j = 0; j < je; j++, d += ld) *(VTU *)d = r[j] + bias[j]; } \
    else { for (Py_ssize_t j = 0; j < je; j++, d += ld) *(VTU *)d = r[j]; } \
} \
static void NAME(const T *buf, Py_ssize_t B, Py_ssize_t nk, Py_ssize_t oe, T *out, Py_ssize_t ld, \
                 const T *bias) { \
    enum { VL = sizeof(VT) / sizeof(T) }; \
    Py_ssize_t k = 0; \
    for (; k + VL <= nk; k += VL) \
        for (Py_ssize_t j0 = 0; j0 < oe; j0 += VL) \
            NAME##_blk(buf + k * B + j0, B, out + j0 * ld + k, ld, oe - j0 < VL ? oe - j0 : VL, \
                       bias ? bias + j0 : bias); \
    for (; k < nk; k++) \
        for (Py_ssize_t j = 0; j < oe; j++) out[j * ld + k] = bias ? buf[k * B + j] + bias[j] : buf[k * B + j]; \
}

/* The tile widths.  A tile of w positions x V vectors x R rows keeps w V R sums in flight;
   with fewer than 8 (4-cycle FMA latency x 2 FMA pipes) each (channel, tap) step waits on
   the last one, so a row's positions go through tiles of at least 8 / (V R) wherever the
   row has them: the widest tile (PYCONV_OC_P2 for V R = 2, PYCONV_OC_P1 for V R = 1; at
   input stride 1, 2 or any) while what is left stays 0 or at least that, then what is
   left in as few tiles of at most WM (the widest, at most 14) as it takes, of about equal widths
   (8 = 4 + 4, 16 = 8 + 8, not 7 + 1 and 14 + 2; 128->32 3x3 on 8-wide maps, 1 thread,
   AMD EPYC: 156 GF/s, 5-wide 112, against 213 on 14-wide rows).  Each shape has a
   kernel for every width up to 14. */
#define PYCONV_OC_ARGS(T) const T *, Py_ssize_t, Py_ssize_t, Py_ssize_t, const Py_ssize_t *, Py_ssize_t, \
        Py_ssize_t, const T *, Py_ssize_t, T *, Py_ssize_t, Py_ssize_t, int, const T *, Py_ssize_t, Py_ssize_t
#define PYCONV_OC_W(T, VT, VTU, PB, V, R, TAG) \
PYCONV_OCK(T, VT, VTU, PB, V, R, 1, TAG##_s1) \
PYCONV_OCK(T, VT, VTU, PB, V, R, 2, TAG##_s2) \
PYCONV_OCK(T, VT, VTU, PB, V, R, 0, TAG##_sn) \
PYCONV_OCK(T, VT, VTU, 1, V, R, 0, TAG##_1) PYCONV_OCK(T, VT, VTU, 2, V, R, 0, TAG##_2) \
PYCONV_OCK(T, VT, VTU, 3, V, R, 0, TAG##_3) PYCONV_OCK(T, VT, VTU, 4, V, R, 0, TAG##_4) \
PYCONV_OCK(T, VT, VTU, 5, V, R, 0, TAG##_5) PYCONV_OCK(T, VT, VTU, 6, V, R, 0, TAG##_6) \
PYCONV_OCK(T, VT, VTU, 7, V, R, 0, TAG##_7) PYCONV_OCK(T, VT, VTU, 8, V, R, 0, TAG##_8) \
PYCONV_OCK(T, VT, VTU, 9, V, R, 0, TAG##_9) PYCONV_OCK(T, VT, VTU, 10, V, R, 0, TAG##_10) \
PYCONV_OCK(T, VT, VTU, 11, V, R, 0, TAG##_11) PYCONV_OCK(T, VT, VTU, 12, V, R, 0, TAG##_12) \
PYCONV_OCK(T, VT, VTU, 13, V, R, 0, TAG##_13) PYCONV_OCK(T, VT, VTU, 14, V, R, 0, TAG##_14) \
static void (*const TAG[15])(PYCONV_OC_ARGS(T)) = { \
    NULL, TAG##_1, TAG##_2, TAG##_3, TAG##_4, TAG##_5, TAG##_6, TAG##_7, \
    TAG##_8, TAG##_9, TAG##_10, TAG##_11, TAG##_12, TAG##_13, TAG##_14};
/* a tile's output prefetch target: position q of the row's first output, or NULL */
#define PYCONV_OC_PF(q) (pf ? pf + (q) : pf)
#define PYCONV_OC_CALL(K, q) K(x + (q) * sw, cs, sw, xr, toffs, ntaps, nc, w, wcs, o + (q) * os, os, orr, acc, \
                               PYCONV_OC_PF(q), pfld, pfn)
/* a row's (R = 2: two rows') n positions through the tiles of shape TAG: widest PB, at
   least M = 8 / (V R) sums wide, the rest at most WM wide */
#define PYCONV_OC_SWEEP(TAG, PB, M, WM) { \
        while (n - q >= (PB) + (M) || n - q == (PB)) { \
            if (sw == 1) PYCONV_OC_CALL(TAG##_s1, q); \
            else if (sw == 2) PYCONV_OC_CALL(TAG##_s2, q); \
            else PYCONV_OC_CALL(TAG##_sn, q); \
            q += (PB); \
        } \
        for (Py_ssize_t k = (n - q + (WM) - 1) / (WM); k > 0; k--) { \
            Py_ssize_t wd = (n - q) / k; \
            PYCONV_OC_CALL(TAG[wd], q); \
            q += wd; \
        } \
    }

#define PYCONV_OC_SET(T, VT, VTU, S) \
PYCONV_OC_W(T, VT, VTU, PYCONV_OC_P2, 2, 1, pyconv_ock2_##S) \
PYCONV_OC_W(T, VT, VTU, PYCONV_OC_P2, 1, 2, pyconv_ock1r2_##S) \
PYCONV_OC_W(T, VT, VTU, PYCONV_OC_P1, 1, 1, pyconv_ock1_##S) \
/* n positions of one row (o: n rows of B sums, os apart), v2: B = 2 VL (else VL); rows = 2 \
   (one vector only, v2 = 0): also the n positions of the row xr further, sums orr further; \
   pf: NULL, or where the row's first output will be stored (pfn channels pfld apart), \
   fetched for the transposition's stores */ \
static void pyconv_oc_rowp_##S(const T *x, Py_ssize_t cs, Py_ssize_t sw, Py_ssize_t xr, const Py_ssize_t *toffs, \
                               Py_ssize_t ntaps, Py_ssize_t nc, const T *w, Py_ssize_t wcs, \
                               T *o, Py_ssize_t os, Py_ssize_t orr, Py_ssize_t n, int v2, int rows, int acc, \
                               const T *pf, Py_ssize_t pfld, Py_ssize_t pfn) { \
    Py_ssize_t q = 0; \
    if (v2) PYCONV_OC_SWEEP(pyconv_ock2_##S, PYCONV_OC_P2, 4, PYCONV_OC_P2) \
    else if (rows == 2) PYCONV_OC_SWEEP(pyconv_ock1r2_##S, PYCONV_OC_P2, 4, PYCONV_OC_P2) \
    else PYCONV_OC_SWEEP(pyconv_ock1_##S, PYCONV_OC_P1, 8, (PYCONV_OC_P1 < 14 ? PYCONV_OC_P1 : 14)) \
}
PYCONV_OC_SET(float, pyconv_ocf, pyconv_ocf_u, f)
PYCONV_OC_SET(double, pyconv_ocd, pyconv_ocd_u, d)
PYCONV_OC_TR(float, pyconv_ocf, pyconv_oci, pyconv_oc_tr_f)
PYCONV_OC_TR(double, pyconv_ocd, pyconv_ocl, pyconv_oc_tr_d)
PYCONV_OC_OUT(float, pyconv_ocf, pyconv_ocf_u, pyconv_oc_tr_f, pyconv_oc_out_f)
PYCONV_OC_OUT(double, pyconv_ocd, pyconv_ocd_u, pyconv_oc_tr_d, pyconv_oc_out_d)
/* d[j * ld + k] = s[k * ls + j] for k < nk, j < nj: the dense weight kernel's grad_output
   tile packed position-major (k: output channels, ls apart in the source; j: positions),
   VL x VL blocks through the register transpose.  Scalar copies took 28% of the 7x7 s2
   3->64 weight gradient (64 loads a different page apart per position). */
#define PYCONV_TPOSE(T, VT, VTU, TR, NAME) \
static void NAME(const T *s, Py_ssize_t ls, Py_ssize_t nk, Py_ssize_t nj, T *d, Py_ssize_t ld) { \
    enum { VL = sizeof(VT) / sizeof(T) }; \
    Py_ssize_t j = 0; \
    for (; j + VL <= nj; j += VL) { \
        Py_ssize_t k = 0; \
        /* more source rows than the hardware prefetchers follow */ \
        for (Py_ssize_t q = 0; q < nk; q++) __builtin_prefetch(s + q * ls + j + 4 * VL, 0, 3); \
        for (; k + VL <= nk; k += VL) { \
            VT r[VL]; \
            _Pragma("GCC unroll 16") for (int i = 0; i < VL; i++) r[i] = *(const VTU *)(s + (k + i) * ls + j); \
            TR(r); \
            _Pragma("GCC unroll 16") for (int i = 0; i < VL; i++) *(VTU *)(d + (j + i) * ld + k) = r[i]; \
        } \
        for (; k < nk; k++) for (int i = 0; i < VL; i++) d[(j + i) * ld + k] = s[k * ls + j + i]; \
    } \
    for (; j < nj; j++) for (Py_ssize_t k = 0; k < nk; k++) d[j * ld + k] = s[k * ls + j]; \
}
PYCONV_TPOSE(float, pyconv_ocf, pyconv_ocf_u, pyconv_oc_tr_f, pyconv_tpose_f)
PYCONV_TPOSE(double, pyconv_ocd, pyconv_ocd_u, pyconv_oc_tr_d, pyconv_tpose_d)
#else
/* plain C: the same sums in the same order, position by position */
#define PYCONV_OC_PLAIN(T, VLX, S) \
static void pyconv_oc_rowp_##S(const T *x, Py_ssize_t cs, Py_ssize_t sw, Py_ssize_t xr, const Py_ssize_t *toffs, \
                               Py_ssize_t ntaps, Py_ssize_t nc, const T *w, Py_ssize_t wcs, \
                               T *o, Py_ssize_t os, Py_ssize_t orr, Py_ssize_t n, int v2, int rows, int acc, \
                               const T *pf, Py_ssize_t pfld, Py_ssize_t pfn) { \
    Py_ssize_t B = v2 ? 2 * (VLX) : (VLX); \
    (void)pf; (void)pfld; (void)pfn; \
    for (int i = 0; i < rows; i++) \
        for (Py_ssize_t q = 0; q < n; q++) { \
            T *oq = o + i * orr + q * os; \
            if (!acc) for (Py_ssize_t j = 0; j < B; j++) oq[j] = 0; \
            for (Py_ssize_t c = 0; c < nc; c++) for (Py_ssize_t t = 0; t < ntaps; t++) { \
                T b = x[i * xr + c * cs + q * sw + toffs[t]]; \
                const T *wt = w + c * wcs + t * B; \
                for (Py_ssize_t j = 0; j < B; j++) oq[j] += wt[j] * b; \
            } \
        } \
} \
static void pyconv_oc_out_##S(const T *buf, Py_ssize_t B, Py_ssize_t nk, Py_ssize_t oe, T *out, Py_ssize_t ld, \
                              const T *bias) { \
    for (Py_ssize_t k = 0; k < nk; k++) \
        for (Py_ssize_t j = 0; j < oe; j++) out[j * ld + k] = bias ? buf[k * B + j] + bias[j] : buf[k * B + j]; \
}
PYCONV_OC_PLAIN(float, PYCONV_OC_VLF, f)
PYCONV_OC_PLAIN(double, PYCONV_OC_VLD, d)
#define PYCONV_TPOSE_PLAIN(T, NAME) \
static void NAME(const T *s, Py_ssize_t ls, Py_ssize_t nk, Py_ssize_t nj, T *d, Py_ssize_t ld) { \
    for (Py_ssize_t j = 0; j < nj; j++) for (Py_ssize_t k = 0; k < nk; k++) d[j * ld + k] = s[k * ls + j]; \
}
PYCONV_TPOSE_PLAIN(float, pyconv_tpose_f)
PYCONV_TPOSE_PLAIN(double, pyconv_tpose_d)
#endif

/* 1 when none of the n values is an Inf or a NaN: the largest exponent field is below the
   all-ones one (an integer max reduction, vectorised where a float test would not be) */
static inline int pyconv_finite_f(const float *a, Py_ssize_t n) {
    unsigned int m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned int u;
        memcpy(&u, a + i, sizeof u);
        u &= 0x7f800000u;
        m = u > m ? u : m;
    }
    return m != 0x7f800000u;
}
static inline int pyconv_finite_d(const double *a, Py_ssize_t n) {
    unsigned long long m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long u;
        memcpy(&u, a + i, sizeof u);
        u &= 0x7ff0000000000000ull;
        m = u > m ? u : m;
    }
    return m != 0x7ff0000000000000ull;
}

/* Thin groups over per-thread phase planes ('thin_phase', dense_direct.thin_phase): n frame
   positions of one output channel, out[f] = bias + sum over (channel c, tap t) of
   w[c * ntaps + t] * P[c * S + offs[t] + f], the channels and taps in that order for every
   position.  The caller leaves PYCONV_TF_SLACK values of slack past the planes and past
   out: a frame ends with a whole vector, whose lanes past n are computed and dropped.  Four vectors of
   positions per block: per (channel, tap) one broadcast weight and four unaligned loads,
   the sums in registers (the phase planes make every tap a constant offset, so the strided
   layer's taps are contiguous runs, no gathers). */
#define PYCONV_TF_SLACK (PYCONV_VBYTES / 4)
#if defined(__GNUC__) || defined(__clang__)
#define PYCONV_TF(T, VT, VTU, NAME) \
/* nv (a constant where it is inlined) vectors of positions from f, their sums in registers */ \
static inline __attribute__((always_inline)) void NAME##_blk(const T *P, Py_ssize_t S, Py_ssize_t nc, \
        const Py_ssize_t *offs, Py_ssize_t ntaps, const T *w, T bias, T *out, Py_ssize_t f, const int nv) { \
    enum { VL = sizeof(VT) / sizeof(T), U = 4 }; \
    VT acc[U]; \
    _Pragma("GCC unroll 4") for (int u = 0; u < U; u++) acc[u] = (VT){0} + bias; \
    for (Py_ssize_t c = 0; c < nc; c++) { \
        const T *pc = P + c * S + f; \
        for (Py_ssize_t t = 0; t < ntaps; t++) { \
            const T *src = pc + offs[t]; \
            const T wv = w[c * ntaps + t]; \
            _Pragma("GCC unroll 4") for (int u = 0; u < U; u++) \
                if (u < nv) acc[u] += wv * *(const VTU *)(src + u * VL); \
        } \
    } \
    _Pragma("GCC unroll 4") for (int u = 0; u < U; u++) if (u < nv) *(VTU *)(out + f + u * VL) = acc[u]; \
} \
static void NAME(const T *P, Py_ssize_t S, Py_ssize_t nc, const Py_ssize_t *offs, Py_ssize_t ntaps, \
                 const T *w, T bias, T *out, Py_ssize_t n) { \
    enum { VL = sizeof(VT) / sizeof(T), U = 4 }; \
    Py_ssize_t f = 0; \
    for (; f + U * VL <= n; f += U * VL) NAME##_blk(P, S, nc, offs, ntaps, w, bias, out, f, U); \
    /* the rest in one block of whole vectors (as many chains in flight as there are \
       vectors: one at a time, a 7x7 frame's four waited on the FMA latency in turn); the \
       last one reads and writes up to VL - 1 values past n (the caller's slack; those \
       lanes are dropped) */ \
    switch ((n - f + VL - 1) / VL) { \
    case 4: NAME##_blk(P, S, nc, offs, ntaps, w, bias, out, f, 4); break; \
    case 3: NAME##_blk(P, S, nc, offs, ntaps, w, bias, out, f, 3); break; \
    case 2: NAME##_blk(P, S, nc, offs, ntaps, w, bias, out, f, 2); break; \
    case 1: NAME##_blk(P, S, nc, offs, ntaps, w, bias, out, f, 1); break; \
    default: break; \
    } \
}
PYCONV_TF(float, pyconv_ocf, pyconv_ocf_u, pyconv_tf_f)
PYCONV_TF(double, pyconv_ocd, pyconv_ocd_u, pyconv_tf_d)
#else
#define PYCONV_TF_PLAIN(T, NAME) \
static void NAME(const T *P, Py_ssize_t S, Py_ssize_t nc, const Py_ssize_t *offs, Py_ssize_t ntaps, \
                 const T *w, T bias, T *out, Py_ssize_t n) { \
    for (Py_ssize_t f = 0; f < n; f++) { \
        T acc = bias; \
        for (Py_ssize_t c = 0; c < nc; c++) \
            for (Py_ssize_t t = 0; t < ntaps; t++) acc += w[c * ntaps + t] * P[c * S + offs[t] + f]; \
        out[f] = acc; \
    } \
}
PYCONV_TF_PLAIN(float, pyconv_tf_f)
PYCONV_TF_PLAIN(double, pyconv_tf_d)
#endif

/* The weight gradient's terms of thin_phase (dense_direct.thin_phase_weight), for the taps
   of one input channel and one output channel over the output frame (its rows wq apart, as
   the forward's): acc[t VL + l] += the sum over the frame's vectors f (n values, a multiple
   of VL) of lane l of g[f..] (p[offs[t] + f..] & m[f..]) -- g: one output channel's
   grad_output in the frame, p: the input channel's phase planes, m: all-ones bits where the
   frame holds an output, zero bits in the columns and rows between (the plane's values there
   never meet g: an Inf input read by no output stays out, 0 x inf being nan).  Per lane the
   sums run over the frame and, across calls, the samples; the caller adds a tap's lanes in
   order at the end.  Taps go eight at a time, each with its own vector of sums (the frame's
   g and m loaded once for the eight).  g, m and acc 64-byte aligned; reads up to VL - 1
   values past a plane's frame (the caller's slack). */
#if defined(__GNUC__) || defined(__clang__)
#define PYCONV_TWF(T, VT, VTU, IT, NAME) \
static void NAME(const T *p, const Py_ssize_t *offs, Py_ssize_t ntaps, const T *g, const T *m, Py_ssize_t n, \
                 T *acc) { \
    enum { VL = sizeof(VT) / sizeof(T), NB = 8 }; \
    for (Py_ssize_t t0 = 0; t0 < ntaps; t0 += NB) { \
        const Py_ssize_t nb = ntaps - t0 < NB ? ntaps - t0 : NB; \
        VT a[NB]; \
        _Pragma("GCC unroll 8") for (int i = 0; i < NB; i++) a[i] = i < nb ? *(const VT *)(acc + (t0 + i) * VL) : (VT){0}; \
        for (Py_ssize_t f = 0; f < n; f += VL) { \
            const VT gv = *(const VT *)(g + f); \
            const IT mv = *(const IT *)(m + f); \
            _Pragma("GCC unroll 8") for (int i = 0; i < NB; i++) \
                if (i < nb) a[i] += gv * (VT)((IT) * (const VTU *)(p + offs[t0 + i] + f) & mv); \
        } \
        for (Py_ssize_t i = 0; i < nb; i++) *(VT *)(acc + (t0 + i) * VL) = a[i]; \
    } \
}
PYCONV_TWF(float, pyconv_ocf, pyconv_ocf_u, pyconv_oci, pyconv_twf_f)
PYCONV_TWF(double, pyconv_ocd, pyconv_ocd_u, pyconv_ocl, pyconv_twf_d)
#else
#define PYCONV_TWF_PLAIN(T, NAME) \
static void NAME(const T *p, const Py_ssize_t *offs, Py_ssize_t ntaps, const T *g, const T *m, Py_ssize_t n, \
                 T *acc) { \
    enum { VL = PYCONV_VBYTES / sizeof(T) }; \
    for (Py_ssize_t t = 0; t < ntaps; t++) \
        for (Py_ssize_t f = 0; f < n; f++) { \
            unsigned char keep; \
            memcpy(&keep, m + f, 1); \
            if (keep) acc[t * VL + f % VL] += g[f] * p[offs[t] + f]; \
        } \
}
PYCONV_TWF_PLAIN(float, pyconv_twf_f)
PYCONV_TWF_PLAIN(double, pyconv_twf_d)
#endif

#endif  /* PYCONV_DENSE_KERNELS_H */
