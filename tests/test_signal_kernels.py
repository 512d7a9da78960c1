"""Kernel-level edge cases of pyconv.signal's direct N-d correlation kernel and its callers.

The public-API grid against scipy lives in tests/test_signal.py; this file checks
what only the kernel's design can get wrong: the skipped out-of-range taps (NaN/Inf
exactness), arbitrary shifts and dims, bitwise independence of the thread count,
concurrent calls, exact integer arithmetic, and the strided/read-only inputs.
"""
import dataclasses
import itertools
import threading
import warnings

import numpy as np
import pytest
import scipy.signal

import pyconv
from pyconv import signal as ps
from pyconv._engine import signal_plan, tuning
from pyconv._kernels import direct as _direct
from tests.reference import assert_close, correlate_full


def _ref_skip(a, w, out_shape, shift):
    """out[o] = sum_k a[o + shift + k] * w[k] over taps inside a (the kernel's definition)."""
    out = np.zeros(out_shape, dtype=np.result_type(a, w))
    for o in itertools.product(*(range(m) for m in out_shape)):
        s = 0
        for k in itertools.product(*(range(n) for n in w.shape)):
            i = tuple(oo + ss + kk for oo, ss, kk in zip(o, shift, k))
            if all(0 <= ii < n for ii, n in zip(i, a.shape)):
                s = s + a[i] * w[k]
        out[o] = s
    return out


# --------------------------------------------------------------------------- the raw kernel

@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.complex64, np.int64])
@pytest.mark.parametrize("seed", range(6))
def test_kernel_any_shift_and_dims(dtype, seed):
    rng = np.random.default_rng(seed)
    nd = 1 + seed % 4
    ash = tuple(rng.integers(1, 6, nd))
    wsh = tuple(rng.integers(1, 5, nd))
    osh = tuple(rng.integers(1, 7, nd))
    shift = tuple(rng.integers(-6, 4, nd))
    a = (rng.standard_normal(ash) * 4).astype(dtype)
    w = (rng.standard_normal(wsh) * 4).astype(dtype)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.standard_normal(ash).astype(dtype)
        w = w + 1j * rng.standard_normal(wsh).astype(dtype)
    out = np.full(osh, 7, dtype=dtype)          # garbage: the kernel must overwrite every output
    _direct.correlate_skip(_direct.DirectGeometry(ash, wsh, osh, shift, 3), a, w, out, 2)
    expected = _ref_skip(a, w, osh, shift)
    assert_close(out, expected, n_reduce=w.size)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("block", [1, 5, 7, 256, 4096])
def test_kernel_block_split_is_bitwise_invisible(block, dtype):
    # every output adds its taps in one order whatever the grouping: any block
    # size and thread count gives the very same bits
    rng = np.random.default_rng(1)
    a = rng.standard_normal((7, 300)).astype(dtype)
    w = rng.standard_normal((3, 13)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        a = a * (1 + 0.5j)
        w = w * (0.3 - 1j)
    osh = (9, 312)
    outs = []
    for nt, blk in ((1, 100000), (2, block), (3, block)):
        out = np.empty(osh, dtype=dtype)
        _direct.correlate_skip(_direct.DirectGeometry(a.shape, w.shape, osh, (-2, -12), blk), a, w, out, nt)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [16, 17, 45, 300])
