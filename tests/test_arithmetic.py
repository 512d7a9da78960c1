"""pyconv.arithmetic: shape rules against PyTorch, the conv matrix against the
definition (tests/reference.py), PyTorch and pyconv.nn, and the worked figures."""
import itertools
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyconv.arithmetic import (ConvCost, conv_cost, conv_matrix, conv_output_size,
                               conv_transpose_output_size, receptive_field, same_padding,
                               transpose_overlap)
from reference import assert_close, conv_nd_mode, conv_transpose_nd

RNG = np.random.default_rng(20261128)


# --------------------------------------------------------------------------- output sizes

def _torch():
    return pytest.importorskip("torch")


def test_conv_output_size_matches_torch_grid():
    torch = _torch()
    F = torch.nn.functional
    checked = rejected = 0
    for i, k, s, p, d in itertools.product(range(1, 9), range(1, 5), range(1, 4), range(3), range(1, 4)):
        x = torch.zeros(1, 1, i, dtype=torch.float64)
        w = torch.zeros(1, 1, k, dtype=torch.float64)
        try:
            expected = F.conv1d(x, w, stride=s, padding=p, dilation=d).shape[-1]
        except RuntimeError:
            with pytest.raises(ValueError, match="kernel_size"):
                conv_output_size(i, k, s, p, d)
            rejected += 1
            continue
        assert conv_output_size(i, k, s, p, d) == expected, (i, k, s, p, d)
        checked += 1
    assert checked > 500 and rejected > 20


def test_conv_output_size_tuples_match_torch_3d():
    torch = _torch()
    x = torch.zeros(1, 1, 9, 6, 5, dtype=torch.float64)
    w = torch.zeros(1, 1, 3, 2, 4, dtype=torch.float64)
    out = torch.nn.functional.conv3d(x, w, stride=(2, 1, 3), padding=(1, 0, 2), dilation=(1, 2, 1))
    assert conv_output_size((9, 6, 5), (3, 2, 4), (2, 1, 3), (1, 0, 2), (1, 2, 1)) == tuple(out.shape[2:])
    # ints broadcast against a tuple
    assert conv_output_size((9, 6), 3) == (7, 4)
    # (before, after) pairs: 2p becomes before + after
    assert conv_output_size((5, 5), 3, padding=((1, 0), (2, 1))) == (4, 6)
    assert conv_output_size(5, 3, padding=((0, 1),)) == (4,)


def test_conv_output_size_is_not_the_swapped_rule():
    # A popular introduction prints o = floor((i + 2p - s) / k) + 1; the two differ here.
    i, k, s, p = 7, 3, 2, 1
    assert conv_output_size(i, k, s, p) == 4
    assert (i + 2 * p - s) // k + 1 == 3


def test_conv_transpose_output_size_matches_torch_grid():
    torch = _torch()
    F = torch.nn.functional
    checked = rejected = 0
    for i, k, s, p, op, d in itertools.product(range(1, 6), range(1, 5), range(1, 4), range(3), range(3),
                                               range(1, 3)):
        x = torch.zeros(1, 1, i, dtype=torch.float64)
        w = torch.zeros(1, 1, k, dtype=torch.float64)
        try:
            expected = F.conv_transpose1d(x, w, stride=s, padding=p, output_padding=op, dilation=d).shape[-1]
        except RuntimeError:
            with pytest.raises(ValueError, match="output_padding|output size"):
                conv_transpose_output_size(i, k, s, p, op, d)
            rejected += 1
            continue
        assert conv_transpose_output_size(i, k, s, p, op, d) == expected, (i, k, s, p, op, d)
        checked += 1
    assert checked > 500 and rejected > 100


def test_conv_transpose_output_size_figures():
    assert conv_transpose_output_size(2, 3) == 4               # 2x2 -> 4x4
    assert conv_transpose_output_size((2, 2), 3, 2) == (5, 5)  # 2x2 -> 5x5 (one zero inserted)


