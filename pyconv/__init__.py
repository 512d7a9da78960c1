"""pyconv: every kind of convolution, exact, multi-core, with its backward pass.

Where to start
--------------
python -m pyconv            the tour: every kind of convolution, run on a shipped image
                            and checked against its reference (``--out DIR`` draws figures)
python -m pyconv --guide    the guide (``pyconv/guide.md``, installed with the package):
                            what each convolution does, the call that performs it, the
                            arithmetic behind it, and how to train a small network

Kinds of convolution and where each is
--------------------------------------
convolution / correlation, 1-D, 2-D, N-D     pyconv.convolve, correlate, convolve2d,
                                             correlate2d, fftconvolve, oaconvolve,
                                             choose_conv_method (pyconv.signal,
                                             re-exported here)
spatially separable                          pyconv.sepconvolve2d, pyconv.separate
deep-learning convolution, 1/2/3-D           pyconv.nn.conv, conv1d, conv2d, conv3d
  (stride, padding, dilation, groups)
transposed                                   pyconv.nn.conv_transpose1d/2d/3d
depthwise, pointwise, depthwise separable    pyconv.nn.depthwise_conv2d, pointwise_conv2d,
                                             separable_conv2d
flattened, channel shuffle, resize-conv      pyconv.nn.flattened_conv2d, channel_shuffle,
                                             resize_conv2d
im2col / col2im                              pyconv.nn.unfold, fold
scipy.ndimage's filters (Gaussian, uniform,  pyconv.ndimage.convolve, correlate, convolve1d,
  Sobel, Prewitt, Laplace), boundary modes     correlate1d, gaussian_filter, uniform_filter, ...
backward passes of all the above             pyconv.grad.<name>_backward, pyconv.grad.ndimage,
                                             gradcheck
output sizes, receptive fields, the sparse   pyconv.arithmetic
  convolution matrix, costs

Threads: :func:`set_num_threads`, :func:`get_num_threads`, :func:`threads`,
:func:`openmp_enabled`.
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
           "signal", "nn", "grad", "ndimage", "arithmetic"]

from pyconv import arithmetic  # noqa: E402

from pyconv import signal  # noqa: E402
from pyconv.signal import *  # noqa: E402,F401,F403  (the signal layer is re-exported at the top level)

__all__ += signal.__all__


def __getattr__(name):
    # nn, grad and ndimage load on first use, so `import pyconv` stays light.
    if name in ("nn", "grad", "ndimage"):
        return _importlib.import_module(f"pyconv.{name}")
    raise AttributeError(f"module 'pyconv' has no attribute {name!r}")
