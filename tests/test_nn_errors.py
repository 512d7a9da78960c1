"""Every error path of pyconv.nn: ValueError/TypeError naming the offending argument."""
import numpy as np
import pytest

from pyconv import nn

X2 = np.ones((2, 4, 8, 8))
W2 = np.ones((6, 4, 3, 3))
XT = np.ones((2, 4, 5, 5))
WT = np.ones((4, 3, 3, 3))


# ----------------------------------------------------------------- conv1d/2d/3d/conv

@pytest.mark.parametrize("call,exc,match", [
    # groups
    (lambda: nn.conv2d(X2, np.ones((6, 1, 3, 3)), groups=3), ValueError, "groups"),       # 3 does not divide 4
    (lambda: nn.conv2d(X2, np.ones((3, 2, 3, 3)), groups=2), ValueError, "groups"),       # nor out_channels 3
    (lambda: nn.conv2d(X2, W2, groups=0), ValueError, "groups"),
    (lambda: nn.conv2d(X2, W2, groups=-1), ValueError, "groups"),
    (lambda: nn.conv2d(X2, W2, groups=1.5), TypeError, "groups"),
    # weight rank / channels
    (lambda: nn.conv2d(X2, np.ones((6, 4, 3))), ValueError, "weight"),
    (lambda: nn.conv2d(X2, np.ones((6, 4, 3, 3, 3))), ValueError, "weight"),
    (lambda: nn.conv2d(X2, np.ones((6, 3, 3, 3))), ValueError, "weight|channel"),
    (lambda: nn.conv2d(X2, np.ones((6, 4, 3, 3)), groups=2), ValueError, "weight|channel|groups"),
    (lambda: nn.conv1d(np.ones((1, 2, 5)), np.ones((3, 2, 3, 3))), ValueError, "weight"),
    (lambda: nn.conv3d(np.ones((1, 2, 5, 5, 5)), np.ones((3, 2, 3, 3))), ValueError, "weight"),
    (lambda: nn.conv(np.ones((1, 2, 5)), np.ones((3, 2))), ValueError, "weight"),
    (lambda: nn.conv(np.ones((1, 2, 5, 5, 5, 5)), np.ones((3, 2, 3, 3, 3, 3))), ValueError, "weight"),
    # input rank
    (lambda: nn.conv2d(np.ones((8, 8)), W2), ValueError, "input"),
    (lambda: nn.conv2d(np.ones((1, 2, 4, 8, 8)), W2), ValueError, "input"),
    (lambda: nn.conv1d(np.ones(5), np.ones((1, 1, 3))), ValueError, "input"),
    (lambda: nn.conv3d(np.ones((2, 5, 5)), np.ones((1, 2, 3, 3, 3))), ValueError, "input"),
    (lambda: nn.conv2d(np.float64(1.0), W2), ValueError, "input"),
    # kernel larger than the padded input
    (lambda: nn.conv2d(np.ones((1, 4, 2, 8)), W2), ValueError, "kernel|input|weight"),
    (lambda: nn.conv2d(np.ones((1, 4, 4, 8)), W2, dilation=2), ValueError, "kernel|input|weight|dilation"),
    (lambda: nn.conv1d(np.ones((1, 1, 3)), np.ones((1, 1, 6)), padding=1), ValueError, "kernel|input|weight"),
    # stride / dilation / padding values
    (lambda: nn.conv2d(X2, W2, stride=0), ValueError, "stride"),
    (lambda: nn.conv2d(X2, W2, stride=(1, -1)), ValueError, "stride"),
    (lambda: nn.conv2d(X2, W2, stride=(1, 1, 1)), ValueError, "stride"),
    (lambda: nn.conv2d(X2, W2, stride=1.0), TypeError, "stride"),
    (lambda: nn.conv2d(X2, W2, stride=True), TypeError, "stride"),
    (lambda: nn.conv2d(X2, W2, dilation="2"), TypeError, "dilation"),
    (lambda: nn.conv2d(X2, W2, groups=np.float64(2)), TypeError, "groups"),
    (lambda: nn.conv2d(X2, W2, dilation=0), ValueError, "dilation"),
    (lambda: nn.conv2d(X2, W2, dilation=(2, 0)), ValueError, "dilation"),
    # beyond int64: a ValueError naming the argument, not an OverflowError from deep inside
    (lambda: nn.conv2d(X2, W2, stride=2**70), (ValueError, TypeError), "stride"),
    (lambda: nn.conv2d(X2, W2, dilation=2**70), (ValueError, TypeError), "dilation|kernel|input"),
    (lambda: nn.conv2d(X2, W2, padding=2**70), (ValueError, TypeError), "padding"),
    (lambda: nn.conv_transpose2d(XT, WT, stride=2**70), (ValueError, TypeError), "stride"),
    (lambda: nn.conv2d(X2, W2, padding=-1), ValueError, "padding"),
    (lambda: nn.conv2d(X2, W2, padding=(1, -2)), ValueError, "padding"),
    (lambda: nn.conv2d(X2, W2, padding=((1, 1), (0, -1))), ValueError, "padding"),
    (lambda: nn.conv2d(X2, W2, padding=((1, 1, 1), (0, 1))), ValueError, "padding"),
    (lambda: nn.conv2d(X2, W2, padding=(1, 1, 1)), ValueError, "padding"),
    (lambda: nn.conv2d(X2, W2, padding="full"), ValueError, "padding"),
    (lambda: nn.conv2d(X2, W2, padding=1.5), TypeError, "padding"),
    (lambda: nn.conv2d(X2, W2, padding=None), TypeError, "padding"),
    # padding_mode
    (lambda: nn.conv2d(X2, W2, padding=1, padding_mode="symmetric"), ValueError, "padding_mode"),
    (lambda: nn.conv2d(X2, W2, padding=1, padding_mode="zero"), ValueError, "padding_mode"),
    (lambda: nn.conv2d(X2, W2, padding=1, padding_mode=None), ValueError, "padding_mode"),
    # reflect needs the pad smaller than the input dim (as torch)
    (lambda: nn.conv1d(np.ones((1, 1, 3)), np.ones((1, 1, 3)), padding=3, padding_mode="reflect"),
     ValueError, "padding"),
    (lambda: nn.conv2d(X2, W2, padding=2**40, dilation=2**40, padding_mode="reflect"), ValueError, "padding"),
    (lambda: nn.conv2d(X2, W2, padding=2**40, dilation=2**40, padding_mode="circular"), ValueError, "padding"),
    # bias
    (lambda: nn.conv2d(X2, W2, np.ones(5)), ValueError, "bias"),
    (lambda: nn.conv2d(X2, W2, np.ones((6, 1))), ValueError, "bias"),
    (lambda: nn.conv2d(X2, W2, np.float64(1.0)), ValueError, "bias"),
    # dtype
    (lambda: nn.conv2d(X2.astype(np.complex128), W2), TypeError, "complex"),
    (lambda: nn.conv2d(X2, W2.astype(np.complex64)), TypeError, "complex"),
    (lambda: nn.conv2d(X2, W2, np.ones(6, np.complex64)), TypeError, "complex"),
    (lambda: nn.conv2d(np.full((2, 4, 8, 8), "a"), W2), TypeError, "input|dtype"),
    (lambda: nn.conv2d(X2, object()), TypeError, "weight"),
], ids=lambda v: None)
def test_conv_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv_errors_every_mode(mode):
    with pytest.raises(ValueError, match="groups"):
        nn.conv2d(X2, np.ones((6, 1, 3, 3)), groups=3, padding_mode=mode)
    with pytest.raises(ValueError, match="padding"):
        nn.conv2d(X2, W2, padding=-1, padding_mode=mode)
    with pytest.raises(ValueError, match="kernel|input|weight"):
        nn.conv2d(np.ones((1, 4, 2, 2)), W2, padding_mode=mode)


