"""The memory pool of pyconv's public functions (``pyconv/_kernels/pyconv_pool.h``).

Every public function of :mod:`pyconv.signal`, :mod:`pyconv.nn`, :mod:`pyconv.grad` and
:mod:`pyconv.ndimage` allocates its arrays (outputs, workspaces) through a NumPy memory
handler that keeps freed arrays of 256 KiB or more mapped, for the next call, instead of
handing them back to the C library: a new large array is otherwise often a fresh mapping
whose pages fault and are zeroed by the kernel at first touch (whenever other code's
allocations have moved glibc's thresholds, and always in dask workers, whose nanny sets
``MALLOC_TRIM_THRESHOLD_``).  Arrays the pool gave out are ordinary NumPy arrays; when the
caller drops one, its memory returns to the pool.

``PYCONV_ALLOC_CACHE`` sets the most bytes kept (``0`` or ``off``: no pool, NumPy's own
allocator; a number of bytes, or with a ``K``, ``M`` or ``G`` suffix); the default keeps
up to 256 MiB, and at most 1/8 of the machine's memory, in at most 8 blocks.
"""
import os
import warnings

from pyconv._kernels import _pool

__all__ = ["call", "enter", "leave", "stats", "configure", "budget_from_env", "default_budget"]

call, enter, leave, stats = _pool.call, _pool.enter, _pool.leave, _pool.stats
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def default_budget():
    """256 MiB, at most 1/8 of the physical memory."""
    try:
        mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        mem = 0
    return min(256 << 20, mem // 8) if mem > 0 else 256 << 20


def budget_from_env(value):
    """Bytes the pool keeps for a ``PYCONV_ALLOC_CACHE`` value (None or '': the default)."""
    v = (value or "").strip().upper()
    if not v:
        return default_budget()
    if v in ("OFF", "NO", "FALSE"):
        return 0
    for suffix in ("IB", "B"):          # 512MB, 512MiB, 4096B
        if v.endswith(suffix) and len(v) > len(suffix):
            v = v[:-len(suffix)]
            break
    unit = v[-1] if v[-1] in "KMG" else ""
    try:
        n = float(v[:-1] if unit else v) * _UNITS[unit]
        if not n >= 0 or n == float("inf"):
            raise ValueError(n)
    except ValueError:
        warnings.warn(f"PYCONV_ALLOC_CACHE={value!r} is not a byte count ('0', 'off', '512M', '1G'): "
                      f"using the default", RuntimeWarning, stacklevel=2)
        return default_budget()
    return int(n)


def configure(nbytes):
    """Keep at most ``nbytes`` bytes of freed arrays (0: the pool off); what was kept so
    far goes back to the C library."""
    _pool.configure(max(0, int(nbytes)))


configure(budget_from_env(os.environ.get("PYCONV_ALLOC_CACHE")))
