"""Loss functions: each one fused op with its own backward, returning a scalar Tensor."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve import _args
from convolve.tensor import Tensor, data, needs_grad, record


def _scalar_tensor(out: Any) -> Tensor:
    return out if isinstance(out, Tensor) else Tensor(out)


def cross_entropy(logits: Any, labels: Any) -> Tensor:
    """Mean over the batch of ``-log softmax(logits)[label]``, stable for any logit size.

    Arguments:
        logits: ``(N, K)`` unnormalised class scores, float32 or float64.
        labels: ``(N,)`` integer class indices in ``[0, K)``.

    Returns:
        A scalar Tensor in the logits' dtype. Its gradient with respect to the logits is
        ``(softmax(logits) - onehot(labels)) / N``.
    """
    z = _args.float_array(data(logits), "logits")
    y = np.asarray(data(labels))
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError("logits must be 2-D (N, K) with N >= 1 and K >= 1; received an array "
                         f"of shape {z.shape}")
    n, k = z.shape
    if y.dtype.kind not in "iu":
        raise TypeError(f"labels must be integer class indices; received "
                        f"{_args.describe(y)}")
    if y.shape != (n,):
        raise ValueError(f"labels must have shape (N,) = ({n},) to match logits of shape "
                         f"{z.shape}; received shape {y.shape}")
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= k:
        raise ValueError(f"labels must be in [0, {k}) for logits with {k} classes; received "
                         f"labels from {low} to {high}")
    shifted = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = np.asarray(-np.mean(shifted[rows, y] - log_norm[:, 0]), dtype=z.dtype)

    def backward(g: np.ndarray) -> tuple[np.ndarray, None]:
        grad = np.exp(shifted - log_norm)
        grad[rows, y] -= 1
        return grad * (g / n), None

    return _scalar_tensor(record(loss, (logits, labels), backward))


def mse(pred: Any, target: Any) -> Tensor:
    """Mean squared error ``mean((pred - target) ** 2)`` over every element.

    Arguments:
        pred, target: float arrays or Tensors of the same shape (no broadcasting).

    Returns:
        A scalar Tensor; gradients flow to both inputs.
    """
    p = _args.float_array(data(pred), "pred")
    t = _args.float_array(data(target), "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape; received pred of shape "
                         f"{p.shape} and target of shape {t.shape}")
    if p.size == 0:
        raise ValueError(f"pred must not be empty; received an array of shape {p.shape}")
    diff = p - t
    loss = np.asarray(np.mean(np.square(diff)), dtype=diff.dtype)

    def backward(g: np.ndarray) -> tuple[Any, Any]:
        grad = diff * (2 * g / diff.size)
        return (grad.astype(p.dtype, copy=False) if needs_grad(pred) else None,
                -grad.astype(t.dtype, copy=False) if needs_grad(target) else None)

    return _scalar_tensor(record(loss, (pred, target), backward))
