"""Conformance with torch.nn.functional.max_pool2d / avg_pool2d: forward and gradient,
ties, ceil_mode and padding at its limit included."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
from convolve import Tensor
from tests.strategies import pool_cases
from tests.torch_ref import F, nchw, nhwc, pool_with_grads, torch

POOLS = {"max": convolve.max_pool2d, "avg": convolve.avg_pool2d}
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def check_against_torch(kind, case):
    tol = TOLERANCE[case.x.dtype.type]
    x = Tensor(case.x, requires_grad=True)
    y = POOLS[kind](x, **case.kwargs)
    g = np.random.default_rng(0).standard_normal(y.shape).astype(case.x.dtype)
    y.backward(g)
    # inputs are finite, so -inf marks a dilated window wholly in padding
    expected, dx = pool_with_grads(kind, case.x, g, **case.kwargs,
                                   backward=bool(np.isfinite(y.data).all()))
    assert y.dtype == case.x.dtype
    np.testing.assert_allclose(y.data, expected, rtol=tol, atol=tol)
    if dx is not None:
        np.testing.assert_allclose(x.grad, dx, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_float64_matches_torch(kind, data):
    check_against_torch(kind, data.draw(pool_cases(kind, symmetric=True), label="case"))


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_float32_matches_torch(kind, data):
    case = data.draw(pool_cases(kind, dtype=np.float32, symmetric=True), label="case")
    check_against_torch(kind, case)


def test_minus_infinity_input_sends_the_gradient_where_torch_does():
    x = np.full((1, 3, 3, 1), -np.inf)
    x[0, 2, 2, 0] = -1.0
    xt = Tensor(x, requires_grad=True)
    y = convolve.max_pool2d(xt, 2, stride=1, padding=1)
    g = np.arange(1.0, 17.0).reshape(y.shape)
    y.backward(g)
    expected, dx = pool_with_grads("max", x, g, pool_size=2, stride=1, padding=1,
                                   ceil_mode=False)
    np.testing.assert_array_equal(y.data, expected)
    np.testing.assert_array_equal(xt.grad, dx)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_global_pools_match_torch(kind):
    x = np.random.default_rng(0).integers(-1, 2, (2, 3, 4, 5)).astype(np.float64)
    ours = {"max": convolve.global_max_pool2d, "avg": convolve.global_avg_pool2d}[kind]
    theirs = {"max": F.adaptive_max_pool2d, "avg": F.adaptive_avg_pool2d}[kind]
    xt = nchw(x).requires_grad_(True)
    yt = theirs(xt, 1)
    g = np.random.default_rng(1).standard_normal((2, 5))
    yt.backward(torch.from_numpy(g)[:, :, None, None])
    xa = Tensor(x, requires_grad=True)
    y = ours(xa)
    y.backward(g)
    np.testing.assert_allclose(y.data, nhwc(yt)[:, 0, 0], rtol=1e-12)
    np.testing.assert_allclose(xa.grad, nhwc(xt.grad), rtol=1e-12)


def _pool_2x2_inputs():
    """Inputs for the 2x2 stride-2 path: ties everywhere, all-equal and ReLU-zero windows,
    signed zeros, -inf and NaN, odd sizes, float32 and float64."""
    rng = np.random.default_rng(2)
    normal = rng.standard_normal((2, 8, 6, 3))
    few = rng.integers(-1, 2, (2, 7, 9, 4)).astype(np.float64)  # odd: last row, column unused
    zeros = np.where(rng.random((1, 6, 6, 2)) < 0.5, 0.0, -0.0)
    special = rng.standard_normal((1, 6, 8, 3))
    special[0, 0, :2, 0] = -np.inf
    special[0, 2:4, 2:4, 1] = -np.inf
    nan = rng.standard_normal((2, 4, 4, 2))
    nan[0, 1, 1, 0] = nan[1, 2, 3, 1] = nan[1, 3, 3, 1] = np.nan
    return {
        "normal": normal, "relu": np.maximum(normal, 0), "few values": few,
        "all equal": np.ones((1, 4, 6, 5)), "signed zeros": zeros, "-inf": special,
        "nan": nan, "float32 few values": few.astype(np.float32),
        "float32 relu": np.maximum(normal, 0).astype(np.float32),
    }


@pytest.mark.parametrize("name", list(_pool_2x2_inputs()))
@pytest.mark.parametrize("block_bytes", [None, 1])
def test_2x2_stride_2_matches_torch_exactly(name, block_bytes, monkeypatch):
    """The 2x2 path's maxima and first-maximum gradients equal PyTorch's, in one block and
    in one block per output row split over threads."""
    from convolve import runtime
    from convolve.ops import pool_fast

    if block_bytes is not None:
        monkeypatch.setattr(pool_fast, "PAIR_BLOCK_BYTES", block_bytes)
        monkeypatch.setattr(runtime, "THREADS", 2)
    x = _pool_2x2_inputs()[name]
    xt = Tensor(x, requires_grad=True)
    y = convolve.max_pool2d(xt, 2)
    g = np.random.default_rng(3).standard_normal(y.shape).astype(x.dtype)
    y.backward(g)
    expected, dx = pool_with_grads("max", x, g, pool_size=2, stride=2, padding=0,
                                   ceil_mode=False)
    np.testing.assert_array_equal(y.data, expected)
    np.testing.assert_array_equal(xt.grad, dx)
    assert xt.grad.dtype == x.dtype
    unbatched = Tensor(x[0], requires_grad=True)
    convolve.max_pool2d(unbatched, 2).backward(g[0])
    np.testing.assert_array_equal(unbatched.grad, dx[0])
