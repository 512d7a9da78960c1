/* panel_kernels.h: C micro-kernels of panel.pyx (1x1 layers as per-sample matrix products).

   Forward: out[o, p] = bias[o] + sum_c w[o, c] x[c, p].  The caller copies a chunk of
   positions of every input channel into stripes of PYCONV_PW_NR positions, [stripe][c][NR]
   (contiguous: the tile's loads run through memory in order, no 12 KiB channel stride and no
   cache-set conflicts between the channel rows), and sweeps each block of PYCONV_PW_MR output
   channels over the chunk's stripes while the block's weights, [c][MR], stay in L1.  The
   register tile is MR outputs x NV vectors of positions: per input channel NV vector loads,
   MR broadcasts and MR*NV FMAs (AVX-512: 8 x 3 vectors = 24 of the 32 registers; with 16
   registers 4 x 3).

   Weight gradient: dw[o, c] += sum_p dy[o, p] x[c, p] over a chunk of positions read in
   place (rows of both operands are contiguous in p): a tile of PYCONV_PWW_MR outputs x
   PYCONV_PWW_NR input channels keeps one vector of partial sums per pair; per vector of
   positions MR + NR loads and MR*NR FMAs, no broadcasts; the vectors of partial sums go to
   memory between chunks and their lanes are added once at the end (fixed orders: the bits
   depend on neither the chunk nor the thread count). */
#ifndef PYCONV_PANEL_KERNELS_H
#define PYCONV_PANEL_KERNELS_H
#include <string.h>

#if defined(__AVX512F__)
#define PYCONV_PW_BYTES 64
#define PYCONV_PW_MR 8
#define PYCONV_PWW_MR 4
#define PYCONV_PWW_NR 6
#elif defined(__AVX__)
#define PYCONV_PW_BYTES 32
#define PYCONV_PW_MR 4
#define PYCONV_PWW_MR 3
#define PYCONV_PWW_NR 4
#else
#define PYCONV_PW_BYTES 16
#define PYCONV_PW_MR 4
#define PYCONV_PWW_MR 3
#define PYCONV_PWW_NR 4
#endif
#define PYCONV_PW_NV 3
#define PYCONV_PW_NRF (PYCONV_PW_NV * PYCONV_PW_BYTES / 4)
#define PYCONV_PW_NRD (PYCONV_PW_NV * PYCONV_PW_BYTES / 8)

#if defined(__GNUC__) || defined(__clang__)
typedef float pyconv_pwf __attribute__((vector_size(PYCONV_PW_BYTES)));
typedef double pyconv_pwd __attribute__((vector_size(PYCONV_PW_BYTES)));

/* a: [K][MR] weights, b: [K][NR] stripe, c: MR rows of NR (row stride ldc);
   bias: MR values the sums start from, or NULL */
#define PYCONV_PW_MK(T, VT, NAME) \
static void NAME(const T *restrict a, const T *restrict b, Py_ssize_t K, T *restrict c, \
                 Py_ssize_t ldc, const T *restrict bias) { \
    enum { VL = sizeof(VT) / sizeof(T), MR = PYCONV_PW_MR, NV = PYCONV_PW_NV }; \
    VT acc[MR][NV]; \
    for (int o = 0; o < MR; o++) { \
        T b0 = bias ? bias[o] : (T)0; \
        for (int v = 0; v < NV; v++) acc[o][v] = (VT){0} + b0; \
    } \
    for (Py_ssize_t k = 0; k < K; k++) { \
        VT xv[NV]; \
        for (int v = 0; v < NV; v++) memcpy(&xv[v], b + k * (NV * VL) + v * VL, sizeof(VT)); \
        const T *ak = a + k * MR; \
        for (int o = 0; o < MR; o++) \
            for (int v = 0; v < NV; v++) acc[o][v] += ak[o] * xv[v]; \
    } \
    for (int o = 0; o < MR; o++) \
        for (int v = 0; v < NV; v++) memcpy(c + o * ldc + v * VL, &acc[o][v], sizeof(VT)); \
}

/* dy: mr <= MR rows, x: nr <= NR rows (row strides ldy, ldx), npos positions; cv: the
   tile's MR x NR vectors of partial sums (lane l sums the positions = l mod VL), continued.
   Rows past mr / nr repeat the last valid one (their sums land in slots the caller drops).
   Positions past the last whole vector add into the first lanes one by one. */
