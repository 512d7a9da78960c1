# Kernels of pyconv.ndimage: scipy.ndimage's correlation filters with boundary modes.
#
# Both kernels read the input and write the output through raw addresses with
# byte strides and a type code (any dtype scipy.ndimage accepts, any layout:
# non-contiguous, negative strides, read-only), so nothing is copied to call
# them.  Values are loaded into a per-thread buffer of the compute type ``T``
# (double, or float for float32 work), the boundary extension is done on that
# buffer through per-axis index maps (padded position -> source index, or -1
# for ``cval``) built by the caller, and results are stored with the C casts
# scipy's C code applies (``(type)double``: truncation, and the x86 results of
# out-of-range conversions, emulated exactly so -march=native changes nothing).
#
# * ``corr1d``: the 1-D correlation (or the running-sum uniform filter) along one
#   axis.  A work item is one line extended in the buffer (the axis is the
#   contiguous one), or a tile of ``c`` neighbouring lines by ``rows`` positions
#   whose rows are read through the map (long contiguous row segments).  Either
#   is filtered with scipy's own formulas and order of operations (the general,
#   symmetric and antisymmetric forms of NI_Correlate1D; the running sum, each
#   output divided by the size), as fused sweeps of up to 8 taps (4 pairs)
#   along the line or across the tile, so float64 and integer results are
#   scipy's bits.  A line (or a tile of whole lines) is read before it is
#   written, so the output may be the input (separable filters chain their
#   passes in place).
# * ``corrnd``: the N-d correlation.  A work item is a run of output rows
#   (last axis) in one plane; the input rows the run needs (per kernel
#   position in the outer dims, per padded row) are extended once into the
#   buffer, then the run is swept as one flat row (a tap reads the buffer at a
#   constant offset; the kw - 1 columns between rows are computed and
#   dropped), in L1-sized segments, adding the nonzero taps in the kernel's C
#   order in fused groups of up to 8: scipy's order, one multiply and one add
#   each (the module is built with -ffp-contract=off in every SIMD variant).
#
# The caller (pyconv/ndimage.py) checks every bound: shapes, strides and maps
# are consistent and every map entry is -1 or a valid index.
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free

from pyconv._kernels._common cimport real_t

cdef extern from "ndimage_kernels.h":
    void nd_load_d(const char* src, Py_ssize_t sp, Py_ssize_t si, Py_ssize_t np_, Py_ssize_t ni,
                   int code, double* dst, Py_ssize_t dp, Py_ssize_t di) noexcept nogil
    void nd_load_f(const char* src, Py_ssize_t sp, Py_ssize_t si, Py_ssize_t np_, Py_ssize_t ni,
                   int code, float* dst, Py_ssize_t dp, Py_ssize_t di) noexcept nogil
    void nd_store_d(const double* src, Py_ssize_t sp, Py_ssize_t si, Py_ssize_t np_, Py_ssize_t ni,
                    int code, char* dst, Py_ssize_t dp, Py_ssize_t di) noexcept nogil
    void nd_store_f(const float* src, Py_ssize_t sp, Py_ssize_t si, Py_ssize_t np_, Py_ssize_t ni,
                    int code, char* dst, Py_ssize_t dp, Py_ssize_t di) noexcept nogil
    enum: ND_F32, ND_F64
    void nd_sweep_d(double* o, Py_ssize_t n, const double* const* ap, const double* ws, int g, int fresh) noexcept nogil
    void nd_sweep_f(float* o, Py_ssize_t n, const float* const* ap, const float* ws, int g, int fresh) noexcept nogil
    void nd_psweep_sym_d(double* o, Py_ssize_t n, const double* ctr, double wc, const double* const* ap,
                         const double* const* cp, const double* ws, int g, int fresh) noexcept nogil
    void nd_psweep_sym_f(float* o, Py_ssize_t n, const float* ctr, float wc, const float* const* ap,
                         const float* const* cp, const float* ws, int g, int fresh) noexcept nogil
    void nd_psweep_anti_d(double* o, Py_ssize_t n, const double* ctr, double wc, const double* const* ap,
                          const double* const* cp, const double* ws, int g, int fresh) noexcept nogil
    void nd_psweep_anti_f(float* o, Py_ssize_t n, const float* ctr, float wc, const float* const* ap,
                          const float* const* cp, const float* ws, int g, int fresh) noexcept nogil

