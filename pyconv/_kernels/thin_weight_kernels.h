/* thin_weight_kernels.h: C micro-kernels of grad_direct.pyx (included by it with cdef extern from "thin_weight_kernels.h"). */
#ifndef PYCONV_THIN_WEIGHT_KERNELS_H
#define PYCONV_THIN_WEIGHT_KERNELS_H

#include <string.h>
#include "pyconv_simd.h"
#define PYCONV_TAPS_PARAMS(T) const T* g0, Py_ssize_t gs_n, Py_ssize_t gs_o, const T* buf,    \
    Py_ssize_t N, Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, \
    Py_ssize_t Wp, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff,           \
    Py_ssize_t xoff, Py_ssize_t dw, int ne, T* out, Py_ssize_t os_o
#define PYCONV_TAPS_ARGS(T) (PYCONV_TAPS_PARAMS(T))
#define PYCONV_TAPS_CALL (g0, gs_n, gs_o, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, zoff, yoff, xoff, \
    dw, ne, out, os_o)
#if defined(__GNUC__)
/* GCC/Clang vector types: L-lane accumulators for the body of a row, L/2-lane ones
   for a half block, scalars for the rest; loads through memcpy (unaligned). */
typedef float pyconv_f16 __attribute__((vector_size(16 * sizeof(float))));
typedef float pyconv_f8 __attribute__((vector_size(8 * sizeof(float))));
typedef double pyconv_d16 __attribute__((vector_size(16 * sizeof(double))));
typedef double pyconv_d8 __attribute__((vector_size(8 * sizeof(double))));
typedef double pyconv_d4 __attribute__((vector_size(4 * sizeof(double))));
/* the build's own vector width for the multi-channel passes, whose 12 accumulators must
   fit the register file: 64-byte vectors under AVX2 are pairs of ymm registers (24 of
   its 16), and the spills made layer e's weight gradient 4x slower than AVX-512's */
typedef float pyconv_taf __attribute__((vector_size(PYCONV_VBYTES)));
typedef float pyconv_taf_h __attribute__((vector_size(PYCONV_VBYTES / 2)));
typedef double pyconv_tad __attribute__((vector_size(PYCONV_VBYTES)));
typedef double pyconv_tad_h __attribute__((vector_size(PYCONV_VBYTES / 2)));
/* each pass is a function of its own: inlined into the OpenMP loop, the extra
   register pressure spills the row pointers inside the vector loops (~5% slower) */
#define PYCONV_NOINLINE __attribute__((noinline))
/* one channel: 16-lane accumulators, one pass per row for its (up to) three taps */
#define PYCONV_ACC1(VT, A0, A1, A2, G, X, DW, NE)                                           \
    { VT gv, xv; memcpy(&gv, (G), sizeof(VT)); memcpy(&xv, (X), sizeof(VT)); A0 += gv * xv;  \
      if ((NE) > 1) { memcpy(&xv, (X) + (DW), sizeof(VT)); A1 += gv * xv; }                 \
      if ((NE) > 2) { memcpy(&xv, (X) + 2 * (DW), sizeof(VT)); A2 += gv * xv; } }
#define PYCONV_ROWS1(T, VT16, VT8, NE)                                                       \
    for (n = 0; n < N; n++)                                                                \
    for (od = 0; od < OD; od++)                                                            \
    for (oh = 0; oh < OH; oh++) {                                                          \
        const T* g = g0 + n * gs_n + (od * OH + oh) * OW;                                   \
        const T* xr = buf + ((n * Dp + od * sd + zoff) * Hp + oh * sh + yoff) * Wp + xoff;   \
        for (jb = 0; jb < n16; jb++)                                                       \
            PYCONV_ACC1(VT16, a0, a1, a2, g + 16 * jb, xr + 16 * jb, dw, NE)                 \
        if (has8)                                                                          \
            PYCONV_ACC1(VT8, b0, b1, b2, g + 16 * n16, xr + 16 * n16, dw, NE)                \
        for (j = jt; j < OW; j++) {                                                        \
            T gq = g[j];                                                                   \
            r0 += gq * xr[j];                                                              \
            if ((NE) > 1) r1 += gq * xr[j + dw];                                           \
            if ((NE) > 2) r2 += gq * xr[j + 2 * dw];                                       \
        }                                                                                  \
    }
