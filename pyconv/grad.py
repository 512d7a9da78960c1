"""Backward passes of every pyconv forward function.

Kinds of convolution
--------------------
===================================  =================================================
standard convolution (pyconv.nn)     :func:`conv1d_backward`, :func:`conv2d_backward`,
                                     :func:`conv3d_backward`, :func:`conv_backward`;
                                     one gradient alone, as ``torch.nn.grad``:
                                     :func:`conv1d_input`, :func:`conv2d_input`,
                                     :func:`conv3d_input`, :func:`conv1d_weight`,
                                     :func:`conv2d_weight`, :func:`conv3d_weight`
transposed                           :func:`conv_transpose1d_backward`,
                                     :func:`conv_transpose2d_backward`,
                                     :func:`conv_transpose3d_backward`
depthwise, pointwise, separable      :func:`depthwise_conv2d_backward`,
                                     :func:`pointwise_conv2d_backward`,
                                     :func:`separable_conv2d_backward`
flattened, channel shuffle,          :func:`flattened_conv2d_backward`,
resize-convolution                   :func:`channel_shuffle_backward`,
                                     :func:`resize_conv2d_backward`
im2col / col2im                      :func:`unfold_backward`, :func:`fold_backward`
signal processing (pyconv.signal)    :func:`convolve_backward`, :func:`correlate_backward`,
                                     :func:`convolve2d_backward`,
                                     :func:`correlate2d_backward`,
                                     :func:`fftconvolve_backward`,
                                     :func:`oaconvolve_backward`,
                                     :func:`sepconvolve2d_backward`
checking any of them                 :func:`gradcheck` (central finite differences)
===================================  =================================================

In a network, the ``grad_input`` one backward returns is the ``grad_output`` of the
layer before it; the guide (``python -m pyconv --guide``, section "Training a
network") and ``examples/train_digits.py`` chain them.

Conventions
-----------
``pyconv.grad`` mirrors :mod:`pyconv.nn` and :mod:`pyconv.signal` name for name:
``<name>_backward(grad_output, *args, **kwargs)`` takes the forward call's own
arguments after ``grad_output`` and returns a tuple with the gradient of each array
argument, in the forward signature's order (``None`` for a ``bias=None``), in the
forward's compute dtype (float32 stays float32).  ``conv1d_input`` ... ``conv3d_weight``
follow ``torch.nn.grad``.  :func:`gradcheck` compares any of them with central
finite differences.

Backward passes are convolutions too, planned and run by the same engine as the
forward functions (``pyconv._engine``; ``pyconv.explain(grad.conv2d_backward, ...)``
shows the plans).  The input gradient of a convolution is the transposed convolution
of ``grad_output``: at stride 1 the forward convolution of ``grad_output`` with the
flipped kernel ('flip_conv'), otherwise the transposed convolution's own algorithms
(direct output phases: 'phases' / 'phases_oc' for dense groups, 'thin_phase' for
depthwise and thin groups; or GEMM + col2im).  The weight gradient is the correlation of
the input with ``grad_output``: the thin direct kernel of
``pyconv/_kernels/grad_direct.pyx`` for depthwise and thin groups (fewer than 8 output
channels per group, unit row stride), per-thread phase planes ('thin_phase') for strided
thin groups, the register-blocked direct kernel of ``dense_direct.pyx`` for wider
groups, im2col + GEMM beyond its workspace budget, and for 1x1 layers a packed panel
kernel or matrix products (one per group).  Taps that only ever
read padding are dropped before either gradient runs, as in the forward pass.  A
padding mode's adjoint folds the gradient of the padded border back onto the input
elements it copied.  The signal layer's gradients are correlations / convolutions of
``grad_output`` (embedded into the 'full' output) with the other operand, computed by
:mod:`pyconv.signal` itself.

Complex inputs
--------------
The backward passes are defined for real inputs only: complex arrays raise
``TypeError`` (``pyconv.nn`` rejects them already; for the signal layer,
differentiate the real and imaginary parts separately).  Integer inputs to the
signal functions get float64 gradients and float16 inputs float32 ones (the dtype
pyconv.nn computes float16 in); bool inputs (whose forward is a logical OR of ANDs,
not differentiable) raise ``TypeError``.
"""
import inspect

import numpy as np

from pyconv import _threads
from pyconv._engine import args as _args
from pyconv._engine import conv as _conv
from pyconv._engine import plan as _plan
from pyconv._engine import resample as _resample
from pyconv._kernels import nn_gemm
from pyconv._engine.boundary import extend_index
from pyconv._engine.geometry import conv_geometry
from pyconv import _grad_ndimage as ndimage  # noqa: F401,E402  (pyconv.grad.ndimage: the ndimage filters' backward passes)
from pyconv._utils import (SIG_MODES, as_array, check_choice, check_int, contiguous, dl_dtype, nn_check_size, nn_pad_maps,
                           sig_array, sig_boundary, sig_fft_axes, sig_fillvalue, sig_same_ndim, sig_valid_swap)

__all__ = [
    "conv1d_input", "conv2d_input", "conv3d_input", "conv1d_weight", "conv2d_weight", "conv3d_weight",
    "conv1d_backward", "conv2d_backward", "conv3d_backward", "conv_backward",
    "conv_transpose1d_backward", "conv_transpose2d_backward", "conv_transpose3d_backward",
    "depthwise_conv2d_backward", "pointwise_conv2d_backward", "separable_conv2d_backward",
    "flattened_conv2d_backward", "channel_shuffle_backward", "resize_conv2d_backward",
    "unfold_backward", "fold_backward",
    "convolve_backward", "correlate_backward", "convolve2d_backward", "correlate2d_backward",
    "fftconvolve_backward", "oaconvolve_backward", "sepconvolve2d_backward",
    "gradcheck",
]


# =========================================================================== conv cores
# Arrays reaching these are batched (N, C, *spatial), C-contiguous, of one float dtype,
# with shapes already validated; `pads` are (before, after) zero-padding pairs.

def _input_core(go, w, x_shape, stride, pads, dil, groups):
    """dL/dx (shape ``x_shape``) of ``y = conv(x, w)``: the transposed convolution of ``go``."""
    g = conv_geometry(x_shape, w.shape, stride, pads, dil, groups)
    return _conv.input_grad(_conv.plan_input_grad(g, go.dtype), go, w)


def _weight_core(x, go, w_shape, stride, pads, dil, groups):
    """dL/dw (shape ``w_shape``) of ``y = conv(x, w)``: the correlation of x with ``go``.

    ``go`` may cover fewer output positions than the convolution has (a transposed
    convolution with output_padding); the missing ones carry zero gradient.
    """
    g = conv_geometry(x.shape, w_shape, stride, pads, dil, groups)
    return _conv.weight_grad(_conv.plan_weight_grad(g, go.dtype), x, go)


# =========================================================================== argument handling

def _arr(x, name):
    a = as_array(x, name)
    if a.dtype.kind == "c":
        raise TypeError(f"{name} is complex (dtype {a.dtype}); pyconv.grad differentiates real inputs only")
    return a


class _Conv:
    """A convolution's normalised arguments (from ``pyconv._engine.args.normalize_conv``)."""

    def xc(self):
        return contiguous(self.x, self.dtype)


def _conv_setup(x, w, b, stride, padding, dilation, groups, padding_mode, nd):
    """Normalise a convNd call exactly as the forward does (pyconv._engine.args.normalize_conv)."""
    a = _args.normalize_conv(x, w, b, stride, padding, dilation, groups, padding_mode, nd)
    c = _Conv()
    c.x, c.dtype, c.nd = a.x, a.dtype, a.nd
    c.w = contiguous(a.w, a.dtype)
    c.b = a.b
    c.stride, c.pads, c.dilation, c.groups, c.mode = a.stride, a.pad_pairs, a.dilation, a.groups, a.padding_mode
    c.batched = not a.unbatched
    c.out_sp = tuple(a.geometry.out)
    c.geometry = a.geometry
    c.out_shape = (a.x.shape[0], a.w.shape[0]) + c.out_sp
    return c


def _grad_output(g, shape, batched, dtype, fname):
    """grad_output as a batched contiguous array of the forward's output shape."""
    g = _arr(g, "grad_output")
    expect = tuple(shape) if batched else tuple(shape[1:])
    if g.shape != expect:
        raise ValueError(f"grad_output has shape {g.shape}; expected {expect}, the output shape of "
                         f"{fname} for these arguments")
    g = g if batched else g[None]
    return contiguous(g, dtype)


def _pad_adjoint(g, pads, mode, sp):
    """The adjoint of padding with ``mode``: each padded position's gradient is added back
    onto the input element it copies (pyconv.nn's index maps).  Loops run over the
    border slabs only."""
    maps = nn_pad_maps(sp, pads, mode)
    for ax, ((lo, hi), idx) in enumerate(zip(pads, maps)):
        if not (lo or hi):
            continue
        axis = 2 + ax
        n = sp[ax]
        out = np.take(g, np.arange(lo, lo + n), axis=axis)
        for j in list(range(lo)) + list(range(lo + n, lo + n + hi)):
            dst = [slice(None)] * g.ndim
            src = [slice(None)] * g.ndim
            dst[axis] = int(idx[j])
            src[axis] = j
            out[tuple(dst)] += g[tuple(src)]
        g = out
    return np.ascontiguousarray(g)


def _bias_grad(go, dtype):
    return _conv.bias_grad(go, dtype)


