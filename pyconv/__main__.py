"""The pyconv tour: ``python -m pyconv``.

Walks through every kind of convolution, in the order a reader meets them:
convolution vs cross-correlation, single- and multi-channel, 3-D, 1x1, stride and
padding, transposed, checkerboard overlap and resize-convolution, dilated,
spatially and depthwise separable, flattened, grouped, channel shuffle, pointwise
group convolution and the backward pass.  Each step runs pyconv on the image (or
the volume) shipped in ``pyconv/data``, checks the result against its reference
(scipy.signal, scipy.ndimage, or the definition written out below), prints the
shapes, the multiplication count of the direct algorithm (``conv_cost``) and the
time taken, and ends with PASS, FAIL or SKIP (SKIP only when a whole layer of
pyconv cannot be imported).  The exit status is 1 if any check failed.

``--out DIR`` also writes PNG figures when matplotlib is installed (``pip install
matplotlib``); without it the tour says so and runs the checks alone.  ``--guide``
prints the guide that explains every step (``pyconv/guide.md``, shipped in the package).
"""
import argparse
import math
import os
import sys
import tempfile
import time
import traceback
from importlib import import_module, resources

import numpy as np

import pyconv
from pyconv.arithmetic import (conv_cost, conv_matrix, conv_output_size, conv_transpose_output_size,
                               receptive_field, same_padding, transpose_overlap)


# --------------------------------------------------------------------------- data

def _load_npz(name, key):
    # one joinpath per level: several arguments need Python 3.11, pyconv supports 3.9
    with resources.files("pyconv").joinpath("data").joinpath(name).open("rb") as f:
        with np.load(f) as d:
            return d[key]


def load_image():
    """The shipped RGB test image, channels first: float64 ``(3, 128, 128)`` in [0, 1]."""
    return _load_npz("image.npz", "image").astype(np.float64) / 255.0


def load_volume():
    """The shipped 3-D volume of solid shapes: float64 ``(32, 32, 32)`` in [0, 1]."""
    return _load_npz("volume.npz", "volume").astype(np.float64) / 255.0


# --------------------------------------------------------------------------- references

#: The Sobel kernel for d/dx (vertical edges), [1, 2, 1]^T [1, 0, -1]: steps 1 and 10 use it.
SOBEL_X = np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
#: A 3x3 kernel with taps numbered 1..9 (row by row): the conv_matrix figure shows them.
TAPS = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)


def _tuple(v, nd):
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * nd


def _pairs(padding, spatial, kernel, stride, dilation):
    nd = len(spatial)
    if padding == "valid":
        return [(0, 0)] * nd
    if padding == "same":
        return list(same_padding(tuple(spatial), tuple(kernel), stride, dilation))
    if isinstance(padding, (tuple, list)):
        return [(p, p) if np.isscalar(p) else tuple(p) for p in padding]
    return [(padding, padding)] * nd


def ref_conv(x, w, stride=1, padding=0, dilation=1, groups=1):
    """The definition of ``pyconv.nn.conv`` for one sample ``x = (C_in, *spatial)``.

    Zero-pad, dilate the kernel (``d - 1`` zeros between taps), cross-correlate every
    (output, input) channel pair with ``scipy.signal.correlate(..., 'valid')``, sum
    over the input channels of the group, keep every ``stride``-th output.
    """
    from scipy import signal

    nd = w.ndim - 2
    st, dl = _tuple(stride, nd), _tuple(dilation, nd)
    pads = _pairs(padding, x.shape[1:], w.shape[2:], st, dl)
    xp = np.pad(x, [(0, 0)] + pads)
    kd = tuple(dl[i] * (w.shape[2 + i] - 1) + 1 for i in range(nd))
    wd = np.zeros(w.shape[:2] + kd)
    wd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dl)] = w
    c_out, cg = w.shape[:2]
    og = c_out // groups
    out = []
    for o in range(c_out):
        g = o // og
        acc = sum(signal.correlate(xp[g * cg + c], wd[o, c], mode="valid", method="direct") for c in range(cg))
        out.append(acc[tuple(slice(None, None, s) for s in st)])
    return np.stack(out)


def ref_conv_transpose(x, w, stride=1, padding=0):
    """The definition of a transposed convolution for one sample ``x = (C_in, *spatial)``.

    Every input element paints ``x * w[c_in, c_out]`` onto the output, ``stride``
    apart; ``padding`` is then cropped from both ends.  Weight ``(C_in, C_out, *k)``.
    """
    nd = w.ndim - 2
    st, pd = _tuple(stride, nd), _tuple(padding, nd)
    sp, ks = x.shape[1:], w.shape[2:]
    full = tuple((sp[i] - 1) * st[i] + ks[i] for i in range(nd))
    out = np.zeros((w.shape[1],) + full)
    for idx in np.ndindex(*sp):
        sl = tuple(slice(idx[i] * st[i], idx[i] * st[i] + ks[i]) for i in range(nd))
        out[(slice(None),) + sl] += np.einsum("c,co...->o...", x[(slice(None),) + idx], w)
    return out[(slice(None),) + tuple(slice(p, f - p) for p, f in zip(pd, full))]


