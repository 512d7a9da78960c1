"""pyconv.nn.conv1d/conv2d/conv3d/conv against the NumPy definition and PyTorch.

The NumPy definition (tests/reference.py) always runs; the PyTorch comparisons skip
when torch is missing.  Every comparison asserts the output dtype.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pyconv
from pyconv import nn
from pyconv._engine import tuning
from reference import assert_close, conv_nd, conv_nd_mode, pad_nd, pad_pairs, same_pads

FUNCS = {1: nn.conv1d, 2: nn.conv2d, 3: nn.conv3d}
MODES = ["zeros", "reflect", "replicate", "circular"]
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


def rand(rng, shape, dtype=np.float64):
    return rng.uniform(-1.0, 1.0, shape).astype(dtype)


def n_reduce(w, groups=1):
    # weight is (C_out, C_in/groups, *kernel): each output sums C_in/groups * prod(kernel) products
    return int(np.prod(w.shape[1:]))


def check(out, x, w, b=None, dtype=None, **kw):
    """Compare ``out`` with the NumPy definition (batched or unbatched ``x``)."""
    x = np.asarray(x)
    w = np.asarray(w)
    dtype = np.dtype(dtype or x.dtype)
    unbatched = x.ndim == w.ndim - 1
    ref = conv_nd_mode(x[None] if unbatched else x, w, b, **kw)
    if unbatched:
        ref = ref[0]
    assert_close(out, ref, dtype, n_reduce=n_reduce(w))
    assert out.flags.c_contiguous


def torch_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """PyTorch in float64, every padding made explicit with F.pad (covers pyconv's
    extensions: 'same' with stride > 1 and (before, after) pairs)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    w = np.asarray(w, dtype=np.float64)
    nd = w.ndim - 2
    xt = torch.from_numpy(np.array(x, dtype=np.float64))
    unbatched = xt.ndim == nd + 1
    if unbatched:
        xt = xt[None]
    if isinstance(padding, str):
        pairs = [(0, 0)] * nd if padding == "valid" else list(same_pads(xt.shape[2:], w.shape[2:], stride, dilation))
    else:
        pairs = pad_pairs(padding, nd)
    flat = [p for pair in reversed(pairs) for p in pair]
    xt = F.pad(xt, flat, mode="constant" if padding_mode == "zeros" else padding_mode)
    bt = None if b is None else torch.from_numpy(np.array(b, dtype=np.float64))
    out = getattr(F, f"conv{nd}d")(xt, torch.from_numpy(w.copy()), bt, stride, 0, dilation, groups).numpy()
    return out[0] if unbatched else out


# ----------------------------------------------------------------- NumPy definition

CASES = [
    # (stride, padding, dilation, groups, bias)
    (1, 0, 1, 1, True),
    (2, 1, 1, 2, False),
    (1, 2, 2, 1, True),
    (3, 1, 1, 4, True),          # depthwise: groups == C_in
    (1, "valid", 1, 1, False),
    (1, "same", 1, 2, True),
    (1, "same", 2, 1, False),
    (2, "same", 1, 1, True),     # beyond torch: TensorFlow's rule
    (3, "same", 2, 4, False),
]


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_vs_definition(nd, dtype, case):
    stride, padding, dilation, groups, bias = case
    rng = np.random.default_rng(hash((nd, str(case))) % 2**32)
    cin, cout = 4, 8
    sp = {1: (11,), 2: (9, 8), 3: (7, 6, 5)}[nd]
    ks = {1: (3,), 2: (3, 2), 3: (3, 2, 3)}[nd]
    x = rand(rng, (2, cin) + sp, dtype)
    w = rand(rng, (cout, cin // groups) + ks, dtype)
    b = rand(rng, (cout,), dtype) if bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    out = FUNCS[nd](x, w, b, **kw)
    check(out, x, w, b, dtype, **kw)
    # unbatched input gives the batched result without the batch axis
    out1 = FUNCS[nd](x[1], w, b, **kw)
    assert out1.shape == out.shape[1:]
    check(out1, x[1], w, b, dtype, **kw)
    # the generic entry point takes the dims from weight.ndim - 2
    assert_close(nn.conv(x, w, b, **kw), out, dtype, n_reduce=n_reduce(w))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_per_dim_tuples(nd):
    rng = np.random.default_rng(nd)
    sp = {1: (13,), 2: (10, 9), 3: (8, 7, 6)}[nd]
    ks = {1: (2,), 2: (3, 2), 3: (2, 3, 1)}[nd]
    stride = (2, 1, 3)[:nd]
    dilation = (1, 2, 1)[:nd]
    padding = (1, 0, 2)[:nd]
    x = rand(rng, (2, 3) + sp)
    w = rand(rng, (5, 3) + ks)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    check(FUNCS[nd](x, w, **kw), x, w, **kw)
    # lists are accepted like tuples
    kwl = {k: list(v) for k, v in kw.items()}
    check(FUNCS[nd](x, w, **kwl), x, w, **kw)


@pytest.mark.parametrize("channels", [(3, 4), (5, 7)], ids=["thin", "wide"])
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding,stride", [
    (1, 1), (2, 2), ("same", 1), ("same", 2), ("valid", 1), ("pairs", 1), ("pairs", 2), ("tuple", 1)])