def test_inputs_unchanged_after_error():
    x = X2.copy()
    w = W2.copy()
    with pytest.raises(ValueError):
        nn.conv2d(x, w, stride=0)
    np.testing.assert_array_equal(x, X2)
    np.testing.assert_array_equal(w, W2)


# ----------------------------------------------------------------- transposed


@pytest.mark.parametrize("call,exc,match", [
    (lambda: nn.conv_transpose2d(XT, WT, stride=2, output_padding=2), ValueError, "output_padding"),
    (lambda: nn.conv_transpose2d(XT, WT, output_padding=1), ValueError, "output_padding"),
    (lambda: nn.conv_transpose2d(XT, WT, stride=(2, 1), output_padding=(1, 1)), ValueError, "output_padding"),
    (lambda: nn.conv_transpose2d(XT, WT, stride=2, dilation=3, output_padding=3), ValueError, "output_padding"),
    (lambda: nn.conv_transpose2d(XT, WT, output_padding=-1), ValueError, "output_padding"),
    (lambda: nn.conv_transpose2d(XT, WT, stride=0), ValueError, "stride"),
    (lambda: nn.conv_transpose2d(XT, WT, dilation=0), ValueError, "dilation"),
    (lambda: nn.conv_transpose2d(XT, WT, padding=-1), ValueError, "padding"),
    (lambda: nn.conv_transpose2d(XT, WT, padding="same"), (ValueError, TypeError), "padding"),
    (lambda: nn.conv_transpose2d(XT, WT, padding="valid"), (ValueError, TypeError), "padding"),
    (lambda: nn.conv_transpose2d(XT, WT, padding=((1, 1), (1, 1))), (ValueError, TypeError), "padding"),
    (lambda: nn.conv_transpose2d(XT, WT, padding=4), ValueError, "padding|output|size"),   # output size < 0
    (lambda: nn.conv_transpose2d(XT, WT, groups=3), ValueError, "groups"),
    (lambda: nn.conv_transpose2d(XT, WT, groups=0), ValueError, "groups"),
    (lambda: nn.conv_transpose2d(XT, np.ones((3, 3, 3, 3))), ValueError, "weight|channel"),
    (lambda: nn.conv_transpose2d(XT, np.ones((4, 3, 3))), ValueError, "weight"),
    (lambda: nn.conv_transpose1d(np.ones((2, 4, 5)), WT), ValueError, "weight"),
    (lambda: nn.conv_transpose3d(np.ones((2, 4, 5, 5, 5)), WT), ValueError, "weight"),
    (lambda: nn.conv_transpose2d(np.ones((5, 5)), WT), ValueError, "input"),
    (lambda: nn.conv_transpose2d(XT, WT, np.ones(4)), ValueError, "bias"),
    (lambda: nn.conv_transpose2d(XT, WT, np.ones(3), groups=2), ValueError, "bias"),   # C_out is 3*2
    (lambda: nn.conv_transpose2d(XT.astype(np.complex64), WT), TypeError, "complex"),
    (lambda: nn.conv_transpose2d(XT, WT, stride=2.0), TypeError, "stride"),
], ids=lambda v: None)
def test_transpose_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ----------------------------------------------------------------- composite layers

