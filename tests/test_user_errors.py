"""Errors a new user met (issue 12): each one clear line, pinned here."""

import re
import sys

import numpy as np
import pytest

import convolve
from convolve import _args, checkpoint, filters, train
from convolve.cli import main
from convolve.commands import bench


def fails(capsys, *argv):
    """Run a command that must fail: exit code 2, one line on stderr, nothing on stdout."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return out, err.rstrip("\n")


def test_a_nan_kernel_is_refused_before_the_svd(tmp_path, capsys):
    kernel = np.ones((3, 3))
    kernel[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"^kernel must hold finite numbers; received 1 NaN or "
                                         r"infinite values in an array of shape \(3, 3\)$"):
        filters.apply(np.zeros((8, 8)), kernel)
    path = tmp_path / "k.npy"
    np.save(path, kernel)
    _, err = fails(capsys, "filter", "sample:camera", "--kernel-file", path, "-o",
                   tmp_path / "o.png")
    assert err == ("convolve filter: error: kernel must hold finite numbers; received 1 NaN or "
                   "infinite values in an array of shape (3, 3)")


def test_object_arrays_are_refused_without_suggesting_allow_pickle(tmp_path, capsys):
    objects = np.array([{"a": 1}], dtype=object)
    npy, npz = tmp_path / "k.npy", tmp_path / "c.npz"
    np.save(npy, objects, allow_pickle=True)
    np.savez(npz, a=objects)
    _, err = fails(capsys, "filter", "sample:camera", "--kernel-file", npy, "-o",
                   tmp_path / "o.png")
    assert err == (f"convolve filter: error: kernel file {npy} holds Python objects (pickled "
                   "data), which convolve refuses to load: unpickling can run any code")
    with pytest.raises(checkpoint.CheckpointError, match=(
            rf"^checkpoint {re.escape(repr(str(npz)))} holds Python objects \(pickled data\), "
            r"which convolve refuses to load: unpickling can run any code$")):
        checkpoint.read_arrays(npz)
    garbage = tmp_path / "g.npz"
    garbage.write_bytes(b"garbage" * 20)
    with pytest.raises(checkpoint.CheckpointError) as error:
        checkpoint.read_arrays(garbage)
    assert "allow_pickle" not in str(error.value)
    assert str(error.value).endswith("(ValueError: is neither a .npy array nor a .npz archive "
                                     "of arrays (a pickle is refused))")


def test_the_cli_download_hint_names_the_flag(tmp_path, capsys):
    _, err = fails(capsys, "train", "--dataset", "fashion-mnist", "--data-dir", tmp_path)
    assert err.endswith("; pass --download to fetch them") and "download=True" not in err
    _, err = fails(capsys, "train", "--dataset", "cifar10", "--data-dir", tmp_path)
    assert err.endswith("; pass --download to fetch it") and "download=True" not in err


@pytest.mark.parametrize("command", [["filter", "sample:camera", "-k", "sobel"],
                                     ["featuremaps", "sample:camera", "--kernels", "sobel"]])
def test_output_paths_are_checked_first(tmp_path, capsys, command):
    name = command[0]
    _, err = fails(capsys, *command, "-o", tmp_path / "none" / "o.png")
    assert err == (f"convolve {name}: error: cannot write {tmp_path / 'none' / 'o.png'}: "
                   f"folder {tmp_path / 'none'} does not exist")
    _, err = fails(capsys, *command, "-o", tmp_path / "o")
    assert err == (f"convolve {name}: error: cannot write {tmp_path / 'o'}: unknown file "
                   "extension: (none) (use a suffix such as .png or .jpg)")


def test_featuremaps_writes_the_format_its_suffix_names(tmp_path, capsys):
    from PIL import Image

    assert main(["featuremaps", "sample:camera", "--kernels", "sobel", "--tile", "64", "-o",
                 str(tmp_path / "g.jpg")]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'g.jpg'}: 1 feature map of 256x256\n"
    with Image.open(tmp_path / "g.jpg") as image:
        assert image.format == "JPEG"
    _, err = fails(capsys, "featuremaps", "sample:camera", "--kernels", "sobel", "-o",
                   tmp_path / "g.svg")
    assert err == (f"convolve featuremaps: error: cannot write {tmp_path / 'g.svg'}: unknown "
                   "file extension: .svg (use a suffix such as .png or .jpg)")


@pytest.mark.parametrize(("flags", "message"), [
    (["--epochs", "0"], "--epochs must be >= 1; received 0"),
    (["--batch-size", "0"], "--batch-size must be >= 1; received 0"),
    (["--lr", "-1"], "--lr must be a finite number > 0; received -1.0"),
    (["--lr", "nan"], "--lr must be a finite number > 0; received nan"),
    (["--seed", "-2"], "--seed must be >= 0; received -2"),
    (["--checkpoint", "run.pt"],
     "checkpoint path must end in .safetensors or .npz; received 'run.pt'"),
])
def test_train_validates_every_argument_before_any_work(capsys, flags, message):
    out, err = fails(capsys, "train", *flags)
    assert out == ""  # no summary printed before the error
    assert err == f"convolve train: error: {message}"


def test_sizes_that_cannot_fit_are_refused_with_the_size_needed(tmp_path, capsys):
    _, err = fails(capsys, "filter", "sample:camera", "-k", "box_blur", "--size", "10000001",
                   "-o", tmp_path / "o.png")
    assert re.fullmatch(r"convolve filter: error: the box_blur kernel of shape \(10000001, "
                        r"10000001\) \(float64\) would need 800,000,160,000,008 bytes "
                        r"\(727\.6 TiB\), more than this machine's memory of [\d,]+ bytes "
                        r"\([\d.]+ [KMGT]iB\)", err)
    _, err = fails(capsys, "featuremaps", "sample:camera", "--kernels", "sobel,laplacian",
                   "--tile", "100000", "-o", tmp_path / "g.png")
    assert err in (  # beyond this machine's memory; or, on a larger one, beyond matplotlib's
        "convolve featuremaps: error: the picture of shape (122500, 200000, 4) (uint8) would "
        "need 98,000,000,000 bytes (91.3 GiB), more than this machine's memory of "
        f"{_args.memory_budget():,} bytes ({_args.memory_budget() / 2**30:.1f} GiB)",
        "convolve featuremaps: error: the picture would be 200000x122500 pixels; matplotlib "
        "draws at most 65535 a side: use smaller tiles or fewer columns")
    assert list(tmp_path.iterdir()) == []


def test_pictures_wider_than_matplotlib_draws_are_refused(tmp_path):
    from convolve import viz

    with pytest.raises(ValueError, match=r"^the picture would be 70000x7700 pixels; matplotlib "
                                         r"draws at most 65535 a side: use smaller tiles or "
                                         r"fewer columns$"):
        viz.plot_feature_maps(np.ones((1, 1, 10)), tmp_path / "w.png", tile=7000, columns=10)


def blobs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.normal(0, 0.3, (n, 6, 6, 1)).astype(np.float32)
    images[labels == 0, :3] += 1
    return images, labels


def tiny_model():
    return convolve.nn.Sequential([convolve.nn.Flatten(), convolve.nn.Dense(2, seed=0)],
                                  input_shape=(6, 6, 1))


def test_a_diverging_loss_stops_training_unless_asked_not_to():
    with pytest.raises(train.DivergenceError, match=(
            r"^the loss grew from [\d.]+ to [\d.e+]+ at epoch 1, step \d+: training diverges; "
            r"try a lower learning rate \(now 1e\+06\), or turn this check off "
            r"\(divergence_check=False, --no-divergence-check\)$")):
        train.fit(tiny_model(), blobs(), epochs=2, batch_size=8, optimizer="sgd", lr=1e6,
                  verbose=False)
    history = train.fit(tiny_model(), blobs(), epochs=1, batch_size=8, optimizer="sgd",
                        lr=1e6, verbose=False, divergence_check=False)
    assert history["loss"][0] > 100


def test_the_cli_stops_a_diverging_run(capsys, monkeypatch):
    from convolve import data

    images, labels = blobs(64)
    images = np.kron(images, np.ones((1, 5, 5, 1), np.float32))[:, 1:29, 1:29]
    tiny = data.Dataset("tiny", data.Split(images, labels), data.Split(images, labels),
                        ("top", "bottom"))
    monkeypatch.setattr(data, "embedded_mnist", lambda: tiny)
    _, err = fails(capsys, "train", "--lr", "1e6", "--quiet")
    assert err.startswith("convolve train: error: the loss grew from ")
    assert err.endswith("or turn this check off (divergence_check=False, "
                        "--no-divergence-check)")
    assert main(["train", "--lr", "1e6", "--quiet", "--epochs", "1",
                 "--no-divergence-check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test accuracy ") and out.count("\n") == 1  # --quiet: that only


def test_quiet_is_documented_as_the_result_only(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("--quiet print only the test accuracy line (and the --json line): no model "
            "summary, progress bars or per-epoch lines") in text


@pytest.mark.parametrize(("x", "w", "hint"), [
    ((1, 32, 32, 3), (6, 3, 5, 5),
     "; w of shape (6, 3, 5, 5) would fit in PyTorch's layout (C_out, C_in // groups, KH, KW), "
     "but convolve takes (KH, KW, C_in // groups, C_out): convert it with "
     "w.transpose(2, 3, 1, 0)"),
    ((2, 3, 16, 16), (3, 3, 3, 8),
     "; x of shape (2, 3, 16, 16) would fit channels-first, but convolve takes channels-last "
     "(N, H, W, C): convert it with x.transpose(0, 2, 3, 1)"),
    ((3, 16, 16), (3, 3, 3, 8),
     "; x of shape (3, 16, 16) would fit channels-first, but convolve takes channels-last "
     "(N, H, W, C): convert it with x.transpose(1, 2, 0)"),
    ((1, 8, 8, 4), (3, 3, 3, 6), ""),  # no other layout fits: no hint
])
def test_conv2d_channel_error_hints_at_the_other_layout(x, w, hint):
    c_in = x[-1]
    with pytest.raises(ValueError) as error:
        convolve.conv2d(np.zeros(x, np.float32), np.zeros(w, np.float32))
    assert str(error.value) == (f"w expects {w[2]} input channels per group ({w[2]} in all "
                                f"with groups=1), but x of shape {x} has {c_in} channels"
                                f"{hint}")


def test_conv2d_hints_at_both_layouts_when_both_are_pytorch_s():
    with pytest.raises(ValueError) as error:
        convolve.conv2d(np.zeros((1, 3, 32, 32), np.float32), np.zeros((6, 3, 5, 5), np.float32))
    assert "convert it with w.transpose(2, 3, 1, 0); x of shape (1, 3, 32, 32) would fit " \
           "channels-first" in str(error.value)


def test_bench_names_the_package_for_each_missing_column(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "cv2", None)
    assert bench.missing_peers(["filter"]) == [
        "torch is not installed: its columns are left out (pip install torch; all peers: "
        "pip install 'convolve[bench]')",
        "opencv is not installed: its columns are left out (pip install "
        "opencv-python-headless; all peers: pip install 'convolve[bench]')",
    ]
    assert bench.missing_peers(["pool"]) == [bench.missing_peers(["filter"])[0]]
