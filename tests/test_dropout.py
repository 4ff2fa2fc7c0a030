"""Inverted dropout: the mask's statistics, seeding, the gradient and pinned errors."""

import re

import numpy as np
import pytest

import convolve
from convolve import Tensor
from tests.gradcheck import gradcheck


def raises(error, message):
    return pytest.raises(error, match=re.escape(message))


def test_keeps_each_element_with_probability_one_minus_rate_and_rescales():
    x = np.full((200, 500), 2.0, np.float32)
    y = convolve.dropout(x, 0.3, rng=0)
    assert y.dtype == np.float32 and y.shape == x.shape
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2.0 / 0.7, rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.01  # 1e5 draws: the standard error is 0.0015
    assert abs(y.mean() - 2.0) < 0.03


def test_seeded_by_int_or_generator():
    x = np.ones((4, 5, 5, 3))
    np.testing.assert_array_equal(convolve.dropout(x, 0.5, rng=7),
                                  convolve.dropout(x, 0.5, rng=7))
    a = convolve.dropout(x, 0.5, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, convolve.dropout(x, 0.5, rng=7))
    generator = np.random.default_rng(7)
    first, second = (convolve.dropout(x, 0.5, rng=generator) for _ in range(2))
    assert not np.array_equal(first, second)  # one generator advances


def test_identity_when_not_training_or_rate_zero():
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert convolve.dropout(x, 0.5, training=False) is x
    assert convolve.dropout(x, 0.0, rng=1) is x
    t = Tensor(x, requires_grad=True)
    assert convolve.dropout(t, 0.5, training=False) is t


def test_rate_one_drops_everything():
    y = convolve.dropout(np.ones((3, 3)), 1.0, rng=0)
    np.testing.assert_array_equal(y, np.zeros((3, 3)))


def test_gradient_is_the_same_mask():
    x = Tensor(np.ones((50, 40)), requires_grad=True)
    y = convolve.dropout(x, 0.25, rng=3)
    y.backward(np.full(y.shape, 3.0))
    np.testing.assert_array_equal(x.grad, 3.0 * y.data)
    # a fixed seed makes the op deterministic, so differences are meaningful
    rng = np.random.default_rng(1)
    gradcheck(lambda v: convolve.dropout(v, 0.4, rng=5), [rng.standard_normal((3, 4, 5))])


def test_arrays_in_array_out_tensor_in_tensor_out():
    assert type(convolve.dropout(np.ones(4), 0.5, rng=0)) is np.ndarray
    assert isinstance(convolve.dropout(Tensor(np.ones(4)), 0.5, rng=0), Tensor)


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_rate_out_of_range(rate):
    with raises(ValueError, f"rate must be a number in [0, 1]; received {rate!r}"):
        convolve.dropout(np.ones(3), rate)


@pytest.mark.parametrize("rate", ["0.5", None, True])
def test_rate_not_a_number(rate):
    with raises(TypeError, f"rate must be a number in [0, 1]; received {rate!r}"):
        convolve.dropout(np.ones(3), rate)


def test_bad_rng():
    with raises(TypeError, "rng must be None, an int seed or a numpy.random.Generator; "
                           "received 0.5"):
        convolve.dropout(np.ones(3), 0.5, rng=0.5)
    with raises(ValueError, "rng must be None, an int seed >= 0 or a numpy.random.Generator; "
                            "received -1"):
        convolve.dropout(np.ones(3), 0.5, rng=-1)


def test_integer_input_is_refused():
    with raises(TypeError, "x must be a floating-point array (float32 or float64); received "
                           "ndarray of shape (3,) and dtype int64"):
        convolve.dropout(np.ones(3, np.int64), 0.5)
