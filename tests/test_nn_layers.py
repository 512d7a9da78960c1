"""pyconv.nn's composite layers: depthwise, pointwise, separable, flattened, channel
shuffle, resize-convolution and unfold/fold, against their definitions and PyTorch."""
import numpy as np
import pytest

import pyconv
from pyconv import nn
from reference import (assert_close, channel_shuffle_ref, conv_nd, conv_nd_mode, fold_ref, unfold_ref,
                       upsample_bilinear, upsample_nearest)

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


def rand(rng, shape, dtype=np.float64):
    return rng.uniform(-1.0, 1.0, shape).astype(dtype)


def tt(a):
    torch = pytest.importorskip("torch")
    return None if a is None else torch.from_numpy(np.array(a, dtype=np.float64))


# ----------------------------------------------------------------- depthwise

@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(padding=2, dilation=2),
                                dict(stride=(1, 2), padding=(1, 0), dilation=(2, 1)), dict(padding="same"),
                                dict(stride=2, padding="same"), dict(padding=((1, 0), (2, 1)))],
                         ids=["plain", "s2p1", "dil2", "tuples", "same", "same_s2", "pairs"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_equals_grouped_conv(m, kw, dtype):
    rng = np.random.default_rng(m)
    c = 4
    x = rand(rng, (2, c, 9, 10), dtype)
    w = rand(rng, (c * m, 1, 3, 3), dtype)
    b = rand(rng, (c * m,), dtype)
    out = nn.depthwise_conv2d(x, w, b, **kw)
    ref = conv_nd_mode(x, w, b, groups=c, **kw)
    assert_close(out, ref, dtype, n_reduce=9)
    assert_close(out, nn.conv2d(x, w, b, groups=c, **kw), dtype, n_reduce=9)
    # unbatched
    assert_close(nn.depthwise_conv2d(x[1], w, b, **kw), ref[1], dtype, n_reduce=9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_vs_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(21)
    for c, m, hw, k, kw in [(32, 1, (28, 27), 3, dict(padding=1)), (16, 2, (20, 20), 5, dict(stride=2, padding=2)),
                            (8, 1, (15, 17), 3, dict(padding=2, dilation=2)), (24, 1, (7, 7), 7, dict())]:
        x = rand(rng, (2, c) + hw, dtype)
        w = rand(rng, (c * m, 1, k, k), dtype)
        b = rand(rng, (c * m,), dtype)
        out = nn.depthwise_conv2d(x, w, b, **kw)
        expected = torch.nn.functional.conv2d(tt(x), tt(w), tt(b), groups=c, **kw).numpy()
        assert_close(out, expected, dtype, n_reduce=k * k)


# ----------------------------------------------------------------- pointwise

@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("wdim", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_equals_1x1_conv(groups, wdim, dtype):
    rng = np.random.default_rng(groups * wdim)
    cin, cout = 8, 12
    x = rand(rng, (3, cin, 7, 6), dtype)
    w4 = rand(rng, (cout, cin // groups, 1, 1), dtype)
    b = rand(rng, (cout,), dtype)
    w = w4 if wdim == 4 else w4[:, :, 0, 0]
    out = nn.pointwise_conv2d(x, w, b, groups=groups)
    ref = conv_nd(x, w4, b, groups=groups)
    assert_close(out, ref, dtype, n_reduce=cin // groups)
    assert_close(nn.pointwise_conv2d(x[2], w, groups=groups), conv_nd(x[2:], w4, groups=groups)[0], dtype,
                 n_reduce=cin // groups)
    assert_close(out, nn.conv2d(x, w4, b, groups=groups), dtype, n_reduce=cin // groups)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_vs_torch_larger(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(22)
    x = rand(rng, (2, 64, 21, 19), dtype)
    for groups in (1, 4):
        w = rand(rng, (48, 64 // groups), dtype)
        out = nn.pointwise_conv2d(x, w, groups=groups)
        expected = torch.nn.functional.conv2d(tt(x), tt(w[:, :, None, None]), groups=groups).numpy()
        assert_close(out, expected, dtype, n_reduce=64 // groups)


# ----------------------------------------------------------------- separable

@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(padding="same", dilation=2)],
                         ids=["plain", "s2p1", "same_dil2"])
@pytest.mark.parametrize("pw_dim", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_separable_equals_two_calls(m, kw, pw_dim, dtype):
    rng = np.random.default_rng(31 + m)
    c, cout = 6, 10
    x = rand(rng, (2, c, 11, 9), dtype)
    dw = rand(rng, (c * m, 1, 3, 3), dtype)
    pw4 = rand(rng, (cout, c * m, 1, 1), dtype)
    pw = pw4 if pw_dim == 4 else pw4[:, :, 0, 0]
    b = rand(rng, (cout,), dtype)
    out = nn.separable_conv2d(x, dw, pw, b, **kw)
    seq = nn.pointwise_conv2d(nn.depthwise_conv2d(x, dw, None, **kw), pw, b)
    ref = conv_nd(conv_nd_mode(x, dw, groups=c, **kw), pw4, b)
    n = 9 * c * m
    assert_close(out, ref, dtype, n_reduce=n)
    assert_close(out, seq, dtype, n_reduce=n)
    assert_close(nn.separable_conv2d(x[0], dw, pw, b, **kw), ref[0], dtype, n_reduce=n)


# ----------------------------------------------------------------- flattened

def _flattened_weight(lateral, vertical, horizontal):
    return (lateral[:, :, None, None] * vertical[:, None, :, None] * horizontal[:, None, None, :])


@pytest.mark.parametrize("padding", [0, 1, (2, 0), "same", "valid"])
@pytest.mark.parametrize("ks", [(3, 3), (1, 5), (4, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flattened_equals_conv2d(padding, ks, dtype):
    rng = np.random.default_rng(ks[0] * 10 + ks[1])
    cin, cout = 5, 7
    x = rand(rng, (2, cin, 10, 9), dtype)
    lat = rand(rng, (cout, cin), dtype)
    ver = rand(rng, (cout, ks[0]), dtype)
    hor = rand(rng, (cout, ks[1]), dtype)
    b = rand(rng, (cout,), dtype)
    w = _flattened_weight(lat.astype(np.float64), ver.astype(np.float64), hor.astype(np.float64))
    out = nn.flattened_conv2d(x, lat, ver, hor, b, padding=padding)
    ref = conv_nd_mode(x, w, b, padding=padding)
    n = cin * ks[0] * ks[1]
    assert_close(out, ref, dtype, n_reduce=n)
    assert_close(nn.flattened_conv2d(x[1], lat, ver, hor, padding=padding),
                 conv_nd_mode(x[1:], w, padding=padding)[0], dtype, n_reduce=n)


def test_flattened_vs_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(41)
    x = rand(rng, (2, 16, 24, 20), np.float32)
    lat, ver, hor = rand(rng, (24, 16), np.float32), rand(rng, (24, 5), np.float32), rand(rng, (24, 3), np.float32)
    b = rand(rng, (24,), np.float32)
    w = _flattened_weight(lat.astype(np.float64), ver.astype(np.float64), hor.astype(np.float64))
    out = nn.flattened_conv2d(x, lat, ver, hor, b, padding=(2, 1))
    expected = torch.nn.functional.conv2d(tt(x), tt(w), tt(b), padding=(2, 1)).numpy()
    assert_close(out, expected, F32, n_reduce=16 * 15)


# ----------------------------------------------------------------- channel shuffle

@pytest.mark.parametrize("shape,groups", [((2, 6, 5), g) for g in (1, 2, 3, 6)] + [((2, 12, 3, 4), g) for g in (2, 3, 4)]
                         + [((1, 6, 2, 3, 2), 2), ((3, 4, 1), 2), ((2, 9, 1, 1), 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channel_shuffle(shape, groups, dtype):
    x = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    out = nn.channel_shuffle(x, groups)
    assert out.dtype == np.dtype(dtype) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, channel_shuffle_ref(x, groups))
    assert not np.shares_memory(out, x)
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(out, torch.nn.functional.channel_shuffle(torch.from_numpy(x), groups).numpy())


def test_channel_shuffle_layouts():
    x = np.arange(2 * 6 * 4 * 5, dtype=np.float32).reshape(2, 6, 4, 5)
    ref = channel_shuffle_ref(x, 3)
    ro = x.copy()
    ro.setflags(write=False)
    for v in (np.asfortranarray(x), x[..., ::-1][..., ::-1], ro):
        np.testing.assert_array_equal(nn.channel_shuffle(v, 3), ref)
    np.testing.assert_array_equal(nn.channel_shuffle(x[:, :, ::2], 2), channel_shuffle_ref(x[:, :, ::2], 2))
    assert nn.channel_shuffle(np.zeros((0, 6, 3), np.float32), 2).shape == (0, 6, 3)


# ----------------------------------------------------------------- resize convolution

def _torch_resize_conv(x, w, b, scale, mode):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    up = F.interpolate(tt(x), scale_factor=scale, mode=mode,
                       **({"align_corners": False} if mode == "bilinear" else {}))
    return F.conv2d(up, tt(w), tt(b), padding="same").numpy()


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("ks", [(3, 3), (4, 2), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resize_conv2d(mode, scale, ks, dtype):
    rng = np.random.default_rng(scale * 7 + ks[0])
    x = rand(rng, (2, 3, 5, 4), dtype)
    w = rand(rng, (4, 3) + ks, dtype)
    b = rand(rng, (4,), dtype)
    out = nn.resize_conv2d(x, w, b, scale_factor=scale, mode=mode)
    up = upsample_nearest(x, scale) if mode == "nearest" else upsample_bilinear(x, scale)
    ref = conv_nd_mode(up, w, b, padding="same")
    assert out.shape == (2, 4, 5 * scale, 4 * scale)
    n = 3 * ks[0] * ks[1]
    assert_close(out, ref, dtype, n_reduce=n)
    assert_close(nn.resize_conv2d(x[0], w, b, scale_factor=scale, mode=mode), ref[0], dtype, n_reduce=n)
    assert_close(out, _torch_resize_conv(x, w, b, scale, mode), dtype, n_reduce=n)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("scale", [3, 5, 7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resize_conv2d_vs_torch_larger(mode, scale, dtype):
    """Source indices and weights follow PyTorch's own arithmetic (float32 scale for
    'nearest', the input's dtype for 'bilinear') on larger images and odd scales."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(scale)
    x = rand(rng, (1, 2, 37, 29), dtype)
    w = rand(rng, (3, 2, 3, 3), dtype)
    b = rand(rng, (3,), dtype)
    out = nn.resize_conv2d(x, w, b, scale_factor=scale, mode=mode)
    up = F.interpolate(torch.from_numpy(x), scale_factor=scale, mode=mode,
                       **({"align_corners": False} if mode == "bilinear" else {}))
    expected = F.conv2d(up.double(), tt(w), tt(b), padding="same").numpy()
    assert_close(out, expected, dtype, n_reduce=18)


def test_resize_conv2d_defaults_and_padding():
    rng = np.random.default_rng(5)
    x = rand(rng, (1, 2, 4, 4))
    w = rand(rng, (3, 2, 3, 3))
    # defaults: scale 2, nearest, 'same'
    assert_close(nn.resize_conv2d(x, w), conv_nd_mode(upsample_nearest(x, 2), w, padding="same"), F64, 18)
    # an explicit padding is the conv2d padding after upsampling
    assert_close(nn.resize_conv2d(x, w, padding=0), conv_nd(upsample_nearest(x, 2), w), F64, 18)
    assert_close(nn.resize_conv2d(x, w, padding=(1, 0), mode="bilinear"),
                 conv_nd(upsample_bilinear(x, 2), w, padding=(1, 0)), F64, 18)


# ----------------------------------------------------------------- unfold / fold

UNFOLD_CASES = [
    dict(kernel_size=2), dict(kernel_size=(2, 3), stride=2), dict(kernel_size=3, padding=1),
    dict(kernel_size=(3, 2), dilation=(2, 1), padding=(1, 2), stride=(1, 2)), dict(kernel_size=1),
]


@pytest.mark.parametrize("kw", UNFOLD_CASES, ids=[str(k) for k in UNFOLD_CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unfold(kw, dtype):
    rng = np.random.default_rng(51)
    x = rand(rng, (2, 3, 7, 8), dtype)
    out = nn.unfold(x, **kw)
    ref = unfold_ref(x, **kw)
    assert out.dtype == np.dtype(dtype) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, ref.astype(dtype))
    # unbatched (C, H, W) -> (C*kh*kw, L)
    np.testing.assert_array_equal(nn.unfold(x[1], **kw), ref[1].astype(dtype))
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(out, torch.nn.functional.unfold(torch.from_numpy(x), **kw).numpy())


@pytest.mark.parametrize("kw", UNFOLD_CASES, ids=[str(k) for k in UNFOLD_CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fold(kw, dtype):
    rng = np.random.default_rng(52)
    size = (7, 8)
    cols_shape = unfold_ref(np.zeros((2, 3) + size), **kw).shape
    cols = rand(rng, cols_shape, dtype)
    out = nn.fold(cols, size, **kw)
    ref = fold_ref(cols, size, **kw)
    k = kw["kernel_size"]
    n = int(np.prod(k if isinstance(k, tuple) else (k, k)))
    assert_close(out, ref, dtype, n_reduce=n)
    assert out.shape == (2, 3) + size
    assert_close(nn.fold(cols[0], size, **kw), ref[0], dtype, n_reduce=n)
    torch = pytest.importorskip("torch")
    assert_close(out, torch.nn.functional.fold(tt(cols), size, **kw).numpy(), dtype, n_reduce=n)


def test_fold_of_unfold_counts_overlaps():
    x = np.ones((1, 2, 6, 5))
    kw = dict(kernel_size=3, stride=1, padding=1)
    counts = nn.fold(nn.unfold(x, **kw), (6, 5), **kw)
    expected = fold_ref(unfold_ref(x, **kw), (6, 5), **kw)
    np.testing.assert_array_equal(counts, expected)
    assert counts[0, 0, 2, 2] == 9 and counts[0, 0, 0, 0] == 4


def test_unfold_fold_layouts_and_dtypes():
    rng = np.random.default_rng(53)
    x = rand(rng, (2, 3, 6, 6), np.float32)
    ref = unfold_ref(x, 2, stride=2)
    ro = x.copy()
    ro.setflags(write=False)
    for v in (np.asfortranarray(x), x[..., ::-1][..., ::-1], ro):
        np.testing.assert_array_equal(nn.unfold(v, 2, stride=2), ref.astype(np.float32))
    assert nn.unfold(x.astype(np.int32), 2).dtype == F64
    assert nn.unfold(x.astype(np.float16), 2).dtype == F32
    with pytest.raises(TypeError, match="complex"):
        nn.unfold(x.astype(np.complex64), 2)
    cols = rand(rng, (2, 12, 9), np.float64)
    colsT = np.asfortranarray(cols)
    np.testing.assert_allclose(nn.fold(colsT, (6, 6), 2, stride=2), fold_ref(cols, (6, 6), 2, stride=2))
    assert nn.unfold(np.zeros((0, 3, 4, 4)), 2).shape == (0, 12, 9)


# ----------------------------------------------------------------- threads

def test_layers_one_vs_two_threads():
    rng = np.random.default_rng(61)
    x = rand(rng, (4, 32, 24, 24), np.float32)
    dw = rand(rng, (64, 1, 3, 3), np.float32)
    pw = rand(rng, (48, 64), np.float32)
    runs = []
    for n in (1, 2):
        with pyconv.threads(n):
            runs.append([nn.depthwise_conv2d(x, dw, padding=1), nn.separable_conv2d(x, dw, pw, padding=1),
                         nn.pointwise_conv2d(x, pw[:, :32]), nn.unfold(x, 3, padding=1),
                         nn.resize_conv2d(x[:1], dw[:8, :1].repeat(32, axis=1), mode="bilinear")])
    for a, b in zip(*runs):
        assert_close(b, a, F32, n_reduce=9 * 64)


def test_zero_batch_layers_vs_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.zeros((0, 4, 6, 5), np.float32)
    t = torch.from_numpy(x)
    dw = np.ones((8, 1, 3, 3), np.float32)
    pw = np.ones((5, 8), np.float32)
    cases = [
        (nn.depthwise_conv2d(x, dw, padding=1), F.conv2d(t, torch.from_numpy(dw), padding=1, groups=4)),
        (nn.pointwise_conv2d(x, pw[:, :4]), F.conv2d(t, torch.from_numpy(pw[:, :4, None, None]))),
        (nn.separable_conv2d(x, dw, pw, stride=2), F.conv2d(F.conv2d(t, torch.from_numpy(dw), stride=2, groups=4),
                                                          torch.from_numpy(pw[:, :, None, None]))),
        (nn.flattened_conv2d(x, np.ones((3, 4), np.float32), np.ones((3, 2), np.float32),
                             np.ones((3, 3), np.float32)), F.conv2d(t, torch.ones(3, 4, 2, 3))),
        (nn.resize_conv2d(x, np.ones((3, 4, 3, 3), np.float32), mode="bilinear"),
         F.conv2d(F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False), torch.ones(3, 4, 3, 3),
                  padding="same")),
        (nn.channel_shuffle(x, 2), F.channel_shuffle(t, 2)),
        (nn.unfold(x, 2), F.unfold(t, 2)),
        (nn.fold(np.zeros((0, 8, 20), np.float32), (6, 5), 2), F.fold(torch.zeros(0, 8, 20), (6, 5), 2)),
    ]
    for out, expected in cases:
        assert out.shape == tuple(expected.shape)
        assert out.dtype == F32


@pytest.mark.parametrize("layout", ["strided", "fortran", "negative", "readonly"])
def test_layers_layouts_and_inputs_unchanged(layout):
    rng = np.random.default_rng(71)

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

    x = rand(rng, (2, 4, 9, 8), np.float32)
    dw = rand(rng, (8, 1, 3, 3), np.float32)
    pw = rand(rng, (6, 8), np.float32)
    lat, ver, hor = rand(rng, (5, 4), np.float32), rand(rng, (5, 3), np.float32), rand(rng, (5, 2), np.float32)
    w = rand(rng, (3, 4, 3, 3), np.float32)
    b6, b5, b3 = rand(rng, (6,), np.float32), rand(rng, (5,), np.float32), rand(rng, (3,), np.float32)
    arrays = [x, dw, pw, lat, ver, hor, w, b6, b5, b3]
    views = [variant(a) for a in arrays]
    copies = [v.copy() for v in views]
    xv, dwv, pwv, latv, verv, horv, wv, b6v, b5v, b3v = views
    pairs = [
        (nn.depthwise_conv2d(xv, dwv, None, 2, 1), nn.depthwise_conv2d(x, dw, None, 2, 1)),
        (nn.pointwise_conv2d(xv, pwv[:, :4], b6v), nn.pointwise_conv2d(x, pw[:, :4], b6)),
        (nn.separable_conv2d(xv, dwv, pwv, b6v, padding="same"), nn.separable_conv2d(x, dw, pw, b6, padding="same")),
        (nn.flattened_conv2d(xv, latv, verv, horv, b5v, padding=1), nn.flattened_conv2d(x, lat, ver, hor, b5, padding=1)),
        (nn.resize_conv2d(xv, wv, b3v, mode="bilinear"), nn.resize_conv2d(x, w, b3, mode="bilinear")),
        (nn.fold(variant(nn.unfold(x, 2)), (9, 8), 2), nn.fold(nn.unfold(x, 2), (9, 8), 2)),
    ]
    for got, expected in pairs:
        assert got.dtype == F32 and got.flags.c_contiguous
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    for v, c in zip(views, copies):
        np.testing.assert_array_equal(v, c)
