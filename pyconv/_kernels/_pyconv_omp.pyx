# Build facts and CPU checks, compiled once for the baseline instruction set (no hot
# loops here).  The module's file name is also how threadpoolctl finds pyconv's own
# thread controller (pyconv/_threads.py), so it is unique to pyconv.
from pyconv._kernels._common cimport PYCONV_HAVE_OPENMP

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
