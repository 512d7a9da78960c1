"""Calibration: the thresholds that pick algorithms, measured on the running machine.

The choices that depend on the CPU (dense register-blocked kernels against im2col +
GEMM through the machine's BLAS, direct against FFT in ``pyconv.signal``) are timed
here in a short micro-benchmark (1.5-2.1 s on a 2-core Intel Xeon VM), at one thread (the thread
counts themselves at the default), taking the least of a
few runs of each (the signal cost model's timings in CPU seconds of the calling thread,
each solving the model for one of its constants).  The result is stored per machine and pyconv version in the user's
cache directory (``$PYCONV_CACHE_DIR``, else ``$XDG_CACHE_HOME/pyconv``, else
``~/.cache/pyconv``), as FFTW keeps its wisdom, and read back by every later process:
for a given machine and cache a call always takes the same algorithm, so it gives
bitwise the same result.  ``PYCONV_TUNING=off`` keeps the built-in defaults.

Every algorithm a measurement compares stays reachable; a crossover only moves where
each one is used.  Where the GEMM path wins, it is chosen: the BLAS tuned for the CPU
by its authors is the floor.
"""
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

from pyconv._engine import tuning as _tuning

#: the Tuning fields this module measures
MEASURED = ("dense_min_positions", "weight_dense_min_positions", "dense_min_positions_strided",
            "dense_oc_min_positions_strided", "weight_dense_min_positions_strided", "dense_max_k", "weight_dense_max_acc_bytes",
            "dense_oc", "dense_oc_f8", "dense_oc_one", "dense_oc_one_f8", "dense_oc_one_3d", "dense_oc_one_3d_f8",
            "dense_oc_min_positions", "dense_oc_max_k", "phases_oc", "phases_oc_f8",
            "thin_max_cg_og", "thin_s1_max_cg_og", "thin_reg_min_ow", "phases_min_positions", "phases_max_k", "pointwise_chunk", "pointwise_direct",
            "pointwise_direct_expand", "pointwise_direct_f8", "pointwise_direct_expand_f8", "pointwise_matmul",
            "pointwise_panel", "pointwise_panel_expand", "pointwise_panel_f8", "pointwise_panel_expand_f8",
            "weight_panel", "weight_panel_f8", "weight_panel_bytes", "weight_panel_bytes_f8", "panel_chunk",
            "weight_matmul_tall", "weight_matmul_tall_f8", "input_matmul", "input_matmul_expand",
            "input_matmul_f8", "input_matmul_expand_f8", "dense_wblock_bytes", "dense_wblock_bytes_3d",
            "dense_oc_wblock_bytes", "weight_tile",
            "direct_ns_f4", "direct_ns_f8", "direct_ns_1d_f4", "direct_ns_1d_f8", "direct_tap_ns",
            "direct_border_ns", "direct_merged_factor", "direct_pad_ns", "direct_pad_call_ns", "fft_ns_small", "fft_ns_large", "fft_1d_factor", "fft_oa_factor",
            "fft_single_factor", "fft_1d_single_factor", "fft_3d_factor", "fft_workers_min_points", "direct_thread_gain",
            "fft_thread_gain", "first_touch_serial", "grain")

#: the fields of pyconv.signal's cost model, in the order they are measured (each solve
#: holds the ones measured before it)
SIGNAL_FIELDS = ("direct_ns_f4", "direct_ns_f8", "direct_ns_1d_f4", "direct_ns_1d_f8", "direct_tap_ns",
                 "direct_border_ns", "direct_merged_factor", "direct_pad_ns", "direct_pad_call_ns",
                 "fft_ns_small", "fft_ns_large", "fft_1d_factor", "fft_oa_factor", "fft_single_factor",
                 "fft_1d_single_factor", "fft_3d_factor")


def cache_dir():
    """Directory of the tuning cache."""
    d = os.environ.get("PYCONV_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "pyconv")
    return d


@functools.lru_cache(maxsize=1)
def _code_digest():
    """A digest of the code a calibration's values mean something to: the compiled kernels
    in use (the variant's extension files) and the engine modules that measure the values
    and compare calls against them.  A rebuild with other kernels, or a planner that reads
    a threshold another way (``phases_max_k`` went from the whole kernel's K to the largest
    phase's), is measured again -- same version, same machine."""
    from pyconv import _kernels
    from pyconv._engine import conv, signal_plan
    paths = [getattr(sys.modules.get(f"pyconv._kernels.{name}"), "__file__", None)
             for name in sorted(_kernels.BUILT[_kernels.VARIANT])]
    paths += [__file__, _tuning.__file__, conv.__file__, signal_plan.__file__]
    h = hashlib.sha1()
    for path in paths:
        if path:
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:16]


def machine_key():
    """What a calibration depends on: CPU, core count, the default thread count, kernel variant
    and build, compiler, NumPy and SciPy (their BLAS and FFT).

    The default thread count (``OMP_NUM_THREADS`` or the CPUs): several choices are timed at
    it, and a dask worker runs with ``OMP_NUM_THREADS=1`` (its nanny sets it) -- a worker
    calibrating first wrote one-thread choices the 2-thread client then read (its first
    touch off: two threads faulting fresh pages again, a depthwise layer's 2-thread call at
    26 ms against 7 at 1 thread and 2.6 with the first touch)."""
    import scipy

    import pyconv
    from pyconv import _config, _kernels
    from pyconv._kernels import _pyconv_omp
    from pyconv._threads import _default_threads
    try:
        ncpu = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        ncpu = os.cpu_count() or 1
    facts = [pyconv.__version__, platform.machine(), _config._cpu_model(), str(ncpu), _kernels.VARIANT,
             _pyconv_omp.compiler(), np.__version__, scipy.__version__, _code_digest(),
             f"threads={_default_threads()}"]
    return hashlib.sha1("|".join(facts).encode()).hexdigest()[:16]


def cache_path():
    """The file this machine's calibration is stored in."""
    import pyconv
    return os.path.join(cache_dir(), f"tuning-{pyconv.__version__}-{machine_key()}.json")


def state():
    """'off' (PYCONV_TUNING=off), 'cached' (a calibration file exists), 'cached, busy' (one
    measured while other processes kept cores busy: measured again at a quiet first use)
    or 'not measured'."""
    if _off():
        return "off"
    if not os.path.exists(cache_path()):
        return "not measured"
    data = _read(cache_path())
    return "cached, busy" if data is not None and data.get("busy") else "cached"


def _off():
    return os.environ.get("PYCONV_TUNING", "").strip().lower() in ("off", "0", "false", "no")


def _from_values(values):
    kw = {k: type(getattr(_tuning.DEFAULT, k))(values[k]) for k in MEASURED if k in values}
    return dataclasses.replace(_tuning.DEFAULT, **kw)


#: a calibration during which other processes kept more than this many cores busy (on
#: average) was taken on a busy machine
BUSY_CORES = 0.25
#: how many calibrations in all a busy one may be followed by, each at a later first use
#: that finds the machine quiet
BUSY_RETRIES = 3


def _read(path):
    """The cache file's contents, or None when missing, damaged or lacking a crossover
    (written before it was measured: measure again)."""
    try:
        with open(path) as f:
            data = json.load(f)
        if not set(MEASURED) <= set(data["values"]):
            return None
        _from_values(data["values"])
        return data
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_json(path, data):
    """Write ``data`` to ``path`` atomically (another process may read or write it meanwhile)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def _save(path, values, measurements, retries=0):
    """Write the calibration (atomically).  ``retries``: the calibrations that followed a busy
    one so far."""
    busy = measurements.get("others_busy_cores_mean", 0.0) > BUSY_CORES
    _write_json(path, {"values": values, "measurements": measurements, "busy": busy, "retries": retries,
                       "date": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _quiet_now():
    """No other process's task runs or waits for a CPU right now (a cheap instant reading;
    True where /proc is missing)."""
    from pyconv._threads import _load as monitor
    if not monitor.enabled:
        return True
    try:
        return monitor._runnable_others() == 0
    except (OSError, ValueError, IndexError):
        return True


def machine_tuning():
    """The Tuning of this machine: the defaults under PYCONV_TUNING=off, else the cached
    calibration, else a fresh one (measured now and cached; the defaults if the cache
    cannot be written, after measuring).

    A calibration taken while other processes kept cores busy is used, but measured
    again at a later first use that finds the machine quiet (up to ``BUSY_RETRIES``
    times): the threads' gains read 0 under such load where a quiet machine gives
    0.7-1.0, and a cached value stays for every later process."""
    if _off():
        return _tuning.DEFAULT
    path = cache_path()
    data = _read(path)
    if data is not None and not (data.get("busy") and data.get("retries", 0) < BUSY_RETRIES and _quiet_now()):
        return _from_values(data["values"])
    t, values, measurements = measure()
    try:
        _save(path, values, measurements, 0 if data is None else data.get("retries", 0) + 1)
    except OSError:
        pass
    return t


# --------------------------------------------------------------------------- timed choices

# A cost model predicts, it does not know: where its two figures for one call are close, the
# model's error (Intel Xeon VM, 2 threads, 2026-12-06: its FFT figures 1.4-2.2x below the
# measured times of 256^2..2048^2 images, whose direct figures held within ~15%) decides.
# Such calls are timed once on the running machine, both ways, and the faster way is stored
# per machine, pyconv version and default thread count beside the calibration (as FFTW's
# wisdom): later calls and later processes read it, so a call still always takes the same
# way on a given machine and cache.  See :func:`pyconv._engine.signal_plan.choose_method`.
# Large dense layers are timed the same way over the kernels that can run them (GEMM and the
# direct kernels, forward and weight gradient: which is fastest depends on the layer's
# shape more than the calibrated thresholds say): :func:`pyconv._engine.conv._timed`.

#: stored timed choices at most (past this, calls keep the model's choice)
TIMED_MAX = 4096
#: what a stored choice may be: signal methods, dense layers' kernels, transposed ones' phase kernels, 1x1
#: ones' panel and matrix products
TIMED_CHOICES = ("direct", "fft", "gemm", "dense", "dense_oc", "thin", "thin_reg", "thin_s1", "thin_phase", "thin_row",
                 "phases", "phases_oc", "dense_pos", "panel", "matmul")
_timed = {"path": None, "table": None}
_timed_lock = threading.Lock()


def _new_timed_lock():
    # a child made by fork while another thread held the lock would wait on it forever
    global _timed_lock
    _timed_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_timed_lock)


def timed_path():
    """The file this machine's timed choices are stored in."""
    import pyconv
    return os.path.join(cache_dir(), f"timed-{pyconv.__version__}-{machine_key()}.json")


