"""The dense forward with vectors along the output channels (plan 'dense_oc',
dense_direct.dense_oc) against the NumPy float64 definition (tests/reference.py).

Tolerances: tests/reference.py's table, scaled by the reduction length C_in/groups x taps.
"""
import numpy as np
import pytest

import pyconv
from pyconv import nn
from pyconv._engine import plan as _plan
from pyconv._engine import tuning
from pyconv._kernels import dense_direct

from reference import assert_close, conv_nd, conv_transpose_nd, poison_fresh_buffers, random_conv_geometry

F32, F64 = np.float32, np.float64
LANES = dense_direct.OC_LANES["float32"]


def _run(x, w, b=None, **kw):
    with _plan.force("dense_oc"):
        p = pyconv.explain(nn.conv, x, w, b, **kw)
        assert p.algorithm == "dense_oc", p
        return nn.conv(x, w, b, **kw)


def _check(rng, dtype, xs, ws, groups=1, bias=True, **kw):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if bias else None
    y = _run(x, w, b, groups=groups, **kw)
    ref = conv_nd(x, w, b, groups=groups, **kw)
    assert_close(y, ref.astype(dtype), n_reduce=int(np.prod(ws[1:])))
    return x, w, b, y


# (input shape, weight shape, keywords): stride, dilation, padding (asymmetric too),
# odd sizes, size-1 dims, output channels not a multiple of the vector width (one and
# two vectors per block, tails of every register tile), groups, 1-D and 3-D
GRID = [
    ((2, 5, 9, 11), (40, 5, 3, 3), dict(padding=1)),
    ((1, 3, 17, 30), (33, 3, 3, 3), dict(stride=2, padding=1)),
    ((2, 4, 12, 13), (16, 4, 3, 3), dict(padding=2, dilation=2)),
    ((1, 7, 20, 23), (21, 7, 5, 3), dict(stride=(2, 3), padding=(2, 1), dilation=(1, 2))),
    ((3, 3, 1, 29), (48, 3, 1, 7), dict(stride=(1, 3), padding=(0, 3))),
    ((1, 2, 8, 1), (17, 2, 3, 1), dict(padding=1)),
    ((2, 6, 10, 10), (64, 3, 3, 3), dict(groups=2, padding=1, stride=2)),
    ((1, 1, 6, 6), (1, 1, 2, 2), dict()),
    ((1, 4, 9, 9), (20, 4, 4, 4), dict(padding=((1, 2), (0, 3)))),
    ((2, 3, 7, 40), (32, 3, 3, 3), dict(stride=(1, 4), padding=(1, 0))),
    ((4, 16, 6, 6), (32, 16, 3, 3), dict(stride=2, padding=1)),
]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", range(len(GRID)))
def test_matches_definition(case, dtype):
    xs, ws, kw = GRID[case]
    kw = dict(kw)
    groups = kw.pop("groups", 1)
    _check(np.random.default_rng(case), dtype, xs, ws, groups=groups, **kw)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_1d_and_3d(dtype):
    rng = np.random.default_rng(7)
    _check(rng, dtype, (2, 3, 50), (19, 3, 9), padding=4, stride=2)
    _check(rng, dtype, (1, 4, 5, 6, 7), (18, 4, 3, 3, 3), padding=1)
    _check(rng, dtype, (2, 2, 7, 5, 9), (33, 2, 2, 3, 3), stride=(2, 1, 2), padding=(1, 0, 2), dilation=(2, 1, 1))


def test_random_grid():
    # seeded random geometries: sizes, strides, dilations, paddings, groups (25 that
    # dense_oc serves: not 1x1 stride-1 unpadded, also after dropping padding-only taps)
    rng = np.random.default_rng(2026)
    i = 0
    while i < 25:
        xs, ws, kw = random_conv_geometry(rng, 3 * LANES, 12)
        dtype = F32 if i % 2 else F64
        p0 = pyconv.explain(nn.conv, np.zeros(xs, dtype), np.zeros(ws, dtype), **kw)
        if "dense_oc" not in [str(a) for a in p0.candidates]:
            continue
        _check(rng, dtype, xs, ws, bias=bool(i % 3), **kw)
        i += 1


