# Build facts and CPU checks, compiled once for the baseline instruction set (no hot
# loops here).  The module's file name is also how threadpoolctl finds pyconv's own
# thread controller (pyconv/_threads.py), so it is unique to pyconv.
from cython.parallel cimport parallel

from pyconv._kernels._common cimport PYCONV_HAVE_OPENMP, omp_get_thread_num, pyconv_cpu, pyconv_move_off

cdef extern from *:
    """
    #if defined(__linux__)
    #include <unistd.h>
    #include <sys/syscall.h>
    static long pyconv_tid(void) { return (long)syscall(SYS_gettid); }
    #else
    static long pyconv_tid(void) { return 0; }
    #endif
    """
    long pyconv_tid() noexcept nogil


cdef extern from "pyconv_cpu.h":
    int pyconv_cpu_level() nogil
    const char* PYCONV_COMPILER


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(PYCONV_HAVE_OPENMP)


def cpu_runs(variant):
    """True when this CPU runs kernels built for ``variant`` ('baseline', 'avx2',
    'avx512'; 'native' is assumed to be this machine's own build)."""
    level = pyconv_cpu_level()
    return {"baseline": True, "native": True, "avx2": level >= 2, "avx512": level >= 3}.get(variant, False)


def compiler():
    """The C compiler that built the kernels, with its version."""
    return PYCONV_COMPILER.decode()


def team_thread_ids(int n):
    """The kernel thread ids (Linux) of the OpenMP team that a region of ``n`` threads
    started from the calling thread runs on, the caller's first (an empty list where the
    system has no such ids).  GNU
    libgomp keeps one pool of worker threads per calling thread and reuses it for every
    region, so these are the threads every pyconv kernel called from here runs on (the
    load monitor tells them from other threads of the process, such as a BLAS library's
    workers still spinning after a call)."""
    cdef long ids[256]
    cdef int k
    n = max(1, min(n, 256))
    for k in range(n):
        ids[k] = 0
    with nogil, parallel(num_threads=n):
        ids[omp_get_thread_num()] = pyconv_tid()
    return [ids[k] for k in range(n) if ids[k] != 0]


def current_cpu():
    """The CPU the calling thread runs on (-1 where the system does not say)."""
    return pyconv_cpu()


def move_off(int cpu):
    """Move the calling thread off ``cpu`` if it runs there, its affinity mask unchanged
    (1: moved, 0: it was elsewhere, -1: not possible)."""
    cdef int r
    with nogil:
        r = pyconv_move_off(cpu)
    return r
