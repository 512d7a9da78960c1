"""The signal layer's plans: output geometry, the direct plan and the method choice.

``pyconv.signal`` validates its arguments and then asks this module what to run: the
output shape and kernel shift of a mode (:func:`out_geometry`), the direct kernel's
plan (:func:`plan_direct`, cached), whether overlap-add pays along an axis
(:func:`oa_plan`) and, for ``method='auto'``, direct or FFT by the cost model, or where
its two figures are close by timing both once on the running machine
(:func:`choose_method`).  The cost model's constants are fields of
:class:`pyconv._engine.tuning.Tuning` (``direct_ns_*``, ``fft_ns_*`` measured on the
running machine by :mod:`pyconv._engine.calibrate`, which times against
:func:`direct_cost` and :func:`fft_costs`).
"""
import functools
import math

import numpy as np
import scipy.fft as sp_fft

from pyconv._engine import calibrate as _calibrate
from pyconv._engine import plan as _plan
from pyconv._engine import tuning as _tuning
from pyconv._engine.geometry import SignalGeometry
from pyconv._engine.plan import Algorithm, Plan
from pyconv._kernels import direct as _direct
from pyconv._threads import get_num_threads, num_parts_for
from pyconv._utils import sig_compute_dtype, sig_int_class, sig_valid_swap

__all__ = ["out_geometry", "conv_same", "corr2d_same", "block_len", "plan_direct", "direct_macs", "oa_block",
           "oa_plan", "direct_ns", "direct_cost", "row_padding", "extend_whole", "fft_costs", "fft_cost", "choose_method",
           "choose_model", "model_costs", "timed_key"]


# --------------------------------------------------------------------------- geometry

def _start(mode, n, k, same_start):
    """First output index, in 'full' coordinates, of ``mode`` along one dim.

    ``same_start`` gives 'same' mode's offset for kernel size ``k``: scipy's
    N-d functions use ``(k - 1) // 2``, correlate2d uses ``k // 2``.
    Returns (start, output size).
    """
    if mode == "full":
        return 0, n + k - 1
    if mode == "same":
        return same_start(k), n
    # valid: the outputs that use no padding, whichever input is larger
    return min(n, k) - 1, abs(n - k) + 1


def conv_same(k):
    return (k - 1) // 2


def corr2d_same(k):
    return k // 2


def out_geometry(mode, shape1, shape2, same_start=conv_same):
    """(output shape, kernel shift) of a correlation with weights of ``shape2``."""
    out_shape, shift = [], []
    for n, k in zip(shape1, shape2):
        st, m = _start(mode, n, k, same_start)
        out_shape.append(m)
        shift.append(st - (k - 1))
    return tuple(out_shape), tuple(shift)