cdef enum:
    MAXD = 64
    GROUP = 8
    SEG = 2048          # outputs per sweep segment: 8-16 KiB of sums, L1-resident


cdef inline int _code_of(real_t x) noexcept nogil:
    """The type code of the compute type."""
    if real_t is double:
        return ND_F64
    else:
        return ND_F32


cdef inline void _load(const char* src, Py_ssize_t sp, Py_ssize_t si, Py_ssize_t np_, Py_ssize_t ni,
                       int code, real_t* dst, Py_ssize_t dp, Py_ssize_t di) noexcept nogil:
    if real_t is double:
        nd_load_d(src, sp, si, np_, ni, code, dst, dp, di)
    else:
        nd_load_f(src, sp, si, np_, ni, code, dst, dp, di)


cdef inline void _store(const real_t* src, Py_ssize_t sp, Py_ssize_t si, Py_ssize_t np_, Py_ssize_t ni,
                        int code, char* dst, Py_ssize_t dp, Py_ssize_t di) noexcept nogil:
    if real_t is double:
        nd_store_d(src, sp, si, np_, ni, code, dst, dp, di)
    else:
        nd_store_f(src, sp, si, np_, ni, code, dst, dp, di)


cdef void _extend(const char* base, Py_ssize_t stride, int code, Py_ssize_t n,
                  const Py_ssize_t* lmap, Py_ssize_t before, const Py_ssize_t* rmap, Py_ssize_t after,
                  real_t cval, real_t* buf, Py_ssize_t c, Py_ssize_t nc,
                  Py_ssize_t cstride) noexcept nogil:
    """Fill ``buf[q*c + i]`` (q < before + n + after, i < nc) with lines ``base + i*cstride``:
    the line itself at q = before.., the padded positions through the maps (-1: cval)."""
    cdef Py_ssize_t q, i, s
    _load(base, stride, cstride, n, nc, code, buf + before * c, c, 1)
    for q in range(before):
        s = lmap[q]
        if s < 0:
            for i in range(nc):
                buf[q * c + i] = cval
        else:
            for i in range(nc):
                buf[q * c + i] = buf[(before + s) * c + i]
    for q in range(after):
        s = rmap[q]
        if s < 0:
            for i in range(nc):
                buf[(before + n + q) * c + i] = cval
        else:
            for i in range(nc):
                buf[(before + n + q) * c + i] = buf[(before + s) * c + i]


cdef inline void _psweep(real_t* o, Py_ssize_t n, const real_t* ctr, real_t wc, const real_t** ap,
                         const real_t** cp, const real_t* ws, int g, bint fresh, int kind) noexcept nogil:
    if real_t is double:
        if kind == 1:
            nd_psweep_sym_d(o, n, ctr, wc, ap, cp, ws, g, fresh)
        else:
            nd_psweep_anti_d(o, n, ctr, wc, ap, cp, ws, g, fresh)
    else:
        if kind == 1:
            nd_psweep_sym_f(o, n, ctr, wc, ap, cp, ws, g, fresh)
        else:
            nd_psweep_anti_f(o, n, ctr, wc, ap, cp, ws, g, fresh)


