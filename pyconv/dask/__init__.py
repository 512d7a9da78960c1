"""pyconv's convolutions on dask arrays: lazy, chunk by chunk, out of core or on a cluster.

Kinds of convolution
--------------------
=====================================  ===============================================
signal: N-d convolution / correlation  :func:`convolve`, :func:`correlate`
signal: 2-D with boundaries            :func:`convolve2d`, :func:`correlate2d`
signal: FFT, overlap-add               :func:`fftconvolve`, :func:`oaconvolve`
signal: separable 2-D                  :func:`sepconvolve2d`
nn: convolution layers                 :func:`conv1d`, :func:`conv2d`, :func:`conv3d`
nn: transposed convolution             :func:`conv_transpose1d`, :func:`conv_transpose2d`,
                                       :func:`conv_transpose3d`
nn: depthwise / separable / 1x1        :func:`depthwise_conv2d`, :func:`separable_conv2d`,
                                       :func:`pointwise_conv2d`
grad: backward passes (batch split)    :func:`conv1d_backward`, :func:`conv2d_backward`,
                                       :func:`conv3d_backward`
ndimage: every filter                  ``pyconv.dask.ndimage.<name>`` (:mod:`pyconv.dask.ndimage`)
ndimage: 1-D along one axis            :func:`correlate1d`, :func:`convolve1d`
ndimage: Gaussian, box (separable)     :func:`gaussian_filter`, :func:`gaussian_filter1d`,
                                       :func:`uniform_filter`, :func:`uniform_filter1d`
ndimage: derivatives                   :func:`sobel`, :func:`prewitt`, :func:`laplace`,
                                       :func:`gaussian_laplace`,
                                       :func:`gaussian_gradient_magnitude`
threads inside a task                  :func:`task_threads`
=====================================  ===============================================

Same names and arguments as the in-memory functions of :mod:`pyconv.signal`,
:mod:`pyconv.nn`, :mod:`pyconv.grad` and :mod:`pyconv.ndimage`.

One name, two functions: ndimage's ``convolve`` and ``correlate`` (ndimage modes,
``origin``, output of the input's shape) are not signal's (``mode='full'/'same'/'valid'``).
At this level ``pyconv.dask.convolve`` and ``pyconv.dask.correlate`` are the
:mod:`pyconv.signal` ones; ndimage's are ``pyconv.dask.ndimage.convolve`` and
``pyconv.dask.ndimage.correlate``.  The other eleven ndimage filters, whose names
are free, are here too, as the very function objects of :mod:`pyconv.dask.ndimage`
(``pyconv.dask.gaussian_filter is pyconv.dask.ndimage.gaussian_filter``).  Every
ndimage filter, the two colliding ones included, stays under
``pyconv.dask.ndimage.<name>``, the namespace a dask array passed to
``pyconv.ndimage.<name>`` is routed to.

The large operand (``in1``, ``input``,
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
in-memory function's own.  (The direct kernel sweeps the short rows of such a 'valid'
call as runs of whole region rows, as for a 'same' call, with the same sums in the same
order; a direct chunk runs in slabs of rows, each slab's region assembled alone, with the
same sums again.)  Halo slices are cut where the neighbour lives (only
the slice travels between workers; views of a persisted input's chunks, copies
otherwise), and chunks smaller than the halo are merged
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
import itertools
import math
import operator
import sys
import threading

import numpy as np

import pyconv
from pyconv import _memory
from pyconv import arithmetic as _arith
from pyconv._threads import _available_cpus
from pyconv._utils import check_choice

__all__ = ["convolve", "correlate", "convolve2d", "correlate2d", "fftconvolve", "oaconvolve",
           "sepconvolve2d",
           "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "depthwise_conv2d", "separable_conv2d", "pointwise_conv2d",
           "conv1d_backward", "conv2d_backward", "conv3d_backward",
           "task_threads", "ndimage",
           # pyconv.ndimage's filters whose names signal's do not take (convolve/correlate do)
           "correlate1d", "convolve1d", "gaussian_filter", "gaussian_filter1d", "uniform_filter",
           "uniform_filter1d", "sobel", "prewitt", "laplace", "gaussian_laplace",
           "gaussian_gradient_magnitude"]


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
    it (the threads of all dask.distributed workers living in this process, the
    threaded scheduler's pool, or 1), at least 1, at most :func:`pyconv.get_num_threads`.  Outside a worker and
    on the main thread (dask's synchronous scheduler) that is the process's count.

    Returns
    -------
    int
        The thread count; the functions of this module run each task under
        ``pyconv.threads(task_threads())``.

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
            # every worker of this process shares its CPUs (LocalCluster(processes=False) runs
            # them all in one process)
            workers = list(getattr(type(worker), "_instances", ())) or [worker]
            slots = sum(getattr(getattr(w, "state", None), "nthreads", None) or getattr(w, "nthreads", 1)
                        for w in workers if getattr(w, "status", None) is None
                        or str(getattr(w.status, "name", w.status)) not in ("closed", "closing", "failed"))
            slots = max(1, slots)
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
        if any(math.isnan(c) for cs in x.chunks for c in cs):
            raise ValueError(f"{name} has unknown chunk sizes (chunks {x.chunks}): the halos need them; "
                             f"call {name}.compute_chunk_sizes() first")
        return x
    from dask import is_dask_collection
    if is_dask_collection(x):
        raise TypeError(f"{name} must be a dask.array.Array (or an in-memory array); got {type(x).__name__}")
    return da.asarray(np.asarray(x))


def _small(x, name):
    """A kernel/weight/bias in memory as an ndarray: a one-chunk dask array is computed, more
    chunks refused."""
    from pyconv._utils import as_array
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
    return as_array(x, name)


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
    # a run also ends where its direction turns (a mirrored halo meeting the chunk it
    # mirrors), so every run of +-1 steps is a slice, not an index array copying the block
    brk = np.diff(blk) != 0
    dq = np.diff(q)
    brk[1:] |= dq[1:] != dq[:-1]
    edges = [0, *(np.flatnonzero(brk) + 1).tolist(), len(p)]
    segs = []
    for a, b in zip(edges[:-1], edges[1:]):
        if blk[a] < 0:
            segs.append((-1, b - a))
        else:
            segs.append((int(blk[a]), _as_indexer(q[a:b] - starts[blk[a]])))
    return segs


def _seg_len(idx, n):
    """Elements a segment's index (a slice or an index array) reads of a chunk of ``n``."""
    return len(range(*idx.indices(n))) if isinstance(idx, slice) else len(idx)


def _covers(idx, n):
    """Whether a segment's index reads a chunk of ``n`` whole, in order."""
    return isinstance(idx, slice) and idx.indices(n) == (0, n, 1)


def _axis_key(i):
    """A hashable form of one axis' index (a slice or an index array), to share equal pieces."""
    return (i.start, i.stop, i.step) if isinstance(i, slice) else (len(i), i.tobytes())


def _read(block, index):
    """``block`` read at the per-axis ``index`` (slices first, then index arrays): a view when
    every axis is a slice."""
    out = block[tuple(i if isinstance(i, slice) else slice(None) for i in index)]
    for d, i in enumerate(index):
        if not isinstance(i, slice):
            out = np.take(out, i, axis=d)
    return out


def _cut(block, indices, views=False):
    """The halo export of one input chunk: every piece its neighbours read from it, in one task.

    Copies, unless ``views``: a view keeps the whole chunk alive as long as the export lives,
    which costs nothing only when the chunk is held anyway (a persisted input, see
    :func:`_persisted`).  A view read on the worker holding the chunk takes no memory; one
    sent to another worker arrives as a copy of its own elements (dask serialises a view's
    elements, not its base)."""
    if views:
        return tuple(_read(block, i) for i in indices.value)
    return tuple(np.array(_read(block, i), copy=True) for i in indices.value)


def _same(block):
    """The chunk itself (no copy): the key an output of a persisted input depends on.

    An output task that a dask.distributed scheduler moves to another worker to balance
    the queues fetches its input chunk there.  Fetched under the persisted input's own key,
    that copy stays until the scheduler's memory manager drops replicas (every 2 s), and the
    copies of a run's moved tasks add up: 11-15 chunks of 8 MiB per worker on a 512^3
    volume with a 7^3 kernel.  Fetched under this task's key, the copy goes as soon as its
    one output has run; on the worker holding the chunk the task's result is the held array."""
    return block


def _persisted(x):
    """Whether every chunk of ``x`` is held in memory whatever this graph does: ``x`` is one
    graph layer of computed chunks (``x.persist()``: futures on a dask.distributed cluster,
    arrays with the local schedulers).  Read without materialising a lazy graph."""
    from dask.highlevelgraph import MaterializedLayer
    graph = x.__dask_graph__()
    layers = getattr(graph, "layers", None)
    if layers is None or len(layers) != 1:
        return False
    (layer,) = layers.values()
    if not isinstance(layer, MaterializedLayer):    # (a Blockwise layer, say, holds no chunks)
        return False
    values = list(layer.values())
    Future = getattr(sys.modules.get("distributed"), "Future", ())
    return bool(values) and all(isinstance(v, np.ndarray) or (Future and isinstance(v, Future))
                                for v in values)


# A neighbour's pieces of at least this many bytes for one output (a large face of a volume
# chunk) get an export task of their own, cut for that output alone: the output then fetches
# only what it reads (a shared export ships every face of the chunk to every neighbour, and
# its weight in the scheduler's transfer estimate can favour moving the input chunk instead),
# and the slab is freed as soon as that output has run.  Smaller pieces ride in one shared
# export per chunk: a task each costs more than they do.  At 32 KiB the faces of 128^3
# float32 chunks (64 KiB at 3^3, 192 KiB at 7^3) each had their own task, ~450 exports for
# 64 outputs: 512^3 volumes on a 2-worker cluster ran 3^3 in 1.02-1.22 s and 7^3 in
# 2.37-2.80 s; with those faces shared, 0.87-1.03 s and 1.96-1.99 s (AMD EPYC, 2026-12-04,
# worker peaks alike).
_OWN_EXPORT_BYTES = 1024 * 1024


class _Part:
    """Leaf of an output chunk's layout: dependency ``dep`` (an input chunk, or with ``item``
    the ``item``-th piece of a neighbour's export) read at ``index`` (None: all of it)."""
    __slots__ = ("dep", "item", "index")

    def __init__(self, dep, item=None, index=None):
        self.dep, self.item, self.index = dep, item, index


