"""pyconv's thread runtime: its own thread count, a load-aware team size, fork safety,
threadpoolctl integration and a BLAS limit that never leaks out of a call.

Semantics (documented in the README):

* ``set_num_threads(n)`` sets the process-wide count (like ``torch.set_num_threads``).
  It is pyconv's own state: another library's setting of the shared OpenMP runtime
  (``torch.set_num_threads``, ``omp_set_num_threads``) does not change it, because every
  kernel receives its team size explicitly and nothing here reads the runtime back.
* ``threads(n)`` overrides the count for the calling Python thread only, for the
  duration of the block; overlapping blocks in different Python threads do not see
  each other, and each restores exactly its own previous value.
* ``threadpoolctl.threadpool_limits(k)`` (for all APIs or ``user_api="openmp"``) caps
  the count process-wide through pyconv's own threadpoolctl controller
  (:class:`PyconvController`).
* A busy machine: a team of ``n`` OpenMP threads with spinning waits collapses when
  other processes hold the cores (one descheduled team member stalls the whole region
  for a scheduler slice; measured 15-100x slower than one thread).  Before each
  multi-threaded kernel the team is therefore shrunk to the cores the other processes
  leave free, measured from ``/proc/stat`` less this process's own CPU time, and by the
  threads of this process that are running outside pyconv's team right then (another
  library's workers still spinning after their call: OpenBLAS's spin about 0.1 s after
  each threaded numpy matmul, and a team sharing a core with one ran 4-5x slower).  Kernels
  whose result depends on how work is split (per-thread partial sums) split it into
  ``parts`` fixed by the configured count, not by this load-dependent team size, so the
  same call gives bitwise the same result whatever the load.
* ``fork``: GNU libgomp's worker pool does not survive ``fork``; a forked child runs
  every kernel on one thread (as PyTorch does) instead of hanging.
"""
import os
import threading
import time
from contextlib import contextmanager

import numpy as np

from pyconv._kernels import _pyconv_omp

# --------------------------------------------------------------------------- defaults


