"""PyTorch-compatible deep-learning convolutions (channels first).

Kinds of convolution
--------------------
=================================  ===============================================
standard, 1/2/3-D or from weight   :func:`conv1d`, :func:`conv2d`, :func:`conv3d`,
(stride, padding, dilation,        :func:`conv` (``torch.nn.functional.convNd``)
groups, padding modes)
transposed (upsampling)            :func:`conv_transpose1d`, :func:`conv_transpose2d`,
                                   :func:`conv_transpose3d`
depthwise (one kernel per channel) :func:`depthwise_conv2d` (``groups = C_in``)
pointwise / pointwise group (1x1)  :func:`pointwise_conv2d`
depthwise separable                :func:`separable_conv2d` (depthwise, then pointwise)
flattened (three 1-D filters)      :func:`flattened_conv2d`
channel shuffle (ShuffleNet)       :func:`channel_shuffle`
resize-convolution                 :func:`resize_conv2d` (upsample, then convolve)
im2col / col2im                    :func:`unfold`, :func:`fold`
=================================  ===============================================

An input is ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``; a weight
``(C_out, C_in/groups, *kernel)`` (transposed: ``(C_in, C_out/groups, *kernel)``).
Every function is a cross-correlation, exactly as ``torch.nn.functional``; the
backward pass of each is ``pyconv.grad.<name>_backward``, the shape rules are in
:mod:`pyconv.arithmetic`, and the guide (``python -m pyconv --guide``) explains each
kind.

Implementation
--------------
Every function reads: check the arguments (:mod:`pyconv._engine.args`, which builds
the call's geometry) -> take the plan (:mod:`pyconv._engine.conv`: which algorithm,
how many threads, how much workspace; cached per call signature) -> run it (one
Cython kernel) -> return a new C-contiguous array.  ``pyconv.explain(nn.conv2d, ...)``
shows the plan a call would run; ARCHITECTURE.md lists the algorithms.

Algorithms (all exact: every output reads exactly its window)

* dense convolutions (any stride, dilation, padding, groups with several channels
  per group): a register-blocked direct kernel with vectors along the output
  channels, reading the input by broadcasts from zero-padded row copies
  ('dense_oc', groups of more than one vector of outputs), or over the zero-padded
  input split into stride phases ('dense'); they measured faster than im2col + GEMM
  ('gemm', the fallback beyond the workspace budget and the calibrated limits) on
  every dense layer of the benchmark suite;
* 1x1 stride-1 unpadded convolutions ('pointwise'): the same direct kernel reading
  the input in place, a chunk of positions at a time (measured 1.25x faster than
  one OpenBLAS GEMM per tile for 1x1 256->64, float32);
* depthwise and thin-channel grouped convolutions ('thin_reg', 'thin_s1',
  'thin_phase', 'thin_row'): direct kernels over a zero-padded copy of a group's
  channels, keeping blocks of output rows in vector registers ('thin_reg', stride 1)
  or making one contiguous pass over the whole output plane per tap ('thin_s1'); strided,
  over a (sample, group)'s phase planes, the output frame's sums in registers
  ('thin_phase'), or rows skipping padded taps in place ('thin_row');
* transposed convolutions (the input gradient of a convolution): with finite
  weights and dense groups, the direct kernel -- stride 1 as the convolution with
  the flipped kernel ('flip_conv'), stride s as s^nd output phases, each a stride-1
  correlation with a sub-kernel ('phases'); otherwise GEMM (``W^T x``) then col2im
  (scatter-add, 'gemm').

Taps that only ever read padding are dropped before any of these run (a geometry
with dilation = padding = 2**40 costs what its few real taps cost).
"""
import numpy as np

from pyconv._engine import args as _args
from pyconv._engine import conv as _conv
from pyconv._engine import plan as _plan
from pyconv._engine import resample as _resample
from pyconv._engine.geometry import conv_geometry, padding_pairs
from pyconv._utils import as_array, contiguous, dl_dtype, nn_batched

