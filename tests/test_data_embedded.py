"""The MNIST subset inside the package."""

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from convolve import data
from convolve.data import idx
from tests.data_fixtures import IDX_FILES, shared_mnist

PACKAGE_FILE = resources.files("convolve.data").joinpath("embedded", "mnist_subset.npz")


def test_shapes_dtypes_and_balance():
    ds = data.embedded_mnist()
    assert ds.name == "embedded-mnist" and ds.classes == tuple("0123456789")
    assert ds.train.images.shape == (16000, 28, 28, 1)
    assert ds.test.images.shape == (2000, 28, 28, 1)
    for images, labels in (ds.train, ds.test):
        assert images.dtype == np.float32 and labels.dtype == np.int64
        assert images.min() == 0 and images.max() == 1
    assert np.bincount(ds.train.labels).tolist() == [1600] * 10
    assert np.bincount(ds.test.labels).tolist() == [200] * 10
    # stored shuffled, so any prefix is roughly balanced
    assert np.bincount(ds.train.labels[:1000], minlength=10).min() > 50


def test_load_by_name():
    assert data.load("embedded-mnist").train.labels.shape == (16000,)
    with pytest.raises(ValueError, match=r"^the dataset 'embedded-mnist' is inside the "
                                         r"package: it takes no root, download or mirror; "
                                         r"received root='x', download=False, mirror=None$"):
        data.load("embedded-mnist", "x")


def test_size_on_disk_and_format():
    path = Path(str(PACKAGE_FILE))
    assert path.stat().st_size <= 3_000_000
    with np.load(path, allow_pickle=False) as arrays:
        assert {k: arrays[k].dtype.name for k in arrays.files} == {
            "train_images": "uint8", "train_labels": "uint8", "train_index": "uint16",
            "test_images": "uint8", "test_labels": "uint8", "test_index": "uint16"}
    assert PACKAGE_FILE.parent.joinpath("README.txt").read_text().count("CC BY-SA 3.0") == 1


def test_declared_as_package_data():
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    assert {"embedded/*.npz", "embedded/*.txt"} <= set(package_data["convolve.data"])


@pytest.mark.skipif(shared_mnist() is None, reason="shared MNIST files not present")
def test_images_are_the_original_mnist_images():
    root = shared_mnist()
    with np.load(Path(str(PACKAGE_FILE)), allow_pickle=False) as arrays:
        for split, (images_name, labels_name) in IDX_FILES.items():
            images = idx.read_idx(root / f"{images_name}.gz")
            labels = idx.read_idx(root / f"{labels_name}.gz")
            index = arrays[f"{split}_index"].astype(np.int64)
            assert len(np.unique(index)) == len(index)
            np.testing.assert_array_equal(arrays[f"{split}_images"], images[index])
            np.testing.assert_array_equal(arrays[f"{split}_labels"], labels[index])
