"""The public contract of pyconv.nn (API.md): names, argument names and defaults."""
import inspect

import numpy as np
import pytest

from pyconv import nn

_CONV = "input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode='zeros'"
_TCONV = "input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1"
SIGNATURES = {
    "conv": _CONV, "conv1d": _CONV, "conv2d": _CONV, "conv3d": _CONV,
    "conv_transpose1d": _TCONV, "conv_transpose2d": _TCONV, "conv_transpose3d": _TCONV,
    "depthwise_conv2d": "input, weight, bias=None, stride=1, padding=0, dilation=1",
    "pointwise_conv2d": "input, weight, bias=None, groups=1",
    "separable_conv2d": "input, depthwise_weight, pointwise_weight, bias=None, stride=1, padding=0, dilation=1",
    "flattened_conv2d": "input, lateral, vertical, horizontal, bias=None, padding=0",
    "channel_shuffle": "input, groups",
    "resize_conv2d": "input, weight, bias=None, scale_factor=2, mode='nearest', padding='same'",
    "unfold": "input, kernel_size, dilation=1, padding=0, stride=1",
    "fold": "input, output_size, kernel_size, dilation=1, padding=0, stride=1",
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signature(name):
    f = getattr(nn, name)
    assert str(inspect.signature(f)) == f"({SIGNATURES[name]})"
    assert name in nn.__all__
    doc = inspect.getdoc(f)
    assert doc and "Examples" in doc, f"{name} needs a numpydoc Examples section"


def test_keyword_calls():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 6, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    ref = nn.conv2d(x, w, b, 1, 1, 1, 1, "zeros")
    np.testing.assert_array_equal(
        nn.conv2d(input=x, weight=w, bias=b, stride=1, padding=1, dilation=1, groups=1, padding_mode="zeros"), ref)
    np.testing.assert_array_equal(nn.conv(weight=w, input=x, padding=1, bias=b), ref)
    wt = rng.standard_normal((2, 3, 3, 3))
    np.testing.assert_array_equal(nn.conv_transpose2d(x, wt, None, 2, 1, 1, 1, 1),
                                  nn.conv_transpose2d(input=x, weight=wt, stride=2, padding=1, output_padding=1))
    np.testing.assert_array_equal(nn.unfold(x, 2, 1, 0, 2), nn.unfold(input=x, kernel_size=2, stride=2))
