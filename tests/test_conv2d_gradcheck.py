"""conv2d's backward against finite differences, for random settings."""

import pytest
from hypothesis import given, settings

import convolve
from tests.gradcheck import gradcheck
from tests.strategies import conv_cases


@pytest.mark.parametrize("algorithm", ["gemm", "direct"])
@settings(max_examples=25, deadline=None)
@given(case=conv_cases(max_size=6))
def test_conv2d_gradients_match_finite_differences(algorithm, case):
    inputs = [case.x, case.w] + ([] if case.b is None else [case.b])

    def fn(x, w, b=None):
        return convolve.conv2d(x, w, b, algorithm=algorithm, **case.kwargs)

    gradcheck(fn, inputs)
