"""The command line with ONNX files: convolve export, summary and featuremaps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convolve import data, models, train
from convolve.cli import main

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory):
    """A digits_cnn training checkpoint after one short epoch, with class names."""
    path = tmp_path_factory.mktemp("ckpt") / "run.npz"
    rng = np.random.default_rng(0)
    split = data.Split(rng.random((16, 28, 28, 1), dtype=np.float32),
                       rng.integers(0, 10, 16).astype(np.int64), tuple("abcdefghij"))
    train.fit(models.get_model("digits_cnn", seed=0), split, epochs=1, batch_size=16,
              checkpoint_path=path, verbose=False)
    return path


def one_line_error(capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err, err


@pytest.mark.parametrize("opset", [None, 13])
def test_export_checkpoint(tmp_path, capsys, checkpoint_path, opset):
    out = tmp_path / "digits.onnx"
    argv = ["export", str(checkpoint_path), "-o", str(out)]
    assert main(argv + ([] if opset is None else ["--opset", str(opset)])) == 0
    opset = opset or 17
    assert capsys.readouterr().out == (f"wrote {out}: digits_cnn (12,810 parameters), input "
                                       f"(N, 28, 28, 1), opset {opset}\n")
    onnx.checker.check_model(str(out), full_check=True)
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version == opset
    info = json.loads({p.key: p.value for p in proto.metadata_props}["convolve.model_info"])
    assert info["name"] == "digits_cnn" and info["classes"] == list("abcdefghij")
    x = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0],
                               models.load(checkpoint_path)(x), rtol=1e-4, atol=1e-5)


def test_export_errors(tmp_path, capsys, checkpoint_path):
    one_line_error(capsys, ["export", str(checkpoint_path), "-o", str(tmp_path / "m.npz")],
                   "convolve export: error: -o must name an .onnx file; received")
    one_line_error(capsys, ["export", str(tmp_path / "none.npz"), "-o",
                            str(tmp_path / "m.onnx")],
                   f"convolve export: error: checkpoint {str(tmp_path / 'none.npz')!r} does "
                   "not exist")
    one_line_error(capsys, ["export", str(checkpoint_path), "-o", str(tmp_path / "m.onnx"),
                            "--opset", "12"],
                   "convolve export: error: opset must be an integer from 13 to 21; "
                   "received 12")
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.zeros(3))
    one_line_error(capsys, ["export", str(plain), "-o", str(tmp_path / "m.onnx")],
                   "is damaged or not a convolve checkpoint")
    assert not (tmp_path / "m.onnx").exists()
    one_line_error(capsys, ["export", str(checkpoint_path)], "the following arguments are "
                   "required: -o/--output")


@pytest.fixture(scope="module")
def lenet_onnx(tmp_path_factory):
    from convolve.onnx import save

    path = tmp_path_factory.mktemp("onnx") / "lenet.onnx"
    save(models.lenet5(seed=0), path, input_shape=(32, 32, 3))
    return path


def test_summary_of_an_onnx_file(capsys, lenet_onnx):
    assert main(["summary", str(lenet_onnx)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["node", "op", "output", "shape", "params"]
    assert lines[3].split()[0] == "0.conv" and lines[3].split()[-1] == "456"
    assert lines[-1] == "Total params: 62,006"
    assert main(["summary", str(lenet_onnx), "--input-shape", "5,32,32,3"]) == 0
    assert "(5, 6, 28, 28)" in capsys.readouterr().out


def test_summary_errors(tmp_path, capsys, lenet_onnx):
    one_line_error(capsys, ["summary", str(lenet_onnx), "--model", "lenet5"],
                   "convolve summary: error: give either an ONNX file or --model, not both")
    one_line_error(capsys, ["summary", str(tmp_path / "m.npz")],
                   "convolve summary: error: MODEL.onnx must be an .onnx file; received")
    one_line_error(capsys, ["summary", str(tmp_path / "none.onnx")],
                   f"convolve summary: error: no ONNX file at {str(tmp_path / 'none.onnx')!r}")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(lenet_onnx.read_bytes()[:500])
    one_line_error(capsys, ["summary", str(broken)], "convolve summary: error: ")
    one_line_error(capsys, ["summary", str(lenet_onnx), "--input-shape", "1,3,0,32"],
                   "convolve summary: error: --input-shape must be positive integers; "
                   "received '1,3,0,32'")
    one_line_error(capsys, ["summary", str(lenet_onnx), "--input-shape=1,3,100000,100000000"],
                   "convolve summary: error: the input of --input-shape of shape (1, 3, 100000, "
                   "100000000) (float32) would need")
    one_line_error(capsys, ["summary", str(lenet_onnx), "--input-shape", "1,32,3"],
                   "convolve summary: error: input 'input' must have shape ('?', 32, 32, 3)")


def png_size(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.size


@pytest.mark.parametrize(("layer", "count"), [
    (None, 6), ("2.relu", 16), ("input", 3), ("nchw", 3)])
@pytest.mark.parametrize("option", ["--model", "--checkpoint"])
def test_featuremaps_of_onnx_nodes(tmp_path, capsys, lenet_onnx, layer, count, option):
    pytest.importorskip("matplotlib")
    pytest.importorskip("PIL")
    out = tmp_path / "maps.png"
    argv = ["featuremaps", "sample:camera", option, str(lenet_onnx), "--tile", "32",
            "-o", str(out)]
    assert main(argv + ([] if layer is None else ["--layer", layer])) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: {count} feature maps of ")
    assert png_size(out)[0] > 0


def test_node_outputs_equal_onnx_runtime(lenet_onnx):
    """probe.node_outputs gives what ONNX Runtime gives for the same tensors."""
    from convolve.onnx import load
    from convolve.onnx.probe import node_outputs

    model = load(lenet_onnx)
    proto = onnx.load(str(lenet_onnx))
    names = ["0.conv", "2.relu", "3.max_pool", "4"]
    proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    expected = dict(zip(names, session.run(names, {"input": x})))
    got = node_outputs(model, names, {"input": x})
    for name in names:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5)


def test_featuremaps_onnx_errors(tmp_path, capsys, lenet_onnx):
    out = str(tmp_path / "maps.png")
    base = ["featuremaps", "sample:camera", "--model", str(lenet_onnx), "-o", out]
    one_line_error(capsys, [*base, "--layer", "5.dense"],
                   "convolve featuremaps: error: --layer '5.dense' gives float32 of shape "
                   "(1, 120), not feature maps (N, C, H, W)")
    one_line_error(capsys, [*base, "--layer", "nope"],
                   "convolve featuremaps: error: --layer 'nope' is neither a node nor a "
                   "tensor of the graph; its nodes: nchw, 0.conv, 0.relu,")
    one_line_error(capsys, [*base, "--key", "w"],
                   "convolve featuremaps: error: --key, --layer and --weights apply only with "
                   "--checkpoint (--layer also with --model)")
    one_line_error(capsys, [*base, "--weights"], "--layer also with --model")
    one_line_error(capsys, ["featuremaps", "sample:camera", "--model", str(tmp_path / "m.pt"),
                            "-o", out],
                   "convolve featuremaps: error: --model must be an .onnx file; received")
    one_line_error(capsys, ["featuremaps", "sample:camera", "--checkpoint",
                            str(tmp_path / "none.onnx"), "-o", out],
                   "convolve featuremaps: error: model file not found: "
                   f"{tmp_path / 'none.onnx'}")
    mlp = tmp_path / "mlp.onnx"
    from convolve import nn
    from convolve.onnx import save

    save(nn.Sequential([nn.Flatten(), nn.Dense(3)]), mlp, input_shape=(4, 4, 1))
    one_line_error(capsys, ["featuremaps", "sample:camera", "--model", str(mlp), "-o", out],
                   f"convolve featuremaps: error: {mlp} has no Conv node; name one with "
                   "--layer")
    dense = tmp_path / "dense.onnx"
    save(nn.Sequential([nn.Dense(3)]), dense, input_shape=(4,))
    one_line_error(capsys, ["featuremaps", "sample:camera", "--model", str(dense), "-o", out],
                   f"convolve featuremaps: error: {dense} takes input of shape (?, 4); an "
                   "image model takes (N, C, H, W) or (N, H, W, C)")


def test_featuremaps_of_an_nchw_graph(tmp_path, capsys):
    """A graph as other exporters write it: NCHW input of a fixed size."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("PIL")
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["features"], name="conv"),
         helper.make_node("Relu", ["features"], ["logits"], name="relu")], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 10])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 6, 8])],
        [numpy_helper.from_array(weight, "w")])
    path = tmp_path / "nchw.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    out = tmp_path / "maps.png"
    assert main(["featuremaps", "sample:camera", "--model", str(path), "--tile", "32",
                 "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}: 4 feature maps of 8x6\n"
    one_line_error(capsys, ["featuremaps", "sample:camera", "--model", str(path),
                            "--native-size", "-o", str(out)],
                   "convolve featuremaps: error: input 'image' must have shape (1, 3, 8, 10)")
    graph.input[0].CopyFrom(helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                          [1, 3, "H", "W"]))
    graph.output[0].CopyFrom(helper.make_tensor_value_info("logits", TensorProto.FLOAT, None))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    assert main(["featuremaps", "sample:camera", "--model", str(path), "--layer", "relu",
                 "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}: 4 feature maps of 254x254\n"
