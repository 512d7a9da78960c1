# Reports whether the kernels were built with OpenMP, and the OpenMP runtime's
# current thread limit (which threadpoolctl adjusts through omp_set_num_threads).
from pyconv._kernels._common cimport PYCONV_HAVE_OPENMP, omp_get_max_threads


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(PYCONV_HAVE_OPENMP)


def max_threads():
    """The OpenMP runtime's ``omp_get_max_threads()`` for the calling thread (1 when serial)."""
    return int(omp_get_max_threads())