cdef void _taps(const real_t* b, Py_ssize_t stride, real_t* o, Py_ssize_t n, const real_t* w, Py_ssize_t k,
                int kind) noexcept nogil:
    """``n`` outputs of scipy's 1-D correlation; tap ``t``'s inputs are ``b + t*stride + j``.

    kind 0: ``o = b[k-1] w[k-1] + sum_{t < k-1} b[t] w[t]`` (scipy's order), in fused
    groups of up to 8 taps.  kind 1/2: ``o = b[s1] w[s1] + sum_{t < s1} (b[t] +/- b[2 s1 - t]) w[t]``,
    groups of up to 4 pairs.  Every output adds its terms in scipy's order.
    """
    cdef const real_t* ap[GROUP]
    cdef const real_t* cp[GROUP]
    cdef real_t ws[GROUP]
    cdef Py_ssize_t h, t, s1 = k // 2, ngroups, gsize
    cdef int g = 0
    cdef bint fresh = True
    if kind == 0:
        ngroups = (k + GROUP - 1) // GROUP
        gsize = (k + ngroups - 1) // ngroups
        for h in range(k):
            t = k - 1 if h == 0 else h - 1
            ap[g] = b + t * stride
            ws[g] = w[t]
            g = g + 1
            if g == gsize:
                _sweep(o, n, ap, ws, g, fresh)
                fresh = False
                g = 0
        if g > 0:
            _sweep(o, n, ap, ws, g, fresh)
        return
    if s1 == 0:
        _psweep(o, n, b, w[0], ap, cp, ws, 0, True, kind)
        return
    ngroups = (s1 + 3) // 4
    gsize = (s1 + ngroups - 1) // ngroups
    for t in range(s1):
        ap[g] = b + t * stride
        cp[g] = b + (2 * s1 - t) * stride
        ws[g] = w[t]
        g = g + 1
        if g == gsize:
            _psweep(o, n, b + s1 * stride, w[s1], ap, cp, ws, g, fresh, kind)
            fresh = False
            g = 0
    if g > 0:
        _psweep(o, n, b + s1 * stride, w[s1], ap, cp, ws, g, fresh, kind)


cdef void _filter_line(const real_t* b, real_t* o, Py_ssize_t n, const real_t* w, Py_ssize_t k,
                       int kind) noexcept nogil:
    """One line (c == 1): ``b`` is the extended line, ``o`` gets n outputs."""
    cdef Py_ssize_t l, t
    cdef double acc, inv
    if kind == 3:       # running sum, each output divided by k, in double as scipy
        inv = <double>k
        acc = 0.0
        for t in range(k):
            acc = acc + <double>b[t]
        o[0] = <real_t>(acc / inv)
        for l in range(1, n):
            acc = acc + (<double>b[l - 1 + k] - <double>b[l - 1])
            o[l] = <real_t>(acc / inv)
        return
    _taps(b, 1, o, n, w, k, kind)


cdef void _filter_chunk(const real_t* b, real_t* o, Py_ssize_t n, Py_ssize_t c, Py_ssize_t nc,
                        const real_t* w, Py_ssize_t k, int kind, double* dacc) noexcept nogil:
    """``nc`` lines side by side (``b[q*c + i]``, ``o[l*c + i]``), same formulas, swept across i."""
    cdef Py_ssize_t l, t, i
    cdef double inv
    if kind == 3:
        inv = <double>k
        for i in range(nc):
            dacc[i] = 0.0
        for t in range(k):
            for i in range(nc):
                dacc[i] = dacc[i] + <double>b[t * c + i]
        for i in range(nc):
            o[i] = <real_t>(dacc[i] / inv)
        for l in range(1, n):
            for i in range(nc):
                dacc[i] = dacc[i] + (<double>b[(l - 1 + k) * c + i] - <double>b[(l - 1) * c + i])
                o[l * c + i] = <real_t>(dacc[i] / inv)
        return
    for l in range(n):
        _taps(b + l * c, c, o + l * c, nc, w, k, kind)