def ref_channel_shuffle(x, groups):
    """ShuffleNet's channel shuffle: view channels as (groups, C/groups), transpose, flatten."""
    n, c = x.shape[:2]
    return x.reshape((n, groups, c // groups) + x.shape[2:]).swapaxes(1, 2).reshape(x.shape)


# --------------------------------------------------------------------------- the tour machinery

class _Skip(Exception):
    pass


def _layer(name):
    """Import a pyconv layer; a missing layer skips the step (it is reported, not hidden)."""
    try:
        return import_module(f"pyconv.{name}")
    except ImportError as e:
        raise _Skip(f"pyconv.{name} is not available ({e})") from None


class Tour:
    def __init__(self, out=None):
        self.out = out if out is not None else sys.stdout
        self.results = []       # (title, status)
        self.panels = {}        # data the figures draw, filled as the steps run
        self._failed = False

    def say(self, text=""):
        print(f"    {text}", file=self.out)

    def timed(self, fn, *args, **kwargs):
        """Return ``fn(*args, **kwargs)``; remember its time (best of 3 runs, so the
        first call's one-off costs such as waking the thread team do not count)."""
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            r = fn(*args, **kwargs)
            best = min(best, time.perf_counter() - t0)
        self._elapsed = best
        return r

    def cost(self, label, input_shape, weight_shape, out_shape=None, **kw):
        """Print the shapes, the multiplications (conv_cost) and the last call's time."""
        c = conv_cost(input_shape, weight_shape, **kw)
        if out_shape is not None:
            self.check(f"{label}: output shape {tuple(out_shape)} == conv_cost's {c.output_shape}",
                       tuple(out_shape) == c.output_shape)
        ms = getattr(self, "_elapsed", 0.0) * 1e3
        self.say(f"{label}: {tuple(input_shape)} * {tuple(weight_shape)} -> {c.output_shape}, "
                 f"{c.multiplications:,} multiplications, {c.parameters:,} parameters, {ms:.2f} ms")
        return c

    def cost_transposed(self, label, input_shape, weight_shape, out_shape, **kw):
        """As :meth:`cost` for a transposed convolution ``input_shape -> out_shape``: it
        costs what the convolution it transposes (``out_shape -> input_shape``) costs."""
        c = conv_cost(out_shape, weight_shape, **kw)
        self.check(f"{label}: the convolution it transposes maps {tuple(out_shape)} back to {c.output_shape}",
                   c.output_shape == tuple(input_shape))
        ms = getattr(self, "_elapsed", 0.0) * 1e3
        self.say(f"{label}: {tuple(input_shape)} -> {tuple(out_shape)} with weight {tuple(weight_shape)}, "
                 f"{c.multiplications:,} multiplications (as the convolution {tuple(out_shape)} -> "
                 f"{c.output_shape} it transposes), {c.parameters:,} parameters, {ms:.2f} ms")
        return c

    def check(self, what, ok):
        ok = bool(ok)
        self.say(f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self._failed = True
        return ok

    def close(self, what, got, expected, rtol=1e-9):
        got = np.asarray(got)
        expected = np.asarray(expected)
        if got.shape != expected.shape:
            return self.check(f"{what}: shape {got.shape} != reference {expected.shape}", False)
        scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
        err = float(np.max(np.abs(got - expected))) if got.size else 0.0
        return self.check(f"{what} (max error {err:.1e})", err <= rtol * scale)

    def run(self, steps):
        for n, step in enumerate(steps, 1):
            title = step.__doc__.strip().splitlines()[0]
            print(f"\n[{n:2d}/{len(steps)}] {title}", file=self.out)
            self._failed = False
            t0 = time.perf_counter()
            try:
                step(self)
                status = "FAIL" if self._failed else "PASS"
            except _Skip as e:
                self.say(f"skipped: {e}")
                status = "SKIP"
            except Exception:
                for line in traceback.format_exc().rstrip().splitlines():
                    self.say(line)
                status = "FAIL"
            print(f"    -> {status}  {title}  ({time.perf_counter() - t0:.2f} s)", file=self.out)
            self.results.append((title, status))
        return self.results


# --------------------------------------------------------------------------- the steps

def step_convolution_vs_correlation(t):
    """Convolution vs cross-correlation"""
    from scipy import signal as ss
    sig = _layer("signal")
    nn = _layer("nn")
    f = np.array([0.0, 1, 2, 3, 0, 0, 1, 0, 0])
    g = np.array([1.0, 2, 4])
    conv = t.timed(sig.convolve, f, g)
    t.say(f"f {f.shape} * g {g.shape} -> full {conv.shape} in {t._elapsed * 1e3:.2f} ms")
    t.say(f"convolve(f, g)  = {conv.astype(int).tolist()}   (g flipped, then slid)")
    corr = sig.correlate(f, g)
    t.say(f"correlate(f, g) = {corr.astype(int).tolist()}   (g slid as it is)")
    t.close("convolve == scipy.signal.convolve", conv, ss.convolve(f, g))
    t.close("correlate == scipy.signal.correlate", corr, ss.correlate(f, g))
    t.close("convolve(f, g) == correlate(f, g[::-1])", conv, sig.correlate(f, g[::-1]))
    # deep learning's "convolution" is the correlation, in 'valid' mode
    dl = t.timed(nn.conv1d, f[None, None], g[None, None])[0, 0]
    t.cost("nn.conv1d(f, g)", (1,) + f.shape, (1, 1) + g.shape, out_shape=(1,) + dl.shape)
    t.close("nn.conv1d(f, g) == correlate(f, g, 'valid')", dl, ss.correlate(f, g, mode="valid"))
    img = load_image()[1]
    k = SOBEL_X
    c2 = t.timed(sig.convolve2d, img, k, mode="same")
    t.say(f"2-D: convolve2d(image {img.shape}, Sobel {k.shape}, 'same') in {t._elapsed * 1e3:.2f} ms")
    t.close("convolve2d == scipy.signal.convolve2d", c2, ss.convolve2d(img, k, mode="same"))
    t.close("correlate2d(image, k) == -convolve2d(image, k) for this antisymmetric k",
            sig.correlate2d(img, k, mode="same"), -c2)
    t.panels["Sobel d/dx: convolve2d 3x3, 'same'"] = c2


def step_single_channel(t):
    """Single-channel convolution"""
    nn = _layer("nn")
    x = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]], float)
    k = np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]], float)
    y = t.timed(nn.conv2d, x[None, None], k[None, None])[0, 0]
    t.cost("5x5 input, 3x3 kernel", (1, 5, 5), (1, 1, 3, 3), out_shape=(1,) + y.shape)
    t.say(f"output {y.astype(int).tolist()}")
    # the definition: each output is the sum of the window times the kernel
    ref = np.array([[np.sum(x[i:i + 3, j:j + 3] * k) for j in range(3)] for i in range(3)])
    t.close("== sum(window * kernel) at each position", y, ref)
    t.check("== [[12, 12, 17], [10, 17, 19], [9, 6, 14]]", np.array_equal(y, [[12, 12, 17], [10, 17, 19], [9, 6, 14]]))
    img = load_image()[1]
    lap = np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
    e = t.timed(nn.conv2d, img[None, None], lap[None, None], padding=1)[0, 0]
    t.cost("grey image, Laplacian", (1,) + img.shape, (1, 1, 3, 3), out_shape=(1,) + e.shape, padding=1)
    from scipy import ndimage
    t.close("== scipy.ndimage.correlate(mode='constant')", e, ndimage.correlate(img, lap, mode="constant"))
    t.panels["single channel (Laplacian)"] = e


def step_multi_channel(t):
    """Multi-channel convolution"""
    nn = _layer("nn")
    img = load_image()
    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 3, 3, 3))
    y = t.timed(nn.conv2d, img[None], w)[0]
    t.cost("RGB image, 8 filters of 3x3x3", img.shape, w.shape, out_shape=y.shape)
    t.say("each filter holds one 3x3 kernel per input channel; the three results are summed")
    t.close("== sum over channels of scipy.signal.correlate(..., 'valid')", y, ref_conv(img, w))
    t.panels["multi-channel (filter 0)"] = y[0]


