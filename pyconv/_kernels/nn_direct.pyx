# Direct (loop) kernels of pyconv.nn: depthwise and thin-channel grouped
# convolutions, index-map gathers (padding modes, nearest upsampling), bilinear
# upsampling and channel shuffle.  These are memory-bound; the innermost loop
# always runs along the contiguous output width so the compiler vectorises it.
from cython.parallel cimport prange
from libc.string cimport memset, memcpy

import numpy as np

from pyconv._kernels._common cimport real_t

ctypedef Py_ssize_t idx_t


cdef inline void valid_range(idx_t start, idx_t step, idx_t n, idx_t size,
                             idx_t* lo, idx_t* hi) noexcept nogil:
    # j in [lo, hi) are the indices of [0, n) with 0 <= start + j*step < size.
    cdef idx_t a = 0, b
    if start < 0:
        a = (-start + step - 1) // step
    if size - start <= 0:
        b = 0
    else:
        b = (size - start + step - 1) // step
    if a > n:
        a = n
    if b > n:
        b = n
    if b < a:
        b = a
    lo[0] = a
    hi[0] = b


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
                tuple stride, tuple dilation, tuple pad_before, idx_t groups, int nthreads):
    """Grouped 3-D cross-correlation by its definition, zero padding implicit.

    x: (N, C_in, D, H, W); w: (C_out, C_in/groups, kd, kh, kw); out: (N, C_out, OD, OH, OW).
    Parallel over (sample, output channel): each task owns one output volume,
    and padded taps are skipped rather than materialised.
    """
    cdef idx_t N = x.shape[0], Cin = x.shape[1], D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = w.shape[0], Cg = w.shape[1], kd = w.shape[2], kh = w.shape[3], kw = w.shape[4]
    cdef idx_t OD = out.shape[2], OH = out.shape[3], OW = out.shape[4]
    cdef idx_t sd = stride[0], sh = stride[1], sw = stride[2]
    cdef idx_t dd = dilation[0], dh = dilation[1], dw = dilation[2]
    cdef idx_t pd = pad_before[0], ph = pad_before[1], pw = pad_before[2]
    cdef idx_t Og = Cout // groups if groups > 0 else 0
    cdef idx_t u, n, o, gi, od, oh, c, a, b, e, id_, ih, j, jlo, jhi
    cdef real_t* row
    cdef const real_t* src
    cdef const real_t* wr
    cdef real_t bv, w0, w1, w2
    if N * Cout == 0 or OD * OH * OW == 0:
        return
    # The valid output columns of each horizontal tap do not depend on the row:
    # compute them once (the divisions would otherwise dominate short rows).
    lo_np = np.empty(kw, dtype=np.intp)
    hi_np = np.empty(kw, dtype=np.intp)
    cdef idx_t[::1] lo = lo_np, hi = hi_np
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
    a1_np = np.empty(kw, dtype=np.intp)
    b1_np = np.empty(kw, dtype=np.intp)
    cdef idx_t[::1] a1 = a1_np, b1 = b1_np
    for e in range(kw):
        a1[e] = jlo if jlo < hi[e] else hi[e]
        b1[e] = jhi if jhi > lo[e] else lo[e]
    for u in prange(N * Cout, nogil=True, schedule='static', num_threads=nthreads):
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


def gather(const real_t[:, :, :, ::1] x, real_t[:, :, :, ::1] out, const long long[::1] md,
           const long long[::1] mh, const long long[::1] mw, int nthreads):
    """out[b, i, j, k] = x[b, md[i], mh[j], mw[k]], or 0 where any map entry is -1.

    With the maps of a padding mode this pads (zeros/reflect/replicate/circular);
    with ``m[i] = i // s`` it is nearest-neighbour upsampling.
    """
    cdef idx_t B = out.shape[0], D2 = out.shape[1], H2 = out.shape[2], W2 = out.shape[3]
    cdef idx_t u, bb, i, j, k, si, sj
    cdef real_t* dst
    cdef const real_t* src
    if B * D2 * H2 * W2 == 0:
        return
    for u in prange(B * D2, nogil=True, schedule='static', num_threads=nthreads):
        bb = u // D2
        i = u % D2
        si = md[i]
        for j in range(H2):
            dst = &out[bb, i, j, 0]
            sj = mh[j]
            if si < 0 or sj < 0:
                memset(dst, 0, W2 * sizeof(real_t))
                continue
            src = &x[bb, si, sj, 0]
            for k in range(W2):
                dst[k] = src[mw[k]] if mw[k] >= 0 else 0


def bilinear(const real_t[:, :, ::1] x, real_t[:, :, ::1] out, const long long[::1] h0,
             const long long[::1] h1, const real_t[::1] hl, const long long[::1] w0,
             const long long[::1] w1, const real_t[::1] wl, int nthreads):
    """Bilinear resampling of planes: x (B, H, W) -> out (B, H2, W2).

    Row i reads source rows h0[i], h1[i] with weight hl[i] on h1 (and 1 - hl[i] on
    h0); likewise for columns.
    """
    cdef idx_t B = out.shape[0], H2 = out.shape[1], W2 = out.shape[2]
    cdef idx_t u, bb, i, k
    cdef real_t a1, a0, c1, c0
    cdef const real_t* r0
    cdef const real_t* r1
    cdef real_t* dst
    if B * H2 * W2 == 0:
        return
    for u in prange(B * H2, nogil=True, schedule='static', num_threads=nthreads):
        bb = u // H2
        i = u % H2
        a1 = hl[i]
        a0 = 1 - a1
        r0 = &x[bb, h0[i], 0]
        r1 = &x[bb, h1[i], 0]
        dst = &out[bb, i, 0]
        for k in range(W2):
            c1 = wl[k]
            c0 = 1 - c1
            dst[k] = a0 * (c0 * r0[w0[k]] + c1 * r0[w1[k]]) + a1 * (c0 * r1[w0[k]] + c1 * r1[w1[k]])


def channel_shuffle(const real_t[:, :, ::1] x, real_t[:, :, ::1] out, idx_t groups, int nthreads):
    """out[n, k*groups + g] = x[n, g*(C/groups) + k]: planes (N, C, S) copied whole."""
    cdef idx_t N = x.shape[0], C = x.shape[1], S = x.shape[2]
    cdef idx_t cpg = C // groups
    cdef idx_t u, n, c2, k, gi
    if N * C * S == 0:
        return
    for u in prange(N * C, nogil=True, schedule='static', num_threads=nthreads):
        n = u // C
        c2 = u % C
        k = c2 // groups
        gi = c2 % groups
        memcpy(&out[n, c2, 0], &x[n, gi * cpg + k, 0], S * sizeof(real_t))
