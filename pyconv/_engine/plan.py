"""Plans: which algorithm runs a call, with how many threads and how much workspace.

A planner is a pure function of (geometry, dtype, thread count, tuning) that returns
a :class:`Plan`; :func:`cached` memoises it in a bounded LRU keyed by exactly those
inputs (plus any algorithm forced by :func:`force`), so a repeated call skips the
choice.  Executors run a plan through :func:`run`, which is also where
``PYCONV_VERBOSE=1`` prints one line per executed kernel and where
:func:`pyconv.explain` (a dry run) records plans instead of running them.
"""
import contextlib
import dataclasses
import enum
import functools
import os
import sys
import threading
import time
from collections import OrderedDict

import numpy as np

from pyconv._engine import tuning as _tuning
from pyconv._threads import get_num_threads


class Algorithm(str, enum.Enum):
    """Every algorithm pyconv can run (values are the short names :func:`pyconv.explain` shows)."""

    FILL = "fill"                # no tap meets the input: the output is the bias (or zeros)
    ZEROS = "zeros"              # an empty operand: the gradient is zero
    THIN_S1 = "thin_s1"          # thin_direct.direct_conv_s1: whole-plane pass per tap, padded copy
    THIN_REG = "thin_reg"        # thin_direct.direct_conv_reg: output rows in registers, padded copy
    THIN_PHASE = "thin_phase"    # dense_direct.thin_phase: per-thread phase planes (strided thin groups)
    THIN_ROW = "thin_row"        # thin_direct.direct_conv: rows, padded taps skipped in place
    POINTWISE = "pointwise"      # dense_direct.dense_conv reading the input in place (1x1)
    PANEL = "panel"              # panel.panel_forward / panel_weight: 1x1 as packed per-sample products
    DENSE = "dense"              # dense_direct.dense_conv / dense_weight over per-thread phase planes
    DENSE_OC = "dense_oc"        # dense_direct.dense_oc: vectors along output channels, padded row copies
    DENSE_POS = "dense_pos"      # weight gradient: dense_direct.dense_weight with vectors along positions
    GEMM = "gemm"                # nn_gemm: im2col + GEMM (forward, weight) or GEMM + col2im (transposed)
    PHASES = "phases"            # transposed: dense_direct.dense_conv, one sub-problem per output phase
    PHASES_OC = "phases_oc"      # transposed: dense_direct.phases_oc, dense_oc's tiles per output phase
    FLIP_CONV = "flip_conv"      # transposed / input gradient at stride 1: a forward convolution
    TRANSPOSED = "transposed"    # input gradient: the transposed convolution of grad_output
    TRANSPOSED_CROP = "transposed_crop"  # ... unpadded, then cropped (asymmetric padding)
    MATMUL = "matmul"            # 1x1: batched matrix products on BLAS's one thread each, on pyconv's team
    THIN = "thin"                # weight gradient: grad_direct.direct_weight (thin groups)
    DIRECT = "direct"            # pyconv.signal: direct N-d correlation (pyconv._kernels.direct)
    FFT = "fft"                  # pyconv.signal: one FFT of the full size (scipy.fft)
    OVERLAP_ADD = "oa"           # pyconv.signal: overlap-add FFT blocks

    def __str__(self):
        return self.value


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """How one operation runs (see :func:`pyconv.explain`).

    Attributes
    ----------
    op : str
        'forward', 'transposed', 'input_grad', 'weight_grad', 'signal', ...
    algorithm : Algorithm
        A str enum: compares equal to its short name ('dense', 'gemm', 'fft', ...).
    geometry : ConvGeometry or a signal geometry
    dtype : numpy.dtype
        The dtype the kernel computes in.
    threads : int
    workspace_bytes : int
        Scratch memory the algorithm allocates beyond its output.
    tiles : tuple of (name, value)
        Algorithm-specific blocking (tile lengths, chunks, ...).
    sub : Plan or None
        The plan this one delegates to (e.g. the forward convolution of ``flip_conv``).
    prune : geometry.Prune or None
        Taps dropped because they only read padding (the unpruned geometry's plan runs
        instead when a dropped weight -- or, for the weight gradient, grad_output -- is
        not finite).
    nonfinite : Plan or None
        The plan run instead when the weight holds an Inf/NaN (where padded zeros would
        otherwise turn it into NaN).
    candidates : tuple of Algorithm
        Every algorithm able to serve this geometry (what :func:`force` may pick).
    """

    op: str
    algorithm: Algorithm
    geometry: object
    dtype: np.dtype
    threads: int = 1
    workspace_bytes: int = 0
    tiles: tuple = ()
    sub: object = None
    prune: object = None
    nonfinite: object = None
    candidates: tuple = ()
    data: object = None          # cached arrays / values the executor needs (layouts)

    def tile(self, name, default=None):
        for k, v in self.tiles:
            if k == name:
                return v
        return default

    def leaf(self):
        """The plan that finally runs a kernel (following ``sub``)."""
        p = self
        while p.sub is not None and p.algorithm in (Algorithm.FLIP_CONV, Algorithm.TRANSPOSED,
                                                     Algorithm.TRANSPOSED_CROP):
            p = p.sub
        return p

    def __str__(self):
        s = f"{self.op} {self.algorithm.value}"
        if self.sub is not None:
            s += f"({self.sub.algorithm.value})"
        s += f" {self.geometry} {np.dtype(self.dtype).name} threads={self.threads}"
        if self.workspace_bytes:
            s += f" workspace={self.workspace_bytes}B"
        if self.tiles:
            s += " " + " ".join(f"{k}={v}" for k, v in self.tiles)
        if self.prune is not None:
            s += " pruned"
        return s

    __repr__ = __str__