def corr1d(Py_ssize_t src, int scode, Py_ssize_t dst, int dcode,
           const Py_ssize_t[::1] shape, const Py_ssize_t[::1] istr, const Py_ssize_t[::1] ostr,
           const real_t[::1] w, int kind, const Py_ssize_t[::1] fmap, Py_ssize_t before,
           real_t cval, Py_ssize_t c, Py_ssize_t rows, int nthreads):
    """1-D correlation along the LAST entry of ``shape`` (dims reordered by the caller).

    ``shape``/``istr``/``ostr``: dims (outer..., inner, axis) with byte strides of input
    and output.  ``w``: the weights (``kind`` 0 general, 1 symmetric, 2 antisymmetric,
    3 uniform of size ``len(w)``); ``fmap``: source index of each padded position
    ``q - before`` of the axis, q < n + len(w) - 1 (-1: ``cval``).

    ``c == 1``: a work item is one line, extended in place in the buffer.  ``c > 1``:
    a work item is ``c`` lines of the inner dim side by side and ``rows`` positions
    along the axis (a tile), its input rows read through ``fmap``; tiles of one line
    read each other's rows, so the caller passes ``rows == n`` when the output is
    the input (and for the running sum, whose rounding starts at the line's start).
    """
    cdef int nd = <int>shape.shape[0]
    cdef Py_ssize_t n = shape[nd - 1], k = w.shape[0]
    cdef Py_ssize_t after = k - 1 - before
    cdef Py_ssize_t m = shape[nd - 2] if nd >= 2 else 1
    cdef Py_ssize_t si_in = istr[nd - 2] if nd >= 2 else 0
    cdef Py_ssize_t si_out = ostr[nd - 2] if nd >= 2 else 0
    cdef Py_ssize_t nouter = 1, nchunks, nblocks, nitems, it, ob, r, oi, ioff, ooff, i0, nc, r0, nr, q, s
    cdef int d
    cdef real_t* buf
    cdef real_t* obuf
    cdef double* dacc
    cdef Py_ssize_t sh[MAXD]
    cdef Py_ssize_t ist[MAXD]
    cdef Py_ssize_t ost[MAXD]
    if nd < 1 or nd > MAXD or k < 1:
        raise ValueError("corr1d: bad geometry")
    for d in range(nd):
        sh[d] = shape[d]
        ist[d] = istr[d]
        ost[d] = ostr[d]
        if sh[d] == 0:
            return
    for d in range(nd - 2):
        nouter *= sh[d]
    if c < 1:
        c = 1
    if c == 1 or rows < 1 or rows > n:
        rows = n
    nchunks = (m + c - 1) // c
    nblocks = (n + rows - 1) // rows
    nitems = nouter * nchunks * nblocks
    cdef bint direct = ost[nd - 1] == <Py_ssize_t>sizeof(real_t) and dcode == _code_of(cval)
    cdef int failed = 0
    cdef int* failp = &failed
    with nogil, parallel(num_threads=nthreads):
        buf = <real_t*>malloc((rows + k - 1) * c * sizeof(real_t))
        obuf = <real_t*>malloc(rows * c * sizeof(real_t))
        dacc = <double*>malloc(c * sizeof(double))
        if buf != NULL and obuf != NULL and dacc != NULL:
            for it in prange(nitems, schedule='dynamic'):
                r0 = (it % nblocks) * rows
                nr = rows if r0 + rows <= n else n - r0
                ob = it // nblocks
                i0 = (ob % nchunks) * c
                ob = ob // nchunks
                nc = c if i0 + c <= m else m - i0
                # outer multi-index -> byte offsets
                ioff = i0 * si_in
                ooff = i0 * si_out + r0 * ost[nd - 1]
                r = ob
                for d in range(nd - 3, -1, -1):
                    oi = r % sh[d]
                    r = r // sh[d]
                    ioff = ioff + oi * ist[d]
                    ooff = ooff + oi * ost[d]
                if c == 1:
                    _extend(<const char*>src + ioff, ist[nd - 1], scode, n, &fmap[0],
                            before, &fmap[0] + (before + n), after, cval, buf, 1, 1, 0)
                    if direct:      # the line is in the buffer: write the output row itself
                        _filter_line(buf, <real_t*>(<char*>dst + ooff), n, &w[0], k, kind)
                    else:
                        _filter_line(buf, obuf, n, &w[0], k, kind)
                        _store(obuf, 1, 1, n, 1, dcode, <char*>dst + ooff, ost[nd - 1], 0)
                else:
                    # the tile's padded rows r0 .. r0 + nr + k - 2, each from its source row
                    for q in range(nr + k - 1):
                        s = fmap[r0 + q]
                        if s < 0:
                            for r in range(nc):
                                buf[q * c + r] = cval
                        else:
                            _load(<const char*>src + ioff + s * ist[nd - 1], 0, si_in, 1, nc, scode,
                                  buf + q * c, 0, 1)
                    _filter_chunk(buf, obuf, nr, c, nc, &w[0], k, kind, dacc)
                    _store(obuf, c, 1, nr, nc, dcode, <char*>dst + ooff, ost[nd - 1], si_out)
        else:
            failp[0] = 1
        free(buf)
        free(obuf)
        free(dacc)
    if failed:
        raise MemoryError("corr1d: could not allocate the per-thread line buffers")


