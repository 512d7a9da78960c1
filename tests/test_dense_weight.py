"""The dense weight-gradient kernel (plans 'dense' and 'dense_pos' of grad.conv*_weight,
dense_direct.dense_weight) against the NumPy float64 definition.

The grid reaches every path of the kernel's grad_output packing (pyconv_tpose: whole
VL x VL blocks, rows of positions and output channels past the last whole block, zero
channels past C_out/groups; 'dense_pos': rows padded with zeros to whole vectors) and of
its register tiles (1, 2 and 4 vectors of output channels, a last partial block of input
rows; 'dense_pos': rows of whole vectors and a masked last one, a last partial block of
output channels), with strides, dilations, paddings, groups, size-1 dims, 1-D/2-D/3-D and
non-contiguous inputs.

Tolerances: tests/reference.py's table, scaled by the reduction length (samples x
output positions).
"""
import itertools

import numpy as np
import pytest

import pyconv
from pyconv import grad
from pyconv._engine import plan as _plan
from pyconv._engine import tuning

from reference import assert_close, pad_nd, pad_pairs, poison_fresh_buffers, random_conv_geometry

F32, F64 = np.float32, np.float64
WEIGHT = {1: grad.conv1d_weight, 2: grad.conv2d_weight, 3: grad.conv3d_weight}
ALGS = ("dense", "dense_pos")


def _tuple(v, nd):
    return (v,) * nd if np.isscalar(v) else tuple(v)


def weight_ref(x, w_shape, go, stride=1, padding=0, dilation=1, groups=1):
    """dW[o, c, k] = sum_{n, p} x_pad[n, g*Cg + c, p*stride + k*dilation] go[n, o, p], float64."""
    nd = x.ndim - 2
    s, d = _tuple(stride, nd), _tuple(dilation, nd)
    pads = pad_pairs(padding, nd)
    xp = pad_nd(x.astype(F64), pads)
    go = go.astype(F64)
    cout, cg = w_shape[:2]
    og = cout // groups
    out = go.shape[2:]
    gw = np.zeros(w_shape, F64)
    for k in itertools.product(*[range(v) for v in w_shape[2:]]):
        sl = tuple(slice(kk * dd, kk * dd + (o - 1) * ss + 1, ss) for kk, dd, o, ss in zip(k, d, out, s))
        for g in range(groups):
            xs = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + sl]            # (N, cg) + out
            gs = go[:, g * og:(g + 1) * og]                                    # (N, og) + out
            n = xs.shape[0]
            gw[(slice(g * og, (g + 1) * og), slice(None)) + k] = np.einsum(
                "ncp,nop->oc", xs.reshape(n, cg, -1), gs.reshape(n, og, -1))
    return gw


def _run(x, w_shape, go, alg="dense", **kw):
    f = WEIGHT[x.ndim - 2]
    with _plan.force(alg):
        p = pyconv.explain(f, x, w_shape, go, **kw)
        assert p.leaf().algorithm == alg, p
        return f(x, w_shape, go, **kw)


