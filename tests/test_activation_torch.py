"""Conformance with PyTorch's activations: forward and gradient, float64 and float32,
for inputs of unit scale and far out (up to +-1000)."""

import numpy as np
import pytest
from hypothesis import given, settings

import convolve
from convolve import Tensor
from tests.test_activation import inputs
from tests.torch_ref import F, torch

PAIRS = {
    "relu": (convolve.relu, F.relu),
    "leaky_relu": (lambda x: convolve.leaky_relu(x, 0.3), lambda t: F.leaky_relu(t, 0.3)),
    "leaky_relu_default": (convolve.leaky_relu, F.leaky_relu),
    "tanh": (convolve.tanh, torch.tanh),
    "sigmoid": (convolve.sigmoid, torch.sigmoid),
    "softmax": (convolve.softmax, lambda t: F.softmax(t, dim=-1)),
    "softmax_axis0": (lambda x: convolve.softmax(x, axis=0), lambda t: F.softmax(t, dim=0)),
    "log_softmax": (convolve.log_softmax, lambda t: F.log_softmax(t, dim=-1)),
    "log_softmax_axis1": (lambda x: convolve.log_softmax(x, axis=1),
                          lambda t: F.log_softmax(t, dim=1)),
    "gelu": (convolve.gelu, F.gelu),
    "gelu_tanh": (lambda x: convolve.gelu(x, approximate="tanh"),
                  lambda t: F.gelu(t, approximate="tanh")),
}
TOLERANCE = {np.float64: 1e-12, np.float32: 2e-6}


def check_against_torch(name, x):
    ours, theirs = PAIRS[name]
    tol = TOLERANCE[x.dtype.type]
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    g = np.random.default_rng(0).standard_normal(x.shape).astype(x.dtype)
    yt.backward(torch.from_numpy(g))
    t = Tensor(x, requires_grad=True)
    y = ours(t)
    y.backward(g)
    assert y.dtype == x.dtype and t.grad.dtype == x.dtype
    scale = max(1.0, float(np.abs(x).max()))  # log_softmax rounds at the row's scale
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(t.grad, xt.grad.numpy(), rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("name", list(PAIRS))
@settings(max_examples=25, deadline=None)
@given(x=inputs())
def test_float64_matches_torch(name, x):
    check_against_torch(name, x)


@pytest.mark.parametrize("name", list(PAIRS))
@settings(max_examples=10, deadline=None)
@given(x=inputs(dtype=np.float32))
def test_float32_matches_torch(name, x):
    check_against_torch(name, x)