#define PYCONV_TAPS3_1(NAME, T, VT16, VT8)                                                   \
static PYCONV_NOINLINE void NAME PYCONV_TAPS_ARGS(T)                                       \
{                                                                                          \
    VT16 a0 = {0}, a1 = {0}, a2 = {0};                                                     \
    VT8 b0 = {0}, b1 = {0}, b2 = {0};                                                      \
    T r0 = 0, r1 = 0, r2 = 0;                                                              \
    Py_ssize_t n16 = OW / 16, has8 = (OW % 16) >= 8, jt = 16 * n16 + 8 * has8;             \
    Py_ssize_t n, od, oh, jb, j;                                                           \
    int q;                                                                                 \
    if (ne == 3) { PYCONV_ROWS1(T, VT16, VT8, 3) }                                          \
    else if (ne == 2) { PYCONV_ROWS1(T, VT16, VT8, 2) }                                     \
    else { PYCONV_ROWS1(T, VT16, VT8, 1) }                                                  \
    for (q = 0; q < 16; q++) { r0 += a0[q]; r1 += a1[q]; r2 += a2[q]; }                    \
    for (q = 0; q < 8; q++) { r0 += b0[q]; r1 += b1[q]; r2 += b2[q]; }                     \
    out[0] = r0;                                                                           \
    if (ne > 1) out[1] = r1;                                                               \
    if (ne > 2) out[2] = r2;                                                               \
}
/* M channels: every input vector loaded feeds the M channels' accumulators, as in a GEMM
   micro-kernel.  Each grad_output vector is loaded once into a register for its three
   taps: left to itself, GCC folded the load into each of the three FMAs (AVX-512: 15
   loads per 12 FMAs instead of 7), and layer e's weight gradient ran 1.6x slower under
   AVX-512 than under AVX2 on an AMD EPYC (Zen 4), whose FMA rate is the same for both */
/* (AVX-512 only: 32 vector registers hold it; with 16, the 12 accumulators and 3 inputs
   leave one) */
#define PYCONV_TW_IN_REG(V) do { if (PYCONV_VBYTES == 64) PYCONV_IN_REG(V); } while (0)
#define PYCONV_ACC(VT, A, M, G, X, NE)                                                     \
    { VT xv0, xv1, xv2, gv; memcpy(&xv0, (X), sizeof(VT)); xv1 = xv0; xv2 = xv0;           \
      if ((NE) > 1) memcpy(&xv1, (X) + dw, sizeof(VT));                                    \
      if ((NE) > 2) memcpy(&xv2, (X) + 2 * dw, sizeof(VT));                                \
      for (ob = 0; ob < (M); ob++) {                                                       \
          memcpy(&gv, (G) + ob * gs_o, sizeof(VT));                                        \
          PYCONV_TW_IN_REG(gv);                                                            \
          A[ob][0] += gv * xv0;                                                            \
          if ((NE) > 1) A[ob][1] += gv * xv1;                                              \
          if ((NE) > 2) A[ob][2] += gv * xv2;                                              \
      } }
#define PYCONV_ROWS(T, VTL, VTH, L, M, NE)                                                 \
    for (n = 0; n < N; n++)                                                                \
    for (od = 0; od < OD; od++)                                                            \
    for (oh = 0; oh < OH; oh++) {                                                          \
        const T* g = g0 + n * gs_n + (od * OH + oh) * OW;                                   \
        const T* xr = buf + ((n * Dp + od * sd + zoff) * Hp + oh * sh + yoff) * Wp + xoff;   \
        for (jb = 0; jb < nl; jb++)                                                        \
            PYCONV_ACC(VTL, a, M, g + (L) * jb, xr + (L) * jb, NE)                          \
        for (j = jt; j < OW; j++)                                                          \
            for (ob = 0; ob < (M); ob++) {                                                 \
                T gq = g[ob * gs_o + j];                                                   \
                r[ob][0] += gq * xr[j];                                                    \
                if ((NE) > 1) r[ob][1] += gq * xr[j + dw];                                 \
                if ((NE) > 2) r[ob][2] += gq * xr[j + 2 * dw];                             \
            }                                                                              \
    }                                                                                      \
    /* the rows' half vectors in a pass of their own: beside the full ones, their 3M       \
       accumulators did not fit the registers (AVX-512, 8x128x56x56 in groups of 4:        \
       spilled to the stack); each accumulator still adds its rows in order */            \
    if (hash)                                                                              \
    for (n = 0; n < N; n++)                                                                \
    for (od = 0; od < OD; od++)                                                            \
    for (oh = 0; oh < OH; oh++) {                                                          \
        const T* g = g0 + n * gs_n + (od * OH + oh) * OW;                                   \
        const T* xr = buf + ((n * Dp + od * sd + zoff) * Hp + oh * sh + yoff) * Wp + xoff;   \
        PYCONV_ACC(VTH, b, M, g + (L) * nl, xr + (L) * nl, NE)                              \
    }
