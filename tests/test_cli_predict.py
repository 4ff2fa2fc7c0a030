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


def test_featuremaps_layers_are_the_model_s(capsys, quick_checkpoint, tmp_path):
    out = tmp_path / "g.png"
    code, text, _ = run(capsys, "featuremaps", "sample:camera", "--checkpoint",
                        quick_checkpoint, "--layer", "maxpool2d_2", "--tile", "64", "-o", out)
    assert code == 0 and text == f"wrote {out}: 32 feature maps of 5x5\n"
    code, text, _ = run(capsys, "featuremaps", "sample:camera", "--checkpoint",
                        quick_checkpoint, "--native-size", "--tile", "64", "-o", out)
    assert code == 0 and text == f"wrote {out}: 16 feature maps of 254x254\n"  # layer 0
    layers = ("0 conv2d_1, 1 maxpool2d_1, 2 conv2d_2, 3 maxpool2d_2, 4 flatten_1, "
              "5 dense_1")
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", quick_checkpoint,
                 "--layer", "9", "-o", out) == (
        f"convolve featuremaps: error: layer '9' is not a layer of this model; its layers: "
        f"{layers}")
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", quick_checkpoint,
                 "--layer", "dense_1", "-o", out) == (
        "convolve featuremaps: error: dense_1 (layer 5) outputs shape (10,), not feature maps "
        f"(H, W, C); choose another layer: {layers}")
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", quick_checkpoint,
                 "--layer", "1", "--weights", "-o", out) == (
        "convolve featuremaps: error: maxpool2d_1 (layer 1) is a MaxPool2D: it has no conv "
        "kernels to draw; choose a convolution layer")
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", quick_checkpoint,
                 "--key", "model.0.weight", "-o", out) == (
        "convolve featuremaps: error: --key names an array of a file of weights; a training "
        "checkpoint's model takes --layer N or --layer NAME")
    assert not out.exists() or out.stat().st_size > 0


def test_featuremaps_of_a_custom_model_s_checkpoint_skip_optimizer_state(capsys, tmp_path):
    """A model not from the zoo cannot be rebuilt: --layer N counts its 4-D weights only
    (Adam's moments of the same shapes are not layers)."""
    from convolve import nn

    path = tmp_path / "custom.npz"
    model = nn.Sequential([nn.Conv2D(3, 3, seed=0), nn.Conv2D(5, 3, seed=1), nn.Flatten(),
                           nn.Dense(2, seed=2)], input_shape=(8, 8, 1))
    rng = np.random.default_rng(0)
    train.fit(model, (rng.random((8, 8, 8, 1), dtype=np.float32), rng.integers(0, 2, 8)),
              checkpoint_path=path, verbose=False)
    out = tmp_path / "g.png"
    code, text, _ = run(capsys, "featuremaps", "sample:camera", "--checkpoint", path,
                        "--layer", "0", "--tile", "64", "-o", out)
    assert code == 0 and text == f"wrote {out}: 3 feature maps of 256x256\n"
    code, text, _ = run(capsys, "featuremaps", "sample:camera", "--checkpoint", path,
                        "--layer", "1", "--weights", "--tile", "64", "-o", out)
    assert code == 0 and text == f"wrote {out}: 5 filters of 3x3\n"  # model.1.weight
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", path, "--layer", "2",
                 "-o", out) == (
        f"convolve featuremaps: error: --layer 2 is out of range: {path} holds 2 4-D arrays "
        "(model.0.weight, model.1.weight)")
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", path, "--layer",
                 "conv2d_1", "-o", out) == (
        "convolve featuremaps: error: --layer must be a number for a file of weights (it "
        "holds no model to name layers in); received 'conv2d_1'")


