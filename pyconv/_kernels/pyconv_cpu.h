/* pyconv_cpu.h: the CPU's x86-64 level and the compiler's name, for _pyconv_omp.pyx
   (included by it with cdef extern from "pyconv_cpu.h"). */
#ifndef PYCONV_CPU_H
#define PYCONV_CPU_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
static int pyconv_cpu_level(void) {
    /* 3 = x86-64-v4 (AVX-512 F/BW/CD/DQ/VL), 2 = x86-64-v3 (AVX2, FMA, BMI, ...),
       0 = baseline; libgcc also checks that the OS saves the vector registers */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2")
        && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
        return 3;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
        && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")
        && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("movbe")
        && __builtin_cpu_supports("lzcnt"))
        return 2;
    return 0;
}
#else
static int pyconv_cpu_level(void) { return 0; }
#endif
#if defined(__clang__)
#define PYCONV_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define PYCONV_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define PYCONV_COMPILER "msvc"
#else
#define PYCONV_COMPILER "unknown"
#endif

#endif  /* PYCONV_CPU_H */
