/* direct_sweep.h: the register-blocked sweep of direct.pyx (included with
   cdef extern from "direct_sweep.h").

   o[j] (+)= sum_g w[g] * p[g][j] for j0 <= j < j1, taps in order g = 0..n-1,
   one multiply-add step per tap ("acc = acc + w * x", contracted to an FMA
   where the ISA has one, exactly as the scalar border code of direct.pyx is),
   starting from 0 (``fresh``) or from the sums already in ``o``.  A tile of
   PCV_R vectors of outputs stays in registers while the loop runs over all n
   taps: each tap costs one broadcast and PCV_R independent FMAs (the chains of
   the tile overlap), and ``o`` is loaded and stored once per tile instead of
   once per 8 taps.  The tile width never changes an output's sequence of
   operations, so the sums are the same bits as the one-tap-at-a-time loop.

   The vector width follows the ISA the file is compiled for (per-variant
   builds: 64 bytes with AVX-512, 32 with AVX, 16 otherwise); GCC/Clang vector
   extensions give the SIMD, other compilers get the plain loop.  */
#ifndef PYCONV_DIRECT_SWEEP_H
#define PYCONV_DIRECT_SWEEP_H

#include <stddef.h>
#include <string.h>

#if defined(__AVX512F__)
#define PCV_VBYTES 64
#elif defined(__AVX__)
#define PCV_VBYTES 32
#else
#define PCV_VBYTES 16
#endif
/* vectors per tile: 4 independent accumulator chains hide the FMA latency
   (measured: 2 is latency-bound, 8 no faster than 4 on long rows) */
#define PCV_R 4

/* Outputs j..j1-1 one tap at a time, each an elementwise "o = o + w * x" pass.
   Not a loop over the taps with a scalar accumulator: GCC vectorises that as an
   in-order reduction (a vector multiply, then scalar adds), which no longer
   fuses the multiply-add and changes the bits. */
#define PCV_TAIL(T)                                                                         \
    if (j < j1) {                                                                           \
        Py_ssize_t t;                                                                       \
        if (fresh)                                                                          \
            for (t = j; t < j1; t++) o[t] = 0;                                              \
        for (g = 0; g < n; g++) {                                                           \
            const T *q = p[g];                                                              \
            const T wg = w[g];                                                              \
            for (t = j; t < j1; t++) o[t] = o[t] + wg * q[t];                               \
        }                                                                                   \
    }

#if defined(__GNUC__) || defined(__clang__)
typedef float pcv_vf __attribute__((vector_size(PCV_VBYTES)));
typedef double pcv_vd __attribute__((vector_size(PCV_VBYTES)));

#define PCV_SWEEP(NAME, T, VT)                                                              \
static void NAME(const T *const *p, const T *w, int n, int fresh, T *o,                    \
                 Py_ssize_t j0, Py_ssize_t j1) {                                            \
    enum { V = sizeof(VT) / sizeof(T) };                                                    \
    Py_ssize_t j = j0;                                                                      \
    int g;                                                                                  \
    for (; j + PCV_R * V <= j1; j += PCV_R * V) {                                           \
        VT a0, a1, a2, a3, x0, x1, x2, x3;                                                  \
        if (fresh) {                                                                        \
            a0 = (VT){0}; a1 = (VT){0}; a2 = (VT){0}; a3 = (VT){0};                         \
        } else {                                                                            \
            memcpy(&a0, o + j, sizeof(VT)); memcpy(&a1, o + j + V, sizeof(VT));             \
            memcpy(&a2, o + j + 2 * V, sizeof(VT)); memcpy(&a3, o + j + 3 * V, sizeof(VT)); \
        }                                                                                   \
        for (g = 0; g < n; g++) {                                                           \
            const T *q = p[g] + j;                                                          \
            const T wg = w[g];                                                              \
            memcpy(&x0, q, sizeof(VT)); memcpy(&x1, q + V, sizeof(VT));                     \
            memcpy(&x2, q + 2 * V, sizeof(VT)); memcpy(&x3, q + 3 * V, sizeof(VT));         \
            a0 = a0 + wg * x0; a1 = a1 + wg * x1;                                           \
            a2 = a2 + wg * x2; a3 = a3 + wg * x3;                                           \
        }                                                                                   \
        memcpy(o + j, &a0, sizeof(VT)); memcpy(o + j + V, &a1, sizeof(VT));                 \
        memcpy(o + j + 2 * V, &a2, sizeof(VT)); memcpy(o + j + 3 * V, &a3, sizeof(VT));     \
    }                                                                                       \
    for (; j + V <= j1; j += V) {                                                           \
        VT a0, x0;                                                                          \
        if (fresh) a0 = (VT){0}; else memcpy(&a0, o + j, sizeof(VT));                       \
        for (g = 0; g < n; g++) {                                                           \
            memcpy(&x0, p[g] + j, sizeof(VT));                                              \
            a0 = a0 + w[g] * x0;                                                            \
        }                                                                                   \
        memcpy(o + j, &a0, sizeof(VT));                                                     \
    }                                                                                       \
    PCV_TAIL(T)                                                                             \
}
PCV_SWEEP(pcv_sweep_f32, float, pcv_vf)
PCV_SWEEP(pcv_sweep_f64, double, pcv_vd)
#else
#define PCV_SWEEP(NAME, T)                                                                  \
static void NAME(const T *const *p, const T *w, int n, int fresh, T *o,                    \
                 Py_ssize_t j0, Py_ssize_t j1) {                                            \
    Py_ssize_t j = j0;                                                                      \
    int g;                                                                                  \
    PCV_TAIL(T)                                                                             \
}
PCV_SWEEP(pcv_sweep_f32, float)
PCV_SWEEP(pcv_sweep_f64, double)
#endif

#endif
