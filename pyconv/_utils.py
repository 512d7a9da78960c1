"""The one place where pyconv normalises arguments and applies its dtype policy (the
thread runtime is pyconv/_threads.py, re-exported here).

Every public function reads: validate and normalise here -> pick an algorithm ->
allocate the output -> one typed kernel -> return.  Kernels trust what they get,
so every bound they rely on is checked in this module first.
"""
import operator

import numpy as np

from pyconv._engine.boundary import extend_index

# --------------------------------------------------------------------------- threads
# The thread runtime lives in pyconv/_threads.py; its names are re-exported here.
from pyconv._threads import (blas_single_thread, get_num_threads, num_parts_for,  # noqa: E402,F401
                             num_threads_for, openmp_enabled, set_num_threads, team_size, threads)


# --------------------------------------------------------------------------- scalars

def check_int(value, name):
    """``operator.index(value)`` with a TypeError that names the argument."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices`` (strings), else ValueError naming them."""
    if not isinstance(value, str) or value not in choices:
        opts = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {opts}; got {value!r}")
    return value


def as_tuple(value, n, name, minimum=None):
    """Normalise an int or a length-``n`` sequence of ints to an ``n``-tuple.

    ``minimum`` (if given) is the least value each entry may take.
    """
    if isinstance(value, (list, tuple, np.ndarray)):
        vals = list(value)
        if len(vals) != n:
            raise ValueError(f"{name} must be an int or a tuple of {n} ints; got {value!r}")
        out = tuple(check_int(v, name) for v in vals)
    else:
        out = (check_int(value, name),) * n
    if minimum is not None:
        for v in out:
            if v < minimum:
                raise ValueError(f"{name}={value!r}: every entry must be >= {minimum}")
    return out


# --------------------------------------------------------------------------- dtypes

def dl_dtype(*arrays):
    """The compute dtype of pyconv.nn / pyconv.grad for these operands.

    float32 stays float32; any float64 operand (or integer/bool, or anything else
    real) makes it float64; float16 computes in float32; complex raises TypeError.
    """
    dts = [a.dtype for a in arrays if a is not None]
    result = None
    for dt in dts:
        if dt.kind == "c":
            raise TypeError(f"complex input (dtype {dt}) is not supported by pyconv.nn/pyconv.grad; "
                            "use pyconv.signal for complex convolution")
        if dt.kind not in "biuf":
            raise TypeError(f"input dtype {dt} is not numeric")
        cand = np.dtype(np.float32) if dt in (np.float16, np.float32) else np.dtype(np.float64)
        result = cand if result is None else np.promote_types(result, cand)
    return result if result is not None else np.dtype(np.float64)


def as_array(x, name, dtype=None):
    """``np.asarray`` that names the argument when the input is not array-like."""
    try:
        a = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as e:
        # the exception type numpy (and scipy) raise: ValueError for ragged nesting
        raise type(e)(f"{name} must be array-like: {e}") from None
    if a.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    return a


def contiguous(a, dtype):
    """``a`` as a C-contiguous array of ``dtype``, copying only when needed.

    Read-only inputs are fine: kernels take const memoryviews.
    """
    return np.ascontiguousarray(a, dtype=dtype)


# --------------------------------------------------------------------------- nn (pyconv.nn)

_INT32_MAX = 2**31 - 1


def nn_batched(x, nd, name="input"):
    """Return ``(x_batched, unbatched)``: ``x`` of rank ``nd+1`` gains a batch axis.

    Deep-learning inputs are ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``.
    """
    if x.ndim == nd + 2:
        return x, False
    if x.ndim == nd + 1:
        return x[None], True
    raise ValueError(f"{name} must have {nd + 1} (unbatched) or {nd + 2} (batched) dims for a "
                     f"{nd}-d convolution; got shape {x.shape}")


_NN_INT_LIMIT = 2**62


def nn_check_limits(values, name):
    """ValueError naming ``name`` when a size argument cannot be indexed in int64."""
    for v in values:
        if abs(v) >= _NN_INT_LIMIT:
            raise ValueError(f"{name}={v} is too large: every entry must be below 2**62")
    return values


def nn_check_size(shape, name):
    """ValueError naming the arguments (``name``) that ask for an array of ``shape`` too
    large for any machine to index (numpy's own errors would not name them)."""
    total = 1
    for v in shape:
        total *= int(v)
    if total >= _NN_INT_LIMIT // 16:
        raise ValueError(f"{name}: the array of shape {tuple(int(v) for v in shape)} ({total} elements) "
                         f"this asks for is too large to allocate")
    return shape


