/* pyconv_omp.h: the OpenMP guard of every kernel module (cimported through _common.pxd).
   With OpenMP: its runtime; without: single-thread stand-ins, so the kernels compile
   and run serially. */
#ifndef PYCONV_OMP_H
#define PYCONV_OMP_H

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

/* The value of a counter shared by a team, incremented (units handed out one at a time). */
static inline Py_ssize_t pyconv_take(Py_ssize_t *counter) {
    return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

#endif  /* PYCONV_OMP_H */
