"""scipy.signal-compatible convolution and correlation on pyconv's kernels.

Kinds of convolution
--------------------
=====================================  ============================================
convolution / correlation, N-D         :func:`convolve`, :func:`correlate`
(method 'direct', 'fft' or 'auto')
2-D, with boundary modes               :func:`convolve2d`, :func:`correlate2d`
FFT, overlap-add FFT                   :func:`fftconvolve`, :func:`oaconvolve`
which method 'auto' takes              :func:`choose_conv_method`
spatially separable 2-D                :func:`sepconvolve2d`; :func:`separate` splits
                                       a rank-1 kernel into its column and row
=====================================  ============================================

Same names, arguments, defaults, output shapes and dtypes as ``scipy.signal``; every
function is re-exported at the top level (``pyconv.convolve``).  The backward pass of
each is ``pyconv.grad.<name>_backward``; the guide (``python -m pyconv --guide``)
explains convolution vs correlation and separability.

Implementation
--------------
Every function reads: normalise arguments (pyconv._utils) -> pick the algorithm
-> allocate the output -> one kernel -> return a new C-contiguous array.

The direct method is one N-d correlation kernel (``pyconv._kernels.direct``)
that skips the taps falling outside the signal, so a NaN/Inf reaches exactly
the outputs whose window holds it.  The FFT methods run on ``scipy.fft`` with
pyconv's thread count.
"""
import cmath
import functools
import math
import time

import numpy as np
import scipy.fft as sp_fft

from pyconv._engine import plan as _plan
from pyconv._engine import tuning as _tuning
from pyconv._engine.boundary import extend_index
from pyconv._engine.geometry import SignalGeometry
from pyconv._engine.plan import Algorithm, Plan
from pyconv._kernels import direct as _direct
from pyconv._threads import get_num_threads, num_parts_for, num_threads_for, team_size
from pyconv._utils import (SIG_METHODS, SIG_MODES, check_choice, sig_fft_axes,
                           sig_array, sig_boundary, sig_compute_dtype, sig_fillvalue, sig_same_ndim,
                           sig_valid_swap)

__all__ = ["convolve", "correlate", "convolve2d", "correlate2d", "fftconvolve", "oaconvolve",
           "choose_conv_method", "sepconvolve2d", "separate"]


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


def _conv_same(k):
    return (k - 1) // 2


def _corr2d_same(k):
    return k // 2


def _geometry(mode, shape1, shape2, same_start=_conv_same):
    """(output shape, kernel shift) of a correlation with weights of ``shape2``."""
    out_shape, shift = [], []
    for n, k in zip(shape1, shape2):
        st, m = _start(mode, n, k, same_start)
        out_shape.append(m)
        shift.append(st - (k - 1))
    return tuple(out_shape), tuple(shift)


# --------------------------------------------------------------------------- direct

