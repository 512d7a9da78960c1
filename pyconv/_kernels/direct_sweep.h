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
#include "pyconv_simd.h"

/* items of one thread's scratch for the lane-strided sweep of n taps (+ 64 bytes
   of slack for aligning it) */
#define PCV_LANES_SCRATCH(n, itemsize) (((PCV_LS + (n)) + PCV_LS) * (PCV_VBYTES / (itemsize)) + 64 / (itemsize))

#define PCV_VBYTES PYCONV_VBYTES
/* vectors per tile: 4 independent accumulator chains per tap */
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

/* Outputs t = J0..m-1 of pcv_sweep2's two rows one at a time, taps in the same order. */
#define PCV_PAIR_TAIL(T, J0)                                                                \
    for (t = (J0); t < m; t++) {                                                            \
        T u0 = fresh ? 0 : o0[t], u1 = fresh ? 0 : o1[t];                                   \
        for (i = 0; i < np; i++)                                                            \
            for (q = 0; q < kh; q++)                                                        \
                for (c = 0; c < kw; c++) {                                                  \
                    u0 = u0 + w[i][q * kw + c] * a[i][(Py_ssize_t)q * L + c + t];           \
                    u1 = u1 + w[i][q * kw + c] * a[i][(Py_ssize_t)(q + 1) * L + c + t];     \
                }                                                                           \
        o0[t] = u0;                                                                         \
        o1[t] = u1;                                                                         \
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
    VT last = (VT){0};                                                                      \
    if (j1 - j0 > V && (j1 - j0) % V) {                                                     \
        /* the last, partial vector: a whole one ending at j1, from the sums before any    \
           store (the outputs it shares with the loops below get the same bits twice) */    \
        if (fresh) last = (VT){0}; else memcpy(&last, o + j1 - V, sizeof(VT));              \
        for (g = 0; g < n; g++) {                                                           \
            VT x0;                                                                          \
            memcpy(&x0, p[g] + j1 - V, sizeof(VT));                                         \
            last = last + w[g] * x0;                                                        \
        }                                                                                   \
    }                                                                                       \
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
    if (j1 - j0 > V && (j1 - j0) % V) {                                                     \
        memcpy(o + j1 - V, &last, sizeof(VT));                                              \
        j = j1;                                                                             \
    }                                                                                       \
    PCV_TAIL(T)                                                                             \
}
PCV_SWEEP(pcv_sweep_f32, float, pcv_vf)
PCV_SWEEP(pcv_sweep_f64, double, pcv_vd)

/* Lane-strided sweep of a 1-D row: o[j] = sum_k w[k] * a[j + k], k = 0..n-1 in
   order, for whole tiles of V * PCV_LS outputs (returns how many outputs it did;
   the caller sweeps the rest).  In a tile, vector lane l holds the outputs
   l * PCV_LS + t, so the input vector needed at step (t, k) is row t + k of a
   transposed copy of the input (``X``, (PCV_LS + n) * V items), an aligned load,
   and one loaded row serves PCV_LR output vectors at PCV_LR successive taps (a
   rolling window in registers): one load and one broadcast per PCV_LR FMAs
   instead of one split, unaligned load per FMA.  (Measured on a 2-core Xeon,
   AVX-512, 1e6 * 1001 float32: 94 GF/s against 45 for the tiled sweep; the
   FMAs with 16 accumulators reading X from memory: 10% slower.)  ``U`` (PCV_LS * V items) holds
   the transposed outputs.  Every output still takes its taps in order, one
   multiply-add each, from 0: the same bits as pcv_sweep. */
