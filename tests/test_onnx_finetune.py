"""Fine-tuning imported networks: convolve's gradients of an ONNX graph equal PyTorch's for
the module it was exported from, and an imported network trains (its loss goes down)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: fine-tuning tests skipped")
pytest.importorskip("onnx", reason="onnx is not installed: convolve.onnx tests skipped")

from convolve import Tensor, fit, losses, optim  # noqa: E402
from convolve import onnx as convolve_onnx  # noqa: E402
from tests.onnx_nets import build, exported  # noqa: E402

# (family, exporter, constant folding): exports whose initializers keep PyTorch's parameter
# names. With folding off the TorchScript exporter keeps BatchNormalization as a node (its
# scale and shift are parameters); the dynamo exporter folds batch norm into the convs, so
# only the families without it keep their parameters as they are in PyTorch.
GRADIENT_CASES = [
    ("resnet", "torchscript", False),
    ("mobilenetv3", "torchscript", False),
    ("yolo", "torchscript", False),
    ("inception", "torchscript", True),
    ("inception", "dynamo", True),
    ("unet", "dynamo", True),
]


def assert_grad_close(actual, expected, what: str) -> None:
    scale = max(1e-3, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=2e-4 * scale, err_msg=what)


@pytest.mark.parametrize(("family", "exporter", "folding"), GRADIENT_CASES)
def test_gradients_match_torch(family, exporter, folding):
    model, shape = build(family)
    try:
        data = exported(family, exporter, constant_folding=folding)
    except Exception as error:  # the exporter's own limitation (or onnxscript missing)
        pytest.skip(f"torch's {exporter} exporter cannot export {family}: {error}")
    net = convolve_onnx.load(data)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)

    xt = torch.from_numpy(x).requires_grad_(True)
    yt = model(xt)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    (yt * torch.from_numpy(g)).sum().backward()

    xc = Tensor(x, requires_grad=True)
    yc = net(xc)
    assert isinstance(yc, Tensor)
    (yc * g).sum().backward()

    assert_grad_close(xc.grad, xt.grad.numpy(), f"{family}/{exporter}: input gradient")
    params = dict(net.named_parameters())
    compared = 0
    for name, p in model.named_parameters():
        if name not in params:
            continue
        assert params[name].grad is not None, f"{family}/{exporter}: {name} has no gradient"
        assert_grad_close(net.file_layout(name, params[name].grad), p.grad.numpy(),
                          f"{family}/{exporter}: gradient of {name}")
        compared += 1
    # every trained tensor of the module is a parameter of the import (none folded away)
    assert compared == len(list(model.parameters()))


@pytest.fixture(scope="module")
def resnet_file():
    return exported("resnet", "torchscript", constant_folding=False)


def batch(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, n)


def test_imported_network_trains_with_an_optimizer(resnet_file):
    net = convolve_onnx.load(resnet_file).train()
    images, labels = batch(16)
    opt = optim.Adam(net.parameters(), lr=1e-2)
    history = []
    for _ in range(12):
        loss = losses.cross_entropy(net(Tensor(images)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(np.asarray(loss)))
    assert history[-1] < 0.5 * history[0], history
    # the trained parameters are the ones inference uses
    net.eval()
    logits = net(images)
    assert isinstance(logits, np.ndarray)
    assert float(np.asarray(losses.cross_entropy(logits, labels))) < history[0]


def test_imported_network_trains_with_fit(resnet_file):
    net = convolve_onnx.load(resnet_file)
    images, labels = batch(32)
    history = fit(net, (images, labels), epochs=4, lr=1e-2, batch_size=8, verbose=False)
    assert history["loss"][-1] < history["loss"][0], history["loss"]
