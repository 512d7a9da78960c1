/* ndimage_kernels.h: C helpers of ndimage.pyx (included by it with cdef extern from "ndimage_kernels.h"):
   typed loads and stores with scipy's casts, and the register-blocked tap sums. */
#ifndef PYCONV_NDIMAGE_KERNELS_H
#define PYCONV_NDIMAGE_KERNELS_H

#include <stdint.h>
/* type codes, shared with pyconv/ndimage.py (_CODES) */
enum { ND_BOOL = 0, ND_I8, ND_U8, ND_I16, ND_U16, ND_I32, ND_U32, ND_I64, ND_U64, ND_F32, ND_F64 };

/* double -> integer as x86-64 code compiled for the baseline ISA does it (scipy's
   wheels): cvttsd2si to 32 bits for the narrow types, to 64 bits for uint32/int64,
   and the 2**63-offset sequence for uint64; out of range and NaN give the
   "integer indefinite" value.  Written out so that AVX-512's unsigned
   conversions (-march=native) cannot change the results. */
static inline int32_t nd_cvt32(double v) {
    return (v > -2147483649.0 && v < 2147483648.0) ? (int32_t)v : INT32_MIN;
}
static inline int64_t nd_cvt64(double v) {
    return (v >= -9223372036854775808.0 && v < 9223372036854775808.0) ? (int64_t)v : INT64_MIN;
}
static inline uint64_t nd_cvtu64(double v) {
    if (v >= 9223372036854775808.0)
        return ((uint64_t)nd_cvt64(v - 9223372036854775808.0)) ^ 0x8000000000000000ULL;
    return (uint64_t)nd_cvt64(v);
}

#define ND_LOAD_CASE(CODE, CT)                                             \
    case CODE:                                                             \
        if (ni == 1 && dp == 1 && sp == (Py_ssize_t)sizeof(CT)) {          \
            const CT* q = (const CT*)src;   /* a contiguous row: vectorised */ \
            for (p = 0; p < np_; p++)                                      \
                dst[p] = (DT)q[p];                                         \
            break;                                                         \
        }                                                                  \
        if (di == 1 && si == (Py_ssize_t)sizeof(CT)) {  /* contiguous runs */ \
            for (p = 0; p < np_; p++) {                                    \
                const CT* q = (const CT*)(src + p * sp);                   \
                DT* d = dst + p * dp;                                      \
                for (i = 0; i < ni; i++)                                   \
                    d[i] = (DT)q[i];                                       \
            }                                                              \
            break;                                                         \
        }                                                                  \
        for (p = 0; p < np_; p++) {                                        \
            const char* q = src + p * sp;                                  \
            for (i = 0; i < ni; i++)                                       \
                dst[p * dp + i * di] = (DT)(*(const CT*)(q + i * si));     \
        }                                                                  \
        break;

#define ND_LOAD_BODY                                                       \
    Py_ssize_t p, i;                                                       \
    switch (code) {                                                        \
        ND_LOAD_CASE(ND_BOOL, uint8_t)                                     \
        ND_LOAD_CASE(ND_I8, int8_t)                                        \
        ND_LOAD_CASE(ND_U8, uint8_t)                                       \
        ND_LOAD_CASE(ND_I16, int16_t)                                      \
        ND_LOAD_CASE(ND_U16, uint16_t)                                     \
        ND_LOAD_CASE(ND_I32, int32_t)                                      \
        ND_LOAD_CASE(ND_U32, uint32_t)                                     \
        ND_LOAD_CASE(ND_I64, int64_t)                                      \
        ND_LOAD_CASE(ND_U64, uint64_t)                                     \
        ND_LOAD_CASE(ND_F32, float)                                        \
        ND_LOAD_CASE(ND_F64, double)                                       \
    }

/* dst[p*dp + i*di] = src[p*sp + i*si] (byte strides) for p < np_, i < ni */
static void nd_load_d(const char* src, Py_ssize_t sp, Py_ssize_t si, Py_ssize_t np_, Py_ssize_t ni,
                      int code, double* dst, Py_ssize_t dp, Py_ssize_t di) {
    #define DT double
    ND_LOAD_BODY
    #undef DT
}
static void nd_load_f(const char* src, Py_ssize_t sp, Py_ssize_t si, Py_ssize_t np_, Py_ssize_t ni,
                      int code, float* dst, Py_ssize_t dp, Py_ssize_t di) {
    #define DT float
    ND_LOAD_BODY
    #undef DT
}

