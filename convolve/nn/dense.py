"""Dense (fully connected) layer and Flatten."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convolve import _args
from convolve.nn import init
from convolve.nn.activation import Activation, resolve_activation
from convolve.nn.module import Module, cast_input
from convolve.ops.linear import linear
from convolve.ops.math import reshape
from convolve.tensor import Tensor, data


class Dense(Module):
    """``activation(x @ weight + bias)`` on the last axis.

    Arguments:
        units: output features ``F_out``.
        activation: as ``Conv2D``'s (a name, None or a callable).
        use_bias: whether to add a learned bias.
        in_features: ``F_in``; None learns it from the first input.
        dtype: of the parameters (float32 or float64); floating input is cast to it.
        seed: None, an int or a ``numpy.random.Generator`` for the initial weights.

    Shapes: ``x: (..., F_in)`` -> ``(..., F_out)``; ``weight: (F_in, F_out)``,
    ``bias: (F_out,)``.
    """

    def __init__(self, units: int, activation: Activation = None, *, use_bias: bool = True,
                 in_features: int | None = None, dtype: Any = np.float32,
                 seed: Any = None) -> None:
        super().__init__()
        self.units = _args.integer(units, "units")
        self.activation, activation_fn = resolve_activation(activation)
        # A plain attribute even when the callable is a Module (e.g. nn.ReLU()): it holds no
        # parameters and must not appear as a child in repr() or summary().
        object.__setattr__(self, "_activation", activation_fn)
        self.use_bias = bool(use_bias)
        self.dtype = _args.float_dtype(dtype)
        self._rng = _args.generator(seed, "seed")
        self.in_features: int | None = None
        self.register_parameter("weight", None)
        if self.use_bias:
            self.register_parameter("bias", None)
        else:
            self.bias = None
        if in_features is not None:
            self._build(_args.integer(in_features, "in_features"))

    def _build(self, in_features: int) -> None:
        shape = (in_features, self.units)
        self.weight = Tensor(init.for_activation(self.activation, shape, self._rng, self.dtype),
                             requires_grad=True)
        if self.use_bias:
            self.bias = Tensor(np.zeros(self.units, self.dtype), requires_grad=True)
        self.in_features = in_features

    def forward(self, x: Any) -> Any:
        x = cast_input(x, self.dtype)
        shape = data(x).shape
        if self.in_features is None:
            if not shape:
                raise ValueError("x must be at least 1-D (..., F_in); received an array of "
                                 "shape ()")
            self._build(shape[-1])
        elif not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"Dense was built for inputs with {self.in_features} features on the last "
                f"axis (its weight has shape {self.weight.shape}); received x of shape {shape}")
        return self._activation(linear(x, self.weight, self.bias))

    def extra_repr(self) -> str:
        parts = [str(self.units)]
        if self.activation is not None:
            parts.append(f"activation={self.activation!r}")
        if not self.use_bias:
            parts.append("use_bias=False")
        if self.in_features is not None:
            parts.append(f"in_features={self.in_features}")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        return ", ".join(parts)


class Flatten(Module):
    """Image to feature vector, keeping the batch axis.

    ``(N, H, W, C)`` -> ``(N, H * W * C)``; one image ``(H, W, C)`` -> ``(H * W * C,)``, as
    every op keeps an unbatched input unbatched. 1-D and 2-D input is already flat.
    """

    def forward(self, x: Any) -> Any:
        shape = np.shape(data(x))
        _args.rank(shape, "x", {**_args.IMAGE, 2: "(N, F)", 1: "(F,)"})
        if len(shape) == 4:
            return reshape(x, (shape[0], math.prod(shape[1:])))
        if len(shape) == 3:
            return reshape(x, (-1,))
        return x
