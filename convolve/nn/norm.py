"""Batch normalisation layer: learned scale and shift, running statistics as buffers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convolve import _args
from convolve.nn.module import Module, cast_input
from convolve.ops.norm import batch_norm
from convolve.tensor import Tensor, data


class BatchNorm2D(Module):
    """Per-channel normalisation of channels-last input: ``convolve.batch_norm``.

    In training it normalises with the batch's statistics (over every axis but the
    channels) and updates the running ones, ``running = (1 - momentum) * running +
    momentum * batch`` (PyTorch's convention); in evaluation it uses the running ones.

    Arguments:
        momentum: weight of each new batch in the running statistics, in [0, 1].
        eps: added to the variance.
        in_channels: ``C``; None learns it from the first input.
        dtype: of the parameters and buffers (float32 or float64).

    ``allreduce`` (None) is the batch statistics' sum over the processes of a data-parallel
    run; ``convolve.distributed`` sets it during training to synchronise them.

    Shapes: ``x: (N, H, W, C)`` (or any ``(..., C)``) -> same shape; parameters
    ``gamma, beta: (C,)``; buffers ``running_mean, running_var: (C,)``.
    """

    def __init__(self, *, momentum: float = 0.1, eps: float = 1e-5,
                 in_channels: int | None = None, dtype: Any = np.float32) -> None:
        super().__init__()
        self.momentum = _args.fraction(momentum, "momentum")
        self.eps = _args.real(eps, "eps")
        self.dtype = _args.float_dtype(dtype)
        self.in_channels: int | None = None
        self.allreduce: Callable[[np.ndarray], np.ndarray] | None = None
        for name in ("gamma", "beta"):
            self.register_parameter(name, None)
        for name in ("running_mean", "running_var"):
            self.register_buffer(name, None)
        if in_channels is not None:
            self._build(_args.integer(in_channels, "in_channels"))

    def _build(self, channels: int) -> None:
        self.gamma = Tensor(np.ones(channels, self.dtype), requires_grad=True)
        self.beta = Tensor(np.zeros(channels, self.dtype), requires_grad=True)
        self.running_mean = np.zeros(channels, self.dtype)
        self.running_var = np.ones(channels, self.dtype)
        self.in_channels = channels

    def build_from_shapes(self, shapes: Any) -> None:
        shape = tuple(shapes["gamma"])
        if len(shape) != 1:
            raise ValueError(f"BatchNorm2D's gamma must be 1-D (C,); received shape {shape}")
        self._build(shape[0])

    def forward(self, x: Any) -> Any:
        x = cast_input(x, self.dtype)
        shape = data(x).shape
        if self.in_channels is None:
            if len(shape) >= 2:  # otherwise the op refuses x with its own message
                self._build(shape[-1])
        elif not shape or shape[-1] != self.in_channels:
            raise ValueError(
                f"BatchNorm2D was built for inputs with {self.in_channels} channels; "
                f"received x of shape {shape}")
        return batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                          training=self.training, momentum=self.momentum, eps=self.eps,
                          allreduce=self.allreduce)

    def extra_repr(self) -> str:
        parts = []
        if self.momentum != 0.1:
            parts.append(f"momentum={self.momentum}")
        if self.eps != 1e-5:
            parts.append(f"eps={self.eps}")
        if self.in_channels is not None:
            parts.append(f"in_channels={self.in_channels}")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        return ", ".join(parts)
