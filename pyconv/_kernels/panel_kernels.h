/* panel_kernels.h: C micro-kernels of panel.pyx (1x1 layers as per-sample matrix products).

   Forward: out[o, p] = bias[o] + sum_c w[o, c] x[c, p].  The caller copies a chunk of
   positions of every input channel into stripes of PYCONV_PW_NR positions, [stripe][c][NR]
   (contiguous: the tile's loads run through memory in order, no 12 KiB channel stride and no
   cache-set conflicts between the channel rows), and sweeps each block of PYCONV_PW_MR output
   channels over the chunk's stripes while the block's weights, [c][MR], stay in L1.  The
   register tile is MR outputs x NV vectors of positions: per input channel NV vector loads,
   MR broadcasts and MR*NV FMAs (AVX-512: 8 x 3 vectors = 24 of the 32 registers; with 16
   registers 4 x 3).

   Weight gradient: dw[o, c] = sum_p dy[o, p] x[c, p], the same form with the positions as
   the reduction: per chunk of positions the caller transposes grad_output into rows of
   output channels ([p][o], in L1); a tile of PYCONV_PWW_NC input channels x PYCONV_PWW_NVO
   vectors of output channels takes per position NVO vector loads of that copy and NC
   broadcasts from the input rows read in place (each input element is read once per block
   of NVO vectors of outputs).  The sums go to a small workspace between chunks (fixed
   order: the bits depend on neither the chunk nor the thread count). */
#ifndef PYCONV_PANEL_KERNELS_H
#define PYCONV_PANEL_KERNELS_H
#include <string.h>

#if defined(__AVX512F__)
#define PYCONV_PW_BYTES 64
#define PYCONV_PW_MR 8
#define PYCONV_PWW_NC 6
#define PYCONV_PWW_NVO 4
#elif defined(__AVX__)
#define PYCONV_PW_BYTES 32
#define PYCONV_PW_MR 4
#define PYCONV_PWW_NC 3
#define PYCONV_PWW_NVO 4
#else
#define PYCONV_PW_BYTES 16
#define PYCONV_PW_MR 4
#define PYCONV_PWW_NC 3
#define PYCONV_PWW_NVO 4
#endif
#define PYCONV_PW_NV 3
#define PYCONV_PW_NRF (PYCONV_PW_NV * PYCONV_PW_BYTES / 4)
#define PYCONV_PW_NRD (PYCONV_PW_NV * PYCONV_PW_BYTES / 8)

#if defined(__GNUC__) || defined(__clang__)
typedef float pyconv_pwf __attribute__((vector_size(PYCONV_PW_BYTES)));
typedef double pyconv_pwd __attribute__((vector_size(PYCONV_PW_BYTES)));

/* a: [K][MR] weights, b: [K][NR] stripe, c: MR rows of NR (row stride ldc);
   bias: MR values the sums start from, or NULL; pf (or NULL), pfrs, pfrows, pflines:
   memory to prefetch meanwhile (below) */
#define PYCONV_PW_MK(T, VT, NAME) \
static void NAME(const T *restrict a, const T *restrict b, Py_ssize_t K, T *restrict c, \
                 Py_ssize_t ldc, const T *restrict bias, const char *pf, Py_ssize_t pfrs, Py_ssize_t pfrows, \
                 Py_ssize_t pflines) { \
    enum { VL = sizeof(VT) / sizeof(T), MR = PYCONV_PW_MR, NV = PYCONV_PW_NV }; \
    VT acc[MR][NV]; \
    Py_ssize_t pr = 0, pl = 0; \
    if (!pf) pfrows = 0; \
    for (int o = 0; o < MR; o++) { \
        T b0 = bias ? bias[o] : (T)0; \
        for (int v = 0; v < NV; v++) acc[o][v] = (VT){0} + b0; \
    } \
    for (Py_ssize_t k = 0; k < K; k++) { \
        VT xv[NV]; \
        /* the MR x NV output lines this tile stores at its end, fetched into L2 one every \
           eighth channel (layer c, Intel Xeon, alternated in one process: float32 1.03-1.07x \
           at 1 thread, 1.03-1.04x at 2; float64 1.05-1.08x, 1.02-1.04x) */ \
        if (!(k & 7) && (k >> 3) < MR * NV) \
            __builtin_prefetch(c + ((k >> 3) / NV) * ldc + ((k >> 3) % NV) * VL, 1, 2); \
        /* pfrows rows of pflines lines (pfrs bytes apart) that the caller reads next, \
           fetched into L2 one every second channel: the next unit's pack then finds them \
           in cache instead of waiting on memory (layer c float32 1.07-1.10x at 1 thread, \
           1.02-1.03x at 2; float64 1.07-1.10x, 1.01-1.06x; with the output lines above) */ \
        else if (pr < pfrows && (k & 1)) { \
            __builtin_prefetch(pf + pr * pfrs + pl * 64, 0, 2); \
            if (++pl == pflines) { pl = 0; pr++; } \
        } \
        for (int v = 0; v < NV; v++) memcpy(&xv[v], b + k * (NV * VL) + v * VL, sizeof(VT)); \
        const T *ak = a + k * MR; \
        for (int o = 0; o < MR; o++) \
            for (int v = 0; v < NV; v++) acc[o][v] += ak[o] * xv[v]; \
    } \
    for (int o = 0; o < MR; o++) \
        for (int v = 0; v < NV; v++) memcpy(c + o * ldc + v * VL, &acc[o][v], sizeof(VT)); \
}