def test_conv_transpose_inverts_conv_output_size():
    for i, k, s, p, d in itertools.product(range(1, 12), range(1, 4), range(1, 4), range(2), range(1, 3)):
        try:
            o = conv_output_size(i, k, s, p, d)
        except ValueError:
            continue
        op = (i + 2 * p - d * (k - 1) - 1) % s
        assert conv_transpose_output_size(o, k, s, p, op, d) == i


def test_same_padding_gives_ceil_outputs():
    for i, k, s, d in itertools.product(range(1, 14), range(1, 6), range(1, 4), range(1, 3)):
        before, after = same_padding(i, k, s, d)
        assert 0 <= before <= after <= before + 1
        assert conv_output_size(i, k, s, ((before, after),), d) == (-(-i // s),)
        if before + after > 0:   # minimal: one unit less loses an output (or no longer fits)
            try:
                assert conv_output_size(i, k, s, ((before, after - 1),), d)[0] < -(-i // s)
            except ValueError:
                pass
    assert same_padding((5, 6), (3, 2), 2) == ((1, 1), (0, 0))


def test_same_padding_matches_torch_same_for_stride_1():
    torch = _torch()
    F = torch.nn.functional
    x = torch.from_numpy(RNG.standard_normal((1, 1, 9, 8)))
    for kh, kw, dh, dw in [(3, 3, 1, 1), (4, 2, 1, 2), (2, 5, 3, 1)]:
        w = torch.from_numpy(RNG.standard_normal((1, 1, kh, kw)))
        with warnings.catch_warnings():   # torch notes it copies the input for even kernels
            warnings.simplefilter("ignore", UserWarning)
            ref = F.conv2d(x, w, padding="same", dilation=(dh, dw)).numpy()
        (pt, pb), (pl, pr) = same_padding((9, 8), (kh, kw), 1, (dh, dw))
        got = F.conv2d(F.pad(x, (pl, pr, pt, pb)), w, dilation=(dh, dw)).numpy()
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: conv_output_size(5, 0), ValueError, "kernel_size"),
    (lambda: conv_output_size(5, 3, stride=0), ValueError, "stride"),
    (lambda: conv_output_size(5, 3, padding=-1), ValueError, "padding"),
    (lambda: conv_output_size(5, 3, padding=((1, 2, 3),)), ValueError, "padding"),
    (lambda: conv_output_size(2, 5), ValueError, "kernel_size=5"),
    (lambda: conv_output_size(5.0, 3), TypeError, "input_size"),
    (lambda: conv_output_size((5, 5), (3, 3, 3)), ValueError, "kernel_size"),
    (lambda: conv_output_size((5, 5), 3, padding=(1, 1, 1)), ValueError, "padding"),
    (lambda: conv_transpose_output_size(3, 3, stride=2, output_padding=2), ValueError, "output_padding"),
    (lambda: conv_transpose_output_size(1, 1, padding=1), ValueError, "output size"),
    (lambda: same_padding(5, 3, stride=True), TypeError, "stride"),
    (lambda: same_padding(-1, 3), ValueError, "input_size"),
])
def test_size_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------- receptive field

def test_receptive_field_dilated_stack():
    assert receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == [(3, 1), (7, 1), (15, 1)]
    assert [r for r, _ in receptive_field([(3, 1, 2 ** n) for n in range(5)])] == [3, 7, 15, 31, 63]
    assert receptive_field([(3, 2), (3, 2), (3, 2)]) == [(3, 2), (7, 4), (15, 8)]
    assert receptive_field([((3, 1), 1, (1, 2)), (3, (2, 1), 2)]) == [((3, 1), (1, 1)), ((7, 5), (2, 1))]
    assert receptive_field([]) == []


def _support_of_stack(layers, n_in):
    """Receptive field and jump by composing 1-D conv matrices of all-ones kernels."""
    m = None
    size = n_in
    for k, s, d in layers:
        c = conv_matrix((1, size), np.ones((1, 1, k)), stride=s, dilation=d)
        m = c if m is None else c @ m
        size = c.shape[0]
    dense = m.toarray() != 0
    cols = [np.flatnonzero(row) for row in dense]
    return cols[0][-1] - cols[0][0] + 1, cols[1][0] - cols[0][0]


