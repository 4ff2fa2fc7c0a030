"""Conformance with torch.nn.functional.batch_norm: output, gradients and the running
statistics, in training and evaluation."""

import numpy as np
from hypothesis import given, settings

import convolve
from convolve import Tensor
from tests.test_batch_norm import norm_cases
from tests.torch_ref import F, nchw, nhwc, torch

TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}


def channels_first(x):
    return nchw(x) if x.ndim == 4 else torch.from_numpy(x)


def channels_last(t):
    return nhwc(t) if t.ndim == 4 else t.detach().numpy()


def check_against_torch(case):
    tol = TOLERANCE[case.x.dtype.type]
    params = [None if p is None else Tensor(p, requires_grad=True)
              for p in (case.x, case.gamma, case.beta)]
    mean, var = case.running_mean.copy(), case.running_var.copy()
    y = convolve.batch_norm(*params, mean, var, **case.kwargs)
    g = np.random.default_rng(0).standard_normal(y.shape).astype(case.x.dtype)
    y.backward(g)

    xt = channels_first(case.x).requires_grad_(True)
    gt, bt = (None if p is None else torch.from_numpy(p).requires_grad_(True)
              for p in (case.gamma, case.beta))
    mt, vt = torch.from_numpy(case.running_mean.copy()), torch.from_numpy(
        case.running_var.copy())
    yt = F.batch_norm(xt, mt, vt, gt, bt, **case.kwargs)
    yt.backward(channels_first(g))

    assert y.dtype == case.x.dtype
    np.testing.assert_allclose(y.data, channels_last(yt), rtol=tol, atol=tol)
    np.testing.assert_allclose(mean, mt.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(var, vt.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(params[0].grad, channels_last(xt.grad), rtol=tol, atol=tol)
    for ours, theirs in zip(params[1:], (gt, bt)):
        if ours is not None:
            np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=tol, atol=tol)


@settings(max_examples=60, deadline=None)
@given(case=norm_cases())
def test_float64_matches_torch(case):
    check_against_torch(case)


@settings(max_examples=20, deadline=None)
@given(case=norm_cases(dtype=np.float32))
def test_float32_matches_torch(case):
    check_against_torch(case)
