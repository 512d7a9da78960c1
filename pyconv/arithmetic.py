"""The arithmetic of convolution, in exact integers.

Contents
--------
=====================================  ==============================================
output size of a convolution           :func:`conv_output_size`
output size of a transposed one        :func:`conv_transpose_output_size`
padding for 'same' (TensorFlow's rule) :func:`same_padding`
receptive field of a stack of layers   :func:`receptive_field`
the convolution as a sparse matrix     :func:`conv_matrix`
checkerboard overlap of a transposed   :func:`transpose_overlap`
convolution
multiplications, parameters, shape     :func:`conv_cost` (returns a :class:`ConvCost`)
=====================================  ==============================================

This module is the single source of pyconv's shape rules: ``pyconv.nn``,
``pyconv.grad`` and ``pyconv.signal`` compute their output shapes here.  It also
answers the questions one asks about a convolution before running it: how far
does a stack of layers see, which linear map is it, where does a transposed
convolution overlap unevenly and what does it cost.  The guide
(``python -m pyconv --guide``) uses each of them.

Everything here is exact integer arithmetic on Python ints (no overflow).
"""
import math
from collections import namedtuple

import numpy as np

from pyconv._engine.geometry import check_channels, check_groups, padding_pairs, same_pair
from pyconv._utils import as_array, check_int, dl_dtype

__all__ = ["conv_output_size", "conv_transpose_output_size", "same_padding",
           "receptive_field", "conv_matrix", "transpose_overlap", "conv_cost", "ConvCost"]


def _per_dim(name_values, minimums):
    """Broadcast ints/tuples to a common length; return (list of tuples, is_tuple)."""
    n = None
    for name, v in name_values:
        if isinstance(v, (tuple, list, np.ndarray)):
            if n is not None and len(v) != n:
                raise ValueError(f"{name}={tuple(v)!r} has {len(v)} entries; expected {n} (one per dim)")
            n = len(v)
    is_tuple = n is not None
    n = n or 1
    out = []
    for (name, v), lo in zip(name_values, minimums):
        vals = tuple(v) if isinstance(v, (tuple, list, np.ndarray)) else (v,) * n
        vals = tuple(check_int(x, name) for x in vals)
        if lo is not None and any(x < lo for x in vals):
            raise ValueError(f"{name}={v!r} must be >= {lo}")
        out.append(vals)
    return out, is_tuple