@dataclasses.dataclass(frozen=True, eq=False)
class Plans:
    """The plans of a call that runs several kernels, in execution order (:func:`pyconv.explain`)."""

    steps: tuple

    @property
    def algorithm(self):
        return "+".join(p.algorithm.value for p in self.steps)

    @property
    def threads(self):
        return max(p.threads for p in self.steps)

    @property
    def workspace_bytes(self):
        return max(p.workspace_bytes for p in self.steps)

    @property
    def geometry(self):
        return self.steps[0].geometry

    def __iter__(self):
        return iter(self.steps)

    def __len__(self):
        return len(self.steps)

    def __str__(self):
        return " ; ".join(str(p) for p in self.steps)

    __repr__ = __str__


# --------------------------------------------------------------------------- cache

class LRU:
    """A bounded least-recently-used dict (thread-safe enough: a race only recomputes)."""

    def __init__(self, maxsize):
        self.maxsize = maxsize
        self.d = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        # no lock: OrderedDict's C methods are atomic under the GIL, and a key evicted by
        # another thread between the two steps only loses its recency (the hit stands)
        d = self.d
        try:
            v = d[key]
        except (KeyError, TypeError):
            return None
        try:
            d.move_to_end(key)
        except KeyError:
            pass
        return v

    def put(self, key, value):
        with self.lock:
            self.d[key] = value
            while len(self.d) > self.maxsize:
                self.d.popitem(last=False)
        return value

    def clear(self):
        with self.lock:
            self.d.clear()


_CACHES = []


def clear_caches():
    """Forget every cached plan and call signature (tests; after changing a threshold by hand)."""
    for c in _CACHES:
        c.clear()


def new_cache():
    c = LRU(_tuning.DEFAULT.plan_cache_size)
    _CACHES.append(c)
    return c


class _Local(threading.local):
    force = ()              # class defaults: no AttributeError (slow) on a thread's first read
    dry = None


_local = _Local()


def forced():
    """The algorithms forced in this Python thread (a tuple, empty when none)."""
    return _local.force


