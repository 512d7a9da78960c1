"""The algorithm choice: which algorithm a call runs (pyconv.explain), and that every
algorithm able to serve a geometry -- forced through the planner -- gives the same
result as the NumPy / PyTorch reference."""
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

import pyconv
from pyconv import grad, nn, signal
from pyconv._engine import tuning
from pyconv._engine.plan import Algorithm, force
from reference import assert_close, conv_nd, conv_transpose_nd


def rand(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


F32 = np.float32


# --------------------------------------------------------------------------- expected choices

def _conv_case(x, w, **kw):
    rng = np.random.default_rng(0)
    return (nn.conv2d, rand(rng, x, F32), rand(rng, w, F32)), kw


@pytest.mark.parametrize("args,kw,expected", [
    (*_conv_case((2, 16, 20, 20), (32, 16, 3, 3), padding=1), "dense_oc"),
    (*_conv_case((2, 16, 20, 20), (32, 16, 3, 3), stride=2, padding=1), "dense_oc"),
    (*_conv_case((2, 64, 14, 14), (32, 64, 1, 1)), "panel"),
    (*_conv_case((2, 8, 20, 20), (8, 1, 3, 3), padding=1, groups=8), "thin_reg"),
    (*_conv_case((2, 8, 20, 6), (8, 1, 3, 3), padding=1, groups=8), "thin_s1"),
    (*_conv_case((2, 8, 20, 20), (8, 1, 3, 3), stride=2, padding=1, groups=8), "thin_phase"),
    (*_conv_case((2, 8, 20, 20), (16, 2, 3, 3), stride=2, padding=1, groups=4), "thin_phase"),
    (*_conv_case((2, 64, 28, 28), (32, 64, 1, 1), stride=2), "dense_oc"),
], ids=["dense", "dense_s2", "pointwise", "depthwise", "depthwise_narrow", "depthwise_s2", "grouped_s2", "pointwise_s2"])
def test_forward_choice(args, kw, expected):
    p = pyconv.explain(*args, **kw)
    assert p.algorithm == expected and str(p.algorithm) == expected
    assert p.op == "forward" and p.threads >= 1 and p.workspace_bytes >= 0
    assert p.geometry.out_shape == nn.conv2d(*args[1:], **kw).shape
    assert expected in str(p) and "\n" not in str(p)
    assert Algorithm(expected) in p.candidates


def test_forward_choice_follows_the_workspace_budget():
    # the budget is max(workspace_bytes, output size): 64 padded input planes exceed 8 output planes
    (f, x, w), kw = _conv_case((2, 64, 20, 20), (8, 64, 3, 3), padding=1)
    assert pyconv.explain(f, x, w, **kw).algorithm == "dense"
    with tuning.override(workspace_bytes=1):
        assert pyconv.explain(f, x, w, **kw).algorithm == "gemm"
    with tuning.override(thin_pad_bytes=0):
        (f, x, w), kw = _conv_case((2, 8, 20, 20), (8, 1, 3, 3), padding=1, groups=8)
        assert pyconv.explain(f, x, w, **kw).algorithm == "thin_row"
    assert pyconv.explain(f, x, w, **kw).algorithm == "thin_reg"


def test_transposed_and_gradient_choices():
    rng = np.random.default_rng(1)
    x = rand(rng, (2, 16, 9, 9), F32)
    assert pyconv.explain(nn.conv_transpose2d, x, rand(rng, (16, 16, 3, 3), F32), padding=1).algorithm == "flip_conv"
    assert pyconv.explain(nn.conv_transpose2d, x, rand(rng, (16, 16, 4, 4), F32), stride=2).algorithm == "phases"
    assert pyconv.explain(nn.conv_transpose2d, x, rand(rng, (16, 4, 4, 4), F32), stride=2).algorithm == "gemm"
    p = pyconv.explain(nn.conv_transpose2d, x, rand(rng, (16, 16, 3, 3), F32), padding=1)
    assert p.sub.algorithm == "dense" and "flip_conv(dense)" in str(p)
    w = rand(rng, (16, 16, 3, 3), F32)
    go = rand(rng, (2, 16, 9, 9), F32)
    assert pyconv.explain(grad.conv2d_weight, x, w.shape, go, padding=1).algorithm == "dense"
    assert pyconv.explain(grad.conv2d_input, x.shape, w, go, padding=1).algorithm == "flip_conv"
    go2 = rand(rng, (2, 16, 5, 5), F32)
    assert pyconv.explain(grad.conv2d_input, x.shape, w, go2, stride=2, padding=1).algorithm == "transposed"
    assert pyconv.explain(grad.conv2d_weight, x, (16, 1, 3, 3), go, padding=1, groups=16).algorithm == "thin"
    # strided thin groups: the phase-plane kernel (the stride-1 thin kernel's rows would run scalar)
    assert pyconv.explain(grad.conv2d_weight, x, (16, 1, 3, 3), go2, stride=2, padding=1,
                          groups=16).algorithm == "thin_phase"
    # 1x1: panel where the output channels fill at least half of its blocks (the calibrated
    # flag), else the batched matrix products
    go48 = rand(rng, (2, 48, 9, 9), F32)
    assert pyconv.explain(grad.conv2d_weight, x, (48, 16, 1, 1), go48).algorithm == "panel"
    assert pyconv.explain(grad.conv2d_weight, x, (8, 16, 1, 1), go[:, :8]).algorithm == "matmul"
    # ... in groups too, one product per group (thin groups and depthwise included)
    assert pyconv.explain(grad.conv2d_weight, x, (16, 8, 1, 1), go, groups=2).algorithm == "matmul"
    assert pyconv.explain(grad.conv2d_weight, x, (8, 8, 1, 1), go[:, :8], groups=2).algorithm == "matmul"
    assert pyconv.explain(grad.conv2d_weight, x, (16, 1, 1, 1), go, groups=16).algorithm == "matmul"
    go96 = rand(rng, (2, 96, 9, 9), F32)
    assert pyconv.explain(grad.conv2d_weight, x, (96, 8, 1, 1), go96, groups=2).algorithm == "panel"
    with tuning.override(weight_panel=False):
        assert pyconv.explain(grad.conv2d_weight, x, (48, 16, 1, 1), go48).algorithm == "matmul"
    plans = pyconv.explain(grad.conv2d_backward, go, x, w, padding=1)
    assert [p.op for p in plans] == ["input_grad", "weight_grad"]
    assert plans.algorithm == "flip_conv+dense"


def test_signal_choices():
    assert pyconv.explain(signal.convolve, np.ones(10), np.ones(3)).algorithm == "direct"
    assert pyconv.explain(signal.convolve, np.ones(4096), np.ones(2049)).algorithm == "fft"
    assert pyconv.explain(signal.fftconvolve, np.ones((8, 8)), np.ones((3, 3))).algorithm == "fft"
    assert pyconv.explain(signal.oaconvolve, np.ones(100000), np.ones(101)).algorithm == "oa"
    assert pyconv.explain(signal.convolve2d, np.ones((10, 10)), np.ones((3, 3))).algorithm == "direct"
    p = pyconv.explain(signal.correlate, np.ones((5, 6), np.float32), np.ones((2, 2), np.float32), mode="valid")
    assert p.geometry.out == (4, 5) and p.dtype == np.float32


def test_explain_checks_like_the_call_and_runs_no_kernel():
    with pytest.raises(ValueError, match="groups"):
        pyconv.explain(nn.conv2d, np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3)), groups=2)
    with pytest.raises(TypeError, match="func"):
        pyconv.explain(None)
    with pytest.raises(ValueError, match="no convolution kernel"):
        pyconv.explain(signal.convolve, 2.0, 3.0)
    # a layer whose kernel would take seconds is explained at once (no kernel runs)
    p = pyconv.explain(nn.conv2d, np.ones((64, 64, 128, 128), F32), np.ones((64, 64, 3, 3), F32), padding=1)
    assert p.algorithm == "dense_oc" and p.workspace_bytes > 0


