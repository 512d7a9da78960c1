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


cdef enum:
    V = 16   # lanes of the register accumulator (two or four vector registers)


cdef void tap_sum(const real_t* x, const real_t* go, real_t* out, idx_t N, idx_t xs_n, idx_t gs_n,
                  idx_t D, idx_t H, idx_t W, idx_t OD, idx_t OH, idx_t OW,
                  idx_t iz0, idx_t iy0, idx_t off, idx_t sd, idx_t sh, idx_t sw) noexcept nogil:
    """One weight tap: out[0] = sum over samples and output positions of go * x at the tap's offset.

    The accumulator is a small local array the compiler keeps in vector registers
    (one per thread: this runs on the calling thread's stack), so the inner loop costs
    two loads per multiply-add; the lanes are summed once at the end.
    """
    cdef real_t acc[V]
    cdef real_t rest = 0, total = 0
    cdef idx_t q, n, od, oh, iz, iy, j, j0, jb, lo, hi, nv
    cdef const real_t* g
    cdef const real_t* xr
    for q in range(V):
        acc[q] = 0
    lo = col_lo(off, sw, OW)
    hi = col_hi(off, sw, OW, W)
    nv = (hi - lo) // V if hi > lo else 0
    for n in range(N):
        for od in range(OD):
            iz = iz0 + od * sd
            if iz < 0 or iz >= D:
                continue
            for oh in range(OH):
                iy = iy0 + oh * sh
                if iy < 0 or iy >= H:
                    continue
                g = go + n * gs_n + (od * OH + oh) * OW
                xr = x + n * xs_n + (iz * H + iy) * W + off
                if sw == 1:
                    for jb in range(nv):
                        j0 = lo + jb * V
                        for q in range(V):
                            acc[q] += g[j0 + q] * xr[j0 + q]
                    for j in range(lo + nv * V, hi):
                        rest += g[j] * xr[j]
                else:
                    for j in range(lo, hi):
                        rest += g[j] * xr[j * sw]
    for q in range(V):
        total += acc[q]
    out[0] = total + rest


def thin_weight(const real_t[:, :, :, :, ::1] x, const real_t[:, :, :, :, ::1] go, real_t[:, :, :, :, ::1] gw,
                tuple stride, tuple dilation, tuple pad_before, idx_t groups, int nthreads):
    """gw[o, c, a, b, e] = sum over samples and output positions of
    go[n, o, od, oh, ow] * x[n, g*Cg + c, od*sd - pd + a*dd, oh*sh - ph + b*dh, ow*sw - pw + e*dw].

    x: (N, C_in, D, H, W); go: (N, C_out, OD, OH, OW); gw: (C_out, C_in/groups, kd, kh, kw).
    Parallel over (output channel, input channel, tap) triples, each owning one weight
    (no reduction across threads); a task streams its two channels once per tap.
    """
    cdef idx_t N = x.shape[0], Cin = x.shape[1], D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = gw.shape[0], Cg = gw.shape[1], kd = gw.shape[2], kh = gw.shape[3], kw = gw.shape[4]
    cdef idx_t OD = go.shape[2], OH = go.shape[3], OW = go.shape[4]
    cdef idx_t sd = stride[0], sh = stride[1], sw = stride[2]
    cdef idx_t dd = dilation[0], dh = dilation[1], dw = dilation[2]
    cdef idx_t pd = pad_before[0], ph = pad_before[1], pw = pad_before[2]
    cdef idx_t Og = Cout // groups
    cdef idx_t K = kd * kh * kw
    cdef idx_t u, o, c, xc, t, a, b, e
    cdef idx_t xs_n = Cin * D * H * W, gs_n = Cout * OD * OH * OW
    if Cout * Cg * K == 0 or N == 0:
        return
    for u in prange(Cout * Cg * K, nogil=True, schedule='static', num_threads=nthreads):
        o = u // (Cg * K)
        c = (u // K) % Cg
        t = u % K
        a = t // (kh * kw)
        b = (t // kw) % kh
        e = t % kw
        xc = (o // Og) * Cg + c
        tap_sum(&x[0, xc, 0, 0, 0], &go[0, o, 0, 0, 0], &gw[o, c, a, b, e], N, xs_n, gs_n, D, H, W, OD, OH, OW,
                a * dd - pd, b * dh - ph, e * dw - pw, sd, sh, sw)
