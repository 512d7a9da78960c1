# Direct weight gradient for convolutions with few output channels per group
# (depthwise, thin groups, narrow 3-D layers), for pyconv.grad.  There the im2col
# GEMMs are too thin to run near peak and the column matrix (kernel-size times the
# input) costs more memory traffic than the arithmetic; this kernel pads each input
# channel once and streams its (output channel, input channel) pairs' rows instead.
# Wide layers use pyconv.nn's im2col + GEMM cores.
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memcpy, memset

from pyconv._kernels._common cimport real_t

ctypedef Py_ssize_t idx_t

# The inner loops of the weight gradient, in C with explicit vector accumulators (GCC
# does not vectorise the equivalent Cython loop; a portable `omp simd` version is the
# fallback).  One pass over every output row of a (sample-batched) channel pair -- or
# of four output channels sharing one input channel -- for up to three horizontal taps
# of one kernel row, stride 1 along the row.  Accumulators stay in vector registers;
# the lanes are summed once at the end.
cdef extern from *:
    """
    #include <string.h>
    #if defined(__GNUC__)
    /* GCC/Clang vector types: 16-lane accumulators for the body of a row, 8-lane ones
       for a half block, scalars for the rest; loads through memcpy (unaligned). */
    typedef float pyconv_f16 __attribute__((vector_size(16 * sizeof(float))));
    typedef float pyconv_f8 __attribute__((vector_size(8 * sizeof(float))));
    typedef double pyconv_d16 __attribute__((vector_size(16 * sizeof(double))));
    typedef double pyconv_d8 __attribute__((vector_size(8 * sizeof(double))));
    #define PYCONV_ACC(VT, A0, A1, A2, G, X, DW, NE)                                           \
        { VT gv, xv; memcpy(&gv, (G), sizeof(VT)); memcpy(&xv, (X), sizeof(VT)); A0 += gv * xv;  \
          if ((NE) > 1) { memcpy(&xv, (X) + (DW), sizeof(VT)); A1 += gv * xv; }                 \
          if ((NE) > 2) { memcpy(&xv, (X) + 2 * (DW), sizeof(VT)); A2 += gv * xv; } }
    #define PYCONV_ROWS(T, VT16, VT8, NE)                                                       \
        for (n = 0; n < N; n++)                                                                \
        for (od = 0; od < OD; od++)                                                            \
        for (oh = 0; oh < OH; oh++) {                                                          \
            const T* g = g0 + n * gs_n + (od * OH + oh) * OW;                                   \
            const T* xr = buf + ((n * Dp + od * sd + zoff) * Hp + oh * sh + yoff) * Wp + xoff;   \
            for (jb = 0; jb < n16; jb++)                                                       \
                PYCONV_ACC(VT16, a0, a1, a2, g + 16 * jb, xr + 16 * jb, dw, NE)                 \
            if (has8)                                                                          \
                PYCONV_ACC(VT8, b0, b1, b2, g + 16 * n16, xr + 16 * n16, dw, NE)                \
            for (j = jt; j < OW; j++) {                                                        \
                T gq = g[j];                                                                   \
                r0 += gq * xr[j];                                                              \
                if ((NE) > 1) r1 += gq * xr[j + dw];                                           \
                if ((NE) > 2) r2 += gq * xr[j + 2 * dw];                                       \
            }                                                                                  \
        }
    #define PYCONV_TAPS3(NAME, T, VT16, VT8)                                                   \
    static void NAME(const T* g0, Py_ssize_t gs_n, const T* buf, Py_ssize_t N, Py_ssize_t OD,  \
                     Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp,  \
                     Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff,              \
                     Py_ssize_t xoff, Py_ssize_t dw, int ne, T* out)                              \
    {                                                                                          \
        VT16 a0 = {0}, a1 = {0}, a2 = {0};                                                     \
        VT8 b0 = {0}, b1 = {0}, b2 = {0};                                                      \
        T r0 = 0, r1 = 0, r2 = 0;                                                              \
        Py_ssize_t n16 = OW / 16, has8 = (OW % 16) >= 8, jt = 16 * n16 + 8 * has8;             \
        Py_ssize_t n, od, oh, jb, j;                                                           \
        int q;                                                                                 \
        if (ne == 3) { PYCONV_ROWS(T, VT16, VT8, 3) }                                          \
        else if (ne == 2) { PYCONV_ROWS(T, VT16, VT8, 2) }                                     \
        else { PYCONV_ROWS(T, VT16, VT8, 1) }                                                  \
        for (q = 0; q < 16; q++) { r0 += a0[q]; r1 += a1[q]; r2 += a2[q]; }                    \
        for (q = 0; q < 8; q++) { r0 += b0[q]; r1 += b1[q]; r2 += b2[q]; }                     \
        out[0] = r0;                                                                           \
        if (ne > 1) out[1] = r1;                                                               \
        if (ne > 2) out[2] = r2;                                                               \
    }
    PYCONV_TAPS3(pyconv_taps3_f, float, pyconv_f16, pyconv_f8)
    PYCONV_TAPS3(pyconv_taps3_d, double, pyconv_d16, pyconv_d8)
    /* Four output channels at once (same input channel): every input vector loaded
       feeds four accumulators, as in a GEMM micro-kernel; 12 vector accumulators. */
    typedef double pyconv_d4 __attribute__((vector_size(4 * sizeof(double))));
    #define PYCONV_ACC4(VT, A, G, GS, X, DW, NE)                                               \
        { VT xv0, xv1, xv2, gv; memcpy(&xv0, (X), sizeof(VT)); xv1 = xv0; xv2 = xv0;           \
          if ((NE) > 1) memcpy(&xv1, (X) + (DW), sizeof(VT));                                  \
          if ((NE) > 2) memcpy(&xv2, (X) + 2 * (DW), sizeof(VT));                              \
          for (ob = 0; ob < 4; ob++) {                                                         \
              memcpy(&gv, (G) + ob * (GS), sizeof(VT));                                        \
              A[ob][0] += gv * xv0;                                                            \
              if ((NE) > 1) A[ob][1] += gv * xv1;                                              \
              if ((NE) > 2) A[ob][2] += gv * xv2;                                              \
          } }
    #define PYCONV_ROWS4(T, VTL, VTH, L, NE)                                                   \
        for (n = 0; n < N; n++)                                                                \
        for (od = 0; od < OD; od++)                                                            \
        for (oh = 0; oh < OH; oh++) {                                                          \
            const T* g = g0 + n * gs_n + (od * OH + oh) * OW;                                   \
            const T* xr = buf + ((n * Dp + od * sd + zoff) * Hp + oh * sh + yoff) * Wp + xoff;   \
            for (jb = 0; jb < nl; jb++)                                                        \
                PYCONV_ACC4(VTL, a, g + (L) * jb, gs_o, xr + (L) * jb, dw, NE)                  \
            if (hash)                                                                          \
                PYCONV_ACC4(VTH, b, g + (L) * nl, gs_o, xr + (L) * nl, dw, NE)                  \
            for (j = jt; j < OW; j++)                                                          \
                for (ob = 0; ob < 4; ob++) {                                                   \
                    T gq = g[ob * gs_o + j];                                                   \
                    r[ob][0] += gq * xr[j];                                                    \
                    if ((NE) > 1) r[ob][1] += gq * xr[j + dw];                                 \
                    if ((NE) > 2) r[ob][2] += gq * xr[j + 2 * dw];                             \
                }                                                                              \
        }
    #define PYCONV_TAPS3X4(NAME, T, VTL, VTH, L)                                               \
    static void NAME(const T* g0, Py_ssize_t gs_n, Py_ssize_t gs_o, const T* buf, Py_ssize_t N, \
                     Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp,  \
                     Py_ssize_t Wp, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, \
                     Py_ssize_t xoff, Py_ssize_t dw, int ne, T* out, Py_ssize_t os_o)             \
    {                                                                                          \
        VTL a[4][3]; VTH b[4][3]; T r[4][3]; VTL zl = {0}; VTH zh = {0};                       \
        Py_ssize_t nl = OW / (L), hash = (OW % (L)) >= (L) / 2, jt = (L) * nl + ((L) / 2) * hash; \
        Py_ssize_t n, od, oh, jb, j;                                                           \
        int ob, e, q;                                                                          \
        for (ob = 0; ob < 4; ob++) for (e = 0; e < 3; e++) { a[ob][e] = zl; b[ob][e] = zh; r[ob][e] = 0; } \
        if (ne == 3) { PYCONV_ROWS4(T, VTL, VTH, L, 3) }                                       \
        else if (ne == 2) { PYCONV_ROWS4(T, VTL, VTH, L, 2) }                                  \
        else { PYCONV_ROWS4(T, VTL, VTH, L, 1) }                                               \
        for (ob = 0; ob < 4; ob++)                                                             \
            for (e = 0; e < ne; e++) {                                                         \
                T sacc = r[ob][e];                                                             \
                for (q = 0; q < (L); q++) sacc += a[ob][e][q];                                 \
                for (q = 0; q < (L) / 2; q++) sacc += b[ob][e][q];                             \
                out[ob * os_o + e] = sacc;                                                     \
            }                                                                                  \
    }
    PYCONV_TAPS3X4(pyconv_taps3x4_f, float, pyconv_f16, pyconv_f8, 16)
    PYCONV_TAPS3X4(pyconv_taps3x4_d, double, pyconv_d8, pyconv_d4, 8)
    /* Eight output channels at once, full vector blocks only (24 accumulators; the
       tail of a row runs scalar): used when rows hold whole blocks. */
    #define PYCONV_ACC8(VT, A, G, GS, X, DW, NE)                                               \
        { VT xv0, xv1, xv2, gv; memcpy(&xv0, (X), sizeof(VT)); xv1 = xv0; xv2 = xv0;           \
          if ((NE) > 1) memcpy(&xv1, (X) + (DW), sizeof(VT));                                  \
          if ((NE) > 2) memcpy(&xv2, (X) + 2 * (DW), sizeof(VT));                              \
          for (ob = 0; ob < 8; ob++) {                                                         \
              memcpy(&gv, (G) + ob * (GS), sizeof(VT));                                        \
              A[ob][0] += gv * xv0;                                                            \
              if ((NE) > 1) A[ob][1] += gv * xv1;                                              \
              if ((NE) > 2) A[ob][2] += gv * xv2;                                              \
          } }
    #define PYCONV_ROWS8(T, VTL, L, NE)                                                        \
        for (n = 0; n < N; n++)                                                                \
        for (od = 0; od < OD; od++)                                                            \
        for (oh = 0; oh < OH; oh++) {                                                          \
            const T* g = g0 + n * gs_n + (od * OH + oh) * OW;                                   \
            const T* xr = buf + ((n * Dp + od * sd + zoff) * Hp + oh * sh + yoff) * Wp + xoff;   \
            for (jb = 0; jb < nl; jb++)                                                        \
                PYCONV_ACC8(VTL, a, g + (L) * jb, gs_o, xr + (L) * jb, dw, NE)                  \
            for (j = jt; j < OW; j++)                                                          \
                for (ob = 0; ob < 8; ob++) {                                                   \
                    T gq = g[ob * gs_o + j];                                                   \
                    r[ob][0] += gq * xr[j];                                                    \
                    if ((NE) > 1) r[ob][1] += gq * xr[j + dw];                                 \
                    if ((NE) > 2) r[ob][2] += gq * xr[j + 2 * dw];                             \
                }                                                                              \
        }
    #define PYCONV_TAPS3X8(NAME, T, VTL, L)                                                    \
    static void NAME(const T* g0, Py_ssize_t gs_n, Py_ssize_t gs_o, const T* buf, Py_ssize_t N, \
                     Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp,  \
                     Py_ssize_t Wp, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, \
                     Py_ssize_t xoff, Py_ssize_t dw, int ne, T* out, Py_ssize_t os_o)             \
    {                                                                                          \
        VTL a[8][3]; T r[8][3]; VTL zl = {0};                                                  \
        Py_ssize_t nl = OW / (L), jt = (L) * nl;                                               \
        Py_ssize_t n, od, oh, jb, j;                                                           \
        int ob, e, q;                                                                          \
        for (ob = 0; ob < 8; ob++) for (e = 0; e < 3; e++) { a[ob][e] = zl; r[ob][e] = 0; }    \
        if (ne == 3) { PYCONV_ROWS8(T, VTL, L, 3) }                                            \
        else if (ne == 2) { PYCONV_ROWS8(T, VTL, L, 2) }                                       \
        else { PYCONV_ROWS8(T, VTL, L, 1) }                                                    \
        for (ob = 0; ob < 8; ob++)                                                             \
            for (e = 0; e < ne; e++) {                                                         \
                T sacc = r[ob][e];                                                             \
                for (q = 0; q < (L); q++) sacc += a[ob][e][q];                                 \
                out[ob * os_o + e] = sacc;                                                     \
            }                                                                                  \
    }
    PYCONV_TAPS3X8(pyconv_taps3x8_f, float, pyconv_f16, 16)
    PYCONV_TAPS3X8(pyconv_taps3x8_d, double, pyconv_d8, 8)
    #define PYCONV_HAVE_X8 1
    #else
    #define PYCONV_TAPS3(NAME, T)                                                              \
    static void NAME(const T* g0, Py_ssize_t gs_n, const T* buf, Py_ssize_t N, Py_ssize_t OD,  \
                     Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp,  \
                     Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff,              \
                     Py_ssize_t xoff, Py_ssize_t dw, int ne, T* out)                              \
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
    PYCONV_TAPS3(pyconv_taps3_f, float)
    PYCONV_TAPS3(pyconv_taps3_d, double)
    #define PYCONV_TAPS3X4(NAME, SINGLE, T)                                                    \
    static void NAME(const T* g0, Py_ssize_t gs_n, Py_ssize_t gs_o, const T* buf, Py_ssize_t N, \
                     Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp,  \
                     Py_ssize_t Wp, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, \
                     Py_ssize_t xoff, Py_ssize_t dw, int ne, T* out, Py_ssize_t os_o)             \
    {                                                                                          \
        int ob;                                                                                \
        for (ob = 0; ob < 4; ob++)                                                             \
            SINGLE(g0 + ob * gs_o, gs_n, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, zoff, yoff, xoff, dw, ne, \
                   out + ob * os_o);                                                           \
    }
    PYCONV_TAPS3X4(pyconv_taps3x4_f, pyconv_taps3_f, float)
    PYCONV_TAPS3X4(pyconv_taps3x4_d, pyconv_taps3_d, double)
    #define PYCONV_HAVE_X8 0
    /* (without vector types the eight-output block is two four-output ones) */
    #define PYCONV_TAPS3X8(NAME, X4, T)                                                        \
    static void NAME(const T* g0, Py_ssize_t gs_n, Py_ssize_t gs_o, const T* buf, Py_ssize_t N, \
                     Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp,  \
                     Py_ssize_t Wp, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, \
                     Py_ssize_t xoff, Py_ssize_t dw, int ne, T* out, Py_ssize_t os_o)             \
    {                                                                                          \
        X4(g0, gs_n, gs_o, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, zoff, yoff, xoff, dw, ne, out, os_o); \
        X4(g0 + 4 * gs_o, gs_n, gs_o, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, zoff, yoff, xoff, dw, ne, \
           out + 4 * os_o, os_o);                                                              \
    }
    PYCONV_TAPS3X8(pyconv_taps3x8_f, pyconv_taps3x4_f, float)
    PYCONV_TAPS3X8(pyconv_taps3x8_d, pyconv_taps3x4_d, double)
    #endif

    """

    void pyconv_taps3_f(const float* g0, Py_ssize_t gs_n, const float* buf, Py_ssize_t N, Py_ssize_t OD,
                        Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp,
                        Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, Py_ssize_t xoff,
                        Py_ssize_t dw, int ne, float* out) noexcept nogil
    void pyconv_taps3_d(const double* g0, Py_ssize_t gs_n, const double* buf, Py_ssize_t N, Py_ssize_t OD,
                        Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp,
                        Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, Py_ssize_t xoff,
                        Py_ssize_t dw, int ne, double* out) noexcept nogil
    void pyconv_taps3x4_f(const float* g0, Py_ssize_t gs_n, Py_ssize_t gs_o, const float* buf, Py_ssize_t N,
                          Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp,
                          Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, Py_ssize_t xoff,
                          Py_ssize_t dw, int ne, float* out, Py_ssize_t os_o) noexcept nogil
    void pyconv_taps3x4_d(const double* g0, Py_ssize_t gs_n, Py_ssize_t gs_o, const double* buf, Py_ssize_t N,
                          Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp,
                          Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, Py_ssize_t xoff,
                          Py_ssize_t dw, int ne, double* out, Py_ssize_t os_o) noexcept nogil
    void pyconv_taps3x8_f(const float* g0, Py_ssize_t gs_n, Py_ssize_t gs_o, const float* buf, Py_ssize_t N,
                          Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp,
                          Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, Py_ssize_t xoff,
                          Py_ssize_t dw, int ne, float* out, Py_ssize_t os_o) noexcept nogil
    void pyconv_taps3x8_d(const double* g0, Py_ssize_t gs_n, Py_ssize_t gs_o, const double* buf, Py_ssize_t N,
                          Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp,
                          Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, Py_ssize_t xoff,
                          Py_ssize_t dw, int ne, double* out, Py_ssize_t os_o) noexcept nogil
    const int PYCONV_HAVE_X8