def test_huge_dilation_is_pruned_in_the_plan():
    x = np.ones((1, 1, 5, 5))
    p = pyconv.explain(nn.conv2d, x, np.ones((1, 1, 3, 3)), padding=2**20, dilation=2**20)
    assert p.prune is not None and p.geometry.kernel == (1, 1) and "pruned" in str(p)
    p = pyconv.explain(grad.conv2d_weight, x, (1, 1, 3, 3), np.ones((1, 1, 5, 5)), padding=2**16, dilation=2**16)
    assert p.prune is not None and p.workspace_bytes < 1 << 20


def test_plans_are_cached_per_signature():
    from pyconv._engine import conv as engine
    rng = np.random.default_rng(2)
    x, w = rand(rng, (1, 8, 11, 11)), rand(rng, (8, 8, 3, 3))
    a = pyconv.explain(nn.conv2d, x, w, padding=1)
    b = pyconv.explain(nn.conv2d, x + 1, w, padding=1)
    assert a is b                                           # same signature: the cached plan
    assert pyconv.explain(nn.conv2d, x, w, padding=2) is not a
    with pyconv.threads(1):
        c = pyconv.explain(nn.conv2d, x, w, padding=1)
    assert c.threads == 1
    with tuning.override(workspace_bytes=1):                # other thresholds: another plan
        assert pyconv.explain(nn.conv2d, x, w, padding=1) is not a
    assert len(engine.plan_forward.cache.d) <= tuning.DEFAULT.plan_cache_size


