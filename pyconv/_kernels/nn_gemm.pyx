# Dense deep-learning convolutions as matrix products: im2col / col2im + GEMM.
#
# Everything is 3-D (1-D and 2-D callers add size-1 axes).  The "image" side of
# a geometry is the zero-padded volume a convolution reads (or a transposed
# convolution writes); the "column" side is the grid of output positions of the
# convolution.  im2col gathers image -> columns, col2im scatter-adds columns ->
# image; they are adjoint, which is why one geometry serves the forward
# convolution, the transposed convolution, unfold/fold and the weight gradient.
#
# Threading (measured, see the note above `_BLAS_THREADS` in nn.py): OpenMP runs over independent
# work units (sample x group x tile); each thread builds its own im2col tile and
# calls a single-threaded GEMM.  The caller limits BLAS to one thread around the
# call so OpenMP threads never each fan out into BLAS threads.
from cython.parallel cimport prange, parallel
from libc.string cimport memset, memcpy
from scipy.linalg.cython_blas cimport sgemm, dgemm

cimport numpy as cnp
import numpy as np

from pyconv._kernels._common cimport (add_stride2, conv_geo_t, idx_t, real_t, omp_get_thread_num, part_lo,
                                      pyconv_cpu, pyconv_unstack, strided_row, valid_range)

cnp.import_array()

cdef inline void gemm_rm(char ta, char tb, int M, int N, int K, real_t alpha,
                         const real_t* A, int lda, const real_t* B, int ldb,
                         real_t beta, real_t* C, int ldc) noexcept nogil:
    # Row-major C(MxN) = alpha op(A) op(B) + beta C.  BLAS is column-major, so we
    # ask it for C^T = op(B)^T op(A)^T: same flags, operands swapped.
    cdef int i, j
    if M <= 0 or N <= 0:
        return
    if K <= 0:
        # BLAS would only scale C; do it here (lda/ldb may be 0 then).
        for i in range(M):
            for j in range(N):
                C[i * ldc + j] = 0 if beta == 0 else beta * C[i * ldc + j]
        return
    if real_t is float:
        sgemm(&tb, &ta, &N, &M, &K, &alpha, <float*>B, &ldb, <float*>A, &lda, &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &N, &M, &K, &alpha, <double*>B, &ldb, <double*>A, &lda, &beta, C, &ldc)



cdef inline void decode_row(idx_t r, conv_geo_t* g, idx_t* c, idx_t* a, idx_t* b, idx_t* e) noexcept nogil:
    # row r = ((c*kd + a)*kh + b)*kw + e
    cdef idx_t kvol = g.kd * g.kh * g.kw, t
    c[0] = r // kvol
    t = r - c[0] * kvol
    a[0] = t // (g.kh * g.kw)
    t = t - a[0] * g.kh * g.kw
    b[0] = t // g.kw
    e[0] = t - b[0] * g.kw


cdef struct row_walk_t:
    # The walk of one column-matrix row r = ((c*kd + a)*kh + b)*kw + e over the positions
    # [p, p1), output row segment by segment with counters (no division per segment),
    # shared by im2col (gather) and col2im (its adjoint, scatter-add).
    idx_t p, p1, od, oh, ow0         # next segment's first position and its (od, oh, ow)
    idx_t c, a, b, e                 # the row's channel and tap
    idx_t flo, fhi                   # valid columns of a full output row (once per row)
    # the current segment: ``seg`` positions; when ``inside`` (its image row exists)
    # image columns ``off + j*sw`` for j in [lo, hi) are inside the image, the rest padding
    idx_t seg, lo, hi, off
    bint inside


cdef inline row_walk_t walk_start(idx_t p0, idx_t p1, conv_geo_t* g) noexcept nogil:
    # the walk state at position p0 (its row fields are set by walk_row)
    cdef row_walk_t w
    cdef idx_t plane = g.OH * g.OW, t
    w.p = p0
    w.p1 = p1
    w.od = p0 // plane
    t = p0 - w.od * plane
    w.oh = t // g.OW
    w.ow0 = t - w.oh * g.OW
    return w


cdef inline row_walk_t walk_row(row_walk_t start, idx_t r, conv_geo_t* g) noexcept nogil:
    # the walk of row r from the start state
    decode_row(r, g, &start.c, &start.a, &start.b, &start.e)
    valid_range(start.e * g.dw - g.pw, g.sw, g.OW, g.W, &start.flo, &start.fhi)
    return start


cdef inline bint walk_segment(row_walk_t* w, conv_geo_t* g) noexcept nogil:
    # Step to the next segment (False once [p, p1) is done) and describe it.
    cdef idx_t id_, ih, iw0
    if w.p >= w.p1:
        return False
    w.seg = g.OW - w.ow0
    if w.seg > w.p1 - w.p:
        w.seg = w.p1 - w.p
    id_ = w.od * g.sd - g.pd + w.a * g.dd
    ih = w.oh * g.sh - g.ph + w.b * g.dh
    w.inside = id_ >= 0 and id_ < g.D and ih >= 0 and ih < g.H
    if w.inside:
        iw0 = w.ow0 * g.sw - g.pw + w.e * g.dw
        if w.ow0 == 0 and w.seg == g.OW:
            w.lo = w.flo
            w.hi = w.fhi
        else:
            valid_range(iw0, g.sw, w.seg, g.W, &w.lo, &w.hi)
        w.off = ((w.c * g.D + id_) * g.H + ih) * g.W + iw0
    w.p = w.p + w.seg
    w.ow0 = 0
    w.oh = w.oh + 1
    if w.oh == g.OH:
        w.oh = 0
        w.od = w.od + 1
    return True