#define ND_STORE_CASE(CODE, CT, CONV)                                      \
    case CODE:                                                             \
        if (si == 1 && di == (Py_ssize_t)sizeof(CT)) {  /* contiguous runs */ \
            for (p = 0; p < np_; p++) {                                    \
                CT* q = (CT*)(dst + p * dp);                               \
                const DT_SRC* r = src + p * sp;                            \
                for (i = 0; i < ni; i++)                                   \
                    q[i] = (CT)CONV((double)r[i]);                         \
            }                                                              \
            break;                                                         \
        }                                                                  \
        for (p = 0; p < np_; p++) {                                        \
            char* q = dst + p * dp;                                        \
            for (i = 0; i < ni; i++)                                       \
                *(CT*)(q + i * di) = (CT)CONV((double)src[p * sp + i * si]);\
        }                                                                  \
        break;

#define ND_SAME(v) (v)
#define ND_STORE_BODY                                                      \
    Py_ssize_t p, i;                                                       \
    switch (code) {                                                        \
        ND_STORE_CASE(ND_BOOL, uint8_t, nd_cvt32)                          \
        ND_STORE_CASE(ND_I8, int8_t, nd_cvt32)                             \
        ND_STORE_CASE(ND_U8, uint8_t, nd_cvt32)                            \
        ND_STORE_CASE(ND_I16, int16_t, nd_cvt32)                           \
        ND_STORE_CASE(ND_U16, uint16_t, nd_cvt32)                          \
        ND_STORE_CASE(ND_I32, int32_t, nd_cvt32)                           \
        ND_STORE_CASE(ND_U32, uint32_t, nd_cvt64)                          \
        ND_STORE_CASE(ND_I64, int64_t, nd_cvt64)                           \
        ND_STORE_CASE(ND_U64, uint64_t, nd_cvtu64)                         \
        ND_STORE_CASE(ND_F32, float, ND_SAME)                              \
        ND_STORE_CASE(ND_F64, double, ND_SAME)                             \
    }

/* dst[p*dp + i*di] = cast(src[p*sp + i*si]) (dst byte strides, src element strides) */
static void nd_store_d(const double* src, Py_ssize_t sp, Py_ssize_t si, Py_ssize_t np_, Py_ssize_t ni,
                       int code, char* dst, Py_ssize_t dp, Py_ssize_t di) {
    #define DT_SRC double
    ND_STORE_BODY
    #undef DT_SRC
}
static void nd_store_f(const float* src, Py_ssize_t sp, Py_ssize_t si, Py_ssize_t np_, Py_ssize_t ni,
                       int code, char* dst, Py_ssize_t dp, Py_ssize_t di) {
    if (code == ND_F32) {   /* the float32 -> float32 path: a plain copy */
        Py_ssize_t p, i;
        for (p = 0; p < np_; p++) {
            float* q = (float*)(dst + p * dp);
            if (di == (Py_ssize_t)sizeof(float) && si == 1)
                for (i = 0; i < ni; i++) q[i] = src[p * sp + i];
            else
                for (i = 0; i < ni; i++) *(float*)((char*)q + i * di) = src[p * sp + i * si];
        }
        return;
    }
    #define DT_SRC float
    ND_STORE_BODY
    #undef DT_SRC
}

/* One step of the running sum (scipy's NI_UniformFilter1D, in double) across n lines side
   by side: acc[i] += add[i] (sub == NULL) or acc[i] += (add[i] - sub[i]), then
   o[i] = acc[i] / k unless o == NULL.  Separate helpers with restrict so the sweep
   across lines vectorises (in Cython the double accumulators may alias double rows). */
#define ND_RSUM_DEF(NAME, T)                                                   \
static void NAME(double* restrict acc, T* restrict o, const T* add, const T* sub, \
                 Py_ssize_t n, double k) {                                     \
    Py_ssize_t i;                                                              \
    double a;                                                                  \
    if (o == NULL) {                                                           \
        if (sub == NULL)                                                       \
            for (i = 0; i < n; i++) acc[i] = acc[i] + (double)add[i];          \
        else                                                                   \
            for (i = 0; i < n; i++) acc[i] = acc[i] + ((double)add[i] - (double)sub[i]); \
    } else if (sub == NULL) {                                                  \
        for (i = 0; i < n; i++) { a = acc[i] + (double)add[i]; acc[i] = a; o[i] = (T)(a / k); } \
    } else {                                                                   \
        for (i = 0; i < n; i++) {                                              \
            a = acc[i] + ((double)add[i] - (double)sub[i]); acc[i] = a; o[i] = (T)(a / k); \
        }                                                                      \
    }                                                                          \
}
ND_RSUM_DEF(nd_rsum_d, double)
ND_RSUM_DEF(nd_rsum_f, float)

