/* ndimage_kernels.h: C helpers of ndimage.pyx (included by it with cdef extern from "ndimage_kernels.h"):
   typed loads and stores with scipy's casts, and the fused tap sweeps. */
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
        if (np_ == 1 && di == 1 && si == (Py_ssize_t)sizeof(CT)) {         \
            const CT* q = (const CT*)src;                                  \
            for (i = 0; i < ni; i++)                                       \
                dst[i] = (DT)q[i];                                         \
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
        if (np_ == 1 && si == 1 && di == (Py_ssize_t)sizeof(CT)) {          \
            CT* q = (CT*)dst;               /* a contiguous row */         \
            for (i = 0; i < ni; i++)                                       \
                q[i] = (CT)CONV((double)src[i]);                           \
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
    ND_STORE_BODY
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
    ND_STORE_BODY
}

/* o[j] (+)= sum_h ws[h] * ap[h][j] for g <= 8 taps, added in order, one multiply and one
   add each (no FMA: the module is built with -ffp-contract=off).  ``fresh``: o holds no
   sum yet.  One loop per tap count, so the taps' pointers and weights stay in registers. */
#define ND_SWEEP_DEF(NAME, T)                                                  \
static void NAME(T* restrict o, Py_ssize_t n, const T* const* ap, const T* ws, int g, int fresh) { \
    Py_ssize_t j;                                                          \
    switch (g) {                                                           \
    case 8: {                                                             \
        const T* restrict a0 = ap[0]; const T w0 = ws[0]; const T* restrict a1 = ap[1]; const T w1 = ws[1]; const T* restrict a2 = ap[2]; const T w2 = ws[2]; const T* restrict a3 = ap[3]; const T w3 = ws[3]; const T* restrict a4 = ap[4]; const T w4 = ws[4]; const T* restrict a5 = ap[5]; const T w5 = ws[5]; const T* restrict a6 = ap[6]; const T w6 = ws[6]; const T* restrict a7 = ap[7]; const T w7 = ws[7]; \
        for (j = 0; j < n; j++) { T acc = fresh ? (T)0 : o[j]; acc = acc + w0 * a0[j]; acc = acc + w1 * a1[j]; acc = acc + w2 * a2[j]; acc = acc + w3 * a3[j]; acc = acc + w4 * a4[j]; acc = acc + w5 * a5[j]; acc = acc + w6 * a6[j]; acc = acc + w7 * a7[j]; o[j] = acc; } \
        break; }                                                          \
    case 7: {                                                             \
        const T* restrict a0 = ap[0]; const T w0 = ws[0]; const T* restrict a1 = ap[1]; const T w1 = ws[1]; const T* restrict a2 = ap[2]; const T w2 = ws[2]; const T* restrict a3 = ap[3]; const T w3 = ws[3]; const T* restrict a4 = ap[4]; const T w4 = ws[4]; const T* restrict a5 = ap[5]; const T w5 = ws[5]; const T* restrict a6 = ap[6]; const T w6 = ws[6]; \
        for (j = 0; j < n; j++) { T acc = fresh ? (T)0 : o[j]; acc = acc + w0 * a0[j]; acc = acc + w1 * a1[j]; acc = acc + w2 * a2[j]; acc = acc + w3 * a3[j]; acc = acc + w4 * a4[j]; acc = acc + w5 * a5[j]; acc = acc + w6 * a6[j]; o[j] = acc; } \
        break; }                                                          \
    case 6: {                                                             \
        const T* restrict a0 = ap[0]; const T w0 = ws[0]; const T* restrict a1 = ap[1]; const T w1 = ws[1]; const T* restrict a2 = ap[2]; const T w2 = ws[2]; const T* restrict a3 = ap[3]; const T w3 = ws[3]; const T* restrict a4 = ap[4]; const T w4 = ws[4]; const T* restrict a5 = ap[5]; const T w5 = ws[5]; \
        for (j = 0; j < n; j++) { T acc = fresh ? (T)0 : o[j]; acc = acc + w0 * a0[j]; acc = acc + w1 * a1[j]; acc = acc + w2 * a2[j]; acc = acc + w3 * a3[j]; acc = acc + w4 * a4[j]; acc = acc + w5 * a5[j]; o[j] = acc; } \
        break; }                                                          \
    case 5: {                                                             \
        const T* restrict a0 = ap[0]; const T w0 = ws[0]; const T* restrict a1 = ap[1]; const T w1 = ws[1]; const T* restrict a2 = ap[2]; const T w2 = ws[2]; const T* restrict a3 = ap[3]; const T w3 = ws[3]; const T* restrict a4 = ap[4]; const T w4 = ws[4]; \
        for (j = 0; j < n; j++) { T acc = fresh ? (T)0 : o[j]; acc = acc + w0 * a0[j]; acc = acc + w1 * a1[j]; acc = acc + w2 * a2[j]; acc = acc + w3 * a3[j]; acc = acc + w4 * a4[j]; o[j] = acc; } \
        break; }                                                          \
    case 4: {                                                             \
        const T* restrict a0 = ap[0]; const T w0 = ws[0]; const T* restrict a1 = ap[1]; const T w1 = ws[1]; const T* restrict a2 = ap[2]; const T w2 = ws[2]; const T* restrict a3 = ap[3]; const T w3 = ws[3]; \
        for (j = 0; j < n; j++) { T acc = fresh ? (T)0 : o[j]; acc = acc + w0 * a0[j]; acc = acc + w1 * a1[j]; acc = acc + w2 * a2[j]; acc = acc + w3 * a3[j]; o[j] = acc; } \
        break; }                                                          \
    case 3: {                                                             \
        const T* restrict a0 = ap[0]; const T w0 = ws[0]; const T* restrict a1 = ap[1]; const T w1 = ws[1]; const T* restrict a2 = ap[2]; const T w2 = ws[2]; \
        for (j = 0; j < n; j++) { T acc = fresh ? (T)0 : o[j]; acc = acc + w0 * a0[j]; acc = acc + w1 * a1[j]; acc = acc + w2 * a2[j]; o[j] = acc; } \
        break; }                                                          \
    case 2: {                                                             \
        const T* restrict a0 = ap[0]; const T w0 = ws[0]; const T* restrict a1 = ap[1]; const T w1 = ws[1]; \
        for (j = 0; j < n; j++) { T acc = fresh ? (T)0 : o[j]; acc = acc + w0 * a0[j]; acc = acc + w1 * a1[j]; o[j] = acc; } \
        break; }                                                          \
    case 1: {                                                             \
        const T* restrict a0 = ap[0]; const T w0 = ws[0]; \
        for (j = 0; j < n; j++) { T acc = fresh ? (T)0 : o[j]; acc = acc + w0 * a0[j]; o[j] = acc; } \
        break; }                                                          \
    }                                                                      \
}
ND_SWEEP_DEF(nd_sweep_d, double)
ND_SWEEP_DEF(nd_sweep_f, float)

/* The symmetric (OP +) and antisymmetric (OP -) forms of scipy's NI_Correlate1D:
   o[j] = ctr[j] * wc (when fresh) then += (ap[h][j] OP cp[h][j]) * ws[h] for g <= 4 pairs. */
#define ND_PSWEEP_DEF(NAME, T, OP)                                             \
static void NAME(T* restrict o, Py_ssize_t n, const T* restrict ctr, T wc, const T* const* ap, \
                 const T* const* cp, const T* ws, int g, int fresh) {      \
    Py_ssize_t j;                                                          \
    switch (g) {                                                           \
    case 4: {                                                             \
        const T* restrict a0 = ap[0]; const T* restrict c0 = cp[0]; const T w0 = ws[0]; const T* restrict a1 = ap[1]; const T* restrict c1 = cp[1]; const T w1 = ws[1]; const T* restrict a2 = ap[2]; const T* restrict c2 = cp[2]; const T w2 = ws[2]; const T* restrict a3 = ap[3]; const T* restrict c3 = cp[3]; const T w3 = ws[3]; \
        for (j = 0; j < n; j++) { T acc = fresh ? ctr[j] * wc : o[j]; acc = acc + (a0[j] OP c0[j]) * w0; acc = acc + (a1[j] OP c1[j]) * w1; acc = acc + (a2[j] OP c2[j]) * w2; acc = acc + (a3[j] OP c3[j]) * w3; o[j] = acc; } \
        break; }                                                          \
    case 3: {                                                             \
        const T* restrict a0 = ap[0]; const T* restrict c0 = cp[0]; const T w0 = ws[0]; const T* restrict a1 = ap[1]; const T* restrict c1 = cp[1]; const T w1 = ws[1]; const T* restrict a2 = ap[2]; const T* restrict c2 = cp[2]; const T w2 = ws[2]; \
        for (j = 0; j < n; j++) { T acc = fresh ? ctr[j] * wc : o[j]; acc = acc + (a0[j] OP c0[j]) * w0; acc = acc + (a1[j] OP c1[j]) * w1; acc = acc + (a2[j] OP c2[j]) * w2; o[j] = acc; } \
        break; }                                                          \
    case 2: {                                                             \
        const T* restrict a0 = ap[0]; const T* restrict c0 = cp[0]; const T w0 = ws[0]; const T* restrict a1 = ap[1]; const T* restrict c1 = cp[1]; const T w1 = ws[1]; \
        for (j = 0; j < n; j++) { T acc = fresh ? ctr[j] * wc : o[j]; acc = acc + (a0[j] OP c0[j]) * w0; acc = acc + (a1[j] OP c1[j]) * w1; o[j] = acc; } \
        break; }                                                          \
    case 1: {                                                             \
        const T* restrict a0 = ap[0]; const T* restrict c0 = cp[0]; const T w0 = ws[0]; \
        for (j = 0; j < n; j++) { T acc = fresh ? ctr[j] * wc : o[j]; acc = acc + (a0[j] OP c0[j]) * w0; o[j] = acc; } \
        break; }                                                          \
    case 0: {                                                             \
         \
        for (j = 0; j < n; j++) { T acc = fresh ? ctr[j] * wc : o[j];  o[j] = acc; } \
        break; }                                                          \
    }                                                                      \
}
ND_PSWEEP_DEF(nd_psweep_sym_d, double, +)
ND_PSWEEP_DEF(nd_psweep_sym_f, float, +)
ND_PSWEEP_DEF(nd_psweep_anti_d, double, -)
ND_PSWEEP_DEF(nd_psweep_anti_f, float, -)

#endif  /* PYCONV_NDIMAGE_KERNELS_H */