@pytest.mark.parametrize("layers", [
    [(3, 1, 1), (3, 1, 2), (3, 1, 4)],
    [(5, 2, 1), (3, 1, 1), (2, 2, 1)],
    [(3, 2, 2), (4, 3, 1), (3, 1, 3)],
    [(1, 2, 1), (3, 1, 1)],
])
def test_receptive_field_matches_composed_conv_matrices(layers):
    size, jump = _support_of_stack(layers, 120)
    assert receptive_field(layers)[-1] == (size, jump)


@pytest.mark.parametrize("layers, exc, match", [
    (3, TypeError, "layers"),
    ([(3,)], ValueError, r"layers\[0\]"),
    ([(3, 1, 1), (3, 0, 1)], ValueError, r"layers\[1\] stride"),
    ([(3, 1, 1.5)], TypeError, r"layers\[0\] dilation"),
    ([((3, 3), 1), ((3, 3, 3), 1)], ValueError, "different lengths"),
])
def test_receptive_field_errors(layers, exc, match):
    with pytest.raises(exc, match=match):
        receptive_field(layers)


# --------------------------------------------------------------------------- conv matrix

# (input_shape, weight_shape, kwargs)
MATRIX_CASES = [
    ((1, 4, 4), (1, 1, 3, 3), {}),
    ((3, 7, 6), (4, 3, 3, 2), dict(stride=2, padding=1)),
    ((2, 9), (3, 2, 4), dict(stride=3, padding=2, dilation=2)),
    ((4, 6, 5), (6, 2, 3, 3), dict(groups=2, padding=(1, 2), dilation=(1, 2))),
    ((4, 5, 5), (4, 1, 3, 3), dict(groups=4, padding=((2, 0), (1, 2)), stride=(1, 2))),
    ((2, 4, 5, 3), (3, 2, 2, 3, 2), dict(stride=(1, 2, 1), padding=1)),
    ((3, 2, 3), (2, 3, 4, 4), dict(padding=2)),                 # kernel larger than input
    ((3, 5, 4), (5, 3, 1, 1), {}),                              # 1x1
    ((2, 1, 7), (2, 2, 1, 3), dict(padding="same")),
    ((2, 8, 7), (2, 2, 3, 3), dict(padding="same", stride=2)),  # TensorFlow 'same' with stride
    ((2, 6, 6), (2, 1, 3, 3), dict(padding="valid", groups=2)),
    ((1, 1, 1), (1, 1, 1, 1), {}),
]


