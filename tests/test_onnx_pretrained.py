"""Pretrained networks from PyPI packages (PaddleOCR's detector, direction classifier and
recogniser; MTCNN's face networks), run on real photographs by ``convolve.onnx.load`` and
compared with ONNX Runtime fed the same arrays."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx is not installed: convolve.onnx tests skipped")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: no reference")

from convolve import onnx as convolve_onnx  # noqa: E402
from tests.onnx_pretrained import PRETRAINED, ModelUnavailableError, fetch, photographs  # noqa: E402

# Deep float32 networks (the recogniser has 38 convolutions and 5 attention blocks):
# rounding differs in summation order from ONNX Runtime's kernels.
RTOL, ATOL = 1e-3, 1e-4


@pytest.fixture(scope="module")
def photos():
    images = photographs()
    if images is None:
        pytest.skip("the shared photographs (../shared/data/images) are not here")
    return images


def reference(path, feeds: dict) -> dict:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


@pytest.mark.parametrize("name", list(PRETRAINED))
def test_pretrained_matches_onnxruntime(photos, name):
    try:
        path = fetch(name)
    except ModelUnavailableError as error:
        pytest.skip(str(error))
    feeds = PRETRAINED[name].inputs(photos)
    expected = reference(path, feeds)
    net = convolve_onnx.load(path)
    assert list(net.output_names) == list(expected)
    actual = net.run(feeds)
    for key, want in expected.items():
        got = np.asarray(actual[key])
        assert got.shape == want.shape, f"{name} {key}: {got.shape} != {want.shape}"
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL * scale,
                                   err_msg=f"{name} output {key}")
        if want.ndim >= 2 and want.shape[-1] > 1 and np.allclose(want.sum(-1), 1, atol=1e-3):
            # probabilities: the same class wins (every text position of the recogniser)
            np.testing.assert_array_equal(got.argmax(-1), want.argmax(-1),
                                          err_msg=f"{name} output {key}: winning classes")