/* x: nc <= NC input-channel rows (row stride ldx; rows past nc repeat the last one, their
   sums land in slots the caller drops), yt: npos rows of grad_output transposed (row stride
   ldt, NVO vectors of output channels each); cv: the tile's NC x NVO vectors of sums,
   continued: cv[c][o] += sum_p x[c][p] yt[p][o] */
#define PYCONV_PWW_MK(T, VT, NAME) \
static void NAME(const T *restrict x, Py_ssize_t ldx, int nc, const T *restrict yt, Py_ssize_t ldt, \
                 Py_ssize_t npos, T *restrict cv) { \
    enum { VL = sizeof(VT) / sizeof(T), NC = PYCONV_PWW_NC, NVO = PYCONV_PWW_NVO }; \
    VT acc[NC][NVO]; \
    const T *xr[NC]; \
    for (int c = 0; c < NC; c++) xr[c] = x + (c < nc ? c : nc - 1) * ldx; \
    for (int c = 0; c < NC; c++) for (int v = 0; v < NVO; v++) memcpy(&acc[c][v], cv + (c * NVO + v) * VL, sizeof(VT)); \
    for (Py_ssize_t p = 0; p < npos; p++) { \
        VT yv[NVO]; \
        for (int v = 0; v < NVO; v++) memcpy(&yv[v], yt + p * ldt + v * VL, sizeof(VT)); \
        for (int c = 0; c < NC; c++) { \
            T xs = xr[c][p]; \
            for (int v = 0; v < NVO; v++) acc[c][v] += xs * yv[v]; \
        } \
    } \
    for (int c = 0; c < NC; c++) for (int v = 0; v < NVO; v++) memcpy(cv + (c * NVO + v) * VL, &acc[c][v], sizeof(VT)); \
}
#else
#define PYCONV_PW_MK(T, VT, NAME) \
static void NAME(const T *a, const T *b, Py_ssize_t K, T *c, Py_ssize_t ldc, const T *bias, const char *pf, \
                 Py_ssize_t pfrs, Py_ssize_t pfrows, Py_ssize_t pflines) { \
    enum { MR = PYCONV_PW_MR, NR = PYCONV_PW_NV * PYCONV_PW_BYTES / sizeof(T) }; \
    (void)pf; (void)pfrs; (void)pfrows; (void)pflines; \
    for (int o = 0; o < MR; o++) for (int j = 0; j < NR; j++) c[o * ldc + j] = bias ? bias[o] : (T)0; \
    for (Py_ssize_t k = 0; k < K; k++) \
        for (int o = 0; o < MR; o++) for (int j = 0; j < NR; j++) c[o * ldc + j] += a[k * MR + o] * b[k * NR + j]; \
}
#define PYCONV_PWW_MK(T, VT, NAME) \
static void NAME(const T *x, Py_ssize_t ldx, int nc, const T *yt, Py_ssize_t ldt, Py_ssize_t npos, T *cv) { \
    enum { NC = PYCONV_PWW_NC, NO = PYCONV_PWW_NVO * PYCONV_PW_BYTES / sizeof(T) }; \
    for (Py_ssize_t p = 0; p < npos; p++) \
        for (int c = 0; c < nc; c++) for (int o = 0; o < NO; o++) cv[c * NO + o] += x[c * ldx + p] * yt[p * ldt + o]; \
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
