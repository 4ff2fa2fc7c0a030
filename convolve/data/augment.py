"""Random crops and flips for batches of channels-last images, vectorised over the batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from convolve import _args

RNG = int | np.random.Generator | None


def _batch(images: Any, name: str = "images") -> np.ndarray:
    array = np.asarray(images)
    _args.rank(array.shape, name, {4: "(N, H, W, C)"})
    return array


def random_crop(images: Any, padding: int, *, rng: RNG = None) -> np.ndarray:
    """Pad each image with ``padding`` zeros on every side, then cut a random window of the
    original size (a new offset per image, uniform in ``[0, 2 * padding]`` on each axis).

    Arguments:
        images: ``(N, H, W, C)``.
        padding: pixels of zeros added on each side; 0 returns a copy.
        rng: a seed or a ``numpy.random.Generator``.

    Returns:
        ``(N, H, W, C)``, the dtype of ``images``.
    """
    x = _batch(images)
    padding = _args.integer(padding, "padding", minimum=0)
    rng = _args.generator(rng)
    n, h, w, c = x.shape
    _args.check_fits((n, h + 2 * padding, w + 2 * padding, c), x.dtype, "the padded batch")
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    top = rng.integers(0, 2 * padding + 1, size=n)
    left = rng.integers(0, 2 * padding + 1, size=n)
    rows = top[:, None, None] + np.arange(h)[None, :, None]  # (N, H, 1)
    cols = left[:, None, None] + np.arange(w)[None, None, :]  # (N, 1, W)
    return padded[np.arange(n)[:, None, None], rows, cols]


def random_flip(images: Any, *, p: float = 0.5, rng: RNG = None) -> np.ndarray:
    """Mirror each image left-right with probability ``p``.

    Arguments:
        images: ``(N, H, W, C)``.
        p: the probability of flipping each image, in [0, 1].
        rng: a seed or a ``numpy.random.Generator``.

    Returns:
        ``(N, H, W, C)``, a new array.
    """
    x = _batch(images)
    p = _args.fraction(p, "p")
    flip = _args.generator(rng).random(len(x)) < p
    out = x.copy()
    out[flip] = x[flip, :, ::-1]
    return out


@dataclass(frozen=True)
class Augment:
    """The usual CIFAR augmentation as one callable for ``DataLoader(augment=...)``: a random
    crop with ``padding`` (0 for none), then a horizontal flip with probability ``flip_p``."""

    padding: int = 4
    flip_p: float = 0.5

    def __post_init__(self) -> None:
        # Refuse bad settings when the augmentation is made, not in the first training batch.
        _args.integer(self.padding, "padding", minimum=0)
        _args.fraction(self.flip_p, "flip_p")

    def __call__(self, images: Any, *, rng: RNG = None) -> np.ndarray:
        rng = _args.generator(rng)
        return random_flip(random_crop(images, self.padding, rng=rng), p=self.flip_p, rng=rng)
