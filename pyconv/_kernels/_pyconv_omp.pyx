# Reports whether the kernels were built with OpenMP.  The module's file name is also
# how threadpoolctl finds pyconv's own thread controller (pyconv/_threads.py), so it is
# unique to pyconv.
from pyconv._kernels._common cimport PYCONV_HAVE_OPENMP


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(PYCONV_HAVE_OPENMP)
