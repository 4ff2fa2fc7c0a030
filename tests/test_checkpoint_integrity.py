"""Checkpoint hardening: a digest catches every flipped bit, malformed metadata is a
CheckpointError naming the field, killed writes leave no temporary file after the next save,
and an unwritable folder is refused before training."""

import io
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from convolve import checkpoint, nn, train
from convolve.cli import main

FORMATS = ["npz", "safetensors"]


@pytest.fixture(params=FORMATS)
def path(request, tmp_path):
    if request.param == "safetensors":
        pytest.importorskip("safetensors", reason="safetensors is not installed")
    return tmp_path / f"ckpt.{request.param}"


def arrays():
    rng = np.random.default_rng(0)
    return {"model.w": rng.normal(size=(8, 16)).astype(np.float32),
            "optimizer.m": rng.normal(size=(40,)), "optimizer.step": np.array(3, np.int64)}


def data_offsets(path, data):
    """The offsets of the bytes holding the arrays and the metadata: after safetensors' JSON
    header; for npz the stored members (not the zip's headers)."""
    if path.suffix == ".safetensors":
        return np.arange(8 + struct.unpack("<Q", data[:8])[0], len(data))
    offsets = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name_length, extra_length = struct.unpack(
                "<HH", data[info.header_offset + 26:info.header_offset + 30])
            start = info.header_offset + 30 + name_length + extra_length
            offsets.append(np.arange(start, start + info.compress_size))
    return np.concatenate(offsets)


def test_every_flipped_bit_in_the_data_is_detected(path):
    checkpoint.save(path, arrays(), {"epoch": 3})
    original = path.read_bytes()
    rng = np.random.default_rng(14)
    offsets = rng.choice(data_offsets(path, original), 150)
    for offset, bit in zip(offsets, rng.integers(0, 8, 150)):
        damaged = bytearray(original)
        damaged[offset] ^= 1 << bit
        path.write_bytes(bytes(damaged))
        with pytest.raises(checkpoint.CheckpointError, match=r"^checkpoint '.*' is damaged"):
            checkpoint.load(path)
        with pytest.raises(checkpoint.CheckpointError, match=r"^checkpoint '.*' is damaged"):
            checkpoint.read_arrays(path)


def test_flips_anywhere_are_detected_or_harmless(path):
    """Outside the data a flip may hit bytes nobody reads (header padding, zip timestamps);
    then the loaded checkpoint must be the saved one."""
    saved = arrays()
    checkpoint.save(path, saved, {"epoch": 3, "history": {"loss": [0.5]}})
    original = path.read_bytes()
    rng = np.random.default_rng(1)
    for offset, bit in zip(rng.integers(0, len(original), 300), rng.integers(0, 8, 300)):
        damaged = bytearray(original)
        damaged[offset] ^= 1 << bit
        path.write_bytes(bytes(damaged))
        try:
            loaded, meta = checkpoint.load(path)
        except checkpoint.CheckpointError:
            continue
        assert meta == {"epoch": 3, "history": {"loss": [0.5]}}  # e.g. a padding byte
        for name, value in saved.items():
            np.testing.assert_array_equal(loaded[name], value)


def test_a_file_without_its_digest_is_refused(tmp_path):
    np.savez(tmp_path / "old.npz", a=np.ones(2), __convolve_meta__=np.array('{"epoch": 1}'))
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"^checkpoint '.*old\.npz' is damaged: its SHA-256 digest is "
                             r"missing$"):
        checkpoint.load(tmp_path / "old.npz")


def test_reserved_digest_name(path):
    with pytest.raises(ValueError, match=r"^array name '__convolve_sha256__' is reserved$"):
        checkpoint.save(path, {"__convolve_sha256__": np.ones(1)}, {})


def test_object_arrays_are_refused(path):
    with pytest.raises(TypeError, match=r"^checkpoint array 'a' must hold numbers or bools; "
                                        r"received dtype object$"):
        checkpoint.save(path, {"a": np.array([{}], dtype=object)}, {})


# ---- malformed but parseable metadata of a training checkpoint


def tiny_model():
    model = nn.Sequential([nn.Conv2D(2, 3, seed=0), nn.Flatten(), nn.Dropout(0.2, seed=1),
                           nn.Dense(2, seed=2)])
    model.build((5, 5, 1))
    return model


