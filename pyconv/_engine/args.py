"""Argument checks shared by pyconv.nn's forward functions and pyconv.grad's backward passes.

Each normaliser validates a public call's arguments (ValueError/TypeError naming the
argument) and returns them normalised together with the call's
:class:`~pyconv._engine.geometry.ConvGeometry`; a forward function and its backward
pass call the same normaliser, so they accept exactly the same arguments.
"""
from collections import namedtuple

import numpy as np

from pyconv._engine.geometry import (check_channels, check_groups, conv_geometry, padding_pairs,
                                     transposed_geometry)
from pyconv._utils import (as_array, as_tuple, check_choice, check_int, contiguous, dl_dtype, nn_batched,
                           nn_check_limits, nn_check_pad_modes, nn_check_size, nn_check_span)

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


ConvArgs = namedtuple("ConvArgs", ["x", "w", "b", "stride", "pad_pairs", "dilation", "groups",
                                   "padding_mode", "dtype", "unbatched", "nd", "geometry"])
ConvArgs.__doc__ = """Normalised convolution arguments (see :func:`normalize_conv`)."""


def spatial_nd(weight, nd, name="weight"):
    """The number of spatial dims: ``nd`` if given, else ``weight.ndim - 2`` (1, 2 or 3)."""
    if nd is None:
        nd = weight.ndim - 2
        if nd not in (1, 2, 3):
            raise ValueError(f"{name} must have 3, 4 or 5 dims (C_out, C_in/groups, *kernel) for a 1-, 2- or "
                             f"3-d convolution; got shape {weight.shape}")
    elif weight.ndim != nd + 2:
        raise ValueError(f"{name} must have {nd + 2} dims (C_out, C_in/groups, *kernel) for conv{nd}d; "
                         f"got shape {weight.shape}")
    return nd


def check_bias(b, n_out):
    if b is not None and b.shape != (n_out,):
        raise ValueError(f"bias must have shape (C_out,) = ({n_out},); got shape {b.shape}")


def normalize_conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                   padding_mode="zeros", nd=None):
    """Validate and normalise the arguments of a convolution (as ``torch.nn.functional.convNd``).

    Parameters are those of :func:`pyconv.nn.conv`; ``nd`` (1, 2, 3 or None = from the
    weight) fixes the number of spatial dims.

    Returns
    -------
    ConvArgs
        ``x``: the input as an array with a batch axis ``(N, C_in, *spatial)`` (not yet
        cast or made contiguous); ``w``, ``b``: arrays (``b`` may be None);
        ``stride``, ``dilation``: ``nd``-tuples; ``pad_pairs``: ``nd`` ``(before, after)``
        pairs ('same'/'valid' resolved); ``groups``: int; ``padding_mode``: str;
        ``dtype``: the compute dtype; ``unbatched``: whether the input had no batch
        axis; ``nd``; ``geometry``: the :class:`ConvGeometry` with zero padding.
    """
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    nd = spatial_nd(w, nd)
    dtype = dl_dtype(x, w, b)
    xb, unbatched = nn_batched(x, nd)
    groups = check_groups(groups)
    cin = xb.shape[1]
    cout, cg = w.shape[:2]
    if cout < 1:
        raise ValueError(f"weight must have at least one output channel (weight.shape[0] >= 1); "
                         f"got shape {w.shape}")
    check_channels(cin, w.shape, groups)
    check_bias(b, cout)
    stride = nn_check_limits(as_tuple(stride, nd, "stride", minimum=1), "stride")
    dilation = nn_check_limits(as_tuple(dilation, nd, "dilation", minimum=1), "dilation")
    padding_mode = check_choice(padding_mode, "padding_mode", PADDING_MODES)
    kernel = w.shape[2:]
    if any(k < 1 for k in kernel):
        raise ValueError(f"weight's kernel size {kernel} must be at least 1 in every dim")
    pads = padding_pairs(padding, nd, xb.shape[2:], kernel, stride, dilation)
    nn_check_limits([v for pp in pads for v in pp], "padding")
    nn_check_span(xb.shape[2:], kernel, stride, dilation, pads)
    for i, k, d, (pb, pa) in zip(xb.shape[2:], kernel, dilation, pads):
        if i + pb + pa < d * (k - 1) + 1:
            raise ValueError(f"weight's kernel size {tuple(kernel)} (dilation {dilation}) spans more than the "
                             f"padded input {tuple(i + pb + pa for i, (pb, pa) in zip(xb.shape[2:], pads))}")
    if padding_mode != "zeros":
        nn_check_pad_modes(xb.shape[2:], pads, padding_mode)
    geo = conv_geometry(xb.shape, w.shape, stride, pads, dilation, groups)
    nn_check_size(geo.out_shape, f"padding={padding!r}, stride={stride} and dilation={dilation}")
    return ConvArgs(xb, w, b, stride, pads, dilation, groups, padding_mode, dtype, unbatched, nd, geo)


