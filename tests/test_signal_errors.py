"""Every error path of pyconv.signal: scipy.signal's exception type, and a message that
names the offending argument.  Each case first runs scipy (where scipy has the
function) to pin that scipy 1.17 raises the same type, so a change in scipy shows here.
"""
import warnings

import numpy as np
import pytest
import scipy.signal as ss

from pyconv import signal as ps

A = np.ones((5, 5))
B = np.ones((3, 3))

# (function, args, kwargs, exception, match) -- match names the argument
CASES = [
    # mode
    ("convolve", (A, B), dict(mode="bad"), ValueError, "mode"),
    ("convolve", (A, B), dict(mode=None), ValueError, "mode"),
    ("correlate", (A, B), dict(mode="FULL"), ValueError, "mode"),
    ("convolve2d", (A, B), dict(mode="bad"), ValueError, "mode"),
    ("correlate2d", (A, B), dict(mode="bad"), ValueError, "mode"),
    ("fftconvolve", (A, B), dict(mode="bad"), ValueError, "mode"),
    ("oaconvolve", (A, B), dict(mode="bad"), ValueError, "mode"),
    ("choose_conv_method", (A, B), dict(mode="bad"), ValueError, "mode"),
    # method
    ("convolve", (A, B), dict(method="bad"), ValueError, "method"),
    ("correlate", (A, B), dict(method=None), ValueError, "method"),
    ("correlate", (A, B), dict(method="Direct"), ValueError, "method"),
    # boundary
    ("convolve2d", (A, B), dict(boundary="bad"), ValueError, "boundary"),
    ("correlate2d", (A, B), dict(boundary=None), ValueError, "boundary"),
    ("convolve2d", (A, B), dict(boundary="reflect"), ValueError, "boundary"),
    # mismatched ndim
    ("convolve", (A, np.ones(3)), {}, ValueError, "in1.*in2|in2.*in1"),
    ("correlate", (np.ones(3), A), {}, ValueError, "in1.*in2|in2.*in1"),
    ("convolve", (np.ones((2, 2, 2)), np.ones((2, 2))), dict(method="fft"), ValueError, "in1.*in2|in2.*in1"),
    ("fftconvolve", (A, np.ones(3)), {}, ValueError, "in1.*in2|in2.*in1"),
    ("oaconvolve", (A, np.ones(3)), {}, ValueError, "in1.*in2|in2.*in1"),
    # 2-D only
    ("convolve2d", (np.ones(5), np.ones(3)), {}, ValueError, "2-D"),
    ("convolve2d", (A, np.ones(3)), {}, ValueError, "2-D"),
    ("correlate2d", (np.ones((4, 4, 4)), np.ones((2, 2, 2))), {}, ValueError, "2-D"),
    ("convolve2d", (np.array(1.0), np.array(1.0)), {}, ValueError, "2-D"),
    # 'valid' with neither input at least as large as the other
    ("convolve", (np.ones((5, 3)), np.ones((3, 5))), dict(mode="valid"), ValueError, "valid"),
    ("correlate", (np.ones((5, 3, 4)), np.ones((4, 4, 4))), dict(mode="valid", method="fft"), ValueError, "valid"),
    ("correlate", (np.ones((5, 3)), np.ones((3, 5))), dict(mode="valid", method="direct"), ValueError, "valid"),
    ("convolve2d", (np.ones((5, 3)), np.ones((3, 5))), dict(mode="valid"), ValueError, "valid"),
    ("correlate2d", (np.ones((5, 3)), np.ones((3, 5))), dict(mode="valid"), ValueError, "valid"),
    ("fftconvolve", (np.ones((5, 3)), np.ones((3, 5))), dict(mode="valid"), ValueError, "valid"),
    ("oaconvolve", (np.ones((5, 3)), np.ones((3, 5))), dict(mode="valid"), ValueError, "valid"),
    # fillvalue
    ("convolve2d", (A, B), dict(fillvalue=[1, 2]), ValueError, "fillvalue"),
    ("correlate2d", (A, B), dict(fillvalue=np.ones((2, 2))), ValueError, "fillvalue"),
    ("convolve2d", (A, B), dict(fillvalue="x"), ValueError, "fillvalue"),
    ("convolve2d", (A, B), dict(fillvalue=1 + 2j), ValueError, "fillvalue"),
    # a fillvalue the integer output type cannot hold (scipy refuses; no silent wrap)
    ("convolve2d", (A.astype(np.uint8), B.astype(np.uint8)), dict(fillvalue=-1), ValueError, "fillvalue"),
    ("correlate2d", (A.astype(np.int8), B.astype(np.int8)), dict(fillvalue=300), ValueError, "fillvalue"),
    ("convolve2d", (A.astype(np.int16), B.astype(np.int16)), dict(fillvalue=1e20), ValueError, "fillvalue"),
    ("correlate2d", (A.astype(np.int32), B.astype(np.int32)), dict(fillvalue=np.nan), ValueError, "fillvalue"),
    # bool is not a convolve2d type (scipy); convolve/correlate take it
    ("convolve2d", (A.astype(bool), B.astype(bool)), {}, ValueError, "in1|in2|bool|dtype"),
    # fftconvolve / oaconvolve axes
    ("fftconvolve", (A, B), dict(axes=2), ValueError, "axes|axis"),
    ("fftconvolve", (A, B), dict(axes=-3), ValueError, "axes|axis"),
    ("fftconvolve", (A, B), dict(axes=[0, 0]), ValueError, "axes"),
    ("fftconvolve", (A, B), dict(axes=[1, -1]), ValueError, "axes"),
    ("fftconvolve", (A, B), dict(axes=[]), ValueError, "axes"),
    ("fftconvolve", (A, B), dict(axes=1.5), ValueError, "axes"),
    ("fftconvolve", (A, B), dict(axes=[[0, 1]]), ValueError, "axes"),
    ("fftconvolve", (np.ones((5, 4)), np.ones((3, 2))), dict(axes=0), ValueError, "in1.*in2|shape"),
    ("oaconvolve", (A, B), dict(axes=5), ValueError, "axes|axis"),
    ("oaconvolve", (A, B), dict(axes=(0, 0)), ValueError, "axes"),
    ("oaconvolve", (A, B), dict(axes=()), ValueError, "axes"),
    ("oaconvolve", (np.ones((5, 4)), np.ones((3, 2))), dict(axes=[0]), ValueError, "in1.*in2|shape"),
    ("oaconvolve", (np.ones((5, 4)), np.ones((4, 2))), dict(axes=0, mode="valid"), ValueError, "in1.*in2|shape"),
    # non-numeric inputs
    ("convolve", (np.array([object(), 1]), np.ones(2)), {}, TypeError, "in1|dtype|object"),
    ("correlate", (np.ones(2), np.array([object(), 1])), {}, TypeError, "in2|dtype|object"),
    ("convolve", (np.ones(4, "M8[s]"), np.ones(2)), {}, TypeError, "in1|dtype"),
]


