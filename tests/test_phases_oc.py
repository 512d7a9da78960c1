"""The transposed convolution with vectors along its output channels, one output phase at a
time (plan 'phases_oc', dense_direct.phases_oc): strided input gradients and transposed
convolutions against the NumPy float64 definitions (tests/reference.py).

Tolerances: tests/reference.py's table, scaled by the reduction length C_in/groups x taps.
"""
import numpy as np
import pytest

import pyconv
from pyconv import grad, nn
from pyconv._engine import plan as _plan
from pyconv._engine import tuning
from pyconv._kernels import dense_direct

from reference import assert_close, conv_transpose_nd, random_conv_geometry

F32, F64 = np.float32, np.float64
LANES = dense_direct.OC_LANES["float32"]


def _tuple(v, nd):
    return (v,) * nd if np.isscalar(v) else tuple(v)


def _pairs(padding, nd):
    if np.isscalar(padding):
        return ((padding, padding),) * nd
    return tuple((p, p) if np.isscalar(p) else tuple(p) for p in padding)


def input_grad_ref(x_shape, w, go, stride=1, padding=0, dilation=1, groups=1):
    """The input gradient of the convolution by definition: the unpadded transposed
    convolution of grad_output, cropped to the input's window (zeros past the last one)."""
    nd = w.ndim - 2
    full = conv_transpose_nd(go, w, stride=_tuple(stride, nd), padding=0, groups=groups,
                             dilation=_tuple(dilation, nd))
    out = np.zeros(x_shape)
    src = tuple(slice(pb, min(pb + i, f)) for (pb, _), i, f in zip(_pairs(padding, nd), x_shape[2:], full.shape[2:]))
    dst = tuple(slice(0, max(0, s.stop - s.start)) for s in src)
    out[(slice(None), slice(None)) + dst] = full[(slice(None), slice(None)) + src]
    return out


def _transposed_plan(p):
    """The transposed-convolution plan under an input-gradient plan."""
    return p.sub if p.op == "input_grad" else p


def _input_grad(x_shape, w, go, alg="phases_oc", **kw):
    """The input gradient with its transposed convolution forced to ``alg``."""
    nd = w.ndim - 2
    f = getattr(grad, f"conv{nd}d_input")
    with _plan.force(alg):
        p = pyconv.explain(f, x_shape, w, go, **kw)
        assert _transposed_plan(p).algorithm == alg, p
        return f(x_shape, w, go, **kw)