TransposeArgs = namedtuple("TransposeArgs", ["x", "w", "b", "stride", "padding", "output_padding", "groups",
                                             "dilation", "dtype", "unbatched", "geometry"])


def normalize_conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, nd):
    """Validate a transposed convolution (as ``torch.nn.functional.conv_transposeNd``).

    Returns a ``TransposeArgs`` with ``x`` batched, every size argument an ``nd``-tuple of
    ints and the call's transposed :class:`ConvGeometry`.
    """
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    if w.ndim != nd + 2:
        raise ValueError(f"weight must have {nd + 2} dims (C_in, C_out/groups, *kernel) for "
                         f"conv_transpose{nd}d; got shape {w.shape}")
    dtype = dl_dtype(x, w, b)
    xb, unbatched = nn_batched(x, nd)
    groups = check_groups(groups)
    cin = xb.shape[1]
    if w.shape[0] < 1:
        raise ValueError(f"weight must have at least one input channel (weight.shape[0] >= 1); got {w.shape}")
    if cin % groups:
        raise ValueError(f"groups={groups} must divide in_channels={cin}")
    if w.shape[0] != cin:
        raise ValueError(f"weight.shape[0]={w.shape[0]} must equal in_channels={cin} "
                         f"(transposed weight is (C_in, C_out/groups, *kernel))")
    if any(k < 1 for k in w.shape[2:]):
        raise ValueError(f"weight's kernel size {w.shape[2:]} must be at least 1 in every dim")
    check_bias(b, w.shape[1] * groups)
    stride = nn_check_limits(as_tuple(stride, nd, "stride", minimum=1), "stride")
    dilation = nn_check_limits(as_tuple(dilation, nd, "dilation", minimum=1), "dilation")
    padding = nn_check_limits(symmetric_padding(padding, nd), "padding")
    output_padding = nn_check_limits(as_tuple(output_padding, nd, "output_padding", minimum=0), "output_padding")
    nn_check_span(xb.shape[2:], w.shape[2:], stride, dilation, [(p, p) for p in padding])
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(f"output_padding={output_padding} must be smaller than either stride={stride} "
                             f"or dilation={dilation} in every dim")
    for i, k, s, p, op, d in zip(xb.shape[2:], w.shape[2:], stride, padding, output_padding, dilation):
        o = (i - 1) * s - 2 * p + d * (k - 1) + op + 1
        if o < 1:
            raise ValueError(f"padding={padding} is too large: the transposed convolution's output size "
                             f"would be {o} (input spatial {xb.shape[2:]}, kernel {w.shape[2:]})")
    geo = transposed_geometry(xb.shape, w.shape, stride, padding, output_padding, dilation, groups)
    nn_check_size(geo.out_shape, f"stride={stride}, padding={padding}, output_padding={output_padding} and "
                                 f"dilation={dilation}")
    return TransposeArgs(xb, w, b, stride, padding, output_padding, groups, dilation, dtype, unbatched, geo)