__all__ = ["conv", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "depthwise_conv2d", "pointwise_conv2d", "separable_conv2d", "flattened_conv2d",
           "channel_shuffle", "resize_conv2d", "unfold", "fold"]

PADDING_MODES = _args.PADDING_MODES


# --------------------------------------------------------------------------- convolutions

def _conv_forward(a):
    """Run normalised convolution arguments ``a`` (padding mode applied first); drop the batch
    axis if the input had none."""
    dtype = a.dtype
    x = contiguous(a.x, dtype)
    g = a.geometry
    if a.padding_mode != "zeros" and g.is_padded:
        x = _conv.pad(x, a.pad_pairs, a.padding_mode)
        g = conv_geometry(x.shape, a.w.shape, a.stride, ((0, 0),) * a.nd, a.dilation, a.groups)
    w = contiguous(a.w, dtype)
    b = None if a.b is None else contiguous(a.b, dtype)
    out = _conv.forward(_conv.plan_forward(g, dtype), x, w, b)
    return out[0] if a.unbatched else out


# Repeated calls with one signature (shapes, dtypes, arguments) skip the checks and the
# plan choice: the signature maps to the plan the first call made (and the checks it passed).
_CALLS = _plan.new_cache()


def _conv_call(nd, input, weight, bias, stride, padding, dilation, groups, padding_mode):
    """A convolution call: its cached plan when the signature was seen, else the full checks."""
    # exact ndarrays key the call by (shape, dtype); ints and strs (tuples of them) as they are
    if (type(input) is np.ndarray and type(weight) is np.ndarray and type(padding_mode) is str
            and padding_mode == "zeros" and (bias is None or type(bias) is np.ndarray)
            and ((type(stride) is int and type(padding) is int and type(dilation) is int and type(groups) is int)
                 or _plan.plain((stride, padding, dilation, groups)))):
        key = (nd, input.shape, input.dtype, weight.shape, weight.dtype,
               None if bias is None else (bias.shape, bias.dtype),
               stride, padding, dilation, groups) + _plan.signature()
        hit = _CALLS.get(key)
        if hit is None:
            a = _args.normalize_conv(input, weight, bias, stride, padding, dilation, groups, padding_mode, nd)
            hit = _CALLS.put(key, (_conv.plan_forward(a.geometry, a.dtype), a.dtype, a.unbatched))
        p, dtype, unbatched = hit
        out = _conv.forward(p, np.ascontiguousarray(input[None] if unbatched else input, dtype),
                            np.ascontiguousarray(weight, dtype),
                            None if bias is None else np.ascontiguousarray(bias, dtype))
        return out[0] if unbatched else out
    return _conv_forward(_args.normalize_conv(input, weight, bias, stride, padding, dilation, groups, padding_mode, nd))


def _run_conv(x, w, b, stride, pads, dilation, groups):
    """A zero-padded convolution of batched C-contiguous arrays of one dtype."""
    g = conv_geometry(x.shape, w.shape, stride, pads, dilation, groups)
    return _conv.forward(_conv.plan_forward(g, x.dtype), x, w, b)


def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """N-d convolution (cross-correlation) for 1, 2 or 3 spatial dims, as ``torch.nn.functional.convNd``.

    The number of spatial dims is ``weight.ndim - 2``.

    Parameters
    ----------
    input : array_like, (N, C_in, *spatial) or unbatched (C_in, *spatial)
    weight : array_like, (C_out, C_in/groups, *kernel)
    bias : array_like (C_out,), optional
    stride, dilation : int or tuple of int
    padding : int, tuple of int, tuple of (before, after) pairs, 'same' or 'valid'
        'same' gives ``ceil(i/stride)`` outputs (TensorFlow's rule; with stride 1 this is
        PyTorch's 'same'); the odd unit of padding goes after.
    groups : int
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        How the input is padded (as ``torch.nn.ConvNd``).

    Returns
    -------
    ndarray (N, C_out, *out_spatial) (no batch axis for an unbatched input), float32
    when all operands are float32 (or float16), else float64.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> nn.conv(x, np.ones((1, 1, 2, 2)))[0, 0]
    array([[10., 14., 18.],
           [26., 30., 34.],
           [42., 46., 50.]])
    >>> nn.conv(x, np.ones((2, 1, 3, 3)), padding='same', stride=2).shape
    (1, 2, 2, 2)
    """
    return _conv_call(None, input, weight, bias, stride, padding, dilation, groups, padding_mode)

