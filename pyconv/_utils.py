"""The one place where pyconv normalises arguments, applies its dtype policy and
decides how many threads a kernel gets.

Every public function reads: validate and normalise here -> pick an algorithm ->
allocate the output -> one typed kernel -> return.  Kernels trust what they get,
so every bound they rely on is checked in this module first.
"""
import operator
import os
import threading
from contextlib import contextmanager

import numpy as np

from pyconv._kernels import _openmp

# --------------------------------------------------------------------------- threads

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


_state = {"threads": _default_threads()}
_lock = threading.Lock()


def set_num_threads(n):
    """Set the number of OpenMP threads pyconv's kernels use (process-wide).

    Parameters
    ----------
    n : int
        Thread count, at least 1.

    Examples
    --------
    >>> import pyconv
    >>> old = pyconv.get_num_threads()
    >>> pyconv.set_num_threads(1)
    >>> pyconv.get_num_threads()
    1
    >>> pyconv.set_num_threads(old)
    """
    n = check_int(n, "n")
    if n < 1:
        raise ValueError(f"n={n} must be a positive number of threads")
    with _lock:
        _state["threads"] = n


def get_num_threads():
    """Return the number of threads the kernels will use for the next call.

    This is the count set by :func:`set_num_threads` (default: ``OMP_NUM_THREADS``
    if set, else the CPUs this process may use), further limited by
    ``threadpoolctl.threadpool_limits`` (which lowers the OpenMP runtime's limit).

    Examples
    --------
    >>> import pyconv
    >>> pyconv.get_num_threads() >= 1
    True
    """
    return max(1, min(_state["threads"], _openmp.max_threads()))


@contextmanager
def threads(n):
    """Context manager: run the block with ``n`` kernel threads, then restore.

    Examples
    --------
    >>> import pyconv
    >>> with pyconv.threads(1):
    ...     pyconv.get_num_threads()
    1
    """
    n = check_int(n, "n")
    if n < 1:
        raise ValueError(f"n={n} must be a positive number of threads")
    with _lock:
        old = _state["threads"]
        _state["threads"] = n
    try:
        yield n
    finally:
        with _lock:
            _state["threads"] = old


def num_threads_for(work, grain=1 << 15):
    """Threads to give a kernel doing ``work`` elementary operations.

    Tiny problems run on one thread: waking a team costs more than it saves.
    ``grain`` is the least work worth a thread of its own.
    """
    n = get_num_threads()
    if n <= 1:
        return 1
    return int(max(1, min(n, work // grain)))


def openmp_enabled():
    """True when pyconv's kernels were compiled with OpenMP.

    Examples
    --------
    >>> import pyconv
    >>> isinstance(pyconv.openmp_enabled(), bool)
    True
    """
    return _openmp.openmp_enabled()


# --------------------------------------------------------------------------- scalars

def check_int(value, name):
    """``operator.index(value)`` with a TypeError that names the argument."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices`` (strings), else ValueError naming them."""
    if not isinstance(value, str) or value not in choices:
        opts = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {opts}; got {value!r}")
    return value


def as_tuple(value, n, name, minimum=None):
    """Normalise an int or a length-``n`` sequence of ints to an ``n``-tuple.

    ``minimum`` (if given) is the least value each entry may take.
    """
    if isinstance(value, (list, tuple, np.ndarray)):
        vals = list(value)
        if len(vals) != n:
            raise ValueError(f"{name} must be an int or a tuple of {n} ints; got {value!r}")
        out = tuple(check_int(v, name) for v in vals)
    else:
        out = (check_int(value, name),) * n
    if minimum is not None:
        for v in out:
            if v < minimum:
                raise ValueError(f"{name}={value!r}: every entry must be >= {minimum}")
    return out


# --------------------------------------------------------------------------- dtypes

def dl_dtype(*arrays):
    """The compute dtype of pyconv.nn / pyconv.grad for these operands.

    float32 stays float32; any float64 operand (or integer/bool, or anything else
    real) makes it float64; float16 computes in float32; complex raises TypeError.
    """
    dts = [a.dtype for a in arrays if a is not None]
    result = None
    for dt in dts:
        if dt.kind == "c":
            raise TypeError(f"complex input (dtype {dt}) is not supported by pyconv.nn/pyconv.grad; "
                            "use pyconv.signal for complex convolution")
        if dt.kind not in "biuf":
            raise TypeError(f"input dtype {dt} is not numeric")
        cand = np.dtype(np.float32) if dt in (np.float16, np.float32) else np.dtype(np.float64)
        result = cand if result is None else np.promote_types(result, cand)
    return result if result is not None else np.dtype(np.float64)


def as_array(x, name, dtype=None):
    """``np.asarray`` that names the argument when the input is not array-like."""
    try:
        a = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be array-like: {e}") from None
    if a.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    return a


def contiguous(a, dtype):
    """``a`` as a C-contiguous array of ``dtype``, copying only when needed.

    Read-only inputs are fine: kernels take const memoryviews.
    """
    return np.ascontiguousarray(a, dtype=dtype)