cdef inline idx_t col_lo(idx_t off, idx_t step, idx_t n) noexcept nogil:
    # first j in [0, n] with off + j*step >= 0 (step > 0)
    cdef idx_t a = 0
    if off < 0:
        a = (-off + step - 1) // step
    return a if a < n else n


cdef inline idx_t col_hi(idx_t off, idx_t step, idx_t n, idx_t size) noexcept nogil:
    # one past the last j in [0, n) with off + j*step < size
    cdef idx_t b = 0
    if size - off > 0:
        b = (size - off + step - 1) // step
    return b if b < n else n



cdef void pad_channel(const real_t* xch, idx_t xs_n, real_t* buf, idx_t N, idx_t D, idx_t H, idx_t W,
                      idx_t pd, idx_t ph, idx_t pw, idx_t Dp, idx_t Hp, idx_t Wp) noexcept nogil:
    """Input channel ``xch`` (N samples ``xs_n`` apart) copied into ``buf`` with its zero
    padding explicit (Dp x Hp x Wp per sample: exactly the extent the taps read), so the
    tap loops need no bounds checks."""
    cdef idx_t n, z, y, iz, iy, xlo, xhi
    memset(buf, 0, N * Dp * Hp * Wp * sizeof(real_t))
    xlo = pw if pw < Wp else Wp
    xhi = pw + W if pw + W < Wp else Wp
    if xhi <= xlo:
        return
    for n in range(N):
        for z in range(D):
            iz = z + pd
            if iz >= Dp:
                break
            for y in range(H):
                iy = y + ph
                if iy >= Hp:
                    break
                memcpy(buf + ((n * Dp + iz) * Hp + iy) * Wp + xlo, xch + n * xs_n + (z * H + y) * W + xlo - pw,
                       (xhi - xlo) * sizeof(real_t))


