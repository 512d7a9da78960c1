"""The thin weight-gradient kernel's one-channel passes (plan 'thin' of grad.conv*_weight,
grad_direct.direct_weight, ``pyconv_tw``: groups with one output channel, row stride 1)
against the NumPy float64 definition.

A pass covers up to three kernel rows x three horizontal taps; the grid reaches every
(rows, taps) shape of a pass (kernels 1x1 to 7x7, rectangular ones), rows whose length
is below, at, between and past the vector widths (16 / 8 lanes with AVX-512, 8 / 4 with
AVX2: body vectors, the masked last vector or, with AVX-512, a masked half vector when
the last lanes fit one, scalar tails in the baseline build), row
strides (stride along W stays 1), dilation, asymmetric padding, groups with several
input channels per output channel, size-1 dims, 1-D/2-D/3-D, non-contiguous, negative
stride and read-only operands, non-finite inputs, and the bits at several thread counts.

Tolerances: tests/reference.py's table, scaled by the reduction length (samples x output
positions).
"""
import numpy as np
import pytest

import pyconv
from pyconv import grad
from pyconv._engine import plan as _plan

from reference import assert_close
from test_dense_weight import weight_ref

F32, F64 = np.float32, np.float64
WEIGHT = {1: grad.conv1d_weight, 2: grad.conv2d_weight, 3: grad.conv3d_weight}


def _go(rng, x, ws, dtype, **kw):
    y = pyconv.nn.conv(x, np.zeros(ws, dtype), **kw)
    return rng.standard_normal(y.shape).astype(dtype)


def _run(x, ws, go, **kw):
    f = WEIGHT[x.ndim - 2]
    with _plan.force("thin"):
        assert pyconv.explain(f, x, ws, go, **kw).algorithm == "thin"
        return f(x, ws, go, **kw)


def _check(rng, dtype, xs, ws, **kw):
    x = rng.standard_normal(xs).astype(dtype)
    go = _go(rng, x, ws, dtype, **kw)
    gw = _run(x, ws, go, **kw)
    assert gw.shape == tuple(ws) and gw.dtype == dtype
    assert_close(gw, weight_ref(x, ws, go, **kw).astype(dtype), n_reduce=int(np.prod(go.shape)) // go.shape[1])
    return x, go, gw


# (input shape, weight shape, keywords); output rows of 1, 3, 4, 7, 8, 9, 15, 16, 17, 24,
# 31, 33, 56, 58, 700 columns
GRID = [
    ((2, 8, 10, 56), (8, 1, 3, 3), dict(padding=1, groups=8)),
    ((1, 4, 9, 33), (4, 1, 3, 3), dict(padding=1, groups=4)),
    ((2, 3, 12, 17), (3, 1, 5, 5), dict(padding=2, groups=3)),
    ((1, 2, 14, 16), (2, 1, 7, 7), dict(padding=3, groups=2)),
    ((3, 5, 6, 15), (5, 1, 2, 4), dict(padding=((1, 0), (2, 1)), groups=5)),
    ((1, 6, 11, 8), (6, 1, 4, 2), dict(padding=(1, 0), groups=6)),
    ((2, 4, 13, 31), (4, 1, 3, 3), dict(padding=2, dilation=2, groups=4)),
    ((1, 3, 20, 24), (3, 1, 3, 5), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 3), groups=3)),
    ((2, 8, 9, 9), (2, 4, 3, 3), dict(padding=1, groups=2)),
    ((1, 6, 7, 7), (3, 2, 1, 1), dict(groups=3)),
    ((2, 2, 5, 1), (2, 1, 3, 1), dict(padding=(1, 0), groups=2)),
    ((1, 4, 1, 9), (4, 1, 1, 3), dict(groups=4)),
    ((1, 2, 6, 4), (2, 1, 3, 3), dict(padding=1, groups=2)),
    ((2, 2, 4, 3), (2, 1, 3, 3), dict(padding=1, groups=2)),
    # padded rows of the scratch: padding past one vector (the first vectors all zeros,
    # then one that starts left of the row), rows of more than 32 vectors, padding only
    # after, and a right side the taps never read
    ((1, 2, 3, 20), (2, 1, 3, 3), dict(padding=(1, 19), groups=2)),
    ((1, 2, 2, 700), (2, 1, 1, 3), dict(padding=(0, 1), groups=2)),
    ((1, 2, 3, 21), (2, 1, 3, 3), dict(padding=((0, 0), (0, 2)), groups=2)),
    ((1, 2, 5, 40), (2, 1, 3, 3), dict(stride=(1, 1), padding=((1, 0), (1, 0)), dilation=(1, 2), groups=2)),
]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", range(len(GRID)))
def test_matches_definition(case, dtype):
    xs, ws, kw = GRID[case]
    _check(np.random.default_rng(case), dtype, xs, ws, **kw)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_1d_and_3d(dtype):
    rng = np.random.default_rng(11)
    _check(rng, dtype, (2, 4, 70), (4, 1, 9), padding=4, groups=4)
    _check(rng, dtype, (3, 2, 23), (2, 1, 3), dilation=3, groups=2)
    _check(rng, dtype, (2, 3, 5, 6, 19), (3, 1, 3, 3, 3), padding=1, groups=3)
    _check(rng, dtype, (1, 4, 7, 5, 17), (2, 2, 2, 4, 2), stride=(2, 1, 1), padding=(1, 2, 0), dilation=(2, 1, 3),
           groups=2)