def _check(rng, dtype, xs, ws, alg="dense", **kw):
    x = rng.standard_normal(xs).astype(dtype)
    f = WEIGHT[len(xs) - 2]
    # grad_output of the right shape: the forward's output shape
    y = pyconv.nn.conv(x, np.zeros(ws, dtype), **kw)
    go = rng.standard_normal(y.shape).astype(dtype)
    gw = _run(x, ws, go, alg, **kw)
    ref = weight_ref(x, ws, go, **kw)
    assert gw.shape == tuple(ws) and gw.dtype == dtype
    assert_close(gw, ref.astype(dtype), n_reduce=int(np.prod(go.shape)) // go.shape[1])
    return x, go, gw, f


# (input shape, weight shape, keywords): output channels 1 to 3 vectors and between
# (og 8 / 16 / 17 / 33 / 40 / 64 / 70; 'dense_pos' tiles: 4 / 3 output channels, a last
# block of 1 or 2), rows of positions not a multiple of the vector width (7, 15, 29, 33
# columns), stride / dilation / asymmetric padding, groups, size-1 dims
GRID = [
    ((2, 5, 9, 33), (16, 5, 3, 3), dict(padding=1)),
    ((1, 3, 17, 30), (64, 3, 7, 7), dict(stride=2, padding=3)),
    ((2, 4, 12, 15), (17, 4, 3, 3), dict(padding=2, dilation=2)),
    ((1, 7, 20, 23), (33, 7, 5, 3), dict(stride=(2, 3), padding=(2, 1), dilation=(1, 2))),
    ((3, 3, 1, 29), (40, 3, 1, 7), dict(stride=(1, 3), padding=(0, 3))),
    ((1, 2, 8, 1), (70, 2, 3, 1), dict(padding=1)),
    ((2, 6, 10, 10), (64, 3, 3, 3), dict(groups=2, padding=1, stride=2)),
    ((2, 9, 7, 7), (24, 3, 3, 3), dict(groups=3, padding=1)),
    ((1, 4, 9, 40), (8, 4, 4, 4), dict(padding=((1, 2), (0, 3)))),
    ((4, 16, 6, 36), (32, 16, 3, 3), dict(stride=(2, 1), padding=1)),
    ((2, 7, 9, 50), (5, 7, 3, 3), dict(padding=1)),
    ((3, 4, 6, 16), (2, 4, 3, 5), dict(padding=(1, 2), stride=(1, 1))),
    ((1, 12, 8, 45), (15, 4, 3, 3), dict(groups=3, stride=(1, 2), dilation=2, padding=2)),
]


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", range(len(GRID)))
def test_matches_definition(case, dtype, alg):
    xs, ws, kw = GRID[case]
    _check(np.random.default_rng(case), dtype, xs, ws, alg, **kw)


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_1d_and_3d(dtype, alg):
    rng = np.random.default_rng(7)
    _check(rng, dtype, (2, 3, 50), (19, 3, 9), alg, padding=4, stride=2)
    _check(rng, dtype, (2, 16, 6, 7, 9), (16, 16, 3, 3, 3), alg, padding=1)
    _check(rng, dtype, (1, 2, 7, 5, 9), (33, 2, 2, 3, 3), alg, stride=(2, 1, 2), padding=(1, 0, 2), dilation=(2, 1, 1))
    _check(rng, dtype, (2, 8, 9, 5, 17), (4, 8, 5, 3, 3), alg, stride=2, padding=2)


@pytest.mark.parametrize("alg", ALGS)
def test_random_grid(alg):
    # seeded random geometries the dense weight kernel serves (25 of them)
    rng = np.random.default_rng(2026)
    i = 0
    while i < 25:
        xs, ws, kw = random_conv_geometry(rng, 70, 10)
        dtype = F32 if i % 2 else F64
        x0 = np.zeros(xs, dtype)
        go0 = np.zeros(pyconv.nn.conv(x0, np.zeros(ws, dtype), **kw).shape, dtype)
        p0 = pyconv.explain(WEIGHT[len(xs) - 2], x0, ws, go0, **kw)
        if p0.prune is not None or "dense" not in [str(a) for a in p0.candidates]:
            continue
        _check(rng, dtype, xs, ws, alg, **kw)
        i += 1


@pytest.mark.parametrize("alg", ALGS)
def test_long_rows_split_in_columns(alg):
    # rows longer than the unit: units of one row's column blocks (cw not a multiple of VL)
    rng = np.random.default_rng(3)
    with tuning.override(weight_tile=21):
        x, go, gw, f = _check(rng, F32, (2, 3, 4, 70), (20, 3, 3, 3), alg, stride=(1, 2), padding=1)
        with _plan.force(alg):
            p = pyconv.explain(f, x, (20, 3, 3, 3), go, stride=(1, 2), padding=1).leaf()
    assert p.tile("cols") < 35 and p.tile("rows") == 1


@pytest.mark.parametrize("alg", ALGS)
def test_non_contiguous_inputs(alg):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 20, 30)).astype(F32)[:, ::2, 1:, ::2]
    go = rng.standard_normal((2, 40, 19, 30)).astype(F32)[:, :, :, ::2]
    assert not x.flags.c_contiguous and not go.flags.c_contiguous
    gw = _run(x, (40, 3, 3, 3), go, alg, padding=1)
    assert_close(gw, weight_ref(x, (40, 3, 3, 3), go, padding=1).astype(F32), n_reduce=2 * 19 * 15)


