"""scipy.ndimage's convolution filters, drop-in, on pyconv's threads.

Kinds of convolution
--------------------
=====================================  ===============================================
N-d correlation / convolution          :func:`correlate`, :func:`convolve`
1-D along one axis                     :func:`correlate1d`, :func:`convolve1d`
Gaussian (spatially separable)         :func:`gaussian_filter`, :func:`gaussian_filter1d`
box / moving average (separable)       :func:`uniform_filter`, :func:`uniform_filter1d`
derivatives (separable)                :func:`sobel`, :func:`prewitt`
second derivatives                     :func:`laplace`, :func:`gaussian_laplace`
gradient magnitude                     :func:`gaussian_gradient_magnitude`
=====================================  ===============================================

The backward passes of the linear filters are ``pyconv.grad.ndimage.<name>_backward``.

Every function has the signature, defaults and semantics of the ``scipy.ndimage``
function of the same name (scipy 1.17): output shape and dtype, ``output=`` as an
array (written in place and returned) or a dtype, every boundary ``mode`` with
``cval``, ``origin``, ``axes``, integer outputs (scipy truncates toward zero and
wraps on overflow exactly as its C casts do), complex inputs through their real
and imaginary parts, and the same exception types (including scipy's
``RuntimeError``\\ s), with messages that name the argument.

How the work is done
--------------------
* ``correlate``/``convolve`` run one N-d kernel: each output row adds its
  nonzero taps in the kernel's C order, the sums held in registers, reading the
  input rows in place (only the few columns past each row's edges are copied,
  with the boundary mode applied through a per-axis index map; inputs of another
  dtype or layout are extended row by row into a per-thread buffer).  Like
  scipy, taps with ``|w| <= DBL_EPSILON`` are skipped, so a NaN or Inf reaches
  exactly the outputs scipy's reaches.
* ``correlate1d`` and every separable filter (Gaussian, uniform, Sobel, Prewitt,
  Laplace) run as a chain of 1-D passes along one axis each; a pass extends each
  line in a per-thread buffer and writes the output in the output's dtype, the
  next pass reading it back in place, as scipy does: no whole-array temporary.
* float64 and integer data are computed in double with scipy's own formulas
  and order of operations, so the results are scipy's bits; float32 data with
  a float32 output are computed in float32 (scipy computes them in double):
  equal to scipy's within float32 rounding, at twice the vector width.

Even-sized kernels are centred as scipy centres them: the tap at index
``k // 2 + origin`` sits on the output sample (``convolve`` mirrors the kernel and
the origin, so its centre is ``(k - 1) // 2 - origin``).

Examples
--------
>>> import numpy as np
>>> from pyconv import ndimage
>>> ndimage.convolve(np.arange(5.0), [1, 2, 1], mode="constant")
array([ 1.,  4.,  8., 12., 11.])
"""
import functools
import math
import numbers
import operator
import warnings
from collections.abc import Iterable

import numpy as np

from pyconv._engine import plan as _plan
from pyconv._engine.boundary import extend_index
from pyconv._kernels import ndimage as _kn
from pyconv._threads import first_touch, get_num_threads
from pyconv._utils import num_parts_for, team_size

__all__ = ["convolve", "correlate", "convolve1d", "correlate1d", "gaussian_filter", "gaussian_filter1d",
           "uniform_filter", "uniform_filter1d", "sobel", "prewitt", "laplace", "gaussian_laplace",
           "gaussian_gradient_magnitude"]

_EPS = np.finfo(np.float64).eps

# --------------------------------------------------------------------------- dtypes and modes

# type codes of the kernel (ND_* in pyconv/_kernels/ndimage.pyx), by (kind, itemsize)
_CODES = {("b", 1): 0, ("i", 1): 1, ("u", 1): 2, ("i", 2): 3, ("u", 2): 4, ("i", 4): 5, ("u", 4): 6,
          ("i", 8): 7, ("u", 8): 8, ("f", 4): 9, ("f", 8): 10}

# scipy's mode names -> the extension they give a filter ('grid-*' are aliases there)
_MODES = {"reflect": "reflect", "grid-mirror": "reflect", "mirror": "mirror", "nearest": "nearest",
          "wrap": "wrap", "grid-wrap": "wrap", "constant": "constant", "grid-constant": "constant"}
_MODE_NAMES = "'reflect', 'grid-mirror', 'constant', 'grid-constant', 'nearest', 'mirror', 'wrap', 'grid-wrap'"

_K1 = {np.dtype(np.float32): _kn.corr1d["float"], np.dtype(np.float64): _kn.corr1d["double"]}
_KN = {np.dtype(np.float32): _kn.corrnd["float"], np.dtype(np.float64): _kn.corrnd["double"]}


def _code(a, name):
    """The kernel's type code of ``a`` (scipy's RuntimeError for the dtypes it refuses)."""
    code = _CODES.get((a.dtype.kind, a.dtype.itemsize))
    if code is None:
        raise RuntimeError(f"{name}: array type {a.dtype!r} not supported (bool, integer, float32 or "
                           "float64; complex through its real and imaginary parts)")
    return code


def _mode(mode, name="mode"):
    """The extension of scipy's ``mode`` name (RuntimeError, as scipy, for anything else)."""
    if isinstance(mode, str) and mode in _MODES:
        return _MODES[mode]
    raise RuntimeError(f"boundary mode not supported: {name}={mode!r} must be one of {_MODE_NAMES}")


def _real_cval(cval):
    """``cval`` as a float (scipy's TypeError for complex or non-numbers)."""
    if isinstance(cval, (complex, np.complexfloating)):
        raise TypeError(f"cval={cval!r} must be real number, not complex")
    try:
        return float(cval)
    except (TypeError, ValueError):
        raise TypeError(f"cval={cval!r} must be real number, not {type(cval).__name__}") from None