def test_long_rows_split_in_columns():
    # rows longer than dense_oc_max_cols: units of one row's column blocks
    rng = np.random.default_rng(3)
    with tuning.override(dense_oc_max_cols=13):
        x, w, b, y = _check(rng, F32, (2, 3, 4, 50), (20, 3, 3, 3), stride=(1, 2), padding=1)
        with _plan.force("dense_oc"):
            p = pyconv.explain(nn.conv, x, w, b, padding=1, stride=(1, 2))
    assert p.tile("cols") == 13 and p.tile("rows") == 1


def test_non_contiguous_input():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 20, 30)).astype(F32)[:, ::2, 1:, ::2]
    w = rng.standard_normal((40, 3, 3, 3)).astype(F32)[:, :, ::-1]
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    y = _run(x, w, None, padding=1)
    assert_close(y, conv_nd(x, w, padding=1).astype(F32), n_reduce=27)


def test_deterministic_and_independent_of_threads_and_blocking():
    # the same call gives the same bits; so do other thread counts, unit sizes and
    # channel passes (each position's sum runs over (channel, tap) in one order)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 40, 15, 29)).astype(F32)
    w = rng.standard_normal((50, 40, 3, 3)).astype(F32)
    y = _run(x, w, None, padding=1, stride=(1, 2))
    assert np.array_equal(y, _run(x, w, None, padding=1, stride=(1, 2)))
    old = pyconv.get_num_threads()
    try:
        for n in (1, 2, 3):
            pyconv.set_num_threads(n)
            assert np.array_equal(y, _run(x, w, None, padding=1, stride=(1, 2)))
    finally:
        pyconv.set_num_threads(old)
    with tuning.override(dense_oc_positions=1, dense_oc_wblock_bytes=1, dense_oc_max_cols=5):
        assert np.array_equal(y, _run(x, w, None, padding=1, stride=(1, 2)))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("vectors", [1, 2])
def test_every_row_width_and_rows_in_pairs(dtype, vectors):
    # each row width goes through its own widths of tiles (up to three of the widest, then
    # two of about half, then one), and with one vector of output channels two rows that
    # run the same taps go through them together (padding=1: the first and last row run
    # fewer taps, so pairs and single rows meet in one unit); the bits are those of units
    # of single rows
    rng = np.random.default_rng(8 + vectors)
    lanes = dense_direct.OC_LANES[np.dtype(dtype).name]
    oc = vectors * lanes - 1          # a partial last vector
    for width in list(range(1, 2 * dense_direct.OC_TILE + 6)) + [3 * dense_direct.OC_TILE + 3]:
        for stride in (1, 2):
            xs, ws = (2, 3, 7, (width - 1) * stride + 1), (oc, 3, 3, 3)
            x, w, b, y = _check(rng, dtype, xs, ws, stride=(1, stride), padding=(1, 1))
            with tuning.override(dense_oc_positions=1):
                with _plan.force("dense_oc"):
                    assert pyconv.explain(nn.conv, x, w, b, stride=(1, stride), padding=1).tile("rows") == 1
                assert np.array_equal(y, _run(x, w, b, stride=(1, stride), padding=1)), (width, stride)


def test_nonfinite_weight_meets_padding():
    # as PyTorch: an Inf weight times a padded zero is NaN
    x = np.ones((1, 2, 4, 4), F32)
    w = np.ones((20, 2, 3, 3), F32)
    w[3, 1, 0, 0] = np.inf
    y = _run(x, w, None, padding=1)
    ref = conv_nd(x, w, padding=1)
    assert np.isnan(y[0, 3, 0, 0]) and np.isnan(ref[0, 3, 0, 0])
    assert_close(y, ref.astype(F32), n_reduce=18)


# padding-heavy layers: rows whose depth or row taps fall in the padding run only their
# other taps (the first and last rows; all of a row's taps with padding past the kernel's
# reach; 3-D depth taps and row taps at once: several runs per row)
SKIP_GRID = [
    ((2, 6, 5, 5), (32, 6, 5, 5), dict(padding=2)),
    ((1, 3, 4, 7), (17, 3, 3, 3), dict(padding=(4, 1))),
    ((1, 5, 9, 8), (40, 5, 3, 5), dict(padding=(3, 2), dilation=(2, 1), stride=(2, 1))),
    ((1, 4, 1, 3), (16, 4, 3, 3), dict(padding=(3, 1))),
    ((2, 3, 6, 6, 6), (20, 3, 5, 5, 5), dict(padding=2)),
    ((1, 2, 3, 5, 9), (33, 2, 3, 3, 3), dict(padding=(2, 1, 1), dilation=(1, 2, 1))),
    ((1, 3, 5, 4, 6), (16, 3, 3, 3, 3), dict(padding=(1, 3, 0), stride=2)),
]


