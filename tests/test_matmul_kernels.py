"""The plain matrix-product kernels of the 1x1 plans and of the resize convolution's
gradient (``nn_gemm.matmul_stack``, ``matmul_weight``, ``matmul_sandwich``), against the
products written out in float64 NumPy: every span width (whole, one column, a 64-column
multiple, wider than the matrix), transposed operands, zero-size and size-1 dimensions,
and the same bits at every team size (each task owns its outputs; spans are fixed by the
caller, not by the team).

Tolerances: float32 results within 2e-6 x (K + 1) of the float64 reference relative to
the largest |value| (K products summed per element), float64 within 1e-13 x (K + 1).
"""
import itertools

import numpy as np
import pytest

from pyconv._engine.conv import kernel, span_width
from pyconv._kernels import nn_gemm
from pyconv._threads import blas_single_thread

DTYPES = [np.float32, np.float64]
TEAMS = (1, 2, 3)


def _tol(dtype, k):
    return (2e-6 if dtype == np.float32 else 1e-13) * (k + 1)


def _check(got, ref, dtype, k):
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    err = float(np.max(np.abs(got - ref))) / scale if ref.size else 0.0
    assert err <= _tol(dtype, k), (err, _tol(dtype, k))


def _run_teams(fn, out):
    """``fn(out, team)`` at every team size: one result (all the same bits)."""
    results = []
    for team in TEAMS:
        out[...] = np.nan          # every element must be written
        with blas_single_thread():
            fn(out, team)
        results.append(out.copy())
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    return results[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("na,n,M,K,N,ta", [
    (1, 4, 5, 7, 130, False), (1, 4, 5, 7, 130, True), (3, 6, 2, 9, 65, False), (2, 4, 16, 64, 200, True),
    (1, 1, 1, 1, 1, False), (1, 3, 4, 1, 9, True), (1, 2, 3, 5, 1, False),
])
@pytest.mark.parametrize("span", [0, 1, 64, 10 ** 6])
def test_matmul_stack_matches_the_products(dtype, na, n, M, K, N, ta, span):
    rng = np.random.default_rng(hash((na, n, M, K, N, ta, span)) % 2 ** 32)
    a = rng.standard_normal((na, K, M) if ta else (na, M, K)).astype(dtype)
    b = rng.standard_normal((n, K, N)).astype(dtype)
    a64 = a.astype(np.float64).transpose(0, 2, 1) if ta else a.astype(np.float64)
    ref = np.stack([a64[i % na] @ b[i].astype(np.float64) for i in range(n)])
    got = _run_teams(lambda out, team: kernel(nn_gemm.matmul_stack, dtype)(a, ta, b, out, span, team),
                     np.empty((n, M, N), dtype))
    _check(got, ref, dtype, K)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_stack_zero_sizes(dtype):
    f = kernel(nn_gemm.matmul_stack, dtype)
    # K = 0: the products are zeros (BLAS would only scale the output)
    out = np.full((3, 4, 5), np.nan, dtype)
    f(np.empty((1, 4, 0), dtype), False, np.empty((3, 0, 5), dtype), out, 0, 2)
    np.testing.assert_array_equal(out, 0)
    # no matrices, no rows, no columns: nothing to write, nothing read
    for shape_b, shape_out in [((0, 3, 5), (0, 4, 5)), ((2, 3, 5), (2, 0, 5)), ((2, 3, 0), (2, 4, 0))]:
        f(np.ones((1, shape_out[1], 3), dtype), False, np.ones(shape_b, dtype), np.empty(shape_out, dtype), 0, 2)


@pytest.mark.parametrize("bad", [
    dict(a=(1, 4, 3), b=(2, 4, 5), out=(2, 4, 5)),        # a's K is not b's
    dict(a=(1, 4, 3), b=(2, 3, 5), out=(3, 4, 5)),        # stacks of different lengths
    dict(a=(1, 4, 3), b=(2, 3, 5), out=(2, 4, 6)),        # columns differ
    dict(a=(0, 4, 3), b=(2, 3, 5), out=(2, 4, 5)),        # no left matrix
    dict(a=(1, 4, 3), b=(2, 3, 5), out=(2, 4, 5), ta=True),  # a is (K, M) when transposed
])
def test_matmul_stack_rejects_shapes_that_do_not_chain(bad):
    with pytest.raises(ValueError, match="matmul_stack"):
        kernel(nn_gemm.matmul_stack, np.float64)(np.zeros(bad["a"]), bad.get("ta", False), np.zeros(bad["b"]),
                                                 np.zeros(bad["out"]), 0, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tall", [False, True])
@pytest.mark.parametrize("n,cout,cin,P,span,groups", [
    (3, 5, 40, 37, 16, 1), (3, 5, 40, 37, 0, 1), (1, 16, 33, 100, 32, 1), (4, 1, 1, 1, 1, 1),
    (2, 7, 3, 9, 10 ** 6, 1), (5, 64, 48, 49, 16, 1), (3, 8, 128, 37, 16, 2), (2, 6, 12, 50, 0, 3),
    (4, 16, 16, 9, 1, 16), (1, 12, 40, 100, 7, 4),
])
def test_matmul_weight_sums_the_samples(dtype, tall, n, cout, cin, P, span, groups):
    # per group: its output channels' grad_output against its own input channels
    rng = np.random.default_rng(hash((tall, n, cout, cin, P, span, groups)) % 2 ** 32)
    dy = rng.standard_normal((n, cout, P)).astype(dtype)
    x = rng.standard_normal((n, cin, P)).astype(dtype)
    og, cg = cout // groups, cin // groups
    ref = np.concatenate([np.einsum("nop,ncp->oc", dy[:, g * og:(g + 1) * og].astype(np.float64),
                                    x[:, g * cg:(g + 1) * cg].astype(np.float64)) for g in range(groups)])
    got = _run_teams(lambda out, team: kernel(nn_gemm.matmul_weight, dtype)(dy, x, out, tall, span, groups, team),
                     np.empty((cout, cg), dtype))
    _check(got, ref, dtype, n * P)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_weight_zero_sizes_and_bad_shapes(dtype):
    f = kernel(nn_gemm.matmul_weight, dtype)
    for n, P in [(0, 5), (3, 0)]:       # no samples or no positions: a zero gradient
        gw = np.full((4, 6), np.nan, dtype)
        f(np.ones((n, 4, P), dtype), np.ones((n, 6, P), dtype), gw, True, 2, 1, 2)
        np.testing.assert_array_equal(gw, 0)
    f(np.ones((2, 0, 3), dtype), np.ones((2, 6, 3), dtype), np.empty((0, 6), dtype), False, 0, 1, 2)
    with pytest.raises(ValueError, match="matmul_weight"):
        f(np.ones((2, 4, 3), dtype), np.ones((2, 6, 4), dtype), np.empty((4, 6), dtype), False, 0, 1, 2)
    with pytest.raises(ValueError, match="matmul_weight"):
        f(np.ones((2, 4, 3), dtype), np.ones((2, 6, 3), dtype), np.empty((6, 4), dtype), False, 0, 1, 2)
    with pytest.raises(ValueError, match="groups=4"):       # 6 output channels in 4 groups
        f(np.ones((2, 6, 3), dtype), np.ones((2, 8, 3), dtype), np.empty((6, 2), dtype), False, 0, 4, 2)
    with pytest.raises(ValueError, match="groups=2"):       # x has 6 channels, not 2 x 6
        f(np.ones((2, 4, 3), dtype), np.ones((2, 6, 3), dtype), np.empty((4, 6), dtype), False, 0, 2, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per", [0, 1, 2, 10 ** 6])
@pytest.mark.parametrize("n,H,Hf,Wf,W", [(5, 8, 4, 3, 6), (1, 1, 1, 1, 1), (7, 16, 8, 8, 16), (3, 2, 5, 4, 9)])
def test_matmul_sandwich_matches_the_products(dtype, per, n, H, Hf, Wf, W):
    rng = np.random.default_rng(hash((per, n, H, Hf, Wf, W)) % 2 ** 32)
    left = rng.standard_normal((H, Hf)).astype(dtype)
    planes = rng.standard_normal((n, Hf, Wf)).astype(dtype)
    right = rng.standard_normal((Wf, W)).astype(dtype)
    ref = np.einsum("hi,nij,jw->nhw", left.astype(np.float64), planes.astype(np.float64), right.astype(np.float64))
    got = _run_teams(lambda out, team: kernel(nn_gemm.matmul_sandwich, dtype)(left, planes, right, out, per, team),
                     np.empty((n, H, W), dtype))
    _check(got, ref, dtype, Hf * Wf)


def test_matmul_sandwich_zero_sizes_and_bad_shapes():
    f = kernel(nn_gemm.matmul_sandwich, np.float64)
    for Hf, Wf in [(0, 3), (3, 0)]:     # an empty plane: zero products
        out = np.full((2, 4, 5), np.nan)
        f(np.ones((4, Hf)), np.ones((2, Hf, Wf)), np.ones((Wf, 5)), out, 1, 2)
        np.testing.assert_array_equal(out, 0)
    f(np.ones((4, 3)), np.ones((0, 3, 2)), np.ones((2, 5)), np.empty((0, 4, 5)), 1, 2)
    with pytest.raises(ValueError, match="matmul_sandwich"):
        f(np.ones((4, 3)), np.ones((2, 3, 2)), np.ones((3, 5)), np.empty((2, 4, 5)), 1, 2)


@pytest.mark.parametrize("length,pieces,align",
                         list(itertools.product([1, 63, 64, 200, 1000], [1, 2, 3, 7], [1, 16, 64])))
def test_span_width_covers_the_range_in_at_most_the_pieces(length, pieces, align):
    w = span_width(length, pieces, align)
    assert w % align == 0 and w >= 1
    assert -(-length // w) <= pieces or w == align