def _index(value, name):
    """``operator.index`` with scipy's TypeError, naming the argument."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}={value!r}: '{type(value).__name__}' object cannot be interpreted as an "
                        "integer") from None


# pyconv.ndimage's extensions as rules of the one boundary map (pyconv._engine.boundary)
_RULE = {"constant": "fill", "nearest": "replicate", "wrap": "wrap", "reflect": "symm", "mirror": "mirror"}


@functools.lru_cache(maxsize=512)
def _index_map(n, before, after, mode):
    """Source index of every padded position ``-before .. n + after - 1`` (-1: cval).

    The extensions of scipy.ndimage's filters: 'reflect' repeats the line mirrored
    about its edges (d c b a | a b c d | d c b a), 'mirror' about its end samples
    (d c b | a b c d | c b a), 'wrap' periodically, 'nearest' the edge sample; all of
    them for any length of extension.
    """
    m = np.ascontiguousarray(extend_index(n, before, after, _RULE[mode]), dtype=np.intp)
    m.flags.writeable = False         # cached: shared by every call with this geometry
    return m


class _Setup:
    """What one geometry's kernel call needs beyond its data pointers, its ``cval`` and its
    team: built once per call signature (shapes, strides, dtypes, weights, mode, origins)
    and kept in a cache, as pyconv.signal keeps its plans.  Rebuilt per call, the index
    maps, tap lists and shape arrays took 15 of a 10x10 * 3x3 convolution's 27 us (scipy:
    6.7).  ``args``: the kernel's arguments between the output's type code and ``cval``;
    ``tail(nt)``: those after it for a team of ``nt``; ``plan(nt)``: its plan."""

    def __init__(self, op, geometry, cdt, parts, kernel, args, tail, workspace, tiles):
        self.op, self.geometry, self.cdt, self.parts, self.kernel = op, geometry, cdt, parts, kernel
        self.args, self.tail, self.workspace, self.tiles = args, tail, workspace, tiles
        self.plans = {}
        self.tails = {}             # team size -> the kernel's arguments after cval

    def plan(self, nt):
        p = self.plans.get(nt)
        if p is None:
            p = self.plans[nt] = _plan.Plan(self.op, _plan.Algorithm.DIRECT, self.geometry, self.cdt, nt,
                                            workspace_bytes=int(self.workspace(nt)), tiles=self.tiles(nt))
        return p


_SETUPS = _plan.new_cache()


def _launch(setup, inp, scode, out, dcode, cval):
    """Run one kernel call of ``setup`` on the team the machine allows now, as a plan:
    ``pyconv.explain`` records it instead (the output stays zero), ``PYCONV_VERBOSE=1``
    logs it.  Both kernels are direct algorithms; every output is computed by one thread,
    so the team does not change the result."""
    nt = team_size(setup.parts)
    tail = setup.tails.get(nt)
    if tail is None:
        tail = setup.tails[nt] = setup.tail(nt)
    dry = _plan.dry()
    if not _plan.VERBOSE and dry is None:
        # (the common small call: no plan object, no verbose wrapper)
        setup.kernel(inp, scode, out, dcode, *setup.args, cval, *tail)
        return
    p = setup.plan(nt)
    if dry is not None:
        dry.append(p)
        return
    _plan.run(p, setup.kernel, inp, scode, out, dcode, *setup.args, cval, *tail)


_addr = _kn.data_address


def _native(a):
    """``a`` in native byte order (the kernels read native values)."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


# --------------------------------------------------------------------------- scipy's support rules

_PLAIN_SCALARS = frozenset((int, float, bool, str, type(None)))


def _normalize_sequence(value, rank, name):
    """scipy's rule: a scalar (or str) repeated ``rank`` times, or a sequence of that length."""
    if type(value) in _PLAIN_SCALARS:
        return [value] * rank           # (np.iterable's try of iter() costs 0.3 us a call)
    if not isinstance(value, str) and np.iterable(value):
        out = list(value)
        if len(out) != rank:
            raise RuntimeError(f"sequence argument must have length equal to input rank: {name}={value!r} has "
                               f"{len(out)} entries for {rank} axes")
        return out
    return [value] * rank


def _new_output(shape, dtype):
    # (a team writes it: its huge pages may be faulted here first, see _threads.first_touch)
    return first_touch(np.empty(shape, dtype=dtype), get_num_threads())


def _fresh(output):
    """Whether :func:`_get_output` makes a new array for ``output`` (None or a dtype)."""
    return output is None or isinstance(output, (type, np.dtype, str))


def _get_output(output, input, shape=None, complex_output=False):
    """scipy.ndimage's ``output=`` rule: None, a dtype (class, dtype or str) or an array."""
    if shape is None:
        shape = input.shape
    # every kernel writes every output element: a new output is not zeroed first (a
    # zeroed one costs a full pass over memory, 10-20% of a 3x3x3 filter), except
    # while pyconv.explain records plans without running the kernels
    new = _new_output if _plan.dry() is None else np.zeros
    if output is None:
        if not complex_output:
            # scipy's dtype=input.dtype.name, in native byte order (the name's lookup cost
            # 3 us, a tenth of a small filter)
            dt = input.dtype
            return new(shape, dtype=dt if dt.isnative else dt.newbyteorder("="))
        return new(shape, dtype=np.promote_types(input.dtype, np.complex64))
    if isinstance(output, (type, np.dtype)):
        if complex_output and np.dtype(output).kind != "c":
            warnings.warn("promoting specified output dtype to complex", stacklevel=3)
            output = np.promote_types(output, np.complex64)
        return new(shape, dtype=output)
    if isinstance(output, str):
        dt = np.dtype(output)
        if complex_output and dt.kind != "c":
            raise RuntimeError(f"output={output!r}: output must have complex dtype")
        if not issubclass(dt.type, np.number):
            raise RuntimeError(f"output={output!r}: output must have numeric dtype")
        return new(shape, dtype=dt)
    output = np.asarray(output)
    if output.shape != tuple(shape):
        raise RuntimeError(f"output shape not correct: output.shape={output.shape}, expected {tuple(shape)}")
    if complex_output and output.dtype.kind != "c":
        raise RuntimeError(f"output must have complex dtype, got output.dtype={output.dtype}")
    return output


def _check_axes(axes, ndim):
    """scipy's ``axes`` rule: None, an int or unique ints in range, made non-negative."""
    if axes is None:
        return tuple(range(ndim))
    if np.isscalar(axes):
        axes = (operator.index(axes),)
    elif isinstance(axes, Iterable):
        axes = tuple(operator.index(ax) for ax in axes)
        for ax in axes:
            if ax < -ndim or ax > ndim - 1:
                raise ValueError(f"axes={axes!r}: specified axis: {ax} is out of range")
        axes = tuple(ax % ndim if ax < 0 else ax for ax in axes)
    else:
        raise ValueError("axes must be an integer, iterable of integers, or None")
    if len(set(axes)) != len(axes):
        raise ValueError(f"axes={axes!r}: axes must be unique")
    return axes


