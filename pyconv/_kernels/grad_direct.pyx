# Direct weight gradient for convolutions with few output channels per group
# (depthwise, thin groups: fewer than 8 output channels per group, unit row stride),
# the 'thin' weight-gradient algorithm of pyconv._engine.conv.  There the im2col GEMMs
# are too thin to run near peak and the column matrix (kernel-size times the input)
# costs more memory traffic than the arithmetic; this kernel pads each input channel
# once and streams its (output channel, input channel) pairs' rows instead.  Wider
# groups use the register-blocked dense_weight kernel of dense_direct.pyx ('dense'),
# strided thin groups and over-budget layers im2col + GEMM (nn_gemm.pyx, 'gemm').
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memset

from pyconv._kernels._common cimport conv_geo_t, idx_t, pad_rows_at, real_t, pyconv_cpu, pyconv_unstack


# The inner loops of the weight gradient, in C with explicit vector accumulators (GCC
# does not vectorise the equivalent Cython loop; a portable `omp simd` version is the
# fallback).  One pass over every output row of a (sample-batched) block of M = 1, 4
# or 8 output channels sharing one input channel, for up to three horizontal taps of
# one kernel row, stride 1 along the row.  Accumulators stay in vector registers; the
# lanes are summed once at the end.  All take the same arguments: grad_output rows of
# the M channels are ``gs_o`` apart, their weight gradients ``os_o`` apart.
cdef extern from "thin_weight_kernels.h":
    void pyconv_taps3_block_f(int m, const float* g0, Py_ssize_t gs_n, Py_ssize_t gs_o, const float* buf,
                              Py_ssize_t N, Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp,
                              Py_ssize_t Wp, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff,
                              Py_ssize_t xoff, Py_ssize_t dw, int ne, float* out, Py_ssize_t os_o) noexcept nogil
    void pyconv_taps3_block_d(int m, const double* g0, Py_ssize_t gs_n, Py_ssize_t gs_o, const double* buf,
                              Py_ssize_t N, Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp,
                              Py_ssize_t Wp, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff,
                              Py_ssize_t xoff, Py_ssize_t dw, int ne, double* out, Py_ssize_t os_o) noexcept nogil
    void pyconv_tw_f(int nb, int ne, const float* g0, Py_ssize_t gs_n, const float* buf, Py_ssize_t N,
                     Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp,
                     Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, Py_ssize_t dh, Py_ssize_t xoff,
                     Py_ssize_t dw, float* out, Py_ssize_t kw, const float* pfg, const float* pfx,
                     Py_ssize_t pfx_n, Py_ssize_t pfx_len, float* st, int phase) noexcept nogil
    void pyconv_tw_d(int nb, int ne, const double* g0, Py_ssize_t gs_n, const double* buf, Py_ssize_t N,
                     Py_ssize_t OD, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t Dp, Py_ssize_t Hp, Py_ssize_t Wp,
                     Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t zoff, Py_ssize_t yoff, Py_ssize_t dh, Py_ssize_t xoff,
                     Py_ssize_t dw, double* out, Py_ssize_t kw, const double* pfg, const double* pfx,
                     Py_ssize_t pfx_n, Py_ssize_t pfx_len, double* st, int phase) noexcept nogil
    double pyconv_row_sum_f(const float* r, Py_ssize_t n) noexcept nogil
    double pyconv_row_sum_d(const double* r, Py_ssize_t n) noexcept nogil
    const int PYCONV_HAVE_X8
    const int PYCONV_TW_STATE


#: elements at the head of each thread's scratch row of :func:`direct_weight` for the sums
#: its sample-by-sample sweep carries (``PYCONV_TW_STATE`` rounded up to whole 64-byte lines
#: in either dtype, so the padded channel after it stays 64-byte aligned)
cdef idx_t TW_STATE_N = (PYCONV_TW_STATE + 15) // 16 * 16
TW_STATE = TW_STATE_N


