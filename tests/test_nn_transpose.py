"""pyconv.nn.conv_transpose1d/2d/3d against the scatter-add definition and PyTorch."""
import numpy as np
import pytest

import pyconv
from pyconv import nn
from pyconv._engine import tuning
from pyconv._engine.plan import force
from reference import assert_close, conv_nd, conv_transpose_nd

FUNCS = {1: nn.conv_transpose1d, 2: nn.conv_transpose2d, 3: nn.conv_transpose3d}
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


def rand(rng, shape, dtype=np.float64):
    return rng.uniform(-1.0, 1.0, shape).astype(dtype)


def n_reduce(x, w, stride):
    # each output sums at most C_in/groups * prod(ceil(k/s)) products; C_in/groups * prod(k) bounds it
    return int(w.shape[0] * np.prod(w.shape[2:]))


def check(out, x, w, b=None, dtype=None, **kw):
    x = np.asarray(x)
    w = np.asarray(w)
    dtype = np.dtype(dtype or x.dtype)
    unbatched = x.ndim == w.ndim - 1
    ref = conv_transpose_nd(x[None] if unbatched else x, w, b, **kw)
    if unbatched:
        ref = ref[0]
    assert_close(out, ref, dtype, n_reduce=n_reduce(x, w, kw.get("stride", 1)))
    assert out.flags.c_contiguous


def torch_tconv(x, w, b=None, **kw):
    torch = pytest.importorskip("torch")
    nd = np.asarray(w).ndim - 2
    t = lambda a: None if a is None else torch.from_numpy(np.array(a, dtype=np.float64))
    return getattr(torch.nn.functional, f"conv_transpose{nd}d")(t(x), t(w), t(b), **kw).numpy()


