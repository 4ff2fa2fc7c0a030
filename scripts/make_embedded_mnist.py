"""Make convolve/data/embedded/mnist_subset.npz, the MNIST subset shipped in the package.

    python scripts/make_embedded_mnist.py /path/to/mnist [--out PATH]

Draws, with a fixed seed, 1,600 images per digit from the MNIST training set and 200 per
digit from the test set, shuffles each split, and stores uint8 images, uint8 labels and the
uint16 indices into the original files (for provenance) in a zip-deflated (level 9) .npz
that ``numpy.load(..., allow_pickle=False)`` reads. Rerunning it reproduces the file.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from convolve.data import idx

SEED = 20240404
PER_CLASS = {"train": 1600, "test": 200}
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
OUT = Path(__file__).resolve().parents[1] / "convolve" / "data" / "embedded" / "mnist_subset.npz"


def locate(root: Path, base: str) -> Path:
    for path in (root / base, root / f"{base}.gz"):
        if path.is_file():
            return path
    raise SystemExit(f"{root}: missing {base}[.gz]")


def draw(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` indices of each class without replacement, in a random order."""
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
              for c in range(10)]
    return rng.permutation(np.concatenate(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder with the four MNIST IDX files")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    arrays = {}
    for split, (images_name, labels_name) in FILES.items():
        images = idx.read_idx(locate(args.root, images_name), ndim=3)
        labels = idx.read_idx(locate(args.root, labels_name), ndim=1)
        index = draw(labels, PER_CLASS[split], rng)
        arrays[f"{split}_images"] = images[index]
        arrays[f"{split}_labels"] = labels[index]
        arrays[f"{split}_index"] = index.astype(np.uint16)
    # np.savez_compressed uses zlib's default level; level 9 saves about 2% here.
    # A fixed timestamp keeps the file byte-identical between runs.
    with zipfile.ZipFile(args.out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)
    counts = {k: v.shape for k, v in arrays.items()}
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes): {counts}")


if __name__ == "__main__":
    main()
