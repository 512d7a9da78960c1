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
#   output divided by the size), all taps in one register-blocked pass along the
#   line or across the tile, so float64 and integer results are scipy's bits.  A
#   line is read before it is written, so the output may be the input (separable
#   filters chain their passes in place).  Tiles of whole lines (in place, and the
#   running sum, whose rounding runs from the line's start) stream their rows
#   through a ring of k (k + 1) rows; in place the k - 1 rows the boundary
#   extension reads are saved first.
#   A thread takes runs of consecutive items (contiguous memory).
# * ``corrnd``: the N-d correlation.  A work item is a run of consecutive output
#   rows (last axis), in segments within one plane.  Input rows of the compute
#   type with contiguous rows are read in place: only the columns the first and
#   last outputs of a row read past the edge (the boundary mode applied) are
#   copied, as small strips, and those edge outputs are summed for all the
#   segment's rows at once; then each row's interior adds its nonzero taps in
#   the kernel's C order with the sums in registers.  Other inputs (another
#   dtype, strided rows, rows shorter than the kernel) have the rows the segment
#   needs extended once into a per-thread buffer and summed as one flat row (a
#   tap reads the buffer at a constant offset; the kw - 1 columns between rows
#   are computed and dropped).  Either way: scipy's order, one multiply and one
#   add per tap (the module is built with -ffp-contract=off in every SIMD variant).
#
# The caller (pyconv/ndimage.py) checks every bound: shapes, strides and maps
# are consistent and every map entry is -1 or a valid index.
from cython.parallel cimport parallel
from libc.stdlib cimport malloc, free
cimport numpy as cnp

from pyconv._kernels._common cimport pyconv_take, real_t, pyconv_cpu, pyconv_unstack

cnp.import_array()


def data_address(cnp.ndarray a not None):
    """The address of ``a``'s first element (``a.__array_interface__['data'][0]`` at a
    twentieth of the cost)."""
    return <Py_ssize_t>cnp.PyArray_DATA(a)

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
    void nd_taps_d(double* o, Py_ssize_t n, const double* const* ap, const double* ws, Py_ssize_t g) noexcept nogil
    void nd_taps_f(float* o, Py_ssize_t n, const float* const* ap, const float* ws, Py_ssize_t g) noexcept nogil
    void nd_ptaps_sym_d(double* o, Py_ssize_t n, const double* ctr, double wc, const double* const* ap,
                        const double* const* cp, const double* ws, Py_ssize_t g) noexcept nogil
    void nd_ptaps_sym_f(float* o, Py_ssize_t n, const float* ctr, float wc, const float* const* ap,
                        const float* const* cp, const float* ws, Py_ssize_t g) noexcept nogil
    void nd_ptaps_anti_d(double* o, Py_ssize_t n, const double* ctr, double wc, const double* const* ap,
                         const double* const* cp, const double* ws, Py_ssize_t g) noexcept nogil
    void nd_ptaps_anti_f(float* o, Py_ssize_t n, const float* ctr, float wc, const float* const* ap,
                         const float* const* cp, const float* ws, Py_ssize_t g) noexcept nogil
    void nd_prefetch(const void* p, Py_ssize_t bytes, int write) noexcept nogil
    void nd_rsum_d(double* acc, double* o, const double* add, const double* sub, Py_ssize_t n, double k) noexcept nogil
    void nd_rsum_f(double* acc, float* o, const float* add, const float* sub, Py_ssize_t n, double k) noexcept nogil

cdef enum:
    MAXD = 64


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


cdef inline void _tapsum(real_t* o, Py_ssize_t n, const real_t** ap, const real_t* ws, Py_ssize_t g) noexcept nogil:
    if real_t is double:
        nd_taps_d(o, n, ap, ws, g)
    else:
        nd_taps_f(o, n, ap, ws, g)


cdef inline void _ptapsum(real_t* o, Py_ssize_t n, const real_t* ctr, real_t wc, const real_t** ap,
                          const real_t** cp, const real_t* ws, Py_ssize_t g, int kind) noexcept nogil:
    if real_t is double:
        if kind == 1:
            nd_ptaps_sym_d(o, n, ctr, wc, ap, cp, ws, g)
        else:
            nd_ptaps_anti_d(o, n, ctr, wc, ap, cp, ws, g)
    else:
        if kind == 1:
            nd_ptaps_sym_f(o, n, ctr, wc, ap, cp, ws, g)
        else:
            nd_ptaps_anti_f(o, n, ctr, wc, ap, cp, ws, g)