def test_verbose_logs_one_line_per_kernel():
    code = ("import numpy as np; from pyconv import nn, grad; import pyconv\n"
            "x = np.ones((1, 4, 8, 8), np.float32); w = np.ones((8, 4, 3, 3), np.float32)\n"
            "y = nn.conv2d(x, w, padding=1)\n"
            "grad.conv2d_backward(y, x, w, padding=1)\n"
            "pyconv.convolve(np.ones(10), np.ones(3), method='direct')\n")
    env = dict(os.environ, PYCONV_VERBOSE="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("pyconv_verbose,")]
    assert len(lines) == 4, r.stderr
    assert lines[0].startswith("pyconv_verbose,nn.conv2d,forward,")
    assert lines[1].startswith("pyconv_verbose,grad.conv2d_backward,forward,")      # dx: flipped conv
    assert lines[2].startswith("pyconv_verbose,grad.conv2d_backward,weight_grad,")
    assert lines[3].startswith("pyconv_verbose,signal.convolve,signal,direct,")
    assert all("float32" in ln and "threads=" in ln and ln.endswith(" ms") for ln in lines[:3])


# --------------------------------------------------------------------------- every algorithm agrees

# (N, C_in, C_out, spatial, kernel, stride, padding, dilation, groups) on a seeded grid:
# dense, thin, grouped, pointwise, strided, dilated, asymmetric padding, 1-D/3-D
_rng = np.random.default_rng(2024)
LAYERS = [
    (2, 8, 16, (9, 10), (3, 3), 1, 1, 1, 1),
    (1, 6, 9, (11, 7), (3, 2), (2, 1), ((1, 0), (2, 1)), (1, 2), 3),
    (2, 4, 4, (10, 9), (3, 3), 2, 1, 1, 4),
    (1, 16, 8, (6, 7), (1, 1), 1, 0, 1, 1),
    (1, 16, 8, (6, 7), (1, 1), 2, 0, 1, 2),
    (2, 3, 8, (13,), (5,), 3, 2, 2, 1),
    (1, 4, 8, (5, 6, 7), (3, 3, 2), (1, 2, 1), 1, 1, 2),
    (1, 2, 4, (12, 12), (4, 4), 2, 3, 1, 2),
    (2, 12, 8, (5, 4), (1, 1), 1, 0, 1, 4),
]
for _ in range(6):
    nd = int(_rng.integers(1, 4))
    groups = int(_rng.choice([1, 2]))
    cg, og = int(_rng.integers(1, 5)), int(_rng.choice([1, 3, 8, 9]))
    k = tuple(int(v) for v in _rng.integers(1, 4, nd))
    d = tuple(int(v) for v in _rng.integers(1, 3, nd))
    s = tuple(int(v) for v in _rng.integers(1, 3, nd))
    sp = tuple(int(dd * (kk - 1) + 1 + _rng.integers(0, 6)) for kk, dd in zip(k, d))
    p = tuple(int(_rng.integers(0, kk)) for kk in k)
    LAYERS.append((int(_rng.integers(1, 3)), cg * groups, og * groups, sp, k, s, p, d, groups))


def _run_all(fn, plan_of):
    """``fn()`` once per algorithm among the candidates of ``plan_of()``, each forced; returns
    {algorithm: result} after checking that the forced plan is the one that ran."""
    out = {}
    for alg in plan_of().candidates:
        with force(alg):
            assert plan_of().algorithm == alg
            out[alg] = fn()
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(LAYERS)))
def test_every_algorithm_agrees(case, dtype):
    n, cin, cout, sp, k, s, p, d, g = LAYERS[case]
    rng = np.random.default_rng(case)
    x = rand(rng, (n, cin) + sp, dtype)
    w = rand(rng, (cout, cin // g) + k, dtype)
    b = rand(rng, (cout,), dtype)
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    ref = conv_nd(x.astype(float), w.astype(float), b.astype(float), **kw)
    nred = cin // g * int(np.prod(k))
    res = _run_all(lambda: nn.conv(x, w, b, **kw), lambda: pyconv.explain(nn.conv, x, w, b, **kw))
    assert len(res) >= 3
    for alg, y in res.items():
        assert_close(y, ref.astype(dtype), dtype, n_reduce=nred)
    go = rand(rng, ref.shape, dtype)
    # weight gradient: sum over the batch and positions of x windows times grad_output
    wfun = getattr(grad, f"conv{len(sp)}d_weight")
    gw = _run_all(lambda: wfun(x, w.shape, go, **kw), lambda: pyconv.explain(wfun, x, w.shape, go, **kw))
    algs = list(gw)
    for alg in algs[1:]:
        assert_close(gw[alg], gw[algs[0]], dtype, n_reduce=n * int(np.prod(ref.shape[2:])))
    # input gradient, checked against the adjoint identity <conv(x), go> = <x, conv_input(go)>
    ifun = getattr(grad, f"conv{len(sp)}d_input")
    gx = _run_all(lambda: ifun(x.shape, w, go, **kw), lambda: pyconv.explain(ifun, x.shape, w, go, **kw))
    lhs = float(np.vdot(conv_nd(x.astype(float), w.astype(float), None, **kw), go.astype(float)))
    for alg, v in gx.items():
        assert v.shape == x.shape and v.dtype == dtype
        assert abs(float(np.vdot(x.astype(float), v.astype(float))) - lhs) <= 1e-3 * max(1.0, abs(lhs)) * (
            1e3 if dtype == np.float32 else 1)
    for alg in list(gx)[1:]:
        assert_close(gx[alg], gx[list(gx)[0]], dtype, n_reduce=cout * int(np.prod(k)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(LAYERS)))
def test_every_transposed_algorithm_agrees(case, dtype):
    n, cin, cout, sp, k, s, p, d, g = LAYERS[case]
    if any(isinstance(v, tuple) for v in (p if isinstance(p, tuple) else ())):
        p = tuple(a for a, _ in p)
    s_ = (s,) * len(sp) if isinstance(s, int) else s
    d_ = (d,) * len(sp) if isinstance(d, int) else d
    p_ = (p,) * len(sp) if isinstance(p, int) else p
    p_ = tuple(min(pp, dd * (kk - 1)) for pp, dd, kk in zip(p_, d_, k))
    op = tuple(int(ss > 1) for ss in s_)
    rng = np.random.default_rng(100 + case)
    x = rand(rng, (n, cin) + sp, dtype)
    w = rand(rng, (cin, cout // g) + k, dtype)
    kw = dict(stride=s_, padding=p_, output_padding=op, groups=g, dilation=d_)
    f = getattr(nn, f"conv_transpose{len(sp)}d")
    ref = conv_transpose_nd(x.astype(float), w.astype(float), None, **kw)
    res = _run_all(lambda: f(x, w, **kw), lambda: pyconv.explain(f, x, w, **kw))
    assert len(res) >= 2
    for alg, y in res.items():
        assert_close(y, ref.astype(dtype), dtype, n_reduce=cin // g * int(np.prod(k)))


def test_forcing_an_algorithm_that_cannot_serve_keeps_the_default():
    rng = np.random.default_rng(5)
    x, w = rand(rng, (1, 8, 9, 9)), rand(rng, (8, 8, 3, 3))
    with force("pointwise"):         # a 3x3 layer is not pointwise
        assert pyconv.explain(nn.conv2d, x, w).algorithm == "dense"
    with force("fft"):
        assert pyconv.explain(nn.conv2d, x, w).algorithm == "dense"


# --------------------------------------------------------------------------- huge dilation in gradients

@pytest.mark.parametrize("e", [14, 16])
def test_weight_and_input_gradients_with_huge_dilation(e):
    """Only the centre tap of a 3x3 kernel meets a 5x5 input when padding = dilation = 2**e:
    the gradients are those of that 1x1 convolution (the other taps' weight gradient is 0),
    computed without a padded frame of 2**(2e) elements."""
    rng = np.random.default_rng(e)
    q = 2**e
    x = rand(rng, (2, 3, 5, 5))
    w = rand(rng, (4, 3, 3, 3))
    go = rand(rng, (2, 4, 5, 5))
    kw = dict(padding=q, dilation=q)
    gw = grad.conv2d_weight(x, w.shape, go, **kw)
    expect = np.zeros(w.shape)
    expect[:, :, 1, 1] = np.einsum("nohw,nchw->oc", go, x)
    assert_close(gw, expect, n_reduce=50)
    gx = grad.conv2d_input(x.shape, w, go, **kw)
    assert_close(gx, np.einsum("nohw,oc->nchw", go, w[:, :, 1, 1]), n_reduce=4)
    gx2, gw2, gb2 = grad.conv2d_backward(go, x, w, np.zeros(4), **kw)
    np.testing.assert_array_equal(gx2, gx)
    np.testing.assert_array_equal(gw2, gw)
    assert_close(gb2, go.sum(axis=(0, 2, 3)), n_reduce=50)
    # the transposed convolution with the same geometry (weight (C_in, C_out, k, k))
    wt = rand(rng, (3, 4, 3, 3))
    y = nn.conv_transpose2d(x, wt, **kw)
    gy = rand(rng, y.shape)
    tx, tw, _ = grad.conv_transpose2d_backward(gy, x, wt, **kw)
    assert_close(tx, np.einsum("nohw,co->nchw", gy, wt[:, :, 1, 1]), n_reduce=4)
    ew = np.zeros(wt.shape)
    ew[:, :, 1, 1] = np.einsum("nchw,nohw->co", x, gy)
    assert_close(tw, ew, n_reduce=50)


def test_huge_dilation_gradients_vs_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x, w = rand(rng, (1, 2, 5, 6)), rand(rng, (3, 2, 3, 3))
    kw = dict(stride=1, padding=2**14, dilation=2**14)
    go = rand(rng, (1, 3, 5, 6))
    tw = torch.nn.grad.conv2d_weight(torch.from_numpy(x), w.shape, torch.from_numpy(go), **kw).numpy()
    tx = torch.nn.grad.conv2d_input(x.shape, torch.from_numpy(w), torch.from_numpy(go), **kw).numpy()
    assert_close(grad.conv2d_weight(x, w.shape, go, **kw), tw, n_reduce=30)
    assert_close(grad.conv2d_input(x.shape, w, go, **kw), tx, n_reduce=3)


def test_pruned_gradient_with_nonfinite_grad_output_matches_unpruned():
    """A NaN in grad_output reaches the dropped taps through the padded zeros (0 * nan), exactly
    as without pruning: such calls run the unpruned plan."""
    x = np.ones((1, 1, 5, 5))
    go = np.ones((1, 1, 5, 5))
    go[0, 0, 2, 2] = np.nan
    gw = grad.conv2d_weight(x, (1, 1, 3, 3), go, padding=8, dilation=8)
    assert np.isnan(gw).all()


# --------------------------------------------------------------------------- the call-signature fast path

def test_repeated_calls_keep_every_check():
    """A signature seen before runs its cached plan; anything not exactly that signature
    (a bool for an int, a list, another shape or dtype) still takes the full checks."""
    rng = np.random.default_rng(11)
    x, w, b = rand(rng, (2, 3, 7, 7)), rand(rng, (4, 3, 3, 3)), rand(rng, (4,))
    ref = conv_nd(x, w, b, padding=1)
    for _ in range(3):
        assert_close(nn.conv2d(x, w, b, padding=1), ref, n_reduce=27)
    with pytest.raises(TypeError, match="padding"):
        nn.conv2d(x, w, b, padding=True)
    assert_close(nn.conv2d(x, w, b, padding=[1, 1]), ref, n_reduce=27)
    with pytest.raises(ValueError, match="bias"):
        nn.conv2d(x, w, b[:3], padding=1)
    with pytest.raises(ValueError):
        nn.conv2d(x[:, :2], w, b, padding=1)
    assert_close(nn.conv2d(x[0], w, b, padding=1), ref[0], n_reduce=27)               # unbatched
    assert_close(nn.conv2d(x[..., ::-1], w, b, padding=1),                              # a strided view
                 conv_nd(x[..., ::-1], w, b, padding=1), n_reduce=27)
    go = rand(rng, ref.shape)
    first = grad.conv2d_backward(go, x, w, b, padding=1)
    again = grad.conv2d_backward(go, x, w, b, padding=1)
    for u, v in zip(first, again):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="grad_output"):
        grad.conv2d_backward(go[:, :, :3], x, w, b, padding=1)
    with pytest.raises(TypeError):
        grad.conv2d_backward(go, x, w, b, padding=1.0)


def test_repeated_single_gradient_calls_keep_every_check():
    """convNd_input / convNd_weight: a signature seen before runs its cached plan (the same
    bits as the first call); another shape, a list, an unbatched or strided operand, a bad
    grad_output still take the full checks or give their own right answer."""
    rng = np.random.default_rng(13)
    x, w = rand(rng, (3, 4, 9, 8)), rand(rng, (6, 4, 3, 3))
    kw = dict(stride=2, padding=1)
    go = rand(rng, conv_nd(x, w, None, **kw).shape)
    V, U = rand(rng, w.shape), rand(rng, x.shape)
    gw0 = grad.conv2d_weight(x, w.shape, go, **kw)
    gx0 = grad.conv2d_input(x.shape, w, go, **kw)
    # adjoint identities against the definition: <dW, V> = <conv(x, V), dy>, <dx, U> = <conv(U, w), dy>
    np.testing.assert_allclose(np.vdot(gw0, V), np.vdot(conv_nd(x, V, None, **kw), go), rtol=1e-11)
    np.testing.assert_allclose(np.vdot(gx0, U), np.vdot(conv_nd(U, w, None, **kw), go), rtol=1e-11)
    for _ in range(2):
        np.testing.assert_array_equal(grad.conv2d_weight(x, w.shape, go, **kw), gw0)
        np.testing.assert_array_equal(grad.conv2d_input(x.shape, w, go, **kw), gx0)
    np.testing.assert_array_equal(grad.conv2d_weight(x, list(w.shape), go, **kw), gw0)      # a list: full path
    np.testing.assert_array_equal(grad.conv2d_input(list(x.shape), w, go, **kw), gx0)
    for _ in range(2):                                                                      # unbatched
        np.testing.assert_array_equal(grad.conv2d_weight(x[0], w.shape, go[0], **kw),
                                      grad.conv2d_weight(x[:1], w.shape, go[:1], **kw))
        np.testing.assert_array_equal(grad.conv2d_input(x.shape[1:], w, go[1], **kw), gx0[1])
    xf, gof = np.asfortranarray(x), go[..., ::-1].copy()[..., ::-1]
    np.testing.assert_array_equal(grad.conv2d_weight(xf, w.shape, gof, **kw), gw0)           # layouts
    np.testing.assert_array_equal(grad.conv2d_weight(x.astype(np.float32), w.shape, go.astype(np.float32), **kw),
                                  grad.conv2d_weight(x.astype(np.float32), w.shape, go.astype(np.float32), **kw))
    with pytest.raises(ValueError, match="grad_output"):
        grad.conv2d_weight(x, w.shape, go[:, :, :2], **kw)
    with pytest.raises(ValueError, match="grad_output"):
        grad.conv2d_input(x.shape, w, go[:, :5], **kw)
    with pytest.raises(TypeError):
        grad.conv2d_weight(x, w.shape, go, stride=2.0, padding=1)
    with pytest.raises(TypeError, match="complex"):
        grad.conv2d_input(x.shape, w.astype(complex), go, **kw)


def test_repeated_signal_calls_follow_nonfinite_weights():
    """convolve2d's cached plan serves finite weights only: a NaN in a later call's kernel
    still reaches the padded border as scipy's (0 * NaN)."""
    import scipy.signal as ss
    rng = np.random.default_rng(12)
    a, k = rand(rng, (10, 10)), rand(rng, (3, 3))
    for _ in range(2):
        np.testing.assert_allclose(signal.convolve2d(a, k), ss.convolve2d(a, k), rtol=1e-12, atol=1e-12)
    kn = k.copy()
    kn[0, 0] = np.nan
    np.testing.assert_array_equal(np.isnan(signal.convolve2d(a, kn)), np.isnan(ss.convolve2d(a, kn)))
    for mode in ("full", "same", "valid"):
        for _ in range(2):
            np.testing.assert_allclose(signal.correlate2d(k, a, mode=mode), ss.correlate2d(k, a, mode=mode),
                                       rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(signal.convolve(a[0], k[0], mode=mode, method="direct"),
                                       ss.convolve(a[0], k[0], mode=mode, method="direct"), rtol=1e-12, atol=1e-12)
    ai = (a * 10).astype(np.int64)
    for _ in range(2):                                  # integers: values decide, never cached
        np.testing.assert_array_equal(signal.convolve(ai[0], ai[1]), ss.convolve(ai[0], ai[1]))


# --------------------------------------------------------------------------- small maps

SMALL_MAPS = [
    # (N, C_in, C_out, spatial, kernel, stride, padding, groups): batches that are no
    # multiple of the samples per unit, groups, 1-D/3-D, the digits CNN's 6x6 stride-2 layer
    (9, 6, 8, (5, 6), (3, 3), 2, 1, 2),
    (7, 4, 16, (4,), (3,), 1, 1, 1),
    (5, 2, 8, (3, 4, 3), (2, 2, 2), 1, 1, 1),
    (32, 16, 32, (6, 6), (3, 3), 2, 1, 1),
]


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("case", range(len(SMALL_MAPS)))
def test_small_maps_put_several_samples_in_one_gemm(case, nthreads):
    """On small maps a GEMM unit holds several samples side by side (plan tile 'samples'):
    the forward against the definition, the weight and input gradients against the adjoint
    identities <dW, V> = <conv(x, V), dy> and <dx, U> = <conv(U, w), dy> (float64 sums)."""
    n, cin, cout, sp, k, s, p, g = SMALL_MAPS[case]
    rng = np.random.default_rng(300 + case)
    kw = dict(stride=s, padding=p, groups=g)
    f64 = lambda a: a.astype(np.float64)  # noqa: E731
    for dtype in (np.float32, np.float64):
        x = rand(rng, (n, cin) + sp, dtype)
        w = rand(rng, (cout, cin // g) + k, dtype)
        b = rand(rng, (cout,), dtype)
        ref = conv_nd(f64(x), f64(w), f64(b), **kw)
        go = rand(rng, ref.shape, dtype)
        wfun = getattr(grad, f"conv{len(sp)}d_weight")
        ifun = getattr(grad, f"conv{len(sp)}d_input")
        with pyconv.threads(nthreads), force("gemm"):
            pf = pyconv.explain(nn.conv, x, w, b, **kw)
            pw = pyconv.explain(wfun, x, w.shape, go, **kw)
            pi = pyconv.explain(ifun, x.shape, w, go, **kw).leaf()
            assert pf.algorithm == pw.algorithm == pi.algorithm == "gemm"
            assert min(pf.tile("samples", 1), pw.tile("samples", 1), pi.tile("samples", 1)) > 1
            y = nn.conv(x, w, b, **kw)
            gw = wfun(x, w.shape, go, **kw)
            gx = ifun(x.shape, w, go, **kw)
        assert y.dtype == gw.dtype == gx.dtype == dtype
        nred = cin // g * int(np.prod(k))
        assert_close(y, ref.astype(dtype), dtype, n_reduce=nred)
        tol = 1e-4 if dtype == np.float32 else 1e-11
        V, U = rand(rng, w.shape), rand(rng, x.shape)
        lhs, rhs = float(np.vdot(f64(gw), V)), float(np.vdot(conv_nd(f64(x), V, None, **kw), f64(go)))
        assert abs(lhs - rhs) <= tol * np.sqrt(gw.size * n * ref[0, 0].size) * max(1.0, np.abs(f64(gw)).max())
        lhs, rhs = float(np.vdot(f64(gx), U)), float(np.vdot(conv_nd(U, f64(w), None, **kw), f64(go)))
        assert abs(lhs - rhs) <= tol * np.sqrt(gx.size * nred) * max(1.0, np.abs(f64(gx)).max())


def test_small_maps_choose_gemm_for_strided_input_gradients():
    # 3x3 positions per output phase: the dense kernel's 32-position blocks would run empty
    rng = np.random.default_rng(9)
    x, w = rand(rng, (32, 16, 6, 6), F32), rand(rng, (32, 16, 3, 3), F32)
    go = rand(rng, (32, 32, 3, 3), F32)
    p = pyconv.explain(grad.conv2d_input, x.shape, w, go, stride=2, padding=1)
    assert p.leaf().algorithm == "gemm" and p.leaf().tile("samples", 1) > 1
    assert pyconv.explain(nn.conv2d, x, w, stride=2, padding=1).algorithm == "gemm"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_channel_blocks_keep_the_bits(dtype):
    """The dense kernel takes the input channels ``cblock`` at a time (weights kept in L1);
    the sums run in the same order, so every split gives the same bits as none: shifted
    last blocks, several tiles per plane, stride 2, and the transposed phases."""
    rng = np.random.default_rng(11)
    cases = [(nn.conv2d, rand(rng, (2, 21, 13, 11), dtype), rand(rng, (10, 21, 3, 3), dtype), dict(padding=1)),
             (nn.conv2d, rand(rng, (1, 19, 40, 37), dtype), rand(rng, (9, 19, 3, 2), dtype), dict(stride=2)),
             (nn.conv_transpose2d, rand(rng, (2, 18, 9, 10), dtype), rand(rng, (18, 9, 4, 4), dtype),
              dict(stride=2, padding=1))]
    for f, x, w, kw in cases:
        runs = []
        for wb in (1, 5 * 4 * 8 * x.dtype.itemsize, 1 << 40):
            # (the phase-plane kernel: dense_oc / phases_oc would take float64 layers of 9 or 10
            # outputs)
            with tuning.override(dense_wblock_bytes=wb, dense_oc=False, dense_oc_f8=False, phases_oc=False,
                                 phases_oc_f8=False):
                p = pyconv.explain(f, x, w, **kw)
                assert p.algorithm in ("dense", "phases")
                assert (p.tile("cblock") is not None) == (wb < 1 << 40)
                runs.append(f(x, w, **kw))
        ref = (conv_nd if f is nn.conv2d else conv_transpose_nd)(x.astype(float), w.astype(float), None, **kw)
        assert_close(runs[0], ref.astype(dtype), dtype, n_reduce=w[0].size)
        for y in runs[1:]:
            np.testing.assert_array_equal(y, runs[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_gemm_of_a_small_batch_splits_rows(monkeypatch, dtype):
    """A small batch whose positions a thread split would cut into tiles narrower than half
    the output channels: each unit's GEMM split by output-channel rows into parts fixed by
    the thread count (every count: the definition; every team the machine's load leaves,
    one thread to more than the parts: the same bits), grouped layers and bias too."""
    from pyconv._engine import conv as _conv
    rng = np.random.default_rng(21)
    for x_shape, w_shape, kw in [((1, 24, 7, 7), (96, 24, 3, 3), dict(padding=1)),
                                 ((2, 16, 5, 6), (64, 16, 3, 3), dict(padding=1, stride=(1, 2))),
                                 ((1, 16, 6, 6), (128, 8, 3, 3), dict(padding=1, groups=2))]:
        x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
        b = rand(rng, w_shape[:1], dtype)
        want = conv_nd(x, w, b, **kw)
        for n in (2, 3):
            runs = []
            for team in (n, 1, n + 2):
                monkeypatch.setattr(_conv, "team_size", lambda k, team=team: team)
                with pyconv.threads(n), force("gemm"):
                    p = pyconv.explain(nn.conv2d, x, w, b, **kw)
                    assert p.algorithm == "gemm" and p.tile("row_parts") == n and p.tile("tile") == x[0, 0].size // (
                        kw.get("stride", (1, 1))[1]), p
                    runs.append(nn.conv2d(x, w, b, **kw))
            assert_close(runs[0], want.astype(dtype), dtype, n_reduce=w[0].size)
            for y in runs[1:]:
                np.testing.assert_array_equal(y, runs[0])
        monkeypatch.undo()
        with pyconv.threads(1), force("gemm"):
            assert pyconv.explain(nn.conv2d, x, w, b, **kw).tile("row_parts") is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gemm_splits_rows_for_few_samples(dtype):
    """One sample on two threads: the GEMM weight gradient splits the gradient's rows
    between the parts (one accumulator, whole position tiles) and agrees with the dense
    kernel and the adjoint identity; pointwise and grouped layers too."""
    rng = np.random.default_rng(12)
    for x_shape, w_shape, kw in [((1, 24, 14, 13), (32, 24, 3, 3), dict(stride=2, padding=1)),
                                 ((1, 64, 31, 32), (24, 64, 1, 1), dict()),
                                 ((1, 16, 20, 20), (16, 8, 3, 3), dict(padding=1, groups=2))]:
        x, go = rand(rng, x_shape, dtype), None
        w = rand(rng, w_shape, dtype)
        go = rand(rng, nn.conv2d(x, w, **kw).shape, dtype)
        with pyconv.threads(2), force("gemm"):
            p = pyconv.explain(grad.conv2d_weight, x, w.shape, go, **kw)
            assert p.algorithm == "gemm" and p.tile("row_parts") == 2
            gw = grad.conv2d_weight(x, w.shape, go, **kw)
        V = rand(rng, w.shape)
        lhs = float(np.vdot(gw.astype(float), V))
        rhs = float(np.vdot(conv_nd(x.astype(float), V, None, **kw), go.astype(float)))
        tol = 1e-4 if dtype == np.float32 else 1e-11
        assert abs(lhs - rhs) <= tol * np.sqrt(gw.size * go[0, 0].size) * max(1.0, np.abs(gw).max())
        with pyconv.threads(1):
            one = grad.conv2d_weight(x, w.shape, go, **kw)
        assert_close(gw, one, dtype, n_reduce=go[0, 0].size)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gemm_splits_rows_for_a_large_accumulator(dtype):
    """Many samples, but a (C_out, Kc) accumulator larger than an im2col tile: the parts
    split the gradient's rows (one accumulator) rather than the units (one copy each),
    on small maps a block of samples per GEMM; both splits agree with each other and with
    the adjoint identity."""
    rng = np.random.default_rng(14)
    # (small maps: blocks of samples side by side in each GEMM, a 1x1 among them; a
    # larger map: position tiles of one sample)
    for x_shape, w_shape, kw, nb in [((6, 16, 9, 9), (24, 16, 3, 3), dict(padding=1), 3),
                                     ((5, 12, 11, 10), (20, 12, 3, 2), dict(stride=2), 5),
                                     ((7, 32, 6, 6), (40, 32, 1, 1), dict(), 7),
                                     ((4, 8, 20, 20), (12, 8, 3, 3), dict(padding=1), 1)]:
        x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
        go = rand(rng, nn.conv2d(x, w, **kw).shape, dtype)
        acc_bytes = w.size * x.dtype.itemsize
        with pyconv.threads(2), force("gemm"):
            with tuning.override(tile_bytes=acc_bytes - 1):
                p = pyconv.explain(grad.conv2d_weight, x, w.shape, go, **kw)
                assert p.algorithm == "gemm" and p.tile("row_parts") == 2 and p.tile("samples", 1) == nb, p
                rows = grad.conv2d_weight(x, w.shape, go, **kw)
            with tuning.override(tile_bytes=acc_bytes):
                p = pyconv.explain(grad.conv2d_weight, x, w.shape, go, **kw)
                assert p.algorithm == "gemm" and p.tile("row_parts") is None, p
                units = grad.conv2d_weight(x, w.shape, go, **kw)
        assert_close(rows, units, dtype, n_reduce=go[0, 0].size * go.shape[0])
        V = rand(rng, w.shape)
        lhs = float(np.vdot(rows.astype(float), V))
        rhs = float(np.vdot(conv_nd(x.astype(float), V, None, **kw), go.astype(float)))
        tol = 1e-4 if dtype == np.float32 else 1e-11
        assert abs(lhs - rhs) <= tol * np.sqrt(rows.size * go[0, 0].size) * max(1.0, np.abs(rows).max())


def test_pointwise_matmul_bits_do_not_depend_on_threads():
    # the 1x1 forward on BLAS's threads: the team may shrink on a busy machine, the bits may not
    rng = np.random.default_rng(13)
    for dtype in (np.float32, np.float64):
        x, w, b = rand(rng, (3, 64, 17, 19), dtype), rand(rng, (96, 32, 1, 1), dtype), rand(rng, (96,), dtype)
        runs = []
        for nthreads in (1, 2):
            with pyconv.threads(nthreads), force("matmul"):
                assert pyconv.explain(nn.conv2d, x, w, b, groups=2).algorithm == "matmul"
                runs.append(nn.conv2d(x, w, b, groups=2))
        np.testing.assert_array_equal(runs[0], runs[1])
        assert_close(runs[0], conv_nd(x.astype(float), w.astype(float), b.astype(float), groups=2).astype(dtype),
                     dtype, n_reduce=32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_narrow_groups_take_four_wide_register_blocks(dtype):
    """Groups of at most 4 output channels run the dense kernel on 4-wide register blocks
    (an 8-wide block would multiply zeros for half its sums): 4, 3 and 2 outputs per
    group, stride 2, dilation, 1-D, the transposed phases; against the float64
    definition, and with the same bits whether or not the input channels are split."""
    rng = np.random.default_rng(21)
    cases = [(nn.conv2d, (2, 16, 13, 11), (16, 4, 3, 3), dict(padding=1, groups=4)),
             (nn.conv2d, (1, 12, 20, 17), (12, 3, 3, 2), dict(stride=2, groups=4)),
             (nn.conv2d, (2, 6, 9, 40), (6, 2, 3, 3), dict(padding=(0, 2), dilation=(1, 2), groups=3)),
             (nn.conv1d, (3, 8, 50), (8, 4, 5), dict(padding=2, groups=2)),
             (nn.conv_transpose2d, (2, 8, 9, 10), (8, 4, 4, 4), dict(stride=2, padding=1, groups=2))]
    for f, xs, ws, kw in cases:
        x, w = rand(rng, xs, dtype), rand(rng, ws, dtype)
        b = rand(rng, (ws[0] if f is not nn.conv_transpose2d else ws[1] * kw["groups"],), dtype)
        runs = []
        for wb in (1, 1 << 40):
            with force("dense", "phases"), tuning.override(dense_wblock_bytes=wb):
                p = pyconv.explain(f, x, w, b, **kw)
                assert p.algorithm in ("dense", "phases")
                if p.algorithm == "dense":
                    assert p.tile("obw") == 4
                runs.append(f(x, w, b, **kw))
        ref = (conv_nd if f is not nn.conv_transpose2d else conv_transpose_nd)(
            x.astype(float), w.astype(float), b.astype(float), **kw)
        assert_close(runs[0], ref.astype(dtype), dtype, n_reduce=w[0].size)
        np.testing.assert_array_equal(runs[1], runs[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_stride2_columns_every_width(dtype):
    # the GEMM path's im2col of stride-2 rows (pyconv_copy_s2: two loads and a permute per
    # vector of outputs, the last one masked) and its col2im (pyconv_add_s2: the even lanes
    # of two vectors) against the definition, for row widths on either side of one and two
    # vectors of lanes, with and without padding
    rng = np.random.default_rng(41)
    for wdt in (1, 2, 3, 15, 16, 17, 29, 31, 32, 33, 34, 47, 63, 64, 65):
        for pad in (0, 1):
            x = rand(rng, (2, 3, 5, wdt), dtype)
            w = rand(rng, (4, 3, 3, 3), dtype)
            if (wdt + 2 * pad - 3) < 0:
                continue
            kw = dict(stride=(1, 2), padding=pad)
            ref = conv_nd(x.astype(np.float64), w.astype(np.float64), **kw)
            go = rand(rng, ref.shape, dtype)
            with force("gemm"):
                assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == "gemm"
                assert pyconv.explain(grad.conv2d_input, x.shape, w, go, **kw).leaf().algorithm == "gemm"
                y = nn.conv2d(x, w, **kw)
                gw = grad.conv2d_weight(x, w.shape, go, **kw)
                gx = grad.conv2d_input(x.shape, w, go, **kw)
            assert_close(y, ref.astype(dtype), dtype, n_reduce=27)
            # <dW, V> = <conv(x, V), dy>; <dX, U> = <conv(U, w), dy> (col2im's scatter-add)
            V, U = rand(rng, w.shape), rand(rng, x.shape)
            tol = 1e-4 if dtype == np.float32 else 1e-11
            for lhs, rhs in [(np.vdot(gw.astype(np.float64), V), np.vdot(conv_nd(x.astype(np.float64), V, **kw), go)),
                             (np.vdot(gx.astype(np.float64), U), np.vdot(conv_nd(U, w.astype(np.float64), **kw), go))]:
                assert abs(lhs - rhs) <= tol * max(1.0, abs(rhs)) * np.sqrt(go.size)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_planes_every_stride_padding_and_width(dtype):
    # the dense kernel's phase planes (built a plane slab at a time: masked vector moves
    # for unit column stride, permutes for stride 2, a scalar loop beyond) against the
    # definition: strides 1-3 per axis, padding 0-3 (rows and slabs wholly in the padding),
    # row widths on either side of one and two vectors, planes past 1 MiB (built row
    # range by row range as the tiles need them); forward and weight gradient
    rng = np.random.default_rng(43)
    cases = [((2, 3, 5, 6, wdt), (4, 3, 3, 2, 3), dict(stride=s, padding=p))
             for wdt, s, p in [(1, 1, 1), (15, 1, 0), (16, (1, 2, 1), 2), (17, (2, 1, 2), 1),
                               (31, (3, 1, 3), (3, 0, 1)), (33, 2, (0, 3, 2)), (14, (1, 3, 2), 3),
                               (47, (2, 2, 1), (1, 2, 0))]]
    cases.append(((1, 8, 20, 40, 40), (8, 8, 3, 3, 3), dict(padding=1)))       # planes of 1.4 / 2.8 MB
    cases.append(((1, 8, 20, 40, 40), (8, 8, 3, 3, 3), dict(stride=(1, 2, 2), padding=(2, 1, 0))))
    for xs, ws, kw in cases:
        x, w = rand(rng, xs, dtype), rand(rng, ws, dtype)
        ref = conv_nd(x.astype(np.float64), w.astype(np.float64), **kw)
        go = rand(rng, ref.shape, dtype)
        with force("dense"):
            assert pyconv.explain(nn.conv3d, x, w, **kw).algorithm == "dense"
            assert pyconv.explain(grad.conv3d_weight, x, w.shape, go, **kw).leaf().algorithm == "dense"
            y = nn.conv3d(x, w, **kw)
            gw = grad.conv3d_weight(x, w.shape, go, **kw)
        assert_close(y, ref.astype(dtype), dtype, n_reduce=w[0].size)
        # <dW, V> = <conv(x, V), dy>
        V = rand(rng, w.shape)
        lhs = float(np.vdot(gw.astype(np.float64), V))
        rhs = float(np.vdot(conv_nd(x.astype(np.float64), V, **kw), go.astype(np.float64)))
        tol = 1e-4 if dtype == np.float32 else 1e-11
        assert abs(lhs - rhs) <= tol * max(1.0, abs(rhs)) * np.sqrt(go.size)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_whole_rows_and_depth_gaps(dtype):
    """Rows whose outputs fill whole 32-position blocks (float64: 16) short of the frame
    width run block by block from each row's start, skipping the padding columns, and
    3-D frames skip the rows between depth slices: against the definition, and the same
    bits whatever the tile length, channel block or thread count (rows filled exactly,
    rows ending in a partial block, the shifted last block, transposed phases)."""
    rng = np.random.default_rng(29)
    cases = [(nn.conv2d, (2, 5, 9, 32), (6, 5, 3, 3), dict(padding=1)),            # 32 of 34 columns
             (nn.conv2d, (1, 4, 7, 29), (3, 4, 5, 5), dict(padding=2)),            # 29 of 33
             (nn.conv3d, (2, 3, 6, 5, 20), (4, 3, 3, 3, 3), dict(padding=1)),      # depth gaps only
             (nn.conv3d, (1, 4, 5, 6, 16), (5, 4, 3, 2, 3), dict(padding=(1, 0, 1))),
             (nn.conv3d, (1, 3, 4, 5, 32), (2, 3, 3, 3, 3), dict(padding=1)),
             (nn.conv_transpose2d, (1, 4, 16, 16), (4, 3, 4, 4), dict(stride=2, padding=1))]
    for f, xs, ws, kw in cases:
        x, w = rand(rng, xs, dtype), rand(rng, ws, dtype)
        runs = []
        for tile, wb, nt in [(1024, 1 << 40, 1), (40, 1, 2), (100, 3 * 27 * 8 * x.dtype.itemsize, 2), (7, 1 << 40, 1)]:
            with pyconv.threads(nt), force("dense", "phases"), \
                    tuning.override(dense_tile=tile, dense_wblock_bytes=wb, dense_wblock_bytes_3d=wb):
                assert pyconv.explain(f, x, w, **kw).algorithm in ("dense", "phases")
                runs.append(f(x, w, **kw))
        ref = (conv_transpose_nd if f is nn.conv_transpose2d else conv_nd)(x.astype(float), w.astype(float), None,
                                                                            **kw)
        assert_close(runs[0], ref.astype(dtype), dtype, n_reduce=w[0].size)
        for y in runs[1:]:
            np.testing.assert_array_equal(y, runs[0])


def test_strided_thin_layers_weigh_their_image_for_threads():
    # the strided thin kernels move every image element for a quarter or less of its
    # multiply-adds: a thread split counts kvol per element of the image (1x16x14^2
    # depthwise 3x3 stride 2: 7056 multiply-adds, 28224 by its image); a stride-1 layer of
    # the same multiply-adds and a dense strided layer keep the count of multiply-adds
    rng = np.random.default_rng(3)
    x, w = rng.random((1, 16, 14, 14), np.float32), rng.random((16, 1, 3, 3), np.float32)
    go = rng.random((1, 16, 7, 7), np.float32)
    kw = dict(stride=2, padding=1, groups=16)
    with pyconv.threads(2), tuning.override(grain=10000):
        p = pyconv.explain(nn.conv2d, x, w, **kw)
        assert p.algorithm == "thin_phase" and p.threads == 2
        assert pyconv.explain(grad.conv2d_weight, x, w.shape, go, **kw).threads == 2
        p = pyconv.explain(grad.conv2d_input, x.shape, w, go, **kw)
        assert p.sub.algorithm == "thin_phase" and p.sub.threads == 2
        assert pyconv.explain(nn.conv2d, x[..., :7, :7], w, padding=1, groups=16).threads == 1
        # the results do not depend on it
        y = nn.conv2d(x, w, **kw)
    np.testing.assert_array_equal(y, nn.conv2d(x, w, **kw))
