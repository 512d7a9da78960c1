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
# over the threads.  Each item collects the taps whose input row lands inside
# ``a`` (all kernel rows, in order) and sweeps its block with them in balanced
# groups (float32/float64: up to 256 taps, a tile of 4 vectors of outputs kept in
# registers across the group, direct_sweep.h; other dtypes: up to 8, one fused
# pass along the contiguous last axis per group); the first group initialises
# the block.  1-D float rows of >= 16 taps do the whole tiles of their inner
# outputs by a lane-strided sweep (a transposed copy of the input: aligned loads,
# each reused across 8 outputs vectors and taps) and the rest as above.
# In 'same' and 'valid' mode (2-D images, 3-D volumes, rows of any length) a run
# of whole rows is swept as one flat block instead, and the few border columns are
# redone tap by tap; float32/float64 sweep the run's inner rows two at a time
# (pcv_sweep2: each input vector loaded serves a tap of both rows).
# Every output adds its taps in one fixed order (one FMA step each) whatever
# the split or path, so results are bitwise identical for any thread count.
#
# The geometry (shapes, shift, ndim <= MAXD) is checked once when its DirectGeometry is
# built (pyconv/signal.py keeps it in the plan); the entry checks each call's arrays
# against it (dtype, C order, element counts) before any pointer is read.
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

cimport numpy as cnp

from pyconv._kernels._common cimport scalar_t, pyconv_cpu, pyconv_unstack

cnp.import_array()

cdef enum:
    MAXD = 64        # numpy's maximum number of dims


cdef inline Py_ssize_t _max(Py_ssize_t x, Py_ssize_t y) noexcept nogil:
    return x if x > y else y


cdef inline Py_ssize_t _min(Py_ssize_t x, Py_ssize_t y) noexcept nogil:
    return x if x < y else y


cdef enum:
    GROUP = 8        # most taps fused per sweep of a block: one load/store of out per group
    LGROUP = 256     # the same for float32/float64, whose sweep keeps a tile of outputs in
                     # registers across all the taps of a group (direct_sweep.h)


cdef extern from "direct_sweep.h" nogil:
    void pcv_sweep_f32(const float** p, const float* w, int n, int fresh, float* o,
                       Py_ssize_t j0, Py_ssize_t j1)
    void pcv_sweep_f64(const double** p, const double* w, int n, int fresh, double* o,
                       Py_ssize_t j0, Py_ssize_t j1)
    Py_ssize_t pcv_lanes_f32(const float* a, const float* w, Py_ssize_t n, float* o, Py_ssize_t m,
                             float* X, float* U)
    Py_ssize_t pcv_lanes_f64(const double* a, const double* w, Py_ssize_t n, double* o, Py_ssize_t m,
                             double* X, double* U)
    void pcv_sweep2_f32(const float** a, const float** w, int np, int kh, int kw, Py_ssize_t L, int fresh,
                        float* o0, float* o1, Py_ssize_t m)
    void pcv_sweep2_f64(const double** a, const double** w, int np, int kh, int kw, Py_ssize_t L, int fresh,
                        double* o0, double* o1, Py_ssize_t m)
    Py_ssize_t PCV_LANES_SCRATCH(Py_ssize_t n, Py_ssize_t itemsize)
    enum: PCV_LS
    enum: PCV_VBYTES


#: bytes of the sweeps' vectors in this build variant (pyconv.signal's cost model rounds a
#: row's sweep up to whole vectors)
VBYTES = PCV_VBYTES


cdef enum:
    LANES_MIN = 16   # fewest taps of a 1-D row for the lane-strided sweep (its transposes
                     # cost ~2-3 copies per output)


cdef inline Py_ssize_t _box(Py_ssize_t r, int top, const Py_ssize_t* ash, const Py_ssize_t* wsh,
                            const Py_ssize_t* osh, const Py_ssize_t* shift, Py_ssize_t* lo, Py_ssize_t* hi,
                            Py_ssize_t* pos, Py_ssize_t* k) noexcept nogil:
    """The kernel box of output ``r`` (flat index over dims < top): per dim, the kernel
    indices lo[d]:hi[d] whose input index ``pos[d] + k`` lands inside a; the odometer
    ``k`` starts at ``lo``.  Returns the number of taps in the box, 0 when it is empty."""
    cdef Py_ssize_t n = 1, p
    cdef int d = top - 1
    while d >= 0:
        p = r % osh[d] + shift[d]
        r = r // osh[d]
        lo[d] = _max(0, -p)
        hi[d] = _min(wsh[d], ash[d] - p)
        if lo[d] >= hi[d]:
            return 0
        n *= hi[d] - lo[d]
        pos[d] = p
        k[d] = lo[d]
        d -= 1
    return n


cdef inline bint _advance(Py_ssize_t* k, const Py_ssize_t* lo, const Py_ssize_t* hi, int top) noexcept nogil:
    """Step the odometer ``k`` (dims < top, last fastest) through the box; False once it
    wraps, every digit back at ``lo``."""
    cdef int d = top - 1
    while d >= 0:
        k[d] += 1
        if k[d] < hi[d]:
            return True
        k[d] = lo[d]
        d -= 1
    return False


cdef inline void _offsets(int top, const Py_ssize_t* pos, const Py_ssize_t* k, const Py_ssize_t* astr,
                          const Py_ssize_t* wstr, Py_ssize_t* aoff, Py_ssize_t* woff) noexcept nogil:
    """Offsets in a and w of the tap (dims < top) at odometer ``k``."""
    cdef int d
    aoff[0] = 0
    woff[0] = 0
    for d in range(top):
        aoff[0] += (pos[d] + k[d]) * astr[d]
        woff[0] += k[d] * wstr[d]