@pytest.mark.parametrize("ishape, wshape, kw", MATRIX_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_matrix_equals_definition(ishape, wshape, kw, dtype):
    x = RNG.standard_normal(ishape).astype(dtype)
    w = RNG.standard_normal(wshape).astype(dtype)
    C = conv_matrix(ishape, w, **kw)
    assert C.format == "csr" and C.dtype == dtype
    ref = conv_nd_mode(x[None], w, **kw)[0]
    assert C.shape == (ref.size, x.size)
    n_red = math.prod(wshape[1:])
    assert_close(C @ x.ravel(), ref.ravel().astype(dtype), dtype=dtype, n_reduce=n_red)
    # C.nnz counts the taps that touch real input: the multiplications without padding
    if kw.get("padding", 0) in (0, "valid"):
        assert C.nnz == conv_cost(ishape, wshape, **kw).multiplications


def _symmetric(kw):
    p = kw.get("padding", 0)
    return not isinstance(p, str) and not (isinstance(p, tuple) and any(isinstance(q, tuple) for q in p))


# conv_transpose has one padding per dim: the cases with (before, after) pairs or 'same' have no match
@pytest.mark.parametrize("ishape, wshape, kw", [c for c in MATRIX_CASES if _symmetric(c[2])])
def test_conv_matrix_transpose_is_conv_transpose(ishape, wshape, kw):
    p = kw.get("padding", 0)
    nd = len(wshape) - 2
    w = RNG.standard_normal(wshape)
    C = conv_matrix(ishape, w, **kw)
    st = np.broadcast_to(kw.get("stride", 1), nd)
    pd = np.broadcast_to(p, nd)
    dl = np.broadcast_to(kw.get("dilation", 1), nd)
    osz = conv_output_size(ishape[1:], wshape[2:], tuple(st), tuple(pd), tuple(dl))
    op = tuple(int((i + 2 * pp - d * (k - 1) - 1) % s) for i, k, s, pp, d in zip(ishape[1:], wshape[2:], st, pd, dl))
    g = RNG.standard_normal((wshape[0],) + tuple(osz))
    ref = conv_transpose_nd(g[None], w, stride=tuple(st), padding=tuple(pd), output_padding=op,
                            groups=kw.get("groups", 1), dilation=tuple(dl))[0]
    assert ref.shape == ishape
    assert_close(C.T @ g.ravel(), ref.ravel(), n_reduce=wshape[0] * math.prod(wshape[2:]))


@pytest.mark.parametrize("ishape, wshape, kw", [c for c in MATRIX_CASES if len(c[1]) <= 5])
def test_conv_matrix_against_torch(ishape, wshape, kw):
    torch = _torch()
    F = torch.nn.functional
    nd = len(wshape) - 2
    conv = [F.conv1d, F.conv2d, F.conv3d][nd - 1]
    convt = [F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d][nd - 1]
    x = RNG.standard_normal(ishape)
    w = RNG.standard_normal(wshape)
    C = conv_matrix(ishape, w, **kw)
    p = kw.get("padding", 0)
    tkw = {k: v for k, v in kw.items() if k != "padding"}
    xt = torch.from_numpy(x)[None]
    if p == "same":   # torch has no 'same' with stride > 1: pad explicitly with TensorFlow's pairs
        p = same_padding(ishape[1:], wshape[2:], kw.get("stride", 1), kw.get("dilation", 1))
    if isinstance(p, tuple) and any(isinstance(q, tuple) for q in p):
        flat = [v for pair in reversed(p) for v in pair]     # F.pad lists the last dim first
        ref = conv(F.pad(xt, flat), torch.from_numpy(w), **tkw)
    else:
        ref = conv(xt, torch.from_numpy(w), padding=p, **tkw)
    np.testing.assert_allclose(C @ x.ravel(), ref.numpy().ravel(), rtol=1e-10, atol=1e-10)
    if _symmetric(kw):
        st = np.broadcast_to(kw.get("stride", 1), nd)
        pd = np.broadcast_to(p, nd)
        dl = np.broadcast_to(kw.get("dilation", 1), nd)
        op = tuple(int((i + 2 * pp - d * (k - 1) - 1) % s)
                   for i, k, s, pp, d in zip(ishape[1:], wshape[2:], st, pd, dl))
        g = RNG.standard_normal(ref.shape[1:])
        reft = convt(torch.from_numpy(g)[None], torch.from_numpy(w), stride=tuple(int(v) for v in st),
                     padding=tuple(int(v) for v in pd), output_padding=op, groups=kw.get("groups", 1),
                     dilation=tuple(int(v) for v in dl))
        np.testing.assert_allclose(C.T @ g.ravel(), reft.numpy().ravel(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("ishape, wshape, kw", [c for c in MATRIX_CASES if len(c[1]) <= 5])
def test_conv_matrix_against_pyconv_nn(ishape, wshape, kw):
    nn = pytest.importorskip("pyconv.nn")
    x = RNG.standard_normal(ishape)
    w = RNG.standard_normal(wshape)
    C = conv_matrix(ishape, w, **kw)
    out = nn.conv(x, w, **kw)
    assert out.shape == (wshape[0],) + tuple(out.shape[1:])
    assert_close(C @ x.ravel(), out.ravel(), n_reduce=math.prod(wshape[1:]))
    if _symmetric(kw):       # C.T is pyconv's own transposed convolution
        nd = len(wshape) - 2
        st = tuple(int(v) for v in np.broadcast_to(kw.get("stride", 1), nd))
        pd = tuple(int(v) for v in np.broadcast_to(kw.get("padding", 0), nd))
        dl = tuple(int(v) for v in np.broadcast_to(kw.get("dilation", 1), nd))
        op = tuple((i + 2 * p - d * (k - 1) - 1) % s for i, k, s, p, d in zip(ishape[1:], wshape[2:], st, pd, dl))
        g = RNG.standard_normal(out.shape)
        convt = [nn.conv_transpose1d, nn.conv_transpose2d, nn.conv_transpose3d][nd - 1]
        back = convt(g[None], w, stride=st, padding=pd, output_padding=op, groups=kw.get("groups", 1),
                     dilation=dl)[0]
        assert back.shape == ishape
        assert_close(C.T @ g.ravel(), back.ravel(), n_reduce=wshape[0] * math.prod(wshape[2:]))


def test_conv_matrix_classic_4x16():
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    C = conv_matrix((1, 4, 4), w).toarray()
    expected = np.zeros((4, 16))
    for r, (oi, oj) in enumerate(itertools.product(range(2), range(2))):
        for ki, kj in itertools.product(range(3), range(3)):
            expected[r, (oi + ki) * 4 + oj + kj] = w[0, 0, ki, kj]
    np.testing.assert_array_equal(C, expected)


def test_conv_matrix_odd_weight_layouts_unchanged():
    base = RNG.standard_normal((3, 2, 3, 3))
    ref = conv_matrix((2, 6, 5), base, padding=1).toarray()
    for w in (np.asfortranarray(base), base[::-1, :, ::-1][::-1, :, ::-1], base.tolist()):
        np.testing.assert_array_equal(conv_matrix((2, 6, 5), w, padding=1).toarray(), ref)
    ro = base.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(conv_matrix((2, 6, 5), ro, padding=1).toarray(), ref)
    keep = base.copy()
    conv_matrix((2, 6, 5), base, padding=1)
    np.testing.assert_array_equal(base, keep)


def test_conv_matrix_dtype_policy_and_zero_sizes():
    assert conv_matrix((1, 3, 3), np.ones((1, 1, 2, 2), dtype=np.int32)).dtype == np.float64
    assert conv_matrix((1, 3, 3), np.ones((1, 1, 2, 2), dtype=np.float16)).dtype == np.float32
    C = conv_matrix((0, 4, 4), np.ones((0, 0, 3, 3)))
    assert C.shape == (0, 0) and C.nnz == 0
    C = conv_matrix((2, 4), np.ones((0, 2, 3)))
    assert C.shape == (0, 8)
    # every tap on padding: a zero row block
    C = conv_matrix((1, 1), np.ones((1, 1, 3)), padding=3, dilation=2)
    assert C.shape == (3, 1) and C.toarray().ravel().tolist() == [0, 1, 0]


@pytest.mark.parametrize("args, kwargs, exc, match", [
    (((3, 5, 5), np.ones((4, 2, 3, 3))), {}, ValueError, r"weight.shape\[1\]=2"),
    (((4, 5, 5), np.ones((6, 2, 3, 3))), dict(groups=3), ValueError, "groups=3 must divide in_channels=4"),
    (((4, 5, 5), np.ones((3, 2, 3, 3))), dict(groups=2), ValueError, "out_channels=3"),
    (((4, 5, 5), np.ones((4, 4, 3, 3))), dict(groups=0), ValueError, "groups=0"),
    (((3, 5), np.ones((4, 3, 3, 3))), {}, ValueError, "input_shape"),
    (((3, 5, 5, 5), np.ones((4, 3, 3, 3))), {}, ValueError, "input_shape"),
    ((3, np.ones((4, 3, 3, 3))), {}, TypeError, "input_shape"),
    (((3, 5.5, 5), np.ones((4, 3, 3, 3))), {}, TypeError, "input_shape"),
    (((3, -5, 5), np.ones((4, 3, 3, 3))), {}, ValueError, "input_shape"),
    (((3, 5), np.ones((4, 3))), {}, ValueError, "weight"),
    (((3, 5), np.ones((4, 3, 0))), {}, ValueError, "kernel size"),
    (((3, 2, 2), np.ones((4, 3, 3, 3))), {}, ValueError, "kernel_size=3"),
    (((3, 5, 5), np.ones((4, 3, 3, 3))), dict(stride=(1, 2, 3)), ValueError, "stride"),
    (((3, 5, 5), np.ones((4, 3, 3, 3))), dict(stride=0), ValueError, "stride"),
    (((3, 5, 5), np.ones((4, 3, 3, 3))), dict(dilation=1.0), TypeError, "dilation"),
    (((3, 5, 5), np.ones((4, 3, 3, 3))), dict(padding="full"), ValueError, "padding"),
    (((3, 5, 5), np.ones((4, 3, 3, 3))), dict(padding=(1, 1, 1)), ValueError, "padding"),
    (((3, 5, 5), np.ones((4, 3, 3, 3))), dict(padding=-1), ValueError, "padding"),
    (((3, 5, 5), np.ones((4, 3, 3, 3), dtype=complex)), {}, TypeError, "complex"),
    (((3, 5, 5), [["a"]]), {}, (TypeError, ValueError), "weight"),
])
def test_conv_matrix_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        conv_matrix(*args, **kwargs)


# --------------------------------------------------------------------------- transposed overlap

def test_transpose_overlap_checkerboard():
    odd = transpose_overlap(8, 3, 2)
    assert odd.dtype == np.int64 and odd.shape == (conv_transpose_output_size(8, 3, 2),)
    inner = odd[3:-3]
    assert set(inner.tolist()) == {1, 2} and np.all(inner[:-1] != inner[1:])   # alternates
    even = transpose_overlap(8, 4, 2)
    assert set(even[2:-2].tolist()) == {2}
    assert set(transpose_overlap(8, 2, 2).tolist()) == {1}                   # no overlap at all
    assert set(transpose_overlap(8, 6, 3)[5:-5].tolist()) == {2}
    five = transpose_overlap(9, 5, 2)[4:-4]
    assert set(five.tolist()) == {2, 3}
    # 2-D: the unevenness multiplies
    grid = transpose_overlap((6, 6), 3, 2)
    assert grid.shape == (13, 13) and set(grid[3:-3, 3:-3].ravel().tolist()) == {1, 2, 4}
    np.testing.assert_array_equal(grid, np.outer(transpose_overlap(6, 3, 2), transpose_overlap(6, 3, 2)))


@pytest.mark.parametrize("i, k, s, p", [(5, 3, 2, 0), (4, 4, 2, 1), (3, 5, 3, 2), (1, 3, 2, 0), (6, 1, 3, 0),
                                        ((3, 4), (3, 2), (2, 1), (1, 0)), ((2, 2, 3), 3, 2, 0)])
def test_transpose_overlap_is_conv_transpose_of_ones(i, k, s, p):
    nd = len(i) if isinstance(i, tuple) else 1
    isz = i if isinstance(i, tuple) else (i,)
    ks = k if isinstance(k, tuple) else (k,) * nd
    ref = conv_transpose_nd(np.ones((1, 1) + isz), np.ones((1, 1) + ks), stride=s, padding=p)[0, 0]
    got = transpose_overlap(i, k, s, p)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("args, exc, match", [
    ((0, 3, 2), ValueError, "input_size"),
    ((4, 0, 2), ValueError, "kernel_size"),
    ((4, 3, 0), ValueError, "stride"),
    ((4, 3, 2, -1), ValueError, "padding"),
    ((1, 1, 1, 1), ValueError, "output size"),
    ((4, 3, 2.0), TypeError, "stride"),
    (((4, 4), (3, 3, 3), 2), ValueError, "kernel_size"),
])
def test_transpose_overlap_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        transpose_overlap(*args)


# --------------------------------------------------------------------------- cost

def test_conv_cost_depthwise_separable_figure():
    std = conv_cost((3, 7, 7), (128, 3, 3, 3))
    assert isinstance(std, ConvCost)
    assert std == (86400, 3456, (128, 5, 5))
    dw = conv_cost((3, 7, 7), (3, 1, 3, 3), groups=3)
    pw = conv_cost(dw.output_shape, (128, 3, 1, 1))
    assert (dw.multiplications, pw.multiplications) == (675, 9600)
    assert dw.multiplications + pw.multiplications == 10275
    assert pw.output_shape == std.output_shape
    assert dw.parameters + pw.parameters == 27 + 384
    assert round(100 * Fraction(10275, 86400)) == 12          # "only 12% of the cost"


def test_conv_cost_spatially_separable_figure():
    std = conv_cost((1, 5, 5), (1, 1, 3, 3))
    col = conv_cost((1, 5, 5), (1, 1, 3, 1))
    row = conv_cost(col.output_shape, (1, 1, 1, 3))
    assert std.multiplications == 81
    assert col.output_shape == (1, 3, 5) and col.multiplications == 45
    assert row.output_shape == (1, 3, 3) and row.multiplications == 27
    assert col.multiplications + row.multiplications == 72


def test_depthwise_separable_ratio_exact():
    for D, H, W, h, nc in [(3, 7, 7, 3, 128), (16, 12, 9, 5, 64), (8, 20, 20, 1, 3), (1, 6, 10, 2, 7)]:
        std = conv_cost((D, H, W), (nc, D, h, h)).multiplications
        dw = conv_cost((D, H, W), (D, 1, h, h), groups=D)
        pw = conv_cost(dw.output_shape, (nc, D, 1, 1)).multiplications
        assert Fraction(dw.multiplications + pw, std) == Fraction(1, nc) + Fraction(1, h * h)


def test_spatially_separable_ratio_exact():
    for N in range(3, 30):
        for m in range(1, N + 1):
            std = conv_cost((1, N, N), (1, 1, m, m)).multiplications
            col = conv_cost((1, N, N), (1, 1, m, 1))
            row = conv_cost(col.output_shape, (1, 1, 1, m))
            ratio = Fraction(col.multiplications + row.multiplications, std)
            # exact: m(N-m+1)(2N-m+1) / (m^2 (N-m+1)^2)
            assert ratio == Fraction(2, m) + Fraction(m - 1, m * (N - m + 1))
            if m == 3 and N > 2:
                # the survey's 2/m + 2/(m(N-2)) is this formula at m = 3
                assert ratio == Fraction(2, m) + Fraction(2, m * (N - 2))
    # ... and only there: for a 5x5 kernel the survey's expression is off
    std = conv_cost((1, 9, 9), (1, 1, 5, 5)).multiplications
    col = conv_cost((1, 9, 9), (1, 1, 5, 1))
    row = conv_cost(col.output_shape, (1, 1, 1, 5)).multiplications
    assert Fraction(col.multiplications + row, std) != Fraction(2, 5) + Fraction(2, 5 * 7)


def test_conv_cost_output_shape_matches_torch_and_batched():
    torch = _torch()
    x = torch.zeros(2, 4, 9, 7)
    w = torch.zeros(6, 2, 3, 2)
    out = torch.nn.functional.conv2d(x, w, stride=(2, 1), padding=(1, 0), dilation=(1, 3), groups=2)
    c = conv_cost((2, 4, 9, 7), (6, 2, 3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 3), groups=2)
    assert c.output_shape == tuple(out.shape)
    assert c.multiplications == out.numel() * 2 * 6
    assert c.parameters == 6 * 2 * 3 * 2
    un = conv_cost((4, 9, 7), (6, 2, 3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 3), groups=2)
    assert un.output_shape == c.output_shape[1:] and 2 * un.multiplications == c.multiplications


def test_conv_cost_padding_forms_and_exact_ints():
    assert conv_cost((1, 6, 6), (1, 1, 3, 3), padding="same").output_shape == (1, 6, 6)
    assert conv_cost((1, 7, 7), (1, 1, 3, 3), padding="same", stride=2).output_shape == (1, 4, 4)
    assert conv_cost((1, 6, 6), (1, 1, 3, 3), padding=((1, 0), (0, 2))).output_shape == (1, 5, 6)
    big = conv_cost((10 ** 6, 10 ** 6, 10 ** 6), (10 ** 6, 10 ** 6, 1, 1))
    assert big.multiplications == 10 ** 24 and type(big.multiplications) is int


@pytest.mark.parametrize("args, kwargs, exc, match", [
    (((3, 7, 7, 7), (128, 3, 3)), {}, ValueError, "input_shape"),
    (((3, 7, 7), (128, 2, 3, 3)), {}, ValueError, r"weight.shape\[1\]"),
    (((3, 7, 7), 5), {}, TypeError, "weight shape"),
    (((3, 7, 7), (128, 3)), {}, ValueError, "weight"),
    (((3, 7, 7), (128, -3, 3, 3)), {}, ValueError, "negative"),
    (((3, 7, 7), (128, 1, 3, 3)), dict(groups=2), ValueError, "groups=2 must divide in_channels=3"),
    (((3, 2, 7), (128, 3, 3, 3)), {}, ValueError, "kernel_size=3"),
    (((3, 7, 7), (128, 3, 3, 3)), dict(padding="half"), ValueError, "padding"),
    (((3, 7, 7), (128, 3, 3, 3)), dict(stride=(1, 1, 1)), ValueError, "stride"),
])
def test_conv_cost_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        conv_cost(*args, **kwargs)


def test_conv_matrix_refuses_huge_sizes():
    with pytest.raises(ValueError, match="entries .* use pyconv.nn.conv"):
        conv_matrix((1, 10 ** 5, 10 ** 5), np.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="entries"):
        conv_matrix((64, 512, 512), np.ones((64, 64, 1, 1)))


def test_conv_matrix_is_canonical_csr():
    C = conv_matrix((4, 6, 5), RNG.standard_normal((6, 2, 3, 3)), padding=1, groups=2)
    assert C.has_sorted_indices and C.has_canonical_format
    coo = C.tocoo()
    assert len(set(zip(coo.row.tolist(), coo.col.tolist()))) == C.nnz     # no duplicates


@st.composite
def _layers(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    cg = draw(st.integers(0 if nd == 1 else 1, 2))
    og = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd))
    spatial = tuple(max(draw(st.integers(1, 7 if nd < 3 else 5)), d * (k - 1) + 1 - a - b)
                    for k, d, (a, b) in zip(kernel, dil, pads))
    return (groups * cg,) + spatial, (groups * og, cg) + kernel, dict(stride=stride, padding=pads,
                                                                     dilation=dil, groups=groups)


@settings(max_examples=40, deadline=None)
@given(_layers(), st.integers(0, 2 ** 32 - 1))
def test_conv_matrix_hypothesis(layer, seed):
    ishape, wshape, kw = layer
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(ishape)
    w = rng.standard_normal(wshape)
    C = conv_matrix(ishape, w, **kw)
    cost = conv_cost(ishape, wshape, **kw)
    assert C.shape == (math.prod(cost.output_shape), x.size)
    assert C.nnz <= cost.multiplications
    ref = conv_nd_mode(x[None], w, **kw)[0]
    assert ref.shape == cost.output_shape
    assert_close(C @ x.ravel(), ref.ravel(), n_reduce=max(1, math.prod(wshape[1:])))
    # symmetric padding: C.T is the transposed convolution
    sym = tuple(max(a, b) for a, b in kw["padding"])
    kw_sym = dict(kw, padding=sym)
    C = conv_matrix(ishape, w, **kw_sym)
    out = conv_output_size(ishape[1:], wshape[2:], kw["stride"], sym, kw["dilation"])
    op = tuple((i + 2 * p - d * (k - 1) - 1) % s
               for i, k, s, p, d in zip(ishape[1:], wshape[2:], kw["stride"], sym, kw["dilation"]))
    if any(o_ >= s and o_ >= d for o_, s, d in zip(op, kw["stride"], kw["dilation"])):
        return      # no conv_transpose reaches that input size (PyTorch's output_padding rule)
    g = rng.standard_normal((wshape[0],) + out)
    back = conv_transpose_nd(g[None], w, stride=kw["stride"], padding=sym, output_padding=op,
                             groups=kw["groups"], dilation=kw["dilation"])[0]
    assert_close(C.T @ g.ravel(), back.ravel(), n_reduce=max(1, wshape[0] * math.prod(wshape[2:])))