def symmetric_padding(padding, nd, name="padding"):
    """One non-negative padding per dim (transposed convolutions, unfold/fold): the one
    padding parser, refusing strings and (before, after) pairs."""
    return tuple(pb for pb, _ in padding_pairs(padding, nd, strings=False, pairs=False, name=name))


def pointwise_weight(weight, name="weight"):
    """A pointwise weight (C_out, C_in/groups) or (C_out, C_in/groups, 1, 1) as 4-d."""
    w = as_array(weight, name)
    if w.ndim == 2:
        return w.reshape(w.shape + (1, 1))
    if w.ndim == 4 and w.shape[2:] == (1, 1):
        return w
    raise ValueError(f"{name} must have shape (C_out, C_in/groups) or (C_out, C_in/groups, 1, 1); got {w.shape}")


def depthwise_channels(x, w, wname="weight"):
    """Input channels C of a depthwise step (``wname`` of shape (C*m, 1, kh, kw)): the check of
    depthwise_conv2d, separable_conv2d and their backward passes."""
    if w.ndim != 4 or w.shape[1] != 1:
        raise ValueError(f"{wname} must have shape (C*m, 1, kh, kw) for a depthwise convolution; got {w.shape}")
    if x.ndim not in (3, 4):
        raise ValueError(f"input must have 3 (unbatched) or 4 (batched) dims; got shape {x.shape}")
    c = x.shape[-3]
    if c < 1 or w.shape[0] % c:
        raise ValueError(f"{wname}.shape[0]={w.shape[0]} must be a positive multiple of the input "
                         f"channels C={c} ({wname} (C*m, 1, kh, kw))")
    return c


def separable_weights(x, dw, pw4):
    """Channels C of a separable layer's depthwise step, with its pointwise weight checked against it."""
    c = depthwise_channels(x, dw, "depthwise_weight")
    if pw4.shape[1] != dw.shape[0]:
        raise ValueError(f"pointwise_weight.shape[1]={pw4.shape[1]} must equal the depthwise output channels "
                         f"{dw.shape[0]}")
    return c


# --------------------------------------------------------------------------- unfold / fold

FoldArgs = namedtuple("FoldArgs", ["kernel_size", "dilation", "padding", "stride", "blocks"])


def _fold_params(kernel_size, dilation, padding, stride):
    k = nn_check_limits(as_tuple(kernel_size, 2, "kernel_size", minimum=1), "kernel_size")
    d = nn_check_limits(as_tuple(dilation, 2, "dilation", minimum=1), "dilation")
    p = nn_check_limits(symmetric_padding(padding, 2), "padding")
    s = nn_check_limits(as_tuple(stride, 2, "stride", minimum=1), "stride")
    return k, d, p, s


