# 1x1 layers (stride 1, unpadded) as per-sample matrix products, plan 'panel': the forward
# (panel_forward: positions copied a chunk at a time into contiguous stripes, register tiles
# of output channels x vectors of positions) and the weight gradient (panel_weight: tiles of
# output x input channels, vectors along the positions, rows read in place).  C
# micro-kernels: panel_kernels.h.
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

import numpy as np

from pyconv._kernels._common cimport idx_t, real_t, next_unit, omp_get_thread_num, unit_fronts, pyconv_cpu, pyconv_unstack


cdef extern from "dense_kernels.h":
    # (the dense weight kernel's register transpose, shared: grad_output rows -> [p][o])
    void pyconv_tpose_f(const float* s, Py_ssize_t ls, Py_ssize_t nk, Py_ssize_t nj, float* d,
                        Py_ssize_t ld) noexcept nogil
    void pyconv_tpose_d(const double* s, Py_ssize_t ls, Py_ssize_t nk, Py_ssize_t nj, double* d,
                        Py_ssize_t ld) noexcept nogil


cdef extern from "panel_kernels.h":
    const int PYCONV_PW_MR
    const int PYCONV_PW_NRF
    const int PYCONV_PW_NRD
    const int PYCONV_PWW_NC
    const int PYCONV_PWW_NVO
    const int PYCONV_PW_BYTES
    void pyconv_pw_mk_f(const float* a, const float* b, Py_ssize_t K, float* c, Py_ssize_t ldc,
                        const float* bias, const char* pf, Py_ssize_t pfrs, Py_ssize_t pfrows,
                        Py_ssize_t pflines) noexcept nogil
    void pyconv_pw_mk_d(const double* a, const double* b, Py_ssize_t K, double* c, Py_ssize_t ldc,
                        const double* bias, const char* pf, Py_ssize_t pfrs, Py_ssize_t pfrows,
                        Py_ssize_t pflines) noexcept nogil
    void pyconv_pw_pack_f(const float* src, Py_ssize_t ldx, Py_ssize_t Cg, Py_ssize_t pn, float* dst) noexcept nogil
    void pyconv_pw_pack_d(const double* src, Py_ssize_t ldx, Py_ssize_t Cg, Py_ssize_t pn, double* dst) noexcept nogil
    void pyconv_pww_mk_f(const float* x, Py_ssize_t ldx, int nc, const float* yt, Py_ssize_t ldt, Py_ssize_t npos,
                         float* cv) noexcept nogil
    void pyconv_pww_mk_d(const double* x, Py_ssize_t ldx, int nc, const double* yt, Py_ssize_t ldt, Py_ssize_t npos,
                         double* cv) noexcept nogil


