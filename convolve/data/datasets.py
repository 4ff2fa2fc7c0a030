"""Datasets as arrays: MNIST, Fashion-MNIST and CIFAR-10 from local files (or fetched once),
and a small MNIST subset shipped inside the package.

Every loader returns a :class:`Dataset` whose splits hold ``images: (N, H, W, C)`` float32
in [0, 1] (channels-last) and ``labels: (N,)`` int64.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from convolve import _args
from convolve.data import cifar, idx
from convolve.data.download import RemoteFile, data_home, fetch, mirrors

PathLike = str | os.PathLike


@dataclass(frozen=True, repr=False, eq=False)
class Split:
    """One split: ``images: (N, H, W, C)`` float32 in [0, 1], ``labels: (N,)`` int64, and
    the dataset's class names. ``len(split)`` is N; ``images, labels = split`` unpacks."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.images, self.labels))

    def __repr__(self) -> str:
        images, labels = np.asarray(self.images), np.asarray(self.labels)
        named = f", {len(self.classes)} classes" if self.classes else ""
        return (f"Split({len(self)} examples, images {images.shape[1:]} {images.dtype}, "
                f"labels {labels.dtype}{named})")


@dataclass(frozen=True, repr=False)
class Dataset:
    """A train and a test split and the class names (``classes[label]``)."""

    name: str
    train: Split
    test: Split
    classes: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image."""
        return tuple(self.train.images.shape[1:])

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.train.labels)}, "
                f"test={len(self.test.labels)}, image_shape={self.image_shape}, "
                f"classes={len(self.classes)})")


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 ``(N, H, W)`` or ``(N, H, W, C)`` -> float32 ``(N, H, W, C)`` in [0, 1]."""
    out = images.astype(np.float32, order="C")  # "C": CIFAR arrives as a transposed view
    out /= 255
    return out[..., None] if out.ndim == 3 else out


# --- MNIST and Fashion-MNIST -------------------------------------------------------------