#define PYCONV_PWW_MK(T, VT, NAME) \
static void NAME(const T *restrict dy, Py_ssize_t ldy, const T *restrict x, Py_ssize_t ldx, \
                 Py_ssize_t npos, T *restrict cv, int mr, int nr) { \
    enum { VL = sizeof(VT) / sizeof(T), MR = PYCONV_PWW_MR, NR = PYCONV_PWW_NR }; \
    VT acc[MR][NR]; \
    const T *yr[MR], *xr[NR]; \
    for (int o = 0; o < MR; o++) yr[o] = dy + (o < mr ? o : mr - 1) * ldy; \
    for (int j = 0; j < NR; j++) xr[j] = x + (j < nr ? j : nr - 1) * ldx; \
    Py_ssize_t pv = npos - npos % VL; \
    for (int o = 0; o < MR; o++) for (int j = 0; j < NR; j++) memcpy(&acc[o][j], cv + (o * NR + j) * VL, sizeof(VT)); \
    for (Py_ssize_t p = 0; p < pv; p += VL) { \
        VT yv[MR]; \
        for (int o = 0; o < MR; o++) memcpy(&yv[o], yr[o] + p, sizeof(VT)); \
        for (int j = 0; j < NR; j++) { \
            VT xv; \
            memcpy(&xv, xr[j] + p, sizeof(VT)); \
            for (int o = 0; o < MR; o++) acc[o][j] += yv[o] * xv; \
        } \
    } \
    for (int o = 0; o < MR; o++) for (int j = 0; j < NR; j++) memcpy(cv + (o * NR + j) * VL, &acc[o][j], sizeof(VT)); \
    for (Py_ssize_t p = pv; p < npos; p++) \
        for (int o = 0; o < MR; o++) for (int j = 0; j < NR; j++) \
            cv[(o * NR + j) * VL + (p - pv)] += yr[o][p] * xr[j][p]; \
}
#else
#define PYCONV_PW_MK(T, VT, NAME) \
static void NAME(const T *a, const T *b, Py_ssize_t K, T *c, Py_ssize_t ldc, const T *bias) { \
    enum { MR = PYCONV_PW_MR, NR = PYCONV_PW_NV * PYCONV_PW_BYTES / sizeof(T) }; \
    for (int o = 0; o < MR; o++) for (int j = 0; j < NR; j++) c[o * ldc + j] = bias ? bias[o] : (T)0; \
    for (Py_ssize_t k = 0; k < K; k++) \
        for (int o = 0; o < MR; o++) for (int j = 0; j < NR; j++) c[o * ldc + j] += a[k * MR + o] * b[k * NR + j]; \
}
#define PYCONV_PWW_MK(T, VT, NAME) \
static void NAME(const T *dy, Py_ssize_t ldy, const T *x, Py_ssize_t ldx, Py_ssize_t npos, T *cv, \
                 int mr, int nr) { \
    enum { VL = PYCONV_PW_BYTES / sizeof(T), MR = PYCONV_PWW_MR, NR = PYCONV_PWW_NR }; \
    for (Py_ssize_t p = 0; p < npos; p++) \
        for (int o = 0; o < mr; o++) for (int j = 0; j < nr; j++) \
            cv[(o * NR + j) * VL + p % VL] += dy[o * ldy + p] * x[j * ldx + p]; \
}
#endif
/* the forward's copy of a chunk: pn positions of Cg rows (row stride ldx) into stripes of NR,
   dst[(s * Cg + c) * NR + j] = src[c * ldx + s * NR + j], zeros past pn (whole stripes by
   fixed-size copies the compiler turns into vector moves) */
#define PYCONV_PW_PACK(T, NAME) \
static void NAME(const T *restrict src, Py_ssize_t ldx, Py_ssize_t Cg, Py_ssize_t pn, T *restrict dst) { \
    enum { NR = PYCONV_PW_NV * PYCONV_PW_BYTES / sizeof(T) }; \
    Py_ssize_t full = pn / NR, rem = pn - full * NR; \
    for (Py_ssize_t c = 0; c < Cg; c++) { \
        const T *r = src + c * ldx; \
        for (Py_ssize_t s = 0; s < full; s++) memcpy(dst + (s * Cg + c) * NR, r + s * NR, NR * sizeof(T)); \
        if (rem) { \
            T *d = dst + (full * Cg + c) * NR; \
            for (Py_ssize_t j = 0; j < rem; j++) d[j] = r[full * NR + j]; \
            for (Py_ssize_t j = rem; j < NR; j++) d[j] = 0; \
        } \
    } \
}
PYCONV_PW_PACK(float, pyconv_pw_pack_f)
PYCONV_PW_PACK(double, pyconv_pw_pack_d)
PYCONV_PW_MK(float, pyconv_pwf, pyconv_pw_mk_f)
PYCONV_PW_MK(double, pyconv_pwd, pyconv_pw_mk_d)
PYCONV_PWW_MK(float, pyconv_pwf, pyconv_pww_mk_f)
PYCONV_PWW_MK(double, pyconv_pwd, pyconv_pww_mk_d)
#endif
