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

/* Team members that share the calling thread's CPU.  A worker asleep in the OpenMP pool (a
   few milliseconds after its last region) is woken where the scheduler finds room; a virtual
   machine's kernel counts an idle virtual CPU that the host has descheduled as busy, and
   wakes the worker onto the CPU of the thread that woke it.  The two then shared one CPU
   for milliseconds: layer b of the nn suite at 2 threads, called 200 ms after the last
   call, ran 11.5 ms (median of 15; 2.2 back to back; AMD EPYC VM).  So a region's kernel
   takes its caller's CPU beforehand (pyconv_cpu), and each worker that finds itself there
   at the start of its work moves off it (pyconv_unstack): its affinity mask without that
   CPU, then its mask back (the thread stays where the kernel moved it).  A check costs
   one sched_getcpu. */
#if defined(__linux__)
#include <sched.h>
static inline int pyconv_cpu(void) { return sched_getcpu(); }

/* Move the calling thread off CPU ``busy`` when it runs there.  1: moved, 0: it ran
   elsewhere, -1: no other CPU allowed, or a call failed. */
static inline int pyconv_move_off(int busy) {
    cpu_set_t old, tmp;
    if (busy < 0 || sched_getcpu() != busy)
        return 0;
    if (sched_getaffinity(0, sizeof(old), &old) != 0)
        return -1;
    tmp = old;
    CPU_CLR(busy, &tmp);
    if (CPU_COUNT(&tmp) == 0 || sched_setaffinity(0, sizeof(tmp), &tmp) != 0)
        return -1;
    return sched_setaffinity(0, sizeof(old), &old) == 0 ? 1 : -1;
}
#else
static inline int pyconv_cpu(void) { return -1; }
static inline int pyconv_move_off(int busy) { (void)busy; return 0; }
#endif

/* In a region: a worker (not the calling thread) on the caller's CPU ``master`` moves off. */
static inline void pyconv_unstack(int master) {
    if (master >= 0 && omp_get_thread_num() != 0)
        (void)pyconv_move_off(master);
}

#endif  /* PYCONV_OMP_H */
