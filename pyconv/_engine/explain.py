"""pyconv.explain: the plan a call would run, without running its kernels."""
import dataclasses
import sys

from pyconv._engine import plan as _plan


def explain(func, *args, **kwargs):
    """Return the plan ``func(*args, **kwargs)`` would run, without running its kernels.

    ``func`` is any convolution of :mod:`pyconv.signal`, :mod:`pyconv.nn` or
    :mod:`pyconv.grad`.  The call's arguments are checked exactly as a real call checks
    them (the same errors are raised); then, instead of each kernel, its plan is
    recorded.  Setting ``PYCONV_VERBOSE=1`` in the environment logs the plans of the
    calls that do run, one line per kernel on stderr, with their time.  Choices not yet
    measured on this machine are measured first, as the call itself would: the
    calibration at first use, and the timing of a dense layer that both direct kernels
    serve (on random data of its shapes; see the guide, "Which kernel runs a dense
    layer"), so the plan shown is the one the call takes.

    Parameters
    ----------
    func : callable
        A public function of :mod:`pyconv.signal`, :mod:`pyconv.nn` or :mod:`pyconv.grad`.
    *args, **kwargs
        The arguments of the call to explain, exactly as ``func`` takes them.

    Returns
    -------
    Plan
        With ``.algorithm`` (a short name: 'dense_oc', 'dense', 'gemm', 'thin_s1', 'phases', 'direct',
        'fft', 'oa', ...), ``.threads``, ``.workspace_bytes`` (scratch memory beyond the
        output), ``.geometry`` (shapes, stride, padding, dilation, groups) and a one-line
        ``str()``.  A call that runs several kernels (a backward pass: input and weight
        gradients; a separable layer) returns a ``Plans`` sequence with the same
        attributes (``.algorithm`` joins the steps' names with '+').  A call on dask
        arrays returns a :class:`DaskPlan`: what :mod:`pyconv.dask` will run per chunk
        (the plans of the first output block, halo included in their shapes), with the
        output's chunks and block count.  The graph is built but not run: only the
        input chunks that first block reads are loaded, and no kernel runs.

    Examples
    --------
    >>> import numpy as np, pyconv
    >>> from pyconv import nn
    >>> p = pyconv.explain(nn.conv2d, np.ones((1, 16, 32, 32), np.float32),
    ...                    np.ones((32, 16, 3, 3), np.float32), padding=1)
    >>> str(p.algorithm), p.algorithm == 'dense_oc', p.threads >= 1
    ('dense_oc', True, True)
    >>> print(pyconv.explain(pyconv.convolve, np.ones(10), np.ones(3), method='direct'))
    signal direct 10 * 3 -> 12 float64 threads=1
    """
    if not callable(func):
        raise TypeError(f"func must be a pyconv function; got {func!r}")
    if "dask" in sys.modules:
        from pyconv._dask_dispatch import dask_argument
        lazy_input = dask_argument(args, kwargs)
        if lazy_input is not None:
            return _explain_dask(func, args, kwargs, lazy_input)
    with _plan.dry_run() as plans:
        func(*args, **kwargs)
    if not plans:
        raise ValueError(f"{getattr(func, '__name__', func)!r} ran no convolution kernel for these arguments "
                         "(not a pyconv convolution, or a trivial case such as an empty or 0-d input)")
    return plans[0] if len(plans) == 1 else _plan.Plans(tuple(plans))


@dataclasses.dataclass(frozen=True, eq=False)
class DaskPlan:
    """What a call on dask arrays runs (:func:`explain`): the plans of one output block.

    Attributes
    ----------
    block : Plan or Plans
        The kernels of the first output block (of every output, for a call returning
        several), in execution order; their geometry is the block's, halo included.
    shape : tuple
        The (first) output's shape.
    chunks : tuple
        Its chunks, per axis.
    input_chunks : tuple
        The chunks of the first dask argument.
    blocks : int
        The number of output blocks (each runs a plan like ``block``'s).
    algorithm, threads, workspace_bytes, geometry
        Those of ``block`` (per block).
    """

    block: object
    shape: tuple
    chunks: tuple
    input_chunks: tuple
    blocks: int

    @property
    def algorithm(self):
        return self.block.algorithm

    @property
    def threads(self):
        return self.block.threads

    @property
    def workspace_bytes(self):
        return self.block.workspace_bytes

    @property
    def geometry(self):
        return self.block.geometry

    def __str__(self):
        def size(c):
            return "x".join(str(max(v) if v else 0) for v in c) or "()"
        return (f"dask: {self.blocks} blocks of up to {size(self.chunks)} "
                f"(output {'x'.join(map(str, self.shape)) or '()'}, input chunks {size(self.input_chunks)}); "
                f"per block: {self.block}")

    __repr__ = __str__


def _explain_dask(func, args, kwargs, lazy_input):
    """:func:`explain` of a call on dask arrays: build the lazy result (checking the arguments
    as the call does), then dry-run its first block on the calling thread."""
    import dask

    with _plan.dry_run():
        result = func(*args, **kwargs)          # the graph only; the in-memory probe's plan is dropped
    outputs = [r for r in (result if isinstance(result, tuple) else (result,))
               if dask.is_dask_collection(r) and getattr(r, "ndim", None) is not None]
    if not outputs:
        raise ValueError(f"{getattr(func, '__name__', func)!r} returned no dask array for these arguments")
    first = [r.blocks[(0,) * r.ndim] if r.ndim else r for r in outputs]
    with _plan.dry_run() as plans:
        dask.compute(*first, scheduler="sync")  # executors record plans and return zeros: no kernel runs
    steps = []
    for p in plans:                             # a plan per distinct block shape (plans are cached objects)
        if not any(p is q for q in steps):
            steps.append(p)
    if not steps:
        raise ValueError(f"{getattr(func, '__name__', func)!r} runs no convolution kernel on the first block "
                         "of these arguments (an empty or trivial case)")
    out = outputs[0]
    return DaskPlan(steps[0] if len(steps) == 1 else _plan.Plans(tuple(steps)), tuple(out.shape),
                    tuple(out.chunks), tuple(lazy_input.chunks), int(out.npartitions))
