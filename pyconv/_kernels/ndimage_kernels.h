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

/* Ask for the cache lines of [p, p + bytes) ahead of use (write: for a store).  A walk
   down a strided axis reads one row segment per page, where the hardware prefetchers
   (which stop at page boundaries) do not follow; the next row is requested while the
   current one is computed.  64: the cache line of the x86-64 targets (a longer line
   only makes some requests redundant). */
static inline void nd_prefetch(const void* p, Py_ssize_t bytes, int write) {
#if defined(__GNUC__) || defined(__clang__)
    const char* c = (const char*)p;
    Py_ssize_t i;
    if (write)
        for (i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 1, 3);
    else
        for (i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 0, 3);
#else
    (void)p; (void)bytes; (void)write;
#endif
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

/* The one loop skeleton of every tap sum: o[j] for j < n, the accumulator of each
   output started by INIT(acc, j) and given NT terms by TERM(acc, j) (t counts them),
   with X passed through to both (the operator of the paired forms).  nd_el_t and
   nd_vec_t are the caller's element and vector types (local typedefs). */
#define ND_SWEEP(VINIT, VTERM, SINIT, STERM, NT, X)                            \
    enum { VL = sizeof(nd_vec_t) / sizeof(nd_el_t), B = 4 * VL };              \
    Py_ssize_t j = 0, t;                                                       \
    if (n >= B) {                                                              \
        for (;;) {                                                             \
            nd_vec_t a0, a1, a2, a3;                                           \
            VINIT(a0, j, X); VINIT(a1, j + VL, X); VINIT(a2, j + 2 * VL, X); VINIT(a3, j + 3 * VL, X); \
            for (t = 0; t < (NT); t++) {                                       \
                VTERM(a0, j, X); VTERM(a1, j + VL, X);                         \
                VTERM(a2, j + 2 * VL, X); VTERM(a3, j + 3 * VL, X);            \
            }                                                                  \
            ND_ST(o + j, a0); ND_ST(o + j + VL, a1); ND_ST(o + j + 2 * VL, a2); ND_ST(o + j + 3 * VL, a3); \
            if (j + B == n) return;                                            \
            j = (j + 2 * B <= n) ? j + B : n - B;                              \
        }                                                                      \
    }                                                                          \
    if (n >= VL) {                                                             \
        for (;;) {                                                             \
            nd_vec_t a0;                                                       \
            VINIT(a0, j, X);                                                   \
            for (t = 0; t < (NT); t++) VTERM(a0, j, X);                        \
            ND_ST(o + j, a0);                                                  \
            if (j + VL == n) return;                                           \
            j = (j + 2 * VL <= n) ? j + VL : n - VL;                           \
        }                                                                      \
    }                                                                          \
    for (; j < n; j++) {                                                       \
        nd_el_t a;                                                             \
        SINIT(a, j, X);                                                        \
        for (t = 0; t < (NT); t++) STERM(a, j, X);                             \
        o[j] = a;                                                              \
    }
#else
/* other compilers: the same sums, one output at a time */
#define ND_SWEEP(VINIT, VTERM, SINIT, STERM, NT, X)                            \
    Py_ssize_t j, t;                                                           \
    for (j = 0; j < n; j++) {                                                  \
        nd_el_t a;                                                             \
        SINIT(a, j, X);                                                        \
        for (t = 0; t < (NT); t++) STERM(a, j, X);                             \
        o[j] = a;                                                              \
    }
#endif

/* o[j] = (((0 + ws[0] ap[0][j]) + ws[1] ap[1][j]) + ...) for j < n, g >= 0 taps */
#define ND_TAPS_VINIT(a, i, X) do { nd_vec_t z_ = {0}; (a) = z_; } while (0)
#define ND_TAPS_VTERM(a, i, X) do { nd_vec_t x_; ND_LD(x_, ap[t] + (i)); (a) = (a) + ws[t] * x_; } while (0)
#define ND_TAPS_SINIT(a, i, X) ((a) = 0)
#define ND_TAPS_STERM(a, i, X) ((a) = (a) + ws[t] * ap[t][i])
#define ND_TAPS_DEF(NAME, T, VT)                                               \
static void NAME(T* restrict o, Py_ssize_t n, const T* const* ap, const T* ws, Py_ssize_t g) { \
    typedef T nd_el_t;                                                         \
    typedef VT nd_vec_t;                                                       \
    ND_SWEEP(ND_TAPS_VINIT, ND_TAPS_VTERM, ND_TAPS_SINIT, ND_TAPS_STERM, g, +) \
}

/* The symmetric (OP +) and antisymmetric (OP -) forms of scipy's NI_Correlate1D:
   o[j] = ((ctr[j] wc + (ap[0][j] OP cp[0][j]) ws[0]) + ...) for g >= 0 pairs. */
#define ND_PTAPS_VINIT(a, i, OP) do { nd_vec_t x_; ND_LD(x_, ctr + (i)); (a) = x_ * wc; } while (0)
#define ND_PTAPS_VTERM(a, i, OP) do {                                          \
        nd_vec_t x_, y_; ND_LD(x_, ap[t] + (i)); ND_LD(y_, cp[t] + (i));       \
        (a) = (a) + (x_ OP y_) * ws[t]; } while (0)
#define ND_PTAPS_SINIT(a, i, OP) ((a) = ctr[i] * wc)
#define ND_PTAPS_STERM(a, i, OP) ((a) = (a) + (ap[t][i] OP cp[t][i]) * ws[t])
#define ND_PTAPS_DEF(NAME, T, VT, OP)                                          \
static void NAME(T* restrict o, Py_ssize_t n, const T* ctr, T wc, const T* const* ap, \
                 const T* const* cp, const T* ws, Py_ssize_t g) {              \
    typedef T nd_el_t;                                                         \
    typedef VT nd_vec_t;                                                       \
    ND_SWEEP(ND_PTAPS_VINIT, ND_PTAPS_VTERM, ND_PTAPS_SINIT, ND_PTAPS_STERM, g, OP) \
}
#if !(defined(__GNUC__) || defined(__clang__))
typedef double nd_vd;
typedef float nd_vf;
#endif
ND_TAPS_DEF(nd_taps_d, double, nd_vd)
ND_TAPS_DEF(nd_taps_f, float, nd_vf)
ND_PTAPS_DEF(nd_ptaps_sym_d, double, nd_vd, +)
ND_PTAPS_DEF(nd_ptaps_sym_f, float, nd_vf, +)
ND_PTAPS_DEF(nd_ptaps_anti_d, double, nd_vd, -)
ND_PTAPS_DEF(nd_ptaps_anti_f, float, nd_vf, -)

#endif  /* PYCONV_NDIMAGE_KERNELS_H */