def _normalize_axis(axis, ndim):
    """``axis`` in ``[-ndim, ndim)`` made non-negative (numpy's AxisError otherwise)."""
    axis = _index(axis, "axis")
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def _invalid_origin(origin, k):
    return origin < -(k // 2) or origin > (k - 1) // 2


def _check_writeable(out):
    if not out.flags.writeable:
        raise ValueError("output array is read-only")


# --------------------------------------------------------------------------- footprints (halo depths)

def _halo(name, ndim, *args, **kwargs):
    """Per-axis ``(before, after)`` reach of ``pyconv.ndimage.<name>(input, *args, **kwargs)``
    on an input of ``ndim`` dims: output sample ``i`` reads input samples
    ``i - before .. i + after`` along each axis (before any boundary extension).

    This is the overlap (halo depth) a chunked evaluation needs, e.g. ``dask``'s
    ``map_overlap(depth=max(before, after))``.

    >>> _halo("gaussian_filter", 2, sigma=1.0)
    ((4, 4), (4, 4))
    >>> _halo("convolve", 1, np.ones(4))
    ((1, 2),)
    """
    import inspect
    func = globals()[name]
    ba = inspect.signature(func).bind(np.empty((1,) * ndim), *args, **kwargs)
    ba.apply_defaults()
    a = ba.arguments
    zero = ((0, 0),) * ndim

    def reach(k, origin):             # taps of a correlation centred at k // 2 + origin
        before = k // 2 + origin
        return (before, k - 1 - before)

    if name in ("correlate", "convolve"):
        w = np.asarray(a["weights"])
        axes = _check_axes(a["axes"], ndim)
        if w.ndim != len(axes):
            raise RuntimeError(f"weights.ndim ({w.ndim}) must match len(axes) ({len(axes)})")
        origins = _normalize_sequence(a["origin"], len(axes), "origin")
        out = list(zero)
        for ax, k, o in zip(axes, w.shape, origins):
            if name == "convolve":
                o = -o - (0 if k & 1 else 1)
            out[ax] = reach(k, o)
        return tuple(out)
    if name in ("correlate1d", "convolve1d", "uniform_filter1d", "gaussian_filter1d"):
        ax = _normalize_axis(a["axis"], ndim)
        out = list(zero)
        if name == "gaussian_filter1d":
            r = _gauss_radius(a["sigma"], a["truncate"], a["radius"])
            out[ax] = (r, r)
        else:
            k = a["size"] if name == "uniform_filter1d" else len(np.ravel(a["weights"]))
            o = a["origin"]
            if name == "convolve1d":
                o = -o - (0 if k & 1 else 1)
            out[ax] = reach(k, o)
        return tuple(out)
    if name in ("sobel", "prewitt"):
        return ((1, 1),) * ndim
    axes = _check_axes(a.get("axes"), ndim)
    out = list(zero)
    if name == "laplace":
        for ax in axes:
            out[ax] = (1, 1)
        return tuple(out)
    if name == "uniform_filter":
        sizes = _normalize_sequence(a["size"], len(axes), "size")
        origins = _normalize_sequence(a["origin"], len(axes), "origin")
        for ax, k, o in zip(axes, sizes, origins):
            if k > 1:
                out[ax] = reach(int(k), o)
        return tuple(out)
    # the Gaussian family
    if name == "gaussian_gradient_magnitude":
        # its derivatives take sigma as given (scipy's too), not spread over ``axes``: a scalar
        # smooths every axis
        axes = tuple(range(ndim))
    extra = a.get("kwargs", {})
    truncate = a.get("truncate", extra.get("truncate", 4.0))
    radius = a.get("radius", extra.get("radius"))
    sigmas = _normalize_sequence(a["sigma"], len(axes), "sigma")
    radii = _normalize_sequence(radius, len(axes), "radius")
    for ax, s, r in zip(axes, sigmas, radii):
        if s > 1e-15:
            r = _gauss_radius(s, truncate, r)
            out[ax] = (r, r)
    return tuple(out)


# --------------------------------------------------------------------------- the two kernel calls

def _tile(cdt, n, k, m, inplace, uniform):
    """(lines side by side, positions per tile) for a pass along a non-contiguous axis.

    Wide tiles read long contiguous row segments (the prefetchers follow them, and
    a walk down the axis touches few pages per byte).  In place a tile spans whole
    lines (tiles would read rows another tile has overwritten), and so does the
    running sum (its rounding runs from the line's start): the kernel streams such
    tiles through a ring of k or k + 1 rows, so they stay as wide.
    """
    isz = cdt.itemsize
    c = min(m, 2048 // isz)
    if inplace or uniform:
        return c, n
    rows = max(2 * k, 64)
    return c, min(rows, n)


def _corr1d_into(inp, w, axis, out, mode, cval, origin, uniform=False, fresh=False):
    """``out = correlate1d(inp, w)`` along ``axis`` (real arrays of any layout, same shape).

    ``w``: float64 weights (for ``uniform``, only its length counts); ``mode`` an
    extension name; ``origin`` checked by the caller.  ``fresh``: ``out`` was made for
    this call (it shares no memory with ``inp``; the check costs 0.2 us of a small call).
    """
    scode = _code(inp, "input")
    dcode = _code(out, "output")
    _check_writeable(out)
    if out.size == 0:
        return out
    if inp.ndim == 0:
        inp, out, axis = inp.reshape(1), out.reshape(1), 0
    inp = _native(inp)
    work_out = out
    inplace = not fresh and np.may_share_memory(inp, out)
    if not out.dtype.isnative:
        work_out = np.empty(out.shape, out.dtype.newbyteorder("="))
        inplace = False
    elif inplace and not (_addr(inp) == _addr(out) and inp.strides == out.strides
                          and inp.dtype.itemsize == out.dtype.itemsize):
        inp = inp.copy()                  # partial overlap: lines would read what others wrote
        inplace = False
    key = ("1d", inp.shape, inp.strides, inp.dtype, work_out.strides, work_out.dtype, w.tobytes(), axis, mode,
           origin, uniform, inplace) + _plan.signature()
    setup = _SETUPS.get(key)
    if setup is None:
        setup = _SETUPS.put(key, _setup_1d(inp, w, axis, work_out, mode, origin, uniform, inplace))
    _launch(setup, inp, scode, work_out, dcode, cval)
    if work_out is not out:
        out[...] = work_out
    return out


def _setup_1d(inp, w, axis, work_out, mode, origin, uniform, inplace):
    """The :class:`_Setup` of :func:`_corr1d_into` for this call signature."""
    k = w.shape[0]
    n = inp.shape[axis]
    s1 = k // 2
    if uniform:
        kind = 3
    elif k & 1 and np.all(np.abs(w[s1 + 1:] - w[:s1][::-1]) <= _EPS):
        kind = 1
    elif k & 1 and np.all(np.abs(w[s1 + 1:] + w[:s1][::-1]) <= _EPS):
        kind = 2
    else:
        kind = 0
    cdt = np.dtype(np.float32) if inp.dtype == np.float32 and work_out.dtype == np.float32 else np.dtype(np.float64)
    before = k // 2 + origin
    fmap = _index_map(n, before, k - 1 - before, mode)
    # dims: (outer..., inner, axis); the inner dim is the one read most cheaply across lines
    others = [d for d in range(inp.ndim) if d != axis]
    c, rows = 1, n
    if others:
        inner = min(others, key=lambda d: (abs(inp.strides[d]) if inp.shape[d] > 1 else 1 << 62))
        if inp.shape[inner] > 1 and (n == 1 or abs(inp.strides[inner]) < abs(inp.strides[axis])):
            c, rows = _tile(cdt, n, k, inp.shape[inner], inplace, uniform)
        others.remove(inner)
        others.append(inner)
    order = others + [axis]
    shape = np.array([inp.shape[d] for d in order], dtype=np.intp)
    istr = np.array([inp.strides[d] for d in order], dtype=np.intp)
    ostr = np.array([work_out.strides[d] for d in order], dtype=np.intp)
    parts = num_parts_for(inp.size * (2 if uniform else k), grain=1 << 16)
    stream = c > 1 and (uniform or inplace)       # the kernel's ring, saved edge rows and a cval row
    buf = ((2 * k + 1) * c + c) if stream else ((rows + k - 1) * c + rows * c)
    return _Setup("ndimage1d", f"{inp.shape} * {k} axis={axis} {mode}", cdt, parts, _K1[cdt],
                  (shape, istr, ostr, np.ascontiguousarray(w, dtype=cdt), kind, fmap, before),
                  lambda nt: (c, rows, inplace, nt), lambda nt: nt * buf * cdt.itemsize,
                  lambda nt: (("lines", c), ("rows", rows)))


def _corrnd_into(inp, w, out, mode, cval, origins):
    """``out = correlate(inp, w)`` (real arrays of any layout; ``w`` float64, ``w.ndim == inp.ndim``)."""
    scode = _code(inp, "input")
    dcode = _code(out, "output")
    _check_writeable(out)
    if out.size == 0:
        return out
    target = out
    inp = _native(inp)
    temporary = np.may_share_memory(inp, out) or not out.dtype.isnative
    if temporary:
        out = np.empty(out.shape, out.dtype.newbyteorder("="))    # scipy also filters into a temporary
    origins = list(origins)
    while inp.ndim < 2:                   # the kernel sweeps rows of the last axis, planes of the rest
        inp, out, w = inp[None], out[None], w[None]
        origins = [0] + origins
    key = ("nd", inp.shape, inp.strides, inp.dtype, out.strides, out.dtype, w.shape, w.tobytes(), tuple(origins),
           mode, target.shape) + _plan.signature()
    setup = _SETUPS.get(key)
    if setup is None:
        setup = _SETUPS.put(key, _setup_nd(inp, w, out, mode, origins, target.shape))
    _launch(setup, inp, scode, out, dcode, cval)
    if temporary:
        target[...] = out.reshape(target.shape)
    return target


def _setup_nd(inp, w, out, mode, origins, target_shape):
    """The :class:`_Setup` of :func:`_corrnd_into` for this call signature."""
    cdt = np.dtype(np.float32) if inp.dtype == np.float32 and out.dtype == np.float32 else np.dtype(np.float64)
    flat = np.ascontiguousarray(w).reshape(-1)
    taps = np.flatnonzero(np.abs(flat) > _EPS).astype(np.intp)
    befores = [k // 2 + o for k, o in zip(w.shape, origins)]
    maps = [_index_map(n, b, k - 1 - b, mode) for n, k, b in zip(inp.shape, w.shape, befores)]
    map_off = np.cumsum([0] + [len(m) for m in maps[:-1]]).astype(np.intp)
    parts = num_parts_for(inp.size * max(1, len(taps)), grain=1 << 16)
    ko = math.prod(w.shape[:-2])
    n, kh, kw = inp.shape[-1], w.shape[-2], w.shape[-1]
    L = n + kw - 1
    nrows = inp.size // n
    # input rows read in place when they hold the compute type contiguously and are at
    # least one kernel wide: only each row's edge strips are built (the boundary);
    # otherwise every row a segment needs is extended into the per-thread buffer
    direct = inp.dtype == cdt and inp.strides[-1] == cdt.itemsize and n >= kw
    width = 3 * (kw - 1) if direct else L      # left and right strips: see corrnd
    # output rows per segment: its buffer (the rows' strips or extended copies) within
    # ~256 KiB; per work item, runs of consecutive rows, about 8 per thread
    brows = max(1, (1 << 18) // max(1, ko * width * cdt.itemsize) - kh + 1)
    brows = min(brows, inp.shape[-2])
    ko_i, kr_i, kc_i = (a.astype(np.intp) for a in np.unravel_index(taps, (ko, kh, kw)))
    buf = ko * (brows + kh - 1) * width + ((kw - 1) * brows + n if direct else L + brows * L)

    def rows(nt):
        return -(-nrows // (8 * nt)) if nt > 1 else nrows
    return _Setup("ndimage", f"{target_shape} * {w.shape[-len(target_shape):] if target_shape else ()} {mode}",
                  cdt, parts, _KN[cdt],
                  (np.array(inp.shape, dtype=np.intp), np.array(inp.strides, dtype=np.intp),
                   np.array(out.strides, dtype=np.intp), np.array(w.shape, dtype=np.intp), ko_i, kr_i, kc_i,
                   np.ascontiguousarray(flat[taps], dtype=cdt), np.concatenate(maps), map_off,
                   np.array(befores, dtype=np.intp)),
                  lambda nt: (rows(nt), brows, direct, nt), lambda nt: nt * buf * cdt.itemsize,
                  lambda nt: (("rows", rows(nt)), ("segment", brows)))


# --------------------------------------------------------------------------- complex data

def _complex_via_real_components(func, input, weights, output, cval, **kwargs):
    """Complex correlation as real ones, as scipy computes it (same passes, same temporaries)."""
    complex_input = input.dtype.kind == "c"
    complex_weights = weights.dtype.kind == "c"
    if complex_input and complex_weights:
        func(input.real, weights.real, output=output.real, cval=np.real(cval), **kwargs)
        output.real -= func(input.imag, weights.imag, output=None, cval=np.imag(cval), **kwargs)
        func(input.real, weights.imag, output=output.imag, cval=np.real(cval), **kwargs)
        output.imag += func(input.imag, weights.real, output=None, cval=np.imag(cval), **kwargs)
    elif complex_input:
        func(input.real, weights, output=output.real, cval=np.real(cval), **kwargs)
        func(input.imag, weights, output=output.imag, cval=np.imag(cval), **kwargs)
    else:
        if np.iscomplexobj(cval):
            raise ValueError(f"cval={cval!r}: Cannot provide a complex-valued cval when the input is real.")
        func(input, weights.real, output=output.real, cval=cval, **kwargs)
        func(input, weights.imag, output=output.imag, cval=cval, **kwargs)
    return output


# --------------------------------------------------------------------------- public: correlations

def correlate1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """Calculate a 1-D correlation along the given axis (as ``scipy.ndimage.correlate1d``).

    ``output[i] = sum_j weights[j] * input[i + j - len(weights) // 2 - origin]`` along
    ``axis``, with the input extended beyond its edges by ``mode``.

    Parameters
    ----------
    input : array_like
        Input array (bool, integer, float32, float64 or complex).
    weights : array_like
        1-D sequence of numbers.
    axis : int, optional
        The axis of ``input`` along which to calculate. Default is -1.
    output : array or dtype, optional
        The array in which to place the output (written in place and returned), or
        the dtype of the returned array. By default an array of the input's dtype.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-constant', 'grid-mirror', 'grid-wrap'}
        How the input is extended beyond its boundaries. Default is 'reflect'.
    cval : scalar, optional
        Value to fill past edges of input if ``mode`` is 'constant'. Default is 0.0.
    origin : int, optional
        Shift of the filter centre, ``-(len(weights) // 2) <= origin <= (len(weights) - 1) // 2``.

    Returns
    -------
    output : ndarray

    Examples
    --------
    >>> from pyconv.ndimage import correlate1d
    >>> correlate1d([2, 8, 0, 4, 1, 9, 9, 0], weights=[1, 3])
    array([ 8, 26,  8, 12,  7, 28, 36,  9])
    """
    input = np.asarray(input)
    weights = np.asarray(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c":
            weights = weights.conj().astype(np.complex128, copy=False)
        output = _get_output(output, input, complex_output=True)
        return _complex_via_real_components(correlate1d, input, weights, output, cval,
                                            axis=axis, mode=mode, origin=origin)
    fresh = _fresh(output)
    output = _get_output(output, input)
    try:
        weights = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"weights must be a sequence of numbers: {e}") from None
    if weights.ndim != 1 or weights.shape[0] < 1:
        raise RuntimeError(f"no filter weights given: weights must be a non-empty 1-D sequence, got shape "
                           f"{weights.shape}")
    axis = _normalize_axis(axis, input.ndim)
    if _invalid_origin(origin, len(weights)):
        raise ValueError(f"Invalid origin; origin must satisfy -(len(weights) // 2) <= origin <= "
                         f"(len(weights)-1) // 2; got origin={origin!r} for {len(weights)} weights")
    origin = _index(origin, "origin")
    mode = _mode(mode)
    return _corr1d_into(input, weights, axis, output, mode, _real_cval(cval), origin, fresh=fresh)


def convolve1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """Calculate a 1-D convolution along the given axis (as ``scipy.ndimage.convolve1d``).

    The correlation with the reversed weights, the origin mirrored (and, for an even
    number of weights, moved by one so the centre matches scipy's).

    Parameters
    ----------
    input : array_like
        Input array (bool, integer, float32, float64 or complex).
    weights : array_like
        1-D sequence of numbers.
    axis : int, optional
        The axis of ``input`` along which to calculate. Default is -1.
    output : array or dtype, optional
        The array in which to place the output (written in place and returned), or
        the dtype of the returned array. By default an array of the input's dtype.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-constant', 'grid-mirror', 'grid-wrap'}
        How the input is extended beyond its boundaries. Default is 'reflect'.
    cval : scalar, optional
        Value to fill past edges of input if ``mode`` is 'constant'. Default is 0.0.
    origin : int, optional
        Shift of the filter centre, ``-(len(weights) // 2) <= origin <= (len(weights) - 1) // 2``.

    Returns
    -------
    output : ndarray

    Examples
    --------
    >>> from pyconv.ndimage import convolve1d
    >>> convolve1d([2, 8, 0, 4, 1, 9, 9, 0], weights=[1, 3])
    array([14, 24,  4, 13, 12, 36, 27,  0])
    """
    weights = np.asarray(weights)
    if weights.ndim != 1:
        raise RuntimeError(f"no filter weights given: weights must be a non-empty 1-D sequence, got shape "
                           f"{weights.shape}")
    weights = weights[::-1]
    origin = -origin
    if not weights.shape[0] & 1:
        origin -= 1
    if weights.dtype.kind == "c":
        weights = weights.conj()          # correlate1d conjugates again
    return correlate1d(input, weights, axis, output, mode, cval, origin)


def _correlate_or_convolve(input, weights, output, mode, cval, origin, convolution, axes):
    input = np.asarray(input)
    weights = np.asarray(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c" and not convolution:
            weights = weights.conj()      # as np.correlate: conjugate the weights, not the input
        output = _get_output(output, input, complex_output=True)
        return _complex_via_real_components(_correlate_or_convolve, input, weights, output, cval,
                                            mode=mode, origin=origin, convolution=convolution, axes=axes)
    axes = _check_axes(axes, input.ndim)
    try:
        weights = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"weights must be an array of numbers: {e}") from None
    if len(axes) < input.ndim:
        if weights.ndim != len(axes):
            raise RuntimeError(f"weights.ndim ({weights.ndim}) must match len(axes) ({len(axes)})")
        weights = np.expand_dims(weights, tuple(ax for ax in range(input.ndim) if ax not in axes))
    origins = _normalize_sequence(origin, len(axes), "origin")
    if len(axes) < input.ndim:
        full = [0] * input.ndim
        for o, ax in zip(origins, axes):
            full[ax] = o
        origins = full
    wshape = [k for k in weights.shape if k > 0]
    if len(wshape) != input.ndim:
        raise RuntimeError(f"weights.ndim ({len(wshape)}) must match len(axes) ({len(axes)})")
    if convolution:
        weights = weights[(slice(None, None, -1),) * weights.ndim]
        origins = [-o - (0 if k & 1 else 1) for o, k in zip(origins, weights.shape)]
    for o, k in zip(origins, wshape):
        if _invalid_origin(o, k):
            raise ValueError("Invalid origin; origin must satisfy -(weights.shape[k] // 2) <= origin[k] <= "
                             f"(weights.shape[k]-1) // 2; got origin={origin!r} for weights of shape "
                             f"{tuple(wshape)}")
    origins = [_index(o, "origin") for o in origins]
    output = _get_output(output, input)
    if not isinstance(mode, str) and isinstance(mode, Iterable):
        raise RuntimeError(f"mode={mode!r}: A sequence of modes is not supported")
    mode = _mode(mode)
    cval = _real_cval(cval)
    if input.ndim == 0:
        # scipy's 0-d case: the single tap, the weight times the value
        _corrnd_into(input.reshape(1), weights.reshape(1), output.reshape(1), mode, cval, [0])
        return output
    return _corrnd_into(input, weights, output, mode, cval, origins)


def correlate(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Multidimensional correlation (as ``scipy.ndimage.correlate``).

    ``output[i] = sum_j weights[j] * input[i + j - c]`` with the centre
    ``c = weights.shape // 2 + origin``, the input extended beyond its edges by ``mode``.

    Parameters
    ----------
    input : array_like
        Input array (bool, integer, float32, float64 or complex).
    weights : array_like
        Weights, same number of dims as ``input`` (or as ``len(axes)``).
    output : array or dtype, optional
        The array in which to place the output (written in place and returned), or
        the dtype of the returned array.
    mode : str, optional
        'reflect' (default), 'constant', 'nearest', 'mirror', 'wrap', 'grid-constant',
        'grid-mirror' or 'grid-wrap'.
    cval : scalar, optional
        Value past the edges for mode 'constant'. Default 0.0.
    origin : int or sequence of int, optional
        Shift of the centre per axis, ``-(k // 2) <= origin <= (k - 1) // 2``.
    axes : tuple of int or None, optional
        The axes to filter; ``weights`` then has ``len(axes)`` dims.

    Returns
    -------
    output : ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.ndimage import correlate
    >>> correlate(np.arange(9).reshape(3, 3), np.ones((2, 2)), mode="constant")
    array([[ 0,  1,  3],
           [ 3,  8, 12],
           [ 9, 20, 24]])
    """
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, False, axes)


def convolve(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Multidimensional convolution (as ``scipy.ndimage.convolve``).

    The correlation with the weights reversed on every axis, the origin mirrored
    (an even-sized axis centres at ``(k - 1) // 2 - origin`` of the original
    weights).

    Parameters
    ----------
    input : array_like
        Input array (bool, integer, float32, float64 or complex).
    weights : array_like
        Weights, same number of dims as ``input`` (or as ``len(axes)``).
    output : array or dtype, optional
        The array in which to place the output (written in place and returned), or
        the dtype of the returned array. By default an array of the input's dtype.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-constant', 'grid-mirror', 'grid-wrap'}
        How the input is extended beyond its boundaries. Default is 'reflect'.
    cval : scalar, optional
        Value to fill past edges of input if ``mode`` is 'constant'. Default is 0.0.
    origin : int or sequence of int, optional
        Shift of the centre per axis, ``-(k // 2) <= origin <= (k - 1) // 2``.
    axes : tuple of int or None, optional
        The axes to filter; ``weights`` then has ``len(axes)`` dims.

    Returns
    -------
    output : ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.ndimage import convolve
    >>> a = np.array([[1, 2, 0, 0], [5, 3, 0, 4], [0, 0, 0, 7], [9, 3, 0, 0]])
    >>> convolve(a, np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]]), mode="constant", cval=0.0)
    array([[11, 10,  7,  4],
           [10,  3, 11, 11],
           [15, 12, 14,  7],
           [12,  3,  7,  0]])
    """
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, True, axes)


# --------------------------------------------------------------------------- Gaussian

def _gaussian_kernel1d(sigma, order, radius):
    """The sampled Gaussian (``order`` 0) or its ``order``-th derivative on ``-radius..radius``,
    read-only: kept per (sigma and its type, order, radius), as computing them took 2.5 us of
    a small filter's pass."""
    try:
        return _gaussian_kernel1d_kept(sigma, order, radius)
    except TypeError:               # an unhashable sigma (a 0-d array)
        return _gaussian_kernel1d_kept.__wrapped__(sigma, order, radius)


@functools.lru_cache(maxsize=128, typed=True)
def _gaussian_kernel1d_kept(sigma, order, radius):
    """The normalised samples ``exp(-x**2 / (2 sigma**2)) / sum``; a derivative is the
    polynomial ``q(x)`` times them, ``q`` found by applying ``d/dx`` ``order`` times
    to ``q * exp(p)`` with ``p' = -x / sigma**2`` (same arithmetic as scipy, so the
    weights are scipy's bits)."""
    if order < 0:
        raise ValueError(f"order={order} must be non-negative")
    powers = np.arange(order + 1)
    sigma2 = sigma * sigma
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / sigma2 * x ** 2)
    phi = phi / phi.sum()
    if order == 0:
        phi.flags.writeable = False
        return phi
    q = np.zeros(order + 1)
    q[0] = 1
    deriv = np.diag(powers[1:], 1) + np.diag(np.ones(order) / -sigma2, -1)   # q -> q' + q p'
    for _ in range(order):
        q = deriv.dot(q)
    q = (x[:, None] ** powers).dot(q)
    w = q * phi
    w.flags.writeable = False
    return w


def _gauss_radius(sigma, truncate, radius):
    lw = int(truncate * float(sigma) + 0.5)
    if radius is not None:
        lw = radius
    if not isinstance(lw, numbers.Integral) or lw < 0:
        raise ValueError(f"Radius must be a nonnegative integer: radius={radius!r}, truncate={truncate!r}")
    return lw


def gaussian_filter1d(input, sigma, axis=-1, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0,
                      *, radius=None):
    """1-D Gaussian filter (as ``scipy.ndimage.gaussian_filter1d``).

    Parameters
    ----------
    input : array_like
    sigma : scalar
        Standard deviation of the Gaussian kernel.
    axis : int, optional
        The axis to filter. Default -1.
    order : int, optional
        0 smooths; a positive order correlates with that derivative of the Gaussian.
    output, mode, cval
        As :func:`correlate1d`.
    truncate : float, optional
        The kernel reaches ``int(truncate * sigma + 0.5)`` samples each side. Default 4.0.
    radius : None or int, optional
        The kernel's reach, overriding ``truncate``.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> from pyconv.ndimage import gaussian_filter1d
    >>> gaussian_filter1d([1.0, 2.0, 3.0, 4.0, 5.0], 1)
    array([1.42704095, 2.06782203, 3.        , 3.93217797, 4.57295905])
    """
    lw = _gauss_radius(sigma, truncate, radius)
    weights = _gaussian_kernel1d(sigma, order, lw)[::-1]
    return correlate1d(input, weights, axis, output, mode, cval, 0)


def gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0, *, radius=None,
                    axes=None):
    """Multidimensional Gaussian filter (as ``scipy.ndimage.gaussian_filter``).

    A chain of :func:`gaussian_filter1d` passes, one per axis, each written to
    ``output`` and read back from it (for integer outputs every pass rounds, as
    scipy's does).  This is the spatially separable convolution: the 2-D kernel
    ``outer(g, g)`` of ``k * k`` taps applied as two 1-D passes of ``k`` taps.

    Parameters
    ----------
    input : array_like
    sigma : scalar or sequence of scalars
        Standard deviation per axis (axes with ``sigma <= 1e-15`` are skipped).
    order : int or sequence of ints, optional
        Derivative order per axis. Default 0.
    output, mode, cval, truncate, radius
        As :func:`gaussian_filter1d`; ``mode`` and ``radius`` may be given per axis.
    axes : tuple of int or None, optional
        The axes to filter.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.ndimage import gaussian_filter
    >>> gaussian_filter(np.arange(50, step=2).reshape((5, 5)), sigma=1)
    array([[ 4,  6,  8,  9, 11],
           [10, 12, 14, 15, 17],
           [20, 22, 24, 25, 27],
           [29, 31, 33, 34, 36],
           [35, 37, 39, 40, 42]])
    """
    input = np.asarray(input)
    output = _get_output(output, input)
    axes = _check_axes(axes, input.ndim)
    n = len(axes)
    orders = _normalize_sequence(order, n, "order")
    sigmas = _normalize_sequence(sigma, n, "sigma")
    modes = _normalize_sequence(mode, n, "mode")
    radii = _normalize_sequence(radius, n, "radius")
    passes = [(axes[i], sigmas[i], orders[i], modes[i], radii[i]) for i in range(n) if sigmas[i] > 1e-15]
    if not passes:
        output[...] = input[...]
        return output
    for axis, s, o, m, r in passes:
        gaussian_filter1d(input, s, axis, o, output, m, cval, truncate, radius=r)
        input = output
    return output


# --------------------------------------------------------------------------- uniform

@functools.lru_cache(maxsize=64)
def _box(size):
    """``size`` ones (read-only: shared by the calls of that size; the running sum reads
    only their count)."""
    w = np.ones(size)
    w.flags.writeable = False
    return w


def uniform_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """1-D uniform (box, moving-average) filter (as ``scipy.ndimage.uniform_filter1d``).

    A running mean of ``size`` samples (scipy's running sum, same rounding).

    Parameters
    ----------
    input : array_like
    size : int
        Length of the uniform filter.
    axis, output, mode, cval, origin
        As :func:`correlate1d`.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> from pyconv.ndimage import uniform_filter1d
    >>> uniform_filter1d([2, 8, 0, 4, 1, 9, 9, 0], size=3)
    array([4, 3, 4, 1, 4, 6, 6, 3])
    """
    input = np.asarray(input)
    axis = _normalize_axis(axis, input.ndim)
    if size < 1:
        raise RuntimeError(f"incorrect filter size: size={size!r} must be >= 1")
    output = _get_output(output, input, complex_output=input.dtype.kind == "c")
    return _uniform_pass(input, size, axis, output, mode, cval, origin)


def _uniform_pass(input, size, axis, output, mode, cval, origin, fresh=False):
    """:func:`uniform_filter1d` once ``input`` (an array), ``axis`` (non-negative), ``size``
    (>= 1) and ``output`` are settled: the checks of the rest, then the running sum
    (:func:`uniform_filter`'s passes call it directly)."""
    if size // 2 + origin < 0 or size // 2 + origin >= size:
        raise ValueError(f"invalid origin: origin={origin!r} must satisfy -(size // 2) <= origin <= "
                         f"(size - 1) // 2 for size={size!r}")
    size = _index(size, "size")
    origin = _index(origin, "origin")
    mode = _mode(mode)
    w = _box(size)
    if input.dtype.kind != "c":
        return _corr1d_into(input, w, axis, output, mode, _real_cval(cval), origin, uniform=True, fresh=fresh)
    _corr1d_into(input.real, w, axis, output.real, mode, _real_cval(np.real(cval)), origin, uniform=True, fresh=fresh)
    _corr1d_into(input.imag, w, axis, output.imag, mode, _real_cval(np.imag(cval)), origin, uniform=True, fresh=fresh)
    return output


def uniform_filter(input, size=3, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Multidimensional uniform filter (as ``scipy.ndimage.uniform_filter``).

    A chain of :func:`uniform_filter1d` passes (axes with ``size <= 1`` are skipped).

    Parameters
    ----------
    input : array_like
    size : int or sequence of ints
        Box size per axis. Default 3.
    output, mode, cval, origin
        As :func:`uniform_filter1d`; ``mode`` and ``origin`` may be given per axis.
    axes : tuple of int or None, optional

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.ndimage import uniform_filter
    >>> uniform_filter(np.arange(9.0).reshape(3, 3), size=3, mode="nearest")
    array([[1.33333333, 2.        , 2.66666667],
           [3.33333333, 4.        , 4.66666667],
           [5.33333333, 6.        , 6.66666667]])
    """
    input = np.asarray(input)
    fresh = _fresh(output)
    output = _get_output(output, input, complex_output=input.dtype.kind == "c")
    axes = _check_axes(axes, input.ndim)
    n = len(axes)
    sizes = _normalize_sequence(size, n, "size")
    origins = _normalize_sequence(origin, n, "origin")
    modes = _normalize_sequence(mode, n, "mode")
    passes = [(axes[i], sizes[i], origins[i], modes[i]) for i in range(n) if sizes[i] > 1]
    if not passes:
        output[...] = input[...]
        return output
    for axis, s, o, m in passes:
        _uniform_pass(input, int(s), axis, output, m, cval, o, fresh)
        input, fresh = output, False
    return output


# --------------------------------------------------------------------------- derivatives

def _weights(*w):
    a = np.array(w, dtype=np.float64)
    a.flags.writeable = False
    return a


_DERIVATIVE, _SOBEL_SMOOTH, _PREWITT_SMOOTH = _weights(-1, 0, 1), _weights(1, 2, 1), _weights(1, 1, 1)


def _edge(input, axis, output, mode, cval, smooth):
    """The derivative ``[-1, 0, 1]`` along ``axis``, then ``smooth`` along every other axis in
    place (sobel, prewitt).  Real arrays take the passes without correlate1d's checks of
    arguments settled here (2-3 us a pass of a small image)."""
    input = np.asarray(input)
    axis = _normalize_axis(axis, input.ndim)
    fresh = _fresh(output)
    output = _get_output(output, input)
    modes = _normalize_sequence(mode, input.ndim, "mode")
    real = input.dtype.kind != "c" and output.dtype.kind != "c"
    real_cval = _real_cval(cval) if real else None
    src, w = input, _DERIVATIVE
    for ax in [axis] + [a for a in range(input.ndim) if a != axis]:
        if real:
            _corr1d_into(src, w, ax, output, _mode(modes[ax]), real_cval, 0, fresh=fresh)
        else:
            correlate1d(src, w, ax, output, modes[ax], cval, 0)
        src, w, fresh = output, smooth, False
    return output


def sobel(input, axis=-1, output=None, mode="reflect", cval=0.0):
    """Sobel filter (as ``scipy.ndimage.sobel``): the derivative ``[-1, 0, 1]`` along
    ``axis`` and the smoothing ``[1, 2, 1]`` along every other axis, as 1-D passes.

    Parameters
    ----------
    input : array_like
    axis : int, optional
        The derivative's axis. Default -1.
    output, mode, cval
        As :func:`correlate1d`; ``mode`` may be given per axis.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.ndimage import sobel
    >>> sobel(np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]))
    array([[0, 4, 4, 0],
           [0, 4, 4, 0],
           [0, 4, 4, 0]])
    """
    return _edge(input, axis, output, mode, cval, _SOBEL_SMOOTH)


def prewitt(input, axis=-1, output=None, mode="reflect", cval=0.0):
    """Prewitt filter (as ``scipy.ndimage.prewitt``): ``[-1, 0, 1]`` along ``axis``,
    the box ``[1, 1, 1]`` along every other axis.

    Parameters
    ----------
    input : array_like
    axis : int, optional
        The derivative's axis. Default -1.
    output, mode, cval
        As :func:`correlate1d`; ``mode`` may be given per axis.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.ndimage import prewitt
    >>> prewitt(np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]))
    array([[0, 3, 3, 0],
           [0, 3, 3, 0],
           [0, 3, 3, 0]])
    """
    return _edge(input, axis, output, mode, cval, _PREWITT_SMOOTH)


def _generic_laplace(input, derivative2, output, mode, cval, axes, extra=()):
    input = np.asarray(input)
    output = _get_output(output, input)
    axes = _check_axes(axes, input.ndim)
    if not axes:
        output[...] = input[...]
        return output
    modes = _normalize_sequence(mode, len(axes), "mode")
    derivative2(input, axes[0], output, modes[0], cval, *extra)
    for i in range(1, len(axes)):
        output += derivative2(input, axes[i], output.dtype, modes[i], cval, *extra)
    return output


def laplace(input, output=None, mode="reflect", cval=0.0, *, axes=None):
    """N-d Laplace filter with the second differences ``[1, -2, 1]`` (as ``scipy.ndimage.laplace``).

    One 1-D pass per axis, summed in the output's dtype.

    Parameters
    ----------
    input : array_like
    output, mode, cval
        As :func:`correlate1d`; ``mode`` may be given per axis.
    axes : tuple of int or None, optional

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.ndimage import laplace
    >>> laplace(np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]]), mode="constant")
    array([[ 0,  1,  0],
           [ 1, -4,  1],
           [ 0,  1,  0]])
    """
    def derivative2(x, axis, out, m, cv):
        return correlate1d(x, [1, -2, 1], axis, out, m, cv, 0)
    return _generic_laplace(input, derivative2, output, mode, cval, axes)


def gaussian_laplace(input, sigma, output=None, mode="reflect", cval=0.0, *, axes=None, **kwargs):
    """Laplace of Gaussian (as ``scipy.ndimage.gaussian_laplace``): per axis, the
    Gaussian's second derivative along it (smoothing along the others), summed.

    Parameters
    ----------
    input : array_like
    sigma : scalar or sequence of scalars
    output, mode, cval
        As :func:`gaussian_filter`.
    axes : tuple of int or None, optional
    **kwargs
        ``truncate`` and ``radius``, passed to :func:`gaussian_filter`.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.ndimage import gaussian_laplace
    >>> gaussian_laplace(np.eye(3), 1.0).round(3)
    array([[-0.385,  0.037,  0.348],
           [ 0.037, -0.073,  0.037],
           [ 0.348,  0.037, -0.385]])
    """
    input = np.asarray(input)

    def derivative2(x, axis, out, m, cv, sig):
        order = [0] * x.ndim
        order[axis] = 2
        return gaussian_filter(x, sig, order, out, m, cv, **kwargs)

    axes = _check_axes(axes, input.ndim)
    sigma = _normalize_sequence(sigma, len(axes), "sigma")
    if len(axes) < input.ndim:
        full = [0] * input.ndim
        for s, ax in zip(sigma, axes):
            full[ax] = s
        sigma = full
    return _generic_laplace(input, derivative2, output, mode, cval, axes, (sigma,))


def gaussian_gradient_magnitude(input, sigma, output=None, mode="reflect", cval=0.0, *, axes=None, **kwargs):
    """Gradient magnitude with Gaussian derivatives (as ``scipy.ndimage.gaussian_gradient_magnitude``):
    ``sqrt(sum_axis (gaussian derivative along axis)**2)``, in the output's dtype.

    Parameters
    ----------
    input : array_like
    sigma : scalar or sequence of scalars
    output, mode, cval
        As :func:`gaussian_filter`.
    axes : tuple of int or None, optional
    **kwargs
        ``truncate`` and ``radius``, passed to :func:`gaussian_filter`.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.ndimage import gaussian_gradient_magnitude
    >>> gaussian_gradient_magnitude(np.array([0.0, 0, 1, 1]), 1.0).round(3)
    array([0.108, 0.363, 0.363, 0.108])
    """
    input = np.asarray(input)
    output = _get_output(output, input)
    axes = _check_axes(axes, input.ndim)
    if not axes:
        output[...] = input[...]
        return output
    modes = _normalize_sequence(mode, len(axes), "mode")

    def derivative(x, axis, out, m):
        order = [0] * x.ndim
        order[axis] = 1
        return gaussian_filter(x, sigma, order, out, m, cval, **kwargs)

    derivative(input, axes[0], output, modes[0])
    np.multiply(output, output, output)
    for i in range(1, len(axes)):
        tmp = derivative(input, axes[i], output.dtype, modes[i])
        np.multiply(tmp, tmp, tmp)
        output += tmp
    np.sqrt(output, output, casting="unsafe")
    return output


# dask arrays go to pyconv.dask.ndimage (lazy result), never silently into memory
from pyconv._dask_dispatch import route_dask_inputs as _route_dask  # noqa: E402
_route_dask(globals(), __all__, "ndimage")