def _mode_padded(c):
    """Whether a normalised conv pads with a mode other than zeros (its kernels then run on
    the padded input, unpadded, and the padding's adjoint folds the input gradient back)."""
    return c.mode != "zeros" and any(p != (0, 0) for p in c.pads)


def _conv_input_grad(c, go):
    """gx of a normalised conv (c from _conv_setup), batched, from grad_output alone: only
    the input's shape is read (pyconv.dask's tasks pass a shape-only stand-in)."""
    sp = c.x.shape[2:]
    if _mode_padded(c):
        shape = c.x.shape[:2] + tuple(n + lo + hi for n, (lo, hi) in zip(sp, c.pads))
        gx = _input_core(go, c.w, shape, c.stride, ((0, 0),) * c.nd, c.dilation, c.groups)
        return _pad_adjoint(gx, c.pads, c.mode, sp)
    return _input_core(go, c.w, c.x.shape, c.stride, c.pads, c.dilation, c.groups)


def _conv_weight_grad(c, go):
    """gw of a normalised conv (c from _conv_setup), batched."""
    x, pads = c.xc(), c.pads
    if _mode_padded(c):
        x, pads = _conv.pad(x, c.pads, c.mode), ((0, 0),) * c.nd
    return _weight_core(x, go, c.w.shape, c.stride, pads, c.dilation, c.groups)


def _conv_grads(c, go):
    """(gx, gw, gb) of a normalised conv (c from _conv_setup), batched."""
    gb = None if c.b is None else _bias_grad(go, c.dtype)
    return _conv_input_grad(c, go), _conv_weight_grad(c, go), gb


# =========================================================================== torch.nn.grad

def _input_size(input_size, nd):
    if not isinstance(input_size, (tuple, list, np.ndarray)):
        raise TypeError(f"input_size must be a tuple of ints (the input's shape); got {input_size!r}")
    size = tuple(check_int(v, "input_size") for v in input_size)
    if len(size) not in (nd + 1, nd + 2) or any(v < 0 for v in size):
        raise ValueError(f"input_size={tuple(input_size)!r} must be the shape (N, C_in, *spatial) or "
                         f"(C_in, *spatial) of a {nd}-d convolution's input")
    return nn_check_size(size, f"input_size={size}")


# Repeated calls of the single gradients (convNd_input / convNd_weight) with one signature
# skip the checks and the plan choice, as pyconv.nn's forward and the backward passes below
# do: the signature maps to what the first call's checks produced.
_GRAD_CALLS = _plan.new_cache()


def _grad_key(kind, nd, a, b, size, stride, padding, dilation, groups):
    """The call-cache key of a single gradient: exact ndarrays ``a``, ``b`` keyed by (shape,
    dtype), the other arguments as they are when plain (else None: the full checks)."""
    ka, kb = _plan.array_key(a), _plan.array_key(b)
    if ka is None or kb is None or not _plan.plain((size, stride, padding, dilation, groups)):
        return None
    return (kind, nd, ka, kb, size, stride, padding, dilation, groups) + _plan.signature()


def _conv_input(nd, input_size, weight, grad_output, stride, padding, dilation, groups):
    key = _grad_key("input", nd, weight, grad_output, input_size, stride, padding, dilation, groups)
    hit = None if key is None else _GRAD_CALLS.get(key)
    if hit is not None:
        p, dtype, batched = hit
        gx = _conv.input_grad(p, np.ascontiguousarray(grad_output if batched else grad_output[None], dtype),
                              np.ascontiguousarray(weight, dtype))
        return gx if batched else gx[0]
    size = _input_size(input_size, nd)
    w = _arr(weight, "weight")
    g = _arr(grad_output, "grad_output")
    # a zero-strided stand-in for the input: the forward's own checks, no memory
    probe = np.broadcast_to(np.zeros((), dtype=w.dtype), size)
    c = _conv_setup(probe, w, None, stride, padding, dilation, groups, "zeros", nd)
    dtype = dl_dtype(w, g)
    go = _grad_output(g, c.out_shape, c.batched, dtype, f"conv{nd}d")
    p = _conv.plan_input_grad(conv_geometry(c.x.shape, c.w.shape, c.stride, c.pads, c.dilation, c.groups), dtype)
    if key is not None:
        _GRAD_CALLS.put(key, (p, dtype, c.batched))
    gx = _conv.input_grad(p, go, contiguous(c.w, dtype))
    return gx if c.batched else gx[0]


def _conv_weight(nd, input, weight_size, grad_output, stride, padding, dilation, groups):
    key = _grad_key("weight", nd, input, grad_output, weight_size, stride, padding, dilation, groups)
    hit = None if key is None else _GRAD_CALLS.get(key)
    if hit is not None:
        p, dtype, batched = hit
        return _conv.weight_grad(p, np.ascontiguousarray(input if batched else input[None], dtype),
                                 np.ascontiguousarray(grad_output if batched else grad_output[None], dtype))
    x = _arr(input, "input")
    g = _arr(grad_output, "grad_output")
    if not isinstance(weight_size, (tuple, list, np.ndarray)):
        raise TypeError(f"weight_size must be a tuple of ints (the weight's shape); got {weight_size!r}")
    wsize = tuple(check_int(v, "weight_size") for v in weight_size)
    if len(wsize) != nd + 2 or any(v < 0 for v in wsize):
        raise ValueError(f"weight_size={tuple(weight_size)!r} must be (C_out, C_in/groups, *kernel) with "
                         f"{nd} kernel dims")
    nn_check_size(wsize, f"weight_size={wsize}")
    probe = np.broadcast_to(np.zeros((), dtype=x.dtype), wsize)
    c = _conv_setup(x, probe, None, stride, padding, dilation, groups, "zeros", nd)
    dtype = dl_dtype(x, g)
    go = _grad_output(g, c.out_shape, c.batched, dtype, f"conv{nd}d")
    p = _conv.plan_weight_grad(conv_geometry(c.x.shape, wsize, c.stride, c.pads, c.dilation, c.groups), go.dtype)
    if key is not None:
        _GRAD_CALLS.put(key, (p, dtype, c.batched))
    return _conv.weight_grad(p, contiguous(c.x, dtype), go)
