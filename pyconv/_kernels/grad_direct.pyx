# Direct weight gradient of depthwise and thin-channel grouped convolutions
# (pyconv.grad).  With few channels per group the im2col GEMMs are too thin to run
# near peak; this kernel streams each (output channel, input channel) pair's rows
# instead.  Dense layers use pyconv.nn's im2col + GEMM cores.
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memset

from pyconv._kernels._common cimport real_t

ctypedef Py_ssize_t idx_t


cdef inline idx_t col_lo(idx_t off, idx_t step, idx_t n) noexcept nogil:
    # first j in [0, n] with off + j*step >= 0 (step > 0)
    cdef idx_t a = 0
    if off < 0:
        a = (-off + step - 1) // step
    return a if a < n else n


cdef inline idx_t col_hi(idx_t off, idx_t step, idx_t n, idx_t size) noexcept nogil:
    # one past the last j in [0, n) with off + j*step < size
    cdef idx_t b = 0
    if size - off > 0:
        b = (size - off + step - 1) // step
    return b if b < n else n


def thin_weight(const real_t[:, :, :, :, ::1] x, const real_t[:, :, :, :, ::1] go, real_t[:, :, :, :, ::1] gw,
                real_t[:, ::1] ws, tuple stride, tuple dilation, tuple pad_before, idx_t groups, int nthreads):
    """gw[o, c, a, b, e] = sum over samples and output positions of
    go[n, o, od, oh, ow] * x[n, g*Cg + c, od*sd - pd + a*dd, oh*sh - ph + b*dh, ow*sw - pw + e*dw].

    x: (N, C_in, D, H, W); go: (N, C_out, OD, OH, OW); gw: (C_out, C_in/groups, kd, kh, kw);
    ws: (nthreads, kd*kh*kw*OW) scratch.  Parallel over (output channel, input channel)
    pairs, each owning its weights (no reduction across threads).  Every tap keeps a
    row of partial sums that the contiguous inner loop updates element-wise (so it
    vectorises without reassociating a scalar reduction); the rows are summed once.
    """
    cdef idx_t N = x.shape[0], D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = gw.shape[0], Cg = gw.shape[1], kd = gw.shape[2], kh = gw.shape[3], kw = gw.shape[4]
    cdef idx_t OD = go.shape[2], OH = go.shape[3], OW = go.shape[4]
    cdef idx_t sd = stride[0], sh = stride[1], sw = stride[2]
    cdef idx_t dd = dilation[0], dh = dilation[1], dw = dilation[2]
    cdef idx_t pd = pad_before[0], ph = pad_before[1], pw = pad_before[2]
    cdef idx_t Og = Cout // groups
    cdef idx_t K = kd * kh * kw
    cdef idx_t u, o, c, xc, n, od, oh, a, b, e, iz, iy, j, lo, hi, t, off
    cdef real_t* acc = NULL
    cdef real_t* row
    cdef real_t s
    cdef const real_t* g
    cdef const real_t* xr
    if Cout * Cg * K == 0:
        return
    with nogil, parallel(num_threads=nthreads):
        acc = &ws[threadid(), 0]
        for u in prange(Cout * Cg, schedule='static'):
            o = u // Cg
            c = u % Cg
            xc = (o // Og) * Cg + c
            memset(acc, 0, K * OW * sizeof(real_t))
            for n in range(N):
                for od in range(OD):
                    for oh in range(OH):
                        g = &go[n, o, od, oh, 0]
                        for a in range(kd):
                            iz = od * sd - pd + a * dd
                            if iz < 0 or iz >= D:
                                continue
                            for b in range(kh):
                                iy = oh * sh - ph + b * dh
                                if iy < 0 or iy >= H:
                                    continue
                                xr = &x[n, xc, iz, iy, 0]
                                for e in range(kw):
                                    off = e * dw - pw
                                    # (values, not out-pointers: prange must see them assigned to privatise them)
                                    lo = col_lo(off, sw, OW)
                                    hi = col_hi(off, sw, OW, W)
                                    row = acc + ((a * kh + b) * kw + e) * OW
                                    if sw == 1:
                                        for j in range(lo, hi):
                                            row[j] += g[j] * xr[j + off]
                                    else:
                                        for j in range(lo, hi):
                                            row[j] += g[j] * xr[j * sw + off]
            for t in range(K):
                s = 0
                row = acc + t * OW
                for j in range(OW):
                    s = s + row[j]
                gw[o, c, t // (kh * kw), (t // kw) % kh, t % kw] = s
