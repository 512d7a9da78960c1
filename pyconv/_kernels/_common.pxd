# Shared declarations for every kernel module: fused dtypes and the OpenMP guard.
# Kernels trust their arguments (all bounds are checked in pyconv/_utils.py first),
# run without the GIL and take the thread count as an explicit argument.

# One index type for every kernel (64-bit: bounds are checked in Python against 2**62).
ctypedef Py_ssize_t idx_t


cdef struct conv_geo_t:
    # The geometry every convolution kernel receives: one struct, filled by field name
    # (Python passes a dict built by pyconv._engine.conv.kernel_geo; Cython converts it,
    # refusing a missing field), never a positional tuple.  Everything is 3-D.
    idx_t D, H, W           # image: the unpadded volume a convolution reads (a transposed one writes)
    idx_t OD, OH, OW        # column grid: the convolution's output positions
    idx_t kd, kh, kw        # kernel size
    idx_t sd, sh, sw        # stride
    idx_t dd, dh, dw        # dilation
    idx_t pd, ph, pw        # padding before (reads outside the image are zeros)
    idx_t qd, qh, qw        # padded frame: one phase plane (plane kernels: the padded image split by the
                            # strides), the zero-padded input (thin kernels)


ctypedef fused real_t:
    float
    double

ctypedef fused scalar_t:
    float
    double
    float complex
    double complex
    long long

cdef extern from "pyconv_omp.h":
    const int PYCONV_HAVE_OPENMP
    int omp_get_max_threads() noexcept nogil
    void omp_set_num_threads(int n) noexcept nogil
    int omp_get_thread_num() noexcept nogil
    int omp_get_num_threads() noexcept nogil
    Py_ssize_t pyconv_take(Py_ssize_t* counter) noexcept nogil
    int pyconv_cpu() noexcept nogil
    int pyconv_move_off(int busy) noexcept nogil
    void pyconv_unstack(int master) noexcept nogil