cdef void pair_taps(const real_t* gch, idx_t gs_n, const real_t* buf, real_t* out,
                    idx_t N, idx_t OD, idx_t OH, idx_t OW, idx_t kd, idx_t kh, idx_t kw, idx_t sd, idx_t sh,
                    idx_t sw, idx_t dd, idx_t dh, idx_t dw, idx_t Dp, idx_t Hp, idx_t Wp) noexcept nogil:
    """All taps of one (output channel, padded input channel) pair: out[t] = sum of go * x
    at tap t.  For each kernel row, up to three horizontal taps share every load of
    grad_output, each with a vector accumulator that stays in registers."""
    cdef real_t r0, r1, r2, gq
    cdef idx_t n, a, b, e0, ne, od, oh, j, t
    cdef const real_t* g
    cdef const real_t* xr
    # 2. the taps, three horizontal ones per pass over the rows
    for a in range(kd):
        for b in range(kh):
            e0 = 0
            while e0 < kw:
                ne = kw - e0 if kw - e0 < 3 else 3
                t = (a * kh + b) * kw + e0
                if sw == 1:
                    if real_t is float:
                        pyconv_taps3_f(gch, gs_n, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, a * dd, b * dh, e0 * dw,
                                       dw, <int>ne, out + t)
                    else:
                        pyconv_taps3_d(gch, gs_n, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, a * dd, b * dh, e0 * dw,
                                       dw, <int>ne, out + t)
                else:
                    r0 = 0
                    r1 = 0
                    r2 = 0
                    for n in range(N):
                        for od in range(OD):
                            for oh in range(OH):
                                g = gch + n * gs_n + (od * OH + oh) * OW
                                xr = buf + ((n * Dp + od * sd + a * dd) * Hp + oh * sh + b * dh) * Wp + e0 * dw
                                for j in range(OW):
                                    gq = g[j]
                                    r0 = r0 + gq * xr[j * sw]
                                    if ne > 1:
                                        r1 = r1 + gq * xr[j * sw + dw]
                                    if ne > 2:
                                        r2 = r2 + gq * xr[j * sw + 2 * dw]
                    out[t] = r0
                    if ne > 1:
                        out[t + 1] = r1
                    if ne > 2:
                        out[t + 2] = r2
                e0 = e0 + 3