def _materialise(node, deps, fill):
    if isinstance(node, list):
        return [_materialise(c, deps, fill) for c in node]
    if isinstance(node, _Fill):
        return np.full(node.shape, fill)
    v = deps[node.dep]
    if node.item is not None:
        v = v[node.item]
    return v if node.index is None else _read(v, node.index)


def _assemble(layout, deps, fill):
    """The input region of an output chunk from its layout (nested lists, depth = ndim) and
    its dependencies; fill regions are made here.  One piece: no copy.

    (A module-level recursion, not a closure: a recursive closure is a reference cycle that
    would keep the dependencies alive until the garbage collector runs.)"""
    node = layout
    while isinstance(node, list) and len(node) == 1:
        node = node[0]
    if not isinstance(node, list):
        return _materialise(node, deps, fill)
    return np.block(_materialise(layout, deps, fill))


# A chunk's task runs in pyconv's memory pool (the public functions' own wrapper,
# ``_memory.call``), for the arrays it makes outside pyconv's functions too (the assembled
# region, the slab-wise output): a worker's tasks then reuse one another's freed regions and
# outputs.  Fresh, each was a new mapping whose pages faulted at first touch (a dask worker's
# nanny sets ``MALLOC_TRIM_THRESHOLD_``, which also turns off glibc's dynamic mmap
# threshold): on a 512^3 float32 volume in 128^3 chunks with a 3^3 kernel (2-worker
# LocalCluster, AMD EPYC) the output tasks spent 0.89-0.96 s in all, 0.52-0.61 s in the pool.

def _run_block(*args):
    """:func:`_run_block_body` in pyconv's memory pool."""
    return _memory.call(_run_block_body, args, {})


def _run_slabs(*args):
    """:func:`_run_slabs_body` in pyconv's memory pool."""
    return _memory.call(_run_slabs_body, args, {})


def _run_block_body(func, lit, layout, fill, deps, *consts):
    """One output chunk: assemble its input, run ``func`` on the task's share of threads."""
    block = _assemble(layout.value, deps, fill.value)
    with pyconv.threads(task_threads()):
        return func(block, lit.value, *consts)


# The region of a slab-wise output chunk: at most this many bytes of it assembled at once.
_SLAB_BYTES = 2 * 1024 * 1024


def _place(node, d, start, deps, fill, boxes):
    """Append ``(start, shape, array)`` for each leaf of the layout ``node`` (nested lists
    whose level ``d`` splits axis ``d``), placed from ``start`` (``array`` None for a fill
    region); returns the shape of ``node``'s region.  (Module level: see :func:`_assemble`.)"""
    if not isinstance(node, list):
        arr = None if isinstance(node, _Fill) else _materialise(node, deps, fill)
        shape = node.shape if arr is None else arr.shape
        boxes.append((start, shape, arr))
        return shape
    pos, shape = start[d], None
    for child in node:
        shape = _place(child, d + 1, start[:d] + (pos,) + start[d + 1:], deps, fill, boxes)
        pos += shape[d]
    return shape[:d] + (pos - start[d],) + shape[d + 1:]


def _run_slabs_body(func, lit, layout, fill, rows, deps, *consts):
    """One output chunk whose rows (axis 0) each read ``reach`` + 1 region rows, in order (a
    'valid' direct convolution along axis 0), ``rows.value = (reach, step, into)``: computed
    slab by slab of ``step`` output rows, each slab's region filled alone into one buffer
    and the results written into one output.  ``into`` (the output's dtype, or None): ``func``
    writes each slab into the output itself (its ``out`` argument); else its results are
    copied there.

    The whole region (a chunk and its halo) and the output are otherwise held together
    while the kernel runs; a slab's region is a fraction of the chunk.  Each output sums
    the same products in the same order whatever rows its call covers (the kernel's rows
    are the region's whole rows along the last axis), so the result is the one call's."""
    reach, step, into = rows.value
    f = fill.value
    boxes = []
    node, ndim = layout.value, 0
    while isinstance(node, list):
        node, ndim = node[0], ndim + 1
    shape = _place(layout.value, 0, (0,) * max(ndim, 1), deps, f, boxes)
    rows = shape[0] - reach
    # the region's pieces are filled by slice assignment into a buffer of the dtype np.block
    # would give them (a fill constant may be wider than in1: convolve2d's fillvalue)
    dtype = np.result_type(*[f if arr is None else arr.dtype for _, _, arr in boxes])
    buf = out = None
    with pyconv.threads(task_threads()):
        for a in range(0, rows, step):
            b = min(rows, a + step)
            r0, r1 = a, b + reach
            if len(boxes) == 1 and boxes[0][2] is not None:
                region = boxes[0][2][r0:r1]             # one piece: no copy
            else:
                if buf is None:
                    buf = np.empty((min(step, rows) + reach,) + shape[1:], dtype=dtype)
                region = buf[:r1 - r0]
                for start, shp, arr in boxes:
                    lo, hi = max(r0, start[0]), min(r1, start[0] + shp[0])
                    if lo < hi:
                        dst = (slice(lo - r0, hi - r0),) + tuple(slice(s, s + m) for s, m in zip(start[1:], shp[1:]))
                        region[dst] = f if arr is None else arr[lo - start[0]:hi - start[0]]
            if into is not None:
                if out is None:
                    k = consts[0]
                    out = np.empty((rows,) + tuple(n - m + 1 for n, m in zip(shape[1:], k.shape[1:])), dtype=into)
                func(region, lit.value, *consts, out=out[a:b])
                continue
            y = func(region, lit.value, *consts)
            if out is None:
                if b == rows:               # one slab: the call's own result
                    return y
                out = np.empty((rows,) + y.shape[1:], dtype=y.dtype)
            out[a:b] = y
    return out


def _dep(deps, dep_pos, key):
    """Position of ``key`` in an output's dependencies ``deps`` (appended when new)."""
    if key not in dep_pos:
        dep_pos[key] = len(deps)
        deps.append(key)
    return dep_pos[key]


# Operands every task of a graph shares (kernels, weights, biases), arrays of at most this many
# bytes in all, ride in each task's own spec; larger ones sit under keys of their own.  A key is
# computed on one worker and the other workers' first tasks wait for it to travel: on a 2-worker
# LocalCluster (AMD EPYC, 2026-12-04) layer a's weight and bias under keys held the second
# worker's first task back to 16-23 ms after submission (inline: 9-10 ms), where a task takes
# ~20 ms.  Batch-chunked layer a, medians of 30 alternated runs in each order: forward 122 -> 110
# and 111 -> 105 ms, backward 229 -> 225 and 216 -> 209 ms.  (The limit is in the graph's token:
# a graph of the other form has other keys.)
_INLINE_CONST_BYTES = 256 * 1024


def _const_refs(layer, prefix, token, consts):
    """What tasks pass for ``consts``: the arrays themselves (and None) when they are small
    together (``_INLINE_CONST_BYTES``), else keys added to ``layer``, one per operand."""
    if all(c is None or isinstance(c, np.ndarray) for c in consts) and \
            sum(0 if c is None else c.nbytes for c in consts) <= _INLINE_CONST_BYTES:
        return list(consts)
    refs = []
    for i, c in enumerate(consts):
        key = (f"{prefix}{i}-{token}",)
        layer[key] = c
        refs.append(key)
    return refs