_IDX_NAMES = {  # split -> (images file, labels file), without the .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# SHA-256 of the .gz files as the mirrors serve them. MNIST: the values published for
# the PyTorch (ossci) and Google (cvdf) mirrors, the same files; their contents match the
# uncompressed SHA-256s in shared/data/README.md. Fashion-MNIST: keras/src/datasets/
# fashion_mnist.py, the same values as the Zalando S3 site lists.
MNIST_FILES = (
    RemoteFile("train-images-idx3-ubyte.gz",
               "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    RemoteFile("train-labels-idx1-ubyte.gz",
               "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    RemoteFile("t10k-images-idx3-ubyte.gz",
               "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    RemoteFile("t10k-labels-idx1-ubyte.gz",
               "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
)
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_MNIST_FILES = (
    RemoteFile("train-images-idx3-ubyte.gz",
               "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    RemoteFile("train-labels-idx1-ubyte.gz",
               "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    RemoteFile("t10k-images-idx3-ubyte.gz",
               "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    RemoteFile("t10k-labels-idx1-ubyte.gz",
               "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
)
FASHION_MNIST_MIRRORS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

# CIFAR-10: keras/src/datasets/cifar10.py (file_hash of the same URL).
CIFAR10_FILE = RemoteFile(
    cifar.ARCHIVE, "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
)
CIFAR10_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)


def _folder(root: PathLike | None, name: str) -> Path:
    return Path(root).expanduser() if root is not None else data_home() / name


def _idx_dataset(name: str, title: str, root: PathLike | None, download: bool,
                 mirror: str | None, files: tuple[RemoteFile, ...], defaults: tuple[str, ...],
                 classes: tuple[str, ...]) -> Dataset:
    folder = _folder(root, name)
    download = _args.flag(download, "download")

    def existing(base: str) -> Path | None:
        return next((p for p in (folder / base, folder / f"{base}.gz") if p.is_file()), None)

    if download:
        for file in files:
            if existing(file.name.removesuffix(".gz")) is None:
                fetch(file, folder, mirrors(defaults, mirror))
    splits = {}
    for split, names in _IDX_NAMES.items():
        paths = [existing(base) for base in names]
        if None in paths:
            raise FileNotFoundError(_missing_idx(title, folder))
        images = idx.read_idx(paths[0], ndim=3)
        labels = idx.read_idx(paths[1], ndim=1)
        _check_idx_pair(paths, images, labels, len(classes))
        splits[split] = Split(to_float(images), labels.astype(np.int64), classes)
    return Dataset(name, splits["train"], splits["test"], classes)


def _missing_idx(title: str, folder: Path) -> str:
    expected = ", ".join(f"{base}[.gz]" for names in _IDX_NAMES.values() for base in names)
    where = (f"folder {folder} does not exist" if not folder.is_dir()
             else f"{title} files missing in {folder}")
    return f"{where}: expected {expected}; pass download=True to fetch them"


def _check_idx_pair(paths: list[Path], images: np.ndarray, labels: np.ndarray,
                    num_classes: int) -> None:
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise ValueError(f"{paths[0]} and {paths[1]} must hold uint8 data; found "
                         f"{images.dtype} images and {labels.dtype} labels")
    if len(images) != len(labels):
        raise ValueError(f"{paths[0]} holds {len(images)} images but {paths[1]} holds "
                         f"{len(labels)} labels")
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"{paths[1]}: labels must lie in 0..{num_classes - 1}; found "
                         f"{labels.max()}")


def mnist(root: PathLike | None = None, *, download: bool = False,
          mirror: str | None = None) -> Dataset:
    """The MNIST digits: 60,000 train and 10,000 test images ``(28, 28, 1)``, classes 0-9.

    Arguments:
        root: the folder holding the four IDX files, raw or ``.gz``
            (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``). Default:
            ``data_home() / "mnist"`` (``$CONVOLVE_DATA`` or ``~/.cache/convolve``).
        download: fetch the files that are missing into ``root``, checking each SHA-256.
        mirror: base URL to fetch from instead of the public mirrors (also settable with
            ``$CONVOLVE_DATA_MIRROR``).

    Raises ``FileNotFoundError`` naming the folder and the expected files, ``ValueError`` for
    a damaged file, ``DownloadError`` (an ``OSError``) when a download fails.
    """
    return _idx_dataset("mnist", "MNIST", root, download, mirror, MNIST_FILES, MNIST_MIRRORS,
                        MNIST_CLASSES)


def fashion_mnist(root: PathLike | None = None, *, download: bool = False,
                  mirror: str | None = None) -> Dataset:
    """Fashion-MNIST (Zalando): 60,000 train and 10,000 test images ``(28, 28, 1)``.

    The same files and arguments as :func:`mnist`; the default folder is
    ``data_home() / "fashion-mnist"``. Class names are in ``Dataset.classes``.
    """
    return _idx_dataset("fashion-mnist", "Fashion-MNIST", root, download, mirror,
                        FASHION_MNIST_FILES, FASHION_MNIST_MIRRORS, FASHION_MNIST_CLASSES)


def cifar10(root: PathLike | None = None, *, download: bool = False,
            mirror: str | None = None) -> Dataset:
    """CIFAR-10: 50,000 train and 10,000 test colour images ``(32, 32, 3)``, 10 classes.

    Arguments:
        root: a folder holding ``cifar-10-batches-py/`` (or the batch files themselves) or
            the archive ``cifar-10-python.tar.gz``, which is read without extracting it.
            Default: ``data_home() / "cifar-10"``.
        download: fetch the archive (163 MiB) into ``root`` when no batches are there.
        mirror: as for :func:`mnist`.

    The batches are pickles; they are read with an unpickler that builds only NumPy arrays
    and plain values (see ``convolve.data.cifar``), never arbitrary objects.
    """
    folder = _folder(root, "cifar-10")
    if _args.flag(download, "download") and cifar.find(folder) is None:
        fetch(CIFAR10_FILE, folder, mirrors(CIFAR10_MIRRORS, mirror))
    arrays = cifar.load_arrays(folder)
    train, test = (Split(to_float(x), y, cifar.CLASSES)
                   for x, y in (arrays["train"], arrays["test"]))
    return Dataset("cifar10", train, test, cifar.CLASSES)


# --- The embedded subset ------------------------------------------------------------------

EMBEDDED_FILE = "mnist_subset.npz"


def embedded_mnist() -> Dataset:
    """A class-balanced subset of MNIST shipped inside the package: works offline.

    16,000 train images (1,600 per digit) from the MNIST training set and 2,000 test images
    (200 per digit) from the MNIST test set, ``(28, 28, 1)`` float32 in [0, 1]. Made by
    ``scripts/make_embedded_mnist.py``; the source and license (MNIST, Yann LeCun and
    Corinna Cortes, CC BY-SA 3.0) are in ``convolve/data/embedded/README.txt``.
    """
    with resources.files("convolve.data").joinpath("embedded", EMBEDDED_FILE).open("rb") as f, \
            np.load(f, allow_pickle=False) as arrays:
        splits = {split: Split(to_float(arrays[f"{split}_images"]),
                               arrays[f"{split}_labels"].astype(np.int64), MNIST_CLASSES)
                  for split in ("train", "test")}
    return Dataset("embedded-mnist", splits["train"], splits["test"], MNIST_CLASSES)


# --- By name ------------------------------------------------------------------------------

_FROM_FILES: dict[str, Callable[..., Dataset]] = {
    "mnist": mnist,
    "fashion-mnist": fashion_mnist,
    "cifar10": cifar10,
}
DATASET_NAMES = ("embedded-mnist", *_FROM_FILES)


def load(name: str, root: PathLike | None = None, *, download: bool = False,
         mirror: str | None = None) -> Dataset:
    """A dataset by name, one of ``DATASET_NAMES``.

    ``"embedded-mnist"`` is inside the package and takes no ``root``, ``download`` or
    ``mirror``; the others are :func:`mnist`, :func:`fashion_mnist` and :func:`cifar10`.
    """
    download = _args.flag(download, "download")
    if name == "embedded-mnist":
        if root is not None or download or mirror is not None:
            raise ValueError("the dataset 'embedded-mnist' is inside the package: it takes no "
                             f"root, download or mirror; received root={root!r}, "
                             f"download={download!r}, mirror={mirror!r}")
        return embedded_mnist()
    _args.choice(name, "dataset", DATASET_NAMES)
    return _FROM_FILES[name](root, download=download, mirror=mirror)