cdef inline void _rsum(double* acc, real_t* o, const real_t* add, const real_t* sub, Py_ssize_t n,
                       double k) noexcept nogil:
    if real_t is double:
        nd_rsum_d(acc, o, add, sub, n, k)
    else:
        nd_rsum_f(acc, o, add, sub, n, k)


cdef void _taps_rows(const real_t** rp, real_t* o, Py_ssize_t n, const real_t* w, Py_ssize_t k,
                     int kind, const real_t** ap, real_t* ws) noexcept nogil:
    """As :func:`_taps`, tap ``t``'s inputs at ``rp[t] + j`` (rows anywhere, e.g. a ring)."""
    cdef Py_ssize_t h, t, s1 = k // 2
    if kind == 0:
        for h in range(k):
            t = k - 1 if h == 0 else h - 1
            ap[h] = rp[t]
            ws[h] = w[t]
        _tapsum(o, n, ap, ws, k)
        return
    for t in range(s1):
        ap[t] = rp[t]
        ap[s1 + t] = rp[2 * s1 - t]
        ws[t] = w[t]
    _ptapsum(o, n, rp[s1], w[s1], ap, ap + s1, ws, s1, kind)


cdef void _taps(const real_t* b, Py_ssize_t stride, real_t* o, Py_ssize_t n, const real_t* w, Py_ssize_t k,
                int kind, const real_t** ap, real_t* ws) noexcept nogil:
    """``n`` outputs of scipy's 1-D correlation; tap ``t``'s inputs are ``b + t*stride + j``.

    kind 0: ``o = b[k-1] w[k-1] + sum_{t < k-1} b[t] w[t]`` (scipy's order).  kind 1/2:
    ``o = b[s1] w[s1] + sum_{t < s1} (b[t] +/- b[2 s1 - t]) w[t]``.  Every output adds its
    terms in scipy's order, all taps in one register-blocked pass.  ``ap`` (room for k
    pointers) and ``ws`` (k values) are the caller's scratch.
    """
    cdef Py_ssize_t h, t, s1 = k // 2
    if kind == 0:
        for h in range(k):
            t = k - 1 if h == 0 else h - 1
            ap[h] = b + t * stride
            ws[h] = w[t]
        _tapsum(o, n, ap, ws, k)
        return
    for t in range(s1):
        ap[t] = b + t * stride
        ap[s1 + t] = b + (2 * s1 - t) * stride
        ws[t] = w[t]
    _ptapsum(o, n, b + s1 * stride, w[s1], ap, ap + s1, ws, s1, kind)


cdef void _filter_line(const real_t* b, real_t* o, Py_ssize_t n, const real_t* w, Py_ssize_t k,
                       int kind, const real_t** ap, real_t* ws) noexcept nogil:
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
    _taps(b, 1, o, n, w, k, kind, ap, ws)


cdef void _filter_chunk(const real_t* b, real_t* o, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t c, Py_ssize_t nc,
                        const real_t* w, Py_ssize_t k, int kind, double* dacc, const real_t** ap,
                        real_t* ws) noexcept nogil:
    """``nc`` lines side by side (``b[q*c + i]``, ``o[l*ldo + i]``), same formulas, swept across i."""
    cdef Py_ssize_t l, t, i
    cdef double inv
    if kind == 3:
        inv = <double>k
        for i in range(nc):
            dacc[i] = 0.0
        for t in range(k - 1):
            _rsum(dacc, NULL, b + t * c, NULL, nc, inv)
        _rsum(dacc, o, b + (k - 1) * c, NULL, nc, inv)
        for l in range(1, n):
            _rsum(dacc, o + l * ldo, b + (l - 1 + k) * c, b + (l - 1) * c, nc, inv)
        return
    for l in range(n):
        _taps(b + l * c, c, o + l * ldo, nc, w, k, kind, ap, ws)


ctypedef struct LineGeo:
    int nd
    const char* src
    int scode
    char* dst
    int dcode
    const Py_ssize_t* sh
    const Py_ssize_t* ist
    const Py_ssize_t* ost
    Py_ssize_t n, k, before, m, c, rows, nchunks, nblocks
    const Py_ssize_t* fmap
    int kind
    bint direct         # c == 1: the output row is of the compute type and contiguous: written in place
    bint tdirect        # c > 1: the output is of the compute type, contiguous across the tile's lines
    bint stream         # c > 1, whole lines (running sum, or in place): the rows pass through a ring
    bint inplace        # the output is the input (same addresses and strides)
    bint srcdirect      # stream, not in place: input rows of the compute type read where they lie


