"""MNIST / Fashion-MNIST readers on small IDX files written here, raw and gzip."""

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from convolve import data
from convolve.data import idx
from tests.data_fixtures import IDX_FILES, idx_bytes, shared_mnist, write_idx_set

SHARED_MNIST = shared_mnist()


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("loader", [data.mnist, data.fashion_mnist])
def test_reads_idx_files(tmp_path, gz, loader):
    arrays = write_idx_set(tmp_path, gz=gz)
    ds = loader(tmp_path)
    assert len(ds.classes) == 10
    assert ds.image_shape == (28, 28, 1)
    for split in ("train", "test"):
        images, labels = getattr(ds, split)
        expected_images, expected_labels = arrays[split]
        assert images.dtype == np.float32 and labels.dtype == np.int64
        assert images.shape == (*expected_images.shape, 1)
        assert images.flags.c_contiguous
        np.testing.assert_array_equal(images[..., 0], expected_images / np.float32(255))
        np.testing.assert_array_equal(labels, expected_labels)
        assert images.min() >= 0 and images.max() <= 1


def test_class_names_and_repr(tmp_path):
    write_idx_set(tmp_path, gz=True)
    assert data.mnist(tmp_path).classes == tuple("0123456789")
    fashion = data.fashion_mnist(tmp_path)
    assert fashion.classes[0] == "T-shirt/top" and fashion.classes[9] == "Ankle boot"
    assert repr(fashion) == ("Dataset('fashion-mnist', train=12, test=5, "
                             "image_shape=(28, 28, 1), classes=10)")


def test_mixed_raw_and_gz(tmp_path):
    arrays = write_idx_set(tmp_path, gz=True)
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    np.testing.assert_array_equal(data.mnist(tmp_path).test.labels, arrays["test"][1])


def test_load_by_name(tmp_path):
    write_idx_set(tmp_path, gz=False)
    assert data.load("mnist", tmp_path).name == "mnist"
    assert data.load("fashion-mnist", tmp_path).name == "fashion-mnist"
    with pytest.raises(ValueError, match=r"dataset must be one of 'embedded-mnist', 'mnist', "
                                         r"'fashion-mnist', 'cifar10'; received 'svhn'"):
        data.load("svhn", tmp_path)


def test_default_folder_is_under_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVOLVE_DATA", str(tmp_path))
    assert data.data_home() == tmp_path
    write_idx_set(tmp_path / "mnist", gz=True)
    assert len(data.mnist().train.labels) == 12
    monkeypatch.delenv("CONVOLVE_DATA")
    assert data.data_home() == Path.home() / ".cache" / "convolve"


# --- errors ----------------------------------------------------------------------------


def test_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=(
        rf"^folder {re.escape(str(missing))} does not exist: expected "
        r"train-images-idx3-ubyte\[\.gz\], train-labels-idx1-ubyte\[\.gz\], "
        r"t10k-images-idx3-ubyte\[\.gz\], t10k-labels-idx1-ubyte\[\.gz\]; "
        r"pass download=True to fetch them$"
    )):
        data.mnist(missing)


def test_missing_file(tmp_path):
    write_idx_set(tmp_path, gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=(
        rf"^Fashion-MNIST files missing in {re.escape(str(tmp_path))}: expected "
        r"train-images-idx3-ubyte\[\.gz\], .*t10k-labels-idx1-ubyte\[\.gz\]; "
        r"pass download=True to fetch them$"
    )):
        data.fashion_mnist(tmp_path)


def test_wrong_magic_number(tmp_path):
    write_idx_set(tmp_path, gz=False)
    # a labels file where the images should be: magic 2049 instead of 2051
    labels = (tmp_path / "train-labels-idx1-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(labels)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte has the wrong magic number "
                                         r"2049 \(1-D data\); expected 2051 \(3-D data\)"):
        data.mnist(tmp_path)


def test_not_an_idx_file(tmp_path):
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte is not an IDX file: its "
                                         r"magic number is 3c68746d, expected 0000"):
        data.mnist(tmp_path)


@pytest.mark.parametrize("cut", [3, 10, 100])
def test_truncated_raw_file(tmp_path, cut):
    write_idx_set(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-cut] if cut == 100 else path.read_bytes()[:cut])
    message = {3: "is not an IDX file", 10: "is truncated: its header needs 16 bytes, the "
               "file has 10", 100: r"is truncated: its header promises shape \(12, 28, 28\) "
               r"\(9424 bytes in all\), the file has 9324 bytes"}[cut]
    with pytest.raises(ValueError, match=f"train-images-idx3-ubyte {message}"):
        data.mnist(tmp_path)


def test_truncated_gz_file(tmp_path):
    write_idx_set(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz is a truncated gzip file "
                                         r"\(it ends before the end of its compressed stream\)"):
        data.mnist(tmp_path)


def test_trailing_bytes(tmp_path):
    write_idx_set(tmp_path, gz=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\0\0")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte has trailing bytes: its "
                                         r"header promises shape \(5,\) \(13 bytes in all\), "
                                         r"the file has 15 bytes"):
        data.mnist(tmp_path)


def test_count_mismatch_and_label_range(tmp_path):
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte holds 5 images but "
                                         r".*t10k-labels-idx1-ubyte holds 4 labels"):
        data.mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(5, 10, np.uint8)))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: labels must lie in 0\.\.9; "
                                         r"found 10"):
        data.mnist(tmp_path)


def test_read_idx_other_types(tmp_path):
    values = np.arange(-6, 6, dtype=">i2").reshape(3, 4)
    path = tmp_path / "shorts"
    path.write_bytes(bytes([0, 0, 0x0B, 2]) + b"\0\0\0\x03\0\0\0\x04" + values.tobytes())
    out = idx.read_idx(path)
    assert out.dtype == np.int16 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


# --- the real files, when this machine has them -------------------------------------------


@pytest.mark.skipif(SHARED_MNIST is None, reason="shared MNIST files not present")
def test_real_mnist():
    ds = data.mnist(SHARED_MNIST)
    assert ds.train.images.shape == (60000, 28, 28, 1)
    assert ds.test.images.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.test.labels).tolist()[:3] == [980, 1135, 1032]
    # the uncompressed content is the standard one (shared/data/README.md)
    raw = idx.read_bytes(SHARED_MNIST / f"{IDX_FILES['test'][0]}.gz")
    assert hashlib.sha256(raw).hexdigest() == (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7")