def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """1-d convolution (cross-correlation), as ``torch.nn.functional.conv1d``.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, L)``, or unbatched ``(C_in, L)``.
    weight : array_like
        ``(C_out, C_in/groups, k)``.
    bias : array_like, optional
        ``(C_out,)``, added to every output position of its channel.
    stride : int or tuple of 1 ints, default 1
        Step between windows along each spatial dim.
    padding : int, tuple of 1 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        Zeros (or ``padding_mode`` values) added at the borders.  'same' gives
        ``ceil(i/stride)`` outputs (TensorFlow's rule; with stride 1, PyTorch's 'same'),
        the odd unit of padding after.
    dilation : int or tuple of 1 ints, default 1
        Spacing between kernel taps.
    groups : int, default 1
        Input and output channels split into ``groups`` blocks convolved separately;
        must divide ``C_in`` and ``C_out``.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        How the input is padded (as ``torch.nn.Conv1d``).

    Returns
    -------
    ndarray
        ``(N, C_out, oL)`` (no batch axis for an unbatched input), with
        ``o = floor((i + pad_before + pad_after - dilation*(k-1) - 1) / stride) + 1`` per dim;
        float32 when every operand is float32 (or float16), else float64.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.conv1d(np.array([[1., 2., 3., 4.]]), np.array([[[1., 1.]]]), padding=((1, 0),))
    array([[1., 3., 5., 7.]])
    """
    return _conv_call(1, input, weight, bias, stride, padding, dilation, groups, padding_mode)

def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """2-d convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, H, W)``, or unbatched ``(C_in, H, W)``.
    weight : array_like
        ``(C_out, C_in/groups, kh, kw)``.
    bias : array_like, optional
        ``(C_out,)``, added to every output position of its channel.
    stride : int or tuple of 2 ints, default 1
        Step between windows along each spatial dim.
    padding : int, tuple of 2 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        Zeros (or ``padding_mode`` values) added at the borders.  'same' gives
        ``ceil(i/stride)`` outputs (TensorFlow's rule; with stride 1, PyTorch's 'same'),
        the odd unit of padding after.
    dilation : int or tuple of 2 ints, default 1
        Spacing between kernel taps.
    groups : int, default 1
        Input and output channels split into ``groups`` blocks convolved separately;
        must divide ``C_in`` and ``C_out``.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        How the input is padded (as ``torch.nn.Conv2d``).

    Returns
    -------
    ndarray
        ``(N, C_out, oH, oW)`` (no batch axis for an unbatched input), with
        ``o = floor((i + pad_before + pad_after - dilation*(k-1) - 1) / stride) + 1`` per dim;
        float32 when every operand is float32 (or float16), else float64.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.ones((2, 3, 8, 8), dtype=np.float32)
    >>> y = nn.conv2d(x, np.ones((4, 3, 3, 3), dtype=np.float32), padding=1)
    >>> y.shape, y.dtype, y[0, 0, 0, 0], y[0, 0, 4, 4]
    ((2, 4, 8, 8), dtype('float32'), np.float32(12.0), np.float32(27.0))
    >>> nn.conv2d(x, np.ones((4, 3, 3, 3)), padding=1, padding_mode='replicate')[0, 0, 0, 0]
    np.float64(27.0)
    """
    return _conv_call(2, input, weight, bias, stride, padding, dilation, groups, padding_mode)