def _available_cpus():
    """CPUs this process may use: the affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    # cgroup v2 ("max 100000" or "200000 100000") and v1 quota files.
    for quota_file, period_file in (("/sys/fs/cgroup/cpu.max", None),
                                    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                                     "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            with open(quota_file) as f:
                parts = f.read().split()
            if period_file is None:
                quota, period = parts[0], parts[1]
            else:
                with open(period_file) as f:
                    quota, period = parts[0], f.read().split()[0]
            if quota not in ("max", "-1") and int(period) > 0:
                n = min(n, max(1, int(quota) // int(period)))
            break
        except (OSError, IndexError, ValueError):
            continue
    return max(1, n)


def _default_threads():
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env:
        try:
            v = int(env)
            if v >= 1:
                return v
        except ValueError:
            pass
    return _available_cpus()


# --------------------------------------------------------------------------- state

_lock = threading.Lock()
_state = {
    "threads": _default_threads(),  # set_num_threads (process-wide)
    "cap": None,                    # threadpoolctl's limit (process-wide), None = no cap
    "forked": False,                # True in a child made by fork(): serial kernels
}


class _Local(threading.local):
    override = None         # the innermost threads(n) of this thread; a class default so
                            # reading it never raises (getattr's default path costs ~1 us)


_local = _Local()


def _check_count(n):
    from pyconv._utils import check_int  # (_utils re-exports this module's names)
    n = check_int(n, "n")
    if n < 1:
        raise ValueError(f"n={n} must be a positive number of threads")
    return n


def set_num_threads(n):
    """Set the number of threads pyconv's kernels use (process-wide).

    Parameters
    ----------
    n : int
        Thread count, at least 1.

    Returns
    -------
    None

    Examples
    --------
    >>> import pyconv
    >>> old = pyconv.get_num_threads()
    >>> pyconv.set_num_threads(1)
    >>> pyconv.get_num_threads()
    1
    >>> pyconv.set_num_threads(old)
    """
    n = _check_count(n)
    with _lock:
        _state["threads"] = n


def get_num_threads():
    """Return the number of threads pyconv's kernels may use for the next call.

    The calling thread's innermost :func:`threads` block if any, else the process-wide
    count of :func:`set_num_threads` (default: ``OMP_NUM_THREADS`` if set, else the CPUs
    this process may use), capped by ``threadpoolctl.threadpool_limits``.  It is 1 in a
    child process made by ``fork``.  On a busy machine a call may run on fewer threads
    than this (the cores other processes leave free), never on more.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> import pyconv
    >>> pyconv.get_num_threads() >= 1
    True
    """
    if _state["forked"]:
        return 1
    n = _local.override or _state["threads"]
    cap = _state["cap"]
    return n if cap is None or cap >= n else cap


@contextmanager
def threads(n):
    """Context manager: run the block with ``n`` kernel threads in the calling Python
    thread, then restore its previous count.

    The override is per Python thread (other threads keep their own count), and blocks
    nest.  ``threadpoolctl.threadpool_limits`` still caps it.

    Parameters
    ----------
    n : int
        Thread count for the block, at least 1.

    Returns
    -------
    context manager
        Yields ``n``; on exit the previous count is back, also after an exception.

    Examples
    --------
    >>> import pyconv
    >>> with pyconv.threads(1):
    ...     pyconv.get_num_threads()
    1
    """
    n = _check_count(n)
    old = _local.override
    _local.override = n
    try:
        yield n
    finally:
        _local.override = old


def openmp_enabled():
    """True when pyconv's kernels were compiled with OpenMP.

    Returns
    -------
    bool
        False for a serial build (a compiler without OpenMP, or ``PYCONV_NO_OPENMP=1``).

    Examples
    --------
    >>> import pyconv
    >>> isinstance(pyconv.openmp_enabled(), bool)
    True
    """
    return _pyconv_omp.openmp_enabled()


# --------------------------------------------------------------------------- load


class _TaskStates:
    """Run states of this process's threads (``/proc/self/task/<tid>/stat``), each thread's
    file kept open between scans: a scan is then a directory listing and one ``pread`` per
    thread (5 threads, Intel Xeon: 17 us, against 64 us opening, reading and closing each
    file), and a multi-threaded call on a machine where anything else runs pays it.  The
    files of threads that ended are closed at the next scan; a forked child opens its own.
    One scan at a time (calls from several Python threads share the files)."""

    # more threads than this: each file opened and closed per scan instead (no fd per thread)
    max_open = 64

    def __init__(self):
        self.pid, self.fds = None, {}
        self.lock = threading.Lock()

    def after_fork(self):
        """In a forked child: a fresh lock (another thread may have held the parent's at
        the fork) and the parent's threads' files closed."""
        self.lock = threading.Lock()
        self._adopt()

    def _adopt(self):
        """The files closed (a parent's, after a fork) and this process's id recorded."""
        self.close()
        self.pid = os.getpid()

    def close(self, tids=None):
        """Close the files of ``tids`` (all when None)."""
        for tid in list(self.fds) if tids is None else tids:
            try:
                os.close(self.fds.pop(tid))
            except OSError:
                pass

    def _state(self, tid):
        """The state letter of thread ``tid`` (bytes), or None when it has ended."""
        fd = self.fds.get(tid)
        kept = fd is not None
        try:
            if fd is None:
                fd = os.open(f"/proc/self/task/{tid}/stat", os.O_RDONLY)
                if len(self.fds) < self.max_open:
                    self.fds[tid], kept = fd, True
            return self._letter(os.pread(fd, 1024, 0))
        except (OSError, ValueError):       # the thread ended meanwhile
            return None
        finally:
            if fd is not None and not kept:
                os.close(fd)

    @staticmethod
    def _letter(stat):
        i = stat.rindex(b")")
        return stat[i + 2:i + 3]

    def _own(self):
        """The files are this process's (a child forked by C code ran no Python at-fork hook).
        Called with the lock held."""
        if self.pid != os.getpid():
            self._adopt()

    def runnable_of(self, tids):
        """How many of the threads ``tids`` are running or waiting for a CPU (no listing)."""
        with self.lock:
            self._own()
            return sum(self._state(t) == b"R" for t in tids)

    def runnable(self, skip=frozenset()):
        with self.lock:
            self._own()
            tids = {int(t) for t in os.listdir("/proc/self/task")}
            self.close([t for t in self.fds if t not in tids])
            return sum(self._state(t) == b"R" for t in tids if t not in skip)


_task_states = _TaskStates()


class _LoadMonitor:
    """Cores that other processes keep busy, sampled at most every ``period`` seconds.

    Busy time comes from ``/proc/stat`` (the CPUs of this process's affinity mask),
    this process's own CPU time (every thread, spinning OpenMP workers included) from
    ``time.process_time``; the difference over the last window is what the rest of the
    machine used.  ``/proc/stat`` counts in clock ticks (10 ms), so windows are at
    least 100 ms long.  Where ``/proc/stat`` is missing, nothing is adapted, and
    ``PYCONV_LOAD_AWARE=0`` turns the adaptation off.
    """

    period = 0.1
    stale = 1.0

    def __init__(self):
        self.reset()

    def reset(self):
        self.teams = {}             # native id of a calling thread -> (n, its team's thread ids, its workers)
        if getattr(self, "loadavg", None) is not None:
            os.close(self.loadavg)
        self.loadavg = None         # /proc/loadavg, kept open
        self.t = None
        self.busy = self.own = 0.0
        self.others = 0.0
        try:
            self.cpus = {f"cpu{c}" for c in os.sched_getaffinity(0)}
        except (AttributeError, OSError):
            self.cpus = None
        self.tick = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
        self.enabled = os.path.exists("/proc/stat") and os.environ.get("PYCONV_LOAD_AWARE", "1") != "0"

    def _busy_seconds(self):
        busy = 0
        with open("/proc/stat", "rb") as f:
            for line in f:
                if not line.startswith(b"cpu"):
                    break
                name, *vals = line.split()
                if name == b"cpu" or (self.cpus is not None and name.decode() not in self.cpus):
                    continue
                v = [int(x) for x in vals[:8]]
                busy += sum(v) - v[3] - v[4]        # all but idle and iowait
        return busy * self.tick

    @staticmethod
    def _runnable_threads(skip=frozenset()):
        """Threads of this process running or waiting for a CPU right now, but those whose
        kernel thread ids are in ``skip``."""
        return _task_states.runnable(skip)

    @classmethod
    def _own_runnable(cls):
        """Threads of this process running or waiting for a CPU right now (the caller too)."""
        return max(1, cls._runnable_threads())

    def foreign_runnable(self, n):
        """Threads of this process, other than the caller and the OpenMP team it runs ``n``
        threads on, that are running or waiting for a CPU right now: another library's
        workers still spinning after its call, or other Python threads at work.

        OpenBLAS's workers spin (sched_yield) for about 2^28 cycles, some 0.1 s, after
        each threaded call; a team member sharing a core with one stalls the region (a
        3x3 layer of 1.5 ms ran in 8.5 ms right after a numpy matmul, 2 threads, Intel
        Xeon).  Costs one read of ``/proc/loadavg`` when nothing but the caller runs, a
        scan of the process's threads otherwise.
        """
        if not self.enabled or n <= 1:
            return 0
        try:
            total = self._runnable_now()
            if total <= 1:
                return 0
            me = threading.get_native_id()
            team = self.teams.get(me)
            if team is None or team[0] < n:
                ids = _pyconv_omp.team_thread_ids(n)
                team = self.teams[me] = (n, frozenset(ids) | {me}, tuple(t for t in ids if t != me))
            # the others the machine runs may be this team's own workers, still spinning
            # after the last region: then there is nothing else, and no listing of the
            # process's threads (a scan on every call: 2 x 67 us of a 3.5 ms layer, AMD EPYC)
            if total - 1 - _task_states.runnable_of(team[2]) <= 0:
                return 0
            return self._runnable_threads(team[1])
        except (OSError, ValueError, IndexError):
            return 0

    def _runnable_now(self):
        """:meth:`_runnable_tasks` from ``/proc/loadavg`` kept open (a read of the open file
        takes 1 us, an open, read and close 7)."""
        if self.loadavg is None:
            self.loadavg = os.open("/proc/loadavg", os.O_RDONLY)
        return int(os.pread(self.loadavg, 128, 0).split()[3].split(b"/")[0])

    @staticmethod
    def _runnable_tasks():
        """Tasks of the whole machine running or waiting for a CPU right now."""
        with open("/proc/loadavg", "rb") as f:
            return int(f.read().split()[3].split(b"/")[0])

    @classmethod
    def _runnable_others(cls):
        # instantaneous: tasks running or waiting for a CPU right now, less this process's
        # own (the caller, and any of its threads still running: a worker spinning after
        # its last region is this process's, not another's)
        return float(max(0, cls._runnable_tasks() - cls._own_runnable()))

    def others_busy(self):
        """Cores used by other processes over the latest window (0.0 when unknown).

        Without a recent window (the first call, or after a second or more without
        multi-threaded calls) the count of other processes' runnable tasks right now
        stands in for it (this process's own threads are left out); with one, that count
        caps it (a burst of other work that has ended leaves no runnable task).
        """
        if not self.enabled:
            return 0.0
        now = time.monotonic()
        if self.t is not None and now - self.t < self.period:
            return self.others
        try:
            busy = self._busy_seconds()
            own = time.process_time()
            if self.t is not None and now - self.t <= self.stale:
                self.others = max(0.0, ((busy - self.busy) - (own - self.own)) / (now - self.t))
                if self.others > 0.0:
                    # the window may hold a burst that has ended (a dask cluster's workers
                    # a moment ago: the next call ran on one thread of two, 1.5-2x slower):
                    # the other processes' tasks runnable right now cap it; busy loops
                    # are always runnable
                    self.others = min(self.others, self._runnable_others())
            else:
                self.others = self._runnable_others()
        except (OSError, ValueError, IndexError):
            self.enabled = False
            return 0.0
        self.t, self.busy, self.own = now, busy, own
        return self.others


_load = _LoadMonitor()
# A team member shares a core with another process only when the other processes
# leave less than (1 - _SLACK) of a core free for it.
_SLACK = 0.25


def team_size(n):
    """The OpenMP team size for a kernel allowed ``n`` threads: ``n`` on a quiet
    machine, fewer when other processes, or threads of this one outside pyconv's team,
    hold cores (never below 1)."""
    if n <= 1:
        return 1
    others = _load.others_busy()
    cpus = len(_load.cpus) if _load.cpus else _available_cpus()
    if others > 0.0 and int(cpus - others + _SLACK) <= 1:
        return 1            # (no scan of this process's threads: one thread whatever it finds)
    others += _load.foreign_runnable(n)
    if others <= 0.0:
        return n
    return max(1, min(n, int(cpus - others + _SLACK)))


def _huge_page_bytes():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") as f:
            return max(4096, int(f.read()))
    except (OSError, ValueError):
        return 2 << 20


#: bytes of a transparent huge page (x86-64: 2 MiB)
HUGE_PAGE = _huge_page_bytes()
# NumPy asks for huge pages (madvise) on arrays of at least 4 MiB
_TOUCH_MIN = 4 << 20


def first_touch(a, team):
    """``a``, a new C-contiguous array a team of ``team`` threads writes next, with its huge
    pages faulted in by the calling thread (one zero byte stored per huge page) when it is
    large and the machine's calibration found fresh memory faulted no slower that way
    (``Tuning.first_touch_serial``: see there for the figures).  Pages already mapped cost
    one store each.  Only for arrays whose every element the kernel writes (or zeros)."""
    if team > 1 and a.nbytes >= _TOUCH_MIN and a.flags.c_contiguous:
        from pyconv._engine import tuning
        if tuning.active().first_touch_serial:
            touch_huge_pages(a)
    return a


def touch_huge_pages(a):
    """One zero byte stored in every huge page of the C-contiguous array ``a`` (and its last
    byte): the pages are faulted in by the calling thread.  What :func:`first_touch` does,
    and what the calibration times against a team's own faults."""
    b = a.reshape(-1).view(np.uint8)
    b[::HUGE_PAGE] = 0
    b[-1:] = 0


def num_parts_for(work, grain=1 << 15):
    """Parts to split ``work`` elementary operations into: the configured thread count,
    less for small problems (waking a team costs more than it saves).  Fixed by the
    configuration and the problem, never by the machine's load, so partial sums split
    this way give the same bits whatever the load."""
    n = get_num_threads()
    if n <= 1:
        return 1
    return int(max(1, min(n, work // grain)))


def num_threads_for(work, grain=1 << 15):
    """Threads to give a kernel doing ``work`` elementary operations whose result does
    not depend on the split (every output computed by one thread): the parts of
    :func:`num_parts_for`, shrunk to the cores the machine has free."""
    return team_size(num_parts_for(work, grain))


# --------------------------------------------------------------------------- fork


def _after_fork_in_child():
    # libgomp's pool threads do not exist in the child; a region with more than one
    # thread would wait on them forever.  One thread runs no pool at all.
    _state["forked"] = True
    _load.reset()
    _task_states.after_fork()
    _blas["depth"] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------- BLAS

_blas = {"libs": None, "depth": 0, "saved": None}
_blas_lock = threading.Lock()


def _blas_libs():
    """A (get, set) pair of thread-count functions per BLAS library loaded: OpenBLAS's own C
    functions where threadpoolctl finds them (a pyconv call on a small map pays ~2 us for
    them, against ~30 us through threadpoolctl's Python layers on every call), else
    threadpoolctl's methods (other BLAS, OpenBLAS built on OpenMP)."""
    from threadpoolctl import ThreadpoolController
    import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS the kernels call)
    libs = []
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        symbol = getattr(lib, "_get_symbol", None)
        get = put = None
        if symbol is not None and getattr(lib, "internal_api", "") == "openblas" \
                and getattr(lib, "threading_layer", "") != "openmp":
            get, put = symbol("openblas_get_num_threads"), symbol("openblas_set_num_threads")
        if get is None or put is None:
            get, put = (lambda lib=lib: lib.num_threads), lib.set_num_threads
        libs.append((get, put))
    return libs


class blas_single_thread:
    """Limit BLAS to ``n`` threads (default one) for the block.

    pyconv's OpenMP threads each call GEMM, and a multi-threaded BLAS under them would
    oversubscribe the cores; a single big GEMM gets BLAS's own ``n`` threads instead.
    Overlapping blocks (concurrent calls from several Python threads) share one saved
    state: the first to enter saves BLAS's settings, the last to leave restores them,
    so no interleaving leaves numpy's or scipy's BLAS changed after the calls.  (A class,
    not a generator: it runs on every GEMM-path call, small ones included.)
    """

    __slots__ = ("n",)

    def __init__(self, n=1):
        self.n = max(1, int(n))

    def __enter__(self):
        with _blas_lock:
            if _blas["depth"] == 0:
                libs = _blas["libs"]
                if libs is None:
                    libs = _blas["libs"] = _blas_libs()
                _blas["saved"] = [(put, get()) for get, put in libs]
            for put, _ in _blas["saved"]:
                put(self.n)
            _blas["depth"] += 1
        return self

    def __exit__(self, *exc):
        with _blas_lock:
            _blas["depth"] -= 1
            if _blas["depth"] == 0:
                for put, old in _blas["saved"]:
                    put(old)
                _blas["saved"] = None
        return False


# --------------------------------------------------------------------------- threadpoolctl


def _register_threadpoolctl():
    """Make ``threadpoolctl.threadpool_limits`` cap pyconv's count through a controller of
    pyconv's own (it would otherwise only set the shared OpenMP runtime, which pyconv does
    not read)."""
    try:
        import threadpoolctl
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return

    class PyconvController(threadpoolctl.LibController):
        user_api = "openmp"
        internal_api = "pyconv"
        filename_prefixes = ("_pyconv_omp",)
        check_symbols = ("PyInit__pyconv_omp",)

        def get_num_threads(self):
            cap = _state["cap"]
            return _state["threads"] if cap is None else cap

        def set_num_threads(self, num_threads):
            # threadpool_limits sets a limit on entry and the value it read on exit:
            # a value at or above the process-wide count means "no cap".
            with _lock:
                n = int(num_threads)
                _state["cap"] = None if n >= _state["threads"] else max(1, n)

        def get_version(self):
            from pyconv import __version__
            return __version__

    threadpoolctl.register(PyconvController)
    return PyconvController


PyconvController = _register_threadpoolctl()