cdef void quad_taps(const real_t* gch, idx_t gs_n, idx_t gs_o, const real_t* buf, real_t* out, idx_t os_o,
                    idx_t N, idx_t OD, idx_t OH, idx_t OW, idx_t kd, idx_t kh, idx_t kw, idx_t sd, idx_t sh,
                    idx_t sw, idx_t dd, idx_t dh, idx_t dw, idx_t Dp, idx_t Hp, idx_t Wp) noexcept nogil:
    """pair_taps for four consecutive output channels (``gs_o`` apart in grad_output,
    ``os_o`` apart in the weight gradient) sharing one padded input channel."""
    cdef idx_t a, b, e0, ne, t, ob
    if sw != 1:
        for ob in range(4):
            pair_taps(gch + ob * gs_o, gs_n, buf, out + ob * os_o, N, OD, OH, OW, kd, kh, kw, sd, sh, sw,
                      dd, dh, dw, Dp, Hp, Wp)
        return
    for a in range(kd):
        for b in range(kh):
            e0 = 0
            while e0 < kw:
                ne = kw - e0 if kw - e0 < 3 else 3
                t = (a * kh + b) * kw + e0
                if real_t is float:
                    pyconv_taps3x4_f(gch, gs_n, gs_o, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, a * dd, b * dh,
                                     e0 * dw, dw, <int>ne, out + t, os_o)
                else:
                    pyconv_taps3x4_d(gch, gs_n, gs_o, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, a * dd, b * dh,
                                     e0 * dw, dw, <int>ne, out + t, os_o)
                e0 = e0 + 3


