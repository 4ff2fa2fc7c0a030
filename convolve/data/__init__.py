"""Datasets, batching and augmentation.

Loaders return a :class:`Dataset` with ``train`` and ``test`` splits, each a
:class:`Split` ``(images, labels)``: ``images: (N, H, W, C)`` float32 in [0, 1],
``labels: (N,)`` int64, and ``classes``, the class names.

- :func:`embedded_mnist`: 16,000 + 2,000 MNIST digits inside the package (offline).
- :func:`mnist`, :func:`fashion_mnist`, :func:`cifar10`: the standard files from a folder,
  or fetched once with ``download=True`` into :func:`data_home` and checked by SHA-256.
- :func:`load`: any of them by name (``DATASET_NAMES``).
- :class:`DataLoader` / :func:`batches`: seeded mini-batches; :class:`Augment`,
  :func:`random_crop`, :func:`random_flip`: augmentation for CIFAR-style images.
"""

from convolve.data.augment import Augment, random_crop, random_flip
from convolve.data.batching import DataLoader, batches
from convolve.data.datasets import (
    DATASET_NAMES,
    Dataset,
    Split,
    cifar10,
    embedded_mnist,
    fashion_mnist,
    load,
    mnist,
)
from convolve.data.download import DownloadError, data_home

__all__ = [
    "DATASET_NAMES",
    "Augment",
    "DataLoader",
    "Dataset",
    "DownloadError",
    "Split",
    "batches",
    "cifar10",
    "data_home",
    "embedded_mnist",
    "fashion_mnist",
    "load",
    "mnist",
    "random_crop",
    "random_flip",
]
