"""More elementwise functions, reductions and array ops, each forward beside its backward.

The ops an imported ONNX graph needs beyond ``convolve.ops.math`` and the activations:
arrays in, array out; a Tensor in, a recorded Tensor out. Integer arrays pass through the
ops that make sense for them (shape arithmetic) with NumPy's semantics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from convolve.ops.activation import _normal_cdf
from convolve.ops.math import unbroadcast
from convolve.tensor import data, needs_grad, record


def _unary(x: Any, forward: Callable[[np.ndarray], np.ndarray],
           slope: Callable[[np.ndarray, np.ndarray], Any] | None) -> Any:
    """``forward(x)`` with the gradient ``g * slope(x, y)`` (None: no gradient, as for
    rounding, whose derivative is zero almost everywhere)."""
    xa = data(x)
    y = np.asarray(forward(xa))
    if slope is None:
        return record(y, (x,), lambda g: (np.zeros_like(xa),))
    return record(y, (x,), lambda g: (g * slope(xa, y),))


def sqrt(x: Any) -> Any:
    """``sqrt(x)``: ``(...)`` -> ``(...)``."""
    return _unary(x, np.sqrt, lambda xa, y: 0.5 / y)


def absolute(x: Any) -> Any:
    """``|x|``; the gradient at 0 is 0."""
    return _unary(x, np.abs, lambda xa, y: np.sign(xa))


def floor(x: Any) -> Any:
    return _unary(x, np.floor, None)


def ceil(x: Any) -> Any:
    return _unary(x, np.ceil, None)


def rint(x: Any) -> Any:
    """Rounding to the nearest integer, halves to even."""
    return _unary(x, np.rint, None)


def sign(x: Any) -> Any:
    return _unary(x, np.sign, None)


def reciprocal(x: Any) -> Any:
    return _unary(x, lambda xa: 1 / xa, lambda xa, y: -y * y)


def erf(x: Any) -> Any:
    """The error function, from the normal CDF: ``erf(x) = 2 Phi(x sqrt(2)) - 1``."""
    def forward(xa: np.ndarray) -> np.ndarray:
        wide = np.asarray(xa, dtype=np.float64)
        return (2 * _normal_cdf(wide * math.sqrt(2)) - 1).astype(xa.dtype, copy=False)

    return _unary(x, forward, lambda xa, y: (2 / math.sqrt(math.pi)) * np.exp(-xa * xa))


def elu(x: Any, alpha: float = 1.0) -> Any:
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    def forward(xa: np.ndarray) -> np.ndarray:
        return np.where(xa > 0, xa, alpha * np.expm1(np.minimum(xa, 0))).astype(xa.dtype)

    return _unary(x, forward, lambda xa, y: np.where(xa > 0, 1, y + alpha).astype(xa.dtype))


def selu(x: Any, alpha: float, gamma: float) -> Any:
    """``gamma * x`` where ``x > 0``, else ``gamma * alpha * (exp(x) - 1)``."""
    def forward(xa: np.ndarray) -> np.ndarray:
        neg = alpha * np.expm1(np.minimum(xa, 0))
        return (gamma * np.where(xa > 0, xa, neg)).astype(xa.dtype)

    return _unary(x, forward, lambda xa, y: np.where(
        xa > 0, gamma, y + gamma * alpha).astype(xa.dtype))


def softplus(x: Any) -> Any:
    """``log(1 + exp(x))``, without overflow."""
    def forward(xa: np.ndarray) -> np.ndarray:
        return (np.maximum(xa, 0) + np.log1p(np.exp(-np.abs(xa)))).astype(xa.dtype)

    def slope(xa: np.ndarray, y: np.ndarray) -> np.ndarray:
        e = np.exp(-np.abs(xa))
        return (np.where(xa >= 0, 1, e) / (1 + e)).astype(xa.dtype)

    return _unary(x, forward, slope)


def hard_sigmoid(x: Any, alpha: float = 0.2, beta: float = 0.5) -> Any:
    """``clip(alpha * x + beta, 0, 1)``."""
    def forward(xa: np.ndarray) -> np.ndarray:
        return np.clip(alpha * xa + beta, 0, 1).astype(xa.dtype)

    return _unary(x, forward, lambda xa, y: (
        alpha * ((y > 0) & (y < 1))).astype(xa.dtype))


def clip(x: Any, low: Any = None, high: Any = None) -> Any:
    """``x`` limited to ``[low, high]`` (None: no limit); the gradient passes where ``x``
    is inside the limits."""
    xa = data(x)
    y = xa
    if low is not None:
        y = np.maximum(y, np.asarray(low, dtype=xa.dtype))
    if high is not None:
        y = np.minimum(y, np.asarray(high, dtype=xa.dtype))
    y = np.asarray(y)
    return record(y, (x,), lambda g: (g * (y == xa),))


def minimum(a: Any, b: Any) -> Any:
    """Elementwise minimum; at ties the gradient goes to ``a``."""
    x, y = data(a), data(b)
    out = np.minimum(x, y)
    pick_a = x <= y

    def backward(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (unbroadcast(np.where(pick_a, g, 0), np.shape(x)),
                unbroadcast(np.where(pick_a, 0, g), np.shape(y)))

    return record(out, (a, b), backward)


def where(condition: Any, a: Any, b: Any) -> Any:
    """``a`` where ``condition``, else ``b``, broadcast together."""
    c, x, y = np.asarray(data(condition), dtype=bool), data(a), data(b)
    out = np.where(c, x, y)

    def backward(g: np.ndarray) -> tuple[None, Any, Any]:
        return (None,
                unbroadcast(np.where(c, g, 0), np.shape(x)) if needs_grad(a) else None,
                unbroadcast(np.where(c, 0, g), np.shape(y)) if needs_grad(b) else None)

    return record(out, (condition, a, b), backward)


def power(a: Any, b: Any) -> Any:
    """``a ** b`` elementwise for arrays ``a`` and ``b``, broadcast together; the result has
    ``a``'s dtype (ONNX's Pow)."""
    x, y = data(a), data(b)
    out = np.power(x, np.asarray(y).astype(np.result_type(x), copy=False)
                   if np.asarray(y).dtype.kind == "f" else y).astype(np.result_type(x))

    def backward(g: np.ndarray) -> tuple[Any, Any]:
        gx = gy = None
        if needs_grad(a):
            gx = unbroadcast(g * y * np.power(x, y - 1), np.shape(x))
        if needs_grad(b):
            with np.errstate(divide="ignore", invalid="ignore"):
                gy = unbroadcast(g * out * np.where(x > 0, np.log(np.where(x > 0, x, 1)), 0),
                                 np.shape(y))
        return gx, gy

    return record(out, (a, b), backward)


def reduce_extreme(x: Any, axis: tuple[int, ...] | None, keepdims: bool, *,
                   largest: bool) -> Any:
    """The maximum (``largest``) or minimum over ``axis``; tied extremes share the
    gradient equally."""
    xa = data(x)
    reduce = np.max if largest else np.min
    # an empty reduction gives the identity (-inf for a maximum), as ONNX's
    initial = {} if xa.dtype.kind != "f" else {"initial": -np.inf if largest else np.inf}
    kept = reduce(xa, axis=axis, keepdims=True, **initial)
    out = kept if keepdims else np.asarray(reduce(xa, axis=axis, keepdims=False, **initial))

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        mask = (xa == kept).astype(xa.dtype)
        mask /= mask.sum(axis=axis, keepdims=True)
        return (mask * g.reshape(kept.shape),)

    return record(out, (x,), backward)


def broadcast_to(x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` broadcast to ``shape`` (a copy)."""
    xa = data(x)
    out = np.array(np.broadcast_to(xa, shape))
    return record(out, (x,), lambda g: (unbroadcast(g, np.shape(xa)),))