def conv1d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of :func:`pyconv.nn.conv1d` with respect to its input (as ``torch.nn.grad.conv1d_input``).

    Parameters
    ----------
    input_size : tuple of int
        Shape of the input, ``(N, C_in, L)`` or unbatched ``(C_in, L)``.
    weight : array_like
        ``(C_out, C_in/groups, k)``.
    grad_output : array_like
        Gradient of the loss with respect to the convolution's output.
    stride, padding, dilation, groups
        As in the forward call (``padding`` also takes 'valid', 'same' and (before, after) pairs).

    Returns
    -------
    ndarray of shape ``input_size``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv1d_input
    >>> conv1d_input((1, 1, 4), np.ones((1, 1, 2)), np.ones((1, 1, 3)))
    array([[[1., 2., 2., 1.]]])
    """
    return _conv_input(1, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of :func:`pyconv.nn.conv2d` with respect to its input (as ``torch.nn.grad.conv2d_input``).

    The transposed convolution of ``grad_output`` with ``weight``.

    Parameters
    ----------
    input_size : tuple of int
        Shape of the forward's input, ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``.
    weight : array_like
        The forward's weight, ``(C_out, C_in/groups, kh, kw)``.
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    stride : int or tuple of 2 ints, default 1
        As in the forward call.
    padding : int or tuple of 2 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        As in the forward call.
    dilation : int or tuple of 2 ints, default 1
        As in the forward call.
    groups : int, default 1
        As in the forward call.

    Returns
    -------
    ndarray
        The input gradient, of shape ``input_size``, in the forward's compute dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv2d_input
    >>> conv2d_input((1, 1, 3, 3), np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)))[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    return _conv_input(2, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv3d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of :func:`pyconv.nn.conv3d` with respect to its input (as ``torch.nn.grad.conv3d_input``).

    Parameters
    ----------
    input_size : tuple of int
        Shape of the forward's input, ``(N, C_in, D, H, W)`` or unbatched ``(C_in, D, H, W)``.
    weight : array_like
        The forward's weight, ``(C_out, C_in/groups, kd, kh, kw)``.
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    stride : int or tuple of 3 ints, default 1
        As in the forward call.
    padding : int or tuple of 3 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        As in the forward call.
    dilation : int or tuple of 3 ints, default 1
        As in the forward call.
    groups : int, default 1
        As in the forward call.

    Returns
    -------
    ndarray
        The input gradient, of shape ``input_size``, in the forward's compute dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv3d_input
    >>> float(conv3d_input((1, 1, 2, 2, 2), np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 1, 1, 1))).sum())
    8.0
    """
    return _conv_input(3, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv1d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of :func:`pyconv.nn.conv1d` with respect to its weight (as ``torch.nn.grad.conv1d_weight``).

    Parameters
    ----------
    input : array_like
        ``(N, C_in, L)`` or unbatched ``(C_in, L)``.
    weight_size : tuple of int
        ``(C_out, C_in/groups, k)``.
    grad_output : array_like
        Gradient of the loss with respect to the convolution's output.
    stride, padding, dilation, groups
        As in the forward call.

    Returns
    -------
    ndarray of shape ``weight_size``: the correlation of the input with ``grad_output``,
    summed over the batch.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv1d_weight
    >>> conv1d_weight(np.arange(4.0).reshape(1, 1, 4), (1, 1, 2), np.ones((1, 1, 3)))
    array([[[3., 6.]]])
    """
    return _conv_weight(1, input, weight_size, grad_output, stride, padding, dilation, groups)


def conv2d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of :func:`pyconv.nn.conv2d` with respect to its weight (as ``torch.nn.grad.conv2d_weight``).

    Parameters
    ----------
    input : array_like
        The forward's input, ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``.
    weight_size : tuple of int
        Shape of the weight, ``(C_out, C_in/groups, kh, kw)``.
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    stride : int or tuple of 2 ints, default 1
        As in the forward call.
    padding : int or tuple of 2 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        As in the forward call.
    dilation : int or tuple of 2 ints, default 1
        As in the forward call.
    groups : int, default 1
        As in the forward call.

    Returns
    -------
    ndarray
        The weight gradient, of shape ``weight_size``: the correlation of the input with
        ``grad_output``, summed over the batch.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv2d_weight
    >>> conv2d_weight(np.ones((2, 1, 3, 3)), (1, 1, 2, 2), np.ones((2, 1, 2, 2)))[0, 0]
    array([[8., 8.],
           [8., 8.]])
    """
    return _conv_weight(2, input, weight_size, grad_output, stride, padding, dilation, groups)


def conv3d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of :func:`pyconv.nn.conv3d` with respect to its weight (as ``torch.nn.grad.conv3d_weight``).

    Parameters
    ----------
    input : array_like
        The forward's input, ``(N, C_in, D, H, W)`` or unbatched ``(C_in, D, H, W)``.
    weight_size : tuple of int
        Shape of the weight, ``(C_out, C_in/groups, kd, kh, kw)``.
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    stride : int or tuple of 3 ints, default 1
        As in the forward call.
    padding : int or tuple of 3 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        As in the forward call.
    dilation : int or tuple of 3 ints, default 1
        As in the forward call.
    groups : int, default 1
        As in the forward call.

    Returns
    -------
    ndarray
        The weight gradient, of shape ``weight_size``: the correlation of the input with
        ``grad_output``, summed over the batch.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv3d_weight
    >>> conv3d_weight(np.ones((1, 1, 3, 3, 3)), (2, 1, 2, 2, 2), np.ones((1, 2, 2, 2, 2))).shape
    (2, 1, 2, 2, 2)
    """
    return _conv_weight(3, input, weight_size, grad_output, stride, padding, dilation, groups)


# =========================================================================== nn backward passes

# Repeated calls with one signature skip the checks and the plan choice (see pyconv.nn).
_CALLS = _plan.new_cache()


def _convnd_backward(nd, fname, grad_output, input, weight, bias, stride, padding, dilation, groups,
                     padding_mode):
    # exact ndarrays key the call by (shape, dtype); ints and strs (tuples of them) as they are
    if (type(grad_output) is np.ndarray and type(input) is np.ndarray and type(weight) is np.ndarray
            and (bias is None or type(bias) is np.ndarray) and type(padding_mode) is str and padding_mode == "zeros"
            and ((type(stride) is int and type(padding) is int and type(dilation) is int and type(groups) is int)
                 or _plan.plain((stride, padding, dilation, groups)))):
        key = (nd, fname, grad_output.shape, grad_output.dtype, input.shape, input.dtype, weight.shape, weight.dtype,
               None if bias is None else (bias.shape, bias.dtype), stride, padding, dilation, groups) + _plan.signature()
        hit = _CALLS.get(key)
        if hit is None:
            c = _conv_setup(input, weight, bias, stride, padding, dilation, groups, padding_mode, nd)
            _grad_output(grad_output, c.out_shape, c.batched, c.dtype, fname)
            hit = _CALLS.put(key, (_conv.plan_input_grad(c.geometry, c.dtype), _conv.plan_weight_grad(c.geometry, c.dtype),
                                   c.dtype, c.batched))
        pi, pw, dtype, batched = hit
        go = np.ascontiguousarray(grad_output if batched else grad_output[None], dtype)
        x = np.ascontiguousarray(input if batched else input[None], dtype)
        gx = _conv.input_grad(pi, go, np.ascontiguousarray(weight, dtype))
        gw = _conv.weight_grad(pw, x, go)
        return (gx if batched else gx[0]), gw, None if bias is None else _bias_grad(go, dtype)
    c = _conv_setup(input, weight, bias, stride, padding, dilation, groups, padding_mode, nd)
    go = _grad_output(grad_output, c.out_shape, c.batched, c.dtype, fname)
    gx, gw, gb = _conv_grads(c, go)
    return (gx if c.batched else gx[0]), gw, gb


def conv1d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros"):
    """Backward pass of :func:`pyconv.nn.conv1d`.

    Takes ``grad_output`` and then the forward call's own arguments.  Every padding form
    (int, tuple, (before, after) pairs, 'valid', 'same' incl. stride > 1) and every
    ``padding_mode`` is differentiated.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C_in, L)`` or unbatched ``(C_in, L)``.
    weight : array_like
        The forward's weight, ``(C_out, C_in/groups, k)``.
    bias : array_like, optional
        The forward's bias ``(C_out,)``, or None.
    stride : int or tuple of 1 ints, default 1
        As in the forward call.
    padding : int or tuple of 1 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        As in the forward call.
    dilation : int or tuple of 1 ints, default 1
        As in the forward call.
    groups : int, default 1
        As in the forward call.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        As in the forward call; the gradient of a padded border is folded back onto the
        input elements it copied.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_weight : ndarray
        Shape of ``weight``.
    grad_bias : ndarray or None
        ``grad_output`` summed over the batch and positions; None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv1d_backward
    >>> gx, gw, gb = conv1d_backward(np.ones((1, 1, 3)), np.ones((1, 1, 4)), np.ones((1, 1, 2)), np.zeros(1))
    >>> gx, gw, gb
    (array([[[1., 2., 2., 1.]]]), array([[[3., 3.]]]), array([3.]))
    """
    return _convnd_backward(1, "conv1d", grad_output, input, weight, bias, stride, padding, dilation,
                            groups, padding_mode)


def conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros"):
    """Backward pass of :func:`pyconv.nn.conv2d`.

    Takes ``grad_output`` and then the forward call's own arguments.  Every padding form
    (int, tuple, (before, after) pairs, 'valid', 'same' incl. stride > 1) and every
    ``padding_mode`` is differentiated.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``.
    weight : array_like
        The forward's weight, ``(C_out, C_in/groups, kh, kw)``.
    bias : array_like, optional
        The forward's bias ``(C_out,)``, or None.
    stride : int or tuple of 2 ints, default 1
        As in the forward call.
    padding : int or tuple of 2 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        As in the forward call.
    dilation : int or tuple of 2 ints, default 1
        As in the forward call.
    groups : int, default 1
        As in the forward call.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        As in the forward call; the gradient of a padded border is folded back onto the
        input elements it copied.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_weight : ndarray
        Shape of ``weight``.
    grad_bias : ndarray or None
        ``grad_output`` summed over the batch and positions; None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv2d_backward
    >>> x = np.ones((2, 3, 5, 5), dtype=np.float32)
    >>> w = np.ones((4, 3, 3, 3), dtype=np.float32)
    >>> gx, gw, gb = conv2d_backward(np.ones((2, 4, 3, 3), np.float32), x, w, np.zeros(4, np.float32), stride=2, padding=1)
    >>> gx.shape, gw.shape, gb.tolist(), gx.dtype
    ((2, 3, 5, 5), (4, 3, 3, 3), [18.0, 18.0, 18.0, 18.0], dtype('float32'))
    """
    return _convnd_backward(2, "conv2d", grad_output, input, weight, bias, stride, padding, dilation,
                            groups, padding_mode)


def conv3d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros"):
    """Backward pass of :func:`pyconv.nn.conv3d`.

    Takes ``grad_output`` and then the forward call's own arguments.  Every padding form
    (int, tuple, (before, after) pairs, 'valid', 'same' incl. stride > 1) and every
    ``padding_mode`` is differentiated.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C_in, D, H, W)`` or unbatched ``(C_in, D, H, W)``.
    weight : array_like
        The forward's weight, ``(C_out, C_in/groups, kd, kh, kw)``.
    bias : array_like, optional
        The forward's bias ``(C_out,)``, or None.
    stride : int or tuple of 3 ints, default 1
        As in the forward call.
    padding : int or tuple of 3 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        As in the forward call.
    dilation : int or tuple of 3 ints, default 1
        As in the forward call.
    groups : int, default 1
        As in the forward call.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        As in the forward call; the gradient of a padded border is folded back onto the
        input elements it copied.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_weight : ndarray
        Shape of ``weight``.
    grad_bias : ndarray or None
        ``grad_output`` summed over the batch and positions; None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv3d_backward
    >>> gx, gw, gb = conv3d_backward(np.ones((1, 2, 2, 2, 2)), np.ones((1, 1, 3, 3, 3)), np.ones((2, 1, 2, 2, 2)))
    >>> gx.shape, float(gw[0, 0].sum()), gb is None
    ((1, 1, 3, 3, 3), 64.0, True)
    """
    return _convnd_backward(3, "conv3d", grad_output, input, weight, bias, stride, padding, dilation,
                            groups, padding_mode)


def conv_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros"):
    """Backward pass of :func:`pyconv.nn.conv` (spatial dims from ``weight.ndim - 2``).

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
    weight : array_like
        The forward's weight, ``(C_out, C_in/groups, *kernel)``, 1 to 3 spatial dims.
    bias : array_like, optional
        The forward's bias ``(C_out,)``, or None.
    stride : int or tuple of ints, default 1
        As in the forward call.
    padding : int or tuple of ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        As in the forward call.
    dilation : int or tuple of ints, default 1
        As in the forward call.
    groups : int, default 1
        As in the forward call.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        As in the forward call; the gradient of a padded border is folded back onto the
        input elements it copied.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_weight : ndarray
        Shape of ``weight``.
    grad_bias : ndarray or None
        None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv_backward
    >>> [g.shape for g in conv_backward(np.ones((1, 1, 2)), np.ones((1, 1, 3)), np.ones((1, 1, 2)))[:2]]
    [(1, 1, 3), (1, 1, 2)]
    """
    w = _arr(weight, "weight")
    nd = w.ndim - 2
    if nd not in (1, 2, 3):
        raise ValueError(f"weight must have 3, 4 or 5 dims (1, 2 or 3 spatial dims); got shape {w.shape}")
    return _convnd_backward(nd, "conv", grad_output, input, w, bias, stride, padding, dilation, groups,
                            padding_mode)


# ---------------------------------------------------------------- transposed convolution

def _conv_transpose_backward(nd, fname, grad_output, input, weight, bias, stride, padding, output_padding,
                             groups, dilation):
    a = _args.normalize_conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, nd)
    dtype, unbatched, b = a.dtype, a.unbatched, a.b
    stride, dilation, groups = a.stride, a.dilation, a.groups
    xb = contiguous(a.x, dtype)
    wc = contiguous(a.w, dtype)
    go = _grad_output(grad_output, a.geometry.out_shape, not unbatched, dtype, fname)
    pads = a.geometry.pads
    # y = conv_input(x) with the weight (C_in, C_out/g, k) read as a convolution
    # C_out -> C_in: so dx = conv(dy, w) (cropped: output_padding may add positions
    # no input reaches) and dw = conv_weight(dy, w.shape, x).
    g = conv_geometry(go.shape, wc.shape, stride, pads, dilation, groups)
    gx = _conv.forward(_conv.plan_forward(g, dtype), go, wc, None)
    if gx.shape[2:] != xb.shape[2:]:
        gx = np.ascontiguousarray(gx[(slice(None), slice(None)) + tuple(slice(0, v) for v in xb.shape[2:])])
    gw = _weight_core(go, xb, wc.shape, stride, pads, dilation, groups)
    gb = None if b is None else _bias_grad(go, dtype)
    return (gx[0] if unbatched else gx), gw, gb


def conv_transpose1d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1):
    """Backward pass of :func:`pyconv.nn.conv_transpose1d`.

    ``grad_input`` is the (forward) convolution of ``grad_output`` with the weight;
    ``grad_weight`` the correlation of ``grad_output`` with the input.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C_in, L)`` or unbatched ``(C_in, L)``.
    weight : array_like
        The forward's weight, ``(C_in, C_out/groups, k)``.
    bias : array_like, optional
        The forward's bias ``(C_out,)``, or None.
    stride : int or tuple of 1 ints, default 1
        As in the forward call.
    padding : int or tuple of 1 ints, default 0
        As in the forward call.
    output_padding : int or tuple of 1 ints, default 0
        As in the forward call.
    groups : int, default 1
        As in the forward call.
    dilation : int or tuple of 1 ints, default 1
        As in the forward call.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_weight : ndarray
        Shape of ``weight``.
    grad_bias : ndarray or None
        None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv_transpose1d_backward
    >>> gx, gw, gb = conv_transpose1d_backward(np.ones((1, 1, 4)), np.ones((1, 1, 3)), np.ones((1, 1, 2)))
    >>> gx, gw
    (array([[[2., 2., 2.]]]), array([[[3., 3.]]]))
    """
    return _conv_transpose_backward(1, "conv_transpose1d", grad_output, input, weight, bias, stride, padding,
                                    output_padding, groups, dilation)


def conv_transpose2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1):
    """Backward pass of :func:`pyconv.nn.conv_transpose2d`.

    ``grad_input`` is the (forward) convolution of ``grad_output`` with the weight;
    ``grad_weight`` the correlation of ``grad_output`` with the input.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``.
    weight : array_like
        The forward's weight, ``(C_in, C_out/groups, kh, kw)``.
    bias : array_like, optional
        The forward's bias ``(C_out,)``, or None.
    stride : int or tuple of 2 ints, default 1
        As in the forward call.
    padding : int or tuple of 2 ints, default 0
        As in the forward call.
    output_padding : int or tuple of 2 ints, default 0
        As in the forward call.
    groups : int, default 1
        As in the forward call.
    dilation : int or tuple of 2 ints, default 1
        As in the forward call.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_weight : ndarray
        Shape of ``weight``.
    grad_bias : ndarray or None
        None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv_transpose2d_backward
    >>> gx, gw, gb = conv_transpose2d_backward(np.ones((1, 2, 6, 6)), np.ones((1, 3, 3, 3)), np.ones((3, 2, 4, 4)),
    ...                                        np.zeros(2), stride=2, padding=1)
    >>> gx.shape, gw.shape, gb.tolist()
    ((1, 3, 3, 3), (3, 2, 4, 4), [36.0, 36.0])
    """
    return _conv_transpose_backward(2, "conv_transpose2d", grad_output, input, weight, bias, stride, padding,
                                    output_padding, groups, dilation)


def conv_transpose3d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1):
    """Backward pass of :func:`pyconv.nn.conv_transpose3d`.

    ``grad_input`` is the (forward) convolution of ``grad_output`` with the weight;
    ``grad_weight`` the correlation of ``grad_output`` with the input.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C_in, D, H, W)`` or unbatched ``(C_in, D, H, W)``.
    weight : array_like
        The forward's weight, ``(C_in, C_out/groups, kd, kh, kw)``.
    bias : array_like, optional
        The forward's bias ``(C_out,)``, or None.
    stride : int or tuple of 3 ints, default 1
        As in the forward call.
    padding : int or tuple of 3 ints, default 0
        As in the forward call.
    output_padding : int or tuple of 3 ints, default 0
        As in the forward call.
    groups : int, default 1
        As in the forward call.
    dilation : int or tuple of 3 ints, default 1
        As in the forward call.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_weight : ndarray
        Shape of ``weight``.
    grad_bias : ndarray or None
        None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import conv_transpose3d_backward
    >>> gx, gw, gb = conv_transpose3d_backward(np.ones((1, 1, 3, 3, 3)), np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 2, 2, 2)))
    >>> gx.shape, gw.shape
    ((1, 1, 2, 2, 2), (1, 1, 2, 2, 2))
    """
    return _conv_transpose_backward(3, "conv_transpose3d", grad_output, input, weight, bias, stride, padding,
                                    output_padding, groups, dilation)


# ---------------------------------------------------------------- composite layers

def depthwise_conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Backward pass of :func:`pyconv.nn.depthwise_conv2d`.

    The depthwise layer is ``conv2d(..., groups=C)``; its gradients are those of that call.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C, H, W)`` or ``(C, H, W)``.
    weight : array_like
        The forward's weight, ``(C*m, 1, kh, kw)``.
    bias : array_like, optional
        The forward's bias ``(C*m,)``, or None.
    stride, dilation : int or tuple of 2 ints, default 1
        As in the forward call.
    padding : int, tuple of 2 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        As in the forward call.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_weight : ndarray
        Shape of ``weight``.
    grad_bias : ndarray or None
        None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import depthwise_conv2d_backward
    >>> gx, gw, gb = depthwise_conv2d_backward(np.ones((1, 2, 2, 2)), np.ones((1, 2, 3, 3)), np.ones((2, 1, 2, 2)))
    >>> gx.shape, gw.shape
    ((1, 2, 3, 3), (2, 1, 2, 2))
    """
    x = _arr(input, "input")
    w = _arr(weight, "weight")
    c = _args.depthwise_channels(x, w)
    return _convnd_backward(2, "depthwise_conv2d", grad_output, x, w, bias, stride, padding, dilation, c,
                            "zeros")