def _halo_map(x, func, axes, dtype, name, block_args=None, consts=(), fill=0, extra=None, extra_deps=(),
              reach=None, into=None):
    """Apply ``func(block, args, *consts)`` per output chunk, reading the regions ``axes`` describe.

    ``axes``: one :class:`_Axis` per axis of ``x`` (the output has as many axes).
    ``block_args(j)`` gives the literal per-block arguments of output chunk ``j``
    (default: ``j``); ``consts`` are in-memory objects shared by every task (see
    :func:`_const_refs`); ``fill`` is the constant of 'fill' regions (a numpy scalar);
    ``extra(j)`` gives keys of other arrays (``extra_deps``) whose values are passed
    to ``func`` after ``args``, before the consts.  ``reach``: when ``func``'s output rows
    (axis 0) each read ``reach`` + 1 region rows, in order ('valid' direct convolutions),
    a chunk is computed in slabs of rows (:func:`_run_slabs`); ``into`` (the output dtype, or
    None): ``func`` then writes each slab into the chunk's output (its ``out`` argument).

    The graph has one task per output chunk.  An output chunk depends on the input
    chunk it reads most of (sliced in its own task: no transfer, no export) and reads
    its neighbours through *export* tasks that cut, on the worker holding the
    neighbour, only the pieces it reads, so only those pieces travel: a neighbour's
    pieces of at least ``_OWN_EXPORT_BYTES`` for one output (large faces) are an export
    of their own for that output; the smaller ones of one input chunk share one export
    (one per axis and one for the diagonal neighbours, where a chunk's pieces make an
    eighth of it or more).
    (dask's ``map_overlap`` makes one task per piece: about 15 per chunk of a 3-d volume,
    whose scheduling costs more than the pieces.)

    Exports are cut as soon as their chunk is there, ahead of their outputs: a worker
    whose next output waits for a piece from another worker runs the exports it can
    (1 thread, each export ~0.3 ms against ~45 ms for a 7^3 output), so within one
    output's time nearly every export is cut.  Copies of a 7^3 volume's faces then
    held ~40 MiB per worker (4x a chunk and its halo); when ``x`` is persisted the
    exports are views of the chunks the workers hold anyway (:func:`_cut`), and only
    the pieces that travel to another worker take memory, on the receiving side; its
    outputs read their own chunks through a task per chunk that hands on the held array
    (:func:`_same`), so that a chunk fetched for an output moved to another worker is
    freed once that output has run.
    """
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
    da = _da()
    views = _persisted(x)
    token = tokenize(x, views, reach, into, _SLAB_BYTES, _INLINE_CONST_BYTES, [(a.out_chunks, a.ranges, a.kind) for a in axes],
                     func, dtype, consts,
                     None if block_args is None else [block_args(j) for j in np.ndindex(
                         *[len(a.out_chunks) for a in axes])], fill,
                     None if extra is None else [extra(j) for j in np.ndindex(*[len(a.out_chunks) for a in axes])])
    out_name = f"pyconv-{name}-{token}"
    export_name = f"pyconv-{name}-halo-{token}"
    hold_name = f"pyconv-{name}-hold-{token}"
    layer = {}
    const_keys = _const_refs(layer, f"pyconv-{name}-const", token, consts)
    fill = np.asarray(fill)
    # per axis and output chunk: its segments (input chunk or -1 for the fill, index or the
    # fill's length), each with its length, whether it reads its whole chunk and its index's
    # key (worked out once here: the loop below meets every segment once per output and
    # neighbour)
    chunks = x.chunks
    per_axis = []
    for d, ax in enumerate(axes):
        starts = np.cumsum((0,) + chunks[d])
        per_axis.append([[(b, i, i, False, None) if b < 0 else
                          (b, i, _seg_len(i, chunks[d][b]), _covers(i, chunks[d][b]), _axis_key(i))
                          for b, i in _segments(p0, p1, x.shape[d], ax.kind, starts)]
                         for p0, p1 in ax.ranges])
    rims = {}                    # input chunk -> {index key: (index, bytes)} of its shared pieces
    pending = []                 # (output, input chunk, face axis or None, index, _Part, its key) of shared exports
    outputs = []                 # (j, layout, deps, dep_pos) per output chunk
    itemsize = np.dtype(x.dtype).itemsize

    def held(src):
        """The key an output reads input chunk ``src`` through whole: the chunk itself, or for
        a persisted input a task handing on the very array held (:func:`_same`), whose copy
        on another worker is dropped once its output has run (see :func:`_same`)."""
        if not views:
            return (x.name, *src)
        key = (hold_name, *src)
        layer[key] = (_same, (x.name, *src))
        return key

    for j in np.ndindex(*[len(a.out_chunks) for a in axes]):
        segs = [per_axis[d][jd] for d, jd in enumerate(j)]
        # the anchor: the input chunk this output reads most from (its task runs beside it)
        reads = {}
        for combo in itertools.product(*segs):
            src = tuple(s[0] for s in combo)
            if min(src) >= 0:
                reads[src] = reads.get(src, 0) + math.prod(s[2] for s in combo)
        anchor = max(reads, key=reads.get) if reads else None
        deps, dep_pos = [], {}
        wanted = {}              # neighbour chunk -> [(index, its _Part, elements, key)] this output reads from it

        dep = functools.partial(_dep, deps, dep_pos)

        def leaf(combo):
            src = tuple(s[0] for s in combo)
            if min(src) < 0:
                return _Fill(tuple(s[2] for s in combo))
            if all(s[3] for s in combo):
                return _Part(dep(held(src)))
            index = tuple(s[1] for s in combo)
            if src == anchor:
                return _Part(dep(held(src)), index=index)
            part = _Part(None)                    # its dependency is decided below
            wanted.setdefault(src, []).append((index, part, math.prod(s[2] for s in combo), tuple(s[4] for s in combo)))
            return part

        def nest(d, prefix):
            if d == len(segs):
                return leaf(prefix)
            return [nest(d + 1, prefix + [s]) for s in segs[d]]

        layout = nest(0, [])
        for src, parts in wanted.items():
            nbytes = itemsize * sum(n for _, _, n, _ in parts)
            if nbytes >= _OWN_EXPORT_BYTES:
                # a large slab (a face): cut for this output alone, so the output fetches no
                # more than it reads and the slab is freed once it has run
                key = (f"{export_name}-to", *src, *j)
                layer[key] = (_cut, (x.name, *src), _Lit(tuple(index for index, _, _, _ in parts)), views)
                for item, (_, part, _, _) in enumerate(parts):
                    part.dep, part.item = dep(key), item
                continue
            # a face neighbour (apart along one axis) or a diagonal one, for the split below
            apart = [d for d in range(len(src)) if anchor is not None and src[d] != anchor[d]]
            group = apart[0] if len(apart) == 1 else None
            rim = rims.setdefault(src, {})
            for index, part, n, k in parts:
                rim.setdefault(k, (index, itemsize * n))
                pending.append((len(outputs), src, group, index, part, k))
        outputs.append((j, layout, deps, dep_pos))
    # Each input chunk's small pieces go out in one shared export, which travels whole to
    # every worker with an output reading any of it and stays there until they have all run.
    # Where one holds an eighth of its chunk's bytes or more (a worker may hold those of up
    # to 26 neighbours in 3-d, more than its own chunk), every chunk's are cut per axis
    # instead: one export with the two faces across each axis, one with the diagonal
    # neighbours' pieces (all chunks alike: the chunks on the border between two workers'
    # shares are as often those at the array's faces, whose exports are smaller).
    # 512^3 float32 in 128^3 chunks, 7^3 kernel (faces 192 KiB, the export 1.2 MiB), 2-worker
    # LocalCluster, AMD EPYC: worker peak (median over workers and runs, the memory pool's
    # blocks counted) 11.6x chunk + halo -> 4.1x (max 13.0 -> 6.9x), time 1.50-1.52 ->
    # 1.62-1.69 s; at 3^3 (0.4 MiB, left shared) cutting would have cost 0.55-0.57 ->
    # 0.66-0.69 s, where the peak is within 4x already (3.7-4.0x).
    split = any(8 * sum(b for _, b in rim.values()) >= itemsize * math.prod(chunks[d][b] for d, b in enumerate(src))
                for src, rim in rims.items())
    exports = {}                # export key -> (its pieces' indices, {index key: position})
    for o, src, group, index, part, k in pending:
        ekey = (f"{export_name}{group}" if split and group is not None else export_name, *src)
        pieces, where = exports.setdefault(ekey, ([], {}))
        if k not in where:
            where[k] = len(pieces)
            pieces.append(index)
        _, _, deps, dep_pos = outputs[o]
        part.dep, part.item = _dep(deps, dep_pos, ekey), where[k]
    for ekey, (pieces, _) in exports.items():
        layer[ekey] = (_cut, (x.name, *ekey[1:]), _Lit(tuple(pieces)), views)
    for j, layout, deps, _ in outputs:
        args = j if block_args is None else block_args(j)
        if reach is None or x.ndim < 2 or extra is not None:
            layer[(out_name, *j)] = (_run_block, func, _Lit(args), _Lit(layout), _Lit(fill), list(deps),
                                     *(() if extra is None else extra(j)), *const_keys)
        else:
            # output rows per slab: the slab's region within _SLAB_BYTES (at least one row)
            row_bytes = itemsize * math.prod(axes[d].ranges[jd][1] - axes[d].ranges[jd][0]
                                             for d, jd in enumerate(j) if d)
            step = max(1, _SLAB_BYTES // max(1, row_bytes) - reach)
            layer[(out_name, *j)] = (_run_slabs, func, _Lit(args), _Lit(layout), _Lit(fill),
                                     _Lit((int(reach), int(step), into)), list(deps), *const_keys)
    graph = HighLevelGraph.from_collections(out_name, layer, dependencies=[x, *extra_deps])
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


def _valid_block(fn, kwargs, block, args, *kernels, out=None):
    """``fn``'s 'valid' result on ``block``; with ``out``, the direct sums written into it
    (:func:`pyconv.signal._valid_into`: the same plan, the same bits)."""
    if out is not None:
        return pyconv.signal._valid_into(block, kernels[0], out,
                                         fn in (pyconv.signal.correlate, pyconv.signal.correlate2d))
    return fn(block, *kernels, mode="valid", **kwargs)


def _signal_map(fn, name, x, kernels, kshape, mode, kwargs, same_start, kind="fill", fill=None,
                probe_kwargs=None):
    """Shared body of the signal functions whose kernel spans every axis of ``x``."""
    from pyconv._utils import sig_compute_dtype, sig_valid_swap
    mode = check_choice(mode, "mode", ("full", "same", "valid"))
    probe_in = np.zeros(tuple(max(1, s) for s in kshape), dtype=x.dtype)
    probe = fn(probe_in, *kernels, mode=mode, **(probe_kwargs or kwargs))   # validates the arguments
    if x.ndim != len(kshape):
        raise ValueError(f"in1 and in2 should have the same dimensionality; got in1.ndim={x.ndim} "
                         f"and a kernel with {len(kshape)} dims")
    if x.ndim == 0 or x.size == 0 or math.prod(kshape) == 0 or sig_valid_swap(mode, x.shape, kshape):
        shape_probe = fn(np.broadcast_to(np.zeros((), x.dtype), x.shape), *kernels, mode=mode, **kwargs)
        return _whole(fn, (x,) + tuple(kernels), dict(mode=mode, **kwargs), shape_probe, name)
    if kwargs.get("method") == "auto" and np.result_type(x.dtype, *kernels).kind in "fc":
        # chosen once, for the whole array, as the in-memory call on it chooses: every chunk
        # runs the same method (per chunk, the smaller shapes tipped some chunks to FFT and
        # others to direct), and with 'direct' the result is bitwise the in-memory one
        whole = np.broadcast_to(np.zeros((), x.dtype), x.shape)
        kwargs = dict(kwargs, method=pyconv.signal.choose_conv_method(whole, kernels[0], mode))
    # the extension's constant: 0 in in1's dtype, or convolve2d's fillvalue cast to the result dtype
    fill = np.zeros((), x.dtype) if fill is None else np.asarray(fill)
    x = _min_chunks(x, [k - 1 for k in kshape])
    axes = [_conv_axis(x.chunks[d], x.shape[d], kshape[d], mode, same_start, kind) for d in range(x.ndim)]
    if kind == "skip":
        return _skip_map(fn, name, x, kernels, kshape, axes, kwargs, probe.dtype)
    # (a direct 'valid' call merges short rows in the kernel itself, as in memory)
    func = functools.partial(_valid_block, fn, kwargs)
    # direct: each output row sums the same products whatever rows the call covers, so a chunk
    # may run in slabs of rows (the FFT's rounding depends on the shape it transforms; the
    # separable one may order its two passes by the shape)
    direct = kwargs.get("method", "direct") == "direct" and fn is not pyconv.signal.sepconvolve2d
    # float and complex results summed in their own dtype (not float16, nor integers, whose
    # values choose it): those slabs are written straight into the output
    into = probe.dtype if direct and probe.dtype.kind in "fc" and sig_compute_dtype(probe.dtype) == probe.dtype else None
    return _halo_map(x, func, axes, probe.dtype, name, block_args=lambda j: None, consts=tuple(kernels), fill=fill,
                     reach=kshape[0] - 1 if direct else None, into=into)


def _full_crop_block(fn, kwargs, block, crop, *kernels):
    out = fn(block, *kernels, mode="full", **kwargs)
    return np.ascontiguousarray(out[tuple(slice(u, u + m) for u, m in crop)])


def _skip_map(fn, name, x, kernels, kshape, axes, kwargs, dtype):
    """convolve/correlate with a NaN/Inf in the kernel: the taps outside the array are skipped,
    as the in-memory direct kernel skips them (a zero padding would make 0 * Inf = NaN).

    Each chunk reads only the part of its region inside the array and runs 'full' mode on
    it, which skips exactly those taps, then keeps its outputs: output ``o`` of the region
    starting at ``p0`` (clipped to ``c0``) is the 'full' output ``o + p0 - c0 + k - 1``.
    """
    clipped = []
    for d, ax in enumerate(axes):
        n = x.shape[d]
        clipped.append(_Axis(ax.out_chunks, [(max(p0, 0), min(p1, n)) for p0, p1 in ax.ranges], "none"))

    def crop(j):
        starts = [axes[d].ranges[j[d]][0] for d in range(x.ndim)]
        return tuple((p0 - max(p0, 0) + kshape[d] - 1, axes[d].out_chunks[j[d]]) for d, p0 in enumerate(starts))

    return _halo_map(x, functools.partial(_full_crop_block, fn, kwargs), clipped, dtype, name,
                     block_args=crop, consts=tuple(kernels))


def _zero_kind(k):
    """The N-d direct kernel skips taps outside in1: a zero fill is the same unless a tap is NaN/Inf."""
    return "fill" if k.dtype.kind in "biu" or np.isfinite(k).all() else "skip"


def _kernel(in2, name="in2"):
    from pyconv._utils import sig_array
    return sig_array(_small(in2, name), name)


def convolve(in1, in2, mode="full", method="auto"):
    """:func:`pyconv.signal.convolve` of a dask array ``in1`` with an in-memory ``in2`` (lazy).

    Bitwise equal to the in-memory call on the computed ``in1`` with
    ``method='direct'`` (and 'auto' when it chooses direct); with 'fft' within
    the FFT's rounding.

    Parameters
    ----------
    in1 : dask.array.Array or array_like
        The signal, lazy, of any chunking (an in-memory array is wrapped as one chunk).
        Chunks smaller than the kernel's reach are merged with a neighbour first.
    in2 : array_like
        The kernel, in memory (a one-chunk dask array is computed; more chunks raise
        ValueError).
    mode : {'full', 'same', 'valid'}, optional
        As the in-memory function.  Output chunks follow ``in1``'s: 'same' keeps
        them, 'full' grows the last chunk of each axis, 'valid' shrinks it.
    method : {'auto', 'direct', 'fft'}, optional
        'auto' chooses once, as the in-memory call on the whole array would (integer
        operands: per chunk, the choice depends on their values); 'direct' is bitwise
        the in-memory result.

    Returns
    -------
    out : dask.array.Array
        Lazy; the in-memory function's shape and dtype.

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
                       {"method": method}, _conv_same, kind=_zero_kind(k))


def correlate(in1, in2, mode="full", method="auto"):
    """:func:`pyconv.signal.correlate` of a dask array ``in1`` with an in-memory ``in2`` (lazy).

    Parameters
    ----------
    in1 : dask.array.Array or array_like
        The signal, lazy, of any chunking (an in-memory array is wrapped as one chunk).
        Chunks smaller than the kernel's reach are merged with a neighbour first.
    in2 : array_like
        The kernel, in memory (a one-chunk dask array is computed; more chunks raise
        ValueError).
    mode : {'full', 'same', 'valid'}, optional
        As the in-memory function.  Output chunks follow ``in1``'s: 'same' keeps
        them, 'full' grows the last chunk of each axis, 'valid' shrinks it.
    method : {'auto', 'direct', 'fft'}, optional
        'auto' chooses once, as the in-memory call on the whole array would (integer
        operands: per chunk, the choice depends on their values); 'direct' is bitwise
        the in-memory result.

    Returns
    -------
    out : dask.array.Array
        Lazy; the in-memory function's shape and dtype.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.arange(6.0, chunks=2)
    >>> pyconv.dask.correlate(x, np.array([1.0, -1.0]), mode='valid').compute()
    array([-1., -1., -1., -1., -1.])
    """
    x, k = _big(in1, "in1"), _kernel(in2)
    return _signal_map(pyconv.signal.correlate, "correlate", x, (k,), k.shape, mode,
                       {"method": method}, _conv_same, kind=_zero_kind(k))


def _boundary_2d(fn, name, in1, in2, mode, boundary, fillvalue, same_start):
    from pyconv._utils import sig_boundary, sig_fillvalue
    x, k = _big(in1, "in1"), _kernel(in2)
    kind = sig_boundary(boundary)
    fv = None
    if kind == "fill":
        fv = sig_fillvalue(fillvalue, np.result_type(x.dtype, k.dtype))
    return _signal_map(fn, name, x, (k,), k.shape, mode, {}, same_start, kind=kind, fill=fv,
                       probe_kwargs={"boundary": boundary, "fillvalue": fillvalue})


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """:func:`pyconv.signal.convolve2d` of a 2-D dask array ``in1`` (lazy).

    The boundary ('fill' with ``fillvalue``, 'wrap', 'symm') is applied at the
    edges of the whole array, exactly as the in-memory function does.

    Parameters
    ----------
    in1 : dask.array.Array or array_like
        The 2-D signal, lazy, of any chunking (an in-memory array is wrapped as one chunk).
        Chunks smaller than the kernel's reach are merged with a neighbour first.
    in2 : array_like
        The 2-D kernel, in memory (a one-chunk dask array is computed; more chunks raise
        ValueError).
    mode : {'full', 'same', 'valid'}, optional
        As the in-memory function.  Output chunks follow ``in1``'s: 'same' keeps
        them, 'full' grows the last chunk of each axis, 'valid' shrinks it.
    boundary : {'fill', 'wrap', 'symm'}, optional
        Applied at the edges of the whole array, not of each chunk.
    fillvalue : scalar, optional
        The constant of 'fill'. Default 0.

    Returns
    -------
    out : dask.array.Array
        Lazy; the in-memory function's shape and dtype.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.eye(4), chunks=2)
    >>> pyconv.dask.convolve2d(x, np.ones((1, 2)), mode='same', boundary='wrap').compute()
    array([[1., 1., 0., 0.],
           [0., 1., 1., 0.],
           [0., 0., 1., 1.],
           [1., 0., 0., 1.]])
    """
    return _boundary_2d(pyconv.signal.convolve2d, "convolve2d", in1, in2, mode, boundary, fillvalue,
                        _conv_same)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """:func:`pyconv.signal.correlate2d` of a 2-D dask array ``in1`` (lazy).

    Parameters
    ----------
    in1 : dask.array.Array or array_like
        The 2-D signal, lazy, of any chunking (an in-memory array is wrapped as one chunk).
        Chunks smaller than the kernel's reach are merged with a neighbour first.
    in2 : array_like
        The 2-D kernel, in memory (a one-chunk dask array is computed; more chunks raise
        ValueError).
    mode : {'full', 'same', 'valid'}, optional
        As the in-memory function.  Output chunks follow ``in1``'s: 'same' keeps
        them, 'full' grows the last chunk of each axis, 'valid' shrinks it.
    boundary : {'fill', 'wrap', 'symm'}, optional
        Applied at the edges of the whole array, not of each chunk.
    fillvalue : scalar, optional
        The constant of 'fill'. Default 0.

    Returns
    -------
    out : dask.array.Array
        Lazy; the in-memory function's shape and dtype.

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

    Parameters
    ----------
    in1 : dask.array.Array or array_like
        The 2-D signal, lazy, of any chunking (an in-memory array is wrapped as one chunk).
        Chunks smaller than the kernel's reach are merged with a neighbour first.
    col : array_like
        1-D kernel along axis 0, in memory.
    row : array_like
        1-D kernel along axis 1, in memory.
    mode : {'full', 'same', 'valid'}, optional
        As the in-memory function.  Output chunks follow ``in1``'s: 'same' keeps
        them, 'full' grows the last chunk of each axis, 'valid' shrinks it.

    Returns
    -------
    out : dask.array.Array
        Lazy; the in-memory function's shape and dtype.

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
    # as scipy: an axis where either operand has size 1 is a broadcast, not a convolution
    ax = [a for a in _fft_axes(x.ndim, axes) if x.shape[a] != 1 and k.shape[a] != 1]
    if not ax or sig_valid_swap(mode, x.shape, k.shape, ax):
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

    return _halo_map(x, functools.partial(_kernel_slice, fn, {"axes": ax}), axes_spec,
                     probe.dtype, name, block_args=block_args, consts=(k,),
                     fill=np.zeros((), x.dtype))


def fftconvolve(in1, in2, mode="full", axes=None):
    """:func:`pyconv.signal.fftconvolve` of a dask array ``in1`` (lazy), chunk by chunk.

    Along the non-convolved axes (``axes`` given) the kernel broadcasts or is
    sliced with the chunks of ``in1``.

    Parameters
    ----------
    in1 : dask.array.Array or array_like
        The signal, lazy, of any chunking (an in-memory array is wrapped as one chunk).
        Chunks smaller than the kernel's reach are merged with a neighbour first.
    in2 : array_like
        The kernel, in memory (a one-chunk dask array is computed; more chunks raise
        ValueError).
    mode : {'full', 'same', 'valid'}, optional
        As the in-memory function.  Output chunks follow ``in1``'s: 'same' keeps
        them, 'full' grows the last chunk of each axis, 'valid' shrinks it.
    axes : int or sequence of int, optional
        The convolved axes (default all); along the others ``in2`` broadcasts or is
        sliced with ``in1``'s chunks.

    Returns
    -------
    out : dask.array.Array
        Lazy; the in-memory function's shape and dtype.

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

    Parameters
    ----------
    in1 : dask.array.Array or array_like
        The signal, lazy, of any chunking (an in-memory array is wrapped as one chunk).
        Chunks smaller than the kernel's reach are merged with a neighbour first.
    in2 : array_like
        The kernel, in memory (a one-chunk dask array is computed; more chunks raise
        ValueError).
    mode : {'full', 'same', 'valid'}, optional
        As the in-memory function.  Output chunks follow ``in1``'s: 'same' keeps
        them, 'full' grows the last chunk of each axis, 'valid' shrinks it.
    axes : int or sequence of int, optional
        The convolved axes (default all); along the others ``in2`` broadcasts or is
        sliced with ``in1``'s chunks.

    Returns
    -------
    out : dask.array.Array
        Lazy; the in-memory function's shape and dtype.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones(8, chunks=3)
    >>> np.round(pyconv.dask.oaconvolve(x, np.ones(2), mode='valid').compute(), 12)
    array([2., 2., 2., 2., 2., 2., 2.])
    """
    return _fft_like(pyconv.signal.oaconvolve, "oaconvolve", in1, in2, mode, axes)


# --------------------------------------------------------------------------- footprint filters

# scipy.ndimage's modes as extensions of the input ('constant' and 'grid-constant' use cval)
_NDIMAGE_KIND = {"reflect": "symm", "grid-mirror": "symm", "mirror": "reflect", "nearest": "edge",
                 "wrap": "wrap", "grid-wrap": "wrap", "constant": "fill", "grid-constant": "fill"}


def _crop_block(fn, kwargs, crops, block, args):
    out = fn(block, **kwargs)
    return np.ascontiguousarray(out[tuple(slice(a, a + m) for a, m in crops[args])])


def _footprint_map(fn, x, before, after, mode, cval, dtype, kwargs, name):
    """``fn(block, **kwargs)`` per chunk of ``x`` for a same-shape filter whose output ``o``
    reads the inputs ``o - before[d] .. o + after[d]`` along axis ``d`` (scipy.ndimage's
    footprint, its ``origin`` included), the region outside the array extended by the
    ndimage ``mode`` (with ``cval``); the block's own result is cropped to the chunk.

    This is the body of :mod:`pyconv.dask.ndimage`: each function gets its reach per
    axis from ``pyconv.ndimage._halo``, passes its in-memory function and arguments, and
    gets a lazy result with the input's chunks.  ``mode`` may differ per axis (a
    sequence, as ndimage accepts).

    Along a 'constant' axis the region is cut at the array's edges instead of filled:
    the in-memory filter then pads the block with ``cval`` itself, before each of its
    passes, as it pads the whole array.  A filled halo would be filtered by the passes
    along the other axes (a separable filter's) and no longer read as ``cval``.  The
    other modes are index maps along their axis, which commute with those passes.
    """
    modes = [mode] * x.ndim if isinstance(mode, str) else list(mode)
    kinds = [_NDIMAGE_KIND[m] for m in modes]
    x = _min_chunks(x, [max(b, a) for b, a in zip(before, after)])
    axes = []
    for d in range(x.ndim):
        out, n, b, a = x.chunks[d], x.shape[d], before[d], after[d]
        if kinds[d] == "fill":
            axes.append(_Axis(out, _ranges(out, lambda o0, o1: (max(o0 - b, 0), min(o1 + a, n))), "none"))
        else:
            axes.append(_Axis(out, _ranges(out, lambda o0, o1: (o0 - b, o1 + a)), kinds[d]))
    starts = [np.cumsum((0,) + c) for c in x.chunks]
    crops, index = [], {}
    for i, j in enumerate(np.ndindex(*x.numblocks)):
        crops.append(tuple((int(starts[d][j[d]]) - axes[d].ranges[j[d]][0], x.chunks[d][j[d]])
                           for d in range(x.ndim)))
        index[j] = i
    return _halo_map(x, functools.partial(_crop_block, fn, kwargs, crops), axes, dtype, name,
                     block_args=lambda j: index[j])


# --------------------------------------------------------------------------- nn

# torch's padding modes as extensions of the input (numpy's names in comments)
_PAD_KIND = {"zeros": "fill", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad_pairs(padding, spatial, ksz, stride, dilation):
    """(before, after) per spatial dim of a padding the in-memory probe accepted."""
    nd = len(spatial)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        return tuple(_arith.same_padding(i, k, s, d) for i, k, s, d in zip(spatial, ksz, stride, dilation))
    if np.ndim(padding) == 0:
        return ((int(padding),) * 2,) * nd
    padding = tuple(padding)
    if all(np.ndim(p) == 0 for p in padding):
        return tuple((int(p), int(p)) for p in padding)
    return tuple((int(a), int(b)) for a, b in padding)


def _per_dim(v, nd):
    return tuple(int(a) for a in v) if np.ndim(v) else (int(v),) * nd


def _nn_block(fname, kwargs, chan, block, lit, *consts):
    """One chunk of an nn function: its channel share of the weights, then the in-memory call."""
    fn = getattr(pyconv.nn, fname)
    (c0, c1), crop = lit
    *weights, bias = consts
    kw = dict(kwargs)
    if chan is not None:
        cg, og, how = chan
        g0, g1 = c0 // cg, c1 // cg
        w = weights[0]
        weights = [w[c0:c1] if how == "transpose" else w[g0 * og:g1 * og]] + weights[1:]
        if bias is not None:
            bias = bias[g0 * og:g1 * og]
        if "groups" in kw:
            kw["groups"] = g1 - g0
    out = fn(block, *weights, bias, **kw)
    if crop is not None:
        out = np.ascontiguousarray(out[(slice(None), slice(None)) + tuple(slice(a, a + m) for a, m in crop)])
    return out


def _channel_axis(x, fname, chan, c_out):
    """Output channel chunks; ValueError when the operation cannot split the input's channels so."""
    cch = x.chunks[1]
    if len(cch) == 1:
        return _Axis((c_out,), [(0, x.shape[1])])
    if chan is None or any(c % chan[0] for c in cch):
        how = ("every output channel reads all input channels" if chan is None or chan[0] == x.shape[1]
               else f"a chunk must hold whole groups of {chan[0]} input channels")
        fix = "input.rechunk({1: -1})" if chan is None or chan[0] == x.shape[1] else \
            f"input.rechunk({{1: {chan[0]} * m}}) for a whole number m, or input.rechunk({{1: -1}})"
        raise ValueError(f"input is chunked along the channel axis (chunks {cch}) but {fname}: {how}; "
                         f"rechunk with {fix}")
    starts = np.cumsum((0,) + cch)
    return _Axis(tuple(c // chan[0] * chan[1] for c in cch), zip(starts[:-1], starts[1:]))


def _nn_map(fname, x, nd, probe, weights, bias, kwargs, chan, geometry, halo_kwargs, kind):
    """Shared body of the nn functions: batch blockwise, channels by ``chan``, spatial halos.

    ``geometry(d, n, chunks, m)`` gives, for a chunked spatial dim, (output chunks,
    input ranges, crops or None, halo depth); ``halo_kwargs`` are the in-memory
    arguments then (no padding: the halo holds it).
    """
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    c_out = probe.shape[1]
    ch = _channel_axis(x, fname, chan, c_out)
    spatial_chunked = any(len(c) > 1 for c in x.chunks[2:])
    crops = None
    if geometry is None:                    # pointwise: every output reads its own position
        axes = [_blockwise_axis(c) for c in x.chunks]
        axes[1] = ch
        func = functools.partial(_nn_block, fname, kwargs, chan)
    elif not spatial_chunked:
        axes = [_blockwise_axis(x.chunks[0]), ch] + [_Axis((m,), [(0, n)]) for m, n in
                                                     zip(probe.shape[2:], x.shape[2:])]
        func = functools.partial(_nn_block, fname, kwargs, chan)
    else:
        depths = [0, 0] + [geometry(d, x.shape[2 + d], None, probe.shape[2 + d])[3] for d in range(nd)]
        x = _min_chunks(x, depths)
        axes = [_blockwise_axis(x.chunks[0]), ch]
        crops = []
        for d in range(nd):
            out, ranges, crop, _ = geometry(d, x.shape[2 + d], x.chunks[2 + d], probe.shape[2 + d])
            axes.append(_Axis(out, ranges, kind))
            crops.append(crop)
        func = functools.partial(_nn_block, fname, halo_kwargs, chan)
    cstarts = np.cumsum((0,) + tuple(x.chunks[1]))

    def block_args(j):
        crop = None if crops is None or all(c is None for c in crops) else \
            tuple(c[j[2 + d]] for d, c in enumerate(crops))
        return (int(cstarts[j[1]]), int(cstarts[j[1] + 1])), crop

    y = _halo_map(x, func, axes, probe.dtype, fname, block_args=block_args,
                  consts=tuple(weights) + (bias,), fill=np.zeros((), x.dtype))
    return y[0] if unbatched else y


def _nn_operands(fname, input, nd, weights, bias):
    x = _big(input, "input")
    ws = [_small(w, n) for w, n in weights]
    b = _small(bias, "bias")
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"input must be {nd + 1}-D (unbatched (C, *spatial)) or {nd + 2}-D (batched "
                         f"(N, C, *spatial)) for {fname}; got a {x.ndim}-D dask array of shape {x.shape}")
    probe_x = np.empty((0,) + x.shape[-(nd + 1):], dtype=x.dtype)
    return x, ws, b, probe_x


def _conv_like(fname, input, weights, bias, nd, stride, padding, dilation, padding_mode, groups, chan_how):
    fn = getattr(pyconv.nn, fname)
    x, ws, b, probe_x = _nn_operands(fname, input, nd, weights, bias)
    extra = {} if groups is None else {"groups": groups}
    pm = {} if padding_mode is None else {"padding_mode": padding_mode}
    probe = fn(probe_x, *ws, b, stride=stride, padding=padding, dilation=dilation, **extra, **pm)
    w = ws[0]
    ksz = w.shape[2:]
    st, dil = _per_dim(stride, nd), _per_dim(dilation, nd)
    pads = _pad_pairs(padding, x.shape[-nd:], ksz, st, dil)
    c_in = x.shape[-(nd + 1)]
    if chan_how == "conv":
        chan = (c_in // groups, probe.shape[1] // groups, "conv")
    elif chan_how == "depthwise":
        chan = (1, probe.shape[1] // max(1, c_in), "depthwise")
    else:
        chan = None

    def geometry(d, n, chunks, m):
        k = dil[d] * (ksz[d] - 1) + 1
        s, (pb, _) = st[d], pads[d]
        if chunks is None:
            return None, None, None, k - 1
        out = _out_bounds(chunks, m, lambda b: -(-(b + pb - (k - 1) // 2) // s))
        return out, _ranges(out, lambda o0, o1: (o0 * s - pb, (o1 - 1) * s - pb + k)), None, k - 1

    kwargs = dict(stride=stride, padding=padding, dilation=dilation, **extra, **pm)
    halo_kwargs = dict(stride=stride, padding=((0, 0),) * nd, dilation=dilation, **extra)
    return _nn_map(fname, x, nd, probe, ws, b, kwargs, chan, geometry, halo_kwargs,
                   _PAD_KIND[padding_mode or "zeros"])


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """:func:`pyconv.nn.conv1d` of a dask ``input`` (lazy): batch, channel-group and spatial chunks.

    Spatial chunks read halos of the input (the padding mode applied at the
    array's edges); channel chunks must hold whole groups.

    Parameters
    ----------
    input : dask.array.Array or array_like
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``, lazy: batch and
        spatial axes chunked freely (spatial chunks read halos), channel chunks as below.
    weight : array_like
        ``(C_out, C_in / groups, *kernel)``, in memory.
    bias : array_like or None, optional
        ``(C_out,)``, in memory.
    stride, padding, dilation : int or tuple, optional
        As the in-memory function (``padding`` also 'same' or 'valid'); padding is
        applied at the array's edges only.
    groups : int, optional
        Channel chunks must hold whole groups of ``C_in / groups`` channels.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, optional
        Extension at the array's edges.

    Returns
    -------
    out : dask.array.Array
        Lazy ``(N, C_out, *spatial_out)``, batch chunks kept, spatial chunks mapped
        through the stride.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((4, 1, 10), chunks=(2, 1, 4))
    >>> y = pyconv.dask.conv1d(x, np.ones((1, 1, 3)), padding=1)
    >>> y.chunks
    ((2, 2), (1,), (4, 4, 2))
    >>> y[0, 0].compute()
    array([2., 3., 3., 3., 3., 3., 3., 3., 3., 2.])
    """
    return _conv_like("conv1d", input, ((weight, "weight"),), bias, 1, stride, padding, dilation,
                      padding_mode, groups, "conv")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """:func:`pyconv.nn.conv2d` of a dask ``input`` (lazy); see :func:`conv1d`.

    Parameters
    ----------
    input : dask.array.Array or array_like
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``, lazy: batch and
        spatial axes chunked freely (spatial chunks read halos), channel chunks as below.
    weight : array_like
        ``(C_out, C_in / groups, *kernel)``, in memory.
    bias : array_like or None, optional
        ``(C_out,)``, in memory.
    stride, padding, dilation : int or tuple, optional
        As the in-memory function (``padding`` also 'same' or 'valid'); padding is
        applied at the array's edges only.
    groups : int, optional
        Channel chunks must hold whole groups of ``C_in / groups`` channels.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, optional
        Extension at the array's edges.

    Returns
    -------
    out : dask.array.Array
        Lazy ``(N, C_out, *spatial_out)``, batch chunks kept, spatial chunks mapped
        through the stride.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((8, 3, 16, 16), dtype=np.float32, chunks=(2, 3, 8, 8))
    >>> y = pyconv.dask.conv2d(x, np.ones((4, 3, 3, 3), np.float32), stride=2, padding=1)
    >>> y.shape, y.chunks[2], y.dtype
    ((8, 4, 8, 8), (4, 4), dtype('float32'))
    """
    return _conv_like("conv2d", input, ((weight, "weight"),), bias, 2, stride, padding, dilation,
                      padding_mode, groups, "conv")


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """:func:`pyconv.nn.conv3d` of a dask ``input`` (lazy); see :func:`conv1d`.

    Parameters
    ----------
    input : dask.array.Array or array_like
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``, lazy: batch and
        spatial axes chunked freely (spatial chunks read halos), channel chunks as below.
    weight : array_like
        ``(C_out, C_in / groups, *kernel)``, in memory.
    bias : array_like or None, optional
        ``(C_out,)``, in memory.
    stride, padding, dilation : int or tuple, optional
        As the in-memory function (``padding`` also 'same' or 'valid'); padding is
        applied at the array's edges only.
    groups : int, optional
        Channel chunks must hold whole groups of ``C_in / groups`` channels.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, optional
        Extension at the array's edges.

    Returns
    -------
    out : dask.array.Array
        Lazy ``(N, C_out, *spatial_out)``, batch chunks kept, spatial chunks mapped
        through the stride.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((1, 1, 6, 6, 6), chunks=(1, 1, 3, 3, 3))
    >>> float(pyconv.dask.conv3d(x, np.ones((1, 1, 3, 3, 3)), padding='same')[0, 0, 2, 2, 2].compute())
    27.0
    """
    return _conv_like("conv3d", input, ((weight, "weight"),), bias, 3, stride, padding, dilation,
                      padding_mode, groups, "conv")


def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """:func:`pyconv.nn.depthwise_conv2d` of a dask ``input`` (lazy); channels may be chunked freely.

    Parameters
    ----------
    input : dask.array.Array or array_like
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``, lazy: batch and
        spatial axes chunked freely (spatial chunks read halos), channels chunked freely.
    weight : array_like
        ``(C_in * multiplier, 1, kH, kW)``, in memory.
    bias : array_like or None, optional
        ``(C_out,)``, in memory.
    stride, padding, dilation : int or tuple, optional
        As :func:`pyconv.nn.depthwise_conv2d`; padding applied at the array's edges.

    Returns
    -------
    out : dask.array.Array
        Lazy ``(N, C_out, *spatial_out)``, batch chunks kept, spatial chunks mapped
        through the stride.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((2, 4, 8, 8), chunks=(1, 1, 4, 4))
    >>> y = pyconv.dask.depthwise_conv2d(x, np.ones((8, 1, 3, 3)), padding=1)
    >>> y.chunks[1], float(y[1, 7, 0, 0].compute())
    ((2, 2, 2, 2), 4.0)
    """
    return _conv_like("depthwise_conv2d", input, ((weight, "weight"),), bias, 2, stride, padding, dilation,
                      None, None, "depthwise")


def separable_conv2d(input, depthwise_weight, pointwise_weight, bias=None, stride=1, padding=0, dilation=1):
    """:func:`pyconv.nn.separable_conv2d` of a dask ``input`` (lazy); channels in one chunk.

    Parameters
    ----------
    input : dask.array.Array or array_like
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``, lazy: batch and
        spatial axes chunked freely (spatial chunks read halos), channels in one chunk.
    depthwise_weight : array_like
        ``(C_in * multiplier, 1, kH, kW)``, in memory.
    pointwise_weight : array_like
        ``(C_out, C_in * multiplier, 1, 1)``, in memory.
    bias : array_like or None, optional
        ``(C_out,)``, in memory.
    stride, padding, dilation : int or tuple, optional
        Of the depthwise step; padding applied at the array's edges.

    Returns
    -------
    out : dask.array.Array
        Lazy ``(N, C_out, *spatial_out)``, batch chunks kept, spatial chunks mapped
        through the stride.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((2, 3, 8, 8), chunks=(1, 3, 4, 4))
    >>> y = pyconv.dask.separable_conv2d(x, np.ones((3, 1, 3, 3)), np.ones((5, 3, 1, 1)), padding=1)
    >>> y.shape, float(y[0, 0, 4, 4].compute())
    ((2, 5, 8, 8), 27.0)
    """
    return _conv_like("separable_conv2d", input, ((depthwise_weight, "depthwise_weight"),
                                                  (pointwise_weight, "pointwise_weight")),
                      bias, 2, stride, padding, dilation, None, None, None)


def pointwise_conv2d(input, weight, bias=None, groups=1):
    """:func:`pyconv.nn.pointwise_conv2d` of a dask ``input`` (lazy): no halo, channels by groups.

    Parameters
    ----------
    input : dask.array.Array or array_like
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``, lazy: batch and
        spatial axes chunked freely (no halo).
    weight : array_like
        ``(C_out, C_in / groups)`` or ``(C_out, C_in / groups, 1, 1)``, in memory.
    bias : array_like or None, optional
        ``(C_out,)``, in memory.
    groups : int, optional
        Channel chunks must hold whole groups of ``C_in / groups`` channels.

    Returns
    -------
    out : dask.array.Array
        Lazy ``(N, C_out, *spatial_out)``, batch and spatial chunks kept.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((2, 4, 5, 5), chunks=(1, 2, 5, 5))
    >>> y = pyconv.dask.pointwise_conv2d(x, np.ones((6, 2)), groups=2)
    >>> y.chunks[1], float(y.sum().compute())
    ((3, 3), 600.0)
    """
    fname = "pointwise_conv2d"
    x, ws, b, probe_x = _nn_operands(fname, input, 2, ((weight, "weight"),), bias)
    probe = pyconv.nn.pointwise_conv2d(probe_x, *ws, b, groups=groups)
    chan = (x.shape[-3] // groups, probe.shape[1] // groups, "conv")
    return _nn_map(fname, x, 2, probe, ws, b, {"groups": groups}, chan, None, None, "fill")


def _transpose_like(fname, nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    fn = getattr(pyconv.nn, fname)
    x, ws, b, probe_x = _nn_operands(fname, input, nd, ((weight, "weight"),), bias)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                  dilation=dilation)
    probe = fn(probe_x, *ws, b, **kwargs)
    ksz = ws[0].shape[2:]
    st, pd_, dil = _per_dim(stride, nd), _per_dim(padding, nd), _per_dim(dilation, nd)
    chan = (x.shape[-(nd + 1)] // groups, probe.shape[1] // groups, "transpose")

    def geometry(d, n, chunks, m):
        s, p, e = st[d], pd_[d], dil[d] * (ksz[d] - 1)
        depth = -(-e // s) + 1
        if chunks is None:
            return None, None, None, depth
        out = _out_bounds(chunks, m, lambda b: b * s - p)
        ranges, crop = [], []
        for o0, o1 in _ranges(out, lambda o0, o1: (o0, o1)):
            i_lo = min(-(-(o0 + p - e) // s), (o0 + p) // s)
            i_hi = max((o1 - 1 + p) // s, -(-(o1 + p - e - 1) // s))
            ranges.append((i_lo, i_hi + 1))
            crop.append((o0 - (i_lo * s - p), o1 - o0))
        return out, ranges, crop, depth

    halo_kwargs = dict(stride=stride, padding=0, output_padding=0, groups=groups, dilation=dilation)
    return _nn_map(fname, x, nd, probe, ws, b, kwargs, chan, geometry, halo_kwargs, "fill")


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """:func:`pyconv.nn.conv_transpose1d` of a dask ``input`` (lazy).

    A spatial output chunk reads the input positions whose taps land in it.

    Parameters
    ----------
    input : dask.array.Array or array_like
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``, lazy: batch and
        spatial axes chunked freely (spatial chunks read halos), channel chunks hold whole groups.
    weight : array_like
        ``(C_in, C_out / groups, *kernel)``, in memory.
    bias : array_like or None, optional
        ``(C_out,)``, in memory.
    stride, padding, output_padding, dilation : int or tuple, optional
        As the in-memory function.
    groups : int, optional
        Channel chunks must hold whole groups of ``C_in / groups`` channels.

    Returns
    -------
    out : dask.array.Array
        Lazy ``(N, C_out, *spatial_out)``, batch chunks kept, spatial chunks scaled
        by the stride.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((1, 1, 6), chunks=(1, 1, 2))
    >>> pyconv.dask.conv_transpose1d(x, np.ones((1, 1, 3)), stride=2).compute()
    array([[[1., 1., 2., 1., 2., 1., 2., 1., 2., 1., 2., 1., 1.]]])
    """
    return _transpose_like("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding,
                           groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """:func:`pyconv.nn.conv_transpose2d` of a dask ``input`` (lazy); see :func:`conv_transpose1d`.

    Parameters
    ----------
    input : dask.array.Array or array_like
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``, lazy: batch and
        spatial axes chunked freely (spatial chunks read halos), channel chunks hold whole groups.
    weight : array_like
        ``(C_in, C_out / groups, *kernel)``, in memory.
    bias : array_like or None, optional
        ``(C_out,)``, in memory.
    stride, padding, output_padding, dilation : int or tuple, optional
        As the in-memory function.
    groups : int, optional
        Channel chunks must hold whole groups of ``C_in / groups`` channels.

    Returns
    -------
    out : dask.array.Array
        Lazy ``(N, C_out, *spatial_out)``, batch chunks kept, spatial chunks scaled
        by the stride.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((2, 4, 6, 6), chunks=(1, 2, 3, 3))
    >>> pyconv.dask.conv_transpose2d(x, np.ones((4, 3, 3, 3)), stride=2, padding=1, groups=2).shape
    (2, 6, 11, 11)
    """
    return _transpose_like("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding,
                           groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """:func:`pyconv.nn.conv_transpose3d` of a dask ``input`` (lazy); see :func:`conv_transpose1d`.

    Parameters
    ----------
    input : dask.array.Array or array_like
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``, lazy: batch and
        spatial axes chunked freely (spatial chunks read halos), channel chunks hold whole groups.
    weight : array_like
        ``(C_in, C_out / groups, *kernel)``, in memory.
    bias : array_like or None, optional
        ``(C_out,)``, in memory.
    stride, padding, output_padding, dilation : int or tuple, optional
        As the in-memory function.
    groups : int, optional
        Channel chunks must hold whole groups of ``C_in / groups`` channels.

    Returns
    -------
    out : dask.array.Array
        Lazy ``(N, C_out, *spatial_out)``, batch chunks kept, spatial chunks scaled
        by the stride.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((1, 1, 4, 4, 4), chunks=2)
    >>> pyconv.dask.conv_transpose3d(x, np.ones((1, 2, 2, 2, 2)), stride=2).chunks[2:]
    ((4, 4), (4, 4), (4, 4))
    """
    return _transpose_like("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding,
                           groups, dilation)


# --------------------------------------------------------------------------- grad

def _grad_input_block(nd, fname, kwargs, x_spec, go, w, b):
    """The input gradient of one batch chunk (the in-memory backward's own kernels).

    It reads the chunk's grad_output alone: the input enters only by its shape and dtype
    (``x_spec``), so the task runs where grad_output lives and never waits for the input
    chunk to travel."""
    from pyconv import grad
    kwargs = kwargs.value
    shape, dtype = x_spec.value
    with pyconv.threads(task_threads()):
        c = grad._conv_setup(np.broadcast_to(np.zeros((), dtype), shape), w, b, nd=nd, **kwargs)
        return grad._conv_input_grad(c, grad._grad_output(go, c.out_shape, c.batched, c.dtype, fname))


def _grad_params_block(nd, fname, kwargs, go, x, w, b):
    """One batch chunk's weight and bias gradients packed in one small row ``(w.size
    [+ b.size],)``: the only arrays the tree reduction moves between workers."""
    from pyconv import grad
    kwargs = kwargs.value
    with pyconv.threads(task_threads()):
        c = grad._conv_setup(x, w, b, nd=nd, **kwargs)
        go = grad._grad_output(go, c.out_shape, c.batched, c.dtype, fname)
        gw = grad._conv_weight_grad(c, go)
        parts = [gw.ravel()] if b is None else [gw.ravel(), grad._bias_grad(go, c.dtype).astype(gw.dtype)]
    return np.concatenate(parts)


def _sum_rows(*rows):
    """The sum of packed gradient rows, added in the order given (a tree node)."""
    total = rows[0].copy()
    for r in rows[1:]:
        total += r
    return total


def _unpack(start, stop, shape, *rows):
    """One gradient (weight or bias): its part ``[start, stop)`` of the packed rows, summed in the
    order given (the tree's root, one per gradient: no task in between)."""
    total = rows[0][start:stop].copy()
    for r in rows[1:]:
        total += r[start:stop]
    return total.reshape(shape)


def _spatial_gx_block(nd, geo, block, args, w):
    """Input gradient of one input chunk from its region of grad_output (zeros outside):
    the transposed convolution with the chunk's own padding, ``args`` per spatial dim."""
    from pyconv import grad
    from pyconv._utils import contiguous
    stride, dil, groups, dtype = geo
    shape = (block.shape[0], w.shape[1] * groups) + tuple(n for n, _ in args)
    return grad._input_core(contiguous(block, dtype), contiguous(w, dtype), shape, stride,
                            tuple(p for _, p in args), dil, groups)


def _spatial_gw_block(nd, geo, block, args, go, w, b):
    """Weight and bias gradients of one grad_output chunk from the (extended) input region its
    windows read, packed in one row shaped ``(1, P, 1, ...)``."""
    from pyconv import grad
    from pyconv._utils import contiguous
    stride, dil, groups, dtype = geo
    go = contiguous(go, dtype)
    gw = grad._weight_core(contiguous(block, dtype), go, w.shape, stride, ((0, 0),) * nd, dil, groups)
    parts = [gw.ravel()] if b is None else [gw.ravel(), grad._bias_grad(go, dtype).astype(gw.dtype)]
    return np.concatenate(parts).reshape((1, -1) + (1,) * nd)


def _spatial_backward(fname, nd, go, x, w, b, kwargs, probe):
    """The backward of a batched input chunked along spatial axes too (zeros padding).

    grad_input: each input chunk reads the grad_output positions whose windows touch it
    (zeros beyond the output) and runs the transposed convolution with a padding of its
    own.  grad_weight/bias: each grad_output chunk reads the input region its windows
    cover (extended as the padding extends it) and gives one packed row; rows are
    tree-summed.  Both through the halo engine."""
    from pyconv import grad
    da = _da()
    c = grad._conv_setup(np.broadcast_to(np.zeros((), x.dtype), (1,) + x.shape[1:]), w, b, nd=nd, **kwargs)
    stride, dil, groups, dtype = c.stride, c.dilation, c.groups, c.dtype
    geo = (stride, dil, groups, dtype)
    go = go.rechunk((x.chunks[0], -1) + go.chunks[2:])
    c_in, c_out = x.shape[1], go.shape[1]
    # grad_input: per input chunk [i0, i1), outputs [oa, ob) and the local padding (pl, pr)
    axes, per_dim = [_blockwise_axis(x.chunks[0]), _Axis((c_in,), [(0, c_out)])], []
    for d in range(nd):
        s, e, pb = stride[d], dil[d] * (w.shape[2 + d] - 1), c.pads[d][0]
        starts = np.cumsum((0,) + x.chunks[2 + d])
        ranges, args = [], []
        for i0, i1 in zip(starts[:-1].tolist(), starts[1:].tolist()):
            oa = (i0 + pb - e) // s                      # local padding pl = i0 + pb - oa*s >= e
            ob = (i1 - 1 + pb) // s + 1                  # every output whose window starts in the chunk
            pl = i0 + pb - oa * s
            pr = (ob - oa - 1) * s + e + 1 - (i1 - i0) - pl
            if pr < 0:                                   # stride > kernel extent: one zero output more
                ob, pr = ob + 1, pr + s
            ranges.append((oa, ob))
            args.append((i1 - i0, (pl, pr)))
        axes.append(_Axis(x.chunks[2 + d], ranges, "fill"))
        per_dim.append(args)
    gx = _halo_map(go, functools.partial(_spatial_gx_block, nd, geo), axes, probe[0].dtype,
                   f"{fname}-gx", block_args=lambda j: tuple(per_dim[d][j[2 + d]] for d in range(nd)),
                   consts=(w,), fill=np.zeros((), go.dtype))
    # grad_weight/bias: per grad_output chunk, the input region its windows read
    P = w.size + (0 if b is None else b.shape[0])
    kind = _PAD_KIND[kwargs["padding_mode"]]
    axes = [_Axis((1,) * len(x.chunks[0]), _blockwise_axis(x.chunks[0]).ranges), _Axis((P,), [(0, c_in)])]
    for d in range(nd):
        s, e, pb = stride[d], dil[d] * (w.shape[2 + d] - 1), c.pads[d][0]
        axes.append(_Axis((1,) * len(go.chunks[2 + d]),
                          _ranges(go.chunks[2 + d], lambda o0, o1: (o0 * s - pb, (o1 - 1) * s - pb + e + 1)), kind))
    rows = _halo_map(x, functools.partial(_spatial_gw_block, nd, geo), axes, probe[1].dtype,
                     f"{fname}-gwb", block_args=lambda j: None, consts=(w, b), fill=np.zeros((), x.dtype),
                     extra=lambda j: ((go.name,) + tuple(j[:1]) + (0,) + tuple(j[2:]),), extra_deps=(go,))
    total = rows.sum(axis=(0,) + tuple(range(2, 2 + nd)), split_every=4)
    gw = total[:w.size].reshape(w.shape)
    return gx, gw, (None if b is None else total[w.size:])


def _backward(fname, nd, grad_output, input, weight, bias, stride, padding, dilation, groups, padding_mode):
    """The data-parallel backward pass: per batch chunk one task for its input gradient (reading
    that chunk's grad_output only) and one for its packed weight and bias gradients, the rows
    tree-summed over the chunks, the last level by the task unpacking each gradient."""
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
    da = _da()
    x, go = _big(input, "input"), _big(grad_output, "grad_output")
    w, b = _small(weight, "weight"), _small(bias, "bias")
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode)
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"input must be {nd + 1}-D (unbatched) or {nd + 2}-D (batched) for {fname}; "
                         f"got a {x.ndim}-D dask array of shape {x.shape}")
    unbatched = x.ndim == nd + 1
    if go.ndim != x.ndim:
        raise ValueError(f"grad_output must have {x.ndim} dims like input; got shape {go.shape}")
    if unbatched:
        x, go = x[None], go[None]
    probe = getattr(pyconv.grad, fname)(np.empty((0,) + go.shape[1:], go.dtype),
                                        np.empty((0,) + x.shape[1:], x.dtype), w, b, **kwargs)
    if go.shape[0] != x.shape[0]:
        raise ValueError(f"grad_output has batch size {go.shape[0]} but input has {x.shape[0]}")
    if len(x.chunks[1]) > 1:
        raise ValueError(f"{fname} on dask arrays cannot split the channels: input is chunked along axis 1 "
                         f"(chunks {x.chunks[1]}); rechunk with input.rechunk({{1: -1}})")
    if any(len(c) > 1 for c in x.chunks[2:]):
        if padding_mode != "zeros":
            raise ValueError(f"{fname} on dask arrays splits the spatial axes with padding_mode='zeros' only "
                             f"(the input gradient of {padding_mode!r} padding folds across the array); got "
                             f"input chunks {x.chunks}; rechunk with input.rechunk({{"
                             + ", ".join(f"{a}: -1" for a in range(2, x.ndim)) + "})")
        gx, gw, gb = _spatial_backward(fname, nd, go, x, w, b, kwargs, probe)
        return (gx[0] if unbatched else gx), gw, gb
    go = go.rechunk((x.chunks[0],) + tuple((s,) for s in go.shape[1:]))
    token = tokenize(x, go, w, b, kwargs, fname, _INLINE_CONST_BYTES)
    gxname, rname, sname, gwname, gbname = (f"pyconv-{fname}-{part}-{token}"
                                            for part in ("gx", "gwb", "gwbsum", "gw", "gb"))
    consts = {}
    wkey, bkey = _const_refs(consts, f"pyconv-{fname}-const", token, (w, b))
    zeros = (0,) * (x.ndim - 1)
    lit = _Lit(kwargs)
    gx_layer, red = dict(consts), dict(consts)
    rows = []
    for i, n in enumerate(x.chunks[0]):
        gkey, xkey = (go.name, i, *zeros), (x.name, i, *zeros)
        x_spec = _Lit(((n,) + x.shape[1:], x.dtype))
        gx_layer[(gxname, i, *zeros)] = (_grad_input_block, nd, fname, lit, x_spec, gkey, wkey, bkey)
        red[(rname, i)] = (_grad_params_block, nd, fname, lit, gkey, xkey, wkey, bkey)
        rows.append((rname, i))
    # tree of partial sums, fan-in 4, down to at most 4 nodes, which the two unpacking tasks (the
    # roots) add themselves; only the packed rows (w.size + b.size numbers) travel
    level = 0
    while len(rows) > 4:
        rows = [_tree_node(red, (sname, level, j // 4), rows[j:j + 4]) for j in range(0, len(rows), 4)]
        level += 1
    nw = w.size
    gw_layer = {**red, (gwname,) + (0,) * w.ndim: (_unpack, 0, nw, w.shape, *rows)}

    def array(name, layer, chunks, dtype):
        graph = HighLevelGraph.from_collections(name, layer, dependencies=[x, go])
        return da.Array(graph, name, chunks, meta=_meta(len(chunks), dtype))

    gx = array(gxname, gx_layer, x.chunks, probe[0].dtype)
    gw = array(gwname, gw_layer, tuple((s,) for s in w.shape), probe[1].dtype)
    gb = None
    if b is not None:
        gb_layer = {**red, (gbname, 0): (_unpack, nw, nw + b.shape[0], b.shape, *rows)}
        gb = array(gbname, gb_layer, ((b.shape[0],),), probe[2].dtype)
    return (gx[0] if unbatched else gx), gw, gb


def _tree_node(layer, key, children):
    """Add one node summing ``children`` to ``layer`` (a single child is passed through)."""
    if len(children) == 1:
        return children[0]
    layer[key] = (_sum_rows, *children)
    return key


def conv1d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros"):
    """:func:`pyconv.grad.conv1d_backward` over a batch split in dask chunks (lazy).

    Returns ``(grad_input, grad_weight, grad_bias)``: ``grad_input`` chunked like
    ``input``; ``grad_weight`` and ``grad_bias`` (None when ``bias`` is None)
    single-chunk arrays, the per-chunk gradients summed by a tree (fan-in 4).
    ``input`` may be chunked along the batch axis, and along spatial axes with
    ``padding_mode='zeros'``: then each input chunk's gradient reads a halo of
    ``grad_output`` and each ``grad_output`` chunk's weight rows a halo of ``input``.

    Parameters
    ----------
    grad_output : dask.array.Array or array_like
        Gradient of the forward's output, lazy; rechunked to ``input``'s batch chunks
        (spatial chunks free).
    input : dask.array.Array or array_like
        The forward's input, lazy: batch chunks, and spatial chunks with
        ``padding_mode='zeros'`` (halos as in the forward); channels in one chunk.
    weight : array_like
        The forward's weight, in memory.
    bias : array_like or None, optional
        The forward's bias, in memory; None gives no bias gradient.
    stride, padding, dilation, groups, padding_mode : optional
        The forward's arguments, as the in-memory backward.

    Returns
    -------
    grad_input : dask.array.Array
        Chunked like ``input``.
    grad_weight : dask.array.Array
        One chunk: the per-batch-chunk gradients tree-summed (fan-in 4).
    grad_bias : dask.array.Array or None
        One chunk, or None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((4, 1, 4), chunks=(1, 1, 4))
    >>> gx, gw, gb = pyconv.dask.conv1d_backward(da.ones((4, 1, 3), chunks=1), x, np.ones((1, 1, 2)), np.zeros(1))
    >>> gx.chunks[0], gw.chunks, gw.compute(), gb.compute()
    ((1, 1, 1, 1), ((1,), (1,), (2,)), array([[[12., 12.]]]), array([12.]))
    """
    return _backward("conv1d_backward", 1, grad_output, input, weight, bias, stride, padding, dilation,
                     groups, padding_mode)


def conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros"):
    """:func:`pyconv.grad.conv2d_backward` over a batch split in dask chunks (lazy); see
    :func:`conv1d_backward`.

    Parameters
    ----------
    grad_output : dask.array.Array or array_like
        Gradient of the forward's output, lazy; rechunked to ``input``'s batch chunks
        (spatial chunks free).
    input : dask.array.Array or array_like
        The forward's input, lazy: batch chunks, and spatial chunks with
        ``padding_mode='zeros'`` (halos as in the forward); channels in one chunk.
    weight : array_like
        The forward's weight, in memory.
    bias : array_like or None, optional
        The forward's bias, in memory; None gives no bias gradient.
    stride, padding, dilation, groups, padding_mode : optional
        The forward's arguments, as the in-memory backward.

    Returns
    -------
    grad_input : dask.array.Array
        Chunked like ``input``.
    grad_weight : dask.array.Array
        One chunk: the per-batch-chunk gradients tree-summed (fan-in 4).
    grad_bias : dask.array.Array or None
        One chunk, or None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((8, 3, 5, 5), dtype=np.float32, chunks=(2, 3, 5, 5))
    >>> g = da.ones((8, 4, 3, 3), dtype=np.float32, chunks=2)
    >>> gx, gw, gb = pyconv.dask.conv2d_backward(g, x, np.ones((4, 3, 3, 3), np.float32), np.zeros(4, np.float32), stride=2, padding=1)
    >>> gx.chunks[0], gw.dtype, gb.compute().tolist()
    ((2, 2, 2, 2), dtype('float32'), [72.0, 72.0, 72.0, 72.0])
    """
    return _backward("conv2d_backward", 2, grad_output, input, weight, bias, stride, padding, dilation,
                     groups, padding_mode)


def conv3d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros"):
    """:func:`pyconv.grad.conv3d_backward` over a batch split in dask chunks (lazy); see
    :func:`conv1d_backward`.

    Parameters
    ----------
    grad_output : dask.array.Array or array_like
        Gradient of the forward's output, lazy; rechunked to ``input``'s batch chunks
        (spatial chunks free).
    input : dask.array.Array or array_like
        The forward's input, lazy: batch chunks, and spatial chunks with
        ``padding_mode='zeros'`` (halos as in the forward); channels in one chunk.
    weight : array_like
        The forward's weight, in memory.
    bias : array_like or None, optional
        The forward's bias, in memory; None gives no bias gradient.
    stride, padding, dilation, groups, padding_mode : optional
        The forward's arguments, as the in-memory backward.

    Returns
    -------
    grad_input : dask.array.Array
        Chunked like ``input``.
    grad_weight : dask.array.Array
        One chunk: the per-batch-chunk gradients tree-summed (fan-in 4).
    grad_bias : dask.array.Array or None
        One chunk, or None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.ones((2, 1, 3, 3, 3), chunks=(1, 1, 3, 3, 3))
    >>> gx, gw, gb = pyconv.dask.conv3d_backward(da.ones((2, 2, 2, 2, 2), chunks=1), x, np.ones((2, 1, 2, 2, 2)))
    >>> float(gw.sum().compute()), gb is None
    (256.0, True)
    """
    return _backward("conv3d_backward", 3, grad_output, input, weight, bias, stride, padding, dilation,
                     groups, padding_mode)


# pyconv.dask.ndimage (its convolve/correlate are ndimage's, not signal's): built on the helpers above
from pyconv.dask import ndimage  # noqa: E402
# its other filters at this level too, as the same objects (convolve/correlate here stay signal's)
from pyconv.dask.ndimage import (convolve1d, correlate1d, gaussian_filter, gaussian_filter1d,  # noqa: E402
                                 gaussian_gradient_magnitude, gaussian_laplace, laplace, prewitt, sobel,
                                 uniform_filter, uniform_filter1d)