cdef void im2col_rows(const real_t* img, real_t* col, idx_t ldcol, idx_t p0, idx_t p1,
                      idx_t r0, idx_t r1, conv_geo_t* g) noexcept nogil:
    # col[r - r0, p - p0] = img[c, od*sd - pd + a*dd, oh*sh - ph + b*dh, ow*sw - pw + e*dw]
    # for rows r = ((c*kd + a)*kh + b)*kw + e in [r0, r1) and positions p in [p0, p1).
    cdef idx_t r
    cdef row_walk_t w
    cdef real_t* dst
    if p1 <= p0:
        return          # (also when the grid is empty: walk_start divides by its plane)
    cdef row_walk_t start = walk_start(p0, p1, g)
    for r in range(r0, r1):
        w = walk_row(start, r, g)
        dst = col + (r - r0) * ldcol
        while walk_segment(&w, g):
            if not w.inside:
                memset(dst, 0, w.seg * sizeof(real_t))
            else:
                strided_row(dst, w.seg, w.lo, w.hi, img + w.off + w.lo * g.sw, g.sw)
            dst = dst + w.seg


cdef void col2im_rows(const real_t* col, idx_t ldcol, real_t* img, idx_t p0, idx_t p1,
                      idx_t r0, idx_t r1, conv_geo_t* g) noexcept nogil:
    # The adjoint of im2col_rows: img[...] += col[r - r0, p - p0].
    # Rows of one channel c touch only img[c]; callers split work by channel.
    cdef idx_t r, j, lo, hi
    cdef row_walk_t w
    cdef const real_t* srcc
    cdef real_t* dst
    if p1 <= p0:
        return
    cdef row_walk_t start = walk_start(p0, p1, g)
    for r in range(r0, r1):
        w = walk_row(start, r, g)
        srcc = col + (r - r0) * ldcol
        while walk_segment(&w, g):
            if w.inside:
                lo = w.lo
                hi = w.hi
                dst = img + w.off
                if g.sw == 1:
                    for j in range(lo, hi):
                        dst[j] += srcc[j]
                elif g.sw == 2:
                    add_stride2(dst + 2 * lo, srcc + lo, hi - lo)
                else:
                    for j in range(lo, hi):
                        dst[j * g.sw] += srcc[j]
            srcc = srcc + w.seg


cdef inline void fill_planes(real_t* out, idx_t nplanes, idx_t plane, const real_t* bias,
                             bint has_bias) noexcept nogil:
    cdef idx_t i, j
    for i in range(nplanes):
        if has_bias:
            for j in range(plane):
                out[i * plane + j] = bias[i]
        else:
            memset(out + i * plane, 0, plane * sizeof(real_t))


cdef struct tile_unit_t:
    # one work unit of the GEMM kernels: sample n, group gi, positions p0 .. p0 + pt
    idx_t n, gi, p0, pt


