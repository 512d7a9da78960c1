# Shared declarations for every kernel module: fused dtypes and the OpenMP guard.
# Kernels trust their arguments (all bounds are checked in pyconv/_utils.py first),
# run without the GIL and take the thread count as an explicit argument.

ctypedef fused real_t:
    float
    double

ctypedef fused scalar_t:
    float
    double
    float complex
    double complex
    long long

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define PYCONV_HAVE_OPENMP 1
    #else
    #define PYCONV_HAVE_OPENMP 0
    static inline int omp_get_max_threads(void) { return 1; }
    static inline void omp_set_num_threads(int n) { (void)n; }
    static inline int omp_get_thread_num(void) { return 0; }
    static inline int omp_get_num_threads(void) { return 1; }
    #endif
    """
    const int PYCONV_HAVE_OPENMP
    int omp_get_max_threads() noexcept nogil
    void omp_set_num_threads(int n) noexcept nogil
    int omp_get_thread_num() noexcept nogil
    int omp_get_num_threads() noexcept nogil