def tiny_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 5, 5, 1)).astype(np.float32), rng.integers(0, 2, 8)


def resume(path, **settings):
    return train.fit(tiny_model(), tiny_data(), epochs=2, batch_size=4, checkpoint_path=path,
                     resume=True, verbose=False, **settings)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real training checkpoint (Adam, step schedule, early stopping, a dropout
    generator): its arrays and metadata."""
    path = tmp_path_factory.mktemp("trained") / "run.npz"
    train.fit(tiny_model(), tiny_data(), epochs=1, batch_size=4, checkpoint_path=path,
              lr_schedule="step", early_stopping=train.EarlyStopping("loss"), verbose=False)
    return checkpoint.load(path)


def edited(meta, edit):
    meta = json.loads(json.dumps(meta))
    return edit(meta) or meta


MALFORMED = {
    "missing epoch": (lambda m: m.pop("epoch") and None, r"field 'epoch' is missing"),
    "epoch a string": (lambda m: m.update(epoch="1"),
                       r"field 'epoch' must be an integer >= 0; received a string \"1\""),
    "epoch a bool": (lambda m: m.update(epoch=True),
                     r"field 'epoch' must be an integer >= 0; received a bool true"),
    "epoch negative": (lambda m: m.update(epoch=-1),
                       r"field 'epoch' must be an integer >= 0; received an integer -1"),
    "metadata a list": (lambda m: [1, 2],
                        r"the metadata must be a JSON object; received a list \[1, 2\]"),
    "metadata a string": (lambda m: "epoch",
                          r"the metadata must be a JSON object; received a string \"epoch\""),
    "generators a list": (lambda m: m.update(generators=[]),
                          r"field 'generators' must be a JSON object; received a list \[\]"),
    "generator state garbage": (
        lambda m: m["generators"].update({"2._rng": {"bit_generator": "PCG64", "state": 5}}),
        r"field 'generators\.2\._rng' is not a PCG64 state \("),
    "generator without kind": (lambda m: m["generators"].update({"2._rng": {}}),
                               r"field 'generators\.2\._rng\.bit_generator' is missing"),
    "schedule empty": (lambda m: m.update(schedule={}), r"field 'schedule\.base_lr' is missing"),
    "schedule lr a string": (lambda m: m["schedule"].update(base_lr="0.1"),
                             r"field 'schedule\.base_lr' must be a number; received a string"),
    "missing optimizer": (lambda m: m.pop("optimizer") and None,
                          r"field 'optimizer' is missing"),
    "optimizer a list": (lambda m: m.update(optimizer=[]),
                         r"field 'optimizer' must be a JSON object; received a list"),
    "optimizer without numbers": (lambda m: m["optimizer"].pop("numbers") and None,
                                  r"field 'optimizer\.numbers' is missing"),
    "optimizer number a string": (lambda m: m["optimizer"]["numbers"].update(lr="x"),
                                  r"field 'optimizer\.numbers\.lr' must be a number or a bool"),
    "history a list": (lambda m: m.update(history=[]), r"field 'history' must be a JSON object"),
    "history entry a string": (lambda m: m["history"]["loss"].append("x"),
                               r"field 'history\.loss\[1\]' must be a number; received a "
                               r"string \"x\""),
    "early stopping empty": (lambda m: m.update(early_stopping={}),
                             r"field 'early_stopping\.best' is missing"),
    "early stopping wait a float": (lambda m: m["early_stopping"].update(wait=1.5),
                                    r"field 'early_stopping\.wait' must be an integer >= 0; "
                                    r"received a number 1\.5"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_metadata_names_the_field(tmp_path, trained, case):
    arrays, meta = trained
    edit, message = MALFORMED[case]
    path = tmp_path / "run.npz"
    checkpoint.save(path, arrays, edited(meta, edit))
    with pytest.raises(checkpoint.CheckpointError,
                       match=rf"^checkpoint '.*run\.npz' has malformed metadata: {message}"):
        resume(path, lr_schedule="step", early_stopping=train.EarlyStopping("loss"))


def test_a_refused_checkpoint_changes_nothing(tmp_path, trained):
    arrays, meta = trained
    path = tmp_path / "run.npz"
    checkpoint.save(path, arrays, edited(meta, MALFORMED["generator state garbage"][0]))
    model = tiny_model()
    weights, state = model.state_dict(), model[2]._rng.bit_generator.state
    with pytest.raises(checkpoint.CheckpointError):
        train.fit(model, tiny_data(), epochs=2, checkpoint_path=path, resume=True,
                  verbose=False)
    assert model[2]._rng.bit_generator.state == state
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, weights[name])


def test_unknown_fields_are_allowed(tmp_path, trained):
    """Later formats may add fields (e.g. how to rebuild the model)."""
    arrays, meta = trained
    path = tmp_path / "run.npz"
    checkpoint.save(path, arrays, edited(meta, lambda m: m.update(
        model={"zoo": "digits_cnn", "input_shape": [28, 28, 1]}, extra=[1, 2])))
    assert resume(path, lr_schedule="step").epochs == 2


# ---- temporary files, killed writers, the folder's fsync


def test_a_failing_writer_leaves_no_temporary_file(path, monkeypatch):
    checkpoint.save(path, {"a": np.ones(2)}, {"epoch": 1})

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(path, {"a": np.zeros(2)}, {"epoch": 2})
    assert os.listdir(path.parent) == [path.name]
    assert checkpoint.load(path)[1] == {"epoch": 1}


KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from convolve import checkpoint

    def hang(fd):  # the file is written but not yet renamed: stop here until killed
        print("writing", flush=True)
        time.sleep(60)

    os.fsync = hang
    checkpoint.save(sys.argv[1], {"w": np.ones((256, 1024), np.float32)}, {"epoch": 9})
""")