def _oc_kernel(x, w, finite, **kw):
    """dense_oc called as the forward calls it, with its ``finite`` flag given."""
    from pyconv._engine import conv
    with _plan.force("dense_oc"):
        pl = pyconv.explain(nn.conv, x, w, None, **kw)
    assert pl.prune is None     # (every tap meets the input in some row: none dropped)
    nd = w.ndim - 2
    geo, groups, B, rows, cols, osplit, cblock = pl.data.args
    wpk, fin = conv.pack_weight_blocks(w, groups, B, 1, tuning.active())
    assert fin == bool(np.isfinite(w).all())
    out = np.full(pl.geometry.out_shape, np.nan, x.dtype)
    lift = lambda a: a.reshape(a.shape[:2] + (1,) * (3 - nd) + a.shape[2:])
    conv.kernel(dense_direct.dense_oc, x.dtype)(lift(x), geo, wpk, np.zeros(0, x.dtype), False, lift(out), groups, B,
                                               rows, cols, osplit, cblock, finite, pyconv.get_num_threads())
    return out


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", range(len(SKIP_GRID)))
def test_padding_rows_leave_out_their_taps(case, dtype):
    xs, ws, kw = SKIP_GRID[case]
    rng = np.random.default_rng(40 + case)
    x, w, _, y = _check(rng, dtype, xs, ws, bias=False, **kw)
    # the same sums without the padded terms: 2-D rows keep their order (same bits), 3-D
    # rows whose depth and row taps both reach the padding sum in runs (rounding apart)
    skipped, full = _oc_kernel(x, w, True, **kw), _oc_kernel(x, w, False, **kw)
    assert np.array_equal(skipped, y)
    if len(xs) == 4:
        assert np.array_equal(skipped, full)
    else:
        assert_close(skipped, full, n_reduce=int(np.prod(ws[1:])))
    # a NaN weight: every output it reaches through the input or the padding is NaN, as in
    # the definition (the kernel then multiplies the padded zeros)
    w2 = w.copy()
    w2.reshape(-1)[rng.integers(w.size)] = np.nan
    y2 = _run(x, w2, None, **kw)
    assert np.array_equal(np.isnan(y2), np.isnan(conv_nd(x, w2, **kw)))


def test_default_choice_and_explain():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 16, 20, 20)).astype(F32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(F32)
    p = pyconv.explain(nn.conv2d, x, w, padding=1)
    assert p.algorithm == "dense_oc" and "dense_oc" in str(p) and p.tile("lanes") == 2 * LANES
    assert p.workspace_bytes > 0 and {"dense", "gemm", "dense_oc"} <= {str(a) for a in p.candidates}
    with tuning.override(dense_oc=False):
        assert pyconv.explain(nn.conv2d, x, w, padding=1).algorithm == "dense"
    # the phase-plane kernel stays reachable and agrees
    with _plan.force("dense"):
        yd = nn.conv2d(x, w, padding=1)
    assert_close(nn.conv2d(x, w, padding=1), yd, n_reduce=144)


def test_limits_and_narrow_groups_keep_the_other_kernels():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 16, 12, 12)).astype(F32)
    w = rng.standard_normal((40, 16, 3, 3)).astype(F32)
    assert pyconv.explain(nn.conv2d, x, w, padding=1).algorithm == "dense_oc"
    # K = 144 past the calibrated ceiling, or fewer positions than the crossover: the
    # phase-plane kernel / GEMM decide as before
    for over in (dict(dense_oc_max_k=143), dict(dense_oc_min_positions=145)):
        with tuning.override(**over):
            assert pyconv.explain(nn.conv2d, x, w, padding=1).algorithm in ("dense", "gemm")
    with tuning.override(dense_oc_max_k=144, dense_oc_min_positions=144):
        assert pyconv.explain(nn.conv2d, x, w, padding=1).algorithm == "dense_oc"
    # one vector of output channels per group: the 8-wide phase-plane blocks by default
    p = pyconv.explain(nn.conv2d, x, w[:LANES], padding=1)
    assert p.algorithm != "dense_oc" and "dense_oc" in [str(a) for a in p.candidates]
    # float64 has its own switch
    with tuning.override(dense_oc_f8=False):
        assert pyconv.explain(nn.conv2d, x.astype(F64), w.astype(F64), padding=1).algorithm != "dense_oc"
        assert pyconv.explain(nn.conv2d, x, w, padding=1).algorithm == "dense_oc"