def tile(x: Any, repeats: tuple[int, ...]) -> Any:
    """``x`` repeated ``repeats[i]`` times along axis ``i`` (as many repeats as axes)."""
    xa = data(x)
    out = np.tile(xa, repeats)

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        split = [n for pair in zip(repeats, xa.shape) for n in pair]
        return (g.reshape(split).sum(axis=tuple(range(0, 2 * xa.ndim, 2))),)

    return record(out, (x,), backward)


def pad(x: Any, widths: list[tuple[int, int]], *, mode: str = "constant",
        value: float = 0.0) -> Any:
    """``x`` padded by ``widths`` (one ``(before, after)`` per axis, each >= 0) in
    ``mode``: ``"constant"`` (``value``), ``"reflect"`` (mirror without the edge) or
    ``"edge"`` (repeat the edge)."""
    xa = data(x)
    if mode == "constant":
        out = np.pad(xa, widths, mode="constant", constant_values=value)
    else:
        out = np.pad(xa, widths, mode=mode)
    inner = tuple(slice(b, b + n) for (b, _), n in zip(widths, xa.shape))
    if mode == "constant":
        return record(out, (x,), lambda g: (np.ascontiguousarray(g[inner]),))
    source = np.pad(np.arange(xa.size).reshape(xa.shape), widths, mode=mode)

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        return (np.bincount(source.ravel(), weights=g.ravel(),
                            minlength=xa.size).reshape(xa.shape).astype(g.dtype),)

    return record(out, (x,), backward)


__all__ = [
    "absolute", "broadcast_to", "ceil", "clip", "elu", "erf", "floor", "hard_sigmoid",
    "minimum", "pad", "power", "reciprocal", "reduce_extreme", "rint", "selu", "sign", "softplus",
    "sqrt", "tile", "where",
]
