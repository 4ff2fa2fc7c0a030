"""CIFAR-10 reader: Python 2 style batch pickles in a folder or the .tar.gz archive, and the
restricted unpickler's refusals."""

import pickle
import re

import numpy as np
import pytest

from convolve import data
from convolve.data import cifar
from tests.data_fixtures import (
    channels_last,
    cifar_archive_bytes,
    cifar_arrays,
    py2_batch_pickle,
    write_cifar_folder,
)

CALLED = []


def _record_call(*args):
    """A global that a malicious pickle tries to call; it must never run."""
    CALLED.append(args)


def _check(ds, arrays):
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    expected_train = np.concatenate([channels_last(arrays[n][0]) for n in train_names])
    expected_labels = np.concatenate([arrays[n][1] for n in train_names])
    assert ds.name == "cifar10" and ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    assert ds.train.images.shape == (20, 32, 32, 3) and ds.test.images.shape == (4, 32, 32, 3)
    assert ds.train.images.dtype == np.float32 and ds.train.labels.dtype == np.int64
    assert ds.train.images.flags.c_contiguous
    np.testing.assert_array_equal(ds.train.images, expected_train / np.float32(255))
    np.testing.assert_array_equal(ds.train.labels, expected_labels)
    np.testing.assert_array_equal(ds.test.images,
                                  channels_last(arrays["test_batch"][0]) / np.float32(255))
    np.testing.assert_array_equal(ds.test.labels, arrays["test_batch"][1])


def test_batches_folder(tmp_path):
    arrays = cifar_arrays()
    write_cifar_folder(tmp_path / "cifar-10-batches-py", arrays)
    _check(data.cifar10(tmp_path), arrays)


def test_root_is_the_batches_folder(tmp_path):
    arrays = cifar_arrays(seed=1)
    write_cifar_folder(tmp_path, arrays)
    _check(data.cifar10(tmp_path), arrays)


def test_archive(tmp_path):
    arrays = cifar_arrays(seed=2)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(cifar_archive_bytes(arrays))
    _check(data.load("cifar10", tmp_path), arrays)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]


def test_python3_pickle_of_a_batch():
    """A batch re-saved by Python 3 (protocol 4, str keys, bytes pixel data) also loads."""
    pixels = np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072)
    images, labels = cifar.read_batch(
        pickle.dumps({"data": pixels, "labels": [1, 2]}, protocol=4), "batch")
    np.testing.assert_array_equal(images, channels_last(pixels))
    np.testing.assert_array_equal(labels, [1, 2])


def test_refuses_other_globals_without_calling_them():
    class Exploit:
        def __reduce__(self):
            return (_record_call, ("pwned",))

    payload = pickle.dumps({"data": Exploit(), "labels": []}, protocol=2)
    with pytest.raises(ValueError, match=(
        r"^batch is not a CIFAR-10 batch: refusing to load the global "
        r"tests\.test_data_cifar\._record_call: a CIFAR batch holds only NumPy arrays, "
        r"lists, strings and numbers$"
    )):
        cifar.read_batch(payload, "batch")
    assert CALLED == []
    with pytest.raises(ValueError, match=r"refusing to load the global posix\.system|"
                                         r"refusing to load the global os\.system"):
        cifar.read_batch(b"cos\nsystem\n(S'echo hi'\ntR.", "batch")


def test_wrong_content():
    with pytest.raises(ValueError, match=r"^b is not a CIFAR-10 batch: it holds a list, "
                                         r"expected a dict$"):
        cifar.read_batch(pickle.dumps([1, 2]), "b")
    with pytest.raises(ValueError, match=r"^b is not a CIFAR-10 batch: expected the keys "
                                         r"'data' and 'labels', found \['data'\]$"):
        cifar.read_batch(pickle.dumps({"data": 1}), "b")
    with pytest.raises(ValueError, match=r"^b: 'data' must be a uint8 array of shape "
                                         r"\(N, 3072\); found ndarray of shape \(2, 3\) and "
                                         r"dtype float64$"):
        cifar.read_batch(pickle.dumps({"data": np.zeros((2, 3)), "labels": [0, 0]}), "b")
    pixels = np.zeros((2, 3072), np.uint8)
    with pytest.raises(ValueError, match=r"^b: 'labels' must be 2 integers, one per image$"):
        cifar.read_batch(py2_batch_pickle(pixels, [1]), "b")
    with pytest.raises(ValueError, match=r"^b: 'labels' must be 2 integers, one per image$"):
        cifar.read_batch(pickle.dumps({"data": pixels, "labels": [1, 2**70]}), "b")
    with pytest.raises(ValueError, match=r"^b: labels must lie in 0\.\.9; found 1\.\.12$"):
        cifar.read_batch(py2_batch_pickle(pixels, [1, 12]), "b")


def test_truncated_batch(tmp_path):
    arrays = cifar_arrays()
    write_cifar_folder(tmp_path, arrays)
    path = tmp_path / "data_batch_3"
    whole = path.read_bytes()
    path.write_bytes(whole[:5000])  # inside the pixel string
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is truncated or damaged "
                                         r"\(pickle data was truncated\); delete it and fetch "
                                         r"it again$"):
        data.cifar10(tmp_path)
    path.write_bytes(whole[:-1])  # no STOP opcode
    with pytest.raises(ValueError, match=r"data_batch_3 is truncated or damaged \(the pickle "
                                         r"ends early\)"):
        data.cifar10(tmp_path)


def test_truncated_archive(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(cifar_archive_bytes(cifar_arrays())[:30000])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(archive))} is truncated or damaged "
                                         r"\(unexpected end of data\); delete it and fetch it "
                                         r"again$"):
        data.cifar10(tmp_path)


def test_archive_without_batches(tmp_path):
    arrays = cifar_arrays()
    del arrays["test_batch"]
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(cifar_archive_bytes(arrays))
    with pytest.raises(ValueError, match=r"cifar-10-python\.tar\.gz lacks "
                                         r"cifar-10-batches-py/test_batch; is it "
                                         r"cifar-10-python\.tar\.gz\?"):
        data.cifar10(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=(
        rf"^no CIFAR-10 files in {re.escape(str(tmp_path))}: expected cifar-10-batches-py/ "
        r"holding data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5 and "
        r"test_batch, or the archive cifar-10-python\.tar\.gz; pass download=True to fetch it$"
    )):
        data.cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"^folder .*nowhere does not exist: expected"):
        data.cifar10(tmp_path / "nowhere")