cdef inline tile_unit_t tile_unit(idx_t u, idx_t groups, idx_t ntiles, idx_t tile, idx_t P) noexcept nogil:
    # unit u of the (sample, group, tile of ``tile`` positions) grid, tiles fastest
    cdef tile_unit_t t
    t.n = u // (groups * ntiles)
    t.gi = (u // ntiles) % groups
    t.p0 = (u % ntiles) * tile
    t.pt = (P if t.p0 + tile > P else t.p0 + tile) - t.p0
    return t


cdef inline const real_t* unit_columns(const real_t* xg, tile_unit_t t, bint pointwise, real_t* ws,
                                       idx_t Kc, conv_geo_t* g) noexcept nogil:
    # The unit's column matrix (Kc rows by t.pt positions): the group's input itself when
    # ``pointwise`` (row stride = the input's plane), else im2col into ``ws`` (row stride t.pt).
    if pointwise:
        return xg + t.p0
    im2col_rows(xg, ws, t.pt, t.p0, t.p0 + t.pt, 0, Kc, g)
    return ws


def conv_forward(const real_t[:, :, ::1] x, const real_t[:, ::1] w, const real_t[::1] bias,
                 bint has_bias, real_t[:, :, ::1] out, conv_geo_t geo, idx_t groups, idx_t tile,
                 idx_t nb, const idx_t[:, ::1] tab, bint pointwise, bint blas_threads, idx_t row_parts,
                 int nthreads):
    """out[n, o, p] = bias[o] + sum_r w[o, r] col_{n,g}[r, p]  (the convolution as GEMM).

    x: (N, C_in, D*H*W) unpadded; w: (C_out, C_in/groups * kvol); out: (N, C_out, P).
    Work units (sample, group, tile of ``tile`` positions) are independent.
    ``nb`` > 1 (small maps, ``tile`` = P): a unit is ``nb`` samples of one group whose
    columns sit side by side, so one GEMM of ``nb * P`` columns replaces ``nb`` narrow ones;
    ``tab`` (kvol, P) maps each (tap, position) to its input offset, -1 for padding.
    ``pointwise``: 1x1, stride 1, no padding -> the input *is* the column matrix.
    ``blas_threads``: units run serially, im2col on OpenMP, GEMM on BLAS's own
    threads (the alternative we measured against; see nn.py).  ``row_parts`` > 0 (a small
    batch of a layer with many output channels): units run serially, the team builds each
    unit's columns, and the parts split its GEMM by output-channel rows, one single-threaded
    GEMM each (the split is fixed by ``row_parts``: the bits do not depend on the team).
    """
    cdef int mcpu = pyconv_cpu()
    cdef conv_geo_t g = geo
    cdef idx_t N = x.shape[0], Cin = x.shape[1], S = x.shape[2]
    cdef idx_t Cout = out.shape[1], P = out.shape[2]
    cdef idx_t Cg = Cin // groups, Og = Cout // groups
    cdef idx_t Kc = w.shape[1]
    cdef idx_t ntiles = (P + tile - 1) // tile if P > 0 else 0
    cdef idx_t U = N * groups * ntiles
    cdef idx_t u, tid, rr, r0, r1, nth, part, m0, m1
    cdef tile_unit_t t
    cdef real_t zero = 0, one = 1
    cdef real_t* ws
    cdef const real_t* bmat
    cdef int ldb = <int>S
    if U == 0 or Og == 0:
        return
    if nb > 1:
        forward_batched(x, w, bias, has_bias, out, &tab[0, 0], g.kd * g.kh * g.kw, groups, nb, nthreads)
        return
    work_np = np.empty((nthreads if not (blas_threads or row_parts > 0) else 1, 1 if pointwise else Kc * tile),
                       dtype=np.float32 if real_t is float else np.float64)
    cdef real_t[:, ::1] work = work_np
    if not blas_threads and row_parts == 0:
        # units taken one at a time as threads come free (dynamic): a static split leaves the
        # call waiting on whichever core the host slows (2-core Xeon VM, 2 threads: layer b
        # through im2col + GEMM 6.5 -> 5.7 ms in one process, the two schedules alternated)
        for u in prange(U, nogil=True, schedule='dynamic', num_threads=nthreads):
            pyconv_unstack(mcpu)
            tid = omp_get_thread_num()
            t = tile_unit(u, groups, ntiles, tile, P)
            bmat = unit_columns(&x[t.n, t.gi * Cg, 0], t, pointwise, &work[tid, 0], Kc, &g)
            _gemm_unit(&w[t.gi * Og, 0], bmat, S if pointwise else t.pt, &out[t.n, t.gi * Og, t.p0],
                       &bias[t.gi * Og] if has_bias else NULL, Og, t.pt, Kc, P)
        return
    # units one after another: the team builds a unit's columns (each thread its share of
    # the rows: a copy, so how they split does not touch the bits), then its GEMM runs on
    # BLAS's threads or, with row_parts, as that many single-threaded GEMMs of its rows
    ws = &work[0, 0]
    with nogil:
        for u in range(U):
            t = tile_unit(u, groups, ntiles, tile, P)
            if pointwise:
                bmat = &x[t.n, t.gi * Cg, t.p0]
            else:
                nth = nthreads
                for rr in prange(nth, schedule='static', num_threads=nthreads):
                    pyconv_unstack(mcpu)
                    r0 = rr * Kc // nth
                    r1 = (rr + 1) * Kc // nth
                    im2col_rows(&x[t.n, t.gi * Cg, 0], ws + r0 * t.pt, t.pt, t.p0, t.p0 + t.pt, r0, r1, &g)
                bmat = ws
            if row_parts == 0:
                _gemm_unit(&w[t.gi * Og, 0], bmat, S if pointwise else t.pt, &out[t.n, t.gi * Og, t.p0],
                           &bias[t.gi * Og] if has_bias else NULL, Og, t.pt, Kc, P)
                continue
            for part in prange(row_parts, schedule='static', num_threads=nthreads):
                pyconv_unstack(mcpu)
                m0 = part * Og // row_parts
                m1 = (part + 1) * Og // row_parts
                if m1 > m0:
                    _gemm_unit(&w[t.gi * Og + m0, 0], bmat, S if pointwise else t.pt, &out[t.n, t.gi * Og + m0, t.p0],
                               &bias[t.gi * Og + m0] if has_bias else NULL, m1 - m0, t.pt, Kc, P)


cdef inline void _gemm_unit(const real_t* wg, const real_t* bmat, idx_t ldb, real_t* outg, const real_t* bias,
                            idx_t Og, idx_t pt, idx_t Kc, idx_t P) noexcept nogil:
    # out tile (Og, pt) = bias (when not NULL) + w_g (Og, Kc) @ columns (Kc, pt)
    cdef real_t zero = 0, one = 1
    if bias != NULL:
        fill_rect(outg, Og, pt, P, bias)
    gemm_rm(c'N', c'N', <int>Og, <int>pt, <int>Kc, one, wg, <int>Kc, bmat, <int>ldb,
            one if bias != NULL else zero, outg, <int>P)


cdef inline void im2col_tab(const real_t* img, idx_t S, const idx_t* tab, idx_t kvol, idx_t P,
                            idx_t nch, real_t* col, idx_t ldcol) noexcept nogil:
    # Small maps, one whole sample: col[c*kvol + t, p] = img[c*S + tab[t, p]] (0 where
    # tab < 0, a padding read).  The table is built once per plan; the row-segment walk
    # of im2col_rows would pay its per-segment set-up on rows of a few positions.
    cdef idx_t c, t, p, i
    cdef const real_t* src
    cdef real_t* dst
    for c in range(nch):
        src = img + c * S
        for t in range(kvol):
            dst = col + (c * kvol + t) * ldcol
            for p in range(P):
                i = tab[t * P + p]
                dst[p] = src[i] if i >= 0 else 0


cdef inline void col2im_tab(const real_t* col, idx_t ldcol, real_t* img, idx_t S, const idx_t* tab,
                            idx_t kvol, idx_t P, idx_t nch) noexcept nogil:
    # The adjoint of im2col_tab: img[c*S + tab[t, p]] += col[c*kvol + t, p]
    cdef idx_t c, t, p, i
    cdef const real_t* src
    cdef real_t* dst
    for c in range(nch):
        dst = img + c * S
        for t in range(kvol):
            src = col + (c * kvol + t) * ldcol
            for p in range(P):
                i = tab[t * P + p]
                if i >= 0:
                    dst[i] += src[p]


cdef struct sample_block_t:
    idx_t n, gi, m      # first sample, group, samples


cdef inline sample_block_t sample_block(idx_t u, idx_t groups, idx_t nb, idx_t N) noexcept nogil:
    # unit u of the blocks of nb samples (of one group each)
    cdef sample_block_t b
    b.n = (u // groups) * nb
    b.gi = u % groups
    b.m = nb if N - b.n > nb else N - b.n
    return b


cdef inline void gather_samples(const real_t* src, idx_t sstride, idx_t rstride, idx_t rows, idx_t m,
                                idx_t P, real_t* dst) noexcept nogil:
    # dst[r, j*P + p] = src[j*sstride + r*rstride + p]: m samples' rows side by side
    cdef idx_t r, j
    for r in range(rows):
        for j in range(m):
            memcpy(dst + r * m * P + j * P, src + j * sstride + r * rstride, P * sizeof(real_t))


cdef void forward_batched(const real_t[:, :, ::1] x, const real_t[:, ::1] w, const real_t[::1] bias,
                          bint has_bias, real_t[:, :, ::1] out, const idx_t* tab, idx_t kvol, idx_t groups,
                          idx_t nb, int nthreads):
    cdef int mcpu = pyconv_cpu()
    # units (block of nb samples, group): columns (Kc, m*P) -> one GEMM -> (Og, m*P) scattered
    cdef idx_t N = x.shape[0], Cin = x.shape[1], S = x.shape[2], P = out.shape[2], Cout = out.shape[1]
    cdef idx_t Cg = Cin // groups, Og = Cout // groups, Kc = w.shape[1]
    cdef idx_t nblk = (N + nb - 1) // nb
    cdef idx_t u, bi, gi, n0, m, j, o, p, ld, tid
    cdef real_t zero = 0, one = 1
    cdef real_t* ws
    cdef real_t* wo
    cdef real_t bv
    work_np = np.empty((nthreads, (Kc + Og) * nb * P), dtype=np.float32 if real_t is float else np.float64)
    cdef real_t[:, ::1] work = work_np
    for u in prange(nblk * groups, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = omp_get_thread_num()
        bi = u // groups
        gi = u % groups
        n0 = bi * nb
        m = N - n0
        if m > nb:
            m = nb
        ld = m * P
        ws = &work[tid, 0]
        wo = ws + Kc * ld
        for j in range(m):
            im2col_tab(&x[n0 + j, gi * Cg, 0], S, tab, kvol, P, Cg, ws + j * P, ld)
        gemm_rm(c'N', c'N', <int>Og, <int>ld, <int>Kc, one, &w[gi * Og, 0], <int>Kc, ws, <int>ld,
                zero, wo, <int>ld)
        for j in range(m):
            for o in range(Og):
                bv = bias[gi * Og + o] if has_bias else zero
                for p in range(P):
                    out[n0 + j, gi * Og + o, p] = wo[o * ld + j * P + p] + bv


cdef inline void fill_rect(real_t* out, idx_t rows, idx_t cols, idx_t ld,
                           const real_t* bias) noexcept nogil:
    cdef idx_t i, j
    for i in range(rows):
        for j in range(cols):
            out[i * ld + j] = bias[i]


def conv_transpose_forward(const real_t[:, :, ::1] x, const real_t[:, ::1] w, const real_t[::1] bias,
                           bint has_bias, real_t[:, :, ::1] out, conv_geo_t geo, idx_t groups,
                           idx_t cblk, idx_t tile, idx_t nb, const idx_t[:, ::1] tab, int nthreads):
    """Transposed convolution: cols = W_g^T x_{n,g}, then col2im (scatter-add) into out.

    x: (N, C_in, P) (the transposed conv's input, i.e. the column grid);
    w: (C_in, C_out/groups * kvol); out: (N, C_out, D*H*W), fully written here.
    Work units (sample, group, block of ``cblk`` output channels) own disjoint
    output planes, so they run in parallel without races; inside a unit the input
    positions are taken ``tile`` at a time to bound the workspace.  ``nb`` > 1 (small
    maps, ``tile`` = P): a unit holds ``nb`` samples, their inputs side by side in one GEMM,
    and ``tab`` (kvol, P) maps each (tap, input position) to its output offset (-1: cropped).
    """
    cdef int mcpu = pyconv_cpu()
    cdef conv_geo_t g = geo
    cdef idx_t N = x.shape[0], Cin = x.shape[1], P = x.shape[2]
    cdef idx_t Cout = out.shape[1], S = out.shape[2]
    cdef idx_t Cg = Cin // groups, Og = Cout // groups
    cdef idx_t kvol = g.kd * g.kh * g.kw
    cdef idx_t ldw = w.shape[1]
    cdef idx_t nblk = (Og + cblk - 1) // cblk if Og > 0 else 0
    cdef idx_t U = N * groups * nblk
    cdef idx_t u, n, gi, bi, c0, c1, nc, p0, p1, pt, tid
    cdef real_t zero = 0, one = 1
    cdef real_t* ws
    cdef real_t* img
    cdef idx_t j, m, ld
    cdef real_t* xb
    if U == 0:
        return
    if nb > 1:
        U = ((N + nb - 1) // nb) * groups * nblk
        work_np = np.empty((nthreads, (cblk * kvol + Cg) * nb * P), dtype=np.float32 if real_t is float else np.float64)
    else:
        work_np = np.empty((nthreads, cblk * kvol * tile), dtype=np.float32 if real_t is float else np.float64)
    cdef real_t[:, ::1] work = work_np
    for u in prange(U, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        tid = omp_get_thread_num()
        if nb > 1:
            n = (u // (groups * nblk)) * nb
            gi = (u // nblk) % groups
            bi = u % nblk
            c0 = bi * cblk
            c1 = c0 + cblk
            if c1 > Og:
                c1 = Og
            nc = c1 - c0
            m = N - n
            if m > nb:
                m = nb
            ld = m * P
            for j in range(m):
                fill_planes(&out[n + j, gi * Og + c0, 0], nc, S, &bias[gi * Og + c0] if has_bias else NULL, has_bias)
            if Cg == 0 or S == 0:
                continue
            ws = &work[tid, 0]
            xb = ws + nc * kvol * ld
            gather_samples(&x[n, gi * Cg, 0], Cin * P, P, Cg, m, P, xb)
            gemm_rm(c'T', c'N', <int>(nc * kvol), <int>ld, <int>Cg, one, &w[gi * Cg, c0 * kvol], <int>ldw,
                    xb, <int>ld, zero, ws, <int>ld)
            for j in range(m):
                col2im_tab(ws + j * P, ld, &out[n + j, gi * Og + c0, 0], S, &tab[0, 0], kvol, P, nc)
            continue
        n = u // (groups * nblk)
        gi = (u // nblk) % groups
        bi = u % nblk
        c0 = bi * cblk
        c1 = c0 + cblk
        if c1 > Og:
            c1 = Og
        nc = c1 - c0
        img = &out[n, gi * Og + c0, 0]
        if has_bias:
            fill_planes(img, nc, S, &bias[gi * Og + c0], True)
        else:
            fill_planes(img, nc, S, NULL, False)     # (bias may be empty: no &bias[0])
        if Cg == 0 or S == 0:
            continue
        ws = &work[tid, 0]
        p0 = 0
        while p0 < P:
            p1 = p0 + tile
            if p1 > P:
                p1 = P
            pt = p1 - p0
            # cols (nc*kvol, pt) = W[g rows, block cols]^T (nc*kvol, Cg) @ x[n, g] (Cg, pt)
            gemm_rm(c'T', c'N', <int>(nc * kvol), <int>pt, <int>Cg, one, &w[gi * Cg, c0 * kvol], <int>ldw,
                    &x[n, gi * Cg, p0], <int>P, zero, ws, <int>pt)
            col2im_rows(ws, pt, img, p0, p1, 0, nc * kvol, &g)
            p0 = p1


def conv_weight(const real_t[:, :, ::1] x, const real_t[:, :, ::1] gout, real_t[:, :, ::1] acc,
                conv_geo_t geo, idx_t groups, idx_t tile, idx_t nb, const idx_t[:, ::1] tab, bint pointwise,
                idx_t row_parts, int nthreads):
    """Per-thread weight-gradient partial sums: acc[t, o, r] += sum_p gout[n, o, p] col_{n,g}[r, p].

    x: (N, C_in, D*H*W); gout: (N, C_out, P); acc: (nthreads, C_out, Kc) zeroed by the
    caller and summed over its first axis afterwards (per-thread buffers: the
    reduction over the batch never races).  ``nb`` > 1 (small maps, ``tile`` = P): a unit
    is ``nb`` samples of one group, their columns and grad_output rows side by side
    (``tab`` as in :func:`conv_forward`).  ``row_parts`` > 0 (few samples, or an
    accumulator past an im2col tile's size): the parts split the Kc rows of the gradient
    instead of the units, each part runs every unit for its own rows, and acc has one
    slice: no thin position tiles, and no per-part (C_out, Kc) copy that every GEMM
    rewrites whole.
    """
    cdef int mcpu = pyconv_cpu()
    cdef conv_geo_t g = geo
    cdef idx_t N = x.shape[0], Cin = x.shape[1], S = x.shape[2]
    cdef idx_t Cout = gout.shape[1], P = gout.shape[2]
    cdef idx_t Cg = Cin // groups, Og = Cout // groups
    cdef idx_t Kc = acc.shape[2]
    cdef idx_t ntiles = (P + tile - 1) // tile if P > 0 else 0
    cdef idx_t U = N * groups * ntiles
    cdef idx_t u, part
    cdef tile_unit_t t
    cdef real_t one = 1
    cdef const real_t* bmat
    if U == 0 or Og == 0 or Kc == 0:
        return
    cdef int nparts = <int>acc.shape[0]
    cdef idx_t j, ld
    cdef sample_block_t sb
    cdef real_t* gb
    cdef real_t* ws
    if row_parts > 0:
        nparts = <int>row_parts
        work_np = np.empty((nparts, ((Kc + nparts - 1) // nparts + (Og if nb > 1 else 0)) * tile * nb),
                           dtype=np.float32 if real_t is float else np.float64)
        rows_split(x, gout, acc, &g, groups, tile, nb, pointwise, nparts, work_np, nthreads)
        return
    if nb > 1:
        U = ((N + nb - 1) // nb) * groups
        work_np = np.empty((nparts, (Kc + Og) * nb * P), dtype=np.float32 if real_t is float else np.float64)
    else:
        work_np = np.empty((nparts, 1 if pointwise else Kc * tile), dtype=np.float32 if real_t is float else np.float64)
    cdef real_t[:, ::1] work = work_np
    # parts, not threads, own the partial sums (acc[part]): the split is fixed by
    # nparts, so the sums do not depend on the team size the machine's load allows
    for part in prange(nparts, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        for u in range(part_lo(U, nparts, part), part_lo(U, nparts, part + 1)):
            if nb > 1:
                sb = sample_block(u, groups, nb, N)
                ld = sb.m * P
                ws = &work[part, 0]
                gb = ws + Kc * ld
                for j in range(sb.m):
                    im2col_tab(&x[sb.n + j, sb.gi * Cg, 0], S, &tab[0, 0], g.kd * g.kh * g.kw, P, Cg, ws + j * P, ld)
                gather_samples(&gout[sb.n, sb.gi * Og, 0], Cout * P, P, Og, sb.m, P, gb)
                gemm_rm(c'N', c'T', <int>Og, <int>Kc, <int>ld, one, gb, <int>ld, ws, <int>ld, one,
                        &acc[part, sb.gi * Og, 0], <int>Kc)
                continue
            t = tile_unit(u, groups, ntiles, tile, P)
            bmat = unit_columns(&x[t.n, t.gi * Cg, 0], t, pointwise, &work[part, 0], Kc, &g)
            # acc[part, g-block] (Og, Kc) += gout[n, g-block, tile] (Og, pt) @ col^T (pt, Kc)
            gemm_rm(c'N', c'T', <int>Og, <int>Kc, <int>t.pt, one, &gout[t.n, t.gi * Og, t.p0], <int>P,
                    bmat, <int>(S if pointwise else t.pt), one, &acc[part, t.gi * Og, 0], <int>Kc)


cdef void rows_split(const real_t[:, :, ::1] x, const real_t[:, :, ::1] gout, real_t[:, :, ::1] acc,
                     conv_geo_t* g, idx_t groups, idx_t tile, idx_t nb, bint pointwise, int nparts, work_np,
                     int nthreads):
    cdef int mcpu = pyconv_cpu()
    # part p owns rows [r0, r1) of every group's (Og, Kc) gradient block, over all units:
    # position tiles of one sample, or (nb > 1, tile = P) blocks of nb samples side by side
    cdef idx_t N = x.shape[0], Cin = x.shape[1], S = x.shape[2]
    cdef idx_t Cout = gout.shape[1], P = gout.shape[2]
    cdef idx_t Cg = Cin // groups, Og = Cout // groups
    cdef idx_t Kc = acc.shape[2]
    cdef idx_t ntiles = (P + tile - 1) // tile if P > 0 else 0
    cdef idx_t U = N * groups * ntiles
    cdef idx_t u, part, r0, r1, j, ld
    cdef sample_block_t sb
    cdef tile_unit_t t
    cdef real_t one = 1
    cdef const real_t* bmat
    cdef real_t* ws
    cdef real_t* gb
    cdef real_t[:, ::1] work = work_np
    if nb > 1:
        U = ((N + nb - 1) // nb) * groups
    for part in prange(nparts, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        r0 = part_lo(Kc, nparts, part)
        r1 = part_lo(Kc, nparts, part + 1)
        if r1 <= r0:
            continue
        if nb > 1:
            for u in range(U):
                sb = sample_block(u, groups, nb, N)
                ld = sb.m * P
                ws = &work[part, 0]
                gb = ws + (r1 - r0) * ld
                if pointwise:
                    gather_samples(&x[sb.n, sb.gi * Cg + r0, 0], Cin * S, S, r1 - r0, sb.m, P, ws)
                else:
                    for j in range(sb.m):
                        im2col_rows(&x[sb.n + j, sb.gi * Cg, 0], ws + j * P, ld, 0, P, r0, r1, g)
                gather_samples(&gout[sb.n, sb.gi * Og, 0], Cout * P, P, Og, sb.m, P, gb)
                gemm_rm(c'N', c'T', <int>Og, <int>(r1 - r0), <int>ld, one, gb, <int>ld, ws, <int>ld, one,
                        &acc[0, sb.gi * Og, r0], <int>Kc)
            continue
        for u in range(U):
            t = tile_unit(u, groups, ntiles, tile, P)
            if pointwise:
                bmat = &x[t.n, t.gi * Cg + r0, t.p0]
            else:
                im2col_rows(&x[t.n, t.gi * Cg, 0], &work[part, 0], t.pt, t.p0, t.p0 + t.pt, r0, r1, g)
                bmat = &work[part, 0]
            gemm_rm(c'N', c'T', <int>Og, <int>(r1 - r0), <int>t.pt, one, &gout[t.n, t.gi * Og, t.p0], <int>P,
                    bmat, <int>(S if pointwise else t.pt), one, &acc[0, t.gi * Og, r0], <int>Kc)


def unfold(const real_t[:, :, ::1] x, real_t[:, :, ::1] col, conv_geo_t geo, int nthreads):
    """im2col of whole samples: x (N, C, D*H*W) -> col (N, C*kvol, P)."""
    cdef int mcpu = pyconv_cpu()
    cdef conv_geo_t g = geo
    cdef idx_t N = x.shape[0], C = x.shape[1], P = col.shape[2]
    cdef idx_t kvol = g.kd * g.kh * g.kw
    cdef idx_t u, n, c
    if N * C * kvol == 0 or P == 0:
        return
    for u in prange(N * C, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        n = u // C
        c = u % C
        im2col_rows(&x[n, 0, 0], &col[n, c * kvol, 0], P, 0, P, c * kvol, (c + 1) * kvol, &g)


def fold(const real_t[:, :, ::1] col, real_t[:, :, ::1] out, conv_geo_t geo, int nthreads):
    """col2im of whole samples: col (N, C*kvol, P) summed into out (N, C, D*H*W) (zeroed here)."""
    cdef int mcpu = pyconv_cpu()
    cdef conv_geo_t g = geo
    cdef idx_t N = out.shape[0], C = out.shape[1], S = out.shape[2], P = col.shape[2]
    cdef idx_t kvol = g.kd * g.kh * g.kw
    cdef idx_t u, n, c
    if N * C == 0 or S == 0:
        return
    for u in prange(N * C, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        n = u // C
        c = u % C
        memset(&out[n, c, 0], 0, S * sizeof(real_t))
        if P > 0 and kvol > 0:
            # rows of channel c; col2im indexes img by c, so offset the image back by c planes
            col2im_rows(&col[n, c * kvol, 0], P, &out[n, 0, 0], 0, P, c * kvol, (c + 1) * kvol, &g)



# ---------------------------------------------------------------- plain matrix products
# The 1x1 plans (and the resize convolution's gradient) are matrix products with no im2col.
# They run here, on pyconv's OpenMP team, each product on BLAS's one thread (the caller's
# blas_single_thread): not on Python helper threads, which a worker of the team -- the
# OpenMP runtime is shared with any other library that links it, PyTorch's included --
# still spinning after the previous region kept off their core (a 1x1 input gradient at 2
# threads, 3.0 ms alone, took 5.0 ms right after a PyTorch call: the helper started its
# first product 2 ms late, AMD EPYC).

def matmul_stack(const real_t[:, :, ::1] a, bint ta, const real_t[:, :, ::1] b, real_t[:, :, ::1] out,
                 idx_t span, int nthreads):
    """out[i][:, lo:hi] = op(a[i % len(a)]) @ b[i][:, lo:hi] for every matrix ``i`` of the
    stacks ``b`` (n, K, N) and ``out`` (n, M, N) and every span of ``span`` columns (the
    last one the rest; ``span`` <= 0: whole rows).  ``op(a)`` is ``a`` (na, M, K), or with
    ``ta`` its transpose, ``a`` being (na, K, M).  Each task writes its own block: the bits
    do not depend on the team."""
    cdef int mcpu = pyconv_cpu()
    cdef idx_t na = a.shape[0], n = out.shape[0], M = out.shape[1], N = out.shape[2], K = b.shape[1]
    cdef idx_t lda = a.shape[2]
    if b.shape[0] != n or b.shape[2] != N or na < 1 \
            or (a.shape[1], a.shape[2]) != ((K, M) if ta else (M, K)):
        raise ValueError(f"matmul_stack: shapes a {tuple(a.shape)} (ta={bool(ta)}), b {tuple(b.shape)}, "
                         f"out {tuple(out.shape)} do not chain")
    if n == 0 or M == 0 or N == 0:
        return
    if K == 0:
        out[:, :, :] = 0
        return
    if span <= 0 or span > N:
        span = N
    cdef idx_t nspan = (N + span - 1) // span
    cdef idx_t t, i, lo
    cdef real_t one = 1, zero = 0
    cdef char opa = c'T' if ta else c'N'
    for t in prange(n * nspan, nogil=True, schedule='static', chunksize=1, num_threads=nthreads):
        pyconv_unstack(mcpu)
        i = t // nspan
        lo = (t - i * nspan) * span
        gemm_rm(opa, c'N', <int>M, <int>(min(span, N - lo)), <int>K, one, &a[i % na, 0, 0], <int>lda,
                &b[i, 0, lo], <int>N, zero, &out[i, 0, lo], <int>N)


def matmul_weight(const real_t[:, :, ::1] dy, const real_t[:, :, ::1] x, real_t[:, ::1] gw, bint tall,
                  idx_t span, idx_t groups, int nthreads):
    """gw[g*Og:(g+1)*Og, lo:hi] = sum_n dy[n][g's Og rows] @ x[n][g's rows lo:hi]^T: the 1x1
    weight gradient in ``groups`` groups, dy (n, C_out, P), x (n, C_in, P), gw (C_out,
    C_in/groups), one task per (group, span of ``span`` of its input channels), its samples
    summed in order (BLAS accumulating): the bits do not depend on the team.  ``tall``: each
    task computes the transpose, sum_n x[n][rows] @ dy[n][g's rows]^T (a product with C_in
    rows, faster on some BLAS), and stores it transposed."""
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = dy.shape[0], Cout = dy.shape[1], P = dy.shape[2], Cg = gw.shape[1]
    if groups < 1 or Cout % groups or x.shape[0] != N or x.shape[1] != groups * Cg or x.shape[2] != P \
            or gw.shape[0] != Cout:
        raise ValueError(f"matmul_weight: shapes dy {tuple(dy.shape)}, x {tuple(x.shape)}, gw {tuple(gw.shape)} "
                         f"do not chain in groups={groups}")
    cdef idx_t Og = Cout // groups
    if Og == 0 or Cg == 0:
        return
    if N == 0 or P == 0:
        gw[:, :] = 0
        return
    if span <= 0 or span > Cg:
        span = Cg
    cdef idx_t nspan = (Cg + span - 1) // span
    # (tall: each task's transposed sums before they are stored; otherwise unused)
    cdef idx_t wrows = groups * nspan if tall else 1, wcols = span * Og if tall else 1
    work_np = np.empty((wrows, wcols), dtype=np.float32 if real_t is float else np.float64)
    cdef real_t[:, ::1] work = work_np
    cdef idx_t s, gi, lo, w, j, r, c
    cdef real_t one = 1, beta
    for s in prange(groups * nspan, nogil=True, schedule='static', chunksize=1, num_threads=nthreads):
        pyconv_unstack(mcpu)
        gi = s // nspan
        lo = (s - gi * nspan) * span
        w = min(span, Cg - lo)
        for j in range(N):
            beta = 0 if j == 0 else 1
            if tall:
                gemm_rm(c'N', c'T', <int>w, <int>Og, <int>P, one, &x[j, gi * Cg + lo, 0], <int>P,
                        &dy[j, gi * Og, 0], <int>P, beta, &work[s, 0], <int>Og)
            else:
                gemm_rm(c'N', c'T', <int>Og, <int>w, <int>P, one, &dy[j, gi * Og, 0], <int>P,
                        &x[j, gi * Cg + lo, 0], <int>P, beta, &gw[gi * Og, lo], <int>Cg)
        if tall:
            for r in range(w):
                for c in range(Og):
                    gw[gi * Og + c, lo + r] = work[s, r * Og + c]


def matmul_sandwich(const real_t[:, ::1] left, const real_t[:, :, ::1] planes, const real_t[:, ::1] right,
                    real_t[:, :, ::1] out, idx_t per, int nthreads):
    """out[p] = left @ (planes[p] @ right) for every plane ``p``: planes (n, Hf, Wf), left
    (H, Hf), right (Wf, W), out (n, H, W); one task per span of ``per`` planes, each on
    one thread with its own (Hf, W) product in between: the bits do not depend on the
    team."""
    cdef int mcpu = pyconv_cpu()
    cdef idx_t n = planes.shape[0], Hf = planes.shape[1], Wf = planes.shape[2]
    cdef idx_t H = left.shape[0], W = right.shape[1]
    if left.shape[1] != Hf or right.shape[0] != Wf or out.shape[0] != n or out.shape[1] != H or out.shape[2] != W:
        raise ValueError(f"matmul_sandwich: shapes left {tuple(left.shape)}, planes {tuple(planes.shape)}, "
                         f"right {tuple(right.shape)}, out {tuple(out.shape)} do not chain")
    if n == 0 or H == 0 or W == 0:
        return
    if Hf == 0 or Wf == 0:
        out[:, :, :] = 0
        return
    if per <= 0 or per > n:
        per = n
    cdef idx_t nspan = (n + per - 1) // per
    work_np = np.empty((nspan, Hf * W), dtype=np.float32 if real_t is float else np.float64)
    cdef real_t[:, ::1] work = work_np
    cdef idx_t s, q
    cdef real_t one = 1, zero = 0
    for s in prange(nspan, nogil=True, schedule='static', chunksize=1, num_threads=nthreads):
        pyconv_unstack(mcpu)
        for q in range(s * per, min(n, (s + 1) * per)):
            gemm_rm(c'N', c'N', <int>Hf, <int>W, <int>Wf, one, &planes[q, 0, 0], <int>Wf, &right[0, 0], <int>W,
                    zero, &work[s, 0], <int>W)
            gemm_rm(c'N', c'N', <int>H, <int>W, <int>Hf, one, &left[0, 0], <int>Hf, &work[s, 0], <int>W,
                    zero, &out[q, 0, 0], <int>W)
