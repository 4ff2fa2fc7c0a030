"""``convolve predict`` and the first run a new user makes: train, predict on PNG files of
MNIST test digits and on a photograph, draw the second conv layer's feature maps."""

import json

import numpy as np
import pytest

from convolve import data, io, models, train
from convolve.cli import main
from convolve.commands.predict import probabilities

pytest.importorskip("PIL")
pytest.importorskip("matplotlib")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


@pytest.fixture(scope="module")
def quick_checkpoint(tmp_path_factory):
    """A digits_cnn checkpoint after one step on 16 random images (its answers are
    arbitrary: for the command's mechanics), class names a..j."""
    path = tmp_path_factory.mktemp("quick") / "q.npz"
    rng = np.random.default_rng(0)
    model = models.get_model("digits_cnn", seed=0)
    train.fit(model, (rng.random((16, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 16)),
              batch_size=16, checkpoint_path=path, verbose=False, classes=list("abcdefghij"))
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A folder with a grey PNG, a wide RGB JPEG and an RGBA PNG, all of other sizes."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    io.write_image(folder / "a.png", rng.random((40, 40)))
    io.write_image(folder / "b.jpg", rng.random((30, 90, 3)))
    from PIL import Image

    Image.fromarray((rng.random((20, 20, 4)) * 255).astype(np.uint8), "RGBA").save(
        folder / "c.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_json_lines(capsys, quick_checkpoint, images):
    code, out, err = run(capsys, "predict", images, "--checkpoint", quick_checkpoint,
                         "--json", "--top", "4")
    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines] == [str(images / n) for n in
                                                ("a.png", "b.jpg", "c.png")]
    for line in lines:
        assert set(line) == {"path", "index", "label", "probability", "top"}
        assert line["label"] == "abcdefghij"[line["index"]]
        assert len(line["top"]) == 4 and line["top"][0] == [line["label"],
                                                            line["probability"]]
        ps = [p for _, p in line["top"]]
        assert ps == sorted(ps, reverse=True) and 0 < sum(ps) <= 1 + 1e-6


def test_predict_equals_the_model_on_the_converted_image(capsys, quick_checkpoint, images):
    """The command's probabilities are the softmax of the model on the image read, made
    grey, resized to 28x28 (antialiased bilinear) and normalised."""
    code, out, _ = run(capsys, "predict", images / "b.jpg", "--checkpoint", quick_checkpoint,
                       "--json", "--top", "10")
    assert code == 0
    line = json.loads(out)
    model = models.load(quick_checkpoint)
    grey = io.to_channels(io.read_image(images / "b.jpg"), 1)
    x = io.resize(grey, (28, 28))[None]
    expected = probabilities(model(x))[0]
    got = dict(line["top"])
    for k, label in enumerate("abcdefghij"):
        assert got[label] == pytest.approx(expected[k], abs=2e-6)


def test_predict_text_glob_and_classes(capsys, quick_checkpoint, images):
    code, out, _ = run(capsys, "predict", str(images / "*.png"), "--checkpoint",
                       quick_checkpoint, "--top", "2", "--classes", "digits")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{images / 'a.png'}: ")
    labels = [part.rsplit(" ", 1) for part in lines[0].split(": ", 1)[1].split(", ")]
    assert len(labels) == 2 and all(label in "0123456789" and p.endswith("%")
                                    for label, p in labels)


def test_probabilities_keep_a_distribution_and_softmax_logits():
    dist = np.array([[0.2, 0.8]])
    np.testing.assert_array_equal(probabilities(dist), dist)
    np.testing.assert_allclose(probabilities(np.array([[0.0, np.log(3)]])), [[0.25, 0.75]])


def test_predict_errors(capsys, tmp_path, quick_checkpoint, images):
    assert fails(capsys, "predict", images, "--checkpoint", quick_checkpoint, "--top",
                 "0") == "convolve predict: error: --top must be >= 1; received 0"
    assert fails(capsys, "predict", images, "--checkpoint", tmp_path / "none.npz") == (
        f"convolve predict: error: checkpoint file not found: {tmp_path / 'none.npz'}")
    assert fails(capsys, "predict", tmp_path / "none.png", "--checkpoint",
                 quick_checkpoint) == (
        f"convolve predict: error: image file not found: {tmp_path / 'none.png'}")
    assert fails(capsys, "predict", str(tmp_path / "*.png"), "--checkpoint",
                 quick_checkpoint) == f"convolve predict: error: no file matches " \
                                      f"{tmp_path / '*.png'}"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert fails(capsys, "predict", empty, "--checkpoint", quick_checkpoint).startswith(
        f"convolve predict: error: folder {empty} holds no image files (.png, .jpg, ")
    assert fails(capsys, "predict", images / "notes.txt", "--checkpoint",
                 quick_checkpoint) == (f"convolve predict: error: cannot read "
                                       f"{images / 'notes.txt'}: not an image file that "
                                       "Pillow can decode")
    assert fails(capsys, "predict", images, "--checkpoint", quick_checkpoint, "--classes",
                 "x,y") == ("convolve predict: error: --classes names 2 classes but the "
                            "model has 10 outputs")
    assert fails(capsys, "predict", images, "--checkpoint", quick_checkpoint, "--mean",
                 "0.5") == ("convolve predict: error: --mean and --std apply only to ONNX "
                            "models (--model): a checkpoint holds the normalisation it was "
                            "trained with")
    assert fails(capsys, "predict", images, "--model", quick_checkpoint) == (
        f"convolve predict: error: --model must be an .onnx file; received {quick_checkpoint} "
        "(a training checkpoint goes with --checkpoint)")
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.ones(3))
    assert fails(capsys, "predict", images, "--checkpoint", plain).startswith(
        f"convolve predict: error: checkpoint {str(plain)!r} is damaged or not a convolve "
        "checkpoint")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """What the README's first commands do: convolve train (one epoch on the embedded
    digits, as the README's command but shorter) writing a checkpoint."""
    folder = tmp_path_factory.mktemp("first_run")
    ckpt = folder / "digits.safetensors"
    pytest.importorskip("safetensors")
    assert main(["train", "--epochs", "1", "--checkpoint", str(ckpt), "--quiet"]) == 0
    return folder, ckpt