CASES = [
    # stride, padding, output_padding, groups, dilation, bias
    (1, 0, 0, 1, 1, True),
    (2, 0, 0, 1, 1, False),
    (2, 1, 1, 2, 1, True),
    (3, 2, 2, 1, 1, False),
    (1, 1, 1, 1, 2, True),        # output_padding < dilation (stride 1)
    (2, 1, 0, 4, 2, True),        # depthwise-style groups
    (3, 0, 1, 2, 2, False),
]


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_vs_definition(nd, dtype, case):
    stride, padding, output_padding, groups, dilation, bias = case
    rng = np.random.default_rng(abs(hash((nd, case))) % 2**32)
    cin, cout = 4, 6 if groups != 4 else 4
    sp = {1: (7,), 2: (5, 6), 3: (4, 3, 5)}[nd]
    ks = {1: (3,), 2: (3, 4), 3: (2, 3, 3)}[nd]
    x = rand(rng, (2, cin) + sp, dtype)
    w = rand(rng, (cin, cout // groups) + ks, dtype)
    b = rand(rng, (cout,), dtype) if bias else None
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    out = FUNCS[nd](x, w, b, **kw)
    check(out, x, w, b, dtype, **kw)
    out1 = FUNCS[nd](x[0], w, b, **kw)
    assert out1.shape == out.shape[1:]
    check(out1, x[0], w, b, dtype, **kw)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_per_dim_tuples(nd):
    rng = np.random.default_rng(nd)
    sp = {1: (6,), 2: (5, 4), 3: (4, 3, 3)}[nd]
    ks = {1: (3,), 2: (2, 3), 3: (3, 2, 2)}[nd]
    kw = dict(stride=(2, 3, 1)[:nd], padding=(1, 0, 1)[:nd], output_padding=(1, 2, 0)[:nd],
              dilation=(1, 1, 2)[:nd])
    x = rand(rng, (2, 3) + sp)
    w = rand(rng, (3, 2) + ks)
    check(FUNCS[nd](x, w, **kw), x, w, **kw)


def _grid(nd, n, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        groups = int(rng.choice([1, 2, 3]))
        cin = groups * int(rng.integers(1, 4))
        cout = groups * int(rng.integers(1, 4))
        ks = tuple(int(k) for k in rng.integers(1, 5, nd))
        stride = tuple(int(s) for s in rng.integers(1, 4, nd))
        dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
        op = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        sp = tuple(int(s) for s in rng.integers(1, 6, nd))
        # padding may not exceed what the full output can give up
        padding = tuple(int(rng.integers(0, max(1, ((i - 1) * s + d * (k - 1) + 1) // 2)))
                        for i, s, d, k in zip(sp, stride, dilation, ks))
        yield dict(x=(int(rng.integers(1, 3)), cin) + sp, w=(cin, cout // groups) + ks,
                   bias=bool(rng.integers(0, 2)), unbatched=bool(rng.integers(0, 4) == 0),
                   kw=dict(stride=stride, padding=padding, output_padding=op, groups=groups, dilation=dilation))


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vs_torch_grid(nd, dtype):
    pytest.importorskip("torch")
    rng = np.random.default_rng(200 + nd)
    for case in _grid(nd, 40 if nd < 3 else 20, seed=nd + 50 * (dtype == np.float32)):
        x = rand(rng, case["x"], dtype)
        if case["unbatched"]:
            x = x[0]
        w = rand(rng, case["w"], dtype)
        b = rand(rng, (case["w"][1] * case["kw"]["groups"],), dtype) if case["bias"] else None
        out = FUNCS[nd](x, w, b, **case["kw"])
        xe = x[None] if case["unbatched"] else x
        expected = torch_tconv(xe, w, b, **case["kw"])
        if case["unbatched"]:
            expected = expected[0]
        assert_close(out, expected, dtype, n_reduce=n_reduce(x, w, 1))


@pytest.mark.parametrize("case", [
    dict(x=(4, 64, 14, 14), w=(64, 32, 4, 4), kw=dict(stride=2, padding=1)),
    dict(x=(2, 32, 15, 13), w=(32, 16, 3, 3), kw=dict(stride=2, padding=1, output_padding=1)),
    dict(x=(2, 32, 12, 12), w=(32, 8, 3, 3), kw=dict(stride=1, padding=1, groups=4)),
    dict(x=(2, 16, 300), w=(16, 24, 8), kw=dict(stride=4, padding=2)),
    dict(x=(1, 8, 8, 9, 7), w=(8, 8, 4, 4, 4), kw=dict(stride=2, padding=1)),
    # one sample: output channels split in blocks with a remainder
    dict(x=(1, 16, 9, 11), w=(16, 30, 3, 3), kw=dict(stride=2, padding=1, output_padding=1)),
    dict(x=(1, 12, 10, 9), w=(12, 13, 4, 3), kw=dict(stride=(2, 3), dilation=(1, 2), groups=3)),
    # stride 1 with padding beyond d*(k-1): crops more than the full output's border
    dict(x=(2, 16, 12, 11), w=(16, 20, 2, 3), kw=dict(padding=(3, 2))),
    dict(x=(2, 3, 12, 11), w=(3, 2, 2, 3), kw=dict(padding=(2, 3), dilation=(1, 1))),
], ids=["dcgan", "op1", "grouped", "1d", "3d", "cblock_rest", "grouped_rest", "s1_bigpad", "s1_bigpad_thin"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vs_torch_larger(case, dtype):
    pytest.importorskip("torch")
    rng = np.random.default_rng(case["w"][1])
    x = rand(rng, case["x"], dtype)
    w = rand(rng, case["w"], dtype)
    groups = case["kw"].get("groups", 1)
    b = rand(rng, (case["w"][1] * groups,), dtype)
    nd = w.ndim - 2
    out = FUNCS[nd](x, w, b, **case["kw"])
    assert_close(out, torch_tconv(x, w, b, **case["kw"]), dtype, n_reduce=n_reduce(x, w, 1))


def test_is_adjoint_of_conv():
    # <conv(x, w), y> == <x, conv_transpose(y, w)> for the same stride/padding/dilation/groups
    rng = np.random.default_rng(3)
    x = rand(rng, (2, 4, 11, 10))
    w = rand(rng, (6, 2, 3, 4))
    kw = dict(stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=2)
    y = conv_nd(x, w, **kw)
    g = rand(rng, y.shape)
    # output_padding recovers the input size lost to the stride's floor division
    op = tuple(x.shape[2 + i] - ((y.shape[2 + i] - 1) * kw["stride"][i] - 2 * kw["padding"][i]
                                 + kw["dilation"][i] * (w.shape[2 + i] - 1) + 1) for i in range(2))
    xt = nn.conv_transpose2d(g, w, output_padding=op, **kw)
    assert xt.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, xt), rtol=1e-10)


@pytest.mark.parametrize("xdt,wdt,expected", [
    (np.float32, np.float32, F32), (np.float32, np.float64, F64), (np.float64, np.float32, F64),
    (np.float16, np.float16, F32), (np.int64, np.int32, F64), (np.bool_, np.float32, F64),
])
def test_dtype_policy(xdt, wdt, expected):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, (2, 2, 4, 5)).astype(xdt)
    w = rng.uniform(-2, 3, (2, 3, 3, 2)).astype(wdt)
    out = nn.conv_transpose2d(x, w, stride=2)
    assert out.dtype == expected
    check(out, x, w, dtype=expected, stride=2)


def test_complex_raises():
    with pytest.raises(TypeError, match="complex"):
        nn.conv_transpose2d(np.ones((1, 2, 3, 3), np.complex64), np.ones((2, 2, 3, 3)))
    with pytest.raises(TypeError, match="complex"):
        nn.conv_transpose1d(np.ones((1, 2, 3)), np.ones((2, 2, 3)), np.ones(2, np.complex128))


def test_zero_batch_and_size_one():
    torch = pytest.importorskip("torch")
    x = np.zeros((0, 4, 5, 5), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    out = nn.conv_transpose2d(x, w, stride=2)
    expected = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=2)
    assert out.shape == tuple(expected.shape) and out.dtype == F32
    rng = np.random.default_rng(4)
    x = rand(rng, (2, 3, 1, 1))
    w = rand(rng, (3, 2, 1, 1))
    check(nn.conv_transpose2d(x, w), x, w)
    w = rand(rng, (3, 2, 4, 3))
    check(nn.conv_transpose2d(x, w, stride=3), x, w, stride=3)
    x = rand(rng, (1, 2, 1))
    w = rand(rng, (2, 1, 1))
    check(nn.conv_transpose1d(x, w, stride=5, output_padding=4), x, w, stride=5, output_padding=4)


def test_zero_channels():
    # zero input channels: torch rejects the weight (0, C_out, ...); pyconv may reject it
    # too (naming the weight) or return the empty sum: the bias, shape (N, C_out, *out)
    x = np.zeros((2, 0, 3, 3))
    w = np.zeros((0, 5, 2, 2))
    b = np.arange(5.0)
    try:
        out = nn.conv_transpose2d(x, w, b)
    except ValueError as e:
        assert "weight" in str(e)
    else:
        assert out.shape == (2, 5, 4, 4)
        np.testing.assert_array_equal(out, np.broadcast_to(b[None, :, None, None], out.shape))


@pytest.mark.parametrize("layout", ["strided", "fortran", "negative", "readonly"])
def test_layouts_and_inputs_unchanged(layout):
    rng = np.random.default_rng(6)
    x = rand(rng, (2, 4, 5, 6), np.float32)
    w = rand(rng, (4, 3, 3, 3), np.float32)
    b = rand(rng, (6,), np.float32)

    def variant(a):
        if layout == "strided":
            big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
            big[..., ::2] = a
            return big[..., ::2]
        if layout == "fortran":
            return np.asfortranarray(a)
        if layout == "negative":
            return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
        r = a.copy()
        r.setflags(write=False)
        return r

    xv, wv, bv = variant(x), variant(w), variant(b)
    copies = [a.copy() for a in (xv, wv, bv)]
    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    out = nn.conv_transpose2d(xv, wv, bv, **kw)
    check(out, x, w, b, np.float32, **kw)
    for a, c in zip((xv, wv, bv), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("case", [
    dict(x=(1, 2, 5, 6), w=(2, 3, 3, 3), kw=dict(stride=2, padding=1, output_padding=1)),
    dict(x=(2, 4, 6, 5), w=(4, 2, 2, 3), kw=dict(stride=(1, 2), dilation=(2, 1), groups=2)),
    dict(x=(2, 32, 12, 12), w=(32, 32, 4, 4), kw=dict(stride=2, padding=1)),
    dict(x=(1, 3, 20), w=(3, 2, 5), kw=dict(stride=3, padding=2)),
    # stride 1 in every dim (may run as a direct convolution with the flipped kernel)
    dict(x=(2, 3, 7, 6), w=(3, 4, 3, 2), kw=dict(padding=1)),
    dict(x=(1, 16, 9, 8), w=(16, 16, 3, 3), kw=dict(dilation=2, output_padding=1)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_reaches_exactly_its_windows(case, dtype):
    rng = np.random.default_rng(12)
    x = rand(rng, case["x"], dtype)
    w = (rng.uniform(0.5, 1.0, case["w"]) * rng.choice([-1, 1], case["w"])).astype(dtype)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, 2, replace=False)
    flat[idx[0]] = np.nan
    flat[idx[1]] = -np.inf
    out = nn.conv_transpose2d(x, w, **case["kw"]) if w.ndim == 4 else nn.conv_transpose1d(x, w, **case["kw"])
    hits = conv_transpose_nd((~np.isfinite(x)).astype(float), np.abs(w.astype(float)), **case["kw"]) > 0
    np.testing.assert_array_equal(~np.isfinite(out), hits)
    ref = conv_transpose_nd(np.where(np.isfinite(x), x, 0), w, **case["kw"])
    assert_close(np.where(hits, 0, out), np.where(hits, 0, ref), dtype, n_reduce=n_reduce(x, w, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_vs_two_threads(dtype):
    rng = np.random.default_rng(14)
    for xs, ws, kw in [((4, 32, 16, 16), (32, 16, 4, 4), dict(stride=2, padding=1)),
                       ((2, 16, 10, 10, 10), (16, 8, 3, 3, 3), dict(stride=2, output_padding=1))]:
        x = rand(rng, xs, dtype)
        w = rand(rng, ws, dtype)
        f = FUNCS[w.ndim - 2]
        with pyconv.threads(1):
            one = f(x, w, **kw)
        with pyconv.threads(2):
            two = f(x, w, **kw)
        assert_close(two, one, dtype, n_reduce=n_reduce(x, w, 1))
        check(two, x, w, dtype=dtype, **kw)


def test_small_workspace_tiles():
    """GEMM + col2im (forced for the dense layer) with a small tile budget runs channel
    blocks (with remainders)."""
    with tuning.override(workspace_bytes=1, tile_bytes=1 << 12), force("gemm"):
        _small_workspace_tiles()


def _small_workspace_tiles():
    rng = np.random.default_rng(29)
    for xs, ws, kw in [((2, 16, 13, 11), (16, 12, 4, 4), dict(stride=2, padding=1)),
                       ((1, 12, 17, 19), (12, 5, 3, 3), dict(stride=(1, 2), groups=3, output_padding=(0, 1)))]:
        for dtype in (np.float32, np.float64):
            x = rand(rng, xs, dtype)
            w = rand(rng, ws, dtype)
            b = rand(rng, (ws[1] * kw.get("groups", 1),), dtype)
            p = pyconv.explain(nn.conv_transpose2d, x, w, b, **kw)
            assert p.algorithm == "gemm" and p.tile("channels") < ws[1]
            check(nn.conv_transpose2d(x, w, b, **kw), x, w, b, dtype, **kw)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("channels,groups", [((2, 3), 1), ((16, 16), 1), ((4, 4), 2)], ids=["thin", "wide", "grouped"])
def test_nonfinite_weight_vs_torch(nd, stride, padding, channels, groups):
    """A NaN/Inf weight tap reaches exactly the outputs it is scattered to from real
    input elements (never padding), as in PyTorch's transposed convolution."""
    torch = pytest.importorskip("torch")
    cin, cout = channels
    rng = np.random.default_rng(nd * 10 + stride)
    x = rand(rng, (2, cin) + (5,) * nd)
    w = rand(rng, (cin, cout // groups) + (3,) * nd)
    w.reshape(-1)[0] = np.nan
    w.reshape(-1)[-1] = np.inf
    kw = dict(stride=stride, padding=padding, groups=groups)
    out = FUNCS[nd](x, w, **kw)
    expected = torch_tconv(x, w, **kw)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    fin = np.isfinite(expected)
    assert_close(np.where(fin, out, 0), np.where(fin, expected, 0), F64, n_reduce=n_reduce(x, w, 1))


@pytest.mark.parametrize("channels", [(1, 1), (2, 3), (16, 16)], ids=["single", "thin", "dense"])
@pytest.mark.parametrize("d", [2**20, 2**40])
def test_huge_dilation_and_padding(channels, d):
    """dilation = padding = d with a 3x3 kernel: only the centre tap lands inside the
    (cropped) output, so the result is the 1x1 transposed convolution with that tap.
    No frame of size ~d^2 may be materialised and no index may overflow."""
    cin, cout = channels
    rng = np.random.default_rng(43)
    x = rand(rng, (2, cin, 4, 5))
    w = rand(rng, (cin, cout, 3, 3))
    out = nn.conv_transpose2d(x, w, dilation=d, padding=d)
    expected = np.einsum("nchw,co->nohw", x, w[:, :, 1, 1])
    assert_close(out, expected, F64, n_reduce=cin)
