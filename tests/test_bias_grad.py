"""The bias gradient (grad_direct.bias_sum behind grad.conv*_backward and the dask
backward) against the float64 definition: grad_output summed over samples and positions.

Rows shorter than one vector, between vector widths and longer than the 4096-element
blocks; empty batches, channels and maps; non-contiguous and other-dtype grad_output;
the bits at several thread counts.  Tolerance: float32 2e-6 relative to the sum of
absolute values (blocks of at most 64 float32 additions per lane, added in double),
float64 1e-13.
"""
import numpy as np
import pytest

import pyconv
from pyconv import grad

F32, F64 = np.float32, np.float64


def _check(go, dtype):
    gb = grad._bias_grad(go, dtype)
    axes = (0,) + tuple(range(2, go.ndim))
    ref = np.asarray(go, dtype=F64).sum(axis=axes)
    scale = np.abs(np.asarray(go, dtype=F64)).sum(axis=axes)
    tol = 2e-6 if dtype == F32 else 1e-13
    assert gb.dtype == dtype and gb.shape == (go.shape[1],)
    assert np.all(np.abs(gb.astype(F64) - ref) <= tol * scale + 1e-30), np.max(np.abs(gb - ref) / (scale + 1e-30))
    return gb


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("shape", [(2, 3, 1), (1, 4, 7), (3, 5, 16), (2, 2, 33), (4, 3, 9, 11), (2, 6, 3, 4, 5),
                                   (1, 2, 4096), (2, 3, 4097), (1, 1, 20000), (5, 1, 130)])
def test_matches_definition(shape, dtype):
    go = np.random.default_rng(len(shape) * 100 + shape[-1]).standard_normal(shape).astype(dtype)
    _check(go, dtype)


def test_long_float32_rows_keep_their_accuracy():
    # 2e6 positions of one channel, all of one sign: a plain float32 running sum is off by
    # 2e-5 relative here; blocks of float32 lanes added in double stay within 1e-6
    go = np.random.default_rng(1).random((1, 2, 2_000_000), dtype=F32) + F32(1)
    gb = _check(go, F32)
    ref = go.astype(F64).sum(axis=(0, 2))
    assert np.all(np.abs(gb - ref) <= 1e-6 * ref)


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 0, 4)])
def test_empty_operands_give_zeros(shape):
    gb = grad._bias_grad(np.zeros(shape, F32), F32)
    assert gb.shape == (shape[1],) and not gb.any()


def test_layouts_and_dtypes_of_grad_output():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((3, 8, 10, 40))
    for go in (base[:, ::2, :, ::3], base[..., ::-1], np.asfortranarray(base), base.astype(F32)):
        _check(go, F64)
        _check(go, F32)


def test_same_bits_at_every_thread_count_and_in_the_backward():
    rng = np.random.default_rng(3)
    go = rng.standard_normal((4, 37, 21, 19)).astype(F32)
    old = pyconv.get_num_threads()
    try:
        out = []
        for n in (1, 2, 3):
            pyconv.set_num_threads(n)
            out.append(grad._bias_grad(go, F32))
    finally:
        pyconv.set_num_threads(old)
    assert all(np.array_equal(out[0], o) for o in out[1:])
    x = rng.standard_normal((4, 5, 21, 19)).astype(F32)
    w = rng.standard_normal((37, 5, 3, 3)).astype(F32)
    gb = grad.conv2d_backward(go, x, w, np.zeros(37, F32), padding=1)[2]
    assert np.array_equal(gb, out[0])
