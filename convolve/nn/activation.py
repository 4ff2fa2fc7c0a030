"""Activations by name for layers' ``activation=`` argument, and activation layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from convolve import _args
from convolve.nn.module import Module
from convolve.ops import activation as ops

Activation = str | Callable[[Any], Any] | None

ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "relu": ops.relu,
    "leaky_relu": ops.leaky_relu,
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "softmax": ops.softmax,
    "gelu": ops.gelu,
}


def _identity(x: Any) -> Any:
    return x


def resolve_activation(activation: Activation) -> tuple[str | None, Callable[[Any], Any]]:
    """``(name, function)`` for a name, None/"linear" (identity) or a callable.

    The name picks the initialisation (He for ReLU-like names); a callable is named by its
    ``__name__``.
    """
    if activation is None or activation == "linear":
        return None, _identity
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            names = ", ".join(map(repr, (*ACTIVATIONS, "linear")))
            raise ValueError(f"activation must be one of {names}, None or a callable; "
                             f"received {activation!r}")
        return activation, ACTIVATIONS[activation]
    if callable(activation):
        return getattr(activation, "__name__", type(activation).__name__), activation
    raise TypeError(f"activation must be a name, None or a callable; received {activation!r}")


class ReLU(Module):
    """``max(x, 0)`` elementwise."""

    def forward(self, x: Any) -> Any:
        return ops.relu(x)


class LeakyReLU(Module):
    """``x`` where positive, ``negative_slope * x`` elsewhere."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = _args.number(negative_slope, "negative_slope")

    def forward(self, x: Any) -> Any:
        return ops.leaky_relu(x, negative_slope=self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """``tanh(x)`` elementwise: ``convolve.tanh``."""

    def forward(self, x: Any) -> Any:
        return ops.tanh(x)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))`` elementwise: ``convolve.sigmoid``."""

    def forward(self, x: Any) -> Any:
        return ops.sigmoid(x)


class GELU(Module):
    """``x * Phi(x)`` elementwise (exact, not the tanh approximation): ``convolve.gelu``."""

    def forward(self, x: Any) -> Any:
        return ops.gelu(x)


class Softmax(Module):
    """Softmax along ``axis`` (the channels by default)."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Any) -> Any:
        return ops.softmax(x, axis=self.axis)

    def extra_repr(self) -> str:
        return "" if self.axis == -1 else f"axis={self.axis}"