def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """3-d convolution (cross-correlation), as ``torch.nn.functional.conv3d``.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, D, H, W)``, or unbatched ``(C_in, D, H, W)``.
    weight : array_like
        ``(C_out, C_in/groups, kd, kh, kw)``.
    bias : array_like, optional
        ``(C_out,)``, added to every output position of its channel.
    stride : int or tuple of 3 ints, default 1
        Step between windows along each spatial dim.
    padding : int, tuple of 3 ints, tuple of (before, after) pairs, 'valid' or 'same', default 0
        Zeros (or ``padding_mode`` values) added at the borders.  'same' gives
        ``ceil(i/stride)`` outputs (TensorFlow's rule; with stride 1, PyTorch's 'same'),
        the odd unit of padding after.
    dilation : int or tuple of 3 ints, default 1
        Spacing between kernel taps.
    groups : int, default 1
        Input and output channels split into ``groups`` blocks convolved separately;
        must divide ``C_in`` and ``C_out``.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        How the input is padded (as ``torch.nn.Conv3d``).

    Returns
    -------
    ndarray
        ``(N, C_out, oD, oH, oW)`` (no batch axis for an unbatched input), with
        ``o = floor((i + pad_before + pad_after - dilation*(k-1) - 1) / stride) + 1`` per dim;
        float32 when every operand is float32 (or float16), else float64.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.conv3d(np.ones((1, 2, 4, 4, 4)), np.ones((3, 2, 2, 2, 2)), stride=2).shape
    (1, 3, 2, 2, 2)
    """
    return _conv_call(3, input, weight, bias, stride, padding, dilation, groups, padding_mode)


# --------------------------------------------------------------------------- transposed

def _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, nd):
    a = _args.normalize_conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, nd)
    out = _conv.transposed(_conv.plan_transposed(a.geometry, a.dtype), contiguous(a.x, a.dtype),
                           contiguous(a.w, a.dtype), None if a.b is None else contiguous(a.b, a.dtype))
    return out[0] if a.unbatched else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-d transposed convolution, as ``torch.nn.functional.conv_transpose1d``.

    Parameters
    ----------
    input : array_like, (N, C_in, L) or (C_in, L)
    weight : array_like, (C_in, C_out/groups, k)
    bias : array_like (C_out,), optional
    stride, padding, output_padding, groups, dilation : int or 1-tuple
        ``output_padding`` must be smaller than ``stride`` or ``dilation``.

    Returns
    -------
    ndarray (N, C_out, (L-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1)

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.conv_transpose1d(np.array([[[1., 2.]]]), np.array([[[1., 1., 1.]]]), stride=2)
    array([[[1., 1., 3., 2., 2.]]])
    """
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 1)

def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-d transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    Computed per output phase by direct loops (or as a GEMM ``W^T x`` followed by
    col2im), never by inserting zeros.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, H, W)``, or unbatched ``(C_in, H, W)``.
    weight : array_like
        ``(C_in, C_out/groups, kh, kw)`` (input channels first, as in PyTorch).
    bias : array_like, optional
        ``(C_out,)``.
    stride : int or tuple of 2 ints, default 1
        Spacing of the kernel copies each input element paints onto the output.
    padding : int or tuple of 2 ints, default 0
        Cropped from both ends of every spatial dim of the output.
    output_padding : int or tuple of 2 ints, default 0
        Added at the end of every spatial dim (picks between the input sizes a strided
        convolution maps to the same size); must be smaller than ``stride`` or ``dilation``.
    groups : int, default 1
        Channel groups; must divide ``C_in``.
    dilation : int or tuple of 2 ints, default 1
        Spacing between kernel taps.

    Returns
    -------
    ndarray
        ``(N, C_out, *o)`` (no batch axis for an unbatched input), with
        ``o = (i-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1`` per dim;
        float32 when every operand is float32, else float64.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.ones((1, 4, 7, 7), dtype=np.float32)
    >>> nn.conv_transpose2d(x, np.ones((4, 2, 4, 4), dtype=np.float32), stride=2, padding=1).shape
    (1, 2, 14, 14)
    """
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 2)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """3-d transposed convolution, as ``torch.nn.functional.conv_transpose3d``.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, D, H, W)``, or unbatched ``(C_in, D, H, W)``.
    weight : array_like
        ``(C_in, C_out/groups, kd, kh, kw)`` (input channels first, as in PyTorch).
    bias : array_like, optional
        ``(C_out,)``.
    stride : int or tuple of 3 ints, default 1
        Spacing of the kernel copies each input element paints onto the output.
    padding : int or tuple of 3 ints, default 0
        Cropped from both ends of every spatial dim of the output.
    output_padding : int or tuple of 3 ints, default 0
        Added at the end of every spatial dim (picks between the input sizes a strided
        convolution maps to the same size); must be smaller than ``stride`` or ``dilation``.
    groups : int, default 1
        Channel groups; must divide ``C_in``.
    dilation : int or tuple of 3 ints, default 1
        Spacing between kernel taps.

    Returns
    -------
    ndarray
        ``(N, C_out, *o)`` (no batch axis for an unbatched input), with
        ``o = (i-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1`` per dim;
        float32 when every operand is float32, else float64.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.conv_transpose3d(np.ones((2, 3, 3, 3)), np.ones((2, 1, 2, 2, 2)), stride=2,
    ...                     output_padding=1).shape
    (1, 7, 7, 7)
    """
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 3)