def test_kernel_1d_lane_sweep_is_bitwise_the_row_sweep(k, dtype):
    # 1-D rows of >= 16 taps take the lane-strided sweep (a transposed copy of the
    # input) for their whole tiles; the same row inside a 2-D geometry takes the
    # grouped sweeps.  Same taps in the same order: the very same bits, any thread
    # count, NaN/Inf/-0 included; and the values match the definition.
    rng = np.random.default_rng(k)
    n = 9000 + k
    a = rng.standard_normal(n).astype(dtype)
    a[[5, 4500, 7001]] = [np.nan, np.inf, -0.0]
    w = rng.standard_normal(k).astype(dtype)
    w[3] = -0.0
    for m, s in ((n + k - 1, -(k - 1)), (n, -(k // 2)), (n - k + 1, 0), (n - 40, 7)):
        ref = np.empty((2, m), dtype=dtype)
        _direct.correlate_skip(_direct.DirectGeometry((2, n), (1, k), (2, m), (0, s), 4096 // a.itemsize),
                               np.stack([a, a]), w[None], ref, 1)
        for nt in (1, 2):
            out = np.full(m, 7, dtype=dtype)
            _direct.correlate_skip(_direct.DirectGeometry((n,), (k,), (m,), (s,), 16384 // a.itemsize),
                                   a, w, out, nt)
            assert out.tobytes() == ref[0].tobytes()
    ok = np.isfinite(a)
    aa = np.where(ok, a, 0).astype(np.float64)
    exp = np.correlate(aa, w.astype(np.float64), "valid")
    m, s = n - k + 1, 0
    out = np.empty(m, dtype=dtype)
    _direct.correlate_skip(_direct.DirectGeometry((n,), (k,), (m,), (s,), 16384 // a.itemsize), a, w, out, 2)
    bad = np.convolve(~ok, np.ones(k), "valid") > 0          # windows holding the NaN/Inf
    assert np.isnan(out[bad]).any() and np.isinf(out[bad]).any()
    assert_close(out[~bad], exp[~bad].astype(dtype), n_reduce=k)


def test_kernel_refuses_arrays_that_do_not_match_its_geometry():
    # the kernel runs without bounds checks: every array is checked against the geometry
    g = _direct.DirectGeometry((4, 5), (2, 2), (3, 4), (0, 0), 16)
    a, w, out = np.ones((4, 5)), np.ones((2, 2)), np.empty((3, 4))
    _direct.correlate_skip(g, a, w, out, 1)
    assert np.array_equal(out, np.full((3, 4), 4.0))
    bad = [(np.ones((4, 4)), w, out), (a, np.ones(3), out), (a, w, np.empty((3, 5))),
           (a.astype(np.float32), w, out), (np.ones((5, 4)).T, w, out), (a, w, np.empty((3, 8))[:, ::2]),
           (a.astype(">f8"), w, out)]
    for aa, ww, oo in bad:
        with pytest.raises(ValueError):
            _direct.correlate_skip(g, aa, ww, oo, 1)
    ro = np.empty((3, 4))
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        _direct.correlate_skip(g, a, w, ro, 1)
    with pytest.raises(TypeError):
        _direct.correlate_skip(g, a.astype(np.int32), w.astype(np.int32), out.astype(np.int32), 1)
    with pytest.raises(ValueError):
        _direct.DirectGeometry((4, 5), (2,), (3, 4), (0, 0), 16)
    with pytest.raises(ValueError):
        _direct.DirectGeometry((), (), (), (), 16)
    with pytest.raises(ValueError):
        _direct.DirectGeometry((4, -5), (2, 2), (3, 4), (0, 0), 16)


# --------------------------------------------------------------------------- exact NaN / Inf

def _reach(mask, kshape, mode):
    """Outputs of a 'mode' convolution whose window holds a True of ``mask``."""
    return ps.convolve(mask, np.ones(kshape, dtype=bool), mode=mode, method="direct")


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("func", ["convolve", "correlate"])
def test_direct_nan_inf_reach_only_their_windows(mode, func):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((9, 11))
    v = rng.standard_normal((3, 4))
    a[2, 3] = np.nan
    a[7, 0] = np.inf
    out = getattr(ps, func)(a, v, mode=mode, method="direct")
    bad = _reach(~np.isfinite(a), v.shape, mode)
    if func == "correlate":
        # correlation windows are the convolution windows of the reversed kernel: same extent
        # but anchored the other way for even sizes; build the mask by correlating.
        bad = ps.correlate(~np.isfinite(a), np.ones(v.shape, dtype=bool), mode=mode, method="direct")
    assert out.shape == bad.shape
    assert np.all(~np.isfinite(out[bad]))
    assert np.all(np.isfinite(out[~bad]))


@pytest.mark.parametrize("mode", ["full", "same"])
def test_inf_in_kernel_does_not_leak_into_padding(mode):
    # scipy's N-d direct path multiplies padded zeros by the Inf (NaN at the borders);
    # pyconv skips the taps outside in1, so border outputs whose window misses
    # the Inf tap stay finite
    a = np.ones((4, 5))
    v = np.ones((3, 3))
    v[1, 1] = np.inf
    out = ps.convolve(a, v, mode=mode, method="direct")
    # output o uses the Inf tap iff o - 1 (full coords) is inside a
    full = np.zeros((6, 7), dtype=bool)
    full[1:5, 1:6] = True
    expect_inf = full if mode == "full" else full[1:5, 1:6]
    assert np.all(np.isposinf(out[expect_inf]))
    assert np.all(np.isfinite(out[~expect_inf]))
    # convolve2d, specified as scipy's, pads with the fill value and multiplies it
    # (0 * Inf = NaN at the borders, as scipy.signal.convolve2d)
    out2 = ps.convolve2d(a, v, mode=mode)
    ref2 = scipy.signal.convolve2d(a, v, mode=mode)
    assert np.array_equal(np.isnan(out2), np.isnan(ref2))
    assert np.isnan(out2[0, 0]) == (mode == "full")
    assert np.array_equal(np.isinf(out2), np.isinf(ref2))


def test_zero_weight_times_inf_is_nan():
    # 0 * Inf inside the window must give NaN (never skipped as a zero tap)
    a = np.array([1.0, np.inf, 1.0])
    out = ps.convolve(a, np.array([0.0, 1.0]), method="direct")
    assert out[0] == 0 and np.isnan(out[1]) and np.isposinf(out[2]) and out[3] == 1


# --------------------------------------------------------------------------- threads

@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.int32])
def test_thread_count_bitwise_identical(dtype):
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((64, 300)) * 10).astype(dtype)
    v = (rng.standard_normal((5, 7)) * 10).astype(dtype)
    with pyconv.threads(1):
        r1 = ps.convolve(a, v, mode="same", method="direct")
        s1 = ps.convolve(a.ravel(), v.ravel(), method="direct")
    with pyconv.threads(2):
        r2 = ps.convolve(a, v, mode="same", method="direct")
        s2 = ps.convolve(a.ravel(), v.ravel(), method="direct")
    assert r1.dtype == r2.dtype == np.dtype(dtype)
    assert np.array_equal(r1, r2) and np.array_equal(s1, s2)


def test_concurrent_python_threads():
    rng = np.random.default_rng(6)
    jobs = [(rng.standard_normal((120, 130)), rng.standard_normal((k, k))) for k in (3, 5, 7, 9)]
    expected = [ps.correlate2d(a, v, mode="same", boundary="symm") for a, v in jobs]
    results = [None] * len(jobs)
    errors = []

    def work(i):
        try:
            for _ in range(3):
                results[i] = ps.correlate2d(jobs[i][0], jobs[i][1], mode="same", boundary="symm")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r, e in zip(results, expected):
        assert np.array_equal(r, e)


# --------------------------------------------------------------------------- exact integers

def test_int64_exact_beyond_float53():
    # products near 2**62 cannot go through float64: the long long path is exact
    # (with int64 wrap-around, as scipy's direct path)
    a = np.array([2**31 + 11, -(2**31) + 5, 3], dtype=np.int64)
    v = np.array([2**30 + 7, 2**30 - 3], dtype=np.int64)
    out = ps.convolve(a, v, method="direct")
    exact = [sum(int(a[i]) * int(v[n - i]) for i in range(3) if 0 <= n - i < 2) for n in range(4)]
    wrapped = [((x + 2**63) % 2**64) - 2**63 for x in exact]
    assert out.dtype == np.int64
    assert out.tolist() == wrapped
    assert ps.choose_conv_method(a, v) == "direct"


@pytest.mark.parametrize("dt", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32])
def test_small_int_wraparound_matches_scipy(dt):
    rng = np.random.default_rng(7)
    info = np.iinfo(dt)
    a = rng.integers(info.min, info.max, size=(6, 9), endpoint=True).astype(dt)
    v = rng.integers(info.min, info.max, size=(3, 2), endpoint=True).astype(dt)
    for mode in ("full", "same", "valid"):
        ref = scipy.signal.convolve(a, v, mode=mode, method="direct")
        out = ps.convolve(a, v, mode=mode, method="direct")
        assert out.dtype == ref.dtype
        assert np.array_equal(out, ref)


def test_integer_fft_rounds_to_exact():
    rng = np.random.default_rng(8)
    a = rng.integers(-1000, 1000, 5000)
    v = rng.integers(-1000, 1000, 300)
    exact = np.convolve(a, v)
    out = ps.convolve(a, v, method="fft")
    assert out.dtype == exact.dtype
    assert np.array_equal(out, exact)


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
def test_bool_is_or_of_ands(method):
    rng = np.random.default_rng(9)
    a = rng.random((40, 50)) < 0.05
    v = rng.random((6, 5)) < 0.3
    for mode in ("full", "same", "valid"):
        ref = ps.convolve(a.astype(np.int64), v.astype(np.int64), mode=mode, method="direct") > 0
        out = ps.convolve(a, v, mode=mode, method=method)
        assert out.dtype == np.bool_
        assert np.array_equal(out, ref)
    # the full result against the definition
    full = correlate_full(a.astype(np.int64), v[::-1, ::-1].astype(np.int64)) > 0
    assert np.array_equal(ps.convolve(a, v, method=method), full)


# --------------------------------------------------------------------------- layouts

@pytest.mark.parametrize("layout", ["fortran", "negstride", "strided", "readonly"])
def test_layouts_and_inputs_untouched(layout):
    rng = np.random.default_rng(10)
    base = rng.standard_normal((30, 40))
    kern = rng.standard_normal((5, 4))
    if layout == "fortran":
        a, v = np.asfortranarray(base), np.asfortranarray(kern)
    elif layout == "negstride":
        a, v = base[::-1, ::-1], kern[:, ::-1]
    elif layout == "strided":
        a, v = base[::2, ::3], kern[::2]
    else:
        a, v = base.copy(), kern.copy()
        a.flags.writeable = False
        v.flags.writeable = False
    a_before, v_before = a.copy(), v.copy()
    for f, ref in ((ps.convolve, scipy.signal.convolve), (ps.correlate, scipy.signal.correlate)):
        for mode in ("full", "same"):
            out = f(a, v, mode=mode, method="direct")
            assert out.flags.c_contiguous
            assert_close(out, ref(a, v, mode=mode, method="direct"), n_reduce=v.size)
    out = ps.convolve2d(a, v, boundary="wrap", mode="same")
    assert_close(out, scipy.signal.convolve2d(a, v, boundary="wrap", mode="same"), n_reduce=v.size)
    out = ps.sepconvolve2d(a, v[:, 0], v[0], mode="same")
    assert_close(out, scipy.signal.convolve2d(a, np.outer(v[:, 0], v[0]), mode="same"), n_reduce=v.size)
    assert np.array_equal(a, a_before) and np.array_equal(v, v_before)


def test_high_dims_and_unit_axes():
    rng = np.random.default_rng(11)
    a = rng.standard_normal((3, 1, 4, 1, 5))
    v = rng.standard_normal((2, 1, 3, 1, 2))
    for mode in ("full", "same", "valid"):
        assert_close(ps.correlate(a, v, mode=mode, method="direct"),
                     scipy.signal.correlate(a, v, mode=mode, method="direct"), n_reduce=v.size)
    # a column vector: one-element rows
    col = rng.standard_normal((5000, 1))
    k = rng.standard_normal((31, 1))
    assert_close(ps.convolve(col, k, method="direct"), scipy.signal.convolve(col, k, method="direct"),
                 n_reduce=31)


def test_valid_kernel_larger_than_input_long_taps():
    rng = np.random.default_rng(12)
    a = rng.standard_normal(50) + 1j * rng.standard_normal(50)
    v = rng.standard_normal(4000) + 1j * rng.standard_normal(4000)
    for f in ("convolve", "correlate"):
        ref = getattr(scipy.signal, f)(a, v, mode="valid", method="direct")
        assert_close(getattr(ps, f)(a, v, mode="valid", method="direct"), ref, n_reduce=50)


# --------------------------------------------------------------------------- separable

def test_separate_and_sepconvolve_roundtrip():
    rng = np.random.default_rng(13)
    g = np.exp(-0.5 * np.linspace(-2, 2, 7) ** 2)
    kern = np.outer(g, g[:5] * 3)
    col, row = ps.separate(kern)
    assert col.dtype == row.dtype == np.float64
    assert_close(np.outer(col, row), kern, n_reduce=1)
    x = rng.standard_normal((40, 33))
    for mode in ("full", "same", "valid"):
        assert_close(ps.sepconvolve2d(x, col, row, mode=mode),
                     scipy.signal.convolve2d(x, kern, mode=mode), n_reduce=kern.size)
    col32, row32 = ps.separate(kern.astype(np.float32))
    assert col32.dtype == np.float32
    with pytest.raises(ValueError, match="not separable within rtol"):
        ps.separate(rng.standard_normal((4, 4)))
    with pytest.raises(ValueError, match="kernel must be a non-empty 2-D"):
        ps.separate(np.ones(3))
    with pytest.raises(ValueError, match="kernel must be finite"):
        ps.separate(np.array([[1.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="rtol"):
        ps.separate(kern, rtol=-1)


def test_sepconvolve2d_errors():
    x = np.ones((5, 5))
    with pytest.raises(ValueError, match="col must be a non-empty 1-D"):
        ps.sepconvolve2d(x, np.ones((2, 2)), np.ones(3))
    with pytest.raises(ValueError, match="row must be a non-empty 1-D"):
        ps.sepconvolve2d(x, np.ones(2), np.ones(0))
    with pytest.raises(ValueError, match="in1 must be a 2-D"):
        ps.sepconvolve2d(np.ones(5), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="mode must be one of"):
        ps.sepconvolve2d(x, np.ones(2), np.ones(2), mode="bad")
    with pytest.raises(ValueError, match="at least as large"):
        ps.sepconvolve2d(np.ones((2, 9)), np.ones(5), np.ones(3), mode="valid")


# --------------------------------------------------------------------------- method choice

def test_choose_measure_and_auto_agrees():
    rng = np.random.default_rng(14)
    a = rng.standard_normal(3000)
    v = rng.standard_normal(40)
    method, times = ps.choose_conv_method(a, v, measure=True)
    assert method in ("direct", "fft")
    assert set(times) == {"direct", "fft"} and all(t > 0 for t in times.values())
    assert method == min(times, key=times.get)
    assert_close(ps.convolve(a, v), scipy.signal.convolve(a, v), n_reduce=40)
    with pytest.raises(TypeError, match="measure must be a bool"):
        ps.choose_conv_method(a, v, measure="yes")


def test_choose_cache_matches_model():
    # auto's decisions are memoised by (dtypes, shapes, mode, threads): a cached
    # answer must be the model's, at every thread count, and integer operands
    # (whose choice depends on their values) must never be served from the cache
    grid = [((1000,), (3,)), ((100000,), (1001,)), ((512, 512), (128, 128)), ((64, 64), (3, 3)),
            ((3,), (1000,)), ((16, 16, 16), (5, 5, 5))]
    for nt in (1, 2):
        with pyconv.threads(nt):
            for (s1, s2), dtype, mode in itertools.product(grid, (np.float32, np.complex128, np.bool_),
                                                           ("full", "same", "valid")):
                a, v = np.ones(s1, dtype), np.ones(s2, dtype)
                want = signal_plan.choose_model(a, v, mode, pyconv.get_num_threads())
                assert ps.choose_conv_method(a, v, mode) == want
                assert ps.choose_conv_method(a, v, mode) == want      # served from the cache
    a, v = np.ones((512, 512), np.int64), np.ones((128, 128), np.int64)
    assert ps.choose_conv_method(a, v) == "fft"
    # same dtypes and shapes, values too large for exact float64 sums
    assert ps.choose_conv_method(a * 2 ** 20, v * 2 ** 20) == "direct"
    assert ps.choose_conv_method(a, v) == "fft"


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.int64])
@pytest.mark.parametrize("shapes", [((9, 40), (3, 5)), ((5, 6, 33), (3, 4, 5)), ((4, 3, 7, 64), (2, 3, 4, 7)),
                                    ((50, 24), (7, 1)), ((3, 200), (2, 9)), ((6, 17, 48), (1, 6, 2))])
def test_same_mode_short_rows_equal_full_crop(shapes, dtype):
    # 'same' mode with short rows merges runs of rows into one sweep and redoes the
    # border columns tap by tap: it must give the bits of the cropped 'full' result
    # (same taps, same order) and scipy's values, with NaN/Inf exact
    xs, ks = shapes
    rng = np.random.default_rng(sum(xs) + sum(ks))
    x = (rng.standard_normal(xs) * 8).astype(dtype)
    k = (rng.standard_normal(ks) * 8).astype(dtype)
    if np.dtype(dtype).kind == "f":
        x.flat[rng.integers(0, x.size, 3)] = [np.nan, np.inf, -np.inf]
    full = ps.correlate(x, k, mode="full", method="direct")
    same = ps.correlate(x, k, mode="same", method="direct")
    crop = tuple(slice((kk - 1) // 2, (kk - 1) // 2 + n) for n, kk in zip(xs, ks))
    assert same.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(same, full[crop])
    # 'valid' rows are swept merged too (into a scratch of a's row length, then cropped)
    valid = ps.correlate(x, k, mode="valid", method="direct")
    np.testing.assert_array_equal(valid, full[tuple(slice(kk - 1, n) for n, kk in zip(xs, ks))])
    if np.dtype(dtype).kind != "f":
        assert_close(same, scipy.signal.correlate(x, k, mode="same", method="direct"), n_reduce=k.size)
    else:
        bad = ps.correlate(~np.isfinite(x), np.ones(ks, dtype=bool), mode="same", method="direct")
        assert np.array_equal(~np.isfinite(same), bad)
    with pyconv.threads(1):
        same1 = ps.correlate(x, k, mode="same", method="direct")
    np.testing.assert_array_equal(same, same1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex64, np.int64])
@pytest.mark.parametrize("geo", [((6, 40), (3, 5), (7, 36), (-1, -2)),        # shorter rows, both borders
                                 ((5, 4, 33), (2, 3, 4), (4, 3, 30), (0, 0, 0)),  # 'valid'
                                 ((9, 64), (4, 9), (8, 50), (-2, 3)),
                                 # rows swept two at a time (pcv_sweep2): rows of 70 (whole
                                 # vector tiles, then a partial last vector), of 8 (shorter
                                 # than a vector), 'valid' rows of 37, planes of a 4-d array,
                                 # and 289 planes (two calls of at most 256)
                                 ((12, 70), (5, 3), (12, 70), (-2, -1)),
                                 ((14, 8), (3, 3), (14, 8), (-1, -1)),
                                 ((3, 11, 37), (2, 4, 5), (2, 8, 33), (0, 0, 0)),
                                 ((2, 3, 9, 20), (2, 2, 3, 3), (2, 3, 9, 20), (0, -1, -1, -1)),
                                 ((17, 17, 8, 12), (17, 17, 2, 3), (1, 1, 7, 10), (0, 0, 0, 0)),
                                 # long rows (merged whatever their length): 'same' rows of
                                 # 700, 'valid' rows of 600 in 3-d
                                 ((6, 700), (3, 5), (6, 700), (-1, -2)),
                                 ((5, 7, 600), (3, 3, 5), (3, 5, 596), (0, 0, 0))])
def test_kernel_merged_short_rows_bitwise_the_rows_one_by_one(geo, dtype):
    # output rows shorter than a's are swept merged (a scratch of a's row length, the
    # border columns redone): the bits of each row computed alone (a one-row geometry,
    # never merged), at 1 and 2 threads, and the definition's values
    ash, wsh, osh, shift = geo
    nd = len(ash)
    border = _direct.merged_border(nd, ash[-1], osh[-1], wsh[-1], shift[-1], osh[-2])
    # merged; the columns redone tap by tap are those with a tap outside a's row
    assert border == sum(any(not 0 <= j + shift[-1] + k < ash[-1] for k in range(wsh[-1]))
                         for j in range(osh[-1]))
    assert _direct.merged_border(nd, ash[-1], osh[-1], wsh[-1], shift[-1], 1) == -1   # one row per plane
    rng = np.random.default_rng(sum(ash))
    a = (rng.standard_normal(ash) * 8).astype(dtype)
    w = (rng.standard_normal(wsh) * 8).astype(dtype)
    if np.dtype(dtype).kind == "f":
        a.flat[[3, 70, 101]] = [np.nan, np.inf, -0.0]
    rows = np.empty(osh, dtype=dtype)
    for r in range(osh[-2]):
        one = osh[:-2] + (1, osh[-1])
        sh1 = shift[:-2] + (shift[-2] + r, shift[-1])
        out1 = np.empty(one, dtype=dtype)
        _direct.correlate_skip(_direct.DirectGeometry(ash, wsh, one, sh1, 4096), a, w, out1, 1)
        rows[..., r, :] = out1[..., 0, :]
    # (blocks of 4 KiB and of pyconv.signal's 16 KiB: one or several long rows per work item)
    for nt, block in ((1, 4096), (2, 4096), (2, 16384)):
        out = np.full(osh, 7, dtype=dtype)
        _direct.correlate_skip(_direct.DirectGeometry(ash, wsh, osh, shift, block // a.itemsize), a, w, out, nt)
        assert out.tobytes() == rows.tobytes()
    ok = np.isfinite(a)
    exp = _ref_skip(np.where(ok, a, 0), w, osh, shift)
    bad = _ref_skip((~ok).astype(np.int64), np.ones(wsh, np.int64), osh, shift) > 0
    assert np.array_equal(~np.isfinite(out), bad)
    assert_close(np.where(bad, 0, out), np.where(bad, 0, exp).astype(dtype), n_reduce=w.size)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex64, np.complex128, np.int64])
@pytest.mark.parametrize("shape, axis", [((7, 33), 1), ((3, 5, 17), 2), ((4, 9, 1, 1), 1), ((1, 600), 1),
                                         ((5, 0), 1)])
def test_padded_rows_copy_matches_numpy(shape, axis, dtype):
    # the direct plan's copy with zeros around every row: the kernel's threaded copy of a
    # C-contiguous input (at 1 and 2 threads) and NumPy's of any other (a strided view, a
    # Fortran array, another dtype) give np.pad's array
    from pyconv.signal import _padded_rows
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 8).astype(dtype)
    want = np.pad(x, [(0, 0)] * axis + [(2, 3)] + [(0, 0)] * (x.ndim - axis - 1))
    for src in (x, np.asfortranarray(x), np.ascontiguousarray(x[::-1])[::-1]):
        for team in (1, 2):
            got = _padded_rows(src, axis, 2, 3, np.dtype(dtype), team)
            assert got.flags.c_contiguous and got.dtype == np.dtype(dtype)
            assert got.tobytes() == want.tobytes()
    if np.dtype(dtype).kind == "f":
        got = _padded_rows(x.astype(np.float16), axis, 2, 3, np.dtype(dtype), 2)
        np.testing.assert_array_equal(got, np.pad(x.astype(np.float16), [(0, 0)] * axis + [(2, 3)]
                                                  + [(0, 0)] * (x.ndim - axis - 1)).astype(dtype))


def test_pad_rows_kernel_checks_its_arrays():
    x = np.ones((4, 10))
    with pytest.raises(ValueError, match="rows of"):
        _direct.pad_rows(x, np.empty((4, 13)), 10, 1, 1, 1)         # 12 per row, not 13
    with pytest.raises(ValueError, match="one dtype"):
        _direct.pad_rows(x, np.empty((4, 12), np.float32), 10, 1, 1, 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        _direct.pad_rows(x[:, ::2], np.empty((4, 7)), 5, 1, 1, 1)
    with pytest.raises(ValueError, match="zeros"):
        _direct.pad_rows(x, np.empty((4, 12)), 0, 1, 1, 1)
    ro = np.empty((4, 12))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _direct.pad_rows(x, ro, 10, 1, 1, 1)


def _padding_operands(xs, ks, dtype, seed):
    """Operands of the padded-rows tests: x with NaN, Inf and -0 planted (float dtypes), k,
    and a non-C-contiguous view of x's values."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(xs) * 8).astype(dtype)
    k = (rng.standard_normal(ks) * 8).astype(dtype)
    if np.dtype(dtype).kind == "f":
        x.flat[rng.integers(0, x.size, 3)] = [np.nan, np.inf, -0.0]
    return x, k, np.asfortranarray(x)[..., ::-1][..., ::-1]


def _inf_weight_takes_the_unpadded_plan(xs, k, dtype, mode, padding_tuning):
    """An Inf weight runs the plan without the padded copy (a padded zero would make NaN of
    outputs whose window misses the Inf's input): the same bits as without padding, float
    outputs finite somewhere and NaN nowhere."""
    k_inf = k.copy()
    k_inf[(0,) * k.ndim] = np.inf
    ones = np.ones(xs, dtype=dtype)
    with tuning.override(**padding_tuning):
        got = ps.correlate(ones, k_inf, mode, method="direct")
    with tuning.override(direct_pad_ns=1e9):
        want = ps.correlate(ones, k_inf, mode, method="direct")
    assert got.tobytes() == want.tobytes()
    if np.dtype(dtype).kind == "f":      # (complex: inf * (1 + 0j) has a NaN part anyway)
        assert np.isfinite(got).any() and not np.isnan(got).any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex64, np.int64])
@pytest.mark.parametrize("shapes, mode", [(((6, 9, 40), (3, 4, 7)), "same"), (((12, 33), (5, 6)), "same"),
                                          (((5, 7, 64), (3, 3, 9)), "same"), (((4, 8, 30), (2, 5, 4)), "same"),
                                          (((3, 5, 6, 20), (2, 2, 3, 5)), "same")])
def test_padded_rows_bitwise_the_border_redo(shapes, mode, dtype):
    # short merged rows get their border columns either redone tap by tap or from a copy
    # with zeros around each row (Tuning.direct_pad_ns decides): the same bits, NaN/Inf in
    # the input exact; an Inf weight runs the plan without the copy (the padded zero
    # would make NaN of outputs whose window misses the Inf's input)
    xs, ks = shapes
    x, k, xt = _padding_operands(xs, ks, dtype, sum(xs) * 7 + sum(ks))
    with tuning.override(direct_pad_ns=0.0):
        plan = pyconv.explain(ps.correlate, x, k, mode, method="direct")
        padded = ps.correlate(xt, k, mode, method="direct")
    with tuning.override(direct_pad_ns=1e9):
        assert pyconv.explain(ps.correlate, x, k, mode, method="direct").tile("pad") is None
        redo = ps.correlate(x, k, mode, method="direct")
    d = len(xs) - 1
    axis, before, after = plan.tile("pad")
    assert axis == d and before + after == ks[-1] - 1 and min(before, after) >= 0
    assert plan.nonfinite is not None and plan.nonfinite.tile("pad") is None
    assert padded.dtype == redo.dtype == np.dtype(dtype)
    assert padded.tobytes() == redo.tobytes()
    full = ps.correlate(x, k, "full", method="direct")
    crop = tuple(slice((kk - 1) // 2, (kk - 1) // 2 + n) for n, kk in zip(xs, ks))
    np.testing.assert_array_equal(padded, full[crop])
    if np.dtype(dtype).kind in "fc":
        _inf_weight_takes_the_unpadded_plan(xs, k, dtype, mode, dict(direct_pad_ns=0.0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex64, np.int64])
@pytest.mark.parametrize("xs, ks", [((12, 33), (5, 6)), ((6, 9, 40), (3, 4, 7)), ((5, 7, 64), (3, 3, 9)),
                                    ((3, 5, 6, 20), (2, 2, 3, 5)), ((7, 1100), (3, 4)), ((2, 8), (1, 2))])
def test_full_mode_sweeps_padded_rows_merged(xs, ks, dtype):
    # 'full' output rows are longer than x's, so the kernel cannot sweep runs of them as one
    # block and sweeps them one by one; on a copy with k - 1 zeros around each row it can
    # (row_padding, where the model prices it lower): the same bits as row by row, and the
    # definition's values; NaN/Inf in the input exact, an Inf weight on the unpadded plan
    x, k, xt = _padding_operands(xs, ks, dtype, sum(xs) * 5 + sum(ks))
    cheap = dict(direct_pad_ns=0.0, direct_pad_call_ns=0.0, direct_merged_factor=0.5)
    with tuning.override(**cheap):
        plan = pyconv.explain(ps.correlate, x, k, "full", method="direct")
        padded = ps.correlate(xt, k, "full", method="direct")
    with tuning.override(direct_pad_ns=1e9):
        assert pyconv.explain(ps.correlate, x, k, "full", method="direct").tile("pad") is None
        rows = ps.correlate(x, k, "full", method="direct")
    assert plan.tile("pad") == (len(xs) - 1, ks[-1] - 1, ks[-1] - 1)
    assert plan.nonfinite is not None and plan.nonfinite.tile("pad") is None
    assert padded.dtype == rows.dtype == np.dtype(dtype)
    assert padded.tobytes() == rows.tobytes()
    # the definition in double precision; tolerance per dtype, relative to the largest
    # finite output (NaN and Inf land where the definition puts them)
    with np.errstate(invalid="ignore"):
        want = correlate_full(x, k)
    rtol = {"float32": 1e-5, "complex64": 1e-5, "float64": 1e-13, "int64": 0.0}[np.dtype(dtype).name]
    big = float(np.max(np.abs(want[np.isfinite(want)]), initial=1.0))
    np.testing.assert_allclose(padded, want.astype(dtype), rtol=rtol, atol=rtol * big)
    if np.dtype(dtype).kind == "f":
        _inf_weight_takes_the_unpadded_plan(xs, k, dtype, "full", cheap)


def test_padded_copy_pays_its_fixed_cost_per_call():
    # the copy's price per call (Tuning.direct_pad_call_ns) keeps small images on the border
    # redo (a 10x10 * 3x3 'same' correlation took the copy, 1.6x slower than the redo),
    # while large ones still take the copy when its price per element is low
    sp = signal_plan
    small = ((10, 10), (3, 3), (10, 10), (-1, -1))
    large = ((256, 256), (9, 9), (256, 256), (-4, -4))
    cheap = dataclasses.replace(tuning.DEFAULT, direct_pad_ns=0.2, direct_border_ns=1.6, direct_pad_call_ns=0.0)
    dear = dataclasses.replace(cheap, direct_pad_call_ns=2500.0)
    assert sp.row_padding(*small, "f8", cheap)[:2] == (1, 1)
    assert sp.row_padding(*small, "f8", dear)[:2] == (0, 0)
    assert sp.row_padding(*large, "f8", dear)[:2] == (4, 4)
    # the modelled cost of the copy grows by exactly the fixed price
    assert sp.row_padding(*large, "f8", dear)[2] == pytest.approx(sp.row_padding(*large, "f8", cheap)[2] + 2500.0)


@pytest.mark.parametrize("fn", [ps.correlate2d, ps.convolve2d])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_non_finite_kernels_repeated_give_scipys_values_without_warnings(fn, dtype):
    # the second call of a 2-D shape takes the cached fast path, which checks the weights:
    # an Inf in a complex weight or a huge finite one must not raise a floating-point
    # warning there (a sum of squares did: 0 * Inf, an overflow), and NaN/Inf weights give
    # scipy's values
    ss = scipy.signal
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 9)).astype(dtype)
    for bad in (np.inf, np.nan, -np.inf, 1e200, None):
        k = rng.standard_normal((3, 4)).astype(dtype)
        if bad is None:
            k = rng.standard_normal((7, 6)).astype(dtype)   # past the small-kernel check
            k[3, 1] = np.inf
        else:
            k[1, 2] = bad                                   # (1e200: finite, its square is not)
        want = getattr(ss, fn.__name__)(x, k, mode="same")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            first = fn(x, k, mode="same")
            second = fn(x, k, mode="same")
        np.testing.assert_array_equal(first, second)
        np.testing.assert_allclose(second, want, rtol=1e-12, atol=1e-12)


def test_unaligned_operands():
    # arrays unpickled from a byte stream (dask.distributed) can be unaligned: same bits
    rng = np.random.default_rng(21)
    a, k = rng.standard_normal((9, 10)), rng.standard_normal((3, 4))
    for arr in (a, k):
        raw = np.zeros(arr.nbytes + 1, np.uint8)
        un = raw[1:].view(np.float64).reshape(arr.shape)
        un[...] = arr
        assert not un.flags.aligned
        args = (un, k) if arr is a else (a, un)
        for mode in ("full", "same", "valid"):
            assert np.array_equal(ps.convolve(*args, mode=mode, method="direct"),
                                  ps.convolve(a, k, mode=mode, method="direct"))
            assert np.array_equal(ps.convolve2d(*args, mode=mode), ps.convolve2d(a, k, mode=mode))