cdef void _stream(const LineGeo* G, Py_ssize_t ioff, Py_ssize_t ooff, Py_ssize_t nc, const real_t* w,
                  real_t cval, real_t* ring, real_t* obuf, double* dacc, const real_t** rp,
                  const real_t** ap, real_t* ws) noexcept nogil:
    """Whole lines of a tile of ``nc`` lines, the padded rows taken one at a time through a
    ring of K rows (slot q % K holds padded row q; K = k + 1 for the running sum, which
    also subtracts the row leaving the window, else k): the window is all an output row
    needs, so the tile can be wide whatever the line length.  Same sums in the same order
    as :func:`_filter_chunk`.

    A row of the compute type, contiguous across the tile and not in place, is read
    where it lies (``G.srcdirect``); others are copied into the ring.  In place, output
    row l overwrites input row l once the window has read it (rows after l are still
    intact when loaded), but the boundary extension reads rows anywhere in the line:
    those k - 1 rows are saved first.  ``ring``: K rows, then k - 1 saved edge rows,
    then a row of ``cval``, c values each; ``rp``: room for K + k pointers.
    """
    cdef int nd = G.nd
    cdef Py_ssize_t n = G.n, k = G.k, c = G.c, bf = G.before, K = G.k + 1 if G.kind == 3 else G.k
    cdef Py_ssize_t l, q, t, i, s, e, s1
    cdef Py_ssize_t si_in = G.ist[nd - 2], si_out = G.ost[nd - 2], sa = G.ist[nd - 1]
    cdef Py_ssize_t rbytes = nc * si_in if si_in > 0 and si_in <= 8 else 0      # contiguous across lines
    cdef double inv = <double>k
    cdef real_t* edge = ring + K * c
    cdef real_t* cvrow = edge + (k - 1) * c
    cdef const real_t** win = rp + K
    cdef real_t* slot
    cdef const real_t* row
    cdef real_t* o
    for i in range(nc):
        cvrow[i] = cval
    if G.inplace:
        for e in range(k - 1):          # the extension's rows: padded positions e (< bf) and e + n
            s = G.fmap[e if e < bf else e + n]
            if s >= 0:
                _load(G.src + ioff + s * sa, 0, si_in, 1, nc, G.scode, edge + e * c, 0, 1)
    if G.kind == 3:
        for i in range(nc):
            dacc[i] = 0.0
    for q in range(n + k - 1):
        s = G.fmap[q]
        if s < 0:
            row = cvrow
        elif G.inplace and (q < bf or q >= bf + n):
            row = edge + (q if q < bf else q - n) * c
        elif G.srcdirect:
            row = <const real_t*>(G.src + ioff + s * sa)
        else:
            slot = ring + (q % K) * c
            _load(G.src + ioff + s * sa, 0, si_in, 1, nc, G.scode, slot, 0, 1)
            row = slot
        rp[q % K] = row
        if q + 1 < n + k - 1 and rbytes:        # the next row from memory, while this one is summed
            s1 = G.fmap[q + 1]
            if s1 >= 0 and not (G.inplace and (q + 1 < bf or q + 1 >= bf + n)):
                nd_prefetch(G.src + ioff + s1 * sa, rbytes, 0)
        if q < k - 1:
            if G.kind == 3:
                _rsum(dacc, NULL, row, NULL, nc, inv)
            continue
        l = q - k + 1                   # the output row this padded row completes
        o = <real_t*>(G.dst + ooff + l * G.ost[nd - 1]) if G.tdirect else obuf
        if G.kind == 3:
            _rsum(dacc, o, row, NULL if l == 0 else rp[(l - 1) % K], nc, inv)
        else:
            for t in range(k):
                win[t] = rp[(l + t) % K]
            _taps_rows(win, o, nc, w, k, G.kind, ap, ws)
        if not G.tdirect:
            _store(obuf, 0, 1, 1, nc, G.dcode, G.dst + ooff + l * G.ost[nd - 1], 0, si_out)


