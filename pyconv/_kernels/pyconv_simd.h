/* pyconv_simd.h: the vector width of the build variant a kernel module compiles for (64
   bytes with AVX-512, 32 with AVX, 16 otherwise), shared by the C micro-kernel headers so
   their register tiles agree on it. */
#ifndef PYCONV_SIMD_H
#define PYCONV_SIMD_H
#if defined(__AVX512F__)
#define PYCONV_VBYTES 64
#elif defined(__AVX__)
#define PYCONV_VBYTES 32
#else
#define PYCONV_VBYTES 16
#endif
#endif  /* PYCONV_SIMD_H */
