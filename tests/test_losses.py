"""cross_entropy and mse: against PyTorch, finite differences, stability, pinned errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convolve import Tensor, losses
from tests.gradcheck import gradcheck


@st.composite
def classification(draw, dtype=np.float64):
    n, k = draw(st.integers(1, 6)), draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.1, 1.0, 30.0]))
    logits = (rng.standard_normal((n, k)) * scale).astype(dtype)
    labels = rng.integers(0, k, n)
    return logits, labels


def test_cross_entropy_value_by_hand():
    logits = np.array([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]])
    labels = np.array([0, 2])
    expected = np.mean([-np.log(np.exp(2) / np.exp([2, 1, 0.1]).sum()), np.log(3)])
    loss = losses.cross_entropy(logits, labels)
    assert isinstance(loss, Tensor) and loss.shape == ()
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_cross_entropy_matches_torch(dtype, data):
    torch = pytest.importorskip("torch")
    logits, labels = data.draw(classification(dtype))
    z = Tensor(logits, requires_grad=True)
    loss = losses.cross_entropy(z, labels)
    loss.backward()
    zt = torch.from_numpy(logits).requires_grad_(True)
    expected = torch.nn.functional.cross_entropy(zt, torch.from_numpy(labels))
    expected.backward()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss.dtype == dtype and z.grad.dtype == dtype
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=tol, atol=tol)
    np.testing.assert_allclose(z.grad, zt.grad.numpy(), rtol=tol, atol=tol)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_cross_entropy_gradcheck(data):
    logits, labels = data.draw(classification())
    gradcheck(lambda z: losses.cross_entropy(z, labels), [logits])


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]], np.float32)
    z = Tensor(logits, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = losses.cross_entropy(z, np.array([1, 2]))
        loss.backward()
    np.testing.assert_allclose(loss.item(), 1000.0, rtol=1e-6)
    np.testing.assert_allclose(z.grad, [[0.5, -0.5, 0], [0, 0, 0]], atol=1e-6)


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    logits = np.random.default_rng(0).standard_normal((4, 3))
    labels = np.array([0, 1, 2, 1])
    z = Tensor(logits, requires_grad=True)
    losses.cross_entropy(z, labels).backward()
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(z.grad, (p - np.eye(3)[labels]) / 4, rtol=1e-12)


@pytest.mark.parametrize(("logits", "labels", "error", "match"), [
    (np.zeros(3), np.array([0]), ValueError,
     r"logits must be 2-D \(N, K\) with N >= 1 and K >= 1; received an array of shape \(3,\)"),
    (np.zeros((0, 3)), np.zeros(0, int), ValueError, r"received an array of shape \(0, 3\)"),
    (np.zeros((2, 3), int), np.array([0, 1]), TypeError,
     "logits must be a floating-point array"),
    (np.zeros((2, 3)), np.array([0.0, 1.0]), TypeError,
     "labels must be integer class indices; received ndarray of shape \\(2,\\) and dtype "
     "float64"),
    (np.zeros((2, 3)), np.array([[0], [1]]), ValueError,
     r"labels must have shape \(N,\) = \(2,\) to match logits of shape \(2, 3\); received "
     r"shape \(2, 1\)"),
    (np.zeros((2, 3)), np.array([0, 3]), ValueError,
     r"labels must be in \[0, 3\) for logits with 3 classes; received labels from 0 to 3"),
    (np.zeros((2, 3)), np.array([-1, 0]), ValueError,
     r"received labels from -1 to 0"),
])
def test_cross_entropy_errors(logits, labels, error, match):
    with pytest.raises(error, match=match):
        losses.cross_entropy(logits, labels)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 99))
def test_mse_matches_torch(dtype, shape, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    p, t = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    pt, tt = Tensor(p, requires_grad=True), Tensor(t, requires_grad=True)
    loss = losses.mse(pt, tt)
    loss.backward()
    a, b = (torch.from_numpy(v).requires_grad_(True) for v in (p, t))
    expected = torch.nn.functional.mse_loss(a, b)
    expected.backward()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss.shape == () and loss.dtype == dtype
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=tol, atol=tol)
    np.testing.assert_allclose(pt.grad, a.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(tt.grad, b.grad.numpy(), rtol=tol, atol=tol)


def test_mse_gradcheck():
    rng = np.random.default_rng(1)
    gradcheck(losses.mse, [rng.standard_normal((3, 4)), rng.standard_normal((3, 4))])


def test_losses_of_arrays_are_tensors():
    assert isinstance(losses.mse(np.ones(2), np.zeros(2)), Tensor)
    assert isinstance(losses.cross_entropy(np.ones((1, 2)), np.array([0])), Tensor)


@pytest.mark.parametrize(("pred", "target", "error", "match"), [
    (np.zeros((2, 3)), np.zeros(3), ValueError,
     r"pred and target must have the same shape; received pred of shape \(2, 3\) and target "
     r"of shape \(3,\)"),
    (np.zeros(0), np.zeros(0), ValueError, r"pred must not be empty; received an array of "
     r"shape \(0,\)"),
    (np.zeros(2, int), np.zeros(2), TypeError, "pred must be a floating-point array"),
    (np.zeros(2), np.zeros(2, int), TypeError, "target must be a floating-point array"),
])
def test_mse_errors(pred, target, error, match):
    with pytest.raises(error, match=match):
        losses.mse(pred, target)