def step_3d(t):
    """3-D convolution (on the volume)"""
    nn = _layer("nn")
    from scipy import ndimage
    vol = load_volume()
    # a 3-D Sobel along depth: smoothing in (h, w), a derivative along d
    s = np.array([1.0, 2.0, 1.0])
    dz = np.array([1.0, 0.0, -1.0])
    k = dz[:, None, None] * s[None, :, None] * s[None, None, :]
    y = t.timed(nn.conv3d, vol[None, None], k[None, None], padding=1)[0, 0]
    t.cost("volume, 3x3x3 kernel", (1,) + vol.shape, (1, 1, 3, 3, 3), out_shape=(1,) + y.shape, padding=1)
    t.say("the filter slides along depth, height and width: the output is a volume too")
    t.close("== scipy.ndimage.correlate(mode='constant')", y, ndimage.correlate(vol, k, mode="constant"))
    w = np.random.default_rng(2).standard_normal((4, 1, 3, 3, 3))
    y2 = t.timed(nn.conv3d, vol[None, None], w, stride=2)[0]
    t.cost("volume, 4 filters, stride 2", (1,) + vol.shape, w.shape, out_shape=y2.shape, stride=2)
    t.close("== the definition (scipy.signal.correlate per channel)", y2, ref_conv(vol[None], w, stride=2))
    t.panels["volume (middle slice)"] = vol[vol.shape[0] // 2]
    t.panels["3-D Sobel along depth (middle slice)"] = y[vol.shape[0] // 2]


def step_1x1(t):
    """1x1 convolution"""
    nn = _layer("nn")
    img = load_image()
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 3))
    y = t.timed(nn.pointwise_conv2d, img[None], w)[0]
    t.cost("RGB image, 5 filters of 1x1x3", img.shape, (5, 3, 1, 1), out_shape=y.shape)
    t.say("a 1x1 convolution mixes channels at each pixel: a matrix product over the channel axis")
    t.close("== einsum('oc,chw->ohw') (the definition)", y, np.einsum("oc,chw->ohw", w, img))
    t.close("== nn.conv2d with weight (5, 3, 1, 1)", nn.conv2d(img[None], w[:, :, None, None])[0], y)
    grey = nn.pointwise_conv2d(img[None], np.array([[0.299, 0.587, 0.114]]))[0, 0]
    t.panels["1x1 (RGB -> grey)"] = grey


def step_stride_padding(t):
    """Stride and padding arithmetic"""
    nn = _layer("nn")
    img = load_image()[1]
    h = img.shape[0]
    t.say("o = floor((i + 2p - d(k-1) - 1) / s) + 1   (i input, k kernel, s stride, p padding, d dilation)")
    rows = []
    for k, s, p, d in [(3, 1, 0, 1), (3, 1, 1, 1), (3, 2, 1, 1), (5, 2, 2, 1), (4, 3, 0, 1), (3, 2, 2, 2)]:
        w = np.ones((1, 1, k, k)) / (k * k)
        y = t.timed(nn.conv2d, img[None, None], w, stride=s, padding=p, dilation=d)[0, 0]
        o = conv_output_size(h, k, s, p, d)
        rows.append(f"i={h} k={k} s={s} p={p} d={d}: o={o}, pyconv gives {y.shape[0]} ({t._elapsed * 1e3:.2f} ms)")
        t.check(rows[-1], y.shape == (o, o))
        t.close(f"  values == the definition (stride-1 correlation, every {s} along each axis kept)", y,
                ref_conv(img[None], w, stride=s, padding=p, dilation=d)[0])
    i, k, s, p = 7, 3, 2, 1
    t.say(f"the rule with k and s swapped, floor((i + 2p - s)/k) + 1, gives {(i + 2 * p - s) // k + 1} "
          f"for i={i} k={k} s={s} p={p}; the right answer is {conv_output_size(i, k, s, p)}")
    t.check("the swapped rule is wrong here", (i + 2 * p - s) // k + 1 != conv_output_size(i, k, s, p))
    y = nn.conv2d(img[None, None], np.ones((1, 1, 3, 3)), stride=2, padding="same")[0, 0]
    t.check(f"'same' with stride 2 gives ceil(i/s) = {-(-h // 2)} outputs, padding {same_padding(h, 3, 2)}",
            y.shape == (-(-h // 2),) * 2)
    t.cost("stride 2, 'same'", (1, h, h), (1, 1, 3, 3), out_shape=(1,) + y.shape, stride=2, padding="same")
    t.panels["stride 2 (3x3 mean)"] = y


def step_transposed(t):
    """Transposed convolution"""
    nn = _layer("nn")
    from scipy import signal as ss
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    k = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 0.0, 1.0]])
    for s, size in [(1, 4), (2, 5)]:
        y = t.timed(nn.conv_transpose2d, x[None, None], k[None, None], stride=s)[0, 0]
        o = conv_transpose_output_size(2, 3, s)
        t.say(f"2x2 -> {y.shape[0]}x{y.shape[1]} with a 3x3 kernel, stride {s}: o = (i-1)s + k = {o}"
              f" ({t._elapsed * 1e3:.2f} ms)")
        t.check(f"output is {size}x{size}", y.shape == (size, size) and o == size)
        t.close("  == the definition (each input paints a scaled kernel)", y,
                ref_conv_transpose(x[None], k[None, None], stride=s)[0])
        # the same as a full convolution of the input with s-1 zeros inserted between pixels
        up = np.zeros(((2 - 1) * s + 1,) * 2)
        up[::s, ::s] = x
        t.close(f"  == scipy.signal.convolve2d(zero-inserted input, k, 'full')", y, ss.convolve2d(up, k))
        # and the transpose of the convolution's matrix
        C = conv_matrix((1, size, size), k[None, None], stride=s)
        t.say(f"  conv_matrix((1, {size}, {size}), 3x3, stride={s}) is {C.shape[0]}x{C.shape[1]} "
              f"with {C.nnz} entries: C @ large.ravel() = small")
        t.close("  C.T @ x.ravel() == conv_transpose2d(x)", (C.T @ x.ravel()).reshape(size, size), y)
        # the figure numbers the taps 1..9 (no stored zero), so each entry shows which tap it is
        t.panels.setdefault("conv matrices", []).append(
            (f"{size}x{size} -> 2x2, stride {s}", conv_matrix((1, size, size), TAPS, stride=s)))
    # a larger input shows the banding: each output row is the previous one shifted by one
    # input element, with a jump of k - 1 at the end of each image row
    t.panels["conv matrices"].append(("6x6 -> 4x4, stride 1", conv_matrix((1, 6, 6), TAPS)))
    img = load_image()[1]
    w = np.ones((1, 1, 4, 4)) / 4.0
    up = t.timed(nn.conv_transpose2d, img[None, None], w, stride=2, padding=1)[0, 0]
    t.cost_transposed("x2 upsampling (k=4, s=2, p=1)", (1,) + img.shape, w.shape, (1,) + up.shape,
                      stride=2, padding=1)
    t.check(f"output {up.shape} == conv_transpose_output_size = {conv_transpose_output_size(img.shape, 4, 2, 1)}",
            up.shape == conv_transpose_output_size(img.shape, 4, 2, 1))
    C = conv_matrix((1,) + up.shape, w, stride=2, padding=1)
    t.close("== conv_matrix(...).T @ image.ravel()", (C.T @ img.ravel()).reshape(up.shape), up)
    t.panels["transposed x2 (k=4, s=2)"] = up


def step_checkerboard(t):
    """Checkerboard overlap and resize-convolution"""
    nn = _layer("nn")
    for k in (3, 4):
        ov = transpose_overlap(9, k, 2)
        t.say(f"kernel {k}, stride 2: taps per output = {ov.tolist()}")
    t.say("kernel 3 is not a multiple of stride 2: the interior alternates 1, 2 (in 2-D: 1, 2, 4)")
    ones = np.ones((1, 1, 16, 16))
    for k, even in ((3, False), (4, True)):
        y = t.timed(nn.conv_transpose2d, ones, np.ones((1, 1, k, k)), stride=2)[0, 0]
        ov = transpose_overlap((16, 16), k, 2)
        t.check(f"conv_transpose2d(ones, ones {k}x{k}, stride 2) == transpose_overlap: "
                f"interior values {sorted(set(y[k:-k, k:-k].ravel().astype(int).tolist()))}",
                np.array_equal(y, ov))
        t.check(f"  interior is {'even' if even else 'uneven'}", (np.ptp(y[k:-k, k:-k]) == 0) == even)
        t.panels[f"overlap k={k}, s=2"] = ov
    # resize-convolution: upsample (nearest) then a stride-1 convolution: every output sees
    # the same number of taps, so a constant image stays constant away from the border
    k = np.ones((1, 1, 3, 3)) / 9.0
    r = t.timed(nn.resize_conv2d, ones, k, scale_factor=2, mode="nearest")[0, 0]
    t.cost("resize-conv: nearest x2 then 3x3 'same'", (1, 32, 32), (1, 1, 3, 3), out_shape=(1,) + r.shape,
           padding="same")
    t.check("resize-conv of a constant image is constant inside (no checkerboard)", np.ptp(r[1:-1, 1:-1]) == 0)
    img = load_image()[1]
    up = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)
    r = nn.resize_conv2d(img[None, None], k, scale_factor=2, mode="nearest")[0, 0]
    t.close("resize_conv2d(image) == conv2d(np.repeat upsampled image, 'same') (the definition)", r,
            ref_conv(up[None], k, padding="same")[0])
    w = np.ones((1, 1, 3, 3)) / (9 / 4)
    tc = nn.conv_transpose2d(img[None, None], w, stride=2, padding=1, output_padding=1)[0, 0]
    t.panels["transposed (k=3, s=2) of the image"] = tc
    t.panels["resize-conv of the image"] = r


