"""conv2d's backward against finite differences, for random settings."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
from tests.gradcheck import gradcheck
from tests.strategies import ALGORITHM_LIMITS, conv_cases


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHM_LIMITS if a != "auto"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_conv2d_gradients_match_finite_differences(algorithm, data):
    case = data.draw(conv_cases(max_size=6, **ALGORITHM_LIMITS[algorithm]))
    inputs = [case.x, case.w] + ([] if case.b is None else [case.b])

    def fn(x, w, b=None):
        return convolve.conv2d(x, w, b, algorithm=algorithm, **case.kwargs)

    gradcheck(fn, inputs)