# --------------------------------------------------------------------------- N-d

cdef inline void _sweep(real_t* o, Py_ssize_t n, const real_t** ap, const real_t* ws, int g,
                        bint fresh) noexcept nogil:
    if real_t is double:
        nd_sweep_d(o, n, ap, ws, g, fresh)
    else:
        nd_sweep_f(o, n, ap, ws, g, fresh)


ctypedef struct NdGeo:
    int nd
    const char* src
    int scode
    char* dst
    int dcode
    const Py_ssize_t* shape
    const Py_ssize_t* istr
    const Py_ssize_t* ostr
    const Py_ssize_t* kshape
    const Py_ssize_t* tap_off
    Py_ssize_t ntaps
    const Py_ssize_t* maps
    const Py_ssize_t* map_off
    const Py_ssize_t* before
    Py_ssize_t ko_count
    Py_ssize_t rows
    int gsize           # taps per fused sweep (balanced groups of at most GROUP)


cdef void _nd_item(const NdGeo* G, const real_t* tap_w, real_t cval, Py_ssize_t plane, Py_ssize_t r0,
                   Py_ssize_t r1, real_t* buf, real_t* obuf) noexcept nogil:
    """Output rows r0:r1 of plane ``plane`` (flat index over the dims before the last two)."""
    cdef int nd = G.nd, d, g
    cdef Py_ssize_t n = G.shape[nd - 1], kw = G.kshape[nd - 1], kh = G.kshape[nd - 2]
    cdef Py_ssize_t L = n + kw - 1, npr = G.rows + kh - 1
    cdef Py_ssize_t pos[MAXD]
    cdef Py_ssize_t kpos[MAXD]
    cdef const real_t* gap[GROUP]
    cdef real_t gw[GROUP]
    cdef Py_ssize_t rem, ko, off, s, pr, q, rr, t, bl
    cdef bint dead, fresh
    cdef real_t* ext
    cdef Py_ssize_t nflat, f0, seg
    cdef const Py_ssize_t* mp = G.maps + G.map_off[nd - 1]
    bl = G.before[nd - 1]
    rem = plane
    for d in range(nd - 3, -1, -1):
        pos[d] = rem % G.shape[d]
        rem = rem // G.shape[d]
    # 1) the extended input rows the run needs, per kernel position in the outer dims
    for ko in range(G.ko_count):
        rem = ko
        off = 0
        dead = False
        for d in range(nd - 3, -1, -1):
            kpos[d] = rem % G.kshape[d]
            rem = rem // G.kshape[d]
            s = G.maps[G.map_off[d] + pos[d] + kpos[d]]
            if s < 0:
                dead = True
            else:
                off = off + s * G.istr[d]
        for pr in range(r1 - r0 + kh - 1):
            ext = buf + (ko * npr + pr) * L
            s = -1 if dead else G.maps[G.map_off[nd - 2] + r0 + pr]
            if s < 0:
                for q in range(L):
                    ext[q] = cval
            else:
                _extend(G.src + off + s * G.istr[nd - 2], G.istr[nd - 1], G.scode, n,
                        mp, bl, mp + bl + n, kw - 1 - bl, cval, ext, 1, 1, 0)
    # 2) the run's rows as one flat sweep per group of taps: output row rr, column j is flat
    #    position (rr - r0) * L + j, and a tap reads the buffer at a constant offset from it
    #    (the L - n columns between rows are computed and dropped), taps in C order
    #    in segments that keep the sums in L1 while every group sweeps them
    nflat = (r1 - r0) * L
    f0 = 0
    while f0 < nflat:
        seg = SEG if f0 + SEG <= nflat else nflat - f0
        g = 0
        fresh = True
        for t in range(G.ntaps):
            gap[g] = buf + G.tap_off[t] + f0
            gw[g] = tap_w[t]
            g = g + 1
            if g == G.gsize:
                _sweep(obuf + f0, seg, gap, gw, g, fresh)
                fresh = False
                g = 0
        if g > 0:
            _sweep(obuf + f0, seg, gap, gw, g, fresh)
            fresh = False
        if fresh:
            for q in range(f0, f0 + seg):
                obuf[q] = 0
        f0 = f0 + SEG
    for rr in range(r0, r1):
        off = rr * G.ostr[nd - 2]
        for d in range(nd - 2):
            off = off + pos[d] * G.ostr[d]
        _store(obuf + (rr - r0) * L, 1, 1, 1, n, G.dcode, G.dst + off, 0, G.ostr[nd - 1])


