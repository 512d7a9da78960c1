# The one direct N-d correlation kernel of the signal layer.
#
#     out[o] = sum_k  a[o + shift + k] * w[k]      (only taps with o + shift + k inside a)
#
# for C-contiguous ``a`` (signal), ``w`` (weights, already reversed and/or
# conjugated by the caller) and ``out``, all of the same number of dims.  Taps
# that fall outside ``a`` are *skipped*, never multiplied by a padded zero, so a
# NaN/Inf reaches exactly the outputs whose window holds it.  'full', 'same' and
# 'valid' differ only in ``shift``; boundary extensions (fill/wrap/symm) are
# built by the caller, which then passes a shift that keeps every tap inside.
#
# Work split: (output row, block of the last axis) items, scheduled statically
# over the threads.  Each item zeroes its block of ``out`` and then, for every
# kernel row whose taps land inside ``a``, sweeps the block with the taps of
# that row: the innermost loop runs along the contiguous last axis and the
# block stays in L1.  Every output sums its taps in one fixed order whatever the
# split, so results are bitwise identical for any thread count.
#
# The caller (pyconv/signal.py) checks every bound: shapes and shift are
# consistent, arrays are C-contiguous, ndim <= MAXD.
from cython.parallel cimport prange

from pyconv._kernels._common cimport scalar_t

cdef enum:
    MAXD = 64        # numpy's maximum number of dims
    UNROLL = 4       # taps fused per sweep of a block (fewer loads/stores of out)


cdef inline Py_ssize_t _max(Py_ssize_t x, Py_ssize_t y) noexcept nogil:
    return x if x > y else y


cdef inline Py_ssize_t _min(Py_ssize_t x, Py_ssize_t y) noexcept nogil:
    return x if x < y else y