@pytest.mark.parametrize("alg, kind, xs, ws, kw", [
    ("dense_oc", "conv", (3, 6, 9, 11), (40, 6, 3, 3), dict(padding=1)),
    ("dense_oc", "conv", (1, 4, 3, 5), (20, 4, 3, 3), dict(padding=1, stride=2)),
    # one sample, weights heavier than its rows: units split by output-channel blocks too
    # (osplit = 2 or 3 shares of 3 blocks, by the team)
    ("dense_oc", "conv", (1, 24, 6, 7), (3 * 2 * LANES, 24, 3, 3), dict(padding=1)),
    ("dense_oc", "conv", (2, 8, 9, 5, 4), (2 * 2 * LANES + 3, 8, 3, 3, 3), dict(padding=1)),
    ("dense", "conv", (2, 5, 7, 6, 9), (12, 5, 3, 3, 3), dict(padding=1)),
    ("dense", "conv", (1, 3, 2, 3), (8, 3, 2, 2), dict()),
    ("phases_oc", "transpose", (2, 8, 7, 6), (8, 36, 4, 4), dict(stride=2, padding=1)),
    ("panel", "conv", (3, 24, 9, 11), (40, 24, 1, 1), dict()),
    ("panel", "conv", (1, 8, 2, 3), (16, 8, 1, 1), dict()),
])
def test_units_split_in_parts_cover_every_output_once_whatever_the_team(monkeypatch, alg, kind, xs, ws, kw):
    # dense_conv, dense_oc, phases_oc and the 1x1 panel hand their units out in contiguous parts, one per
    # thread, each thread helping with what is left of the others at the end
    # (_common.next_unit): with every fresh NumPy buffer poisoned with NaN, teams of 1 to
    # 5 threads (more than some layers' units) give the float64 definition, in the same bits
    rng = np.random.default_rng(len(xs) * 100 + ws[0])
    x = rng.standard_normal(xs).astype(F32)
    w = rng.standard_normal(ws).astype(F32)
    if kind == "transpose":
        fn = getattr(nn, f"conv_transpose{len(xs) - 2}d")
        want = conv_transpose_nd(x, w, **kw)
        n_reduce = ws[0] * int(np.prod(ws[2:]))
    else:
        fn = getattr(nn, f"conv{len(xs) - 2}d")
        want = conv_nd(x, w, **kw)
        n_reduce = int(np.prod(ws[1:]))
    results = []
    for team in (1, 2, 3, 5):
        with pyconv.threads(team), _plan.force(alg):
            assert pyconv.explain(fn, x, w, **kw).algorithm == alg
            undo = poison_fresh_buffers(monkeypatch)
            try:
                results.append(fn(x, w, **kw))
            finally:
                undo()
    for got in results:
        assert np.isfinite(got).all()
        assert_close(got, want.astype(F32), n_reduce=n_reduce)
        np.testing.assert_array_equal(got, results[0])


@pytest.mark.parametrize("dtype", [F32, F64])
def test_output_channel_shares_and_balanced_rows(dtype):
    # a small batch of small maps: the plan splits the units by output-channel blocks
    # (osplit) where the weights outweigh the rows a unit copies, and takes rows per unit
    # that fall evenly on the threads; every split gives the definition in the same bits
    rng = np.random.default_rng(5)
    lanes = dense_direct.OC_LANES[np.dtype(dtype).name]
    x = rng.standard_normal((1, 16, 28, 28)).astype(dtype)
    w = rng.standard_normal((8 * lanes, 16, 3, 3)).astype(dtype)
    want = conv_nd(x, w, padding=1)
    got = []
    for team in (1, 2, 3, 4):
        with pyconv.threads(team), _plan.force("dense_oc"):
            tiles = dict(pyconv.explain(nn.conv2d, x, w, padding=1).tiles)
            got.append(nn.conv2d(x, w, padding=1))
        if team > 1:
            assert tiles.get("osplit", 1) > 1, tiles
        assert_close(got[-1], want.astype(dtype), n_reduce=16 * 9)
        np.testing.assert_array_equal(got[-1], got[0])


