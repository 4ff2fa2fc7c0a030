"""Inverted dropout: forward beside backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve import _args
from convolve.tensor import data, record


def dropout(x: Any, rate: float, *, training: bool = True, rng: Any = None) -> Any:
    """Zero each element with probability ``rate`` and scale the rest by ``1 / (1 - rate)``,
    so the expected output equals ``x``; the identity (``x`` itself) when not training.

    Arguments:
        x: any shape; float32 or float64.
        rate: the drop probability, in [0, 1] (1 drops everything).
        training: False returns ``x`` unchanged.
        rng: None (fresh entropy), an int seed or a ``numpy.random.Generator``.

    Returns:
        An array (or recorded Tensor) of ``x``'s shape and dtype.
    """
    rate = _args.fraction(rate, "rate")
    xa = _args.float_array(data(x), "x")
    generator = _args.generator(rng)
    training = _args.flag(training, "training")
    if not training or rate == 0:
        return x
    keep = generator.random(xa.shape) >= rate
    scale = keep.astype(xa.dtype) / (1 - rate) if rate < 1 else np.zeros_like(xa)
    return record(xa * scale, (x,), lambda g: (g * scale,))


__all__ = ["dropout"]