def nn_check_span(sizes, kernel, stride, dilation, pad_pairs):
    """ValueError when a geometry's index arithmetic would leave int64 (kernels index
    with 64-bit integers: ``o*stride + tap*dilation - padding`` must stay representable)."""
    for i, k, s_, d_, (pb, pa) in zip(sizes, kernel, stride, dilation, pad_pairs):
        if (i + 1) * s_ + (k - 1) * d_ + pb + pa >= _NN_INT_LIMIT:
            raise ValueError(f"stride={s_}, dilation={d_} and padding=({pb}, {pa}) with kernel size {k} "
                             f"and input size {i} are too large: their index span exceeds 2**62")


def nn_check_pad_modes(sizes, pad_pairs, mode):
    """The PyTorch limits of a padding mode (checked before any map is built)."""
    for n, (pb, pa) in zip(sizes, pad_pairs):
        if mode == "reflect" and (pb >= n or pa >= n):
            raise ValueError(f"padding_mode='reflect' needs padding < input size in every dim; got "
                             f"padding ({pb}, {pa}) for size {n}")
        if mode == "circular" and (pb > n or pa > n):
            raise ValueError(f"padding_mode='circular' needs padding <= input size in every dim; got "
                             f"padding ({pb}, {pa}) for size {n}")
        if mode == "replicate" and n == 0 and (pb or pa):
            raise ValueError("padding_mode='replicate' cannot pad an empty dimension")


def nn_pad_maps(sizes, pad_pairs, mode):
    """Index maps of a padding mode: for each dim, the source index of every padded
    position (-1 for a zero).  ``mode``: 'zeros', 'reflect', 'replicate', 'circular'
    (torch.nn.ConvNd's padding_mode).  Reflect needs pad < size, circular pad <= size,
    replicate a non-empty dim, as in PyTorch (checked first).
    """
    nn_check_pad_modes(sizes, pad_pairs, mode)
    return [np.ascontiguousarray(extend_index(n, pb, pa, mode), dtype=np.int64) for n, (pb, pa) in zip(sizes, pad_pairs)]


def nn_check_gemm_dims(*dims):
    """BLAS takes 32-bit ints: refuse (ValueError) matrices it cannot address."""
    for d in dims:
        if d > _INT32_MAX:
            raise ValueError(f"problem too large for the GEMM path: a matrix dimension of {d} "
                             f"exceeds 2**31-1")


# --------------------------------------------------------------------------- signal
# Argument normalisation and the dtype policy of pyconv.signal (scipy.signal's rules).

SIG_MODES = ("full", "same", "valid")
SIG_METHODS = ("auto", "direct", "fft")
# scipy's boundary names and aliases -> the canonical one
SIG_BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
                  "symm": "symm", "symmetric": "symm", "symmetrical": "symm"}


def sig_array(x, name):
    """``x`` as an ndarray of a numeric dtype (bool, integer, float, complex)."""
    a = as_array(x, name)
    if a.dtype.kind not in "biufc":
        raise TypeError(f"{name} must be a numeric array (bool, integer, float or complex); "
                        f"got dtype {a.dtype}")
    return a


def sig_boundary(boundary):
    """Canonical boundary name ('fill', 'wrap' or 'symm') for scipy's names and aliases."""
    if not isinstance(boundary, str) or boundary not in SIG_BOUNDARIES:
        raise ValueError("boundary must be one of 'fill' (or 'pad'), 'wrap' (or 'circular'), "
                         f"'symm' (or 'symmetric'); got {boundary!r}")
    return SIG_BOUNDARIES[boundary]


def sig_same_ndim(in1, in2):
    if in1.ndim != in2.ndim:
        raise ValueError(f"in1 and in2 should have the same dimensionality; got in1.ndim={in1.ndim} "
                         f"and in2.ndim={in2.ndim}")


def sig_fft_axes(shape1, shape2, axes):
    """scipy.signal.fftconvolve's axes rule for operands of these shapes (one ndim): normalise
    ``axes`` (None = all), drop the axes where either operand has length 1 (a broadcast, not
    a convolution) and check that every other axis matches or broadcasts.  Returns a list."""
    nd = len(shape1)
    if axes is None:
        ax = list(range(nd))
    else:
        try:
            seq = [operator.index(axes)] if np.ndim(axes) == 0 else [operator.index(a) for a in axes]
        except TypeError:
            raise ValueError(f"axes must be a scalar or iterable of integers; got {axes!r}") from None
        if not seq:
            raise ValueError("axes cannot be empty when provided; give None for every axis")
        ax = []
        for a in seq:
            if not -nd <= a < nd:
                raise ValueError(f"axes={axes!r}: axis {a} is out of range for {nd}-d inputs")
            ax.append(a % nd)
        if len(set(ax)) != len(ax):
            raise ValueError(f"axes={axes!r} must be unique")
    ax = [a for a in ax if shape1[a] != 1 and shape2[a] != 1]
    for d in range(nd):
        if d not in ax and not (shape1[d] == shape2[d] or shape1[d] == 1 or shape2[d] == 1):
            raise ValueError(f"incompatible shapes for in1 and in2: {tuple(shape1)} and {tuple(shape2)} "
                             f"(dim {d} is not convolved, so it must match or be 1)")
    return ax


