"""pyconv.ndimage against scipy.ndimage (the reference), and pyconv.grad.ndimage against
finite differences and PyTorch autograd.

Tolerances: float64 and integer/bool outputs are compared EXACTLY (pyconv computes
them with scipy's own double arithmetic, in the same order); float32 work is done in
float32 (scipy: double) and compared with rtol 2e-5 * 4 * sqrt(taps) (tests/reference.py).
"""
import numpy as np
import pytest
import scipy.ndimage as sn
from hypothesis import given, settings, strategies as st

import pyconv
from pyconv import ndimage as pn
from pyconv.grad import ndimage as gnd
from reference import tolerance

MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-constant", "grid-mirror", "grid-wrap"]
INT_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
DTYPES = INT_DTYPES + [np.float32, np.float64]


def check(actual, expected, taps=1):
    """Same dtype and shape; exact except float32 (tolerance per tests/reference.py)."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape
    if expected.dtype.kind in "fc" and expected.real.dtype == np.float32:
        rtol, atol = tolerance(np.float32, taps)
        scale = max(1.0, float(np.nanmax(np.abs(expected), initial=0.0)) if expected.size else 1.0)
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, equal_nan=True)
    else:
        np.testing.assert_array_equal(actual, expected)


def data(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        lo = 0 if dtype.kind == "u" else -20
        return rng.integers(lo, 20, shape).astype(dtype)
    return (rng.standard_normal(shape) * 3).astype(dtype)


def both(name, *args, **kwargs):
    return getattr(pn, name)(*args, **kwargs), getattr(sn, name)(*args, **kwargs)


# --------------------------------------------------------------------------- correlations: seeded grid

SHAPES = [(7,), (1,), (6, 5), (1, 9), (4, 1, 6), (3, 4, 2, 5), (2, 0, 3)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["correlate", "convolve"])
def test_correlate_modes_shapes(name, shape, mode):
    rng = np.random.default_rng(abs(hash((name, shape, mode))) % 2**32)
    x = data(rng, shape, np.float64)
    for wshape in [tuple(rng.integers(1, 4, len(shape))), tuple(s + 3 for s in shape)]:   # larger than input
        w = rng.standard_normal(wshape)
        lo = [-(k // 2) for k in wshape]
        hi = [(k - 1) // 2 for k in wshape]
        for origin in (0, lo, hi):                      # origins at their limits
            a, b = both(name, x, w, mode=mode, cval=1.25, origin=origin)
            check(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["correlate", "convolve", "correlate1d", "convolve1d"])
def test_dtypes_exact(name, dtype):
    """Every dtype scipy accepts, its output dtype, integer truncation and overflow."""
    rng = np.random.default_rng(3)
    x = data(rng, (9, 8), dtype)
    w = rng.standard_normal((3, 4)) * 7 if name in ("correlate", "convolve") else rng.standard_normal(5) * 7
    for mode in ("reflect", "constant", "wrap"):
        a, b = both(name, x, w, mode=mode, cval=3.5)
        check(a, b, w.size)
        for out in (np.uint8, np.int16, np.uint32, np.int64, np.uint64, np.float32, np.bool_):
            a, b = both(name, x, w * 1e3, output=out, mode=mode)   # overflowing integer outputs
            check(a, b, w.size)


def test_integer_cast_out_of_range():
    """scipy's C casts of out-of-range and NaN results (x86 'integer indefinite' values)."""
    x = np.array([-100.0, 200.0, np.nan, 1.0, 3e9, -3e9, 2e19, -2e19])
    for out in (np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64):
        with np.errstate(all="ignore"):
            a, b = both("correlate1d", x, [1.0], output=out)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("mode", MODES)
