"""Conformance with torch.nn.functional.conv_transpose2d: forward and all three
gradients. PyTorch's weight is (C_in, C_out // groups, KH, KW)."""

import numpy as np
import pytest
from hypothesis import given, settings

import convolve
from convolve import Tensor
from tests.reference import transpose_pads_for
from tests.strategies import conv_transpose_cases
from tests.torch_ref import assert_output_and_grads, conv_transpose2d_with_grads

TOLERANCE = {np.float64: 1e-9, np.float32: 1e-4}


def check_against_torch(case, algorithm="auto"):
    dtype = case.x.dtype.type
    tol = TOLERANCE[dtype]
    x, w = Tensor(case.x, requires_grad=True), Tensor(case.w, requires_grad=True)
    b = None if case.b is None else Tensor(case.b, requires_grad=True)
    y = convolve.conv_transpose2d(x, w, b, algorithm=algorithm, **case.kwargs)
    g = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    y.backward(g)
    k = case.kwargs
    pads, extra = transpose_pads_for(k["padding"], case.x.shape[1:3], case.w.shape[:2],
                                     k["stride"], k["dilation"], k["output_padding"])
    expected, grads = conv_transpose2d_with_grads(
        case.x, case.w, case.b, g, pads=pads, output_padding=extra, stride=k["stride"],
        dilation=k["dilation"], groups=k["groups"])
    assert_output_and_grads(y, (x, w, b), expected, grads, dtype, tol)


@pytest.mark.parametrize("algorithm", ["gemm", "direct"])
@settings(max_examples=60, deadline=None)
@given(case=conv_transpose_cases(symmetric=True))
def test_float64_matches_torch(algorithm, case):
    check_against_torch(case, algorithm)


@settings(max_examples=60, deadline=None)
@given(case=conv_transpose_cases())
def test_asymmetric_and_named_padding_match_torch_cropped(case):
    check_against_torch(case)


@settings(max_examples=30, deadline=None)
@given(case=conv_transpose_cases(dtype=np.float32))
def test_float32_matches_torch(case):
    check_against_torch(case)
