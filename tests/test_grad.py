"""pyconv.grad: finite-difference gradchecks, PyTorch autograd / torch.nn.grad
comparisons, the NumPy definitions, dtypes, odd inputs and every error path."""
import itertools

import numpy as np
import pytest

from pyconv import grad, nn, signal
from reference import assert_close, conv_nd, correlate_full

RNG = np.random.default_rng(20261128)


def rand(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------- gradcheck: nn

CONV_CASES = [
    # nd, input spatial, kernel, stride, padding, dilation, groups, padding_mode, bias
    (1, (7,), (3,), 1, 0, 1, 1, "zeros", True),
    (1, (8,), (4,), 2, "same", 1, 2, "zeros", False),          # even kernel, TF 'same' with stride
    (1, (9,), (3,), 1, ((2, 1),), 2, 1, "reflect", True),
    (1, (6,), (2,), 3, 1, 1, 1, "circular", False),
    (1, (2,), (4,), 3, ((2, 1),), 1, 1, "zeros", False),     # asymmetric pads, stride > 1: tap past the end
    (2, (5, 6), (3, 3), 1, 1, 1, 1, "zeros", True),
    (2, (6, 5), (3, 2), 2, "same", 1, 1, "replicate", True),
    (2, (7, 7), (3, 3), (2, 1), ((1, 2), (0, 1)), (1, 2), 2, "reflect", False),
    (2, (5, 5), (3, 3), 1, "valid", 2, 1, "zeros", False),     # kernel spans the whole input
    (2, (6, 6), (3, 3), 1, 2, 1, 2, "circular", True),
    (2, (4, 5), (1, 1), 1, 0, 1, 2, "zeros", True),            # 1x1 grouped
    (2, (5, 5), (3, 3), 2, (1, 0), 1, 4, "zeros", True),       # depthwise with stride
    (3, (4, 4, 3), (2, 3, 2), 1, "same", 1, 1, "zeros", True),
    (3, (5, 4, 4), (3, 2, 2), (2, 1, 1), 1, (1, 1, 2), 2, "replicate", False),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_gradcheck_conv(case):
    nd, sp, k, stride, padding, dilation, groups, mode, bias = case
    x = rand(2, 4, *sp)
    w = rand(4, 4 // groups, *k)
    b = rand(4) if bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    f = {1: nn.conv1d, 2: nn.conv2d, 3: nn.conv3d}[nd]
    assert grad.gradcheck(f, (x, w, b), kw)
    assert grad.gradcheck(nn.conv, (x[:1], w, b), kw)


def test_gradcheck_conv_unbatched():
    x, w, b = rand(2, 6), rand(3, 2, 3), rand(3)
    assert grad.gradcheck(nn.conv1d, (x, w, b), {"padding": "same", "padding_mode": "reflect"})
    gx, gw, gb = grad.conv1d_backward(rand(3, 6), x, w, b, padding="same")
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == b.shape


@pytest.mark.parametrize("nd,stride,padding,output_padding,groups,dilation", [
    (1, 2, 1, 1, 1, 1),
    (1, 1, 0, 0, 2, 2),
    (2, 2, 1, 0, 1, 1),
    (2, (2, 3), (0, 1), (1, 2), 2, 1),
    (2, 1, 1, 1, 1, 2),      # output_padding >= stride (allowed as it is < dilation)
    (3, 2, 0, 1, 1, 1),
])
def test_gradcheck_conv_transpose(nd, stride, padding, output_padding, groups, dilation):
    x = rand(2, 4, *(3,) * nd)
    w = rand(4, 6 // groups, *(2,) * nd)
    f = {1: nn.conv_transpose1d, 2: nn.conv_transpose2d, 3: nn.conv_transpose3d}[nd]
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    assert grad.gradcheck(f, (x, w, rand(6)), kw)


def test_gradcheck_layers():
    x = rand(2, 3, 5, 5)
    assert grad.gradcheck(nn.depthwise_conv2d, (x, rand(6, 1, 3, 3), rand(6)), {"stride": 2, "padding": "same"})
    assert grad.gradcheck(nn.pointwise_conv2d, (x, rand(4, 3), rand(4)))
    assert grad.gradcheck(nn.pointwise_conv2d, (rand(1, 4, 3, 3), rand(6, 2, 1, 1), None), {"groups": 2})
    assert grad.gradcheck(nn.separable_conv2d, (x[:1], rand(6, 1, 3, 3), rand(4, 6), rand(4)),
                          {"stride": 1, "padding": 1, "dilation": 2})
    assert grad.gradcheck(nn.separable_conv2d, (x[0], rand(3, 1, 2, 2), rand(2, 3, 1, 1)), {"padding": "same"})
    assert grad.gradcheck(nn.flattened_conv2d, (x[:1], rand(4, 3), rand(4, 3), rand(4, 2), rand(4)),
                          {"padding": ((1, 0), (1, 1))})
    assert grad.gradcheck(nn.channel_shuffle, (rand(2, 6, 2, 2),), {"groups": 3})
    assert grad.gradcheck(nn.unfold, (rand(2, 2, 5, 4),), {"kernel_size": (2, 3), "dilation": (2, 1),
                                                           "padding": 1, "stride": (1, 2)})
    assert grad.gradcheck(nn.fold, (rand(1, 8, 6),), {"output_size": (4, 5), "kernel_size": 2, "padding": (1, 0),
                                                      "stride": 2})
    # unbatched inputs
    assert grad.gradcheck(nn.conv_transpose2d, (rand(3, 4, 5), rand(3, 2, 2, 2), rand(2)),
                          {"stride": 2, "padding": 1, "output_padding": 1})
    assert grad.gradcheck(nn.depthwise_conv2d, (rand(3, 4, 5), rand(6, 1, 2, 2)))
    assert grad.gradcheck(nn.unfold, (rand(3, 4, 5),), {"kernel_size": 2})
    assert grad.gradcheck(nn.fold, (rand(8, 6),), {"output_size": (3, 4), "kernel_size": 2})


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_gradcheck_resize(mode, scale):
    x = rand(1, 2, 3, 2)
    assert grad.gradcheck(nn.resize_conv2d, (x, rand(2, 2, 3, 2), rand(2)), {"scale_factor": scale, "mode": mode})
    assert grad.gradcheck(nn.resize_conv2d, (x[0], rand(1, 2, 2, 2)),
                          {"scale_factor": scale, "mode": mode, "padding": 0})


# --------------------------------------------------------------------------- gradcheck: signal

SIG_SHAPES = [((6,), (3,)), ((5,), (4,)), ((3,), (6,)), ((4, 5), (2, 3)), ((3, 2), (4, 4)), ((3, 4, 2), (2, 2, 2))]


@pytest.mark.parametrize("fname", ["convolve", "correlate"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("shapes", SIG_SHAPES, ids=[str(s) for s in SIG_SHAPES])
def test_gradcheck_convolve_correlate(fname, mode, shapes):
    s1, s2 = shapes
    methods = ["direct", "fft"] if s1 == (6,) else ["auto"]
    for method in methods:
        assert grad.gradcheck(getattr(signal, fname), (rand(*s1), rand(*s2)), {"mode": mode, "method": method})


@pytest.mark.parametrize("fname", ["convolve2d", "correlate2d"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_gradcheck_2d(fname, boundary, mode):
    f = getattr(signal, fname)
    kw = {"mode": mode, "boundary": boundary, "fillvalue": 1.5}
    assert grad.gradcheck(f, (rand(4, 5), rand(2, 3)), kw)      # even kernel dim
    assert grad.gradcheck(f, (rand(3, 3), rand(3, 2)), kw)
    if mode != "valid":
        assert grad.gradcheck(f, (rand(2, 3), rand(4, 5)), kw)  # kernel larger than the input
    else:
        assert grad.gradcheck(f, (rand(2, 3), rand(4, 5)), kw)  # 'valid' swaps the operands


@pytest.mark.parametrize("fname", ["fftconvolve", "oaconvolve"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_gradcheck_fft(fname, mode):
    f = getattr(signal, fname)
    assert grad.gradcheck(f, (rand(7), rand(3)), {"mode": mode})
    assert grad.gradcheck(f, (rand(3, 4), rand(3, 2)), {"mode": mode, "axes": 1})
    assert grad.gradcheck(f, (rand(3, 4), rand(1, 3)), {"mode": mode, "axes": [1]})    # broadcast axis 0
    assert grad.gradcheck(f, (rand(1, 5, 2), rand(2, 2, 2)), {"mode": mode, "axes": (-2, 2)})
    # as scipy, length-1 axes broadcast instead of convolving (so 'valid' accepts these)
    assert grad.gradcheck(f, (rand(3, 1), rand(1, 3)), {"mode": mode})
    assert grad.gradcheck(f, (rand(4), rand(1)), {"mode": mode, "axes": [0]})


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_gradcheck_sepconvolve2d(mode):
    assert grad.gradcheck(signal.sepconvolve2d, (rand(5, 4), rand(3), rand(2)), {"mode": mode})
    assert grad.gradcheck(signal.sepconvolve2d, (rand(2, 2), rand(4), rand(3)), {"mode": mode})


# --------------------------------------------------------------------------- against PyTorch

def _torch_grads(torch, fn, arrays, go):
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    need = [t for t in ts if t is not None]
    gs = iter(torch.autograd.grad(y, need, torch.tensor(go)))
    return [None if t is None else next(gs).numpy() for t in ts]


def _check(ours, ref, n_reduce, dtype):
    assert len(ours) == len(ref)
    for a, r in zip(ours, ref):
        if r is None:
            assert a is None
        else:
            assert_close(a, r.astype(dtype), dtype=dtype, n_reduce=n_reduce)


TORCH_PAD = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv_backward_vs_torch(case, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    nd, sp, k, stride, padding, dilation, groups, mode, bias = case
    sp = tuple(2 * s + 3 for s in sp)            # larger than the gradcheck shapes
    x = rand(3, 4, *sp, dtype=dtype)
    w = rand(8, 4 // groups, *k, dtype=dtype)
    b = rand(8, dtype=dtype) if bias else None
    f = {1: nn.conv1d, 2: nn.conv2d, 3: nn.conv3d}[nd]
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    y = f(x, w, b, **kw)
    go = rand(*y.shape, dtype=dtype)
    ours = getattr(grad, f"conv{nd}d_backward")(go, x, w, b, **kw)
    assert all(g.dtype == dtype for g in ours if g is not None)
    # torch: pad explicitly (pairs, 'same' with stride, every mode), then an unpadded conv
    from pyconv.arithmetic import same_padding
    st = (stride,) * nd if np.isscalar(stride) else tuple(stride)
    dl = (dilation,) * nd if np.isscalar(dilation) else tuple(dilation)
    if padding == "same":
        pairs = same_padding(sp, k, st, dl)
    elif padding == "valid":
        pairs = ((0, 0),) * nd
    elif np.isscalar(padding):
        pairs = ((padding, padding),) * nd
    else:
        pairs = [(p, p) if np.isscalar(p) else tuple(p) for p in padding]
    flat = [v for pr in reversed(pairs) for v in pr]
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    ref = _torch_grads(torch, lambda X, W, B: conv(F.pad(X, flat, mode=TORCH_PAD[mode]), W, B, st, 0, dl, groups),
                       [x, w, b], go)
    n_reduce = int(np.prod(y.shape)) // 4
    _check(ours, ref, n_reduce, dtype)


def test_conv_backward_random_vs_torch():
    # a seeded sweep over random geometries: dims, groups, strides, dilations, every
    # padding form and mode, batched or not
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    from pyconv.arithmetic import same_padding
    rng = np.random.default_rng(7)
    checked = 0
    while checked < 60:
        nd = int(rng.integers(1, 4))
        groups = int(rng.choice([1, 2, 3]))
        cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 5, nd))
        sp = tuple(int(v) for v in rng.integers(1, 9, nd))
        st = tuple(int(v) for v in rng.integers(1, 4, nd))
        dl = tuple(int(v) for v in rng.integers(1, 3, nd))
        mode = str(rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"]))
        form = int(rng.integers(0, 4))
        padding = [int(rng.integers(0, 3)), "same", tuple((int(a), int(b)) for a, b in rng.integers(0, 3, (nd, 2))),
                   tuple(int(v) for v in rng.integers(0, 3, nd))][form]
        batched = bool(rng.random() < 0.8)
        x = rng.standard_normal(((2,) if batched else ()) + (cin,) + sp)
        w = rng.standard_normal((cout, cin // groups) + k)
        b = rng.standard_normal(cout) if rng.random() < 0.5 else None
        try:
            y = nn.conv(x, w, b, st, padding, dl, groups, mode)
        except ValueError:
            continue            # kernel larger than the padded input, reflect pad too large...
        go = rng.standard_normal(y.shape)
        ours = grad.conv_backward(go, x, w, b, st, padding, dl, groups, mode)
        if padding == "same":
            pairs = same_padding(sp, k, st, dl)
        elif isinstance(padding, int):
            pairs = ((padding, padding),) * nd
        else:
            pairs = tuple(p if isinstance(p, tuple) else (p, p) for p in padding)
        flat = [v for pr in reversed(pairs) for v in pr]
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
        xb, gb = (x, go) if batched else (x[None], go[None])
        ref = _torch_grads(torch, lambda X, W, B: conv(F.pad(X, flat, mode=TORCH_PAD[mode]), W, B, st, 0, dl, groups),
                           [xb, w, b], gb)
        if not batched:
            ref[0] = ref[0][0]
        _check(ours, ref, 64, np.float64)
        checked += 1


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 0, 1, 1), (2, 1, 1, 2), (3, 2, 2, 1), (1, 1, 1, 4)])
def test_nn_grad_vs_torch(nd, stride, padding, dilation, groups):
    torch = pytest.importorskip("torch")
    sp = (9, 8, 7)[:nd]
    x = rand(2, 4, *sp)
    w = rand(8, 4 // groups, *(3,) * nd)
    y = nn.conv(x, w, None, stride, padding, dilation, groups)
    go = rand(*y.shape)
    args = (stride, padding, dilation, groups)
    ti = getattr(torch.nn.grad, f"conv{nd}d_input")(x.shape, torch.tensor(w), torch.tensor(go), *args).numpy()
    tw = getattr(torch.nn.grad, f"conv{nd}d_weight")(torch.tensor(x), w.shape, torch.tensor(go), *args).numpy()
    gi = getattr(grad, f"conv{nd}d_input")(x.shape, w, go, *args)
    gw = getattr(grad, f"conv{nd}d_weight")(x, w.shape, go, *args)
    assert_close(gi, ti, n_reduce=72)
    assert_close(gw, tw, n_reduce=go[:, 0].size)
    # unbatched
    gi1 = getattr(grad, f"conv{nd}d_input")(x.shape[1:], w, go[0], *args)
    assert_close(gi1, ti[0] if ti.shape[0] == 1 else
                 getattr(torch.nn.grad, f"conv{nd}d_input")(x[:1].shape, torch.tensor(w), torch.tensor(go[:1]),
                                                             *args).numpy()[0], n_reduce=72)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nd,stride,padding,output_padding,groups,dilation", [
    (1, 3, 1, 2, 1, 1), (2, 2, 1, 1, 2, 1), (2, 1, 0, 1, 1, 2), (3, 2, 1, 0, 1, 2),
])
def test_conv_transpose_backward_vs_torch(nd, stride, padding, output_padding, groups, dilation, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rand(2, 4, *(5,) * nd, dtype=dtype)
    w = rand(4, 6 // groups, *(3,) * nd, dtype=dtype)
    b = rand(6, dtype=dtype)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    y = getattr(nn, f"conv_transpose{nd}d")(x, w, b, **kw)
    go = rand(*y.shape, dtype=dtype)
    ours = getattr(grad, f"conv_transpose{nd}d_backward")(go, x, w, b, **kw)
    tf = getattr(F, f"conv_transpose{nd}d")
    ref = _torch_grads(torch, lambda X, W, B: tf(X, W, B, **kw), [x, w, b], go)
    _check(ours, ref, int(np.prod(go.shape)) // 4, dtype)


def test_layers_vs_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rand(2, 4, 9, 8)
    # depthwise with multiplier, stride and dilation (the direct thin-group kernels)
    w, b = rand(8, 1, 3, 3), rand(8)
    y = nn.depthwise_conv2d(x, w, b, stride=2, padding=2, dilation=2)
    go = rand(*y.shape)
    _check(grad.depthwise_conv2d_backward(go, x, w, b, stride=2, padding=2, dilation=2),
           _torch_grads(torch, lambda X, W, B: F.conv2d(X, W, B, 2, 2, 2, 4), [x, w, b], go), 100, np.float64)
    # pointwise group convolution, 2-D weight
    w = rand(6, 2)
    go = rand(2, 6, 9, 8)
    ours = grad.pointwise_conv2d_backward(go, x, w, None, groups=2)
    ref = _torch_grads(torch, lambda X, W: F.conv2d(X, W[:, :, None, None], None, groups=2), [x, w], go)
    _check(ours[:2], ref, 144, np.float64)
    assert ours[2] is None
    # channel shuffle
    go = rand(*x.shape)
    _check(grad.channel_shuffle_backward(go, x, 2),
           _torch_grads(torch, lambda X: F.channel_shuffle(X, 2) * 1.0, [x], go), 1, np.float64)
    # unfold / fold
    kw = dict(kernel_size=(2, 3), dilation=(1, 2), padding=(1, 0), stride=(2, 1))
    u = nn.unfold(x, **kw)
    go = rand(*u.shape)
    _check(grad.unfold_backward(go, x, **kw), _torch_grads(torch, lambda X: F.unfold(X, **kw), [x], go), 6,
           np.float64)
    go = rand(*x.shape)
    _check(grad.fold_backward(go, u, x.shape[2:], **kw),
           _torch_grads(torch, lambda U: F.fold(U, x.shape[2:], **kw), [u], go), 6, np.float64)
    # resize-convolution = interpolate then conv2d
    w, b = rand(3, 4, 3, 3), rand(3)
    for mode in ("nearest", "bilinear"):
        go = rand(2, 3, 18, 16)
        extra = {} if mode == "nearest" else {"align_corners": False}
        ref = _torch_grads(torch, lambda X, W, B: F.conv2d(F.interpolate(X, scale_factor=2, mode=mode, **extra),
                                                           W, B, padding="same"), [x, w, b], go)
        _check(grad.resize_conv2d_backward(go, x, w, b, 2, mode), ref, 300, np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nd,k,stride,padding,dilation,mult", [
    (2, (3, 3), 1, 1, 1, 1),          # vector path, three taps per pass
    (2, (3, 5), 1, (1, 4), (1, 2), 2),  # five taps: a 3-tap then a 2-tap pass, dilated
    (2, (1, 4), 1, "same", 1, 1),      # even kernel, asymmetric 'same'
    (2, (3, 1), (1, 3), 0, 1, 1),      # strided rows: the scalar path
    (1, (7,), 1, 3, 2, 3),
    (3, (2, 3, 3), 1, 1, 1, 1),
])
def test_depthwise_weight_kernel_vs_torch(nd, k, stride, padding, dilation, mult, dtype):
    # the direct depthwise weight-gradient kernel (one input channel per group)
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    sp = {1: (37,), 2: (13, 29), 3: (5, 6, 19)}[nd]
    x = rand(3, 4, *sp, dtype=dtype)
    w = rand(4 * mult, 1, *k, dtype=dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=4)
    y = nn.conv(x, w, None, **kw)
    go = rand(*y.shape, dtype=dtype)
    ours = grad.conv_backward(go, x, w, None, **kw)
    from pyconv.arithmetic import same_padding
    st = (stride,) * nd if np.isscalar(stride) else tuple(stride)
    dl = (dilation,) * nd if np.isscalar(dilation) else tuple(dilation)
    if padding == "same":
        pairs = same_padding(sp, k, st, dl)
    else:
        pairs = [(p, p) for p in ((padding,) * nd if np.isscalar(padding) else padding)]
    flat = [v for pr in reversed(pairs) for v in pr]
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    ref = _torch_grads(torch, lambda X, W: conv(F.pad(X, flat), W, None, st, 0, dl, 4), [x, w], go)
    _check(ours[:2], ref, int(np.prod(y.shape)) // 4, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mult", [1, 3])
@pytest.mark.parametrize("kw", [2, 3, 5])
def test_depthwise_weight_rows_across_vector_boundaries(kw, mult, dtype):
    # output rows just under, at and over whole vectors (16 float32 / 8 float64 lanes):
    # the single-channel kernel shifts its horizontal taps out of aligned vectors, reading
    # the next vector of a padded row whose width is rounded up to whole cache lines
    rng = np.random.default_rng(kw * 10 + mult)
    for ow in (7, 8, 9, 15, 16, 17, 31, 32, 33, 56, 64):
        x = rng.standard_normal((2, 3, 4, ow + kw - 3)).astype(dtype)   # padding 1: ow outputs
        go = rng.standard_normal((2, 3 * mult, 4, ow)).astype(dtype)
        gw = grad.conv2d_weight(x, (3 * mult, 1, 3, kw), go, padding=(1, 1), groups=3)
        xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        ref = np.empty((3 * mult, 1, 3, kw))
        for o in range(3 * mult):
            for a in range(3):
                for b in range(kw):
                    ref[o, 0, a, b] = np.sum(go[:, o].astype(np.float64) * xp[:, o // mult, a:a + 4, b:b + ow])
        tol = 1e-4 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(gw, ref, rtol=tol, atol=tol * np.sqrt(go[:, 0].size), err_msg=f"ow={ow}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,dil,pad,width", [
    (2, (3, 3), (1, 1), (1, 1), 56),      # a 56-wide row: three vectors and a half one
    (5, (3, 3), (2, 1), (2, 1), 17),      # dilated rows, a one-lane tail
    (3, (2, 3), (1, 1), (0, 1), 33),
    (4, (3, 1), (1, 1), (1, 0), 9),
])
def test_depthwise_weight_sample_by_sample(n, k, dil, pad, width, dtype):
    # one output channel per group and one pass of at most 3 x 3 taps: the kernel pads and
    # sweeps one sample at a time, carrying its lanes' sums from sample to sample; the result
    # must equal the float64 definition, and be the same bits at 1 and 2 threads
    import pyconv
    rng = np.random.default_rng(n * 100 + width)
    c = 6
    x = rng.standard_normal((n, c, 11, width)).astype(dtype)
    oh = 11 + 2 * pad[0] - dil[0] * (k[0] - 1)
    ow = width + 2 * pad[1] - dil[1] * (k[1] - 1)
    go = rng.standard_normal((n, c, oh, ow)).astype(dtype)
    with pyconv.threads(1):
        gw1 = grad.conv2d_weight(x, (c, 1) + k, go, padding=pad, dilation=dil, groups=c)
    with pyconv.threads(2):
        gw2 = grad.conv2d_weight(x, (c, 1) + k, go, padding=pad, dilation=dil, groups=c)
    np.testing.assert_array_equal(gw1, gw2)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    ref = np.empty((c, 1) + k)
    for o in range(c):
        for a in range(k[0]):
            for b in range(k[1]):
                win = xp[:, o, a * dil[0]:a * dil[0] + oh, b * dil[1]:b * dil[1] + ow]
                ref[o, 0, a, b] = np.sum(go[:, o].astype(np.float64) * win)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gw1, ref, rtol=tol, atol=tol * np.sqrt(go[:, 0].size))


def test_depthwise_weight_kernel_refuses_short_scratch():
    # the kernel runs without bounds checks: a scratch row shorter than the carried sums plus
    # the padded channel, or not on a 64-byte boundary, is refused before anything is written
    from pyconv._engine.conv import kernel_geo
    from pyconv._kernels import dense_direct, grad_direct
    x = np.ones((2, 3, 1, 5, 5), np.float32)
    go = np.ones((2, 3, 1, 5, 5), np.float32)
    geo = kernel_geo(stride=(1, 1, 1), dilation=(1, 1, 1), pad=(0, 1, 1), plane=(1, 7, 7))
    need = grad_direct.TW_STATE + 2 * 7 * 7
    gw = np.zeros((3, 1, 1, 3, 3), np.float32)
    grad_direct.direct_weight(x, go, gw, dense_direct.aligned_rows(1, need, np.float32), geo, 3, 1)
    np.testing.assert_array_equal(gw[:, 0, 0], np.full((3, 3, 3), 2.0) * [[16, 20, 16], [20, 25, 20], [16, 20, 16]])
    for cols, threads in ((need - 1, 1), (need, 2)):          # a row too short; a row per thread missing
        with pytest.raises(ValueError, match="ws of"):
            grad_direct.direct_weight(x, go, np.zeros_like(gw), dense_direct.aligned_rows(1, need, np.float32)[:, :cols],
                                      geo, 3, threads)
    shifted = dense_direct.aligned_rows(1, need + 16, np.float32)[:, 1:need + 1]     # 4 bytes off a line
    with pytest.raises(ValueError, match="64-byte"):
        grad_direct.direct_weight(x, go, np.zeros_like(gw), shifted, geo, 3, 1)


def test_weight_gradient_threads_agree():
    # per-thread work splits (depthwise pairs, GEMM tiles) give the same sums
    import pyconv
    for groups, cin in ((32, 32), (8, 32), (1, 8)):
        x = rand(4, cin, 20, 19, dtype=np.float32)
        w = rand(32, cin // groups, 3, 3, dtype=np.float32)
        go = rand(4, 32, 10, 10, dtype=np.float32)
        with pyconv.threads(1):
            one = grad.conv2d_backward(go, x, w, None, stride=2, padding=1, groups=groups)
        with pyconv.threads(2):
            two = grad.conv2d_backward(go, x, w, None, stride=2, padding=1, groups=groups)
        for a, b in zip(one[:2], two[:2]):
            assert a.dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
        # adjoint identity against the definition: <go, conv(x, w)> = <gx, x> = <gw, w>
        lhs = float(np.sum(go.astype(np.float64) * conv_nd(x, w, None, 2, 1, 1, groups)))
        assert abs(np.sum(one[1].astype(np.float64) * w) - lhs) <= 1e-4 * abs(lhs) + 1e-2
        assert abs(np.sum(one[0].astype(np.float64) * x) - lhs) <= 1e-4 * abs(lhs) + 1e-2


# --------------------------------------------------------------------------- signal against the definition

def test_signal_against_definition():
    a, b = rand(6, 5), rand(3, 4)
    full = correlate_full(a, b)        # correlate(a, b, 'full')
    g = rand(*full.shape)
    ga, gb = grad.correlate_backward(g, a, b)
    # correlate(a, b)[n] = sum_k a[n + k - (len(b) - 1)] b[k]: adjoints by definition
    ga_ref = np.zeros_like(a)
    gb_ref = np.zeros_like(b)
    for k in itertools.product(*(range(s) for s in b.shape)):
        start = tuple(sb - 1 - kk for sb, kk in zip(b.shape, k))
        sl = tuple(slice(st, st + sa) for st, sa in zip(start, a.shape))
        ga_ref += g[sl] * b[k]
        gb_ref[k] = np.sum(g[sl] * a)
    assert_close(ga, ga_ref, n_reduce=12)
    assert_close(gb, gb_ref, n_reduce=30)
    g1, g2 = grad.convolve_backward(g, a, b[::-1, ::-1])
    assert_close(g1, ga_ref, n_reduce=12)
    assert_close(g2, gb_ref[::-1, ::-1], n_reduce=30)


# --------------------------------------------------------------------------- gradcheck must fail

def test_gradcheck_detects_wrong_backward(monkeypatch):
    x, w, b = rand(1, 2, 5, 5), rand(3, 2, 3, 3), rand(3)
    real = grad.conv2d_backward

    def wrong_weight(g, *args, **kw):
        gx, gw, gb = real(g, *args, **kw)
        gw = gw.copy()
        gw[2, 1, 0, 2] += 0.5
        return gx, gw, gb
    monkeypatch.setattr(grad, "conv2d_backward", wrong_weight)
    with pytest.raises(AssertionError, match=r"'weight'.*\(2, 1, 0, 2\)"):
        grad.gradcheck(nn.conv2d, (x, w, b), {"padding": 1})

    def wrong_bias(g, *args, **kw):
        gx, gw, gb = real(g, *args, **kw)
        return gx, gw, gb * 2
    monkeypatch.setattr(grad, "conv2d_backward", wrong_bias)
    with pytest.raises(AssertionError, match="'bias'"):
        grad.gradcheck(nn.conv2d, (x, w, b))

    def wrong_flip(g, in1, in2, mode="full", method="auto"):
        g1, g2 = grad.correlate_backward(g, in1, in2, mode, method)   # correlation instead of convolution
        return g1, g2
    monkeypatch.setattr(grad, "convolve_backward", wrong_flip)
    with pytest.raises(AssertionError, match="'in1'"):
        grad.gradcheck(signal.convolve, (rand(5), rand(3)), {"mode": "same"})

    def missing(g, *args, **kw):
        return (real(g, *args, **kw)[0],)
    monkeypatch.setattr(grad, "conv2d_backward", missing)
    with pytest.raises(AssertionError, match="tuple"):
        grad.gradcheck(nn.conv2d, (x, w))


def test_gradcheck_errors():
    with pytest.raises(ValueError, match="func=.*backward"):
        grad.gradcheck(np.add, (rand(2), rand(2)))
    with pytest.raises(TypeError, match="inputs must be a tuple"):
        grad.gradcheck(nn.conv1d, rand(1, 1, 3))


# --------------------------------------------------------------------------- dtypes and odd inputs

def test_float32_stays_float32_everywhere():
    f = np.float32
    x, w, b = rand(1, 2, 6, 6, dtype=f), rand(4, 2, 3, 3, dtype=f), rand(4, dtype=f)
    assert all(g.dtype == f for g in grad.conv2d_backward(rand(1, 4, 4, 4, dtype=f), x, w, b))
    assert grad.conv2d_input(x.shape, w, rand(1, 4, 4, 4, dtype=f)).dtype == f
    assert grad.conv2d_weight(x, w.shape, rand(1, 4, 4, 4, dtype=f)).dtype == f
    assert grad.conv2d_input(x.shape, w, rand(1, 4, 4, 4)).dtype == np.float64   # mixed -> float64
    g1, g2 = grad.convolve_backward(rand(8, dtype=f), rand(5, dtype=f), rand(4, dtype=f))
    assert g1.dtype == g2.dtype == f
    g = grad.convolve2d_backward(rand(4, 4, dtype=f), rand(3, 3, dtype=f), rand(2, 2, dtype=f), boundary="wrap")
    assert all(a.dtype == f for a in g)
    g = grad.fftconvolve_backward(rand(6, dtype=f), rand(4, dtype=f), rand(3, dtype=f))
    assert all(a.dtype == f for a in g)
    g = grad.sepconvolve2d_backward(rand(4, 4, dtype=f), rand(3, 3, dtype=f), rand(2, dtype=f), rand(2, dtype=f))
    assert all(a.dtype == f for a in g)
    # integer signal inputs get float64 gradients
    g1, g2 = grad.convolve_backward(np.ones(4), np.arange(3), np.arange(2))
    assert g1.dtype == g2.dtype == np.float64
    assert_close(g1, np.array([1.0, 1.0, 1.0]))


def test_odd_layouts_and_inputs_unchanged():
    x = np.asfortranarray(rand(2, 3, 7, 6))
    w = rand(4, 3, 3, 3)[:, :, ::-1, :]                        # negative strides
    go = rand(2, 4, 10, 6)[:, :, ::2, :]                        # non-contiguous
    x.setflags(write=False)
    keep = [a.copy() for a in (x, w, go)]
    ours = grad.conv2d_backward(go, x, w, padding=(0, 1))
    ref = grad.conv2d_backward(np.ascontiguousarray(go), np.ascontiguousarray(x), np.ascontiguousarray(w),
                               padding=(0, 1))
    for a, r in zip(ours[:2], ref[:2]):
        assert a.flags.c_contiguous
        np.testing.assert_array_equal(a, r)
    for a, k in zip((x, w, go), keep):
        np.testing.assert_array_equal(a, k)
    s1 = rand(9)[::-2]
    s1.setflags(write=False)
    g1, g2 = grad.correlate_backward(rand(7), s1, [1.0, 2.0, 3.0])
    assert g1.shape == (5,) and g2.shape == (3,) and g1.flags.c_contiguous


def test_zero_size_and_size_one():
    gx, gw, gb = grad.conv2d_backward(np.zeros((0, 2, 3, 3)), np.zeros((0, 3, 5, 5)), rand(2, 3, 3, 3), rand(2))
    assert gx.shape == (0, 3, 5, 5) and gw.shape == (2, 3, 3, 3) and not gw.any() and not gb.any()
    go, x, w = rand(1, 2, 1), rand(1, 3, 1), rand(2, 3, 1)
    gx, gw, _ = grad.conv1d_backward(go, x, w)
    assert_close(gx[0, :, 0], w[:, :, 0].T @ go[0, :, 0], n_reduce=2)
    assert_close(gw[:, :, 0], np.outer(go[0, :, 0], x[0, :, 0]))
    g1, g2 = grad.convolve_backward(np.zeros(0), np.zeros(0), rand(3))
    assert g1.shape == (0,) and g2.shape == (3,) and not g2.any()
    g = grad.unfold_backward(np.zeros((0, 4, 4)), np.zeros((0, 1, 3, 3)), 2)[0]
    assert g.shape == (0, 1, 3, 3)


# --------------------------------------------------------------------------- errors

def test_errors_named():
    x, w = rand(1, 2, 5, 5), rand(3, 2, 3, 3)
    with pytest.raises(ValueError, match="grad_output has shape"):
        grad.conv2d_backward(rand(1, 3, 5, 5), x, w)
    with pytest.raises(ValueError, match="padding_mode"):
        grad.conv2d_backward(rand(1, 3, 3, 3), x, w, padding_mode="mirror")
    with pytest.raises(ValueError, match="groups=2 must divide"):
        grad.conv2d_backward(rand(1, 3, 3, 3), x, rand(3, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match="padding"):
        grad.conv2d_backward(rand(1, 3, 3, 3), x, w, padding="full")
    with pytest.raises(ValueError, match="reflect"):
        grad.conv2d_backward(rand(1, 3, 13, 13), x, w, padding=5, padding_mode="reflect")
    with pytest.raises(TypeError, match="complex"):
        grad.conv2d_backward(rand(1, 3, 3, 3), x.astype(complex), w)
    with pytest.raises(TypeError, match="complex"):
        grad.convolve_backward(rand(5), rand(3).astype(complex), rand(3))
    with pytest.raises(TypeError, match="bool"):
        grad.correlate_backward(rand(5), np.ones(3, bool), np.ones(3, bool))
    with pytest.raises(TypeError, match="input_size"):
        grad.conv2d_input(5, w, rand(1, 3, 3, 3))
    with pytest.raises(ValueError, match="input_size"):
        grad.conv2d_input((5, 5), w, rand(1, 3, 3, 3))
    with pytest.raises(TypeError, match="weight_size"):
        grad.conv2d_weight(x, 3, rand(1, 3, 3, 3))
    with pytest.raises(ValueError, match="weight_size"):
        grad.conv2d_weight(x, (3, 2, 3), rand(1, 3, 3, 3))
    with pytest.raises(ValueError, match="grad_output has shape"):
        grad.conv2d_weight(x, w.shape, rand(1, 3, 4, 3))
    with pytest.raises(ValueError, match="grad_output has shape"):
        grad.conv_transpose2d_backward(rand(1, 3, 6, 6), x[:, :, :3, :3], rand(2, 3, 3, 3))
    with pytest.raises(ValueError, match="output_padding"):
        grad.conv_transpose2d_backward(rand(1, 3, 6, 6), x, rand(2, 3, 3, 3), output_padding=1)
    with pytest.raises(ValueError, match="scale_factor"):
        grad.resize_conv2d_backward(rand(1, 3, 10, 10), x, w, scale_factor=0)
    with pytest.raises(ValueError, match="mode"):
        grad.resize_conv2d_backward(rand(1, 3, 10, 10), x, w, mode="bicubic")
    with pytest.raises(ValueError, match="groups=4"):
        grad.channel_shuffle_backward(rand(1, 6, 2), rand(1, 6, 2), 4)
    with pytest.raises(ValueError, match="depthwise_weight"):
        grad.separable_conv2d_backward(rand(1, 3, 3, 3), x, rand(3, 2, 3, 3), rand(3, 3))
    with pytest.raises(ValueError, match="pointwise_weight"):
        grad.separable_conv2d_backward(rand(1, 3, 3, 3), x, rand(2, 1, 3, 3), rand(3, 3, 3))
    with pytest.raises(ValueError, match="lateral.shape"):
        grad.flattened_conv2d_backward(rand(1, 3, 3, 3), x, rand(3, 5), rand(3, 3), rand(3, 3))
    with pytest.raises(ValueError, match="vertical"):
        grad.flattened_conv2d_backward(rand(1, 3, 3, 3), x, rand(3, 2), rand(2, 3), rand(3, 3))
    with pytest.raises(ValueError, match="mode"):
        grad.convolve_backward(rand(5), rand(3), rand(3), mode="middle")
    with pytest.raises(ValueError, match="valid"):
        grad.convolve_backward(rand(2, 2), rand(3, 2), rand(2, 3), mode="valid")
    with pytest.raises(ValueError, match="grad_output has shape"):
        grad.correlate_backward(rand(6), rand(3), rand(3))
    with pytest.raises(ValueError, match="boundary"):
        grad.convolve2d_backward(rand(4, 4), rand(3, 3), rand(2, 2), boundary="reflect")
    with pytest.raises(ValueError, match="2-D"):
        grad.convolve2d_backward(rand(4), rand(3), rand(2))
    with pytest.raises(ValueError, match="axes"):
        grad.fftconvolve_backward(rand(4), rand(3), rand(2), axes=3)
    with pytest.raises(ValueError, match="col must be 1-D"):
        grad.sepconvolve2d_backward(rand(4, 4), rand(3, 3), rand(2, 1), rand(2))
    with pytest.raises(ValueError, match="input.shape"):
        grad.fold_backward(rand(1, 1, 3, 3), rand(1, 4, 5), (3, 3), 2)
    with pytest.raises(ValueError, match="grad_output has shape"):
        grad.unfold_backward(rand(1, 4, 5), rand(1, 1, 3, 3), 2)


def test_concurrent_calls_from_python_threads():
    # kernels release the GIL and keep their scratch per call: parallel callers agree
    from concurrent.futures import ThreadPoolExecutor
    x, w = rand(2, 8, 12, 11), rand(16, 1, 3, 3)
    go = rand(2, 16, 12, 11)
    want = grad.depthwise_conv2d_backward(go, x, w, None, padding=1)
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda _: grad.depthwise_conv2d_backward(go, x, w, None, padding=1), range(8)))
    for g in got:
        for a, b in zip(g[:2], want[:2]):
            np.testing.assert_array_equal(a, b)


def test_fillvalue_cast_like_the_forward():
    # integer inputs: the forward casts fillvalue to the integer result dtype (1.5 -> 1)
    a = RNG.integers(-3, 4, (4, 5))
    b = RNG.integers(-3, 4, (2, 3))
    g = rand(5, 7)
    gi = grad.convolve2d_backward(g, a, b, boundary="fill", fillvalue=1.5)
    gf = grad.convolve2d_backward(g, a.astype(float), b.astype(float), boundary="fill", fillvalue=1.0)
    for x, y in zip(gi, gf):
        assert x.dtype == np.float64
        assert_close(x, y, n_reduce=20)
    # and with wrap/symm the fillvalue is ignored, as by the forward
    g1 = grad.correlate2d_backward(g, a, b, boundary="wrap", fillvalue=7)
    g2 = grad.correlate2d_backward(g, a, b, boundary="wrap")
    np.testing.assert_array_equal(g1[1], g2[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nd,cout,groups,stride,k", [
    (2, 5, 1, 1, (3, 3)),        # one block of four output channels + one single
    (2, 9, 1, (1, 2), (2, 5)),   # strided rows: the block falls back to singles
    (3, 6, 2, 1, (2, 3, 3)),     # grouped: 3 outputs per group, singles only
    (1, 16, 2, 1, (7,)),         # two blocks per group, seven taps (3 + 3 + 1)
    (2, 8, 1, 1, (3, 3)),        # eight-output blocks (rows of whole float vectors + a short tail)
    (3, 13, 1, 1, (3, 3, 3)),    # 8 + 4 + 1 outputs, 3-D
])
def test_direct_weight_kernel_vs_torch(nd, cout, groups, stride, k, dtype):
    # the direct weight kernel (few output channels per group), blocked over outputs
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    sp = {1: (45,), 2: (11, 37), 3: (4, 7, 21)}[nd]
    x = rand(2, 4, *sp, dtype=dtype)
    w = rand(cout, 4 // groups, *k, dtype=dtype)
    y = nn.conv(x, w, None, stride, 1, 1, groups)
    go = rand(*y.shape, dtype=dtype)
    gw = getattr(grad, f"conv{nd}d_weight")(x, w.shape, go, stride, 1, 1, groups)
    tw = getattr(torch.nn.grad, f"conv{nd}d_weight")(torch.tensor(x), w.shape, torch.tensor(go), stride, 1, 1,
                                                      groups).numpy()
    assert_close(gw, tw.astype(dtype), n_reduce=int(np.prod(go.shape[2:])) * 2)


def test_direct_weight_kernel_strided_rows():
    # the public path sends row strides > 1 of thin groups to the phase-plane kernel; the thin
    # kernel's scalar path (forced) stays exact
    torch = pytest.importorskip("torch")
    import pyconv
    x, w = rand(2, 4, 9, 17), rand(8, 2, 3, 2)
    go = rand(2, 8, 8, 6)
    from pyconv._engine.plan import force
    kw = dict(stride=(1, 3), padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2)
    assert pyconv.explain(grad.conv2d_weight, x, w.shape, go, **kw).algorithm == "thin_phase"
    with force("thin"):
        assert pyconv.explain(grad.conv2d_weight, x, w.shape, go, **kw).algorithm == "thin"
        gw = grad.conv2d_weight(x, w.shape, go, **kw)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 0), (2, 1)))
    tw = torch.nn.grad.conv2d_weight(torch.tensor(xp), w.shape, torch.tensor(go), (1, 3), 0, (1, 2), 2).numpy()
    assert_close(gw, tw, n_reduce=96)


# Layers with >= 8 output channels per group take nn's direct weight kernel (no im2col):
# a seeded grid over dims, stride, dilation, padding forms and groups, against
# torch.nn.grad, at 1 and 2 threads.
_WEIGHT_GRID = [
    # (nd, N, C_in, C_out, spatial, kernel, stride, padding, dilation, groups)
    (1, 2, 6, 8, 37, 5, 1, 2, 1, 1),
    (1, 3, 4, 16, 300, 9, 1, 4, 2, 2),
    (1, 1, 8, 8, 64, 3, 2, 1, 1, 1),
    (2, 2, 5, 8, (13, 11), (3, 3), 1, 1, 1, 1),
    (2, 3, 8, 16, (17, 9), (3, 2), (2, 1), (1, 0), (1, 2), 2),
    (2, 1, 3, 9, (20, 23), (7, 7), 2, 3, 1, 1),
    (2, 2, 16, 24, (12, 12), (3, 3), 1, 2, 2, 1),
    (2, 1, 4, 8, (9, 40), (1, 1), 1, 0, 1, 1),
    (3, 2, 3, 8, (6, 7, 5), (3, 3, 3), 1, 1, 1, 1),
    (3, 1, 4, 16, (7, 6, 8), (2, 3, 2), (1, 2, 1), 0, (2, 1, 1), 2),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(_WEIGHT_GRID)))
def test_weight_gradient_wide_groups_vs_torch(case, dtype):
    torch = pytest.importorskip("torch")
    import pyconv
    nd, n, cin, cout, sp, k, s, p, d, g = _WEIGHT_GRID[case]
    sp = (sp,) if nd == 1 else sp
    k = (k,) if nd == 1 else k
    rng = np.random.default_rng(100 + case)
    x = rng.standard_normal((n, cin) + tuple(sp)).astype(dtype)
    w_shape = (cout, cin // g) + tuple(k)
    y = nn.conv(x, np.zeros(w_shape, dtype), stride=s, padding=p, dilation=d, groups=g)
    go = rng.standard_normal(y.shape).astype(dtype)
    tfun = getattr(torch.nn.grad, f"conv{nd}d_weight")
    ref = tfun(torch.from_numpy(x.astype(np.float64)), w_shape, torch.from_numpy(go.astype(np.float64)),
               stride=s, padding=p, dilation=d, groups=g).numpy()
    fun = getattr(grad, f"conv{nd}d_weight")
    for threads in (1, 2):
        with pyconv.threads(threads):
            gw = fun(x, w_shape, go, stride=s, padding=p, dilation=d, groups=g)
        assert_close(gw, ref.astype(dtype), dtype=dtype, n_reduce=n * int(np.prod(y.shape[2:])))
