"""pyconv.signal against scipy.signal 1.17 and the NumPy definition (tests/reference.py).

The contract (API.md) is "exactly scipy's results, shapes, dtypes and exception
types", with two deliberate departures that are tested here against the definition
instead of scipy: bool convolve/correlate give the exact logical result (OR of ANDs)
with every method, and method='direct' is exact about NaN/Inf.
Error paths live in test_signal_errors.py.
"""
import concurrent.futures
import itertools
import warnings
import zlib

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, settings, strategies as st

import pyconv
from pyconv import signal as ps
from reference import assert_close, correlate_full

MODES = ["full", "same", "valid"]
METHODS = ["auto", "direct", "fft"]
NUMERIC = [np.float32, np.float64, np.complex64, np.complex128,
           np.int8, np.int16, np.int32, np.int64, np.uint8]
ALL_DTYPES = NUMERIC + [np.bool_]


# --------------------------------------------------------------------------- helpers

def seed(*parts):
    """A stable seed from test parameters (str hashes are salted per process)."""
    return zlib.crc32(repr(tuple(np.dtype(p).name if isinstance(p, type) else p for p in parts)).encode())


def rand(rng, shape, dtype):
    """Random array of ``dtype``; integers stay small so no sum overflows."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.4
    if dt.itemsize == 1:  # int8/uint8: 0/1 (or -1/0/1) keeps 81-term sums in range
        return rng.integers(0 if dt.kind == "u" else -1, 2, shape).astype(dt)
    if dt.kind == "u":
        return rng.integers(0, 4, shape).astype(dt)
    if dt.kind == "i":
        return rng.integers(-3, 4, shape).astype(dt)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def wide(a):
    """``a`` in the widest type of its kind, so a scipy call on it is the exact-ish oracle."""
    k = a.dtype.kind
    if k in "biu":
        return a.astype(np.int64)
    if k == "c":
        return a.astype(np.complex128)
    return a.astype(np.float64)


def n_reduce(a, b):
    # the most products one output sums
    return int(np.prod([min(x, y) for x, y in zip(a.shape, b.shape)])) if a.ndim else 1


def expected_nd(func, a, b, mode):
    """scipy's result for convolve/correlate: values from a wide direct call, dtype from scipy.

    bool follows API.md: the integer convolution > 0, dtype bool.
    """
    spf = getattr(ss, func)
    ref = spf(wide(a), wide(b), mode=mode, method="direct")
    if a.dtype == bool and b.dtype == bool:
        return ref > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = spf(a.ravel()[:1] if a.ndim else a, b.ravel()[:1] if b.ndim else b, method="direct").dtype
    return ref.astype(dt)


def check(actual, expected, a, b):
    assert isinstance(actual, np.ndarray)
    assert actual.flags.c_contiguous
    assert_close(actual, expected, n_reduce=n_reduce(a, b))


def shapes_pair(rng, ndim, larger_kernel=False):
    s1 = tuple(int(x) for x in rng.integers(1, 6 if ndim <= 2 else 4, ndim))
    s2 = tuple(int(x) for x in rng.integers(1, 4, ndim))
    if larger_kernel:
        s1, s2 = s2, tuple(x + int(rng.integers(0, 3)) for x in s1)
    return s1, s2


def valid_ok(s1, s2):
    return all(x >= y for x, y in zip(s1, s2)) or all(y >= x for x, y in zip(s1, s2))


# --------------------------------------------------------------------------- the worked example

def test_correlate2d_worked_example():
    x = [[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]]
    k = [[0, 1, 2], [2, 2, 0], [0, 1, 2]]
    out = ps.correlate2d(x, k, "valid")
    np.testing.assert_array_equal(out, [[12, 12, 17], [10, 17, 19], [9, 6, 14]])
    assert out.dtype == ss.correlate2d(x, k, "valid").dtype
    for m in METHODS:
        np.testing.assert_array_equal(ps.correlate(x, k, "valid", method=m), out)


def test_reexported_at_top_level():
    for name in ["convolve", "correlate", "convolve2d", "correlate2d", "fftconvolve",
                 "oaconvolve", "choose_conv_method", "sepconvolve2d", "separate"]:
        assert getattr(pyconv, name) is getattr(ps, name)
        assert name in ps.__all__


# --------------------------------------------------------------------------- convolve / correlate grid

@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", ["convolve", "correlate"])
def test_nd_grid(func, mode, method, dtype):
    rng = np.random.default_rng(seed(func, mode, method, dtype))
    for ndim in (1, 2, 3, 4):
        for trial in range(3):
            s1, s2 = shapes_pair(rng, ndim, larger_kernel=(trial == 2))
            if mode == "valid" and not valid_ok(s1, s2):
                continue
            a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
            got = getattr(ps, func)(a, b, mode=mode, method=method)
            check(got, expected_nd(func, a, b, mode), a, b)


@pytest.mark.parametrize("func", ["convolve", "correlate"])
def test_nd_matches_reference_definition(func):
    # an oracle independent of scipy: full correlation by definition
    rng = np.random.default_rng(7)
    for ndim in (1, 2, 3, 4):
        a = rand(rng, (4, 3, 2, 3)[:ndim], np.complex128)
        b = rand(rng, (2, 3, 2, 1)[:ndim], np.complex128)
        ref = correlate_full(a, b) if func == "correlate" \
            else correlate_full(a, np.conj(b[(slice(None, None, -1),) * ndim]))
        for m in METHODS:
            check(getattr(ps, func)(a, b, method=m), ref.astype(np.complex128), a, b)


@pytest.mark.parametrize("method", METHODS)
def test_scipy_same_dtype_call_agrees(method):
    # besides the wide oracle, the plain scipy call on the same inputs (dtype and values)
    rng = np.random.default_rng(11)
    for dtype in NUMERIC:
        for func in ["convolve", "correlate"]:
            a, b = rand(rng, (9, 8), dtype), rand(rng, (4, 3), dtype)
            for mode in MODES:
                exp = getattr(ss, func)(a, b, mode=mode, method=method)
                got = getattr(ps, func)(a, b, mode=mode, method=method)
                assert got.dtype == exp.dtype
                if np.dtype(dtype).kind in "iu":
                    np.testing.assert_array_equal(got, exp)
                else:
                    assert_close(got, exp, n_reduce=12)


def test_even_kernel_same_offsets_pinned():
    # 'same' centres differently in convolve, correlate and correlate2d for even kernels
    a, v = [1, 2, 3, 4], [1, 2]
    for m in METHODS:
        np.testing.assert_array_equal(ps.convolve(a, v, "same", method=m), [1, 4, 7, 10])
        np.testing.assert_array_equal(ps.correlate(a, v, "same", method=m), [2, 5, 8, 11])
        np.testing.assert_array_equal(ps.correlate([a], [v], "same", method=m), [[2, 5, 8, 11]])
    np.testing.assert_array_equal(ps.convolve2d([a], [v], "same"), [[1, 4, 7, 10]])
    np.testing.assert_array_equal(ps.correlate2d([a], [v], "same"), [[5, 8, 11, 4]])
    A = np.arange(1, 10).reshape(3, 3)
    V = np.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(ps.correlate2d(A, V, "same"), [[37, 47, 21], [67, 77, 33], [23, 26, 9]])
    np.testing.assert_array_equal(ps.correlate(A, V, "same"), [[4, 11, 18], [18, 37, 47], [36, 67, 77]])
    np.testing.assert_array_equal(ps.convolve2d(A, V, "same"), [[1, 4, 7], [7, 23, 33], [19, 53, 63]])
    np.testing.assert_array_equal(ps.convolve(A, V, "same"), [[1, 4, 7], [7, 23, 33], [19, 53, 63]])


def test_valid_kernel_larger_swap_pinned():
    # correlate swaps, reverses and conjugates; correlate2d only swaps (scipy 1.17)
    for m in METHODS:
        np.testing.assert_allclose(ps.correlate([1, 2], [1, 2, 3j], "valid", method=m), [2 - 6j, 5], atol=1e-12)
        np.testing.assert_allclose(ps.correlate([1, 2, 3j], [1, 2], "valid", method=m), [5, 2 + 6j], atol=1e-12)
        np.testing.assert_array_equal(ps.convolve([1, 2], [1, 2, 3], "valid", method=m), [4, 7])
    np.testing.assert_allclose(ps.correlate2d([[1, 2]], [[1, 2, 3j]], "valid"), [[2 + 6j, 5]])
    np.testing.assert_array_equal(ps.convolve2d([[1, 2]], [[1, 2, 3]], "valid"), [[4, 7]])


@pytest.mark.parametrize("method", METHODS)
def test_mixed_dtype_pairs(method):
    rng = np.random.default_rng(3)
    pairs = [(np.int8, np.float32), (np.int64, np.float32), (np.uint8, np.int8), (np.bool_, np.int8),
             (np.bool_, np.float32), (np.float32, np.complex128), (np.float64, np.complex64),
             (np.float32, np.float64), (np.int16, np.uint8), (np.int32, np.float64),
             (np.complex64, np.int8), (np.uint8, np.bool_)]
    for d1, d2 in pairs:
        for func in ["convolve", "correlate"]:
            a, b = rand(rng, (6, 5), d1), rand(rng, (3, 2), d2)
            exp = getattr(ss, func)(a, b, mode="full", method="direct")
            got = getattr(ps, func)(a, b, mode="full", method=method)
            assert got.dtype == exp.dtype, (d1, d2, func)
            ref = getattr(ss, func)(wide(a), wide(b)).astype(exp.dtype)
            if method != "direct" and np.float32 in (d1, d2) or np.complex64 in (d1, d2):
                # an FFT transforms each operand in its own precision (scipy.fft does too):
                # a single-precision operand bounds the accuracy of a double result
                low = np.complex64 if exp.dtype.kind == "c" else np.float32
                got, ref = got.astype(low), ref.astype(low)
            assert_close(got, ref, n_reduce=6)


def test_integer_direct_wraps_like_scipy():
    # large int8/int16 sums: scipy's direct path wraps modulo 2**bits; pyconv must agree
    # (only the exact direct path defines wrap-around: an FFT rounds a float first)
    rng = np.random.default_rng(5)
    for dt in (np.int8, np.int16, np.uint8):
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, (7, 9)).astype(dt)
        b = rng.integers(info.min, info.max, (3, 4)).astype(dt)
        for func in ["convolve", "correlate"]:
            exp = getattr(ss, func)(a, b, method="direct")
            np.testing.assert_array_equal(getattr(ps, func)(a, b, method="direct"), exp)
            assert getattr(ps, func)(a, b, method="direct").dtype == dt


def test_large_integers_stay_exact_with_auto():
    # values beyond float64's 53-bit mantissa: any FFT would round them
    a = np.array([2**52 + 1, 3, 2**40 + 7], dtype=np.int64)
    b = np.array([3, 1], dtype=np.int64)
    exp = np.convolve(a, b)
    for m in ["auto", "direct"]:
        got = ps.convolve(a, b, method=m)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.int32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", ["direct", "auto"])
def test_medium_shapes_long_kernels(method, dtype):
    # kernels with many taps per row (past any unrolled group of taps) and rows of
    # odd lengths, in every mode, against the wide scipy oracle
    rng = np.random.default_rng(seed(method, dtype))
    cases = [((500,), (37,)), ((301,), (8,)), ((37, 41), (9, 11)), ((40, 23), (13, 5)), ((19, 64), (2, 17)),
             ((12, 13, 11), (5, 4, 3)), ((9, 10), (12, 15)), ((6, 7, 5, 4), (3, 2, 3, 2))]
    for s1, s2 in cases:
        a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
        for func in ["convolve", "correlate"]:
            for mode in MODES:
                if mode == "valid" and not valid_ok(s1, s2):
                    continue
                check(getattr(ps, func)(a, b, mode=mode, method=method), expected_nd(func, a, b, mode), a, b)
        if len(s1) == 2:
            for bd in ["fill", "wrap", "symm"]:
                check(ps.correlate2d(a, b, "same", bd), ss.correlate2d(wide(a), wide(b), "same", bd).astype(
                    ss.correlate2d(a[:1, :1], b[:1, :1]).dtype), a, b)


def test_big_integers_2d_auto_exact():
    # int64 values near 2**40: products need more than float64's 53 bits, so 'auto'
    # must not pick an FFT even where an FFT would be faster for floats
    rng = np.random.default_rng(83)
    a = rng.integers(2**39, 2**40, (96, 96), dtype=np.int64)
    b = rng.integers(-50, 50, (21, 21), dtype=np.int64)
    exp = ss.convolve(a, b, "same", method="direct")
    got = ps.convolve(a, b, "same")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, exp)
    assert ps.choose_conv_method(a, b, "same") == "direct"


# --------------------------------------------------------------------------- bool

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("func", ["convolve", "correlate"])
def test_bool_is_logical(func, method):
    rng = np.random.default_rng(17)
    for ndim in (1, 2, 3):
        for mode in MODES:
            a = rng.random((9, 7, 5)[:ndim]) < 0.3
            b = rng.random((3, 4, 2)[:ndim]) < 0.5
            exp = getattr(ss, func)(a.astype(np.int64), b.astype(np.int64), mode=mode, method="direct") > 0
            got = getattr(ps, func)(a, b, mode=mode, method=method)
            assert got.dtype == np.bool_
            np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("method", METHODS)
def test_bool_where_scipy_fft_is_wrong(method):
    # scipy 1.17's fft path casts float round-off (~1e-16, nonzero) to True and gets
    # 44 and 1715 entries of these two cases wrong; pyconv stays exact
    rng = np.random.default_rng(97)
    cases = [(np.arange(64) % 7 == 0, np.array([1, 0, 0, 0, 1], bool)),
             (rng.random((40, 40)) < 0.05, rng.random((9, 9)) < 0.1)]
    for a, b in cases:
        exp = ss.convolve(a.astype(np.int64), b.astype(np.int64)) > 0
        got = ps.convolve(a, b, method=method)
        assert got.dtype == bool
        np.testing.assert_array_equal(got, exp)


# --------------------------------------------------------------------------- layouts and odd inputs

def _layouts(a):
    yield "C", a
    yield "F", np.asfortranarray(a)
    big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    yield "strided", view
    neg = a[tuple(slice(None, None, -1) for _ in a.shape)].copy()[tuple(slice(None, None, -1) for _ in a.shape)]
    yield "negative", neg
    ro = a.copy()
    ro.flags.writeable = False
    yield "readonly", ro
    yield "bigendian", a.astype(a.dtype.newbyteorder(">" if np.little_endian else "<"))


def _call_all(a, b):
    """Every public function that takes (in1, in2) on these 2-D float inputs."""
    out = {}
    for m in METHODS:
        out[f"convolve-{m}"] = ps.convolve(a, b, "same", method=m)
        out[f"correlate-{m}"] = ps.correlate(a, b, "full", method=m)
    for bd in ["fill", "wrap", "symm"]:
        out[f"convolve2d-{bd}"] = ps.convolve2d(a, b, "same", boundary=bd)
        out[f"correlate2d-{bd}"] = ps.correlate2d(a, b, "valid", boundary=bd)
    out["fftconvolve"] = ps.fftconvolve(a, b, "full")
    out["oaconvolve"] = ps.oaconvolve(a, b, "same")
    out["sepconvolve2d"] = ps.sepconvolve2d(a, b[:, 0], b[0], "full")
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_layouts_and_inputs_unchanged(dtype):
    rng = np.random.default_rng(23)
    a0, b0 = rand(rng, (11, 9), dtype), rand(rng, (4, 3), dtype)
    base = _call_all(a0, b0)
    for (na, a), (nb, b) in itertools.product(_layouts(a0), _layouts(b0)):
        if na not in ("C", nb) and nb != "C":
            continue  # each layout against C, and each against itself
        a_before, b_before = a.copy(), b.copy()
        got = _call_all(a, b)
        for k, v in got.items():
            assert v.flags.c_contiguous, (k, na, nb)
            assert_close(v, base[k], n_reduce=12)
        np.testing.assert_array_equal(a, a_before)
        np.testing.assert_array_equal(b, b_before)


def test_readonly_inputs_unchanged_on_every_path():
    # larger shapes than above, so the blocked / overlap-add / FFT paths all run
    rng = np.random.default_rng(101)
    pairs = [(rng.standard_normal(5000), rng.standard_normal(129)),
             (rng.standard_normal((120, 90)).astype(np.float32), rng.standard_normal((31, 31)).astype(np.float32)),
             (rand(rng, (64, 70), np.complex128), rand(rng, (9, 5), np.complex128)),
             (rng.standard_normal((20, 18, 16)), rng.standard_normal((5, 3, 4)))]
    for a, b in pairs:
        a0, b0 = a.copy(), b.copy()
        a.flags.writeable = False
        b.flags.writeable = False
        calls = [ps.fftconvolve, ps.oaconvolve] + \
            [(lambda m: lambda x, y, mode: ps.convolve(x, y, mode, method=m))(m) for m in METHODS] + \
            [(lambda m: lambda x, y, mode: ps.correlate(x, y, mode, method=m))(m) for m in METHODS]
        if a.ndim == 2:
            calls += [ps.convolve2d, ps.correlate2d,
                      lambda x, y, mode: ps.sepconvolve2d(x, y[:, 0], y[0], mode)]
        for fn in calls:
            for mode in MODES:
                out = fn(a, b, mode)
                assert out.flags.c_contiguous and out.flags.writeable
                assert not np.shares_memory(out, a) and not np.shares_memory(out, b)
        np.testing.assert_array_equal(a, a0)
        np.testing.assert_array_equal(b, b0)


def test_zero_stride_inputs():
    # broadcast views (stride 0, read-only) are valid inputs
    z = np.broadcast_to(np.arange(5.0), (6, 5))
    k = np.broadcast_to(np.array([[1.0], [-2.0]]), (2, 3))
    for m in METHODS:
        check(ps.convolve(z, k, "same", method=m), ss.convolve(np.array(z), np.array(k), "same"), z, k)
    check(ps.correlate2d(z, k, "full", "wrap"), ss.correlate2d(np.array(z), np.array(k), "full", "wrap"), z, k)
    check(ps.fftconvolve(z, k), ss.fftconvolve(np.array(z), np.array(k)), z, k)
    check(ps.oaconvolve(z, k[:1], axes=1), ss.oaconvolve(np.array(z), np.array(k[:1]), axes=1), z, k[:1])


def test_lists_and_scalars():
    for m in METHODS:
        np.testing.assert_allclose(ps.convolve([1, 2, 3], [0, 1, 0.5], method=m),
                                   ss.convolve([1, 2, 3], [0, 1, 0.5]), atol=1e-12)
        assert ps.convolve([1, 2, 3], [0, 1, 0.5], method=m).dtype == np.float64
        assert ps.convolve([1, 2, 3], [1, 1], method=m).dtype == ss.convolve([1, 2, 3], [1, 1]).dtype
    np.testing.assert_array_equal(ps.convolve2d([[1, 2], [3, 4]], [[1]]), [[1, 2], [3, 4]])
    np.testing.assert_allclose(ps.fftconvolve([1.0, 2.0], [1.0, 1.0]), [1, 3, 2])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_zero_d_inputs(mode, method):
    for func in ["convolve", "correlate"]:
        exp = getattr(ss, func)(np.array(2.0), np.array(3.0), mode=mode, method=method)
        got = getattr(ps, func)(np.array(2.0), np.array(3.0), mode=mode, method=method)
        assert got.shape == exp.shape == ()
        assert got.dtype == exp.dtype
        assert got == 6.0
    for func in ["fftconvolve", "oaconvolve"]:
        got = getattr(ps, func)(np.array(2.0), np.array(3.0), mode=mode)
        exp = getattr(ss, func)(np.array(2.0), np.array(3.0), mode=mode)
        assert got.shape == exp.shape and got.dtype == exp.dtype
        np.testing.assert_allclose(got, 6.0)
    got = ps.correlate(np.array(2.0 + 1j), np.array(1j), mode=mode, method=method)
    np.testing.assert_allclose(got, ss.correlate(np.array(2.0 + 1j), np.array(1j), mode=mode))


@pytest.mark.parametrize("method", METHODS)
def test_size_one_dims(method):
    rng = np.random.default_rng(29)
    cases = [((1,), (1,)), ((1, 1), (1, 1)), ((1, 7), (1, 3)), ((6, 1), (2, 1)), ((1, 5, 1), (1, 2, 1)),
             ((5,), (1,)), ((1,), (4,)), ((3, 1, 2, 1), (1, 1, 2, 1))]
    for s1, s2 in cases:
        for mode in MODES:
            if mode == "valid" and not valid_ok(s1, s2):
                continue
            a, b = rand(rng, s1, np.float64), rand(rng, s2, np.float64)
            for func in ["convolve", "correlate"]:
                check(getattr(ps, func)(a, b, mode=mode, method=method), expected_nd(func, a, b, mode), a, b)
            if len(s1) == 2:
                for bd in ["fill", "wrap", "symm"]:
                    check(ps.convolve2d(a, b, mode, bd), ss.convolve2d(a, b, mode, bd), a, b)


# Zero-size inputs: scipy is inconsistent here (some calls return, some raise from an
# internal broadcast, its fft path raises IndexError, convolve2d with wrap/symm even
# dies with SIGFPE).  Where scipy returns, pyconv must return the same; where scipy
# fails, pyconv must either raise ValueError or return the zero-filled result of the
# shape rule -- and never crash.

def _nd_empty_expected(s1, s2, mode):
    if mode == "full":
        return tuple(x + y - 1 for x, y in zip(s1, s2))
    if mode == "same":
        return s1
    if all(x >= y for x, y in zip(s1, s2)):
        return tuple(x - y + 1 for x, y in zip(s1, s2))
    return tuple(y - x + 1 for x, y in zip(s1, s2))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_empty_inputs_nd(mode, method):
    for s1, s2 in [((0, 5), (3, 3)), ((4, 5), (0, 3)), ((0,), (3,)), ((3,), (0,)), ((4, 0, 2), (2, 1, 1))]:
        for func in ["convolve", "correlate"]:
            a, b = np.ones(s1), np.ones(s2)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    exp = getattr(ss, func)(a, b, mode=mode, method="direct")
            except (ValueError, IndexError):
                exp = None
            if mode == "valid" and not valid_ok(s1, s2):
                with pytest.raises(ValueError, match="valid"):
                    getattr(ps, func)(a, b, mode=mode, method=method)
                continue
            try:
                got = getattr(ps, func)(a, b, mode=mode, method=method)
            except ValueError:
                assert exp is None, (func, s1, s2, mode, "scipy returns here, pyconv raised")
                continue
            shape = exp.shape if exp is not None else tuple(max(0, x) for x in _nd_empty_expected(s1, s2, mode))
            assert got.shape == shape, (func, s1, s2, mode)
            assert got.dtype == np.float64
            assert not np.any(got)


@pytest.mark.parametrize("func", ["fftconvolve", "oaconvolve"])
@pytest.mark.parametrize("mode", MODES)
def test_empty_inputs_fft(func, mode):
    for s1, s2 in [((0, 5), (3, 3)), ((4, 5), (0, 3)), ((0,), (3,)), ((3,), (0,))]:
        exp = getattr(ss, func)(np.ones(s1), np.ones(s2), mode=mode)
        got = getattr(ps, func)(np.ones(s1), np.ones(s2), mode=mode)
        assert got.shape == exp.shape and got.dtype == exp.dtype


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", ["convolve2d", "correlate2d"])
def test_empty_inputs_2d(func, mode, boundary):
    for s1, s2 in [((0, 5), (3, 3)), ((4, 5), (0, 3)), ((4, 5), (3, 0)), ((0, 0), (1, 1))]:
        a, b = np.ones(s1), np.ones(s2)
        if mode == "valid" and not valid_ok(s1, s2):
            with pytest.raises(ValueError, match="valid"):
                getattr(ps, func)(a, b, mode=mode, boundary=boundary)
            continue
        try:
            got = getattr(ps, func)(a, b, mode=mode, boundary=boundary)
        except ValueError:
            # acceptable only where scipy itself cannot compute (SIGFPE: not run here)
            assert s1[0] == 0 and mode == "full" and boundary != "fill", (s1, s2, mode, boundary)
            continue
        assert got.shape == tuple(max(0, x) for x in _nd_empty_expected(s1, s2, mode)), (s1, s2, mode)
        assert got.dtype == np.float64
        assert not np.any(got)


# --------------------------------------------------------------------------- convolve2d / correlate2d

BOUNDARIES = ["fill", "wrap", "symm", "pad", "circular", "symmetric", "symmetrical"]
# scipy 1.17 itself spells the alias 'symmetric'; pyconv also takes 'symmetrical' (the
# project's brief names it), so that one is compared with scipy's 'symm'.
SCIPY_BOUNDARY = {"symmetrical": "symm"}


def _scipy_or_raises(spfn, pyfn, *args, **kw):
    """Compare with scipy; where scipy raises, pyconv must raise the same type."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exp = spfn(*args, **kw)
    except (ValueError, TypeError) as e:
        with pytest.raises(type(e)):
            pyfn(*args, **kw)
        return None, None
    return pyfn(*args, **kw), exp


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", ["convolve2d", "correlate2d"])
def test_2d_grid(func, mode, boundary):
    rng = np.random.default_rng(seed(func, mode, boundary))
    shapes = [((7, 8), (3, 3)), ((7, 8), (2, 4)), ((5, 6), (5, 6)), ((3, 4), (5, 6)),
              ((6, 2), (3, 2)), ((9, 9), (1, 1)), ((4, 7), (4, 1)), ((10, 3), (4, 2))]
    for dtype in NUMERIC:
        for s1, s2 in shapes:
            if mode == "valid" and not valid_ok(s1, s2):
                continue
            a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
            kind = np.dtype(dtype).kind
            fills = [0, 2] if kind in "iu" else [0, 2.5] + ([1 - 2j] if kind == "c" else [])
            for fv in fills:
                sbd = SCIPY_BOUNDARY.get(boundary, boundary)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        exp = getattr(ss, func)(a, b, mode=mode, boundary=sbd, fillvalue=fv)
                except ValueError:
                    with pytest.raises(ValueError, match="fillvalue"):
                        getattr(ps, func)(a, b, mode=mode, boundary=boundary, fillvalue=fv)
                    continue
                got = getattr(ps, func)(a, b, mode=mode, boundary=boundary, fillvalue=fv)
                ref = getattr(ss, func)(wide(a), wide(b), mode=mode, boundary=sbd,
                                        fillvalue=fv).astype(exp.dtype)
                assert got.dtype == exp.dtype
                check(got, ref, a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_2d_boundaries_medium_shapes(boundary, dtype):
    # inputs much larger than the kernel (an interior and border strips), long rows,
    # kernels wider than tall and the reverse, kernels past the input on one axis
    rng = np.random.default_rng(seed(boundary, dtype))
    shapes = [((40, 37), (7, 5)), ((64, 20), (15, 3)), ((23, 50), (4, 12)), ((9, 9), (9, 9)),
              ((30, 30), (31, 2)), ((3, 70), (2, 33)), ((17, 16), (1, 16))]
    for s1, s2 in shapes:
        a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
        a_t = np.ascontiguousarray(a.T).T  # Fortran-ordered copy of the same values
        for func in ["convolve2d", "correlate2d"]:
            for mode in MODES:
                if mode == "valid" and not valid_ok(s1, s2):
                    continue
                for fv in ([0, 1.5] if boundary == "fill" and np.dtype(dtype).kind != "i" else [0, -2]):
                    dt = getattr(ss, func)(a[:1, :1], b[:1, :1]).dtype
                    ref = getattr(ss, func)(wide(a), wide(b), mode, boundary, fv).astype(dt)
                    check(getattr(ps, func)(a, b, mode, boundary, fv), ref, a, b)
                    check(getattr(ps, func)(a_t, b, mode, boundary, fv), ref, a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.int32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_2d_boundary_whole_copy_or_strips_same_bits(boundary, dtype):
    # a boundary to build ('wrap', 'symm', a nonzero fill) runs either on the whole image
    # extended (one pass: small images) or on the image plus four extended border strips
    # (large ones), as signal_plan.extend_whole prices them: scipy's values both ways, the
    # same bits for real dtypes (complex border outputs may round apart: a narrow strip
    # and the wide sweep are different code paths, each compiled with its own FMA
    # contractions); a repeated call ('wrap'/'symm' then keep the index maps with the
    # plan) gives the first call's bits
    from pyconv._engine import tuning
    rng = np.random.default_rng(seed(boundary, dtype, "whole"))
    shapes = [((40, 37), (7, 5)), ((9, 9), (9, 9)), ((3, 70), (2, 33)), ((17, 16), (1, 16)), ((30, 30), (31, 2)),
              ((6, 5), (1, 1))]
    fv = 0 if boundary != "fill" else (-2 if np.dtype(dtype).kind == "i" else 1.5)
    for (s1, s2), func, mode in itertools.product(shapes, ["convolve2d", "correlate2d"], MODES):
        if mode == "valid" and not valid_ok(s1, s2):
            continue
        a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
        f = getattr(ps, func)
        with tuning.override(direct_pad_ns=0.0):
            assert ps._sp.extend_whole((s1[0] + s2[0], s1[1] + s2[1]), 8)
            whole = f(a, b, mode, boundary, fv)
            again = f(a, b, mode, boundary, fv)
        with tuning.override(direct_pad_ns=1e9):
            assert not ps._sp.extend_whole((s1[0] + s2[0], s1[1] + s2[1]), 8)
            strips = f(a, b, mode, boundary, fv)
        assert whole.dtype == strips.dtype == again.dtype
        assert whole.tobytes() == again.tobytes(), (s1, s2, func, mode)
        if np.dtype(dtype).kind != "c":
            assert whole.tobytes() == strips.tobytes(), (s1, s2, func, mode)
        dt = getattr(ss, func)(a[:1, :1], b[:1, :1]).dtype
        ref = getattr(ss, func)(wide(a), wide(b), mode, boundary, fv).astype(dt)
        check(whole, ref, a, b)
        check(strips, ref, a, b)


@pytest.mark.parametrize("func", ["convolve", "correlate", "convolve2d", "correlate2d"])
def test_integer_repeat_calls_follow_the_values(func):
    # repeated integer calls of one signature run a plan cached under what their values
    # decide too (utils.sig_int_class: float64 or int64 compute, float64 FFT exact or not):
    # small values, values whose sums pass 2**53 (int64, wrapping as scipy's), small again;
    # narrow dtypes, whose range alone decides; every call scipy's exact result and dtype
    rng = np.random.default_rng(seed(func, "int repeat"))
    kw = [dict(mode="same", boundary="symm"), dict(mode="full")] if func.endswith("2d") else \
        [dict(mode="same", method="auto"), dict(mode="full", method="direct"), dict(mode="valid")]
    for dtype, big in ((np.int64, 2 ** 40), (np.int32, 2 ** 30), (np.uint8, None), (np.int16, None)):
        for s1, s2 in (((9, 8), (3, 4)), ((12, 5), (12, 5))):
            for values in ("small", "big", "small", "big"):
                hi = 6 if values == "small" or big is None else big
                lo = 0 if np.dtype(dtype).kind == "u" else -hi
                a = rng.integers(lo, hi, s1).astype(dtype)
                b = rng.integers(lo, hi, s2).astype(dtype)
                for k in kw:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        want = getattr(ss, func)(a, b, **k)
                    got = getattr(ps, func)(a, b, **k)
                    assert got.dtype == want.dtype
                    np.testing.assert_array_equal(got, want, err_msg=f"{dtype} {values} {s1} {k}")


@pytest.mark.parametrize("func", ["convolve2d", "correlate2d"])
def test_2d_fillvalue_casts_like_scipy(func):
    a = np.arange(12).reshape(3, 4)
    b = np.ones((2, 3), dtype=np.int64)
    for fv in [2.7, -1, np.float32(3.0), np.array([4])]:
        got, exp = _scipy_or_raises(getattr(ss, func), getattr(ps, func), a, b, fillvalue=fv)
        np.testing.assert_array_equal(got, exp)
        assert got.dtype == exp.dtype
    # complex fillvalue into a real output: ValueError.  (scipy also rejects a Python
    # 2+0j but takes np.complex64(2) with a warning -- a C-level quirk not pinned here.)
    for fv in [2 + 1j, np.complex128(-1j)]:
        with pytest.raises(ValueError, match="fillvalue"):
            getattr(ps, func)(a.astype(np.float32), b, fillvalue=fv)


@pytest.mark.parametrize("boundary", ["wrap", "symm"])
def test_2d_fillvalue_ignored_without_fill(boundary):
    # scipy uses fillvalue only for boundary='fill'; elsewhere any number is accepted
    a = np.arange(20, dtype=np.uint8).reshape(4, 5)
    b = np.ones((3, 2), dtype=np.uint8)
    exp = ss.convolve2d(a, b, "same", boundary=boundary)
    for fv in [-1, 300, -2.5, 1e20]:
        got = ps.convolve2d(a, b, "same", boundary=boundary, fillvalue=fv)
        assert got.dtype == exp.dtype
        np.testing.assert_array_equal(got, exp)
        np.testing.assert_array_equal(ps.correlate2d(a, b, "full", boundary=boundary, fillvalue=fv),
                                      ss.correlate2d(a, b, "full", boundary=boundary))


def test_2d_bool_like_scipy():
    # scipy.signal.convolve2d refuses bool; API.md extends bool only to convolve/correlate
    a = np.ones((3, 3), bool)
    for func in ["convolve2d", "correlate2d"]:
        with pytest.raises(ValueError, match="in1|in2|bool|dtype|type"):
            getattr(ps, func)(a, a)


@pytest.mark.parametrize("other", [np.int8, np.uint8, np.float32, np.complex64])
def test_2d_bool_mixed_with_numeric(other):
    # bool with a numeric partner computes in the partner's type, as scipy does
    rng = np.random.default_rng(89)
    m = rng.random((6, 7)) < 0.5
    x = rand(rng, (3, 2), other)
    for func in ["convolve2d", "correlate2d"]:
        for p, q in [(m, x), (x, m)]:
            exp = getattr(ss, func)(p, q, "same", "symm")
            got = getattr(ps, func)(p, q, "same", "symm")
            assert got.dtype == exp.dtype
            check(got, exp, p, q)


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_2d_kernel_much_larger_than_input(boundary):
    # wrap/symm boundaries when the kernel exceeds the input more than once over
    rng = np.random.default_rng(31)
    a, b = rand(rng, (2, 3), np.float64), rand(rng, (7, 9), np.float64)
    for func in ["convolve2d", "correlate2d"]:
        for mode in MODES:
            got, exp = _scipy_or_raises(getattr(ss, func), getattr(ps, func), a, b, mode=mode, boundary=boundary)
            if got is not None:
                check(got, exp, a, b)


# --------------------------------------------------------------------------- fftconvolve / oaconvolve

@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", ["fftconvolve", "oaconvolve"])
def test_fft_grid(func, mode, dtype):
    rng = np.random.default_rng(seed(func, mode, dtype))
    for ndim in (1, 2, 3):
        for trial in range(3):
            s1, s2 = shapes_pair(rng, ndim, larger_kernel=(trial == 2))
            if mode == "valid" and not valid_ok(s1, s2):
                continue
            a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
            exp = getattr(ss, func)(a, b, mode=mode)
            got = getattr(ps, func)(a, b, mode=mode)
            assert got.dtype == exp.dtype
            ref = ss.convolve(wide(a), wide(b), mode=mode, method="direct").astype(exp.dtype)
            check(got, ref, a, b)


@pytest.mark.parametrize("func", ["fftconvolve", "oaconvolve"])
def test_fft_long_signals(func):
    # sizes where overlap-add really splits into blocks
    rng = np.random.default_rng(37)
    a, b = rand(rng, (5000,), np.float64), rand(rng, (129,), np.float64)
    for mode in MODES:
        got = getattr(ps, func)(a, b, mode=mode)
        check(got, ss.convolve(a, b, mode=mode, method="direct"), a, b)
    a2, b2 = rand(rng, (300, 200), np.float32), rand(rng, (31, 9), np.float32)
    got = getattr(ps, func)(a2, b2, mode="same")
    check(got, ss.convolve(wide(a2), wide(b2), mode="same", method="direct").astype(np.float32), a2, b2)


AXES_CASES = [
    ((5, 6, 4), (3, 6, 4), 0),
    ((5, 6, 4), (5, 2, 4), 1),
    ((5, 6, 4), (5, 6, 3), -1),
    ((5, 6, 4), (2, 3, 4), (0, 1)),
    ((5, 6, 4), (2, 6, 3), [-1, 0]),
    ((5, 6, 4), (3, 1, 4), 0),          # broadcasting over a size-1 non-axis
    ((5, 1, 4), (3, 6, 4), 0),
    ((4, 7), (4, 3), None),
    ((8, 3), (3, 3), 0),
    ((6, 5), (6, 7), 1),                # kernel longer than input along the axis
]


@pytest.mark.parametrize("func", ["fftconvolve", "oaconvolve"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", range(len(AXES_CASES)))
def test_fft_axes(func, mode, case):
    s1, s2, axes = AXES_CASES[case]
    rng = np.random.default_rng(41 + case)
    for dtype in (np.float64, np.complex64):
        a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
        got, exp = _scipy_or_raises(getattr(ss, func), getattr(ps, func), a, b, mode=mode, axes=axes)
        if got is None:
            continue
        ref, _ = _scipy_or_raises(ss.fftconvolve, ss.fftconvolve, wide(a), wide(b), mode=mode, axes=axes)
        check(got, ref.astype(exp.dtype), a, b)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), func=st.sampled_from(["fftconvolve", "oaconvolve"]), mode=st.sampled_from(MODES))
def test_hypothesis_fft_axes(data, func, mode):
    # random shapes where the non-convolved dims match or are 1 (broadcast)
    nd = data.draw(st.integers(1, 3))
    axes = sorted(data.draw(st.sets(st.integers(0, nd - 1), min_size=1)))
    s1, s2 = [], []
    for d in range(nd):
        if d in axes:
            s1.append(data.draw(st.integers(1, 9)))
            s2.append(data.draw(st.integers(1, 9)))
        else:
            n = data.draw(st.integers(1, 4))
            pick = data.draw(st.sampled_from(["eq", "b1", "b2"]))
            s1.append(1 if pick == "b1" else n)
            s2.append(1 if pick == "b2" else n)
    ax = data.draw(st.sampled_from([axes, [a - nd for a in axes], None if len(axes) == nd else axes]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    a, b = rand(rng, tuple(s1), np.float64), rand(rng, tuple(s2), np.float64)
    got, exp = _scipy_or_raises(getattr(ss, func), getattr(ps, func), a, b, mode=mode, axes=ax)
    if got is not None:
        assert got.dtype == exp.dtype
        check(got, exp, a, b)


@pytest.mark.parametrize("method", METHODS)
def test_convolve_equals_fftconvolve_oaconvolve(method):
    rng = np.random.default_rng(43)
    a, b = rand(rng, (40, 30), np.float64), rand(rng, (7, 6), np.float64)
    for mode in MODES:
        c = ps.convolve(a, b, mode=mode, method=method)
        assert_close(ps.fftconvolve(a, b, mode=mode), c, n_reduce=42)
        assert_close(ps.oaconvolve(a, b, mode=mode), c, n_reduce=42)


# --------------------------------------------------------------------------- choose_conv_method

def test_choose_conv_method_values():
    rng = np.random.default_rng(47)
    cases = [((10,), (3,)), ((100000,), (10000,)), ((64, 64), (3, 3)), ((256, 256), (63, 63)), ((20, 20, 20), (3, 3, 3))]
    for s1, s2 in cases:
        a, b = rng.standard_normal(s1), rng.standard_normal(s2)
        for mode in MODES:
            m = ps.choose_conv_method(a, b, mode=mode)
            assert m in ("direct", "fft")
    # a 3-tap filter on a short signal is never worth an FFT
    assert ps.choose_conv_method(np.ones(50), np.ones(3)) == "direct"
    # a very long kernel is never worth the direct loops
    assert ps.choose_conv_method(np.ones(200000), np.ones(50000)) == "fft"


def test_choose_conv_method_exactness():
    # integers whose exact sums pass float64's 2**52 must stay on the exact path (2**45 x 1
    # x 1000 terms: 2**40 stayed below it, and the choice there was the cost model's, which
    # at one thread picks the FFT)
    big = np.full(1000, 2**45, dtype=np.int64)
    assert ps.choose_conv_method(big, np.ones(1000, np.int64)) == "direct"
    assert ss.choose_conv_method(big, np.ones(1000, np.int64)) == "direct"


def test_choose_conv_method_measure():
    a, b = np.ones((40, 40)), np.ones((5, 5))
    res = ps.choose_conv_method(a, b, mode="same", measure=True)
    assert isinstance(res, tuple) and len(res) == 2
    method, times = res
    assert method in ("direct", "fft")
    assert set(times) == {"direct", "fft"}
    assert all(isinstance(t, float) and t >= 0 for t in times.values())
    assert method == min(times, key=times.get)


def test_choose_conv_method_result_works():
    rng = np.random.default_rng(53)
    a, b = rng.standard_normal((30, 20)), rng.standard_normal((5, 4))
    m = ps.choose_conv_method(a, b)
    check(ps.convolve(a, b, method=m), ss.convolve(a, b, method="direct"), a, b)


# --------------------------------------------------------------------------- sepconvolve2d / separate

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int32])
@pytest.mark.parametrize("mode", MODES)
def test_sepconvolve2d(mode, dtype):
    rng = np.random.default_rng(59)
    for s1, lc, lr in [((9, 11), 3, 3), ((9, 11), 4, 2), ((6, 5), 1, 5), ((12, 3), 5, 3), ((3, 4), 5, 6), ((1, 1), 1, 1)]:
        a, col, row = rand(rng, s1, dtype), rand(rng, (lc,), dtype), rand(rng, (lr,), dtype)
        k2 = np.outer(col, row)
        if mode == "valid" and not valid_ok(s1, k2.shape):
            with pytest.raises(ValueError, match="valid"):
                ps.sepconvolve2d(a, col, row, mode)
            continue
        exp = ps.convolve2d(a, k2, mode)
        got = ps.sepconvolve2d(a, col, row, mode=mode)
        assert got.dtype == ss.convolve2d(a, k2, mode).dtype
        assert got.flags.c_contiguous
        ref = ss.convolve2d(wide(a), wide(k2), mode).astype(got.dtype)
        assert_close(got, ref, n_reduce=k2.size)
        assert_close(got, exp, n_reduce=k2.size)


def test_sepconvolve2d_mixed_dtypes():
    # the result type is scipy's for convolve2d(in1, outer(col, row))
    rng = np.random.default_rng(103)
    a = rng.standard_normal((9, 8)).astype(np.float32)
    for col, row in [(np.array([1, 2j, 3]), np.array([1.0, 2.0])),
                     (np.array([1, 2, 3], np.int8), np.array([1.0, 2.0], np.float32)),
                     (np.array([1, 2, 3], np.int64), np.array([1.0, 2.0], np.float32))]:
        for mode in MODES:
            exp = ss.convolve2d(a, np.outer(col, row), mode)
            got = ps.sepconvolve2d(a, col, row, mode)
            assert got.dtype == exp.dtype
            ref = ss.convolve2d(wide(a), wide(np.outer(col, row)), mode).astype(exp.dtype)
            assert_close(got, ref, n_reduce=6)


def test_separate_sobel():
    sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    col, row = ps.separate(sobel)
    assert col.shape == (3,) and row.shape == (3,)
    np.testing.assert_allclose(np.outer(col, row), sobel, atol=1e-9)
    # up to scale: col ∝ [1, 2, 1], row ∝ [1, 0, -1]
    c = col / col[0]
    r = row / row[0]
    np.testing.assert_allclose(c, [1, 2, 1], atol=1e-9)
    np.testing.assert_allclose(r, [1, 0, -1], atol=1e-9)
    np.testing.assert_allclose(ps.sepconvolve2d(np.eye(5), col, row), ss.convolve2d(np.eye(5), sobel), atol=1e-9)


def test_separate_general():
    rng = np.random.default_rng(61)
    for shape in [(5, 5), (3, 7), (1, 4), (4, 1), (1, 1)]:
        c0, r0 = rng.standard_normal(shape[0]), rng.standard_normal(shape[1])
        k = np.outer(c0, r0)
        col, row = ps.separate(k)
        assert col.shape == (shape[0],) and row.shape == (shape[1],)
        np.testing.assert_allclose(np.outer(col, row), k, rtol=1e-9, atol=1e-12)
    k = np.outer([1.0, 2.0], [3.0, 4.0, 5.0]).astype(np.float32)
    col, row = ps.separate(k)
    np.testing.assert_allclose(np.outer(col, row), k, rtol=1e-5)


def test_separate_rejects_and_rtol():
    rng = np.random.default_rng(67)
    with pytest.raises(ValueError, match="separable"):
        ps.separate(rng.standard_normal((3, 3)))
    near = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0])
    near[0, 0] += 1e-4
    with pytest.raises(ValueError, match="separable"):
        ps.separate(near)
    col, row = ps.separate(near, rtol=1e-2)
    np.testing.assert_allclose(np.outer(col, row), near, atol=1e-3)
    col, row = ps.separate(np.outer([1.0, 2.0], [1.0, 3.0]), rtol=1e-12)
    np.testing.assert_allclose(np.outer(col, row), [[1, 3], [2, 6]], atol=1e-12)


