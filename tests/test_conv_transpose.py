"""conv_transpose2d against the float64 loop reference, finite differences and the VJP of
conv2d; pinned errors."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
from convolve import Tensor
from tests import reference
from tests.gradcheck import gradcheck
from tests.strategies import ALGORITHM_LIMITS, conv_cases, conv_transpose_cases


@pytest.mark.parametrize("algorithm", list(ALGORITHM_LIMITS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_forward_matches_reference_float64(algorithm, data):
    case = data.draw(conv_transpose_cases(**ALGORITHM_LIMITS[algorithm]))
    y = convolve.conv_transpose2d(case.x, case.w, case.b, algorithm=algorithm, **case.kwargs)
    expected = reference.conv_transpose2d(case.x, case.w, case.b, **case.kwargs)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(case=conv_transpose_cases(dtype=np.float32))
def test_float32_stays_float32(case):
    y = convolve.conv_transpose2d(case.x, case.w, case.b, **case.kwargs)
    assert y.dtype == np.float32
    expected = reference.conv_transpose2d(case.x, case.w, case.b, **case.kwargs)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHM_LIMITS if a != "auto"])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_gradients_match_finite_differences(algorithm, data):
    case = data.draw(conv_transpose_cases(max_size=4, **ALGORITHM_LIMITS[algorithm]))
    inputs = [case.x, case.w] + ([] if case.b is None else [case.b])

    def fn(x, w, b=None):
        return convolve.conv_transpose2d(x, w, b, algorithm=algorithm, **case.kwargs)

    gradcheck(fn, inputs)


@settings(max_examples=40, deadline=None)
@given(case=conv_cases(modes=("zeros",)))
def test_equals_the_input_gradient_of_conv2d(case):
    """conv_transpose2d(g, w) is conv2d's backward to x; output_padding recovers the
    pixels conv2d's floor dropped."""
    x = Tensor(case.x, requires_grad=True)
    kwargs = {k: v for k, v in case.kwargs.items() if k != "padding_mode"}
    y = convolve.conv2d(x, case.w, **kwargs)
    g = np.random.default_rng(2).standard_normal(y.shape)
    y.backward(g)
    h, w = case.x.shape[1:3]
    pads = reference.pads_for(kwargs["padding"], (h, w), case.w.shape[:2], kwargs["stride"],
                              kwargs["dilation"])
    dropped = tuple(
        (n + p0 + p1 - d * (k - 1) - 1) % s
        for n, (p0, p1), k, s, d in zip((h, w), pads, case.w.shape[:2], kwargs["stride"],
                                        kwargs["dilation"]))
    dx = convolve.conv_transpose2d(g, case.w, stride=kwargs["stride"], padding=pads,
                                   output_padding=dropped, dilation=kwargs["dilation"],
                                   groups=kwargs["groups"])
    np.testing.assert_allclose(dx, x.grad, rtol=1e-10, atol=1e-10)


def test_same_padding_multiplies_the_size_by_the_stride():
    x = np.ones((2, 5, 3, 4))
    for k, s in ((3, 2), (1, 3), (4, 2), (2, 2)):
        y = convolve.conv_transpose2d(x, np.ones((k, k, 6, 4)), stride=s, padding="same")
        assert y.shape == (2, 5 * s, 3 * s, 6)


def test_unbatched_gives_unbatched():
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    w = np.random.default_rng(1).standard_normal((3, 3, 5, 2))
    y = convolve.conv_transpose2d(x, w, stride=2)
    assert y.shape == (7, 9, 5)
    np.testing.assert_array_equal(y, convolve.conv_transpose2d(x[None], w, stride=2)[0])


def test_arrays_in_array_out_tensor_in_tensor_out():
    x, w = np.ones((1, 4, 4, 1)), np.ones((2, 2, 1, 1))
    assert type(convolve.conv_transpose2d(x, w)) is np.ndarray
    assert isinstance(convolve.conv_transpose2d(Tensor(x), w), Tensor)
    assert isinstance(convolve.conv_transpose2d(x, Tensor(w)), Tensor)


