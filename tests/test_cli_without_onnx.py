"""Every command that reads or writes ONNX names the extra when the onnx package is
missing: one line, exit code 2."""

import sys

import pytest

from convolve.cli import main

MESSAGE = "ONNX models need the onnx package: pip install 'convolve[onnx]'"


@pytest.mark.parametrize("argv", [
    ["export", "run.safetensors", "-o", "m.onnx"],
    ["summary", "m.onnx"],
    ["predict", "sample:camera", "--model", "m.onnx"],
    ["featuremaps", "sample:camera", "--model", "m.onnx", "-o", "maps.png"],
])
def test_a_missing_onnx_package_names_the_extra(argv, tmp_path, monkeypatch, capsys):
    pytest.importorskip("PIL")
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err == f"convolve {argv[0]}: error: {MESSAGE}\n", (out, err)
