"""Autotuning (set_autotune): auto times the methods once per shape and keeps the
fastest; results stay those of the other methods."""

import numpy as np
import pytest

import convolve
from convolve.ops import autotune
from convolve.ops.algorithms import select


@pytest.fixture
def tuning(monkeypatch):
    """Autotuning on, with an empty cache, restored after the test."""
    monkeypatch.setattr(autotune, "_plans", {})
    monkeypatch.setattr(autotune, "REPEATS", 1)
    convolve.set_autotune(True)
    yield autotune._plans
    convolve.set_autotune(False)


def _grads(op, x, w, **kwargs):
    xt, wt = convolve.Tensor(x, requires_grad=True), convolve.Tensor(w, requires_grad=True)
    y = op(xt, wt, **kwargs)
    y.backward(np.random.default_rng(1).standard_normal(y.shape))
    return y.data, xt.grad, wt.grad


@pytest.mark.parametrize("kernel, stride, groups", [(3, 1, 1), (3, 2, 1), (1, 1, 2), (5, 1, 1)])
def test_autotuned_conv2d_matches_auto(tuning, kernel, stride, groups):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 13, 11, 4))
    w = rng.standard_normal((kernel, kernel, 4 // groups, 6))
    kwargs = dict(stride=stride, padding="same", groups=groups)
    tuned = _grads(convolve.conv2d, x, w, **kwargs)
    assert len(tuning) == 1
    convolve.set_autotune(False)
    for got, expected in zip(tuned, _grads(convolve.conv2d, x, w, **kwargs)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_autotuned_conv_transpose2d_matches_auto(tuning):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 7, 5))
    w = rng.standard_normal((3, 3, 4, 5))
    kwargs = dict(stride=2, padding=1, output_padding=1)
    tuned = _grads(convolve.conv_transpose2d, x, w, **kwargs)
    convolve.set_autotune(False)
    for got, expected in zip(tuned, _grads(convolve.conv_transpose2d, x, w, **kwargs)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_each_shape_and_dtype_is_timed_once(tuning, monkeypatch):
    timed = []
    fastest = autotune._fastest
    monkeypatch.setattr(autotune, "_fastest", lambda calls: timed.append(1) or fastest(calls))
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 12, 12, 3)), rng.standard_normal((3, 3, 3, 4))
    for _ in range(2):
        for xs, ws in ((x, w), (x.astype(np.float32), w.astype(np.float32)),
                       (np.concatenate([x, x]), w)):
            convolve.conv2d(xs, ws, padding=1)
    assert len(tuning) == 3
    assert len(timed) == 3 * 3  # three passes per shape and dtype


def test_autotune_picks_only_methods_that_do_the_shape(tuning):
    """A 5x5 stride-2 kernel: Winograd and shift-GEMM refuse it, gemm does it."""
    geometry = convolve.shapes.conv_geometry((1, 9, 9, 2), (5, 5, 2, 3), stride=2,
                                             padding=0, dilation=1, groups=1)
    plan = select.select_algorithm("auto", geometry, np.float64)
    assert {plan.forward_by, plan.grad_input_by, plan.grad_weight_by} <= {select.GEMM}


def test_depthwise_convolutions_keep_the_table(tuning):
    for c_out in (3, 6):
        geometry = convolve.shapes.conv_geometry((1, 9, 9, 3), (3, 3, 1, c_out), stride=1,
                                                 padding=1, dilation=1, groups=3)
        select.select_algorithm("auto", geometry)
    assert not tuning


def test_set_autotune_wants_a_bool():
    with pytest.raises(TypeError, match=r"enabled must be a bool \(True or False\); received 1"):
        convolve.set_autotune(1)
    assert convolve.autotune_enabled() is False


def test_empty_batches_keep_the_table(tuning):
    """Nothing to time: an empty batch runs, and its gradients come out empty or zero."""
    x = convolve.Tensor(np.zeros((0, 8, 8, 3)), requires_grad=True)
    w = convolve.Tensor(np.ones((3, 3, 3, 4)), requires_grad=True)
    y = convolve.conv2d(x, w, padding=1)
    assert y.shape == (0, 8, 8, 4)
    y.backward(np.zeros(y.shape))
    assert x.grad.shape == (0, 8, 8, 3)
    np.testing.assert_array_equal(w.grad, np.zeros((3, 3, 3, 4)))
    assert convolve.conv_transpose2d(np.zeros((0, 8, 8, 3)), np.ones((3, 3, 4, 3)),
                                     stride=2).shape == (0, 17, 17, 4)
    assert not tuning
