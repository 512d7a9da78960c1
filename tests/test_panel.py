"""The 1x1 packed-panel kernels (plan 'panel': panel.panel_forward and panel.panel_weight)
against the NumPy float64 definition (tests/reference.py).

Tolerances: tests/reference.py's table, scaled by the reduction length (C_in/groups for the
forward, N x positions for the weight gradient).
"""
import numpy as np
import pytest

import pyconv
from pyconv import grad, nn
from pyconv._engine import plan as _plan
from pyconv._kernels import panel

from reference import assert_close, conv_nd

F32, F64 = np.float32, np.float64
MR = panel.MR
NR = panel.NR["float32"]


def _forced(fn, *args, **kw):
    with _plan.force("panel"):
        p = pyconv.explain(fn, *args, **kw)
        assert p.algorithm == "panel", p
        return fn(*args, **kw)


def _weight_ref(x, go, cout, groups):
    """dW[g*og + o, c] = sum_{n, positions} go[n, g*og + o] x[n, g*cg + c] in float64."""
    n, cin = x.shape[:2]
    cg, og = cin // groups, cout // groups
    xs = x.astype(F64).reshape(n, groups, cg, -1)
    gs = go.astype(F64).reshape(n, groups, og, -1)
    return np.einsum("ngop,ngcp->goc", gs, xs).reshape((cout, cg) + (1,) * (x.ndim - 2))


# (input shape, output channels, groups): channel counts off the register tiles (MR outputs,
# 4x6 / 3x4 weight tiles), positions off the stripes (NR) and the vector lanes, chunks of
# positions with a partial last one, groups, size-1 and 1-D / 3-D maps
GRID = [
    ((2, 17, 5, 7), 9, 1),
    ((3, 12, 4, 4), 20, 2),
    ((1, 256, 9, 9), 64, 1),
    ((2, 5, 33, 1), 3, 1),
    ((1, 1, 1, 1), 1, 1),
    ((2, 9, 7, 11), 13, 1),
    ((1, 24, 40, 41), 70, 1),
    ((2, 6, 6, 6), 6, 3),
    ((1, 3, 2 * NR + 1, 1), MR + 1, 1),
]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", range(len(GRID)))
def test_forward_and_weight_match_definition(case, dtype):
    xs, cout, groups = GRID[case]
    rng = np.random.default_rng(100 + case)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((cout, xs[1] // groups, 1, 1)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    y = _forced(nn.conv2d, x, w, b, groups=groups)
    assert y.dtype == dtype
    assert_close(y, conv_nd(x, w, b, groups=groups).astype(dtype), n_reduce=xs[1] // groups)
    yn = _forced(nn.conv2d, x, w, groups=groups)
    assert_close(yn, conv_nd(x, w, groups=groups).astype(dtype), n_reduce=xs[1] // groups)
    go = rng.standard_normal(y.shape).astype(dtype)
    gw = _forced(grad.conv2d_weight, x, w.shape, go, groups=groups)
    assert gw.shape == w.shape and gw.dtype == dtype
    assert_close(gw, _weight_ref(x, go, cout, groups).astype(dtype), n_reduce=int(np.prod(y.shape)) // cout)


@pytest.mark.parametrize("nd", [1, 3])
def test_other_dimensions(nd):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 10) + (5,) * nd).astype(F32)
    w = rng.standard_normal((11, 10) + (1,) * nd).astype(F32)
    y = _forced(nn.conv1d if nd == 1 else nn.conv3d, x, w)
    assert_close(y, conv_nd(x, w).astype(F32), n_reduce=10)
    go = rng.standard_normal(y.shape).astype(F32)
    gw = _forced(grad.conv1d_weight if nd == 1 else grad.conv3d_weight, x, w.shape, go)
    assert_close(gw, _weight_ref(x, go, 11, 1).astype(F32), n_reduce=2 * 5 ** nd)


@pytest.mark.parametrize("layout", ["fortran", "negative", "strided"])
def test_non_contiguous_inputs(layout):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((3, 14, 12, 10)).astype(F32)
    if layout == "fortran":
        x = np.asfortranarray(base)
    elif layout == "negative":
        x = base[:, ::-1, :, ::-1]
    else:
        x = base[:, ::2, ::2, :]
    w = np.asfortranarray(rng.standard_normal((19, x.shape[1], 1, 1)).astype(F32))[::-1]
    y = _forced(nn.conv2d, x, w)
    assert_close(y, conv_nd(np.ascontiguousarray(x), np.ascontiguousarray(w)).astype(F32), n_reduce=x.shape[1])
    go = np.asfortranarray(rng.standard_normal(y.shape).astype(F32))
    gw = _forced(grad.conv2d_weight, x, w.shape, go)
    assert_close(gw, _weight_ref(x, go, 19, 1).astype(F32), n_reduce=int(np.prod(y.shape)) // 19)


@pytest.mark.parametrize("shape", [(0, 4, 5, 5), (2, 0, 3, 3)])
def test_zero_size(shape):
    x = np.ones(shape, F32)
    w = np.ones((3, shape[1], 1, 1), F32)
    b = np.arange(3, dtype=F32)
    y = nn.conv2d(x, w, b)
    assert_close(y, conv_nd(x, w, b).astype(F32))
    gw = grad.conv2d_weight(x, w.shape, np.ones(y.shape, F32))
    assert np.array_equal(gw, np.zeros(w.shape, F32))


def test_kernels_check_shapes():
    x = np.zeros((1, 4, 10), F32)
    with pytest.raises(ValueError, match="panel_forward"):
        panel.panel_forward(x, np.zeros(3, F32), np.zeros((1, MR), F32), True, np.zeros((1, 4, 10), F32), 1, 64, 1)
    with pytest.raises(ValueError, match="panel_weight"):
        panel.panel_weight(x, np.zeros((1, 3, 9), F32), np.zeros((1, 3, 4), F32), 1, 64, 1, 1)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_bits_do_not_depend_on_threads(dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 40, 23, 29)).astype(dtype)
    w = rng.standard_normal((24, 40, 1, 1)).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    go = rng.standard_normal((3, 24, 23, 29)).astype(dtype)
    outs = []
    for n in (1, 2, 3):
        with pyconv.threads(n):
            outs.append((_forced(nn.conv2d, x, w, b), _forced(grad.conv2d_weight, x, w.shape, go)))
    for y, gw in outs[1:]:
        assert np.array_equal(y, outs[0][0]) and np.array_equal(gw, outs[0][1])


def test_default_choice_for_1x1():
    # the built-in defaults run 1x1 forwards on the panel kernel; it stays one of the
    # candidates of the 1x1 weight gradient
    x = np.zeros((2, 32, 8, 8), F32)
    w = np.zeros((16, 32, 1, 1), F32)
    assert pyconv.explain(nn.conv2d, x, w).algorithm == "panel"
    p = pyconv.explain(grad.conv2d_weight, x, w.shape, np.zeros((2, 16, 8, 8), F32))
    assert "panel" in p.candidates