cdef void pad_channel(const real_t* xch, idx_t xs_n, real_t* buf, idx_t N, idx_t D, idx_t H, idx_t W,
                      idx_t pd, idx_t ph, idx_t pw, idx_t Dp, idx_t Hp, idx_t Wp) noexcept nogil:
    """Input channel ``xch`` (N samples ``xs_n`` apart) copied into ``buf`` with its zero
    padding explicit (Dp x Hp x Wp per sample: exactly the extent the taps read), so the
    tap loops need no bounds checks.  Each element is written once (zeroing the whole
    buffer first doubled the stores of a depthwise layer's channel); the rows that hold
    input go through ``pad_rows_at`` (masked vector moves)."""
    cdef idx_t n, z, iz
    cdef real_t* slab
    for n in range(N):
        for z in range(Dp):
            iz = z - pd
            slab = buf + (n * Dp + z) * Hp * Wp
            if iz < 0 or iz >= D:
                memset(slab, 0, Hp * Wp * sizeof(real_t))
            else:
                pad_rows_at(slab, Wp, xch + n * xs_n + iz * H * W, H, W, -ph, Hp, -pw, Wp)


cdef void block_taps(int m, const real_t* gch, idx_t gs_n, idx_t gs_o, const real_t* buf, real_t* out,
                     idx_t os_o, idx_t N, idx_t OD, idx_t OH, idx_t OW, idx_t kd, idx_t kh, idx_t kw,
                     const conv_geo_t* geo, const real_t* pfg, const real_t* pfx, idx_t pfx_n,
                     idx_t pfx_len, real_t* st, int phase) noexcept nogil:
    """All taps of ``m`` consecutive output channels (``gs_o`` apart in grad_output, ``os_o``
    apart in the weight gradient) sharing one padded input channel: out[t] = sum of go * x
    at tap t.  One channel at row stride 1: up to three kernel rows x three horizontal taps
    per pass (``pyconv_tw``; its first pass prefetches ``pfg`` / ``pfx``, the grad_output
    and input the next call reads, when not NULL).  Otherwise, for each kernel row, up to
    three horizontal taps share every load of grad_output (and, for m > 1, every input load
    feeds the m channels).  ``geo``: stride, dilation and the padded channel's extent
    (qd, qh, qw).  ``st``, ``phase``: a single pass (one channel, row stride 1, at most 3 x 3
    taps per plane) run a part of the samples at a time (``pyconv_tw``); else NULL, 3."""
    cdef idx_t sd = geo.sd, sh = geo.sh, sw = geo.sw, dd = geo.dd, dh = geo.dh, dw = geo.dw
    cdef idx_t Dp = geo.qd, Hp = geo.qh, Wp = geo.qw
    cdef real_t r0, r1, r2, gq
    cdef idx_t n, a, b, e0, ne, od, oh, j, t, ob, nb
    cdef const real_t* g
    cdef const real_t* xr
    if m == 1 and sw == 1:
        for a in range(kd):
            b = 0
            while b < kh:
                nb = kh - b if kh - b < 3 else 3
                e0 = 0
                while e0 < kw:
                    ne = kw - e0 if kw - e0 < 3 else 3
                    t = (a * kh + b) * kw + e0
                    if real_t is float:
                        pyconv_tw_f(<int>nb, <int>ne, gch, gs_n, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, a * dd,
                                    b * dh, dh, e0 * dw, dw, out + t, kw, pfg, pfx, pfx_n, pfx_len, st, phase)
                    else:
                        pyconv_tw_d(<int>nb, <int>ne, gch, gs_n, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, a * dd,
                                    b * dh, dh, e0 * dw, dw, out + t, kw, pfg, pfx, pfx_n, pfx_len, st, phase)
                    pfg = NULL
                    pfx = NULL
                    e0 = e0 + 3
                b = b + 3
        return
    for a in range(kd):
        for b in range(kh):
            e0 = 0
            while e0 < kw:
                ne = kw - e0 if kw - e0 < 3 else 3
                t = (a * kh + b) * kw + e0
                if sw == 1:
                    if real_t is float:
                        pyconv_taps3_block_f(m, gch, gs_n, gs_o, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, a * dd,
                                             b * dh, e0 * dw, dw, <int>ne, out + t, os_o)
                    else:
                        pyconv_taps3_block_d(m, gch, gs_n, gs_o, buf, N, OD, OH, OW, Dp, Hp, Wp, sd, sh, a * dd,
                                             b * dh, e0 * dw, dw, <int>ne, out + t, os_o)
                    e0 = e0 + 3
                    continue
                # strided rows: scalar, one channel at a time
                for ob in range(m):
                    r0 = 0
                    r1 = 0
                    r2 = 0
                    for n in range(N):
                        for od in range(OD):
                            for oh in range(OH):
                                g = gch + ob * gs_o + n * gs_n + (od * OH + oh) * OW
                                xr = buf + ((n * Dp + od * sd + a * dd) * Hp + oh * sh + b * dh) * Wp + e0 * dw
                                for j in range(OW):
                                    gq = g[j]
                                    r0 = r0 + gq * xr[j * sw]
                                    if ne > 1:
                                        r1 = r1 + gq * xr[j * sw + dw]
                                    if ne > 2:
                                        r2 = r2 + gq * xr[j * sw + 2 * dw]
                    out[ob * os_o + t] = r0
                    if ne > 1:
                        out[ob * os_o + t + 1] = r1
                    if ne > 2:
                        out[ob * os_o + t + 2] = r2
                e0 = e0 + 3