#define PCV_LS 256
#if PCV_VBYTES == 64
#define PCV_LR 8        /* 8 accumulators + 8 window registers of the 32 */
#else
#define PCV_LR 4        /* 16 vector registers */
#endif
#define PCV_LANES(NAME, T, VT)                                                              \
__attribute__((noinline))                                                                   \
static Py_ssize_t NAME(const T *a, const T *w, Py_ssize_t n, T *o, Py_ssize_t m,           \
                       T *X, T *U) {                                                        \
    enum { V = sizeof(VT) / sizeof(T), S = PCV_LS };                                        \
    Py_ssize_t base, s, t, k;                                                               \
    int l, r, u;                                                                            \
    for (l = 0; l < V; l++) X[(S + n - 1) * V + l] = 0;  /* read past the last tap only */ \
    for (base = 0; base + S * V <= m; base += S * V) {                                      \
        /* row by row: X is written in order (it may outgrow L1 for long kernels),  \
           the V input streams are read in order */                                         \
        for (s = 0; s < S + n - 1; s++)                                                     \
            for (l = 0; l < V; l++) X[s * V + l] = a[base + (Py_ssize_t)l * S + s];         \
        for (t = 0; t < S; t += PCV_LR) {                                                   \
            VT acc[PCV_LR], x[PCV_LR];                                                      \
            for (r = 0; r < PCV_LR; r++) {                                                  \
                acc[r] = (VT){0};                                                           \
                memcpy(&x[r], X + (t + r) * V, sizeof(VT));                                 \
            }                                                                               \
            /* row t + q sits in x[q % PCV_LR]: unrolled by PCV_LR, every index is a  \
               constant (registers, no moves); the last n % PCV_LR taps shift the      \
               window instead */                                                            \
            for (k = 0; k + PCV_LR <= n; k += PCV_LR) {                                     \
                for (u = 0; u < PCV_LR; u++) {                                              \
                    const T wk = w[k + u];                                                  \
                    for (r = 0; r < PCV_LR; r++)                                            \
                        acc[r] = acc[r] + wk * x[(r + u) % PCV_LR];                         \
                    memcpy(&x[u], X + (t + k + u + PCV_LR) * V, sizeof(VT));                \
                }                                                                           \
            }                                                                               \
            for (; k < n; k++) {                                                            \
                const T wk = w[k];                                                          \
                for (r = 0; r < PCV_LR; r++) acc[r] = acc[r] + wk * x[r];                   \
                for (r = 0; r < PCV_LR - 1; r++) x[r] = x[r + 1];                           \
                memcpy(&x[PCV_LR - 1], X + (t + k + PCV_LR) * V, sizeof(VT));               \
            }                                                                               \
            for (r = 0; r < PCV_LR; r++) memcpy(U + (t + r) * V, &acc[r], sizeof(VT));      \
        }                                                                                   \
        for (l = 0; l < V; l++)                                                             \
            for (t = 0; t < S; t++) o[base + (Py_ssize_t)l * S + t] = U[t * V + l];         \
    }                                                                                       \
    return base;                                                                            \
}
PCV_LANES(pcv_lanes_f32, float, pcv_vf)
PCV_LANES(pcv_lanes_f64, double, pcv_vd)

/* Two output rows at once (the merged runs of rows of direct.pyx's _plane_item), over
   ``np`` planes of kh x kw taps: rows r and r + 1 read the input rows L apart, so the
   vector loaded from input row q (q = 0..kh) of a plane serves row r's tap (q, c) and
   row r + 1's tap (q - 1, c): one load and two broadcasts per two FMAs instead of one
   load and one broadcast per FMA.  Plane i's input starts at a[i] (row r's tap (0, 0)),
   its weights at w[i] (kh x kw, C order):

       o0[j] (+)= sum_{i, q<kh, c<kw} w[i][q * kw + c] * a[i][q * L + c + j]
       o1[j] (+)= sum_{i, q<kh, c<kw} w[i][q * kw + c] * a[i][(q + 1) * L + c + j]

   for 0 <= j < m, from 0 (``fresh``) or from the sums in o0/o1.  Each output still
   takes its taps in the order (i, q, c), one "acc = acc + w * x" step each: the bits
   of the one-row sweep.  Passes over 2 rows x PCV_R2 vectors, a final one over up to
   PCV_R2MAX; a last partial vector is a whole one ending at m. */
#define PCV_R2 4
/* the tile's loops over its vectors unrolled, so its sums stay in registers (GCC unrolled
   them by itself for AVX-512 but kept them on the stack for AVX2: 12x slower) */