cdef inline int _group_size(Py_ssize_t ntaps, int cap) noexcept nogil:
    """Balanced groups of at most ``cap`` taps (9 taps in 8s -> 5 + 4, not 8 + 1): as few
    sweeps as possible, none of them nearly empty."""
    cdef Py_ssize_t ngroups = (ntaps + cap - 1) // cap
    if ntaps <= cap:
        return cap
    return <int>((ntaps + ngroups - 1) // ngroups)


cdef inline int _group_cap(scalar_t* dummy) noexcept nogil:
    """Most taps per group for this dtype (the pointer only selects the specialisation)."""
    return LGROUP if scalar_t is float or scalar_t is double else GROUP


cdef void _flush(const scalar_t** ap, Py_ssize_t* cs, scalar_t* ws, int n, bint fresh,
                 scalar_t* orow, Py_ssize_t nl, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Add ``n`` (<= LGROUP for float32/float64, else <= GROUP) taps to ``orow[j0:j1]``: tap g adds ``ws[g] * ap[g][j + cs[g]]``.

    Outputs where every tap is inside its row (``0 <= j + c < nl``) take all the
    taps in one fused sweep; the few border outputs take their in-range taps one
    by one.  ``fresh``: the block holds no sum yet, so the fused sweep starts
    from 0 and the border outputs are zeroed first (no separate zeroing pass).
    Which path an output takes depends only on ``j``, never on the block
    bounds, so the sums do not depend on the split.
    """
    cdef Py_ssize_t j, flo, fhi, jlo, jhi
    cdef Py_ssize_t c0, c1, c2, c3, c4, c5, c6, c7
    cdef const scalar_t* a0
    cdef const scalar_t* a1
    cdef const scalar_t* a2
    cdef const scalar_t* a3
    cdef const scalar_t* a4
    cdef const scalar_t* a5
    cdef const scalar_t* a6
    cdef const scalar_t* a7
    cdef scalar_t w0, w1, w2, w3, w4, w5, w6, w7, acc
    cdef const scalar_t* sp[LGROUP]
    cdef int h
    # fused range: the outputs where all n taps are inside
    flo = j0
    fhi = j1
    for h in range(n):
        flo = _max(flo, -cs[h])
        fhi = _min(fhi, nl - cs[h])
    if flo >= fhi:
        flo = j0
        fhi = j0
    if fresh:
        for j in range(j0, flo):
            orow[j] = 0
        for j in range(fhi, j1):
            orow[j] = 0
    if scalar_t is float or scalar_t is double:
        # register-blocked sweep of the fused range, any n <= LGROUP (direct_sweep.h);
        # pointers are taken at flo, inside a, so no pointer ever leaves its array
        if flo < fhi:
            for h in range(n):
                sp[h] = ap[h] + (flo + cs[h])
            if scalar_t is float:
                pcv_sweep_f32(sp, ws, n, fresh, orow + flo, 0, fhi - flo)
            else:
                pcv_sweep_f64(sp, ws, n, fresh, orow + flo, 0, fhi - flo)
    # Other dtypes: one unrolled loop per group size (its taps in registers, vectorised
    # along j).  ``fresh`` is loop-invariant and GCC unswitches the loops on it, except the
    # two largest (beyond its size limit: it would select 0 per vector, ~3% slower
    # on 7x7 kernels), which are split by hand.
    elif n == 8:
        a0 = ap[0]; c0 = cs[0]; w0 = ws[0]
        a1 = ap[1]; c1 = cs[1]; w1 = ws[1]
        a2 = ap[2]; c2 = cs[2]; w2 = ws[2]
        a3 = ap[3]; c3 = cs[3]; w3 = ws[3]
        a4 = ap[4]; c4 = cs[4]; w4 = ws[4]
        a5 = ap[5]; c5 = cs[5]; w5 = ws[5]
        a6 = ap[6]; c6 = cs[6]; w6 = ws[6]
        a7 = ap[7]; c7 = cs[7]; w7 = ws[7]
        if fresh:
            for j in range(flo, fhi):
                acc = 0
                acc = acc + w0 * a0[j + c0]
                acc = acc + w1 * a1[j + c1]
                acc = acc + w2 * a2[j + c2]
                acc = acc + w3 * a3[j + c3]
                acc = acc + w4 * a4[j + c4]
                acc = acc + w5 * a5[j + c5]
                acc = acc + w6 * a6[j + c6]
                acc = acc + w7 * a7[j + c7]
                orow[j] = acc
        else:
            for j in range(flo, fhi):
                acc = orow[j]
                acc = acc + w0 * a0[j + c0]
                acc = acc + w1 * a1[j + c1]
                acc = acc + w2 * a2[j + c2]
                acc = acc + w3 * a3[j + c3]
                acc = acc + w4 * a4[j + c4]
                acc = acc + w5 * a5[j + c5]
                acc = acc + w6 * a6[j + c6]
                acc = acc + w7 * a7[j + c7]
                orow[j] = acc
    elif n == 7:
        a0 = ap[0]; c0 = cs[0]; w0 = ws[0]
        a1 = ap[1]; c1 = cs[1]; w1 = ws[1]
        a2 = ap[2]; c2 = cs[2]; w2 = ws[2]
        a3 = ap[3]; c3 = cs[3]; w3 = ws[3]
        a4 = ap[4]; c4 = cs[4]; w4 = ws[4]
        a5 = ap[5]; c5 = cs[5]; w5 = ws[5]
        a6 = ap[6]; c6 = cs[6]; w6 = ws[6]
        if fresh:
            for j in range(flo, fhi):
                acc = 0
                acc = acc + w0 * a0[j + c0]
                acc = acc + w1 * a1[j + c1]
                acc = acc + w2 * a2[j + c2]
                acc = acc + w3 * a3[j + c3]
                acc = acc + w4 * a4[j + c4]
                acc = acc + w5 * a5[j + c5]
                acc = acc + w6 * a6[j + c6]
                orow[j] = acc
        else:
            for j in range(flo, fhi):
                acc = orow[j]
                acc = acc + w0 * a0[j + c0]
                acc = acc + w1 * a1[j + c1]
                acc = acc + w2 * a2[j + c2]
                acc = acc + w3 * a3[j + c3]
                acc = acc + w4 * a4[j + c4]
                acc = acc + w5 * a5[j + c5]
                acc = acc + w6 * a6[j + c6]
                orow[j] = acc
    elif n == 6:
        a0 = ap[0]; c0 = cs[0]; w0 = ws[0]
        a1 = ap[1]; c1 = cs[1]; w1 = ws[1]
        a2 = ap[2]; c2 = cs[2]; w2 = ws[2]
        a3 = ap[3]; c3 = cs[3]; w3 = ws[3]
        a4 = ap[4]; c4 = cs[4]; w4 = ws[4]
        a5 = ap[5]; c5 = cs[5]; w5 = ws[5]
        for j in range(flo, fhi):
            acc = 0 if fresh else orow[j]
            acc = acc + w0 * a0[j + c0]
            acc = acc + w1 * a1[j + c1]
            acc = acc + w2 * a2[j + c2]
            acc = acc + w3 * a3[j + c3]
            acc = acc + w4 * a4[j + c4]
            acc = acc + w5 * a5[j + c5]
            orow[j] = acc
    elif n == 5:
        a0 = ap[0]; c0 = cs[0]; w0 = ws[0]
        a1 = ap[1]; c1 = cs[1]; w1 = ws[1]
        a2 = ap[2]; c2 = cs[2]; w2 = ws[2]
        a3 = ap[3]; c3 = cs[3]; w3 = ws[3]
        a4 = ap[4]; c4 = cs[4]; w4 = ws[4]
        for j in range(flo, fhi):
            acc = 0 if fresh else orow[j]
            acc = acc + w0 * a0[j + c0]
            acc = acc + w1 * a1[j + c1]
            acc = acc + w2 * a2[j + c2]
            acc = acc + w3 * a3[j + c3]
            acc = acc + w4 * a4[j + c4]
            orow[j] = acc
    elif n == 4:
        a0 = ap[0]; c0 = cs[0]; w0 = ws[0]
        a1 = ap[1]; c1 = cs[1]; w1 = ws[1]
        a2 = ap[2]; c2 = cs[2]; w2 = ws[2]
        a3 = ap[3]; c3 = cs[3]; w3 = ws[3]
        for j in range(flo, fhi):
            acc = 0 if fresh else orow[j]
            acc = acc + w0 * a0[j + c0]
            acc = acc + w1 * a1[j + c1]
            acc = acc + w2 * a2[j + c2]
            acc = acc + w3 * a3[j + c3]
            orow[j] = acc
    elif n == 3:
        a0 = ap[0]; c0 = cs[0]; w0 = ws[0]
        a1 = ap[1]; c1 = cs[1]; w1 = ws[1]
        a2 = ap[2]; c2 = cs[2]; w2 = ws[2]
        for j in range(flo, fhi):
            acc = 0 if fresh else orow[j]
            acc = acc + w0 * a0[j + c0]
            acc = acc + w1 * a1[j + c1]
            acc = acc + w2 * a2[j + c2]
            orow[j] = acc
    elif n == 2:
        a0 = ap[0]; c0 = cs[0]; w0 = ws[0]
        a1 = ap[1]; c1 = cs[1]; w1 = ws[1]
        for j in range(flo, fhi):
            acc = 0 if fresh else orow[j]
            acc = acc + w0 * a0[j + c0]
            acc = acc + w1 * a1[j + c1]
            orow[j] = acc
    elif n == 1:
        a0 = ap[0]; c0 = cs[0]; w0 = ws[0]
        for j in range(flo, fhi):
            acc = 0 if fresh else orow[j]
            acc = acc + w0 * a0[j + c0]
            orow[j] = acc
    # border outputs of each tap (outside the fused range)
    for h in range(n):
        a0 = ap[h]
        c0 = cs[h]
        w0 = ws[h]
        jlo = _max(j0, -c0)
        jhi = _min(j1, nl - c0)
        for j in range(jlo, _min(flo, jhi)):
            orow[j] = orow[j] + w0 * a0[j + c0]
        for j in range(_max(fhi, jlo), jhi):
            orow[j] = orow[j] + w0 * a0[j + c0]


cdef void _item(const scalar_t* a, const Py_ssize_t* ash, const Py_ssize_t* astr,
                const scalar_t* w, const Py_ssize_t* wsh, const Py_ssize_t* wstr,
                scalar_t* out, const Py_ssize_t* osh, const Py_ssize_t* shift,
                int nd, Py_ssize_t row, Py_ssize_t j0, Py_ssize_t j1, scalar_t* scratch) noexcept nogil:
    """Compute ``out`` row ``row`` (flat index over all dims but the last), columns j0:j1.

    ``scratch`` (1-D float32/float64 rows of at least LANES_MIN taps, else NULL): this
    thread's buffer for the lane-strided sweep, which then does the whole tiles of the
    outputs whose taps are all inside ``a``; the grouped sweeps do the rest.
    """
    cdef Py_ssize_t flo, fhi, done, kl
    cdef scalar_t* X
    if scalar_t is float or scalar_t is double:
        if scratch != NULL:
            kl = wsh[0]
            flo = _max(j0, -shift[0])
            fhi = _min(j1, ash[0] - shift[0] - kl + 1)
            if fhi - flo >= PCV_LS * <Py_ssize_t>(PCV_VBYTES // sizeof(scalar_t)):
                X = <scalar_t*>((<size_t>scratch + 63) & ~(<size_t>63))    # 64-byte aligned
                if scalar_t is float:
                    done = pcv_lanes_f32(a + flo + shift[0], w, kl, out + flo, fhi - flo,
                                         X, X + (PCV_LS + kl) * (PCV_VBYTES // sizeof(scalar_t)))
                else:
                    done = pcv_lanes_f64(a + flo + shift[0], w, kl, out + flo, fhi - flo,
                                         X, X + (PCV_LS + kl) * (PCV_VBYTES // sizeof(scalar_t)))
                if j0 < flo:
                    _item_groups(a, ash, astr, w, wsh, wstr, out, osh, shift, nd, row, j0, flo)
                if flo + done < j1:
                    _item_groups(a, ash, astr, w, wsh, wstr, out, osh, shift, nd, row, flo + done, j1)
                return
    _item_groups(a, ash, astr, w, wsh, wstr, out, osh, shift, nd, row, j0, j1)


cdef void _item_groups(const scalar_t* a, const Py_ssize_t* ash, const Py_ssize_t* astr,
                       const scalar_t* w, const Py_ssize_t* wsh, const Py_ssize_t* wstr,
                       scalar_t* out, const Py_ssize_t* osh, const Py_ssize_t* shift,
                       int nd, Py_ssize_t row, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Output row ``row``, columns j0:j1, by groups of taps swept over the block."""
    cdef Py_ssize_t lo[MAXD]
    cdef Py_ssize_t hi[MAXD]
    cdef Py_ssize_t k[MAXD]
    cdef Py_ssize_t pos[MAXD]
    cdef const scalar_t* gap[LGROUP]
    cdef Py_ssize_t gc[LGROUP]
    cdef scalar_t gw[LGROUP]
    cdef int ng = 0, gsize
    cdef bint fresh = True
    cdef Py_ssize_t ntaps, aoff, woff, j, kk, c, kl, nl, sl
    cdef Py_ssize_t last = nd - 1
    cdef scalar_t* orow = out + row * osh[last]
    cdef const scalar_t* arow
    cdef const scalar_t* wrow
    # Per outer dim: the range of kernel indices whose input index is inside a.
    ntaps = _box(row, nd - 1, ash, wsh, osh, shift, lo, hi, pos, k)
    if ntaps == 0:
        for j in range(j0, j1):
            orow[j] = 0     # no tap of this row lands inside a
        return
    kl = wsh[last]
    nl = ash[last]
    sl = shift[last]
    gsize = _group_size(ntaps * kl, _group_cap(out))
    # Odometer over the kernel rows inside that box; their taps go to the
    # output block in groups of gsize (kernel rows may share a group).
    while True:
        _offsets(nd - 1, pos, k, astr, wstr, &aoff, &woff)
        arow = a + aoff
        wrow = w + woff
        for kk in range(kl):
            c = sl + kk
            if c + j0 >= nl or c + j1 <= 0:
                continue    # this tap reaches no output of the block
            gap[ng] = arow
            gc[ng] = c
            gw[ng] = wrow[kk]
            ng += 1
            if ng == gsize:
                _flush(gap, gc, gw, ng, fresh, orow, nl, j0, j1)
                fresh = False
                ng = 0
        if not _advance(k, lo, hi, nd - 1):
            break
    if ng > 0:
        _flush(gap, gc, gw, ng, fresh, orow, nl, j0, j1)
        fresh = False
    if fresh:
        for j in range(j0, j1):
            orow[j] = 0         # every tap missed this block


cdef inline void _row_border(Py_ssize_t la, Py_ssize_t ol, Py_ssize_t kw, Py_ssize_t sc,
                             Py_ssize_t* bl, Py_ssize_t* br) noexcept nogil:
    """Columns [0, bl) and [br, ol) of a merged output row hold outputs with a tap outside
    a's row (``la`` long; kernel row ``kw``, last shift ``sc``): redone tap by tap."""
    bl[0] = _min(ol, _max(0, -sc))
    br[0] = _max(bl[0], _min(ol, la - sc - kw + 1))


cdef inline bint _merges_rows(int nd, Py_ssize_t la, Py_ssize_t ol, Py_ssize_t kw, Py_ssize_t sc,
                              Py_ssize_t orows) noexcept nogil:
    """The rule for sweeping runs of rows as one flat block (:func:`_plane_item`): at
    least 2 dims, output rows no longer than a's (``la``; 'same': as long, 'valid':
    ``kw - 1`` shorter), more than one per plane, and the columns computed in vain
    (``la - ol``) plus those redone tap by tap (a tap outside the row) at most a quarter
    of a's row.  Long rows too: against the rows one by one, 1024^2 * 15x15 float64 ran
    1.6x, float32 1.9x, 7x7 1.4-1.5x, 3x3 1.2x and 128x512x512 * 7^3 float32 1.8x faster
    (AMD EPYC, 1 and 2 threads; they were cut at 512 while the calibration priced the
    border redo 7-10x too high and sent them to a padded copy of the input, 0.6-0.8x).
    pyconv.signal's cost model asks :func:`merged_border`."""
    cdef Py_ssize_t bl, br
    if nd < 2 or ol > la or orows < 2:
        return False
    _row_border(la, ol, kw, sc, &bl, &br)
    return 4 * (la - ol + bl + ol - br) <= la


def merged_border(Py_ssize_t nd, Py_ssize_t a_row, Py_ssize_t out_row, Py_ssize_t w_row, Py_ssize_t shift,
                  Py_ssize_t out_rows):
    """For pyconv.signal's cost model: when the kernel sweeps runs of rows as one block for
    this geometry (its last two dims after the free ones are dropped: row lengths, the
    kernel's row, the last shift and the output's rows per plane), the columns of each row
    it redoes tap by tap; -1 when it sweeps the rows one by one."""
    cdef Py_ssize_t bl, br
    if not _merges_rows(<int>nd, a_row, out_row, w_row, shift, out_rows):
        return -1
    _row_border(a_row, out_row, w_row, shift, &bl, &br)
    return bl + out_row - br


cdef void _plane_item(const scalar_t* a, const Py_ssize_t* ash, const Py_ssize_t* astr,
                      const scalar_t* w, const Py_ssize_t* wsh, const Py_ssize_t* wstr,
                      scalar_t* out, const Py_ssize_t* osh, const Py_ssize_t* shift,
                      int nd, Py_ssize_t plane, Py_ssize_t r0, Py_ssize_t r1, scalar_t* scratch) noexcept nogil:
    """Output rows r0:r1 of plane ``plane`` (flat index over dims < nd-2), rows merged.

    Used where :func:`_merges_rows` says so: the rows r0:r1 are one flat run of
    outputs with a's row length ``L``, and a tap (kr, kc) reads a at the constant
    offset ``(sr + kr) * L + sc + kc`` from it, so each group of taps is one long
    vectorised sweep instead of one short sweep per row.  That is exact wherever
    the tap's column stays inside the row; the few border columns where it does
    not are then recomputed tap by tap, with the taps outside a skipped.  Output
    rows as long as a's ('same') are swept in place; shorter ones ('valid', padded
    rows) into ``scratch`` ((r1 - r0) * L items), whose first ``osh[-1]`` columns of
    each row are then copied out.  float32/float64 sweep the rows whose every kernel
    row is inside a two at a time (pcv_sweep2, direct_sweep.h: the output's columns
    only, straight into the output's rows), one call per pair.  AMD EPYC
    (Zen 4), AVX-512, the same tuning: 1.2-1.5x faster for kernels of 7 rows, 1.05-1.17x
    for 4 and 5, 0.9-1.07x for 3.  Every output still adds its taps in the same
    order (outer dims, kr, kc), so the bits equal those of the row-by-row path.
    """
    cdef Py_ssize_t lo[MAXD]
    cdef Py_ssize_t hi[MAXD]
    cdef Py_ssize_t k[MAXD]
    cdef Py_ssize_t pos[MAXD]
    cdef const scalar_t* gap[LGROUP]
    cdef Py_ssize_t gc[LGROUP]
    cdef scalar_t gw[LGROUP]
    cdef int ng = 0, gsize
    cdef bint fresh = True
    cdef Py_ssize_t ntaps, aoff, woff, j, kr, kc, c, rr, rr0, rr1, pz0, pz1, s0, s1
    cdef int part
    cdef bint more
    cdef const scalar_t* gwp[LGROUP]
    cdef Py_ssize_t last = nd - 1
    cdef Py_ssize_t dr = nd - 2
    cdef Py_ssize_t L = ash[last]
    cdef Py_ssize_t ol = osh[last]
    cdef Py_ssize_t ra = ash[dr]
    cdef Py_ssize_t sr = shift[dr]
    cdef Py_ssize_t sc = shift[last]
    cdef Py_ssize_t kh = wsh[dr]
    cdef Py_ssize_t kw = wsh[last]
    cdef Py_ssize_t j0 = r0 * L
    cdef Py_ssize_t j1 = r1 * L
    # the run's sums go to ob[j - jo]: out itself, or the scratch rows
    cdef Py_ssize_t jo = j0 if scratch != NULL else 0
    cdef Py_ssize_t bl, br
    cdef scalar_t* oplane = out + plane * osh[dr] * ol
    cdef scalar_t* ob = scratch if scratch != NULL else oplane
    cdef const scalar_t* aplane
    cdef const scalar_t* arow
    cdef scalar_t* orow
    cdef scalar_t wv
    # outer dims: the kernel box whose taps land inside a
    ntaps = _box(plane, nd - 2, ash, wsh, osh, shift, lo, hi, pos, k)
    if ntaps == 0:
        for j in range(r0 * ol, r1 * ol):
            oplane[j] = 0
        return
    gsize = _group_size(ntaps * kh * kw, _group_cap(out))
    # 1) every output of the run as if no tap left its row.  float32/float64: the rows
    # whose every kernel row lies inside a, with a spare row above and below (a flat column
    # past a row's end reads the next row), two at a time (pcv_sweep2: each input vector
    # loaded serves both rows); the others, and other dtypes, as one flat run of taps.
    pz0 = r1
    pz1 = r1
    if (scalar_t is float or scalar_t is double) and kh >= 2 and -L <= sc and sc + kw - 1 <= L:
        pz0 = _max(r0, 1 - sr)
        pz1 = _min(r1, ra - 1 - sr - kh)
        if pz1 - pz0 >= 2:
            pz1 = pz0 + (pz1 - pz0) // 2 * 2
        else:
            pz0 = r1
            pz1 = r1
    for part in range(2):
        s0 = r0 if part == 0 else pz1
        s1 = pz0 if part == 0 else r1
        if s0 >= s1:
            continue
        fresh = True
        ng = 0
        while True:
            _offsets(nd - 2, pos, k, astr, wstr, &aoff, &woff)
            aplane = a + aoff
            for kr in range(kh):
                if s1 + sr + kr <= 0 or s0 + sr + kr >= ra:
                    continue        # this kernel row reaches no row of the run
                for kc in range(kw):
                    gap[ng] = aplane
                    gc[ng] = (sr + kr) * L + sc + kc + jo
                    gw[ng] = w[woff + kr * wstr[dr] + kc]
                    ng += 1
                    if ng == gsize:
                        _flush(gap, gc, gw, ng, fresh, ob, ra * L, s0 * L - jo, s1 * L - jo)
                        fresh = False
                        ng = 0
            if not _advance(k, lo, hi, nd - 2):
                break
        if ng > 0:
            _flush(gap, gc, gw, ng, fresh, ob, ra * L, s0 * L - jo, s1 * L - jo)
            fresh = False
        if fresh:
            for j in range(s0 * L, s1 * L):
                ob[j - jo] = 0
    if (scalar_t is float or scalar_t is double) and pz0 < pz1:
        for rr in range(pz0, pz1, 2):
            fresh = True
            ng = 0
            while True:             # (the odometer wrapped back to lo)
                _offsets(nd - 2, pos, k, astr, wstr, &aoff, &woff)
                gap[ng] = a + aoff + (rr + sr) * L + sc     # the planes, in groups of LGROUP
                gwp[ng] = w + woff
                ng += 1
                more = _advance(k, lo, hi, nd - 2)
                if ng == LGROUP or not more:
                    # (the output's columns only, straight into its rows: 'valid' rows' and
                    # padded rows' dropped columns are not swept, and these rows skip the
                    # scratch and its copy-out)
                    if scalar_t is float:
                        pcv_sweep2_f32(gap, gwp, ng, <int>kh, <int>kw, L, fresh,
                                       oplane + rr * ol, oplane + (rr + 1) * ol, ol)
                    else:
                        pcv_sweep2_f64(gap, gwp, ng, <int>kh, <int>kw, L, fresh,
                                       oplane + rr * ol, oplane + (rr + 1) * ol, ol)
                    fresh = False
                    ng = 0
                if not more:
                    break
    if scratch != NULL:
        for rr in range(r0, r1):
            if rr < pz0 or rr >= pz1:           # (the pairs wrote their rows themselves)
                memcpy(oplane + rr * ol, scratch + (rr - r0) * L, ol * sizeof(scalar_t))
    # 2) border columns: [0, bl) and [br, ol) hold outputs with a tap outside the row
    _row_border(L, ol, kw, sc, &bl, &br)
    if bl == 0 and br == ol:
        return
    for rr in range(r0, r1):
        orow = oplane + rr * ol
        for j in range(bl):
            orow[j] = 0
        for j in range(br, ol):
            orow[j] = 0
    while True:             # (the odometer wrapped back to lo)
        _offsets(nd - 2, pos, k, astr, wstr, &aoff, &woff)
        aplane = a + aoff
        for kr in range(kh):
            rr0 = _max(r0, -sr - kr)
            rr1 = _min(r1, ra - sr - kr)
            for kc in range(kw):
                c = sc + kc
                wv = w[woff + kr * wstr[dr] + kc]
                for rr in range(rr0, rr1):
                    arow = aplane + (rr + sr + kr) * L
                    orow = oplane + rr * ol
                    for j in range(_max(0, -c), _min(bl, L - c)):
                        orow[j] = orow[j] + wv * arow[j + c]
                    for j in range(_max(br, -c), _min(ol, L - c)):
                        orow[j] = orow[j] + wv * arow[j + c]
        if not _advance(k, lo, hi, nd - 2):
            break


cdef class DirectGeometry:
    """Shapes and shift of a direct correlation, checked and laid out once (a plan keeps it).

    ``a_shape``, ``w_shape``, ``out_shape`` and ``shift`` have one length ``nd``
    (1 <= nd <= 64); sizes are non-negative.  ``block``: last-axis outputs per work item.
    """

    cdef readonly int nd
    cdef readonly Py_ssize_t a_size, w_size, out_size, block
    cdef Py_ssize_t ash[MAXD]
    cdef Py_ssize_t wsh[MAXD]
    cdef Py_ssize_t osh[MAXD]
    cdef Py_ssize_t sh[MAXD]
    cdef Py_ssize_t astr[MAXD]
    cdef Py_ssize_t wstr[MAXD]

    def __init__(self, a_shape, w_shape, out_shape, shift, Py_ssize_t block):
        cdef int d
        nd = len(a_shape)
        if not 1 <= nd <= MAXD or len(w_shape) != nd or len(out_shape) != nd or len(shift) != nd:
            raise ValueError(f"shapes and shift must have one length in 1..{MAXD}; got "
                             f"{len(a_shape)}, {len(w_shape)}, {len(out_shape)}, {len(shift)}")
        sizes = [1, 1, 1]
        for d in range(nd):
            for j, v in enumerate((a_shape[d], w_shape[d], out_shape[d])):
                if v < 0:
                    raise ValueError(f"negative size in shape {(a_shape, w_shape, out_shape)[j]}")
                sizes[j] *= v
            if abs(shift[d]) >= (1 << 62):
                raise ValueError(f"shift {shift} out of range")
        if max(sizes) >= (1 << 62):
            raise ValueError("array size out of range")
        self.nd = nd
        self.a_size, self.w_size, self.out_size = sizes
        self.block = block if block >= 1 else 1
        for d in range(nd):
            self.ash[d] = a_shape[d]
            self.wsh[d] = w_shape[d]
            self.osh[d] = out_shape[d]
            self.sh[d] = shift[d]
        self.astr[nd - 1] = 1
        self.wstr[nd - 1] = 1
        for d in range(nd - 2, -1, -1):
            self.astr[d] = self.astr[d + 1] * self.ash[d + 1]
            self.wstr[d] = self.wstr[d + 1] * self.wsh[d + 1]


cdef int _check(cnp.ndarray arr, int typenum, Py_ssize_t size, bint write, str name) except -1:
    """``arr`` is what the kernel may read (write) as ``size`` C-ordered items of ``typenum``."""
    if not (cnp.PyArray_ISCARRAY_RO(arr) and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_EquivTypenums(cnp.PyArray_TYPE(arr), typenum)):
        raise ValueError(f"{name} must be an aligned C-contiguous array of the output's dtype")
    if cnp.PyArray_SIZE(arr) != size:
        raise ValueError(f"{name} has {cnp.PyArray_SIZE(arr)} elements; the geometry says {size}")
    if write and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} is read-only")
    return 0


def correlate_skip(DirectGeometry g not None, cnp.ndarray a not None, cnp.ndarray w not None,
                   cnp.ndarray out not None, int nthreads):
    """``out[o] = sum_k a[o + shift + k] * w[k]`` over taps inside ``a``, shapes and shift from ``g``.

    ``a``, ``w`` and ``out``: C-contiguous arrays (any number of dims) of one dtype --
    float32, float64, complex64, complex128 or int64 -- with the element counts of ``g``
    (checked here: the entry costs no array views, the point of a tiny call).
    """
    cdef int t = cnp.PyArray_TYPE(out)
    if cnp.PyArray_EquivTypenums(t, cnp.NPY_FLOAT):
        t = cnp.NPY_FLOAT
    elif cnp.PyArray_EquivTypenums(t, cnp.NPY_DOUBLE):
        t = cnp.NPY_DOUBLE
    elif cnp.PyArray_EquivTypenums(t, cnp.NPY_CFLOAT):
        t = cnp.NPY_CFLOAT
    elif cnp.PyArray_EquivTypenums(t, cnp.NPY_CDOUBLE):
        t = cnp.NPY_CDOUBLE
    elif cnp.PyArray_EquivTypenums(t, cnp.NPY_LONGLONG):
        t = cnp.NPY_LONGLONG
    else:
        raise TypeError(f"correlate_skip computes in float32, float64, complex64, complex128 or int64; "
                        f"got {out.dtype}")
    _check(a, t, g.a_size, False, "a")
    _check(w, t, g.w_size, False, "w")
    _check(out, t, g.out_size, True, "out")
    if nthreads < 1:
        nthreads = 1
    if t == cnp.NPY_FLOAT:
        _correlate(g, <const float*>cnp.PyArray_DATA(a), <const float*>cnp.PyArray_DATA(w),
                   <float*>cnp.PyArray_DATA(out), nthreads)
    elif t == cnp.NPY_DOUBLE:
        _correlate(g, <const double*>cnp.PyArray_DATA(a), <const double*>cnp.PyArray_DATA(w),
                   <double*>cnp.PyArray_DATA(out), nthreads)
    elif t == cnp.NPY_CFLOAT:
        _correlate(g, <const float complex*>cnp.PyArray_DATA(a), <const float complex*>cnp.PyArray_DATA(w),
                   <float complex*>cnp.PyArray_DATA(out), nthreads)
    elif t == cnp.NPY_CDOUBLE:
        _correlate(g, <const double complex*>cnp.PyArray_DATA(a), <const double complex*>cnp.PyArray_DATA(w),
                   <double complex*>cnp.PyArray_DATA(out), nthreads)
    else:
        _correlate(g, <const long long*>cnp.PyArray_DATA(a), <const long long*>cnp.PyArray_DATA(w),
                   <long long*>cnp.PyArray_DATA(out), nthreads)


def pad_rows(cnp.ndarray src not None, cnp.ndarray dst not None, Py_ssize_t n, Py_ssize_t before,
             Py_ssize_t after, int nthreads):
    """Copy every row of ``n`` items of ``src`` into ``dst`` with ``before`` and ``after``
    zeros around it (pyconv.signal's padded rows, the direct plan's ``pad`` tile), the
    rows split over ``nthreads`` threads.  ``src`` and ``dst``: C-contiguous arrays of one
    dtype, ``src.size`` a multiple of ``n`` and ``dst.size`` that many rows of
    ``n + before + after`` (checked here); zero bytes are every dtype's +0."""
    cdef int mcpu = pyconv_cpu()
    cdef Py_ssize_t rows, r, isz = src.itemsize, m = n + before + after
    if n < 1 or before < 0 or after < 0:
        raise ValueError(f"pad_rows: rows of {n} items with {before} and {after} zeros")
    if not (cnp.PyArray_ISCARRAY_RO(src) and cnp.PyArray_ISCARRAY(dst)
            and cnp.PyArray_EquivTypes(src.dtype, dst.dtype)):
        raise ValueError("pad_rows: src and dst must be aligned C-contiguous arrays of one dtype, dst writeable")
    rows = src.size // n
    if rows * n != src.size or dst.size != rows * m:
        raise ValueError(f"pad_rows: {src.size} items in rows of {n} do not fill {dst.size} in rows of {m}")
    cdef char* s = <char*>cnp.PyArray_DATA(src)
    cdef char* d = <char*>cnp.PyArray_DATA(dst)
    with nogil:
        for r in prange(rows, schedule='static', num_threads=nthreads if nthreads > 0 else 1):
            pyconv_unstack(mcpu)
            memset(d + r * m * isz, 0, before * isz)
            memcpy(d + (r * m + before) * isz, s + r * n * isz, n * isz)
            memset(d + (r * m + before + n) * isz, 0, after * isz)


cdef void _correlate(DirectGeometry g, const scalar_t* a, const scalar_t* w, scalar_t* out,
                     int nthreads) noexcept:
    cdef int mcpu = pyconv_cpu()
    cdef int nd = g.nd
    cdef const Py_ssize_t* ash = g.ash
    cdef const Py_ssize_t* wsh = g.wsh
    cdef const Py_ssize_t* osh = g.osh
    cdef const Py_ssize_t* sh = g.sh
    cdef const Py_ssize_t* astr = g.astr
    cdef const Py_ssize_t* wstr = g.wstr
    cdef Py_ssize_t block = g.block
    cdef Py_ssize_t nrows = 1, nblocks, nitems, it, row, b, j0, j1, ol, rpi, nplanes, nchunks
    cdef Py_ssize_t per = 0
    cdef scalar_t* scratch = NULL
    cdef int d
    for d in range(nd - 1):
        nrows *= osh[d]
    ol = osh[nd - 1]
    if nrows == 0 or ol == 0:
        return
    if g.a_size == 0 or g.w_size == 0:
        # no tap lands anywhere: every output is an empty sum
        memset(out, 0, g.out_size * sizeof(scalar_t))
        return
    # Short rows ('same', 'valid'): merge runs of rows into one sweep, where the columns
    # computed in vain or redone tap by tap are a small share (_merges_rows).
    if nd >= 2 and _merges_rows(nd, ash[nd - 1], ol, wsh[nd - 1], sh[nd - 1], osh[nd - 2]):
        # rows per work item: about a block's outputs, and an even count where float rows
        # go through the pair sweep (an odd row out of each item takes the flat sweep,
        # slower per multiply-add: rows of 1026-2048 float32 or 1025+ float64 outputs had
        # 3 or 1 rows per item, 1.5x and 2.3x slower on 1084^2 * 31x31 'valid', AMD EPYC)
        rpi = _max(1, block // ol)
        if (scalar_t is float or scalar_t is double) and wsh[nd - 2] >= 2 and osh[nd - 2] >= 2:
            rpi = _max(2, rpi // 2 * 2)
        nplanes = nrows // osh[nd - 2]
        nchunks = (osh[nd - 2] + rpi - 1) // rpi
        nitems = nplanes * nchunks
        if ol < ash[nd - 1]:
            # each thread sweeps its runs of rows into a scratch of a's row length
            per = rpi * ash[nd - 1]
            scratch = <scalar_t*>malloc(nthreads * per * sizeof(scalar_t))
        if ol == ash[nd - 1] or scratch != NULL:     # (no memory: the rows one by one)
            with nogil:
                if nthreads == 1:
                    # (no parallel region for one thread: its entry and exit cost a tiny
                    # call a quarter of its time)
                    for it in range(nitems):
                        row = it // nchunks
                        b = it - row * nchunks
                        _plane_item(a, ash, astr, w, wsh, wstr, out, osh, sh, nd, row,
                                    b * rpi, _min(b * rpi + rpi, osh[nd - 2]), scratch)
                else:
                    for it in prange(nitems, schedule='static', num_threads=nthreads):
                        pyconv_unstack(mcpu)
                        row = it // nchunks
                        b = it - row * nchunks
                        _plane_item(a, ash, astr, w, wsh, wstr, out, osh, sh, nd, row,
                                    b * rpi, _min(b * rpi + rpi, osh[nd - 2]),
                                    scratch + threadid() * per if scratch != NULL else NULL)
            free(scratch)
            return
    nblocks = (ol + block - 1) // block
    nitems = nrows * nblocks
    if scalar_t is float or scalar_t is double:
        if nd == 1 and wsh[0] >= LANES_MIN:
            per = PCV_LANES_SCRATCH(wsh[0], sizeof(scalar_t))
            scratch = <scalar_t*>malloc(nthreads * per * sizeof(scalar_t))
            # (no scratch: the grouped sweeps alone, same sums)
    with nogil:
        if nthreads == 1:
            for it in range(nitems):
                row = it // nblocks
                b = it - row * nblocks
                j0 = b * block
                _item(a, ash, astr, w, wsh, wstr, out, osh, sh, nd, row, j0, _min(j0 + block, ol), scratch)
        else:
            for it in prange(nitems, schedule='static', num_threads=nthreads):
                pyconv_unstack(mcpu)
                row = it // nblocks
                b = it - row * nblocks
                j0 = b * block
                j1 = _min(j0 + block, ol)
                _item(a, ash, astr, w, wsh, wstr, out, osh, sh, nd, row, j0, j1,
                      scratch + threadid() * per if scratch != NULL else NULL)
    free(scratch)
