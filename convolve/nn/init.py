"""Weight initialisation, as Keras defines it, for weights laid out ``(..., fan_in_axis,
fan_out_axis)``: ``(KH, KW, C_in // groups, C_out)`` for convolutions, ``(F_in, F_out)`` for
dense layers."""

from __future__ import annotations

import math

import numpy as np

# Activations after which He initialisation keeps the forward variance (half the units off).
RELU_LIKE = ("relu", "leaky_relu", "gelu")


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)``: the last two axes times the receptive field (the others)."""
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


def he_uniform(shape: tuple[int, ...], rng: np.random.Generator,
               dtype: np.dtype) -> np.ndarray:
    """Uniform on ``[-limit, limit]`` with ``limit = sqrt(6 / fan_in)``."""
    limit = math.sqrt(6.0 / fans(shape)[0])
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_uniform(shape: tuple[int, ...], rng: np.random.Generator,
                   dtype: np.dtype) -> np.ndarray:
    """Uniform on ``[-limit, limit]`` with ``limit = sqrt(6 / (fan_in + fan_out))``."""
    limit = math.sqrt(6.0 / sum(fans(shape)))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def for_activation(name: str | None, shape: tuple[int, ...], rng: np.random.Generator,
                   dtype: np.dtype) -> np.ndarray:
    """He-uniform before a ReLU-like activation, Glorot-uniform otherwise."""
    init = he_uniform if name in RELU_LIKE else glorot_uniform
    return init(shape, rng, dtype)
