"""pyconv's convolutions on dask arrays: lazy, chunk by chunk, out of core or on a cluster.

Same names and arguments as the in-memory functions of :mod:`pyconv.signal`,
:mod:`pyconv.nn` and :mod:`pyconv.grad`.  The large operand (``in1``, ``input``,
and ``grad_output``/``input`` of a backward) is a ``dask.array.Array`` of any
chunking; kernels, weights and biases are in memory (a dask kernel with one chunk
is computed, one with more chunks is refused).  Every function returns a lazy
``dask.array.Array`` with the right shape, chunks, dtype and meta, which computes
to what the in-memory function returns on the computed operands.

How a chunk is computed
-----------------------
Each output chunk reads the input region its outputs depend on: its own input
chunk plus a *halo* from the neighbouring chunks, of a depth derived from the
kernel, the mode (or padding), the stride and the dilation.  Where that region
leaves the array, it is extended as the in-memory function extends it (zeros;
``fillvalue``; periodic for 'wrap'/'circular'; mirrored for 'symm', 'reflect';
the edge sample for 'replicate') -- however far it reaches, as the in-memory
functions do when the kernel is larger than the input.  The chunk then runs the
in-memory function with no padding ('valid' mode), so the arithmetic is the
in-memory function's own.  Halo slices are cut where the neighbour lives (only
the slice travels between workers), and chunks smaller than the halo are merged
first.  Output chunks follow the input chunks: 'same' keeps them, 'full' grows
the last chunk of each axis and 'valid' shrinks it; strided layers divide them.

Threads: a task runs pyconv with ``k`` threads, ``k`` = the CPUs this process
may use divided by the tasks that run at once in it (the worker's ``nthreads``
under dask.distributed, the pool size under the threaded scheduler, 1 under the
synchronous one), capped by :func:`pyconv.get_num_threads` of the process (which
honours ``OMP_NUM_THREADS``; dask.distributed's nanny sets it to 1 in its
workers).  So a worker with 2 threads on 2 cores runs each task on 1 thread.

dask is imported when a function of this module is first called.
"""
import functools
import math
import operator
import sys
import threading

import numpy as np

import pyconv
from pyconv import arithmetic as _arith
from pyconv._utils import _available_cpus, check_choice

__all__ = ["convolve", "correlate", "convolve2d", "correlate2d", "fftconvolve", "oaconvolve",
           "sepconvolve2d",
           "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "depthwise_conv2d", "separable_conv2d", "pointwise_conv2d",
           "conv1d_backward", "conv2d_backward", "conv3d_backward",
           "task_threads"]


def _da():
    try:
        import dask.array as da
    except ImportError:   # pragma: no cover - exercised only without the extra
        raise ImportError("pyconv.dask needs dask: pip install 'pyconv[dask]' "
                          "(dask[array] and distributed)") from None
    return da


# --------------------------------------------------------------------------- threads in tasks

