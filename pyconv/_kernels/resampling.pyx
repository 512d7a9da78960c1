# Resampling kernels: index-map gathers (padding modes, phase planes, nearest
# upsampling), bilinear upsampling (align_corners=False) and channel shuffle.
# Memory-bound; the innermost loop runs along the contiguous output width.
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

from pyconv._kernels._common cimport idx_t, real_t, pyconv_cpu, pyconv_unstack


def gather(const real_t[:, :, :, ::1] x, real_t[:, :, :, :] out, const long long[::1] md,
           const long long[::1] mh, const long long[::1] mw, int nthreads, tuple w_affine=None):
    """out[b, i, j, k] = x[b, md[i], mh[j], mw[k]], or 0 where any map entry is -1.

    With the maps of a padding mode this pads (zeros/reflect/replicate/circular);
    with ``m[i] = i // s`` it is nearest-neighbour upsampling.  ``out`` may be
    strided in its outer dims (a slice of a bigger buffer) but its rows must be
    contiguous.
    ``w_affine = (lo, hi, start, step)`` says that ``mw`` is -1 outside ``[lo, hi)`` and
    ``start + (k - lo)*step`` inside (padding and phase maps are): rows are then
    copied by a strided loop instead of an indexed one.
    """
    cdef int mcpu = pyconv_cpu()
    if out.shape[3] > 1 and out.strides[3] != sizeof(real_t):
        raise ValueError("gather: the rows of out must be contiguous")
    cdef bint affine = w_affine is not None
    cdef idx_t wlo = 0, whi = 0, wa = 0, wst = 1
    if affine:
        wlo, whi, wa, wst = w_affine
    cdef idx_t B = out.shape[0], D2 = out.shape[1], H2 = out.shape[2], W2 = out.shape[3]
    cdef idx_t u, bb, i, j, k, si, sj
    cdef real_t* dst
    cdef const real_t* src
    cdef const real_t* src2
    if B * D2 * H2 * W2 == 0:
        return
    for u in prange(B * D2, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
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
            if affine:
                for k in range(wlo):
                    dst[k] = 0
                if wst == 1:
                    for k in range(wlo, whi):
                        dst[k] = src[wa - wlo + k]
                elif wst == 2:
                    # constant stride: vectorised with permutes (stride-2 phase planes)
                    src2 = src + wa - 2 * wlo
                    for k in range(wlo, whi):
                        dst[k] = src2[2 * k]
                else:
                    for k in range(wlo, whi):
                        dst[k] = src[wa + (k - wlo) * wst]
                for k in range(whi, W2):
                    dst[k] = 0
            else:
                for k in range(W2):
                    dst[k] = src[mw[k]] if mw[k] >= 0 else 0


def bilinear(const real_t[:, :, ::1] x, real_t[:, :, ::1] out, const long long[::1] h0,
             const long long[::1] h1, const real_t[::1] hl, const long long[::1] w0,
             const long long[::1] w1, const real_t[::1] wl, int nthreads):
    """Bilinear resampling of planes: x (B, H, W) -> out (B, H2, W2).

    Row i reads source rows h0[i], h1[i] with weight hl[i] on h1 (and 1 - hl[i] on
    h0); likewise for columns.
    """
    cdef int mcpu = pyconv_cpu()
    cdef idx_t B = out.shape[0], H2 = out.shape[1], W2 = out.shape[2]
    cdef idx_t u, bb, i, k
    cdef real_t a1, a0, c1, c0
    cdef const real_t* r0
    cdef const real_t* r1
    cdef real_t* dst
    if B * H2 * W2 == 0:
        return
    for u in prange(B * H2, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
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
    cdef int mcpu = pyconv_cpu()
    cdef idx_t N = x.shape[0], C = x.shape[1], S = x.shape[2]
    cdef idx_t cpg = C // groups
    cdef idx_t u, n, c2, k, gi
    if N * C * S == 0:
        return
    for u in prange(N * C, nogil=True, schedule='static', num_threads=nthreads):
        pyconv_unstack(mcpu)
        n = u // C
        c2 = u % C
        k = c2 // groups
        gi = c2 % groups
        memcpy(&out[n, c2, 0], &x[n, gi * cpg + k, 0], S * sizeof(real_t))