/* HALF: a row's remainder of at least L/2 runs as one VTH vector (else scalar) */
#define PYCONV_TAPS3_M(NAME, T, VTL, VTH, L, M, HALF)                                        \
static PYCONV_NOINLINE void NAME PYCONV_TAPS_ARGS(T)                                       \
{                                                                                          \
    VTL a[M][3]; VTH b[M][3]; T r[M][3]; VTL zl = {0}; VTH zh = {0};                       \
    Py_ssize_t nl = OW / (L), hash = (HALF) && (OW % (L)) >= (L) / 2;                      \
    Py_ssize_t jt = (L) * nl + ((L) / 2) * hash;                                           \
    Py_ssize_t n, od, oh, jb, j;                                                           \
    int ob, e, q;                                                                          \
    for (ob = 0; ob < (M); ob++) for (e = 0; e < 3; e++) { a[ob][e] = zl; b[ob][e] = zh; r[ob][e] = 0; } \
    if (ne == 3) { PYCONV_ROWS(T, VTL, VTH, L, M, 3) }                                     \
    else if (ne == 2) { PYCONV_ROWS(T, VTL, VTH, L, M, 2) }                                \
    else { PYCONV_ROWS(T, VTL, VTH, L, M, 1) }                                             \
    for (ob = 0; ob < (M); ob++)                                                           \
        for (e = 0; e < ne; e++) {                                                         \
            T sacc = r[ob][e];                                                             \
            for (q = 0; q < (L); q++) sacc += a[ob][e][q];                                 \
            if (HALF) for (q = 0; q < (L) / 2; q++) sacc += b[ob][e][q];                   \
            out[ob * os_o + e] = sacc;                                                     \
        }                                                                                  \
}
/* one channel: 16-lane blocks + half blocks; four: 12 accumulators of the build's vector
   width; eight, only where rows hold whole vector blocks: 24 accumulators (AVX-512) */
PYCONV_TAPS3_1(pyconv_taps3_f, float, pyconv_f16, pyconv_f8)
PYCONV_TAPS3_1(pyconv_taps3_d, double, pyconv_d16, pyconv_d8)
PYCONV_TAPS3_M(pyconv_taps3x4_f, float, pyconv_taf, pyconv_taf_h, PYCONV_VBYTES / 4, 4, 1)
PYCONV_TAPS3_M(pyconv_taps3x4_d, double, pyconv_tad, pyconv_tad_h, PYCONV_VBYTES / 8, 4, 1)
PYCONV_TAPS3_M(pyconv_taps3x8_f, float, pyconv_f16, pyconv_f16, 16, 8, 0)
PYCONV_TAPS3_M(pyconv_taps3x8_d, double, pyconv_d8, pyconv_d8, 8, 8, 0)
/* One output channel (m = 1: depthwise layers), up to three kernel rows x three
   horizontal taps per pass: NB x NE accumulators of the build's vector width, so every
   grad_output vector loaded feeds up to nine taps (the three-tap passes above read
   grad_output three times and keep only three FMA chains in flight: 13 us per 8x56x56
   channel against 4 for the arithmetic).  A row's last partial vector is read through
   masked loads (lanes past the row read as zero, and are not touched); without them
   (the baseline build) it runs scalar.  The pass also prefetches the next channel's
   grad_output rows (pfg) and input (pfx, pfx_len elements per sample, pfx_n apart),
   one share per output row, so the memory reads of a layer whose data exceed the
   caches overlap this channel's arithmetic. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define PYCONV_TW_BYTES 64
#define PYCONV_TW_MASKED 1
#define PYCONV_TW_TAIL_f(P, N) ((pyconv_twf)_mm512_maskz_loadu_ps((__mmask16)((1u << (N)) - 1), (P)))
#define PYCONV_TW_TAIL_d(P, N) ((pyconv_twd)_mm512_maskz_loadu_pd((__mmask8)((1u << (N)) - 1), (P)))
/* a row's last lanes when they fit half a vector (56 = 3.5 x 16 floats): half-width
   loads and FMAs, which cost half a full one where the core splits 512-bit operations
   in two (AMD Zen 4) */
#define PYCONV_TW_HALF 1
#define PYCONV_TW_TAILH_f(P, N) ((pyconv_twf_h)_mm256_maskz_loadu_ps((__mmask8)((1u << (N)) - 1), (P)))
#define PYCONV_TW_TAILH_d(P, N) ((pyconv_twd_h)_mm256_maskz_loadu_pd((__mmask8)((1u << (N)) - 1), (P)))
/* lanes K.. of A followed by the first K of B: the input vector K columns on, from the two
   aligned vectors already in registers (valignd / valignq) */
#define PYCONV_TW_SHIFT 1
#define PYCONV_TW_SH_f(A, B, K) ((pyconv_twf)_mm512_castsi512_ps(_mm512_alignr_epi32( \
    _mm512_castps_si512((__m512)(B)), _mm512_castps_si512((__m512)(A)), (K))))
