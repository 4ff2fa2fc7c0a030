"""Activations against float64 references, finite differences and pinned errors."""

import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
from convolve import Tensor, nn
from tests import reference
from tests.gradcheck import gradcheck

ACTIVATIONS = {
    "relu": (convolve.relu, reference.relu),
    "leaky_relu": (lambda x: convolve.leaky_relu(x, 0.2),
                   lambda x: reference.leaky_relu(x, 0.2)),
    "tanh": (convolve.tanh, reference.tanh),
    "sigmoid": (convolve.sigmoid, reference.sigmoid),
    "softmax": (convolve.softmax, reference.softmax),
    "softmax_axis0": (lambda x: convolve.softmax(x, axis=0),
                      lambda x: reference.softmax(x, axis=0)),
    "log_softmax": (convolve.log_softmax, reference.log_softmax),
    "log_softmax_axis1": (lambda x: convolve.log_softmax(x, axis=1),
                          lambda x: reference.log_softmax(x, axis=1)),
    "gelu": (convolve.gelu, reference.gelu),
    "gelu_tanh": (lambda x: convolve.gelu(x, approximate="tanh"),
                  lambda x: reference.gelu(x, approximate="tanh")),
}


@st.composite
def inputs(draw, dtype=np.float64):
    """Arrays of 2 to 4 axes, of unit scale or far out (up to +-1000)."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=2, max_size=4)))
    scale = draw(st.sampled_from([1.0, 5.0, 40.0, 1000.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@settings(max_examples=25, deadline=None)
@given(x=inputs())
def test_forward_matches_reference_float64(name, x):
    ours, theirs = ACTIVATIONS[name]
    y = ours(x)
    assert y.dtype == np.float64 and y.shape == x.shape
    # log_softmax rounds its largest entries at the scale of the row's other entries
    np.testing.assert_allclose(y, theirs(x), rtol=1e-13, atol=1e-15 * np.abs(x).max())


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_float32_stays_float32_without_warnings(name):
    x = np.array([[-1000.0, -90.0, -1.5, 0.0, 0.5, 3.0, 90.0, 1000.0]], np.float32)
    ours, theirs = ACTIVATIONS[name]
    t = Tensor(x, requires_grad=True)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        y = ours(t)
        y.backward(np.ones_like(x))
    assert y.dtype == np.float32 and t.grad.dtype == np.float32
    assert np.isfinite(t.grad).all()
    np.testing.assert_allclose(y.data, theirs(x), rtol=1e-6, atol=1e-6)


def test_sigmoid_saturates_without_overflow():
    x = np.array([-1e308, -1000.0, -745.0, 0.0, 745.0, 1000.0, 1e308])
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        y = convolve.sigmoid(x)
    np.testing.assert_allclose(y, reference.sigmoid(x), rtol=1e-15, atol=0)
    assert y[0] == 0.0 and y[-1] == 1.0 and y[3] == 0.5


def test_softmax_is_stable_for_large_inputs():
    x = np.array([[1000.0, 1000.0, -1000.0], [-1000.0, -1001.0, -1000.0]])
    np.testing.assert_allclose(convolve.softmax(x), reference.softmax(x), rtol=1e-15)
    np.testing.assert_allclose(convolve.log_softmax(x), reference.log_softmax(x),
                               rtol=1e-15)
    np.testing.assert_array_equal(convolve.softmax(x)[0], [0.5, 0.5, 0.0])
    assert convolve.log_softmax(x)[0, 2] == -2000.0 - np.log(2.0)


def test_gelu_normal_cdf_is_accurate_far_into_the_tails():
    x = np.linspace(-30.0, 30.0, 2001)
    np.testing.assert_allclose(convolve.gelu(x), reference.gelu(x), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@settings(max_examples=10, deadline=None)
@given(x=inputs())
def test_gradients_match_finite_differences(name, x):
    x = x / np.abs(x).max() * 3  # unit scale, where differences are informative
    x = np.where(np.abs(x) < 1e-3, 0.5, x)  # relu's kink is not differentiable
    gradcheck(ACTIVATIONS[name][0], [x])


def test_relu_gradient_at_zero_is_zero():
    x = Tensor(np.zeros(3), requires_grad=True)
    convolve.relu(x).backward(np.ones(3))
    np.testing.assert_array_equal(x.grad, np.zeros(3))


def test_arrays_in_array_out_tensor_in_tensor_out():
    x = np.ones((2, 3))
    for ours, _ in ACTIVATIONS.values():
        assert type(ours(x)) is np.ndarray
        assert isinstance(ours(Tensor(x)), Tensor)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_float32_stays_float32_forward_and_backward(name):
    x = Tensor(np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4), requires_grad=True)
    y = ACTIVATIONS[name][0](x)
    y.backward(np.ones(y.shape, np.float32))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


def test_a_numpy_scalar_slope_does_not_promote_float32():
    x = Tensor(np.array([-1.0, 2.0], np.float32), requires_grad=True)
    for y in (convolve.leaky_relu(x, np.float64(0.2)), nn.LeakyReLU(np.float64(0.2))(x)):
        y.backward(np.ones(2, np.float32))
        assert y.dtype == np.float32 and x.grad.dtype == np.float32
        np.testing.assert_allclose(y.data, [-0.2, 2.0], rtol=1e-7)


# -- errors --------------------------------------------------------------------------


def raises(error, message):
    return pytest.raises(error, match=re.escape(message))


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_integer_input_is_refused(name):
    with raises(TypeError, "x must be a floating-point array (float32 or float64); received "
                           "ndarray of shape (2, 3) and dtype int64"):
        ACTIVATIONS[name][0](np.ones((2, 3), np.int64))


@pytest.mark.parametrize("op", [convolve.softmax, convolve.log_softmax])
def test_axis_out_of_range(op):
    with raises(ValueError, "axis must be an int in [-2, 2) for a 2-D input; received 2"):
        op(np.ones((2, 3)), axis=2)
    with raises(ValueError, "axis must be an int in [-2, 2) for a 2-D input; received None"):
        op(np.ones((2, 3)), axis=None)


def test_bad_gelu_approximation():
    with raises(ValueError, "approximate must be one of 'none', 'tanh'; received 'erf'"):
        convolve.gelu(np.ones(2), approximate="erf")


def test_bad_negative_slope():
    with raises(TypeError, "negative_slope must be a real number; received '0.1'"):
        convolve.leaky_relu(np.ones(2), "0.1")
    with raises(ValueError, "negative_slope must be a finite number; received nan"):
        convolve.leaky_relu(np.ones(2), float("nan"))
    with raises(TypeError, "negative_slope must be a real number; received '0.1'"):
        nn.LeakyReLU("0.1")