cdef void oct_taps(const real_t* gch, idx_t gs_n, idx_t gs_o, const real_t* buf, real_t* out, idx_t os_o,
                   idx_t N, idx_t OD, idx_t OH, idx_t OW, idx_t kd, idx_t kh, idx_t kw, idx_t sd, idx_t sh,
                   idx_t dd, idx_t dh, idx_t dw, idx_t Dp, idx_t Hp, idx_t Wp) noexcept nogil:
    """quad_taps for eight output channels (stride 1 along rows, vector-aligned rows)."""
    cdef idx_t a, b, e0, ne, t
    for a in range(kd):
        for b in range(kh):
            e0 = 0
            while e0 < kw:
                ne = kw - e0 if kw - e0 < 3 else 3
                t = (a * kh + b) * kw + e0
                if real_t is float:
                    pyconv_taps3x8_f(gch, gs_n, gs_o, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, a * dd, b * dh,
                                     e0 * dw, dw, <int>ne, out + t, os_o)
                else:
                    pyconv_taps3x8_d(gch, gs_n, gs_o, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, a * dd, b * dh,
                                     e0 * dw, dw, <int>ne, out + t, os_o)
                e0 = e0 + 3


def direct_weight(const real_t[:, :, :, :, ::1] x, const real_t[:, :, :, :, ::1] go, real_t[:, :, :, :, ::1] gw,
                  real_t[:, ::1] ws, tuple stride, tuple dilation, tuple pad_before, tuple padded, idx_t groups,
                  int nthreads):
    """gw[o, c, a, b, e] = sum over samples and output positions of
    go[n, o, od, oh, ow] * x[n, g*Cg + c, od*sd - pd + a*dd, oh*sh - ph + b*dh, ow*sw - pw + e*dw].

    x: (N, C_in, D, H, W); go: (N, C_out, OD, OH, OW); gw: (C_out, C_in/groups, kd, kh, kw);
    ws: (nthreads, N*Dp*Hp*Wp) scratch for the padded channel, ``padded = (Dp, Hp, Wp)``
    the extent the taps read.  Parallel over input channels: each task pads its channel
    once, then computes every weight that reads it (the group's outputs), so tasks own
    disjoint weights (no reduction across threads).
    """
    cdef idx_t N = x.shape[0], Cin = x.shape[1], D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = gw.shape[0], Cg = gw.shape[1], kd = gw.shape[2], kh = gw.shape[3], kw = gw.shape[4]
    cdef idx_t OD = go.shape[2], OH = go.shape[3], OW = go.shape[4]
    cdef idx_t sd = stride[0], sh = stride[1], sw = stride[2]
    cdef idx_t dd = dilation[0], dh = dilation[1], dw = dilation[2]
    cdef idx_t pd = pad_before[0], ph = pad_before[1], pw = pad_before[2]
    cdef idx_t Dp = padded[0], Hp = padded[1], Wp = padded[2]
    cdef idx_t Og = Cout // groups
    cdef idx_t xc, o, c, gi
    cdef idx_t lanes = 16 if real_t is float else 8
    cdef bint use8 = PYCONV_HAVE_X8 and sw == 1 and OW % lanes < lanes // 2
    cdef idx_t xs_n = Cin * D * H * W, gs_n = Cout * OD * OH * OW
    cdef real_t* buf = NULL
    if Cout * Cg == 0 or N == 0 or OD * OH * OW == 0:
        return
    with nogil, parallel(num_threads=nthreads):
        buf = &ws[threadid(), 0]
        for xc in prange(Cin, schedule='static'):
            gi = xc // Cg
            c = xc % Cg
            pad_channel(&x[0, xc, 0, 0, 0], xs_n, buf, N, D, H, W, pd, ph, pw, Dp, Hp, Wp)
            o = gi * Og
            # eight outputs per block where rows hold whole vector blocks (no half block)
            while use8 and o + 8 <= gi * Og + Og:
                oct_taps(&go[0, o, 0, 0, 0], gs_n, OD * OH * OW, buf, &gw[o, c, 0, 0, 0], Cg * kd * kh * kw,
                         N, OD, OH, OW, kd, kh, kw, sd, sh, dd, dh, dw, Dp, Hp, Wp)
                o = o + 8
            while o + 4 <= gi * Og + Og:
                quad_taps(&go[0, o, 0, 0, 0], gs_n, OD * OH * OW, buf, &gw[o, c, 0, 0, 0], Cg * kd * kh * kw,
                          N, OD, OH, OW, kd, kh, kw, sd, sh, sw, dd, dh, dw, Dp, Hp, Wp)
                o = o + 4
            while o < gi * Og + Og:
                pair_taps(&go[0, o, 0, 0, 0], gs_n, buf, &gw[o, c, 0, 0, 0], N, OD, OH, OW, kd, kh, kw,
                          sd, sh, sw, dd, dh, dw, Dp, Hp, Wp)
                o = o + 1