cdef void _line_item(const LineGeo* G, Py_ssize_t it, const real_t* w, real_t cval, real_t* buf, real_t* obuf,
                     double* dacc, const real_t** rp, const real_t** ap, real_t* ws) noexcept nogil:
    """Work item ``it`` of corr1d: one line (c == 1) or one tile of c lines by ``rows`` positions."""
    cdef int nd = G.nd, d
    cdef Py_ssize_t n = G.n, k = G.k, c = G.c, rows = G.rows
    cdef Py_ssize_t r0, nr, ob, i0, nc, ioff, ooff, r, oi, q, s
    cdef Py_ssize_t si_in = G.ist[nd - 2] if nd >= 2 else 0
    cdef Py_ssize_t si_out = G.ost[nd - 2] if nd >= 2 else 0
    r0 = (it % G.nblocks) * rows
    nr = rows if r0 + rows <= n else n - r0
    ob = it // G.nblocks
    i0 = (ob % G.nchunks) * c
    ob = ob // G.nchunks
    nc = c if i0 + c <= G.m else G.m - i0
    # outer multi-index -> byte offsets
    ioff = i0 * si_in
    ooff = i0 * si_out + r0 * G.ost[nd - 1]
    r = ob
    for d in range(nd - 3, -1, -1):
        oi = r % G.sh[d]
        r = r // G.sh[d]
        ioff = ioff + oi * G.ist[d]
        ooff = ooff + oi * G.ost[d]
    if c == 1:
        _extend(G.src + ioff, G.ist[nd - 1], G.scode, n, G.fmap, G.before, G.fmap + (G.before + n),
                k - 1 - G.before, cval, buf, 1, 1, 0)
        if G.direct:        # the line is in the buffer: write the output row itself
            _filter_line(buf, <real_t*>(G.dst + ooff), n, w, k, G.kind, ap, ws)
        else:
            _filter_line(buf, obuf, n, w, k, G.kind, ap, ws)
            _store(obuf, 1, 1, n, 1, G.dcode, G.dst + ooff, G.ost[nd - 1], 0)
        return
    if G.stream:
        _stream(G, ioff, ooff, nc, w, cval, buf, obuf, dacc, rp, ap, ws)
        return
    # the tile's padded rows r0 .. r0 + nr + k - 2, each from its source row
    for q in range(nr + k - 1):
        s = G.fmap[r0 + q]
        if s < 0:
            for r in range(nc):
                buf[q * c + r] = cval
        else:
            _load(G.src + ioff + s * G.ist[nd - 1], 0, si_in, 1, nc, G.scode, buf + q * c, 0, 1)
    if G.tdirect:           # the tile's input is in the buffer: write the output rows themselves
        _filter_chunk(buf, <real_t*>(G.dst + ooff), G.ost[nd - 1] // <Py_ssize_t>sizeof(real_t), nr, c, nc,
                      w, k, G.kind, dacc, ap, ws)
    else:
        _filter_chunk(buf, obuf, c, nr, c, nc, w, k, G.kind, dacc, ap, ws)
        _store(obuf, c, 1, nr, nc, G.dcode, G.dst + ooff, G.ost[nd - 1], si_out)


