# Direct kernels of depthwise and thin-channel grouped convolutions ('thin_row':
# direct_conv, 'thin_s1': direct_conv_s1, 'thin_reg': direct_conv_reg; the strided
# 'thin_phase' is dense_direct.thin_phase, beside the phase-plane builders).  Memory-bound:
# one contiguous pass per tap over an output row or plane; the innermost loop runs along the
# contiguous output width so the compiler vectorises it.  C micro-kernels: thin_kernels.h.
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.string cimport memset

import numpy as np

from pyconv._kernels._common cimport (conv_geo_t, copy_row, idx_t, real_t, omp_get_thread_num, pyconv_cpu,
                                      pyconv_unstack, valid_range)


cdef inline void axpy_row(real_t* row, const real_t* src, real_t wv, idx_t lo, idx_t hi,
                          idx_t step) noexcept nogil:
    cdef idx_t j
    if step == 1:
        for j in range(lo, hi):
            row[j] += wv * src[j]
    else:
        for j in range(lo, hi):
            row[j] += wv * src[j * step]


def direct_conv(const real_t[:, :, :, :, ::1] x, const real_t[:, :, :, :, ::1] w,
                const real_t[::1] bias, bint has_bias, real_t[:, :, :, :, ::1] out,
                conv_geo_t geo, idx_t groups, int nthreads):
    """Grouped 3-D cross-correlation by its definition, zero padding implicit.

    x: (N, C_in, D, H, W); w: (C_out, C_in/groups, kd, kh, kw); out: (N, C_out, OD, OH, OW).
    Parallel over (sample, output channel): each task owns one output volume,
    and padded taps are skipped rather than materialised.
    """
    cdef idx_t N = x.shape[0], Cout = w.shape[0], kw = w.shape[4]
    if N * Cout == 0 or out.shape[2] * out.shape[3] * out.shape[4] == 0:
        return
    # The valid output columns of each horizontal tap do not depend on the row:
    # compute them once (the divisions would otherwise dominate short rows).
    # (one malloc for the four per-tap tables: a tiny call pays no array objects)
    cdef idx_t* lo = <idx_t*>malloc((4 * kw + 1) * sizeof(idx_t))
    if lo == NULL:
        raise MemoryError()
    cdef idx_t* hi = lo + kw
    cdef idx_t* a1 = lo + 2 * kw
    cdef idx_t* b1 = lo + 3 * kw
    try:
        _conv_rows(x, w, bias, has_bias, out, geo, groups, nthreads, lo, hi, a1, b1)
    finally:
        free(lo)


