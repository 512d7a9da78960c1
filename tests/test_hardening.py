"""Results and messages of odd calls (issue: robust where users run it): every message
names its argument, exception types follow numpy/scipy, FFT paths keep the result's
precision, more than 32 dims work where scipy's do."""
import numpy as np
import pytest
import scipy.signal as ss

import pyconv
from pyconv import grad, nn


@pytest.mark.parametrize("call, match", [
    (lambda: nn.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding=2**40), r"padding=1099511627776"),
    (lambda: nn.conv1d(np.ones((1, 1, 5)), np.ones((1, 1, 3)), padding=((0, 2**61),)), r"padding="),
    (lambda: nn.conv_transpose2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=2**40),
     r"stride=\(1099511627776, 1099511627776\)"),
    (lambda: nn.resize_conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), scale_factor=2**31),
     r"scale_factor=2147483648"),
    (lambda: grad.conv2d_input((1, 1, 2**62, 5), np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3))), r"input_size="),
    (lambda: grad.conv2d_weight(np.ones((1, 1, 5, 5)), (2**40, 1, 2**30, 3), np.ones((1, 1, 3, 3))),
     r"weight_size="),
])
def test_huge_sizes_name_their_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("mode", [np.array([1, 2]), "nope", 3])
def test_signal_backward_mode_is_checked(mode):
    with pytest.raises(ValueError, match="mode must be one of"):
        grad.convolve2d_backward(np.ones((5, 5)), np.ones((5, 5)), np.ones((1, 1)), mode=mode)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(eps=0), ValueError, "eps=0"), (dict(eps=-1e-6), ValueError, "eps="),
    (dict(eps=float("nan")), ValueError, "eps="), (dict(atol=-1.0), ValueError, "atol="),
    (dict(rtol=float("inf")), ValueError, "rtol="), (dict(eps="1e-6"), TypeError, "eps must be a real number"),
    (dict(atol=None), TypeError, "atol must be a real number"),
])
def test_gradcheck_checks_its_tolerances(kw, exc, match):
    x, w = np.ones((1, 1, 4)), np.ones((1, 1, 2))
    with pytest.raises(exc, match=match):
        grad.gradcheck(nn.conv1d, (x, w), **kw)


def test_ragged_lists_raise_valueerror_like_numpy_and_scipy():
    ragged = [[1, 2], [3]]
    with pytest.raises(ValueError):
        ss.convolve(ragged, [1])                       # the reference behaviour
    with pytest.raises(ValueError, match="in1 must be array-like"):
        pyconv.convolve(ragged, [1])
    with pytest.raises(ValueError, match="in2 must be array-like"):
        pyconv.correlate2d([[1.0]], ragged)
    with pytest.raises(ValueError, match="input must be array-like"):
        nn.conv1d([[[1, 2], [3]]], np.ones((1, 1, 1)))
    with pytest.raises(TypeError, match="weight must be a numeric array"):
        nn.conv1d(np.ones((1, 1, 3)), np.array([None], dtype=object))


@pytest.mark.parametrize("name", ["fftconvolve", "oaconvolve", "convolve", "correlate"])
@pytest.mark.parametrize("dt1, dt2", [(np.int64, np.complex64), (np.float64, np.complex64),
                                      (np.float64, np.float32), (np.int32, np.float32)])
def test_fft_paths_compute_in_the_result_precision(name, dt1, dt2):
    rng = np.random.default_rng(5)
    a = (rng.standard_normal(300) * 1000).astype(dt1)
    b = rng.standard_normal(41)
    b = (b + 1j * rng.standard_normal(41) if np.dtype(dt2).kind == "c" else b).astype(dt2)
    kw = {"method": "fft"} if name in ("convolve", "correlate") else {}
    got = getattr(pyconv, name)(a, b, **kw)
    ref_fn = np.correlate if name == "correlate" else np.convolve
    exact = ref_fn(a.astype(np.complex128), b.astype(np.complex128), mode="full")
    res = np.result_type(a.dtype, b.dtype)
    want_dt = getattr(ss, name)(a, b, **kw).dtype                  # scipy's result dtype
    assert got.dtype == want_dt
    double = res in (np.float64, np.complex128) or res.kind in "iu"
    tol = 1e-12 if double else 2e-5                                # relative to the largest value
    assert np.max(np.abs(got - exact)) <= tol * np.max(np.abs(exact))


@pytest.mark.parametrize("name", ["fftconvolve", "oaconvolve", "convolve", "correlate"])
def test_more_than_32_dims(name):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((3, 3) + (1,) * 31)
    b = rng.standard_normal((2, 2) + (1,) * 31)
    kw = {"method": "fft"} if name in ("convolve", "correlate") else {}
    want = getattr(ss, name)(a, b, **kw)
    got = getattr(pyconv, name)(a, b, **kw)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_direct_kernel_with_an_empty_kernel_axis():
    # 'full' with a kernel of zero rows: every output is an empty sum (scipy: zeros)
    for a_shape, b_shape in [((4, 5), (0, 3)), ((4, 5), (3, 0))]:
        a, b = np.ones(a_shape), np.ones(b_shape)
        got = pyconv.convolve2d(a, b)
        want = ss.convolve2d(a, b)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_gradcheck_finds_ndimage_backward_passes():
    from pyconv import ndimage
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((6, 5)), rng.standard_normal((3, 2))
    assert grad.gradcheck(ndimage.convolve, (x, w), {"mode": "reflect"})
    assert grad.gradcheck(ndimage.gaussian_filter, (x,), {"sigma": 1.0, "mode": "wrap"})
    # the signal function of the same name keeps its own backward pass
    assert grad.gradcheck(pyconv.convolve, (x, w), {"mode": "same"})