def corr1d(cnp.ndarray src, int scode, cnp.ndarray dst, int dcode,
           const Py_ssize_t[::1] shape, const Py_ssize_t[::1] istr, const Py_ssize_t[::1] ostr,
           const real_t[::1] w, int kind, const Py_ssize_t[::1] fmap, Py_ssize_t before,
           real_t cval, Py_ssize_t c, Py_ssize_t rows, bint inplace, int nthreads):
    """1-D correlation along the LAST entry of ``shape`` (dims reordered by the caller).

    ``shape``/``istr``/``ostr``: dims (outer..., inner, axis) with byte strides of input
    and output.  ``w``: the weights (``kind`` 0 general, 1 symmetric, 2 antisymmetric,
    3 uniform of size ``len(w)``); ``fmap``: source index of each padded position
    ``q - before`` of the axis, q < n + len(w) - 1 (-1: ``cval``).

    ``c == 1``: a work item is one line, extended in place in the buffer.  ``c > 1``:
    a work item is ``c`` lines of the inner dim side by side and ``rows`` positions
    along the axis (a tile), its input rows read through ``fmap``; tiles of one line
    read each other's rows, so the caller passes ``rows == n`` when the output is
    the input (``inplace``) and for the running sum, whose rounding starts at the
    line's start; such whole-line tiles stream their rows through a ring of k (the
    running sum k + 1) rows instead of holding whole lines (see :func:`_stream`).

    ``src``/``dst``: the input and output arrays (their data from ``shape`` and the
    strides above; the caller checks every bound).  A thread takes runs of consecutive
    items (about 8 runs per thread, dynamically): neighbouring lines are neighbouring
    memory, which the prefetchers follow and no other thread writes.
    """
    cdef int mcpu = pyconv_cpu()
    cdef LineGeo G
    cdef int nd = <int>shape.shape[0]
    cdef Py_ssize_t n = shape[nd - 1], k = w.shape[0]
    cdef Py_ssize_t nouter = 1, nitems, run
    cdef int d
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
    G.nd = nd
    G.src = <const char*>cnp.PyArray_DATA(src)
    G.scode = scode
    G.dst = <char*>cnp.PyArray_DATA(dst)
    G.dcode = dcode
    G.sh = sh
    G.ist = ist
    G.ost = ost
    G.n = n
    G.k = k
    G.before = before
    G.m = shape[nd - 2] if nd >= 2 else 1
    G.c = c
    G.rows = rows
    G.nchunks = (G.m + c - 1) // c
    G.nblocks = (n + rows - 1) // rows
    G.fmap = &fmap[0]
    G.kind = kind
    G.direct = ost[nd - 1] == <Py_ssize_t>sizeof(real_t) and dcode == _code_of(cval)
    G.tdirect = (nd >= 2 and dcode == _code_of(cval) and ost[nd - 2] == <Py_ssize_t>sizeof(real_t)
                 and ost[nd - 1] % <Py_ssize_t>sizeof(real_t) == 0)
    G.stream = c > 1 and rows == n and (kind == 3 or inplace)
    G.inplace = inplace
    G.srcdirect = (G.stream and not inplace and scode == _code_of(cval) and nd >= 2
                   and ist[nd - 2] == <Py_ssize_t>sizeof(real_t))
    nitems = nouter * G.nchunks * G.nblocks
    run = (nitems + 8 * nthreads - 1) // (8 * nthreads) if nthreads > 1 else nitems
    cdef Py_ssize_t next_run = 0
    cdef int failed = 0
    cdef Py_ssize_t* nextp = &next_run
    cdef int* failp = &failed
    if nthreads <= 1:
        # (one thread: no parallel region, whose entry and exit cost a small filter 0.7 us)
        with nogil:
            _lines_work(&G, &w[0], cval, nitems, run, nextp, failp)
    else:
        with nogil, parallel(num_threads=nthreads):
            pyconv_unstack(mcpu)
            _lines_work(&G, &w[0], cval, nitems, run, nextp, failp)
    if failed:
        raise MemoryError("corr1d: could not allocate the per-thread line buffers")


cdef void _lines_work(const LineGeo* G, const real_t* w, real_t cval, Py_ssize_t nitems, Py_ssize_t run,
                      Py_ssize_t* next_run, int* failp) noexcept nogil:
    """One thread's part of corr1d: its buffers, then runs of ``run`` items taken in turn
    from the team's counter ``next_run`` until none is left (``failp``: set when the
    buffers cannot be had)."""
    cdef Py_ssize_t k = G.k, c = G.c, rows = G.rows, ri, it, it1
    cdef Py_ssize_t nruns = (nitems + run - 1) // run
    cdef real_t* buf = <real_t*>malloc(((2 * k + 1) if G.stream else (rows + k - 1)) * c * sizeof(real_t))
    cdef real_t* obuf = <real_t*>malloc((1 if G.stream else rows) * c * sizeof(real_t))
    cdef double* dacc = <double*>malloc(c * sizeof(double))
    cdef const real_t** rp = <const real_t**>malloc((2 * k + 1) * sizeof(real_t*))
    cdef const real_t** ap = <const real_t**>malloc(k * sizeof(real_t*))
    cdef real_t* ws = <real_t*>malloc(k * sizeof(real_t))
    if buf != NULL and obuf != NULL and dacc != NULL and rp != NULL and ap != NULL and ws != NULL:
        ri = pyconv_take(next_run)
        while ri < nruns:
            it1 = (ri + 1) * run
            if it1 > nitems:
                it1 = nitems
            for it in range(ri * run, it1):
                _line_item(G, it, w, cval, buf, obuf, dacc, rp, ap, ws)
            ri = pyconv_take(next_run)
    else:
        failp[0] = 1
    free(buf)
    free(obuf)
    free(dacc)
    free(rp)
    free(ap)
    free(ws)


# --------------------------------------------------------------------------- N-d

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
    const Py_ssize_t* tap_ko
    const Py_ssize_t* tap_kr
    const Py_ssize_t* tap_kc
    Py_ssize_t ntaps
    const Py_ssize_t* maps
    const Py_ssize_t* map_off
    const Py_ssize_t* before
    Py_ssize_t ko_count
    Py_ssize_t brows    # output rows per segment (bounds the per-thread buffer)
    bint direct         # input rows read in place (compute type, contiguous, n >= kw)
    bint direct_out     # output rows written in place (compute type, contiguous)
    Py_ssize_t sw       # direct: one input row's two edge strips, (kw - 1 + bl) + (ar + kw - 1)


