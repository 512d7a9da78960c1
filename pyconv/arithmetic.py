"""The arithmetic of convolution, in exact integers.

This module is the single source of pyconv's shape rules: ``pyconv.nn``,
``pyconv.grad`` and ``pyconv.signal`` compute their output shapes here.
"""
import numpy as np

from pyconv._utils import check_int

__all__ = ["conv_output_size", "conv_transpose_output_size", "same_padding"]


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
    pads, pad_is_tuple = _pad_pairs(padding)
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


def _pad_pairs(padding):
    """Normalise padding to a list of (before, after) pairs; also say if it was a tuple."""
    if isinstance(padding, (tuple, list, np.ndarray)):
        pairs = []
        for p in padding:
            if isinstance(p, (tuple, list, np.ndarray)):
                if len(p) != 2:
                    raise ValueError(f"padding={padding!r}: each pair must be (before, after)")
                pairs.append((check_int(p[0], "padding"), check_int(p[1], "padding")))
            else:
                q = check_int(p, "padding")
                pairs.append((q, q))
        is_tuple = True
    else:
        q = check_int(padding, "padding")
        pairs, is_tuple = [(q, q)], False
    if any(a < 0 or b < 0 for a, b in pairs):
        raise ValueError(f"padding={padding!r} must be non-negative")
    return pairs, is_tuple


def conv_transpose_output_size(input_size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
    """Output size of a transposed convolution: ``o = (i-1)s - 2p + d(k-1) + output_padding + 1``.

    ``output_padding`` must be smaller than ``stride`` or ``dilation`` (as in PyTorch).

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
    out = []
    for ii, kk, ss, dd in zip(i, k, s, d):
        o = -(-ii // ss)
        total = max((o - 1) * ss + dd * (kk - 1) + 1 - ii, 0)
        out.append((total // 2, total - total // 2))
    return tuple(out) if is_tuple else out[0]