def test_random_grid():
    # seeded random depthwise / one-output-per-group geometries (24 of them)
    rng = np.random.default_rng(2027)
    for i in range(24):
        nd = int(rng.integers(1, 4))
        groups = int(rng.integers(1, 5))
        cg = int(rng.integers(1, 4))
        k = tuple(int(v) for v in rng.integers(1, 8 if nd < 3 else 4, nd))
        d = tuple(int(v) for v in rng.integers(1, 3, nd))
        sp = tuple(int(rng.integers((kk - 1) * dd + 1, (kk - 1) * dd + 40 // nd)) for kk, dd in zip(k, d))
        stride = tuple(int(rng.integers(1, 3)) for _ in range(nd - 1)) + (1,)
        pad = tuple(int(rng.integers(0, kk)) for kk in k)
        xs = (int(rng.integers(1, 4)), groups * cg) + sp
        ws = (groups, cg) + k
        _check(rng, F32 if i % 2 else F64, xs, ws, stride=stride, padding=pad, dilation=d, groups=groups)


def test_layouts_of_the_operands():
    # non-contiguous, negative-stride and read-only operands give the contiguous result
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 8, 20, 40)).astype(F32)
    go = rng.standard_normal((2, 4, 20, 40)).astype(F32)
    xv, gov = x[:, ::2, :, ::-1], go[..., ::-1]
    assert not xv.flags.c_contiguous and gov.strides[-1] < 0
    xv.flags.writeable = False
    gw = _run(xv, (4, 1, 3, 3), gov, padding=1, groups=4)
    assert np.array_equal(gw, _run(np.ascontiguousarray(xv), (4, 1, 3, 3), np.ascontiguousarray(gov),
                                   padding=1, groups=4))
    assert_close(gw, weight_ref(xv, (4, 1, 3, 3), gov, padding=1, groups=4).astype(F32), n_reduce=2 * 800)
    xf = np.asfortranarray(x[:, :4])
    assert_close(_run(xf, (4, 1, 5, 5), go, padding=2, groups=4),
                 weight_ref(xf, (4, 1, 5, 5), go, padding=2, groups=4).astype(F32), n_reduce=2 * 800)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_nonfinite_input_propagates(dtype):
    # an Inf in the input reaches exactly the taps that read it (as the definition: NaN
    # where +Inf and -Inf products meet, Inf elsewhere), and never a neighbouring channel
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 9, 21)).astype(dtype)
    x[1, 1, 4, 20] = np.inf
    go = _go(rng, x, (3, 1, 3, 3), dtype, padding=1, groups=3)
    gw = _run(x, (3, 1, 3, 3), go, padding=1, groups=3)
    with np.errstate(invalid="ignore"):
        ref = weight_ref(x, (3, 1, 3, 3), go, padding=1, groups=3)
    assert np.array_equal(np.isfinite(gw), np.isfinite(ref))
    assert np.array_equal(np.isnan(gw), np.isnan(ref))
    assert np.isfinite(gw[[0, 2]]).all() and not np.isfinite(gw[1]).all()
    fin = np.isfinite(ref)
    assert_close(gw[fin], ref[fin].astype(dtype), n_reduce=2 * 9 * 21)


def test_same_bits_at_every_thread_count():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 12, 17, 45)).astype(F32)
    go = rng.standard_normal((3, 12, 17, 45)).astype(F32)
    old = pyconv.get_num_threads()
    try:
        out = []
        for n in (1, 2, 3):
            pyconv.set_num_threads(n)
            out.append(_run(x, (12, 1, 3, 3), go, padding=1, groups=12))
    finally:
        pyconv.set_num_threads(old)
    assert all(np.array_equal(out[0], o) for o in out[1:])
    assert_close(out[0], weight_ref(x, (12, 1, 3, 3), go, padding=1, groups=12).astype(F32), n_reduce=3 * 765)


def test_depthwise_default_plan():
    # the default plan of a depthwise weight gradient is this kernel
    x = np.zeros((2, 16, 12, 12), F32)
    assert pyconv.explain(grad.conv2d_weight, x, (16, 1, 3, 3), x, padding=1, groups=16).algorithm == "thin"