def _check_input(rng, dtype, xs, ws, alg="phases_oc", **kw):
    """dx of the forward convolution (xs, ws, kw) on ``alg`` against the definition."""
    nd = len(ws) - 2
    groups = kw.get("groups", 1)
    x = np.zeros(xs, dtype)
    w = rng.standard_normal(ws).astype(dtype)
    oshape = getattr(nn, f"conv{nd}d")(x, w, **kw).shape
    go = rng.standard_normal(oshape).astype(dtype)
    gx = _input_grad(xs, w, go, alg, **kw)
    ref = input_grad_ref(xs, w, go, kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1), groups)
    assert_close(gx, ref.astype(dtype), n_reduce=ws[0] // groups * int(np.prod(ws[2:])))
    return w, go, gx


# (input shape, weight shape, keywords) of forward convolutions whose input gradient runs on
# phases_oc: stride 2 and 3, dilation, asymmetric padding (the cropped plan), input sizes
# with leftover rows past the last window (output_padding-like), groups, channel counts
# off the vector width (one and two vectors per block, partial blocks), size-1 dims
GRID = [
    ((2, 40, 9, 11), (20, 40, 3, 3), dict(stride=2, padding=1)),
    ((1, 17, 14, 13), (9, 17, 3, 3), dict(stride=2, padding=1)),
    ((2, 33, 10, 12), (7, 33, 3, 3), dict(stride=3, padding=1)),
    ((1, 40, 20, 17), (12, 40, 4, 3), dict(stride=(2, 3), padding=(1, 2), dilation=(2, 1))),
    ((2, 24, 13, 12), (10, 24, 3, 3), dict(stride=2, padding=((0, 1), (2, 1)))),
    ((1, 70, 1, 19), (5, 70, 1, 5), dict(stride=(1, 2), padding=(0, 2))),
    ((2, 64, 12, 12), (8, 32, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((1, 48, 8, 9), (6, 16, 2, 2), dict(stride=2, groups=3)),
    ((2, 20, 5, 5), (11, 20, 5, 5), dict(stride=3, padding=2, dilation=2)),
    ((1, 36, 1, 1), (12, 36, 1, 1), dict(stride=2)),
]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", range(len(GRID)))
def test_input_grad_matches_definition(case, dtype):
    xs, ws, kw = GRID[case]
    _check_input(np.random.default_rng(case), dtype, xs, ws, **kw)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_input_grad_1d_and_3d(dtype):
    rng = np.random.default_rng(7)
    _check_input(rng, dtype, (2, 19, 31), (6, 19, 5), stride=2, padding=2)
    _check_input(rng, dtype, (2, 3, 12), (4, 3, 3), stride=3, padding=1, dilation=2)
    _check_input(rng, dtype, (1, 20, 7, 6, 5), (9, 20, 3, 2, 3), stride=2, padding=1)
    _check_input(rng, dtype, (2, 18, 6, 7, 9), (3, 18, 2, 3, 3), stride=(2, 1, 3), padding=(1, 0, 2),
                 dilation=(1, 2, 1))


@pytest.mark.parametrize("dtype", [F32, F64])
def test_transposed_with_bias_and_output_padding(dtype):
    # nn.conv_transposeNd itself: bias, output_padding, groups, dilation
    rng = np.random.default_rng(11)
    for xs, ws, kw in [((2, 6, 7, 9), (6, 40, 3, 3), dict(stride=2, padding=1, output_padding=1)),
                       ((1, 4, 5, 6), (4, 17, 4, 4), dict(stride=3, padding=(1, 2), output_padding=(2, 0),
                                                          dilation=(1, 2))),
                       ((2, 6, 4, 5), (6, 18, 3, 3), dict(stride=2, groups=2, output_padding=1)),
                       ((1, 5, 6), (5, 33, 4), dict(stride=2, padding=1))]:
        nd = len(ws) - 2
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[1] * kw.get("groups", 1)).astype(dtype)
        f = getattr(nn, f"conv_transpose{nd}d")
        with _plan.force("phases_oc"):
            assert pyconv.explain(f, x, w, b, **kw).algorithm == "phases_oc"
            y = f(x, w, b, **kw)
        assert_close(y, conv_transpose_nd(x, w, b, **kw).astype(dtype), n_reduce=ws[0] * int(np.prod(ws[2:])))


def test_random_grid():
    # seeded random strided geometries (sizes, strides, dilations, paddings, groups)
    rng = np.random.default_rng(2027)
    i = 0
    while i < 20:
        xs, ws, kw = random_conv_geometry(rng, 3 * LANES, 10)
        if all(s == 1 for s in kw["stride"]):
            continue
        # the gradient's output channels are the forward's input channels
        xs, ws = (xs[0], ws[0]) + xs[2:], (xs[1], ws[0] // kw["groups"]) + ws[2:]
        if xs[1] % kw["groups"] or ws[0] % kw["groups"]:
            continue
        _check_input(rng, F32 if i % 2 else F64, xs, ws, **kw)
        i += 1


def test_long_rows_split_in_columns():
    # rows longer than dense_oc_max_cols: units of one row phase's column blocks
    rng = np.random.default_rng(3)
    with tuning.override(dense_oc_max_cols=7):
        w, go, gx = _check_input(rng, F32, (2, 40, 5, 50), (6, 40, 3, 3), stride=(2, 3), padding=1)
        p = pyconv.explain(grad.conv2d_input, (2, 40, 5, 50), w, go, stride=(2, 3), padding=1)
    assert p.sub.algorithm == "phases_oc" and p.sub.tile("cols") == 6


def test_non_contiguous_operands():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((12, 80, 3, 3)).astype(F32)[::2, ::2, ::-1]
    go = rng.standard_normal((2, 6, 9, 20)).astype(F32)[:, :, :, ::2]
    assert not w.flags.c_contiguous and not go.flags.c_contiguous
    gx = _input_grad((2, 40, 18, 20), w, go, stride=2, padding=1)
    assert_close(gx, input_grad_ref((2, 40, 18, 20), w, go, 2, 1).astype(F32), n_reduce=54)


def test_deterministic_and_independent_of_threads_and_blocking():
    # the same bits for every call, thread count, unit size, channel pass and column block
    # (each output's sum runs over (channel, tap) in one order)
    rng = np.random.default_rng(5)
    w = rng.standard_normal((50, 40, 3, 3)).astype(F32)
    go = rng.standard_normal((3, 50, 8, 15)).astype(F32)
    xs = (3, 40, 16, 30)
    y = _input_grad(xs, w, go, stride=2, padding=1)
    assert np.array_equal(y, _input_grad(xs, w, go, stride=2, padding=1))
    old = pyconv.get_num_threads()
    try:
        for n in (1, 2, 3):
            pyconv.set_num_threads(n)
            assert np.array_equal(y, _input_grad(xs, w, go, stride=2, padding=1))
    finally:
        pyconv.set_num_threads(old)
    with tuning.override(dense_oc_positions=1, dense_oc_wblock_bytes=1, dense_oc_max_cols=5):
        assert np.array_equal(y, _input_grad(xs, w, go, stride=2, padding=1))


def test_nonfinite_weight_runs_col2im():
    # as PyTorch: an Inf weight never meets a padded zero (the scatter formulation)
    w = np.ones((20, 40, 3, 3), F32)
    w[3, 1, 0, 0] = np.inf
    go = np.ones((1, 20, 4, 4), F32)
    gx = _input_grad((1, 40, 8, 8), w, go, stride=2, padding=1)
    ref = input_grad_ref((1, 40, 8, 8), w, go, 2, 1)
    assert np.isinf(ref).any() and not np.isnan(ref).any()
    assert_close(gx, ref.astype(F32), n_reduce=180)


def test_default_choice_and_explain():
    rng = np.random.default_rng(6)
    # layer b's input gradient, smaller: 256->128 3x3 stride 2 on 14x14 -> 7x7
    w = rng.standard_normal((64, 48, 3, 3)).astype(F32)
    go = rng.standard_normal((2, 64, 7, 7)).astype(F32)
    xs = (2, 48, 14, 14)
    p = pyconv.explain(grad.conv2d_input, xs, w, go, stride=2, padding=1)
    assert p.sub.algorithm == "phases_oc" and "phases_oc" in str(p) and p.sub.tile("lanes") == 2 * LANES
    assert {"phases", "gemm", "phases_oc"} <= {str(a) for a in p.sub.candidates}
    ref = grad.conv2d_input(xs, w, go, stride=2, padding=1)
    # switched off (per dtype), or past dense_oc's K / positions limits: PHASES or GEMM
    for over in (dict(phases_oc=False), dict(dense_oc_max_k=64 * 4 - 1), dict(dense_oc_min_positions=50)):
        with tuning.override(**over):
            q = pyconv.explain(grad.conv2d_input, xs, w, go, stride=2, padding=1)
            assert q.sub.algorithm in ("phases", "gemm"), over
            assert_close(grad.conv2d_input(xs, w, go, stride=2, padding=1), ref, n_reduce=576)
    with tuning.override(phases_oc_f8=False):
        assert pyconv.explain(grad.conv2d_input, xs, w.astype(F64), go.astype(F64), stride=2,
                              padding=1).sub.algorithm != "phases_oc"
        assert pyconv.explain(grad.conv2d_input, xs, w, go, stride=2, padding=1).sub.algorithm == "phases_oc"
    # one vector of output channels: not the default, still reachable
    q = pyconv.explain(grad.conv2d_input, (2, LANES, 14, 14), w[:, :LANES], go, stride=2, padding=1)
    assert q.sub.algorithm != "phases_oc" and "phases_oc" in [str(a) for a in q.sub.candidates]
    # GEMM, the floor, stays reachable and agrees
    with _plan.force("gemm"):
        assert pyconv.explain(grad.conv2d_input, xs, w, go, stride=2, padding=1).sub.algorithm == "gemm"
        assert_close(grad.conv2d_input(xs, w, go, stride=2, padding=1), ref, n_reduce=576)