def test_a_killed_save_leaves_no_temporary_file_after_the_next_save(path):
    checkpoint.save(path, {"w": np.zeros(3)}, {"epoch": 1})
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert writer.stdout.readline() == "writing\n"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    left = [name for name in os.listdir(path.parent) if name.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(f".{path.name}.")
    assert checkpoint.load(path)[1] == {"epoch": 1}  # the target is intact
    (path.parent / f".other.npz.{writer.pid}.x.tmp").write_bytes(b"")  # another target's
    (path.parent / f".{path.name}.1.x.tmp").write_bytes(b"")  # pid 1 runs: a live writer's
    checkpoint.save(path, {"w": np.ones(3)}, {"epoch": 2})
    assert sorted(os.listdir(path.parent)) == sorted(
        [path.name, f".other.npz.{writer.pid}.x.tmp", f".{path.name}.1.x.tmp"])
    assert checkpoint.load(path)[1] == {"epoch": 2}


@pytest.mark.skipif(os.name != "posix", reason="folders are fsynced on POSIX only")
def test_the_folder_is_fsynced_after_the_rename(path, monkeypatch):
    synced = []
    real = os.fsync

    def record(fd):
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), path.exists()))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    checkpoint.save(path, {"a": np.ones(2)}, {})
    assert synced == [(False, False), (True, True)]


# ---- an unwritable folder is refused before training


def test_an_unwritable_folder_is_refused_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    epochs = []
    with pytest.raises(NotADirectoryError, match=r"^cannot write checkpoint '.*file/run\.npz': "
                                                 r"'.*file' is not a folder$"):
        train.fit(tiny_model(), tiny_data(), checkpoint_path=blocker / "run.npz",
                  callbacks=[lambda epoch, logs: epochs.append(epoch)], verbose=False)
    assert epochs == []
    (tmp_path / "run.npz").mkdir()
    with pytest.raises(OSError, match=r"^cannot write checkpoint '.*run\.npz': it is a folder$"):
        train.fit(tiny_model(), tiny_data(), checkpoint_path=tmp_path / "run.npz",
                  verbose=False)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions that bind (not root)")
def test_a_read_only_folder_is_refused_before_training(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OSError, match=r"cannot write checkpoint .*: Permission denied"):
            train.fit(tiny_model(), tiny_data(), checkpoint_path=folder / "run.npz",
                      verbose=False)
    finally:
        folder.chmod(0o700)


def test_cli_train_refuses_an_unwritable_checkpoint_first(tmp_path, capsys, monkeypatch):
    from convolve import data

    def never():
        raise AssertionError("the data was read before the checkpoint path was checked")

    monkeypatch.setattr(data, "embedded_mnist", never)
    (tmp_path / "file").write_text("")
    assert main(["train", "--checkpoint", str(tmp_path / "file" / "run.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convolve train: error: cannot write checkpoint '")
    assert err.endswith("file' is not a folder\n") and err.count("\n") == 1