def test_correlate1d_every_axis_and_origin(mode):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 6, 7))
    for k in (1, 2, 4, 5, 9):                           # 9 > the first axis
        w = rng.standard_normal(k)
        for axis in (0, 1, 2, -1):
            for origin in (-(k // 2), 0, (k - 1) // 2):
                for name in ("correlate1d", "convolve1d"):
                    a, b = both(name, x, w, axis=axis, mode=mode, cval=-2.0, origin=origin)
                    check(a, b)
        # symmetric and antisymmetric kernels take scipy's paired formulas
        for ws in ([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0], [0.25, 0.5, 0.25]):
            a, b = both("correlate1d", x, ws, axis=1, mode=mode)
            check(a, b)


def test_short_lines_long_kernels():
    """Boundary extension far beyond the line (the maps repeat as scipy's line extension does)."""
    for n in (1, 2, 3):
        x = np.arange(1.0, n + 1)
        for mode in MODES:
            a, b = both("correlate1d", x, np.arange(1.0, 16.0), mode=mode, cval=9.0)
            check(a, b)
            a, b = both("correlate", x, np.arange(1.0, 12.0), mode=mode, cval=9.0)
            check(a, b)


# --------------------------------------------------------------------------- separable filters

@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("mode", ["reflect", "constant", "nearest", "mirror", "wrap"])
def test_separable_filters(mode, dtype):
    rng = np.random.default_rng(7)
    x = data(rng, (11, 9, 6), dtype)
    if np.dtype(dtype).kind in "iu":
        x = x * np.asarray(3, dtype)       # flat regions and plateaus: rounding matters
    cases = [("gaussian_filter", (1.3,), {}), ("gaussian_filter", ([0.7, 2.0, 0.0],), {"order": [0, 1, 2]}),
             ("gaussian_filter", (1.0,), {"truncate": 2.0}), ("gaussian_filter", (1.5,), {"radius": [1, 2, 3]}),
             ("gaussian_filter", (1.0,), {"axes": (0, 2)}),
             ("gaussian_filter1d", (1.7,), {"axis": 1, "order": 1}),
             ("uniform_filter", (3,), {}), ("uniform_filter", ([2, 5, 4],), {"origin": [-1, 2, 1]}),
             ("uniform_filter1d", (4,), {"axis": 0, "origin": -2}),
             ("sobel", (), {"axis": 0}), ("prewitt", (), {"axis": -1}), ("laplace", (), {}),
             ("laplace", (), {"axes": (1,)}), ("gaussian_laplace", (1.1,), {}),
             ("gaussian_gradient_magnitude", (0.9,), {})]
    for name, args, kw in cases:
        a, b = both(name, x, *args, mode=mode, cval=2.0, **kw)
        check(a, b, 64)


def test_separable_per_axis_modes_and_output_array():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 7))
    modes = ["wrap", "constant"]
    for name, args in [("gaussian_filter", (1.0,)), ("uniform_filter", (3,)), ("sobel", ()), ("prewitt", ()),
                       ("laplace", ()), ("gaussian_laplace", (1.0,)), ("gaussian_gradient_magnitude", (1.0,))]:
        out = np.empty((8, 7), np.float32)
        ref = getattr(sn, name)(x, *args, mode=modes, output=np.float32)
        got = getattr(pn, name)(x, *args, mode=modes, output=out)
        assert got is out                                   # written in place and returned
        check(out, ref, 64)


def test_gaussian_filter_uint8_rounds_every_pass():
    x = np.full((16, 16), 100, np.uint8)
    x[4:9, 5:12] = 7
    for s in (0.5, 1.0, 3.0):
        check(*both("gaussian_filter", x, s))
        check(*both("gaussian_filter", x, s, output=np.float64))


def test_zero_sigma_and_size_copy_input():
    x = np.arange(12.0).reshape(3, 4)
    check(*both("gaussian_filter", x, 0))
    check(*both("uniform_filter", x, 1))
    check(*both("laplace", x, axes=()))


# --------------------------------------------------------------------------- layouts, outputs, complex, NaN

def _layouts(x):
    yield "C", x
    yield "F", np.asfortranarray(x)
    yield "strided", np.repeat(x, 2, axis=-1)[..., ::2]
    yield "negative", x[::-1, ::-1].copy()[::-1, ::-1]
    ro = x.copy()
    ro.flags.writeable = False
    yield "read-only", ro
    yield "big-endian", x.astype(x.dtype.newbyteorder(">"))
    yield "transposed", x.T.copy().T


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_layouts(dtype):
    rng = np.random.default_rng(9)
    base = data(rng, (13, 10), dtype)
    w = rng.standard_normal((3, 4))
    for label, x in _layouts(base):
        check(*both("correlate", x, w, mode="mirror"), 12)
        check(*both("convolve1d", x, [1.0, -2.0, 3.0, 0.5], axis=0), 4)
        check(*both("convolve1d", x, [1.0, -2.0, 3.0, 0.5], axis=1), 4)
        check(*both("gaussian_filter", x, 1.5), 16)
        check(*both("uniform_filter", x, 4), 16)
        check(*both("sobel", x, axis=0), 9)