def step_dilated(t):
    """Dilated (atrous) convolution and receptive fields"""
    nn = _layer("nn")
    img = load_image()[1]
    w = np.random.default_rng(4).standard_normal((1, 1, 3, 3))
    y = t.timed(nn.conv2d, img[None, None], w, dilation=2)[0, 0]
    t.cost("3x3 kernel, dilation 2", (1,) + img.shape, w.shape, out_shape=(1,) + y.shape, dilation=2)
    wd = np.zeros((5, 5))
    wd[::2, ::2] = w[0, 0]
    from scipy import signal as ss
    t.close("== scipy.signal.correlate2d with the kernel spread out (zeros between taps)", y,
            ss.correlate2d(img, wd, mode="valid"))
    layers = [(3, 1, 1), (3, 1, 2), (3, 1, 4)]
    rf = receptive_field(layers)
    t.say(f"receptive_field(3x3 with dilations 1, 2, 4) = {rf}")
    t.check("sizes 3, 7, 15", [r for r, _ in rf] == [3, 7, 15])
    # measured: push an impulse through the stack; the outputs it reaches span the field
    x = np.zeros((1, 1, 31, 31))
    x[0, 0, 15, 15] = 1.0
    grow = []
    for n, (k, s, d) in enumerate(layers):
        x = nn.conv2d(x, np.ones((1, 1, k, k)), dilation=d, padding=d * (k - 1) // 2)
        rows = np.flatnonzero(x[0, 0].any(axis=1))
        grow.append(x[0, 0].copy())
        t.check(f"after layer {n + 1} the impulse reaches {rows[-1] - rows[0] + 1} pixels per side "
                f"(receptive field {rf[n][0]})", rows[-1] - rows[0] + 1 == rf[n][0])
    t.panels["receptive fields"] = grow
    t.say(f"without dilation: {[r for r, _ in receptive_field([(3, 1, 1)] * 3)]}; "
          f"with stride 2: {receptive_field([(3, 2, 1)] * 3)}")
    t.panels["dilated 3x3 (d=2)"] = y


def step_spatially_separable(t):
    """Spatially separable convolution"""
    sig = _layer("signal")
    from scipy import signal as ss
    sobel = SOBEL_X
    col, row = sig.separate(sobel)
    t.say(f"separate(Sobel) -> col {np.round(col, 4).tolist()}, row {np.round(row, 4).tolist()}")
    t.close("outer(col, row) == Sobel", np.outer(col, row), sobel, rtol=1e-12)
    t.check("col is proportional to [1, 2, 1]", np.allclose(col / col[0], [1, 2, 1]))
    img = load_image()[1]
    y = t.timed(sig.sepconvolve2d, img, col, row, mode="valid")
    t.say(f"sepconvolve2d(image {img.shape}, col, row, 'valid') -> {y.shape} in {t._elapsed * 1e3:.2f} ms")
    t.close("== scipy.signal.convolve2d(image, Sobel, 'valid')", y, ss.convolve2d(img, sobel, mode="valid"))
    std = conv_cost((1, 5, 5), (1, 1, 3, 3)).multiplications
    a = conv_cost((1, 5, 5), (1, 1, 3, 1))
    b = conv_cost(a.output_shape, (1, 1, 1, 3))
    t.say(f"5x5 image: 3x3 conv {std} multiplications; 3x1 then 1x3: {a.multiplications} + "
          f"{b.multiplications} = {a.multiplications + b.multiplications}")
    t.check("81 vs 45 + 27 = 72", (std, a.multiplications, b.multiplications) == (81, 45, 27))
    n, m = img.shape[0], 3
    s1 = conv_cost((1, n, n), (1, 1, m, 1))
    s2 = conv_cost(s1.output_shape, (1, 1, 1, m))
    ratio = (s1.multiplications + s2.multiplications) / conv_cost((1, n, n), (1, 1, m, m)).multiplications
    t.say(f"{n}x{n} image, {m}x{m} kernel: ratio {ratio:.4f} = 2/m + (m-1)/(m(N-m+1))")
    t.check("ratio formula", math.isclose(ratio, 2 / m + (m - 1) / (m * (n - m + 1))))
    t.panels["Sobel d/dx: sepconvolve2d 3x1 then 1x3, 'valid'"] = y


def step_depthwise_separable(t):
    """Depthwise separable convolution"""
    nn = _layer("nn")
    img = load_image()
    rng = np.random.default_rng(5)
    dw = rng.standard_normal((3, 1, 3, 3))
    pw = rng.standard_normal((16, 3, 1, 1))
    d = t.timed(nn.depthwise_conv2d, img[None], dw)[0]
    c1 = t.cost("depthwise (one 3x3 kernel per channel)", img.shape, dw.shape, out_shape=d.shape, groups=3)
    t.close("== each channel correlated with its own kernel", d, ref_conv(img, dw, groups=3))
    y = t.timed(nn.separable_conv2d, img[None], dw, pw)[0]
    c2 = t.cost("pointwise (16 filters of 1x1x3)", d.shape, pw.shape, out_shape=y.shape)
    t.close("separable_conv2d == pointwise(depthwise(x))", y, np.einsum("oc,chw->ohw", pw[:, :, 0, 0], d))
    std = conv_cost(img.shape, (16, 3, 3, 3)).multiplications
    t.say(f"{c1.multiplications:,} + {c2.multiplications:,} multiplications instead of {std:,} "
          f"for a standard 16-filter layer")
    full = conv_cost((3, 7, 7), (128, 3, 3, 3)).multiplications
    a = conv_cost((3, 7, 7), (3, 1, 3, 3), groups=3)
    b = conv_cost(a.output_shape, (128, 3, 1, 1))
    t.say(f"7x7x3 input, 128 filters: {full:,} vs {a.multiplications} + {b.multiplications:,} = "
          f"{a.multiplications + b.multiplications:,} ({(a.multiplications + b.multiplications) / full:.0%})")
    t.check("86,400 vs 675 + 9,600 = 10,275", (full, a.multiplications, b.multiplications) == (86400, 675, 9600))
    ratio = (a.multiplications + b.multiplications) / full
    t.check(f"ratio {ratio:.5f} == 1/N_c + 1/h^2 = 1/128 + 1/9", math.isclose(ratio, 1 / 128 + 1 / 9))
    t.panels["depthwise separable (out 0)"] = y[0]


def step_flattened(t):
    """Flattened convolution"""
    nn = _layer("nn")
    img = load_image()
    rng = np.random.default_rng(6)
    c_out, kh, kw = 4, 5, 5
    lat, ver, hor = rng.standard_normal((c_out, 3)), rng.standard_normal((c_out, kh)), rng.standard_normal((c_out, kw))
    y = t.timed(nn.flattened_conv2d, img[None], lat, ver, hor, padding=2)[0]
    w = lat[:, :, None, None] * ver[:, None, :, None] * hor[:, None, None, :]
    t.say("lateral (across channels), then vertical and horizontal 1-D filters per channel")
    t.close("== conv2d with weight[o,c,i,j] = lateral[o,c] vertical[o,i] horizontal[o,j]", y,
            ref_conv(img, w, padding=2))
    full = conv_cost(img.shape, w.shape, padding=2)
    a = conv_cost(img.shape, (c_out, 3, 1, 1))
    b = conv_cost(a.output_shape, (c_out, 1, kh, 1), groups=c_out, padding=((2, 2), (0, 0)))
    c = conv_cost(b.output_shape, (c_out, 1, 1, kw), groups=c_out, padding=((0, 0), (2, 2)))
    t.check(f"shape {y.shape} == {full.output_shape}", y.shape == full.output_shape == c.output_shape)
    flat = a.multiplications + b.multiplications + c.multiplications
    t.say(f"{full.multiplications:,} multiplications as one 3-D filter, {flat:,} as three 1-D passes "
          f"({t._elapsed * 1e3:.2f} ms); parameters {full.parameters} vs {lat.size + ver.size + hor.size}")
    t.panels["flattened (out 0)"] = y[0]


def step_grouped(t):
    """Grouped convolution"""
    nn = _layer("nn")
    img = load_image()
    x = np.concatenate([img, img[::-1]])              # 6 channels
    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 3, 3, 3))
    y = t.timed(nn.conv2d, x[None], w, groups=2)[0]
    c = t.cost("6 channels, 2 groups of 2 filters", x.shape, w.shape, out_shape=y.shape, groups=2)
    t.close("== group 0 on channels 0-2 and group 1 on channels 3-5, stacked", y,
            np.concatenate([ref_conv(x[:3], w[:2]), ref_conv(x[3:], w[2:])]))
    full = conv_cost(x.shape, (4, 6, 3, 3))
    t.check(f"half the parameters ({c.parameters} vs {full.parameters}) and multiplications",
            2 * c.parameters == full.parameters and 2 * c.multiplications == full.multiplications)
    t.panels["grouped (out 3)"] = y[3]


