"""Activation functions, each forward beside its backward.

Each maps ``x`` of any shape, float32 or float64, to an output of the same shape and dtype:
arrays in, array out; a Tensor in, a recorded Tensor out. Integer input is refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convolve import _args
from convolve.tensor import data, record

# erf(a) by its everywhere-positive series below 2.5 (no cancellation), with fewer terms
# where a is small; erfc(a) by its continued fraction above. Each reaches double precision.
_SERIES_PIECES = ((1.0, 20), (2.5, 40))  # (a below this, number of terms)
_FRACTION_TERMS = 30
_SERIES_COEFFICIENTS = [1.0]  # c_n = 2^n / (1 * 3 * ... * (2n + 1))
for _n in range(1, _SERIES_PIECES[-1][1]):
    _SERIES_COEFFICIENTS.append(_SERIES_COEFFICIENTS[-1] * 2 / (2 * _n + 1))


def _erf_series(a: np.ndarray, terms: int) -> np.ndarray:
    """erf(a) = 2 / sqrt(pi) * exp(-a^2) * a * sum_n c_n a^(2n), by Horner in a^2."""
    z = a * a
    total = np.full_like(a, _SERIES_COEFFICIENTS[terms - 1])
    for c in _SERIES_COEFFICIENTS[terms - 2::-1]:
        total *= z
        total += c
    return 2 / math.sqrt(math.pi) * np.exp(-z) * a * total


def _erfc_fraction(a: np.ndarray) -> np.ndarray:
    """erfc(a) = exp(-a^2) / sqrt(pi) / (a + (1/2) / (a + 1 / (a + (3/2) / (a + ...))))."""
    denominator = a.copy()
    for k in range(_FRACTION_TERMS, 0, -1):
        np.divide(k / 2, denominator, out=denominator)
        denominator += a
    return np.exp(-a * a) / (math.sqrt(math.pi) * denominator)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x) = (1 + erf(x / sqrt(2))) / 2 in float64, accurate relative to Phi even in the
    far left tail."""
    a = np.abs(x) / math.sqrt(2)
    tail = np.empty_like(a)  # P(Z > |x|) = erfc(a) / 2
    lower = 0.0
    for upper, terms in _SERIES_PIECES:
        piece = (a >= lower) & (a < upper)
        tail[piece] = 0.5 - 0.5 * _erf_series(a[piece], terms)
        lower = upper
    far = a >= lower
    tail[far] = 0.5 * _erfc_fraction(a[far])
    return np.where(x > 0, 1 - tail, tail)


def _input(x: Any) -> np.ndarray:
    return _args.float_array(data(x), "x")


def relu(x: Any) -> Any:
    """``max(x, 0)`` elementwise, ``x: (...)`` -> ``(...)``; the gradient at 0 is 0, as
    PyTorch's."""
    xa = _input(x)
    positive = xa > 0
    # a product, not np.where: many times faster
    return record(np.maximum(xa, 0), (x,), lambda g: (g * positive,))


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
    """``x`` where ``x > 0``, else ``negative_slope * x``, elementwise: ``(...)`` ->
    ``(...)``."""
    negative_slope = _args.number(negative_slope, "negative_slope")
    xa = _input(x)
    positive = xa > 0
    y = np.where(positive, xa, xa * negative_slope)
    return record(y, (x,), lambda g: (np.where(positive, g, g * negative_slope),))


def tanh(x: Any) -> Any:
    """``tanh(x)`` elementwise: ``(...)`` -> ``(...)``."""
    y = np.tanh(_input(x))
    return record(y, (x,), lambda g: (g * (1 - y * y),))


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` elementwise, ``(...)`` -> ``(...)``, computed from ``exp(-|x|)``
    so that no exp overflows."""
    xa = _input(x)
    e = np.exp(-np.abs(xa))
    y = np.where(xa >= 0, 1, e) / (1 + e)
    return record(y, (x,), lambda g: (g * y * (1 - y),))


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis`` (the channels by default), ``(...)`` ->
    ``(...)``, shifted by the maximum (stable for any finite input)."""
    xa = _input(x)
    axis = _args.axis(axis, xa.ndim)
    e = np.exp(xa - xa.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    return record(y, (x,), lambda g: (y * (g - (g * y).sum(axis=axis, keepdims=True)),))


def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - log(sum(exp(x)))`` along ``axis``, ``(...)`` -> ``(...)``, by the log-sum-exp of
    the shifted input."""
    xa = _input(x)
    axis = _args.axis(axis, xa.ndim)
    shifted = xa - xa.max(axis=axis, keepdims=True)
    y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        return (g - np.exp(y) * g.sum(axis=axis, keepdims=True),)

    return record(y, (x,), backward)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_GELU_CUBIC = 0.044715


def gelu(x: Any, *, approximate: str = "none") -> Any:
    """``x * Phi(x)`` elementwise, ``(...)`` -> ``(...)``, with Phi the standard normal CDF
    (``approximate="none"``), or ``x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))``
    (``"tanh"``), as PyTorch's (whose ``approximate`` is keyword-only too). Computed in
    float64 and rounded to the input's dtype.
    """
    _args.choice(approximate, "approximate", ("none", "tanh"))
    xa = _input(x)
    x64 = xa.astype(np.float64, copy=False)
    if approximate == "none":
        cdf = _normal_cdf(x64)
        y = x64 * cdf

        def slope() -> np.ndarray:
            return cdf + x64 * np.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)
    else:
        t = np.tanh(_SQRT_2_OVER_PI * x64 * (1 + _GELU_CUBIC * x64 * x64))
        y = 0.5 * x64 * (1 + t)

        def slope() -> np.ndarray:
            inner = _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * x64 * x64)
            return 0.5 * (1 + t) + 0.5 * x64 * (1 - t * t) * inner

    return record(y.astype(xa.dtype, copy=False), (x,),
                  lambda g: ((g * slope()).astype(g.dtype, copy=False),))


__all__ = ["gelu", "leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "tanh"]