#define PYCONV_TW_SH_d(A, B, K) ((pyconv_twd)_mm512_castsi512_pd(_mm512_alignr_epi64( \
    _mm512_castpd_si512((__m512d)(B)), _mm512_castpd_si512((__m512d)(A)), (K))))
#elif defined(__AVX2__)
#include <immintrin.h>
#define PYCONV_TW_BYTES 32
#define PYCONV_TW_MASKED 1
#define PYCONV_TW_TAIL_f(P, N) ((pyconv_twf)_mm256_maskload_ps((P), _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(N)), \
                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))))
#define PYCONV_TW_TAIL_d(P, N) ((pyconv_twd)_mm256_maskload_pd((P), _mm256_cmpgt_epi64(_mm256_set1_epi64x((N)), \
                                _mm256_setr_epi64x(0, 1, 2, 3))))
#else
#define PYCONV_TW_BYTES 16
#define PYCONV_TW_MASKED 0
#define PYCONV_TW_TAIL_f(P, N) ((pyconv_twf){0})
#define PYCONV_TW_TAIL_d(P, N) ((pyconv_twd){0})
#endif
#ifndef PYCONV_TW_HALF
#define PYCONV_TW_HALF 0
#define PYCONV_TW_TAILH_f(P, N) ((pyconv_twf_h){0})
#define PYCONV_TW_TAILH_d(P, N) ((pyconv_twd_h){0})
#endif
#ifndef PYCONV_TW_SHIFT
/* (AVX2's cross-lane shift takes two or three shuffles: its unaligned loads are cheaper) */
#define PYCONV_TW_SHIFT 0
#define PYCONV_TW_SH_f(A, B, K) (A)
#define PYCONV_TW_SH_d(A, B, K) (A)
#endif
typedef float pyconv_twf __attribute__((vector_size(PYCONV_TW_BYTES)));
typedef double pyconv_twd __attribute__((vector_size(PYCONV_TW_BYTES)));
typedef float pyconv_twf_u __attribute__((vector_size(PYCONV_TW_BYTES), aligned(4), may_alias));
typedef double pyconv_twd_u __attribute__((vector_size(PYCONV_TW_BYTES), aligned(8), may_alias));
typedef float pyconv_twf_h __attribute__((vector_size(PYCONV_TW_BYTES / 2)));
typedef double pyconv_twd_h __attribute__((vector_size(PYCONV_TW_BYTES / 2)));
#define PYCONV_TW_PARAMS(T) const T* g0, Py_ssize_t gs_n, const T* buf, Py_ssize_t N, Py_ssize_t OD,        \
    Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t sd, Py_ssize_t sh, \
    Py_ssize_t zoff, Py_ssize_t yoff, Py_ssize_t dh, Py_ssize_t xoff, Py_ssize_t dw, T* out, Py_ssize_t kw,  \
    const T* pfg, const T* pfx, Py_ssize_t pfx_n, Py_ssize_t pfx_len, T* st, int phase
#define PYCONV_TW_CALL (g0, gs_n, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, zoff, yoff, dh, xoff, dw, out, kw, \
    pfg, pfx, pfx_n, pfx_len, st, phase)
/* st, phase: a pass may run in parts (a sample at a time), the sums carried between them
   in st (64-byte aligned, PYCONV_TW_STATE elements): phase bit 1 starts them from zero
   (else from st), bit 2 finishes (sums the lanes into out; else they go back to st).  The
   lanes add the rows in the same order either way: the same bits. */
/* the next channel's share for output row k of K in sample n: its grad_output row and
   slice k of its input sample, pf_step bytes (whole lines, set once per pass: K slices
   cover the sample).  A multiplication per row instead of the slice's bounds as
   k * pfx_len / K (two 64-bit divisions per row).  Its first measurements (1.02-1.13x on
   the depthwise weight gradient) came from an A/B order that favoured the new build; with
   the order flipped every round it reads 0.99x at 1 thread and 1.02x at 2 (Intel Xeon,
   quartiles 0.96-1.10): no measurable gain, kept as the simpler form, same bits */
#define PYCONV_TW_PREFETCH(T)                                                                \
    if (pfg) { const char* p = (const char*)(g + (pfg - g0));                                \
               for (Py_ssize_t q = 0; q < OW * (Py_ssize_t)sizeof(T); q += 64) __builtin_prefetch(p + q, 0, 2); } \
    if (pfx) { const char* p = (const char*)(pfx + n * pfx_n);                                \
               Py_ssize_t lo = k * pf_step, hi = lo + pf_step < pf_bytes ? lo + pf_step : pf_bytes; \
               for (Py_ssize_t q = lo; q < hi; q += 64) __builtin_prefetch(p + q, 0, 2); }
