"""Image files as a model's input: found (files, folders, glob patterns), read, turned grey
or RGB, resized to the model's input size and normalised as in training.

Resizing stretches the whole image to the model's height and width with Pillow's
antialiased bilinear filter (no crop): a 28x28 digit model sees a photograph as a whole.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve import io
from convolve.model_info import ModelInfo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SAMPLE_PREFIX = "sample:"


def find_images(patterns: Sequence[str]) -> list[str]:
    """The image files named by ``patterns``, in order: a file as given, a folder's image
    files (by suffix, sorted, not recursive), a glob pattern's matches (sorted), and
    ``sample:NAME`` for a photograph shipped with convolve.

    Raises FileNotFoundError for a name that matches nothing, ValueError for a folder
    without images.
    """
    found: list[str] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            files = sorted(str(p) for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"folder {pattern} holds no image files "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
            found += files
        elif path.is_file() or (pattern.startswith(SAMPLE_PREFIX) and not path.exists()):
            found.append(pattern)
        elif glob.has_magic(pattern):
            files = sorted(p for p in glob.glob(os.path.expanduser(pattern))
                           if Path(p).is_file())
            if not files:
                raise FileNotFoundError(f"no file matches {pattern}")
            found += files
        else:
            raise FileNotFoundError(f"image file not found: {pattern}")
    return found


def read(name: str) -> np.ndarray:
    """An image file (or ``sample:NAME``) as floats in ``[0, 1]``: ``(H, W)`` or
    ``(H, W, 3)``."""
    if name.startswith(SAMPLE_PREFIX) and not Path(name).exists():
        return io.sample_image(name[len(SAMPLE_PREFIX):])
    return io.read_image(name)


def to_model_input(image: Any, input_shape: tuple[int | None, ...], info: ModelInfo
                   ) -> np.ndarray:
    """One image in ``[0, 1]`` (``(H, W)`` or ``(H, W, 1 | 3)``) as the model's input
    ``input_shape = (height, width, channels)``: grey or RGB (BT.601 luma for grey),
    resized (a height or width None: kept), then normalised with the model's mean and std;
    float32."""
    height, width, channels = input_shape
    if channels not in (1, 3):
        raise ValueError(f"the model takes {channels}-channel input; images have 1 (grey) or "
                         "3 (RGB) channels")
    own = np.shape(image)[:2]
    size = (own[0] if height is None else height, own[1] if width is None else width)
    return info.normalize(io.resize(io.to_channels(image, channels), size))


def batches(names: Sequence[str], input_shape: tuple[int | None, ...], info: ModelInfo
            ) -> Iterator[np.ndarray]:
    """The image files ``names`` as batches ``(N, H, W, C)`` for the model, in order: one
    batch for a model of a fixed size, else one for each run of images of the same size."""
    images = (to_model_input(read(name), input_shape, info) for name in names)
    for _, run in itertools.groupby(images, key=np.shape):
        yield np.stack(list(run))