def pointwise_conv2d_backward(grad_output, input, weight, bias=None, groups=1):
    """Backward pass of :func:`pyconv.nn.pointwise_conv2d`.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
    weight : array_like
        The forward's weight, ``(C_out, C_in/groups)`` or ``(C_out, C_in/groups, 1, 1)``.
    bias : array_like, optional
        The forward's bias ``(C_out,)``, or None.
    groups : int, default 1
        As in the forward call.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_weight : ndarray
        The weight's own shape (2-D or 4-D).
    grad_bias : ndarray or None
        None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import pointwise_conv2d_backward
    >>> gx, gw, gb = pointwise_conv2d_backward(np.ones((1, 3, 2, 2)), np.ones((1, 2, 2, 2)), np.ones((3, 2)))
    >>> gx[0, :, 0, 0], gw
    (array([3., 3.]), array([[4., 4.],
           [4., 4.],
           [4., 4.]]))
    """
    w4 = _args.pointwise_weight(weight)
    wshape = np.shape(weight)
    gx, gw, gb = _convnd_backward(2, "pointwise_conv2d", grad_output, input, w4, bias, 1, 0, 1, groups, "zeros")
    return gx, gw.reshape(wshape), gb


def separable_conv2d_backward(grad_output, input, depthwise_weight, pointwise_weight, bias=None, stride=1,
                              padding=0, dilation=1):
    """Backward pass of :func:`pyconv.nn.separable_conv2d`.

    The forward is a depthwise then a pointwise convolution; the backward recomputes the
    depthwise output and chains the two backward passes.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C, H, W)`` or ``(C, H, W)``.
    depthwise_weight : array_like
        ``(C*m, 1, kh, kw)``.
    pointwise_weight : array_like
        ``(C_out, C*m)`` or ``(C_out, C*m, 1, 1)``.
    bias : array_like, optional
        The forward's bias ``(C_out,)``, or None.
    stride, dilation : int or tuple of 2 ints, default 1
        As in the forward call (of the depthwise step).
    padding : int, tuple of 2 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        As in the forward call.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_depthwise_weight, grad_pointwise_weight : ndarray
        Shapes of the two weights.
    grad_bias : ndarray or None
        None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import separable_conv2d_backward
    >>> g = separable_conv2d_backward(np.ones((1, 4, 2, 2)), np.ones((1, 2, 3, 3)), np.ones((2, 1, 2, 2)),
    ...                               np.ones((4, 2)))
    >>> [a.shape for a in g[:3]], g[3]
    ([(1, 2, 3, 3), (2, 1, 2, 2), (4, 2)], None)
    """
    x = _arr(input, "input")
    dw = _arr(depthwise_weight, "depthwise_weight")
    pw4 = _args.pointwise_weight(pointwise_weight, "pointwise_weight")
    pwshape = np.shape(pointwise_weight)
    c = _args.separable_weights(x, dw, pw4)
    b = None if bias is None else _arr(bias, "bias")
    dtype = dl_dtype(x, dw, pw4, b)
    cd = _conv_setup(x.astype(dtype, copy=False), dw.astype(dtype, copy=False), None, stride, padding,
                     dilation, c, "zeros", 2)
    mid = _conv.forward(_conv.plan_forward(cd.geometry, dtype), cd.xc(), cd.w, None)
    cp = _conv_setup(mid, pw4.astype(dtype, copy=False), None if b is None else b.astype(dtype, copy=False),
                     1, 0, 1, 1, "zeros", 2)
    go = _grad_output(grad_output, cp.out_shape, cd.batched, dtype, "separable_conv2d")
    gmid, gpw, gb = _conv_grads(cp, go)
    gx, gdw, _ = _conv_grads(cd, gmid)
    return (gx if cd.batched else gx[0]), gdw, gpw.reshape(pwshape), gb