# -- errors --------------------------------------------------------------------------

X = np.zeros((2, 4, 4, 6), np.float32)
W = np.zeros((3, 3, 2, 6), np.float32)


def raises(error, message):
    return pytest.raises(error, match=re.escape(message))


def test_weight_of_wrong_rank():
    with raises(ValueError, "w must be 4-D (KH, KW, C_out // groups, C_in); received an "
                            "array of shape (3, 3, 6)"):
        convolve.conv_transpose2d(X, np.zeros((3, 3, 6)))


def test_input_of_wrong_rank():
    with raises(ValueError, "x must be 4-D (N, H, W, C) or 3-D (H, W, C); received an array "
                            "of shape (4, 6)"):
        convolve.conv_transpose2d(np.zeros((4, 6)), W)


def test_channels_that_do_not_match_the_weight():
    with raises(ValueError, "w of shape (3, 3, 2, 5) (KH, KW, C_out // groups, C_in) expects "
                            "5 input channels, but x of shape (2, 4, 4, 6) has 6 channels"):
        convolve.conv_transpose2d(X, np.zeros((3, 3, 2, 5)))


def test_groups_that_do_not_divide_the_channels():
    with raises(ValueError, "groups=4 must divide the input channels; received x of shape "
                            "(2, 4, 4, 6) with 6 channels"):
        convolve.conv_transpose2d(X, W, groups=4)


def test_output_padding_not_smaller_than_stride_or_dilation():
    with raises(ValueError, "output_padding must be smaller than the stride or the dilation "
                            "along the width; received output_padding 2 with stride 2 and "
                            "dilation 1"):
        convolve.conv_transpose2d(X, W, stride=2, output_padding=(1, 2))
    with raises(ValueError, "output_padding must be >= 0; received -1"):
        convolve.conv_transpose2d(X, W, output_padding=-1)


def test_output_padding_with_same_padding():
    with raises(ValueError, "output_padding must be 0 with padding='same', whose output size "
                            "is the input size times the stride; received output_padding=1"):
        convolve.conv_transpose2d(X, W, stride=2, padding="same", output_padding=1)


def test_padding_that_removes_the_whole_output():
    with raises(ValueError, "the padding removes the whole output along the height: the "
                            "transposed convolution spans 6 pixels, but padding 3+3 = 6 is "
                            "cut from them"):
        convolve.conv_transpose2d(X, W, padding=3)


def test_bias_of_wrong_shape():
    with raises(ValueError, "b must have shape (C_out,) = (2,) to match w of shape "
                            "(3, 3, 2, 6) and groups=1; received shape (6,)"):
        convolve.conv_transpose2d(X, W, np.zeros(6, np.float32))


def test_integer_input_is_refused():
    with raises(TypeError, "x must be a floating-point array (float32 or float64); received "
                           "ndarray of shape (2, 4, 4, 6) and dtype int32"):
        convolve.conv_transpose2d(X.astype(np.int32), W)


def test_unknown_algorithm():
    with pytest.raises(ValueError, match=r"algorithm must be one of 'auto', .*; received "
                                         r"'magic'"):
        convolve.conv_transpose2d(X, W, algorithm="magic")


@pytest.mark.parametrize("algorithm", ["auto", "gemm"])
def test_1x1_kernel_with_output_padding_leaves_zeros_in_the_unread_column(algorithm):
    """The 1x1 input-gradient path writes only the pixels the kernel read; the column
    that output_padding adds must be zero, not uninitialised memory."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((1, 1, 6, 5))
    settings = dict(output_padding=(0, 1), dilation=(1, 2))
    y = convolve.conv_transpose2d(x, w, algorithm=algorithm, **settings)
    expected = reference.conv_transpose2d(x, w, **settings)
    assert y.shape == (2, 3, 5, 6)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