cdef void _sweep_row(const scalar_t* arow, const scalar_t* wrow, scalar_t* orow,
                     Py_ssize_t kl, Py_ssize_t nl, Py_ssize_t sl,
                     Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Add one kernel row (``kl`` taps) to ``orow[j0:j1]``; ``a`` row has ``nl`` samples."""
    cdef Py_ssize_t kk = 0, j, c, jlo, jhi, flo, fhi
    cdef scalar_t w0, w1, w2, w3
    # Groups of UNROLL taps: one load/store of out per group where every tap of
    # the group is inside a; the few border outputs take the taps one by one.
    while kk + UNROLL <= kl:
        c = sl + kk
        w0 = wrow[kk]
        w1 = wrow[kk + 1]
        w2 = wrow[kk + 2]
        w3 = wrow[kk + 3]
        # outputs where all four taps are inside: j + c >= 0 and j + c + 3 < nl
        flo = _max(j0, -c)
        fhi = _min(j1, nl - c - 3)
        if flo < fhi:
            for j in range(flo, fhi):
                orow[j] = orow[j] + (w0 * arow[j + c] + w1 * arow[j + c + 1]
                                     + w2 * arow[j + c + 2] + w3 * arow[j + c + 3])
        else:
            flo = j0
            fhi = j0
        # border outputs (outside [flo, fhi)): each in-range tap on its own
        jlo = _max(j0, -c)
        jhi = _min(j1, nl - c)
        for j in range(jlo, _min(flo, jhi)):
            orow[j] = orow[j] + w0 * arow[j + c]
        for j in range(_max(fhi, jlo), jhi):
            orow[j] = orow[j] + w0 * arow[j + c]
        jlo = _max(j0, -c - 1)
        jhi = _min(j1, nl - c - 1)
        for j in range(jlo, _min(flo, jhi)):
            orow[j] = orow[j] + w1 * arow[j + c + 1]
        for j in range(_max(fhi, jlo), jhi):
            orow[j] = orow[j] + w1 * arow[j + c + 1]
        jlo = _max(j0, -c - 2)
        jhi = _min(j1, nl - c - 2)
        for j in range(jlo, _min(flo, jhi)):
            orow[j] = orow[j] + w2 * arow[j + c + 2]
        for j in range(_max(fhi, jlo), jhi):
            orow[j] = orow[j] + w2 * arow[j + c + 2]
        jlo = _max(j0, -c - 3)
        jhi = _min(j1, nl - c - 3)
        for j in range(jlo, _min(flo, jhi)):
            orow[j] = orow[j] + w3 * arow[j + c + 3]
        for j in range(_max(fhi, jlo), jhi):
            orow[j] = orow[j] + w3 * arow[j + c + 3]
        kk += UNROLL
    while kk < kl:
        c = sl + kk
        w0 = wrow[kk]
        jlo = _max(j0, -c)
        jhi = _min(j1, nl - c)
        for j in range(jlo, jhi):
            orow[j] = orow[j] + w0 * arow[j + c]
        kk += 1


cdef void _item(const scalar_t* a, const Py_ssize_t* ash, const Py_ssize_t* astr,
                const scalar_t* w, const Py_ssize_t* wsh, const Py_ssize_t* wstr,
                scalar_t* out, const Py_ssize_t* osh, const Py_ssize_t* shift,
                int nd, Py_ssize_t row, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Compute ``out`` row ``row`` (flat index over all dims but the last), columns j0:j1."""
    cdef Py_ssize_t lo[MAXD]
    cdef Py_ssize_t hi[MAXD]
    cdef Py_ssize_t k[MAXD]
    cdef Py_ssize_t pos[MAXD]
    cdef Py_ssize_t r = row, od, p, aoff, woff, j
    cdef int d
    cdef Py_ssize_t last = nd - 1
    cdef scalar_t* orow = out + row * osh[last]
    for j in range(j0, j1):
        orow[j] = 0
    # Per outer dim: the range of kernel indices whose input index is inside a.
    d = nd - 2
    while d >= 0:
        od = r % osh[d]
        r = r // osh[d]
        p = od + shift[d]
        lo[d] = _max(0, -p)
        hi[d] = _min(wsh[d], ash[d] - p)
        if lo[d] >= hi[d]:
            return          # no tap of this row lands inside a: the zeros stand
        pos[d] = p
        k[d] = lo[d]
        d -= 1
    # Odometer over the kernel rows inside that box.
    while True:
        aoff = 0
        woff = 0
        for d in range(nd - 1):
            aoff = aoff + (pos[d] + k[d]) * astr[d]
            woff = woff + k[d] * wstr[d]
        _sweep_row(a + aoff, w + woff, orow, wsh[last], ash[last], shift[last], j0, j1)
        d = nd - 2
        while d >= 0:
            k[d] += 1
            if k[d] < hi[d]:
                break
            k[d] = lo[d]
            d -= 1
        if d < 0:
            break


def correlate_skip(const scalar_t[::1] a, const Py_ssize_t[::1] a_shape,
                   const scalar_t[::1] w, const Py_ssize_t[::1] w_shape,
                   scalar_t[::1] out, const Py_ssize_t[::1] out_shape,
                   const Py_ssize_t[::1] shift, int nthreads, Py_ssize_t block):
    """``out[o] = sum_k a[o + shift + k] * w[k]`` over taps inside ``a`` (flat C-order arrays).

    All shapes have the same length ``nd`` (1 <= nd <= 64); the caller checks them.
    ``block`` is the number of last-axis outputs per work item.
    """
    cdef int nd = <int>a_shape.shape[0]
    cdef Py_ssize_t astr[MAXD]
    cdef Py_ssize_t wstr[MAXD]
    cdef Py_ssize_t ash[MAXD]
    cdef Py_ssize_t wsh[MAXD]
    cdef Py_ssize_t osh[MAXD]
    cdef Py_ssize_t sh[MAXD]
    cdef Py_ssize_t nrows = 1, nblocks, nitems, it, row, b, j0, j1, ol
    cdef int d
    if nd < 1 or nd > MAXD:
        raise ValueError(f"nd={nd} must be in 1..{MAXD}")
    for d in range(nd):
        ash[d] = a_shape[d]
        wsh[d] = w_shape[d]
        osh[d] = out_shape[d]
        sh[d] = shift[d]
    astr[nd - 1] = 1
    wstr[nd - 1] = 1
    for d in range(nd - 2, -1, -1):
        astr[d] = astr[d + 1] * ash[d + 1]
        wstr[d] = wstr[d + 1] * wsh[d + 1]
    for d in range(nd - 1):
        nrows *= osh[d]
    ol = osh[nd - 1]
    if nrows == 0 or ol == 0:
        return
    if block < 1:
        block = 1
    nblocks = (ol + block - 1) // block
    nitems = nrows * nblocks
    if nthreads < 1:
        nthreads = 1
    with nogil:
        for it in prange(nitems, schedule='static', num_threads=nthreads):
            row = it // nblocks
            b = it - row * nblocks
            j0 = b * block
            j1 = _min(j0 + block, ol)
            _item(&a[0], ash, astr, &w[0], wsh, wstr, &out[0], osh, sh, nd, row, j0, j1)