def step_channel_shuffle(t):
    """Channel shuffle"""
    nn = _layer("nn")
    x = np.arange(6.0)[None, :, None, None] * np.ones((1, 6, 2, 2))
    y = t.timed(nn.channel_shuffle, x, 3)
    order = y[0, :, 0, 0].astype(int).tolist()
    t.say(f"channels 0..5 in 3 groups -> order {order} ({t._elapsed * 1e3:.3f} ms)")
    t.check("== [0, 2, 4, 1, 3, 5]", order == [0, 2, 4, 1, 3, 5])
    t.say("a permutation of channels: 0 multiplications, 0 parameters, but it lets the next grouped "
          "layer see every group")
    img = load_image()
    z = np.concatenate([img, img ** 2, 1 - img])[None]      # 9 channels
    t.close("== reshape (groups, C/groups), transpose, flatten (the definition)", nn.channel_shuffle(z, 3),
            ref_channel_shuffle(z, 3))


def step_pointwise_group(t):
    """Pointwise group convolution (ShuffleNet unit)"""
    nn = _layer("nn")
    img = load_image()
    x = np.concatenate([img, img ** 2, 1 - img])[None]      # 9 channels
    rng = np.random.default_rng(8)
    g1 = rng.standard_normal((9, 3))                         # 3 groups of 3 -> 3
    a = t.timed(nn.pointwise_conv2d, x, g1, groups=3)
    t.cost("pointwise group conv, 3 groups", x.shape, (9, 3, 1, 1), out_shape=a.shape, groups=3)
    ref = np.concatenate([np.einsum("oc,nchw->nohw", g1[3 * g:3 * g + 3], x[:, 3 * g:3 * g + 3]) for g in range(3)],
                         axis=1)
    t.close("== a 1x1 convolution per group (the definition)", a, ref)
    b = nn.channel_shuffle(a, 3)
    dw = rng.standard_normal((9, 1, 3, 3))
    c = t.timed(nn.depthwise_conv2d, b, dw, padding=1)
    t.cost("shuffle, then depthwise 3x3", b.shape, dw.shape, out_shape=c.shape, groups=9, padding=1)
    g2 = rng.standard_normal((9, 3))
    d = nn.pointwise_conv2d(c, g2, groups=3)
    ref = ref_conv(ref_channel_shuffle(ref, 3)[0], dw, padding=1, groups=9)
    ref = np.concatenate([np.einsum("oc,chw->ohw", g2[3 * g:3 * g + 3], ref[3 * g:3 * g + 3]) for g in range(3)])
    t.close("GConv -> shuffle -> depthwise -> GConv == the same chain by definition", d[0], ref)
    full = conv_cost(x.shape, (9, 9, 1, 1)).multiplications
    grp = conv_cost(x.shape, (9, 3, 1, 1), groups=3).multiplications
    t.check(f"grouping the 1x1 convolution divides its cost by 3: {full:,} -> {grp:,}", full == 3 * grp)
    t.panels["ShuffleNet unit (out 0)"] = d[0, 0]


