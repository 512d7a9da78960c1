"""The stride-1 thin-group kernel with output rows in registers (plan 'thin_reg',
thin_direct.direct_conv_reg) against the NumPy float64 definition (tests/reference.py),
forward and input gradient (which runs it on the flipped weight), on a seeded grid.

Tolerances: tests/reference.py's table, scaled by the reduction length C_in/groups x taps.
"""
import numpy as np
import pytest

import pyconv
from pyconv import grad, nn
from pyconv._engine import plan as _plan
from pyconv._engine import tuning

from reference import assert_close, conv_nd

F32, F64 = np.float32, np.float64


def _forced(fn, *args, **kw):
    with _plan.force("thin_reg"):
        p = pyconv.explain(fn, *args, **kw)
        return fn(*args, **kw), p


# (input shape, weight shape, keywords): row widths around the vector widths (1, 7, 8,
# 15-17, 31-33, 56, 70: partial last vectors, whole chunks, one and several chunks per
# row), padding 0, 1 and beyond kernel/2 (asymmetric too), dilation, even kernels, a
# kernel larger than the input, size-1 dims, channel multipliers 1-7 (register blocks of
# 4, 2, 1 and their mixes), thin grouped layers (C_in/groups 2-4), 1-D and 3-D (depth
# stride and dilation)
GRID = [
    ((2, 8, 20, 20), (8, 1, 3, 3), dict(padding=1, groups=8)),
    ((1, 3, 9, 56), (3, 1, 3, 3), dict(padding=1, groups=3)),
    ((2, 4, 5, 17), (12, 1, 3, 3), dict(padding=1, groups=4)),             # multiplier 3: blocks 2 + 1
    ((1, 2, 6, 33), (14, 1, 3, 3), dict(padding=(2, 3), groups=2)),        # multiplier 7: 4 + 2 + 1
    ((1, 4, 11, 31), (8, 2, 3, 3), dict(padding=2, dilation=2, groups=2)),
    ((2, 6, 7, 16), (6, 1, 4, 2), dict(padding=(1, 0), groups=6)),          # even kernel, no padding in W
    ((1, 5, 1, 15), (10, 1, 1, 5), dict(padding=(0, 4), groups=5)),        # padding beyond kernel/2
    ((1, 2, 3, 4), (2, 1, 5, 7), dict(padding=(2, 3), groups=2)),          # kernel larger than the input
    ((1, 1, 1, 1), (1, 1, 3, 3), dict(padding=1)),
    ((3, 8, 9, 8), (16, 4, 3, 3), dict(padding=1, groups=2)),              # 4 in, 8 out per group
    ((1, 128, 6, 70), (128, 4, 3, 3), dict(padding=1, groups=32)),         # layer e's groups
    ((2, 4, 13, 7), (4, 1, 3, 3), dict(padding=((0, 2), (3, 1)), groups=4)),
    ((2, 6, 40), (12, 1, 5), dict(padding=2, groups=6)),                   # 1-D
    ((1, 4, 5, 6, 18), (8, 1, 3, 3, 3), dict(padding=1, stride=(2, 1, 1), dilation=(2, 1, 1), groups=4)),
]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", range(len(GRID)))
def test_forward_matches_definition(case, dtype):
    xs, ws, kw = GRID[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    y, p = _forced(nn.conv, x, w, b, **kw)
    assert p.algorithm == "thin_reg", p
    ref = conv_nd(x.astype(F64), w.astype(F64), b.astype(F64), **kw)
    assert y.dtype == dtype and y.shape == ref.shape
    assert_close(y, ref.astype(dtype), n_reduce=int(np.prod(ws[1:])))
    y0, _ = _forced(nn.conv, x, w, None, **kw)
    assert_close(y0, conv_nd(x.astype(F64), w.astype(F64), None, **kw).astype(dtype), n_reduce=int(np.prod(ws[1:])))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", [0, 2, 4, 9, 10, 12])
def test_input_gradient_matches_adjoint(case, dtype):
    # <conv(x), go> = <x, conv_input(go)> for every x (the input gradient is the adjoint),
    # and the same gradient as the whole-plane kernel's
    xs, ws, kw = GRID[case]
    rng = np.random.default_rng(100 + case)
    w = rng.standard_normal(ws).astype(dtype)
    go = rng.standard_normal(conv_nd(np.zeros(xs), w.astype(F64), None, **kw).shape).astype(dtype)
    ifun = getattr(grad, f"conv{len(xs) - 2}d_input")
    gx, p = _forced(ifun, xs, w, go, **kw)
    assert p.algorithm == "flip_conv" and p.sub.algorithm == "thin_reg", p
    assert gx.shape == xs and gx.dtype == dtype
    x = rng.standard_normal(xs)
    lhs = float(np.vdot(conv_nd(x, w.astype(F64), None, **kw), go.astype(F64)))
    rhs = float(np.vdot(x, gx.astype(F64)))
    assert abs(lhs - rhs) <= (1e-5 if dtype == F32 else 1e-12) * (np.abs(x).sum() * np.abs(gx).max() + 1.0)
    with _plan.force("thin_s1"):
        g1 = ifun(xs, w, go, **kw)
    assert_close(gx, g1, n_reduce=ws[0] // kw["groups"] * int(np.prod(ws[2:])))


@pytest.mark.parametrize("dtype", [F32, F64])
def test_noncontiguous_inputs_and_nonfinite(dtype):
    rng = np.random.default_rng(7)
    base = rng.standard_normal((2, 6, 19, 41)).astype(dtype)
    w = rng.standard_normal((6, 1, 3, 3)).astype(dtype)
    kw = dict(padding=1, groups=6)
    ref = conv_nd(base.astype(F64), w.astype(F64), None, **kw).astype(dtype)
    for x in (np.asfortranarray(base), base[:, :, ::-1, ::-1].copy()[:, :, ::-1, ::-1],
              np.ascontiguousarray(base[:, :, :, ::-1])[:, :, :, ::-1]):
        y, p = _forced(nn.conv2d, x, w, None, **kw)
        assert p.algorithm == "thin_reg"
        assert_close(y, ref, n_reduce=9)
    # padded zeros meet an Inf weight: NaN on the border rows, as PyTorch's dense path
    wi = w.copy()
    wi[0, 0, 0, 0] = np.inf
    y, _ = _forced(nn.conv2d, base, wi, None, **kw)
    assert np.isnan(y[:, 0, 0, :]).all() and np.isfinite(y[:, 1:]).all()


@pytest.mark.parametrize("dtype", [F32, F64])
def test_bits_do_not_depend_on_threads_or_repeats(dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 12, 23, 37)).astype(dtype)
    w = rng.standard_normal((24, 2, 3, 3)).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    outs = []
    for th in (1, 2, 3, 1):
        with pyconv.threads(th):
            outs.append(_forced(nn.conv2d, x, w, b, padding=1, groups=6)[0])
    for y in outs[1:]:
        assert np.array_equal(y, outs[0])


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("ws, dil", [((6, 1, 3, 3), 1), ((12, 2, 3, 2), 1), ((6, 1, 3, 3), (2, 1))])
def test_bits_do_not_depend_on_the_blocking(ws, dil, dtype):
    # every output element sums its taps in one order, whether its row is computed in a
    # block of rows that share input loads or alone, and whether its column falls in a
    # full vector, a half vector or a masked one: a row or a column range computed from a
    # crop of the input ('valid', so the crop gives exactly those outputs) has the same bits
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 6, 14, 61)).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    kh, kw = ws[2:]
    dh = dil[0] if isinstance(dil, tuple) else dil
    y, p = _forced(nn.conv2d, x, w, b, dilation=dil, groups=6 // ws[1])
    assert p.algorithm == "thin_reg", p
    span = (kh - 1) * dh + 1
    for h in (0, 3, 5, y.shape[2] - 1):
        one, _ = _forced(nn.conv2d, x[:, :, h:h + span], w, b, dilation=dil, groups=6 // ws[1])
        assert one.shape[2] == 1 and np.array_equal(one[:, :, 0], y[:, :, h])
    for ow in (1, 7, 8, 9, 24, 40, 47, 56):
        part, _ = _forced(nn.conv2d, x[..., :ow + kw - 1], w, b, dilation=dil, groups=6 // ws[1])
        assert np.array_equal(part, y[..., :ow]), ow


def test_planner_choice_follows_the_row_width():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((8, 1, 3, 3)).astype(F32)
    wide = rng.standard_normal((1, 8, 20, 40)).astype(F32)
    narrow = rng.standard_normal((1, 8, 20, 6)).astype(F32)
    t = tuning.active().thin_reg_min_ow
    assert 6 < t <= 40
    assert pyconv.explain(nn.conv2d, wide, w, padding=1, groups=8).algorithm == "thin_reg"
    assert pyconv.explain(nn.conv2d, narrow, w, padding=1, groups=8).algorithm == "thin_s1"
    with tuning.override(thin_reg_min_ow=1 << 62):
        assert pyconv.explain(nn.conv2d, wide, w, padding=1, groups=8).algorithm == "thin_s1"
    p = pyconv.explain(nn.conv2d, wide, w, padding=1, groups=8)
    assert {"thin_reg", "thin_s1", "thin_row", "thin_phase"} <= {str(a) for a in p.candidates}
    assert "thin_reg" in str(p)