def _block_len(itemsize):
    # ~16 KiB of outputs per work item: stays in L1 while the taps sweep it, and a
    # 1e6-sample 1-D signal still splits into hundreds of items across threads.
    return max(256, 16384 // itemsize)


@_plan.cached
def _plan_direct(x_shape, w_shape, out_shape, shift, cdt):
    """Plan of the direct correlation kernel for these shapes (``data``: its static arguments)."""
    # Dims of size 1 everywhere with no shift are free: drop them, so a column
    # vector does not run one-element rows.
    keep = [d for d in range(len(x_shape))
            if not (x_shape[d] == 1 and w_shape[d] == 1 and out_shape[d] == 1 and shift[d] == 0)]
    if not keep:
        keep = [len(x_shape) - 1]
    geo = np.array([[x_shape[d] for d in keep], [w_shape[d] for d in keep],
                    [out_shape[d] for d in keep], [shift[d] for d in keep]], dtype=np.intp)
    geo.setflags(write=False)
    work = math.prod(out_shape) * math.prod(w_shape)      # upper bound; the exact count when it matters
    if work >= (1 << 16):
        work = _direct_macs(x_shape, w_shape, out_shape, shift)
    nthreads = num_parts_for(work)          # the team (fewer on a busy machine) is sized per call
    return Plan("signal", Algorithm.DIRECT, SignalGeometry(tuple(x_shape), tuple(w_shape), tuple(out_shape)), cdt,
                nthreads, data=(geo[0], geo[1], geo[2], geo[3], nthreads, _block_len(np.dtype(cdt).itemsize)))


def _run_direct(p, x, w, cdt):
    """Run the direct plan ``p`` on ``x`` and the effective weights ``w``."""
    x = np.ascontiguousarray(x, dtype=cdt)
    w = np.ascontiguousarray(w, dtype=cdt)
    out = np.empty(p.geometry.out, dtype=cdt)
    if _plan._local.dry is not None:
        _plan._local.dry.append(p)
        out[...] = 0
        return out
    g0, g1, g2, g3, nthreads, blen = p.data
    _plan.run(p, _KERNELS[cdt], x.reshape(-1), g0, w.reshape(-1), g1, out.reshape(-1), g2, g3, team_size(nthreads),
              blen)
    return out


def _direct_corr(x, w, out_shape, shift, cdt):
    """``out[o] = sum_k x[o + shift + k] * w[k]`` over taps inside ``x``, computed in ``cdt``."""
    if math.prod(out_shape) == 0 or w.size == 0:
        return np.zeros(out_shape, dtype=cdt)
    return _run_direct(_plan_direct(x.shape, w.shape, tuple(out_shape), tuple(shift), np.dtype(cdt)), x, w, cdt)


# The kernel's specialisations by compute dtype, looked up once: Cython's
# run-time dispatch of a fused def function costs ~10 us per call.
_KERNELS = {np.dtype(np.float32): _direct.correlate_skip["float"],
            np.dtype(np.float64): _direct.correlate_skip["double"],
            np.dtype(np.complex64): _direct.correlate_skip["float complex"],
            np.dtype(np.complex128): _direct.correlate_skip["double complex"],
            np.dtype(np.int64): _direct.correlate_skip["long long"]}


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


def _direct_macs(shape1, shape2, out_shape, shift):
    total = 1
    for n, k, m, s in zip(shape1, shape2, out_shape, shift):
        total *= _pairs_1d(n, k, m, s)
    return total


def _finish(out, result):
    """Cast the kernel's output to scipy's result dtype (bool: any true product)."""
    if result.kind == "b":
        return out != 0
    if out.dtype == result:
        return out
    if result.kind in "iu" and out.dtype.kind == "f":
        # exact integer values in float64: via int64 so the narrowing wraps as scipy's does
        out = out.astype(np.int64)
    with np.errstate(all="ignore"):
        return out.astype(result)


def _direct_nd(in1, w, mode, same_start=_conv_same):
    """Direct N-d correlation of ``in1`` with effective weights ``w`` in ``mode``."""
    result = np.result_type(in1.dtype, w.dtype)
    out_shape, shift = _geometry(mode, in1.shape, w.shape, same_start)
    cdt = sig_compute_dtype(result, in1, w)
    return _finish(_direct_corr(in1, w, out_shape, shift, cdt), result)


# --------------------------------------------------------------------------- argument checks

def _operands(in1, in2):
    return sig_array(in1, "in1"), sig_array(in2, "in2")


def _check_mode(mode):
    return check_choice(mode, "mode", SIG_MODES)


def _empty_result(in1, in2, mode):
    """scipy's outcome for zero-size inputs of convolve/correlate (any method).

    Returns None when both inputs are non-empty, the (empty or all-zero) result
    shape where scipy's direct path returns one, and raises ValueError where it
    raises.  1-D follows numpy.convolve (scipy's 1-D path), which refuses empty
    inputs except an empty ``in1`` in 'same' mode; N-d sums over nothing (zeros)
    except where the output would need a non-empty input.
    """
    if in1.size and in2.size:
        return None
    if mode == "same":
        if in1.size == 0:
            return in1.shape
        raise ValueError(f"in2 cannot be empty in mode 'same' (in2.shape={in2.shape})")
    if in1.ndim == 1:
        name = "in1" if in1.size == 0 else "in2"
        raise ValueError(f"{name} cannot be empty (shape {(in1 if name == 'in1' else in2).shape}) "
                         f"in mode {mode!r}")
    if mode == "valid":
        sig_valid_swap(mode, in1.shape, in2.shape)
        return tuple(abs(n - k) + 1 for n, k in zip(in1.shape, in2.shape))
    shape = tuple(n + k - 1 for n, k in zip(in1.shape, in2.shape))
    if math.prod(shape) == 0:
        return shape
    name = "in1" if in1.size == 0 else "in2"
    raise ValueError(f"{name} cannot be empty in mode 'full' (in1.shape={in1.shape}, "
                     f"in2.shape={in2.shape})")


def _flip(a):
    return a[_REVERSE[a.ndim]]


def _conj(a):
    return np.conj(a) if a.dtype.kind == "c" else a


# --------------------------------------------------------------------------- convolve / correlate

def convolve(in1, in2, mode="full", method="auto"):
    """Convolve two N-dimensional arrays (as ``scipy.signal.convolve``).

    Parameters
    ----------
    in1, in2 : array_like
        Inputs with the same number of dimensions (bool, integer, float or complex).
    mode : {'full', 'valid', 'same'}, optional
        'full': the whole linear convolution; 'valid': the outputs that use no
        zero padding (one input must be at least as large as the other in every
        dim); 'same': the size of ``in1``, centred on the 'full' output.
    method : {'auto', 'direct', 'fft'}, optional
        'direct' sums the products (exact: a NaN/Inf reaches only the outputs
        whose window holds it), 'fft' multiplies spectra, 'auto' picks the faster
        via :func:`choose_conv_method`.

    Returns
    -------
    ndarray
        dtype ``numpy.result_type(in1, in2)``; integer results are exact (rounded
        with 'fft'), bool results are the logical OR of ANDs with every method.

    Examples
    --------
    >>> import pyconv
    >>> pyconv.signal.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> pyconv.signal.convolve([1, 2, 3], [1, 1], mode='valid')
    array([3, 5])
    """
    return _conv_or_corr(in1, in2, mode, method, correlate=False)


def correlate(in1, in2, mode="full", method="auto"):
    """Cross-correlate two N-dimensional arrays (as ``scipy.signal.correlate``).

    ``z[k] = sum_l in1[l] * conj(in2[l - k])``: the convolution of ``in1`` with
    ``in2`` reversed and conjugated.

    Parameters
    ----------
    in1, in2 : array_like
        Inputs with the same number of dimensions.
    mode : {'full', 'valid', 'same'}, optional
        As in :func:`convolve`.
    method : {'auto', 'direct', 'fft'}, optional
        As in :func:`convolve`.

    Returns
    -------
    ndarray
        dtype ``numpy.result_type(in1, in2)``.

    Examples
    --------
    >>> import pyconv
    >>> pyconv.signal.correlate([1, 2, 3], [0, 1, 0.5])
    array([0.5, 2. , 3.5, 3. , 0. ])
    >>> pyconv.signal.correlate([1, 2, 3, 4], [1, 1], mode='same')
    array([1, 3, 5, 7])
    """
    return _conv_or_corr(in1, in2, mode, method, correlate=True)


# Repeated calls with one signature (shapes, dtypes, mode, method, threads) of non-integer
# operands run the direct plan the first call made, skipping the checks and the choice.
_CALLS = _plan.new_cache()
_REVERSE = {n: (slice(None, None, -1),) * n for n in range(65)}


def _conv_or_corr(in1, in2, mode, method, correlate):
    k1, k2 = _plan.array_key(in1), _plan.array_key(in2)
    if k1 is not None and k2 is not None and type(mode) is str and type(method) is str:
        key = (k1, k2, mode, method, correlate) + _plan.signature()
        hit = _CALLS.get(key)
        if hit is not None:
            p, cdt, result = hit
            w = _conj(in2) if correlate else in2[_REVERSE[in2.ndim]]
            return _finish(_run_direct(p, in1, w, cdt), result)
        out = _conv_or_corr_checked(in1, in2, mode, method, correlate)
        _remember_direct(key, in1, in2, mode, method)
        return out
    return _conv_or_corr_checked(in1, in2, mode, method, correlate)


def _remember_direct(key, in1, in2, mode, method):
    """Cache the direct plan of a call that just passed its checks, when the plan depends on
    the shapes and dtypes only (not for integer operands, whose compute dtype and method
    depend on their values, nor for 'fft' or trivial calls)."""
    result = np.result_type(in1.dtype, in2.dtype)
    if result.kind not in "fc" or in1.ndim == 0 or in1.ndim != in2.ndim or not in1.size or not in2.size:
        return
    if method == "fft" or (method == "auto" and _choose(in1, in2, mode) != "direct"):
        return
    out_shape, shift = _geometry(mode, in1.shape, in2.shape)
    if not math.prod(out_shape):
        return
    cdt = sig_compute_dtype(result, in1, in2)
    _CALLS.put(key, (_plan_direct(in1.shape, in2.shape, out_shape, shift, cdt), cdt, result))


def _conv_or_corr_checked(in1, in2, mode, method, correlate):
    in1, in2 = _operands(in1, in2)
    mode = _check_mode(mode)
    method = check_choice(method, "method", SIG_METHODS)
    if in1.ndim == in2.ndim == 0:
        return in1 * (_conj(in2) if correlate else in2)
    sig_same_ndim(in1, in2)
    result = np.result_type(in1.dtype, in2.dtype)
    empty = _empty_result(in1, in2, mode)
    if empty is not None:
        return np.zeros(empty, dtype=result)
    sig_valid_swap(mode, in1.shape, in2.shape)    # raises when neither input fits in the other
    if method == "auto":
        method = _choose(in1, in2, mode)
    # correlate(in1, in2) == convolve(in1, reverse(conj(in2))), 'same' included
    if method == "fft":
        k = _flip(_conj(in2)) if correlate else in2
        return _fft_method(in1, k, mode, result)
    w = _conj(in2) if correlate else _flip(in2)
    return _direct_nd(in1, w, mode)


def _fft_method(in1, in2, mode, result):
    """convolve(method='fft'): scipy's result dtype, integers rounded, bool exact.

    Runs overlap-add where it pays (one input much longer than the other along
    some axis: same rule as :func:`oaconvolve`), else one FFT of the full size.
    """
    if sig_valid_swap(mode, in1.shape, in2.shape):
        in1, in2 = in2, in1
    ax = [a for a in range(in1.ndim) if in1.shape[a] != 1 and in2.shape[a] != 1]
    if result.kind == "b":
        # counts of true products are integers: the threshold at 1/2 is exact
        out = _fft_any(in1.astype(np.float64), in2.astype(np.float64), mode, ax)
        return np.ascontiguousarray(out > 0.5)
    out = _fft_any(in1, in2, mode, ax)
    if result.kind in "iu":
        out = np.rint(out)
    with np.errstate(all="ignore"):
        return np.ascontiguousarray(out.astype(result, copy=False))


def _fft_any(in1, in2, mode, ax):
    """FFT convolution along ``ax``: overlap-add when the cost model says it pays, else one full FFT."""
    plan = _oa_plan(in1.shape, in2.shape, ax)
    if plan:
        cplx = in1.dtype.kind == "c" or in2.dtype.kind == "c"
        single = np.result_type(in1.dtype, in2.dtype) in (np.float32, np.complex64)
        plain, oa = _fft_costs(in1.shape, in2.shape, cplx, single, get_num_threads())
        if oa >= plain:
            plan = {}
    if _plan.VERBOSE or _plan.dry() is not None:
        return _fft_logged(in1, in2, mode, ax, plan)
    if not plan:
        return _fft_core(in1, in2, mode, ax)
    return _crop(_oa_full(in1, in2, sorted(ax), plan), in1.shape, in2.shape, mode, ax)


def _fft_logged(in1, in2, mode, ax, plan):
    """:func:`_fft_any` under ``PYCONV_VERBOSE`` or :func:`pyconv.explain` (which records the plan
    and returns zeros of the result's shape and dtype instead of transforming)."""
    s1, s2 = in1.shape, in2.shape
    out = tuple((s1[d] + s2[d] - 1 if mode == "full" else (s1[d] if mode == "same" else s1[d] - s2[d] + 1))
                if d in ax else (s1[d] if mode == "same" else max(s1[d], s2[d])) for d in range(in1.ndim))
    dtype = np.result_type(in1.dtype, in2.dtype, np.float32) if ax else np.result_type(in1.dtype, in2.dtype)
    if ax and dtype.kind in "iub":
        dtype = np.dtype(np.float64)
    p = Plan("signal", Algorithm.OVERLAP_ADD if plan else Algorithm.FFT, SignalGeometry(s1, s2, out, tuple(ax)),
             dtype, get_num_threads())
    if _plan.dry() is not None:
        _plan.dry().append(p)
        return np.zeros(out, dtype=dtype)
    if not plan:
        return _plan.run(p, _fft_core, in1, in2, mode, ax)
    return _plan.run(p, lambda: _crop(_oa_full(in1, in2, sorted(ax), plan), s1, s2, mode, ax))


# --------------------------------------------------------------------------- FFT

def _fft_precision(in1, in2):
    """Both operands in the result's precision: a float64/complex128 (or integer) result is
    computed in double precision even where one operand is single (int64 * complex64
    gives complex128, so both transform in double); real operands stay real."""
    res = np.result_type(in1.dtype, in2.dtype)
    double = res.kind in "iub" or res in (np.float64, np.complex128) or res.itemsize > 16
    real = np.dtype(np.float64 if double else np.float32)
    cplx = np.dtype(np.complex128 if double else np.complex64)
    return tuple(a.astype(cplx if a.dtype.kind == "c" else real, copy=False) for a in (in1, in2))


def _fft_core(in1, in2, mode, axes):
    """Linear convolution along ``axes`` by FFT (other dims broadcast), cropped to ``mode``.

    ``in1``/``in2`` already swapped for 'valid'.  Computed in the result's precision
    (integer inputs in float64).
    """
    s1, s2 = in1.shape, in2.shape
    if not axes:
        return _crop(in1 * in2, s1, s2, mode, axes)   # scipy's broadcast product, dtype kept
    in1, in2 = _fft_precision(in1, in2)
    cplx = in1.dtype.kind == "c" or in2.dtype.kind == "c"
    full = [s1[a] + s2[a] - 1 for a in axes]
    fshape = [sp_fft.next_fast_len(n, not cplx) for n in full]
    workers = team_size(get_num_threads())  # transforms are independent: the load may shrink the team
    # the part of the full result each mode keeps, per transformed axis (scipy's centring)
    keep = []
    for i, a in enumerate(axes):
        want = full[i] if mode == "full" else (s1[a] if mode == "same" else s1[a] - s2[a] + 1)
        keep.append(((full[i] - want) // 2, want))
    sp = _mul(_spectrum(in1, fshape, axes, cplx, workers), _spectrum(in2, fshape, axes, cplx, workers))
    ret = _inverse(sp, fshape, axes, cplx, keep, workers)
    # dims that were not transformed broadcast; 'same' centres them on in1 as scipy
    sl = [slice(None)] * ret.ndim
    if mode == "same":
        for d in range(ret.ndim):
            if d not in axes:
                st = (ret.shape[d] - s1[d]) // 2
                sl[d] = slice(st, st + s1[d])
    out = ret[tuple(sl)]
    if not out.flags.c_contiguous or (out.base is not None and out.size < out.base.size):
        out = np.array(out, order="C", copy=True)
    return out


def _spectrum(x, fshape, axes, cplx, workers):
    """Forward transform of ``x`` zero-padded to ``fshape`` along ``axes``, one axis at a time.

    The real (or first complex) pass runs along ``axes[-1]`` on ``x`` itself, and
    each later pass pads only its own axis, so the zero padding of a small
    operand (a kernel) costs nothing in the passes before its axis is reached;
    rfftn/fftn would pad every axis first.
    """
    last = axes[-1]
    if cplx:
        y = sp_fft.fft(x, fshape[-1], axis=last, workers=workers)
    else:
        y = sp_fft.rfft(x, fshape[-1], axis=last, workers=workers)
    for a, n in zip(reversed(axes[:-1]), reversed(fshape[:-1])):
        y = sp_fft.fft(y, n, axis=a, workers=workers, overwrite_x=True)
    return y


def _inverse(sp, fshape, axes, cplx, keep, workers):
    """Inverse of :func:`_spectrum`, cropping each axis to ``keep[i] = (start, length)``
    as soon as it is transformed, so later passes skip the rows the mode drops."""
    y = sp
    for i in range(len(axes) - 1):
        a = axes[i]
        y = sp_fft.ifft(y, fshape[i], axis=a, workers=workers, overwrite_x=True)
        st, n = keep[i]
        y = y[(slice(None),) * a + (slice(st, st + n),)]
    a = axes[-1]
    if cplx:
        y = sp_fft.ifft(y, fshape[-1], axis=a, workers=workers, overwrite_x=True)
    else:
        y = sp_fft.irfft(y, fshape[-1], axis=a, workers=workers, overwrite_x=True)
    st, n = keep[-1]
    return y[(slice(None),) * a + (slice(st, st + n),)]


def _mul(x, y):
    """x * y, in place in x when the broadcast shape is x's (saves a spectrum-sized buffer)."""
    # (shape test by hand: np.broadcast_shapes stops at 32 dims, scipy's paths do not)
    if (x.ndim == y.ndim and all(b in (1, a) for a, b in zip(x.shape, y.shape))
            and x.dtype == np.result_type(x, y)):
        x *= y
        return x
    return x * y


def _crop(ret, s1, s2, mode, axes):
    """The 'full'/'same'/'valid' part of a full convolution ``ret`` (a new C-contiguous array)."""
    if mode == "full":
        return np.ascontiguousarray(ret) if ret.base is not None or not ret.flags.c_contiguous \
            else ret
    if mode == "same":
        want = s1
    else:
        want = [s1[d] - s2[d] + 1 if d in axes else ret.shape[d] for d in range(ret.ndim)]
    sl = []
    for d in range(ret.ndim):
        st = (ret.shape[d] - want[d]) // 2
        sl.append(slice(st, st + want[d]))
    return np.array(ret[tuple(sl)], order="C", copy=True)


def _fft_axes(in1, in2, mode, axes):
    """scipy's axes rule (:func:`pyconv._utils.sig_fft_axes`), then the swap for 'valid'.
    Returns (in1, in2, axes)."""
    s1, s2 = in1.shape, in2.shape
    ax = sig_fft_axes(s1, s2, axes)
    if sig_valid_swap(mode, s1, s2, axes=ax):
        in1, in2 = in2, in1
    return in1, in2, ax


def _fft_prologue(in1, in2, mode):
    in1, in2 = _operands(in1, in2)
    mode = _check_mode(mode)
    if in1.ndim == in2.ndim == 0:
        return in1, in2, mode, "scalar"
    sig_same_ndim(in1, in2)
    if in1.size == 0 or in2.size == 0:
        return in1, in2, mode, "empty"
    return in1, in2, mode, None


def fftconvolve(in1, in2, mode="full", axes=None):
    """Convolve two N-dimensional arrays using FFT (as ``scipy.signal.fftconvolve``).

    Runs ``scipy.fft`` with ``workers=pyconv.get_num_threads()``, transforming one
    axis at a time so a small operand's zero padding is not transformed, and by
    overlap-add along a single long axis where that is cheaper.

    Parameters
    ----------
    in1, in2 : array_like
        Inputs with the same number of dimensions.
    mode : {'full', 'valid', 'same'}, optional
        As in :func:`convolve`.
    axes : int or sequence of int, optional
        Axes to convolve over (default: all).  Along the other axes the inputs
        must have equal lengths or length 1 (they broadcast).

    Returns
    -------
    ndarray
        Floating (or complex) result; integer inputs give float64.  Empty inputs
        give an empty array, as scipy's.

    Examples
    --------
    >>> import numpy as np, pyconv
    >>> np.round(pyconv.signal.fftconvolve([1, 2, 3], [1, 1]), 6)
    array([1., 3., 5., 3.])
    >>> pyconv.signal.fftconvolve(np.ones((4, 5)), np.ones((1, 3)), axes=1).shape
    (4, 7)
    """
    in1, in2, mode, special = _fft_prologue(in1, in2, mode)
    if special == "scalar":
        return in1 * in2
    if special == "empty":
        return np.array([])
    in1, in2, ax = _fft_axes(in1, in2, mode, axes)
    # one long 1-D axis against a short kernel: overlap-add where the cost model
    # says it beats one transform of the full length (same result, to rounding)
    return _fft_any(in1, in2, mode, ax)


# --------------------------------------------------------------------------- overlap-add

@functools.lru_cache(maxsize=1024)
def _oa_block(k):
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


def oaconvolve(in1, in2, mode="full", axes=None):
    """Convolve two N-dimensional arrays by overlap-add (as ``scipy.signal.oaconvolve``).

    The larger input is cut into blocks along each axis; each block is convolved
    by FFT with the other input and the results overlap-added.  Where one block
    would cover the whole input (similar sizes) this is :func:`fftconvolve`.

    Parameters
    ----------
    in1, in2 : array_like
        Inputs with the same number of dimensions.
    mode : {'full', 'valid', 'same'}, optional
        As in :func:`convolve`.
    axes : int or sequence of int, optional
        As in :func:`fftconvolve`.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np, pyconv
    >>> out = pyconv.signal.oaconvolve(np.ones(1000), np.ones(11), mode='same')
    >>> out.shape, round(float(out[500]), 6)
    ((1000,), 11.0)
    """
    in1, in2, mode, special = _fft_prologue(in1, in2, mode)
    if special == "scalar":
        return in1 * in2
    if special == "empty":
        return np.array([])
    if in1.shape == in2.shape:
        return fftconvolve(in1, in2, mode=mode, axes=axes)
    in1, in2, ax = _fft_axes(in1, in2, mode, axes)
    ax = sorted(ax)
    s1, s2 = in1.shape, in2.shape
    if not ax:
        return _crop(in1 * in2, s1, s2, mode, ax)
    plan = _oa_plan(s1, s2, ax)
    if _plan.VERBOSE or _plan.dry() is not None:
        return _fft_logged(in1, in2, mode, ax, plan)
    if not plan:
        return _fft_core(in1, in2, mode, ax)
    return _crop(_oa_full(in1, in2, ax, plan), s1, s2, mode, ax)


def _oa_plan(s1, s2, ax):
    """Overlap-add plan: {axis: (which input is cut, FFT block, step)} for the axes where it pays."""
    plan = {}
    for a in ax:
        big, small = max(s1[a], s2[a]), min(s1[a], s2[a])
        if s1[a] == s2[a] or small == 1 or small >= big / 2:
            continue                  # no block size can pay off along this axis
        nb = _oa_block(small)
        if nb >= big:
            continue                  # one block would hold everything
        plan[a] = (0 if s1[a] >= s2[a] else 1, nb, nb - small + 1)
    return plan


def _oa_full(in1, in2, ax, plan):
    """Full convolution along ``ax`` by overlap-add with ``plan[axis] = (which, block, step)``."""
    s1, s2 = in1.shape, in2.shape
    in1, in2 = _fft_precision(in1, in2)
    cplx = in1.dtype.kind == "c" or in2.dtype.kind == "c"
    ops = [in1, in2]
    # Reshape: every axis a becomes (nblocks, length) in both operands; the blocked
    # operand gets its step-long blocks, the other a single block.
    nd = in1.ndim
    shapes = [[], []]
    pads = [[], []]
    fft_axes, fft_len, plan_order = [], [], []
    for d in range(nd):
        if d in plan:
            which, nb, step = plan[d]
            n = (s1, s2)[which][d]
            nblk = -(-n // step)
            for i in (0, 1):
                if i == which:
                    pads[i].append((0, nblk * step - n))
                    shapes[i] += [nblk, step]
                else:
                    pads[i].append((0, 0))
                    shapes[i] += [1, (s1, s2)[i][d]]
            fft_axes.append(len(shapes[0]) - 1)
            fft_len.append(nb)
            plan_order.append((d, nblk, step, nb))
        else:
            for i in (0, 1):
                pads[i].append((0, 0))
                shapes[i].append((s1, s2)[i][d])
            if d in ax:
                full = s1[d] + s2[d] - 1
                fft_axes.append(len(shapes[0]) - 1)
                fft_len.append(sp_fft.next_fast_len(full, not cplx))
                plan_order.append((d, None, None, full))
    blocks = []
    for i in (0, 1):
        x = ops[i]
        if any(p != (0, 0) for p in pads[i]):
            x = np.pad(x, pads[i])
        blocks.append(x.reshape(shapes[i]))
    workers = team_size(get_num_threads())  # transforms are independent: the load may shrink the team
    if cplx:
        sp = sp_fft.fftn(blocks[0], fft_len, axes=fft_axes, workers=workers)
        sp = sp * sp_fft.fftn(blocks[1], fft_len, axes=fft_axes, workers=workers)
        ret = sp_fft.ifftn(sp, fft_len, axes=fft_axes, workers=workers, overwrite_x=True)
    else:
        sp = sp_fft.rfftn(blocks[0], fft_len, axes=fft_axes, workers=workers)
        sp = sp * sp_fft.rfftn(blocks[1], fft_len, axes=fft_axes, workers=workers)
        ret = sp_fft.irfftn(sp, fft_len, axes=fft_axes, workers=workers, overwrite_x=True)
    # Overlap-add the blocks axis by axis (last first, so earlier axis indices hold).
    for (d, nblk, step, nb), fa in reversed(list(zip(plan_order, fft_axes))):
        if nblk is None:
            # plain FFT axis: keep the linear part
            ret = ret[(slice(None),) * fa + (slice(0, nb),)]
            continue
        full = s1[d] + s2[d] - 1
        ba = fa - 1                                  # the block-index axis
        ov = nb - step                               # tail of each block: <= step (nb >= 2k - 2)
        r = np.moveaxis(ret, (ba, fa), (-2, -1))     # (..., nblk, nb)
        acc = np.zeros(r.shape[:-2] + (nblk + 1, step), dtype=ret.dtype)
        acc[..., :nblk, :] = r[..., :step]           # block heads tile the output
        acc[..., 1:, :ov] += r[..., step:]           # tails overlap the next block's head
        acc = acc.reshape(r.shape[:-2] + ((nblk + 1) * step,))[..., :full]
        ret = np.moveaxis(acc, -1, ba)
    return ret


# --------------------------------------------------------------------------- method choice

# Cost model of pyconv's own kernels, in seconds.  Calibrated by timing
# convolve(method='direct') and convolve(method='fft') at 1 thread on 1-D (1e3..1e6
# samples, 9..1e4 taps), 2-D (100^2..1024^2, 3^2..64^2) and 3-D (64^3, 5^3 and 9^3)
# float32/float64 cases on the 2-core development VM, taking the least of 5-12
# runs (the machine was shared, so the constants are good to ~30%):
# * direct: ns per multiply-add ~0.09 float64, ~0.05 float32, ~4x for complex, on
#   long output rows; short rows cost more (per-row set-up: x (1 + 48 / row)), and
#   each (row, block, tap) costs ~2 ns of bookkeeping.  Scales with the threads.
# * FFT: ns per point of the transforms (forward + inverse of every block, one
#   of the other operand) times log2 of the transform size: ~0.25 up to 2**19.5
#   points (256^2: 1.2 ms, 512^2: 4.3 ms), ~0.55 from 2**21.5 points on (1024^2:
#   30-45 ms, 128^3: 105 ms, 1e6: 30 ms for the three transforms); overlap-add (1-D only)
#   pays ~30% for its padding and adds.  0.6x for float32, 2x for complex.  scipy.fft
#   spreads only the *other* axes over workers (~1.6x at 2), so a single 1-D
#   transform runs on one thread.
# The ns figures are the defaults of pyconv._engine.tuning (direct_ns_f4/f8,
# fft_ns_small/large); the calibration measures them on the running machine.
# Complex and int64 direct kernels cost a fixed multiple of the real ones.
_DIRECT_KIND = {"f8": ("direct_ns_f8", 1.0), "f4": ("direct_ns_f4", 1.0), "c16": ("direct_ns_f8", 4.0),
                "c8": ("direct_ns_f4", 4.0), "i8": ("direct_ns_f8", 2.2)}
_DIRECT_TAP_NS = 2.0
_OVERHEAD_DIRECT = 5e-6
_OVERHEAD_FFT = 40e-6


def _direct_ns(ckind, t=None):
    """ns per multiply-add of the direct kernel computing in ``ckind`` (tuning ``t``)."""
    field, factor = _DIRECT_KIND[ckind]
    return getattr(t or _tuning.active(), field) * factor


def _direct_cost(shape1, shape2, mode, ckind, nt):
    out_shape, shift = _geometry(mode, shape1, shape2)
    macs = _direct_macs(shape1, shape2, out_shape, shift)
    row = max(1, out_shape[-1])
    rows = max(1, math.prod(out_shape[:-1]))
    nblocks = -(-row // 2048)
    taps = math.prod(shape2)
    threads = max(1, min(nt, macs // (1 << 15)))
    border = max(0, -shift[-1]) + max(0, shift[-1] + shape2[-1] - 1)
    if len(out_shape) >= 2 and row == shape1[-1] and row < 512 and 4 * border <= row:
        # the kernel merges runs of short rows ('same' mode): little per-row cost
        # (128^3 * 7^3 at 2 threads: 36 ms measured, 35 modelled)
        items = max(1, rows // max(1, 2048 // row))
        t = macs * _direct_ns(ckind) * (1.0 + 16.0 / row) + items * taps * _DIRECT_TAP_NS
    else:
        t = macs * _direct_ns(ckind) * (1.0 + 48.0 / row) + rows * nblocks * taps * _DIRECT_TAP_NS
    return t * 1e-9 / threads + _OVERHEAD_DIRECT


def _fft_points_cost(points, size, plan, cplx, single, par):
    f = min(1.0, max(0.0, (math.log2(max(points, 2)) - 19.5) / 2.0))
    t = _tuning.active()
    ns = (t.fft_ns_small + (t.fft_ns_large - t.fft_ns_small) * f) * (1.3 if plan else 1.0)
    ns *= (2.0 if cplx else 1.0) * (0.6 if single else 1.0)
    return points * math.log2(max(size, 2)) * ns * 1e-9 / par


def _fft_costs(shape1, shape2, cplx, single, nt):
    """Seconds of (one full FFT, overlap-add) for convolve(method='fft'); OA is inf without a plan.

    Each block transform also pays ~0.1 us of set-up (all blocks go in one
    batched call); blocks under 32 samples are never used.
    """
    ax = [a for a in range(len(shape1)) if shape1[a] != 1 and shape2[a] != 1]
    if not ax:
        return _OVERHEAD_FFT, math.inf
    size = 1
    for a in ax:
        size *= sp_fft.next_fast_len(shape1[a] + shape2[a] - 1, not cplx)
    par = 1.0 if len(ax) == 1 else min(nt, 1.6)   # a single 1-D transform runs on one thread
    # in1's transform, the inverse, and the other operand's, whose axis-at-a-time
    # passes skip its zero padding: ~1/len(ax) of a full transform when it is small
    small = math.prod(shape2[a] for a in ax) * 4 <= math.prod(shape1[a] for a in ax)
    plain = _fft_points_cost((2 + (1 / len(ax) if small else 1)) * size, size, {}, cplx, single,
                             par) + _OVERHEAD_FFT
    plan = _oa_plan(shape1, shape2, ax)
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
    # forward + inverse of every block, plus one transform of the other operand
    ntrans = 2 * count + 1
    oa = (_fft_points_cost(ntrans * bsize, bsize, plan, cplx, single, min(nt, 1.6))
          + ntrans * 0.1e-6 + _OVERHEAD_FFT)
    if min(nb for _, nb, _ in plan.values()) < 32:
        oa = math.inf           # blocks of a few samples never pay (measured: 2x slower at 1024^2 * 3^2)
    return plain, oa


def _fft_cost(shape1, shape2, cplx, single, nt):
    """Seconds of convolve(method='fft'), the cheaper of full FFT and overlap-add."""
    return min(_fft_costs(shape1, shape2, cplx, single, nt))


# Decisions of _choose for non-integer operands, keyed by (dtypes, shapes, mode,
# threads): the model is a pure function of these, and evaluating it (~15-20 us)
# is a tenth of a 1e6-sample 9-tap direct call.  Integer operands are not cached
# since their choice depends on the values.  Cleared when full, to stay bounded.
_CHOICES = {}
_CHOICES_MAX = 512


def _choose(in1, in2, mode):
    """'direct' or 'fft' for convolve/correlate of these operands (no validation)."""
    nt = get_num_threads()
    key = (in1.dtype, in2.dtype, in1.shape, in2.shape, mode, nt, _tuning.active())
    choice = _CHOICES.get(key)
    if choice is None:
        choice = _choose_model(in1, in2, mode, nt)
        if np.result_type(in1.dtype, in2.dtype).kind not in "iu":
            if len(_CHOICES) >= _CHOICES_MAX:
                _CHOICES.clear()
            _CHOICES[key] = choice
    return choice


def _choose_model(in1, in2, mode, nt):
    """The cost model behind :func:`_choose` at ``nt`` threads."""
    result = np.result_type(in1.dtype, in2.dtype)
    if result.kind in "iu":
        b1, b2 = (max(abs(int(a.max())), abs(int(a.min()))) for a in (in1, in2))
        if b1 * b2 * min(in1.size, in2.size) > 2 ** 52 - 1:
            return "direct"          # float64 FFT could not hold the exact sums
    shape1, shape2 = in1.shape, in2.shape
    if sig_valid_swap(mode, shape1, shape2):
        shape1, shape2 = shape2, shape1
    cdt = sig_compute_dtype(result, in1, in2)
    ckind = {"f": "f", "c": "c", "i": "i"}[cdt.kind] + str(cdt.itemsize)
    t_direct = _direct_cost(shape1, shape2, mode, ckind, nt)
    cplx = result.kind == "c"
    single = result in (np.float32, np.complex64, np.float16)
    t_fft = _fft_cost(shape1, shape2, cplx, single, nt)
    return "fft" if t_fft < t_direct else "direct"


def choose_conv_method(in1, in2, mode="full", measure=False):
    """Find the faster convolution method, 'direct' or 'fft' (as ``scipy.signal.choose_conv_method``).

    The prediction uses a cost model of pyconv's own kernels (its direct kernel
    is much faster than scipy's, so 'direct' wins up to larger kernels).
    Integer inputs whose exact sums could exceed float64's 2**52 always give
    'direct'.

    Parameters
    ----------
    in1, in2 : array_like
        The arguments that would be passed to :func:`convolve` / :func:`correlate`.
    mode : {'full', 'valid', 'same'}, optional
    measure : bool, optional
        If True, time both methods on these inputs and also return the times.

    Returns
    -------
    method : str
        'direct' or 'fft'.
    times : dict, optional
        ``{'fft': seconds, 'direct': seconds}``, only when ``measure=True``.

    Examples
    --------
    >>> import numpy as np, pyconv
    >>> pyconv.signal.choose_conv_method(np.ones(1000), np.ones(3))
    'direct'
    >>> pyconv.signal.choose_conv_method(np.ones((512, 512)), np.ones((128, 128)))
    'fft'
    """
    in1, in2 = _operands(in1, in2)
    mode = _check_mode(mode)
    if not isinstance(measure, (bool, np.bool_)):
        raise TypeError(f"measure must be a bool; got {measure!r}")
    if measure:
        times = {}
        for method in ("fft", "direct"):
            times[method] = _time_fast(lambda: convolve(in1, in2, mode=mode, method=method))
        return ("fft" if times["fft"] < times["direct"] else "direct"), times
    # As scipy: shapes that convolve would reject still get an answer ('direct').
    if in1.ndim == 0 or in1.ndim != in2.ndim or in1.size == 0 or in2.size == 0:
        return "direct"
    try:
        sig_valid_swap(mode, in1.shape, in2.shape)
    except ValueError:
        return "direct"
    return _choose(in1, in2, mode)


def _time_fast(fn, repeat=3):
    """Best per-call seconds of ``fn``: loops until a repeat takes >= 5 ms (1 loop if slow)."""
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        dt = time.perf_counter() - t0
        if dt >= 5e-4 or number >= 10 ** 6:
            break
        number *= 10
    if dt > 1.0:
        return dt / number
    number *= 10
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / number


# --------------------------------------------------------------------------- 2-D with boundaries

def _check_2d(in1, in2, name):
    if not in1.ndim == in2.ndim == 2:
        raise ValueError(f"{name} inputs must both be 2-D arrays; got in1.ndim={in1.ndim} "
                         f"and in2.ndim={in2.ndim}")
    # as scipy: decided by the result dtype (bool with a numeric partner computes in its type)
    result = np.result_type(in1.dtype, in2.dtype)
    if result.kind == "b" or result == np.float16:
        raise ValueError(f"{name} is not available for in1 dtype {in1.dtype} with in2 dtype {in2.dtype} "
                         f"(result {result}, as scipy.signal); use pyconv.signal.convolve/correlate, "
                         "or cast to float32")


def _compute_dtype_2d(result, in1, w, fv):
    """Kernel dtype for convolve2d/correlate2d: as sig_compute_dtype, the fill value included."""
    if result.kind in "iu" and fv is not None:
        b1 = max(abs(int(fv)), *(abs(int(v)) for v in ((in1.max(), in1.min()) if in1.size else (0,))))
        b2 = max(abs(int(w.max())), abs(int(w.min())))
        return np.dtype(np.float64) if b1 * b2 * w.size < (1 << 53) else np.dtype(np.int64)
    return sig_compute_dtype(result, in1, w)


def _ext_block(in1, start, size, boundary, fv, dtype):
    """in1 extended by ``boundary``, read at positions start .. start+size-1 per dim (2-D)."""
    if boundary == "fill":
        blk = np.full(size, fv, dtype=dtype)
        dst, src = [], []
        for d in range(2):
            a0 = max(0, -start[d])                            # first block index inside in1
            a1 = min(size[d], in1.shape[d] - start[d])
            a1 = max(a0, a1)
            dst.append(slice(a0, a1))
            src.append(slice(a0 + start[d], a1 + start[d]))
        blk[tuple(dst)] = in1[tuple(src)]
        return blk
    blk = in1
    for d in sorted(range(2), key=lambda d: size[d]):     # the narrow side first: small copies
        n = in1.shape[d]
        blk = blk.take(extend_index(n, -start[d], start[d] + size[d] - n, boundary), axis=d)
    return blk


def _direct_2d(in1, in2, mode, boundary, fillvalue, correlate, name):
    k1, k2 = _plan.array_key(in1), _plan.array_key(in2)
    if (k1 is not None and k2 is not None and type(mode) is str and type(boundary) is str
            and type(fillvalue) in (int, float) and fillvalue == 0):
        # fill 0 with finite weights: one skip-kernel pass, no border strips (see below)
        key = ("2d", k1, k2, mode, boundary, correlate) + _plan.signature()
        hit = _CALLS.get(key)
        if hit is not None:
            p, cdt, result, swapped = hit
            a, b = (in2, in1) if swapped and not correlate else (in1, in2)
            w = np.ascontiguousarray(_conj(b) if correlate else b[::-1, ::-1], cdt)
            r = w.reshape(-1)
            if cmath.isfinite(r.dot(r)):          # NaN/Inf (or overflow): the full path below
                out = _finish(_run_direct(p, a, w, cdt), result)
                return np.ascontiguousarray(_conj(out)) if swapped and correlate else out
        out = _direct_2d_checked(in1, in2, mode, boundary, fillvalue, correlate, name)
        result = np.result_type(in1.dtype, in2.dtype)
        if result.kind in "fc" and sig_boundary(boundary) == "fill" and in1.size and in2.size:
            swapped = sig_valid_swap(mode, in1.shape, in2.shape)
            a, b = (in2, in1) if swapped and not correlate else (in1, in2)
            out_shape, shift = _geometry(mode, a.shape, b.shape, _corr2d_same if correlate else _conv_same)
            if math.prod(out_shape):
                cdt = sig_compute_dtype(result, a, b)
                _CALLS.put(key, (_plan_direct(a.shape, b.shape, out_shape, shift, cdt), cdt, result, swapped))
        return out
    return _direct_2d_checked(in1, in2, mode, boundary, fillvalue, correlate, name)


def _direct_2d_checked(in1, in2, mode, boundary, fillvalue, correlate, name):
    for x, xn in ((in1, "in1"), (in2, "in2")):
        try:
            dt = np.asarray(x).dtype
        except (TypeError, ValueError):
            continue            # not array-like: sig_array below names it
        if dt.kind in "OSUVmM":
            raise ValueError(f"{name} is not available for {xn} of dtype {dt}; "
                             "expected an integer, float or complex array")
    in1, in2 = _operands(in1, in2)
    mode = _check_mode(mode)
    boundary = sig_boundary(boundary)
    _check_2d(in1, in2, name)
    result = np.result_type(in1.dtype, in2.dtype)
    # as scipy: fillvalue is checked (and used) only with boundary='fill'
    fv = sig_fillvalue(fillvalue, result) if boundary == "fill" else np.zeros((), dtype=result)
    swapped = sig_valid_swap(mode, in1.shape, in2.shape)
    if swapped and not correlate:
        in1, in2 = in2, in1          # convolution commutes
    w = _conj(in2) if correlate else _flip(in2)
    same_start = _corr2d_same if correlate else _conv_same
    out_shape, shift = _geometry(mode, in1.shape, w.shape, same_start)
    # With fill 0, multiplying the padding only matters where a kernel tap is
    # NaN/Inf (0 * Inf = NaN, as scipy's padded product); otherwise skipping the
    # taps outside in1 gives the same values without touching the padding.
    extend = mode != "valid" and w.size and (boundary != "fill" or fv != 0
                                              or not np.isfinite(w).all())
    if extend and boundary != "fill" and in1.size == 0 and math.prod(out_shape):
        raise ValueError(f"in1 is empty (shape {in1.shape}): boundary={boundary!r} has nothing to extend")
    cdt = _compute_dtype_2d(result, in1, w, fv if extend and boundary == "fill" else None)
    # The skip kernel on in1 itself is exact for every output whose window lies
    # inside in1, and for all of them with fill 0.  Other boundaries then only
    # redo the border strips from small extended blocks (no copy of the image).
    out = _direct_corr(in1, w, out_shape, shift, cdt)
    if extend and math.prod(out_shape):
        lo = [min(out_shape[d], max(0, -shift[d])) for d in range(2)]
        hi = [max(lo[d], min(out_shape[d], in1.shape[d] - w.shape[d] - shift[d] + 1)) for d in range(2)]
        m0, m1 = out_shape
        for ra, rb, ca, cb in ((0, lo[0], 0, m1), (hi[0], m0, 0, m1),
                               (lo[0], hi[0], 0, lo[1]), (lo[0], hi[0], hi[1], m1)):
            if ra < rb and ca < cb:
                blk = _ext_block(in1, (ra + shift[0], ca + shift[1]),
                                 (rb - ra + w.shape[0] - 1, cb - ca + w.shape[1] - 1), boundary, fv, result)
                out[ra:rb, ca:cb] = _direct_corr(blk, w, (rb - ra, cb - ca), (0, 0), cdt)
    out = _finish(out, result)
    if swapped and correlate:
        # scipy computes the swapped case as in2 (*) conj(in1) reversed: the
        # conjugate of the true correlation (identical for real inputs).
        out = np.ascontiguousarray(_conj(out))
    return out


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Convolve two 2-D arrays with a boundary rule (as ``scipy.signal.convolve2d``).

    Parameters
    ----------
    in1, in2 : array_like
        2-D inputs (integer, float32/float64 or complex; scipy rejects bool and float16).
    mode : {'full', 'valid', 'same'}, optional
        As in :func:`convolve`.
    boundary : {'fill', 'wrap', 'symm'}, optional
        How ``in1`` is extended: by ``fillvalue`` ('fill', alias 'pad'),
        periodically ('wrap', alias 'circular') or mirrored with the edge sample
        repeated ('symm', alias 'symmetric').
    fillvalue : scalar, optional
        The value of the padding for 'fill' (cast to the output dtype).

    Returns
    -------
    ndarray
        dtype ``numpy.result_type(in1, in2)``.

    Examples
    --------
    >>> import numpy as np, pyconv
    >>> pyconv.signal.convolve2d(np.eye(3), np.ones((2, 2)), mode='same')
    array([[1., 1., 0.],
           [1., 2., 1.],
           [0., 1., 2.]])
    >>> pyconv.signal.convolve2d(np.eye(3), [[1, 1]], boundary='wrap', mode='same')
    array([[1., 1., 0.],
           [0., 1., 1.],
           [1., 0., 1.]])
    """
    return _direct_2d(in1, in2, mode, boundary, fillvalue, False, "convolve2d")


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Cross-correlate two 2-D arrays with a boundary rule (as ``scipy.signal.correlate2d``).

    As scipy's, 'same' mode centres even kernels one sample later than
    :func:`correlate` does, and when 'valid' mode swaps the inputs (``in2``
    larger) the result is the reversed correlation of ``in2`` with ``conj(in1)``.

    Parameters
    ----------
    in1, in2 : array_like
        2-D inputs.
    mode : {'full', 'valid', 'same'}, optional
    boundary : {'fill', 'wrap', 'symm'}, optional
        As in :func:`convolve2d`.
    fillvalue : scalar, optional

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np, pyconv
    >>> pyconv.signal.correlate2d(np.arange(9).reshape(3, 3), [[1, -1]], mode='valid')
    array([[-1, -1],
           [-1, -1],
           [-1, -1]])
    """
    return _direct_2d(in1, in2, mode, boundary, fillvalue, True, "correlate2d")


# --------------------------------------------------------------------------- separable kernels

def sepconvolve2d(in1, col, row, mode="full"):
    """2-D convolution with the separable kernel ``outer(col, row)``, as two 1-D passes.

    Equals ``convolve2d(in1, numpy.outer(col, row), mode)`` (zero padding) at
    ``len(col) + len(row)`` instead of ``len(col) * len(row)`` products per output.

    Parameters
    ----------
    in1 : array_like
        2-D input.
    col, row : array_like
        1-D, non-empty: the kernel's column (along axis 0) and row (along axis 1) factors.
    mode : {'full', 'valid', 'same'}, optional
        As in :func:`convolve2d`.

    Returns
    -------
    ndarray
        dtype ``numpy.result_type(in1, col, row)``.

    Examples
    --------
    >>> import numpy as np, pyconv
    >>> x = np.arange(16.).reshape(4, 4)
    >>> pyconv.signal.sepconvolve2d(x, [1, 2, 1], [1, 0, -1], mode='valid')
    array([[8., 8.],
           [8., 8.]])
    """
    in1 = sig_array(in1, "in1")
    col = sig_array(col, "col")
    row = sig_array(row, "row")
    mode = _check_mode(mode)
    if in1.ndim != 2:
        raise ValueError(f"in1 must be a 2-D array; got in1.ndim={in1.ndim}")
    for v, vn in ((col, "col"), (row, "row")):
        if v.ndim != 1 or v.size == 0:
            raise ValueError(f"{vn} must be a non-empty 1-D array; got shape {v.shape}")
    res = np.result_type(in1.dtype, col.dtype, row.dtype)
    if res.kind == "b" or res == np.float16:
        raise ValueError(f"sepconvolve2d is not available for the result dtype {res} of in1, col, row "
                         "(as convolve2d); cast to float32")
    kshape = (col.size, row.size)
    sig_valid_swap(mode, in1.shape, kshape)
    result = np.result_type(in1.dtype, col.dtype, row.dtype)
    out_shape, shift = _geometry(mode, in1.shape, kshape)
    # The sum over the 2-D window factors: rows first (along axis 1), then columns.
    if result.kind in "iu":
        b = 1
        for a in (in1, col, row):
            b *= max(1, max(abs(int(a.max())), abs(int(a.min())))) if a.size else 1
        cdt = np.dtype(np.float64) if b * col.size * row.size < (1 << 53) else np.dtype(np.int64)
    else:
        cdt = sig_compute_dtype(result, in1, col, row)
    wr = _flip(row).reshape(1, -1)
    wc = _flip(col).reshape(-1, 1)
    tmp = _direct_corr(in1, wr, (in1.shape[0], out_shape[1]), (0, shift[1]), cdt)
    out = _direct_corr(tmp, wc, out_shape, (shift[0], 0), cdt)
    return _finish(out, result)


def separate(kernel, rtol=1e-6):
    """Split a 2-D kernel into ``(col, row)`` with ``outer(col, row) ≈ kernel`` (SVD rank 1).

    Parameters
    ----------
    kernel : array_like
        2-D, non-empty, finite.
    rtol : float, optional
        Largest accepted relative residual ``||kernel - outer(col, row)||_F / ||kernel||_F``.

    Returns
    -------
    col, row : ndarray
        1-D factors (float64, or float32/complex as the kernel), scaled evenly
        (``|col|`` and ``|row|`` have the same 2-norm) with the largest entry of
        ``col`` positive.

    Raises
    ------
    ValueError
        If the kernel is not separable within ``rtol``.

    Examples
    --------
    >>> import numpy as np, pyconv
    >>> sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    >>> col, row = pyconv.signal.separate(sobel)
    >>> np.round(col / col[0], 6) + 0.0, np.round(row / row[0], 6) + 0.0   # (+ 0.0 turns -0. into 0.)
    (array([1., 2., 1.]), array([ 1.,  0., -1.]))
    """
    k = sig_array(kernel, "kernel")
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"kernel must be a non-empty 2-D array; got shape {k.shape}")
    try:
        rtol = float(rtol)
    except (TypeError, ValueError):
        raise TypeError(f"rtol must be a real number; got {rtol!r}") from None
    if not rtol >= 0:
        raise ValueError(f"rtol={rtol} must be >= 0")
    if k.dtype.kind == "c":
        dt = np.dtype(np.complex64) if k.dtype == np.complex64 else np.dtype(np.complex128)
    else:
        dt = np.dtype(np.float32) if k.dtype in (np.float16, np.float32) else np.dtype(np.float64)
    kc = k.astype(np.complex128 if dt.kind == "c" else np.float64)
    if not np.all(np.isfinite(kc)):
        raise ValueError("kernel must be finite (it holds NaN or Inf)")
    u, s, vh = np.linalg.svd(kc, full_matrices=False)
    total = float(np.sqrt(np.sum(s * s)))
    if total == 0.0:
        return np.zeros(k.shape[0], dtype=dt), np.zeros(k.shape[1], dtype=dt)
    resid = float(np.sqrt(np.sum(s[1:] * s[1:]))) / total
    if resid > rtol:
        raise ValueError(f"kernel is not separable within rtol={rtol:g}: the best rank-1 split "
                         f"leaves a relative residual of {resid:.3g}")
    col = u[:, 0] * np.sqrt(s[0])
    row = vh[0] * np.sqrt(s[0])
    # fix the sign/phase so the result is deterministic: col's largest entry positive real
    i = int(np.argmax(np.abs(col)))
    ph = col[i] / abs(col[i])
    col = col / ph
    row = row * ph
    if dt.kind != "c":
        col, row = col.real, row.real
    return np.ascontiguousarray(col, dtype=dt), np.ascontiguousarray(row, dtype=dt)


# dask arrays go to pyconv.dask (lazy result), never silently into memory
from pyconv._dask_dispatch import route_dask_inputs as _route_dask  # noqa: E402
_route_dask(globals(), __all__, "signal")