def _blocks(spatial, k, d, p, s, what):
    """Number of sliding blocks per dim; ValueError when a block does not fit."""
    out = []
    for i, kk, dd, pp, ss in zip(spatial, k, d, p, s):
        span = i + 2 * pp - dd * (kk - 1) - 1
        if span < 0:
            raise ValueError(f"{what} spatial size {tuple(spatial)} with kernel_size={k}, dilation={d}, "
                             f"padding={p} gives no sliding block: the kernel is larger than the padded input")
        out.append(span // ss + 1)
    return tuple(out)


def normalize_unfold(x, kernel_size, dilation, padding, stride):
    """Checks of :func:`pyconv.nn.unfold` (and its backward): ``x`` (N, C, H, W) or (C, H, W)."""
    k, d, p, s = _fold_params(kernel_size, dilation, padding, stride)
    nn_check_span(x.shape[-2:], k, s, d, [(q, q) for q in p])
    if x.ndim not in (3, 4):
        raise ValueError(f"input must have 3 (unbatched) or 4 (batched) dims (N, C, H, W); got shape {x.shape}")
    return FoldArgs(k, d, p, s, _blocks(x.shape[-2:], k, d, p, s, "input"))


def normalize_fold(x, output_size, kernel_size, dilation, padding, stride):
    """Checks of :func:`pyconv.nn.fold` (and its backward): ``x`` (N, C*kh*kw, L) or (C*kh*kw, L).

    Returns ``(FoldArgs, output_size)``.
    """
    osz = as_tuple(output_size, 2, "output_size", minimum=0)
    k, d, p, s = _fold_params(kernel_size, dilation, padding, stride)
    if x.ndim not in (2, 3):
        raise ValueError(f"input must have 2 (unbatched) or 3 (batched) dims (N, C*kh*kw, L); got shape {x.shape}")
    ck, L = x.shape[-2:]
    kvol = k[0] * k[1]
    if ck % kvol:
        raise ValueError(f"input.shape[-2]={ck} must be divisible by the kernel size product "
                         f"kh*kw={kvol} (kernel_size={k})")
    nn_check_limits(osz, "output_size")
    nn_check_span(osz, k, s, d, [(q, q) for q in p])
    nb = _blocks(osz, k, d, p, s, "output_size")
    if nb[0] * nb[1] != L:
        raise ValueError(f"input.shape[-1]={L} must equal the number of sliding blocks {nb[0]}*{nb[1]}="
                         f"{nb[0] * nb[1]} for output_size={osz}, kernel_size={k}, dilation={d}, "
                         f"padding={p}, stride={s}")
    return FoldArgs(k, d, p, s, nb), osz


# --------------------------------------------------------------------------- resize

def normalize_resize(x, w, b, scale_factor, mode):
    """Checked arguments of :func:`pyconv.nn.resize_conv2d` (shared with its backward pass).

    Returns ``(xb, unbatched, factor, mode)``: ``xb`` is the batched input, C-contiguous
    in the compute dtype of ``(x, w, b)``.
    """
    factor = check_int(scale_factor, "scale_factor")
    if factor < 1:
        raise ValueError(f"scale_factor={factor} must be a positive integer")
    mode = check_choice(mode, "mode", ("nearest", "bilinear"))
    if w.ndim != 4:
        raise ValueError(f"weight must have 4 dims (C_out, C_in, kh, kw); got shape {w.shape}")
    dtype = dl_dtype(x, w, b)
    xb, unbatched = nn_batched(x, 2)
    if xb.shape[1] != w.shape[1]:
        raise ValueError(f"weight.shape[1]={w.shape[1]} must equal in_channels={xb.shape[1]}")
    nn_check_size(xb.shape[:2] + tuple(v * factor for v in xb.shape[2:]), f"scale_factor={factor}")
    return contiguous(xb, dtype), unbatched, factor, mode


def channel_groups(x, groups):
    """Checks of :func:`pyconv.nn.channel_shuffle` (and its backward); returns ``groups``."""
    if x.ndim < 3:
        raise ValueError(f"input must have at least 3 dims (N, C, *); got shape {x.shape}")
    groups = check_groups(groups)
    c = x.shape[1]
    if c % groups:
        raise ValueError(f"groups={groups} must divide the number of channels C={c}")
    return groups


def flattened_factors(xb, lat, ver, hor, b):
    """Checks of :func:`pyconv.nn.flattened_conv2d`'s factors (and its backward's); ``xb`` batched."""
    if lat.ndim != 2:
        raise ValueError(f"lateral must have shape (C_out, C_in); got {lat.shape}")
    cout = lat.shape[0]
    if ver.ndim != 2 or ver.shape[0] != cout or ver.shape[1] < 1:
        raise ValueError(f"vertical must have shape (C_out, kh) = ({cout}, kh) with kh >= 1; got {ver.shape}")
    if hor.ndim != 2 or hor.shape[0] != cout or hor.shape[1] < 1:
        raise ValueError(f"horizontal must have shape (C_out, kw) = ({cout}, kw) with kw >= 1; got {hor.shape}")
    if lat.shape[1] != xb.shape[1]:
        raise ValueError(f"lateral.shape[1]={lat.shape[1]} must equal in_channels={xb.shape[1]}")
    if cout < 1:
        raise ValueError(f"lateral must have at least one output channel; got shape {lat.shape}")
    check_bias(b, cout)
    return cout