/* (every loop over the accumulators is unrolled: an indexed one keeps them in memory) */
#define PYCONV_TW(T, VT, VTU, HT, NB, NE, S, NAME)                                           \
static PYCONV_NOINLINE void NAME(PYCONV_TW_PARAMS(T))                                        \
{                                                                                          \
    enum { L = sizeof(VT) / sizeof(T) };                                                   \
    VT a[NB][NE]; HT ah[NB][NE]; T r[NB][NE];                                              \
    const Py_ssize_t nl = OW / L, rem = OW - L * nl, K = OD * OH;                          \
    const Py_ssize_t pf_bytes = pfx_len * (Py_ssize_t)sizeof(T);                           \
    const Py_ssize_t pf_step = K > 0 ? ((pf_bytes + K - 1) / K + 63) & ~(Py_ssize_t)63 : 0;  \
    const Py_ssize_t jt = PYCONV_TW_MASKED ? OW : L * nl;                                  \
    /* the horizontal taps 1 and 2 shifted out of the aligned vectors in registers (one    \
       input load per vector and kernel row instead of three, none of them split across     \
       cache lines when the rows start on vector boundaries): the next vector's load stays  \
       within the padded row */                                                            \
    const int shift = PYCONV_TW_SHIFT && NE > 1 && dw == 1 && xoff + L * (nl + 1) <= Wp;   \
    Py_ssize_t n, od, oh, k, jb, j;                                                        \
    int b, e, q;                                                                           \
    if (phase & 1)                                                                         \
    _Pragma("GCC unroll 3") for (b = 0; b < NB; b++)                                       \
        _Pragma("GCC unroll 3") for (e = 0; e < NE; e++) { a[b][e] = (VT){0}; ah[b][e] = (HT){0}; r[b][e] = 0; } \
    else                                                                                   \
    _Pragma("GCC unroll 3") for (b = 0; b < NB; b++)                                       \
        _Pragma("GCC unroll 3") for (e = 0; e < NE; e++) {                                 \
            a[b][e] = ((const VT *)st)[b * NE + e];                                        \
            ah[b][e] = ((const HT *)(st + NB * NE * L))[b * NE + e];                       \
            r[b][e] = st[NB * NE * (L + L / 2) + b * NE + e];                              \
        }                                                                                  \
    for (n = 0; n < N; n++)                                                                \
    for (od = 0, k = 0; od < OD; od++)                                                     \
    for (oh = 0; oh < OH; oh++, k++) {                                                     \
        const T* g = g0 + n * gs_n + k * OW;                                               \
        const T* xr = buf + ((n * Dp + od * sd + zoff) * Hp + oh * sh + yoff) * Wp + xoff;  \
        PYCONV_TW_PREFETCH(T)                                                              \
        if (shift) {                                                                       \
            VT xc[NB];                                                                     \
            _Pragma("GCC unroll 3") for (b = 0; b < NB; b++) xc[b] = *(const VTU*)(xr + b * dh * Wp); \
            for (jb = 0; jb < nl; jb++) {                                                  \
                VT gv = *(const VTU*)(g + L * jb);                                         \
                _Pragma("GCC unroll 3") for (b = 0; b < NB; b++) {                         \
                    VT xn = *(const VTU*)(xr + b * dh * Wp + L * (jb + 1));                \
                    a[b][0] += gv * xc[b];                                                 \
                    if (NE > 1) a[b][1] += gv * PYCONV_TW_SH_##S(xc[b], xn, 1);            \
                    if (NE > 2) a[b][2] += gv * PYCONV_TW_SH_##S(xc[b], xn, 2);            \
                    xc[b] = xn;                                                            \
                }                                                                          \
            }                                                                              \
        } else                                                                             \
        for (jb = 0; jb < nl; jb++) {                                                      \
            VT gv = *(const VTU*)(g + L * jb);                                             \
            _Pragma("GCC unroll 3") for (b = 0; b < NB; b++)                               \
                _Pragma("GCC unroll 3") for (e = 0; e < NE; e++)                           \
                    a[b][e] += gv * *(const VTU*)(xr + b * dh * Wp + L * jb + e * dw);      \
        }                                                                                  \
        if (PYCONV_TW_HALF && rem && rem <= L / 2) {                                       \
            HT gv = PYCONV_TW_TAILH_##S(g + L * nl, rem);                                  \
            _Pragma("GCC unroll 3") for (b = 0; b < NB; b++)                               \
                _Pragma("GCC unroll 3") for (e = 0; e < NE; e++)                           \
                    ah[b][e] += gv * PYCONV_TW_TAILH_##S(xr + b * dh * Wp + L * nl + e * dw, rem); \
        } else if (PYCONV_TW_MASKED && rem) {                                              \
            VT gv = PYCONV_TW_TAIL_##S(g + L * nl, rem);                                   \
            _Pragma("GCC unroll 3") for (b = 0; b < NB; b++)                               \
                _Pragma("GCC unroll 3") for (e = 0; e < NE; e++)                           \
                    a[b][e] += gv * PYCONV_TW_TAIL_##S(xr + b * dh * Wp + L * nl + e * dw, rem); \
        }                                                                                  \
        for (j = jt; j < OW; j++) {                                                        \
            T gq = g[j];                                                                   \
            _Pragma("GCC unroll 3") for (b = 0; b < NB; b++)                               \
                _Pragma("GCC unroll 3") for (e = 0; e < NE; e++) r[b][e] += gq * xr[b * dh * Wp + j + e * dw]; \
        }                                                                                  \
    }                                                                                      \
    if (!(phase & 2)) {                                                                    \
        _Pragma("GCC unroll 3") for (b = 0; b < NB; b++)                                   \
            _Pragma("GCC unroll 3") for (e = 0; e < NE; e++) {                             \
                ((VT *)st)[b * NE + e] = a[b][e];                                          \
                ((HT *)(st + NB * NE * L))[b * NE + e] = ah[b][e];                         \
                st[NB * NE * (L + L / 2) + b * NE + e] = r[b][e];                          \
            }                                                                              \
        return;                                                                            \
    }                                                                                      \
    _Pragma("GCC unroll 3") for (b = 0; b < NB; b++)                                       \
    _Pragma("GCC unroll 3") for (e = 0; e < NE; e++) {                                     \
        T s = r[b][e];                                                                     \
        _Pragma("GCC unroll 16") for (q = 0; q < L; q++) s += a[b][e][q];                  \
        if (PYCONV_TW_HALF) _Pragma("GCC unroll 8") for (q = 0; q < L / 2; q++) s += ah[b][e][q]; \
        out[b * kw + e] = s;                                                               \
    }                                                                                      \
}
#define PYCONV_TW_SET(T, VT, VTU, HT, S)                                                     \
PYCONV_TW(T, VT, VTU, HT, 1, 1, S, pyconv_tw11_##S) PYCONV_TW(T, VT, VTU, HT, 1, 2, S, pyconv_tw12_##S) \
PYCONV_TW(T, VT, VTU, HT, 1, 3, S, pyconv_tw13_##S) PYCONV_TW(T, VT, VTU, HT, 2, 1, S, pyconv_tw21_##S) \
PYCONV_TW(T, VT, VTU, HT, 2, 2, S, pyconv_tw22_##S) PYCONV_TW(T, VT, VTU, HT, 2, 3, S, pyconv_tw23_##S) \
PYCONV_TW(T, VT, VTU, HT, 3, 1, S, pyconv_tw31_##S) PYCONV_TW(T, VT, VTU, HT, 3, 2, S, pyconv_tw32_##S) \
PYCONV_TW(T, VT, VTU, HT, 3, 3, S, pyconv_tw33_##S)                                                \
static void pyconv_tw_##S(int nb, int ne, PYCONV_TW_PARAMS(T))                                \
{                                                                                          \
    switch (nb * 4 + ne) {                                                                 \
    case 5: pyconv_tw11_##S PYCONV_TW_CALL; break;  case 6: pyconv_tw12_##S PYCONV_TW_CALL; break; \
    case 7: pyconv_tw13_##S PYCONV_TW_CALL; break;  case 9: pyconv_tw21_##S PYCONV_TW_CALL; break; \
    case 10: pyconv_tw22_##S PYCONV_TW_CALL; break; case 11: pyconv_tw23_##S PYCONV_TW_CALL; break; \
    case 13: pyconv_tw31_##S PYCONV_TW_CALL; break; case 14: pyconv_tw32_##S PYCONV_TW_CALL; break; \
    default: pyconv_tw33_##S PYCONV_TW_CALL; break;                                        \
    }                                                                                      \
}
PYCONV_TW_SET(float, pyconv_twf, pyconv_twf_u, pyconv_twf_h, f)
PYCONV_TW_SET(double, pyconv_twd, pyconv_twd_u, pyconv_twd_h, d)
/* blocks of eight channels (24 accumulators) only where 32 vector registers hold them */
#if defined(__AVX512F__)
#define PYCONV_HAVE_X8 1
#else
#define PYCONV_HAVE_X8 0
#endif
#else
/* portable fallback: one channel at a time, `omp simd` over 8-lane blocks */
#define PYCONV_TAPS3(NAME, T)                                                              \
static void NAME PYCONV_TAPS_ARGS(T)                                                       \
{                                                                                          \
    T a0[8], a1[8], a2[8];                                                              \
    T r0 = 0, r1 = 0, r2 = 0;                                                              \
    Py_ssize_t nv = OW / 8, n, od, oh, jb, j;                                             \
    int q;                                                                                 \
    for (q = 0; q < 8; q++) { a0[q] = 0; a1[q] = 0; a2[q] = 0; }                          \
    for (n = 0; n < N; n++)                                                                \
    for (od = 0; od < OD; od++)                                                            \
    for (oh = 0; oh < OH; oh++) {                                                          \
        const T* g = g0 + n * gs_n + (od * OH + oh) * OW;                                   \
        const T* xr = buf + ((n * Dp + od * sd + zoff) * Hp + oh * sh + yoff) * Wp + xoff;   \
        if (ne == 3) {                                                                     \
            for (jb = 0; jb < nv; jb++) {                                                  \
                const T* gp = g + jb * 8; const T* xp = xr + jb * 8;                      \
                _Pragma("omp simd")                                                        \
                for (q = 0; q < 8; q++) {                                                 \
                    T gq = gp[q];                                                          \
                    a0[q] += gq * xp[q]; a1[q] += gq * xp[q + dw]; a2[q] += gq * xp[q + 2 * dw]; \
                }                                                                          \
            }                                                                              \
        } else if (ne == 2) {                                                              \
            for (jb = 0; jb < nv; jb++) {                                                  \
                const T* gp = g + jb * 8; const T* xp = xr + jb * 8;                      \
                _Pragma("omp simd")                                                        \
                for (q = 0; q < 8; q++) {                                                 \
                    T gq = gp[q]; a0[q] += gq * xp[q]; a1[q] += gq * xp[q + dw];           \
                }                                                                          \
            }                                                                              \
        } else {                                                                           \
            for (jb = 0; jb < nv; jb++) {                                                  \
                const T* gp = g + jb * 8; const T* xp = xr + jb * 8;                      \
                _Pragma("omp simd")                                                        \
                for (q = 0; q < 8; q++) a0[q] += gp[q] * xp[q];                           \
            }                                                                              \
        }                                                                                  \
        for (j = nv * 8; j < OW; j++) {                                                   \
            T gq = g[j];                                                                   \
            r0 += gq * xr[j];                                                              \
            if (ne > 1) r1 += gq * xr[j + dw];                                             \
            if (ne > 2) r2 += gq * xr[j + 2 * dw];                                         \
        }                                                                                  \
    }                                                                                      \
    for (q = 0; q < 8; q++) { r0 += a0[q]; r1 += a1[q]; r2 += a2[q]; }                    \
    out[0] = r0;                                                                           \
    if (ne > 1) out[1] = r1;                                                               \
    if (ne > 2) out[2] = r2;                                                               \
}
#define PYCONV_TAPS3XM(NAME, ONE, T, M)                                                    \
static void NAME PYCONV_TAPS_ARGS(T)                                                       \
{                                                                                          \
    int ob;                                                                                \
    for (ob = 0; ob < (M); ob++)                                                           \
        ONE(g0 + ob * gs_o, gs_n, gs_o, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, zoff, yoff, xoff, dw, ne, \
            out + ob * os_o, os_o);                                                        \
}
PYCONV_TAPS3(pyconv_taps3_f, float)
PYCONV_TAPS3(pyconv_taps3_d, double)
PYCONV_TAPS3XM(pyconv_taps3x4_f, pyconv_taps3_f, float, 4)
PYCONV_TAPS3XM(pyconv_taps3x4_d, pyconv_taps3_d, double, 4)
PYCONV_TAPS3XM(pyconv_taps3x8_f, pyconv_taps3_f, float, 8)
PYCONV_TAPS3XM(pyconv_taps3x8_d, pyconv_taps3_d, double, 8)
/* (without vector types the eight-output block is not used: two four-output ones) */
#define PYCONV_TW_PLAIN(T, S)                                                                \
static void pyconv_tw_##S(int nb, int ne, const T* g0, Py_ssize_t gs_n, const T* buf, Py_ssize_t N,     \
    Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp,           \
    Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, Py_ssize_t dh, Py_ssize_t xoff,     \
    Py_ssize_t dw, T* out, Py_ssize_t kw, const T* pfg, const T* pfx, Py_ssize_t pfx_n, Py_ssize_t pfx_len, \
    T* st, int phase)                                                                      \
{                                                                                          \
    T r[3][3] = {{0}};                                                                     \
    Py_ssize_t n, k, j;                                                                    \
    int b, e;                                                                              \
    (void)pfg; (void)pfx; (void)pfx_n; (void)pfx_len;                                      \
    if (!(phase & 1)) for (b = 0; b < nb; b++) for (e = 0; e < ne; e++) r[b][e] = st[b * 3 + e]; \
    for (n = 0; n < N; n++)                                                                \
    for (k = 0; k < OD * OH; k++) {                                                        \
        Py_ssize_t od = k / OH, oh = k - od * OH;                                          \
        const T* g = g0 + n * gs_n + k * OW;                                               \
        const T* xr = buf + ((n * Dp + od * sd + zoff) * Hp + oh * sh + yoff) * Wp + xoff;  \
        for (j = 0; j < OW; j++)                                                           \
            for (b = 0; b < nb; b++) for (e = 0; e < ne; e++) r[b][e] += g[j] * xr[b * dh * Wp + j + e * dw]; \
    }                                                                                      \
    if (!(phase & 2)) { for (b = 0; b < nb; b++) for (e = 0; e < ne; e++) st[b * 3 + e] = r[b][e]; return; } \
    for (b = 0; b < nb; b++) for (e = 0; e < ne; e++) out[b * kw + e] = r[b][e];            \
}
PYCONV_TW_PLAIN(float, f)
PYCONV_TW_PLAIN(double, d)
/* (without vector types the eight-output block is not used: two four-output ones) */
#define PYCONV_HAVE_X8 0
#endif
/* elements of the state a pass carries between its parts (st above): 9 accumulators of the
   widest vectors (64 bytes of float lanes), their halves and scalar tails, and slack */
#define PYCONV_TW_STATE (9 * (64 / 4 + 64 / 8 + 1) + 16)
/* the block of m = 1, 4 or 8 channels (the Cython side's one entry point per dtype) */
#define PYCONV_TAPS3_BLOCK(NAME, T, X1, X4, X8)                                            \
static void NAME(int m, PYCONV_TAPS_PARAMS(T))                                             \
{                                                                                          \
    if (m == 8) X8 PYCONV_TAPS_CALL;                                                       \
    else if (m == 4) X4 PYCONV_TAPS_CALL;                                                  \
    else X1 PYCONV_TAPS_CALL;                                                              \
}
PYCONV_TAPS3_BLOCK(pyconv_taps3_block_f, float, pyconv_taps3_f, pyconv_taps3x4_f, pyconv_taps3x8_f)
PYCONV_TAPS3_BLOCK(pyconv_taps3_block_d, double, pyconv_taps3_d, pyconv_taps3x4_d, pyconv_taps3x8_d)

/* The bias gradient's reduction: one row of grad_output summed in blocks of at most 4096
   elements, each in four vector accumulators (lanes of the row's own type), the blocks'
   sums added in double: each lane adds at most 64 elements in the row's precision, so a
   float32 row of 10^6 elements keeps the accuracy of a pairwise sum.  Memory-bound: the
   point is one read of grad_output per channel, split among the threads by channel. */
#if defined(__GNUC__)
#define PYCONV_ROW_SUM(T, VT, VTU, S)                                                        \
static double pyconv_row_sum_##S(const T* r, Py_ssize_t n)                                 \
{                                                                                          \
    enum { L = sizeof(VT) / sizeof(T), BLOCK = 4096 };                                     \
    double s = 0;                                                                          \
    Py_ssize_t b0, j;                                                                      \
    int q;                                                                                 \
    for (b0 = 0; b0 < n; b0 += BLOCK) {                                                    \
        Py_ssize_t e = n - b0 < BLOCK ? n : b0 + BLOCK;                                    \
        VT a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                         \
        for (j = b0; j + 4 * L <= e; j += 4 * L) {                                         \
            a0 += *(const VTU*)(r + j); a1 += *(const VTU*)(r + j + L);                    \
            a2 += *(const VTU*)(r + j + 2 * L); a3 += *(const VTU*)(r + j + 3 * L);        \
        }                                                                                  \
        for (; j + L <= e; j += L) a0 += *(const VTU*)(r + j);                             \
        a0 = (a0 + a1) + (a2 + a3);                                                        \
        _Pragma("GCC unroll 16") for (q = 0; q < L; q++) s += (double)a0[q];               \
        for (; j < e; j++) s += (double)r[j];                                              \
    }                                                                                      \
    return s;                                                                              \
}
PYCONV_ROW_SUM(float, pyconv_twf, pyconv_twf_u, f)
PYCONV_ROW_SUM(double, pyconv_twd, pyconv_twd_u, d)
#else
#define PYCONV_ROW_SUM_PLAIN(T, S)                                                           \
static double pyconv_row_sum_##S(const T* r, Py_ssize_t n)                                 \
{                                                                                          \
    double s = 0;                                                                          \
    Py_ssize_t j;                                                                          \
    for (j = 0; j < n; j++) s += (double)r[j];                                             \
    return s;                                                                              \
}
PYCONV_ROW_SUM_PLAIN(float, f)
PYCONV_ROW_SUM_PLAIN(double, d)
#endif

#endif  /* PYCONV_THIN_WEIGHT_KERNELS_H */