# the flipped kernel of a stride-1 input gradient or transposed convolution, packed for
# 'dense' / 'dense_oc' straight from the weights (groups; output channels of the flipped
# kernel not a multiple of the block width; 1-D to 3-D; dilation, asymmetric reach)
FLIP_GRID = [
    ((2, 40, 9, 11), (24, 40, 3, 3), dict(padding=1), 1),
    ((1, 12, 8, 9), (36, 6, 3, 2), dict(padding=(2, 1), dilation=(1, 2)), 2),
    ((2, 17, 5, 6, 7), (33, 17, 3, 3, 3), dict(padding=1), 1),
    ((2, 33, 50), (20, 33, 5), dict(padding=2), 1),
]


def _flip(w, groups):
    """(A, C/groups, *k) -> (C, A/groups, *k): per group the channel axes swapped, taps reversed."""
    a, c, k = w.shape[0] // groups, w.shape[1], w.shape[2:]
    flip = (slice(None),) * 3 + (slice(None, None, -1),) * len(k)
    return np.ascontiguousarray(w.reshape((groups, a, c) + k).swapaxes(1, 2)[flip].reshape((groups * c, a) + k))


@pytest.mark.parametrize("alg", ["dense", "dense_oc", "gemm"])
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", range(len(FLIP_GRID)))
def test_flipped_kernel_packed_from_the_weights(case, dtype, alg):
    # (GEMM takes a flipped copy: the reference the packing is held to, and its Inf rule)
    from pyconv import grad
    from pyconv._engine import conv
    xs, ws, kw, groups = FLIP_GRID[case]
    rng = np.random.default_rng(60 + case)
    nd = len(xs) - 2
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    go = rng.standard_normal(conv_nd(x, w, groups=groups, **kw).shape).astype(dtype)
    wf = _flip(w, groups)
    assert np.array_equal(conv.pack_flipped_blocks(w, groups, 8, 2, tuning.active())[0],
                          conv.pack_weight_blocks(wf, groups, 8, 2, tuning.active())[0])
    gin = getattr(grad, f"conv{nd}d_input")
    with _plan.force(alg):
        p = pyconv.explain(gin, x.shape, w, go, groups=groups, **kw)
        assert p.algorithm == "flip_conv" and p.sub.algorithm == alg, p
        gx = gin(x.shape, w, go, groups=groups, **kw)
    # bitwise the forward of the flipped copy (what the input gradient ran before), and the
    # float64 definition: the input gradient is the transposed convolution of grad_output
    assert np.array_equal(gx, conv.forward(p.sub, go, wf, None))
    assert_close(gx, conv_transpose_nd(go, w, groups=groups, **kw).astype(dtype), n_reduce=int(np.prod(ws)) // groups)
    # the transposed convolution at stride 1 with its own weights (C_in, C_out/groups, *k)
    tconv = getattr(nn, f"conv_transpose{nd}d")
    b = rng.standard_normal(ws[1] * groups).astype(dtype)
    with _plan.force(alg):
        pt = pyconv.explain(tconv, go, w, b, groups=groups, **kw)
        y = tconv(go, w, b, groups=groups, **kw)
    if alg != "gemm":       # (forced, the transposed convolution's own GEMM runs)
        assert pt.algorithm == "flip_conv" and pt.sub.algorithm == alg, pt
        assert np.array_equal(y, conv.forward(pt.sub, go, wf, b))
    assert_close(y, conv_transpose_nd(go, w, b, groups=groups, **kw).astype(dtype),
                 n_reduce=int(np.prod(ws)) // groups)
    # an Inf weight: the input gradient and the transposed convolution have no padded
    # terms, so no 0 * inf (the plan falls back to col2im); NaN and Inf where the
    # definition has them
    w2 = w.copy()
    w2.reshape(-1)[rng.integers(w.size)] = np.inf
    with _plan.force(alg):
        gx2 = gin(x.shape, w2, go, groups=groups, **kw)
        y2 = tconv(go, w2, b, groups=groups, **kw)
    for got, ref in ((gx2, conv_transpose_nd(go, w2, groups=groups, **kw)),
                     (y2, conv_transpose_nd(go, w2, b, groups=groups, **kw))):
        assert np.isinf(ref).any()
        assert np.array_equal(np.isnan(got), np.isnan(ref)) and np.array_equal(np.isinf(got), np.isinf(ref))
