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

``--out DIR`` also writes PNG figures when matplotlib is installed (the optional
``plot`` extra); without it the tour says so and runs the checks alone.
"""
import argparse
import math
import os
import sys
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
    k = np.array([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]])
    c2 = t.timed(sig.convolve2d, img, k, mode="same")
    t.say(f"2-D: convolve2d(image {img.shape}, Sobel {k.shape}, 'same') in {t._elapsed * 1e3:.2f} ms")
    t.close("convolve2d == scipy.signal.convolve2d", c2, ss.convolve2d(img, k, mode="same"))
    t.close("correlate2d(image, k) == -convolve2d(image, k) for this antisymmetric k",
            sig.correlate2d(img, k, mode="same"), -c2)
    t.panels["convolve2d Sobel"] = c2


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
    t.panels["3-D (depth derivative, middle slice)"] = y[vol.shape[0] // 2]
    t.panels["volume (middle slice)"] = vol[vol.shape[0] // 2]


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
        t.panels.setdefault("conv matrices", []).append((f"{size}x{size} -> 2x2, stride {s}", C))
    img = load_image()[1]
    w = np.ones((1, 1, 4, 4)) / 4.0
    up = t.timed(nn.conv_transpose2d, img[None, None], w, stride=2, padding=1)[0, 0]
    # a transposed convolution costs what the convolution it transposes costs
    t.cost("x2 upsampling (k=4, s=2, p=1) transposes the conv", (1,) + up.shape, w.shape,
           out_shape=(1,) + img.shape, stride=2, padding=1)
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
    sobel = np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
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
    t.panels["separable Sobel"] = y


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
    step_dask,
]


# --------------------------------------------------------------------------- figures

def write_figures(out_dir, panels, out=None):
    """Write the tour's PNG figures to ``out_dir``; return the paths written.

    Needs matplotlib (the optional ``plot`` extra); without it, say so and return [].
    """
    out = out if out is not None else sys.stdout
    try:
        import matplotlib
    except ImportError:
        print("\nfigures: matplotlib is not installed (pip install 'pyconv[plot]'); "
              f"skipping the figures for {out_dir}", file=out)
        return []
    matplotlib.use("Agg")       # files only, no display needed
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    written = []

    def save(fig, name):
        path = os.path.join(out_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    # 1. the image through each convolution
    images = [(k, v) for k, v in panels.items()
              if isinstance(v, np.ndarray) and v.ndim == 2 and not k.startswith("overlap")]
    ncol = 4
    nrow = max(1, -(-(len(images) + 1) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3 * ncol, 3 * nrow), squeeze=False)
    axes = axes.ravel()
    axes[0].imshow(np.clip(load_image().transpose(1, 2, 0), 0, 1))
    axes[0].set_title("input image", fontsize=9)
    for ax, (name, arr) in zip(axes[1:], images):
        ax.imshow(arr, cmap="gray")
        ax.set_title(f"{name}\n{arr.shape[0]}x{arr.shape[1]}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    save(fig, "convolutions.png")

    # 2. checkerboard: uneven overlap of transposed convolution beside resize-convolution
    keys = ["overlap k=3, s=2", "overlap k=4, s=2", "transposed (k=3, s=2) of the image", "resize-conv of the image"]
    have = [k for k in keys if k in panels]
    if have:
        fig, axes = plt.subplots(1, len(have), figsize=(3.2 * len(have), 3.4), squeeze=False)
        for ax, k in zip(axes[0], have):
            arr = panels[k]
            if k.startswith("overlap"):
                arr = arr[:12, :12]
                im = ax.imshow(arr, cmap="viridis", vmin=0)
                fig.colorbar(im, ax=ax, fraction=0.046)
                k = k + " (corner)"
            else:
                ax.imshow(arr[:48, :48], cmap="gray")
                k = k + " (corner)"
            ax.set_title(k, fontsize=9)
            ax.axis("off")
        save(fig, "checkerboard.png")

    # 3. receptive-field growth of dilated stacks
    if "receptive fields" in panels:
        grow = panels["receptive fields"]
        fig, axes = plt.subplots(1, len(grow) + 1, figsize=(3.2 * (len(grow) + 1), 3.2))
        for n, (ax, arr) in enumerate(zip(axes, grow)):
            ax.imshow((arr > 0).astype(float), cmap="Blues")
            ax.set_title(f"after layer {n + 1} (d={2 ** n})", fontsize=9)
            ax.axis("off")
        depth = np.arange(1, 7)
        for label, layers in [("3x3, no dilation", [(3, 1, 1)] * 6),
                              ("3x3, dilation 2^n", [(3, 1, 2 ** n) for n in range(6)]),
                              ("3x3, stride 2", [(3, 2, 1)] * 6)]:
            axes[-1].plot(depth, [r for r, _ in receptive_field(layers)], marker="o", label=label)
        axes[-1].set_xlabel("layers")
        axes[-1].set_ylabel("receptive field")
        axes[-1].set_yscale("log", base=2)
        axes[-1].legend(fontsize=8)
        save(fig, "receptive_field.png")

    # 4. sparsity pattern of the convolution matrix
    if "conv matrices" in panels:
        mats = panels["conv matrices"]
        fig, axes = plt.subplots(1, len(mats), figsize=(5 * len(mats), 2.4), squeeze=False)
        for ax, (name, C) in zip(axes[0], mats):
            ax.spy(C, markersize=3)
            ax.set_title(f"conv_matrix: {name}\n{C.shape[0]}x{C.shape[1]}, {C.nnz} entries", fontsize=9)
        save(fig, "conv_matrix.png")

    for p in written:
        print(f"figure: {p}", file=out)
    return written


# --------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m pyconv",
        description="A tour of every kind of convolution: each step computes with pyconv on the "
                    "shipped image, checks the result against its reference (scipy or the definition), "
                    "and prints shapes, multiplication counts, timings and PASS/FAIL.")
    ap.add_argument("--out", metavar="DIR",
                    help="also write PNG figures to DIR (needs matplotlib: pip install 'pyconv[plot]')")
    ap.add_argument("--threads", type=int, metavar="N", help="kernel threads (default: pyconv's default)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            ap.error(f"--threads={args.threads} must be a positive integer")
        pyconv.set_num_threads(args.threads)

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