@pytest.mark.parametrize("alg", ALGS)
def test_deterministic_and_matches_gemm(alg):
    # the same call gives the same bits, whatever the load (parts fixed by the plan);
    # the GEMM path stays reachable and agrees
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 20, 15, 29)).astype(F32)
    go = rng.standard_normal((3, 50, 15, 15)).astype(F32)
    a = _run(x, (50, 20, 3, 3), go, alg, padding=1, stride=(1, 2))
    assert np.array_equal(a, _run(x, (50, 20, 3, 3), go, alg, padding=1, stride=(1, 2)))
    with _plan.force("gemm"):
        b = grad.conv2d_weight(x, (50, 20, 3, 3), go, padding=1, stride=(1, 2))
    assert_close(a, b, n_reduce=3 * 15 * 15)


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("col,padding", [(37, 1), (36, 0), (0, 0)])
def test_nonfinite_input_stays_in_its_taps(alg, col, padding):
    # an Inf in the input reaches only the weights whose taps read it (37 of 40 columns,
    # padding 1: in the last vector of a 40-position row; the last or first column
    # unpadded: read past a row's 35 positions by the vector along them, whose lanes there
    # 'dense_pos' masks)
    w = 40 - 3 * (padding == 0)
    x = np.ones((1, 2, 6, w), F32)
    x[0, 1, 2, col] = np.inf
    go = np.ones((1, 20, 6 - 2 * (padding == 0), w - 2 * (padding == 0)), F32)
    gw = _run(x, (20, 2, 3, 3), go, alg, padding=padding)
    ref = weight_ref(x, (20, 2, 3, 3), go, padding=padding)
    assert np.array_equal(np.isinf(gw), np.isinf(ref)) and np.array_equal(np.isnan(gw), np.isnan(ref))
    assert np.isinf(gw).any() and np.isfinite(gw[:, 0]).all() and not np.isfinite(gw[:, 1]).all()
    # (unpadded, an edge column meets only the taps of one kernel column)
    assert np.isfinite(gw[:, 1]).any() == (padding == 0)


@pytest.mark.parametrize("threads", [1, 2])
def test_dense_pos_runs_rows_together_only_over_finite_input(threads):
    # 'dense_pos' runs a unit's rows as one run of frame positions (the padding columns
    # between rows meet zero grad_output) only while every plane row built for the (sample,
    # group) is finite; planes past 1 MiB are built a unit at a time, so an Inf in the last
    # rows of sample 1 leaves sample 0 and sample 1's first units on whole runs and the
    # rest on runs of one row.  Against the definition: the same Inf/NaN pattern, the
    # finite values within tolerance.
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 64, 64, 64)).astype(F32)
    x[1, 5, 60, 63] = np.inf
    x[1, 7, 61, 0] = np.nan
    go = rng.standard_normal((2, 4, 64, 64)).astype(F32)
    with pyconv.threads(threads), tuning.override(weight_tile=256):
        gw = _run(x, (4, 64, 3, 3), go, "dense_pos", padding=1)
        fin = _run(np.nan_to_num(x, posinf=0.0, nan=0.0), (4, 64, 3, 3), go, "dense_pos", padding=1)
    ref = weight_ref(x, (4, 64, 3, 3), go, padding=1)
    assert np.array_equal(np.isnan(gw), np.isnan(ref)) and np.array_equal(np.isposinf(gw), np.isposinf(ref))
    # (the edge columns meet 6 of the 9 taps each)
    assert np.array_equal(np.isneginf(gw), np.isneginf(ref)) and np.isfinite(gw).sum() == 4 * (64 * 9 - 12)
    ok = np.isfinite(ref)
    assert_close(gw[ok], ref[ok].astype(F32), n_reduce=2 * 64 * 64)
    assert_close(fin, weight_ref(np.nan_to_num(x, posinf=0.0, nan=0.0), (4, 64, 3, 3), go, padding=1).astype(F32),
                 n_reduce=2 * 64 * 64)


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_dense_weight_writes_every_element_of_its_fresh_buffers(monkeypatch, threads, alg):
    # The kernel zeroes its per-part sums itself and weight_reduce writes every element of
    # the gradient: with every fresh NumPy buffer poisoned with NaN, the result is still
    # the float64 definition (groups, parts, a 3-D layer and a strided one)
    rng = np.random.default_rng(11)
    cases = [((3, 6, 9, 8), (8, 3, 3, 3), dict(padding=1, groups=2)),
             ((2, 5, 7, 6, 5), (4, 5, 3, 2, 3), dict(padding=(1, 0, 1))),
             ((4, 20, 11, 11), (36, 20, 3, 3), dict(stride=2, padding=1))]
    for xs, ws, kw in cases:
        x = rng.standard_normal(xs).astype(F32)
        f = WEIGHT[len(xs) - 2]
        go = rng.standard_normal(getattr(pyconv.nn, f"conv{len(xs) - 2}d")(x, np.zeros(ws, F32), **kw).shape)
        go = go.astype(F32)
        want = weight_ref(x, ws, go, **kw)
        with pyconv.threads(threads):
            undo = poison_fresh_buffers(monkeypatch)
            try:
                got = _run(x, ws, go, alg, **kw)
            finally:
                undo()
        assert np.isfinite(got).all()
        assert_close(got, want.astype(F32), n_reduce=x.shape[0] * int(np.prod(go.shape[2:])))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("T,G,Kc,ogp,og", [(1, 1, 40, 16, 16), (2, 1, 17, 64, 50), (3, 2, 16, 8, 8), (4, 3, 1, 4, 3),
                                           (2, 1, 1152, 256, 256)])
