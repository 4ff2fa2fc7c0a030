"""batch_norm against the float64 loop reference and finite differences; pinned errors."""

import re
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
from convolve import Tensor
from tests import reference
from tests.gradcheck import gradcheck


@dataclass
class NormCase:
    x: np.ndarray
    gamma: np.ndarray | None
    beta: np.ndarray | None
    running_mean: np.ndarray
    running_var: np.ndarray
    kwargs: dict

    def __repr__(self) -> str:
        return (f"NormCase(x={self.x.shape}, affine={self.gamma is not None}, "
                f"{self.kwargs})")


@st.composite
def norm_cases(draw, dtype=np.float64, affine=None):
    c = draw(st.integers(1, 4))
    shape = draw(st.sampled_from([(2, 3, 4), (3, 2, 2), (5,), (1, 3, 3), (2, 1, 1)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = (rng.standard_normal((*shape, c)) * draw(st.sampled_from([0.1, 1.0, 30.0]))
         + draw(st.sampled_from([0.0, 5.0]))).astype(dtype)
    affine = draw(st.booleans()) if affine is None else affine
    gamma = rng.standard_normal(c).astype(dtype) if affine else None
    beta = rng.standard_normal(c).astype(dtype) if affine else None
    kwargs = dict(training=draw(st.booleans()),
                  momentum=draw(st.sampled_from([0.1, 0.5, 1.0, 0.0])),
                  eps=draw(st.sampled_from([1e-5, 1e-3])))
    return NormCase(x, gamma, beta, rng.standard_normal(c).astype(dtype),
                    rng.random(c).astype(dtype) + 0.5, kwargs)


@settings(max_examples=60, deadline=None)
@given(case=norm_cases())
def test_forward_and_running_statistics_match_reference(case):
    mean, var = case.running_mean.copy(), case.running_var.copy()
    y = convolve.batch_norm(case.x, case.gamma, case.beta, mean, var, **case.kwargs)
    expected, new_mean, new_var = reference.batch_norm(
        case.x, case.gamma, case.beta, case.running_mean, case.running_var, **case.kwargs)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mean, new_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var, new_var, rtol=1e-12, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(case=norm_cases())
def test_gradients_match_finite_differences(case):
    def fn(x, gamma=None, beta=None):
        # copies: each evaluation starts from the same running statistics
        return convolve.batch_norm(x, gamma, beta, case.running_mean.copy(),
                                   case.running_var.copy(), **case.kwargs)

    inputs = [case.x] + ([] if case.gamma is None else [case.gamma, case.beta])
    gradcheck(fn, inputs, rtol=1e-5, atol=1e-6)


def test_training_normalises_each_channel_of_a_float32_batch():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 5, 5, 3)) * [1, 10, 100] + [0, 3, -50]).astype(np.float32)
    y = convolve.batch_norm(x, None, None, None, None, training=True)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1, atol=1e-3)


def test_running_statistics_update_in_place_and_serve_evaluation():
    x = np.random.default_rng(1).standard_normal((16, 4, 2)) * 3 + 1
    mean, var = np.zeros(2), np.ones(2)
    for _ in range(200):
        convolve.batch_norm(x, None, None, mean, var, training=True, momentum=0.1)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(var, x.reshape(-1, 2).var(axis=0, ddof=1), rtol=1e-6)
    evaluated = convolve.batch_norm(x, None, None, mean, var, training=False, eps=0)
    trained = convolve.batch_norm(x, None, None, None, None, training=True, eps=0)
    # the running variance is unbiased: n / (n - 1) times the batch variance
    np.testing.assert_allclose(evaluated, trained * np.sqrt(63 / 64), rtol=1e-6)


def test_running_statistics_held_by_tensors_update_in_place():
    mean, var = Tensor(np.zeros(2)), Tensor(np.ones(2))
    convolve.batch_norm(np.arange(8.0).reshape(4, 2), None, None, mean, var, training=True,
                        momentum=1.0)
    np.testing.assert_allclose(mean.data, [3, 4])
    np.testing.assert_allclose(var.data, [20 / 3, 20 / 3])


