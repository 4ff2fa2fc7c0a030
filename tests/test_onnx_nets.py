"""Whole networks: CNN families written in PyTorch, exported with both of its ONNX exporters,
loaded with ``convolve.onnx.load`` and compared with PyTorch's own outputs."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch is not installed: whole-network tests skipped")
pytest.importorskip("onnx", reason="onnx is not installed: convolve.onnx tests skipped")

from convolve import onnx as convolve_onnx
from tests.onnx_nets import EXPORTERS, FAMILIES, build, exported, torch_forward

CASES = [(family, exporter) for family in FAMILIES for exporter in EXPORTERS]


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """float32 agreement: relative 1e-4, absolute 1e-4 of the output's magnitude."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == np.float32, f"{what}: dtype {actual.dtype}"
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(family, exporter) -> (torch module, input, ONNX file path or the reason it could not
    be exported). Each model is exported once per session."""
    folder = tmp_path_factory.mktemp("onnx_nets")
    out = {}
    for family in FAMILIES:
        model, shape = build(family)
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        for exporter in EXPORTERS:
            try:
                data = exported(family, exporter)
            except Exception as error:  # an exporter's own limitation, reported as a skip
                out[family, exporter] = (model, x, f"{type(error).__name__}: {error}")
                continue
            path = folder / f"{family}-{exporter}.onnx"
            path.write_bytes(data)
            out[family, exporter] = (model, x, path)
    return out


@pytest.mark.parametrize(("family", "exporter"), CASES)
def test_family_matches_torch(files, family, exporter):
    model, x, path = files[family, exporter]
    if isinstance(path, str):
        pytest.skip(f"torch's {exporter} exporter cannot export {family}: {path}")
    net = convolve_onnx.load(path)
    expected = torch_forward(model, x)
    assert_close(np.asarray(net(x)), expected, f"{family}/{exporter} batch 2")
    # the batch axis is dynamic in both exports: one image runs through the same graph
    assert_close(np.asarray(net(x[:1])), expected[:1], f"{family}/{exporter} batch 1")
    (name,) = net.output_names
    assert_close(np.asarray(net.run({net.input_names[0]: x})[name]), expected,
                 f"{family}/{exporter} run()")
