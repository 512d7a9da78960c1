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
/* Pin a loaded vector in a register (an empty asm that "changes" it): left alone, GCC folds
   a load used by several FMAs into each of them as a memory operand, loading it once per
   FMA (thin_weight_kernels.h: 15 loads per 12 FMAs; direct_sweep.h's two-row sweep ran
   1.5-2.5x slower than the one-row one).  Other targets: nothing. */
#if defined(__x86_64__) || defined(__i386__)
#define PYCONV_IN_REG(V) __asm__("" : "+v"(V))
#else
#define PYCONV_IN_REG(V) ((void)0)
#endif
#endif  /* PYCONV_SIMD_H */