def test_weight_reduce_adds_the_parts_in_order_and_transposes(dtype, T, G, Kc, ogp, og):
    from pyconv._engine.conv import kernel
    from pyconv._kernels import dense_direct
    rng = np.random.default_rng(T * 1000 + Kc)
    acc = rng.standard_normal((T, G, Kc, ogp)).astype(dtype)
    want = acc[0].copy()
    for t in range(1, T):
        want = want + acc[t]                    # the parts in order, as the kernel adds them
    want = want[:, :, :og].transpose(0, 2, 1).reshape(G * og, Kc)
    for threads in (1, 2, 3):
        out = np.full((G * og, Kc), np.nan, dtype)
        kernel(dense_direct.weight_reduce, dtype)(acc, out, og, 1, threads)
        np.testing.assert_array_equal(out, want)
    with pytest.raises(ValueError, match="weight_reduce"):
        kernel(dense_direct.weight_reduce, dtype)(acc, np.empty((G * og, Kc + 1), dtype), og, 1, 2)
    with pytest.raises(ValueError, match="weight_reduce"):
        kernel(dense_direct.weight_reduce, dtype)(acc, np.empty((G * (ogp + 1), Kc), dtype), ogp + 1, 1, 2)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("T,G,Kc,og,lanes", [(1, 1, 40, 4, 16), (2, 1, 17, 3, 8), (3, 2, 16, 1, 16), (2, 3, 33, 5, 8)])
def test_weight_reduce_sums_the_lanes_of_dense_pos(dtype, T, G, Kc, og, lanes):
    # 'dense_pos': each output channel's partial sums in `lanes` lanes, added lane by lane,
    # part by part, in order
    from pyconv._engine.conv import kernel
    from pyconv._kernels import dense_direct
    rng = np.random.default_rng(T * 100 + og)
    acc = rng.standard_normal((T, G, Kc, og * lanes)).astype(dtype)
    a = acc.reshape(T, G, Kc, og, lanes)
    want = a[0, ..., 0].copy()
    for t in range(T):
        for l in range(1 if t == 0 else 0, lanes):
            want = want + a[t, ..., l]
    want = want.transpose(0, 2, 1).reshape(G * og, Kc)
    for threads in (1, 2):
        out = np.full((G * og, Kc), np.nan, dtype)
        kernel(dense_direct.weight_reduce, dtype)(acc, out, og, lanes, threads)
        np.testing.assert_array_equal(out, want)
    with pytest.raises(ValueError, match="weight_reduce"):
        kernel(dense_direct.weight_reduce, dtype)(acc, np.empty((G * og, Kc), dtype), og, lanes + 1, 1)