def test_padding_modes_vs_definition(nd, mode, padding, stride, channels):
    rng = np.random.default_rng(7 + nd)
    sp = {1: (9,), 2: (7, 6), 3: (5, 6, 4)}[nd]
    ks = {1: (4,), 2: (3, 2), 3: (3, 2, 3)}[nd]
    if padding == "pairs":
        padding = ((2, 1), (0, 1), (1, 3))[:nd]
    elif padding == "tuple":
        padding = (1, 2, 0)[:nd]
    cin, cout = channels
    x = rand(rng, (2, cin) + sp, np.float32)
    w = rand(rng, (cout, cin) + ks, np.float32)
    b = rand(rng, (cout,), np.float32)
    kw = dict(stride=stride, padding=padding, padding_mode=mode)
    out = FUNCS[nd](x, w, b, **kw)
    check(out, x, w, b, np.float32, **kw)
    check(FUNCS[nd](x[0], w, b, **kw), x[0], w, b, np.float32, **kw)


def test_same_padding_shape_rule():
    # 'same' with stride s gives ceil(i/s) outputs per dim, for odd and even kernels
    rng = np.random.default_rng(3)
    for i, k, s, d in itertools.product([5, 6, 7], [1, 2, 3, 4], [1, 2, 3], [1, 2]):
        x = rand(rng, (1, 1, i))
        w = rand(rng, (1, 1, k))
        out = nn.conv1d(x, w, stride=s, padding="same", dilation=d)
        assert out.shape == (1, 1, -(-i // s)), (i, k, s, d)
        check(out, x, w, stride=s, padding="same", dilation=d)


# ----------------------------------------------------------------- PyTorch

def _grid(nd, n_cases, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        groups = int(rng.choice([1, 2, 3]))
        # up to 6 channels per group: thin groups take the direct kernel, wider ones im2col + GEMM
        cin = groups * int(rng.integers(1, 7))
        cout = groups * int(rng.integers(1, 7))
        ks = tuple(int(k) for k in rng.integers(1, 5, nd))
        stride = tuple(int(s) for s in rng.integers(1, 4, nd))
        dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
        mode = str(rng.choice(MODES))
        form = rng.integers(0, 5)
        if form == 0:
            padding = int(rng.integers(0, 3))
        elif form == 1:
            padding = tuple(int(p) for p in rng.integers(0, 3, nd))
        elif form == 2:
            padding = tuple((int(a), int(b)) for a, b in rng.integers(0, 3, (nd, 2)))
        else:
            padding = str(rng.choice(["same", "valid"]))
        # spatial sizes: the dilated kernel must fit the padded input, and reflect needs pad < size
        sp = tuple(int(d * (k - 1) + 1 + rng.integers(0, 4)) for k, d in zip(ks, dilation))
        sp = tuple(max(s, 4) for s in sp)
        batch = int(rng.integers(1, 3))
        yield dict(x=(batch, cin) + sp, w=(cout, cin // groups) + ks, bias=bool(rng.integers(0, 2)),
                   unbatched=bool(rng.integers(0, 4) == 0),
                   kw=dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode))


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vs_torch_grid(nd, dtype):
    pytest.importorskip("torch")
    rng = np.random.default_rng(100 + nd)
    for case in _grid(nd, 40 if nd < 3 else 20, seed=nd * 10 + (dtype == np.float32)):
        x = rand(rng, case["x"], dtype)
        if case["unbatched"]:
            x = x[0]
        w = rand(rng, case["w"], dtype)
        b = rand(rng, case["w"][:1], dtype) if case["bias"] else None
        out = FUNCS[nd](x, w, b, **case["kw"])
        expected = torch_conv(x, w, b, **case["kw"])
        assert_close(out, expected, dtype, n_reduce=n_reduce(w))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", [1, "same", (2, 1, 1)])
def test_vs_torch_module(nd, mode, padding):
    """torch.nn.ConvNd's own padding_mode handling (no explicit F.pad)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(nd)
    if isinstance(padding, tuple):
        padding = padding[:nd]
    sp = {1: (10,), 2: (8, 7), 3: (6, 5, 4)}[nd]
    ks = {1: (4,), 2: (3, 4), 3: (3, 2, 3)}[nd]
    x = rand(rng, (2, 4) + sp)
    w = rand(rng, (6, 2) + ks)
    b = rand(rng, (6,))
    mod = getattr(torch.nn, f"Conv{nd}d")(4, 6, ks, padding=padding, groups=2, padding_mode=mode,
                                          dtype=torch.float64)
    with torch.no_grad():
        mod.weight.copy_(torch.from_numpy(w))
        mod.bias.copy_(torch.from_numpy(b))
        expected = mod(torch.from_numpy(x)).numpy()
    out = FUNCS[nd](x, w, b, padding=padding, groups=2, padding_mode=mode)
    assert_close(out, expected, F64, n_reduce=n_reduce(w))


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding,stride", [("same", 2), ("same", 3), ("pairs", 1), ("pairs", 2)])
@pytest.mark.parametrize("channels", [(2, 3), (6, 8)], ids=["thin", "wide"])
def test_extensions_vs_torch_padded(nd, mode, padding, stride, channels):
    """Beyond torch: 'same' with stride > 1 (TensorFlow's rule) and (before, after) pairs,
    with every padding_mode, against torch on the explicitly padded input."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(nd * 100 + stride)
    sp = {1: (10,), 2: (9, 8), 3: (7, 6, 5)}[nd]
    ks = {1: (4,), 2: (3, 2), 3: (2, 3, 3)}[nd]
    if padding == "pairs":
        padding = ((2, 0), (1, 2), (0, 1))[:nd]
    cin, cout = channels
    x = rand(rng, (2, cin) + sp)
    w = rand(rng, (cout, cin) + ks)
    b = rand(rng, (cout,))
    kw = dict(stride=stride, padding=padding, dilation=1 if nd == 3 else 2, padding_mode=mode)
    if padding == "same":
        expected_sp = tuple(-(-i // stride) for i in sp)
    else:
        expected_sp = None
    out = FUNCS[nd](x, w, b, **kw)
    if expected_sp is not None:
        assert out.shape[2:] == expected_sp
    assert_close(out, torch_conv(x, w, b, **kw), F64, n_reduce=n_reduce(w))
    assert_close(FUNCS[nd](x[1], w, b, **kw), torch_conv(x[1], w, b, **kw), F64, n_reduce=n_reduce(w))


@pytest.mark.parametrize("case", [
    # bigger than one block of any tiling, to exercise the blocked / GEMM paths
    dict(x=(2, 32, 30, 29), w=(48, 32, 3, 3), kw=dict(padding=1)),
    dict(x=(3, 24, 33, 31), w=(40, 24, 3, 3), kw=dict(stride=2, padding=1)),
    dict(x=(2, 32, 28, 28), w=(32, 1, 3, 3), kw=dict(padding=1, groups=32)),
    dict(x=(2, 32, 26, 27), w=(32, 4, 3, 3), kw=dict(padding=1, groups=8)),
    dict(x=(2, 64, 20, 21), w=(40, 64, 1, 1), kw=dict()),
    dict(x=(2, 16, 30, 30), w=(24, 16, 3, 3), kw=dict(padding=2, dilation=2)),
    dict(x=(2, 3, 64, 63), w=(16, 3, 7, 7), kw=dict(stride=2, padding=3)),
    dict(x=(2, 16, 600), w=(24, 16, 9), kw=dict(padding=4)),
    dict(x=(1, 8, 14, 13, 12), w=(8, 8, 3, 3, 3), kw=dict(padding=1)),
    # one sample, odd position count: tiles with a remainder
    dict(x=(1, 32, 61, 59), w=(40, 32, 3, 3), kw=dict(padding=1)),
    dict(x=(1, 48, 37, 41), w=(24, 48, 1, 1), kw=dict()),
    dict(x=(3, 20, 25, 23), w=(36, 10, 2, 3), kw=dict(stride=(2, 1), padding=((1, 0), (2, 1)), groups=2,
                                                  padding_mode="reflect")),
], ids=["dense3x3", "stride2", "depthwise", "grouped", "pointwise", "dilated", "7x7s2", "conv1d", "conv3d",
        "tile_rest", "pointwise_rest", "pairs_reflect"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vs_torch_larger(case, dtype):
    pytest.importorskip("torch")
    rng = np.random.default_rng(len(case["x"]) + case["w"][0])
    x = rand(rng, case["x"], dtype)
    w = rand(rng, case["w"], dtype)
    b = rand(rng, case["w"][:1], dtype)
    out = nn.conv(x, w, b, **case["kw"])
    assert_close(out, torch_conv(x, w, b, **case["kw"]), dtype, n_reduce=n_reduce(w))


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_conv2d_hypothesis(data):
    groups = data.draw(st.sampled_from([1, 2]))
    cin = groups * data.draw(st.integers(1, 6))
    cout = groups * data.draw(st.integers(1, 6))
    kh, kw_ = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    dh, dw = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    mode = data.draw(st.sampled_from(MODES))
    padding = data.draw(st.one_of(
        st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)), st.tuples(st.integers(0, 2), st.integers(0, 2))),
        st.sampled_from(["same", "valid"])))
    h = data.draw(st.integers(max(3, dh * (kh - 1) + 1), 9))
    w_ = data.draw(st.integers(max(3, dw * (kw_ - 1) + 1), 9))
    n = data.draw(st.integers(1, 2))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rand(rng, (n, cin, h, w_), dtype)
    w = rand(rng, (cout, cin // groups, kh, kw_), dtype)
    b = rand(rng, (cout,), dtype) if data.draw(st.booleans()) else None
    kw = dict(stride=(sh, sw), padding=padding, dilation=(dh, dw), groups=groups, padding_mode=mode)
    check(nn.conv2d(x, w, b, **kw), x, w, b, dtype, **kw)


# ----------------------------------------------------------------- dtype policy

@pytest.mark.parametrize("xdt,wdt,bdt,expected", [
    (np.float32, np.float32, None, F32),
    (np.float32, np.float32, np.float32, F32),
    (np.float64, np.float64, np.float64, F64),
    (np.float32, np.float64, None, F64),
    (np.float64, np.float32, None, F64),
    (np.float32, np.float32, np.float64, F64),
    (np.float16, np.float16, None, F32),
    (np.float16, np.float32, np.float16, F32),
    (np.int32, np.int64, None, F64),
    (np.int64, np.float32, None, F64),
    (np.bool_, np.float64, None, F64),
    (np.uint8, np.int16, np.int8, F64),
])
def test_dtype_policy(xdt, wdt, bdt, expected):
    rng = np.random.default_rng(0)
    x = (rng.uniform(0, 3, (2, 2, 6, 5))).astype(xdt)
    w = (rng.uniform(-2, 3, (3, 2, 3, 2))).astype(wdt)
    b = None if bdt is None else np.array([1, 0, 1]).astype(bdt)
    out = nn.conv2d(x, w, b, padding=1)
    assert out.dtype == expected
    check(out, x, w, b, expected, padding=1)
    out1 = nn.conv1d(x[:, :, 0], w[:, :, 0], b)
    assert out1.dtype == expected


def test_lists_accepted():
    x = [[[1, 2, 3, 4]]]
    w = [[[1, -1]]]
    out = nn.conv1d(x, w)
    assert out.dtype == F64
    np.testing.assert_array_equal(out, [[[-1, -1, -1]]])


@pytest.mark.parametrize("which", ["input", "weight", "bias"])
def test_complex_raises(which):
    x = np.ones((1, 2, 5, 5))
    w = np.ones((3, 2, 3, 3))
    b = np.ones(3)
    args = {"input": x, "weight": w, "bias": b}
    args[which] = args[which].astype(np.complex128)
    with pytest.raises(TypeError, match="complex"):
        nn.conv2d(args["input"], args["weight"], args["bias"])


# ----------------------------------------------------------------- edge cases

def test_size_one_spatial_dims():
    rng = np.random.default_rng(1)
    x = rand(rng, (2, 3, 1, 1))
    w = rand(rng, (4, 3, 1, 1))
    check(nn.conv2d(x, w), x, w)
    x = rand(rng, (2, 3, 1, 9))
    w = rand(rng, (4, 3, 1, 3))
    check(nn.conv2d(x, w, padding=(0, 1)), x, w, padding=(0, 1))
    check(nn.conv2d(x, w, padding="same"), x, w, padding="same")
    x = rand(rng, (1, 1, 1))
    w1 = rand(rng, (2, 1, 1))
    check(nn.conv1d(x, w1), x, w1)
    x3 = rand(rng, (1, 2, 1, 1, 1))
    w3 = rand(rng, (2, 2, 1, 1, 1))
    check(nn.conv3d(x3, w3, padding=1, padding_mode="replicate"), x3, w3, padding=1, padding_mode="replicate")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_equal_to_input(dtype):
    rng = np.random.default_rng(2)
    x = rand(rng, (3, 4, 5, 6), dtype)
    w = rand(rng, (7, 4, 5, 6), dtype)
    out = nn.conv2d(x, w)
    assert out.shape == (3, 7, 1, 1)
    check(out, x, w, dtype=dtype)
    # kernel larger than the input, but not than the padded input
    w = rand(rng, (2, 4, 7, 8), dtype)
    check(nn.conv2d(x, w, padding=1), x, w, dtype=dtype, padding=1)
    check(nn.conv2d(x, w, padding="same"), x, w, dtype=dtype, padding="same")


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_zero_batch(nd):
    torch = pytest.importorskip("torch")
    sp = (5,) * nd
    x = np.zeros((0, 4) + sp, np.float32)
    w = np.ones((6, 2) + (3,) * nd, np.float32)
    out = FUNCS[nd](x, w, np.ones(6, np.float32), padding=1, groups=2)
    expected = getattr(torch.nn.functional, f"conv{nd}d")(
        torch.from_numpy(x), torch.from_numpy(w), None, 1, 1, 1, 2)
    assert out.shape == tuple(expected.shape) == (0, 6) + sp
    assert out.dtype == F32


def test_zero_channels():
    # A sum over zero input channels is empty: the output has the documented shape
    # (N, C_out, *out) and holds the bias.  (torch's empty-tensor shortcut returns
    # C_out = 0 here, contradicting its own documented output shape.)
    x = np.zeros((2, 0, 5, 5))
    w = np.zeros((6, 0, 3, 3))
    b = np.arange(6.0)
    out = nn.conv2d(x, w, b)
    assert out.shape == (2, 6, 3, 3)
    assert out.dtype == F64
    np.testing.assert_array_equal(out, np.broadcast_to(b[None, :, None, None], out.shape))
    np.testing.assert_array_equal(nn.conv2d(x, w), np.zeros((2, 6, 3, 3)))


def test_zero_out_channels():
    # torch rejects out_channels == 0; an empty (N, 0, *out) result is equally sound.
    x = np.ones((2, 4, 5, 5))
    w = np.zeros((0, 4, 3, 3))
    try:
        out = nn.conv2d(x, w)
    except ValueError as e:
        assert "weight" in str(e) or "channels" in str(e)
    else:
        assert out.shape == (2, 0, 3, 3)


def test_zero_spatial_with_padding():
    # a zero-length spatial dim padded enough for the kernel: the window sees only zeros
    x = np.zeros((1, 2, 0, 4))
    w = np.ones((3, 2, 1, 1))
    out = nn.conv2d(x, w, padding=(1, 0))
    check(out, x, w, padding=(1, 0))
    assert out.shape == (1, 3, 2, 4)


def _variants(a):
    """Non-contiguous, Fortran, negative-stride and read-only versions of ``a``."""
    big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    strided = big[..., ::2]
    neg = np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    ro = a.copy()
    ro.setflags(write=False)
    return {"strided": strided, "fortran": np.asfortranarray(a), "negative": neg, "readonly": ro}


@pytest.mark.parametrize("layout", ["strided", "fortran", "negative", "readonly"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layouts_and_inputs_unchanged(layout, dtype):
    rng = np.random.default_rng(5)
    x = rand(rng, (2, 4, 9, 8), dtype)
    w = rand(rng, (6, 2, 3, 3), dtype)
    b = rand(rng, (6,), dtype)
    xv, wv, bv = (_variants(a)[layout] for a in (x, w, b))
    copies = [a.copy() for a in (xv, wv, bv)]
    for kw in (dict(padding=1, groups=2), dict(stride=2, padding="same", groups=2, padding_mode="reflect")):
        out = nn.conv2d(xv, wv, bv, **kw)
        check(out, x, w, b, dtype, **kw)
        assert not np.shares_memory(out, xv)
    for a, c in zip((xv, wv, bv), copies):
        np.testing.assert_array_equal(a, c)
    # the negative-stride view is the reversed array: result equals the contiguous copy's
    xr = x[..., ::-1]
    check(nn.conv2d(xr, w, padding=1, groups=2), np.ascontiguousarray(xr), w, dtype=dtype, padding=1, groups=2)


def test_stride_larger_than_input_and_broadcast_inputs():
    rng = np.random.default_rng(8)
    x = rand(rng, (2, 3, 7, 5))
    w = rand(rng, (4, 3, 2, 2))
    out = nn.conv2d(x, w, stride=(100, 9), padding=1)
    assert out.shape == (2, 4, 1, 1)
    check(out, x, w, stride=(100, 9), padding=1)
    # zero-stride (broadcast, read-only) operands
    xb = np.broadcast_to(rand(rng, (1, 3, 1, 5)), (2, 3, 7, 5))
    wb = np.broadcast_to(rand(rng, (1, 3, 2, 1)), (4, 3, 2, 2))
    bb = np.broadcast_to(np.float64(0.5), (4,))
    check(nn.conv2d(xb, wb, bb, padding="same", padding_mode="circular"), np.array(xb), np.array(wb),
          np.array(bb), padding="same", padding_mode="circular")


def test_identity_kernel_returns_new_array():
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    w = np.ones((1, 1, 1, 1))
    out = nn.conv2d(x, w)
    np.testing.assert_array_equal(out, x)
    assert not np.shares_memory(out, x)
    out[...] = -1
    assert x[0, 0, 0, 1] == 1.0


# ----------------------------------------------------------------- NaN placement

@pytest.mark.parametrize("case", [
    dict(x=(1, 2, 9, 10), w=(3, 2, 3, 3), kw=dict(padding=1)),
    dict(x=(2, 4, 11, 9), w=(4, 2, 3, 2), kw=dict(stride=2, padding=(1, 0), dilation=(1, 2), groups=2)),
    dict(x=(1, 4, 8, 8), w=(4, 1, 3, 3), kw=dict(padding=1, groups=4, padding_mode="reflect")),
    dict(x=(1, 2, 8, 8), w=(3, 2, 3, 3), kw=dict(padding="same", stride=2, padding_mode="circular")),
    dict(x=(2, 32, 24, 24), w=(32, 32, 3, 3), kw=dict(padding=1)),        # GEMM-sized
    dict(x=(2, 64, 12, 12), w=(32, 64, 1, 1), kw=dict()),                 # pointwise
    dict(x=(1, 3, 40), w=(5, 3, 5), kw=dict(padding=2, padding_mode="replicate")),
    dict(x=(1, 2, 6, 7, 5), w=(3, 2, 3, 3, 2), kw=dict(padding=1)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_reaches_exactly_its_windows(case, dtype):
    rng = np.random.default_rng(11)
    x = rand(rng, case["x"], dtype)
    # weights bounded away from zero, so only window membership decides
    w = (rng.uniform(0.5, 1.0, case["w"]) * rng.choice([-1, 1], case["w"])).astype(dtype)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, 2, replace=False)
    flat[idx[0]] = np.nan
    flat[idx[1]] = np.inf
    out = nn.conv(x, w, **case["kw"])
    # windows that contain a non-finite input: conv of the indicator with |w|
    bad = (~np.isfinite(x)).astype(np.float64)
    hits = conv_nd_mode(bad, np.abs(w.astype(np.float64)), **case["kw"]) > 0
    np.testing.assert_array_equal(~np.isfinite(out), hits)
    clean = np.where(np.isfinite(x), x, 0)
    ref = conv_nd_mode(clean, w, **case["kw"])
    assert_close(np.where(hits, 0, out), np.where(hits, 0, ref), dtype, n_reduce=n_reduce(w))


# ----------------------------------------------------------------- threads

@pytest.mark.parametrize("case", [
    dict(x=(4, 16, 32, 32), w=(32, 16, 3, 3), kw=dict(padding=1)),
    dict(x=(4, 32, 32, 32), w=(32, 1, 3, 3), kw=dict(padding=1, groups=32)),
    dict(x=(2, 32, 30, 30), w=(32, 4, 3, 3), kw=dict(stride=2, padding="same", groups=8,
                                                     padding_mode="reflect")),
    dict(x=(2, 8, 16, 16, 16), w=(8, 8, 3, 3, 3), kw=dict(padding=1)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_vs_two_threads(case, dtype):
    rng = np.random.default_rng(13)
    x = rand(rng, case["x"], dtype)
    w = rand(rng, case["w"], dtype)
    b = rand(rng, case["w"][:1], dtype)
    with pyconv.threads(1):
        one = nn.conv(x, w, b, **case["kw"])
    with pyconv.threads(2):
        two = nn.conv(x, w, b, **case["kw"])
    assert_close(two, one, dtype, n_reduce=n_reduce(w))
    check(two, x, w, b, dtype, **case["kw"])


def test_concurrent_calls_from_python_threads():
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(17)
    xs = [rand(rng, (2, 8, 20, 20), np.float32) for _ in range(4)]
    w = rand(rng, (16, 8, 3, 3), np.float32)
    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda x: nn.conv2d(x, w, padding=1), xs))
    for x, out in zip(xs, outs):
        check(out, x, w, dtype=np.float32, padding=1)


def test_padded_input_reference_helper():
    # guards the reference itself: np.pad modes match torch's definitions on a tiny case
    x = np.arange(4.0).reshape(1, 1, 4)
    np.testing.assert_array_equal(pad_nd(x, [(2, 1)], "reflect")[0, 0], [2, 1, 0, 1, 2, 3, 2])
    np.testing.assert_array_equal(pad_nd(x, [(2, 1)], "replicate")[0, 0], [0, 0, 0, 1, 2, 3, 3])
    np.testing.assert_array_equal(pad_nd(x, [(2, 1)], "circular")[0, 0], [2, 3, 0, 1, 2, 3, 0])
    np.testing.assert_array_equal(conv_nd(x, np.ones((1, 1, 2)))[0, 0], [1, 3, 5])


@pytest.mark.parametrize("case", [
    dict(x=(1, 32, 45, 43), w=(40, 32, 3, 3), kw=dict(padding=1)),
    dict(x=(2, 24, 30, 31), w=(30, 24, 3, 2), kw=dict(stride=(1, 2), dilation=(2, 1), padding=2)),
    dict(x=(1, 64, 33, 35), w=(20, 64, 1, 1), kw=dict()),
], ids=["dense", "strided_dilated", "pointwise"])
def test_small_workspace_tiles(case):
    """With a tiny workspace budget the im2col path must run many tiles (with a
    remainder) and still give the exact result.  At 2 threads whatever the machine allows
    (at one, the direct kernel's planes fit the output-sized floor of the budget)."""
    rng = np.random.default_rng(19)
    with pyconv.threads(2), tuning.override(tile_bytes=1, workspace_bytes=1, pointwise_direct=False, pointwise_direct_expand=False,
                         pointwise_direct_f8=False, pointwise_direct_expand_f8=False, pointwise_matmul=False,
                         pointwise_panel=False, pointwise_panel_expand=False, pointwise_panel_f8=False,
                         pointwise_panel_expand_f8=False, dense_oc=False, dense_oc_f8=False):
        for dtype in (np.float32, np.float64):
            x = rand(rng, case["x"], dtype)
            w = rand(rng, case["w"], dtype)
            b = rand(rng, case["w"][:1], dtype)
            p = pyconv.explain(nn.conv2d, x, w, b, **case["kw"])
            assert p.algorithm == "gemm" and p.tile("tile") < np.prod(p.geometry.out)
            check(nn.conv2d(x, w, b, **case["kw"]), x, w, b, dtype, **case["kw"])


@pytest.mark.parametrize("kw", [dict(padding=1), dict(), dict(padding=1, groups=4), dict(padding=2, dilation=2)],
                         ids=["pad", "nopad", "depthwise", "dilated"])
@pytest.mark.parametrize("channels", [(4, 4), (4, 16)], ids=["thin", "wide"])
def test_nonfinite_weight_vs_torch(kw, channels):
    """A NaN/Inf weight tap multiplies every window of its output channel, padded zeros
    included (0 * inf = nan), exactly as PyTorch's convolution does."""
    torch = pytest.importorskip("torch")
    cin, cout = channels
    groups = kw.get("groups", 1)
    if cout % groups:
        pytest.skip("groups must divide out_channels")
    rng = np.random.default_rng(23)
    x = rand(rng, (2, cin, 9, 8))
    w = rand(rng, (cout, cin // groups, 3, 3))
    w[1, 0, 0, 0] = np.nan
    w[2, 0, 2, 1] = np.inf
    out = nn.conv2d(x, w, **kw)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    fin = np.isfinite(expected)
    assert_close(np.where(fin, out, 0), np.where(fin, expected, 0), F64, n_reduce=n_reduce(w))


# strided thin groups through 'thin_phase' (per-thread phase planes, taps summed over the
# output frame in registers): depthwise and a few channels per group, strides 2, 3 and per
# dim, dilation (one phase), asymmetric padding, 1-D and 3-D, frames shorter than a vector
# and longer than four (every path of the frame kernel), kernels larger than the stride
THIN_PHASE_GRID = [
    ((2, 6, 11, 13), (6, 1, 3, 3), dict(stride=2, padding=1, groups=6)),
    ((1, 4, 20, 9), (8, 2, 5, 3), dict(stride=(3, 2), padding=(2, 0), groups=2)),
    ((2, 8, 17, 40), (8, 1, 3, 3), dict(stride=(1, 2), padding=1, groups=8)),
    ((1, 3, 30, 30), (3, 1, 3, 3), dict(stride=(2, 1), padding=((1, 2), (0, 1)), groups=3)),
    ((2, 4, 23, 23), (4, 1, 3, 3), dict(stride=2, dilation=2, padding=2, groups=4)),
    ((1, 6, 7, 7), (12, 1, 4, 4), dict(stride=2, padding=1, groups=6)),
    ((3, 5, 101), (5, 1, 9), dict(stride=2, padding=4, groups=5)),
    ((1, 4, 9, 10, 11), (4, 1, 3, 3, 3), dict(stride=2, padding=1, groups=4)),
    ((2, 2, 5, 5), (2, 1, 7, 7), dict(stride=3, padding=3, groups=2)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(THIN_PHASE_GRID)))
def test_thin_phase_matches_definition(case, dtype):
    from pyconv._engine import plan as _plan
    rng = np.random.default_rng(60 + case)
    xs, ws, kw = THIN_PHASE_GRID[case]
    x, w, b = rand(rng, xs, dtype), rand(rng, ws, dtype), rand(rng, ws[:1], dtype)
    with _plan.force("thin_phase"):
        assert pyconv.explain(nn.conv, x, w, b, **kw).algorithm == "thin_phase"
        out = nn.conv(x, w, b, **kw)
        check(out, x, w, b, dtype, **kw)
        # the same bits whatever the team
        old = pyconv.get_num_threads()
        try:
            for nt in (1, 3):
                pyconv.set_num_threads(nt)
                assert np.array_equal(out, nn.conv(x, w, b, **kw))
        finally:
            pyconv.set_num_threads(old)


def _weight_grad_ref(x, ws, go, stride=1, padding=0, dilation=1, groups=1):
    """The weight gradient by its definition, float64: gw[o, c, tap] = sum over samples and
    output positions of go[n, o, pos] x_pad[n, group's c, pos * stride + tap * dilation]."""
    nd = x.ndim - 2
    tup = lambda v: (v,) * nd if np.isscalar(v) else tuple(v)  # noqa: E731
    s, d = tup(stride), tup(dilation)
    xp = pad_nd(x, pad_pairs(padding, nd))
    out, cg, og = go.shape[2:], ws[1], ws[0] // groups
    gw = np.zeros(ws)
    for tap in itertools.product(*(range(k) for k in ws[2:])):
        win = xp[(slice(None), slice(None)) + tuple(slice(t * dd, t * dd + (o - 1) * ss + 1, ss)
                                                    for t, dd, o, ss in zip(tap, d, out, s))]
        for gi in range(groups):
            gsel = go[:, gi * og:(gi + 1) * og].astype(np.float64).reshape(go.shape[0], og, -1)
            xsel = win[:, gi * cg:(gi + 1) * cg].reshape(go.shape[0], cg, -1)
            gw[(slice(gi * og, (gi + 1) * og), slice(None)) + tap] = np.einsum("nop,ncp->oc", gsel, xsel)
    return gw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(THIN_PHASE_GRID)))
def test_thin_phase_weight_gradient_matches_definition(case, dtype):
    # the weight gradient over the same per-thread phase planes: a group per unit, each
    # (output channel, input channel) pass eight taps at a time over the packed rows
    from pyconv import grad
    from pyconv._engine import plan as _plan
    rng = np.random.default_rng(80 + case)
    xs, ws, kw = THIN_PHASE_GRID[case]
    x = rand(rng, xs, dtype)
    go = rand(rng, nn.conv(x, np.zeros(ws, dtype), **kw).shape, dtype)
    fn = getattr(grad, f"conv{len(xs) - 2}d_weight")
    with _plan.force("thin_phase"):
        assert pyconv.explain(fn, x, ws, go, **kw).algorithm == "thin_phase"
        gw = fn(x, ws, go, **kw)
        n_red = go.size // ws[0]
        assert_close(gw, _weight_grad_ref(x, ws, go, **kw), dtype, n_reduce=n_red)
        old = pyconv.get_num_threads()
        try:
            for nt in (1, 3):
                pyconv.set_num_threads(nt)
                assert np.array_equal(gw, fn(x, ws, go, **kw))
        finally:
            pyconv.set_num_threads(old)


def test_thin_phase_weight_gradient_nonfinite_input():
    # an Inf input in a column no output reads at stride 2 (the last of an even row) lies in
    # the planes' columns past a row's outputs: masked, it leaves the gradient finite, as in
    # the definition; an Inf that some output reads makes its taps' terms Inf / NaN there
    from pyconv import grad
    from pyconv._engine import plan as _plan
    rng = np.random.default_rng(90)
    kw = dict(stride=2, padding=0, groups=4)
    x, ws = rand(rng, (2, 4, 9, 10)), (4, 1, 3, 3)
    go = rand(rng, nn.conv(x, np.zeros(ws), **kw).shape)
    for pos in ((0, 1, 2, 9), (1, 2, 4, 4)):
        x2 = x.copy()
        x2[pos] = np.inf
        with _plan.force("thin_phase"):
            gw = grad.conv2d_weight(x2, ws, go, **kw)
        ref = _weight_grad_ref(x2, ws, go, **kw)
        np.testing.assert_array_equal(np.isnan(gw), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(gw), np.isinf(ref))
        fin = np.isfinite(ref)
        assert_close(np.where(fin, gw, 0), np.where(fin, ref, 0), np.float64, n_reduce=go.size // 4)


def test_thin_phase_nonfinite_and_workspace():
    from pyconv._engine import plan as _plan
    rng = np.random.default_rng(70)
    x, w = rand(rng, (2, 4, 12, 12)), rand(rng, (4, 1, 3, 3))
    kw = dict(stride=2, padding=1, groups=4)
    # an Inf weight meets the padded zeros (nan there, as in the definition); an Inf input
    # reaches only the outputs whose taps read it
    w2, x2 = w.copy(), x.copy()
    w2[1, 0, 0, 0] = np.inf
    x2[0, 2, 5, 6] = np.inf
    with _plan.force("thin_phase"):
        for xi, wi in ((x, w2), (x2, w)):
            out, ref = nn.conv(xi, wi, **kw), conv_nd(xi, wi, **kw)
            np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
            np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))
            fin = np.isfinite(ref)
            assert_close(np.where(fin, out, 0), np.where(fin, ref, 0), np.float64, n_reduce=9)
    # the default for a strided depthwise layer keeps to its kernels; planes past the
    # workspace leave it to the row kernel, which reads the input in place
    assert pyconv.explain(nn.conv, x, w, **kw).algorithm in ("thin_phase", "thin_row", "dense", "dense_oc", "gemm")
    with tuning.override(workspace_bytes=1, thin_max_cg_og=64):
        assert pyconv.explain(nn.conv, np.zeros((1, 4, 600, 600)), w, **kw).algorithm == "thin_row"
    with tuning.override(thin_max_cg_og=64):
        assert pyconv.explain(nn.conv, x, w, **kw).algorithm == "thin_phase"


@pytest.mark.parametrize("case", [
    dict(x=(2, 4, 12, 11), w=(4, 1, 3, 3), kw=dict(padding=1, groups=4)),
    dict(x=(2, 4, 12, 11), w=(8, 2, 3, 2), kw=dict(padding=(2, 1), dilation=(2, 1), groups=2)),
    dict(x=(1, 3, 6, 7, 8), w=(3, 1, 3, 3, 3), kw=dict(padding=1, stride=(2, 1, 1), groups=3)),
    dict(x=(2, 2, 40), w=(4, 2, 5), kw=dict(padding=((3, 1),))),
], ids=["depthwise", "grouped_dilated", "3d_depthwise", "1d_pairs"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thin_direct_without_padded_copy(case, dtype):
    """Thin-channel convolutions also run when the padded copy of the stride-1 kernel is
    over budget (the phase-plane or in-place row kernels then run)."""
    with tuning.override(thin_pad_bytes=0):
        _thin_direct_without_padded_copy(case, dtype)


def _thin_direct_without_padded_copy(case, dtype):
    rng = np.random.default_rng(37)
    x = rand(rng, case["x"], dtype)
    w = rand(rng, case["w"], dtype)
    b = rand(rng, case["w"][:1], dtype)
    assert pyconv.explain(nn.conv, x, w, b, **case["kw"]).algorithm in ("thin_phase", "thin_row")
    check(nn.conv(x, w, b, **case["kw"]), x, w, b, dtype, **case["kw"])
    # a NaN in the input still reaches exactly its windows on this path
    xn = x.copy()
    xn.reshape(-1)[5] = np.nan
    out = nn.conv(xn, w, **case["kw"])
    hits = conv_nd_mode(np.isnan(xn).astype(float), np.abs(w.astype(float)) + 1, **case["kw"]) > 0
    np.testing.assert_array_equal(np.isnan(out), hits)


@pytest.mark.parametrize("channels", [(1, 1), (2, 3), (16, 16)], ids=["single", "thin", "dense"])
@pytest.mark.parametrize("d", [2**20, 2**40])
def test_huge_dilation_and_padding(channels, d):
    """Valid but extreme geometry with a tiny output (as torch computes it): with
    dilation = padding = d only the centre tap of a 3x3 kernel meets the input, so the
    result is the 1x1 convolution with that tap.  No padded frame of size ~d^2 may be
    materialised (MemoryError) and no index may overflow."""
    cin, cout = channels
    rng = np.random.default_rng(41)
    x = rand(rng, (2, cin, 4, 5))
    w = rand(rng, (cout, cin, 3, 3))
    out = nn.conv2d(x, w, dilation=d, padding=d)
    expected = np.einsum("nchw,oc->nohw", x, w[:, :, 1, 1])
    assert_close(out, expected, F64, n_reduce=cin)
    # a stride far beyond the input: one output per dim
    out = nn.conv2d(x, w, stride=d, padding=1)
    check(out, x, w, stride=d, padding=1)