def task_threads():
    """Threads a pyconv call inside the current dask task gets.

    The CPUs this process may use divided by the tasks that can run at once in
    it, at least 1, at most :func:`pyconv.get_num_threads`.  Outside a worker and
    on the main thread (dask's synchronous scheduler) that is the process's count.

    Examples
    --------
    >>> import pyconv.dask
    >>> 1 <= pyconv.dask.task_threads() <= pyconv.get_num_threads()
    True
    """
    slots = None
    if "distributed" in sys.modules:
        try:
            worker = sys.modules["distributed"].get_worker()
        except ValueError:        # not inside a distributed worker
            worker = None
        if worker is not None:
            state = getattr(worker, "state", None)
            slots = getattr(state, "nthreads", None) or getattr(worker, "nthreads", 1)
    if slots is None:
        if threading.current_thread() is threading.main_thread():
            slots = 1                 # synchronous scheduler: one task at a time
        else:                         # threaded scheduler: its pool runs this many at once
            import dask
            import dask.system
            slots = dask.config.get("num_workers", None) or dask.system.CPU_COUNT
    return max(1, min(pyconv.get_num_threads(), _available_cpus() // max(1, int(slots))))


# --------------------------------------------------------------------------- operands

def _big(x, name):
    """The large operand as a dask array (an in-memory array becomes one)."""
    da = _da()
    if isinstance(x, da.Array):
        return x
    from dask import is_dask_collection
    if is_dask_collection(x):
        raise TypeError(f"{name} must be a dask.array.Array (or an in-memory array); got {type(x).__name__}")
    return da.asarray(np.asarray(x))


def _small(x, name):
    """A kernel/weight/bias in memory: a one-chunk dask array is computed, more chunks refused."""
    if x is None:
        return None
    if hasattr(type(x), "__dask_graph__"):
        from dask import is_dask_collection
        if is_dask_collection(x):
            nparts = getattr(x, "npartitions", None)
            if nparts != 1:
                raise ValueError(
                    f"{name} is a dask collection with {nparts} chunks: kernels and weights must fit "
                    f"in memory; pass a numpy array or one chunk ({name}.rechunk(-1))")
            x = x.compute()
    return x


def _meta(ndim, dtype):
    return np.empty((0,) * ndim, dtype=dtype)


# --------------------------------------------------------------------------- the halo engine

class _Lit:
    """Literal payload in a task (never parsed by dask as a key or a task)."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class _Fill:
    """A region outside the array filled with the boundary's constant."""
    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = shape


class _Axis:
    """How one axis of the output reads the input.

    ``out_chunks``: the output chunk sizes; ``ranges``: per output chunk the
    input positions ``[p0, p1)`` it reads (may leave ``[0, n)``); ``kind``: how
    positions outside are read ('fill', 'wrap', 'symm', 'reflect', 'edge'; 'none'
    when they never are).
    """
    __slots__ = ("out_chunks", "ranges", "kind")

    def __init__(self, out_chunks, ranges, kind="none"):
        self.out_chunks = tuple(int(c) for c in out_chunks)
        self.ranges = [(int(a), int(b)) for a, b in ranges]
        self.kind = kind


def _blockwise_axis(chunks):
    """Output chunk j reads exactly input chunk j."""
    starts = np.cumsum((0,) + tuple(chunks))
    return _Axis(chunks, zip(starts[:-1], starts[1:]))


def _source_index(p, n, kind):
    """Input index read at extended positions ``p`` (-1: the fill constant)."""
    if kind in ("fill", "none"):
        return np.where((p >= 0) & (p < n), p, -1)
    if kind == "wrap":
        return p % n
    if kind == "symm":                   # period 2n, the edge sample repeated (scipy 'symm', numpy 'symmetric')
        q = p % (2 * n)
        return np.where(q >= n, 2 * n - 1 - q, q)
    if kind == "reflect":                # period 2n-2, the edge sample not repeated (torch/numpy 'reflect')
        if n == 1:
            return np.zeros_like(p)
        q = p % (2 * n - 2)
        return np.where(q >= n, 2 * n - 2 - q, q)
    if kind == "edge":                   # torch 'replicate', numpy 'edge'
        return np.clip(p, 0, n - 1)
    raise AssertionError(kind)


def _as_indexer(loc):
    """A slice where the indices run by +1 or -1 (no copy), else the index array."""
    if len(loc) == 1:
        return slice(int(loc[0]), int(loc[0]) + 1)
    d = np.diff(loc)
    if (d == 1).all():
        return slice(int(loc[0]), int(loc[-1]) + 1)
    if (d == -1).all():
        stop = int(loc[-1]) - 1
        return slice(int(loc[0]), None if stop < 0 else stop, -1)
    return loc


def _segments(p0, p1, n, kind, starts):
    """Split the positions [p0, p1) into runs read from one input chunk (or the fill)."""
    p = np.arange(p0, p1)
    q = _source_index(p, n, kind) if n else np.full(p.shape, -1)
    blk = np.where(q >= 0, np.searchsorted(starts, q, side="right") - 1, -1)
    edges = [0, *(np.flatnonzero(np.diff(blk)) + 1).tolist(), len(p)]
    segs = []
    for a, b in zip(edges[:-1], edges[1:]):
        if blk[a] < 0:
            segs.append((-1, b - a))
        else:
            segs.append((int(blk[a]), _as_indexer(q[a:b] - starts[blk[a]])))
    return segs


def _take(block, index):
    """``block`` read at the per-axis ``index`` (slices first, then index arrays)."""
    index = index.value
    out = block[tuple(i if isinstance(i, slice) else slice(None) for i in index)]
    for d, i in enumerate(index):
        if not isinstance(i, slice):
            out = np.take(out, i, axis=d)
    return out


def _assemble(nested, fill):
    """The block from its nested list of pieces (depth = ndim), fill regions made here."""
    def make(node):
        if isinstance(node, list):
            return [make(c) for c in node]
        if isinstance(node, _Fill):
            return np.full(node.shape, fill)
        return node

    node = nested
    while isinstance(node, list) and len(node) == 1:
        node = node[0]
    if not isinstance(node, list):            # one piece: no copy
        return make(node)
    return np.block(make(nested))


def _run_block(func, lit, nested, fill, *consts):
    """One output chunk: assemble its input, run ``func`` on the task's share of threads."""
    block = _assemble(nested, fill.value)
    with pyconv.threads(task_threads()):
        return func(block, lit.value, *consts)


def _halo_map(x, func, axes, dtype, name, block_args=None, consts=(), fill=0):
    """Apply ``func(block, args, *consts)`` per output chunk, reading the regions ``axes`` describe.

    ``axes``: one :class:`_Axis` per axis of ``x`` (the output has as many axes).
    ``block_args(j)`` gives the literal per-block arguments of output chunk ``j``
    (default: ``j``); ``consts`` are in-memory objects shared by every task (put in
    the graph once); ``fill`` is the constant of 'fill' regions (a numpy scalar).
    """
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
    da = _da()
    token = tokenize(x, [(a.out_chunks, a.ranges, a.kind) for a in axes], func, dtype, consts,
                     None if block_args is None else [block_args(j) for j in np.ndindex(
                         *[len(a.out_chunks) for a in axes])], fill)
    out_name = f"pyconv-{name}-{token}"
    piece_name = f"pyconv-{name}-halo-{token}"
    const_keys = []
    layer = {}
    for i, c in enumerate(consts):
        key = (f"pyconv-{name}-const{i}-{token}",)
        layer[key] = c
        const_keys.append(key)
    fill = np.asarray(fill)
    per_axis = []
    for d, ax in enumerate(axes):
        starts = np.cumsum((0,) + x.chunks[d])
        per_axis.append([_segments(p0, p1, x.shape[d], ax.kind, starts) for p0, p1 in ax.ranges])
    for j in np.ndindex(*[len(a.out_chunks) for a in axes]):
        segs = [per_axis[d][jd] for d, jd in enumerate(j)]
        counter = [0]

        def leaf(combo):
            shape = []
            src = []
            index = []
            for d, (b, idx) in enumerate(combo):
                if b < 0:
                    shape.append(idx)
                else:
                    shape.append(len(range(*idx.indices(x.chunks[d][b]))) if isinstance(idx, slice)
                                 else len(idx))
                src.append(b)
                index.append(idx)
            if min(src) < 0:
                return _Fill(tuple(shape))
            whole = all(isinstance(i, slice) and i.indices(x.chunks[d][b]) == (0, x.chunks[d][b], 1)
                        for d, (b, i) in enumerate(zip(src, index)))
            if whole:
                return (x.name, *src)
            key = (piece_name, *j, counter[0])
            counter[0] += 1
            layer[key] = (_take, (x.name, *src), _Lit(tuple(index)))
            return key

        def nest(d, prefix):
            if d == len(segs):
                return leaf(prefix)
            return [nest(d + 1, prefix + [s]) for s in segs[d]]

        args = j if block_args is None else block_args(j)
        layer[(out_name, *j)] = (_run_block, func, _Lit(args), nest(0, []), _Lit(fill), *const_keys)
    graph = HighLevelGraph.from_collections(out_name, layer, dependencies=[x])
    chunks = tuple(a.out_chunks for a in axes)
    return da.Array(graph, out_name, chunks, meta=_meta(len(axes), dtype))


def _min_chunks(x, depths):
    """``x`` rechunked so that no chunk along an axis is smaller than its halo depth there."""
    from dask.array.overlap import ensure_minimum_chunksize
    chunks = []
    for d, h in enumerate(depths):
        c = x.chunks[d]
        if h > 0 and len(c) > 1 and min(c) < h:
            c = ensure_minimum_chunksize(min(h, x.shape[d]), c)
        chunks.append(c)
    chunks = tuple(chunks)
    return x if chunks == x.chunks else x.rechunk(chunks)


def _out_bounds(in_chunks, m, position):
    """Output chunk sizes: input chunk boundaries mapped by ``position``, clipped to [0, m]."""
    starts = np.cumsum((0,) + tuple(in_chunks))[1:-1]
    cuts = sorted({min(max(int(position(int(b))), 0), m) for b in starts} | {0, m})
    sizes = np.diff(cuts)
    return tuple(int(s) for s in sizes if s > 0) or (m,)


def _ranges(out_chunks, reach):
    """[p0, p1) input ranges of each output chunk; ``reach(o0, o1)`` gives them."""
    starts = np.cumsum((0,) + tuple(out_chunks))
    return [reach(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]


def _whole(func, args, kwargs, probe, name):
    """The in-memory function on the computed operands in one task (inputs that cannot be split:
    empty or 0-d arrays, 'valid' mode whose kernel is larger than in1)."""
    import dask
    da = _da()
    result = dask.delayed(_call_with_threads, pure=True)(func, args, kwargs,
                                                         dask_key_name=f"pyconv-{name}-{dask.base.tokenize(args, kwargs)}")
    return da.from_delayed(result, probe.shape, dtype=probe.dtype, meta=_meta(probe.ndim, probe.dtype))


def _call_with_threads(func, args, kwargs):
    with pyconv.threads(task_threads()):
        return func(*args, **kwargs)


# --------------------------------------------------------------------------- signal

def _conv_geometry(n, k, mode, same_start):
    """(first input offset ``A``, output size) of a convolution along one axis:
    output ``o`` reads input positions ``o - A .. o - A + k - 1``."""
    if mode == "full":
        start, m = 0, n + k - 1
    elif mode == "same":
        start, m = same_start(k), n
    else:
        start, m = k - 1, n - k + 1
    return k - 1 - start, m


def _conv_axis(chunks, n, k, mode, same_start, kind):
    a, m = _conv_geometry(n, k, mode, same_start)
    out = _out_bounds(chunks, m, lambda b: b)
    return _Axis(out, _ranges(out, lambda o0, o1: (o0 - a, o1 - a + k - 1)), kind)


def _conv_same(k):
    return (k - 1) // 2


def _corr2d_same(k):
    return k // 2


def _valid_block(fn, kwargs, block, args, *kernels):
    return fn(block, *kernels, mode="valid", **kwargs)


def _signal_map(fn, name, x, kernels, kshape, mode, kwargs, same_start, kind="fill", fill=0,
                probe_kwargs=None):
    """Shared body of the signal functions whose kernel spans every axis of ``x``."""
    from pyconv._utils import sig_valid_swap
    mode = check_choice(mode, "mode", ("full", "same", "valid"))
    probe_in = np.zeros(tuple(max(1, s) for s in kshape), dtype=x.dtype)
    probe = fn(probe_in, *kernels, mode=mode, **(probe_kwargs or kwargs))   # validates the arguments
    if x.ndim != len(kshape):
        raise ValueError(f"in1 and in2 should have the same dimensionality; got in1.ndim={x.ndim} "
                         f"and a kernel with {len(kshape)} dims")
    if x.ndim == 0 or x.size == 0 or math.prod(kshape) == 0 or sig_valid_swap(mode, x.shape, kshape):
        shape_probe = fn(np.broadcast_to(np.zeros((), x.dtype), x.shape), *kernels, mode=mode, **kwargs)
        return _whole(fn, (x,) + tuple(kernels), dict(mode=mode, **kwargs), shape_probe, name)
    fill = np.asarray(fill, dtype=np.result_type(x.dtype, np.asarray(fill).dtype)
                      if kind == "fill" else x.dtype)
    x = _min_chunks(x, [k - 1 for k in kshape])
    axes = [_conv_axis(x.chunks[d], x.shape[d], kshape[d], mode, same_start, kind) for d in range(x.ndim)]
    return _halo_map(x, functools.partial(_valid_block, fn, kwargs), axes, probe.dtype, name,
                     block_args=lambda j: None, consts=tuple(kernels), fill=fill)


def _kernel(in2, name="in2"):
    from pyconv._utils import sig_array
    return sig_array(_small(in2, name), name)


def convolve(in1, in2, mode="full", method="auto"):
    """:func:`pyconv.signal.convolve` of a dask array ``in1`` with an in-memory ``in2`` (lazy).

    Bitwise equal to the in-memory call on the computed ``in1`` with
    ``method='direct'``; with 'fft' (or 'auto', which chooses per chunk) within
    the FFT's rounding.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.arange(10.0, chunks=4)
    >>> y = pyconv.dask.convolve(x, np.array([1.0, 1.0, 1.0]), mode='same', method='direct')
    >>> y.chunks
    ((4, 4, 2),)
    >>> y.compute()
    array([ 1.,  3.,  6.,  9., 12., 15., 18., 21., 24., 17.])
    """
    x, k = _big(in1, "in1"), _kernel(in2)
    return _signal_map(pyconv.signal.convolve, "convolve", x, (k,), k.shape, mode,
                       {"method": method}, _conv_same)


def correlate(in1, in2, mode="full", method="auto"):
    """:func:`pyconv.signal.correlate` of a dask array ``in1`` with an in-memory ``in2`` (lazy).

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.arange(6.0, chunks=2)
    >>> pyconv.dask.correlate(x, np.array([1.0, -1.0]), mode='valid').compute()
    array([-1., -1., -1., -1., -1.])
    """
    x, k = _big(in1, "in1"), _kernel(in2)
    return _signal_map(pyconv.signal.correlate, "correlate", x, (k,), k.shape, mode,
                       {"method": method}, _conv_same)


def _boundary_2d(fn, name, in1, in2, mode, boundary, fillvalue, same_start):
    from pyconv._utils import sig_boundary, sig_fillvalue
    x, k = _big(in1, "in1"), _kernel(in2)
    kind = sig_boundary(boundary)
    fv = 0
    if kind == "fill":
        fv = sig_fillvalue(fillvalue, np.result_type(x.dtype, k.dtype))
    return _signal_map(fn, name, x, (k,), k.shape, mode, {}, same_start, kind=kind, fill=fv,
                       probe_kwargs={"boundary": boundary, "fillvalue": fillvalue})


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """:func:`pyconv.signal.convolve2d` of a 2-D dask array ``in1`` (lazy).

    The boundary ('fill' with ``fillvalue``, 'wrap', 'symm') is applied at the
    edges of the whole array, exactly as the in-memory function does.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.eye(4), chunks=2)
    >>> pyconv.dask.convolve2d(x, np.ones((1, 2)), mode='same', boundary='wrap').compute()
    array([[1., 0., 0., 1.],
           [1., 1., 0., 0.],
           [0., 1., 1., 0.],
           [0., 0., 1., 1.]])
    """
    return _boundary_2d(pyconv.signal.convolve2d, "convolve2d", in1, in2, mode, boundary, fillvalue,
                        _conv_same)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """:func:`pyconv.signal.correlate2d` of a 2-D dask array ``in1`` (lazy).

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.arange(9).reshape(3, 3), chunks=2)
    >>> pyconv.dask.correlate2d(x, np.array([[1, -1]]), mode='valid').compute()
    array([[-1, -1],
           [-1, -1],
           [-1, -1]])
    """
    return _boundary_2d(pyconv.signal.correlate2d, "correlate2d", in1, in2, mode, boundary, fillvalue,
                        _corr2d_same)


def sepconvolve2d(in1, col, row, mode="full"):
    """:func:`pyconv.signal.sepconvolve2d` of a 2-D dask array ``in1`` (lazy).

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.arange(16.).reshape(4, 4), chunks=2)
    >>> pyconv.dask.sepconvolve2d(x, [1, 2, 1], [1, 0, -1], mode='valid').compute()
    array([[8., 8.],
           [8., 8.]])
    """
    from pyconv._utils import sig_array
    x = _big(in1, "in1")
    col = sig_array(_small(col, "col"), "col")
    row = sig_array(_small(row, "row"), "row")
    if col.ndim != 1 or row.ndim != 1:
        pyconv.signal.sepconvolve2d(np.zeros((1, 1), x.dtype), col, row, mode)   # its own error
    return _signal_map(pyconv.signal.sepconvolve2d, "sepconvolve2d", x, (col, row), (col.size, row.size),
                       mode, {}, _conv_same)


def _fft_axes(ndim, axes):
    """The normalised, sorted convolution axes (the in-memory probe has validated them)."""
    if axes is None:
        return list(range(ndim))
    if np.ndim(axes) == 0:
        axes = [axes]
    return sorted({operator.index(a) % ndim for a in axes})


def _kernel_slice(fn, kwargs, block, args, kern):
    """fft/oa block: the kernel sliced along the non-convolved axes it does not broadcast."""
    if args is not None:
        kern = kern[tuple(slice(a, b) for a, b in args)]
    return fn(block, kern, mode="valid", **kwargs)


def _fft_like(fn, name, in1, in2, mode, axes):
    from pyconv._utils import sig_valid_swap
    x, k = _big(in1, "in1"), _kernel(in2)
    mode = check_choice(mode, "mode", ("full", "same", "valid"))
    if x.ndim != k.ndim or x.ndim == 0 or x.size == 0 or k.size == 0:
        probe_shape = np.broadcast_to(np.zeros((), x.dtype), x.shape)
        shape_probe = fn(probe_shape, k, mode=mode, axes=axes)
        return _whole(fn, (x, k), dict(mode=mode, axes=axes), shape_probe, name)
    ax = _fft_axes(x.ndim, axes) if axes is not None else None
    # validate axes and dtypes on a small operand of the same broadcasting
    probe_in = np.zeros(tuple(max(1, k.shape[d]) if (ax is None or d in ax) else
                              (x.shape[d] if x.shape[d] == k.shape[d] else 1) for d in range(x.ndim)),
                        dtype=x.dtype)
    for d in range(x.ndim):
        if (ax is not None and d not in ax) and x.shape[d] != k.shape[d] and 1 not in (x.shape[d], k.shape[d]):
            fn(np.zeros(tuple(x.shape[d] if e == d else 1 for e in range(x.ndim)), x.dtype), k,
               mode=mode, axes=axes)          # the in-memory function names the mismatch
    probe = fn(probe_in, k, mode=mode, axes=axes)
    ax = _fft_axes(x.ndim, axes)
    if sig_valid_swap(mode, x.shape, k.shape, ax):
        shape_probe = fn(np.broadcast_to(np.zeros((), x.dtype), x.shape), k, mode=mode, axes=axes)
        return _whole(fn, (x, k), dict(mode=mode, axes=axes), shape_probe, name)
    for d in range(x.ndim):             # in1 broadcast against a larger kernel axis
        if d not in ax and x.shape[d] == 1 and k.shape[d] > 1 and mode == "same":
            # 'same' crops every axis to in1's size, centred: one kernel row survives
            c = (k.shape[d] - 1) // 2
            k = k[tuple(slice(c, c + 1) if e == d else slice(None) for e in range(k.ndim))]
        elif d not in ax and x.shape[d] == 1 and k.shape[d] > 1:
            shape = list(x.shape)
            shape[d] = k.shape[d]
            x = _da().broadcast_to(x, tuple(shape), chunks=x.chunks[:d] + ((k.shape[d],),) + x.chunks[d + 1:])
    x = _min_chunks(x, [k.shape[d] - 1 if d in ax else 0 for d in range(x.ndim)])
    axes_spec = []
    for d in range(x.ndim):
        if d in ax:
            axes_spec.append(_conv_axis(x.chunks[d], x.shape[d], k.shape[d], mode, _conv_same, "fill"))
        else:
            axes_spec.append(_blockwise_axis(x.chunks[d]))
    sliced = [d for d in range(x.ndim) if d not in ax and k.shape[d] > 1]
    starts = [np.cumsum((0,) + x.chunks[d]) for d in range(x.ndim)]

    def block_args(j):
        if not sliced:
            return None
        return tuple((int(starts[d][j[d]]), int(starts[d][j[d] + 1])) if d in sliced else (0, k.shape[d])
                     for d in range(x.ndim))

    return _halo_map(x, functools.partial(_kernel_slice, fn, {"axes": axes}), axes_spec,
                     probe.dtype, name, block_args=block_args, consts=(k,),
                     fill=np.zeros((), x.dtype))


def fftconvolve(in1, in2, mode="full", axes=None):
    """:func:`pyconv.signal.fftconvolve` of a dask array ``in1`` (lazy), chunk by chunk.

    Along the non-convolved axes (``axes`` given) the kernel broadcasts or is
    sliced with the chunks of ``in1``.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones(8, chunks=3)
    >>> np.round(pyconv.dask.fftconvolve(x, np.ones(3), mode='same').compute(), 12)
    array([2., 3., 3., 3., 3., 3., 3., 2.])
    """
    return _fft_like(pyconv.signal.fftconvolve, "fftconvolve", in1, in2, mode, axes)


def oaconvolve(in1, in2, mode="full", axes=None):
    """:func:`pyconv.signal.oaconvolve` of a dask array ``in1`` (lazy), chunk by chunk.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones(8, chunks=3)
    >>> np.round(pyconv.dask.oaconvolve(x, np.ones(2), mode='valid').compute(), 12)
    array([2., 2., 2., 2., 2., 2., 2.])
    """
    return _fft_like(pyconv.signal.oaconvolve, "oaconvolve", in1, in2, mode, axes)
