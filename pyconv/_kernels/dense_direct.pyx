# Register-blocked dense direct kernels over per-thread phase planes (compute-bound):
# dense_conv (forward 'dense' and 'pointwise', transposed 'phases'), dense_weight (weight
# gradient 'dense') and the weight packing of dense_conv (pack_blocks).  OBW output
# channels per register block; C micro-kernels: dense_kernels.h.  dense_oc (forward
# 'dense_oc'): vectors along the output channels over per-unit padded row copies; phases_oc
# (transposed 'phases_oc'): dense_oc's tiles per output phase, outputs written in place.
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

import numpy as np
cimport numpy as cnp

from pyconv._kernels._common cimport (conv_geo_t, copy_row, idx_t, real_t, next_unit, omp_get_thread_num,
                                      merge_stride2, pad_rows, pad_rows_at, part_lo, pyconv_cpu, pyconv_unstack,
                                      split_stride2_rows, strided_row,
                                      unit_fronts, valid_range)


cnp.import_array()


cdef extern from "dense_kernels.h":
    const int PYCONV_OBW
    const int PYCONV_OBW_NARROW
    void pyconv_mk_tail_f(const float* x, Py_ssize_t cstride, const Py_ssize_t* offs, Py_ssize_t ntaps,
                          Py_ssize_t Cg, const float* wb, float* out, Py_ssize_t ldo, Py_ssize_t nq,
                          int accumulate, int ob) noexcept nogil
    void pyconv_mk_tail_d(const double* x, Py_ssize_t cstride, const Py_ssize_t* offs, Py_ssize_t ntaps,
                          Py_ssize_t Cg, const double* wb, double* out, Py_ssize_t ldo, Py_ssize_t nq,
                          int accumulate, int ob) noexcept nogil
    void pyconv_mk_f(const float* x, Py_ssize_t cstride, const Py_ssize_t* offs, Py_ssize_t ntaps,
                     Py_ssize_t Cg, const float* wb, float* out, Py_ssize_t ldo, int accumulate) noexcept nogil
    void pyconv_mk_d(const double* x, Py_ssize_t cstride, const Py_ssize_t* offs, Py_ssize_t ntaps,
                     Py_ssize_t Cg, const double* wb, double* out, Py_ssize_t ldo, int accumulate) noexcept nogil
    void pyconv_mk4_f(const float* x, Py_ssize_t cstride, const Py_ssize_t* offs, Py_ssize_t ntaps,
                      Py_ssize_t Cg, const float* wb, float* out, Py_ssize_t ldo, int accumulate) noexcept nogil
    void pyconv_mk4_d(const double* x, Py_ssize_t cstride, const Py_ssize_t* offs, Py_ssize_t ntaps,
                      Py_ssize_t Cg, const double* wb, double* out, Py_ssize_t ldo, int accumulate) noexcept nogil
    const int PYCONV_OC_VLF
    const int PYCONV_OC_VLD
    const int PYCONV_OC_P2
    void pyconv_oc_rowp_f(const float* x, Py_ssize_t cs, Py_ssize_t sw, Py_ssize_t xr, const Py_ssize_t* toffs,
                          Py_ssize_t ntaps, Py_ssize_t nc, const float* w, Py_ssize_t wcs,
                          float* o, Py_ssize_t os, Py_ssize_t orr, Py_ssize_t n, int v2, int rows,
                          int acc, const float* pf, Py_ssize_t pfld, Py_ssize_t pfn) noexcept nogil
    void pyconv_oc_rowp_d(const double* x, Py_ssize_t cs, Py_ssize_t sw, Py_ssize_t xr, const Py_ssize_t* toffs,
                          Py_ssize_t ntaps, Py_ssize_t nc, const double* w, Py_ssize_t wcs,
                          double* o, Py_ssize_t os, Py_ssize_t orr, Py_ssize_t n, int v2, int rows,
                          int acc, const double* pf, Py_ssize_t pfld, Py_ssize_t pfn) noexcept nogil
    const int PYCONV_TF_SLACK
    void pyconv_twf_f(const float* p, const Py_ssize_t* offs, Py_ssize_t ntaps, const float* g, const float* m,
                      Py_ssize_t n, float* acc) noexcept nogil
    void pyconv_twf_d(const double* p, const Py_ssize_t* offs, Py_ssize_t ntaps, const double* g, const double* m,
                      Py_ssize_t n, double* acc) noexcept nogil
    void pyconv_tf_f(const float* P, Py_ssize_t S, Py_ssize_t nc, const Py_ssize_t* offs, Py_ssize_t ntaps,
                     const float* w, float bias, float* out, Py_ssize_t n) noexcept nogil
    void pyconv_tf_d(const double* P, Py_ssize_t S, Py_ssize_t nc, const Py_ssize_t* offs, Py_ssize_t ntaps,
                     const double* w, double bias, double* out, Py_ssize_t n) noexcept nogil
    int pyconv_finite_f(const float* a, Py_ssize_t n) noexcept nogil
    int pyconv_finite_d(const double* a, Py_ssize_t n) noexcept nogil
    void pyconv_oc_out_f(const float* buf, Py_ssize_t B, Py_ssize_t nk, Py_ssize_t oe, float* out, Py_ssize_t ld,
                         const float* bias) noexcept nogil
    void pyconv_oc_out_d(const double* buf, Py_ssize_t B, Py_ssize_t nk, Py_ssize_t oe, double* out, Py_ssize_t ld,
                         const double* bias) noexcept nogil
    void pyconv_tpose_f(const float* s, Py_ssize_t ls, Py_ssize_t nk, Py_ssize_t nj, float* d,
                        Py_ssize_t ld) noexcept nogil
    void pyconv_tpose_d(const double* s, Py_ssize_t ls, Py_ssize_t nk, Py_ssize_t nj, double* d,
                        Py_ssize_t ld) noexcept nogil
    void pyconv_prefetch_rows(const char* p, Py_ssize_t nrows, Py_ssize_t rstride, Py_ssize_t nbytes) noexcept nogil
    void pyconv_wk4_f(const float** ap, Py_ssize_t r0, Py_ssize_t nr, Py_ssize_t OH, Py_ssize_t Hq,
                      Py_ssize_t Wq, Py_ssize_t j0, Py_ssize_t OW, const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc,
                      int mr) noexcept nogil
    void pyconv_wk2_f(const float** ap, Py_ssize_t r0, Py_ssize_t nr, Py_ssize_t OH, Py_ssize_t Hq,
                      Py_ssize_t Wq, Py_ssize_t j0, Py_ssize_t OW, const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc,
                      int mr) noexcept nogil
    void pyconv_wk1_f(const float** ap, Py_ssize_t r0, Py_ssize_t nr, Py_ssize_t OH, Py_ssize_t Hq,
                      Py_ssize_t Wq, Py_ssize_t j0, Py_ssize_t OW, const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc,
                      int mr) noexcept nogil
    void pyconv_wk4_d(const double** ap, Py_ssize_t r0, Py_ssize_t nr, Py_ssize_t OH, Py_ssize_t Hq,
                      Py_ssize_t Wq, Py_ssize_t j0, Py_ssize_t OW, const double* B, Py_ssize_t ldb, double* C, Py_ssize_t ldc,
                      int mr) noexcept nogil
    void pyconv_wk2_d(const double** ap, Py_ssize_t r0, Py_ssize_t nr, Py_ssize_t OH, Py_ssize_t Hq,
                      Py_ssize_t Wq, Py_ssize_t j0, Py_ssize_t OW, const double* B, Py_ssize_t ldb, double* C, Py_ssize_t ldc,
                      int mr) noexcept nogil
    void pyconv_wk1_d(const double** ap, Py_ssize_t r0, Py_ssize_t nr, Py_ssize_t OH, Py_ssize_t Hq,
                      Py_ssize_t Wq, Py_ssize_t j0, Py_ssize_t OW, const double* B, Py_ssize_t ldb, double* C, Py_ssize_t ldc,
                      int mr) noexcept nogil
    int PYCONV_WKP_MR, PYCONV_WKP_NO, PYCONV_VBYTES
    void pyconv_wkp_f(const float** ap, const Py_ssize_t* runs, Py_ssize_t nrun, const float** gp, float* C,
                      Py_ssize_t ldc, int mr, int no) noexcept nogil
    void pyconv_wkp_d(const double** ap, const Py_ssize_t* runs, Py_ssize_t nrun, const double** gp, double* C,
                      Py_ssize_t ldc, int mr, int no) noexcept nogil