def _timed_table():
    """{key: entry} of the timed choices (read from the file once per process and path)."""
    path = timed_path()
    if _timed["path"] != path:
        table = {}
        try:
            with open(path) as f:
                data = json.load(f)
            table = {k: v for k, v in data["choices"].items()
                     if isinstance(v, dict) and v.get("choice") in TIMED_CHOICES}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        _timed["path"], _timed["table"] = path, table
    return _timed["table"]


def timed_choice(key):
    """The choice stored for ``key`` by :func:`store_timed_choice`, or None (also under
    ``PYCONV_TUNING=off``, which keeps the model's choices)."""
    if _off():
        return None
    with _timed_lock:
        entry = _timed_table().get(key)
    return None if entry is None else entry["choice"]


def timed_count():
    """How many timed choices are stored (0 under ``PYCONV_TUNING=off``: none is used)."""
    if _off():
        return 0
    with _timed_lock:
        return len(_timed_table())


def timing_off():
    """Whether a call neither times nor reads timed choices: ``PYCONV_TUNING=off``, or inside a
    :func:`pyconv._engine.tuning.override` block (the model and flags under the values it sets)."""
    return _off() or _tuning.overridden() is not None


def timed_room():
    """Whether another timed choice may be stored (:data:`TIMED_MAX`)."""
    with _timed_lock:
        return len(_timed_table()) < TIMED_MAX


