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
/* output channels per register block of the dense kernel (12, with 24
   accumulators, measured 3-12% slower than 8 on the suite's dense layers) */
#define PYCONV_OBW 8
#define PYCONV_OBW_NARROW 4
#if defined(__GNUC__) || defined(__clang__)
typedef float pyconv_vf __attribute__((vector_size(64)));
typedef double pyconv_vd __attribute__((vector_size(64)));
#define PYCONV_MK(T, VT, OB, NAME) \
static void NAME(const T *restrict x, Py_ssize_t cstride, const Py_ssize_t *restrict offs, \
                 Py_ssize_t ntaps, Py_ssize_t Cg, const T *restrict wb, T *restrict out, \
                 Py_ssize_t ldo, int accumulate) { \
    enum { VL = sizeof(VT) / sizeof(T) }; \
    VT acc[OB][2]; \
    if (accumulate) { \
        for (int o = 0; o < OB; o++) { \
            memcpy(&acc[o][0], out + o * ldo, sizeof(VT)); \
            memcpy(&acc[o][1], out + o * ldo + VL, sizeof(VT)); \
        } \
    } else { \
        for (int o = 0; o < OB; o++) { acc[o][0] = (VT){0}; acc[o][1] = (VT){0}; } \
    } \
    for (Py_ssize_t c = 0; c < Cg; c++) { \
        const T *xc = x + c * cstride; \
        const T *wc = wb + c * ntaps * OB; \
        for (Py_ssize_t t = 0; t < ntaps; t++) { \
            VT x0, x1; \
            memcpy(&x0, xc + offs[t], sizeof(VT)); \
            memcpy(&x1, xc + offs[t] + VL, sizeof(VT)); \
            const T *w8 = wc + t * OB; \
            for (int o = 0; o < OB; o++) { \
                acc[o][0] += w8[o] * x0; \
                acc[o][1] += w8[o] * x1; \
            } \
        } \
    } \
    for (int o = 0; o < OB; o++) { \
        memcpy(out + o * ldo, &acc[o][0], sizeof(VT)); \
        memcpy(out + o * ldo + VL, &acc[o][1], sizeof(VT)); \
    } \
}
#else
#define PYCONV_MK(T, VT, OB, NAME) \
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
PYCONV_MK(float, pyconv_vf, PYCONV_OBW, pyconv_mk_f)
PYCONV_MK(double, pyconv_vd, PYCONV_OBW, pyconv_mk_d)
PYCONV_MK(float, pyconv_vf, PYCONV_OBW_NARROW, pyconv_mk4_f)
PYCONV_MK(double, pyconv_vd, PYCONV_OBW_NARROW, pyconv_mk4_d)
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
#define PYCONV_WK(T, VT, NV, MR, NAME) \
static void NAME(const T *const *ap, Py_ssize_t r0, Py_ssize_t nr, Py_ssize_t OH, Py_ssize_t Hq, \
                 Py_ssize_t Wq, Py_ssize_t j0, Py_ssize_t OW, const T *restrict B, Py_ssize_t ldb, \
                 T *restrict C, Py_ssize_t ldc, int mr) { \
    enum { VL = sizeof(VT) / sizeof(T) }; \
    VT acc[MR][NV]; \
    const T *a[MR]; \
    for (int i = 0; i < MR; i++) for (int v = 0; v < NV; v++) acc[i][v] = (VT){0}; \
    const T *b = B; \
    for (Py_ssize_t i = 0; i < nr; i++) { \
        Py_ssize_t rr = r0 + i, od = rr / OH, oh = rr - od * OH; \
        Py_ssize_t fq = (od * Hq + oh) * Wq + j0; \
        for (int m = 0; m < MR; m++) a[m] = ap[m] + fq; \
        for (Py_ssize_t j = 0; j < OW; j++, b += ldb) { \
            VT bv[NV]; \
            for (int v = 0; v < NV; v++) memcpy(&bv[v], b + v * VL, sizeof(VT)); \
            for (int m = 0; m < MR; m++) { \
                T s = a[m][j]; \
                for (int v = 0; v < NV; v++) acc[m][v] += s * bv[v]; \
            } \
        } \
    } \
    for (int m = 0; m < mr; m++) for (int v = 0; v < NV; v++) { \
        VT c; \
        memcpy(&c, C + m * ldc + v * VL, sizeof(VT)); \
        c += acc[m][v]; \
        memcpy(C + m * ldc + v * VL, &c, sizeof(VT)); \
    } \
}
#else
#define PYCONV_WK(T, VT, NV, MR, NAME) \
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
PYCONV_WK(float, pyconv_vf, 4, 6, pyconv_wk4_f)
PYCONV_WK(float, pyconv_vf, 2, 8, pyconv_wk2_f)
PYCONV_WK(float, pyconv_vf, 1, 8, pyconv_wk1_f)
PYCONV_WK(double, pyconv_vd, 4, 6, pyconv_wk4_d)
PYCONV_WK(double, pyconv_vd, 2, 8, pyconv_wk2_d)
PYCONV_WK(double, pyconv_vd, 1, 8, pyconv_wk1_d)

#endif  /* PYCONV_DENSE_KERNELS_H */