cdef void _conv_rows(const real_t[:, :, :, :, ::1] x, const real_t[:, :, :, :, ::1] w,
                     const real_t[::1] bias, bint has_bias, real_t[:, :, :, :, ::1] out,
                     conv_geo_t geo, idx_t groups, int nthreads, idx_t* lo, idx_t* hi,
                     idx_t* a1, idx_t* b1) noexcept nogil:
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = x.shape[0], Cin = x.shape[1], D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = w.shape[0], Cg = w.shape[1], kd = w.shape[2], kh = w.shape[3], kw = w.shape[4]
    cdef idx_t OD = out.shape[2], OH = out.shape[3], OW = out.shape[4]
    cdef idx_t sd = geo.sd, sh = geo.sh, sw = geo.sw
    cdef idx_t dd = geo.dd, dh = geo.dh, dw = geo.dw
    cdef idx_t pd = geo.pd, ph = geo.ph, pw = geo.pw
    cdef idx_t Og = Cout // groups if groups > 0 else 0
    cdef idx_t u, n, o, gi, od, oh, c, a, b, e, id_, ih, j, jlo, jhi
    cdef real_t* row
    cdef const real_t* src
    cdef const real_t* wr
    cdef real_t bv, w0, w1, w2
    for e in range(kw):
        valid_range(e * dw - pw, sw, OW, W, &lo[e], &hi[e])
    # Columns where every tap is valid (for the fused 3-tap loop).
    jlo = 0
    jhi = OW
    for e in range(kw):
        if lo[e] > jlo:
            jlo = lo[e]
        if hi[e] < jhi:
            jhi = hi[e]
    if jhi < jlo:
        jhi = jlo
    # per tap: its columns left of the interior [lo, a1), right of it [b1, hi)
    for e in range(kw):
        a1[e] = jlo if jlo < hi[e] else hi[e]
        b1[e] = jhi if jhi > lo[e] else lo[e]
    # units taken one at a time as threads come free (dynamic): a static split leaves the
    # call waiting on whichever core the host slows (2-core Xeon VM, 2 threads: depthwise
    # 3x3 stride 2 on 8x256x56x56 6.1 -> 5.4 ms, the two schedules alternated in one process)
    for u in prange(N * Cout, schedule='dynamic', num_threads=nthreads):
        pyconv_unstack(mcpu)
        n = u // Cout
        o = u % Cout
        gi = o // Og
        bv = bias[o] if has_bias else 0
        for od in range(OD):
            for oh in range(OH):
                row = &out[n, o, od, oh, 0]
                for j in range(OW):
                    row[j] = bv
                for c in range(Cg):
                    for a in range(kd):
                        id_ = od * sd - pd + a * dd
                        if id_ < 0 or id_ >= D:
                            continue
                        for b in range(kh):
                            ih = oh * sh - ph + b * dh
                            if ih < 0 or ih >= H:
                                continue
                            src = &x[n, gi * Cg + c, id_, ih, 0] - pw
                            wr = &w[o, c, a, b, 0]
                            if kw == 3 and sw == 1:
                                # the common 3-tap row: one pass over the interior,
                                # the row loaded and stored once instead of three times
                                w0 = wr[0]
                                w1 = wr[1]
                                w2 = wr[2]
                                for j in range(lo[0], a1[0]):
                                    row[j] += w0 * src[j]
                                for j in range(lo[1], a1[1]):
                                    row[j] += w1 * src[j + dw]
                                for j in range(lo[2], a1[2]):
                                    row[j] += w2 * src[j + 2 * dw]
                                for j in range(jlo, jhi):
                                    row[j] += w0 * src[j] + w1 * src[j + dw] + w2 * src[j + 2 * dw]
                                for j in range(b1[0], hi[0]):
                                    row[j] += w0 * src[j]
                                for j in range(b1[1], hi[1]):
                                    row[j] += w1 * src[j + dw]
                                for j in range(b1[2], hi[2]):
                                    row[j] += w2 * src[j + 2 * dw]
                            else:
                                for e in range(kw):
                                    axpy_row(row, src + e * dw, wr[e], lo[e], hi[e], sw)


cdef inline void fused3x3(real_t* A, const real_t* base, const real_t* wr, idx_t L, idx_t rs,
                         idx_t cs) noexcept nogil:
    # A[q] += sum_{b,e < 3} wr[3b + e] * base[b*rs + e*cs + q]
    cdef idx_t q
    cdef real_t w0 = wr[0], w1 = wr[1], w2 = wr[2], w3 = wr[3], w4 = wr[4]
    cdef real_t w5 = wr[5], w6 = wr[6], w7 = wr[7], w8 = wr[8]
    cdef const real_t* r0 = base
    cdef const real_t* r1 = base + rs
    cdef const real_t* r2 = base + 2 * rs
    for q in range(L):
        # three short chains instead of one 9-long dependency chain (FMA latency)
        A[q] += ((w0 * r0[q] + w1 * r0[q + cs] + w2 * r0[q + 2 * cs])
                 + (w3 * r1[q] + w4 * r1[q + cs] + w5 * r1[q + 2 * cs])
                 + (w6 * r2[q] + w7 * r2[q + cs] + w8 * r2[q + 2 * cs]))


cdef extern from "thin_kernels.h":
    void pyconv_f3x3_2_f(float* A, float* B, const float* r0, const float* wa, const float* wb,
                         Py_ssize_t L, Py_ssize_t rs, Py_ssize_t cs) noexcept nogil
    void pyconv_f3x3_2_d(double* A, double* B, const double* r0, const double* wa, const double* wb,
                         Py_ssize_t L, Py_ssize_t rs, Py_ssize_t cs) noexcept nogil


cdef inline void fused3x3_2(real_t* A, real_t* B, const real_t* base, const real_t* wa,
                           const real_t* wb, idx_t L, idx_t rs, idx_t cs) noexcept nogil:
    if real_t is float:
        pyconv_f3x3_2_f(A, B, base, wa, wb, L, rs, cs)
    else:
        pyconv_f3x3_2_d(A, B, base, wa, wb, L, rs, cs)