def conv_output_size(input_size, kernel_size, stride=1, padding=0, dilation=1):
    """Output size of a convolution: ``o = floor((i + 2p - d(k-1) - 1) / s) + 1``.

    Parameters
    ----------
    input_size, kernel_size, stride, padding, dilation : int or tuple of int
        Per spatial dimension; ints broadcast.  ``padding`` may also hold
        ``(before, after)`` pairs, in which case ``2p`` becomes ``before + after``.

    Returns
    -------
    int or tuple of int
        A tuple when any argument is a tuple.

    Notes
    -----
    Some introductions print this rule with ``k`` and ``s`` swapped; the rule
    above is the one PyTorch and TensorFlow implement.  A result below 1 means the
    kernel does not fit and raises ``ValueError``.

    Examples
    --------
    >>> conv_output_size(5, 3, stride=2, padding=1)
    3
    >>> conv_output_size((224, 224), 7, stride=2, padding=3)
    (112, 112)
    """
    pads = list(padding_pairs(padding))
    pad_is_tuple = isinstance(padding, (tuple, list, np.ndarray))
    (i, k, s, d), is_tuple = _per_dim(
        [("input_size", input_size), ("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)],
        [0, 1, 1, 1])
    n = len(i)
    if pad_is_tuple and not is_tuple:
        n = len(pads)
        i, k, s, d = (x * n for x in (i, k, s, d))
        is_tuple = True
    if len(pads) == 1 and n > 1:
        pads = pads * n
    if len(pads) != n:
        raise ValueError(f"padding={padding!r} has {len(pads)} entries; expected {n} (one per dim)")
    out = []
    for ii, kk, ss, dd, (pb, pa) in zip(i, k, s, d, pads):
        span = ii + pb + pa - dd * (kk - 1) - 1
        if span < 0:
            raise ValueError(
                f"kernel_size={kk} with dilation={dd} spans {dd * (kk - 1) + 1} elements, larger than "
                f"the padded input size {ii + pb + pa} (input_size={ii}, padding=({pb}, {pa}))")
        out.append(span // ss + 1)
    return tuple(out) if is_tuple else out[0]


def conv_transpose_output_size(input_size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
    """Output size of a transposed convolution: ``o = (i-1)s - 2p + d(k-1) + output_padding + 1``.

    Parameters
    ----------
    input_size : int or tuple of int
        Input size ``i`` per spatial dim.
    kernel_size : int or tuple of int
        Kernel size ``k``.
    stride : int or tuple of int, default 1
        Stride ``s``.
    padding : int or tuple of int, default 0
        Padding ``p``, cropped from both ends.
    output_padding : int or tuple of int, default 0
        Added at the end; must be smaller than ``stride`` or ``dilation`` (as in PyTorch).
    dilation : int or tuple of int, default 1
        Dilation ``d``.

    Returns
    -------
    int or tuple of int
        ``o`` per dim: an int when every argument is an int, else a tuple.

    Examples
    --------
    >>> conv_transpose_output_size(2, 3)      # 2x2 -> 4x4 with a 3x3 kernel
    4
    >>> conv_transpose_output_size((28, 28), 4, stride=2, padding=1)
    (56, 56)
    """
    (i, k, s, p, op, d), is_tuple = _per_dim(
        [("input_size", input_size), ("kernel_size", kernel_size), ("stride", stride), ("padding", padding),
         ("output_padding", output_padding), ("dilation", dilation)],
        [0, 1, 1, 0, 0, 1])
    out = []
    for ii, kk, ss, pp, oo, dd in zip(i, k, s, p, op, d):
        if oo >= ss and oo >= dd:
            raise ValueError(f"output_padding={oo} must be smaller than either stride={ss} or dilation={dd}")
        o = (ii - 1) * ss - 2 * pp + dd * (kk - 1) + oo + 1
        if o < 0 or (o == 0 and ii > 0):
            raise ValueError(f"transposed convolution output size {o} is not positive "
                             f"(input_size={ii}, kernel_size={kk}, stride={ss}, padding={pp})")
        out.append(o)
    return tuple(out) if is_tuple else out[0]


def same_padding(input_size, kernel_size, stride=1, dilation=1):
    """``(before, after)`` padding giving ``ceil(i / s)`` outputs (TensorFlow's 'SAME').

    The total is ``max((ceil(i/s) - 1) s + d(k-1) + 1 - i, 0)``; the odd unit goes after.

    Parameters
    ----------
    input_size : int or tuple of int
        Input size ``i`` per spatial dim.
    kernel_size : int or tuple of int
        Kernel size ``k``.
    stride : int or tuple of int, default 1
        Stride ``s``.
    dilation : int or tuple of int, default 1
        Dilation ``d``.

    Returns
    -------
    tuple
        ``(before, after)`` for int arguments, else one such pair per dim.

    Examples
    --------
    >>> same_padding(5, 3)
    (1, 1)
    >>> same_padding(6, 3, stride=2)
    (0, 1)
    >>> same_padding((5, 4), 2)
    ((0, 1), (0, 1))
    """
    (i, k, s, d), is_tuple = _per_dim(
        [("input_size", input_size), ("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)],
        [0, 1, 1, 1])
    out = [same_pair(ii, kk, ss, dd) for ii, kk, ss, dd in zip(i, k, s, d)]
    return tuple(out) if is_tuple else out[0]


# --------------------------------------------------------------------------- receptive field

def receptive_field(layers):
    """Receptive field size and cumulative stride ("jump") after each layer of a stack.

    With ``r_0 = 1`` and ``j_0 = 1``, layer ``l`` with kernel ``k``, stride ``s`` and
    dilation ``d`` gives ``r_l = r_{l-1} + d (k - 1) j_{l-1}`` and ``j_l = j_{l-1} s``.
    Padding shifts the field but does not change its size.

    Parameters
    ----------
    layers : sequence of tuple
        One ``(kernel_size, stride, dilation)`` per layer, first layer first;
        ``(kernel_size, stride)`` means dilation 1.  Each entry is an int or a
        tuple with one int per spatial dimension (ints broadcast).

    Returns
    -------
    list of (size, jump)
        ``size``: how many input elements (per dimension) one output of that layer
        sees; ``jump``: the distance in input elements between neighbouring outputs.
        Ints, or tuples of ints when any entry is a tuple.

    Examples
    --------
    Three 3x3 layers with dilations 1, 2 and 4 see 3, 7 and 15 pixels:

    >>> receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)])
    [(3, 1), (7, 1), (15, 1)]
    >>> receptive_field([(7, 2), (3, 2), (3, 1)])
    [(7, 2), (11, 4), (19, 4)]
    >>> receptive_field([((3, 5), 1, 1)])
    [((3, 5), (1, 1))]
    """
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers must be a sequence of (kernel_size, stride, dilation) tuples; got {layers!r}")
    layers = list(layers)
    parsed = []
    for n, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or len(layer) not in (2, 3):
            raise ValueError(f"layers[{n}]={layer!r} must be a (kernel_size, stride, dilation) "
                             "or (kernel_size, stride) tuple")
        k, s = layer[0], layer[1]
        d = layer[2] if len(layer) == 3 else 1
        parsed.append(_per_dim([(f"layers[{n}] kernel_size", k), (f"layers[{n}] stride", s),
                                (f"layers[{n}] dilation", d)], [1, 1, 1]))
    is_tuple = any(p[1] for p in parsed)
    ndim = {len(p[0][0]) for p in parsed if p[1]}
    if len(ndim) > 1:
        raise ValueError(f"layers mix tuples of different lengths {sorted(ndim)}; use one length (one per dim)")
    n = ndim.pop() if ndim else 1
    size, jump = [1] * n, [1] * n
    out = []
    for (k, s, d), _ in parsed:
        if len(k) == 1:
            k, s, d = k * n, s * n, d * n
        size = [r + dd * (kk - 1) * j for r, kk, dd, j in zip(size, k, d, jump)]
        jump = [j * ss for j, ss in zip(jump, s)]
        out.append((tuple(size), tuple(jump)) if is_tuple else (size[0], jump[0]))
    return out


# --------------------------------------------------------------------------- layer geometry

def _layer_geometry(input_shape, weight_shape, stride, padding, dilation, groups, batched_ok):
    """Validate one convolution layer's shapes; return its per-dim geometry.

    Returns ``(batch, c_in, spatial, c_out, c_group, kernel, stride, pads, dilation,
    groups, out_spatial)`` with ``pads`` a list of ``(before, after)`` pairs and
    ``batch`` None for an unbatched ``input_shape``.
    """
    if isinstance(weight_shape, (str, bytes)) or not hasattr(weight_shape, "__len__"):
        raise TypeError(f"weight shape must be a tuple (C_out, C_in/groups, *kernel); got {weight_shape!r}")
    wshape = tuple(check_int(v, "weight shape") for v in weight_shape)
    if len(wshape) < 3:
        raise ValueError(f"weight must have shape (C_out, C_in/groups, *kernel) with at least one "
                         f"spatial dim; got shape {wshape}")
    if any(v < 0 for v in wshape):
        raise ValueError(f"weight shape {wshape} has a negative entry")
    nd = len(wshape) - 2
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(f"input_shape must be a tuple (C_in, *spatial); got {input_shape!r}")
    ishape = tuple(check_int(v, "input_shape") for v in input_shape)
    allowed = (nd + 1, nd + 2) if batched_ok else (nd + 1,)
    if len(ishape) not in allowed:
        form = "(C_in, *spatial) or (N, C_in, *spatial)" if batched_ok else "(C_in, *spatial)"
        raise ValueError(f"input_shape={ishape} must be {form} with {nd} spatial dims "
                         f"to match the weight shape {wshape}")
    if any(v < 0 for v in ishape):
        raise ValueError(f"input_shape={ishape} has a negative entry")
    batch = ishape[0] if len(ishape) == nd + 2 else None
    c_in, spatial = ishape[-nd - 1], ishape[-nd:]
    groups = check_groups(groups)
    c_out, c_group, kernel = wshape[0], wshape[1], wshape[2:]
    check_channels(c_in, wshape, groups)
    if any(k < 1 for k in kernel):
        raise ValueError(f"weight shape {wshape}: every kernel size must be >= 1")
    (stride,), _ = _per_dim([("stride", _dims(stride, nd, "stride"))], [1])
    (dilation,), _ = _per_dim([("dilation", _dims(dilation, nd, "dilation"))], [1])
    if isinstance(padding, (tuple, list, np.ndarray)) and len(padding) != nd:
        raise ValueError(f"padding={padding!r} has {len(padding)} entries; expected {nd} (one per spatial dim)")
    pads = list(padding_pairs(padding, nd, spatial, kernel, stride, dilation))
    out_spatial = conv_output_size(spatial, kernel, stride, pads, dilation)
    return batch, c_in, spatial, c_out, c_group, kernel, stride, pads, dilation, groups, out_spatial


def _dims(value, nd, name):
    """An int, or a tuple that must hold one entry per spatial dim."""
    if isinstance(value, (tuple, list, np.ndarray)) and len(value) != nd:
        raise ValueError(f"{name}={tuple(value)!r} has {len(value)} entries; expected {nd} (one per spatial dim)")
    return tuple(value) if isinstance(value, (tuple, list, np.ndarray)) else (value,) * nd


# --------------------------------------------------------------------------- cost

ConvCost = namedtuple("ConvCost", ["multiplications", "parameters", "output_shape"])
ConvCost.__doc__ = """Cost of a convolution layer by the direct algorithm, bias excluded.

multiplications : int
    output elements x ``C_in/groups`` x kernel elements (padded positions count).
parameters : int
    weight elements.
output_shape : tuple of int
    ``(C_out, *spatial)``, or ``(N, C_out, *spatial)`` for a batched input shape.
"""


def conv_cost(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    """Multiplications, parameters and output shape of a convolution layer.

    The count is that of the direct algorithm: every output element is a dot
    product of ``C_in/groups x prod(kernel)`` products, zero-padded positions
    included; the bias is not counted.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C_in, *spatial)`` or ``(N, C_in, *spatial)``.
    weight_shape : tuple of int
        ``(C_out, C_in/groups, *kernel)``, as in ``pyconv.nn.conv``.
    stride, padding, dilation, groups
        As in ``pyconv.nn.conv``: ``padding`` is an int, a tuple, a tuple of
        ``(before, after)`` pairs, ``'valid'`` or ``'same'``.

    Returns
    -------
    ConvCost
        Named tuple ``(multiplications, parameters, output_shape)`` of Python ints.

    Examples
    --------
    A 7x7 RGB input through 128 filters of 3x3x3, then the depthwise separable
    alternative (3 depthwise 3x3 filters, then 128 pointwise 1x1x3 filters):

    >>> conv_cost((3, 7, 7), (128, 3, 3, 3))
    ConvCost(multiplications=86400, parameters=3456, output_shape=(128, 5, 5))
    >>> dw = conv_cost((3, 7, 7), (3, 1, 3, 3), groups=3)
    >>> pw = conv_cost(dw.output_shape, (128, 3, 1, 1))
    >>> dw.multiplications, pw.multiplications, dw.multiplications + pw.multiplications
    (675, 9600, 10275)
    """
    (batch, c_in, spatial, c_out, c_group, kernel, stride, pads, dilation, groups,
     out_spatial) = _layer_geometry(input_shape, weight_shape, stride, padding, dilation, groups, True)
    out_shape = (c_out,) + tuple(out_spatial)
    if batch is not None:
        out_shape = (batch,) + out_shape
    mults = math.prod(out_shape) * c_group * math.prod(kernel)
    params = c_out * c_group * math.prod(kernel)
    return ConvCost(mults, params, out_shape)


# --------------------------------------------------------------------------- conv matrix

# An explicit matrix needs ~20 bytes per entry while it is built: refuse (with a clear
# error) sizes that would exhaust memory rather than let the OS kill the process.
_MAX_MATRIX_ENTRIES = 1 << 26

def conv_matrix(input_shape, weight, stride=1, padding=0, dilation=1, groups=1):
    """The convolution as a sparse matrix acting on one flattened sample.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C_in, *spatial)`` of one sample ``x`` (1, 2 or 3 spatial dims, or more).
    weight : array_like
        ``(C_out, C_in/groups, *kernel)``, as in ``pyconv.nn.conv``.
    stride, padding, dilation, groups
        As in ``pyconv.nn.conv`` (zero padding): ``padding`` is an int, a tuple,
        a tuple of ``(before, after)`` pairs, ``'valid'`` or ``'same'``.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``C`` of shape ``(C_out * prod(out_spatial), C_in * prod(spatial))`` with
        ``C @ x.ravel() == pyconv.nn.conv(x, weight, ...).ravel()``.  Its dtype is
        pyconv.nn's compute dtype for ``weight`` (float32 stays float32).

    Notes
    -----
    Row ``r`` holds the weights output element ``r`` multiplies, at the columns of
    the input elements in its window; taps that fall on padding have no entry,
    so the matrix has ``conv_cost(...).multiplications`` entries minus the padded
    taps.  ``C.T`` is the transposed convolution with the same ``weight``:
    ``C.T @ g.ravel()`` equals ``pyconv.nn.conv_transpose2d(g, weight, stride=...,
    padding=..., output_padding=op, groups=..., dilation=...).ravel()`` with
    ``op = (i + 2p - d(k-1) - 1) mod s``, the rows a strided convolution skipped
    (symmetric padding; with ``(before, after)`` pairs only ``C.T`` itself is
    defined).  The matrix is built with vectorised index arithmetic, no loop over
    positions, in about the memory of the result (12 bytes per float64 entry, 8 per
    float32, plus one pointer per row).  It is meant for small problems: more than
    2**26 (67 million) entries raise ``ValueError``.

    Examples
    --------
    A 3x3 kernel on a 4x4 image gives the 4x16 matrix of the classic figure:

    >>> import numpy as np
    >>> w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    >>> C = conv_matrix((1, 4, 4), w)
    >>> C.shape, C.nnz
    ((4, 16), 36)
    >>> C.toarray()[0].astype(int).tolist()
    [1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 0, 0, 0, 0]
    >>> x = np.arange(16.0)
    >>> (C @ x).reshape(2, 2).tolist()
    [[303.0, 348.0], [483.0, 528.0]]
    """
    import scipy.sparse

    w = as_array(weight, "weight")
    (_, c_in, spatial, c_out, c_group, kernel, stride, pads, dilation, groups,
     out_spatial) = _layer_geometry(input_shape, w.shape, stride, padding, dilation, groups, False)
    dtype = dl_dtype(w)
    nd = len(spatial)
    n_in, n_out, n_k = math.prod(spatial), math.prod(out_spatial), math.prod(kernel)
    bound = max(c_out * c_group, 1) * n_out * n_k
    if bound > _MAX_MATRIX_ENTRIES:
        raise ValueError(
            f"conv_matrix for input_shape={tuple(input_shape)} and weight shape {w.shape} would hold up to "
            f"{bound:,} entries (the limit is {_MAX_MATRIX_ENTRIES:,}); it is meant for small problems: "
            "use pyconv.nn.conv to compute the convolution itself")

    # Per dim: the input coordinate tap kk of output oo reads, and whether it is real
    # input (not padding).  Validity is separable, so each output's count of real taps
    # is the product of its per-dim counts: the row lengths (and indptr) come first,
    # then the entries are written in place, a block of output positions at a time, so
    # the peak memory stays near the matrix itself (12 bytes per float64 entry).
    pos_d, valid_d = [], []
    for d in range(nd):
        pos = (np.arange(out_spatial[d], dtype=np.int64)[:, None] * stride[d] - pads[d][0]
               + np.arange(kernel[d], dtype=np.int64)[None, :] * dilation[d])
        pos_d.append(pos)
        valid_d.append((pos >= 0) & (pos < spatial[d]))
    count = np.ones((), dtype=np.int64)
    for v in valid_d:
        count = np.multiply.outer(count, v.sum(axis=1))
    count = count.reshape(n_out)
    nnz = c_out * c_group * int(count.sum())
    idx_dtype = np.int32 if max(nnz, c_in * n_in, c_out * n_out) < 2 ** 31 else np.int64
    indptr = np.zeros(c_out * n_out + 1, dtype=idx_dtype)
    np.cumsum(np.tile(count * c_group, c_out), out=indptr[1:])
    cols = np.empty(nnz, dtype=idx_dtype)
    vals = np.empty(nnz, dtype=dtype)
    w3 = np.asarray(w, dtype=dtype).reshape(c_out, c_group, n_k)
    in_strides = [math.prod(spatial[d + 1:]) for d in range(nd)]
    k_multi = np.unravel_index(np.arange(n_k), kernel) if nd else ()
    og = max(c_out // groups, 1)
    c_arr = np.arange(c_group, dtype=np.int64)[:, None]
    block = max(1, (1 << 20) // max(1, n_k * c_group))
    for o0 in range(0, n_out, block):
        o1 = min(n_out, o0 + block)
        o_multi = np.unravel_index(np.arange(o0, o1), out_spatial) if nd else ()
        valid = np.ones((o1 - o0, n_k), dtype=bool)
        offset = np.zeros((o1 - o0, n_k), dtype=np.int64)
        for d in range(nd):
            valid &= valid_d[d][o_multi[d][:, None], k_multi[d][None, :]]
            offset += pos_d[d][o_multi[d][:, None], k_multi[d][None, :]] * in_strides[d]
        oj, kj = np.nonzero(valid)          # (output, tap) pairs on real input, by output then tap
        sp_col = offset[oj, kj]
        cnt = count[o0:o1]
        first = np.cumsum(cnt) - cnt
        rank = np.arange(oj.size, dtype=np.int64) - first[oj]     # the tap's place in its row
        ob = oj + o0
        # row (co, o) holds, input channel by channel of the group, its real taps in order:
        # columns increase along the row, so the CSR indices are sorted as written
        step = c_arr * count[ob][None, :] + rank[None, :]
        for co in range(c_out):
            at = indptr[co * n_out + ob][None, :] + step
            cols[at] = ((co // og) * c_group + c_arr) * n_in + sp_col[None, :]
            vals[at] = w3[co][:, kj]
    C = scipy.sparse.csr_matrix((vals, cols, indptr), shape=(c_out * n_out, c_in * n_in), copy=False)
    C.has_sorted_indices = True
    return C


# --------------------------------------------------------------------------- transposed overlap

def transpose_overlap(input_size, kernel_size, stride, padding=0):
    """How many kernel taps of a transposed convolution land on each output position.

    Each input element of a transposed convolution paints a copy of the kernel
    onto the output, ``stride`` elements after the previous one; this counts the
    copies covering each output position (after ``padding`` is cropped from both
    ends).  When ``kernel_size`` is not a multiple of ``stride`` the counts
    alternate away from the borders: the uneven overlap behind the checkerboard
    artifacts of transposed convolutions.

    Parameters
    ----------
    input_size, kernel_size, stride, padding : int or tuple of int
        As in ``pyconv.nn.conv_transposeNd`` (dilation 1, no output padding).

    Returns
    -------
    numpy.ndarray of int64
        Shape ``conv_transpose_output_size(input_size, kernel_size, stride, padding)``;
        1-D for ints, and for tuples the outer product of the per-dim counts.

    Examples
    --------
    >>> transpose_overlap(5, 3, 2).tolist()      # kernel 3, stride 2: uneven
    [1, 1, 2, 1, 2, 1, 2, 1, 2, 1, 1]
    >>> transpose_overlap(5, 4, 2).tolist()      # kernel 4, stride 2: even inside
    [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1]
    >>> transpose_overlap((3, 3), 3, 2, padding=1)
    array([[1, 2, 1, 2, 1],
           [2, 4, 2, 4, 2],
           [1, 2, 1, 2, 1],
           [2, 4, 2, 4, 2],
           [1, 2, 1, 2, 1]])
    """
    (i, k, s, p), is_tuple = _per_dim(
        [("input_size", input_size), ("kernel_size", kernel_size), ("stride", stride), ("padding", padding)],
        [1, 1, 1, 0])
    counts = []
    for ii, kk, ss, pp in zip(i, k, s, p):
        length = conv_transpose_output_size(ii, kk, ss, pp)
        taps = (np.arange(ii, dtype=np.int64)[:, None] * ss + np.arange(kk, dtype=np.int64)[None, :]).ravel()
        full = np.bincount(taps, minlength=(ii - 1) * ss + kk)
        counts.append(full[pp:pp + length].astype(np.int64))
    out = counts[0]
    for c in counts[1:]:
        out = np.multiply.outer(out, c)
    return np.ascontiguousarray(out)