def block_len(itemsize):
    # ~16 KiB of outputs per work item: stays in L1 while the taps sweep it, and a
    # 1e6-sample 1-D signal still splits into hundreds of items across threads.
    return max(256, 16384 // itemsize)


# --------------------------------------------------------------------------- direct

def _kept_dims(x_shape, w_shape, out_shape, shift):
    """The dims the direct kernel runs: dims of size 1 everywhere with no shift are free
    and dropped, so a column vector does not run one-element rows."""
    keep = [d for d in range(len(x_shape))
            if not (x_shape[d] == 1 and w_shape[d] == 1 and out_shape[d] == 1 and shift[d] == 0)]
    return keep or [len(x_shape) - 1]


@_plan.cached
def plan_direct(x_shape, w_shape, out_shape, shift, cdt):
    """Plan of the direct correlation kernel for these shapes (``data``: the kernel's
    checked geometry, built once here).  Where the model says it pays
    (:func:`row_padding`), the kernel runs on a copy of ``x`` with zeros around the rows
    of its last kept dim (tile ``pad`` = (axis, before, after)); ``nonfinite`` is then the
    plan on ``x`` itself, run when a weight is Inf/NaN (a padded zero would turn it into
    NaN where the skipped tap leaves the output alone)."""
    keep = _kept_dims(x_shape, w_shape, out_shape, shift)
    work = math.prod(out_shape) * math.prod(w_shape)      # upper bound; the exact count when it matters
    if work >= (1 << 16):
        work = direct_macs(x_shape, w_shape, out_shape, shift)
    nthreads = num_parts_for(work)          # the team (fewer on a busy machine) is sized per call
    cdt = np.dtype(cdt)

    def plan(xs, sh, tiles=(), nonfinite=None):
        geo = _direct.DirectGeometry([xs[d] for d in keep], [w_shape[d] for d in keep],
                                     [out_shape[d] for d in keep], [sh[d] for d in keep], block_len(cdt.itemsize))
        return Plan("signal", Algorithm.DIRECT, SignalGeometry(tuple(x_shape), tuple(w_shape), tuple(out_shape)), cdt,
                    nthreads, math.prod(xs) * cdt.itemsize if tiles else 0, tiles, data=geo, nonfinite=nonfinite)
    lp, rp, _ = row_padding(x_shape, w_shape, out_shape, shift, f"{cdt.kind}{cdt.itemsize}")
    if lp + rp == 0:
        return plan(x_shape, shift)
    d = keep[-1]
    xs = tuple(n + lp + rp if i == d else n for i, n in enumerate(x_shape))
    sh = tuple(s + lp if i == d else s for i, s in enumerate(shift))
    return plan(xs, sh, (("pad", (d, lp, rp)),), plan(x_shape, shift))


def row_padding(x_shape, w_shape, out_shape, shift, ckind, tu=None):
    """How the direct kernel gets right the border columns of the rows it sweeps as
    one flat block: redone tap by tap (Tuning.direct_border_ns per (row, tap)), or read
    from a copy of ``x`` with zeros around each row of its last kept dim
    (Tuning.direct_pad_ns per element of the copy and per output copied out of the
    sweep's scratch, plus the wider sweep in whole vectors), whichever the
    model says costs less.  Both add every output's taps in the same order: the results
    are bitwise the same (a padded product adds +-0 to a sum that started from +0).

    Rows longer than ``x``'s (mode 'full') are not merged at all but swept one by one, a
    slower sweep per multiply-add (Tuning.direct_merged_factor); there the copy with
    padded rows is taken where the model prices it and the merged sweep of the padded
    rows below the row-by-row sweep (1024^2 * 31x31 'full' float32, AMD EPYC, 1 thread:
    32 ms row by row, 12 ms padded and merged).

    Returns ``(before, after, ns)``: the zeros to put before and after each row ((0, 0):
    redo, no border to get right, or rows one by one) and the modelled ns of the way
    chosen (0 for rows one by one).

    >>> import dataclasses
    >>> from pyconv._engine.tuning import DEFAULT
    >>> geometry = (128, 128, 128), (7, 7, 7), (128, 128, 128), (-3, -3, -3)     # 'same'
    >>> row_padding(*geometry, "f4", DEFAULT)[:2]            # (the defaults never pad)
    (0, 0)
    >>> row_padding(*geometry, "f4", dataclasses.replace(DEFAULT, direct_pad_ns=2.0))[:2]
    (3, 3)
    """
    tu = tu or _tuning.active()
    keep = _kept_dims(x_shape, w_shape, out_shape, shift)
    if len(keep) < 2:
        return 0, 0, 0.0
    d, r = keep[-1], keep[-2]
    la, ol, kl, sc = x_shape[d], out_shape[d], w_shape[d], shift[d]
    border = _direct.merged_border(len(keep), la, ol, kl, sc, out_shape[r])
    if border == 0 or la * ol == 0:
        return 0, 0, 0.0
    redo = math.prod(out_shape[:-1]) * math.prod(w_shape) * (1.0 + border / 8.0) * tu.direct_border_ns
    lp, rp = max(0, -sc), max(0, ol - 1 + sc + kl - la)
    lap = la + lp + rp
    if _direct.merged_border(len(keep), lap, ol, kl, sc + lp, out_shape[r]) != 0:
        # (the padded rows would be swept one by one too)
        return (0, 0, redo) if border > 0 else (0, 0, 0.0)
    macs = direct_macs(x_shape, w_shape, out_shape, shift)
    # the copy in, plus two terms that stand in for what that price misses -- a volume
    # past the last-level cache copies at memory speed (0.31 ns per element for 256^3
    # float32, warm, where the calibration's copy in cache runs at 0.11-0.22), and the rows
    # outside the kernel's pairs are copied out of its scratch and swept whole: a second
    # pass over the output at the copy's price, and the padded rows' extra vectors
    # (258-wide rows: 17 for 16) counted on every row.  AMD EPYC: priced as the copy in
    # alone, 256^3 * 3^3 float32 took the copy, 1.14x slower than the redo at 1 thread (1.3x
    # before the pairs wrote straight to the output); with the terms the model picks the
    # faster plan on 10 of the 11 geometries timed both ways (not 128^3 * 3^3 float64: the
    # copy, 4-7% slower)
    lanes = max(1, _direct.VBYTES // _DIRECT_ITEMSIZE[ckind])
    vec = lambda n: -(-n // lanes)      # noqa: E731
    ns = direct_ns(ckind, tu)
    pad = (tu.direct_pad_call_ns + (math.prod(x_shape) // la * lap + math.prod(out_shape)) * tu.direct_pad_ns
           + macs * ns * tu.direct_merged_factor * (vec(lap) - vec(la)) / vec(ol))
    if border > 0:
        return (lp, rp, pad) if pad < redo else (0, 0, redo)
    taps = math.prod(w_shape)
    merged = _merged_ns(macs, ns, la, ol, math.prod(out_shape) // ol, taps, tu) + pad
    return (lp, rp, pad) if merged < _rows_ns(macs, ns, out_shape, taps, tu) else (0, 0, 0.0)


def extend_whole(ext_shape, itemsize, tu=None):
    """Whether convolve2d/correlate2d with a boundary to build ('wrap', 'symm', a nonzero
    fill) runs on a copy of the whole image extended to ``ext_shape`` (one 'valid' kernel
    call) rather than on the image itself plus four small extended border strips (four
    more kernel calls, the border outputs computed twice): the copy, priced per element
    (Tuning.direct_pad_ns, scaled to the item size), against the strips' four calls
    (Tuning.direct_overhead_s and the per-call price of a copy, direct_pad_call_ns).  The
    two give the same values (the same bits for real dtypes).  Under the built-in defaults
    (``PYCONV_TUNING=off``: no copy is priced) always the strips.  (8x8 * 3x3 'symm': 38-54
    us by strips, 3.7 extended whole, scipy's 2.9; AMD EPYC.)

    >>> import dataclasses
    >>> from pyconv._engine.tuning import DEFAULT
    >>> measured = dataclasses.replace(DEFAULT, direct_pad_ns=0.15, direct_pad_call_ns=2500.0)
    >>> extend_whole((10, 10), 8, measured), extend_whole((4000, 4000), 8, measured)
    (True, False)
    >>> extend_whole((10, 10), 8, DEFAULT)
    False
    """
    tu = tu or _tuning.active()
    copy = math.prod(ext_shape) * tu.direct_pad_ns * itemsize / 8.0
    return copy < 4 * (tu.direct_overhead_s * 1e9 + tu.direct_pad_call_ns)


def _merged_ns(macs, ns, la, ol, rows, taps, tu):
    """Modelled ns of the kernel's merged sweep (runs of rows as one block, ``rows`` output
    rows of ``ol`` outputs, ``x``'s rows ``la`` long) without its border work."""
    items = max(1, rows // max(1, 2048 // ol))
    return macs * ns * tu.direct_merged_factor * la / ol + items * taps * tu.direct_tap_ns


def _rows_ns(macs, ns, out_shape, taps, tu):
    """Modelled ns of the kernel sweeping the output's rows one by one, in blocks."""
    row = max(1, out_shape[-1])
    rows = max(1, math.prod(out_shape[:-1]))
    return macs * ns * (1.0 + 48.0 / row) + rows * -(-row // 2048) * taps * tu.direct_tap_ns




def _trapezoid_prefix(x, p, q, total):
    """sum over u < x of min(u + 1, p, total - u), the pair count of u = o + t (p <= q)."""
    x = min(max(x, 0), total)
    a = min(x, p)
    b = min(max(x, p), q) - p
    c = max(x, q) - q
    return a * (a + 1) // 2 + p * b + c * total - (c * q + c * (c - 1) // 2)


def _pairs_1d(n, k, m, s):
    """Number of (output, tap) pairs with 0 <= o + s + t < n, o < m, t < k: exact MACs along a dim.

    Closed form: for u = o + t the pair count is the trapezoid
    min(u + 1, m, k, m + k - 1 - u); sum it over the u that land inside a.
    """
    if n <= 0 or k <= 0 or m <= 0:
        return 0
    p, q, total = min(m, k), max(m, k), m + k - 1
    return max(0, _trapezoid_prefix(n - s, p, q, total) - _trapezoid_prefix(-s, p, q, total))


def direct_macs(shape1, shape2, out_shape, shift):
    total = 1
    for n, k, m, s in zip(shape1, shape2, out_shape, shift):
        total *= _pairs_1d(n, k, m, s)
    return total




# --------------------------------------------------------------------------- overlap-add

@functools.lru_cache(maxsize=1024)
def oa_block(k):
    """Best FFT block for a kernel of ``k`` samples by overlap-add.

    Cost per output sample ~ N log2(2N) / (N - k + 1) for block N; it is least
    where N = (k - 1) * ln(2 e N), solved here by fixed-point iteration.
    """
    ov = k - 1
    n = 4.0 * ov
    for _ in range(50):
        n_new = ov * math.log(2.0 * math.e * n)
        if abs(n_new - n) < 1e-9 * n:
            break
        n = n_new
    return sp_fft.next_fast_len(math.ceil(n))


def oa_plan(s1, s2, ax):
    """Overlap-add plan: {axis: (which input is cut, FFT block, step)} for the axes where it pays."""
    plan = {}
    for a in ax:
        big, small = max(s1[a], s2[a]), min(s1[a], s2[a])
        if s1[a] == s2[a] or small == 1 or small >= big / 2:
            continue                  # no block size can pay off along this axis
        nb = oa_block(small)
        if nb >= big:
            continue                  # one block would hold everything
        plan[a] = (0 if s1[a] >= s2[a] else 1, nb, nb - small + 1)
    return plan


# --------------------------------------------------------------------------- method choice

# Cost model of pyconv's own kernels, in seconds.  Calibrated by timing
# convolve(method='direct') and convolve(method='fft') at 1 thread on 1-D (1e3..1e6
# samples, 9..1e4 taps), 2-D (100^2..1024^2, 3^2..64^2) and 3-D (64^3, 5^3 and 9^3)
# float32/float64 cases on the 2-core development VM, taking the least of 5-12
# runs (the machine was shared, so the constants are good to ~30%):
# * direct: ns per multiply-add ~0.09 float64, ~0.05 float32, ~4x for complex, on
#   long output rows; a 1-D signal (one row, however many size-1 dims) has its own
#   figure (~0.75x of that on an Intel Xeon).  Short rows cost more (per-row set-up:
#   x (1 + 48 / row)); in 'same' and 'valid' mode (and 'full' on a copy with padded rows,
#   where row_padding prices that lower) runs of rows are swept as one and every
#   row's border columns are redone tap by tap (Tuning.direct_border_ns per (row, tap),
#   x (1 + border / 8)); the merged sweep's own cost per multiply-add is a calibrated
#   multiple of long rows' (Tuning.direct_merged_factor: longer blocks, more taps per
#   tile).  Each (row, block, tap) costs ~2 ns of bookkeeping
#   (Tuning.direct_tap_ns).  Scales with the threads.  A call costs ~5 us besides
#   (Tuning.direct_overhead_s).
# * FFT: ns per point of the transforms (forward + inverse of every block, one
#   of the other operand) times log2 of the transform size: ~0.25 up to 2**19.5
#   points (256^2: 1.2 ms, 512^2: 4.3 ms), ~0.55 from 2**21.5 points on (1024^2:
#   30-45 ms, 128^3: 105 ms, 1e6: 30 ms for the three transforms); a 1-D full transform
#   and overlap-add (1-D only: padding, block copies, adds) cost calibrated multiples
#   of that (Tuning.fft_1d_factor, fft_oa_factor).  Single precision costs a calibrated
#   fraction of that, N-d and 1-D apart (Tuning.fft_single_factor, fft_1d_single_factor:
#   ~0.45 and ~0.8 on an Intel Xeon), complex 2x.  Transforms over three or more axes
#   cost a calibrated multiple of the 2-D figures (Tuning.fft_3d_factor, ~1.3-1.5 on an
#   AMD EPYC).  A batch (dims transformed in neither operand) multiplies the transforms
#   of the operands that have it.
#   scipy.fft spreads only the *other* axes over workers, so a single 1-D transform
#   runs on one thread (a batch of them does not).  A call costs ~40 us besides
#   (Tuning.fft_overhead_s).
# * Threads: each thread past the first adds a calibrated fraction of its speed, for
#   the direct kernel and for the FFT's workers (Tuning.direct_thread_gain,
#   fft_thread_gain): 2 threads ran the 3-D FFT 1.2x and the direct kernel 1.5x faster
#   on an Intel Xeon, so the same volume can call for FFT at 1 thread, direct at 2.
# The ns figures and factors are fields of pyconv._engine.tuning; the calibration
# (pyconv._engine.calibrate._measure_signal) measures each on the running machine by
# one timing at one thread, solving this model (linear in each) for it, and the gains
# at the default thread count (_measure_signal_threads).
# Complex and int64 direct kernels cost a fixed multiple of the real ones.
_DIRECT_KIND = {"f8": ("f8", 1.0), "f4": ("f4", 1.0), "c16": ("f8", 4.0), "c8": ("f4", 4.0), "i8": ("f8", 2.2)}
_DIRECT_ITEMSIZE = {"f8": 8, "f4": 4, "c16": 16, "c8": 8, "i8": 8}


def direct_ns(ckind, t=None, one_d=False):
    """ns per multiply-add of the direct kernel computing in ``ckind`` (tuning ``t``);
    ``one_d``: the kernel runs a single row (its own calibrated figure)."""
    base, factor = _DIRECT_KIND[ckind]
    field = ("direct_ns_1d_" if one_d else "direct_ns_") + base
    return getattr(t or _tuning.active(), field) * factor


def direct_cost(shape1, shape2, mode, ckind, nt):
    """Modelled seconds of the direct kernel for these shapes, ``ckind`` ('f8', 'f4', 'c16',
    'c8' or 'i8') at ``nt`` threads."""
    tu = _tuning.active()
    out_shape, shift = out_geometry(mode, shape1, shape2)
    macs = direct_macs(shape1, shape2, out_shape, shift)
    taps = math.prod(shape2)
    threads = max(1, min(nt, macs // (1 << 15)))
    speedup = 1.0 + (threads - 1) * tu.direct_thread_gain
    keep = _kept_dims(shape1, shape2, out_shape, shift)
    ns = direct_ns(ckind, tu, one_d=len(keep) <= 1)
    d, r = keep[-1], keep[-2] if len(keep) >= 2 else None
    border = -1 if r is None else _direct.merged_border(len(keep), shape1[d], out_shape[d], shape2[d],
                                                        shift[d], out_shape[r])
    lp, rp, extra = (0, 0, 0.0) if r is None else row_padding(shape1, shape2, out_shape, shift, ckind, tu)
    if border >= 0 or lp + rp:
        # the kernel merges runs of rows ('same', 'valid'; 'full' on padded rows) into long
        # sweeps (of a's row length: 'valid' computes its k - 1 dropped columns too), then
        # redoes the border columns of every row tap by tap or reads a copy with padded
        # rows (row_padding: the cheaper of the two)
        la, ol = shape1[d], out_shape[d]
        t = _merged_ns(macs, ns, la, ol, max(1, math.prod(out_shape) // max(1, ol)), taps, tu) + extra
    else:
        t = _rows_ns(macs, ns, out_shape, taps, tu)
    return t * 1e-9 / speedup + tu.direct_overhead_s


def _fft_points_cost(points, size, plan, cplx, single, par, nd=1):
    # nd: the axes transformed (an overlap-add plan's are 1-D).  The cache regime: of the
    # points transformed in all, or with an overlap-add plan of one block (each block's
    # transforms run in cache, however many blocks there are: 1e6 * 1001 float32 in
    # 11000-point blocks modelled at the large transforms' ns took 24 ms against 5.7
    # measured, and 'auto' chose direct at 21 ms; AMD EPYC, 2026-12-04)
    f = min(1.0, max(0.0, (math.log2(max(size if plan else points, 2)) - 19.5) / 2.0))
    t = _tuning.active()
    ns = t.fft_ns_small + (t.fft_ns_large - t.fft_ns_small) * f
    if plan:
        ns *= t.fft_oa_factor           # overlap-add (1-D only): padding, block copies, adds
    elif nd == 1:
        ns *= t.fft_1d_factor
    elif nd >= 3:
        ns *= t.fft_3d_factor
    if single:
        ns *= t.fft_1d_single_factor if nd == 1 else t.fft_single_factor
    if cplx:
        ns *= 2.0
    return points * math.log2(max(size, 2)) * ns * 1e-9 / par


def fft_workers(points, nt):
    """scipy.fft workers for transforms of ``points`` in all (the padded transform x the
    broadcast batch) with ``nt`` threads: transforms are independent, but below
    ``Tuning.fft_workers_min_points`` (calibrated) a worker's hand-off costs more than it
    saves and the calling thread does them alone."""
    return 1 if points < _tuning.active().fft_workers_min_points else max(1, nt)


def fft_points(shape1, shape2, ax, plan, cplx):
    """Points transformed in one batched call of convolve(method='fft') along ``ax``: the
    padded full transform, or with an overlap-add ``plan`` its blocks, times the broadcast
    batch (what :func:`fft_workers` sizes the workers by)."""
    batch = math.prod(max(shape1[d], shape2[d]) for d in range(len(shape1)) if d not in ax)
    points = 1
    for a in ax:
        if plan and a in plan:
            which, nb, step = plan[a]
            points *= nb * -(-(shape1, shape2)[which][a] // step)
        else:
            points *= sp_fft.next_fast_len(shape1[a] + shape2[a] - 1, not cplx)
    return points * batch


def fft_costs(shape1, shape2, cplx, single, nt):
    """Seconds of (one full FFT, overlap-add) for convolve(method='fft'); OA is inf without a plan.

    Each block transform also pays ~0.1 us of set-up (all blocks go in one
    batched call); blocks under 32 samples are never used.
    """
    tu = _tuning.active()
    overhead = tu.fft_overhead_s
    speedup = 1.0 + (max(1, nt) - 1) * tu.fft_thread_gain
    ax = [a for a in range(len(shape1)) if shape1[a] != 1 and shape2[a] != 1]
    if not ax:
        return overhead, math.inf
    size = 1
    for a in ax:
        size *= sp_fft.next_fast_len(shape1[a] + shape2[a] - 1, not cplx)
    rest = [a for a in range(len(shape1)) if a not in ax]
    batch = math.prod(shape1[a] for a in rest)
    # the transforms of each operand and of the product are batched over the dims
    # transformed in neither: in1's and the inverse's over the broadcast batch, in2's
    # over its own (1 where it broadcasts)
    b1 = batch
    b2 = math.prod(shape2[a] for a in rest)
    bo = math.prod(max(shape1[a], shape2[a]) for a in rest)
    # a single 1-D transform runs on one thread (the workers split the other dims), and so
    # do small ones (fft_workers)
    par = 1.0 if (len(ax) == 1 and bo == 1) or fft_workers(size * batch, nt) == 1 else speedup
    # in1's transform, the inverse, and the other operand's, whose axis-at-a-time
    # passes skip its zero padding: ~1/len(ax) of a full transform when it is small
    small = math.prod(shape2[a] for a in ax) * 4 <= math.prod(shape1[a] for a in ax)
    plain = _fft_points_cost((b1 + bo + b2 * (1 / len(ax) if small else 1)) * size, size, {}, cplx, single,
                             par, nd=len(ax)) + overhead
    plan = oa_plan(shape1, shape2, ax)
    if not plan or len(ax) > 1:
        # measured: N-d overlap-add loses to one full transform (1024^2 * 31^2: 54 vs
        # 42 ms; 128^3 * 7^3: 208 vs 105 ms), its blocks being small in every axis
        return plain, math.inf
    bsize, count = 1, 1
    for a in ax:
        if a in plan:
            which, nb, step = plan[a]
            bsize *= nb
            count *= -(-(shape1, shape2)[which][a] // step)
        else:
            bsize *= sp_fft.next_fast_len(shape1[a] + shape2[a] - 1, not cplx)
    # forward + inverse of every block, plus one transform of the other operand; only the
    # transforms run on the workers, the padding, block copies, products and overlap adds
    # (the fft_oa_factor part) in NumPy on the calling thread (1e6 * 1001 float64: 28-30 ms
    # at 1 thread, 24.5-27 at 2, where the transforms' gain alone modelled 17 and 'auto'
    # took it over direct's 17-21; Intel Xeon).  The transforms get workers only from
    # fft_workers_min_points on (their batched call's points, as _oa_full sizes them):
    # 1e6 * 1001 and 2e5 * 1001 ran no faster at 2 threads than at 1
    ntrans = (b1 + bo) * count + b2
    serial = _fft_points_cost(ntrans * bsize, bsize, plan, cplx, single, 1.0)
    transforms = serial / max(1.0, tu.fft_oa_factor)
    oa_par = speedup if fft_workers(bsize * count * b1, nt) > 1 else 1.0
    oa = serial - transforms + transforms / oa_par + ntrans * 0.1e-6 + overhead
    if min(nb for _, nb, _ in plan.values()) < 32:
        oa = math.inf           # blocks of a few samples never pay (measured: 2x slower at 1024^2 * 3^2)
    return plain, oa


def fft_cost(shape1, shape2, cplx, single, nt):
    """Seconds of convolve(method='fft'), the cheaper of full FFT and overlap-add."""
    return min(fft_costs(shape1, shape2, cplx, single, nt))


# Decisions of choose_method for non-integer operands, keyed by (dtypes, shapes, mode,
# threads, tuning): the model is a pure function of these, and evaluating it (~15-20 us)
# is a tenth of a 1e6-sample 9-tap direct call.  Integer operands are not cached
# since their choice depends on the values.  Cleared when full, to stay bounded.
_CHOICES = {}
_CHOICES_MAX = 512

# Close calls are timed (calibrate.timed_choice): the model's two figures within this
# factor of each other, the faster at least TIMED_MIN_S.  On an Intel Xeon VM at 2 threads
# (2026-12-06) the model's FFT figures ran 1.4-2.2x below the times of 256^2..2048^2 'same'
# images, and its choices there cost up to 1.36-1.47x the faster method (1024^2 * 31x31
# float64: FFT 25 ms, direct 18; the model said 15 and 21; 256^2 * 31x31 float32: FFT 1.25
# ms, direct 0.93; the model said 0.95 and 1.34).  Below half a millisecond a wrong choice
# costs little and timing a call (both methods three times) costs several of them.
TIMED_BAND = 2.0
TIMED_MIN_S = 5e-4


def choose_method(in1, in2, mode, timer=None):
    """'direct' or 'fft' for convolve/correlate of these operands (no validation).

    The cost model's choice (:func:`choose_model`); for floating operands whose two
    figures are close (within ``TIMED_BAND``, the faster at least ``TIMED_MIN_S``), the
    choice timed on this machine and stored (:func:`pyconv._engine.calibrate.timed_choice`),
    which ``timer`` makes when there is none yet: ``timer()`` runs both methods on these
    operands and returns ``{'direct': seconds, 'fft': seconds}`` (without a ``timer`` such
    a call keeps the model's choice).  Never timed under ``PYCONV_TUNING=off``, within a
    :func:`pyconv._engine.tuning.override` block (the model under the values it sets) or
    while :func:`pyconv.explain` records plans."""
    nt = get_num_threads()
    key = (in1.dtype, in2.dtype, in1.shape, in2.shape, mode, nt, _tuning.active())
    choice = _CHOICES.get(key)
    if choice is not None:
        return choice
    if np.result_type(in1.dtype, in2.dtype).kind in "iu":
        return choose_model(in1, in2, mode, nt)
    t_direct, t_fft = model_costs(in1, in2, mode, nt)
    choice = "fft" if t_fft < t_direct else "direct"
    if min(t_direct, t_fft) >= TIMED_MIN_S and max(t_direct, t_fft) < TIMED_BAND * min(t_direct, t_fft) \
            and not _calibrate.timing_off():
        tkey = timed_key(in1, in2, mode, nt)
        stored = _calibrate.timed_choice(tkey)
        if stored is not None:
            choice = stored
        elif timer is not None and _plan.dry() is None and _calibrate.timed_room():
            times = timer()
            choice = "fft" if times["fft"] < times["direct"] else "direct"
            _calibrate.store_timed_choice(tkey, choice, times)
        else:
            return choice           # (not cached: a call with a timer may time it)
    if len(_CHOICES) >= _CHOICES_MAX:
        _CHOICES.clear()
    _CHOICES[key] = choice
    return choice


def timed_key(in1, in2, mode, nt):
    """The key of a timed choice: dtypes, shapes, mode and thread count of the call."""
    return f"signal {in1.dtype.str} {in2.dtype.str} {in1.shape} {in2.shape} {mode} threads={nt}"


def model_costs(in1, in2, mode, nt):
    """The cost model's seconds ``(direct, fft)`` for convolve/correlate of these operands
    at ``nt`` threads (the FFT's the cheaper of one full transform and overlap-add)."""
    result = np.result_type(in1.dtype, in2.dtype)
    shape1, shape2 = in1.shape, in2.shape
    if sig_valid_swap(mode, shape1, shape2):
        shape1, shape2 = shape2, shape1
    cdt = sig_compute_dtype(result, in1, in2)
    ckind = {"f": "f", "c": "c", "i": "i"}[cdt.kind] + str(cdt.itemsize)
    t_direct = direct_cost(shape1, shape2, mode, ckind, nt)
    cplx = result.kind == "c"
    single = result in (np.float32, np.complex64, np.float16)
    return t_direct, fft_cost(shape1, shape2, cplx, single, nt)


def choose_model(in1, in2, mode, nt):
    """The cost model behind :func:`choose_method` at ``nt`` threads."""
    result = np.result_type(in1.dtype, in2.dtype)
    if result.kind in "iu" and sig_int_class(in1, in2)[1]:
        return "direct"          # float64 FFT could not hold the exact sums
    t_direct, t_fft = model_costs(in1, in2, mode, nt)
    return "fft" if t_fft < t_direct else "direct"