def flattened_conv2d_backward(grad_output, input, lateral, vertical, horizontal, bias=None, padding=0):
    """Backward pass of :func:`pyconv.nn.flattened_conv2d`.

    The layer equals ``conv2d`` with ``weight[o,c,i,j] = lateral[o,c] vertical[o,i]
    horizontal[o,j]``; the factors' gradients contract the full weight gradient with
    the other two factors.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
    lateral : array_like
        ``(C_out, C_in)``.
    vertical : array_like
        ``(C_out, kh)``.
    horizontal : array_like
        ``(C_out, kw)``.
    bias : array_like, optional
        The forward's bias ``(C_out,)``, or None.
    padding : int, tuple of 2 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        As in the forward call.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_lateral, grad_vertical, grad_horizontal : ndarray
        Shapes of the three factors.
    grad_bias : ndarray or None
        None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import flattened_conv2d_backward
    >>> g = flattened_conv2d_backward(np.ones((1, 2, 2, 2)), np.ones((1, 3, 3, 3)), np.ones((2, 3)),
    ...                               np.ones((2, 2)), np.ones((2, 2)))
    >>> [a.shape for a in g[:4]]
    [(1, 3, 3, 3), (2, 3), (2, 2), (2, 2)]
    """
    x = _arr(input, "input")
    lat = _arr(lateral, "lateral")
    ver = _arr(vertical, "vertical")
    hor = _arr(horizontal, "horizontal")
    b = None if bias is None else _arr(bias, "bias")
    if lat.ndim != 2:
        raise ValueError(f"lateral must have shape (C_out, C_in); got {lat.shape}")
    cout = lat.shape[0]
    if ver.ndim != 2 or ver.shape[0] != cout:
        raise ValueError(f"vertical must have shape (C_out={cout}, kh); got {ver.shape}")
    if hor.ndim != 2 or hor.shape[0] != cout:
        raise ValueError(f"horizontal must have shape (C_out={cout}, kw); got {hor.shape}")
    if x.ndim in (3, 4) and lat.shape[1] != x.shape[-3]:
        raise ValueError(f"lateral.shape[1]={lat.shape[1]} must equal in_channels={x.shape[-3]}")
    dtype = dl_dtype(x, lat, ver, hor, b)
    lat, ver, hor = (a.astype(dtype, copy=False) for a in (lat, ver, hor))
    w = lat[:, :, None, None] * ver[:, None, :, None] * hor[:, None, None, :]
    gx, gw, gb = _convnd_backward(2, "flattened_conv2d", grad_output, x.astype(dtype, copy=False), w,
                                  None if b is None else b.astype(dtype, copy=False), 1, padding, 1, 1, "zeros")
    glat = np.einsum("ocij,oi,oj->oc", gw, ver, hor)
    gver = np.einsum("ocij,oc,oj->oi", gw, lat, hor)
    ghor = np.einsum("ocij,oc,oi->oj", gw, lat, ver)
    return gx, glat, gver, ghor, gb