def test_output_forms():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((6, 7))
    w = rng.standard_normal((3, 3))
    for out in (np.float32, "float32", np.dtype("int32"), None):
        check(pn.correlate(x, w, output=out), sn.correlate(x, w, output=out), 9)
    # a non-contiguous output array is written in place
    buf = np.zeros((12, 14))
    view = buf[::2, ::2]
    assert pn.correlate(x, w, output=view) is view
    check(view, sn.correlate(x, w))
    # output == input: scipy filters through a temporary for correlate, in place for 1-D passes
    for name, args in [("correlate", (w,)), ("correlate1d", ([1.0, 2.0, 3.0],)), ("gaussian_filter", (2.0,)),
                       ("uniform_filter", (5,)), ("sobel", ())]:
        y = x.copy()
        got = getattr(pn, name)(y, *args, output=y)
        assert got is y
        check(y, getattr(sn, name)(x, *args))
    # an output overlapping the input in another layout
    z = np.arange(40.0)
    ref = sn.correlate1d(z[:20], [1.0, 2.0, 3.0])
    pn.correlate1d(z[:20], [1.0, 2.0, 3.0], output=z[10:30])
    check(z[10:30], ref)


def test_complex():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 7)) + 1j * rng.standard_normal((6, 7))
    wc = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    for name in ("correlate", "convolve"):
        for a, w in ((x, wc), (x.real, wc), (x, wc.real)):
            check(*both(name, a, w, mode="wrap"))
        check(*both(name, x.astype(np.complex64), wc.real, mode="nearest"), 6)
    for name in ("correlate1d", "convolve1d"):
        for a, w in ((x, wc[0]), (x.real, wc[0]), (x, wc[0].real)):
            check(*both(name, a, w, axis=0))
    check(*both("gaussian_filter", x, 1.0))
    check(*both("uniform_filter", x, 3, mode="constant", cval=1 + 2j))
    check(*both("uniform_filter1d", x, 2, axis=0))
    with pytest.warns(UserWarning, match="promoting specified output dtype to complex"):
        assert pn.correlate(x, wc.real, output=np.float64).dtype == np.complex128


def test_nan_inf_placement():
    x = np.random.default_rng(12).standard_normal((9, 9))
    x[4, 4] = np.nan
    x[0, 3] = np.inf
    w = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0], [1e-17, 0.0, -1.0]])   # |w| <= eps is skipped
    for mode in ("reflect", "constant", "wrap"):
        check(*both("correlate", x, w, mode=mode))
        check(*both("convolve", x, w, mode=mode))
        check(*both("gaussian_filter", x, 1.0, mode=mode))
        check(*both("uniform_filter", x, 3, mode=mode))
        check(*both("sobel", x, mode=mode))


def test_zero_dim_and_empty():
    check(*both("correlate", np.float64(3.0), np.float64(2.0)))
    check(*both("uniform_filter", np.float64(3.0)))
    check(*both("gaussian_filter", np.float64(3.0), 1.0))
    for name, args in [("correlate", (np.ones((2, 2)),)), ("correlate1d", ([1.0, 2.0],)), ("gaussian_filter", (1,)),
                       ("uniform_filter", (3,)), ("sobel", ()), ("laplace", ())]:
        check(*both(name, np.ones((0, 4)), *args))


