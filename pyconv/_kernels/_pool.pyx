# The memory pool pyconv's public functions allocate from (a NumPy memory handler,
# NEP 49; the C side and the reasons: pyconv_pool.h).  Glue, built once: no hot loops.
cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_New

cnp.import_array()

cdef extern from "pyconv_pool.h":
    ctypedef struct PyDataMem_Handler:
        pass
    PyDataMem_Handler pyconv_pool_handler
    void pyconv_pool_set_budget(size_t budget) nogil
    void pyconv_pool_stats(size_t* held, int* blocks, size_t* budget, unsigned long long* hits,
                           unsigned long long* misses) nogil
    void pyconv_pool_init() nogil
    const size_t PYCONV_POOL_MIN
    const int PYCONV_POOL_SLOTS

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)

pyconv_pool_init()
cdef object _capsule = PyCapsule_New(<void*>&pyconv_pool_handler, "mem_handler", NULL)
cdef bint _on = False

#: smallest block the pool keeps (smaller ones go straight back to the C library)
MIN_BYTES = PYCONV_POOL_MIN
#: most blocks the pool keeps at once
SLOTS = PYCONV_POOL_SLOTS
#: NumPy's name of the handler (``numpy._core.multiarray.get_handler_name(a)``)
NAME = "pyconv_pool"


def configure(size_t budget):
    """Keep at most ``budget`` bytes of freed arrays (0: none, the pool off); the
    blocks kept so far go back to the C library."""
    global _on
    pyconv_pool_set_budget(budget)
    _on = budget > 0


def enter():
    """Make the pool NumPy's allocator in the current context: the handler it
    replaces, for :func:`leave` (None when the pool is off)."""
    if not _on:
        return None
    return PyDataMem_SetHandler(_capsule)


def leave(old):
    """Put back the handler :func:`enter` returned."""
    if old is not None:
        PyDataMem_SetHandler(old)


def stats():
    """{'held': bytes kept, 'blocks': blocks kept, 'budget': bytes, 'hits': requests served
    from kept blocks, 'misses': requests of at least MIN_BYTES that were not}."""
    cdef size_t held, budget
    cdef int blocks
    cdef unsigned long long hits, misses
    pyconv_pool_stats(&held, &blocks, &budget, &hits, &misses)
    return {"held": held, "blocks": blocks, "budget": budget, "hits": hits, "misses": misses}


def call(func, args, kwargs):
    """``func(*args, **kwargs)`` with the pool as NumPy's allocator (when it is on): the
    public functions' wrapper, in one C call instead of enter/try/leave in Python."""
    if not _on:
        return func(*args, **kwargs)
    old = PyDataMem_SetHandler(_capsule)
    try:
        return func(*args, **kwargs)
    finally:
        PyDataMem_SetHandler(old)