def corrnd(Py_ssize_t src, int scode, Py_ssize_t dst, int dcode,
           const Py_ssize_t[::1] shape, const Py_ssize_t[::1] istr, const Py_ssize_t[::1] ostr,
           const Py_ssize_t[::1] kshape, const Py_ssize_t[::1] tap_off, const real_t[::1] tap_w,
           const Py_ssize_t[::1] maps, const Py_ssize_t[::1] map_off, const Py_ssize_t[::1] before,
           real_t cval, Py_ssize_t rows, int nthreads):
    """N-d correlation, nd = len(shape) >= 2, output shape == input shape.

    Taps: the nonzero weights ``tap_w`` in the kernel's C order, and for each the
    offset ``(ko * (rows + kh - 1) + kr) * (n + kw - 1) + kc`` of its first input in
    the row buffer (``ko``: flat kernel index over the outer dims, ``kr``/``kc``: its
    row and column; ``kshape`` = (..., kh, kw), ``n`` the last axis' size).  ``maps[map_off[d]:]``:
    for axis d, the source index of padded position q - before[d] for
    q < shape[d] + kshape[d] - 1 (-1: ``cval``).  ``rows``: output rows per work item.
    """
    cdef NdGeo G
    cdef int nd = <int>shape.shape[0], d
    cdef Py_ssize_t nplanes = 1, nchunks, nitems, it, plane, r0, r1, nr, L, ngroups
    cdef real_t* buf
    cdef real_t* obuf
    if nd < 2 or nd > MAXD:
        raise ValueError("corrnd: bad geometry")
    for d in range(nd):
        if shape[d] == 0:
            return
    G.nd = nd
    G.src = <const char*>src
    G.scode = scode
    G.dst = <char*>dst
    G.dcode = dcode
    G.shape = &shape[0]
    G.istr = &istr[0]
    G.ostr = &ostr[0]
    G.kshape = &kshape[0]
    G.ntaps = tap_w.shape[0]
    G.tap_off = &tap_off[0] if G.ntaps else NULL
    G.maps = &maps[0]
    G.map_off = &map_off[0]
    G.before = &before[0]
    G.ko_count = 1
    for d in range(nd - 2):
        G.ko_count *= kshape[d]
        nplanes *= shape[d]
    G.rows = rows if rows >= 1 else 1
    ngroups = (G.ntaps + GROUP - 1) // GROUP
    G.gsize = <int>((G.ntaps + ngroups - 1) // ngroups) if ngroups > 0 else 1
    nr = shape[nd - 2]
    L = shape[nd - 1] + kshape[nd - 1] - 1
    nchunks = (nr + G.rows - 1) // G.rows
    nitems = nplanes * nchunks
    cdef int failed = 0
    cdef int* failp = &failed
    with nogil, parallel(num_threads=nthreads):
        # (+ L: a flat sweep reads up to kw - 1 junk columns past the last row)
        buf = <real_t*>malloc((G.ko_count * (G.rows + kshape[nd - 2] - 1) + 1) * L * sizeof(real_t))
        obuf = <real_t*>malloc(G.rows * L * sizeof(real_t))
        if buf != NULL and obuf != NULL:
            for it in prange(nitems, schedule='dynamic'):
                plane = it // nchunks
                r0 = (it - plane * nchunks) * G.rows
                r1 = r0 + G.rows if r0 + G.rows <= nr else nr
                _nd_item(&G, &tap_w[0] if G.ntaps else NULL, cval, plane, r0, r1, buf, obuf)
        else:
            failp[0] = 1
        free(buf)
        free(obuf)
    if failed:
        raise MemoryError("corrnd: could not allocate the per-thread row buffers")