def direct_conv_s1(const real_t[:, :, :, :, ::1] x, const real_t[:, :, :, :, ::1] w,
                   const real_t[::1] bias, bint has_bias, real_t[:, :, :, :, ::1] out,
                   conv_geo_t geo, idx_t groups, int nthreads):
    """Grouped 3-D cross-correlation with stride 1 in H and W, as long flat passes.

    x: (N, C_in, D, H, W); w: (C_out, C_in/groups, kd, kh, kw); out: (N, C_out, OD, OH, OW);
    geo: depth stride sd, dilation, padding before (pd, ph, pw) and the padded input's
    size (qd, qh, qw) = (Dp, Hp, Wp).  Each task (sample, group) copies its input
    channels once into a zero-padded buffer of row width Wp; then in the padded
    frame ``out[oh*Wp + ow] += w * xp[(oh + b*dh)*Wp + ow + e*dw]`` is ONE contiguous
    loop over the whole plane per tap (the columns ow >= OW are computed and
    dropped), instead of one short loop per output row.  The padded zeros take
    part in the products, as in PyTorch's dense path (0 * inf = nan).
    """
    cdef idx_t N = x.shape[0], Cout = w.shape[0], Cg = w.shape[1]
    cdef idx_t OD = out.shape[2], OH = out.shape[3], OW = out.shape[4]
    cdef idx_t L = (OH - 1) * geo.qw + OW
    if N * Cout == 0 or OD * OH * OW == 0:
        return
    # per-thread scratch from malloc, not numpy: a tiny call pays no array objects
    cdef idx_t xlen = max(1, Cg * geo.qd * geo.qh * geo.qw), alen = max(1, 2 * L)
    cdef real_t* xpad = <real_t*>malloc(nthreads * xlen * sizeof(real_t))
    cdef real_t* acc = <real_t*>malloc(nthreads * alen * sizeof(real_t))
    if xpad == NULL or acc == NULL:
        free(xpad)
        free(acc)
        raise MemoryError()
    try:
        _conv_s1(x, w, bias, has_bias, out, geo, groups, nthreads, xpad, xlen, acc, alen)
    finally:
        free(xpad)
        free(acc)


cdef void _s1_unit(const real_t[:, :, :, :, ::1] x, const real_t[:, :, :, :, ::1] w,
                   const real_t[::1] bias, bint has_bias, real_t[:, :, :, :, ::1] out,
                   conv_geo_t geo, idx_t groups, idx_t u, real_t* xp, real_t* A) noexcept nogil:
    # one (sample, group) of _conv_s1, in the thread's padded buffer xp and sums A
    cdef idx_t D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = w.shape[0], Cg = w.shape[1], kd = w.shape[2], kh = w.shape[3], kw = w.shape[4]
    cdef idx_t OD = out.shape[2], OH = out.shape[3], OW = out.shape[4]
    cdef idx_t sd = geo.sd
    cdef idx_t dd = geo.dd, dh = geo.dh, dw = geo.dw
    cdef idx_t pdb = geo.pd, phb = geo.ph, pwb = geo.pw
    cdef idx_t Dp = geo.qd
    cdef idx_t Hp = geo.qh
    cdef idx_t Wp = geo.qw
    cdef idx_t plane = Hp * Wp
    cdef idx_t Og = Cout // groups
    cdef idx_t L = (OH - 1) * Wp + OW
    cdef idx_t n, gi, oi, o, od, c, a, b, e, q, dz, hy, off
    cdef real_t* A2
    cdef const real_t* base
    cdef const real_t* wr
    cdef real_t bv, bv2, w0, w1, w2
    cdef bint two
    n = u // groups
    gi = u % groups
    memset(xp, 0, Cg * Dp * plane * sizeof(real_t))
    for c in range(Cg):
        for dz in range(D):
            for hy in range(H):
                copy_row(xp + ((c * Dp + dz + pdb) * Hp + hy + phb) * Wp + pwb,
                         &x[n, gi * Cg + c, dz, hy, 0], W)
    A2 = A + L
    oi = 0
    while oi < Og:
        o = gi * Og + oi
        # two outputs per pass for 3x3 kernels (shares the input loads)
        two = kh == 3 and kw == 3 and oi + 1 < Og
        bv = bias[o] if has_bias else 0
        bv2 = (bias[o + 1] if has_bias else 0) if two else 0
        for od in range(OD):
            for q in range(L):
                A[q] = bv
            if two:
                for q in range(L):
                    A2[q] = bv2
            for c in range(Cg):
                for a in range(kd):
                    base = xp + (c * Dp + od * sd + a * dd) * plane
                    if two:
                        fused3x3_2(A, A2, base, &w[o, c, a, 0, 0], &w[o + 1, c, a, 0, 0], L, dh * Wp, dw)
                        continue
                    if kh == 3 and kw == 3:
                        # the ubiquitous 3x3: all nine taps in one pass
                        fused3x3(A, base, &w[o, c, a, 0, 0], L, dh * Wp, dw)
                        continue
                    for b in range(kh):
                        wr = &w[o, c, a, b, 0]
                        off = b * dh * Wp
                        if kw == 3:
                            w0 = wr[0]
                            w1 = wr[1]
                            w2 = wr[2]
                            for q in range(L):
                                A[q] += w0 * base[off + q] + w1 * base[off + dw + q] + w2 * base[off + 2 * dw + q]
                        else:
                            for e in range(kw):
                                w0 = wr[e]
                                for q in range(L):
                                    A[q] += w0 * base[off + e * dw + q]
            for q in range(OH):
                copy_row(&out[n, o, od, q, 0], A + q * Wp, OW)
            if two:
                for q in range(OH):
                    copy_row(&out[n, o + 1, od, q, 0], A2 + q * Wp, OW)
        oi = oi + (2 if two else 1)