/* The tap sums, register-blocked: 4 vectors of outputs stay in registers while the
   loop runs over every tap, so each output is loaded and stored once whatever the
   tap count (a sweep per group of taps re-read and re-wrote the sums per group),
   and the 4 independent chains of adds hide the add latency.  Every output adds its
   terms in the caller's order, one multiply and one add each (no FMA: the module is
   built with -ffp-contract=off), starting from 0 -- the arithmetic of scipy.ndimage's
   loops, so float64 results are its bits.  A row that is not a multiple of the block
   ends with one block shifted back to end at the row's end: it recomputes a few
   outputs (the same bits), where a vector or scalar tail would run one latency-bound
   chain per output (27 dependent adds for a 3x3x3 kernel).  So ``o`` must not
   overlap the inputs.  The vector width follows the variant being compiled (an
   AVX-512 build 64 bytes, AVX2 32, baseline 16) so the 4 accumulators and their
   operands fit the register file; GCC/Clang vector extensions give explicit SIMD
   without intrinsics, other compilers the same sums in plain C. */
#include <string.h>
#if defined(__GNUC__) || defined(__clang__)
#if defined(__AVX512F__)
#define ND_VBYTES 64
#elif defined(__AVX__)
#define ND_VBYTES 32
#else
#define ND_VBYTES 16
#endif
typedef double nd_vd __attribute__((vector_size(ND_VBYTES)));
typedef float nd_vf __attribute__((vector_size(ND_VBYTES)));
#define ND_LD(v, p) memcpy(&(v), (p), sizeof(v))
#define ND_ST(p, v) memcpy((p), &(v), sizeof(v))

/* o[j] = (((0 + ws[0] ap[0][j]) + ws[1] ap[1][j]) + ...) for j < n, g >= 0 taps */
#define ND_TAPS_DEF(NAME, T, VT)                                               \
static void NAME(T* restrict o, Py_ssize_t n, const T* const* ap, const T* ws, Py_ssize_t g) { \
    enum { VL = sizeof(VT) / sizeof(T), B = 4 * VL };                          \
    Py_ssize_t j = 0, t;                                                       \
    if (n >= B) {                                                              \
        for (;;) {                                                             \
            VT a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                         \
            for (t = 0; t < g; t++) {                                          \
                const T* p = ap[t] + j; const T w = ws[t]; VT x0, x1, x2, x3;  \
                ND_LD(x0, p); ND_LD(x1, p + VL); ND_LD(x2, p + 2 * VL); ND_LD(x3, p + 3 * VL); \
                a0 = a0 + w * x0; a1 = a1 + w * x1; a2 = a2 + w * x2; a3 = a3 + w * x3; \
            }                                                                  \
            ND_ST(o + j, a0); ND_ST(o + j + VL, a1); ND_ST(o + j + 2 * VL, a2); ND_ST(o + j + 3 * VL, a3); \
            if (j + B == n) return;                                            \
            j = (j + 2 * B <= n) ? j + B : n - B;                              \
        }                                                                      \
    }                                                                          \
    if (n >= VL) {                                                             \
        for (;;) {                                                             \
            VT a0 = {0}, x0;                                                   \
            for (t = 0; t < g; t++) { ND_LD(x0, ap[t] + j); a0 = a0 + ws[t] * x0; } \
            ND_ST(o + j, a0);                                                  \
            if (j + VL == n) return;                                           \
            j = (j + 2 * VL <= n) ? j + VL : n - VL;                           \
        }                                                                      \
    }                                                                          \
    for (; j < n; j++) {                                                       \
        T a = 0;                                                               \
        for (t = 0; t < g; t++) a = a + ws[t] * ap[t][j];                      \
        o[j] = a;                                                              \
    }                                                                          \
}

/* The symmetric (OP +) and antisymmetric (OP -) forms of scipy's NI_Correlate1D:
   o[j] = ((ctr[j] wc + (ap[0][j] OP cp[0][j]) ws[0]) + ...) for g >= 0 pairs. */