cdef void _nd_seg(const NdGeo* G, const real_t* tap_w, real_t cval, Py_ssize_t plane, Py_ssize_t r0,
                  Py_ssize_t r1, real_t* buf, real_t* obuf, const real_t** rowp, const real_t* cvalrow,
                  const real_t** ap, Py_ssize_t* trow) noexcept nogil:
    """Output rows r0:r1 of plane ``plane`` (flat index over the dims before the last two).

    The input rows the segment needs (per kernel position in the outer dims, per padded
    row) are located once.  Direct: each is read in place for the interior columns, and
    its two edge strips (the columns the first ``bl`` and last ``ar`` outputs read, the
    boundary applied) are built in ``buf``; a row past a 'constant' edge is ``cvalrow``.
    The edge outputs of all the segment's rows are summed first, one column at a time
    (vectorised across rows), then each row's interior.
    Otherwise each row is extended whole into ``buf`` (any dtype or stride) and the
    segment's rows are summed as one flat row (a tap reads the buffer at a constant
    offset; the kw - 1 columns between rows are computed and dropped).  Either way
    every output adds its nonzero taps in the kernel's C order, in registers.
    """
    cdef int nd = G.nd, d
    cdef Py_ssize_t n = G.shape[nd - 1], kw = G.kshape[nd - 1], kh = G.kshape[nd - 2]
    cdef Py_ssize_t L = n + kw - 1, npr = r1 - r0 + kh - 1, nt = G.ntaps
    cdef Py_ssize_t bl = G.before[nd - 1], ar = kw - 1 - bl, sw = G.sw, lw = kw - 1 + bl
    cdef Py_ssize_t pos[MAXD]
    cdef Py_ssize_t rem, ko, off, s, pr, q, rr, t, col, idx, ooff, e, nrow = r1 - r0
    cdef bint dead
    cdef real_t* ext
    cdef real_t* eb
    cdef real_t* o
    cdef const real_t* row
    cdef const Py_ssize_t* mp = G.maps + G.map_off[nd - 1]
    rem = plane
    for d in range(nd - 3, -1, -1):
        pos[d] = rem % G.shape[d]
        rem = rem // G.shape[d]
    for t in range(nt):
        trow[t] = G.tap_ko[t] * npr + G.tap_kr[t]
    # 1) the input rows, per kernel position in the outer dims
    for ko in range(G.ko_count):
        rem = ko
        off = 0
        dead = False
        for d in range(nd - 3, -1, -1):
            s = G.maps[G.map_off[d] + pos[d] + rem % G.kshape[d]]
            rem = rem // G.kshape[d]
            if s < 0:
                dead = True
            else:
                off = off + s * G.istr[d]
        for pr in range(npr):
            idx = ko * npr + pr
            s = -1 if dead else G.maps[G.map_off[nd - 2] + r0 + pr]
            if G.direct:
                # the strips column-major, S[(ko * sw + q) * npr + pr]: an edge column of
                # consecutive output rows is then contiguous (summed for all rows at once)
                ext = buf + ko * sw * npr + pr
                if s < 0:
                    rowp[idx] = cvalrow
                    for q in range(sw):
                        ext[q * npr] = cval
                    continue
                row = <const real_t*>(G.src + off + s * G.istr[nd - 2])
                rowp[idx] = row
                for q in range(lw):                 # columns -bl .. kw - 2
                    col = q - bl
                    if col < 0:
                        col = mp[q]
                    ext[q * npr] = cval if col < 0 else row[col]
                for q in range(ar + kw - 1):        # columns n - ar - bl .. n + ar - 1
                    col = n - ar - bl + q
                    if col >= n:
                        col = mp[col + bl]
                    ext[(lw + q) * npr] = cval if col < 0 else row[col]
            else:
                ext = buf + idx * L
                if s < 0:
                    for q in range(L):
                        ext[q] = cval
                else:
                    _extend(G.src + off + s * G.istr[nd - 2], G.istr[nd - 1], G.scode, n,
                            mp, bl, mp + bl + n, ar, cval, ext, 1, 1, 0)
    if not G.direct:
        # 2) the segment as one flat row of (r1 - r0) * L sums
        for t in range(nt):
            ap[t] = buf + trow[t] * L + G.tap_kc[t]
        _tapsum(obuf, (r1 - r0) * L, ap, tap_w, nt)
    else:
        # 2') the bl + ar edge columns, each for every row of the segment: eb[e * nrow + rr - r0]
        eb = buf + G.ko_count * sw * npr
        for e in range(bl + ar):
            q = e if e < bl else lw + e - bl
            for t in range(nt):
                ap[t] = buf + (G.tap_ko[t] * sw + q + G.tap_kc[t]) * npr + G.tap_kr[t]
            _tapsum(eb + e * nrow, nrow, ap, tap_w, nt)
    for rr in range(r0, r1):
        ooff = rr * G.ostr[nd - 2]
        for d in range(nd - 2):
            ooff = ooff + pos[d] * G.ostr[d]
        if not G.direct:
            _store(obuf + (rr - r0) * L, 1, 1, 1, n, G.dcode, G.dst + ooff, 0, G.ostr[nd - 1])
            continue
        # 3') the row's interior columns bl .. n - ar - 1 from the input rows in place, and its edges
        o = <real_t*>(G.dst + ooff) if G.direct_out else obuf
        for t in range(nt):
            ap[t] = rowp[trow[t] + rr - r0] + G.tap_kc[t]
        _tapsum(o + bl, n - bl - ar, ap, tap_w, nt)
        for e in range(bl):
            o[e] = eb[e * nrow + rr - r0]
        for e in range(ar):
            o[n - ar + e] = eb[(bl + e) * nrow + rr - r0]
        if not G.direct_out:
            _store(obuf, 1, 1, 1, n, G.dcode, G.dst + ooff, 0, G.ostr[nd - 1])