#if defined(__clang__)
#define PCV_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define PCV_UNROLL _Pragma("GCC unroll 8")
#else
#define PCV_UNROLL
#endif
/* the taps of NR vectors of both rows at column j, the last of them D columns back (the
   row's last partial vector, a whole one ending at the row's end): s0/s1 hold the sums */
#define PCV_OFF(r, NR, D) ((r) * V - ((r) == (NR) - 1 ? (D) : 0))
#define PCV_PAIR_TAPS(T, VT, NR, D)                                                         \
    for (i = 0; i < np; i++) {                                                              \
        const T *ai = a[i] + j, *wi = w[i];                                                 \
        for (c = 0; c < kw; c++) {              /* q = 0: row r only */                     \
            const T w0 = wi[c];                                                             \
            PCV_UNROLL for (r = 0; r < NR; r++) {                                           \
                memcpy(&x[r], ai + c + PCV_OFF(r, NR, D), sizeof(VT));                      \
                s0[r] = s0[r] + w0 * x[r];                                                  \
            }                                                                               \
        }                                                                                   \
        for (q = 1; q < kh; q++) {                                                          \
            const T *aq = ai + (Py_ssize_t)q * L, *wq = wi + q * kw, *wp = wq - kw;         \
            for (c = 0; c < kw; c++) {                                                      \
                const T w0 = wq[c], w1 = wp[c];                                             \
                PCV_UNROLL for (r = 0; r < NR; r++) {                                       \
                    memcpy(&x[r], aq + c + PCV_OFF(r, NR, D), sizeof(VT));                  \
                    PYCONV_IN_REG(x[r]); /* (pinned: one load, two FMAs) */                 \
                    s0[r] = s0[r] + w0 * x[r];                                              \
                    s1[r] = s1[r] + w1 * x[r];                                              \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        for (c = 0; c < kw; c++) {              /* q = kh: row r + 1 only */                \
            const T w1 = wi[(kh - 1) * kw + c];                                             \
            PCV_UNROLL for (r = 0; r < NR; r++) {                                           \
                memcpy(&x[r], ai + (Py_ssize_t)kh * L + c + PCV_OFF(r, NR, D), sizeof(VT)); \
                s1[r] = s1[r] + w1 * x[r];                                                  \
            }                                                                               \
        }                                                                                   \
    }
/* one pass over NR vectors of both rows at j (the last D columns back): the sums from 0
   or from o0/o1, all loaded before any store, so a last vector overlapping the one before
   it starts from the same sums and stores the same bits where they overlap */
#define PCV_PAIR_PASS(T, VT, NR, D)                                                         \
    {                                                                                       \
        VT s0[NR], s1[NR], x[NR];                                                           \
        PCV_UNROLL for (r = 0; r < NR; r++) {                                               \
            if (fresh) { s0[r] = (VT){0}; s1[r] = (VT){0}; }                                \
            else {                                                                          \
                memcpy(&s0[r], o0 + j + PCV_OFF(r, NR, D), sizeof(VT));                     \
                memcpy(&s1[r], o1 + j + PCV_OFF(r, NR, D), sizeof(VT));                     \
            }                                                                               \
        }                                                                                   \
        PCV_PAIR_TAPS(T, VT, NR, D)                                                         \
        PCV_UNROLL for (r = 0; r < NR; r++) {                                               \
            memcpy(o0 + j + PCV_OFF(r, NR, D), &s0[r], sizeof(VT));                         \
            memcpy(o1 + j + PCV_OFF(r, NR, D), &s1[r], sizeof(VT));                         \
        }                                                                                   \
    }
/* the most vectors in a pass: PCV_R2, one more with 32 vector registers (2 x 5 sums, 5
   loaded vectors, 2 weights) */
#if PCV_VBYTES == 64
#define PCV_R2MAX (PCV_R2 + 1)
#define PCV_PASS5(T, VT) case 5: PCV_PAIR_PASS(T, VT, 5, D) break;
#else
#define PCV_R2MAX PCV_R2
#define PCV_PASS5(T, VT)
#endif
#define PCV_SWEEP2(NAME, T, VT)                                                             \
static void NAME(const T *const *a, const T *const *w, int np, int kh, int kw, Py_ssize_t L, \
                 int fresh, T *o0, T *o1, Py_ssize_t m) {                                   \
    enum { V = sizeof(VT) / sizeof(T) };                                                    \
    /* nv whole vectors, then (part) the last partial one, a whole vector ending at m (D   \
       columns back from where vector nv would start): passes of PCV_R2 vectors, then a    \
       final pass of f that holds the last two (they overlap).  Alone, the last vector's   \
       two chains of dependent FMAs ran at their latency: 12% of the sweep of a 256^3      \
       volume's padded rows of 258 (3^3, float32, AMD EPYC).  Where f would be 1 (16       \
       registers), the last vector is computed first, before any store, as alone. */     \
    const Py_ssize_t nv = m / V;                                                            \
    const int part = m > V && m % V != 0;                                                   \
    const Py_ssize_t nt = nv + part, D = part ? V - m % V : 0;                              \
    const Py_ssize_t k = nt > PCV_R2MAX ? (nt - PCV_R2MAX + PCV_R2 - 1) / PCV_R2 : 0;       \
    const Py_ssize_t f = nt - k * PCV_R2;                                                   \
    const int alone = part && f == 1;                                                       \
    Py_ssize_t j = 0, p, t;                                                                 \
    int i, q, c, r;                                                                         \
    VT last0 = (VT){0}, last1 = (VT){0};                                                    \
    if (alone) {                                                                            \
        VT s0[1], s1[1], x[1];                                                              \
        j = m - V;                                                                          \
        if (fresh) { s0[0] = (VT){0}; s1[0] = (VT){0}; }                                    \
        else { memcpy(&s0[0], o0 + j, sizeof(VT)); memcpy(&s1[0], o1 + j, sizeof(VT)); }    \
        PCV_PAIR_TAPS(T, VT, 1, 0)                                                          \
        last0 = s0[0]; last1 = s1[0];                                                       \
        j = 0;                                                                              \
    }                                                                                       \
    for (p = 0; p < k; p++, j += PCV_R2 * V)                                                \
        PCV_PAIR_PASS(T, VT, PCV_R2, 0)                                                     \
    if (alone) {                                                                            \
        memcpy(o0 + m - V, &last0, sizeof(VT));                                             \
        memcpy(o1 + m - V, &last1, sizeof(VT));                                             \
        j = m;                                                                              \
    } else if (nt > 0) {                                                                    \
        switch (f) {                                                                        \
        case 1: PCV_PAIR_PASS(T, VT, 1, D) break;                                           \
        case 2: PCV_PAIR_PASS(T, VT, 2, D) break;                                           \
        case 3: PCV_PAIR_PASS(T, VT, 3, D) break;                                           \
        case 4: PCV_PAIR_PASS(T, VT, 4, D) break;                                           \
        PCV_PASS5(T, VT)                                                                    \
        }                                                                                   \
        j = m;                                                                              \
    }                                                                                       \
    PCV_PAIR_TAIL(T, j)                                                                     \
}
PCV_SWEEP2(pcv_sweep2_f32, float, pcv_vf)
PCV_SWEEP2(pcv_sweep2_f64, double, pcv_vd)
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
/* without vector extensions the plain sweep serves every output */
#define PCV_LS 256
static Py_ssize_t pcv_lanes_f32(const float *a, const float *w, Py_ssize_t n, float *o, Py_ssize_t m,
                                float *X, float *U) { return 0; }
static Py_ssize_t pcv_lanes_f64(const double *a, const double *w, Py_ssize_t n, double *o, Py_ssize_t m,
                                double *X, double *U) { return 0; }
#define PCV_SWEEP2(NAME, T)                                                                 \
static void NAME(const T *const *a, const T *const *w, int np, int kh, int kw, Py_ssize_t L, \
                 int fresh, T *o0, T *o1, Py_ssize_t m) {                                   \
    Py_ssize_t t;                                                                           \
    int i, q, c;                                                                            \
    PCV_PAIR_TAIL(T, 0)                                                                     \
}
PCV_SWEEP2(pcv_sweep2_f32, float)
PCV_SWEEP2(pcv_sweep2_f64, double)
#endif

#endif
