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
