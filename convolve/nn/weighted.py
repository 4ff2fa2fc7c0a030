"""What every layer with a weight shares: an activation, an optional bias, a parameter
dtype, a random generator for the initial weights and a lazy build."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve import _args
from convolve.nn import init
from convolve.nn.activation import Activation, resolve_activation
from convolve.nn.module import Module
from convolve.tensor import Tensor


class Weighted(Module):
    """Base of Conv2D, DepthwiseConv2D, ConvTranspose2D and Dense.

    ``weight`` (and ``bias`` when ``use_bias``) stay ``None`` until ``_build_parameters``
    knows their shapes: from the layer's input size argument or from its first input.
    """

    def __init__(self, *, activation: Activation, use_bias: bool, dtype: Any,
                 seed: Any) -> None:
        super().__init__()
        self.activation, activation_fn = resolve_activation(activation)
        # A plain attribute even when the callable is a Module (e.g. nn.ReLU()): it holds no
        # parameters and must not appear as a child in repr() or summary().
        object.__setattr__(self, "_activation", activation_fn)
        self.use_bias = _args.flag(use_bias, "use_bias")
        self.dtype = _args.float_dtype(dtype)
        self._rng = _args.generator(seed, "seed")
        self.register_parameter("weight", None)
        if self.use_bias:
            self.register_parameter("bias", None)
        else:
            self.bias = None

    def _build_parameters(self, weight_shape: tuple[int, ...], bias_size: int) -> None:
        """He- or Glorot-uniform ``weight`` (by the activation) and a zero ``bias``."""
        # drawn in float64 first: refuse a size that cannot fit before drawing
        _args.check_fits(weight_shape, np.float64, f"the weight of {type(self).__name__}")
        self.weight = Tensor(init.for_activation(self.activation, weight_shape, self._rng,
                                                 self.dtype), requires_grad=True)
        if self.use_bias:
            self.bias = Tensor(np.zeros(bias_size, self.dtype), requires_grad=True)

    def _shared_repr(self, input_size: str) -> list[str]:
        """repr parts for the shared settings that differ from their defaults, and the
        input size (the attribute ``input_size``) once known."""
        parts = []
        if self.activation is not None:
            parts.append(f"activation={self.activation!r}")
        if not self.use_bias:
            parts.append("use_bias=False")
        if getattr(self, input_size) is not None:
            parts.append(f"{input_size}={getattr(self, input_size)}")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        return parts