def test_threads_do_not_change_bits():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((64, 80)).astype(np.float32)
    w = rng.standard_normal((5, 5))
    with pyconv.threads(1):
        r1 = (pn.correlate(x, w, mode="wrap"), pn.gaussian_filter(x, 2.0), pn.uniform_filter(x, 7))
    with pyconv.threads(2):
        r2 = (pn.correlate(x, w, mode="wrap"), pn.gaussian_filter(x, 2.0), pn.uniform_filter(x, 7))
    for a, b in zip(r1, r2):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_long_rows_exact(threads):
    """Rows long enough for the kernels' register blocks (and the block shifted back at a
    row's end), edge columns of every width, inputs read in place or extended (another
    dtype, strided rows), outputs written in place or through a buffer: scipy's bits."""
    rng = np.random.default_rng(14)
    x3 = rng.standard_normal((5, 9, 77))
    x2 = rng.standard_normal((67, 131))
    with pyconv.threads(threads):
        for x, wshapes in ((x3, [(3, 3, 3), (2, 3, 4), (1, 1, 9), (3, 1, 1)]), (x2, [(3, 3), (5, 1), (4, 7), (1, 40)])):
            for wshape in wshapes:
                w = rng.standard_normal(wshape)
                w.flat[w.size // 2] = 0.0                     # a skipped tap
                for mode in MODES:
                    origin = [int(rng.integers(-(k // 2), (k - 1) // 2 + 1)) for k in wshape]
                    check(*both("correlate", x, w, mode=mode, cval=0.5, origin=origin))
                    check(*both("convolve", x, w, mode=mode))
                check(*both("correlate", x.astype(np.float32), w, output=np.float64))    # extended rows
                check(*both("correlate", x[..., ::2], w, mode="wrap"))                   # strided rows
                check(*both("correlate", x, w, output=np.int32))                          # buffered output
                out = np.zeros(x.shape[:-1] + (2 * x.shape[-1],))[..., ::2]
                check(pn.correlate(x, w, output=out, mode="nearest"), sn.correlate(x, w, mode="nearest"))
        for x in (x3, x2):
            for axis in range(x.ndim):
                for k, kind in ((3, "sym"), (13, "gen"), (65, "anti"), (64, "gen")):
                    w = rng.standard_normal(k)
                    w = w + w[::-1] if kind == "sym" else (w - w[::-1] if kind == "anti" else w)
                    mode = MODES[int(rng.integers(0, len(MODES)))]
                    check(*both("correlate1d", x, w, axis=axis, mode=mode, cval=2.0))
                    y = x.copy()
                    pn.correlate1d(y, w, axis=axis, output=y, mode=mode)           # in place
                    check(y, sn.correlate1d(x, w, axis=axis, mode=mode))
                    check(*both("correlate1d", x, w, axis=axis, output=np.float32))
                for size in (2, 15):
                    check(*both("uniform_filter1d", x, size, axis=axis, mode="mirror"))
                    y = x.copy()
                    pn.uniform_filter1d(y, size, axis=axis, output=y)
                    check(y, sn.uniform_filter1d(x, size, axis=axis))
                    out = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), np.float32)[..., ::2]
                    pn.uniform_filter1d(x, size, axis=axis, output=out, mode="wrap")
                    check(out, sn.uniform_filter1d(x, size, axis=axis, output=np.float32, mode="wrap"))
            check(*both("gaussian_filter", x, 3.0, mode="constant"))
            check(*both("sobel", x, axis=0))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_in_place_streamed_passes_exact(mode, threads):
    """Passes in place along a strided axis stream whole lines through a ring of rows and
    save the rows the boundary extension reads first (a line's far end for 'wrap', rows
    already overwritten for long kernels): scipy's bits for every mode, kernels longer
    than the line, origins at their limits, inputs of another dtype than the compute one."""
    rng = np.random.default_rng(16)
    with pyconv.threads(threads):
        for shape, axis in (((23, 70), 0), ((4, 11, 40), 1), ((9, 3, 5), 0)):
            x = rng.standard_normal(shape)
            n = shape[axis]
            for k in (2, 3, 5, n + 4):
                origins = sorted({-(k // 2), 0, (k - 1) // 2})
                for origin, kind in zip(origins, ("gen", "sym", "anti")):
                    w = rng.standard_normal(k)
                    if k & 1 and kind != "gen":
                        w = w + w[::-1] if kind == "sym" else w - w[::-1]
                    y = x.copy()
                    pn.correlate1d(y, w, axis=axis, output=y, mode=mode, cval=1.5, origin=origin)
                    check(y, sn.correlate1d(x, w, axis=axis, mode=mode, cval=1.5, origin=origin))
                    y = x.copy()
                    pn.uniform_filter1d(y, k, axis=axis, output=y, mode=mode, cval=-2.0, origin=origin)
                    check(y, sn.uniform_filter1d(x, k, axis=axis, mode=mode, cval=-2.0, origin=origin))
            xi = data(rng, shape, np.int16)
            y = xi.copy()
            pn.correlate1d(y, [1, 3, -1, 2], axis=axis, output=y, mode=mode)
            check(y, sn.correlate1d(xi, [1, 3, -1, 2], axis=axis, mode=mode))
            xf = x.astype(np.float32)
            y = xf.copy()
            pn.sobel(y, axis=-1, output=y, mode=mode)
            check(y, sn.sobel(xf, axis=-1, mode=mode), 6)


def test_edge_filters_smooth_in_place_on_large_arrays():
    """sobel and prewitt smooth their output in place along every other axis (the derivative
    pass writes a new output, the smoothing passes read and write it): arrays whose lines
    the kernels take in tiles, every axis, a new output, one of another dtype and one given,
    against scipy.ndimage bit for bit."""
    rng = np.random.default_rng(17)
    for shape in [(300, 300), (257, 129), (24, 40, 33)]:
        x = rng.standard_normal(shape)
        for name in ("sobel", "prewitt"):
            for axis in range(len(shape)):
                expected = getattr(sn, name)(x, axis=axis)
                check(getattr(pn, name)(x, axis=axis), expected)
                check(getattr(pn, name)(x, axis=axis, output=np.float32),
                      getattr(sn, name)(x, axis=axis, output=np.float32), 6)
                out = np.full(shape, np.nan)
                assert getattr(pn, name)(x, axis=axis, output=out) is out     # (as scipy's)
                check(out, expected)


def test_new_outputs_are_fully_written():
    """New outputs are not zeroed first: every element must come from the kernels (on
    memory that held other values, as a reused heap block does)."""
    rng = np.random.default_rng(15)
    x = rng.standard_normal((40, 70))
    for _ in range(3):
        junk = np.full((40, 70), np.nan)
        del junk
        check(*both("correlate", x, rng.standard_normal((3, 4)), mode="wrap"))
        check(*both("gaussian_filter", x, 2.0))
        check(*both("uniform_filter", x, 5, output=np.float32), 25)
        check(*both("sobel", x.astype(np.int16)))
    assert pyconv.explain(pn.gaussian_gradient_magnitude, x, 1.0) is not None


# --------------------------------------------------------------------------- hypothesis

@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4).flatmap(lambda nd: st.tuples(
    st.lists(st.integers(0, 6), min_size=nd, max_size=nd),
    st.lists(st.integers(1, 5), min_size=nd, max_size=nd),
    st.sampled_from(MODES), st.sampled_from(["float32", "float64", "int32", "uint8"]),
    st.integers(0, 2**31 - 1), st.booleans())))
def test_hypothesis_correlate(args):
    shape, wshape, mode, dtype, seed, convolution = args
    rng = np.random.default_rng(seed)
    x = data(rng, tuple(shape), dtype)
    w = rng.standard_normal(tuple(wshape))
    origin = [int(rng.integers(-(k // 2), (k - 1) // 2 + 1)) for k in wshape]
    name = "convolve" if convolution else "correlate"
    check(*both(name, x, w, mode=mode, cval=0.5, origin=origin), w.size)
    axis = int(rng.integers(0, len(shape)))
    w1 = w.reshape(-1)[:5]
    o1 = int(rng.integers(-(len(w1) // 2), (len(w1) - 1) // 2 + 1))
    check(*both(name + "1d", x, w1, axis=axis, mode=mode, origin=o1), w1.size)
    size = int(rng.integers(1, 6))
    check(*both("uniform_filter1d", x, size, axis=axis, mode=mode, origin=int(rng.integers(-(size // 2),
                                                                                       (size - 1) // 2 + 1))), size)
    check(*both("gaussian_filter", x, float(rng.uniform(0.3, 2.0)), mode=mode), 64)


# --------------------------------------------------------------------------- errors: scipy's exception types

def _same_error(call, match):
    with pytest.raises(Exception) as ref:
        call(sn)
    with pytest.raises(type(ref.value), match=match):
        call(pn)


def test_errors():
    x = np.ones((4, 5))
    _same_error(lambda m: m.correlate(x, np.ones(3)), r"weights\.ndim")
    _same_error(lambda m: m.correlate(x, np.ones((3, 3)), origin=2), "origin")
    _same_error(lambda m: m.correlate(x, np.ones((3, 3)), origin=[0, -2]), "origin")
    _same_error(lambda m: m.convolve(x, np.ones((2, 2)), origin=1), "origin")
    _same_error(lambda m: m.correlate(x, np.ones((3, 3)), mode="bogus"), "mode='bogus'")
    _same_error(lambda m: m.correlate(x, np.ones((3, 3)), mode=["wrap", "reflect"]), "mode")
    _same_error(lambda m: m.correlate(x, np.ones((3, 3)), cval=1j), "cval")
    _same_error(lambda m: m.correlate(x, np.ones((3, 3)), output=np.ones((2, 2))), "output")
    _same_error(lambda m: m.correlate(x, np.ones((3, 3)), output="U4"), "output")
    _same_error(lambda m: m.correlate(x.astype(np.float16), np.ones((3, 3))), "input")
    _same_error(lambda m: m.correlate(x, np.ones((3, 3)), output=np.float16), "output")
    _same_error(lambda m: m.correlate(x, np.ones(3), axes=(0, 0)), "axes")
    _same_error(lambda m: m.correlate(x, np.ones(3), axes=(5,)), "axes")
    _same_error(lambda m: m.correlate1d(x, []), "weights")
    _same_error(lambda m: m.correlate1d(x, np.ones((2, 2))), "weights")
    _same_error(lambda m: m.correlate1d(x, [1, 2], origin=1), "origin")
    _same_error(lambda m: m.correlate1d(x, [1, 2], axis=2), "axis")
    _same_error(lambda m: m.correlate1d(x, [1, 2], mode="grid"), "mode")
    _same_error(lambda m: m.uniform_filter1d(x, 0), "size")
    _same_error(lambda m: m.uniform_filter1d(x, 3, origin=2), "origin")
    _same_error(lambda m: m.uniform_filter(x, [3, 3, 3]), "size")
    _same_error(lambda m: m.gaussian_filter1d(x, 1.0, radius=-1), "radius")
    _same_error(lambda m: m.gaussian_filter1d(x, 1.0, radius=1.5), "radius")
    _same_error(lambda m: m.gaussian_filter1d(x, 1.0, order=-1), "order")
    _same_error(lambda m: m.gaussian_filter(x, [1.0, 2.0, 3.0]), "sigma")
    _same_error(lambda m: m.sobel(x, mode=["wrap"]), "mode")
    _same_error(lambda m: m.sobel(x, axis=3), "axis")
    ro = np.zeros((4, 5))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        pn.correlate(x, np.ones((3, 3)), output=ro)


# --------------------------------------------------------------------------- halo depths (for chunked evaluation)

@pytest.mark.parametrize("name,args,kwargs", [
    ("convolve", (np.ones((4, 3)),), {"origin": [1, -1]}), ("correlate", (np.ones((2, 5)),), {"origin": [-1, 2]}),
    ("correlate1d", ([1.0, 2.0, 3.0, 4.0],), {"axis": 0, "origin": -2}),
    ("convolve1d", ([1.0, 2.0, 3.0, 4.0],), {"axis": 1, "origin": 1}),
    ("gaussian_filter", (1.2,), {}), ("gaussian_filter1d", (0.8,), {"axis": 0}),
    ("uniform_filter", ([4, 3],), {"origin": [1, -1]}), ("uniform_filter1d", (5,), {"axis": 1, "origin": 2}),
    ("sobel", (), {}), ("prewitt", (), {"axis": 0}), ("laplace", (), {}), ("gaussian_laplace", (1.0,), {}),
    ("gaussian_gradient_magnitude", (0.7,), {"truncate": 3.0}),
    # axes=: gaussian_laplace smooths the filtered axes only, gaussian_gradient_magnitude every axis
    ("gaussian_laplace", (0.9,), {"axes": (0,)}), ("gaussian_gradient_magnitude", (0.7,), {"axes": (1,)})])
def test_halo_is_the_exact_reach(name, args, kwargs):
    """Output (7, 9) reads exactly input[7 - before : 7 + after + 1, ...] (impulse responses)."""
    halo = pn._halo(name, 2, *args, **kwargs)
    shape = (15, 19)
    reach = np.zeros(shape, bool)
    for i in np.ndindex(shape):
        x = np.zeros(shape)
        x[i] = 1.0
        reach[i] = getattr(pn, name)(x, *args, mode="constant", **kwargs)[7, 9] != 0
    rows, cols = np.nonzero(reach)
    got = ((7 - rows.min(), rows.max() - 7), (9 - cols.min(), cols.max() - 9))
    assert all(g[0] <= h[0] and g[1] <= h[1] for g, h in zip(got, halo)), (got, halo)
    assert halo == got or name in ("gaussian_gradient_magnitude", "gaussian_laplace", "laplace", "sobel",
                                   "prewitt"), (got, halo)


# --------------------------------------------------------------------------- backward passes

def _numeric(f, x, g, eps=1e-6):
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp = x.copy()
        xp[i] += eps
        xm = x.copy()
        xm[i] -= eps
        out[i] = np.sum(g * (f(xp) - f(xm))) / (2 * eps)
    return out


@pytest.mark.parametrize("mode", MODES)
def test_backward_weights_filters_fd(mode):
    rng = np.random.default_rng(20)
    for shape, wshape in [((6,), (3,)), ((4, 5), (2, 3)), ((3, 4, 2), (2, 5, 3)), ((2, 3), (5, 4))]:
        x = rng.standard_normal(shape)
        w = rng.standard_normal(wshape)
        g = rng.standard_normal(shape)
        origin = [int(rng.integers(-(k // 2), (k - 1) // 2 + 1)) for k in wshape]
        for name in ("correlate", "convolve"):
            f = getattr(pn, name)
            gx, gw = getattr(gnd, name + "_backward")(g, x, w, mode=mode, cval=0.7, origin=origin)
            np.testing.assert_allclose(gx, _numeric(lambda v: f(v, w, mode=mode, cval=0.7, origin=origin), x, g),
                                       rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(gw, _numeric(lambda v: f(x, v, mode=mode, cval=0.7, origin=origin), w, g),
                                       rtol=1e-6, atol=1e-7)
        w1 = rng.standard_normal(4)
        for name in ("correlate1d", "convolve1d"):
            f = getattr(pn, name)
            gx, gw = getattr(gnd, name + "_backward")(g, x, w1, axis=0, mode=mode, origin=-1)
            np.testing.assert_allclose(gx, _numeric(lambda v: f(v, w1, axis=0, mode=mode, origin=-1), x, g),
                                       rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(gw, _numeric(lambda v: f(x, v, axis=0, mode=mode, origin=-1), w1, g),
                                       rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["reflect", "constant", "nearest", "mirror", "wrap"])
def test_backward_separable_fd(mode):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((5, 6))
    g = rng.standard_normal((5, 6))
    cases = [("gaussian_filter", (0.8,), {"order": [1, 0]}), ("gaussian_filter1d", (1.1,), {"axis": 0, "order": 2}),
             ("uniform_filter", ([3, 2],), {"origin": [1, -1]}), ("uniform_filter1d", (4,), {"origin": -2}),
             ("sobel", (), {"axis": 0}), ("prewitt", (), {}), ("laplace", (), {}),
             ("gaussian_laplace", (0.9,), {"truncate": 2.0}), ("laplace", (), {"axes": (1,)})]
    for name, args, kw in cases:
        f = getattr(pn, name)
        (gx,) = getattr(gnd, name + "_backward")(g, x, *args, mode=mode, cval=0.3, **kw)
        np.testing.assert_allclose(gx, _numeric(lambda v: f(v, *args, mode=mode, cval=0.3, **kw), x, g),
                                   rtol=1e-6, atol=1e-7, err_msg=name)


def test_backward_dtypes_and_errors():
    x32 = np.ones((4, 4), np.float32)
    gx, gw = gnd.correlate_backward(np.ones((4, 4), np.float32), x32, np.ones((3, 3)))
    assert gx.dtype == np.float32 and gw.dtype == np.float32
    (gi,) = gnd.gaussian_filter_backward(np.ones((4, 4)), np.ones((4, 4), np.uint8), 1.0)
    assert gi.dtype == np.float64
    with pytest.raises(ValueError, match="grad_output"):
        gnd.sobel_backward(np.ones((3, 3)), np.ones((4, 4)))
    with pytest.raises(TypeError, match="input"):
        gnd.sobel_backward(np.ones(3), np.ones(3) + 0j)
    with pytest.raises(ValueError, match="origin"):
        gnd.correlate_backward(np.ones((4, 4)), x32, np.ones((3, 3)), origin=2)


@pytest.mark.parametrize("mode,torch_mode", [("mirror", "reflect"), ("nearest", "replicate"), ("wrap", "circular"),
                                             ("constant", "zeros")])
def test_backward_against_torch(mode, torch_mode):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(22)
    x = rng.standard_normal((9, 11))
    w = rng.standard_normal((3, 5))
    g = rng.standard_normal((9, 11))
    xt = torch.tensor(x[None, None], requires_grad=True)
    wt = torch.tensor(w[None, None], requires_grad=True)
    pad = (2, 2, 1, 1)
    xp = F.pad(xt, pad, mode="constant" if torch_mode == "zeros" else torch_mode)
    y = F.conv2d(xp, wt)
    np.testing.assert_allclose(pn.correlate(x, w, mode=mode), y.detach().numpy()[0, 0], rtol=1e-12, atol=1e-12)
    y.backward(torch.tensor(g[None, None]))
    gx, gw = gnd.correlate_backward(g, x, w, mode=mode)
    np.testing.assert_allclose(gx, xt.grad.numpy()[0, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, wt.grad.numpy()[0, 0], rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- SIMD variants

_VARIANT_CASES = """
import sys, numpy as np
from pyconv import ndimage as pn, _kernels
assert _kernels.VARIANT == sys.argv[2]
rng = np.random.default_rng(0)
x = rng.standard_normal((23, 19, 7)) * 1e3
x[3, 4, 5] = np.nan
w = rng.standard_normal((3, 4, 2))
out = {"corr": pn.correlate(x, w, mode="mirror"), "gauss": pn.gaussian_filter(x, 1.5),
       "unif": pn.uniform_filter(x, 4), "sobel": pn.sobel(x.astype(np.float32))}
for t in ("uint8", "int16", "uint32", "int64", "uint64"):
    out["cast_" + t] = pn.correlate1d(x * 1e7, [1.0, -2.0, 0.5], output=t)
np.savez(sys.argv[1], **out)
"""


def test_every_simd_variant_gives_the_same_bits(tmp_path):
    """-ffp-contract=off and the emulated casts: AVX2/AVX-512 builds give scipy's bits too."""
    import os
    import subprocess
    import sys

    from pyconv import _kernels
    results = {}
    for variant in _kernels.SUPPORTED:
        path = tmp_path / f"{variant}.npz"
        run = subprocess.run([sys.executable, "-c", _VARIANT_CASES, str(path), variant],
                             env=dict(os.environ, PYCONV_ISA=variant), capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        with np.load(path) as d:
            results[variant] = {k: d[k] for k in d.files}
    first = results[_kernels.SUPPORTED[0]]
    for variant, res in results.items():
        for key, arr in res.items():
            np.testing.assert_array_equal(arr.view(np.uint8), first[key].view(np.uint8), err_msg=f"{variant} {key}")
    with np.errstate(all="ignore"):
        x = np.random.default_rng(0).standard_normal((23, 19, 7)) * 1e3
        x[3, 4, 5] = np.nan
        np.testing.assert_array_equal(first["cast_uint64"], sn.correlate1d(x * 1e7, [1.0, -2.0, 0.5], output="uint64"))


def test_explain_and_verbose():
    x = np.ones((32, 40))
    p = pyconv.explain(pn.correlate, x, np.ones((3, 3)), mode="wrap")
    assert p.algorithm == "direct" and p.threads >= 1 and p.workspace_bytes > 0
    assert str(p).startswith("ndimage direct (32, 40) * (3, 3) wrap float64")
    chain = pyconv.explain(pn.gaussian_filter, x.astype(np.float32), 2.0)
    assert len(chain) == 2 and all(s.op == "ndimage1d" and s.dtype == np.float32 for s in chain)
    import os
    import subprocess
    import sys
    run = subprocess.run([sys.executable, "-c", "import numpy as np; from pyconv import ndimage; "
                          "ndimage.sobel(np.ones((9, 9)))"], env=dict(os.environ, PYCONV_VERBOSE="1"),
                         capture_output=True, text=True, timeout=120)
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("pyconv_verbose,ndimage.sobel,ndimage1d,direct")]
    assert len(lines) == 2, run.stderr


def test_setups_cached_per_call_signature_follow_every_argument():
    # the kernels' setups (index maps, tap lists, shape arrays) are cached per call signature:
    # repeated calls of one geometry with other weights, cval, data, an in-place output, a
    # partially overlapping one and a byte-swapped one must each still give scipy's values
    rng = np.random.default_rng(31)
    x = rng.standard_normal((9, 11))
    for trial in range(3):
        w = rng.standard_normal((3, 4))
        w[1, 2] = 0.0 if trial == 1 else w[1, 2]          # another nonzero pattern
        for cval in (0.0, 2.5):
            want = sn.correlate(x, w, mode="constant", cval=cval)
            np.testing.assert_allclose(pn.correlate(x, w, mode="constant", cval=cval), want,
                                       rtol=1e-12, atol=1e-12)
        w1 = rng.standard_normal(5)
        np.testing.assert_allclose(pn.correlate1d(x, w1, axis=0), sn.correlate1d(x, w1, axis=0),
                                   rtol=1e-12, atol=1e-12)
        x = rng.standard_normal((9, 11))          # new data, same geometry
    # in place, then a shifted (partially overlapping) output, then a byte-swapped output
    w1 = np.array([1.0, -2.0, 0.5])
    for _ in range(2):
        a, b = x.copy(), x.copy()
        pn.correlate1d(a, w1, axis=1, output=a)
        sn.correlate1d(b, w1, axis=1, output=b)
        np.testing.assert_array_equal(a, b)
        buf = np.concatenate([x.ravel(), np.zeros(11)])
        src, dst = buf[:99].reshape(9, 11), buf[11:110].reshape(9, 11)
        want = sn.correlate1d(src.copy(), w1, axis=0)
        pn.correlate1d(src, w1, axis=0, output=dst)
        np.testing.assert_allclose(dst, want, rtol=1e-12, atol=1e-12)
        swapped = np.empty((9, 11), dtype=">f8")
        pn.correlate(x, np.ones((3, 3)), output=swapped)
        np.testing.assert_allclose(swapped, sn.correlate(x, np.ones((3, 3))), rtol=1e-12, atol=1e-12)


def test_kept_gaussian_weights_follow_sigmas_type_and_stay_read_only():
    # the weights are kept per (sigma and its type, order, radius): a float32 sigma after an
    # equal Python float gets its own (float32 arithmetic, as scipy's), a 0-d array sigma
    # (unhashable) is computed each time, and no caller can write into the kept arrays
    fresh = pn._gaussian_kernel1d_kept.__wrapped__
    for sigma in (1.5, np.float32(1.5), np.float64(1.5), 3, np.array(1.5)):
        for order in (0, 2):
            got = pn._gaussian_kernel1d(sigma, order, 6)
            np.testing.assert_array_equal(got, fresh(sigma, order, 6))
            assert not got.flags.writeable
    x = np.random.default_rng(8).standard_normal((9, 11))
    for sigma in (1.5, np.float32(1.5)):
        np.testing.assert_allclose(pn.gaussian_filter1d(x, sigma, order=1), sn.gaussian_filter1d(x, sigma, order=1),
                                   rtol=1e-13, atol=1e-13)