cdef inline void valid_range(Py_ssize_t start, Py_ssize_t step, Py_ssize_t n, Py_ssize_t size,
                             Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    # j in [lo, hi) are the indices of [0, n) with 0 <= start + j*step < size
    # (the taps of a strided window that land inside the input).
    cdef Py_ssize_t a = 0, b
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


cdef inline Py_ssize_t part_lo(Py_ssize_t n, Py_ssize_t parts, Py_ssize_t p) noexcept nogil:
    # First index of part p when [0, n) is cut into `parts` contiguous parts the way
    # OpenMP's static schedule cuts it among threads (the first n % parts get one more).
    # Kernels with per-part partial sums loop over parts, so the split -- and the
    # result's bits -- do not depend on how many threads run the parts.
    cdef Py_ssize_t q = n // parts, r = n % parts
    return p * q + (p if p < r else r)


cdef inline Py_ssize_t next_unit(Py_ssize_t* fronts, Py_ssize_t n, Py_ssize_t parts, Py_ssize_t own,
                                 Py_ssize_t* k) noexcept nogil:
    # The next unit of [0, n) for the thread that owns part ``own`` of its ``parts``
    # contiguous parts (part_lo): the units of its own part in order, then, once that is
    # drained, those still left in the others (``k``: the thread's count of drained parts,
    # from 0).  ``fronts[p]``: part p's next unit, shared by the team (from part_lo(n,
    # parts, p)).  -1 when none is left.  A thread's units stay next to each other (what it
    # builds for one serves the next), while a thread the host slows is helped at the end.
    cdef Py_ssize_t p, u
    while k[0] < parts:
        p = (own + k[0]) % parts
        u = pyconv_take(&fronts[p])
        if u < part_lo(n, parts, p + 1):
            return u
        k[0] = k[0] + 1
    return -1


cdef inline object unit_fronts(Py_ssize_t n, Py_ssize_t parts):
    # next_unit's shared fronts for ``parts`` parts of [0, n): each part's first unit
    import numpy
    return numpy.array([part_lo(n, parts, p) for p in range(parts)], dtype=numpy.intp)


cdef inline void copy_row(real_t* dst, const real_t* src, idx_t n) noexcept nogil:
    # short rows: an inline (vectorised) loop beats a memcpy call
    cdef idx_t j
    for j in range(n):
        dst[j] = src[j]


from libc.string cimport memset


cdef extern from "pad_rows.h":
    void pyconv_pad_rows_f(float* dst, Py_ssize_t ds, const float* src, Py_ssize_t ss, Py_ssize_t W,
                           Py_ssize_t pw, Py_ssize_t wp, Py_ssize_t rows) noexcept nogil
    void pyconv_pad_rows_d(double* dst, Py_ssize_t ds, const double* src, Py_ssize_t ss, Py_ssize_t W,
                           Py_ssize_t pw, Py_ssize_t wp, Py_ssize_t rows) noexcept nogil
    void pyconv_copy_s2_f(float* dst, const float* src, Py_ssize_t n) noexcept nogil
    void pyconv_copy_s2_d(double* dst, const double* src, Py_ssize_t n) noexcept nogil
    void pyconv_add_s2_f(float* dst, const float* src, Py_ssize_t n) noexcept nogil
    void pyconv_add_s2_d(double* dst, const double* src, Py_ssize_t n) noexcept nogil
    void pyconv_split_s2_rows_f(const float* src, Py_ssize_t ss, Py_ssize_t W, Py_ssize_t start, float* d0,
                                float* d1, Py_ssize_t ds, Py_ssize_t n, Py_ssize_t rows) noexcept nogil
    void pyconv_split_s2_rows_d(const double* src, Py_ssize_t ss, Py_ssize_t W, Py_ssize_t start, double* d0,
                                double* d1, Py_ssize_t ds, Py_ssize_t n, Py_ssize_t rows) noexcept nogil
    void pyconv_merge_s2_f(float* dst, const float* a, const float* b, Py_ssize_t n) noexcept nogil
    void pyconv_merge_s2_d(double* dst, const double* a, const double* b, Py_ssize_t n) noexcept nogil


cdef inline void split_stride2_rows(const real_t* src, idx_t ss, idx_t W, idx_t start, real_t* d0, real_t* d1,
                                    idx_t ds, idx_t n, idx_t rows) noexcept nogil:
    # d0[r*ds + k] = x_r(start + 2k), d1[r*ds + k] = x_r(start + 2k + 1), k < n, for the
    # rows r < ``rows`` (src rows ss apart), x_r(i) = the row's src[i] on [0, W), else 0
    # (``pyconv_split_s2_rows``: a zero-padded row's two column phases in one pass, the masks
    # worked out once for all rows; d0/d1 may be NULL)
    if real_t is float:
        pyconv_split_s2_rows_f(src, ss, W, start, d0, d1, ds, n, rows)
    else:
        pyconv_split_s2_rows_d(src, ss, W, start, d0, d1, ds, n, rows)


cdef inline void merge_stride2(real_t* dst, const real_t* a, const real_t* b, idx_t n) noexcept nogil:
    # dst[2k] = a[k], dst[2k + 1] = b[k] over dst[0:n] (``pyconv_merge_s2``: two column phases
    # interleaved by permutes)
    if real_t is float:
        pyconv_merge_s2_f(dst, a, b, n)
    else:
        pyconv_merge_s2_d(dst, a, b, n)


cdef inline void copy_stride2(real_t* dst, const real_t* src, idx_t n) noexcept nogil:
    # dst[j] = src[2 j], j < n (``pyconv_copy_s2``: permutes of two vectors)
    if real_t is float:
        pyconv_copy_s2_f(dst, src, n)
    else:
        pyconv_copy_s2_d(dst, src, n)


cdef inline void strided_row(real_t* dst, idx_t n, idx_t lo, idx_t hi, const real_t* src, idx_t sw) noexcept nogil:
    # dst[0:n]: src[j * sw] at dst[lo + j] for j < hi - lo, zeros around them (a row of an
    # im2col or of a padded phase plane; stride 2 by permutes, ``copy_stride2``)
    cdef idx_t j
    for j in range(lo):
        dst[j] = 0
    if sw == 1:
        copy_row(dst + lo, src, hi - lo)
    elif sw == 2:
        copy_stride2(dst + lo, src, hi - lo)
    else:
        for j in range(hi - lo):
            dst[lo + j] = src[j * sw]
    for j in range(hi, n):
        dst[j] = 0


cdef inline void add_stride2(real_t* dst, const real_t* src, idx_t n) noexcept nogil:
    # dst[2 j] += src[j], j < n (``pyconv_add_s2``: permutes into the even lanes)
    if real_t is float:
        pyconv_add_s2_f(dst, src, n)
    else:
        pyconv_add_s2_d(dst, src, n)


cdef inline void pad_rows(real_t* dst, idx_t ds, const real_t* src, idx_t ss, idx_t n, idx_t pw, idx_t wp,
                          idx_t rows) noexcept nogil:
    # rows rows (ss apart) of n values into rows of wp values (ds apart) from column pw
    # on, zeros around them (``pyconv_pad_rows``: masked vector moves)
    if real_t is float:
        pyconv_pad_rows_f(dst, ds, src, ss, n, pw, wp, rows)
    else:
        pyconv_pad_rows_d(dst, ds, src, ss, n, pw, wp, rows)


cdef inline void pad_rows_at(real_t* dst, idx_t ds, const real_t* plane, idx_t H, idx_t W, idx_t iy0,
                             idx_t nrows, idx_t ix0, idx_t wp) noexcept nogil:
    """dst's nrows rows (ds apart, wp values each) = rows iy0.. of the H x W ``plane`` read
    from column ix0 on, zeros outside the plane (``pyconv_pad_rows``: masked vector moves)."""
    cdef idx_t ra = -iy0 if iy0 < 0 else 0, rb = H - iy0 if H - iy0 < nrows else nrows, r
    if ra > nrows:
        ra = nrows
    if rb < ra:
        rb = ra
    for r in range(ra):
        memset(dst + r * ds, 0, wp * sizeof(real_t))
    for r in range(rb, nrows):
        memset(dst + r * ds, 0, wp * sizeof(real_t))
    if rb == ra:
        return
    cdef const real_t* src = plane + (iy0 + ra) * W
    cdef idx_t n = W, pw = 0
    if ix0 >= 0:
        src = src + (ix0 if ix0 < W else W)
        n = W - ix0 if ix0 < W else 0
    else:
        pw = -ix0
    pad_rows(dst + ra * ds, ds, src, W, n, pw, wp, rb - ra)


