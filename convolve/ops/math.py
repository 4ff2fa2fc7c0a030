"""Elementwise arithmetic, reductions and reshaping, each forward beside its backward."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convolve import _args
from convolve.tensor import data, needs_grad, record


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``, undoing NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _shape(value: Any) -> tuple[int, ...]:
    return np.shape(data(value))


def add(a: Any, b: Any) -> Any:
    out = np.add(data(a), data(b))
    sa, sb = _shape(a), _shape(b)
    return record(out, (a, b), lambda g: (unbroadcast(g, sa), unbroadcast(g, sb)))


def subtract(a: Any, b: Any) -> Any:
    out = np.subtract(data(a), data(b))
    sa, sb = _shape(a), _shape(b)
    return record(out, (a, b), lambda g: (unbroadcast(g, sa), unbroadcast(-g, sb)))


def multiply(a: Any, b: Any) -> Any:
    x, y = data(a), data(b)
    out = np.multiply(x, y)

    def backward(g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        return (unbroadcast(g * y, np.shape(x)) if needs_grad(a) else None,
                unbroadcast(g * x, np.shape(y)) if needs_grad(b) else None)

    return record(out, (a, b), backward)


def divide(a: Any, b: Any) -> Any:
    x, y = data(a), data(b)
    out = np.divide(x, y)

    def backward(g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        return (unbroadcast(g / y, np.shape(x)) if needs_grad(a) else None,
                unbroadcast(-g * out / y, np.shape(y)) if needs_grad(b) else None)

    return record(out, (a, b), backward)


def negative(a: Any) -> Any:
    return record(np.negative(data(a)), (a,), lambda g: (-g,))


def power(a: Any, exponent: float) -> Any:
    """``a ** exponent`` for a constant exponent (kept a Python int or float, so that it does
    not change the dtype of ``a`` as a NumPy scalar would)."""
    if _args.is_int(exponent):
        exponent = int(exponent)
    else:
        exponent = _args.number(exponent, "exponent")
    x = data(a)
    out = np.power(x, exponent)
    return record(out, (a,), lambda g: (g * exponent * np.power(x, exponent - 1),))


def exp(a: Any) -> Any:
    out = np.exp(data(a))
    return record(out, (a,), lambda g: (g * out,))


def log(a: Any) -> Any:
    x = data(a)
    return record(np.log(x), (a,), lambda g: (g / x,))


def maximum(a: Any, b: Any) -> Any:
    """Elementwise maximum; at ties the gradient goes to ``a``."""
    x, y = data(a), data(b)
    out = np.maximum(x, y)
    pick_a = x >= y

    def backward(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (unbroadcast(np.where(pick_a, g, 0), np.shape(x)),
                unbroadcast(np.where(pick_a, 0, g), np.shape(y)))

    return record(out, (a, b), backward)


def matmul(a: Any, b: Any) -> Any:
    x, y = data(a), data(b)
    out = np.matmul(x, y)

    def backward(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x2 = x[None, :] if x.ndim == 1 else x
        y2 = y[:, None] if y.ndim == 1 else y
        g2 = g
        if x.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if y.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        gx = g2 @ np.swapaxes(y2, -1, -2)
        gy = np.swapaxes(x2, -1, -2) @ g2
        gx = gx.reshape(*gx.shape[:-2], -1) if x.ndim == 1 else gx
        gy = gy[..., 0] if y.ndim == 1 else gy
        return unbroadcast(gx, x.shape), unbroadcast(gy, y.shape)

    return record(out, (a, b), backward)


def sum(a: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    x = data(a)
    keepdims = _args.flag(keepdims, "keepdims")
    out = np.sum(x, axis=axis, keepdims=keepdims)

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        if axis is not None and not keepdims:
            g = np.expand_dims(g, axis)
        return (np.broadcast_to(g, x.shape).copy(),)

    return record(np.asarray(out), (a,), backward)


def mean(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    shape = np.shape(data(a))
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
    count = math.prod(shape[i] for i in axes)
    return multiply(sum(a, axis=axis, keepdims=keepdims), 1.0 / count if count else 1.0)


def reshape(a: Any, shape: Any) -> Any:
    x = data(a)
    return record(np.reshape(x, shape), (a,), lambda g: (g.reshape(x.shape),))


def transpose(a: Any, axes: Any = None) -> Any:
    x = data(a)
    inverse = None if axes is None else np.argsort(axes)
    return record(np.transpose(x, axes), (a,), lambda g: (np.transpose(g, inverse),))


def getitem(a: Any, index: Any) -> Any:
    x = data(a)
    index = data(index)

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        grad = np.zeros_like(x)
        np.add.at(grad, index, g)
        return (grad,)

    return record(np.asarray(x[index]), (a,), backward)


def astype(a: Any, dtype: Any) -> Any:
    x = data(a)
    return record(x.astype(dtype), (a,), lambda g: (g.astype(x.dtype),))


def concatenate(items: list[Any], axis: int = 0) -> Any:
    arrays = [data(i) for i in items]
    bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
    return record(np.concatenate(arrays, axis=axis), tuple(items),
                  lambda g: tuple(np.split(g, bounds, axis=axis)))


__all__ = [
    "add",
    "astype",
    "concatenate",
    "divide",
    "exp",
    "getitem",
    "log",
    "matmul",
    "maximum",
    "mean",
    "multiply",
    "negative",
    "power",
    "reshape",
    "subtract",
    "sum",
    "transpose",
    "unbroadcast",
]