# --------------------------------------------------------------------------- exactness of 'direct'

def _nonfinite_case(rng, s1, s2, where):
    a = rng.standard_normal(s1)
    b = rng.standard_normal(s2)
    target = a if where == "in1" else b
    flat = target.reshape(-1)
    idx = rng.choice(flat.size, size=max(1, flat.size // 15), replace=False)
    flat[idx] = rng.choice([np.nan, np.inf, -np.inf], size=idx.size)
    return a, b


@pytest.mark.parametrize("where", ["in1", "in2"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", ["convolve", "correlate"])
def test_direct_nonfinite_reach_exactly_their_window(func, mode, where):
    rng = np.random.default_rng(seed(func, mode, where))
    spf, pyf = getattr(ss, func), getattr(ps, func)
    for s1, s2 in [((40,), (5,)), ((13, 11), (3, 4)), ((7, 6, 5), (2, 3, 3)), ((4, 5), (6, 7))]:
        if mode == "valid" and not valid_ok(s1, s2):
            continue
        a, b = _nonfinite_case(rng, s1, s2, where)
        ind1, ind2 = (~np.isfinite(a)).astype(float), (~np.isfinite(b)).astype(float)
        if where == "in1":
            mask = spf(ind1, np.ones(s2), mode=mode, method="direct") > 0.5
        else:
            mask = spf(np.ones(s1), ind2, mode=mode, method="direct") > 0.5
        got = pyf(a, b, mode=mode, method="direct")
        np.testing.assert_array_equal(~np.isfinite(got), mask)
        # and everything else equals the result with the bad entries zeroed
        ref = spf(np.where(np.isfinite(a), a, 0), np.where(np.isfinite(b), b, 0), mode=mode, method="direct")
        assert_close(got[~mask], ref[~mask], n_reduce=n_reduce(a, b))


@pytest.mark.parametrize("where", ["in1", "in2"])
@pytest.mark.parametrize("boundary", ["fill", "fill1.5", "wrap", "symm"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("func", ["convolve2d", "correlate2d"])
def test_2d_nonfinite_like_scipy(func, mode, boundary, where):
    # convolve2d is always direct: the NaN/Inf pattern equals scipy's exactly
    # (with boundary='fill', fill values are multiplied by the kernel taps too)
    rng = np.random.default_rng(seed(func, mode, boundary, where))
    fv = 1.5 if boundary == "fill1.5" else 0
    boundary = boundary[:4]
    a, b = _nonfinite_case(rng, (25, 21), (3, 4), where)
    got = getattr(ps, func)(a, b, mode=mode, boundary=boundary, fillvalue=fv)
    exp = getattr(ss, func)(a, b, mode=mode, boundary=boundary, fillvalue=fv)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(exp))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(exp))
    fin = np.isfinite(exp)
    assert_close(got[fin], exp[fin], n_reduce=12)


# --------------------------------------------------------------------------- threads

def _thread_cases():
    rng = np.random.default_rng(71)
    a2, b2 = rng.standard_normal((160, 150)), rng.standard_normal((5, 6))
    a3, b3 = rng.standard_normal((26, 24, 22)).astype(np.float32), rng.standard_normal((3, 4, 3)).astype(np.float32)
    a1, b1 = rng.standard_normal(70000), rng.standard_normal(9)
    ac, bc = rand(rng, (90, 80), np.complex128), rand(rng, (4, 5), np.complex128)
    calls = []
    for (a, b) in [(a2, b2), (a3, b3), (a1, b1), (ac, bc)]:
        for mode in MODES:
            calls.append(("convolve", (a, b), dict(mode=mode, method="direct")))
            calls.append(("correlate", (a, b), dict(mode=mode, method="direct")))
    for bd in ["fill", "wrap", "symm"]:
        calls.append(("convolve2d", (a2, b2), dict(mode="same", boundary=bd, fillvalue=1.5)))
        calls.append(("correlate2d", (ac, bc), dict(mode="full", boundary=bd)))
    calls.append(("sepconvolve2d", (a2, b2[:, 0], b2[0]), dict(mode="same")))
    return calls


def test_one_thread_equals_two_threads_bitwise():
    with pyconv.threads(2):
        if pyconv.get_num_threads() < 2:
            pytest.skip("the OpenMP runtime allows only one thread here")
    for name, args, kw in _thread_cases():
        with pyconv.threads(1):
            r1 = getattr(ps, name)(*args, **kw)
        with pyconv.threads(2):
            r2 = getattr(ps, name)(*args, **kw)
        assert r1.dtype == r2.dtype
        np.testing.assert_array_equal(r1, r2, err_msg=f"{name} {kw}")


class _RecordFFT:
    """A scipy.fft backend that records each call's ``workers`` and defers to the default."""
    __ua_domain__ = "numpy.scipy.fft"
    calls = []

    @staticmethod
    def __ua_function__(method, args, kwargs):
        _RecordFFT.calls.append((method.__name__, kwargs.get("workers")))
        return NotImplemented


def test_ffts_run_on_pyconv_threads(monkeypatch):
    # API.md: the FFT paths run scipy.fft on pyconv's threads: workers = pyconv's thread
    # count for transforms worth a worker (Tuning.fft_workers_min_points, 0 here), one for
    # those below it; with every core busy elsewhere, one worker
    import dataclasses

    from pyconv import _threads
    from pyconv._engine import tuning
    monkeypatch.setattr(tuning._state, "tuning", dataclasses.replace(tuning.active(), fft_workers_min_points=0))
    monkeypatch.setattr(_threads._load, "others_busy", lambda: 0.0)
    monkeypatch.setattr(_threads._load, "foreign_runnable", lambda n: 0)   # (no other thread's work either)
    scipy_fft = pytest.importorskip("scipy.fft")
    rng = np.random.default_rng(79)
    a, b = rng.standard_normal((120, 90)), rng.standard_normal((31, 31))
    a1, b1 = rng.standard_normal(20000), rng.standard_normal(129)
    calls = [lambda: ps.fftconvolve(a, b), lambda: ps.oaconvolve(a1, b1), lambda: ps.oaconvolve(a, b),
             lambda: ps.convolve(a, b, method="fft"), lambda: ps.correlate(a + 1j, b, method="fft")]
    for n in (1, 2):
        with pyconv.threads(n):
            want = pyconv.get_num_threads()
            for fn in calls:
                _RecordFFT.calls.clear()
                with scipy_fft.set_backend(_RecordFFT):
                    fn()
                assert _RecordFFT.calls, "no scipy.fft call seen"
                assert all(w == want for _, w in _RecordFFT.calls), _RecordFFT.calls
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1):
        _RecordFFT.calls.clear()
        with scipy_fft.set_backend(_RecordFFT):
            ps.fftconvolve(a, b)
        assert _RecordFFT.calls and all(w == 1 for _, w in _RecordFFT.calls)
    monkeypatch.setattr(_threads._load, "others_busy", lambda: 64.0)
    with pyconv.threads(2):
        _RecordFFT.calls.clear()
        with scipy_fft.set_backend(_RecordFFT):
            ps.fftconvolve(a, b)
        assert _RecordFFT.calls and all(w == 1 for _, w in _RecordFFT.calls)
    # a transform below the threshold stays on the calling thread
    monkeypatch.setattr(_threads._load, "others_busy", lambda: 0.0)
    with pyconv.threads(2), tuning.override(fft_workers_min_points=150 * 120 + 1):
        _RecordFFT.calls.clear()
        with scipy_fft.set_backend(_RecordFFT):
            ps.fftconvolve(a, b)
        assert _RecordFFT.calls and all(w == 1 for _, w in _RecordFFT.calls)
    with pyconv.threads(2), tuning.override(fft_workers_min_points=150 * 120):
        _RecordFFT.calls.clear()
        with scipy_fft.set_backend(_RecordFFT):
            ps.fftconvolve(a, b)
        assert _RecordFFT.calls and all(w == 2 for _, w in _RecordFFT.calls)


def test_concurrent_python_threads():
    rng = np.random.default_rng(73)
    jobs = []
    for i in range(12):
        a = rng.standard_normal((60 + i, 50))
        b = rng.standard_normal((3 + i % 4, 2 + i % 3))
        func = ["convolve", "correlate", "convolve2d", "fftconvolve"][i % 4]
        kw = {"convolve": dict(mode="same", method=METHODS[i % 3]), "correlate": dict(mode="full", method="direct"),
              "convolve2d": dict(mode="valid"), "fftconvolve": dict(mode="full")}[func]
        jobs.append((func, a, b, kw))

    def work(job):
        func, a, b, kw = job
        return [getattr(ps, func)(a, b, **kw) for _ in range(3)]

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(work, jobs))
    for (func, a, b, kw), outs in zip(jobs, results):
        spkw = {k: v for k, v in kw.items() if k != "method"}
        exp = getattr(ss, func)(a, b, **spkw)
        for o in outs:
            check(o, exp, a, b)


# --------------------------------------------------------------------------- random shapes (hypothesis)

@settings(max_examples=40, deadline=None)
@given(ndim=st.integers(1, 3), data=st.data(),
       mode=st.sampled_from(MODES), method=st.sampled_from(METHODS),
       func=st.sampled_from(["convolve", "correlate"]), cplx=st.booleans())
def test_hypothesis_random_shapes(ndim, data, mode, method, func, cplx):
    s1 = tuple(data.draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    s2 = tuple(data.draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    seed = data.draw(st.integers(0, 2**31))
    if mode == "valid" and not valid_ok(s1, s2):
        with pytest.raises(ValueError, match="valid"):
            getattr(ps, func)(np.ones(s1), np.ones(s2), mode=mode, method=method)
        return
    rng = np.random.default_rng(seed)
    dt = np.complex128 if cplx else np.float64
    a, b = rand(rng, s1, dt), rand(rng, s2, dt)
    check(getattr(ps, func)(a, b, mode=mode, method=method), expected_nd(func, a, b, mode), a, b)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), mode=st.sampled_from(MODES),
       boundary=st.sampled_from(["fill", "wrap", "symm"]), func=st.sampled_from(["convolve2d", "correlate2d"]))
def test_hypothesis_2d(data, mode, boundary, func):
    s1 = tuple(data.draw(st.lists(st.integers(1, 9), min_size=2, max_size=2)))
    s2 = tuple(data.draw(st.lists(st.integers(1, 6), min_size=2, max_size=2)))
    fv = data.draw(st.sampled_from([0.0, -1.5, 3.0]))
    seed = data.draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    a, b = rand(rng, s1, np.float64), rand(rng, s2, np.float64)
    got, exp = _scipy_or_raises(getattr(ss, func), getattr(ps, func), a, b, mode=mode, boundary=boundary, fillvalue=fv)
    if got is not None:
        check(got, exp, a, b)


def test_explain_reports_the_fft_workers():
    # explain's thread count for an FFT plan is the workers its transforms get: one below
    # Tuning.fft_workers_min_points (points of the padded transform x the batch), else all
    from pyconv._engine import tuning
    rng = np.random.default_rng(81)
    a, k = rng.standard_normal((3, 100, 90)), rng.standard_normal((1, 11, 11))
    points = 3 * 120 * 100          # next_fast_len(110) = 120, next_fast_len(100) = 100, batch 3
    with pyconv.threads(2):
        for limit, want in ((points, 2), (points + 1, 1)):
            with tuning.override(fft_workers_min_points=limit):
                p = pyconv.explain(ps.fftconvolve, a, k, "same")
                assert p.algorithm == "fft" and p.threads == want
