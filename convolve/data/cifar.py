"""The CIFAR-10 "python version" batches, read without unpickling arbitrary objects.

Each batch file (``data_batch_1`` ... ``data_batch_5``, ``test_batch``) is a pickle written
by Python 2 of a dict: ``data``, a ``(10000, 3072)`` uint8 array (1024 red, then 1024 green,
then 1024 blue values per image, rows in order), ``labels``, a list of ints in 0..9, plus
``batch_label`` and ``filenames`` (strings).

Why this is safe: a pickle can only run code by naming a global (a module attribute) and
calling it. Every way the format has to reach a global (the GLOBAL, STACK_GLOBAL, INST,
OBJ and EXT opcodes) goes through ``Unpickler.find_class``, and ours returns only the three
names a NumPy array needs -- the array reconstructor, ``numpy.ndarray`` and
``numpy.dtype`` -- and refuses every other one before anything is imported or called.
What remains are the plain opcodes that build str/bytes/int/float/tuple/list/dict values,
persistent ids (refused by the default ``persistent_load``) and out-of-band buffers (refused:
none are supplied). Those three callables only build arrays and dtypes from such values;
the result is then checked to be exactly a uint8 array of the expected shape.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

# NumPy 1.x pickles name the reconstructor numpy.core.multiarray, NumPy 2 numpy._core;
# ask NumPy for its own rather than importing a private module.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Builds plain Python values and NumPy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(
                f"refusing to load the global {module}.{name}: a CIFAR batch holds only "
                f"NumPy arrays, lists, strings and numbers"
            ) from None


def read_batch(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one batch pickle.

    Arguments:
        data: the file's bytes.
        source: how to name the file in error messages.

    Returns:
        ``images: (N, 32, 32, 3)`` uint8, channels-last, and ``labels: (N,)`` int64.
    """
    try:
        # encoding="bytes" keeps Python 2 str values (the pixel data) as bytes.
        batch = _ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _RefusedGlobal as error:
        raise ValueError(f"{source} is not a CIFAR-10 batch: {error}") from None
    except (EOFError, pickle.UnpicklingError) as error:
        reason = "the pickle ends early" if isinstance(error, EOFError) else error
        raise ValueError(
            f"{source} is truncated or damaged ({reason}); "
            f"delete it and fetch it again"
        ) from None
    except Exception as error:  # any malformed pickle: report it as a data error
        raise ValueError(f"{source} is not a valid CIFAR-10 batch: {error!r}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{source} is not a CIFAR-10 batch: it holds a "
                         f"{type(batch).__name__}, expected a dict")
    batch = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{source} is not a CIFAR-10 batch: expected the keys 'data' and "
                         f"'labels', found {sorted(map(str, batch))}")
    pixels = batch["data"]
    if (not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2
            or pixels.shape[1] != 3 * 32 * 32):
        shape = getattr(pixels, "shape", None)
        raise ValueError(f"{source}: 'data' must be a uint8 array of shape (N, 3072); found "
                         f"{type(pixels).__name__} of shape {shape} and dtype "
                         f"{getattr(pixels, 'dtype', None)}")
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        labels = None
    if labels is None or labels.shape != (len(pixels),):
        raise ValueError(f"{source}: 'labels' must be {len(pixels)} integers, one per image")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise ValueError(f"{source}: labels must lie in 0..{len(CLASSES) - 1}; found "
                         f"{labels.min()}..{labels.max()}")
    images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def find(root: Path) -> Path | None:
    """Where the batches are under ``root``: a batches folder, the archive, or None."""
    for folder in (root / FOLDER, root):
        if all((folder / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH)):
            return folder
    if (root / ARCHIVE).is_file():
        return root / ARCHIVE
    return None


def read(location: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """All six batches from a folder or the ``.tar.gz`` archive, keyed by batch name."""
    names = (*TRAIN_BATCHES, TEST_BATCH)
    if location.is_dir():
        return {name: read_batch((location / name).read_bytes(), str(location / name))
                for name in names}
    return {name: read_batch(data, f"{location}:{FOLDER}/{name}")
            for name, data in _archive_members(location, names).items()}


def _archive_members(archive: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The named batch files inside the archive, read in one streaming pass (no extraction,
    so member paths never touch the file system)."""
    wanted = {f"{FOLDER}/{name}": name for name in names}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    found[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise ValueError(
            f"{archive} is truncated or damaged ({error}); delete it and fetch it again"
        ) from None
    missing = [f"{FOLDER}/{name}" for name in names if name not in found]
    if missing:
        raise ValueError(f"{archive} lacks {', '.join(missing)}; is it cifar-10-python.tar.gz?")
    return found


def load_arrays(root: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 train and test arrays from ``root``; FileNotFoundError when nothing is there."""
    root = Path(root)
    location = find(root)
    if location is None:
        raise FileNotFoundError(_missing_message(root))
    batches = read(location)
    train = [batches[name] for name in TRAIN_BATCHES]
    return {
        "train": (np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])),
        "test": batches[TEST_BATCH],
    }


def _missing_message(root: Path) -> str:
    where = f"folder {root} does not exist" if not root.is_dir() else f"no CIFAR-10 files in {root}"
    return (
        f"{where}: expected {FOLDER}/ holding {', '.join(TRAIN_BATCHES)} and {TEST_BATCH}, "
        f"or the archive {ARCHIVE}; pass download=True to fetch it"
    )
