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
Every function reads: normalise arguments (pyconv._utils) -> the plan
(pyconv._engine.signal_plan: output geometry, direct plan, method choice) ->
allocate the output -> one kernel -> return a new C-contiguous array.

The direct method is one N-d correlation kernel (``pyconv._kernels.direct``)
that skips the taps falling outside the signal, so a NaN/Inf reaches exactly
the outputs whose window holds it.  The FFT methods run on ``scipy.fft`` with
pyconv's thread count.
"""
import math
import time

import numpy as np
import scipy.fft as sp_fft

from pyconv._engine import plan as _plan
from pyconv._engine import signal_plan as _sp
from pyconv._engine.boundary import extend_index
from pyconv._engine.geometry import SignalGeometry
from pyconv._engine.plan import Algorithm, Plan
from pyconv._kernels import direct as _direct
from pyconv._threads import first_touch, get_num_threads, team_size
from pyconv._utils import (SIG_METHODS, SIG_MODES, check_choice, sig_fft_axes, sig_int_class,
                           sig_array, sig_boundary, sig_compute_dtype, sig_fillvalue, sig_same_ndim,
                           sig_valid_swap)

__all__ = ["convolve", "correlate", "convolve2d", "correlate2d", "fftconvolve", "oaconvolve",
           "choose_conv_method", "sepconvolve2d", "separate"]


# --------------------------------------------------------------------------- direct

def _finite(w):
    """Whether every weight of ``w`` (float or complex, C-contiguous) is finite, without a
    floating-point warning.  A small kernel's numbers are checked as Python floats (0.3 us
    for 3x3, where ``np.isfinite(w).all()`` takes 1.1; a sum of squares, as fast, warned of
    an overflow for weights of 1e200 and of an invalid value for a complex Inf)."""
    r = w.reshape(-1)
    if r.dtype.kind == "c":
        r = r.view(r.real.dtype)
    if r.size <= 32:
        return all(map(math.isfinite, r.tolist()))
    return bool(np.isfinite(r).all())


def _run_direct(p, x, w, cdt, out=None, finite=False):
    """Run the direct plan ``p`` on ``x`` and the effective weights ``w`` (their shapes are
    the plan's: the kernel checks the element counts against its geometry); ``out``: a
    C-contiguous array of ``cdt`` to write (default: a new one); ``finite``: the caller
    found every weight finite."""
    w = np.ascontiguousarray(w, dtype=cdt)
    if p.nonfinite is not None and not finite and not _finite(w):
        p = p.nonfinite
    d = _plan.dry()
    team = team_size(p.threads) if d is None else 1
    pad = p.tile("pad")
    x = _padded_rows(x, *pad, cdt, team) if pad else np.ascontiguousarray(x, dtype=cdt)
    if out is None:
        out = first_touch(np.empty(p.geometry.out, dtype=cdt), p.threads)
    if d is not None:
        d.append(p)
        out[...] = 0
        return out
    try:
        if _plan.VERBOSE:
            _plan.run(p, _direct.correlate_skip, p.data, x, w, out, team)
        else:
            _direct.correlate_skip(p.data, x, w, out, team)
    except ValueError:
        # the kernel refused an operand before reading anything: an unaligned buffer (an
        # array unpickled from a byte stream) -- run on aligned copies
        _direct.correlate_skip(p.data, np.array(x, order="C"), np.array(w, order="C"), out, team)
    return out


def _valid_into(in1, in2, out, correlate):
    """The direct 'valid' convolution (``correlate``: correlation) of ``in1`` with ``in2``,
    written into ``out`` and returned: the sums of :func:`convolve`, :func:`correlate`,
    :func:`convolve2d` and :func:`correlate2d` in 'valid' mode with the direct method, bit
    for bit, where the result is float or complex and computed in its own dtype (``out``'s,
    C-contiguous; ``in1`` at least ``in2``'s size along every axis).  pyconv.dask's chunks
    write their slabs of rows straight into the chunk's output with it."""
    w = _conj(in2) if correlate else _flip(in2)
    shape, shift = _sp.out_geometry("valid", in1.shape, w.shape)
    return _run_direct(_sp.plan_direct(in1.shape, w.shape, shape, shift, out.dtype), in1, w, out.dtype, out=out)


def _padded_rows(x, axis, before, after, cdt, team=1):
    """A C-contiguous copy of ``x`` in ``cdt`` with ``before`` and ``after`` zeros around
    every row along ``axis`` (the direct plan's ``pad`` tile: its merged sweep then needs no
    border redo), by ``team`` threads where ``x`` is C-contiguous in ``cdt`` (the dims past
    ``axis`` are the plan's free size-1 dims: the rows are contiguous runs)."""
    n = x.shape[axis]
    xp = np.empty(x.shape[:axis] + (n + before + after,) + x.shape[axis + 1:], dtype=cdt)
    if n and x.dtype == cdt and x.flags.c_contiguous and x.flags.aligned and math.prod(x.shape[axis + 1:]) == 1:
        _direct.pad_rows(x, first_touch(xp, team), n, before, after, team)
        return xp
    lead = (slice(None),) * axis
    xp[lead + (slice(0, before),)] = 0
    xp[lead + (slice(before + n, None),)] = 0
    xp[lead + (slice(before, before + n),)] = x
    return xp


def _direct_corr(x, w, out_shape, shift, cdt):
    """``out[o] = sum_k x[o + shift + k] * w[k]`` over taps inside ``x``, computed in ``cdt``."""
    if math.prod(out_shape) == 0 or w.size == 0:
        return np.zeros(out_shape, dtype=cdt)
    return _run_direct(_sp.plan_direct(x.shape, w.shape, tuple(out_shape), tuple(shift), np.dtype(cdt)), x, w, cdt)


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


def _direct_nd(in1, w, mode, same_start=_sp.conv_same):
    """Direct N-d correlation of ``in1`` with effective weights ``w`` in ``mode``."""
    result = np.result_type(in1.dtype, w.dtype)
    out_shape, shift = _sp.out_geometry(mode, in1.shape, w.shape, same_start)
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
        via :func:`choose_conv_method` (a close call is timed both ways once on the
        running machine, and the faster way stored: see there).

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


# Repeated calls with one signature (shapes, dtypes, mode, method, threads; for integer
# operands also what their values decide, sig_int_class) run the direct plan the first call
# made, skipping the checks and the choice.
_CALLS = _plan.new_cache()
_REVERSE = {n: (slice(None, None, -1),) * n for n in range(65)}


def _value_class(in1, in2):
    """The part of a call's key its operands' values decide: () unless both are integer
    or bool arrays (then :func:`sig_int_class`; a bool result also gets a class, unused)."""
    if in1.dtype.kind in "iub" and in2.dtype.kind in "iub" and in1.size and in2.size:
        return sig_int_class(in1, in2)
    return ()


def _conv_or_corr(in1, in2, mode, method, correlate):
    if type(in1) is np.ndarray and type(in2) is np.ndarray and type(mode) is str and type(method) is str:
        # exact ndarrays key the call by (shape, dtype): the plan was made for these shapes
        key = ((in1.shape, in1.dtype, in2.shape, in2.dtype, mode, method, correlate) + _plan.signature()
               + _value_class(in1, in2))
        hit = _CALLS.get(key)
        if hit is not None:
            p, cdt, result = hit
            w = (np.conj(in2) if in2.dtype.kind == "c" else in2) if correlate else in2[_REVERSE[in2.ndim]]
            out = _run_direct(p, in1, w, cdt)
            return out if out.dtype == result else _finish(out, result)
        out = _conv_or_corr_checked(in1, in2, mode, method, correlate)
        _remember_direct(key, in1, in2, mode, method)
        return out
    return _conv_or_corr_checked(in1, in2, mode, method, correlate)


def _remember_direct(key, in1, in2, mode, method):
    """Cache the direct plan of a call that just passed its checks, when the plan depends on
    the key only (integer operands: their value class is in the key; not for bool results,
    'fft' or trivial calls)."""
    result = np.result_type(in1.dtype, in2.dtype)
    if result.kind not in "fciu" or in1.ndim == 0 or in1.ndim != in2.ndim or not in1.size or not in2.size:
        return
    if method == "fft" or (method == "auto" and _sp.choose_method(in1, in2, mode) != "direct"):
        return
    out_shape, shift = _sp.out_geometry(mode, in1.shape, in2.shape)
    if not math.prod(out_shape):
        return
    cdt = sig_compute_dtype(result, in1, in2)
    _CALLS.put(key, (_sp.plan_direct(in1.shape, in2.shape, out_shape, shift, cdt), cdt, result))


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
        ran = {}
        method = _sp.choose_method(in1, in2, mode,
                                   timer=lambda: _time_methods(in1, in2, mode, correlate, ran))
        if method in ran:
            return ran[method]          # timed just now: that run's result is this call's
    # correlate(in1, in2) == convolve(in1, reverse(conj(in2))), 'same' included
    if method == "fft":
        k = _flip(_conj(in2)) if correlate else in2
        return _fft_method(in1, k, mode, result)
    w = _conj(in2) if correlate else _flip(in2)
    return _direct_nd(in1, w, mode)


def _time_methods(in1, in2, mode, correlate, outputs):
    """Seconds of method='direct' and method='fft' on these operands, each the least of three
    runs taken in turn (the first of each also makes its plans and memory; the host's speed
    drifts: 1024^2 * 31x31 float32 direct at 2 threads ran 12.6, 22.9 and 24.6 ms in three
    calls a second apart, Intel Xeon VM); ``outputs`` receives each method's result.  What
    :func:`_sp.choose_method` times a close call by."""
    times = {"direct": math.inf, "fft": math.inf}
    for _ in range(3):
        for m in times:
            t0 = time.perf_counter()
            outputs[m] = _conv_or_corr_checked(in1, in2, mode, m, correlate)
            times[m] = min(times[m], time.perf_counter() - t0)
    return times


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


# the overlap-add plan (or {}: one full FFT) of an FFT call, per (shapes, axes, dtypes) and
# plan signature (threads, tuning)
_FFT_PLANS = _plan.new_cache()


def _fft_any(in1, in2, mode, ax):
    """FFT convolution along ``ax``: overlap-add when the cost model says it pays, else one full FFT."""
    key = (in1.shape, in2.shape, tuple(ax), in1.dtype, in2.dtype) + _plan.signature()
    plan = _FFT_PLANS.get(key)
    if plan is None:
        plan = _sp.oa_plan(in1.shape, in2.shape, ax)
        if plan:
            cplx = in1.dtype.kind == "c" or in2.dtype.kind == "c"
            single = np.result_type(in1.dtype, in2.dtype) in (np.float32, np.complex64)
            plain, oa = _sp.fft_costs(in1.shape, in2.shape, cplx, single, get_num_threads())
            if oa >= plain:
                plan = {}
        _FFT_PLANS.put(key, plan)
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
    cplx = np.result_type(in1.dtype, in2.dtype).kind == "c"
    # the workers the transforms get on a quiet machine (fewer when other processes hold cores)
    workers = _sp.fft_workers(_sp.fft_points(s1, s2, ax, plan, cplx), get_num_threads())
    p = Plan("signal", Algorithm.OVERLAP_ADD if plan else Algorithm.FFT, SignalGeometry(s1, s2, out, tuple(ax)),
             dtype, workers)
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
    workers = _sp.fft_workers(_sp.fft_points(s1, s2, axes, {}, cplx), team_size(get_num_threads()))
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
    plan = _sp.oa_plan(s1, s2, ax)
    if _plan.VERBOSE or _plan.dry() is not None:
        return _fft_logged(in1, in2, mode, ax, plan)
    if not plan:
        return _fft_core(in1, in2, mode, ax)
    return _crop(_oa_full(in1, in2, ax, plan), s1, s2, mode, ax)


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
    # the block transforms go in one batched call: its points decide the workers
    batch = blocks[0].size // max(1, math.prod(blocks[0].shape[a] for a in fft_axes))
    workers = _sp.fft_workers(math.prod(fft_len) * batch, team_size(get_num_threads()))
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
def choose_conv_method(in1, in2, mode="full", measure=False):
    """Find the faster convolution method, 'direct' or 'fft' (as ``scipy.signal.choose_conv_method``).

    The prediction uses a cost model of pyconv's own kernels (its direct kernel
    is much faster than scipy's, so 'direct' wins up to larger kernels).  Where the
    model's figures for the two methods are close (within 2x, the faster at least
    0.5 ms), ``method='auto'`` times both once on the running machine and stores the
    faster in the tuning cache (``pyconv.show_config()`` names the file); this function
    then returns that stored choice (it never times anything with ``measure=False``).
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
    return _sp.choose_method(in1, in2, mode)


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


# convolve2d/correlate2d's call signatures (as _CALLS, with the boundary)
_CALLS_2D = _plan.new_cache()


def _direct_2d(in1, in2, mode, boundary, fillvalue, correlate, name):
    if (type(in1) is np.ndarray and type(in2) is np.ndarray and type(mode) is str and type(boundary) is str
            and type(fillvalue) in (int, float) and (fillvalue == 0 or boundary in ("wrap", "symm"))):
        # fill 0 with finite weights: one skip-kernel pass, no border strips; 'wrap' and
        # 'symm' on an image small enough to extend whole (_sp.extend_whole): one pass over
        # the extended copy, its index maps kept with the plan (see _direct_2d_checked)
        key = ((in1.shape, in1.dtype, in2.shape, in2.dtype, mode, boundary, correlate) + _plan.signature()
               + _value_class(in1, in2))
        hit = _CALLS_2D.get(key)
        if hit is not None:
            p, cdt, result, swapped, idx = hit
            a, b = (in2, in1) if swapped and not correlate else (in1, in2)
            w = np.ascontiguousarray(_conj(b) if correlate else b[::-1, ::-1], cdt)
            if idx is not None:
                return _finish(_run_direct(p, a.take(idx[0], axis=0).take(idx[1], axis=1), w, cdt), result)
            if _finite(w):          # NaN/Inf (or overflow): the full path below
                out = _run_direct(p, a, w, cdt, finite=True)
                if out.dtype != result:
                    out = _finish(out, result)
                return np.ascontiguousarray(_conj(out)) if swapped and correlate else out
        out = _direct_2d_checked(in1, in2, mode, boundary, fillvalue, correlate, name)
        result = np.result_type(in1.dtype, in2.dtype)
        if result.kind in "fciu" and in1.size and in2.size:
            swapped = sig_valid_swap(mode, in1.shape, in2.shape)
            a, b = (in2, in1) if swapped and not correlate else (in1, in2)
            out_shape, shift = _sp.out_geometry(mode, a.shape, b.shape, _sp.corr2d_same if correlate else _sp.conv_same)
            cdt = sig_compute_dtype(result, a, b)
            ext = (out_shape[0] + b.shape[0] - 1, out_shape[1] + b.shape[1] - 1)
            if math.prod(out_shape) and (sig_boundary(boundary) == "fill" or mode == "valid"):
                # ('valid' reads no boundary)
                _CALLS_2D.put(key, (_sp.plan_direct(a.shape, b.shape, out_shape, shift, cdt), cdt, result, swapped,
                                    None))
            elif math.prod(out_shape) and _sp.extend_whole(ext, cdt.itemsize):
                idx = tuple(extend_index(a.shape[d], -shift[d], shift[d] + ext[d] - a.shape[d], sig_boundary(boundary))
                            for d in range(2))
                _CALLS_2D.put(key, (_sp.plan_direct(ext, b.shape, out_shape, (0, 0), cdt), cdt, result, swapped, idx))
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
    same_start = _sp.corr2d_same if correlate else _sp.conv_same
    out_shape, shift = _sp.out_geometry(mode, in1.shape, w.shape, same_start)
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
    # redo the border strips from small extended blocks (no copy of the image), or,
    # where a copy costs less than those four more calls, run once on the whole
    # image extended (the same sums in the same order: the same bits).
    ext = (out_shape[0] + w.shape[0] - 1, out_shape[1] + w.shape[1] - 1)
    if extend and math.prod(out_shape) and _sp.extend_whole(ext, np.dtype(cdt).itemsize):
        blk = _ext_block(in1, shift, ext, boundary, fv, result)
        return _finish_2d(_direct_corr(blk, w, out_shape, (0, 0), cdt), result, swapped and correlate)
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
    return _finish_2d(out, result, swapped and correlate)


def _finish_2d(out, result, conj):
    """The kernel's output in scipy's result dtype; ``conj``: a swapped correlation, which
    scipy computes as in2 (*) conj(in1) reversed: the conjugate of the true correlation
    (identical for real inputs)."""
    out = _finish(out, result)
    return np.ascontiguousarray(_conj(out)) if conj else out


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
    out_shape, shift = _sp.out_geometry(mode, in1.shape, kshape)
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