def sig_valid_swap(mode, shape1, shape2, axes=None):
    """True when 'valid' mode needs in1/in2 swapped; ValueError when neither fits in the other."""
    if mode != "valid" or not shape1:
        return False
    axes = range(len(shape1)) if axes is None else axes
    ok1 = all(shape1[i] >= shape2[i] for i in axes)
    ok2 = all(shape2[i] >= shape1[i] for i in axes)
    if not (ok1 or ok2):
        raise ValueError("For 'valid' mode, one must be at least as large as the other in every "
                         f"dimension: in1.shape={tuple(shape1)}, in2.shape={tuple(shape2)}")
    return not ok1


# largest |value| of each integer dtype (bool: 1), looked up once
_RANGES = {}


def _int_sum_bound(*arrays):
    """A bound on |partial sum| of integer/bool operands: the product of their largest
    |values| times the smallest size (what every output sums at most).  From the dtypes'
    ranges when those already keep it below 2**52 (bool, int8/int16 and unsigned
    counterparts with few terms: no pass over the values), else from the values."""
    n = min(max(1, a.size) for a in arrays)
    bound = n
    for a in arrays:
        r = _RANGES.get(a.dtype)
        if r is None:
            r = _RANGES[a.dtype] = 1 if a.dtype.kind == "b" else max(-int(np.iinfo(a.dtype).min),
                                                                     int(np.iinfo(a.dtype).max))
        bound *= r
    if bound < (1 << 52):
        return bound
    bound = n
    for a in arrays:
        if a.size:
            bound *= max(abs(int(a.max())), abs(int(a.min())))
    return bound


def sig_int_class(*arrays):
    """What the values of integer operands decide about a call: ``(compute dtype, float64
    FFT inexact)`` -- float64 or int64 (:func:`sig_compute_dtype`), and whether the exact
    sums could pass float64's 2**52 (method 'auto' then computes directly).  Calls with one
    class, shapes and dtypes plan alike."""
    bound = _int_sum_bound(*arrays)
    return (np.dtype(np.float64) if bound < (1 << 53) else np.dtype(np.int64)), bound > (1 << 52) - 1


def sig_compute_dtype(result, *arrays):
    """The dtype the direct kernel computes in for a result of dtype ``result``.

    float32/complex64 stay single precision and float16 computes in float32.
    Integer results are exact: in float64 when every partial sum provably stays
    below 2**53 (faster, vectorises), else in int64 (``long long``) whose
    wrap-around matches scipy's overflow in the result dtype.  bool counts the
    true products (float32 is exact below 2**24 terms) and the caller tests > 0.
    """
    result = np.dtype(result)
    if result.kind == "b":
        n = min(a.size for a in arrays)
        return np.dtype(np.float32) if n < (1 << 24) else np.dtype(np.float64)
    if result.kind in "iu":
        return sig_int_class(*arrays)[0]
    if result.kind == "c":
        return np.dtype(np.complex64) if result == np.complex64 else np.dtype(np.complex128)
    if result in (np.float16, np.float32):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def sig_fillvalue(fillvalue, result):
    """scipy's ``fillvalue`` rule: one number, cast to the result dtype (ValueError otherwise)."""
    try:
        fv = np.asarray(fillvalue)
    except (TypeError, ValueError):
        raise ValueError(f"fillvalue must be a scalar or an array with one element; got {fillvalue!r}") from None
    if fv.size != 1:
        raise ValueError(f"fillvalue must be a scalar or an array with one element; got shape {fv.shape}")
    fv = fv.reshape(())
    if fv.dtype.kind not in "biufc":
        raise ValueError(f"fillvalue must be a number; got {fillvalue!r}")
    result = np.dtype(result)
    if fv.dtype.kind == "c" and result.kind != "c":
        if fv.imag != 0:
            raise ValueError(f"fillvalue={fillvalue!r} is complex but the output dtype is {result}: "
                             "could not cast fillvalue to the output type")
        fv = fv.real
    if result.kind in "iu":
        # as scipy: the value must fit the integer output (it truncates toward 0)
        v = complex(fv).real
        info = np.iinfo(result)
        if not np.isfinite(v) or not info.min <= int(v) <= info.max:
            raise ValueError(f"fillvalue={fillvalue!r} cannot be cast to the output dtype {result} "
                             f"(range {info.min}..{info.max})")
        return np.asarray(int(v)).astype(result)
    with np.errstate(all="ignore"):
        return np.asarray(fv).astype(result)