def test_arrays_in_array_out_tensor_in_tensor_out():
    x, ones = np.ones((2, 3)), np.ones(3)
    assert type(convolve.batch_norm(x, ones, ones, None, None, training=True)) is np.ndarray
    assert isinstance(convolve.batch_norm(x, Tensor(ones), ones, None, None, training=True),
                      Tensor)


# -- errors --------------------------------------------------------------------------

X = np.zeros((2, 4, 4, 3))
C = np.ones(3)


def raises(error, message):
    return pytest.raises(error, match=re.escape(message))


def test_evaluation_without_running_statistics():
    with raises(ValueError, "running_mean and running_var are required when training=False; "
                            "received None and an array"):
        convolve.batch_norm(X, C, C, None, C.copy(), training=False)


def test_training_on_one_value_per_channel():
    with raises(ValueError, "batch_norm in training needs more than one value per channel to "
                            "compute the variance; received x of shape (1, 3)"):
        convolve.batch_norm(np.zeros((1, 3)), C, C, None, None, training=True)


def test_parameter_of_wrong_shape():
    with raises(ValueError, "gamma must have shape (C,) = (3,) for x of shape (2, 4, 4, 3); "
                            "received shape (4,)"):
        convolve.batch_norm(X, np.ones(4), C, None, None, training=True)
    with raises(ValueError, "running_var must have shape (C,) = (3,) for x of shape "
                            "(2, 4, 4, 3); received shape (3, 1)"):
        convolve.batch_norm(X, C, C, C.copy(), np.ones((3, 1)), training=False)


def test_running_statistics_that_cannot_be_updated_in_place():
    with raises(TypeError, "running_mean must be an ndarray (or Tensor), updated in place; "
                           "received [0.0, 0.0, 0.0]"):
        convolve.batch_norm(X, C, C, [0.0, 0.0, 0.0], C.copy(), training=True)


def test_input_with_one_axis():
    with raises(ValueError, "x must have at least 2 axes (..., C), channels last; received "
                            "an array of shape (3,)"):
        convolve.batch_norm(np.zeros(3), C, C, None, None, training=True)


def test_bad_momentum_and_eps():
    with raises(ValueError, "momentum must be a number in [0, 1]; received 1.5"):
        convolve.batch_norm(X, C, C, None, None, training=True, momentum=1.5)
    with raises(TypeError, "eps must be a real number; received None"):
        convolve.batch_norm(X, C, C, None, None, training=True, eps=None)
    with raises(ValueError, "eps must be a finite number >= 0; received -1e-05"):
        convolve.batch_norm(X, C, C, None, None, training=True, eps=-1e-5)


def test_integer_input_is_refused():
    with raises(TypeError, "x must be a floating-point array (float32 or float64); received "
                           "ndarray of shape (2, 3) and dtype int64"):
        convolve.batch_norm(np.zeros((2, 3), np.int64), C, C, None, None, training=True)


@pytest.mark.parametrize("training", [True, False])
def test_mixed_dtypes_follow_numpy_promotion(training):
    """float32 x with float64 gamma and beta: the output is float64 (NumPy's promotion),
    the input gradient float32 like x, the parameter gradients float64."""
    rng = np.random.default_rng(0)
    x = convolve.Tensor(rng.standard_normal((4, 5, 5, 3)).astype(np.float32),
                        requires_grad=True)
    gamma = convolve.Tensor(rng.standard_normal(3), requires_grad=True)
    beta = convolve.Tensor(rng.standard_normal(3), requires_grad=True)
    y = convolve.batch_norm(x, gamma, beta, np.zeros(3), np.ones(3), training=training)
    assert y.dtype == np.float64
    y.backward(np.ones(y.shape))
    assert (x.grad.dtype, gamma.grad.dtype, beta.grad.dtype) == (
        np.float32, np.float64, np.float64)


@pytest.mark.parametrize("training", [True, False])
def test_a_wider_beta_is_added_into_the_output(training):
    """float32 x and gamma with float64 beta: float32 out, as ``y += beta``."""
    x = np.ones((4, 5, 5, 3), np.float32)
    y = convolve.batch_norm(x, np.ones(3, np.float32), np.zeros(3), np.zeros(3), np.ones(3),
                            training=training)
    assert y.dtype == np.float32
    assert convolve.batch_norm(x, None, np.zeros(3), np.zeros(3), np.ones(3),
                               training=training).dtype == np.float32
