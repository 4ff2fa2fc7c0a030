"""Dense (fully connected) layer and Flatten."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convolve import _args
from convolve.nn.activation import Activation
from convolve.nn.module import Module, cast_input
from convolve.nn.weighted import Weighted
from convolve.ops.linear import linear
from convolve.ops.math import reshape
from convolve.tensor import data


class Dense(Weighted):
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
        super().__init__(activation=activation, use_bias=use_bias, dtype=dtype, seed=seed)
        self.units = _args.integer(units, "units")
        self.in_features: int | None = None
        if in_features is not None:
            self._build(_args.integer(in_features, "in_features"))

    def _build(self, in_features: int) -> None:
        self._build_parameters((in_features, self.units), self.units)
        self.in_features = in_features

    def build_from_shapes(self, shapes: Any) -> None:
        shape = tuple(shapes["weight"])
        if len(shape) != 2:
            raise ValueError(f"Dense's weight must be 2-D (F_in, F_out); received shape {shape}")
        self._build(shape[0])

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
        return ", ".join([str(self.units), *self._shared_repr("in_features")])


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