@contextlib.contextmanager
def force(*algorithms):
    """Make the planners pick ``algorithms`` wherever one of them can serve the geometry.

    Internal hook for tests and benchmarks (the consistency test runs every algorithm
    able to serve a layer); nested blocks add to the outer one's set.  An algorithm
    that cannot serve a geometry is ignored for it (the default choice runs).
    """
    algs = tuple(Algorithm(a) for a in algorithms)
    old = forced()
    _local.force = algs + tuple(a for a in old if a not in algs)
    try:
        yield
    finally:
        _local.force = old


def pick(default, candidates):
    """``default``, unless an algorithm forced by :func:`force` is among ``candidates``."""
    for a in forced():
        if a in candidates:
            return a
    return default


def signature():
    """What, besides the geometry and dtype, a plan depends on: threads, tuning, forcing."""
    return get_num_threads(), _tuning._state.tuning, _local.force


def cached(fn):
    """Memoise the planner ``fn(geometry, dtype, *args)`` by its arguments and :func:`signature`."""
    cache = new_cache()

    @functools.wraps(fn)
    def wrapper(*args):
        key = args + signature()
        p = cache.get(key)
        if p is None:
            p = cache.put(key, fn(*args))
        return p

    wrapper.cache = cache
    return wrapper


# --------------------------------------------------------------------------- run: verbose / dry run

VERBOSE = os.environ.get("PYCONV_VERBOSE", "").strip() not in ("", "0")


def set_verbose(on):
    """Turn the per-kernel log on stderr on or off (what ``PYCONV_VERBOSE=1`` sets at import)."""
    global VERBOSE
    VERBOSE = bool(on)


def dry():
    """The list recording plans when :func:`pyconv.explain` is running the call, else None."""
    return _local.dry


@contextlib.contextmanager
def live():
    """Kernels run even inside :func:`dry_run` (a calibration that a first
    :func:`pyconv.explain` starts must time real calls, not record plans)."""
    old = dry()
    _local.dry = None
    try:
        yield
    finally:
        _local.dry = old


@contextlib.contextmanager
def dry_run():
    """Executors record their plans and return zero outputs instead of running kernels."""
    old = dry()
    _local.dry = []
    try:
        yield _local.dry
    finally:
        _local.dry = old


_PUBLIC = ("pyconv.nn", "pyconv.grad", "pyconv.signal", "pyconv.ndimage")


def _caller():
    """Name of the outermost public pyconv function on the stack (for the verbose log)."""
    f, name = sys._getframe(2), "?"
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        if mod in _PUBLIC and not f.f_code.co_name.startswith("_"):
            name = f"{mod[7:]}.{f.f_code.co_name}"
        f = f.f_back
    return name


def log(plan, seconds):
    """One verbose line: function, op, algorithm, shapes, dtype, threads, time."""
    print(f"pyconv_verbose,{_caller()},{plan.op},{plan.algorithm.value},{plan.geometry},"
          f"{np.dtype(plan.dtype).name},threads={plan.threads},{seconds * 1e3:.4f} ms",
          file=sys.stderr, flush=True)


def run(plan, kernel, *args, **kwargs):
    """Run ``kernel(*args)`` for ``plan`` (a leaf plan), logging it when verbose."""
    if not VERBOSE:
        return kernel(*args, **kwargs)
    t0 = time.perf_counter()
    r = kernel(*args, **kwargs)
    log(plan, time.perf_counter() - t0)
    return r


# --------------------------------------------------------------------------- call-signature keys

def plain(v):
    """True for arguments that can key a call cache exactly: ints (not bools), strs, None and
    tuples of those (a list, an array or a bool takes the full checks every time)."""
    t = type(v)
    if t is int or t is str or v is None:
        return True
    if t is tuple:
        for u in v:
            if not plain(u):
                return False
        return True
    return False


def array_key(a):
    """(shape, dtype) of an exact ndarray (the part of a call signature an array contributes),
    else None (other array-likes take the full checks)."""
    if type(a) is np.ndarray:
        return a.shape, a.dtype
    return None
