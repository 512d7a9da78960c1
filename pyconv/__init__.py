"""pyconv: every kind of convolution, exact, multi-core, with its backward pass.

Layers
------
pyconv.signal      scipy.signal-compatible convolution and correlation (re-exported here)
pyconv.nn          PyTorch-compatible deep-learning convolutions (channels first)
pyconv.grad        backward passes of every forward function
pyconv.arithmetic  output sizes, receptive fields, conv matrices, costs

Threads: :func:`set_num_threads`, :func:`get_num_threads`, :func:`threads`.
Build: :func:`show_config` (compiler, SIMD variant, OpenMP, BLAS).
Plans: :func:`explain` shows which algorithm a call would run (``PYCONV_VERBOSE=1`` logs
every kernel run); :func:`tune` measures this machine's algorithm crossovers (run once
at first use otherwise; ``PYCONV_TUNING=off`` keeps built-in defaults).
"""
import importlib as _importlib

from pyconv._config import show_config
from pyconv._engine.calibrate import tune
from pyconv._engine.explain import explain
from pyconv._threads import get_num_threads, openmp_enabled, set_num_threads, threads

__version__ = "0.1.0"

__all__ = ["get_num_threads", "set_num_threads", "threads", "openmp_enabled", "show_config", "explain", "tune",
           "signal", "nn", "grad", "arithmetic"]

from pyconv import arithmetic  # noqa: E402

from pyconv import signal  # noqa: E402
from pyconv.signal import *  # noqa: E402,F401,F403  (the signal layer is re-exported at the top level)

__all__ += signal.__all__


def __getattr__(name):
    # nn and grad load on first use, so `import pyconv` stays light.
    if name in ("nn", "grad"):
        return _importlib.import_module(f"pyconv.{name}")
    raise AttributeError(f"module 'pyconv' has no attribute {name!r}")
