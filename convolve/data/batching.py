"""Mini-batches over in-memory arrays, shuffled reproducibly from (seed, epoch)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from convolve import _args
from convolve._args import describe

# augment(images, rng=Generator) -> images of the same shape; see convolve.data.augment.
AugmentFn = Callable[..., np.ndarray]


class DataLoader:
    """Iterate ``(images, labels)`` mini-batches, in a new order on every pass.

    Arguments:
        images: ``(N, ...)``, e.g. ``(N, H, W, C)``.
        labels: ``(N, ...)``, e.g. ``(N,)`` int64.
        batch_size: samples per batch; the last batch is smaller unless ``drop_last``.
        shuffle: draw a fresh permutation each pass; otherwise keep the stored order.
        seed: a non-negative int; the order and the augmentation of pass ``e`` depend only
            on ``(seed, e)``. ``None`` draws one at random (kept in ``self.seed``).
        drop_last: skip the last batch when it is smaller than ``batch_size``.
        augment: ``augment(images, rng=...)`` applied to each batch of images, e.g.
            ``Augment()``; it receives a Generator seeded from ``(seed, epoch)``.

    ``epoch`` is the pass the next ``iter()`` will make; each ``iter()`` uses it and adds
    one. To resume a run after ``k`` passes, set ``loader.epoch = k``.
    """

    def __init__(self, images: Any, labels: Any, batch_size: int, *, shuffle: bool = True,
                 seed: int | None = None, drop_last: bool = False,
                 augment: AugmentFn | None = None) -> None:
        self.images = np.asarray(images)
        self.labels = np.asarray(labels)
        if self.images.ndim == 0 or self.labels.ndim == 0 \
                or len(self.images) != len(self.labels):
            raise ValueError(
                "images and labels must hold the same number of samples along axis 0; "
                f"received images {describe(self.images)} and labels {describe(self.labels)}"
            )
        self.batch_size = _args.integer(batch_size, "batch_size")
        # None draws a seed, kept so that the run can be repeated.
        self.seed = (int(np.random.SeedSequence().entropy) if seed is None
                     else _args.integer(seed, "seed", minimum=0))
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be callable or None; received {augment!r}")
        self.shuffle = _args.flag(shuffle, "shuffle")
        self.drop_last = _args.flag(drop_last, "drop_last")
        self.augment = augment
        self.epoch = 0

    def __len__(self) -> int:
        """Batches per pass."""
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _generators(self, epoch: int) -> tuple[np.random.Generator, np.random.Generator]:
        # Separate streams, so turning augmentation on or off leaves the order unchanged.
        order, augment = np.random.SeedSequence([self.seed, epoch]).spawn(2)
        return np.random.default_rng(order), np.random.default_rng(augment)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of pass ``epoch``, in the order they are served: ``(N,)``."""
        n = len(self.labels)
        return self._generators(epoch)[0].permutation(n) if self.shuffle else np.arange(n)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order_rng, augment_rng = self._generators(epoch)
        n = len(self.labels)
        order = order_rng.permutation(n) if self.shuffle else None
        for b in range(len(self)):
            window = slice(b * self.batch_size, min((b + 1) * self.batch_size, n))
            if order is None:  # views, no copy
                x, y = self.images[window], self.labels[window]
            else:
                x, y = self.images[order[window]], self.labels[order[window]]
            if self.augment is not None:
                x = self.augment(x, rng=augment_rng)
            yield x, y


def batches(images: Any, labels: Any, batch_size: int, *, shuffle: bool = True,
            seed: int | None = None, drop_last: bool = False,
            augment: AugmentFn | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One pass of ``(images, labels)`` mini-batches: ``iter(DataLoader(...))`` at epoch 0.

    See :class:`DataLoader` for the arguments; for several epochs use a DataLoader, which
    reshuffles on every pass.
    """
    return iter(DataLoader(images, labels, batch_size, shuffle=shuffle, seed=seed,
                           drop_last=drop_last, augment=augment))
