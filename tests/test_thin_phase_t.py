"""The transposed convolution of thin groups by output phases over a per-thread padded frame
(plan 'thin_phase' of a transposed convolution, dense_direct.thin_phase_t): the input
gradients of strided depthwise and thin-group layers, and nn.conv_transposeNd itself,
against the NumPy float64 definitions (tests/reference.py).

Tolerances: tests/reference.py's table, scaled by the reduction length C_in/groups x taps.
"""
import numpy as np
import pytest

import pyconv
from pyconv import grad, nn
from pyconv._engine import plan as _plan

from reference import assert_close, conv_transpose_nd
import test_phases_oc
from test_phases_oc import input_grad_ref

F32, F64 = np.float32, np.float64


def _input_grad(x_shape, w, go, **kw):
    return test_phases_oc._input_grad(x_shape, w, go, "thin_phase", **kw)


def _check_input(rng, dtype, xs, ws, **kw):
    return test_phases_oc._check_input(rng, dtype, xs, ws, "thin_phase", **kw)


# (input shape, weight shape, keywords) of strided forward convolutions in thin groups:
# depthwise (one and two outputs per channel), grouped with few channels, stride 2 and 3 and
# per dim, dilation, asymmetric padding (the cropped plan), inputs with rows past the last
# window, odd and even widths (the interleave's masked tail), kernels smaller than the
# stride (phases without taps: their outputs are zero), 1-D, 3-D, size-1 dims
GRID = [
    ((2, 6, 11, 13), (6, 1, 3, 3), dict(stride=2, padding=1, groups=6)),
    ((1, 4, 14, 14), (8, 1, 3, 3), dict(stride=2, padding=1, groups=4)),
    ((1, 4, 20, 9), (8, 2, 5, 3), dict(stride=(3, 2), padding=(2, 0), groups=2)),
    ((2, 8, 17, 40), (8, 1, 3, 3), dict(stride=(1, 2), padding=1, groups=8)),
    ((1, 3, 30, 31), (3, 1, 3, 3), dict(stride=(2, 1), padding=((1, 2), (0, 1)), groups=3)),
    ((2, 4, 23, 23), (4, 1, 3, 3), dict(stride=2, dilation=2, padding=2, groups=4)),
    ((1, 6, 7, 7), (12, 1, 4, 4), dict(stride=2, padding=1, groups=6)),
    ((3, 5, 101), (5, 1, 9), dict(stride=2, padding=4, groups=5)),
    ((1, 4, 9, 10, 11), (4, 1, 3, 3, 3), dict(stride=2, padding=1, groups=4)),
    ((2, 2, 5, 5), (2, 1, 7, 7), dict(stride=3, padding=3, groups=2)),
    ((2, 3, 9, 8), (3, 1, 1, 1), dict(stride=2, groups=3)),
    ((1, 2, 1, 45), (2, 1, 1, 5), dict(stride=(1, 4), padding=(0, 2), groups=2)),
    ((1, 4, 70, 70), (4, 1, 5, 5), dict(stride=2, padding=2, groups=4)),
]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", range(len(GRID)))
def test_input_grad_matches_definition(case, dtype):
    xs, ws, kw = GRID[case]
    _check_input(np.random.default_rng(case), dtype, xs, ws, **kw)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_transposed_with_bias_and_output_padding(dtype):
    # nn.conv_transposeNd itself: bias, output_padding, groups, dilation, several input
    # channels per group (the frame holds all of the group's channels)
    rng = np.random.default_rng(11)
    for xs, ws, kw in [((2, 6, 7, 9), (6, 1, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=6)),
                       ((1, 4, 5, 6), (4, 3, 4, 4), dict(stride=3, padding=(1, 2), output_padding=(2, 0),
                                                         dilation=(1, 2), groups=2)),
                       ((2, 6, 4, 5), (6, 2, 3, 3), dict(stride=2, groups=3, output_padding=1)),
                       ((1, 5, 6), (5, 1, 4), dict(stride=2, padding=1, groups=5)),
                       ((1, 2, 3, 4, 5), (2, 1, 3, 3, 3), dict(stride=(2, 1, 3), padding=1, groups=2))]:
        nd = len(ws) - 2
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[1] * kw["groups"]).astype(dtype)
        f = getattr(nn, f"conv_transpose{nd}d")
        with _plan.force("thin_phase"):
            assert pyconv.explain(f, x, w, b, **kw).algorithm == "thin_phase"
            y = f(x, w, b, **kw)
        assert_close(y, conv_transpose_nd(x, w, b, **kw).astype(dtype),
                     n_reduce=ws[0] // kw["groups"] * int(np.prod(ws[2:])))


def test_random_grid():
    # seeded random strided thin-group geometries
    rng = np.random.default_rng(2028)
    i = 0
    while i < 24:
        nd = int(rng.integers(1, 4))
        groups = int(rng.integers(1, 5))
        cg, og = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        k = tuple(int(v) for v in rng.integers(1, 6, nd))
        s = tuple(int(v) for v in rng.integers(1, 4, nd))
        d = tuple(int(v) for v in rng.integers(1, 3, nd))
        sp = tuple(int(v) for v in rng.integers(1, 16 if nd < 3 else 8, nd))
        p = tuple(int(rng.integers(0, (kk - 1) * dd // 2 + 1)) for kk, dd in zip(k, d))
        if all(v == 1 for v in s) or any((i_ + 2 * pp - dd * (kk - 1) - 1) < 0 for i_, pp, dd, kk in zip(sp, p, d, k)):
            continue
        xs, ws = (int(rng.integers(1, 3)), groups * cg) + sp, (groups * og, cg) + k
        kw = dict(stride=s, padding=p, dilation=d, groups=groups)
        with _plan.force("thin_phase"):
            pl = pyconv.explain(getattr(grad, f"conv{nd}d_input"), xs, np.zeros(ws), np.zeros(
                nn.conv(np.zeros(xs), np.zeros(ws), **kw).shape), **kw)
        if pl.prune is not None:
            continue        # (taps that only read padding dropped: another geometry)
        _check_input(rng, F32 if i % 2 else F64, xs, ws, stride=s, padding=p, dilation=d, groups=groups)
        i += 1


def test_non_contiguous_operands():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((16, 1, 3, 3)).astype(F32)[::2, :, ::-1]
    go = rng.standard_normal((2, 8, 9, 20)).astype(F32)[:, :, :, ::2]
    assert not w.flags.c_contiguous and not go.flags.c_contiguous
    gx = _input_grad((2, 8, 18, 20), w, go, stride=2, padding=1, groups=8)
    assert_close(gx, input_grad_ref((2, 8, 18, 20), w, go, 2, 1, 1, 8).astype(F32), n_reduce=9)


def test_deterministic_and_independent_of_threads():
    # the same bits for every call and thread count (each output sums bias, then (channel,
    # tap) in one order)
    rng = np.random.default_rng(5)
    w = rng.standard_normal((12, 2, 3, 3)).astype(F32)
    go = rng.standard_normal((3, 12, 8, 15)).astype(F32)
    xs = (3, 8, 16, 30)
    y = _input_grad(xs, w, go, stride=2, padding=1, groups=4)
    assert np.array_equal(y, _input_grad(xs, w, go, stride=2, padding=1, groups=4))
    old = pyconv.get_num_threads()
    try:
        for n in (1, 2, 3):
            pyconv.set_num_threads(n)
            assert np.array_equal(y, _input_grad(xs, w, go, stride=2, padding=1, groups=4))
    finally:
        pyconv.set_num_threads(old)


def test_nonfinite_operands():
    # an Inf weight would meet the frame's zeros: the call takes col2im (as PyTorch, no nan
    # where the definition has none); an Inf in grad_output reaches exactly its outputs
    w = np.ones((8, 1, 3, 3), F32)
    w[3, 0, 0, 0] = np.inf
    go = np.ones((1, 8, 4, 4), F32)
    gx = _input_grad((1, 8, 8, 8), w, go, stride=2, padding=1, groups=8)
    ref = input_grad_ref((1, 8, 8, 8), w, go, 2, 1, 1, 8)
    assert np.isinf(ref).any() and not np.isnan(ref).any()
    assert_close(gx, ref.astype(F32), n_reduce=9)
    w = np.ones((8, 1, 3, 3), F32)
    go[0, 5, 1, 2] = np.inf
    gx = _input_grad((1, 8, 8, 8), w, go, stride=2, padding=1, groups=8)
    ref = input_grad_ref((1, 8, 8, 8), w, go, 2, 1, 1, 8)
    np.testing.assert_array_equal(np.isinf(gx), np.isinf(ref))
    assert np.isinf(ref).sum() == 9 and not np.isnan(gx).any()


def test_default_choice():
    rng = np.random.default_rng(6)
    # a strided depthwise input gradient takes thin_phase by the rule (no timing: tuning off)
    w = rng.standard_normal((32, 1, 3, 3)).astype(F32)
    go = rng.standard_normal((2, 32, 14, 14)).astype(F32)
    p = pyconv.explain(grad.conv2d_input, (2, 32, 28, 28), w, go, stride=2, padding=1, groups=32)
    assert p.sub.algorithm == "thin_phase" and "thin_phase" in str(p)
    # dense groups keep their kernels
    w = rng.standard_normal((64, 32, 3, 3)).astype(F32)
    p = pyconv.explain(grad.conv2d_input, (2, 32, 28, 28), w, np.zeros((2, 64, 14, 14), F32), stride=2, padding=1)
    assert p.sub.algorithm != "thin_phase"
