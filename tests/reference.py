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
