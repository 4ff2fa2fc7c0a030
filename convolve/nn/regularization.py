"""Dropout layer: active in training mode only."""

from __future__ import annotations

from typing import Any

from convolve import _args
from convolve.nn.module import Module
from convolve.ops.dropout import dropout


class Dropout(Module):
    """Zero each element with probability ``rate`` in training, scaling the rest by
    ``1 / (1 - rate)``; the identity in evaluation mode (``model.eval()``).

    Arguments:
        rate: the drop probability, in [0, 1].
        seed: None, an int or a ``numpy.random.Generator`` drawing the masks.
    """

    def __init__(self, rate: float, *, seed: Any = None) -> None:
        super().__init__()
        self.rate = _args.fraction(rate, "rate")
        self._rng = _args.generator(seed, "seed")

    def forward(self, x: Any) -> Any:
        return dropout(x, self.rate, training=self.training, rng=self._rng)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"