#define ND_PTAPS_DEF(NAME, T, VT, OP)                                          \
static void NAME(T* restrict o, Py_ssize_t n, const T* ctr, T wc, const T* const* ap, \
                 const T* const* cp, const T* ws, Py_ssize_t g) {              \
    enum { VL = sizeof(VT) / sizeof(T), B = 4 * VL };                          \
    Py_ssize_t j = 0, t;                                                       \
    if (n >= B) {                                                              \
        for (;;) {                                                             \
            VT a0, a1, a2, a3, x0, x1, x2, x3, y0, y1, y2, y3;                 \
            ND_LD(x0, ctr + j); ND_LD(x1, ctr + j + VL); ND_LD(x2, ctr + j + 2 * VL); ND_LD(x3, ctr + j + 3 * VL); \
            a0 = x0 * wc; a1 = x1 * wc; a2 = x2 * wc; a3 = x3 * wc;            \
            for (t = 0; t < g; t++) {                                          \
                const T* p = ap[t] + j; const T* q = cp[t] + j; const T w = ws[t]; \
                ND_LD(x0, p); ND_LD(x1, p + VL); ND_LD(x2, p + 2 * VL); ND_LD(x3, p + 3 * VL); \
                ND_LD(y0, q); ND_LD(y1, q + VL); ND_LD(y2, q + 2 * VL); ND_LD(y3, q + 3 * VL); \
                a0 = a0 + (x0 OP y0) * w; a1 = a1 + (x1 OP y1) * w;            \
                a2 = a2 + (x2 OP y2) * w; a3 = a3 + (x3 OP y3) * w;            \
            }                                                                  \
            ND_ST(o + j, a0); ND_ST(o + j + VL, a1); ND_ST(o + j + 2 * VL, a2); ND_ST(o + j + 3 * VL, a3); \
            if (j + B == n) return;                                            \
            j = (j + 2 * B <= n) ? j + B : n - B;                              \
        }                                                                      \
    }                                                                          \
    if (n >= VL) {                                                             \
        for (;;) {                                                             \
            VT a0, x0, y0;                                                     \
            ND_LD(x0, ctr + j); a0 = x0 * wc;                                  \
            for (t = 0; t < g; t++) { ND_LD(x0, ap[t] + j); ND_LD(y0, cp[t] + j); a0 = a0 + (x0 OP y0) * ws[t]; } \
            ND_ST(o + j, a0);                                                  \
            if (j + VL == n) return;                                           \
            j = (j + 2 * VL <= n) ? j + VL : n - VL;                           \
        }                                                                      \
    }                                                                          \
    for (; j < n; j++) {                                                       \
        T a = ctr[j] * wc;                                                     \
        for (t = 0; t < g; t++) a = a + (ap[t][j] OP cp[t][j]) * ws[t];        \
        o[j] = a;                                                              \
    }                                                                          \
}
#else
#define ND_TAPS_DEF(NAME, T, VT)                                               \
static void NAME(T* o, Py_ssize_t n, const T* const* ap, const T* ws, Py_ssize_t g) { \
    Py_ssize_t j, t;                                                           \
    for (j = 0; j < n; j++) {                                                  \
        T a = 0;                                                               \
        for (t = 0; t < g; t++) a = a + ws[t] * ap[t][j];                      \
        o[j] = a;                                                              \
    }                                                                          \
}
#define ND_PTAPS_DEF(NAME, T, VT, OP)                                          \
static void NAME(T* o, Py_ssize_t n, const T* ctr, T wc, const T* const* ap,   \
                 const T* const* cp, const T* ws, Py_ssize_t g) {              \
    Py_ssize_t j, t;                                                           \
    for (j = 0; j < n; j++) {                                                  \
        T a = ctr[j] * wc;                                                     \
        for (t = 0; t < g; t++) a = a + (ap[t][j] OP cp[t][j]) * ws[t];        \
        o[j] = a;                                                              \
    }                                                                          \
}
#endif
ND_TAPS_DEF(nd_taps_d, double, nd_vd)
ND_TAPS_DEF(nd_taps_f, float, nd_vf)
ND_PTAPS_DEF(nd_ptaps_sym_d, double, nd_vd, +)
ND_PTAPS_DEF(nd_ptaps_sym_f, float, nd_vf, +)
ND_PTAPS_DEF(nd_ptaps_anti_d, double, nd_vd, -)
ND_PTAPS_DEF(nd_ptaps_anti_f, float, nd_vf, -)

#endif  /* PYCONV_NDIMAGE_KERNELS_H */