def corrnd(cnp.ndarray src, int scode, cnp.ndarray dst, int dcode,
           const Py_ssize_t[::1] shape, const Py_ssize_t[::1] istr, const Py_ssize_t[::1] ostr,
           const Py_ssize_t[::1] kshape, const Py_ssize_t[::1] tap_ko, const Py_ssize_t[::1] tap_kr,
           const Py_ssize_t[::1] tap_kc, const real_t[::1] tap_w,
           const Py_ssize_t[::1] maps, const Py_ssize_t[::1] map_off, const Py_ssize_t[::1] before,
           real_t cval, Py_ssize_t rows, Py_ssize_t brows, bint direct, int nthreads):
    """N-d correlation, nd = len(shape) >= 2, output shape == input shape.

    Taps: the nonzero weights ``tap_w`` in the kernel's C order, each at flat kernel index
    ``tap_ko`` over the outer dims, row ``tap_kr`` and column ``tap_kc`` (``kshape`` =
    (..., kh, kw)).  ``maps[map_off[d]:]``: for axis d, the source index of padded
    position q - before[d] for q < shape[d] + kshape[d] - 1 (-1: ``cval``).

    Work: the planes' rows in C order, ``rows`` consecutive output rows per work item
    (a thread's run of contiguous memory), split into segments of at most ``brows``
    rows of one plane.  ``direct``: read the input rows in place (the caller passes it
    only when the input is of the compute type with contiguous rows of at least kw
    samples); otherwise each segment's input rows are extended into the buffer.
    """
    cdef int mcpu = pyconv_cpu()
    cdef NdGeo G
    cdef int nd = <int>shape.shape[0], d
    cdef Py_ssize_t nplanes = 1, nr, n, kw, kh, L, ntotal, nitems, bsize, npr_max
    if nd < 2 or nd > MAXD:
        raise ValueError("corrnd: bad geometry")
    for d in range(nd):
        if shape[d] == 0:
            return
    G.nd = nd
    G.src = <const char*>cnp.PyArray_DATA(src)
    G.scode = scode
    G.dst = <char*>cnp.PyArray_DATA(dst)
    G.dcode = dcode
    G.shape = &shape[0]
    G.istr = &istr[0]
    G.ostr = &ostr[0]
    G.kshape = &kshape[0]
    G.ntaps = tap_w.shape[0]
    if tap_ko.shape[0] != G.ntaps or tap_kr.shape[0] != G.ntaps or tap_kc.shape[0] != G.ntaps:
        raise ValueError("corrnd: bad taps")
    G.tap_ko = &tap_ko[0] if G.ntaps else NULL
    G.tap_kr = &tap_kr[0] if G.ntaps else NULL
    G.tap_kc = &tap_kc[0] if G.ntaps else NULL
    G.maps = &maps[0]
    G.map_off = &map_off[0]
    G.before = &before[0]
    G.ko_count = 1
    for d in range(nd - 2):
        G.ko_count *= kshape[d]
        nplanes *= shape[d]
    nr = shape[nd - 2]
    n = shape[nd - 1]
    kh = kshape[nd - 2]
    kw = kshape[nd - 1]
    L = n + kw - 1
    G.brows = brows if 1 <= brows <= nr else nr
    G.direct = (direct and scode == _code_of(cval) and istr[nd - 1] == <Py_ssize_t>sizeof(real_t)
                and n >= kw)
    G.direct_out = dcode == _code_of(cval) and ostr[nd - 1] == <Py_ssize_t>sizeof(real_t)
    G.sw = (kw - 1 + before[nd - 1]) + (kw - 1 - before[nd - 1]) + kw - 1
    npr_max = G.brows + kh - 1
    if G.direct:        # the strips, then the edge sums
        bsize = G.ko_count * npr_max * G.sw + (kw - 1) * G.brows
    else:
        # (+ L: a flat sum reads up to kw - 1 junk columns past the last row)
        bsize = (G.ko_count * npr_max + 1) * L
    ntotal = nplanes * nr
    if rows < 1 or rows > ntotal:
        rows = ntotal
    nitems = (ntotal + rows - 1) // rows
    cdef Py_ssize_t next_item = 0
    cdef int failed = 0
    cdef Py_ssize_t* nextp = &next_item
    cdef int* failp = &failed
    cdef const real_t* tw = &tap_w[0] if G.ntaps else NULL
    if nthreads <= 1:
        # (one thread: no parallel region, whose entry and exit cost a small filter 0.7 us)
        with nogil:
            _rows_work(&G, tw, cval, nitems, rows, ntotal, bsize, nextp, failp)
    else:
        with nogil, parallel(num_threads=nthreads):
            pyconv_unstack(mcpu)
            _rows_work(&G, tw, cval, nitems, rows, ntotal, bsize, nextp, failp)
    if failed:
        raise MemoryError("corrnd: could not allocate the per-thread row buffers")