def channel_shuffle_backward(grad_output, input, groups):
    """Backward pass of :func:`pyconv.nn.channel_shuffle`.

    The shuffle is a permutation of channels, so its adjoint is the inverse shuffle:
    ``channel_shuffle`` with ``C / groups`` groups.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C, *spatial)``.
    groups : int
        As in the forward call.

    Returns
    -------
    tuple
        ``(grad_input,)``, with ``grad_input`` of the input's shape.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import channel_shuffle_backward
    >>> channel_shuffle_backward(np.arange(6.0).reshape(1, 6, 1), np.zeros((1, 6, 1)), 2)[0][0, :, 0]
    array([0., 2., 4., 1., 3., 5.])
    """
    x = _arr(input, "input")
    if x.ndim < 3:
        raise ValueError(f"input must have at least 3 dims (N, C, *); got shape {x.shape}")
    groups = check_int(groups, "groups")
    c = x.shape[1]
    if groups < 1 or c % groups:
        raise ValueError(f"groups={groups} must be a positive divisor of the number of channels C={c}")
    g = _arr(grad_output, "grad_output")
    if g.shape != x.shape:
        raise ValueError(f"grad_output has shape {g.shape}; expected {x.shape}, the output shape of "
                         f"channel_shuffle")
    dtype = dl_dtype(x)
    if c == 0:
        return (np.zeros(x.shape, dtype=dtype),)
    return (_resample.shuffle(contiguous(g, dtype), c // groups),)


def _upsample_matrix(n_in, factor, mode, dtype):
    """(n_in*factor, n_in) matrix of the forward's 1-D upsampling (pyconv.nn's index maps)."""
    n_out = n_in * factor
    m = np.zeros((n_out, n_in), dtype=dtype)
    if n_out == 0:
        return m
    o = np.arange(n_out)
    if mode == "nearest":
        m[o, _resample.nearest_map(n_in, factor)] = 1
    else:
        i0, i1, lam = _resample.bilinear_map(n_in, factor, np.dtype(dtype))
        np.add.at(m, (o, i0), 1 - lam)
        np.add.at(m, (o, i1), lam)
    return m


def resize_conv2d_backward(grad_output, input, weight, bias=None, scale_factor=2, mode="nearest", padding="same"):
    """Backward pass of :func:`pyconv.nn.resize_conv2d`.

    The forward upsamples then convolves; the backward runs the convolution's backward
    on the upsampled input, then the upsampling's adjoint (each input pixel collects
    the gradient of the outputs interpolated from it): ``Mh^T dU Mw`` with the 1-D
    interpolation matrices of the forward.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
    weight : array_like
        The forward's weight, ``(C_out, C_in, kh, kw)``.
    bias : array_like, optional
        The forward's bias ``(C_out,)``, or None.
    scale_factor : int or tuple of 2 ints, default 2
        As in the forward call.
    mode : {'nearest', 'bilinear'}, default 'nearest'
        As in the forward call.
    padding : int, tuple, 'same' or 'valid', default 'same'
        As in the forward call.

    Returns
    -------
    grad_input : ndarray
        Shape of ``input``.
    grad_weight : ndarray
        Shape of ``weight``.
    grad_bias : ndarray or None
        None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import resize_conv2d_backward
    >>> gx, gw, gb = resize_conv2d_backward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)))
    >>> gx[0, 0]
    array([[4., 4.],
           [4., 4.]])
    """
    x = _arr(input, "input")
    w = _arr(weight, "weight")
    b = None if bias is None else _arr(bias, "bias")
    xb, unbatched, factor, mode = _args.normalize_resize(x, w, b, scale_factor, mode)
    dtype = xb.dtype
    up = _resample.upsample(xb, factor, mode)
    c = _conv_setup(up, w, b, 1, padding, 1, 1, "zeros", 2)
    go = _grad_output(grad_output, c.out_shape, not unbatched, c.dtype, "resize_conv2d")
    gu, gw, gb = _conv_grads(c, go)
    mh = _upsample_matrix(xb.shape[2], factor, mode, dtype)
    mw = _upsample_matrix(xb.shape[3], factor, mode, dtype)
    gx = _upsample_adjoint(gu, mh, mw, dtype)
    return (gx[0] if unbatched else gx), gw, gb


def _upsample_adjoint(gu, mh, mw, dtype):
    """``mh^T @ plane @ mw`` for every (sample, channel) plane of ``gu``: spans of planes on
    pyconv's team, each product on BLAS's one thread (as the 1x1 plans' products: OpenBLAS's
    own threads would not follow pyconv's thread count, and would spin on for ~0.1 s after
    the call, sharing the cores with whatever runs next).  Whole planes per span, spans fixed
    by the thread count: the bits do not depend on the team."""
    n, c = gu.shape[:2]
    planes = np.ascontiguousarray(gu, dtype=dtype).reshape((n * c,) + gu.shape[2:])
    (hf, wf), h, w = gu.shape[2:], mh.shape[1], mw.shape[1]
    out = np.empty((n * c, h, w), dtype=dtype)
    parts = _threads.num_parts_for(n * c * (hf * wf * w + h * hf * w), grain=1 << 20)
    with _threads.blas_single_thread():
        _conv.kernel(nn_gemm.matmul_sandwich, dtype)(np.ascontiguousarray(mh.T, dtype=dtype), planes,
                                                     np.ascontiguousarray(mw, dtype=dtype), out,
                                                     _conv.span_width(n * c, parts, 1), _threads.team_size(parts))
    return out.reshape((n, c) + out.shape[1:])


# ---------------------------------------------------------------- unfold / fold

def unfold_backward(grad_output, input, kernel_size, dilation=1, padding=0, stride=1):
    """Backward pass of :func:`pyconv.nn.unfold` (im2col).

    The gradient is :func:`pyconv.nn.fold` (col2im, the adjoint) of ``grad_output`` onto
    the input's shape.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C, H, W)`` or ``(C, H, W)``.
    kernel_size : int or tuple of 2 ints
        As in the forward call.
    dilation : int or tuple of 2 ints, default 1
        As in the forward call.
    padding : int or tuple of 2 ints, default 0
        As in the forward call.
    stride : int or tuple of 2 ints, default 1
        As in the forward call.

    Returns
    -------
    tuple
        ``(grad_input,)``, with ``grad_input`` of the input's shape.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import unfold_backward
    >>> unfold_backward(np.ones((1, 4, 4)), np.zeros((1, 1, 3, 3)), 2)[0][0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    x = _arr(input, "input")
    fa = _args.normalize_unfold(x, kernel_size, dilation, padding, stride)
    dtype = dl_dtype(x)
    xb = x if x.ndim == 4 else x[None]
    n, c = xb.shape[:2]
    k, nb = fa.kernel_size, fa.blocks
    go = _grad_output(grad_output, (n, c * k[0] * k[1], nb[0] * nb[1]), x.ndim == 4, dtype, "unfold")
    gx = _resample.fold(go, tuple(xb.shape[2:]), fa)
    return (gx if x.ndim == 4 else gx[0],)


def fold_backward(grad_output, input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Backward pass of :func:`pyconv.nn.fold` (col2im).

    The gradient is :func:`pyconv.nn.unfold` (im2col, the adjoint) of ``grad_output``.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    input : array_like
        The forward's input, ``(N, C*kh*kw, L)`` or ``(C*kh*kw, L)``.
    output_size : int or tuple of 2 ints
        As in the forward call.
    kernel_size : int or tuple of 2 ints
        As in the forward call.
    dilation : int or tuple of 2 ints, default 1
        As in the forward call.
    padding : int or tuple of 2 ints, default 0
        As in the forward call.
    stride : int or tuple of 2 ints, default 1
        As in the forward call.

    Returns
    -------
    tuple
        ``(grad_input,)``, with ``grad_input`` of the input's shape.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import fold_backward
    >>> fold_backward(np.ones((1, 1, 3, 3)), np.zeros((1, 4, 4)), (3, 3), 2)[0].shape
    (1, 4, 4)
    """
    x = _arr(input, "input")
    fa, osz = _args.normalize_fold(x, output_size, kernel_size, dilation, padding, stride)
    xb = x if x.ndim == 3 else x[None]
    n, ck = xb.shape[:2]
    kvol = fa.kernel_size[0] * fa.kernel_size[1]
    dtype = dl_dtype(x)
    go = _grad_output(grad_output, (n, ck // kvol) + osz, x.ndim == 3, dtype, "fold")
    gx = _resample.unfold(go, fa)
    return (gx if x.ndim == 3 else gx[0],)


# =========================================================================== signal layer

def _sig_dtype(*arrays):
    """Gradient dtype of a signal function: the forward's float type; ints give float64."""
    for a in arrays:
        if a.dtype.kind == "c":
            raise TypeError(f"complex input (dtype {a.dtype}) is not supported by pyconv.grad; "
                            "differentiate the real and imaginary parts separately")
        if a.dtype.kind == "b":
            raise TypeError("bool inputs give a logical (not differentiable) convolution; cast to float")
        if a.dtype.kind not in "iuf":
            raise TypeError(f"input dtype {a.dtype} is not numeric")
    dt = np.result_type(*[a.dtype for a in arrays])
    if dt.kind != "f":
        return np.dtype(np.float64)
    return np.dtype(np.float32) if dt.itemsize <= 4 else dt


def _signal():
    from pyconv import signal
    return signal


def _crop_starts(mode, s1, s2, same_start):
    """Start of the forward output inside the 'full' output, per axis."""
    if mode == "full":
        return tuple(0 for _ in s1)
    if mode == "same":
        return tuple(same_start(b) for b in s2)
    return tuple(min(a, b) - 1 for a, b in zip(s1, s2))


def _out_shape(mode, s1, s2):
    if mode == "full":
        return tuple(a + b - 1 for a, b in zip(s1, s2))
    if mode == "same":
        return tuple(s1)
    return tuple(abs(a - b) + 1 for a, b in zip(s1, s2))


def _embed(g, full_shape, starts, dtype):
    """grad_output placed into a zero array of the 'full' output's shape."""
    G = np.zeros(full_shape, dtype=dtype)
    G[tuple(slice(s, s + n) for s, n in zip(starts, g.shape))] = g
    return G


def _sig_prepare(grad_output, in1, in2, mode, fname, nd=None):
    """The forward's own checks (pyconv._utils' signal helpers), then float operands."""
    a = _arr(sig_array(in1, "in1"), "in1")
    b = _arr(sig_array(in2, "in2"), "in2")
    check_choice(mode, "mode", SIG_MODES)
    dtype = _sig_dtype(a, b)
    sig_same_ndim(a, b)
    if nd is not None and a.ndim != nd:
        raise ValueError(f"in1 and in2 must be {nd}-D for {fname}; got {a.ndim}-D")
    sig_valid_swap(mode, a.shape, b.shape)
    g = _arr(grad_output, "grad_output")
    empty = a.size == 0 or b.size == 0
    expect = _out_shape(mode, a.shape, b.shape)
    if not empty and g.shape != expect:
        raise ValueError(f"grad_output has shape {g.shape}; expected {expect}, the output shape of {fname}")
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False), g.astype(dtype, copy=False), dtype, empty


def _flip(a):
    return a[(slice(None, None, -1),) * a.ndim]


def convolve_backward(grad_output, in1, in2, mode="full", method="auto"):
    """Backward pass of :func:`pyconv.signal.convolve`.

    With ``G`` the gradient embedded into the 'full' output (at the mode's crop offset),
    ``grad_in1 = correlate(G, in2, 'valid')`` and ``grad_in2 = correlate(G, in1, 'valid')``,
    computed with the same ``method``.  Real inputs only (see the module notes).

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    in1, in2 : array_like
        The forward's operands (real), with the same number of dims.
    mode : {'full', 'valid', 'same'}, default 'full'
        As in the forward call.
    method : {'auto', 'direct', 'fft'}, default 'auto'
        As in the forward call; the gradients are computed with it too.

    Returns
    -------
    grad_in1 : ndarray
        Shape of ``in1``.
    grad_in2 : ndarray
        Shape of ``in2``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import convolve_backward
    >>> convolve_backward(np.ones(2), np.array([1.0, 2.0]), np.array([1.0, 1.0]), mode='same')
    (array([2., 1.]), array([3., 1.]))
    """
    a, b, g, dtype, empty = _sig_prepare(grad_output, in1, in2, mode, "convolve")
    if empty or a.ndim == 0:
        return _sig_trivial(g, a, b, dtype, empty)
    full = _out_shape("full", a.shape, b.shape)
    G = _embed(g, full, _crop_starts(mode, a.shape, b.shape, lambda s: (s - 1) // 2), dtype)
    sig = _signal()
    g1 = sig.correlate(G, b, mode="valid", method=method)
    g2 = sig.correlate(G, a, mode="valid", method=method)
    return _as_out(g1, dtype), _as_out(g2, dtype)


def correlate_backward(grad_output, in1, in2, mode="full", method="auto"):
    """Backward pass of :func:`pyconv.signal.correlate`.

    ``grad_in1 = convolve(G, in2, 'valid')`` and ``grad_in2`` is ``correlate(G, in1, 'valid')``
    reversed, with ``G`` the gradient embedded into the 'full' output.  Real inputs only.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    in1, in2 : array_like
        The forward's operands (real), with the same number of dims.
    mode : {'full', 'valid', 'same'}, default 'full'
        As in the forward call.
    method : {'auto', 'direct', 'fft'}, default 'auto'
        As in the forward call; the gradients are computed with it too.

    Returns
    -------
    grad_in1 : ndarray
        Shape of ``in1``.
    grad_in2 : ndarray
        Shape of ``in2``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import correlate_backward
    >>> correlate_backward(np.ones(2), np.array([1.0, 2.0]), np.array([1.0, 1.0]), mode='same')
    (array([2., 1.]), array([1., 3.]))
    """
    a, b, g, dtype, empty = _sig_prepare(grad_output, in1, in2, mode, "correlate")
    if empty or a.ndim == 0:
        return _sig_trivial(g, a, b, dtype, empty)
    full = _out_shape("full", a.shape, b.shape)
    G = _embed(g, full, _crop_starts(mode, a.shape, b.shape, lambda s: (s - 1) // 2), dtype)
    sig = _signal()
    g1 = sig.convolve(G, b, mode="valid", method=method)
    g2 = _flip(sig.correlate(G, a, mode="valid", method=method))
    return _as_out(g1, dtype), _as_out(g2, dtype)


def _sig_trivial(g, a, b, dtype, empty):
    if empty:
        return np.zeros(a.shape, dtype), np.zeros(b.shape, dtype)
    return (np.asarray(g * b, dtype=dtype), np.asarray(g * a, dtype=dtype))


def _as_out(a, dtype):
    return np.ascontiguousarray(np.asarray(a), dtype=dtype)


def _conv2d_backward(grad_output, in1, in2, mode, boundary, fillvalue, correlate, fname):
    check_choice(mode, "mode", SIG_MODES)
    kind = sig_boundary(boundary)
    if kind == "fill" and mode != "valid":
        # the forward casts fillvalue to its result dtype (scipy's rule); it is ignored otherwise
        result = np.result_type(sig_array(in1, "in1"), sig_array(in2, "in2"))
        fill = float(np.real(sig_fillvalue(fillvalue, result)))
    else:
        fill = 0.0
    if mode == "valid":
        kind = "fill"      # 'valid' never reads the boundary
    a, b, g, dtype, empty = _sig_prepare(grad_output, in1, in2, mode, fname, nd=2)
    if empty:
        return np.zeros(a.shape, dtype), np.zeros(b.shape, dtype)
    sig = _signal()
    k1, k2 = b.shape
    # Forward model: P = in1 extended by (k-1) on each side with the boundary rule; the
    # 'full' output is the valid convolution (correlation) of P with in2, then cropped.
    if kind == "fill":
        P = np.pad(a, [(k1 - 1, k1 - 1), (k2 - 1, k2 - 1)], constant_values=fill)
    else:
        P = a[np.ix_(extend_index(a.shape[0], k1 - 1, k1 - 1, kind),
                     extend_index(a.shape[1], k2 - 1, k2 - 1, kind))]
    full = _out_shape("full", a.shape, b.shape)
    starts = _crop_starts(mode, a.shape, b.shape, (lambda s: s // 2) if correlate else (lambda s: (s - 1) // 2))
    G = _embed(g, full, starts, dtype)
    if correlate:
        gP = sig.convolve2d(G, b, mode="full")
        g2 = sig.correlate2d(P, G, mode="valid")
    else:
        gP = sig.correlate2d(G, b, mode="full")
        g2 = _flip(sig.correlate2d(P, G, mode="valid"))
    gP = np.asarray(gP, dtype=dtype)
    if kind == "fill":
        g1 = gP[k1 - 1:k1 - 1 + a.shape[0], k2 - 1:k2 - 1 + a.shape[1]]
    else:
        # fold every extended position's gradient back onto the element it copies
        g1 = np.zeros(a.shape, dtype)
        r = extend_index(a.shape[0], k1 - 1, k1 - 1, kind)
        c = extend_index(a.shape[1], k2 - 1, k2 - 1, kind)
        rows = np.zeros((a.shape[0], gP.shape[1]), dtype)
        np.add.at(rows, r, gP)
        np.add.at(g1.T, c, rows.T)
    return _as_out(g1, dtype), _as_out(g2, dtype)


def convolve2d_backward(grad_output, in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Backward pass of :func:`pyconv.signal.convolve2d`.

    Every mode and boundary is differentiated: the boundary extension of ``in1``
    ('fill', 'wrap', 'symm') is applied explicitly, and the gradient of each extended
    position is folded back onto the element it copies ('fill' positions hold the
    constant ``fillvalue``, which still enters ``grad_in2``).  Real inputs only.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    in1, in2 : array_like
        The forward's 2-D operands (real).
    mode : {'full', 'valid', 'same'}, default 'full'
        As in the forward call.
    boundary : {'fill', 'wrap', 'symm'}, default 'fill'
        As in the forward call.
    fillvalue : scalar, default 0
        As in the forward call.

    Returns
    -------
    grad_in1 : ndarray
        Shape of ``in1``.
    grad_in2 : ndarray
        Shape of ``in2``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import convolve2d_backward
    >>> g1, g2 = convolve2d_backward(np.ones((2, 2)), np.ones((2, 2)), np.ones((1, 1)), boundary='wrap')
    >>> g1, g2
    (array([[1., 1.],
           [1., 1.]]), array([[4.]]))
    """
    return _conv2d_backward(grad_output, in1, in2, mode, boundary, fillvalue, False, "convolve2d")


def correlate2d_backward(grad_output, in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Backward pass of :func:`pyconv.signal.correlate2d`.

    As :func:`convolve2d_backward`; note that scipy centres 'same' correlations at
    ``in2.shape // 2`` (not ``(in2.shape - 1) // 2`` as for convolution), which matters
    for even kernels.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    in1, in2 : array_like
        The forward's 2-D operands (real).
    mode : {'full', 'valid', 'same'}, default 'full'
        As in the forward call.
    boundary : {'fill', 'wrap', 'symm'}, default 'fill'
        As in the forward call.
    fillvalue : scalar, default 0
        As in the forward call.

    Returns
    -------
    grad_in1 : ndarray
        Shape of ``in1``.
    grad_in2 : ndarray
        Shape of ``in2``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import correlate2d_backward
    >>> [g.shape for g in correlate2d_backward(np.ones((3, 3)), np.ones((3, 3)), np.ones((2, 2)), mode='same')]
    [(3, 3), (2, 2)]
    """
    return _conv2d_backward(grad_output, in1, in2, mode, boundary, fillvalue, True, "correlate2d")


def _fft_backward(grad_output, in1, in2, mode, axes, fname):
    a = _arr(sig_array(in1, "in1"), "in1")
    b = _arr(sig_array(in2, "in2"), "in2")
    check_choice(mode, "mode", SIG_MODES)
    dtype = _sig_dtype(a, b)
    sig_same_ndim(a, b)
    nd = a.ndim
    ax = tuple(sorted(sig_fft_axes(a.shape, b.shape, axes)))
    g = _arr(grad_output, "grad_output").astype(dtype, copy=False)
    a = a.astype(dtype, copy=False)
    b = b.astype(dtype, copy=False)
    if a.size == 0 or b.size == 0:
        return np.zeros(a.shape, dtype), np.zeros(b.shape, dtype)
    sa = tuple(a.shape[d] for d in ax)
    sb = tuple(b.shape[d] for d in ax)
    sig_valid_swap(mode, sa, sb)
    full = []
    expect = []
    starts = []
    st = _crop_starts(mode, sa, sb, lambda s: (s - 1) // 2)
    osz = _out_shape(mode, sa, sb)
    for d in range(nd):
        if d in ax:
            i = ax.index(d)
            full.append(sa[i] + sb[i] - 1)
            expect.append(osz[i])
            starts.append(st[i])
        else:
            full.append(max(a.shape[d], b.shape[d]))
            # scipy's 'same' centres every axis on in1's shape, broadcast ones too
            expect.append(a.shape[d] if mode == "same" else full[-1])
            starts.append((full[-1] - expect[-1]) // 2)
    if g.shape != tuple(expect):
        raise ValueError(f"grad_output has shape {g.shape}; expected {tuple(expect)}, the output shape of {fname}")
    G = _embed(g, tuple(full), starts, dtype)
    if ax:
        fn = getattr(_signal(), fname)
        flip = tuple(slice(None, None, -1) if d in ax else slice(None) for d in range(nd))
        g1 = np.asarray(fn(G, b[flip], mode="valid", axes=ax), dtype=dtype)
        g2 = np.asarray(fn(G, a[flip], mode="valid", axes=ax), dtype=dtype)
    else:       # every axis broadcasts: the forward is an element-wise product
        g1 = G * b
        g2 = G * a
    # broadcast (size-1) non-convolved axes collect the sum of the gradient
    for d in range(nd):
        if d not in ax:
            if a.shape[d] == 1 and g1.shape[d] != 1:
                g1 = g1.sum(axis=d, keepdims=True)
            if b.shape[d] == 1 and g2.shape[d] != 1:
                g2 = g2.sum(axis=d, keepdims=True)
    return _as_out(g1, dtype), _as_out(g2, dtype)


def fftconvolve_backward(grad_output, in1, in2, mode="full", axes=None):
    """Backward pass of :func:`pyconv.signal.fftconvolve`.

    Correlations of the embedded gradient with the other operand, themselves computed
    with ``fftconvolve`` (reversed operand) along ``axes``; axes where one input
    broadcasts (size 1) sum the gradient.  Real inputs only.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    in1, in2 : array_like
        The forward's operands (real), with the same number of dims.
    mode : {'full', 'valid', 'same'}, default 'full'
        As in the forward call.
    axes : int or sequence of int, optional
        As in the forward call (default: every axis).

    Returns
    -------
    grad_in1 : ndarray
        Shape of ``in1``.
    grad_in2 : ndarray
        Shape of ``in2``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import fftconvolve_backward
    >>> g1, g2 = fftconvolve_backward(np.ones(3), np.array([1.0, 2.0]), np.array([1.0, 1.0]), mode='full')
    >>> np.round(g1, 6), np.round(g2, 6)
    (array([2., 2.]), array([3., 3.]))
    """
    return _fft_backward(grad_output, in1, in2, mode, axes, "fftconvolve")


def oaconvolve_backward(grad_output, in1, in2, mode="full", axes=None):
    """Backward pass of :func:`pyconv.signal.oaconvolve`.

    As :func:`fftconvolve_backward`, with overlap-add convolutions.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    in1, in2 : array_like
        The forward's operands (real), with the same number of dims.
    mode : {'full', 'valid', 'same'}, default 'full'
        As in the forward call.
    axes : int or sequence of int, optional
        As in the forward call (default: every axis).

    Returns
    -------
    grad_in1 : ndarray
        Shape of ``in1``.
    grad_in2 : ndarray
        Shape of ``in2``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import oaconvolve_backward
    >>> g1, g2 = oaconvolve_backward(np.ones(2), np.array([1.0, 2.0]), np.array([1.0, 1.0]), mode='same')
    >>> np.round(g1, 6), np.round(g2, 6)
    (array([2., 1.]), array([3., 1.]))
    """
    return _fft_backward(grad_output, in1, in2, mode, axes, "oaconvolve")


def sepconvolve2d_backward(grad_output, in1, col, row, mode="full"):
    """Backward pass of :func:`pyconv.signal.sepconvolve2d`.

    ``grad_in1`` is two 1-D correlation passes of the embedded gradient; the kernel
    gradient ``K = correlate(G, in1, 'valid')`` projects onto the factors:
    ``grad_col = K @ row`` and ``grad_row = col @ K``.  Real inputs only.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to the forward's output (its shape).
    in1 : array_like
        The forward's 2-D input (real).
    col : array_like
        The 1-D column filter (along axis 0).
    row : array_like
        The 1-D row filter (along axis 1).
    mode : {'full', 'valid', 'same'}, default 'full'
        As in the forward call.

    Returns
    -------
    grad_in1 : ndarray
        Shape of ``in1``.
    grad_col, grad_row : ndarray
        Shapes of ``col`` and ``row``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import sepconvolve2d_backward
    >>> g1, gc, gr = sepconvolve2d_backward(np.ones((3, 3)), np.ones((2, 2)), np.ones(2), np.ones(2))
    >>> g1, gc, gr
    (array([[4., 4.],
           [4., 4.]]), array([8., 8.]), array([8., 8.]))
    """
    a = _arr(in1, "in1")
    c = _arr(col, "col")
    r = _arr(row, "row")
    if a.ndim != 2:
        raise ValueError(f"in1 must be 2-D; got shape {a.shape}")
    if c.ndim != 1:
        raise ValueError(f"col must be 1-D; got shape {c.shape}")
    if r.ndim != 1:
        raise ValueError(f"row must be 1-D; got shape {r.shape}")
    check_choice(mode, "mode", SIG_MODES)
    dtype = _sig_dtype(a, c, r)
    kshape = (c.shape[0], r.shape[0])
    sig_valid_swap(mode, a.shape, kshape)
    g = _arr(grad_output, "grad_output").astype(dtype, copy=False)
    a, c, r = (v.astype(dtype, copy=False) for v in (a, c, r))
    if a.size == 0 or c.size == 0 or r.size == 0:
        return np.zeros(a.shape, dtype), np.zeros(c.shape, dtype), np.zeros(r.shape, dtype)
    expect = _out_shape(mode, a.shape, kshape)
    if g.shape != expect:
        raise ValueError(f"grad_output has shape {g.shape}; expected {expect}, the output shape of sepconvolve2d")
    G = _embed(g, _out_shape("full", a.shape, kshape),
               _crop_starts(mode, a.shape, kshape, lambda s: (s - 1) // 2), dtype)
    sig = _signal()
    g1 = sig.sepconvolve2d(G, c[::-1].copy(), r[::-1].copy(), mode="valid")
    K = np.asarray(sig.correlate(G, a, mode="valid"), dtype=dtype)
    return _as_out(g1, dtype), _as_out(K @ r, dtype), _as_out(c @ K, dtype)


# =========================================================================== gradcheck

def gradcheck(func, inputs, kwargs=None, eps=1e-6, atol=1e-5, rtol=1e-3):
    """Check ``pyconv.grad.<func.__name__>_backward`` against central finite differences.

    The check is explicit: with a fixed random projection ``r`` of the output (seeded,
    standard normal), the scalar ``L(x) = sum(r * func(x))`` is differentiated by central
    differences ``(L(x + eps e_i) - L(x - eps e_i)) / (2 eps)`` for every element ``i``
    of every array in ``inputs`` (so use small shapes: two forward calls per element),
    and compared with the backward pass applied to ``r``.  Because ``r`` is random, this
    checks every column of the Jacobian against a random combination of its rows.

    Parameters
    ----------
    func : callable
        A public pyconv forward function (``pyconv.nn.conv2d``, ``pyconv.signal.convolve``...).
    inputs : tuple
        float64 arrays for ``func``'s leading array arguments (``None`` allowed, e.g. bias).
    kwargs : dict, optional
        ``func``'s other arguments.
    eps, atol, rtol : float
        Step and tolerances: ``|analytic - numeric| <= atol + rtol * |numeric|``.

    Returns
    -------
    True

    Raises
    ------
    AssertionError
        Naming the argument (``func``'s parameter name) and the worst element's index.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad import gradcheck
    >>> from pyconv import nn
    >>> rng = np.random.default_rng(0)
    >>> gradcheck(nn.conv1d, (rng.standard_normal((1, 2, 5)), rng.standard_normal((3, 2, 2))), {"padding": 1})
    True
    """
    kwargs = dict(kwargs or {})
    name = getattr(func, "__name__", None)
    # pyconv.ndimage's filters share names with pyconv.signal's (convolve, correlate):
    # their backward passes live in pyconv.grad.ndimage
    space, where = ((vars(ndimage), "pyconv.grad.ndimage") if getattr(func, "__module__", "") == "pyconv.ndimage"
                    else (globals(), "pyconv.grad"))
    backward = space.get(f"{name}_backward") if isinstance(name, str) else None
    if backward is None:
        raise ValueError(f"func={func!r} has no backward pass {where}.{name}_backward")
    if not isinstance(inputs, (tuple, list)):
        raise TypeError("inputs must be a tuple of float64 arrays (func's leading array arguments)")
    for arg, value in (("eps", eps), ("atol", atol), ("rtol", rtol)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{arg} must be a real number; got {value!r}")
        if not np.isfinite(value) or value < 0 or (arg == "eps" and value == 0):
            raise ValueError(f"{arg}={value!r} must be a finite number " + ("> 0" if arg == "eps" else ">= 0"))
    try:
        params = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        params = []
    names = [params[i] if i < len(params) else f"inputs[{i}]" for i in range(len(inputs))]
    xs = [None if v is None else np.array(v, dtype=np.float64) for v in inputs]
    y = np.asarray(func(*xs, **kwargs), dtype=np.float64)
    rng = np.random.default_rng(12345)
    r = rng.standard_normal(y.shape)
    grads = backward(r, *xs, **kwargs)
    if not isinstance(grads, tuple) or len(grads) < len(xs):
        raise AssertionError(f"{name}_backward returned {type(grads).__name__}, not a tuple of "
                             f"{len(xs)} or more gradients")
    for i, x in enumerate(xs):
        if x is None:
            continue
        analytic = grads[i]
        if analytic is None:
            raise AssertionError(f"gradcheck({name}): backward returned None for argument {names[i]!r}")
        analytic = np.asarray(analytic, dtype=np.float64)
        if analytic.shape != x.shape:
            raise AssertionError(f"gradcheck({name}): gradient of {names[i]!r} has shape {analytic.shape}, "
                                 f"expected {x.shape}")
        numeric = np.empty(x.shape)
        args = list(xs)
        for idx in np.ndindex(x.shape):
            xp = x.copy()
            xp[idx] += eps
            args[i] = xp
            fp = np.sum(r * np.asarray(func(*args, **kwargs), dtype=np.float64))
            xp[idx] -= 2 * eps
            fm = np.sum(r * np.asarray(func(*args, **kwargs), dtype=np.float64))
            numeric[idx] = (fp - fm) / (2 * eps)
        if x.size == 0:
            continue
        excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        excess = np.where(np.isnan(excess), np.inf, excess)
        worst = np.unravel_index(int(np.argmax(excess)), x.shape)
        if excess[worst] > 0:
            raise AssertionError(
                f"gradcheck({name}): gradient of argument {names[i]!r} is wrong at index {tuple(int(v) for v in worst)}: "
                f"backward gives {analytic[worst]!r}, finite differences give {numeric[worst]!r} "
                f"(atol={atol}, rtol={rtol})")
    return True


# dask arrays go to pyconv.dask (lazy result), never silently into memory
from pyconv._dask_dispatch import route_dask_inputs as _route_dask  # noqa: E402
_route_dask(globals(), __all__, "grad")
