"""The geometry of a convolution, built once from a public call's arguments.

:class:`ConvGeometry` is what every planner and executor reads: batch, channels,
groups, input / kernel / output sizes, stride, dilation, (before, after) padding
pairs and output_padding, with the 3-D lifted views the kernels take (1-D and 2-D
convolutions run as 3-D ones with leading size-1 dims).  :func:`padding_pairs` is
the one parser of ``padding`` (int, per-dim ints, per-dim pairs, 'same', 'valid')
for pyconv.nn, pyconv.grad and pyconv.arithmetic.  :func:`prune` drops the kernel
taps that only ever read padding -- at geometry level, so the forward pass and both
gradients shrink the same way.
"""
import dataclasses
import math

import numpy as np

from pyconv._utils import check_int

_SEQ = (list, tuple, np.ndarray)


def same_pair(i, k, s, d):
    """``(before, after)`` padding giving ``ceil(i / s)`` outputs (TensorFlow's 'SAME')."""
    o = -(-i // s)
    total = max((o - 1) * s + d * (k - 1) + 1 - i, 0)
    return (total // 2, total - total // 2)


def padding_pairs(padding, nd=None, sizes=None, kernel=None, stride=None, dilation=None, *,
                  strings=True, pairs=True, name="padding"):
    """Normalise ``padding`` to a tuple of (before, after) pairs of non-negative ints.

    Parameters
    ----------
    padding : int, sequence of ints and/or (before, after) pairs, 'same' or 'valid'
    nd : int or None
        Number of spatial dims; a sequence must have ``nd`` entries.  None (pyconv.arithmetic's
        broadcasting rules): a sequence gives one pair per entry, an int a single pair.
    sizes, kernel, stride, dilation : sequences of int, needed for 'same' only.
    strings : bool
        Whether 'same'/'valid' are accepted (transposed convolutions and unfold/fold refuse them).
    pairs : bool
        Whether (before, after) pairs are accepted (else one int per dim, symmetric).

    Examples
    --------
    >>> padding_pairs(1, 2)
    ((1, 1), (1, 1))
    >>> padding_pairs([(0, 1), 2], 2)
    ((0, 1), (2, 2))
    >>> padding_pairs('same', 1, (5,), (4,), (1,), (1,))
    ((1, 2),)
    """
    n = 1 if nd is None else nd
    if isinstance(padding, str):
        forms = "an int, 'same', 'valid'" if strings else "an int"
        if not strings:
            raise ValueError(f"{name}={padding!r}: string padding is not supported here; give {forms} or "
                             f"a tuple of {n} ints")
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            return tuple(same_pair(i, k, s, d) for i, k, s, d in zip(sizes, kernel, stride, dilation))
        raise ValueError(f"{name} must be one of 'same', 'valid', an int or a tuple; got {padding!r}")
    if isinstance(padding, _SEQ):
        vals = list(padding)
        if nd is not None and len(vals) != nd:
            what = f"a tuple of {nd} ints" + (f" or a tuple of {nd} (before, after) pairs" if pairs else "")
            strs = ", 'same', 'valid'" if strings else ""
            raise ValueError(f"{name} must be an int{strs}, {what}; got {padding!r}")
        out = []
        for v in vals:
            if isinstance(v, _SEQ):
                if not pairs:
                    raise ValueError(f"{name}={padding!r}: each entry must be an int (one per dim)")
                if len(v) != 2:
                    raise ValueError(f"{name}={padding!r}: each per-dim entry must be an int or a "
                                     f"(before, after) pair")
                out.append((check_int(v[0], name), check_int(v[1], name)))
            else:
                q = check_int(v, name)
                out.append((q, q))
        out = tuple(out)
    else:
        q = check_int(padding, name)
        out = ((q, q),) * n
    if any(a < 0 or b < 0 for a, b in out):
        raise ValueError(f"{name}={padding!r} must be non-negative")
    return out


def check_groups(groups):
    """``groups`` as a positive int (TypeError / ValueError naming it)."""
    groups = check_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups={groups} must be a positive integer")
    return groups


def check_channels(cin, w_shape, groups):
    """The channel rule of a convolution with weight (C_out, C_in/groups, *kernel): ``groups``
    divides both channel counts and the weight holds C_in/groups input channels per filter."""
    cout, cg = w_shape[:2]
    if cin % groups:
        raise ValueError(f"groups={groups} must divide in_channels={cin}")
    if cout % groups:
        raise ValueError(f"groups={groups} must divide out_channels={cout} (weight.shape[0])")
    if cg * groups != cin:
        raise ValueError(f"weight.shape[1]={cg} must equal in_channels/groups = {cin}/{groups} = "
                         f"{cin // groups} (weight shape {tuple(w_shape)})")


def _lift(t, fill):
    return (fill,) * (3 - len(t)) + tuple(t)


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """One convolution's shape arithmetic (all ints; sequences are per spatial dim).

    ``spatial`` is the input's spatial size, ``out`` the output's.  For a forward
    convolution (and its gradients) ``out[i] = (spatial[i] + pads[i][0] + pads[i][1]
    - dilation[i]*(kernel[i]-1) - 1) // stride[i] + 1``.  A transposed convolution
    (``transposed=True``, weight (C_in, C_out/groups, *kernel)) has
    ``out[i] = (spatial[i]-1)*stride[i] - pads[i][0] - pads[i][1] + dilation[i]*(kernel[i]-1)
    + output_padding[i] + 1``.
    """

    n: int
    cin: int
    cout: int
    groups: int
    spatial: tuple
    kernel: tuple
    out: tuple
    stride: tuple
    dilation: tuple
    pads: tuple
    output_padding: tuple = ()
    transposed: bool = False

    # ---- derived views (cheap properties: a geometry is built once per signature)
    @property
    def nd(self):
        return len(self.spatial)

    @property
    def cg(self):
        """Input channels per group."""
        return self.cin // self.groups

    @property
    def og(self):
        """Output channels per group."""
        return self.cout // self.groups

    @property
    def kvol(self):
        return math.prod(self.kernel)

    @property
    def is_padded(self):
        return any(pp != (0, 0) for pp in self.pads)

    @property
    def is_pointwise(self):
        """1x1 kernel, stride 1, no padding: a matrix product per position."""
        return self.kvol == 1 and all(s == 1 for s in self.stride) and not self.is_padded

    @property
    def x_shape(self):
        return (self.n, self.cin) + tuple(self.spatial)

    @property
    def w_shape(self):
        if self.transposed:
            return (self.cin, self.og) + tuple(self.kernel)
        return (self.cout, self.cg) + tuple(self.kernel)

    @property
    def out_shape(self):
        return (self.n, self.cout) + tuple(self.out)

    sp3 = property(lambda self: _lift(self.spatial, 1))
    k3 = property(lambda self: _lift(self.kernel, 1))
    o3 = property(lambda self: _lift(self.out, 1))
    s3 = property(lambda self: _lift(self.stride, 1))
    d3 = property(lambda self: _lift(self.dilation, 1))
    pads3 = property(lambda self: ((0, 0),) * (3 - len(self.pads)) + tuple(self.pads))
    pb3 = property(lambda self: _lift([p[0] for p in self.pads], 0))

    def __str__(self):
        t = "transposed " if self.transposed else ""
        pads = ",".join(f"{a}" if a == b else f"{a}:{b}" for a, b in self.pads)
        s = (f"{t}{self.n}x{self.cin}x{'x'.join(map(str, self.spatial))} * "
             f"{'x'.join(map(str, self.w_shape))} -> {'x'.join(map(str, self.out_shape))}"
             f" s={','.join(map(str, self.stride))} p={pads} d={','.join(map(str, self.dilation))}")
        if self.groups != 1:
            s += f" g={self.groups}"
        if any(self.output_padding):
            s += f" op={','.join(map(str, self.output_padding))}"
        return s


def conv_out(spatial, kernel, stride, pads, dilation):
    """Output spatial size of a convolution (arguments already checked)."""
    return tuple((i + pb + pa - d * (k - 1) - 1) // s + 1
                 for i, k, s, (pb, pa), d in zip(spatial, kernel, stride, pads, dilation))


def conv_geometry(x_shape, w_shape, stride, pads, dilation, groups):
    """The geometry of ``conv(x, w)`` for batched ``x_shape`` (N, C_in, *spatial) and
    ``w_shape`` (C_out, C_in/groups, *kernel); arguments already validated."""
    spatial, kernel = tuple(x_shape[2:]), tuple(w_shape[2:])
    return ConvGeometry(int(x_shape[0]), int(x_shape[1]), int(w_shape[0]), int(groups), spatial, kernel,
                        conv_out(spatial, kernel, stride, pads, dilation), tuple(stride), tuple(dilation),
                        tuple(tuple(p) for p in pads))


def transposed_geometry(x_shape, w_shape, stride, padding, output_padding, dilation, groups):
    """The geometry of ``conv_transpose(x, w)`` (``w_shape`` = (C_in, C_out/groups, *kernel),
    ``padding`` one int per dim); arguments already validated."""
    spatial, kernel = tuple(x_shape[2:]), tuple(w_shape[2:])
    out = tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1
                for i, k, s, p, op, d in zip(spatial, kernel, stride, padding, output_padding, dilation))
    return ConvGeometry(int(x_shape[0]), int(x_shape[1]), int(w_shape[1]) * int(groups), int(groups), spatial,
                        kernel, out, tuple(stride), tuple(dilation), tuple((p, p) for p in padding),
                        tuple(output_padding), True)


@dataclasses.dataclass(frozen=True)
class Prune:
    """Kernel taps that only ever read padding, dropped (see :func:`prune`).

    ``taps``: per dim the slice of kept taps (None for every dim when no tap meets the
    input: ``geometry`` is then None); ``crop``: per dim the slice of the input the kept
    taps read; ``geometry``: the convolution of the cropped input with the kept taps,
    which has the original output shape; ``full``: the original geometry.
    """

    taps: tuple
    crop: tuple
    geometry: object
    full: object

    def weight_slices(self):
        return (slice(None), slice(None)) + self.taps

    def input_slices(self):
        return (slice(None), slice(None)) + self.crop


def prune(g):
    """Drop the kernel taps of the forward convolution ``g`` that only ever read padding.

    Per dim, tap ``a`` reads input ``o*s - p_before + a*d``; the taps between the first
    and the last that meets the input for some output are kept and the padding shrinks
    by what the dropped taps spanned (a negative remainder crops input no kept tap
    reads).  The pruned convolution has the same output, but its padded frame no longer
    grows with padding only zeros ever see (dilation = padding = 2**20 stays small).
    Exact for the forward pass when the dropped weights are finite (0 * w = 0), and for
    both gradients when the dropped weights / grad_output are (their gradients are zero:
    those taps only multiply padding).  Returns None when nothing can be dropped.
    """
    keep, changed = [], False
    for i_sz, k, s_, d_, (pb, pa), o_sz in zip(g.spatial, g.kernel, g.stride, g.dilation, g.pads, g.out):
        hits = []
        for a in range(k):
            first = -(-(pb - a * d_) // s_) if pb - a * d_ > 0 else 0      # first output with index >= 0
            if first < o_sz and first * s_ - pb + a * d_ < i_sz:
                hits.append(a)
                break
        if not hits:
            keep.append(None)
            changed = True
            continue
        for a in range(k - 1, hits[0], -1):
            first = -(-(pb - a * d_) // s_) if pb - a * d_ > 0 else 0
            if first < o_sz and first * s_ - pb + a * d_ < i_sz:
                hits.append(a)
                break
        keep.append((hits[0], hits[-1]))
        changed |= hits[0] > 0 or hits[-1] < k - 1
    if not changed:
        return None
    if any(kp is None for kp in keep):
        return Prune((None,) * g.nd, (slice(None),) * g.nd, None, g)
    pads, crop, spatial = [], [], []
    for (a0, a1), k, d_, (pb, pa), i_sz in zip(keep, g.kernel, g.dilation, g.pads, g.spatial):
        nb, na = pb - a0 * d_, pa - (k - 1 - a1) * d_
        lo, hi = max(0, -nb), i_sz - max(0, -na)
        crop.append(slice(lo, hi))
        spatial.append(hi - lo)
        pads.append((max(0, nb), max(0, na)))
    kernel = tuple(a1 - a0 + 1 for a0, a1 in keep)
    sub = dataclasses.replace(g, spatial=tuple(spatial), kernel=kernel, pads=tuple(pads))
    assert conv_out(sub.spatial, sub.kernel, sub.stride, sub.pads, sub.dilation) == tuple(g.out)
    return Prune(tuple(slice(a0, a1 + 1) for a0, a1 in keep), tuple(crop), sub, g)


@dataclasses.dataclass(frozen=True)
class SignalGeometry:
    """A pyconv.signal call's shapes: the operands, the output and the convolved axes."""

    shape1: tuple
    shape2: tuple
    out: tuple
    axes: tuple = None

    def __str__(self):
        f = lambda s: "x".join(map(str, s)) or "()"        # noqa: E731
        s = f"{f(self.shape1)} * {f(self.shape2)} -> {f(self.out)}"
        if self.axes is not None:
            s += f" axes={','.join(map(str, self.axes))}"
        return s