def test_first_run_predicts_mnist_test_digits_written_as_png(capsys, first_run):
    folder, ckpt = first_run
    capsys.readouterr()
    test = data.embedded_mnist().test
    digits = folder / "digits"
    digits.mkdir()
    picked = np.concatenate([np.flatnonzero(test.labels == d)[:3] for d in range(10)])
    for i in picked:
        io.write_image(digits / f"{i:04d}.png", test.images[i])
    code, out, err = run(capsys, "predict", digits, "--checkpoint", ckpt, "--json")
    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 30
    right = sum(line["label"] == str(test.labels[int(line["path"][-8:-4])]) for line in lines)
    assert right >= 26, f"{right}/30 digits right"


def test_first_run_predicts_a_photograph(capsys, first_run, tmp_path):
    _, ckpt = first_run
    photo = tmp_path / "camera.jpg"
    camera = io.sample_image("camera")
    io.write_image(photo, np.stack([camera, camera * 0.9, camera * 0.8], axis=-1))  # RGB
    code, out, err = run(capsys, "predict", photo, "--checkpoint", ckpt, "--top", "3")
    assert (code, err) == (0, "")
    assert out.startswith(f"{photo}: ") and out.count("%") == 3


def test_first_run_draws_the_second_conv_layer(capsys, first_run):
    folder, ckpt = first_run
    digit = folder / "seven.png"
    test = data.embedded_mnist().test
    io.write_image(digit, test.images[np.flatnonzero(test.labels == 7)[0]])
    out_path = folder / "conv2.png"
    code, out, err = run(capsys, "featuremaps", digit, "--checkpoint", ckpt, "--layer",
                         "conv2d_2", "--tile", "96", "-o", out_path)
    assert (code, err) == (0, "")
    assert out == f"wrote {out_path}: 32 feature maps of 11x11\n"
    code, out, _ = run(capsys, "featuremaps", digit, "--checkpoint", ckpt, "--layer", "2",
                       "--weights", "--tile", "64", "-o", folder / "k.png")
    assert code == 0 and out == f"wrote {folder / 'k.png'}: 32 filters of 3x3\n"
    model = models.load(ckpt)
    assert type(model[2]).__name__ == "Conv2D"  # layer 2 is conv2d_2: the second conv