#: output channels per register tile of panel_forward (the weight packing's block)
MR = PYCONV_PW_MR
#: positions per stripe of panel_forward, per dtype
NR = {"float32": PYCONV_PW_NRF, "float64": PYCONV_PW_NRD}
#: (input channels, vectors of output channels) per tile of panel_weight
WEIGHT_TILE = (PYCONV_PWW_NC, PYCONV_PWW_NVO)
#: lanes of one vector, per dtype
LANES = {"float32": PYCONV_PW_BYTES // 4, "float64": PYCONV_PW_BYTES // 8}


cdef inline void pw_mk(const real_t* a, const real_t* b, idx_t K, real_t* c, idx_t ldc,
                       const real_t* bias, const char* pf, idx_t pfrs, idx_t pfrows, idx_t pflines) noexcept nogil:
    if real_t is float:
        pyconv_pw_mk_f(a, b, K, c, ldc, bias, pf, pfrs, pfrows, pflines)
    else:
        pyconv_pw_mk_d(a, b, K, c, ldc, bias, pf, pfrs, pfrows, pflines)


def panel_forward(const real_t[:, :, ::1] x, const real_t[::1] wpk, const real_t[:, ::1] bias, bint has_bias,
                  real_t[:, :, ::1] out, idx_t groups, idx_t chunk, int nthreads):
    """1x1 forward: out[n, g*Og + o, p] = bias[g, o] + sum_c wpk[g, o // MR, c, o % MR] x[n, g*Cg + c, p].

    x: (N, C_in, P), out: (N, C_out, P), ``wpk``: the weights packed in blocks of ``MR``
    output channels (``conv.pack_weight_blocks``: (groups, ceil(Og/MR), Cg, MR), zeros past
    Og); ``bias``: (groups, ceil(Og/MR)*MR), zeros past Og.  A work unit is (sample, group,
    ``chunk`` positions): the chunk of every input channel is copied into stripes of ``NR``
    positions ([stripe][c][NR], zeros past the chunk), then each block of MR output channels
    runs over the stripes (its calls prefetching the next unit's rows and their own
    output lines).  Each output is one sum in input-channel order: the bits do not depend
    on the chunk or the thread count."""
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = x.shape[0], Cin = x.shape[1], P = x.shape[2], Cout = out.shape[1]
    cdef idx_t Cg = Cin // groups, Og = Cout // groups
    cdef idx_t nr = PYCONV_PW_NRF if real_t is float else PYCONV_PW_NRD
    cdef idx_t mr = PYCONV_PW_MR
    cdef idx_t nob = (Og + mr - 1) // mr
    cdef idx_t nch, U, u, own, drained, tid, n, gi, ci, p0, pn, ns, s, c, m, ob, o, ow
    cdef idx_t nxt, pfp, pfn, per_call, call, r0, r1
    cdef const char* pfsrc = NULL
    cdef const char* pfrow
    cdef real_t* buf
    cdef real_t* stripes
    cdef real_t* tmp
    cdef const real_t* src
    cdef const real_t* bp
    cdef const real_t* wb
    cdef real_t* dst
    if wpk.shape[0] < groups * nob * Cg * mr or (has_bias and (bias.shape[0] < groups or bias.shape[1] < nob * mr)):
        raise ValueError("panel_forward: packed weights or bias too short")
    if out.shape[0] != N or out.shape[2] != P or Cin != groups * Cg or Cout != groups * Og:
        raise ValueError("panel_forward: shapes do not match")
    if N * Cout * P == 0:
        return
    if Cg == 0:
        for n in range(N):
            for o in range(Cout):
                for s in range(P):
                    out[n, o, s] = bias[o // Og, o % Og] if has_bias else 0
        return
    chunk = max(nr, (chunk // nr) * nr)
    nch = (P + chunk - 1) // chunk
    U = N * groups * nch
    # per thread: the chunk's stripes, then one MR x NR tile for partial tiles (64-byte aligned)
    cdef idx_t per = 64 // sizeof(real_t)
    cdef idx_t sz = ((chunk * Cg + per - 1) // per) * per + mr * nr + per
    work_np = np.empty((max(1, nthreads), sz + per), dtype=np.float32 if real_t is float else np.float64)
    cdef real_t[:, ::1] work = work_np
    cdef size_t addr = <size_t> &work[0, 0]
    cdef idx_t skip = <idx_t> ((64 - addr % 64) % 64) // sizeof(real_t)
    cdef idx_t rowb = work_np.strides[0] // sizeof(real_t)
    if rowb % per != 0:
        raise ValueError("panel_forward: workspace rows not aligned")
    # units in contiguous parts, one per thread, then what is left of the others
    # (_common.next_unit): the next unit a thread prefetches is then, but at a part's
    # end, the one it runs next; a thread the host slows is still helped at the end
    cdef idx_t[::1] fronts = unit_fronts(U, nthreads)
    for own in prange(nthreads, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = omp_get_thread_num()
        drained = 0
        u = next_unit(&fronts[0], U, nthreads, own, &drained)
        while u >= 0:
            stripes = &work[tid, 0] + skip
            tmp = stripes + ((chunk * Cg + per - 1) // per) * per
            ci = u % nch
            gi = (u // nch) % groups
            n = u // (nch * groups)
            p0 = ci * chunk
            pn = P - p0
            if pn > chunk:
                pn = chunk
            ns = (pn + nr - 1) // nr
            # the chunk's rows into stripes (zeros after the last position)
            if real_t is float:
                pyconv_pw_pack_f(&x[n, gi * Cg, p0], P, Cg, pn, stripes)
            else:
                pyconv_pw_pack_d(&x[n, gi * Cg, p0], P, Cg, pn, stripes)
            # the next unit's rows (its chunk of Cg rows), a share of them prefetched during
            # each tile call: at one thread nothing else overlaps the pack's wait on memory
            # (u + 1 is this thread's next unit but at the end of its part)
            nxt = u + 1
            pfn = 0
            if nxt < U:
                pfp = P - (nxt % nch) * chunk
                if pfp > chunk:
                    pfp = chunk
                pfn = (pfp * <idx_t>sizeof(real_t) + 63) // 64
                pfsrc = <const char*> &x[nxt // (nch * groups), ((nxt // nch) % groups) * Cg, (nxt % nch) * chunk]
            per_call = (Cg + nob * ns - 1) // (nob * ns)
            call = 0
            for ob in range(nob):
                wb = &wpk[0] + ((gi * nob + ob) * Cg) * mr
                bp = &bias[gi, ob * mr] if has_bias else NULL
                ow = Og - ob * mr
                if ow > mr:
                    ow = mr
                for s in range(ns):
                    m = pn - s * nr
                    if m > nr:
                        m = nr
                    r0 = call * per_call
                    r1 = r0 + per_call
                    if r1 > Cg:
                        r1 = Cg
                    if r0 > r1:
                        r0 = r1
                    call = call + 1
                    pfrow = pfsrc + r0 * P * <idx_t>sizeof(real_t) if pfn else NULL
                    if m == nr and ow == mr:
                        pw_mk(wb, stripes + s * Cg * nr, Cg, &out[n, gi * Og + ob * mr, p0 + s * nr], P, bp,
                              pfrow, P * sizeof(real_t), r1 - r0, pfn)
                    else:
                        pw_mk(wb, stripes + s * Cg * nr, Cg, tmp, nr, bp, pfrow, P * sizeof(real_t), r1 - r0, pfn)
                        for o in range(ow):
                            memcpy(&out[n, gi * Og + ob * mr + o, p0 + s * nr], tmp + o * nr, m * sizeof(real_t))
            u = next_unit(&fronts[0], U, nthreads, own, &drained)


cdef inline void pww_mk(const real_t* x, idx_t ldx, int nc, const real_t* yt, idx_t ldt, idx_t npos,
                        real_t* cv) noexcept nogil:
    if real_t is float:
        pyconv_pww_mk_f(x, ldx, nc, yt, ldt, npos, cv)
    else:
        pyconv_pww_mk_d(x, ldx, nc, yt, ldt, npos, cv)


def panel_weight(const real_t[:, :, ::1] x, const real_t[:, :, ::1] gout, real_t[:, :, ::1] gw, idx_t groups,
                 idx_t chunk, idx_t parts, int nthreads):
    """1x1 weight gradient: gw[g, o, c] = sum_n sum_p gout[n, g*Og + o, p] x[n, g*Cg + c, p].

    x: (N, C_in, P), gout: (N, C_out, P), gw: (groups, Og, Cg), overwritten.  Positions go
    ``chunk`` at a time: a unit copies the chunk of its group's grad_output transposed,
    [p][o] (output channels padded to whole blocks of NVO vectors, ``WEIGHT_TILE``), then
    tiles of NC input channels x one block of outputs run over it, reading the input rows in
    place.  The (group, input-channel tile) columns are split into ``parts`` contiguous
    ranges, one per work unit, each summing its columns over every sample and position in
    the same order (no partial sums to add: the bits depend neither on ``parts``, the thread
    count nor ``chunk``)."""
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = x.shape[0], Cin = x.shape[1], P = x.shape[2], Cout = gout.shape[1]
    cdef idx_t Cg = Cin // groups, Og = Cout // groups
    cdef idx_t wc = PYCONV_PWW_NC
    cdef idx_t VL = PYCONV_PW_BYTES // sizeof(real_t)
    cdef idx_t ob = PYCONV_PWW_NVO * VL
    cdef idx_t ncs = (Cg + wc - 1) // wc, nob = (Og + ob - 1) // ob, ogp = nob * ob
    cdef idx_t tv = wc * ob
    cdef idx_t cols, part, lo, hi, n, p0, pn, u, gi, gcur, cs, b, nc, o, j
    cdef real_t* cv
    cdef real_t* yt
    if gout.shape[0] != N or gout.shape[2] != P or gw.shape[0] != groups or gw.shape[1] != Og or gw.shape[2] != Cg:
        raise ValueError("panel_weight: shapes do not match")
    if Cin != groups * Cg or Cout != groups * Og:
        raise ValueError("panel_weight: channels not divisible by groups")
    if gw.shape[0] * gw.shape[1] * gw.shape[2] == 0:
        return
    dt = np.float32 if real_t is float else np.float64
    cols = groups * ncs
    chunk = max(1, min(chunk, P))
    parts = max(1, min(parts, cols))
    sums_np = np.zeros(cols * nob * tv, dtype=dt)
    # per part: the transposed chunk of grad_output (zeros in the padding outputs stay)
    ytb_np = np.zeros((parts, chunk * ogp + 64 // sizeof(real_t)), dtype=dt)
    cdef real_t[::1] sums = sums_np
    cdef real_t[:, ::1] ytb = ytb_np
    for part in prange(parts, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        lo = part * cols // parts
        hi = (part + 1) * cols // parts
        yt = &ytb[part, 0]
        for n in range(N):
            p0 = 0
            while p0 < P:
                pn = P - p0
                if pn > chunk:
                    pn = chunk
                gcur = -1
                for u in range(lo, hi):
                    gi = u // ncs
                    cs = u % ncs
                    if gi != gcur:
                        # this group's chunk of grad_output as [p][o] (register transposes)
                        gcur = gi
                        if real_t is float:
                            pyconv_tpose_f(&gout[n, gi * Og, p0], P, Og, pn, yt, ogp)
                        else:
                            pyconv_tpose_d(&gout[n, gi * Og, p0], P, Og, pn, yt, ogp)
                    nc = Cg - cs * wc
                    if nc > wc:
                        nc = wc
                    for b in range(nob):
                        pww_mk(&x[n, gi * Cg + cs * wc, p0], P, <int> nc, yt + b * ob, ogp, pn,
                               &sums[(u * nob + b) * tv])
                p0 = p0 + pn
    for u in range(cols):
        gi = u // ncs
        cs = u % ncs
        for b in range(nob):
            for j in range(wc):
                if cs * wc + j >= Cg:
                    break
                for o in range(ob):
                    if b * ob + o >= Og:
                        break
                    gw[gi, b * ob + o, cs * wc + j] = sums[(u * nob + b) * tv + j * ob + o]
