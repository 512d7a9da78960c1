"""pyconv.show_config(): what this installation is built with and runs on."""
import platform
import sys


def config():
    """The facts :func:`show_config` prints, as a dict (for programs and bug reports)."""
    import numpy as np
    import scipy

    import pyconv
    from pyconv import _kernels, _threads
    from pyconv._kernels import _pyconv_omp

    info = {
        "pyconv": pyconv.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "compiler": _pyconv_omp.compiler(),
        "simd variant": _kernels.VARIANT,
        "simd variants built": ", ".join(v for v in _kernels.ORDER if v in _kernels.BUILT),
        "simd variants this cpu runs": ", ".join(_kernels.SUPPORTED),
        "openmp": "enabled" if _pyconv_omp.openmp_enabled() else "disabled (serial build)",
        "threads": _threads.get_num_threads(),
    }
    from pyconv import _memory
    pool = _memory.stats()
    info["memory pool"] = (f"budget {pool['budget'] >> 20} MiB, holding {pool['held'] >> 20} MiB in {pool['blocks']} "
                           f"blocks, {pool['hits']} reuses (PYCONV_ALLOC_CACHE)" if pool["budget"] else
                           "off (PYCONV_ALLOC_CACHE=0)")
    from pyconv._engine import calibrate
    info["tuning"] = f"{calibrate.state()} ({calibrate.cache_path()})"
    info["timed choices"] = f"{calibrate.timed_count()} stored ({calibrate.timed_path()})"
    try:
        import threadpoolctl
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS pyconv's GEMM path calls)
        libs = threadpoolctl.threadpool_info()
    except ImportError:
        libs = []
    omp = [i for i in libs if i["internal_api"] == "openmp"]
    if omp:
        info["openmp runtime"] = ", ".join(i["filepath"] for i in omp)
    for i, lib in enumerate(i for i in libs if i["user_api"] == "blas"):
        key = "blas" if i == 0 else f"blas {i + 1}"
        info[key] = (f"{lib['internal_api']} {lib.get('version') or ''} kernel={lib.get('architecture') or '?'} "
                     f"threads={lib['num_threads']} ({lib['filepath']})")
    return info


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def show_config():
    """Print the build and runtime configuration: compiler, OpenMP runtime, the SIMD
    variant of the kernels in use (and those built and runnable), BLAS and its kernel,
    thread count, the tuning cache (:func:`pyconv.tune`) with its state, and the file of
    timed choices (``method='auto'`` calls of ``pyconv.signal`` timed both ways once).

    Returns
    -------
    None
        The facts are printed, one ``name: value`` line each.

    Examples
    --------
    >>> import pyconv
    >>> pyconv.show_config()     # doctest: +ELLIPSIS
    pyconv ...
    simd variant: ...
    """
    for k, v in config().items():
        print(f"{k}: {v}" if k != "pyconv" else f"pyconv {v}")
