"""Every user error of conv2d: the type and the exact message are pinned."""

import re

import numpy as np
import pytest

import convolve

X = np.zeros((2, 8, 8, 4), np.float32)
W = np.zeros((3, 3, 4, 6), np.float32)


def raises(error, message):
    return pytest.raises(error, match=re.escape(message))


def test_input_of_wrong_rank():
    with raises(ValueError, "x must be 4-D (N, H, W, C) or 3-D (H, W, C); received an array "
                            "of shape (8, 8)"):
        convolve.conv2d(np.zeros((8, 8)), W)


def test_weight_of_wrong_rank():
    with raises(ValueError, "w must be 4-D (KH, KW, C_in // groups, C_out); received an array "
                            "of shape (3, 3, 4)"):
        convolve.conv2d(X, np.zeros((3, 3, 4)))


def test_channels_that_do_not_match_the_weight():
    with raises(ValueError, "w expects 3 input channels per group (3 in all with groups=1), "
                            "but x of shape (2, 8, 8, 4) has 4 channels"):
        convolve.conv2d(X, np.zeros((3, 3, 3, 6)))


def test_groups_that_do_not_divide_the_channels():
    with raises(ValueError, "groups=3 must divide the input channels; received x of shape "
                            "(2, 8, 8, 4) with 4 channels"):
        convolve.conv2d(X, W, groups=3)
    with raises(ValueError, "groups=2 must divide the output channels; received w of shape "
                            "(3, 3, 2, 5) with 5 output channels"):
        convolve.conv2d(X, np.zeros((3, 3, 2, 5)), groups=2)
    with raises(ValueError, "groups must be >= 1; received 0"):
        convolve.conv2d(X, W, groups=0)
    with raises(TypeError, "groups must be an int; received 1.5"):
        convolve.conv2d(X, W, groups=1.5)


@pytest.mark.parametrize("name", ["stride", "dilation"])
def test_stride_and_dilation_below_one(name):
    with raises(ValueError, f"{name} must be >= 1; received (1, 0)"):
        convolve.conv2d(X, W, **{name: (1, 0)})
    with raises(TypeError, f"{name} must be an int or a pair of ints; received 1.5"):
        convolve.conv2d(X, W, **{name: 1.5})
    with raises(TypeError, f"{name} must be an int or a pair of ints; received (1, 2, 3)"):
        convolve.conv2d(X, W, **{name: (1, 2, 3)})


def test_kernel_size_below_one():
    with raises(ValueError, "kernel size must be >= 1; received w of shape (0, 3, 4, 6)"):
        convolve.conv2d(X, np.zeros((0, 3, 4, 6), np.float32))


def test_negative_padding():
    with raises(ValueError, "padding must be non-negative; received (1, -1)"):
        convolve.conv2d(X, W, padding=(1, -1))


@pytest.mark.parametrize("padding", [(1, 2, 3), 1.0, ((1, 2), 3), [[1], [2]], None])
def test_malformed_padding(padding):
    with raises(TypeError, "padding must be 'valid', 'same', 'full', an int, (ph, pw) or "
                           f"((top, bottom), (left, right)); received {padding!r}"):
        convolve.conv2d(X, W, padding=padding)


def test_unknown_padding_string():
    with raises(ValueError, "padding must be one of 'valid', 'same', 'full', an int, (ph, pw) "
                            "or ((top, bottom), (left, right)); received 'half'"):
        convolve.conv2d(X, W, padding="half")


def test_unknown_padding_mode():
    with raises(ValueError, "padding_mode must be one of 'zeros', 'reflect', 'replicate', "
                            "'circular', 'symmetric'; received 'mirror'"):
        convolve.conv2d(X, W, padding=1, padding_mode="mirror")


def test_reflect_padding_wider_than_the_input_allows():
    x = np.zeros((1, 3, 8, 4), np.float32)
    with raises(ValueError, "padding with padding_mode='reflect' must be at most 2 along the "
                            "height for an input of 3 pixels; received pads (3, 3)"):
        convolve.conv2d(x, W, padding=3, padding_mode="reflect")
    with raises(ValueError, "padding with padding_mode='circular' must be at most 3 along the "
                            "height for an input of 3 pixels; received pads (4, 4)"):
        convolve.conv2d(x, W, padding=4, padding_mode="circular")


def test_kernel_larger_than_the_padded_input():
    with raises(ValueError, "the kernel is larger than the padded input along the width: "
                            "kernel size 3 with dilation 4 spans 9 pixels, but the input has "
                            "8 pixels plus padding 0+0 = 8"):
        convolve.conv2d(X, W, dilation=(1, 4))


def test_bias_of_the_wrong_shape():
    with raises(ValueError, "b must have shape (C_out,) = (6,) to match w of shape "
                            "(3, 3, 4, 6); received shape (4,)"):
        convolve.conv2d(X, W, np.zeros(4, np.float32))


@pytest.mark.parametrize("arg", ["x", "w", "b"])
def test_integer_dtypes_are_refused(arg):
    arrays = {"x": X, "w": W, "b": np.zeros(6, np.float32)}
    arrays[arg] = arrays[arg].astype(np.uint8)
    shape = arrays[arg].shape
    with raises(TypeError, f"{arg} must be a floating-point array (float32 or float64); "
                           f"received ndarray of shape {shape} and dtype uint8. Convert it "
                           "first, e.g. x.astype(np.float32) / 255"):
        convolve.conv2d(arrays["x"], arrays["w"], arrays["b"])


def test_unknown_algorithm():
    with raises(ValueError, "algorithm must be one of 'auto', "):
        convolve.conv2d(X, W, algorithm="magic")
    with pytest.raises(ValueError, match="received 'magic'"):
        convolve.conv2d(X, W, algorithm="magic")
