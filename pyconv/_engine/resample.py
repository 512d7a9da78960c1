"""Executors of the data-movement operations: upsampling, channel shuffle, im2col / col2im.

These run one memory-bound kernel each (no algorithm choice): their plans are fixed,
only the thread count depends on the size.
"""
import numpy as np

from pyconv._engine import tuning as _tuning
from pyconv._engine.conv import kernel, kernel_geo
from pyconv._kernels import nn_gemm, resampling
from pyconv._threads import num_threads_for


def _threads(work):
    return num_threads_for(work, grain=_tuning.active().gather_grain)


def nearest_map(n_in, factor):
    """Source rows of nearest upsampling by an integer factor, as PyTorch computes them."""
    j = np.arange(n_in * factor, dtype=np.int64)
    if factor == 1:
        return j
    if factor == 2:
        return j >> 1
    # PyTorch: floor(dst * float(1/scale)) in float32, clamped to the input
    src = np.floor(j.astype(np.float32) * np.float32(1.0 / factor)).astype(np.int64)
    return np.minimum(src, n_in - 1)


def bilinear_map(n_in, factor, dtype):
    """(i0, i1, lambda1) of bilinear upsampling with align_corners=False (PyTorch's rule)."""
    scale = dtype.type(1.0 / factor)
    dst = np.arange(n_in * factor).astype(dtype)
    src = scale * (dst + dtype.type(0.5)) - dtype.type(0.5)
    src = np.maximum(src, dtype.type(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(dtype), 0, 1).astype(dtype)
    i1 = i0 + (i0 < n_in - 1)
    return i0, np.ascontiguousarray(i1), np.ascontiguousarray(lam)


def upsample(x, factor, mode):
    """Upsample (N, C, H, W) by an integer factor: 'nearest' or 'bilinear' (align_corners=False)."""
    n, c, h, w = x.shape
    out = np.empty((n, c, h * factor, w * factor), dtype=x.dtype)
    if out.size == 0:
        return out
    nthreads = _threads(out.size * 4)
    if mode == "nearest":
        kernel(resampling.gather, x.dtype)(x.reshape(n * c, 1, h, w), out.reshape(n * c, 1, h * factor, w * factor),
                                          np.zeros(1, dtype=np.int64), nearest_map(h, factor),
                                          nearest_map(w, factor), nthreads)
    else:
        h0, h1, hl = bilinear_map(h, factor, x.dtype)
        w0, w1, wl = bilinear_map(w, factor, x.dtype)
        kernel(resampling.bilinear, x.dtype)(x.reshape(n * c, h, w), out.reshape(n * c, h * factor, w * factor),
                                            h0, h1, hl, w0, w1, wl, nthreads)
    return out


def shuffle(x, groups):
    """Channel shuffle of C-contiguous (N, C, *) ``x`` into a new array."""
    out = np.empty(x.shape, dtype=x.dtype)
    if out.size:
        n, c = x.shape[:2]
        kernel(resampling.channel_shuffle, x.dtype)(x.reshape(n, c, -1), out.reshape(n, c, -1), groups,
                                                   _threads(out.size))
    return out


def _geo(image, fa):
    """The kernels' geometry of unfold/fold: image size, block grid, kernel, stride, dilation, padding."""
    return kernel_geo((1,) + tuple(image), (1,) + fa.blocks, (1,) + fa.kernel_size, (1,) + fa.stride,
                      (1,) + fa.dilation, (0,) + fa.padding)


def unfold(x, fa):
    """im2col of C-contiguous (N, C, H, W) ``x`` with the checked :class:`FoldArgs` ``fa``."""
    n, c = x.shape[:2]
    k = fa.kernel_size
    out = np.empty((n, c * k[0] * k[1], fa.blocks[0] * fa.blocks[1]), dtype=x.dtype)
    if out.size:
        kernel(nn_gemm.unfold, x.dtype)(x.reshape(n, c, -1), out, _geo(x.shape[2:], fa), _threads(out.size))
    return out


def fold(x, osz, fa):
    """col2im of C-contiguous (N, C*kh*kw, L) ``x`` onto (N, C, *osz)."""
    n, ck = x.shape[:2]
    c = ck // (fa.kernel_size[0] * fa.kernel_size[1])
    out = np.empty((n, c) + tuple(osz), dtype=x.dtype)
    if out.size:
        kernel(nn_gemm.fold, x.dtype)(x, out.reshape(n, c, -1), _geo(osz, fa), _threads(x.size))
    return out
