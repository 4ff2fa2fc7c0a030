"""Small dataset files written by the tests: IDX (raw or gzip) and CIFAR-10 batches."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from pathlib import Path

import numpy as np

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch")


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000 08 <ndim>, sizes, values."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s)
                                                        for s in array.shape)
    return header + array.tobytes()


def write_idx_set(folder: Path, *, gz: bool, seed: int = 0, sizes=(12, 5)) -> dict:
    """Four MNIST-style IDX files with random content; returns {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for (split, (images_name, labels_name)), n in zip(IDX_FILES.items(), sizes):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for name, array in ((images_name, images), (labels_name, labels)):
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        arrays[split] = (images, labels)
    return arrays


def py2_batch_pickle(pixels: np.ndarray, labels: list[int]) -> bytes:
    """A batch as Python 2's cPickle (protocol 2) wrote the real CIFAR-10 files: str keys
    and pixel bytes as 8-bit strings, the array via numpy.core.multiarray._reconstruct."""
    assert pixels.dtype == np.uint8 and pixels.ndim == 2

    def string(text: bytes) -> bytes:  # SHORT_BINSTRING or BINSTRING
        if len(text) < 256:
            return b"U" + bytes([len(text)]) + text
        return b"T" + struct.pack("<i", len(text)) + text

    def uint(value: int) -> bytes:  # BININT1, BININT2 or BININT
        if value < 256:
            return b"K" + bytes([value])
        if value < 65536:
            return b"M" + struct.pack("<H", value)
        return b"J" + struct.pack("<i", value)

    dtype = (b"cnumpy\ndtype\n" + string(b"u1") + uint(0) + uint(1) + b"\x87R"
             + b"(" + uint(3) + string(b"|") + b"NNN" + b"J\xff\xff\xff\xff"
             + b"J\xff\xff\xff\xff" + uint(0) + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n"
             + uint(0) + b"\x85" + string(b"b") + b"\x87R"
             + b"(" + uint(1) + uint(pixels.shape[0]) + uint(pixels.shape[1]) + b"\x86"
             + dtype + b"\x89" + string(pixels.tobytes()) + b"tb")
    label_list = b"](" + b"".join(uint(v) for v in labels) + b"e"
    return (b"\x80\x02}(" + string(b"batch_label") + string(b"testing batch 1 of 1")
            + string(b"data") + array + string(b"labels") + label_list + b"u.")


def cifar_arrays(seed: int = 0, n: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Random pixels ``(n, 3072)`` and labels for each of the six batches."""
    rng = np.random.default_rng(seed)
    return {name: (rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                   [int(v) for v in rng.integers(0, 10, size=n)])
            for name in CIFAR_BATCHES}


def write_cifar_folder(folder: Path, arrays: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (pixels, labels) in arrays.items():
        (folder / name).write_bytes(py2_batch_pickle(pixels, labels))


def cifar_archive_bytes(arrays: dict) -> bytes:
    """A cifar-10-python.tar.gz holding cifar-10-batches-py/<batch> for each batch."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, (pixels, labels) in arrays.items():
            data = py2_batch_pickle(pixels, labels)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def channels_last(pixels: np.ndarray) -> np.ndarray:
    """Loop reference for the CIFAR layout: row i of a batch is 1024 R, 1024 G, 1024 B
    values, each 32 rows of 32; returns ``(n, 32, 32, 3)``."""
    out = np.zeros((len(pixels), 32, 32, 3), dtype=np.uint8)
    for i in range(len(pixels)):
        for c in range(3):
            for r in range(32):
                for q in range(32):
                    out[i, r, q, c] = pixels[i, c * 1024 + r * 32 + q]
    return out


def shared_mnist() -> Path | None:
    """The real MNIST files (``../shared/data/mnist`` beside the checkout, or the
    workspace's ``/work/shared``), or None on a machine without them."""
    repo = Path(__file__).resolve().parents[1]
    for candidate in (repo.parent / "shared/data/mnist", Path("/work/shared/data/mnist")):
        if candidate.is_dir():
            return candidate
    return None