cdef void _rows_work(const NdGeo* G, const real_t* tap_w, real_t cval, Py_ssize_t nitems, Py_ssize_t rows,
                     Py_ssize_t ntotal, Py_ssize_t bsize, Py_ssize_t* next_item, int* failp) noexcept nogil:
    """One thread's part of corrnd: its buffers, then items of ``rows`` output rows taken in
    turn from the team's counter ``next_item`` until none is left (``failp``: set when the
    buffers cannot be had)."""
    cdef int nd = G.nd
    cdef Py_ssize_t nr = G.shape[nd - 2], n = G.shape[nd - 1], kw = G.kshape[nd - 1]
    cdef Py_ssize_t L = n + kw - 1, npr_max = G.brows + G.kshape[nd - 2] - 1
    cdef Py_ssize_t it, f, f1, plane, r0, r1, q
    cdef real_t* buf = <real_t*>malloc(bsize * sizeof(real_t))
    cdef real_t* obuf = <real_t*>malloc((G.brows * L if not G.direct else n) * sizeof(real_t))
    cdef real_t* cvalrow = <real_t*>malloc(n * sizeof(real_t))
    cdef const real_t** rowp = <const real_t**>malloc(G.ko_count * npr_max * sizeof(real_t*))
    cdef const real_t** ap = <const real_t**>malloc((G.ntaps + 1) * sizeof(real_t*))
    cdef Py_ssize_t* trow = <Py_ssize_t*>malloc((G.ntaps + 1) * sizeof(Py_ssize_t))
    if buf != NULL and obuf != NULL and cvalrow != NULL and rowp != NULL and ap != NULL and trow != NULL:
        for q in range(n):
            cvalrow[q] = cval
        it = pyconv_take(next_item)
        while it < nitems:
            f = it * rows
            f1 = f + rows if f + rows <= ntotal else ntotal
            while f < f1:           # segments: within one plane, at most brows rows
                plane = f // nr
                r0 = f - plane * nr
                r1 = r0 + (f1 - f)
                if r1 > nr:
                    r1 = nr
                if r1 - r0 > G.brows:
                    r1 = r0 + G.brows
                _nd_seg(G, tap_w, cval, plane, r0, r1, buf, obuf, rowp, cvalrow, ap, trow)
                f = f + (r1 - r0)
            it = pyconv_take(next_item)
    else:
        failp[0] = 1
    free(buf)
    free(obuf)
    free(cvalrow)
    free(rowp)
    free(ap)
    free(trow)
