"""Pooling against the float64 loop reference and finite differences; pinned errors."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
from convolve import Tensor
from tests import reference
from tests.gradcheck import gradcheck
from tests.strategies import pool_cases

POOLS = {"max": convolve.max_pool2d, "avg": convolve.avg_pool2d}
REFERENCES = {"max": reference.max_pool2d, "avg": reference.avg_pool2d}


def raises(error, message):
    return pytest.raises(error, match=re.escape(message))


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_forward_matches_reference_float64(kind, data):
    case = data.draw(pool_cases(kind), label="case")
    expected = REFERENCES[kind](case.x, **case.kwargs)
    y = POOLS[kind](case.x, **case.kwargs)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    # the recording path (max: values with their argmax) gives the same values
    recorded = POOLS[kind](Tensor(case.x, requires_grad=True), **case.kwargs)
    np.testing.assert_array_equal(recorded.data, y)


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_float32_stays_float32(kind, data):
    case = data.draw(pool_cases(kind, dtype=np.float32), label="case")
    y = POOLS[kind](case.x, **case.kwargs)
    assert y.dtype == np.float32
    expected = REFERENCES[kind](case.x, **case.kwargs)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_gradients_match_finite_differences(kind, data):
    case = data.draw(pool_cases(kind, max_size=6, ties=False), label="case")
    y = POOLS[kind](case.x, **case.kwargs)
    if not np.isfinite(y).all():  # a dilated window wholly in padding: -inf
        return
    gradcheck(lambda x: POOLS[kind](x, **case.kwargs), [case.x])


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = Tensor(np.ones((1, 2, 3, 1)), requires_grad=True)
    y = convolve.max_pool2d(x, 2, stride=1)  # two overlapping windows, all ties
    y.backward(np.array([[[[1.0], [10.0]]]]))
    np.testing.assert_array_equal(x.grad[0, :, :, 0], [[1, 10, 0], [0, 0, 0]])


def test_max_pool_pads_with_minus_infinity():
    x = -np.ones((1, 2, 2, 1))
    y = convolve.max_pool2d(x, 2, stride=1, padding=1)
    np.testing.assert_array_equal(y, -np.ones((1, 3, 3, 1)))


def test_ceil_mode_keeps_a_partial_last_window():
    x = np.arange(25.0).reshape(1, 5, 5, 1)
    assert convolve.max_pool2d(x, 2).shape == (1, 2, 2, 1)
    y = convolve.max_pool2d(x, 2, ceil_mode=True)
    np.testing.assert_array_equal(y[0, :, :, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    # the overhang is never counted, even with count_include_pad
    a = convolve.avg_pool2d(x, 2, ceil_mode=True)
    assert a[0, 2, 2, 0] == 24.0
    assert a[0, 0, 2, 0] == (4 + 9) / 2


def test_ceil_mode_drops_a_window_that_would_start_in_the_right_padding():
    # 4 pixels, pool 2, stride 2, pad 1: ceil gives 3 windows starting at -1, 1, 3 ...
    assert convolve.max_pool2d(np.zeros((4, 4, 1)), 2, padding=1, ceil_mode=True).shape == (
        3, 3, 1)
    # ... but with 3 pixels the third would start at 3 = input + left pad: dropped
    assert convolve.max_pool2d(np.zeros((3, 3, 1)), 2, padding=1, ceil_mode=True).shape == (
        2, 2, 1)


def test_ceil_mode_allows_a_pool_larger_than_the_input():
    x = np.arange(4.0).reshape(2, 2, 1)
    np.testing.assert_array_equal(convolve.max_pool2d(x, 3, stride=2, ceil_mode=True),
                                  [[[3.0]]])


def test_count_include_pad():
    x = np.ones((1, 2, 2, 1))
    with_pad = convolve.avg_pool2d(x, 2, padding=1)
    without = convolve.avg_pool2d(x, 2, padding=1, count_include_pad=False)
    np.testing.assert_array_equal(with_pad[0, :, :, 0], np.full((2, 2), 0.25))
    np.testing.assert_array_equal(without[0, :, :, 0], np.ones((2, 2)))


def test_unbatched_gives_unbatched_and_default_pool_is_2x2():
    x = np.random.default_rng(0).standard_normal((6, 4, 3))
    for pool in POOLS.values():
        y = pool(x)
        assert y.shape == (3, 2, 3)
        np.testing.assert_array_equal(y, pool(x[None])[0])


def test_arrays_in_array_out_tensor_in_tensor_out():
    x = np.ones((1, 4, 4, 1))
    for pool in (*POOLS.values(), convolve.global_avg_pool2d, convolve.global_max_pool2d):
        assert type(pool(x)) is np.ndarray
        assert isinstance(pool(Tensor(x)), Tensor)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_global_pools_match_the_reference(kind):
    x = np.random.default_rng(1).standard_normal((2, 5, 3, 4))
    pool = {"max": convolve.global_max_pool2d, "avg": convolve.global_avg_pool2d}[kind]
    expected = REFERENCES[kind](x, (5, 3))[:, 0, 0]
    y = pool(x)
    assert y.shape == (2, 4)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    assert pool(x[0]).shape == (4,)
    np.testing.assert_allclose(pool(x[0]), expected[0], rtol=1e-12)
    gradcheck(pool, [x])
    gradcheck(pool, [x[0]])


def test_global_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = Tensor(np.ones((2, 2, 1)), requires_grad=True)
    convolve.global_max_pool2d(x).backward(np.array([3.0]))
    np.testing.assert_array_equal(x.grad[:, :, 0], [[3, 0], [0, 0]])


# -- errors --------------------------------------------------------------------------

X = np.zeros((1, 4, 4, 2), np.float32)


@pytest.mark.parametrize("pool", list(POOLS.values()))
def test_pool_size_below_one(pool):
    with raises(ValueError, "pool_size must be >= 1; received (2, 0)"):
        pool(X, (2, 0))
    with raises(ValueError, "stride must be >= 1; received 0"):
        pool(X, 2, stride=0)


@pytest.mark.parametrize("pool", list(POOLS.values()))
def test_pool_larger_than_the_padded_input(pool):
    with raises(ValueError, "the pool is larger than the padded input along the height: "
                            "pool size 5 with dilation 1 spans 5 pixels, but the input has "
                            "4 pixels plus padding 0+0 = 4"):
        pool(X, 5)


def test_dilated_pool_larger_than_the_padded_input():
    with raises(ValueError, "the pool is larger than the padded input along the width: "
                            "pool size 2 with dilation 4 spans 5 pixels, but the input has "
                            "4 pixels plus padding 0+0 = 4"):
        convolve.max_pool2d(X, (1, 2), dilation=(1, 4))


@pytest.mark.parametrize("pool", list(POOLS.values()))
def test_padding_more_than_half_the_pool(pool):
    with raises(ValueError, "padding must be at most half the pool size along the width "
                            "(pool size 2 allows 1); received pads (2, 2) from "
                            "padding=(1, 2)"):
        pool(X, 2, padding=(1, 2))
    with raises(ValueError, "padding must be at most half the pool size along the height "
                            "(pool size 3 allows 1); received pads (0, 2) from "
                            "padding=((0, 2), (0, 0))"):
        pool(X, 3, padding=((0, 2), (0, 0)))


@pytest.mark.parametrize("pool", [*POOLS.values(), convolve.global_avg_pool2d,
                                  convolve.global_max_pool2d])
def test_integer_input_is_refused(pool):
    with raises(TypeError, "x must be a floating-point array (float32 or float64); received "
                           "ndarray of shape (1, 4, 4, 2) and dtype uint8"):
        pool(X.astype(np.uint8))


@pytest.mark.parametrize("pool", [*POOLS.values(), convolve.global_avg_pool2d,
                                  convolve.global_max_pool2d])
def test_input_of_wrong_rank(pool):
    with raises(ValueError, "x must be 4-D (N, H, W, C) or 3-D (H, W, C); received an array "
                            "of shape (4, 4)"):
        pool(np.zeros((4, 4)))


def test_bad_padding_string():
    with raises(ValueError, "padding must be one of 'valid', 'same', 'full'"):
        convolve.max_pool2d(X, 2, padding="half")


@pytest.mark.parametrize("shape", [(1, 4, 4, 0), (0, 4, 4, 2)])
def test_max_pool_2x2_of_an_empty_batch_or_no_channels(shape):
    x = Tensor(np.zeros(shape, np.float32), requires_grad=True)
    y = convolve.max_pool2d(x, 2)
    assert y.shape == (shape[0], 2, 2, shape[3])
    y.backward(np.zeros(y.shape, np.float32))
    assert x.grad.shape == shape
