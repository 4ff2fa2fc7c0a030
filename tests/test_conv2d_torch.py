"""Conformance with torch.nn.functional.conv2d: forward and all three gradients."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
from convolve import Tensor
from tests.strategies import ALGORITHM_LIMITS, conv_cases
from tests.torch_ref import assert_output_and_grads, conv2d_with_grads

TOLERANCE = {np.float64: 1e-9, np.float32: 1e-4}


def check_against_torch(case, dtype, algorithm="auto"):
    tol = TOLERANCE[dtype]
    x, w = Tensor(case.x, requires_grad=True), Tensor(case.w, requires_grad=True)
    b = None if case.b is None else Tensor(case.b, requires_grad=True)
    y = convolve.conv2d(x, w, b, algorithm=algorithm, **case.kwargs)
    g = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    y.backward(g)
    expected, grads = conv2d_with_grads(case.x, case.w, case.b, g, **case.kwargs)
    assert_output_and_grads(y, (x, w, b), expected, grads, dtype, tol)


@pytest.mark.parametrize("algorithm", list(ALGORITHM_LIMITS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_float64_matches_torch(algorithm, data):
    case = data.draw(conv_cases(**ALGORITHM_LIMITS[algorithm]))
    check_against_torch(case, np.float64, algorithm)


@settings(max_examples=150, deadline=None)
@given(case=conv_cases(dtype=np.float32))
def test_float32_matches_torch(case):
    check_against_torch(case, np.float32)