def tiny_onnx(path, *, layout, size=(8, 8)):
    """A small ONNX classifier of images with 3 channels, ``size`` (H, W) (names: dynamic
    sizes): conv 3x3 (4 filters), Relu, global average pool, flatten, Gemm to 5 classes.
    ``layout``: its input's, NCHW or NHWC (then a Transpose first)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("w", (4, 3, 3, 3)), ("b", (4,)), ("g", (4, 5)),
                                   ("c", (5,)))]
    nodes = [helper.make_node("Conv", ["nchw", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
             helper.make_node("Flatten", ["pool"], ["flat"]),
             helper.make_node("Gemm", ["flat", "g", "c"], ["logits"])]
    if layout == "NHWC":
        nodes.insert(0, helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]))
        shape = ["N", *size, 3]
    else:
        nodes[0].input[0] = "x"
        shape = ["N", 3, *size]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_predict_with_an_onnx_model_equals_onnx_runtime(capsys, tmp_path, images, layout):
    ort = pytest.importorskip("onnxruntime")
    model = tiny_onnx(tmp_path / "tiny.onnx", layout=layout)
    code, out, err = run(capsys, "predict", images, "--model", model, "--json", "--top", "5",
                         "--mean", "0.5", "--std", "0.25")
    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    for line in lines:
        rgb = io.resize(io.to_channels(io.read_image(line["path"]), 3), (8, 8))
        x = ((rgb - 0.5) / 0.25)[None].astype(np.float32)
        feed = x.transpose(0, 3, 1, 2) if layout == "NCHW" else x
        expected = probabilities(session.run(None, {"x": feed})[0])[0]
        assert line["label"] == str(int(np.argmax(expected)))  # no class names: numbers
        for label, p in line["top"]:
            assert p == pytest.approx(expected[int(label)], abs=1e-5)
    # an .onnx path given as --checkpoint is the same
    code, again, _ = run(capsys, "predict", images, "--checkpoint", model, "--json", "--top",
                         "5", "--mean", "0.5", "--std", "0.25")
    assert code == 0 and again == out


def test_predict_refuses_onnx_models_it_cannot_feed(capsys, tmp_path, images):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])])
    flat = tmp_path / "flat.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), flat)
    assert fails(capsys, "predict", images, "--model", flat) == (
        f"convolve predict: error: {flat} takes input of shape (?, 10); an image model takes "
        "(N, C, H, W) or (N, H, W, C) with 1 or 3 channels")
    assert fails(capsys, "predict", images, "--model", tmp_path / "none.onnx") == (
        f"convolve predict: error: model file not found: {tmp_path / 'none.onnx'}")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    assert fails(capsys, "predict", images, "--model", broken).startswith(
        f"convolve predict: error: cannot read {broken} as an ONNX model (")
    rgba = tiny_onnx(tmp_path / "rgba.onnx", layout="NCHW")
    proto = onnx.load(str(rgba))
    proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 4
    onnx.save(proto, rgba)
    assert fails(capsys, "predict", images, "--model", rgba) == (
        f"convolve predict: error: {rgba} takes input of shape (?, 4, 8, 8); an image model "
        "takes (N, C, H, W) or (N, H, W, C) with 1 or 3 channels")
    proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 3
    proto.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    onnx.save(proto, rgba)
    assert fails(capsys, "predict", images, "--model", rgba) == (
        f"convolve predict: error: {rgba} takes uint8 input; an image model here takes floats")
    proto.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
    helper.set_model_props(proto, {"convolve.model_info": '{"mean": "x"}'})
    onnx.save(proto, rgba)
    assert fails(capsys, "predict", images, "--model", rgba).startswith(
        "convolve predict: error: the model's convolve.model_info metadata is malformed: ")


def test_predict_runs_a_model_of_any_size_on_each_image_s_own(capsys, tmp_path, images):
    """Height and width dynamic: each image at its own size (runs of equal sizes batched)."""
    ort = pytest.importorskip("onnxruntime")
    model = tiny_onnx(tmp_path / "any.onnx", layout="NCHW", size=("H", "W"))
    code, out, err = run(capsys, "predict", images, images / "a.png", "--model", model,
                         "--json", "--top", "5")
    assert (code, err) == (0, "")
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines] == [str(images / n) for n in
                                                ("a.png", "b.jpg", "c.png", "a.png")]
    for line in lines:
        x = io.to_channels(io.read_image(line["path"]), 3)[None].astype(np.float32)
        expected = probabilities(session.run(None, {"x": x.transpose(0, 3, 1, 2)})[0])[0]
        for label, p in line["top"]:
            assert p == pytest.approx(expected[int(label)], abs=1e-5)


def test_predict_with_a_convolve_exported_file_keeps_its_classes_and_normalisation(
        capsys, tmp_path, images):
    """convolve.onnx.save keeps the model's class names and normalisation in the file:
    convolve predict --model shows those names and gives convolve.predict's probabilities
    on the normalised image. An input (N, 3, 6, 3) is NHWC, as every file convolve writes."""
    pytest.importorskip("onnx")
    import convolve
    from convolve import nn
    from convolve.model_info import ModelInfo
    from convolve.onnx import save

    model = nn.Sequential([nn.Conv2D(4, 3, padding="same", seed=0), nn.ReLU(),
                           nn.GlobalAvgPool2D(), nn.Dense(5, seed=1)])
    info = ModelInfo(classes=("vw", "x", "y z", "u", "t"), mean=(0.5, 0.4, 0.3),
                     std=(0.2, 0.25, 0.3))
    model.info = info
    path = tmp_path / "exported.onnx"
    save(model, path, input_shape=(3, 6, 3))
    code, out, err = run(capsys, "predict", images, "--model", path, "--json", "--top", "5")
    assert (code, err) == (0, "")
    for line in (json.loads(line) for line in out.splitlines()):
        rgb = io.resize(io.to_channels(io.read_image(line["path"]), 3), (3, 6))
        expected = probabilities(convolve.predict(model, info.normalize(rgb)[None]))[0]
        assert line["label"] == info.classes[int(np.argmax(expected))]
        assert [label for label, _ in line["top"]] == [
            info.classes[k] for k in np.argsort(-expected, kind="stable")]
        for label, p in line["top"]:
            assert p == pytest.approx(expected[info.classes.index(label)], abs=1e-5)
    # --mean and --std replace the stored normalisation, --classes the stored names
    code, out, _ = run(capsys, "predict", images / "b.jpg", "--model", path, "--json",
                       "--top", "5", "--std", "0.5", "--classes", "a,b,c,d,e")
    line = json.loads(out)
    rgb = io.resize(io.to_channels(io.read_image(line["path"]), 3), (3, 6))
    x = ((rgb - np.float32(info.mean)) / np.float32(0.5))[None]
    expected = probabilities(convolve.predict(model, x))[0]
    for label, p in line["top"]:
        assert p == pytest.approx(expected["abcde".index(label)], abs=1e-5)


def test_predict_with_an_exported_checkpoint_equals_the_checkpoint(
        capsys, tmp_path, quick_checkpoint, images):
    """convolve export, then convolve predict --model: the checkpoint's classes and
    answers."""
    pytest.importorskip("onnx")
    path = tmp_path / "digits.onnx"
    assert run(capsys, "export", quick_checkpoint, "-o", path)[0] == 0
    code, from_onnx, _ = run(capsys, "predict", images, "--model", path, "--json")
    assert code == 0
    code, from_checkpoint, _ = run(capsys, "predict", images, "--checkpoint",
                                   quick_checkpoint, "--json")
    assert code == 0
    for a, b in zip(from_onnx.splitlines(), from_checkpoint.splitlines(), strict=True):
        a, b = json.loads(a), json.loads(b)
        assert [label for label, _ in a["top"]] == [label for label, _ in b["top"]]
        assert a["top"][0][0] in "abcdefghij"
        np.testing.assert_allclose([p for _, p in a["top"]], [p for _, p in b["top"]],
                                   atol=1e-5)
