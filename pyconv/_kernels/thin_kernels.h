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

#endif  /* PYCONV_THIN_KERNELS_H */