# --------------------------------------------------------------------------- special convolutions


def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise 2-d convolution: each input channel convolved with its own ``m`` filters.

    Parameters
    ----------
    input : array_like, (N, C, H, W) or (C, H, W)
    weight : array_like, (C*m, 1, kh, kw)
    bias : array_like (C*m,), optional
    stride, padding, dilation : as :func:`conv2d`

    Returns
    -------
    ndarray (N, C*m, H_out, W_out); equals ``conv2d(..., groups=C)``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.stack([np.ones((3, 3)), 2 * np.ones((3, 3))])[None]
    >>> nn.depthwise_conv2d(x, np.ones((2, 1, 3, 3)))[0, :, 0, 0]
    array([ 9., 18.])
    """

    x = as_array(input, "input")
    w = as_array(weight, "weight")
    c = _args.depthwise_channels(x, w)
    return _conv_forward(_args.normalize_conv(x, w, bias, stride, padding, dilation, c, "zeros", 2))


def pointwise_conv2d(input, weight, bias=None, groups=1):
    """1x1 convolution: a matrix product over channels at every pixel (no im2col).

    Parameters
    ----------
    input : array_like, (N, C_in, H, W) or (C_in, H, W)
    weight : array_like, (C_out, C_in/groups) or (C_out, C_in/groups, 1, 1)
    bias : array_like (C_out,), optional
    groups : int
        ``groups > 1`` is ShuffleNet's pointwise group convolution.

    Returns
    -------
    ndarray (N, C_out, H, W)

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> nn.pointwise_conv2d(x, np.array([[1., 1.], [1., -1.]]))[0]
    array([[[ 4.,  6.],
            [ 8., 10.]],
    <BLANKLINE>
           [[-4., -4.],
            [-4., -4.]]])
    """

    w = _args.pointwise_weight(weight)
    return _conv_forward(_args.normalize_conv(input, w, bias, 1, 0, 1, groups, "zeros", 2))


def separable_conv2d(input, depthwise_weight, pointwise_weight, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise separable convolution (MobileNet / Xception): depthwise, then pointwise.

    Parameters
    ----------
    input : array_like, (N, C, H, W) or (C, H, W)
    depthwise_weight : array_like, (C*m, 1, kh, kw)
    pointwise_weight : array_like, (C_out, C*m) or (C_out, C*m, 1, 1)
    bias : array_like (C_out,), optional (added by the pointwise step)
    stride, padding, dilation : of the depthwise step, as :func:`conv2d`

    Returns
    -------
    ndarray (N, C_out, H_out, W_out): ``pointwise_conv2d(depthwise_conv2d(input, dw, None,
    stride, padding, dilation), pw, bias)``, computed in the common dtype of all operands.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.ones((1, 3, 5, 5), dtype=np.float32)
    >>> y = nn.separable_conv2d(x, np.ones((3, 1, 3, 3), np.float32), np.ones((8, 3), np.float32), padding=1)
    >>> y.shape, y.dtype, y[0, 0, 2, 2]
    ((1, 8, 5, 5), dtype('float32'), np.float32(27.0))
    """

    x = as_array(input, "input")
    dw = as_array(depthwise_weight, "depthwise_weight")
    pw = _args.pointwise_weight(pointwise_weight, "pointwise_weight")
    b = None if bias is None else as_array(bias, "bias")
    dtype = dl_dtype(x, dw, pw, b)
    c = _args.separable_weights(x, dw, pw)
    a = _args.normalize_conv(x.astype(dtype, copy=False), dw.astype(dtype, copy=False), None, stride, padding,
                             dilation, c, "zeros", 2)
    mid = _conv_forward(a)
    return _conv_forward(_args.normalize_conv(mid, pw.astype(dtype, copy=False),
                                              None if b is None else b.astype(dtype, copy=False), 1, 0, 1, 1,
                                              "zeros", 2))