def direct_weight(const real_t[:, :, :, :, ::1] x, const real_t[:, :, :, :, ::1] go, real_t[:, :, :, :, ::1] gw,
                  real_t[:, ::1] ws, conv_geo_t geo, idx_t groups,
                  int nthreads):
    """gw[o, c, a, b, e] = sum over samples and output positions of
    go[n, o, od, oh, ow] * x[n, g*Cg + c, od*sd - pd + a*dd, oh*sh - ph + b*dh, ow*sw - pw + e*dw].

    x: (N, C_in, D, H, W); go: (N, C_out, OD, OH, OW); gw: (C_out, C_in/groups, kd, kh, kw);
    ws: (nthreads, TW_STATE + N*Dp*Hp*Wp) scratch, 64-byte aligned rows: the carried sums,
    then the padded channel; geo: stride, dilation, padding
    before and (qd, qh, qw) = (Dp, Hp, Wp), the extent the taps read.  Parallel over input channels: each task pads its channel
    once, then computes every weight that reads it (the group's outputs), so tasks own
    disjoint weights (no reduction across threads).  With one output channel per group and
    one pass of at most 3 x 3 taps (depthwise), the channel is padded and swept a sample at a
    time instead, its sums carried between the samples.
    """
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = x.shape[0], Cin = x.shape[1], D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = gw.shape[0], Cg = gw.shape[1], kd = gw.shape[2], kh = gw.shape[3], kw = gw.shape[4]
    cdef idx_t OD = go.shape[2], OH = go.shape[3], OW = go.shape[4]
    cdef idx_t Og = Cout // groups
    cdef idx_t xc, o, c, gi
    cdef int m
    cdef idx_t lanes = 16 if real_t is float else 8
    cdef bint use8 = PYCONV_HAVE_X8 and geo.sw == 1 and OW % lanes < lanes // 2
    cdef idx_t xs_n = Cin * D * H * W, gs_n = Cout * OD * OH * OW
    cdef real_t* buf = NULL
    cdef const real_t* pfg = NULL
    cdef const real_t* pfx = NULL
    if Cout * Cg == 0 or N == 0 or OD * OH * OW == 0:
        return
    # one output channel per group, stride 1 along the rows, a kernel of at most 3 x 3 taps
    # per plane (one pass: depthwise layers): each sample's plane is padded just before its
    # pass, so the padded copy is written and read in L1 (all samples' copies at once, 119 KB
    # for 8 x 56x56, went through L2), the lanes' sums carried from sample to sample in ``st``
    # (the same additions in the same order: the same bits).  Layer d (8x256x56x56 float32),
    # Intel Xeon, alternated in one process, three runs: 1.02-1.10x at 1 thread, 1.04-1.08x
    # at 2; float64 1.02-1.09x
    cdef bint by_sample = Og == 1 and geo.sw == 1 and kd == 1 and kh <= 3 and kw <= 3 and N > 1
    cdef real_t* st = NULL
    cdef idx_t n
    if ws.shape[0] < nthreads or ws.shape[1] < TW_STATE_N + N * geo.qd * geo.qh * geo.qw:
        raise ValueError(f"direct_weight: ws of {ws.shape[0]} x {ws.shape[1]} for {nthreads} threads of "
                         f"{TW_STATE_N} + {N} x {geo.qd} x {geo.qh} x {geo.qw} elements")
    # the carried sums and the padded rows are read and written as aligned vectors
    if <size_t>&ws[0, 0] % 64 or ws.shape[0] > 1 and <size_t>(&ws[1, 0] - &ws[0, 0]) * sizeof(real_t) % 64:
        raise ValueError("direct_weight: ws rows must start on 64-byte boundaries (dense_direct.aligned_rows)")
    with nogil, parallel(num_threads=nthreads):
        pyconv_unstack(mcpu)
        st = &ws[threadid(), 0]
        buf = st + TW_STATE_N
        # guided: each thread first takes a long contiguous run (its prefetch of the next task
        # stays its own), then shorter ones, so a core the host slows holds up only the last
        # few (depthwise layer d's weight gradient, 2 threads, alternated in one process:
        # 3.91 ms static, 3.74 guided; dynamic one by one 1.1x static in another run)
        for xc in prange(Cin, schedule='guided'):
            gi = xc // Cg
            c = xc % Cg
            # the next channel's input, and its grad_output when it starts a new group of
            # one output channel, prefetched during this channel's first pass
            pfx = &x[0, xc + 1, 0, 0, 0] if xc + 1 < Cin else NULL
            pfg = &go[0, (gi + 1) * Og, 0, 0, 0] if Og == 1 and c == Cg - 1 and xc + 1 < Cin else NULL
            if by_sample:
                # (Og == 1: output channel gi.)  Each sample's pass prefetches the next
                # sample's input and grad_output of this channel, the last one the next
                # channel's first sample: what the next pass reads.  (Each pass prefetching
                # its sample of the next channel, eight passes ahead, left the padded copy
                # waiting on memory: 28% of layer d's weight gradient at 1 thread, AMD EPYC.)
                for n in range(N):
                    pad_channel(&x[n, xc, 0, 0, 0], xs_n, buf, 1, D, H, W, geo.pd, geo.ph, geo.pw, geo.qd, geo.qh,
                                geo.qw)
                    block_taps(1, &go[n, gi, 0, 0, 0], gs_n, OD * OH * OW, buf, &gw[gi, c, 0, 0, 0],
                               Cg * kd * kh * kw, 1, OD, OH, OW, kd, kh, kw, &geo,
                               &go[n + 1, gi, 0, 0, 0] if n + 1 < N else pfg,
                               &x[n + 1, xc, 0, 0, 0] if n + 1 < N else pfx,
                               xs_n, D * H * W, st, (n == 0) | 2 * (n == N - 1))
                continue
            pad_channel(&x[0, xc, 0, 0, 0], xs_n, buf, N, D, H, W, geo.pd, geo.ph, geo.pw, geo.qd, geo.qh, geo.qw)
            o = gi * Og
            while o < gi * Og + Og:
                # blocks of eight outputs where rows hold whole vector blocks (no half
                # block), then of four, then single ones
                if use8 and o + 8 <= gi * Og + Og:
                    m = 8
                elif o + 4 <= gi * Og + Og:
                    m = 4
                else:
                    m = 1
                block_taps(m, &go[0, o, 0, 0, 0], gs_n, OD * OH * OW, buf, &gw[o, c, 0, 0, 0], Cg * kd * kh * kw,
                           N, OD, OH, OW, kd, kh, kw, &geo, pfg, pfx, xs_n, D * H * W, NULL, 3)
                pfg = NULL
                pfx = NULL
                o = o + m


def bias_sum(const real_t[:, :, ::1] go, real_t[::1] out, int nthreads):
    """out[c] = sum over samples n and positions p of go[n, c, p]: the bias gradient.

    go: (N, C, P), P >= 1; out: (C,).  Parallel over channels, each channel's rows summed by
    one thread in one fixed order (the bits do not depend on the thread count); float32
    rows in blocks of float32 lanes, the blocks' sums in double (``pyconv_row_sum``).
    Bounds are checked by the caller.
    """
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = go.shape[0], C = go.shape[1], P = go.shape[2]
    cdef idx_t c, n
    cdef double s
    if C == 0 or P == 0:
        return
    for c in prange(C, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        s = 0
        for n in range(N):
            if real_t is float:
                s = s + pyconv_row_sum_f(&go[n, c, 0], P)
            else:
                s = s + pyconv_row_sum_d(&go[n, c, 0], P)
        out[c] = <real_t>s