cdef void _conv_s1(const real_t[:, :, :, :, ::1] x, const real_t[:, :, :, :, ::1] w,
                   const real_t[::1] bias, bint has_bias, real_t[:, :, :, :, ::1] out,
                   conv_geo_t geo, idx_t groups, int nthreads, real_t* xpad, idx_t xlen,
                   real_t* acc, idx_t alen) noexcept nogil:
    cdef int mcpu = pyconv_cpu()
    cdef idx_t u, tid, units = x.shape[0] * groups
    if nthreads <= 1:
        # (one thread: no parallel region, whose entry and exit cost a tiny call 0.7 us)
        for u in range(units):
            _s1_unit(x, w, bias, has_bias, out, geo, groups, u, xpad, acc)
        return
    for u in prange(units, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = omp_get_thread_num()
        _s1_unit(x, w, bias, has_bias, out, geo, groups, u, xpad + tid * xlen, acc + tid * alen)


cdef extern from "thin_kernels.h":
    const int PYCONV_TH_SLACK
    const int PYCONV_TH_RMAX
    const int PYCONV_TH_BYTES
    ctypedef struct pyconv_th_taps:
        const Py_ssize_t* poffs
        const int* brow
        Py_ssize_t nplanes, kh, kw, dh, dw
        const Py_ssize_t* toffs
        Py_ssize_t ntaps
    void pyconv_th_copy_rows_f(float* dst, Py_ssize_t ds, const float* src, Py_ssize_t ss, Py_ssize_t n,
                               Py_ssize_t rows) noexcept nogil
    void pyconv_th_copy_rows_d(double* dst, Py_ssize_t ds, const double* src, Py_ssize_t ss, Py_ssize_t n,
                               Py_ssize_t rows) noexcept nogil
    void pyconv_th_rows_f(int M, const float* x, Py_ssize_t xs, const pyconv_th_taps* tp,
                          const float* w, const float* bias, float* out, Py_ssize_t os, Py_ssize_t ldo,
                          Py_ssize_t OW, Py_ssize_t nrows, const float* pf, Py_ssize_t pfn) noexcept nogil
    void pyconv_th_rows_d(int M, const double* x, Py_ssize_t xs, const pyconv_th_taps* tp,
                          const double* w, const double* bias, double* out, Py_ssize_t os, Py_ssize_t ldo,
                          Py_ssize_t OW, Py_ssize_t nrows, const double* pf, Py_ssize_t pfn) noexcept nogil


cdef inline idx_t reg_lead(idx_t pw, idx_t vl) noexcept nogil:
    # thin_reg's frame: elements before it, so its first input column (pw) is on a vector boundary
    return (vl - pw % vl) % vl


cdef inline idx_t reg_row(idx_t wp, idx_t vl) noexcept nogil:
    # thin_reg's frame: the row stride, Wp rounded up to whole vectors
    return (wp + vl - 1) // vl * vl


cdef inline idx_t reg_len(idx_t lead, idx_t rows, idx_t ws, idx_t vl) noexcept nogil:
    # one thread's scratch, in elements: lead-in, frame rows and a row's vector overrun
    return (lead + rows * ws + PYCONV_TH_SLACK + 16 + vl - 1) // vl * vl


def reg_scratch_bytes(idx_t planes, idx_t Hp, idx_t Wp, idx_t pw, idx_t itemsize):
    """Bytes of one thread's scratch in :func:`direct_conv_reg`: ``planes`` padded planes
    (channels x depth) of ``Hp`` x ``Wp``, padding ``pw`` before the first column."""
    cdef idx_t vl = PYCONV_TH_BYTES // itemsize
    return reg_len(reg_lead(pw, vl), planes * Hp, reg_row(Wp, vl), vl) * itemsize


cdef inline int reg_block(idx_t left) noexcept nogil:
    # output channels per register block: 4, then 2, then 1 (a group's last ones)
    return 4 if left >= 4 else (2 if left >= 2 else 1)


def direct_conv_reg(const real_t[:, :, :, :, ::1] x, const real_t[:, :, :, :, ::1] w,
                    const real_t[::1] bias, bint has_bias, real_t[:, :, :, :, ::1] out,
                    conv_geo_t geo, idx_t groups, int nthreads):
    """Grouped 3-D cross-correlation with stride 1 in H and W, output rows in registers.

    Same arguments and padded frame as :func:`direct_conv_s1` (geo.qd, qh, qw = the
    padded input's Dp, Hp, Wp).  Each task (sample, group) copies its input channels
    into a zero-padded per-thread buffer (the borders are zeroed once per call: every
    task writes the same interior; its rows ``Wp`` rounded up to whole vectors and the first
    input column on a vector boundary, so the copy stores aligned vectors and the centre
    column's loads stay within a cache line: layer d, 1 thread, 6.5 -> 5.4 ms), then each
    block of 1, 2 or 4 of the group's output channels computes its output rows (several at a time, each load of an input row
    serving every row of the block that reads it) in vector registers over all taps
    and stores them once (``pyconv_th_rows`` in thin_kernels.h).  The padded zeros take part in the
    products, as in PyTorch's dense path (0 * inf = nan).
    """
    cdef idx_t N = x.shape[0], Cout = w.shape[0], Cg = w.shape[1]
    cdef idx_t kd = w.shape[2], kh = w.shape[3], kw = w.shape[4]
    cdef idx_t OD = out.shape[2], OH = out.shape[3], OW = out.shape[4]
    cdef idx_t ntaps = Cg * kd * kh * kw
    cdef idx_t Dp = geo.qd, Hp = geo.qh
    cdef idx_t vl = PYCONV_TH_BYTES // sizeof(real_t)
    # the frame's rows vl-aligned (row stride Ws >= Wp) and its first input column (pw) on a
    # vector boundary: the row copies store whole aligned vectors and the centre column's
    # loads do not straddle cache lines
    cdef idx_t lead = reg_lead(geo.pw, vl)
    cdef idx_t Ws = reg_row(geo.qw, vl)
    cdef idx_t plane = Hp * Ws
    cdef idx_t Og, o, oi, t, c, a, b, e, m, M
    if N * Cout == 0 or OD * OH * OW == 0:
        return
    Og = Cout // groups
    # per-thread scratch (plus a row's vector overrun), the tap offsets, the weights
    # packed per register block as [tap][channel], the bias (zeros without one)
    cdef idx_t xlen = reg_len(lead, Cg * Dp * Hp, Ws, vl)
    cdef idx_t nplanes = Cg * kd, nb = (kh - 1) * geo.dh + 1 + 2 * PYCONV_TH_RMAX
    cdef real_t* xmem = <real_t*>malloc((nthreads * xlen + vl) * sizeof(real_t))
    cdef real_t* xpad = xmem + ((-<size_t>xmem) % PYCONV_TH_BYTES) // sizeof(real_t) if xmem != NULL else NULL
    cdef idx_t* poffs = <idx_t*>malloc(nplanes * sizeof(idx_t))
    cdef int* brow = <int*>malloc(nb * sizeof(int))
    cdef idx_t* toffs = <idx_t*>malloc(ntaps * sizeof(idx_t))
    cdef real_t* wp = <real_t*>malloc((Cout * ntaps + Cout) * sizeof(real_t))
    cdef pyconv_th_taps taps
    if xmem == NULL or poffs == NULL or brow == NULL or toffs == NULL or wp == NULL:
        free(xmem)
        free(poffs)
        free(brow)
        free(toffs)
        free(wp)
        raise MemoryError()
    cdef real_t* bp = wp + Cout * ntaps
    try:
        with nogil:
            memset(xpad, 0, nthreads * xlen * sizeof(real_t))
            # the planes (input channel, depth tap), every tap's offset, and per distance
            # d from an output row to an input row, the kernel row b with b * dh == d (else -1)
            t = 0
            for c in range(Cg):
                for a in range(kd):
                    poffs[c * kd + a] = (c * Dp + a * geo.dd) * plane
                    for b in range(kh):
                        for e in range(kw):
                            toffs[t] = poffs[c * kd + a] + b * geo.dh * Ws + e * geo.dw
                            t = t + 1
            for t in range(nb):
                brow[t] = -1
            for b in range(kh):
                brow[PYCONV_TH_RMAX + b * geo.dh] = b
            taps.poffs = poffs
            taps.brow = brow + PYCONV_TH_RMAX
            taps.nplanes = nplanes
            taps.kh = kh
            taps.kw = kw
            taps.dh = geo.dh
            taps.dw = geo.dw
            taps.toffs = toffs
            taps.ntaps = ntaps
            for o in range(Cout):
                bp[o] = bias[o] if has_bias else 0
            o = 0
            while o < Cout:
                M = reg_block(Og - o % Og)
                for m in range(M):
                    t = 0
                    for c in range(Cg):
                        for a in range(kd):
                            for b in range(kh):
                                for e in range(kw):
                                    wp[o * ntaps + t * M + m] = w[o + m, c, a, b, e]
                                    t = t + 1
                o = o + M
            _conv_reg(x, out, geo, groups, Og, ntaps, nthreads, xpad + lead, xlen, Ws, &taps, wp, bp)
    finally:
        free(xmem)
        free(poffs)
        free(brow)
        free(toffs)
        free(wp)


cdef void _conv_reg(const real_t[:, :, :, :, ::1] x, real_t[:, :, :, :, ::1] out, conv_geo_t geo,
                    idx_t groups, idx_t Og, idx_t ntaps, int nthreads, real_t* xpad, idx_t xlen, idx_t Wp,
                    const pyconv_th_taps* taps, const real_t* wp, const real_t* bp) noexcept nogil:
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = x.shape[0], D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = out.shape[1], OD = out.shape[2], OH = out.shape[3], OW = out.shape[4]
    cdef idx_t Cg = x.shape[1] // groups
    cdef idx_t Dp = geo.qd, Hp = geo.qh, plane = geo.qh * Wp
    cdef idx_t ldo = OD * OH * OW
    cdef idx_t chan = Cg * D * H * W       # one task's input elements (contiguous)
    cdef idx_t u, n, gi, c, dz, hy, tid, oi, o, od, oh, pfn
    cdef int M
    cdef real_t* xp
    cdef const real_t* xr
    cdef const real_t* pf = NULL
    # guided: each thread first takes a long contiguous run (its prefetch of the next task
    # stays its own), then shorter ones, so a core the host slows holds up only the last
    # few (depthwise layer d, 2 threads, alternated in one process: forward 2.60 ms static,
    # 2.40 guided, input gradient 3.65 and 2.92; dynamic one by one 1.1-1.2x static in
    # another run)
    for u in prange(N * groups, schedule='guided', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = omp_get_thread_num()
        n = u // groups
        gi = u % groups
        xp = xpad + tid * xlen
        for c in range(Cg):
            for dz in range(D):
                if real_t is float:
                    pyconv_th_copy_rows_f(xp + ((c * Dp + dz + geo.pd) * Hp + geo.ph) * Wp + geo.pw, Wp,
                                          &x[n, gi * Cg + c, dz, 0, 0], W, W, H)
                else:
                    pyconv_th_copy_rows_d(xp + ((c * Dp + dz + geo.pd) * Hp + geo.ph) * Wp + geo.pw, Wp,
                                          &x[n, gi * Cg + c, dz, 0, 0], W, W, H)
        oi = 0
        while oi < Og:
            M = reg_block(Og - oi)
            o = gi * Og + oi
            for od in range(OD):
                xr = xp + od * geo.sd * plane
                # the first block's rows prefetch the next task's input (its channels are
                # contiguous in x), spread over the depth slices
                pfn = 0
                if oi == 0 and u + 1 < N * groups:
                    pfn = chan // OD if od + 1 < OD else chan - (OD - 1) * (chan // OD)
                    pf = &x[0, 0, 0, 0, 0] + (u + 1) * chan + od * (chan // OD)
                if real_t is float:
                    pyconv_th_rows_f(M, xr, Wp, taps, wp + o * ntaps, bp + o, &out[n, o, od, 0, 0], OW, ldo,
                                     OW, OH, pf, pfn)
                else:
                    pyconv_th_rows_d(M, xr, Wp, taps, wp + o * ntaps, bp + o, &out[n, o, od, 0, 0], OW, ldo,
                                     OW, OH, pf, pfn)
            oi = oi + M