def flattened_conv2d(input, lateral, vertical, horizontal, bias=None, padding=0):
    """Flattened convolution: a 1x1 lateral step, then per-channel vertical and horizontal 1-d passes.

    Parameters
    ----------
    input : array_like, (N, C_in, H, W) or (C_in, H, W)
    lateral : array_like, (C_out, C_in)
    vertical : array_like, (C_out, kh)
    horizontal : array_like, (C_out, kw)
    bias : array_like (C_out,), optional, added once at the end
    padding : int, tuple, tuple of (before, after) pairs, 'same' or 'valid' (zero padding)

    Returns
    -------
    ndarray (N, C_out, H_out, W_out), equal to ``conv2d(input, w, bias, padding=padding)`` with
    ``w[o, c, i, j] = lateral[o, c] * vertical[o, i] * horizontal[o, j]``, at a cost of
    ``C_in + kh + kw`` instead of ``C_in * kh * kw`` multiplications per output.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.ones((1, 2, 4, 4))
    >>> y = nn.flattened_conv2d(x, np.ones((3, 2)), np.ones((3, 3)), np.ones((3, 3)), padding=1)
    >>> y.shape, y[0, 0, 0, 0], y[0, 0, 1, 1]
    ((1, 3, 4, 4), np.float64(8.0), np.float64(18.0))
    """

    x = as_array(input, "input")
    lat = as_array(lateral, "lateral")
    ver = as_array(vertical, "vertical")
    hor = as_array(horizontal, "horizontal")
    b = None if bias is None else as_array(bias, "bias")
    dtype = dl_dtype(x, lat, ver, hor, b)
    xb, unbatched = nn_batched(x, 2)
    cout = _args.flattened_factors(xb, lat, ver, hor, b)
    kh, kw = ver.shape[1], hor.shape[1]
    pads = padding_pairs(padding, 2, xb.shape[2:], (kh, kw), (1, 1), (1, 1))
    for i, k, (pb, pa) in zip(xb.shape[2:], (kh, kw), pads):
        if i + pb + pa < k:
            raise ValueError(f"kernel size ({kh}, {kw}) is larger than the padded input "
                             f"{tuple(i + a + c for i, (a, c) in zip(xb.shape[2:], pads))}")
    x = contiguous(xb, dtype)
    # Padding commutes with the 1x1 lateral step (no bias until the end), so the
    # vertical pass pads rows and the horizontal pass pads columns.
    y = _run_conv(x, contiguous(lat, dtype).reshape(cout, -1, 1, 1), None, (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    y = _run_conv(y, contiguous(ver, dtype).reshape(cout, 1, kh, 1), None, (1, 1), (pads[0], (0, 0)), (1, 1), cout)
    y = _run_conv(y, contiguous(hor, dtype).reshape(cout, 1, 1, kw), None if b is None else contiguous(b, dtype),
                  (1, 1), ((0, 0), pads[1]), (1, 1), cout)
    return y[0] if unbatched else y


# --------------------------------------------------------------------------- shuffle, resize


def channel_shuffle(input, groups):
    """Channel shuffle (ShuffleNet), as ``torch.nn.functional.channel_shuffle``.

    Parameters
    ----------
    input : array_like, (N, C, *) with at least 3 dims (always batched)
    groups : int, dividing C

    Returns
    -------
    ndarray of the input's shape: output channel ``k*groups + g`` is input channel
    ``g*(C/groups) + k``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.channel_shuffle(np.arange(6.0).reshape(1, 6, 1), 2)[0, :, 0]
    array([0., 3., 1., 4., 2., 5.])
    """

    x = as_array(input, "input")
    groups = _args.channel_groups(x, groups)
    return _resample.shuffle(contiguous(x, dl_dtype(x)), groups)


def resize_conv2d(input, weight, bias=None, scale_factor=2, mode="nearest", padding="same"):
    """Resize-convolution: upsample by an integer factor, then :func:`conv2d` (stride 1).

    The checkerboard-free alternative to :func:`conv_transpose2d` (Odena et al., 2016).

    Parameters
    ----------
    input : array_like, (N, C_in, H, W) or (C_in, H, W)
    weight : array_like, (C_out, C_in, kh, kw)
    bias : array_like (C_out,), optional
    scale_factor : int >= 1
    mode : {'nearest', 'bilinear'}
        As ``torch.nn.functional.interpolate(..., scale_factor, mode, align_corners=False)``.
    padding : as :func:`conv2d` (default 'same': output ``(H*scale, W*scale)``)

    Returns
    -------
    ndarray (N, C_out, H_out, W_out)

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.array([[[[1., 2.], [3., 4.]]]])
    >>> nn.resize_conv2d(x, np.ones((1, 1, 1, 1)))[0, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]])
    """

    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    xb, unbatched, factor, mode = _args.normalize_resize(x, w, b, scale_factor, mode)
    up = _resample.upsample(xb, factor, mode)
    out = _conv_forward(_args.normalize_conv(up, w, b, 1, padding, 1, 1, "zeros", 2))
    return out[0] if unbatched else out


# --------------------------------------------------------------------------- unfold / fold


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Extract sliding blocks (im2col), as ``torch.nn.functional.unfold``.

    Parameters
    ----------
    input : array_like, (N, C, H, W) or (C, H, W)
    kernel_size, dilation, padding, stride : int or pair of int

    Returns
    -------
    ndarray (N, C*kh*kw, L) (or (C*kh*kw, L)), ``L`` the number of blocks; row
    ``(c*kh + i)*kw + j`` holds tap ``(i, j)`` of channel ``c``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.unfold(np.arange(9.0).reshape(1, 1, 3, 3), 2)[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """

    x = as_array(input, "input")
    fa = _args.normalize_unfold(x, kernel_size, dilation, padding, stride)
    xb, unbatched = nn_batched(x, 2)
    out = _resample.unfold(contiguous(xb, dl_dtype(x)), fa)
    return out[0] if unbatched else out


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Combine sliding blocks into an image, summing overlaps (col2im), as ``torch.nn.functional.fold``.

    Parameters
    ----------
    input : array_like, (N, C*kh*kw, L) or (C*kh*kw, L)
    output_size : int or pair of int, the image's (H, W)
    kernel_size, dilation, padding, stride : int or pair of int

    Returns
    -------
    ndarray (N, C, H, W) (or (C, H, W)); ``fold(unfold(x))`` multiplies each pixel by
    the number of blocks covering it.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.fold(np.ones((1, 4, 4)), (3, 3), 2)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """

    x = as_array(input, "input")
    fa, osz = _args.normalize_fold(x, output_size, kernel_size, dilation, padding, stride)
    xb = x[None] if x.ndim == 2 else x
    out = _resample.fold(contiguous(xb, dl_dtype(x)), osz, fa)
    return out[0] if x.ndim == 2 else out


# dask arrays go to pyconv.dask (lazy result), never silently into memory
from pyconv._dask_dispatch import route_dask_inputs as _route_dask  # noqa: E402
_route_dask(globals(), __all__, "nn")
