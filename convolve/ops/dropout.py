"""Inverted dropout: forward beside backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve import _args
from convolve.tensor import data, record


def dropout(x: Any, rate: float, *, training: bool = True, rng: Any = None,
            rows: tuple[int, int] | None = None) -> Any:
    """Zero each element with probability ``rate`` and scale the rest by ``1 / (1 - rate)``,
    so the expected output equals ``x``; the identity (``x`` itself) when not training.

    Arguments:
        x: any shape; float32 or float64.
        rate: the drop probability, in [0, 1] (1 drops everything).
        training: False returns ``x`` unchanged.
        rng: None (fresh entropy), an int seed or a ``numpy.random.Generator``.
        rows: ``(start, total)``: ``x`` holds rows ``start:start + len(x)`` of a batch of
            ``total`` rows. The mask is drawn for the whole batch and these rows kept, so
            each example gets the same mask however a data-parallel step splits the batch.

    Returns:
        An array (or recorded Tensor) of ``x``'s shape and dtype.
    """
    rate = _args.fraction(rate, "rate")
    xa = _args.float_array(data(x), "x")
    generator = _args.generator(rng)
    training = _args.flag(training, "training")
    if not training or rate == 0:
        return x
    if rows is None:
        keep = generator.random(xa.shape) >= rate
    else:
        start, total = rows
        if xa.ndim == 0 or not 0 <= start <= total - len(xa):
            raise ValueError(
                "rows must be (start, total) with 0 <= start <= total - len(x); received "
                f"{rows} for x of shape {xa.shape}")
        keep = generator.random((total, *xa.shape[1:]))[start:start + len(xa)] >= rate
    scale = keep.astype(xa.dtype) / (1 - rate) if rate < 1 else np.zeros_like(xa)
    return record(xa * scale, (x,), lambda g: (g * scale,))


__all__ = ["dropout"]