def step_gradients(t):
    """Gradients (the backward pass)"""
    nn = _layer("nn")
    grad = _layer("grad")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 2, 7, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    kw = dict(stride=2, padding=1)
    y = nn.conv2d(x, w, b, **kw)
    g = rng.standard_normal(y.shape)
    gx, gw, gb = t.timed(grad.conv2d_backward, g, x, w, b, **kw)
    t.say(f"conv2d_backward(g {g.shape}, x {x.shape}, w {w.shape}, b) -> gx {gx.shape}, gw {gw.shape}, "
          f"gb {gb.shape} in {t._elapsed * 1e3:.2f} ms")
    fwd = conv_cost(x.shape, w.shape, **kw)
    t.say(f"forward: {fwd.multiplications:,} multiplications; the input gradient and the weight gradient "
          f"each take as many again ({2 * fwd.multiplications:,} for the backward pass)")
    C = conv_matrix(x.shape[1:], w, **kw)
    t.close("grad wrt input == conv_matrix(...).T @ g (the transposed convolution)", gx[0].ravel(),
            C.T @ g[0].ravel())
    xp = np.pad(x[0], [(0, 0), (1, 1), (1, 1)])
    oh, ow = y.shape[2:]
    gw_ref = np.array([[[[np.sum(g[0, o] * xp[c, i:i + 2 * oh:2, j:j + 2 * ow:2]) for j in range(3)]
                         for i in range(3)] for c in range(2)] for o in range(3)])
    t.close("grad wrt weight == correlation of the input with g (the definition)", gw, gw_ref)
    t.close("grad wrt bias == g summed over positions", gb, g.sum(axis=(0, 2, 3)))
    t0 = time.perf_counter()
    ok = grad.gradcheck(nn.conv2d, (x, w, b), kwargs=kw)
    t.say(f"gradcheck(nn.conv2d, (x, w, b), stride=2, padding=1) took {(time.perf_counter() - t0) * 1e3:.1f} ms")
    t.check("gradcheck: finite differences agree with conv2d_backward", ok is True)


def step_separable_gaussian(t):
    """scipy.ndimage's filters: the separable Gaussian"""
    ndi = _layer("ndimage")
    from scipy import ndimage as sndi
    img = load_image()[1]
    n = img.shape[0]
    sigma, r = 2.0, 8                       # truncate=4: the kernel reaches int(4 * 2 + 0.5) = 8 samples
    k = 2 * r + 1
    impulse = np.zeros(k)
    impulse[r] = 1.0
    g = ndi.gaussian_filter1d(impulse, sigma, mode="constant")      # the 1-D kernel itself
    t.close("the 1-D Gaussian sums to 1", g.sum(), 1.0, rtol=1e-12)
    y2 = t.timed(ndi.convolve, img, np.outer(g, g), mode="reflect")
    full = t.cost(f"one 2-D pass, {k}x{k} kernel", (1, n, n), (1, 1, k, k), (1,) + y2.shape, padding=r)
    ys = t.timed(ndi.gaussian_filter, img, sigma, mode="reflect")
    a = t.cost(f"two 1-D passes: {k}x1", (1, n, n), (1, 1, k, 1), padding=(r, 0))
    b = conv_cost(a.output_shape, (1, 1, 1, k), padding=(0, r))
    t.say(f"  then 1x{k}: {b.multiplications:,} multiplications; together "
          f"{a.multiplications + b.multiplications:,} against {full.multiplications:,} "
          f"(ratio {(a.multiplications + b.multiplications) / full.multiplications:.4f} = 2/k = {2 / k:.4f})")
    t.check("2 N^2 k against N^2 k^2 (padded positions count)",
            (a.multiplications + b.multiplications, full.multiplications) == (2 * n * n * k, n * n * k * k))
    t.close("gaussian_filter (two 1-D passes) == convolve with outer(g, g) (one 2-D pass)", ys, y2, rtol=1e-12)
    t.check("gaussian_filter == scipy.ndimage.gaussian_filter, bit for bit",
            np.array_equal(ys, sndi.gaussian_filter(img, sigma, mode="reflect")))
    vol = load_volume()
    m = vol.shape[0]
    yv = t.timed(ndi.gaussian_filter, vol, sigma, mode="nearest")
    passes = 3 * m ** 3 * k
    t.say(f"volume {vol.shape}: three 1-D passes {passes:,} multiplications against {m ** 3 * k ** 3:,} for the "
          f"{k}^3 kernel (3/k^2 = 1/{k ** 2 / 3:.0f}), {t._elapsed * 1e3:.2f} ms")
    t.close("3-D gaussian_filter == scipy.ndimage.gaussian_filter", yv,
            sndi.gaussian_filter(vol, sigma, mode="nearest"), rtol=1e-12)
    t.panels["separable Gaussian"] = ys