@pytest.mark.parametrize("call,exc,match", [
    # depthwise: weight (C*m, 1, kh, kw)
    (lambda: nn.depthwise_conv2d(X2, np.ones((8, 2, 3, 3))), ValueError, "weight"),
    (lambda: nn.depthwise_conv2d(X2, np.ones((6, 1, 3, 3))), ValueError, "weight|channel|groups"),
    (lambda: nn.depthwise_conv2d(X2, np.ones((8, 1, 3))), ValueError, "weight"),
    (lambda: nn.depthwise_conv2d(X2, np.ones((8, 1, 3, 3)), np.ones(4)), ValueError, "bias"),
    (lambda: nn.depthwise_conv2d(X2, np.ones((4, 1, 3, 3)), stride=0), ValueError, "stride"),
    (lambda: nn.depthwise_conv2d(np.ones((4, 8)), np.ones((4, 1, 3, 3))), ValueError, "input"),
    (lambda: nn.depthwise_conv2d(X2, np.ones((4, 1, 9, 9))), ValueError, "kernel|input|weight"),
    (lambda: nn.depthwise_conv2d(X2.astype(np.complex128), np.ones((4, 1, 3, 3))), TypeError, "complex"),
    # pointwise: weight (C_out, C_in/groups) or (C_out, C_in/groups, 1, 1)
    (lambda: nn.pointwise_conv2d(X2, np.ones((6, 4, 3, 3))), ValueError, "weight"),
    (lambda: nn.pointwise_conv2d(X2, np.ones((6, 3))), ValueError, "weight|channel"),
    (lambda: nn.pointwise_conv2d(X2, np.ones(6)), ValueError, "weight"),
    (lambda: nn.pointwise_conv2d(X2, np.ones((6, 4, 1))), ValueError, "weight"),
    (lambda: nn.pointwise_conv2d(X2, np.ones((6, 1)), groups=3), ValueError, "groups"),
    (lambda: nn.pointwise_conv2d(X2, np.ones((6, 4)), np.ones(4)), ValueError, "bias"),
    (lambda: nn.pointwise_conv2d(np.ones((4, 8)), np.ones((6, 4))), ValueError, "input"),
    # separable
    (lambda: nn.separable_conv2d(X2, np.ones((4, 1, 3, 3)), np.ones((6, 8))), ValueError,
     "pointwise_weight|weight|channel"),
    (lambda: nn.separable_conv2d(X2, np.ones((4, 2, 3, 3)), np.ones((6, 4))), ValueError,
     "depthwise_weight|weight"),
    (lambda: nn.separable_conv2d(X2, np.ones((4, 1, 3, 3)), np.ones((6, 4)), np.ones(4)), ValueError, "bias"),
    (lambda: nn.separable_conv2d(X2, np.ones((4, 1, 3, 3)), np.ones((6, 4)), dilation=0), ValueError, "dilation"),
    # flattened: lateral (C_out, C_in), vertical (C_out, kh), horizontal (C_out, kw)
    (lambda: nn.flattened_conv2d(X2, np.ones((6, 3)), np.ones((6, 3)), np.ones((6, 3))), ValueError,
     "lateral|channel"),
    (lambda: nn.flattened_conv2d(X2, np.ones((6, 4, 1)), np.ones((6, 3)), np.ones((6, 3))), ValueError, "lateral"),
    (lambda: nn.flattened_conv2d(X2, np.ones((6, 4)), np.ones((5, 3)), np.ones((6, 3))), ValueError, "vertical"),
    (lambda: nn.flattened_conv2d(X2, np.ones((6, 4)), np.ones((6, 3)), np.ones((6, 3, 1))), ValueError,
     "horizontal"),
    (lambda: nn.flattened_conv2d(X2, np.ones((6, 4)), np.ones((6, 3)), np.ones((7, 3))), ValueError,
     "horizontal"),
    (lambda: nn.flattened_conv2d(X2, np.ones((6, 4)), np.ones((6, 3)), np.ones((6, 3)), np.ones(3)),
     ValueError, "bias"),
    (lambda: nn.flattened_conv2d(X2, np.ones((6, 4)), np.ones((6, 3)), np.ones((6, 3)), padding=-1),
     ValueError, "padding"),
    (lambda: nn.flattened_conv2d(X2, np.ones((6, 4)), np.ones((6, 12)), np.ones((6, 3))), ValueError,
     "kernel|input|vertical"),
    # channel_shuffle: (N, C, *) with groups dividing C
    (lambda: nn.channel_shuffle(np.ones((2, 6, 4)), 4), ValueError, "groups"),
    (lambda: nn.channel_shuffle(np.ones((2, 6, 4)), 0), ValueError, "groups"),
    (lambda: nn.channel_shuffle(np.ones((2, 6, 4)), 2.0), TypeError, "groups"),
    (lambda: nn.channel_shuffle(np.ones((2, 6)), 2), ValueError, "input"),
    (lambda: nn.channel_shuffle(np.ones(6), 2), ValueError, "input"),
    # resize_conv2d
    (lambda: nn.resize_conv2d(X2, W2, mode="bicubic"), ValueError, "mode"),
    (lambda: nn.resize_conv2d(X2, W2, scale_factor=0), ValueError, "scale_factor"),
    (lambda: nn.resize_conv2d(X2, W2, scale_factor=-2), ValueError, "scale_factor"),
    (lambda: nn.resize_conv2d(X2, np.ones((6, 3, 3, 3))), ValueError, "weight|channel"),
    (lambda: nn.resize_conv2d(X2, W2, np.ones(2)), ValueError, "bias"),
    (lambda: nn.resize_conv2d(X2, W2, padding=-1), ValueError, "padding"),
    (lambda: nn.resize_conv2d(np.ones((8, 8)), W2), ValueError, "input"),
    (lambda: nn.resize_conv2d(X2.astype(np.complex64), W2), TypeError, "complex"),
    # unfold / fold
    (lambda: nn.unfold(X2, 0), ValueError, "kernel_size"),
    (lambda: nn.unfold(X2, (2, 2, 2)), ValueError, "kernel_size"),
    (lambda: nn.unfold(X2, 2, stride=0), ValueError, "stride"),
    (lambda: nn.unfold(X2, 2, dilation=0), ValueError, "dilation"),
    (lambda: nn.unfold(X2, 2, padding=-1), ValueError, "padding"),
    (lambda: nn.unfold(X2, 9), ValueError, "kernel_size|input"),
    (lambda: nn.unfold(np.ones((2, 4, 8, 8, 8)), 2), ValueError, "input"),
    (lambda: nn.unfold(np.ones((8, 8)), 2), ValueError, "input"),
    (lambda: nn.fold(np.ones((2, 10, 49)), (8, 8), 2), ValueError, "kernel_size|input"),        # 10 % 4
    (lambda: nn.fold(np.ones((2, 16, 50)), (8, 8), 2), ValueError, "input|output_size|blocks"),  # L != 49
    (lambda: nn.fold(np.ones((2, 16, 49)), (8, 8, 8), 2), ValueError, "output_size"),
    (lambda: nn.fold(np.ones((2, 16, 49)), 8, 0), ValueError, "kernel_size"),
    (lambda: nn.fold(np.ones((2, 16, 49)), 8, 2, stride=0), ValueError, "stride"),
    (lambda: nn.fold(np.ones((2, 16, 49)), 8, 2, padding=-1), ValueError, "padding"),
    (lambda: nn.fold(np.ones((2, 2, 16, 49)), 8, 2), ValueError, "input"),
    (lambda: nn.fold(np.ones((2, 16, 49), np.complex128), 8, 2), TypeError, "complex"),
], ids=lambda v: None)
def test_layer_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
