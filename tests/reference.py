"""NumPy reference definitions and the one tolerance table of the test suite.

The references are the textbook definitions, written for clarity, not speed:
use them on small shapes.  Each test file may add its own definitions here.
"""
import itertools

import numpy as np

# rtol/atol per dtype for an output that sums one product; scaled by sqrt of the
# reduction length (random-sign rounding errors grow like a random walk, with
# a safety factor of 4).
_BASE = {
    np.dtype(np.float16): (2e-3, 2e-3),
    np.dtype(np.float32): (2e-5, 2e-6),
    np.dtype(np.complex64): (2e-5, 2e-6),
    np.dtype(np.float64): (1e-12, 1e-13),
    np.dtype(np.complex128): (1e-12, 1e-13),
}


def tolerance(dtype, n_reduce=1):
    """(rtol, atol) for results of ``dtype`` that sum ``n_reduce`` products.

    Integer and bool results are exact: (0, 0).
    """
    dt = np.dtype(dtype)
    if dt.kind in "biu":
        return 0.0, 0.0
    r, a = _BASE[dt]
    s = 4.0 * max(1.0, float(np.sqrt(max(1, n_reduce))))
    return r * s, a * s


def assert_close(actual, expected, dtype=None, n_reduce=1, scale=None):
    """Assert ``actual`` equals ``expected`` within the table's tolerance.

    The output dtype is asserted too (``dtype``, default ``expected.dtype``).
    ``scale``: magnitude of the summed terms (default: max |expected|, at least 1),
    so cancellation near zero is judged against the size of what was summed.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    dtype = np.dtype(dtype if dtype is not None else expected.dtype)
    assert actual.dtype == dtype, f"dtype {actual.dtype} != expected {dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    rtol, atol = tolerance(dtype, n_reduce)
    if rtol == 0:
        np.testing.assert_array_equal(actual, expected)
        return
    if scale is None:
        finite = np.abs(expected[np.isfinite(expected)]) if expected.size else np.zeros(0)
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, equal_nan=True)


def correlate_full(a, v):
    """Full N-d cross-correlation by definition (scipy.signal.correlate, mode='full').

    ``out[n] = sum_k a[n + k - (len(v)-1)] * conj(v[k])`` with zeros outside ``a``.
    Computed in complex128/float64/int64 (the caller casts).
    """
    a = np.asarray(a)
    v = np.asarray(v)
    shape = tuple(sa + sv - 1 for sa, sv in zip(a.shape, v.shape))
    dt = np.result_type(a, v, np.int64) if (a.dtype.kind in "biu" and v.dtype.kind in "biu") \
        else np.result_type(a, v, np.float64)
    out = np.zeros(shape, dtype=dt)
    vc = np.conj(v) if v.dtype.kind == "c" else v
    for k in itertools.product(*(range(s) for s in v.shape)):
        # the kernel tap k multiplies a shifted copy of a
        start = tuple(sv - 1 - kk for sv, kk in zip(v.shape, k))
        sl = tuple(slice(st, st + sa) for st, sa in zip(start, a.shape))
        out[sl] += a.astype(dt) * vc[k]
    return out


def conv_nd(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.convNd by definition (zero padding), batched ``(N, C, *sp)``.

    ``padding``: int, per-dim ints, or per-dim ``(before, after)`` pairs.
    Computes in float64.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    nd = w.ndim - 2
    st = (stride,) * nd if np.isscalar(stride) else tuple(stride)
    dl = (dilation,) * nd if np.isscalar(dilation) else tuple(dilation)
    if np.isscalar(padding):
        pads = [(padding, padding)] * nd
    else:
        pads = [(p, p) if np.isscalar(p) else tuple(p) for p in padding]
    xp = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    n, cin = x.shape[:2]
    cout, cg = w.shape[:2]
    ks = w.shape[2:]
    osz = tuple((xp.shape[2 + i] - dl[i] * (ks[i] - 1) - 1) // st[i] + 1 for i in range(nd))
    out = np.zeros((n, cout) + osz)
    og = cout // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og]
        for k in itertools.product(*(range(s) for s in ks)):
            sl = tuple(slice(k[i] * dl[i], k[i] * dl[i] + st[i] * (osz[i] - 1) + 1, st[i]) for i in range(nd))
            patch = xs[(slice(None), slice(None)) + sl]          # (N, cg, *osz)
            out[:, g * og:(g + 1) * og] += np.einsum("nc...,oc->no...", patch, ws[(slice(None), slice(None)) + k])
    if b is not None:
        out += np.asarray(b, dtype=np.float64).reshape((1, cout) + (1,) * nd)
    return out


# --------------------------------------------------------------------------- nn layer (tests/test_nn_*.py)

# torch.nn.ConvNd padding_mode -> np.pad mode
NP_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def same_pads(spatial, kernel, stride=1, dilation=1):
    """TensorFlow 'SAME' (before, after) pairs per dim: ``ceil(i/s)`` outputs, odd unit after."""
    nd = len(spatial)
    st = (stride,) * nd if np.isscalar(stride) else tuple(stride)
    dl = (dilation,) * nd if np.isscalar(dilation) else tuple(dilation)
    out = []
    for i, k, s, d in zip(spatial, kernel, st, dl):
        o = -(-i // s)
        total = max((o - 1) * s + d * (k - 1) + 1 - i, 0)
        out.append((total // 2, total - total // 2))
    return tuple(out)


def pad_pairs(padding, nd):
    """int / per-dim ints / per-dim (before, after) pairs -> list of nd pairs."""
    if np.isscalar(padding):
        return [(int(padding), int(padding))] * nd
    return [(int(p), int(p)) if np.isscalar(p) else (int(p[0]), int(p[1])) for p in padding]


def pad_nd(x, pads, padding_mode="zeros"):
    """Pad the spatial dims of a batched ``(N, C, *sp)`` array by (before, after) pairs,
    as torch.nn.ConvNd does for each ``padding_mode``."""
    x = np.asarray(x, dtype=np.float64)
    return np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads], mode=NP_PAD_MODE[padding_mode])


def conv_nd_mode(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """torch.nn.ConvNd by definition with any padding form and padding_mode (float64).

    ``padding``: int, per-dim ints, per-dim pairs, 'valid' or 'same' (TensorFlow's rule,
    which equals torch's for stride 1).
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    nd = w.ndim - 2
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * nd
        else:
            pads = list(same_pads(x.shape[2:], w.shape[2:], stride, dilation))
    else:
        pads = pad_pairs(padding, nd)
    return conv_nd(pad_nd(x, pads, padding_mode), w, b, stride, 0, dilation, groups)


def conv_transpose_nd(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transposeNd by definition (scatter-add), batched, float64.

    Weight ``(C_in, C_out/groups, *kernel)``.  Each input element adds ``x * w[., ., k]``
    at output position ``i*s + k*d - p``; ``output_padding`` extends the far end.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    nd = w.ndim - 2
    st = (stride,) * nd if np.isscalar(stride) else tuple(stride)
    dl = (dilation,) * nd if np.isscalar(dilation) else tuple(dilation)
    pd = (padding,) * nd if np.isscalar(padding) else tuple(padding)
    op = (output_padding,) * nd if np.isscalar(output_padding) else tuple(output_padding)
    n, cin = x.shape[:2]
    sp = x.shape[2:]
    cg_out = w.shape[1]
    ks = w.shape[2:]
    cout = cg_out * groups
    cg_in = cin // groups
    full = tuple((sp[i] - 1) * st[i] + dl[i] * (ks[i] - 1) + 1 + op[i] for i in range(nd))
    buf = np.zeros((n, cout) + full)
    for g in range(groups):
        xs = x[:, g * cg_in:(g + 1) * cg_in]
        ws = w[g * cg_in:(g + 1) * cg_in]
        for k in itertools.product(*(range(s) for s in ks)):
            sl = tuple(slice(k[i] * dl[i], k[i] * dl[i] + st[i] * (sp[i] - 1) + 1, st[i]) for i in range(nd))
            contrib = np.einsum("nc...,co->no...", xs, ws[(slice(None), slice(None)) + k])
            buf[(slice(None), slice(g * cg_out, (g + 1) * cg_out)) + sl] += contrib
    crop = tuple(slice(pd[i], full[i] - pd[i]) for i in range(nd))
    out = buf[(slice(None), slice(None)) + crop].copy()
    if b is not None:
        out += np.asarray(b, dtype=np.float64).reshape((1, cout) + (1,) * nd)
    return out


def unfold_ref(x, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.unfold by definition: ``(N, C, H, W) -> (N, C*kh*kw, L)``.

    Row ``c*kh*kw + i*kw + j``, column ``oh*OW + ow`` (row-major over output positions).
    """
    x = np.asarray(x, dtype=np.float64)
    kh, kw = (kernel_size,) * 2 if np.isscalar(kernel_size) else kernel_size
    dh, dw = (dilation,) * 2 if np.isscalar(dilation) else dilation
    ph, pw = (padding,) * 2 if np.isscalar(padding) else padding
    sh, sw = (stride,) * 2 if np.isscalar(stride) else stride
    xp = np.pad(x, [(0, 0), (0, 0), (ph, ph), (pw, pw)])
    n, c, hp, wp = xp.shape
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c, kh, kw, oh, ow))
    for i in range(kh):
        for j in range(kw):
            out[:, :, i, j] = xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
    return out.reshape(n, c * kh * kw, oh * ow)


def fold_ref(cols, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.fold by definition (col2im, overlapping entries summed):
    ``(N, C*kh*kw, L) -> (N, C, H, W)``; the adjoint of :func:`unfold_ref`."""
    cols = np.asarray(cols, dtype=np.float64)
    h, w = (output_size,) * 2 if np.isscalar(output_size) else output_size
    kh, kw = (kernel_size,) * 2 if np.isscalar(kernel_size) else kernel_size
    dh, dw = (dilation,) * 2 if np.isscalar(dilation) else dilation
    ph, pw = (padding,) * 2 if np.isscalar(padding) else padding
    sh, sw = (stride,) * 2 if np.isscalar(stride) else stride
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    n = cols.shape[0]
    c = cols.shape[1] // (kh * kw)
    blocks = cols.reshape(n, c, kh, kw, oh, ow)
    buf = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    for i in range(kh):
        for j in range(kw):
            buf[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw] += blocks[:, :, i, j]
    return buf[:, :, ph:ph + h, pw:pw + w].copy()


def channel_shuffle_ref(x, groups):
    """torch.nn.functional.channel_shuffle: output channel ``j*groups + g`` is input
    channel ``g*(C/groups) + j``."""
    x = np.asarray(x)
    n, c = x.shape[:2]
    return x.reshape((n, groups, c // groups) + x.shape[2:]).swapaxes(1, 2).reshape(x.shape).copy()


def upsample_nearest(x, scale):
    """torch interpolate(mode='nearest') with an integer scale per spatial dim of
    ``(N, C, *sp)``: output index ``o`` reads input ``floor(o / s)``."""
    x = np.asarray(x, dtype=np.float64)
    nd = x.ndim - 2
    sc = (scale,) * nd if np.isscalar(scale) else tuple(scale)
    for ax, s in enumerate(sc):
        x = np.repeat(x, s, axis=2 + ax)
    return x


def upsample_bilinear(x, scale):
    """torch interpolate(mode='bilinear', align_corners=False) of ``(N, C, H, W)`` with
    integer scales: source coordinate ``(o + 0.5)/s - 0.5`` clamped at 0, neighbours
    clamped at the edge."""
    x = np.asarray(x, dtype=np.float64)
    sh, sw = (scale,) * 2 if np.isscalar(scale) else tuple(scale)

    def taps(n_in, s):
        o = np.arange(n_in * s)
        src = np.maximum((o + 0.5) / s - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        lam = src - i0
        return i0, i1, lam

    h0, h1, lh = taps(x.shape[2], sh)
    w0, w1, lw = taps(x.shape[3], sw)
    rows = x[:, :, h0, :] * (1 - lh)[:, None] + x[:, :, h1, :] * lh[:, None]
    return rows[:, :, :, w0] * (1 - lw) + rows[:, :, :, w1] * lw


def random_conv_geometry(rng, og_max, depth_max):
    """One seeded random N-d convolution geometry (1-3 spatial dims, groups, strides,
    dilations, paddings up to the dilated kernel less one, spatial sizes the kernel fits
    after padding; ``depth_max`` bounds 3-D sizes, 40 the others).

    Returns ``(x_shape, w_shape, dict(groups, stride, dilation, padding))``.
    """
    nd = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 1, 2, 3]))
    cg = int(rng.integers(1, 6))
    og = int(rng.integers(1, og_max))
    k = tuple(int(v) for v in rng.integers(1, 4, nd))
    s = tuple(int(v) for v in rng.integers(1, 4, nd))
    d = tuple(int(v) for v in rng.integers(1, 3, nd))
    p = tuple(int(rng.integers(0, (kk - 1) * dd + 1)) for kk, dd in zip(k, d))
    sp = tuple(int(rng.integers(max(1, dd * (kk - 1) + 1 - 2 * pp), depth_max if nd == 3 else 40))
               for kk, dd, pp in zip(k, d, p))
    xs, ws = (int(rng.integers(1, 3)), cg * groups) + sp, (og * groups, cg) + k
    return xs, ws, dict(groups=groups, stride=s, dilation=d, padding=p)


def poison_fresh_buffers(monkeypatch):
    """Make every float array ``np.empty`` returns from now on hold NaN (until monkeypatch
    undoes it): a kernel that leaves an element of a fresh buffer unwritten then shows NaN.
    Returns the undo function."""
    real_empty = np.empty

    def poisoned(shape, dtype=float, *args, **kwargs):
        a = real_empty(shape, dtype, *args, **kwargs)
        if np.issubdtype(a.dtype, np.floating):
            a.fill(np.nan)
        return a
    monkeypatch.setattr(np, "empty", poisoned)
    return lambda: monkeypatch.setattr(np, "empty", real_empty)