def _id(case):
    f, args, kw, exc, _ = case
    return f + "-" + "-".join(f"{k}={v!r}"[:20] for k, v in kw.items()) + "-" + \
        "x".join(str(np.shape(a)) for a in args)


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_error_matches_scipy(case):
    func, args, kw, exc, match = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc):
            getattr(ss, func)(*args, **kw)
    with pytest.raises(exc, match=match):
        getattr(ps, func)(*args, **kw)


def test_errors_leave_inputs_unchanged():
    a, b = np.arange(6.0).reshape(2, 3), np.ones((4, 1))
    a0, b0 = a.copy(), b.copy()
    with pytest.raises(ValueError):
        ps.convolve(a, b, mode="valid")
    with pytest.raises(ValueError):
        ps.convolve2d(a, b, boundary="bad")
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


# --------------------------------------------------------------------------- pyconv-only functions

@pytest.mark.parametrize("args, kw, match", [
    ((A, B, np.ones(3)), {}, "col"),
    ((A, np.ones(3), B), {}, "row"),
    ((A, np.ones(0), np.ones(3)), {}, "col"),
    ((A, np.ones(3), np.array(2.0)), {}, "row"),
    ((np.ones(5), np.ones(3), np.ones(3)), {}, "in1"),
    ((np.ones((3, 3, 3)), np.ones(3), np.ones(3)), {}, "in1"),
    ((A, np.ones(3), np.ones(3)), dict(mode="bad"), "mode"),
    ((np.ones((5, 3)), np.ones(3), np.ones(5)), dict(mode="valid"), "valid"),
])
def test_sepconvolve2d_errors(args, kw, match):
    with pytest.raises(ValueError, match=match):
        ps.sepconvolve2d(*args, **kw)


def test_sepconvolve2d_non_numeric():
    with pytest.raises(TypeError, match="in1|col|row|dtype"):
        ps.sepconvolve2d(A, np.array([object()] * 3), np.ones(3))


@pytest.mark.parametrize("kernel, kw, exc, match", [
    (np.ones(3), {}, ValueError, "kernel"),
    (np.ones((3, 3, 3)), {}, ValueError, "kernel"),
    (np.ones((0, 3)), {}, ValueError, "kernel"),
    (np.array(1.0), {}, ValueError, "kernel"),
    (np.random.default_rng(0).standard_normal((3, 3)), {}, ValueError, "separable"),
    (np.array([[1.0, 2.0], [3.0, 4.0]]), {}, ValueError, "separable"),
    (np.eye(4), {}, ValueError, "separable"),
    (np.array([[1.0, np.nan], [1.0, 1.0]]), {}, ValueError, "kernel"),
    (np.ones((3, 3)), dict(rtol=-1.0), ValueError, "rtol"),
    (np.ones((3, 3)), dict(rtol="x"), TypeError, "rtol"),
])
def test_separate_errors(kernel, kw, exc, match):
    with pytest.raises(exc, match=match):
        ps.separate(kernel, **kw)
