"""Checkpoint files: round trip in both formats, atomic writes, clear errors."""

import os

import numpy as np
import pytest

from convolve import checkpoint

FORMATS = ["npz", "safetensors"]


@pytest.fixture(params=FORMATS)
def path(request, tmp_path):
    if request.param == "safetensors":
        pytest.importorskip("safetensors", reason="safetensors is not installed")
    return tmp_path / f"ckpt.{request.param}"


def test_round_trip(path):
    arrays = {"model.w": np.arange(6, dtype=np.float32).reshape(2, 3),
              "optim.step": np.array(3, np.int64)}
    meta = {"epoch": 4, "rng": {"state": 2**100 + 7}}
    checkpoint.save(path, arrays, meta)
    loaded, loaded_meta = checkpoint.load(path)
    assert loaded_meta == meta
    assert loaded.keys() == arrays.keys()
    for k in arrays:
        np.testing.assert_array_equal(loaded[k], arrays[k])
        assert loaded[k].dtype == arrays[k].dtype


def test_no_temporary_file_is_left(path):
    checkpoint.save(path, {"a": np.ones(2)}, {})
    assert os.listdir(path.parent) == [path.name]


def test_a_failed_write_keeps_the_old_checkpoint(path):
    checkpoint.save(path, {"a": np.ones(2)}, {"epoch": 1})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        checkpoint.save(path, {"a": np.zeros(2)}, {"epoch": Unserialisable()})
    arrays, meta = checkpoint.load(path)
    assert meta == {"epoch": 1} and arrays["a"][0] == 1
    assert os.listdir(path.parent) == [path.name]


def test_truncated_file_is_a_clear_error(path):
    checkpoint.save(path, {"a": np.ones(1000)}, {"epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"^checkpoint '.*' is damaged or not a (npz|safetensors) file \("):
        checkpoint.load(path)


def test_garbage_file_is_a_clear_error(path):
    path.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"^checkpoint '.*' is damaged or not a (npz|safetensors) file \("):
        checkpoint.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.npz")


def test_npz_without_metadata_is_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(checkpoint.CheckpointError, match="not a convolve checkpoint"):
        checkpoint.load(tmp_path / "plain.npz")


def test_pickled_npz_is_never_unpickled(tmp_path):
    np.savez(tmp_path / "evil.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(tmp_path / "evil.npz")


def test_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"checkpoint path must end in \.safetensors or \.npz; "
                                         r"received '.*model\.pt'"):
        checkpoint.save(tmp_path / "model.pt", {}, {})


def test_read_arrays_reads_any_file_and_leaves_the_metadata_out(path):
    checkpoint.save(path, {"w": np.ones((2, 2), np.float32)}, {"epoch": 1})
    arrays = checkpoint.read_arrays(path)
    assert list(arrays) == ["w"] and arrays["w"].dtype == np.float32
    plain = path.parent / "plain.npz"
    np.savez(plain, a=np.arange(3))
    np.testing.assert_array_equal(checkpoint.read_arrays(plain)["a"], np.arange(3))
    with pytest.raises(checkpoint.CheckpointError, match=r"^checkpoint '.*none\.npz' does not "
                                                         r"exist$"):
        checkpoint.read_arrays(path.parent / "none.npz")


def test_suffix_case_does_not_matter(tmp_path):
    checkpoint.save(tmp_path / "run.NPZ", {"a": np.ones(2)}, {"epoch": 2})
    assert checkpoint.load(tmp_path / "run.NPZ")[1] == {"epoch": 2}
