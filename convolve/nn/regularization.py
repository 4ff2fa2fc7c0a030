"""Dropout layer: active in training mode only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from convolve import _args
from convolve.nn.module import Module
from convolve.ops.dropout import dropout

# (start, total) while a data-parallel step runs a slice of a global batch, else None.
_batch_rows: ContextVar[tuple[int, int] | None] = ContextVar("batch_rows", default=None)


@contextlib.contextmanager
def global_batch_rows(start: int, total: int) -> Iterator[None]:
    """Within this block the model's input is rows ``start:`` of a global batch of
    ``total`` rows: Dropout draws masks for the whole batch and keeps those rows."""
    token = _batch_rows.set((start, total))
    try:
        yield
    finally:
        _batch_rows.reset(token)


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
        return dropout(x, self.rate, training=self.training, rng=self._rng,
                       rows=_batch_rows.get())

    def extra_repr(self) -> str:
        return f"rate={self.rate}"