def step_dask(t):
    """Dask: a volume larger than one chunk, convolved lazily"""
    try:
        import dask
        import dask.array as da
    except ImportError:
        raise _Skip("dask is not installed (pip install 'pyconv[dask]')") from None
    sig = _layer("signal")
    pdk = _layer("dask")
    vol = load_volume()
    chunks = tuple(max(1, n // 2) for n in vol.shape)
    x = da.from_array(vol, chunks=chunks)
    k = np.ones((3, 3, 3)) / 27
    y = sig.convolve(x, k, mode="same", method="direct")      # a dask input gives a lazy result
    t.say(f"volume {vol.shape} in {x.npartitions} chunks of {chunks}; pyconv.signal.convolve(x, 3x3x3 mean, "
          f"'same') returned a {type(y).__module__}.{type(y).__name__} with chunks {y.chunks}, nothing computed")
    t.check("the result is lazy (a dask array), with the input's chunks", isinstance(y, da.Array)
            and y.chunks == x.chunks)
    t.say("each chunk reads a halo of 1 sample from its neighbours (zeros at the volume's edges)")
    got = t.timed(lambda: y.compute(scheduler="threads"))
    per_task = dask.delayed(pdk.task_threads)().compute(scheduler="threads")
    t.say(f"computed on dask's threaded scheduler in {t._elapsed * 1e3:.2f} ms; each task ran pyconv on "
          f"{per_task} thread(s) ({pyconv.get_num_threads()} CPUs shared by the pool's tasks)")
    t.check("== pyconv.signal.convolve on the whole volume, bitwise",
            np.array_equal(got, sig.convolve(vol, k, mode="same", method="direct")))
    g = pdk.conv3d(x[None, None], k[None, None], padding=1, padding_mode="reflect")
    t.close("nn.conv3d(padding_mode='reflect') chunk by chunk == in memory",
            g.compute(scheduler="sync"), _layer("nn").conv3d(vol[None, None], k[None, None], padding=1,
                                                             padding_mode="reflect"))
    t.panels["dask: 3x3x3 mean, chunk by chunk (middle slice)"] = got[vol.shape[0] // 2]


def step_dask_ndimage(t):
    """Dask: scipy.ndimage's Gaussian on a volume larger than one chunk, lazily"""
    try:
        import dask.array as da
    except ImportError:
        raise _Skip("dask is not installed (pip install 'pyconv[dask]')") from None
    from scipy import ndimage as sndi
    pdk = _layer("dask")
    ndi = _layer("ndimage")
    vol = load_volume()
    chunks = tuple(max(1, n // 2) for n in vol.shape)
    x = da.from_array(vol, chunks=chunks)
    sigma = 2.0
    r = int(4.0 * sigma + 0.5)                      # truncate=4: the Gaussian reaches 8 samples
    y = pdk.ndimage.gaussian_filter(x, sigma)      # mode='reflect', as scipy's default
    t.say(f"volume {vol.shape} in {x.npartitions} chunks of {chunks}; pyconv.dask.ndimage.gaussian_filter(x, "
          f"sigma={sigma}) returned a {type(y).__module__}.{type(y).__name__} with chunks {y.chunks}, "
          f"nothing computed")
    t.check("the result is lazy (a dask array), with the input's chunks", isinstance(y, da.Array)
            and y.chunks == x.chunks)
    t.check("pyconv.dask.gaussian_filter is pyconv.dask.ndimage.gaussian_filter (ndimage's convolve/correlate "
            "are only under .ndimage: pyconv.dask.convolve is signal's)",
            pdk.gaussian_filter is pdk.ndimage.gaussian_filter and pdk.convolve is not pdk.ndimage.convolve)
    t.say(f"each chunk reads a halo of {r} samples per side (int(truncate * sigma + 0.5)), mirrored at the "
          f"volume's edges ('reflect'), runs the three 1-D passes on chunk + halo and keeps its own "
          f"{chunks[0]}^3")
    got = t.timed(lambda: y.compute(scheduler="threads"))
    t.say(f"computed on dask's threaded scheduler in {t._elapsed * 1e3:.2f} ms")
    t.check("== scipy.ndimage.gaussian_filter on the whole volume, bitwise",
            np.array_equal(got, sndi.gaussian_filter(vol, sigma)))
    t.check("== pyconv.ndimage.gaussian_filter in memory, bitwise",
            np.array_equal(got, ndi.gaussian_filter(vol, sigma)))
    # chunks smaller than the reach are merged with a neighbour first; a dask array given to
    # pyconv.ndimage goes to pyconv.dask.ndimage (lazy, never computed into memory behind your back)
    small = da.from_array(vol, chunks=4)
    z = ndi.gaussian_filter(small, sigma, mode="wrap")
    t.say(f"chunks of 4 (< the reach {r}), through pyconv.ndimage.gaussian_filter(mode='wrap'): lazy again, "
          f"chunks along axis 0 {small.chunks[0]} -> {z.chunks[0]}")
    t.check("chunks smaller than the reach, 'wrap' == scipy.ndimage, bitwise", isinstance(z, da.Array)
            and np.array_equal(z.compute(scheduler="sync"), sndi.gaussian_filter(vol, sigma, mode="wrap")))


STEPS = [
    step_convolution_vs_correlation,
    step_single_channel,
    step_multi_channel,
    step_3d,
    step_1x1,
    step_stride_padding,
    step_transposed,
    step_checkerboard,
    step_dilated,
    step_spatially_separable,
    step_depthwise_separable,
    step_flattened,
    step_grouped,
    step_channel_shuffle,
    step_pointwise_group,
    step_gradients,
    step_separable_gaussian,
    step_dask,
    step_dask_ndimage,
]


# --------------------------------------------------------------------------- figures
# The figures are described as data first (``figure_data``: panels of images, line
# series and matrix entries, with titles, axis labels and sizes), then drawn by one
# generic routine; tests check the data without looking at pixels.

#: Image panels computed from another panel than the input image (drawn after it).
PANEL_SOURCES = {"3-D Sobel along depth (middle slice)": "volume (middle slice)"}


def _image_panel(title, arr, source=None, cmap="gray", colorbar=False):
    h, w = arr.shape[:2]
    return {"kind": "image", "title": f"{title}\n{h}x{w}", "name": title, "array": arr, "from": source,
            "cmap": cmap, "colorbar": colorbar, "xlabel": f"column (0..{w - 1})", "ylabel": f"row (0..{h - 1})"}


def _convolutions_figure(panels):
    items = [_image_panel("input image", np.clip(load_image().transpose(1, 2, 0), 0, 1), cmap=None)]
    for name, arr in panels.items():
        if isinstance(arr, np.ndarray) and arr.ndim == 2 and not name.startswith(("overlap", "transposed (k=3")) \
                and not name.startswith("resize-conv of"):
            items.append(_image_panel(name, arr, PANEL_SOURCES.get(name, "input image")))
    return {"title": "The 128x128 test image (and the 32x32x32 volume) through each step of the tour; "
                     "sizes in pixels under each title", "ncols": 4, "panels": items}


def _checkerboard_figure(panels):
    items = []
    for k in (3, 4):
        name = f"overlap k={k}, s=2"
        if name in panels:
            ov = panels[name]
            items.append(_image_panel(f"kernel copies per pixel, k={k}, s=2\n(corner of "
                                      f"{ov.shape[0]}x{ov.shape[1]})", ov[:12, :12], cmap="viridis", colorbar=True))
    for name, label in (("transposed (k=3, s=2) of the image", "transposed conv k=3, s=2"),
                        ("resize-conv of the image", "nearest x2 then 3x3 conv")):
        if name in panels:
            arr = panels[name]
            items.append(_image_panel(f"{label}\n(corner of {arr.shape[0]}x{arr.shape[1]})",
                                      arr[:48, :48], "input image"))
    if not items:
        return None
    return {"title": "Checkerboard: uneven overlap of a transposed convolution (k=3, s=2) vs even (k=4, s=2) "
                     "and resize-convolution", "ncols": len(items), "panels": items}


def _receptive_field_figure(panels):
    if "receptive fields" not in panels:
        return None
    items = []
    for n, arr in enumerate(panels["receptive fields"]):
        rows = np.flatnonzero(arr.any(axis=1))
        reach = int(rows[-1] - rows[0] + 1)
        items.append(_image_panel(f"impulse after layer {n + 1} (3x3, d={2 ** n}):\nreaches {reach}x{reach} of",
                                  (arr > 0).astype(float), cmap="Blues"))
    depth = list(range(1, 7))
    series = []
    # one colour and marker per stack, the same in both plots
    for label, layers, style in [("3x3, no dilation", [(3, 1, 1)] * 6, ("o", "-", "C0")),
                                 ("3x3, dilation 2", [(3, 1, 2)] * 6, ("s", "--", "C1")),
                                 ("3x3, dilation 2^(n-1)", [(3, 1, 2 ** n) for n in range(6)], ("^", "-.", "C2"))]:
        series.append({"label": label, "x": depth, "y": [r for r, _ in receptive_field(layers)],
                       "marker": style[0], "linestyle": style[1], "color": style[2]})
    items.append({"kind": "lines", "title": "receptive field vs depth\n(stride 2 gives the same as d=2^(n-1))",
                  "xlabel": "layers",
                  "ylabel": "receptive field (pixels per side)", "yscale": "log", "series": series})
    # stride 2 reaches the same receptive field as dilation 2^(n-1), at a price: the output
    # shrinks by 2 per layer, while the dilated ('same'-padded) stack keeps every pixel
    size = 128
    strided = [conv_output_size(size, 3, 2, 1)]
    for _ in depth[1:]:
        strided.append(conv_output_size(strided[-1], 3, 2, 1))
    items.append({"kind": "lines", "title": f"output size of a {size}-pixel input\n(equal receptive fields, different resolution)",
                  "xlabel": "layers", "ylabel": "output size (pixels per side)", "yscale": "log",
                  "series": [{"label": "3x3, dilation 2^(n-1), 'same' padding", "x": depth, "y": [size] * 6,
                              "marker": "^", "linestyle": "-.", "color": "C2"},
                             {"label": "3x3, stride 2, padding 1", "x": depth, "y": strided,
                              "marker": "v", "linestyle": ":", "color": "C3"}]})
    return {"title": "Receptive fields: an impulse through 3x3 layers with dilation 1, 2, 4; growth with depth",
            "ncols": 3,
            "panels": items}


def _conv_matrix_figure(panels):
    if "conv matrices" not in panels:
        return None
    items = []
    for name, C in panels["conv matrices"]:
        coo = C.tocoo()
        items.append({"kind": "entries", "title": f"conv_matrix, {name}: C is {C.shape[0]}x{C.shape[1]}, "
                                                  f"{C.nnz} stored entries", "shape": C.shape,
                      "rows": coo.row, "cols": coo.col, "values": coo.data,
                      "xlabel": "input element (flattened)", "ylabel": "output element (flattened)"})
    return {"title": "The convolution as a sparse matrix: each row is one output, its entries the kernel taps "
                     "(numbered 1..9) at the input elements under the window", "ncols": 1, "panels": items}


def figure_data(panels):
    """Describe every figure of ``--out`` as data: ``{file name: figure}``.

    A figure is ``{"title", "ncols", "panels"}``; a panel is a dict with ``kind``
    (``"image"``, ``"lines"`` or ``"entries"``), ``title``, ``xlabel``, ``ylabel`` and
    the data drawn: ``array`` for an image (``from`` names the panel it was computed
    from), ``series`` of ``{label, x, y, marker, linestyle, color}`` for lines, ``rows``,
    ``cols`` and ``values`` of every stored entry for a sparse matrix.
    """
    figs = {"convolutions.png": _convolutions_figure(panels),
            "checkerboard.png": _checkerboard_figure(panels),
            "receptive_field.png": _receptive_field_figure(panels),
            "conv_matrix.png": _conv_matrix_figure(panels)}
    return {name: fig for name, fig in figs.items() if fig is not None}


def _draw(fig, ax, p):
    ax.set_title(p["title"], fontsize=9)
    ax.set_xlabel(p["xlabel"], fontsize=8)
    ax.set_ylabel(p["ylabel"], fontsize=8)
    if p["kind"] == "image":
        arr = p["array"]
        im = ax.imshow(arr, cmap=p["cmap"], interpolation="nearest")
        h, w = arr.shape[:2]
        ax.set_xticks([0, w - 1])
        ax.set_yticks([0, h - 1])
        if p["colorbar"]:
            fig.colorbar(im, ax=ax, fraction=0.046)
    elif p["kind"] == "lines":
        for s in p["series"]:
            ax.plot(s["x"], s["y"], marker=s["marker"], linestyle=s["linestyle"], color=s["color"], label=s["label"])
        ax.set_yscale(p["yscale"], base=2)
        top = max(max(s["y"]) for s in p["series"])
        ax.set_ylim(top=top * 1.5)      # a line at the maximum stays off the frame
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    else:       # every stored entry of a sparse matrix, as a numbered cell
        n_rows, n_cols = p["shape"]
        vals = p["values"]
        ax.scatter(p["cols"], p["rows"], c=vals, cmap="viridis", marker="s", s=180, edgecolors="black")
        mid = (vals.min() + vals.max()) / 2 if len(vals) else 0
        for r, c, v in zip(p["rows"], p["cols"], vals):     # dark text on the light cells
            ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=7, color="white" if v < mid else "black")
        ax.set_xlim(-0.5, n_cols - 0.5)
        ax.set_ylim(n_rows - 0.5, -0.5)
        ax.set_xticks(range(n_cols))
        ax.set_yticks(range(n_rows))
        ax.tick_params(labelsize=7)
        ax.set_aspect("equal")
        ax.grid(True, alpha=0.3)


def write_figures(out_dir, panels, out=None):
    """Write the tour's PNG figures to ``out_dir``; return the paths written.

    Needs matplotlib (``pip install matplotlib``); without it, say so and return [].
    """
    out = out if out is not None else sys.stdout
    try:
        import matplotlib
    except ImportError:
        print("\nfigures: matplotlib is not installed (pip install matplotlib); "
              f"skipping the figures for {out_dir}", file=out)
        return []
    matplotlib.use("Agg")       # files only, no display needed
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, spec in figure_data(panels).items():
        items = spec["panels"]
        ncol = spec["ncols"]
        nrow = -(-len(items) // ncol)
        if name == "conv_matrix.png":       # wide matrices: size each row by its column count
            size = (max(p["shape"][1] for p in items) * 0.32 + 1.5,
                    sum(p["shape"][0] * 0.32 + 1.2 for p in items) + 0.8)
        else:
            size = (4.0 * ncol, 4.0 * nrow + 0.6)
        fig, axes = plt.subplots(nrow, ncol, figsize=size, squeeze=False)
        axes = axes.ravel()
        for ax, p in zip(axes, items):
            _draw(fig, ax, p)
        for ax in axes[len(items):]:
            ax.axis("off")
        fig.suptitle(spec["title"], fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / size[1]))     # room for the suptitle
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    for p in written:
        print(f"figure: {p}", file=out)
    return written


def _check_out_dir(path):
    """The error message when figures cannot be written to ``path``, else None.

    Nothing is created: the directory is made only when the figures are written.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        return f"--out {path}: exists and is not a directory"
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return f"--out {path}: {probe} is not a directory"
    try:        # os.access says yes to root on a read-only file system: try it
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        return f"--out {path}: cannot write in {probe} ({e.strerror or e})"
    return None


def guide_text():
    """The guide (``pyconv/guide.md``) as a string."""
    return resources.files("pyconv").joinpath("guide.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m pyconv",
        description="A tour of every kind of convolution: each step computes with pyconv on the "
                    "shipped image, checks the result against its reference (scipy or the definition), "
                    "and prints shapes, multiplication counts, timings and PASS/FAIL. "
                    "The guide that explains each step: python -m pyconv --guide.")
    ap.add_argument("--out", metavar="DIR",
                    help="also write PNG figures to DIR (needs matplotlib: pip install matplotlib)")
    ap.add_argument("--threads", type=int, metavar="N", help="kernel threads (default: pyconv's default)")
    ap.add_argument("--guide", action="store_true",
                    help="print the guide (pyconv/guide.md, shipped in the package) and its path, and exit")
    args = ap.parse_args(argv)
    if args.guide:
        try:
            print(guide_text())
            print(f"[this guide is {resources.files('pyconv').joinpath('guide.md')}]")
            sys.stdout.flush()
        except BrokenPipeError:     # `python -m pyconv --guide | head`: the reader left early
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if args.threads is not None:
        if args.threads < 1:
            ap.error(f"--threads={args.threads} must be a positive integer")
        pyconv.set_num_threads(args.threads)
    if args.out is not None:
        problem = _check_out_dir(args.out)
        if problem:
            ap.error(problem)

    img = load_image()
    print(f"pyconv {pyconv.__version__} tour: every kind of convolution, checked against its reference")
    print(f"image {img.shape} and volume {load_volume().shape} from pyconv/data; "
          f"{pyconv.get_num_threads()} thread(s), OpenMP {'on' if pyconv.openmp_enabled() else 'off'}")
    t0 = time.perf_counter()
    tour = Tour()
    results = tour.run(STEPS)
    counts = {s: sum(1 for _, r in results if r == s) for s in ("PASS", "FAIL", "SKIP")}
    print(f"\n{len(results)} steps: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP "
          f"in {time.perf_counter() - t0:.1f} s")
    if args.out:
        write_figures(args.out, tour.panels)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