OBW = PYCONV_OBW
OBW_NARROW = PYCONV_OBW_NARROW
#: lanes of one vector of the output-channel kernel (dense_oc) in this build variant
OC_LANES = {"float32": PYCONV_OC_VLF, "float64": PYCONV_OC_VLD}
#: positions per register tile of dense_oc (2 vectors of output channels)
OC_TILE = PYCONV_OC_P2
#: (input channel, tap) rows x output channels per register tile of the weight gradient's
#: position-vector kernel ('dense_pos'), and its vector's lanes per dtype in this build variant
POS_TILE = (PYCONV_WKP_MR, PYCONV_WKP_NO)
POS_LANES = {"float32": PYCONV_VBYTES // 4, "float64": PYCONV_VBYTES // 8}


cdef inline void mk_call(int obw, const real_t* x, idx_t cs, const idx_t* offs, idx_t ntaps, idx_t nc,
                         const real_t* wb, real_t* out, idx_t ldo, int acc) noexcept nogil:
    # the register block of ``obw`` output channels (8, or 4 for narrow groups)
    if real_t is float:
        if obw == PYCONV_OBW:
            pyconv_mk_f(x, cs, offs, ntaps, nc, wb, out, ldo, acc)
        else:
            pyconv_mk4_f(x, cs, offs, ntaps, nc, wb, out, ldo, acc)
    else:
        if obw == PYCONV_OBW:
            pyconv_mk_d(x, cs, offs, ntaps, nc, wb, out, ldo, acc)
        else:
            pyconv_mk4_d(x, cs, offs, ntaps, nc, wb, out, ldo, acc)


def aligned_rows(idx_t rows, idx_t cols, dt):
    """An uninitialised (rows, cols') array of ``dt`` whose rows start on 64-byte
    boundaries (cols' = cols rounded up to whole cache lines).  Vector loads and stores
    of a kernel then split cache lines the same way on every call: where NumPy's
    allocator happens to place a buffer otherwise changed a dense layer's time by 1.4x."""
    cdef cnp.ndarray raw
    cdef idx_t isz = np.dtype(dt).itemsize
    cdef idx_t per = 64 // isz
    cdef idx_t c = ((max(cols, 1) + per - 1) // per) * per
    raw = np.empty(rows * c + per, dtype=dt)
    # (the data address read directly: ndarray.ctypes.data took 0.9 us of a small call's 14)
    cdef size_t addr = <size_t> cnp.PyArray_DATA(raw)
    cdef idx_t skip = <idx_t> ((64 - addr % 64) % 64) // isz
    return raw[skip:skip + rows * c].reshape(rows, c)


# --------------------------------------------------------------------------- per-thread phase planes

cdef inline idx_t plane_stride(idx_t S, idx_t itemsize) noexcept nogil:
    # channel stride of a per-thread plane buffer: S rounded up to an odd number of
    # cache lines, so the rows of consecutive channels spread over the L1 sets
    cdef idx_t per = 64 // itemsize
    cdef idx_t lines = (S + per - 1) // per
    if lines % 2 == 0:
        lines = lines + 1
    return lines * per


cdef void build_planes(const real_t* xs, idx_t nch, idx_t D, idx_t H, idx_t W, real_t* dst, idx_t S,
                       const idx_t* ph, idx_t nph, idx_t Dq, idx_t Hq, idx_t Wq, idx_t sd, idx_t sh,
                       idx_t sw, idx_t pd, idx_t phh, idx_t pw, idx_t r0, idx_t r1) noexcept nogil:
    # dst[c*S + p*Dq*Hq*Wq + (z*Hq + y)*Wq + k] = x_padded[c, z*sd + rd, y*sh + rh, k*sw + rw]
    # for the nph phases (rd, rh, rw) = ph[3p:3p+3] of nch channels of one sample (zero
    # padding pd/phh/pw before; positions past the input are zeros too), plane rows
    # z*Hq + y in [r0, r1) only.  The rows of one plane slab z are built together: with
    # unit column stride by masked vector moves (``pad_rows``; a scalar loop per 34-value
    # row took 9% of the conv3d layer h at 1 thread), with column stride 2 by permutes.
    cdef idx_t c, p, z, y, ya, yb, va, vb, sz, sx0, lo, hi, rr, n, plane = Dq * Hq * Wq
    cdef idx_t vol = D * H * W, pf_lo = vol, pf_hi = 0
    cdef real_t* slab
    cdef const real_t* src
    # the input span these rows read in a channel (every phase's): the next channel's is
    # prefetched while this one is copied (a unit's rows of each channel are a short burst
    # a whole channel apart, which the hardware prefetchers do not follow)
    for p in range(nph if r1 > r0 else 0):
        z = r0 // Hq
        lo = ((z * sd + ph[3 * p] - pd) * H + (r0 - z * Hq) * sh + ph[3 * p + 1] - phh) * W
        z = (r1 - 1) // Hq
        hi = ((z * sd + ph[3 * p] - pd) * H + (r1 - 1 - z * Hq) * sh + ph[3 * p + 1] - phh + 1) * W
        pf_lo = lo if lo < pf_lo else pf_lo
        pf_hi = hi if hi > pf_hi else pf_hi
    pf_lo = 0 if pf_lo < 0 else pf_lo
    pf_hi = vol if pf_hi > vol else pf_hi
    for c in range(nch):
        if c + 1 < nch and pf_hi > pf_lo:
            pyconv_prefetch_rows(<const char*> (xs + (c + 1) * vol + pf_lo), 1, 0, (pf_hi - pf_lo) * sizeof(real_t))
        for p in range(nph):
            sx0 = ph[3 * p + 2] - pw
            valid_range(sx0, sw, Wq, W, &lo, &hi)
            rr = r0
            while rr < r1:
                # rows [ya, yb) of slab z
                z = rr // Hq
                ya = rr - z * Hq
                yb = Hq if r1 - z * Hq > Hq else r1 - z * Hq
                rr = z * Hq + yb
                slab = dst + c * S + p * plane + z * Hq * Wq
                sz = z * sd + ph[3 * p] - pd
                if sz < 0 or sz >= D:
                    memset(slab + ya * Wq, 0, (yb - ya) * Wq * sizeof(real_t))
                    continue
                # plane rows [va, vb) of them read input rows y*sh + rh - phh inside [0, H)
                valid_range(ph[3 * p + 1] - phh, sh, yb, H, &va, &vb)
                if va < ya:
                    va = ya
                if vb < va:
                    vb = va
                memset(slab + ya * Wq, 0, (va - ya) * Wq * sizeof(real_t))
                memset(slab + vb * Wq, 0, (yb - vb) * Wq * sizeof(real_t))
                if vb == va:
                    continue
                src = xs + ((c * D + sz) * H + va * sh + ph[3 * p + 1] - phh) * W
                if sw == 1:
                    # src column sx0 + k -> row column k: shift right by -sx0, or start late
                    if sx0 >= 0:
                        n = W - sx0 if sx0 < W else 0
                        pad_rows(slab + va * Wq, Wq, src + (sx0 if sx0 < W else W), sh * W, n, 0, Wq, vb - va)
                    else:
                        pad_rows(slab + va * Wq, Wq, src, sh * W, W, -sx0, Wq, vb - va)
                    continue
                for y in range(va, vb):
                    strided_row(slab + y * Wq, Wq, lo, hi, src + sx0 + lo * sw, sw)
                    src = src + sh * W


cdef void thin_planes(const real_t* xs, idx_t D, idx_t H, idx_t W, real_t* dst, const idx_t* ph, idx_t nph,
                      idx_t Dq, idx_t Hq, idx_t Wq, idx_t sd, idx_t sh, idx_t sw, idx_t pd, idx_t phh,
                      idx_t pw) noexcept nogil:
    # dst[p*Dq*Hq*Wq + (z*Hq + y)*Wq + k] = x_padded[z*sd + rd, y*sh + rh, k*sw + rw] for the
    # nph phases (rd, rh, rw) = ph[3p:3p+3] of one channel (as build_planes, for the small
    # planes of thin groups).  Column stride 2: each input row goes once into the rows of both
    # column phases of its (rd, rh) (``split_stride2_rows``; a 14-wide map's two strided copies
    # per input row and a zeroed plane took about twice as long); other strides: the planes
    # zeroed, then the rows the input meets copied.
    cdef idx_t p, q, z, y, iz, iy, lo, hi, plane = Dq * Hq * Wq
    cdef real_t* row
    cdef real_t* d0
    cdef real_t* d1
    cdef const real_t* src
    if sw == 2:
        p = 0
        while p < nph:
            # phases p..q share (rd, rh): column residues 0 and/or 1 (sorted)
            q = p + 1 if p + 1 < nph and ph[3 * p + 3] == ph[3 * p] and ph[3 * p + 4] == ph[3 * p + 1] else p
            d0 = dst + p * plane if ph[3 * p + 2] == 0 else NULL
            d1 = dst + q * plane if ph[3 * q + 2] == 1 else NULL
            # plane rows [lo, hi) read input rows y*sh + rh - phh inside [0, H)
            valid_range(ph[3 * p + 1] - phh, sh, Hq, H, &lo, &hi)
            for z in range(Dq):
                iz = z * sd + ph[3 * p] - pd
                if iz < 0 or iz >= D or hi <= lo:
                    if d0 != NULL:
                        memset(d0 + z * Hq * Wq, 0, Hq * Wq * sizeof(real_t))
                    if d1 != NULL:
                        memset(d1 + z * Hq * Wq, 0, Hq * Wq * sizeof(real_t))
                    continue
                if d0 != NULL:
                    memset(d0 + z * Hq * Wq, 0, lo * Wq * sizeof(real_t))
                    memset(d0 + (z * Hq + hi) * Wq, 0, (Hq - hi) * Wq * sizeof(real_t))
                if d1 != NULL:
                    memset(d1 + z * Hq * Wq, 0, lo * Wq * sizeof(real_t))
                    memset(d1 + (z * Hq + hi) * Wq, 0, (Hq - hi) * Wq * sizeof(real_t))
                split_stride2_rows(xs + (iz * H + lo * sh + ph[3 * p + 1] - phh) * W, sh * W, W, -pw,
                                   d0 + (z * Hq + lo) * Wq if d0 != NULL else NULL,
                                   d1 + (z * Hq + lo) * Wq if d1 != NULL else NULL, Wq, Wq, hi - lo)
            p = q + 1
        return
    memset(dst, 0, nph * plane * sizeof(real_t))
    for p in range(nph):
        # plane columns [lo, hi) read input columns k*sw + rw - pw inside [0, W)
        valid_range(ph[3 * p + 2] - pw, sw, Wq, W, &lo, &hi)
        if hi <= lo:
            continue
        for z in range(Dq):
            iz = z * sd + ph[3 * p] - pd
            if iz < 0 or iz >= D:
                continue
            for y in range(Hq):
                iy = y * sh + ph[3 * p + 1] - phh
                if iy < 0 or iy >= H:
                    continue
                row = dst + p * plane + (z * Hq + y) * Wq
                src = xs + (iz * H + iy) * W + lo * sw + ph[3 * p + 2] - pw
                if sw == 1:
                    copy_row(row + lo, src, hi - lo)
                else:
                    for iy in range(hi - lo):
                        row[lo + iy] = src[iy * sw]


cdef inline idx_t thin_plane_stride(conv_geo_t geo, idx_t nph, idx_t itemsize) noexcept nogil:
    # channel stride of thin_phase's per-thread planes (nph phase planes of geo's q-shape)
    return plane_stride(nph * geo.qd * geo.qh * geo.qw, itemsize)


cdef inline void group_planes(const real_t* xs, idx_t Cg, idx_t D, idx_t H, idx_t W, real_t* P, idx_t Sp,
                              const idx_t* ph, idx_t nph, conv_geo_t geo) noexcept nogil:
    # the phase planes of a group's Cg channels (xs: its first, D*H*W apart), Sp apart
    cdef idx_t c
    for c in range(Cg):
        thin_planes(xs + c * D * H * W, D, H, W, P + c * Sp, ph, nph, geo.qd, geo.qh, geo.qw, geo.sd, geo.sh,
                    geo.sw, geo.pd, geo.ph, geo.pw)


def thin_phase(const real_t[:, :, :, :, ::1] x, const real_t[:, :, ::1] w, const real_t[::1] bias, bint has_bias,
               real_t[:, :, :, :, ::1] out, conv_geo_t geo, const idx_t[:, ::1] in_phases, const idx_t[::1] offs,
               idx_t groups, int nthreads):
    """Thin-group (depthwise, few channels per group) strided convolution over per-thread
    phase planes (plan 'thin_phase').

    out[n, o] = bias[o] + sum over the group's input channels c and taps t of
    w[o, c, t] x_pad[n, c, ...]; x (N, C_in, D, H, W), w (C_out, C_in/groups, taps), out
    (N, C_out, OD, OH, OW).  A work unit is (sample, group): its thread splits the group's
    zero-padded input channels into their phase planes (``geo``'s q-shape, the residues
    ``in_phases`` of the strides the taps use; ``offs``: each tap's flat offset into them,
    as ``conv.plane_layout`` gives), so every tap of the strided layer reads a contiguous run
    of a plane, then for each output channel sums the taps over the whole output frame (the
    output rows ``Wq`` apart, with the columns between them computed and dropped) in
    registers, and copies the rows out.  Each position sums bias, then (channel, tap) in
    order: the bits do not depend on the thread count.  The planes hold the padding's zeros,
    so a non-finite weight meets them as in the definition.  Bounds are checked by the caller.
    """
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = x.shape[0], Cout = out.shape[1], OD = out.shape[2], OH = out.shape[3], OW = out.shape[4]
    cdef idx_t Cg = x.shape[1] // groups, Og = Cout // groups, Hq = geo.qh, Wq = geo.qw
    cdef idx_t Sp = thin_plane_stride(geo, in_phases.shape[0], sizeof(real_t))
    if N == 0 or Cout == 0 or OD * OH * OW == 0:
        return
    # frame positions through the last output
    cdef idx_t L = ((OD - 1) * Hq + OH - 1) * Wq + OW
    dt = np.float32 if real_t is float else np.float64
    # (slack past the planes and the frame: a frame ends with a whole vector)
    planes_np = aligned_rows(nthreads, Cg * Sp + PYCONV_TF_SLACK, dt)
    frame_np = aligned_rows(nthreads, L + PYCONV_TF_SLACK, dt)
    cdef real_t[:, ::1] planes = planes_np
    cdef real_t[:, ::1] frame = frame_np
    cdef idx_t u, tid, n, gi, o, co, z, y
    cdef real_t bv
    cdef real_t* P
    cdef real_t* F
    for u in prange(N * groups, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = omp_get_thread_num()
        n = u // groups
        gi = u % groups
        P = &planes[tid, 0]
        F = &frame[tid, 0]
        group_planes(&x[n, gi * Cg, 0, 0, 0], Cg, x.shape[2], x.shape[3], x.shape[4], P, Sp, &in_phases[0, 0],
                     in_phases.shape[0], geo)
        for o in range(Og):
            co = gi * Og + o
            bv = bias[co] if has_bias else 0
            if real_t is float:
                pyconv_tf_f(P, Sp, Cg, &offs[0], offs.shape[0], &w[co, 0, 0], bv, F, L)
            else:
                pyconv_tf_d(P, Sp, Cg, &offs[0], offs.shape[0], &w[co, 0, 0], bv, F, L)
            for z in range(OD):
                for y in range(OH):
                    copy_row(&out[n, co, z, y, 0], F + (z * Hq + y) * Wq, OW)


def thin_phase_weight(const real_t[:, :, :, :, ::1] x, const real_t[:, :, :, :, ::1] go, real_t[:, :, ::1] gw,
                      conv_geo_t geo, const idx_t[:, ::1] in_phases, const idx_t[::1] offs, idx_t groups,
                      int nthreads):
    """The weight gradient of a strided thin-group convolution over per-thread phase planes
    (plan 'thin_phase'): gw[o, c, t] = sum over samples and output positions of
    go[n, o, pos] x_pad[n, c, pos * stride + tap t], gw (C_out, C_in/groups, taps).  A work
    unit is a group (it owns its rows of gw: no partial sums); for each sample its thread
    builds the group's phase planes as ``thin_phase`` does and lays the group's grad_output
    out in the forward's output frame (rows ``Wq`` apart, zeros between), and adds to each
    (output channel, input channel, tap) the frame's products with the tap's run of the
    plane in vector lanes (``pyconv_twf``, eight taps at a time; the plane's values where the
    frame holds no output masked out), samples in order; each tap's lanes are added in order
    at the end: the bits do not depend on the thread count.  Bounds are checked by the
    caller.
    """
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = x.shape[0], Cout = go.shape[1], OD = go.shape[2], OH = go.shape[3], OW = go.shape[4]
    cdef idx_t Cg = x.shape[1] // groups, Og = Cout // groups, Hq = geo.qh, Wq = geo.qw
    cdef idx_t Sp = thin_plane_stride(geo, in_phases.shape[0], sizeof(real_t))
    cdef idx_t VL = PYCONV_VBYTES // sizeof(real_t), T = offs.shape[0]
    # the frame through the last output, in whole vectors
    cdef idx_t L = ((OD - 1) * Hq + OH - 1) * Wq + OW
    cdef idx_t G = (L + VL - 1) // VL * VL
    if Cout == 0 or Cg == 0:
        return
    if N == 0 or OD * OH * OW == 0:
        gw[:, :, :] = 0
        return
    dt = np.float32 if real_t is float else np.float64
    f = np.arange(G)
    mask_np = aligned_rows(1, G, dt)[0, :G]      # (aligned: read as whole vectors)
    mask_np.view(np.int32 if real_t is float else np.int64)[:] = np.where(
        (f < L) & (f % Wq < OW) & (f // Wq % Hq < OH), -1, 0)
    planes_np = aligned_rows(nthreads, Cg * Sp + PYCONV_TF_SLACK, dt)
    gbuf_np = aligned_rows(nthreads, Og * G, dt)
    acc_np = aligned_rows(nthreads, Og * Cg * T * VL, dt)
    cdef const real_t[::1] mask = mask_np
    cdef real_t[:, ::1] planes = planes_np
    cdef real_t[:, ::1] gbuf = gbuf_np
    cdef real_t[:, ::1] accs = acc_np
    cdef idx_t u, tid, n, o, c, z, y, t, l
    cdef real_t s
    cdef real_t* P
    cdef real_t* Gb
    cdef real_t* A
    for u in prange(groups, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = omp_get_thread_num()
        P = &planes[tid, 0]
        Gb = &gbuf[tid, 0]
        A = &accs[tid, 0]
        # (the frame's columns and rows between outputs stay zero)
        memset(Gb, 0, Og * G * sizeof(real_t))
        memset(A, 0, Og * Cg * T * VL * sizeof(real_t))
        for n in range(N):
            group_planes(&x[n, u * Cg, 0, 0, 0], Cg, x.shape[2], x.shape[3], x.shape[4], P, Sp, &in_phases[0, 0],
                         in_phases.shape[0], geo)
            for o in range(Og):
                for z in range(OD):
                    for y in range(OH):
                        copy_row(Gb + o * G + (z * Hq + y) * Wq, &go[n, u * Og + o, z, y, 0], OW)
            for o in range(Og):
                for c in range(Cg):
                    if real_t is float:
                        pyconv_twf_f(P + c * Sp, &offs[0], T, Gb + o * G, &mask[0], G, A + (o * Cg + c) * T * VL)
                    else:
                        pyconv_twf_d(P + c * Sp, &offs[0], T, Gb + o * G, &mask[0], G, A + (o * Cg + c) * T * VL)
        for o in range(Og):
            for c in range(Cg):
                for t in range(T):
                    s = A[((o * Cg + c) * T + t) * VL]
                    for l in range(1, VL):
                        s = s + A[((o * Cg + c) * T + t) * VL + l]
                    gw[u * Og + o, c, t] = s

cdef void padded_frame(const real_t* xs, idx_t D, idx_t H, idx_t W, real_t* dst, conv_geo_t geo) noexcept nogil:
    # dst[((z + pd) * qh + y + ph) * qw + x + pw] = xs[(z * H + y) * W + x], zeros elsewhere in
    # the qd x qh x qw frame (the input's values past it are not read)
    cdef idx_t z, zf, ya, yb, plane = geo.qh * geo.qw
    for zf in range(geo.qd):
        z = zf - geo.pd
        if z < 0 or z >= D:
            memset(dst + zf * plane, 0, plane * sizeof(real_t))
            continue
        ya = min(geo.ph, geo.qh)
        yb = min(geo.ph + H, geo.qh)
        memset(dst + zf * plane, 0, ya * geo.qw * sizeof(real_t))
        pad_rows(dst + zf * plane + ya * geo.qw, geo.qw, xs + z * H * W, W, W, geo.pw, geo.qw, yb - ya)
        memset(dst + zf * plane + yb * geo.qw, 0, (geo.qh - yb) * geo.qw * sizeof(real_t))


def thin_phase_t(const real_t[:, :, :, :, ::1] x, const real_t[:, ::1] wp, const real_t[::1] bias, bint has_bias,
                 real_t[:, :, :, :, ::1] out, conv_geo_t geo, const idx_t[:, ::1] phs, const idx_t[::1] offs,
                 idx_t groups, int nthreads):
    """Thin-group transposed convolution (the input gradient of a strided depthwise or
    thin-group layer) by output phases over a per-thread padded frame (plan 'thin_phase').

    out[n, o, m*s + r] (per dim) = bias[o] + sum over the group's input channels c and the
    taps a of phase r of w[c, o, a] x_pad[n, c, m + toff_a]: x (N, C_in, D, H, W), out
    (N, C_out, OD, OH, OW), ``geo``: the strides, the frame (qd, qh, qw) and the zero padding
    before the input in it (pd, ph, pw); phase r = (rd*sh + rh)*sw + rw takes the
    ``phs[r, 0]`` taps from ``phs[r, 1]`` on: their flat frame offsets ``offs`` and weights
    ``wp[o, cg*phs[r, 1]:]`` (cg x ntaps, :func:`pyconv._engine.conv.thin_phase_t_layout`).
    A work unit is (sample, group): its thread copies the group's channels into the zero
    frame once; per output channel each phase is a stride-1 sum over the frame in registers
    (``pyconv_tf``: every tap a contiguous run, no zeros inserted, nothing scattered), the
    frame's columns past the phase's outputs computed and dropped; the phases' rows are then
    interleaved into the output rows (stride 2 by permutes).  Each output sums bias, then
    (channel, tap) in order: the bits do not depend on the thread count.  The frame's zeros
    would meet a non-finite weight: the caller takes col2im then.  Bounds are checked by
    the caller.
    """
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = x.shape[0], Cout = out.shape[1], OD = out.shape[2], OH = out.shape[3], OW = out.shape[4]
    cdef idx_t Cg = x.shape[1] // groups, Og = Cout // groups, nph = phs.shape[0]
    cdef idx_t sd = geo.sd, sh = geo.sh, sw = geo.sw, Hq = geo.qh, Wq = geo.qw
    cdef idx_t Sp = plane_stride(geo.qd * Hq * Wq, sizeof(real_t))
    if N == 0 or Cout == 0 or OD * OH * OW == 0:
        return
    # one phase's frame: through the last output of phase 0 (the one with the most), whole
    # vectors of slack after it, 64-byte aligned
    cdef idx_t Fs = plane_stride(((((OD + sd - 1) // sd - 1) * Hq + (OH + sh - 1) // sh - 1) * Wq
                                  + (OW + sw - 1) // sw) + PYCONV_TF_SLACK, sizeof(real_t))
    dt = np.float32 if real_t is float else np.float64
    planes_np = aligned_rows(nthreads, Cg * Sp + PYCONV_TF_SLACK, dt)
    frames_np = aligned_rows(nthreads, nph * Fs, dt)
    cdef real_t[:, ::1] planes = planes_np
    cdef real_t[:, ::1] frames = frames_np
    # each phase's frame length (through its last output; 0: no outputs), worked out once
    # (a division per phase and row took half of a 7x7 -> 14x14 call)
    lens_np = np.zeros(nph, dtype=np.intp)
    cdef idx_t[::1] lens = lens_np
    cdef idx_t u, tid, n, gi, c, o, co, r, md, mh, mw, z, y, rw, j, k, zq, rd, yq, rh
    for r in range(nph):
        md = (OD - r // (sh * sw) + sd - 1) // sd
        mh = (OH - r // sw % sh + sh - 1) // sh
        mw = (OW - r % sw + sw - 1) // sw
        if md > 0 and mh > 0 and mw > 0:
            lens[r] = ((md - 1) * Hq + mh - 1) * Wq + mw
    cdef real_t bv
    cdef real_t* P
    cdef real_t* F
    cdef real_t* row
    for u in prange(N * groups, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = omp_get_thread_num()
        n = u // groups
        gi = u % groups
        P = &planes[tid, 0]
        F = &frames[tid, 0]
        for c in range(Cg):
            padded_frame(&x[n, gi * Cg + c, 0, 0, 0], x.shape[2], x.shape[3], x.shape[4], P + c * Sp, geo)
        for o in range(Og):
            co = gi * Og + o
            bv = bias[co] if has_bias else 0
            for r in range(nph):
                if lens[r] == 0:
                    continue
                # (a phase without taps, bias only, points at tap 0, which it does not read)
                j = phs[r, 1] if phs[r, 0] > 0 else 0
                if real_t is float:
                    pyconv_tf_f(P, Sp, Cg, &offs[j], phs[r, 0], &wp[co, Cg * j], bv, F + r * Fs, lens[r])
                else:
                    pyconv_tf_d(P, Sp, Cg, &offs[j], phs[r, 0], &wp[co, Cg * j], bv, F + r * Fs, lens[r])
            # output row (z, y) = (zq*sd + rd, yq*sh + rh): frame row (zq, yq) of the phases
            # (rd, rh, 0..sw-1)
            zq = 0
            rd = 0
            for z in range(OD):
                yq = 0
                rh = 0
                for y in range(OH):
                    r = (rd * sh + rh) * sw
                    k = (zq * Hq + yq) * Wq
                    row = &out[n, co, z, y, 0]
                    if sw == 1:
                        copy_row(row, F + r * Fs + k, OW)
                    elif sw == 2:
                        merge_stride2(row, F + r * Fs + k, F + (r + 1) * Fs + k, OW)
                    else:
                        for rw in range(sw):
                            for j in range((OW - rw + sw - 1) // sw):
                                row[j * sw + rw] = F[(r + rw) * Fs + k + j]
                    rh = rh + 1
                    if rh == sh:
                        rh = 0
                        yq = yq + 1
                rd = rd + 1
                if rd == sd:
                    rd = 0
                    zq = zq + 1


cdef inline idx_t frame_len(const idx_t* s, idx_t Hq, idx_t Wq) noexcept nogil:
    # frame positions of a sub-problem (its row of ``sub``: Md, Mh, Mw at 3, 4, 5), through
    # its last output
    return ((s[3] - 1) * Hq + s[4] - 1) * Wq + s[5]


cdef inline void ensure_rows(const real_t* xs, idx_t nch, idx_t D, idx_t H, idx_t W, real_t* dst, idx_t S,
                             const idx_t* ph, idx_t nph, idx_t Dq, idx_t Hq, idx_t Wq, idx_t sd, idx_t sh,
                             idx_t sw, idx_t pd, idx_t phh, idx_t pw, idx_t* lo, idx_t* hi, idx_t need_lo,
                             idx_t need_hi) noexcept nogil:
    # make plane rows [need_lo, need_hi) built, given [lo, hi) already are (lo >= hi:
    # none): a thread builds only the rows its units read, just before they are read
    # (planes beyond L2 stay cache-hot; one sample split over threads is not copied
    # whole by each).  Planes that fit in L2 are built whole at once (measured 3-4%
    # faster there: one streaming pass).
    if nch * S * <idx_t> sizeof(real_t) <= (1 << 20):
        need_lo = 0
        need_hi = Dq * Hq
    if need_lo < 0:
        need_lo = 0
    if need_hi > Dq * Hq:
        need_hi = Dq * Hq
    if need_hi <= need_lo:
        return
    if hi[0] <= lo[0]:
        build_planes(xs, nch, D, H, W, dst, S, ph, nph, Dq, Hq, Wq, sd, sh, sw, pd, phh, pw, need_lo, need_hi)
        lo[0] = need_lo
        hi[0] = need_hi
        return
    if need_lo < lo[0]:
        build_planes(xs, nch, D, H, W, dst, S, ph, nph, Dq, Hq, Wq, sd, sh, sw, pd, phh, pw, need_lo, lo[0])
        lo[0] = need_lo
    if need_hi > hi[0]:
        build_planes(xs, nch, D, H, W, dst, S, ph, nph, Dq, Hq, Wq, sd, sh, sw, pd, phh, pw, hi[0], need_hi)
        hi[0] = need_hi


def dense_conv(const real_t[:, :, :, :, ::1] x, conv_geo_t geo, const idx_t[:, ::1] in_phases,
               const real_t[::1] wflat, const idx_t[::1] offs, const idx_t[:, ::1] sub,
               const real_t[::1] bias, bint has_bias, real_t[:, :, :, :, ::1] out,
               idx_t groups, idx_t tile, idx_t chunk, idx_t cblock, bint direct_x, int obw, int nthreads):
    """Dense convolution by register-blocked direct loops over per-thread phase planes.

    x: (N, C_in, D, H, W) unpadded.  geo: phase planes qd x qh x qw, stride, padding before:
    the zero-padded input (padding pd/ph/pw before) split by the strides into the
    phases ``in_phases`` (rows of residues), each phase plane Dq x Hq x Wq; a thread
    builds one (sample, group)'s planes in its own buffer (cache-hot, no batch-sized
    workspace).  ``sub`` lists output sub-problems, one row each:
    (ntaps, offs start, wflat start, Md, Mh, Mw, rd, rh, rw, td, th, tw): sub-output
    m = (md, mh, mw) sits at frame position q = (md*Hq + mh)*Wq + mw, reads planes
    [c*S + q + offs[t]] and goes to out[n, o, md*td + rd, mh*th + rh, mw*tw + rw].
    A convolution is one sub-problem; a stride-s transposed convolution has one per
    output phase.  Weights of a sub-problem: (groups, ceil(Og/obw), C_in/groups,
    ntaps, obw) from its wflat start (zero rows past Og); ``obw`` (``OBW`` = 8, or
    ``OBW_NARROW`` = 4 for groups of at most 4 output channels) is the register block.  The caller guarantees every
    read q + offs[t] (q < frame length) lies inside the planes.
    ``direct_x``: the planes are the input itself (one phase, no padding, stride 1:
    a pointwise layer), read in place.  Within a unit's tile, positions go ``chunk``
    at a time through every block of OBW output channels (a chunk of input then serves
    all of them from cache; a chunk as long as the tile keeps one block's weights
    hot instead).  The input channels go ``cblock`` at a time through a chunk, so one
    block's weights (cblock x ntaps x OBW) stay in L1 while they serve every position
    of the chunk (the sums run in the same order: the bits do not depend on cblock).
    Blocks skip the frame rows between depth slices, and when a row's outputs fill whole
    blocks short of the frame width (32 outputs in a 34-wide frame) they start at row
    starts and skip the padding columns: the conv3d layer h (32^3) computes 1024 positions
    per depth slice instead of 1156 (1.07-1.11x faster).
    """
    cdef int mcpu = pyconv_cpu()
    cdef idx_t Dq = geo.qd, Hq = geo.qh, Wq = geo.qw
    cdef idx_t sd = geo.sd, sh = geo.sh, sw = geo.sw
    cdef idx_t pd = geo.pd, phh = geo.ph, pw = geo.pw
    cdef idx_t N = x.shape[0], Cin = x.shape[1], D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = out.shape[1]
    cdef idx_t Og = Cout // groups, Cg = Cin // groups
    cdef idx_t nph = in_phases.shape[0], nsub = sub.shape[0]
    cdef idx_t S = nph * Dq * Hq * Wq
    cdef idx_t Sp = plane_stride(S, sizeof(real_t))
    cdef idx_t nob = (Og + obw - 1) // obw
    cdef idx_t QB = 128 // sizeof(real_t)
    cdef idx_t u, own, drained, k, r, ng, n, gi, ti, q0, q1, ob, q, qq, o, oo, md, rem, mh, mw, jhi, jlo, j, tid, ldc
    cdef idx_t L, ntaps, wst, tw, T, U, t0, t1, ldp, ps, cs, c
    cdef real_t* C
    cdef real_t* P
    cdef real_t* Pc
    cdef const real_t* xs
    cdef real_t* dst
    cdef const real_t* xb
    cdef const real_t* wb
    cdef const idx_t* of
    cdef const idx_t* offs0 = &offs[0] if offs.shape[0] > 0 else NULL
    cdef const real_t* wflat0 = &wflat[0] if wflat.shape[0] > 0 else NULL
    cdef real_t bv
    cdef idx_t c0, nc
    cdef int acc
    cdef bint skip
    cdef const real_t* wbc
    cdef const real_t* Pcc
    cdef real_t* Sx
    if N * Cout == 0 or nsub == 0 or Cg == 0:
        return
    if cblock < 1:
        cblock = Cg
    if obw != PYCONV_OBW and obw != PYCONV_OBW_NARROW:
        raise ValueError(f"obw must be {PYCONV_OBW} or {PYCONV_OBW_NARROW}, got {obw}")
    # whole rows: when a row's outputs fill whole blocks short of the frame width (32 of
    # 34 columns), blocks start at row starts and skip the padding columns (a block
    # straddling two rows computes them); tiles and chunks are then whole rows (so only
    # where a row fits in the chunk the planner chose)
    cdef bint rows = not direct_x and nsub > 0 and Wq <= max(chunk, 1)
    for r in range(nsub):
        if sub[r, 3] * sub[r, 4] <= 1 or (sub[r, 5] + QB - 1) // QB * QB >= Wq:
            rows = False
    if rows:
        # as many tiles as asked for (the planner balances their count over the threads)
        L = frame_len(&sub[0, 0], Hq, Wq)
        k = (L + max(tile, 1) - 1) // max(tile, 1)
        tile = ((L + Wq - 1) // Wq + k - 1) // k * Wq
        chunk = max((min(max(chunk, 1), tile) + Wq // 2) // Wq, 1) * Wq
    else:
        tile = ((max(tile, 1) + QB - 1) // QB) * QB
        chunk = ((min(max(chunk, 1), tile) + QB - 1) // QB) * QB
    tstart_np = np.zeros(nsub + 1, dtype=np.intp)
    for r in range(nsub):
        L = frame_len(&sub[r, 0], Hq, Wq)
        tstart_np[r + 1] = tstart_np[r] + ((L + tile - 1) // tile if sub[r, 3] * sub[r, 4] * sub[r, 5] > 0 else 0)
    cdef idx_t[::1] tstart = tstart_np
    T = tstart[nsub]
    U = N * groups * T
    if U == 0:
        return
    dt = np.float32 if real_t is float else np.float64
    ldc = QB + tile
    # per thread: OBW rows of sums, then a scratch block (continued sums of a shifted last block)
    work_np = aligned_rows(nthreads, PYCONV_OBW * (ldc + QB), dt)
    # direct_x: each chunk's rows are copied into the planes buffer with row stride ldp,
    # an odd number of cache lines (the input's own channel stride can map every row
    # to the same few L1 sets: 56x56 float32 = 196 lines)
    ldp = chunk + QB
    if (ldp * sizeof(real_t) // 64) % 2 == 0:
        ldp = ldp + 64 // sizeof(real_t)
    planes_np = aligned_rows(nthreads, Cg * ldp if direct_x else Cg * Sp, dt)
    last_np = np.full(nthreads, -1, dtype=np.intp)
    rows_np = np.zeros((2, nthreads), dtype=np.intp)
    cdef real_t[:, ::1] work = work_np
    cdef real_t[:, ::1] planes = planes_np
    cdef idx_t[::1] last = last_np
    cdef idx_t[::1] rlo = rows_np[0], rhi = rows_np[1]
    # largest in-plane offset of any tap (rows a tile needs past its own)
    cdef idx_t maxin = 0
    for k in range(offs.shape[0]):
        if offs[k] % (Dq * Hq * Wq) > maxin:
            maxin = offs[k] % (Dq * Hq * Wq)
    # units in contiguous parts, one per thread, each thread taking its own part's units in
    # order and then helping with what is left of the others (next_unit).  Taken one at a
    # time by whichever thread came free (dynamic), the threads alternated through a sample
    # and each built nearly all of its planes (conv3d layer h at 2 threads: forward 1.08x
    # faster this way, AMD EPYC); a static split alone leaves the call waiting on whichever core
    # the host slows (2-core Xeon VM, 2 threads: h 8.2 ms static, 6.0 dynamic)
    cdef idx_t[::1] fronts = unit_fronts(U, nthreads)
    for own in prange(nthreads, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = omp_get_thread_num()
        drained = 0
        u = next_unit(&fronts[0], U, nthreads, own, &drained)
        while u >= 0:
            ng = u // T
            k = u % T
            n = ng // groups
            gi = ng % groups
            P = &planes[tid, 0]
            r = 0
            while tstart[r + 1] <= k:
                r = r + 1
            ti = k - tstart[r]
            ntaps = sub[r, 0]
            # (pointer arithmetic: a sub-problem without taps may start one past the end)
            of = offs0 + sub[r, 1] if ntaps > 0 else offs0
            wst = sub[r, 2]
            L = frame_len(&sub[r, 0], Hq, Wq)
            t0 = ti * tile
            t1 = t0 + tile
            skip = rows or (sub[r, 3] > 1 and sub[r, 4] < Hq)
            if t1 > L:
                t1 = L
            if not direct_x:
                if last[tid] != ng:
                    rlo[tid] = 0
                    rhi[tid] = 0
                    last[tid] = ng
                # the tile reads frame positions from min(t0, L - QB) (shifted last block)
                # to below t1 + QB, each plus at most maxin within its phase plane
                ps = L - QB
                if ps > t0:
                    ps = t0
                ensure_rows(&x[n, gi * Cg, 0, 0, 0], Cg, D, H, W, P, Sp, &in_phases[0, 0], nph, Dq, Hq, Wq,
                            sd, sh, sw, pd, phh, pw, &rlo[tid], &rhi[tid], ps // Wq, (t1 + QB + maxin) // Wq + 1)
            C = &work[tid, 0] + QB
            q0 = t0
            while q0 < t1:
                q1 = q0 + chunk
                if q1 > t1:
                    q1 = t1
                Pc = P
                cs = Sp
                if direct_x:
                    # copy the chunk's rows (from ps: the shifted last block may start
                    # before q0), prefetching the next chunk's
                    ps = L - QB
                    if ps > q0:
                        ps = q0
                    if ps < 0:
                        ps = 0
                    xs = &x[n, gi * Cg, 0, 0, 0]
                    for c in range(Cg):
                        copy_row(P + c * ldp, xs + c * S + ps, q1 - ps)
                    if q1 < L:
                        jhi = L - q1
                        if jhi > chunk:
                            jhi = chunk
                        pyconv_prefetch_rows(<const char*> (xs + q1), Cg, S * sizeof(real_t), jhi * sizeof(real_t))
                    Pc = P - ps
                    cs = ldp
                for ob in range(nob):
                    wb = wflat0 + (wst + (gi * nob + ob) * Cg * ntaps * obw)
                    c0 = 0
                    while c0 < Cg:
                        nc = Cg - c0
                        if nc > cblock:
                            nc = cblock
                        acc = c0 > 0
                        wbc = wb + c0 * ntaps * obw
                        Pcc = Pc + c0 * cs
                        q = q0
                        while q < q1:
                            if skip:
                                # a block starting past its row's outputs (whole-rows mode), or
                                # in the rows between two depth slices, moves to the next row
                                mh = q // Wq
                                mw = q - mh * Wq
                                if (rows and mw >= sub[r, 5]) or mh % Hq >= sub[r, 4]:
                                    q = q + Wq - mw
                                    continue
                            qq = q
                            if q + QB > L:
                                # the last block: shift it back to end at L (recomputing a few
                                # positions) so every read stays inside the planes
                                qq = L - QB
                            if qq < 0:
                                if real_t is float:
                                    pyconv_mk_tail_f(Pcc + q, cs, of, ntaps, nc, wbc, C + (q - q0), ldc, L - q,
                                                     acc, obw)
                                else:
                                    pyconv_mk_tail_d(Pcc + q, cs, of, ntaps, nc, wbc, C + (q - q0), ldc, L - q,
                                                     acc, obw)
                            elif acc and qq < q:
                                # continuing sums: the recomputed positions [qq, q) already hold
                                # this block's channels; run in a scratch copy, keep [q, L)
                                Sx = &work[tid, 0] + PYCONV_OBW * ldc
                                for oo in range(obw):
                                    memcpy(Sx + oo * QB, C + oo * ldc + (qq - q0), QB * sizeof(real_t))
                                mk_call(obw, Pcc + qq, cs, of, ntaps, nc, wbc, Sx, QB, 1)
                                for oo in range(obw):
                                    memcpy(C + oo * ldc + (q - q0), Sx + oo * QB + (q - qq), (L - q) * sizeof(real_t))
                            else:
                                mk_call(obw, Pcc + qq, cs, of, ntaps, nc, wbc, C + (qq - q0), ldc, acc)
                            q = q + QB
                        c0 = c0 + nc
                    # the valid positions of the 8 rows go out (strided for output phases), plus
                    # bias; frame rows decoded once for the 8 rows (divisions are costly)
                    tw = sub[r, 11]
                    q = q0
                    while q < q1:
                        md = q // (Hq * Wq)
                        rem = q - md * Hq * Wq
                        mh = rem // Wq
                        mw = rem - mh * Wq
                        jhi = Wq - mw
                        if jhi > q1 - q:
                            jhi = q1 - q
                        if mh < sub[r, 4] and mw < sub[r, 5]:
                            jlo = sub[r, 5] - mw
                            if jlo > jhi:
                                jlo = jhi
                            for oo in range(obw):
                                o = ob * obw + oo
                                if o >= Og:
                                    break
                                bv = bias[gi * Og + o] if has_bias else 0
                                dst = &out[n, gi * Og + o, md * sub[r, 9] + sub[r, 6], mh * sub[r, 10] + sub[r, 7],
                                           mw * tw + sub[r, 8]]
                                if tw == 1:
                                    for j in range(jlo):
                                        dst[j] = C[oo * ldc + (q - q0) + j] + bv
                                else:
                                    for j in range(jlo):
                                        dst[j * tw] = C[oo * ldc + (q - q0) + j] + bv
                        q = q + jhi
                q0 = q1
            u = next_unit(&fronts[0], U, nthreads, own, &drained)


cdef inline bint rows_finite(const real_t* P, idx_t Cg, idx_t Sp, idx_t nph, idx_t plane, idx_t Wq, idx_t a,
                             idx_t b) noexcept nogil:
    # plane rows [a, b) of every channel and phase hold no Inf or NaN
    cdef idx_t c, p
    for c in range(Cg):
        for p in range(nph):
            if real_t is float:
                if not pyconv_finite_f(P + c * Sp + p * plane + a * Wq, (b - a) * Wq):
                    return False
            else:
                if not pyconv_finite_d(P + c * Sp + p * plane + a * Wq, (b - a) * Wq):
                    return False
    return True


cdef inline void wk_call(int nv, const real_t** ap, idx_t r0, idx_t nr, idx_t OH, idx_t Hq, idx_t Wq, idx_t j0,
                         idx_t OW, const real_t* B, idx_t ldb, real_t* C, idx_t ldc, int mr) noexcept nogil:
    if real_t is float:
        if nv == 4:
            pyconv_wk4_f(ap, r0, nr, OH, Hq, Wq, j0, OW, B, ldb, C, ldc, mr)
        elif nv == 2:
            pyconv_wk2_f(ap, r0, nr, OH, Hq, Wq, j0, OW, B, ldb, C, ldc, mr)
        else:
            pyconv_wk1_f(ap, r0, nr, OH, Hq, Wq, j0, OW, B, ldb, C, ldc, mr)
    else:
        if nv == 4:
            pyconv_wk4_d(ap, r0, nr, OH, Hq, Wq, j0, OW, B, ldb, C, ldc, mr)
        elif nv == 2:
            pyconv_wk2_d(ap, r0, nr, OH, Hq, Wq, j0, OW, B, ldb, C, ldc, mr)
        else:
            pyconv_wk1_d(ap, r0, nr, OH, Hq, Wq, j0, OW, B, ldb, C, ldc, mr)


def dense_weight(const real_t[:, :, :, :, ::1] x, conv_geo_t geo, const idx_t[:, ::1] in_phases,
                 const idx_t[::1] offs, const real_t[:, :, :, :, ::1] gout, real_t[:, :, :, ::1] acc,
                 idx_t groups, int nv, idx_t rows_per_tile, idx_t col_width, int nthreads):
    """Weight-gradient partial sums by register-blocked direct loops (no im2col, no GEMM).

    acc[t, g, c*kvol + k, o] += sum_{n, p} x_pad[n, g*Cg + c, p*stride + tap_k] gout[n, g*Og + o, p]
    over the units (sample, group, tile of output rows) thread t ran; acc:
    (nthreads, groups, C_in/groups * kvol, Ogp), zeroed here (each part's by its thread, which
    then works on it), Ogp = Og rounded
    up to nv vectors (the extra columns get zeros).  Input planes as in
    ``dense_conv`` (per-thread, rebuilt when the unit's sample or group changes); the
    unit's grad_output rows are packed position-major (Ogp values per position) so
    the micro-kernel loads whole vectors of output channels.  A unit covers
    ``rows_per_tile`` output rows, or (long rows: ``col_width < OW``, one row per
    unit) ``col_width`` columns of one row.
    """
    cdef int mcpu = pyconv_cpu()
    cdef idx_t Dq = geo.qd, Hq = geo.qh, Wq = geo.qw
    cdef idx_t sd = geo.sd, sh = geo.sh, sw = geo.sw
    cdef idx_t pd = geo.pd, phh = geo.ph, pw = geo.pw
    cdef idx_t N = x.shape[0], Cin = x.shape[1], D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = gout.shape[1], OD = gout.shape[2], OH = gout.shape[3], OW = gout.shape[4]
    cdef idx_t Og = Cout // groups, Cg = Cin // groups
    cdef idx_t kvol = offs.shape[0], Kc = acc.shape[2], Ogp = acc.shape[3]
    cdef idx_t nph = in_phases.shape[0]
    cdef idx_t S = nph * Dq * Hq * Wq
    cdef idx_t Sp = plane_stride(S, sizeof(real_t))
    cdef idx_t R = OD * OH
    cdef idx_t VL = 64 // sizeof(real_t)
    cdef idx_t MR = 6 if nv == 4 else (PYCONV_WKP_MR if nv == 0 else 8)
    cdef idx_t NB = nv * VL
    # nv == 0 ('dense_pos'): vectors along the positions, VN lanes of this build, over runs
    # of frame positions; each channel's packed grad_output bst values apart
    cdef idx_t VN = PYCONV_VBYTES // sizeof(real_t), NO = PYCONV_WKP_NO, cwp = 0, bst = 0, no, nrun, k, q, ln
    cdef idx_t plane = Dq * Hq * Wq
    cdef bint frame
    cdef const real_t** gp
    cdef idx_t* rn
    cdef idx_t ntile, U, u, part, ng, n, gi, ti, r0, r1, nr, tid, i, j, o, rb, m, row, ob, od, oh, mr, ncol, j0, cw
    cdef real_t* P
    cdef real_t* Bt
    cdef real_t* dst
    cdef const real_t* src
    cdef const real_t** ap
    if R == 0 or OW == 0 or Kc == 0 or Og == 0 or N == 0:
        if acc.shape[0] * acc.shape[1] * Kc * Ogp:
            acc[:, :, :, :] = 0
        return
    rows_per_tile = max(1, min(rows_per_tile, R))
    col_width = max(1, min(col_width, OW))
    if col_width < OW:
        rows_per_tile = 1
    ncol = (OW + col_width - 1) // col_width
    ntile = (R + rows_per_tile - 1) // rows_per_tile * ncol
    U = N * groups * ntile
    dt = np.float32 if real_t is float else np.float64
    cdef int nparts = <int>acc.shape[0]
    if nv == 0:
        cwp = (col_width + VN - 1) // VN * VN
        # a unit's runs: one per row (cwp each) or one per depth slice (rows Wq apart,
        # each run padded to whole vectors)
        bst = (rows_per_tile * (max(Wq, cwp) + VN) + VN - 1) // VN * VN
        if Ogp != Og * VL:
            raise ValueError(f"dense_weight: acc's last dim {Ogp} is not {Og} output channels x {VL} lanes")
    # 64-byte aligned rows: the packed grad_output vectors are then whole cache lines (the
    # position kernel's last vector of a run reads up to VN values past the planes: masked)
    planes_np = aligned_rows(nparts, max(1, Cg * Sp) + VN, dt)
    bt_np = aligned_rows(nparts, Og * bst if nv == 0 else rows_per_tile * col_width * Ogp, dt)
    ap_np = np.empty((nparts, 16), dtype=np.uintp)
    last_np = np.full(nparts, -1, dtype=np.intp)
    # built plane rows [rlo, rhi) of each part's (sample, group); 'dense_pos': rows [flo,
    # fhi) of them checked for Inf/NaN, fbad when one was found
    rows_np = np.zeros((5, nparts), dtype=np.intp)
    runs_np = np.empty((nparts, 3 * rows_per_tile if nv == 0 else 1), dtype=np.intp)
    cdef real_t[:, ::1] planes = planes_np
    cdef real_t[:, ::1] bt = bt_np
    cdef size_t[:, ::1] apb = ap_np
    cdef idx_t[::1] last = last_np
    cdef idx_t[::1] rlo = rows_np[0], rhi = rows_np[1], flo = rows_np[2], fhi = rows_np[3], fbad = rows_np[4]
    cdef idx_t[:, ::1] runs = runs_np
    cdef idx_t maxin = 0
    for u in range(kvol):
        if offs[u] % (Dq * Hq * Wq) > maxin:
            maxin = offs[u] % (Dq * Hq * Wq)
    # parts, not threads, own the partial sums (acc[part]): the split is fixed by
    # nparts, so the sums do not depend on the team size the machine's load allows
    for part in prange(nparts, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = part
        memset(&acc[part, 0, 0, 0], 0, groups * Kc * Ogp * sizeof(real_t))
        for u in range(part_lo(U, nparts, part), part_lo(U, nparts, part + 1)):
            ng = u // ntile
            ti = u % ntile
            n = ng // groups
            gi = ng % groups
            P = &planes[tid, 0]
            r0 = (ti // ncol) * rows_per_tile
            r1 = r0 + rows_per_tile
            if r1 > R:
                r1 = R
            nr = r1 - r0
            j0 = (ti % ncol) * col_width
            cw = OW - j0
            if cw > col_width:
                cw = col_width
            if last[tid] != ng:
                rlo[tid] = 0
                rhi[tid] = 0
                flo[tid] = 0
                fhi[tid] = 0
                fbad[tid] = 0
                last[tid] = ng
            # frame positions of the unit: rows r0..r1-1, columns j0..j0+cw-1 (+ tap offsets)
            od = r0 // OH
            oh = r0 - od * OH
            i = (od * Hq + oh) * Wq + j0
            od = (r1 - 1) // OH
            oh = (r1 - 1) - od * OH
            j = (od * Hq + oh) * Wq + j0 + cw
            ensure_rows(&x[n, gi * Cg, 0, 0, 0], Cg, D, H, W, P, Sp, &in_phases[0, 0], nph, Dq, Hq, Wq,
                        sd, sh, sw, pd, phh, pw, &rlo[tid], &rhi[tid], i // Wq, (j + maxin) // Wq + 1)
            # pack the tile's grad_output (Bt), then run the register tiles over it
            Bt = &bt[tid, 0]
            src = &gout[n, gi * Og, 0, 0, 0]
            ap = <const real_t**> &apb[tid, 0]
            if nv == 0:
                # the plane rows built since the last check: any Inf/NaN keeps this (sample,
                # group) on runs of one row (whose last vector masks the positions past the row)
                if fhi[tid] <= flo[tid]:
                    fbad[tid] = not rows_finite(P, Cg, Sp, nph, plane, Wq, rlo[tid], rhi[tid])
                else:
                    if rlo[tid] < flo[tid] and not rows_finite(P, Cg, Sp, nph, plane, Wq, rlo[tid], flo[tid]):
                        fbad[tid] = 1
                    if rhi[tid] > fhi[tid] and not rows_finite(P, Cg, Sp, nph, plane, Wq, fhi[tid], rhi[tid]):
                        fbad[tid] = 1
                flo[tid] = rlo[tid]
                fhi[tid] = rhi[tid]
                frame = fbad[tid] == 0
                # runs of frame positions and the grad_output they meet, per channel from
                # Bt + o*bst: a depth slice's rows Wq apart with zeros between them (frame),
                # or each row padded with zeros to cwp
                rn = &runs[tid, 0]
                nrun = 0
                q = 0
                i = 0
                while i < nr:
                    od = (r0 + i) // OH
                    oh = (r0 + i) - od * OH
                    k = OH - oh if frame else 1
                    if k > nr - i:
                        k = nr - i
                    ln = (k - 1) * Wq + cw
                    rn[3 * nrun] = (od * Hq + oh) * Wq + j0
                    rn[3 * nrun + 1] = ln
                    rn[3 * nrun + 2] = q
                    for o in range(Og):
                        dst = Bt + o * bst + q
                        for m in range(k):
                            memcpy(dst + m * Wq, src + o * R * OW + (od * OH + oh + m) * OW + j0, cw * sizeof(real_t))
                            if m + 1 < k:
                                memset(dst + m * Wq + cw, 0, (Wq - cw) * sizeof(real_t))
                        memset(dst + ln, 0, ((ln + VN - 1) // VN * VN - ln) * sizeof(real_t))
                    q = q + (ln + VN - 1) // VN * VN
                    nrun = nrun + 1
                    i = i + k
                gp = <const real_t**> &apb[tid, 8]
            else:
                # position-major: Bt[(i*cw + j)*Ogp + o], a row at a time through register
                # transposes (positions outer: the Og source rows advance together, the packed
                # rows are written once, contiguously)
                for i in range(nr):
                    od = (r0 + i) // OH
                    oh = (r0 + i) - od * OH
                    rb = (od * OH + oh) * OW + j0
                    if real_t is float:
                        pyconv_tpose_f(src + rb, R * OW, Og, cw, Bt + i * cw * Ogp, Ogp)
                    else:
                        pyconv_tpose_d(src + rb, R * OW, Og, cw, Bt + i * cw * Ogp, Ogp)
                    if Og < Ogp:
                        for j in range(cw):
                            dst = Bt + (i * cw + j) * Ogp
                            for o in range(Og, Ogp):
                                dst[o] = 0
            rb = 0
            while rb < Kc:
                mr = Kc - rb
                if mr > MR:
                    mr = MR
                for m in range(MR):
                    # rows past Kc repeat the last one (computed, not stored)
                    row = rb + m if m < mr else rb + mr - 1
                    ap[m] = P + (row // kvol) * Sp + offs[row % kvol]
                ob = 0
                if nv == 0:
                    while ob < Og:
                        no = Og - ob
                        if no > NO:
                            no = NO
                        for m in range(NO):
                            # channels past Og repeat the last one (computed, not stored)
                            gp[m] = Bt + (ob + m if m < no else ob + no - 1) * bst
                        if real_t is float:
                            pyconv_wkp_f(ap, rn, nrun, gp, &acc[tid, gi, rb, ob * VL], Ogp, <int>mr, <int>no)
                        else:
                            pyconv_wkp_d(ap, rn, nrun, gp, &acc[tid, gi, rb, ob * VL], Ogp, <int>mr, <int>no)
                        ob = ob + NO
                else:
                    while ob < Ogp:
                        wk_call(nv, ap, r0, nr, OH, Hq, Wq, j0, cw, Bt + ob, Ogp, &acc[tid, gi, rb, ob], Ogp, <int>mr)
                        ob = ob + NB
                rb = rb + MR


def weight_reduce(const real_t[:, :, :, ::1] acc, real_t[:, ::1] out, idx_t og, idx_t lanes, int nthreads):
    """out[g*og + o, r] = acc[0, g, r, o] + acc[1, g, r, o] + ... (the parts in order): the
    dense weight gradient's per-part sums (parts, groups, C_in/groups * kvol, Ogp >= og)
    added up and laid out as (C_out, C_in/groups * kvol), in one pass on the team.  With
    ``lanes`` > 1 ('dense_pos': Ogp = og x lanes) each channel's lanes are summed too, in
    order, part by part.  (In
    NumPy, the sum over the parts and the transposing copy took 0.64 ms of layer b's 3.1 at
    2 threads, AMD EPYC: two passes over 1.2 MB per part, on one thread.)  Each element
    adds the parts in the same order whatever the team: the bits do not depend on it."""
    cdef int mcpu = pyconv_cpu()
    cdef idx_t T = acc.shape[0], G = acc.shape[1], Kc = acc.shape[2], Ogp = acc.shape[3]
    if lanes < 1 or og * lanes > Ogp or out.shape[0] != G * og or out.shape[1] != Kc:
        raise ValueError(f"weight_reduce: acc {tuple(acc.shape)} and out {tuple(out.shape)} with og={og}, "
                         f"lanes={lanes} differ")
    if T == 0 or G * og * Kc == 0:
        if out.shape[0] * out.shape[1]:
            out[:, :] = 0
        return
    # blocks of 16 rows: the block's rows of every part stay in L1 while each output
    # channel's 16 sums are formed and stored as one line (a 16 x 16 tile transposed
    # through a per-thread buffer, the parts read along the channels, ran no faster)
    cdef idx_t RB = 16, nrb = (Kc + RB - 1) // RB
    cdef idx_t u, g, r0, r1, o, r, t, l
    cdef real_t s
    for u in prange(G * nrb, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        g = u // nrb
        r0 = (u % nrb) * RB
        r1 = r0 + RB
        if r1 > Kc:
            r1 = Kc
        for o in range(og):
            for r in range(r0, r1):
                s = acc[0, g, r, o * lanes]
                for t in range(T):
                    for l in range(1 if t == 0 else 0, lanes):
                        s = s + acc[t, g, r, o * lanes + l]
                out[g * og + o, r] = s


def pack_blocks(const real_t[:, :, ::1] w, real_t[:, :, :, ::1] out, int nthreads):
    """out[g, ob, k, oo] = w[g, ob*B + oo, k] (0 past w's rows): the weight blocks of
    ``dense_conv``, B = ``OBW`` output channels innermost.  w: (groups, Og, K); out:
    (groups, ceil(Og/B), K, B).  Returns True when no weight is an Inf or a NaN (each
    block checked while in L1: ``dense_oc`` then leaves out the taps of padding rows)."""
    cdef int mcpu = pyconv_cpu()
    cdef idx_t G = w.shape[0], Og = w.shape[1], K = w.shape[2], nob = out.shape[1], B = out.shape[3]
    cdef idx_t u, g, ob, k, oo, oe, k0, kn
    cdef real_t* dst
    if G * nob * K == 0:
        return True
    fin_np = np.empty(G * nob, dtype=np.intc)
    cdef int[::1] fin = fin_np
    for u in prange(G * nob, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        g = u // nob
        ob = u % nob
        dst = &out[g, ob, 0, 0]
        oe = Og - ob * B
        if oe > B:
            oe = B
        # the block's source rows through register transposes, read along the rows (an
        # element-wise loop ran B row streams at once: dense_oc's 256x128x3x3 in 0.046 ms
        # at 2 threads against 0.029-0.031, 512x512x3x3 0.60-1.0 against 0.23-0.42, AMD
        # EPYC, the same values; dense_conv's blocks of 8 output channels: 8-13 us against 7-11)
        # in runs of 128 columns, each checked for Inf and NaN while in L1 (a second pass
        # over 512x512x3x3 weights cost 3% of the 7x7-map layer)
        fin[u] = 1
        for k0 in range(0, K, 128):
            kn = K - k0
            if kn > 128:
                kn = 128
            if real_t is float:
                pyconv_tpose_f(&w[g, ob * B, k0], K, oe, kn, dst + k0 * B, B)
            else:
                pyconv_tpose_d(&w[g, ob * B, k0], K, oe, kn, dst + k0 * B, B)
            for k in range(k0, k0 + kn):
                for oo in range(oe, B):
                    dst[k * B + oo] = 0
            if real_t is float:
                fin[u] = fin[u] & pyconv_finite_f(dst + k0 * B, kn * B)
            else:
                fin[u] = fin[u] & pyconv_finite_d(dst + k0 * B, kn * B)
    cdef int allf = 1
    for u in range(G * nob):
        allf = allf & fin[u]
    return allf != 0


def pack_flipped(const real_t[:, :, :, ::1] w, real_t[:, :, :, ::1] out, int nthreads):
    """The blocks ``pack_blocks`` makes of an input gradient's flipped kernel, packed from
    the forward's weights in one pass: out[g, ob, c*T + t, oo] = w[g, c, ob*B + oo, T-1-t]
    (0 past Cg).  w: the forward's (groups, Og, Cg, T), T taps; out: (groups, ceil(Cg/B),
    Og*T, B) -- the flipped kernel's output channels are the forward's input channels, its
    input channels the forward's output channels, its taps reversed.  Each output channel
    reads B rows of T contiguous weights (the NumPy swap-and-flip copy and the packing of
    it took 2.3 ms of the 512->512 3x3 layer's weights at 2 threads).  Returns True when
    no weight is an Inf or a NaN."""
    cdef int mcpu = pyconv_cpu()
    cdef idx_t G = w.shape[0], Og = w.shape[1], Cg = w.shape[2], T = w.shape[3]
    cdef idx_t nob = out.shape[1], B = out.shape[3]
    cdef idx_t u, g, ob, c, t, oo, ce
    cdef real_t* d
    cdef const real_t* src
    if G * nob * Og * T == 0:
        return True
    fin_np = np.empty(G * nob, dtype=np.intc)
    cdef int[::1] fin = fin_np
    for u in prange(G * nob, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        g = u // nob
        ob = u % nob
        ce = Cg - ob * B
        if ce > B:
            ce = B
        fin[u] = 1
        for c in range(Og):
            src = &w[g, c, ob * B, 0]
            d = &out[g, ob, c * T, 0]
            for t in range(T):
                for oo in range(ce):
                    d[t * B + oo] = src[oo * T + T - 1 - t]
                for oo in range(ce, B):
                    d[t * B + oo] = 0
            if real_t is float:
                fin[u] = fin[u] & pyconv_finite_f(d, T * B)
            else:
                fin[u] = fin[u] & pyconv_finite_d(d, T * B)
    cdef int allf = 1
    for u in range(G * nob):
        allf = allf & fin[u]
    return allf != 0


# --------------------------------------------------------------------------- dense_oc

cdef struct oc_unit_t:
    # a work unit of dense_oc / phases_oc: sample, group, output depth, its output rows
    # r0..r0+nr-1 and columns q0..q0+nq-1
    idx_t n, gi, od, r0, nr, q0, nq


cdef inline oc_unit_t oc_unit(idx_t u, idx_t groups, idx_t OD, idx_t OH, idx_t OW, idx_t rows,
                              idx_t cols) noexcept nogil:
    """Unit ``u`` of (sample, group, output depth, block of ``rows`` rows, block of ``cols``
    columns), the last index fastest; the blocks at the edges are cut to the output."""
    cdef idx_t ncb = (OW + cols - 1) // cols, nrb = (OH + rows - 1) // rows
    cdef oc_unit_t t
    t.q0 = (u % ncb) * cols
    t.r0 = ((u // ncb) % nrb) * rows
    t.od = (u // (ncb * nrb)) % OD
    t.gi = (u // (ncb * nrb * OD)) % groups
    t.n = u // (ncb * nrb * OD * groups)
    t.nr = rows if t.r0 + rows <= OH else OH - t.r0
    t.nq = cols if t.q0 + cols <= OW else OW - t.q0
    return t


cdef inline void prefetch_unit_rows(const real_t* xs, idx_t c_lo, idx_t c_hi, idx_t cstr, idx_t kd, idx_t iz0,
                                    idx_t dd, idx_t D, idx_t H, idx_t W, idx_t y0, idx_t ny, idx_t x0,
                                    idx_t nx) noexcept nogil:
    """Prefetch the input rows that channels ``c_lo..c_hi-1`` of a ``dense_oc`` unit
    copy: depth taps ``iz0 + z*dd``, rows ``y0..y0+ny-1``, columns ``x0..x0+nx-1``
    (clipped to the input; ``xs``: the unit's first channel, ``cstr`` apart)."""
    cdef idx_t ylo = y0 if y0 > 0 else 0, yhi = y0 + ny if y0 + ny < H else H
    cdef idx_t xlo = x0 if x0 > 0 else 0, xhi = x0 + nx if x0 + nx < W else W
    cdef idx_t c, z, iz
    if ylo >= yhi or xlo >= xhi:
        return
    for c in range(c_lo, c_hi):
        for z in range(kd):
            iz = iz0 + z * dd
            if 0 <= iz < D:
                pyconv_prefetch_rows(<const char*> (xs + c * cstr + (iz * H + ylo) * W + xlo), yhi - ylo,
                                     W * sizeof(real_t), (xhi - xlo) * sizeof(real_t))


cdef inline void oc_rows(const real_t* x, idx_t cs, idx_t sw, idx_t xr, const idx_t* toffs, idx_t ntaps,
                         idx_t nc, const real_t* w, idx_t wcs, real_t* o, idx_t os, idx_t orr, idx_t n, int v2,
                         int rows, bint acc, const real_t* pf, idx_t pfld, idx_t pfn) noexcept nogil:
    # one row of n positions, or two (rows = 2, one vector of channels: xr apart in the input,
    # their sums orr apart), the positions' sums os apart (``pyconv_oc_rowp``)
    if real_t is float:
        pyconv_oc_rowp_f(x, cs, sw, xr, toffs, ntaps, nc, w, wcs, o, os, orr, n, v2, rows, acc, pf, pfld, pfn)
    else:
        pyconv_oc_rowp_d(x, cs, sw, xr, toffs, ntaps, nc, w, wcs, o, os, orr, n, v2, rows, acc, pf, pfld, pfn)


cdef inline bint same_runs(const idx_t* a, const idx_t* b) noexcept nogil:
    # two rows' tap lists (count, then (first tap, taps) per run) are the same
    cdef idx_t i
    if a[0] != b[0]:
        return False
    for i in range(1, 2 * a[0] + 1):
        if a[i] != b[i]:
            return False
    return True


def dense_oc(const real_t[:, :, :, :, ::1] x, conv_geo_t geo, const real_t[::1] wpk, const real_t[::1] bias,
             bint has_bias, real_t[:, :, :, :, ::1] out, idx_t groups, idx_t B, idx_t rows, idx_t cols,
             idx_t osplit, idx_t cblock, bint finite, int nthreads):
    """Dense forward convolution with vectors along the output channels (plan 'dense_oc').

    out[n, g*Og + o, z, y, k] = bias + sum_{c, taps} x_pad[n, g*Cg + c, z*sd + a*dd, y*sh + b*dh,
    k*sw + e*dw] w[g*Og + o, c, a, b, e]; x (N, C_in, D, H, W), out (N, C_out, OD, OH, OW),
    ``wpk``: the weights packed by ``pack_blocks`` with B output channels innermost (B = one
    or two vectors, ``OC_LANES``).  A work unit is (sample, group, output depth, block of
    ``rows`` output rows, block of ``cols`` columns; ``cols < OW`` only with ``rows == 1``):
    its thread copies the input rows the unit reads, zero-padded, into its own buffer
    (channel stride an odd number of cache lines), runs the register tiles over every
    B-block of output channels, ``cblock`` input channels per pass (their weights stay in
    L1), and writes the block's [position][channel] sums out transposed, plus bias.  With
    ``osplit`` > 1 each such unit is ``osplit`` units (the fastest index), each over its
    share of the B-blocks: a small batch of small maps then splits over the threads by
    output channels, each thread reading its share of the weights (a thread running two
    shares of one unit copies its rows once).  With ``finite`` (no Inf or NaN among the
    weights) an output row leaves out the taps whose depth or row falls in the padding:
    their terms are 0 * w, and the others sum in the same order (an Inf or NaN weight must
    meet the padded zeros: 0 * inf = nan, as in the definition).
    Bounds are checked by the caller.
    """
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = x.shape[0], Cin = x.shape[1], D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = out.shape[1], OD = out.shape[2], OH = out.shape[3], OW = out.shape[4]
    cdef idx_t kd = geo.kd, kh = geo.kh, kw = geo.kw, sd = geo.sd, sh = geo.sh, sw = geo.sw
    cdef idx_t dd = geo.dd, dh = geo.dh, dw = geo.dw, pd = geo.pd, phh = geo.ph, pw = geo.pw
    cdef idx_t Cg = Cin // groups, Og = Cout // groups, kvol = kd * kh * kw
    cdef idx_t VL = 64 // sizeof(real_t)
    if real_t is float:
        VL = PYCONV_OC_VLF
    else:
        VL = PYCONV_OC_VLD
    cdef int v2 = B == 2 * VL
    cdef idx_t nob = (Og + B - 1) // B
    if N == 0 or Cout == 0 or OD * OH * OW == 0:
        return
    rows = max(1, min(rows, OH))
    cols = max(1, min(cols, OW))
    if cols < OW:
        rows = 1
    cdef idx_t nrb = (OH + rows - 1) // rows, ncb = (OW + cols - 1) // cols
    # one padded input row of a unit, the rows of one depth tap, the channel stride
    cdef idx_t Wp = (cols - 1) * sw + (kw - 1) * dw + 1
    cdef idx_t Rin = (rows - 1) * sh + (kh - 1) * dh + 1
    cdef idx_t slab = Rin * Wp
    cdef idx_t per = 64 // sizeof(real_t)
    cdef idx_t lines = (kd * slab + per - 1) // per
    if lines % 2 == 0:
        lines = lines + 1
    cdef idx_t cs = lines * per
    osplit = max(1, min(osplit, nob))
    cdef idx_t U = N * groups * OD * nrb * ncb * osplit
    cdef idx_t ohw = OD * OH * OW
    dt = np.float32 if real_t is float else np.float64
    toffs_np = np.empty(kvol, dtype=np.intp)
    cdef idx_t a, b, e
    for a in range(kd):
        for b in range(kh):
            for e in range(kw):
                toffs_np[(a * kh + b) * kw + e] = a * slab + b * dh * Wp + e * dw
    cdef const idx_t[::1] toffs = toffs_np
    # rows whose depth or row taps reach into the padding (the first and last few of a
    # padded layer) run only their other taps: per depth tap that meets the input, the run of
    # row taps that does (one run when every row tap does), all its column taps.  Each thread
    # lists its unit's rows: the count of runs, then (first tap, taps) per run.  (A 5x5x5
    # kernel with padding 2 on 8^3 maps: 72% of the terms left.)
    cdef bint skip = finite and (pd > 0 or phh > 0 or (OD - 1) * sd - pd + (kd - 1) * dd >= D
                                 or (OH - 1) * sh - phh + (kh - 1) * dh >= H)
    cdef idx_t tstride = 2 * kd + 1
    tl_np = np.empty((nthreads, rows * tstride if skip else 1), dtype=np.intp)
    cdef idx_t[:, ::1] tl = tl_np
    cdef idx_t* tlr
    cdef idx_t ta, tb0, tb1, nrun, ri, ts0, tn
    xbuf_np = aligned_rows(nthreads, Cg * cs, dt)
    obuf_np = aligned_rows(nthreads, rows * cols * B, dt)
    cdef real_t[:, ::1] xbuf = xbuf_np
    cdef real_t[:, ::1] obuf = obuf_np
    cdef idx_t u, own, drained, tid, n, gi, od, r0, nr, q0, nq, rin, c, z, r, rr, iz, iy, ix0, k
    cdef idx_t ob, c0, nc, oe, step, nsteps, cps, ob0, ob1
    cdef idx_t ncblk = (Cg + cblock - 1) // cblock
    cdef oc_unit_t cur, nxt
    # per thread: the rows unit (u // osplit) its buffer holds, -1 none
    copied_np = np.full(nthreads, -1, dtype=np.intp)
    cdef idx_t[::1] copied = copied_np
    cdef real_t* xb
    cdef real_t* ob_
    cdef real_t* dst
    cdef real_t* pfo      # where a row's sums will be stored (prefetched), or NULL
    cdef const real_t* wb
    cdef const real_t* bp
    # units in contiguous parts, one per thread, then what is left of the others
    # (next_unit; see dense_conv): the next unit a thread prefetches is then, but at
    # a part's end, the one it runs next
    cdef idx_t[::1] fronts = unit_fronts(U, nthreads)
    for own in prange(nthreads, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = omp_get_thread_num()
        drained = 0
        u = next_unit(&fronts[0], U, nthreads, own, &drained)
        while u >= 0:
            xb = &xbuf[tid, 0]
            ob_ = &obuf[tid, 0]
            cur = oc_unit(u // osplit, groups, OD, OH, OW, rows, cols)
            n, gi, od, r0, nr, q0, nq = cur.n, cur.gi, cur.od, cur.r0, cur.nr, cur.q0, cur.nq
            # this unit's share of the output-channel blocks
            ob0 = (u % osplit) * nob // osplit
            ob1 = (u % osplit + 1) * nob // osplit
            # the zero-padded input rows of the unit: per channel and depth tap, rin rows
            # of the columns its positions read (kept from the thread's last unit when it
            # covered the same rows)
            rin = (nr - 1) * sh + (kh - 1) * dh + 1
            ix0 = q0 * sw - pw
            if copied[tid] != u // osplit:
                copied[tid] = u // osplit
                for c in range(Cg):
                    for z in range(kd):
                        iz = od * sd - pd + z * dd
                        dst = xb + c * cs + z * slab
                        if iz < 0 or iz >= D:
                            memset(dst, 0, rin * Wp * sizeof(real_t))
                            continue
                        pad_rows_at(dst, Wp, &x[n, gi * Cg + c, iz, 0, 0], H, W, r0 * sh - phh, rin, ix0, Wp)
            if skip:
                for r in range(nr):
                    tlr = &tl[tid, r * tstride]
                    # row taps tb0..tb1-1 meet the input rows; then the depth taps
                    tb0 = 0
                    while tb0 < kh and (r0 + r) * sh - phh + tb0 * dh < 0:
                        tb0 = tb0 + 1
                    tb1 = kh
                    while tb1 > tb0 and (r0 + r) * sh - phh + (tb1 - 1) * dh >= H:
                        tb1 = tb1 - 1
                    nrun = 0
                    for ta in range(kd):
                        iz = od * sd - pd + ta * dd
                        if iz < 0 or iz >= D or tb0 >= tb1:
                            continue
                        if nrun > 0 and tb0 == 0 and tb1 == kh and tlr[2 * nrun - 1] + tlr[2 * nrun] == ta * kh * kw:
                            tlr[2 * nrun] = tlr[2 * nrun] + kh * kw      # continues the last run
                        else:
                            tlr[2 * nrun + 1] = (ta * kh + tb0) * kw
                            tlr[2 * nrun + 2] = (tb1 - tb0) * kw
                            nrun = nrun + 1
                    tlr[0] = nrun
            # the next unit's input rows, a share of its channels per pass below: one unit's
            # rows are short runs in as many channels, more streams than the hardware
            # prefetchers follow, and its copy above would otherwise wait on each of them (u + 1
            # is this thread's next unit but at the end of its part; a next share of the same
            # rows needs none)
            nxt = oc_unit((u + 1) // osplit, groups, OD, OH, OW, rows, cols)
            nsteps = (ob1 - ob0) * ncblk
            cps = (Cg + nsteps - 1) // nsteps
            step = 0
            for ob in range(ob0, ob1):
                wb = &wpk[0] + ((gi * nob + ob) * Cg * kvol) * B
                oe = Og - ob * B
                if oe > B:
                    oe = B
                c0 = 0
                while c0 < Cg:
                    nc = Cg - c0
                    if nc > cblock:
                        nc = cblock
                    if u + 1 < U and D * H * W > 0 and (u + 1) // osplit != u // osplit:
                        prefetch_unit_rows(&x[nxt.n, nxt.gi * Cg, 0, 0, 0], step * cps, min(Cg, (step + 1) * cps),
                                           D * H * W, kd, nxt.od * sd - pd, dd, D, H, W, nxt.r0 * sh - phh,
                                           (nxt.nr - 1) * sh + (kh - 1) * dh + 1, nxt.q0 * sw - pw, Wp)
                    step = step + 1
                    # the last pass of tiles fetches the lines the transposition below stores;
                    # with one vector of output channels, two rows that run the same taps go
                    # through the tiles together (twice the sums in flight on short rows)
                    r = 0
                    while r < nr:
                        pfo = &out[n, gi * Og + ob * B, od, r0 + r, q0] if c0 + nc >= Cg else NULL
                        tlr = &tl[tid, r * tstride] if skip else NULL
                        rr = 2 if (not v2 and r + 1 < nr
                                   and (tlr == NULL or same_runs(tlr, &tl[tid, (r + 1) * tstride]))) else 1
                        if tlr == NULL or (tlr[0] == 1 and tlr[2] == kvol):
                            oc_rows(xb + c0 * cs + r * sh * Wp, cs, sw, sh * Wp, &toffs[0], kvol, nc,
                                    wb + c0 * kvol * B, kvol * B, ob_ + r * nq * B, B, nq * B, nq, v2, rr, c0 > 0,
                                    pfo, ohw, oe)
                        else:
                            # the row's runs in turn, each over the pass's channels (no run: zeros)
                            nrun = tlr[0]
                            for ri in range(nrun if nrun > 0 else 1):
                                ts0 = tlr[2 * ri + 1] if nrun > 0 else 0
                                tn = tlr[2 * ri + 2] if nrun > 0 else 0
                                oc_rows(xb + c0 * cs + r * sh * Wp, cs, sw, sh * Wp, &toffs[0] + ts0, tn, nc,
                                        wb + (c0 * kvol + ts0) * B, kvol * B, ob_ + r * nq * B, B, nq * B, nq, v2,
                                        rr, c0 > 0 or ri > 0, pfo if ri == 0 else NULL, ohw, oe)
                        r = r + rr
                    c0 = c0 + nc
                bp = &bias[gi * Og + ob * B] if has_bias else NULL
                # positions of a unit are contiguous in the output when it covers whole rows
                if nq == OW:
                    if real_t is float:
                        pyconv_oc_out_f(ob_, B, nr * nq, oe, &out[n, gi * Og + ob * B, od, r0, 0], ohw, bp)
                    else:
                        pyconv_oc_out_d(ob_, B, nr * nq, oe, &out[n, gi * Og + ob * B, od, r0, 0], ohw, bp)
                else:
                    for r in range(nr):
                        if real_t is float:
                            pyconv_oc_out_f(ob_ + r * nq * B, B, nq, oe, &out[n, gi * Og + ob * B, od, r0 + r, q0],
                                            ohw, bp)
                        else:
                            pyconv_oc_out_d(ob_ + r * nq * B, B, nq, oe, &out[n, gi * Og + ob * B, od, r0 + r, q0],
                                            ohw, bp)
            u = next_unit(&fronts[0], U, nthreads, own, &drained)


# --------------------------------------------------------------------------- phases_oc

def phases_oc(const real_t[:, :, :, :, ::1] x, conv_geo_t geo, const idx_t[:, ::1] phs, const idx_t[:, ::1] toff3,
              const real_t[::1] wpk, const real_t[::1] bias, bint has_bias, real_t[:, :, :, :, ::1] out,
              idx_t groups, idx_t B, idx_t rows, idx_t cols, idx_t ctaps, int nthreads):
    """Transposed convolution with vectors along its output channels (plan 'phases_oc').

    out[n, g*Og + o, y] = bias + sum_{c, a: y = i*s - p + a*d} x[n, g*Cg + c, i] w[g*Cg + c, o, a]
    (per dim; x (N, C_in, D, H, W), out (N, C_out, OD, OH, OW)).  Output y = m*s + r (per dim)
    is phase r: a stride-1 correlation of x, zero-padded by ``geo.pd/ph/pw`` before, with the
    taps of its class, tap (a, b, e) at padded offset ``toff3[t]`` from m (at most
    ``geo.qd/qh/qw``).  ``phs[(rd*sh + rh)*sw + rw]`` = (taps, first tap in ``toff3``, start of its
    weights in ``wpk``); a phase's weights: (groups, ceil(Og/B), C_in/groups, taps, B) with B
    output channels innermost (one or two vectors, ``OC_LANES``; zeros past Og).  A work unit
    is (sample, group, output depth, ``rows`` output rows, ``cols`` columns; rows a multiple
    of sh, cols of sw unless the whole row): its thread copies the zero-padded input rows
    every phase of the unit reads into its own buffer, runs dense_oc's register tiles over
    each phase's rows, ``ctaps`` (input channel, tap) pairs per pass (their weights stay in
    L1; a phase with fewer taps takes more channels per pass) (positions interleaved by the stride in the unit's sums: every output
    written directly, no col2im, no planes) and writes the sums out transposed, plus bias.
    Each output's sum runs over (channel, tap) in order: the bits do not depend on the
    blocking or the thread count.  Bounds are checked by the caller.
    """
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = x.shape[0], Cin = x.shape[1], D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef idx_t Cout = out.shape[1], OD = out.shape[2], OH = out.shape[3], OW = out.shape[4]
    cdef idx_t sd = geo.sd, sh = geo.sh, sw = geo.sw
    cdef idx_t pbd = geo.pd, pbh = geo.ph, pbw = geo.pw, mxd = geo.qd, mxh = geo.qh, mxw = geo.qw
    cdef idx_t Cg = Cin // groups, Og = Cout // groups
    cdef idx_t VL
    if real_t is float:
        VL = PYCONV_OC_VLF
    else:
        VL = PYCONV_OC_VLD
    cdef int v2 = B == 2 * VL
    cdef idx_t nob = (Og + B - 1) // B
    if N == 0 or Cout == 0 or OD * OH * OW == 0:
        return
    if ctaps < 1:
        ctaps = 1
    rows = max(1, min(rows, OH))
    rows = ((rows + sh - 1) // sh) * sh
    cols = max(1, min(cols, OW))
    if cols < OW:
        cols = ((cols + sw - 1) // sw) * sw
        rows = sh
    cdef idx_t nrb = (OH + rows - 1) // rows, ncb = (OW + cols - 1) // cols
    # the padded input a unit reads: (rows/sh + mxh) rows of (cols/sw + mxw) columns, per
    # depth slab (mxd + 1 of them), channels an odd number of cache lines apart
    cdef idx_t Wp = (cols + sw - 1) // sw + mxw
    cdef idx_t slab = ((rows + sh - 1) // sh + mxh) * Wp
    cdef idx_t per = 64 // sizeof(real_t)
    cdef idx_t lines = ((mxd + 1) * slab + per - 1) // per
    if lines % 2 == 0:
        lines = lines + 1
    cdef idx_t cs = lines * per
    cdef idx_t U = N * groups * OD * nrb * ncb
    cdef idx_t ohw = OD * OH * OW
    cdef idx_t ntot = toff3.shape[0]
    dt = np.float32 if real_t is float else np.float64
    toffs_np = np.empty(max(1, ntot), dtype=np.intp)
    cdef idx_t t
    for t in range(ntot):
        toffs_np[t] = toff3[t, 0] * slab + toff3[t, 1] * Wp + toff3[t, 2]
    cdef const idx_t[::1] toffs = toffs_np
    xbuf_np = aligned_rows(nthreads, Cg * cs, dt)
    obuf_np = aligned_rows(nthreads, rows * cols * B, dt)
    cdef real_t[:, ::1] xbuf = xbuf_np
    cdef real_t[:, ::1] obuf = obuf_np
    cdef idx_t u, own, drained, tid, n, gi, z, y0, y1, x0, x1, nx, md, rd, mh0, mw0, rin, wp, c, zz, r, iz, iy, ix0
    cdef oc_unit_t cur
    cdef idx_t ob, rh, rw, ph, nt, t0, nyr, nxr, c0, nc, y, oe
    cdef real_t* xb
    cdef real_t* ob_
    cdef real_t* dst
    cdef const real_t* wb
    cdef const real_t* bp
    # units in contiguous parts with help at the end, as dense_oc's
    cdef idx_t[::1] fronts = unit_fronts(U, nthreads)
    for own in prange(nthreads, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = omp_get_thread_num()
        drained = 0
        u = next_unit(&fronts[0], U, nthreads, own, &drained)
        while u >= 0:
            xb = &xbuf[tid, 0]
            ob_ = &obuf[tid, 0]
            cur = oc_unit(u, groups, OD, OH, OW, rows, cols)
            n, gi, z, y0, x0, nx = cur.n, cur.gi, cur.od, cur.r0, cur.q0, cur.nq
            y1 = y0 + cur.nr
            x1 = x0 + nx
            md = z // sd
            rd = z - md * sd
            mh0 = y0 // sh
            mw0 = x0 // sw
            # input rows and columns the unit's phases read (padded coordinates from mh0, mw0)
            rin = (y1 - 1) // sh - mh0 + 1 + mxh
            wp = (x1 - 1) // sw - mw0 + 1 + mxw
            ix0 = mw0 - pbw
            for c in range(Cg):
                for zz in range(mxd + 1):
                    iz = md + zz - pbd
                    dst = xb + c * cs + zz * slab
                    if iz < 0 or iz >= D:
                        for r in range(rin):
                            memset(dst + r * Wp, 0, wp * sizeof(real_t))
                        continue
                    pad_rows_at(dst, Wp, &x[n, gi * Cg + c, iz, 0, 0], H, W, mh0 - pbh, rin, ix0, wp)
            for ob in range(nob):
                for rh in range(sh):
                    if y1 - y0 <= rh:
                        continue
                    nyr = (y1 - y0 - rh + sh - 1) // sh
                    for rw in range(sw):
                        if nx <= rw:
                            continue
                        nxr = (nx - rw + sw - 1) // sw
                        ph = (rd * sh + rh) * sw + rw
                        nt = phs[ph, 0]
                        t0 = phs[ph, 1]
                        wb = &wpk[0] + phs[ph, 2] + ((gi * nob + ob) * Cg) * nt * B
                        # a phase without taps: one pass over no channels writes its zeros (its
                        # first tap t0 may then be one past the table: an address, never read)
                        c0 = 0
                        while True:
                            nc = Cg - c0
                            if nt > 0 and nc > ctaps // nt:
                                nc = ctaps // nt if ctaps >= nt else 1
                            if nt == 0:
                                nc = 0
                            for r in range(nyr):
                                y = y0 + rh + r * sh
                                oc_rows(xb + c0 * cs + (y // sh - mh0) * Wp, cs, 1, 0, &toffs[0] + t0, nt, nc,
                                        wb + c0 * nt * B, nt * B, ob_ + ((y - y0) * nx + rw) * B, sw * B, 0, nxr,
                                        v2, 1, c0 > 0, NULL, 0, 0)
                            c0 = c0 + nc
                            if c0 >= Cg or nc == 0:
                                break
                oe = Og - ob * B
                if oe > B:
                    oe = B
                bp = &bias[gi * Og + ob * B] if has_bias else NULL
                if nx == OW:
                    if real_t is float:
                        pyconv_oc_out_f(ob_, B, (y1 - y0) * nx, oe, &out[n, gi * Og + ob * B, z, y0, 0], ohw, bp)
                    else:
                        pyconv_oc_out_d(ob_, B, (y1 - y0) * nx, oe, &out[n, gi * Og + ob * B, z, y0, 0], ohw, bp)
                else:
                    for r in range(y1 - y0):
                        if real_t is float:
                            pyconv_oc_out_f(ob_ + r * nx * B, B, nx, oe, &out[n, gi * Og + ob * B, z, y0 + r, x0], ohw, bp)
                        else:
                            pyconv_oc_out_d(ob_ + r * nx * B, B, nx, oe, &out[n, gi * Og + ob * B, z, y0 + r, x0], ohw, bp)
            u = next_unit(&fronts[0], U, nthreads, own, &drained)


def pack_phases(const real_t[:, :, ::1] w, const idx_t[:, ::1] phs, const idx_t[::1] taps, real_t[::1] out,
                idx_t groups, idx_t B, int nthreads):
    """The weights of ``phases_oc``: out[phs[p, 2] + (((g*nob + ob)*Cg + c)*nt + t)*B + j] =
    w[g*Cg + c, ob*B + j, taps[phs[p, 1] + t]] (0 past Og), nt = phs[p, 0], for every phase p;
    w: (C_in, Og, kvol).  The caller sized ``out``."""
    cdef int mcpu = pyconv_cpu()
    cdef idx_t Cin = w.shape[0], Og = w.shape[1], kvol = w.shape[2], Cg = Cin // groups
    cdef idx_t nob = (Og + B - 1) // B, nph = phs.shape[0]
    cdef idx_t u, p, g, ob, c, t, j, jn, nt
    cdef real_t* dst
    cdef const real_t* src
    if Cin == 0 or nob == 0 or kvol == 0:
        return
    for u in prange(groups * Cg, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        g = u // Cg
        c = u - g * Cg
        for p in range(nph):
            nt = phs[p, 0]
            for ob in range(nob):
                dst = &out[0] + phs[p, 2] + ((g * nob + ob) * Cg + c) * nt * B
                jn = Og - ob * B
                if jn > B:
                    jn = B
                for t in range(nt):
                    # (pointers: the memoryview's 3-D index per element ran at 1.9 ns)
                    src = &w[u, ob * B, taps[phs[p, 1] + t]]
                    for j in range(jn):
                        dst[t * B + j] = src[j * kvol]
                    for j in range(jn, B):
                        dst[t * B + j] = 0