def store_timed_choice(key, choice, times, extra=None):
    """Keep ``choice`` (one of :data:`TIMED_CHOICES`) for ``key`` with the seconds ``times`` it was
    picked by (and the fields ``extra``, if any): in this process, and merged into the file
    (written atomically; an entry another process wrote meanwhile is kept, and a file that
    cannot be written leaves the choice in this process only)."""
    entry = {"choice": choice, **{f"{m}_s": float(t) for m, t in times.items()}, **(extra or {}),
             "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with _timed_lock:
        _timed_table()[key] = entry
        path = _timed["path"]
        try:
            with open(path) as f:
                on_disk = json.load(f)["choices"]
            if not isinstance(on_disk, dict):
                on_disk = {}
        except (OSError, ValueError, KeyError, TypeError):
            on_disk = {}
        try:
            _write_json(path, {"choices": {**on_disk, **_timed["table"]}})
        except OSError:
            pass


def tune():
    """Measure this machine's algorithm crossovers, store them and use them from now on.

    pyconv picks between algorithms (its dense register-blocked kernels or im2col +
    GEMM through the machine's BLAS; direct or FFT in ``pyconv.signal``) by thresholds
    that depend on the CPU.  This times them here (1.5-2 s, mostly one thread) and
    stores the result per machine, pyconv version and default thread count in the user's
    cache directory (``$PYCONV_CACHE_DIR``, else ``$XDG_CACHE_HOME/pyconv``, else
    ``~/.cache/pyconv``);
    without a call, the same measurement runs at first use.  Later processes read the
    file, so a given call always takes the same algorithm on this machine.  Under
    ``PYCONV_TUNING=off`` the measurement is stored but the built-in defaults stay in use.

    Returns
    -------
    str
        The path of the cache file.

    Examples
    --------
    >>> import pyconv
    >>> path = pyconv.tune()            # doctest: +SKIP
    >>> path.endswith(".json")          # doctest: +SKIP
    True
    """
    from pyconv._engine import plan as _plan
    t, values, measurements = measure()
    path = cache_path()
    _save(path, values, measurements)
    busy = measurements["others_busy_cores_mean"]
    if busy > BUSY_CORES:
        warnings.warn(f"pyconv.tune(): other processes kept {busy:.1f} cores busy while it measured; the "
                      "choices stored may not be this machine's (the threads' gains read low).  They are "
                      "used, and measured again at a later first use that finds the machine quiet; or "
                      "call pyconv.tune() again then.", RuntimeWarning, stacklevel=2)
    if not _off():
        _tuning.install(t)
        _plan.clear_caches()
    return path


# --------------------------------------------------------------------------- measurements


def _best_cpu_of(fns, reps=3):
    """Least CPU seconds of the calling thread of each of ``fns`` (after one warm-up each),
    timed in turn (A, B, C, A, B, C, ...).  Work at one thread runs on the calling thread
    (an OpenMP team of one, scipy.fft with one worker), so CPU time is the cost of the
    work itself: a busy machine that preempts a 50 ms transform more often than a 0.1 ms
    kernel does not skew one constant against another, as wall time would.  And a host
    whose speed drifts between spells (an Intel Xeon VM ran the same loop 1.5x slower for
    seconds at a time) weighs on every constant alike, instead of setting direct against
    FFT by whichever ran in the slow spell."""
    return _best_of(fns, reps, clock=time.thread_time)


def _best_of(fns, reps=4, clock=time.perf_counter, warm=False):
    """The least time of each of ``fns`` on ``clock`` (after one warm-up each), timed in turn
    (A, B, A, B, ...): a slow spell of a shared machine then weighs on every candidate
    alike, not on whichever ran during it.  ``warm``: each timed call right after an
    untimed call of the same function (A A B B ..., every round) instead."""
    if not warm:
        for fn in fns:
            fn()
    best = [math.inf] * len(fns)
    for _ in range(reps):
        for i, fn in enumerate(fns):
            if warm:
                fn()
            t0 = clock()
            fn()
            best[i] = min(best[i], clock() - t0)
    return best


@contextlib.contextmanager
def _teams_unshrunk():
    """The load monitor off for the block: its teams keep the threads asked for (a gain
    timed is the kernel's on the cores it is given; run time shrinks teams on a busy
    machine anyway)."""
    from pyconv._threads import _load as monitor
    adapt, monitor.enabled = monitor.enabled, False
    try:
        yield
    finally:
        monitor.enabled = adapt


def pointwise_flags(pw, matmul):
    """The 1x1 forward's flags from the calibration's times ``pw[itemsize, reduces]``: float32
    (POINTWISE, MATMUL, GEMM, PANEL), float64 (POINTWISE, the BLAS path float32 chose,
    PANEL).  Each layer kind takes the fastest of the algorithms its plan can reach -- the
    packed panel, else the in-place kernel against the BLAS path chosen (``matmul``: MATMUL,
    else GEMM tiles), else that path -- never one that lost to a path it cannot take (the
    panel once lost by 1.5% to MATMUL, not reachable there beside GEMM, and the in-place
    kernel ran the 8-sample layer c 1.44x slower than the panel would have: AMD EPYC).

    >>> f = pointwise_flags({(4, True): [0.79, 0.76, 0.80, 0.77], (4, False): [1.0, 0.85, 0.77, 0.76],
    ...                      (8, True): [1.9, 1.7, 1.5], (8, False): [1.8, 1.5, 1.4]}, matmul=False)
    >>> f["pointwise_panel"], f["pointwise_direct"], f["pointwise_panel_expand"]
    (True, True, True)
    """
    blas = 1 if matmul else 2
    out = {}
    for isz, suffix in ((4, ""), (8, "_f8")):
        for reduces, name in ((True, "pointwise_direct"), (False, "pointwise_direct_expand")):
            ts = pw[isz, reduces]
            reachable = ts[blas if isz == 4 else 1]
            out[name + suffix] = bool(ts[0] <= reachable)
            out[name.replace("direct", "panel") + suffix] = bool(ts[-1] <= min(ts[0], reachable))
    return out


def _forced(alg, fn, **values):
    """``fn`` run with algorithm ``alg`` forced, and the Tuning ``values`` if any.

    The Tuning those values make is built at the first call and reused by the later ones:
    plans are keyed by the Tuning object, and a new one per call planned every timed call
    again, and timed the planning too (the 1x1 weight gradient's BLAS products, 64->256 56x56
    float32, two samples, 2 threads, AMD EPYC: 1.26 ms a call that way, 0.92 now; the panel
    kernel 1.39 and 1.19)."""
    tuned = None

    def run():
        nonlocal tuned
        with _plan_force(alg):
            if not values:
                return fn()
            if tuned is None:
                with _tuning.override(**values) as t:
                    tuned = t
                    return fn()
            with _tuning.using(tuned):
                return fn()
    return run


def _plan_force(alg):
    from pyconv._engine import plan as _plan
    return _plan.force(alg)


# rounds of the timings behind the choices that set the kernel of whole families of layers
DECISIVE_REPS = 6

# how much faster a direct kernel must run than GEMM at a size of a positions sweep to take it
GEMM_MARGIN = 1.1


def _crossover(times_a, times_b, sizes, margin=1.0):
    """Least size from which algorithm A is at least as fast as B (by ``margin``: A's time x
    margin <= B's) at every larger size measured (``inf``-like when never: B, the GEMM
    floor, keeps every size)."""
    for i, size in enumerate(sizes):
        if all(times_a[j] * margin <= times_b[j] for j in range(i, len(sizes))):
            return size
    return 1 << 62


def _least_behind(times):
    """The candidate (column of ``times``, one row per layer) whose times, each over the best
    of its layer, sum least: no layer decides alone by its size.

    >>> _least_behind([[1.0, 1.02, 1.3], [2.0, 1.9, 1.9]])
    1
    """
    rel = np.asarray(times, dtype=float)
    return int(np.argmin((rel / rel.min(axis=1, keepdims=True)).sum(axis=0)))


def _ceiling(times_a, times_b, sizes, slack=1.1, open_ended=False):
    """Largest measured size at which algorithm A is as fast as B within ``slack`` (the noise
    of a shared machine); from the next size on B wins at every size measured, so B takes
    over there for good.  0 when B wins everywhere.  ``open_ended``: where A still wins at
    the largest size measured, no ceiling was found (1 << 62) -- the direct kernels' K
    limits (a 128->32 7x7 dilated input gradient, K = 6272, 2 threads, AMD EPYC: GEMM 125 ms
    under the 2304 the largest measured K had set, dense_oc 47, PyTorch 54)."""
    pairs = list(zip(times_a, times_b, sizes))
    if open_ended and pairs and pairs[-1][0] <= slack * pairs[-1][1]:
        return 1 << 62
    for ta, tb, size in reversed(pairs):
        if ta <= slack * tb:
            return size
    return 0


class _Pool:
    """Operands for the timings, cut in turn from one read-only buffer per dtype of uniform
    values in [-0.5, 0.5) (the values do not change a kernel's speed; no subnormals).
    Drawing every operand afresh made the calibration draw and first-touch 215 MB, 0.32 s
    of a 1.7 s ``tune()`` in a new process (AMD EPYC); the pieces of one buffer are touched
    once.  Consecutive pieces never overlap (a piece that does not fit after the last one
    starts the buffer again, and the buffer holds two of the largest), so the operands of
    one timed call stay as far apart in the caches as fresh arrays."""

    def __init__(self, seed=0, nbytes=56 << 20):
        self.rng = np.random.default_rng(seed)
        self.nbytes = nbytes
        self.bufs = {}
        self.at = {}

    def __call__(self, shape, dtype=np.float64):
        dt = np.dtype(dtype)
        n = math.prod(shape) if isinstance(shape, tuple) else int(shape)
        step = -(-n // 16) * 16                 # pieces start 64-byte apart at least
        buf = self.bufs.get(dt)
        if buf is None or buf.size < 2 * step:
            buf = self.rng.random(max(2 * step, self.nbytes // dt.itemsize), dtype=dt)
            buf -= dt.type(0.5)
            buf.flags.writeable = False
            self.bufs[dt], self.at[dt] = buf, 0
        at = self.at[dt] if self.at[dt] + step <= buf.size else 0
        self.at[dt] = at + step
        return buf[at:at + n].reshape(shape)


def measure():
    """Time the calibrated choices; returns (Tuning, values dict, measurements dict)."""
    from pyconv import grad, nn
    from pyconv._engine import plan as _plan
    from pyconv._engine.plan import Algorithm as A
    from pyconv._engine import conv
    from pyconv._engine.geometry import conv_geometry, transposed_geometry
    from pyconv._threads import _default_threads, threads

    data = _Pool()
    m = {}
    values = {}
    window = _busy_window()
    # Planners must not ask for the machine tuning while it is being measured: every call
    # below runs under an explicit override of the defaults.
    with _plan.live(), threads(1), _tuning.override(dense_min_positions=0, weight_dense_min_positions=0,
                                                    phases_min_positions=0), \
            contextlib.ExitStack() as stack:
        gains = _GainSamples(_default_threads(), data)
        gains.take()
        # first, the dense forward's input-channel blocks: one block's weights within 4, 8
        # or 16 KiB (3x3 64->64 56x56, one sample; the bits do not depend on it).  The
        # weights share L1 with the input rows the block reads: on an Intel Xeon (48 KiB
        # L1d) 8 KiB ran layer a 1.09x and the dilated layer f 1.01x faster than 16 KiB,
        # 4 KiB 1.07x and 1.04x
        wblocks = (4 << 10, 8 << 10, 16 << 10)
        x = data((1, 64, 56, 56), np.float32)
        wc = data((64, 64, 3, 3), np.float32)

        layer = lambda: nn.conv2d(x, wc, padding=1)  # noqa: E731
        m["dense_wblocks"] = list(wblocks)
        # 6 rounds: this choice sets the kernel of every dense layer and gradient, and with 3 a
        # slow spell on the dense_oc calls flipped it in 3 of 14 calibrations (Intel Xeon,
        # dense_oc 1.1-1.2x faster; the flip cost layers a, b, f, g, h, j 5-20%).  In CPU
        # seconds of the calling thread (one thread), as the kernel choices below: in wall
        # time, right after the first gain sample (its FFTs on both cores), dense_oc read
        # 1.03x dense's time in 1 process of 12 and in 2 of 6 calibrations (0.77-0.92x in
        # the others), while its CPU time in that process read 0.88x (0.79-0.92x in all 28)
        *m["dense_wblock_s"], t_oc = _best_cpu_of([_forced(A.DENSE, layer, dense_wblock_bytes=b)
                                                   for b in wblocks] + [_forced(A.DENSE_OC, layer)],
                                                  reps=DECISIVE_REPS)
        values["dense_wblock_bytes"] = wblocks[int(np.argmin(m["dense_wblock_s"]))]
        # and, on the same layer in both dtypes, the kernel with vectors along the output
        # channels (dense_oc) against the phase-plane one with the block chosen: the
        # default of the layers both serve (Intel Xeon, 1 thread: dense_oc 1.1-1.2x
        # faster on 3x3 64->64 56x56 in float32 and float64)
        x8, wc8 = x.astype(np.float64), wc.astype(np.float64)
        layer8 = lambda: nn.conv2d(x8, wc8, padding=1)  # noqa: E731
        t_oc8, t_d8 = _best_cpu_of([_forced(A.DENSE_OC, layer8),
                                    _forced(A.DENSE, layer8, dense_wblock_bytes=values["dense_wblock_bytes"])],
                                   reps=DECISIVE_REPS)
        m["dense_oc_s"], m["dense_f8_s"] = [t_oc, t_oc8], t_d8
        values["dense_oc"] = bool(t_oc <= min(m["dense_wblock_s"]))
        values["dense_oc_f8"] = bool(t_oc8 <= t_d8)
        # groups of exactly one vector of output channels: 3x3 VL->VL 56x56, one sample; and
        # with 3-D kernels, 3x3x3 VL->VL 24^3 (6 rounds: the two are 10-20% apart at this size,
        # and the choice sets every such 3-D layer and input gradient).  In float32 the 3-D
        # layer also times the dense kernel's blocks for kernels with taps in depth
        # (dense_wblock_bytes_3d among 8, 16 and 32 KiB; float64 takes the one chosen)
        wblocks3 = (8 << 10, 16 << 10, 32 << 10)
        m["dense_wblocks_3d"] = list(wblocks3)
        for key, spatial, reps, flags in (("dense_oc_one_s", (56, 56), 3, ("dense_oc_one", "dense_oc_one_f8")),
                                          ("dense_oc_one_3d_s", (24, 24, 24), DECISIVE_REPS,
                                           ("dense_oc_one_3d", "dense_oc_one_3d_f8"))):
            m[key] = []
            for dt, flag in zip((np.float32, np.float64), flags):
                lanes = conv.dense_direct.OC_LANES[np.dtype(dt).name]
                x1 = data((1, lanes) + spatial, dt)
                w1 = data((lanes, lanes) + (3,) * len(spatial), dt)
                layer1 = functools.partial(nn.conv3d if len(spatial) == 3 else nn.conv2d, x1, w1, padding=1)
                if len(spatial) == 2:
                    blocks = [dict(dense_wblock_bytes=values["dense_wblock_bytes"])]
                elif dt == np.float32:
                    blocks = [dict(dense_wblock_bytes_3d=b) for b in wblocks3]
                else:                   # (float32 ran first and chose the block)
                    blocks = [dict(dense_wblock_bytes_3d=values["dense_wblock_bytes_3d"])]
                t1_oc, *t1_d = _best_cpu_of([_forced(A.DENSE_OC, layer1)]
                                            + [_forced(A.DENSE, layer1, **b) for b in blocks], reps=reps)
                if len(t1_d) > 1:
                    m["dense_wblock_3d_s"] = t1_d
                    values["dense_wblock_bytes_3d"] = wblocks3[int(np.argmin(t1_d))]
                m[key].append([t1_oc, min(t1_d)])
                values[flag] = bool(t1_oc <= min(t1_d))
        # the cache blocks of the output-channel kernels: the weights of one pass of input
        # channels of dense_oc (and phases_oc) within 10, 20 or 40 KiB (3x3 64->64 56x56 and
        # the 7x7 3->64 stem at stride 2, one sample); and the output positions per work unit
        # of the dense weight gradient, 512, 1024 or 2048 (3x3 64->64 56x56 and 3x3x3 16->16
        # 32^3, one sample).  One value per field, the one least behind the best summed over
        # the layers (AMD EPYC, 1 MiB L2: 10 KiB ran the suite's forwards a, b, g, i, j
        # 1.02-1.10x slower than 20-40 KiB; 512 positions ran the 3-D weight gradient 1.03-1.05x
        # slower than 1024, the others within 2%).  ~0.08 s
        m["dense_oc_wblocks"], m["weight_tiles"] = ocb, wts = [10 << 10, 20 << 10, 40 << 10], [512, 1024, 2048]
        xa, wa = data((1, 64, 56, 56), np.float32), data((64, 64, 3, 3), np.float32)
        xj, wj = data((1, 3, 224, 224), np.float32), data((64, 3, 7, 7), np.float32)
        m["dense_oc_wblock_s"] = [
            _best_cpu_of([_forced(A.DENSE_OC, fn, dense_oc_wblock_bytes=b) for b in ocb], reps=3)
            for fn in (lambda: nn.conv2d(xa, wa, padding=1), lambda: nn.conv2d(xj, wj, stride=2, padding=3))]
        values["dense_oc_wblock_bytes"] = ocb[_least_behind(m["dense_oc_wblock_s"])]
        x3, go3 = data((1, 16, 32, 32, 32), np.float32), data((1, 16, 32, 32, 32), np.float32)
        goa = data((1, 64, 56, 56), np.float32)
        m["weight_tile_s"] = [
            _best_cpu_of([_forced(A.DENSE, fn, weight_tile=v) for v in wts], reps=3)
            for fn in (lambda: grad.conv2d_weight(xa, wa.shape, goa, padding=1),
                       lambda: grad.conv3d_weight(x3, (16, 16, 3, 3, 3), go3, padding=1))]
        values["weight_tile"] = wts[_least_behind(m["weight_tile_s"])]
        # (the crossovers below time the dense kernels with the blocks chosen)
        stack.enter_context(_tuning.override(dense_wblock_bytes=values["dense_wblock_bytes"],
                                             dense_wblock_bytes_3d=values["dense_wblock_bytes_3d"],
                                             dense_oc_wblock_bytes=values["dense_oc_wblock_bytes"],
                                             weight_tile=values["weight_tile"]))

        gains.take()
        # dense direct vs im2col + GEMM: a 32->32 3x3 layer on growing output maps (batch 8),
        # at stride 1 and at stride 2 (twice the input), one crossover each: strided layers
        # cost the direct kernels more per output (phase planes, wider input rows) than
        # GEMM.  Intel Xeon, 1 thread, 3x3 outputs: weight gradient dense 77 us against GEMM
        # 72 at stride 1 (a tie) but 101 against 66 at stride 2 (the digits CNN's 32x16x6x6
        # stride-2 layer: 174 against 125)
        # (8x8 outputs too at stride 2, where the crossover falls between 6x6 and 12x12:
        # 8x8 dense_oc 194 us against GEMM 278.  Sizes from 12x12 on take 2 rounds: there
        # the direct kernels win by 1.5-3x, except the phase-plane forward at stride 2,
        # level with GEMM up to 12x12.)
        sizes = {1: (3, 6, 12, 24), 2: (3, 6, 8, 12, 24)}
        fwd = {(a, st): [] for a in (A.DENSE, A.GEMM, A.DENSE_OC) for st in (1, 2)}
        wgt = {(a, st): [] for a in (A.DENSE, A.GEMM) for st in (1, 2)}
        w = data((32, 32, 3, 3), np.float32)
        for st in (1, 2):
            for s in sizes[st]:
                go = data((8, 32, s, s), np.float32)
                x = data((8, 32, s * st, s * st), np.float32)
                # (the candidates in turn, round by round: this host's cores change speed
                # within seconds, and one algorithm timed whole in a slow spell flipped the
                # 6x6 point of dense_oc against GEMM)
                reps = 3 if s < 12 else 2
                f = lambda: nn.conv2d(x, w, stride=st, padding=1)  # noqa: E731
                for alg, t in zip((A.DENSE, A.GEMM, A.DENSE_OC),
                                  _best_of([_forced(a, f) for a in (A.DENSE, A.GEMM, A.DENSE_OC)], reps)):
                    fwd[alg, st].append(t)
                g = lambda: grad.conv2d_weight(x, w.shape, go, stride=st, padding=1)  # noqa: E731
                for alg, t in zip((A.DENSE, A.GEMM), _best_of([_forced(a, g) for a in (A.DENSE, A.GEMM)], reps)):
                    wgt[alg, st].append(t)
        positions = {st: [s * s for s in sizes[st]] for st in (1, 2)}
        m["forward_dense_s"], m["forward_gemm_s"] = fwd[A.DENSE, 1], fwd[A.GEMM, 1]
        m["weight_dense_s"], m["weight_gemm_s"] = wgt[A.DENSE, 1], wgt[A.GEMM, 1]
        m["forward_dense_s2_s"], m["forward_gemm_s2_s"] = fwd[A.DENSE, 2], fwd[A.GEMM, 2]
        m["weight_dense_s2_s"], m["weight_gemm_s2_s"] = wgt[A.DENSE, 2], wgt[A.GEMM, 2]
        m["positions"], m["positions_s2"] = positions[1], positions[2]

        m["forward_dense_oc_s"], m["forward_dense_oc_s2_s"] = fwd[A.DENSE_OC, 1], fwd[A.DENSE_OC, 2]
        # (a direct kernel takes a size from GEMM, the floor, only by a clear margin: where
        # the sweep has them level the layers it stands for need not be)
        for name, times, alg in (("dense", fwd, A.DENSE), ("dense_oc", fwd, A.DENSE_OC),
                                 ("weight_dense", wgt, A.DENSE)):
            for st, suffix in ((1, ""), (2, "_strided")):
                values[f"{name}_min_positions{suffix}"] = _crossover(times[alg, st], times[A.GEMM, st], positions[st],
                                                                     GEMM_MARGIN)

        # the same algorithms as the channels grow (K = C_in x 9), stride 2, 16x16 outputs
        # (one sample, past the positions crossover): the largest K at which the dense
        # kernels still win
        chans = (32, 64, 128, 256)
        kf_d, kf_g, kw_d, kw_g, kf_o = [], [], [], [], []
        for c in chans:
            x = data((1, c, 32, 32), np.float32)
            wc = data((c, c, 3, 3), np.float32)
            go = data((1, c, 16, 16), np.float32)
            fwd = lambda: nn.conv2d(x, wc, stride=2, padding=1)  # noqa: E731
            for lst, t in zip((kf_d, kf_g, kf_o), _best_of([_forced(A.DENSE, fwd), _forced(A.GEMM, fwd),
                                                             _forced(A.DENSE_OC, fwd)], reps=3)):
                lst.append(t)
            # (the weight gradient at the default thread count, where the parts of the dense
            # weight kernel each sweep a whole (C_in*9, C_out) accumulator, and on 4 samples:
            # with one sample the set-up of those accumulators is not amortised as on the
            # layers the limit stands for -- Intel Xeon, 2 threads, dense/GEMM 1.14-1.30 at 64
            # channels on one sample (one slow run sent layer a's weight gradient to GEMM,
            # 0.6x torch), 0.72 on four, and 0.55 on layer a itself, 0.90 on layer b)
            # (two samples at the largest size, for time: fewer samples only understate dense)
            ns = 4 if c < chans[-1] else 2
            x4 = data((ns, c, 32, 32), np.float32)
            go4 = data((ns, c, 16, 16), np.float32)
            wgt = lambda: grad.conv2d_weight(x4, wc.shape, go4, stride=2, padding=1)  # noqa: E731
            with threads(_default_threads()):
                for lst, t in zip((kw_d, kw_g), _best_of([_forced(A.DENSE, wgt), _forced(A.GEMM, wgt)],
                                                        reps=4 if c < chans[-1] else 2)):
                    lst.append(t)
        ks = [c * 9 for c in chans]
        m["k"], m["forward_dense_k_s"], m["forward_gemm_k_s"] = ks, kf_d, kf_g
        m["weight_dense_k_s"], m["weight_gemm_k_s"] = kw_d, kw_g
        values["dense_max_k"] = _ceiling(kf_d, kf_g, ks, open_ended=True)
        m["forward_dense_oc_k_s"] = kf_o
        values["dense_oc_max_k"] = _ceiling(kf_o, kf_g, ks, open_ended=True)
        accs = [conv.weight_acc_bytes(conv_geometry((1, c, 32, 32), (c, c, 3, 3), (2, 2), ((1, 1), (1, 1)),
                                                    (1, 1), 1), np.float32) for c in chans]
        m["weight_acc_bytes"] = accs
        # (a wider slack than the others': a few samples of 16x16 outputs still understate
        # the dense weight kernel against the layers it serves -- Intel Xeon, 2 threads: on
        # 8 samples of 56x56 (layer a, 147 KB accumulator) dense took 12.4 ms and GEMM 21.0)
        values["weight_dense_max_acc_bytes"] = _ceiling(kw_d, kw_g, accs, slack=1.25)

        # stride-1 thin groups: output rows in registers against whole-plane passes, by row
        # width (a short row leaves lanes idle), depthwise 3x3 with 2**19 positions in all
        # (2 MiB each way: beyond L2 with both, where writing each output once pays; on an
        # Intel Xeon in-cache 32x32 maps ran level, 8x56x56x256 10.0 vs 14.7 ms)
        widths, tr_r, tr_s = (12, 24, 48), [], []
        for s in widths:
            x = data((1, (1 << 19) // (s * s), s, s), np.float32)
            wc = data((x.shape[1], 1, 3, 3), np.float32)
            dwl = lambda: nn.conv2d(x, wc, padding=1, groups=x.shape[1])  # noqa: E731
            for lst, t in zip((tr_r, tr_s), _best_of([_forced(A.THIN_REG, dwl), _forced(A.THIN_S1, dwl)], reps=3)):
                lst.append(t)
        m["thin_reg_ow"], m["thin_reg_s"], m["thin_s1_s"] = list(widths), tr_r, tr_s
        values["thin_reg_min_ow"] = _crossover(tr_r, tr_s, widths)
        thin = A.THIN_REG if 56 >= values["thin_reg_min_ow"] else A.THIN_S1

        # thin groups: the stride-1 thin kernel against the dense kernel (4-wide register
        # blocks for 4 outputs per group), 3x3 128->128 on 56x56, one sample, by cg x og
        # (the dense kernel gains with the map: at 28x28 thin and dense ran level for 4x4
        # channels per group, at 112x112 dense was 1.4x faster)
        prods, th_t, th_d = (1, 4, 16, 64), [], []
        for cgog in prods:
            gsz = math.isqrt(cgog)
            x = data((1, 128, 56, 56), np.float32)
            wc = data((128, gsz, 3, 3), np.float32)
            grp = lambda: nn.conv2d(x, wc, padding=1, groups=128 // gsz)  # noqa: E731
            for lst, t in zip((th_t, th_d), _best_of([_forced(thin, grp), _forced(A.DENSE, grp)], reps=3)):
                lst.append(t)
        m["thin_cg_og"], m["thin_s"], m["thin_dense_s"] = list(prods), th_t, th_d
        values["thin_s1_max_cg_og"] = _ceiling(th_t, th_d, prods, slack=1.0)
        # and the strided thin kernel (per-thread phase planes) against the dense one, the
        # same layers at stride 2
        th_t, th_d = [], []
        for cgog in prods:
            gsz = math.isqrt(cgog)
            x = data((1, 128, 56, 56), np.float32)
            wc = data((128, gsz, 3, 3), np.float32)
            grp = lambda: nn.conv2d(x, wc, stride=2, padding=1, groups=128 // gsz)  # noqa: E731
            for lst, t in zip((th_t, th_d), _best_of([_forced(A.THIN_PHASE, grp), _forced(A.DENSE, grp)], reps=3)):
                lst.append(t)
        m["thin_strided_s"], m["thin_strided_dense_s"] = th_t, th_d
        values["thin_max_cg_og"] = _ceiling(th_t, th_d, prods, slack=1.0)

        # 1x1 layers: positions per chunk of the dense kernel reading the input in place
        # (a chunk's rows are copied once, then serve every block of output channels; on an
        # Intel Xeon 256->64 56x56 ran 22-25 ms at 128, 17-19 at 256-512, PyTorch 15.7),
        # 256 -> 64 channels, 56x56, one sample
        chunks = (128, 256, 512)
        x = data((1, 256, 56, 56), np.float32)
        wc = data((64, 256, 1, 1), np.float32)

        layer = lambda: nn.conv2d(x, wc)  # noqa: E731
        m["pointwise_chunks"] = list(chunks)
        m["pointwise_chunk_s"] = _best_of([_forced(A.POINTWISE, layer, pointwise_chunk=c) for c in chunks], reps=2)
        values["pointwise_chunk"] = chunks[int(np.argmin(m["pointwise_chunk_s"]))]

        # the panel kernel's chunk: 256, 512 or 1024 float32 positions of every input channel
        # per work unit (Intel Xeon, 8 samples, CPU time: 13.8 / 12.9 / 14.0 ms)
        panel_chunks = (256, 512, 1024)
        m["panel_chunks"] = list(panel_chunks)
        m["panel_chunk_s"] = _best_of([_forced(A.PANEL, layer, panel_chunk=c) for c in panel_chunks], reps=3)
        values["panel_chunk"] = panel_chunks[int(np.argmin(m["panel_chunk_s"]))]

        # then the dense kernel in place against GEMM tiles and one BLAS product, on a
        # layer that reduces the channels and on one that expands them, in both dtypes
        # (56x56, one sample: an input beyond L2, as in the networks' middle layers).
        # Intel Xeon, 8 samples, 1 thread: float32 256->64 dense 18.6 ms, MATMUL 21.6;
        # 64->256 dense 22.0, MATMUL 16.0; float64 256->64 dense 29.1, MATMUL 23.1.
        # GEMM tiles against MATMUL is decided in float32.
        pw = {}
        for dt in (np.float32, np.float64):
            if dt == np.float64:
                # float32 chose between the two BLAS paths
                values["pointwise_matmul"] = bool(pw[4, True][1] + pw[4, False][1] <= pw[4, True][2] + pw[4, False][2])
            for cin, cout in ((256, 64), (64, 256)):
                x = data((1, cin, 56, 56), dt)
                wc = data((cout, cin, 1, 1), dt)

                def one(alg, x=x, wc=wc):
                    return _forced(alg, lambda: nn.conv2d(x, wc), pointwise_chunk=values["pointwise_chunk"],
                                   panel_chunk=values["panel_chunk"])
                # the packed-panel kernel last (pointwise_panel: it against every other choice)
                if dt == np.float32:
                    algs = (A.POINTWISE, A.MATMUL, A.GEMM, A.PANEL)
                else:
                    algs = (A.POINTWISE, A.MATMUL if values["pointwise_matmul"] else A.GEMM, A.PANEL)
                pw[np.dtype(dt).itemsize, cin > cout] = _best_of([one(a) for a in algs], reps=2)
        m["pointwise_s"] = {f"{8 * k[0]}bit_{'reduce' if k[1] else 'expand'}": v for k, v in pw.items()}
        values.update(pointwise_flags(pw, values["pointwise_matmul"]))

        # the 1x1 weight gradient's BLAS products, per dtype: dW (C_out rows) or the
        # transpose of x dy^T (C_in rows), on a layer that reduces the channels, 256->64
        # 56x56, one sample, at the default thread count (an Intel Xeon's OpenBLAS, 1-8
        # samples: float32 1.09-1.18x faster transposed at 1 and 2 threads, float64
        # 0.92-1.01x)
        for dt, field in ((np.float32, "weight_matmul_tall"), (np.float64, "weight_matmul_tall_f8")):
            x = data((1, 256, 56, 56), dt)
            go = data((1, 64, 56, 56), dt)

            wgt = lambda x=x, go=go: grad.conv2d_weight(x, (64, 256, 1, 1), go)  # noqa: E731
            with threads(_default_threads()):
                m[field + "_s"] = ts = _best_of([_forced(A.MATMUL, wgt, **{field: tall}) for tall in (False, True)],
                                                reps=3)
            values[field] = bool(ts[1] < ts[0])
            # the panel kernel's chunk, per dtype: its transposed grad_output within 128 KiB,
            # 512 KiB or 2 MiB (float32: 512, 2048 or all 3136 positions here; Intel Xeon 8
            # samples float32: 14.8 / 14.4 / 14.0 ms, float64 at 512 KiB 22.5, at 2 MiB 28.1)
            bfield = "weight_panel_bytes" + ("_f8" if dt == np.float64 else "")
            chunk_bytes = (128 << 10, 512 << 10, 2 << 20)
            m[bfield + "_s"] = tb = _best_of([_forced(A.PANEL, wgt, **{bfield: b}) for b in chunk_bytes], reps=2)
            values[bfield] = chunk_bytes[int(np.argmin(tb))]
            # then the panel kernel against the BLAS products in the orientation chosen
            # (weight_panel / weight_panel_f8), on two samples: each part of the panel kernel
            # transposes grad_output once per sample, which one sample at 2 threads overweighs
            # (Intel Xeon float32, 1 sample: panel 2.34 vs 2.19 ms; 8 samples 11.4 vs 12.2)
            x2 = data((2, 256, 56, 56), dt)
            go2 = data((2, 64, 56, 56), dt)
            wgt2 = lambda x=x2, go=go2: grad.conv2d_weight(x, (64, 256, 1, 1), go)  # noqa: E731
            with threads(_default_threads()):
                tp = _best_of([_forced(A.MATMUL, wgt2, **{field: values[field]}),
                               _forced(A.PANEL, wgt2, **{bfield: values[bfield]})], reps=2)
            m[field.replace("matmul_tall", "panel") + "_s"] = tp
            values[field.replace("matmul_tall", "panel")] = bool(tp[1] < tp[0])

        # the 1x1 input gradient: one BLAS product per sample against the forward's 1x1 plan
        # (as calibrated above) on grad_output with the channels swapped, per dtype, on a
        # layer that reduces the channels and on one that expands them, 56x56, eight samples
        # (the products split by sample), at the default thread count, in wall time: the
        # two run on the team differently (whole samples against chunks of positions).
        # Eight, not two: two samples' products stay in the last-level cache and ran level
        # with the forward plan, eight ran 1.2x (float32) to 1.35x (float64) slower (AMD
        # EPYC, 32 MiB L3, 256 -> 64), and a calibration on two sent the suite's layer c to
        # the products at 6.1 ms against 4.2.  float64 on four samples: the same bytes.
        # ~0.2 s in all
        pw_values = {k: values[k] for k in values if k.startswith(("pointwise_", "panel_chunk"))}
        for dt, suffix, ns in ((np.float32, "", 8), (np.float64, "_f8", 4)):
            for cin, cout, name in ((256, 64, "input_matmul"), (64, 256, "input_matmul_expand")):
                wc = data((cout, cin, 1, 1), dt)
                go = data((ns, cout, 56, 56), dt)
                inp = lambda wc=wc, go=go, cin=cin, ns=ns: grad.conv2d_input((ns, cin, 56, 56), wc, go)  # noqa: E731
                with threads(_default_threads()):
                    ts = _best_of([_forced(A.MATMUL, inp, **pw_values), _forced(A.FLIP_CONV, inp, **pw_values)],
                                  reps=2)
                m[name + suffix + "_s"] = ts
                values[name + suffix] = bool(ts[0] <= ts[1])

        # strided input gradients (transposed convolutions): the dense kernel per output
        # phase against GEMM + col2im, by positions per phase (32 channels, batch 4) and
        # by the K of the largest phase (C_in x its taps: conv.phase_k) on 28x28 positions
        # per phase, two samples.  GEMM's column matrix (C_out x kvol rows) outgrows L2 on
        # such maps, as in the networks' layers: on an Intel Xeon (2 MiB L2), 64->64 3x3
        # and 4x4 stride 2 ran 1.27-1.40x faster on the phases at 28x28 but only 1.08-1.2x
        # at 16x16; a one-sample 16x16 sweep set phases_max_k to 0 and sent the 4x4 64->32
        # layer (8 samples) to GEMM at 8.2-8.8 ms against 5.8-7.3 on the phases.  K past the
        # sweep stays on GEMM (256 channels, K 1024, ran level or slower at 28x28).
        ph_p, ph_g = [], []
        w = data((32, 32, 3, 3), np.float32)
        for s in sizes:
            go = data((4, 32, s, s), np.float32)
            shape = (4, 32, 2 * s, 2 * s)
            for alg, lst in ((A.PHASES, ph_p), (A.GEMM, ph_g)):
                with _plan.force(alg):
                    lst.append(_best_of([lambda: grad.conv2d_input(shape, w, go, stride=2, padding=1)], reps=3)[0])
        m["input_phases_s"], m["input_gemm_s"] = ph_p, ph_g
        values["phases_min_positions"] = _crossover(ph_p, ph_g, positions, GEMM_MARGIN)
        pk_p, pk_g, pks = [], [], []
        for c in chans[:3]:
            wc = data((c, c, 3, 3), np.float32)
            go = data((2, c, 28, 28), np.float32)
            inp = lambda: grad.conv2d_input((2, c, 56, 56), wc, go, stride=2, padding=1)  # noqa: E731
            for lst, t in zip((pk_p, pk_g), _best_of([_forced(A.PHASES, inp), _forced(A.GEMM, inp)], reps=2)):
                lst.append(t)
            pks.append(conv.phase_k(transposed_geometry(go.shape, wc.shape, (2, 2), (1, 1), (1, 1), (1, 1), 1)))
        m["phase_k"], m["input_phases_k_s"], m["input_gemm_k_s"] = pks, pk_p, pk_g
        values["phases_max_k"] = _ceiling(pk_p, pk_g, pks, open_ended=True)

        # ---- phases_oc (the output-channel kernel per output phase) -------------------------
        # Whether it is the default of strided transposed convolutions with more than one
        # vector of output channels, per dtype: against PHASES and GEMM on one 64->32 3x3
        # stride-2 input gradient with 28x28 positions per phase, one sample (its positions
        # and K limits are dense_oc's, measured above on the same register tiles); CPU time
        # of the calling thread (one thread), 6 rounds: with 3, one calibration in 25 on an
        # Intel Xeon read 0.47 ms for phases_oc against 0.45 for PHASES (0.31-0.55 against
        # 0.38-0.76 in the others) and sent layer b's input gradient to GEMM, 0.75-0.85x torch
        # where phases_oc runs 0.93-0.95x.  60-80 ms in all.
        xs_oc, w_oc = (1, 32, 56, 56), data((64, 32, 3, 3), np.float32)
        go_oc = data((1, 64, 28, 28), np.float32)
        for field, dt in (("phases_oc", np.float32), ("phases_oc_f8", np.float64)):
            wd, gd = w_oc.astype(dt), go_oc.astype(dt)
            inp = lambda wd=wd, gd=gd: grad.conv2d_input(xs_oc, wd, gd, stride=2, padding=1)  # noqa: E731
            m[field + "_s"] = tp = _best_cpu_of([_forced(A.PHASES_OC, inp), _forced(A.PHASES, inp),
                                                 _forced(A.GEMM, inp)], reps=DECISIVE_REPS)
            values[field] = bool(tp[0] <= min(tp[1:]))
        # ---- end phases_oc ------------------------------------------------------------------

        _measure_signal(data, values, m, gains)

        gains.take()
        _measure_signal_threads(data, values, m, gains)
        _measure_grain(data, values, m)
    _measure_first_touch(values, m)
    m["others_busy_cores_mean"] = window()
    return _from_values(values), values, m


def _busy_window():
    """Start a window over which the cores other processes keep busy are averaged; the
    returned function closes it and gives that average (busy time of this process's CPUs
    from /proc/stat, less this process's own CPU time, over the wall time; 0.0 where
    /proc/stat is missing or under PYCONV_LOAD_AWARE=0, which adapts nothing to load)."""
    from pyconv._threads import _load as monitor
    if not monitor.enabled:
        return lambda: 0.0
    try:
        busy0, own0, t0 = monitor._busy_seconds(), time.process_time(), time.monotonic()
    except (OSError, ValueError, IndexError):
        return lambda: 0.0

    def close():
        try:
            busy = monitor._busy_seconds() - busy0
        except (OSError, ValueError, IndexError):
            return 0.0
        own = time.process_time() - own0
        return max(0.0, (busy - own) / max(1e-9, time.monotonic() - t0))
    return close


def _measure_first_touch(values, m):
    """Whether fresh memory a team writes is faulted faster after one store per huge page by
    the calling thread (``first_touch_serial``): new 40 MiB arrays (past glibc's largest
    mmap threshold, 32 MiB, every one is a fresh mapping; NumPy asks for huge pages on it,
    as on a kernel's output), every page written by a team of threads (each its own slice, as
    a team writes its outputs), with and without the stores first; medians of 5 rounds.  The
    team is as large as the CPUs allow, whatever the default thread count: a process running
    on one thread by default may still call with more."""
    import threading
    from pyconv._threads import _available_cpus, _default_threads, touch_huge_pages

    nt = max(_default_threads(), _available_cpus())
    values["first_touch_serial"] = False
    if nt <= 1:
        return

    def team_write(a):
        parts = np.array_split(a, nt)

        def write(p):
            p[::4096] = 1
        workers = [threading.Thread(target=write, args=(p,)) for p in parts[1:]]
        for w in workers:
            w.start()
        write(parts[0])
        for w in workers:
            w.join()

    def run(serial):
        a = np.empty(40 << 20, dtype=np.uint8)
        t0 = time.perf_counter()
        if serial:
            touch_huge_pages(a)
        team_write(a)
        return time.perf_counter() - t0

    times = ([], [])
    for _ in range(5):
        for serial in (False, True):
            times[serial].append(run(serial))
    team, first = float(np.median(times[0])), float(np.median(times[1]))
    m["first_touch_s"] = [team, first]
    # a tie means the team does not fault faster here: the stores cost nothing then and
    # keep the team's calls clear of the slow spells Tuning.first_touch_serial describes
    values["first_touch_serial"] = bool(first <= 1.25 * team)


def _fft_len(n):
    import scipy.fft
    return scipy.fft.next_fast_len(n, True)


def _linear(t, cost, fixed, field, floor):
    """The value of ``field`` at which the model ``cost()`` (seconds, linear in the field,
    the others held at ``fixed``) equals the measured ``t``; at least ``floor``."""
    with _tuning.override(**{**fixed, field: 0.0}):
        c0 = cost()
    with _tuning.override(**{**fixed, field: 1.0}):
        c1 = cost()
    return max(floor, (t - c0) / max(1e-15, c1 - c0))


def _cpu_once(fn):
    """CPU seconds of the calling thread of one call of ``fn``."""
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


def _best_cpu_warm(fns, reps=2):
    """Least CPU seconds of the calling thread of each of ``fns``, round by round, each timed
    call right after an untimed call of the same function (A A B B ..., A A B B ...): the
    call finds its data in the caches and its buffers' pages mapped, as a repeated call
    does.  Timed in turn with other work instead (:func:`_best_cpu_of`), a 32x1024 * 9x9
    float32 direct correlation took 0.31 ms for 0.19 ms warm (Intel Xeon, 1 thread): the
    ns per multiply-add solved from it came out 1.6x what 1024^2 images and 128^3 volumes
    run at, and the model sent 128^3 * 7^3 float32 to the FFT (43 ms direct, 73 FFT)."""
    return _best_of(fns, reps, clock=time.thread_time, warm=True)


def _measure_signal(data, values, m, gains=None):
    """pyconv.signal's cost model (pyconv._engine.signal_plan), one constant per timing at
    one thread, each solved from the model, which is linear in it, holding the constants
    measured before it (and the defaults of the others): the direct kernel's ns per
    multiply-add on long N-d rows and on a 1-D signal, its cost per (row, block, tap) on
    short rows, the merged sweep of short rows and its border redo, the FFT's ns per point x log2
    (2-D float64, small and large), the 1-D full-transform and overlap-add factors, and the
    single-precision factors (N-d and 1-D).  Timed warm in CPU seconds of the calling
    thread (:func:`_best_cpu_warm`).  ~0.3 s in all (Intel Xeon), a third of it the 1024^2
    transforms; the float64 one is the one-worker call of ``gains`` (:class:`_GainSamples`)
    where its samples taken so far time it (more than one thread)."""
    from pyconv import signal
    from pyconv._engine import signal_plan as _sp

    fixed = {f: getattr(_tuning.DEFAULT, f) for f in SIGNAL_FIELDS}

    # The direct kernel: long rows of an N-d image, a 1-D signal (long, with a long kernel:
    # the lane-strided sweep's cost per multiply-add falls with the taps as its copies
    # spread over more of them, and a 1-D choice is close only from ~500 taps on), short
    # rows swept one by one ('full', 3-D: the per (row, block, tap) cost), short rows
    # merged ('same', 3-D: their borders redone) and the merged sweep alone ('valid', 3-D:
    # no border; 343 taps and rows of 134, as a 128^3 volume's padded rows, where direct
    # and FFT come close: 38^3 ran 1.25x slower per multiply-add, its runs being short).  Each timing is
    # dominated by its own constant; the solves depend a little on each other, so they are
    # repeated until they settle.
    cases = [((32, 1024), (9, 9), "full", np.float32, "direct_ns_f4", 0.005),
             ((32, 1024), (9, 9), "full", np.float64, "direct_ns_f8", 0.005),
             ((65536,), (1025,), "same", np.float32, "direct_ns_1d_f4", 0.005),
             ((65536,), (1025,), "same", np.float64, "direct_ns_1d_f8", 0.005),
             ((32, 32, 32), (5, 5, 5), "full", np.float32, "direct_tap_ns", 0.0),
             ((32, 32, 32), (5, 5, 5), "same", np.float32, "direct_border_ns", 0.0),
             ((38, 38, 134), (7, 7, 7), "valid", np.float32, "direct_merged_factor", 0.1)]
    runs = []
    for shape, kshape, mode, dt, field, floor in cases:
        a = data(shape, dt)
        k = data(kshape, dt)
        runs.append(lambda a=a, k=k, mode=mode: signal.correlate(a, k, mode, method="direct"))
    # the small FFT timings join the same rounds: a 2-D transform below L2 (256^2 * 9x9),
    # a 1-D full transform (32768 * 257) and overlap-add (65536 * 257, float64 and float32)
    k = data((9, 9))
    small = data((256, 256))
    x1 = data(32768)
    x2 = data(65536)
    k1 = data(257)
    x2s, k1s = x2.astype(np.float32), k1.astype(np.float32)
    runs += [lambda: signal.fftconvolve(small, k, "same"), lambda: signal._fft_core(x1, k1, "same", [0]),
             lambda: signal.oaconvolve(x2, k1, "same"), lambda: signal.oaconvolve(x2s, k1s, "same")]
    *timed, ts, t1d, toa, toa_s = _best_cpu_warm(runs)
    # the large transforms (1024^2 * 9x9, float64 and float32), each timed right after an
    # untimed call: a first call maps its buffers' pages, which on an AMD EPYC (2026-12-04:
    # transparent huge pages, zeroed at first touch) took 70 ms where a repeated float64
    # call takes 21 -- a calibration at first use, in a fresh process, priced every large
    # transform 3x and float32 at 0.13 of float64 (an Intel Xeon's first call cost what a
    # repeated one does: 58.7-60.5 ms against 59.0-62.4)
    # (the float64 one on more than one thread is the one-worker call of the gain samples
    # taken so far, each timed right after a call with all workers: ``gains``)
    large = data((1024, 1024))
    large_s, k_s = large.astype(np.float32), k.astype(np.float32)
    known = gains is not None and gains.fft_cpu < math.inf
    *tl, tl_s = _best_cpu_warm([lambda: signal.fftconvolve(large, k, "same")] * (not known)
                               + [lambda: signal.fftconvolve(large_s, k_s, "same")], reps=1)
    tl = gains.fft_cpu if known else tl[0]
    del large, large_s
    # and the copy with padded rows that can replace the border redo (4.4 MiB: a volume's
    # copy is a fresh allocation whose pages are touched first by the copy -- timed cold)
    vol = data((128, 128, 64), np.float32)
    tpad = min(_cpu_once(lambda: signal._padded_rows(vol, 2, 3, 3, np.float32)) for _ in range(2))
    m["pad_128x128x70_s"] = tpad
    values["direct_pad_ns"] = tpad / (128 * 128 * 70) * 1e9
    # its fixed cost: the copy of an 8x8 image and the check of a 3x3 kernel, 200 calls at
    # a time, the least of 5 batches, less the per-element price of the copy (8 x 10 in,
    # 8 x 8 out)
    tiny, k3 = data((8, 8)), data((3, 3))

    def calls():
        for _ in range(200):
            signal._padded_rows(tiny, 1, 1, 1, np.float64)
            signal._finite(k3)
    tcall = min(_cpu_once(calls) for _ in range(5)) / 200
    m["pad_call_s"] = tcall
    values["direct_pad_call_ns"] = max(0.0, tcall * 1e9 - (8 * 10 + 8 * 8) * values["direct_pad_ns"])
    for (shape, kshape, mode, dt, field, floor), t in zip(cases, timed):
        m[f"direct_{np.dtype(dt).name}_{'x'.join(map(str, shape))}_{mode}_s"] = t
    # The solves price the plans the timings ran: the defaults' (direct_pad_ns never pads),
    # so the 'same' case's time is its border redo.  With the padded copy's price in the
    # model, its cost is min(redo, copy): linear in direct_border_ns only up to the copy's
    # cost, and solved for it as if linear it came out 17-24 ns per (row, tap) where the
    # redo costs ~1.5 (AMD EPYC) -- every 2-D image then took the padded copy, 300x400 *
    # 3x3 float64 2.7x slower at 2 threads (0.134 ms against 0.049).
    for _ in range(4):
        for (shape, kshape, mode, dt, field, floor), t in zip(cases, timed):
            ck = "f4" if dt == np.float32 else "f8"
            fixed[field] = values[field] = _linear(
                t, lambda: _sp.direct_cost(shape, kshape, mode, ck, 1), fixed, field, floor)
    fixed["direct_pad_ns"] = values["direct_pad_ns"]
    fixed["direct_pad_call_ns"] = values["direct_pad_call_ns"]

    # FFT: ns per point x log2 in the small and large regimes (2-D, float64); the model
    # is linear in (ns_small, ns_large): solve the two timings for them
    m["fft_256_s"], m["fft_1024_s"], m["fft_1024_float32_s"] = ts, tl, tl_s

    def fft_model(shape, ns_small, ns_large):
        with _tuning.override(**{**fixed, "fft_ns_small": ns_small, "fft_ns_large": ns_large}):
            return _sp.fft_costs(shape, k.shape, False, False, 1)[0]

    shape_l = (1024, 1024)
    base_s, base_l = fft_model(small.shape, 0.0, 0.0), fft_model(shape_l, 0.0, 0.0)
    s_s, s_l = fft_model(small.shape, 1.0, 0.0) - base_s, fft_model(small.shape, 0.0, 1.0) - base_s
    l_s, l_l = fft_model(shape_l, 1.0, 0.0) - base_l, fft_model(shape_l, 0.0, 1.0) - base_l
    ys, yl = ts - base_s, tl - base_l
    det = s_s * l_l - s_l * l_s
    if abs(det) > 1e-30:
        ns_small = (ys * l_l - s_l * yl) / det
        ns_large = (s_s * yl - ys * l_s) / det
    else:
        ns_small = ns_large = ys / max(1e-12, s_s + s_l)
    values["fft_ns_small"] = fixed["fft_ns_small"] = max(0.01, ns_small)
    values["fft_ns_large"] = fixed["fft_ns_large"] = max(values["fft_ns_small"], ns_large)

    # 1-D: one full transform (float64, 32768 * 257, 'same') and overlap-add (65536 * 257)
    m["fft_1d_32768_s"], m["oa_65536_s"], m["oa_65536_float32_s"] = t1d, toa, toa_s
    values["fft_1d_factor"] = fixed["fft_1d_factor"] = _linear(
        t1d, lambda: _sp.fft_costs(x1.shape, k1.shape, False, False, 1)[0], fixed, "fft_1d_factor", 0.1)
    values["fft_oa_factor"] = fixed["fft_oa_factor"] = _linear(
        toa, lambda: _sp.fft_costs(x2.shape, k1.shape, False, False, 1)[1], fixed, "fft_oa_factor", 0.1)
    # single precision: the same 2-D and overlap-add transforms in float32
    values["fft_single_factor"] = fixed["fft_single_factor"] = _linear(
        tl_s, lambda: _sp.fft_costs(shape_l, k.shape, False, True, 1)[0], fixed, "fft_single_factor", 0.05)
    values["fft_1d_single_factor"] = fixed["fft_1d_single_factor"] = _linear(
        toa_s, lambda: _sp.fft_costs(x2.shape, k1.shape, False, True, 1)[1], fixed, "fft_1d_single_factor", 0.05)
    # 3-D: one volume's transforms (96^3 * 5^3 float64 'same', ~20 ms, timed warm as above)
    vol3, k3 = data((96, 96, 96)), data((5, 5, 5))
    t3 = m["fft_96^3_s"] = _best_cpu_warm([lambda: signal.fftconvolve(vol3, k3, "same")], reps=1)[0]
    del vol3
    values["fft_3d_factor"] = fixed["fft_3d_factor"] = _linear(
        t3, lambda: _sp.fft_costs((96, 96, 96), k3.shape, False, False, 1)[0], fixed, "fft_3d_factor", 0.1)


class _GainSamples:
    """What the threads past the first add, sampled at points spread over the calibration:
    the direct kernel on a 3-D volume of merged short rows (1 MiB, past L2: the threads
    share the memory bus as on real volumes) at 1 thread and at ``nt``, and the FFT of a
    large image (1024^2 * 9x9 float64 'same') with one worker and with all, each call's
    wall time; of each pair, the sample whose threads gained most is kept.  A host's slow
    spells come and go: timed in 3 rounds within 15 ms, a 2-thread team ran no faster than
    one thread in 2 of 10 processes on an AMD EPYC VM (64^3 * 5^3: 2.0-2.4 ms for 1.25,
    2.5 at 1 thread), and a calibration at first use cached a direct_thread_gain of
    0.08-0.22 where it is 0.95-1.0; spread over the second the calibration takes, one quiet
    sample is enough.  (The least time of each call over all the samples instead paired
    one spell's 1-thread time with another's team: on an Intel Xeon VM whose 1-thread
    direct calls ran 2.7 ms in some samples and 4.3 in others, 6 calibrations gave
    direct_thread_gain 0.25-0.93 and fft_thread_gain 0.15-0.47.)"""

    def __init__(self, nt, data):
        self.nt = nt
        self.direct = [math.inf, math.inf]
        self.fft = [math.inf, math.inf]
        self.fft_cpu = math.inf         # CPU seconds of the one-worker FFTs (the calling thread)
        if nt > 1:
            self.vol = data((64, 64, 64), np.float32)
            self.k3 = data((5, 5, 5), np.float32)
            self.large = data((1024, 1024))
            self.k = data((9, 9))

    def _direct(self, n):
        from pyconv import signal
        from pyconv._threads import threads
        with threads(n):
            return signal.correlate(self.vol, self.k3, "same", method="direct")

    def _fft(self, n):
        from pyconv import signal
        from pyconv._threads import threads
        with threads(n), _tuning.override(fft_workers_min_points=0):
            return signal.fftconvolve(self.large, self.k, "same")

    def take(self):
        """One sample: after an untimed call of each (a call alone after other work runs
        cold -- 2-thread direct calls 1.3-1.5 ms for 1.25 warm, the gain of two FFT workers
        0.0-0.16 for 0.6-0.8), two rounds of the direct kernel at 1 and ``nt`` threads in
        turn; then, after one untimed FFT with ``nt`` workers, one with one worker and one
        with ``nt``, timed.  (The FFTs are 90% of a sample's time: one call warms the
        buffers and transform plans of both, and three samples spread over the calibration
        give each its least time -- two rounds per sample and a warm-up of each made the
        three samples 0.7-0.9 s of a 2.1-2.8 s calibration, Intel Xeon.)  Teams are not
        shrunk for load meanwhile: the load monitor's first reading (runnable tasks at that
        instant) once shrank the first 2-thread calls to one thread; the gain is the
        kernel's on the cores it is given (run time shrinks teams on a busy machine anyway)."""
        if self.nt <= 1:
            return
        with _teams_unshrunk():
            direct = _best_of([lambda: self._direct(1), lambda: self._direct(self.nt)], reps=2)
            self._fft(self.nt)
            fft = []
            for n in (1, self.nt):
                t0, c0 = time.perf_counter(), time.thread_time()
                self._fft(n)
                fft.append(time.perf_counter() - t0)
                if n == 1:
                    self.fft_cpu = min(self.fft_cpu, time.thread_time() - c0)
        self.direct = _faster_team(self.direct, direct)
        self.fft = _faster_team(self.fft, fft)


def _faster_team(old, new):
    """Of two samples (1-thread time, team time), the one whose team gained more."""
    if math.isinf(old[1]) or new[0] * old[1] > old[0] * new[1]:
        return list(new)
    return old


#: multiply-adds of the calls the thread grain is timed on
GRAIN_WORKS = tuple(1 << e for e in range(16, 23))


def _measure_grain(data, values, m):
    """The least work (multiply-adds) per thread worth a thread of its own in a
    ``pyconv.nn`` call (``grain``): two kernels on calls of :data:`GRAIN_WORKS` at one
    thread and at the default count, wall time, each timed right after an untimed call of
    its own (a network's calls come back to back) -- the output-channel kernel (16 -> 64
    channels, kernel 3, one sample) and the depthwise register kernel (32 channels, 3x3,
    one sample; memory-bound: a second thread pays from less work).  Of the sizes from which
    the team is faster at every larger size, the smaller, over the thread count.  The load
    monitor stays on: its check of the machine is part of what a team costs a call.  (AMD
    EPYC, 2 threads, one thread's time / two's: output-channel kernel 3x3 32->32 14^2, 1.8M
    multiply-adds 0.98, 3.6M 1.05; depthwise 28^2, 0.45M 1.00, 0.9M 1.28; im2col + GEMM on
    6^2 maps 0.66M 0.86, 2.7M 1.13 -- where the built-in grain of 32K gave every call from
    64K multiply-adds two threads.)"""
    from pyconv import nn
    from pyconv._engine.plan import Algorithm as A
    from pyconv._threads import _default_threads, threads

    nt = _default_threads()
    values["grain"] = _tuning.DEFAULT.grain
    if nt <= 1:
        return
    w1 = data((64, 16, 3), np.float32)
    wd = data((32, 1, 3, 3), np.float32)
    runs = []
    for work in GRAIN_WORKS:
        x1 = data((1, 16, max(1, work // (64 * 16 * 3))), np.float32)
        side = max(3, round(math.sqrt(work / (32 * 9))))
        xd = data((1, 32, side, side), np.float32)
        for n in (1, nt):
            def oc(x=x1, n=n):
                with threads(n):
                    return nn.conv1d(x, w1, padding=1)

            def dw(x=xd, n=n):
                with threads(n):
                    return nn.conv2d(x, wd, padding=1, groups=32)
            # (grain 1: every call on n threads)
            runs += [_forced(A.DENSE_OC, oc, grain=1), _forced(A.THIN_REG, dw, grain=1)]
    best = _best_of(runs, reps=5, warm=True)
    m["grain_works"] = list(GRAIN_WORKS)
    m["grain_dense_oc_s"] = [best[0::4], best[2::4]]
    m["grain_thin_reg_s"] = [best[1::4], best[3::4]]
    values["grain"] = grain_from(GRAIN_WORKS, [m["grain_dense_oc_s"], m["grain_thin_reg_s"]], nt)


def grain_from(works, kernels, nt):
    """The thread grain from the times ``kernels`` (per kernel: one thread's and the team's
    time at each of ``works``): the least size from which some kernel's team is faster at
    every larger size, over the ``nt`` threads (twice the largest size when none is).

    >>> grain_from([1, 2, 4, 8], [[[1, 2, 3, 6], [2, 3, 2, 4]], [[1, 2, 3, 6], [2, 2.5, 4, 4]]], 2)
    2
    >>> grain_from([1, 2], [[[1, 2], [2, 3]]], 2)
    2
    """
    cross = min(_crossover(team, one, works) for one, team in kernels)
    return int(min(cross, 2 * works[-1]) // nt)


def _measure_signal_threads(data, values, m, gains):
    """What the threads past the first add to the signal model's two methods, at the default
    thread count (wall time): from which transform size a second scipy.fft worker pays
    for its hand-off (2-D float64 'same' * 9x9 at 128^2, 256^2 and 1024^2, one worker
    against all), and from ``gains`` (:class:`_GainSamples`) the direct kernel's gain from
    the threads and the FFT's gain from the workers on the large transform."""
    from pyconv import signal
    from pyconv._threads import _default_threads, threads

    nt = _default_threads()
    values["fft_workers_min_points"] = _tuning.DEFAULT.fft_workers_min_points
    values["fft_thread_gain"] = _tuning.DEFAULT.fft_thread_gain     # (unused at 1 thread)
    values["direct_thread_gain"] = _tuning.DEFAULT.direct_thread_gain
    if nt <= 1:
        return
    sizes = (128, 256)
    k = data((9, 9))

    def fft(a, limit):
        def run():
            with threads(nt), _tuning.override(fft_workers_min_points=limit):
                return signal.fftconvolve(a, k, "same")
        return run
    runs = []
    for n in sizes:
        a = data((n, n))
        runs += [fft(a, 1 << 62), fft(a, 0)]
    # (no warm-up round: the first round's calls are timed too, and a plan made or a page
    # first touched in it leaves the least time to the second)
    best = [math.inf] * len(runs)
    # Three rounds, and teams not shrunk for load (see _GainSamples.take): on a shared host
    # one call in several of a 2-thread team can stall for a scheduler slice (a 2.6 ms
    # call taking 7-10 ms, AMD EPYC VM).
    with _teams_unshrunk():
        for _ in range(3):
            for i, fn in enumerate(runs):
                t0 = time.perf_counter()
                fn()
                best[i] = min(best[i], time.perf_counter() - t0)
    d1, dn = gains.direct
    t_one, t_large = gains.fft
    # (a busy machine leaves the extra threads little to gain: the cores other processes
    # held say whether the gains are a quiet machine's)
    from pyconv._threads import _load as monitor
    m["others_busy_cores"] = monitor.others_busy()
    # the sizes swept, then the large transform (one worker: its one-thread time).  Small
    # transforms split worse (Intel Xeon, 2 threads: 512^2 ran level with two workers,
    # 1024^2 68 -> 49 ms), so their gain would price the large ones too high
    single, multi = best[0::2] + [t_one], best[1::2] + [t_large]
    points = [math.prod(_fft_len(n + 8) for _ in range(2)) for n in sizes + (1024,)]
    m["fft_points"], m["fft_one_worker_s"], m["fft_workers_s"] = points, single, multi
    # bigger transforms split better (more independent rows per worker): if a second
    # worker never paid within the sizes measured, it is taken from twice the largest
    # (Intel Xeon, 2 threads: 1024^2 * 9^2 'same' 40.7 -> 31.8 ms with two workers,
    # while 512^2 ran level)
    values["fft_workers_min_points"] = min(_crossover(multi, single, points), 2 * points[-1])
    # what the extra threads add to the FFT's speed
    m["fft_1024_workers_s"] = [t_one, t_large]
    values["fft_thread_gain"] = float(np.clip((t_one / t_large - 1.0) / (nt - 1), 0.0, 1.0))
    m["direct_thread_s"] = [d1, dn]
    values["direct_thread_gain"] = float(np.clip((d1 / dn - 1.0) / (nt - 1), 0.0, 1.0))
