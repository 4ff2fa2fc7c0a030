"""Initializers reached through Identity nodes (PyTorch's exporters write them for tied
weights and deduplicated values) and initializers read in several roles: one parameter or
buffer per tensor, gradients of a shared weight summed over its uses, running statistics
that fine-tuning updates written back by ``save``, and a batch norm's statistics never
updating a parameter that shares their initializer."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed: convolve.onnx tests skipped")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from convolve import Tensor, optim  # noqa: E402
from convolve.onnx import load, save  # noqa: E402

helper, numpy_helper, TP = onnx.helper, onnx.numpy_helper, onnx.TensorProto
X_SHAPE = (2, 3, 6, 6)


def model_bytes(nodes, inits, dtype=np.float32) -> bytes:
    elem = TP.DOUBLE if dtype == np.float64 else TP.FLOAT
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", elem, list(X_SHAPE))],
        [helper.make_tensor_value_info("y", elem, [2, 4, 1, 1])],
        [numpy_helper.from_array(np.asarray(a, dtype), n) for n, a in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]
                             ).SerializeToString()


def initial(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((4, 3, 3, 3)), "b": rng.standard_normal(4),
            "g": rng.uniform(0.5, 1.5, 4), "be": rng.standard_normal(4),
            "m": rng.standard_normal(4), "v": rng.uniform(0.5, 1.5, 4)}


def conv(x: str, w: str, y: str, b: str = "") -> onnx.NodeProto:
    return helper.make_node("Conv", [x, w, b] if b else [x, w], [y], kernel_shape=[3, 3],
                            pads=[1] * 4)


def shared_graph(*, via_identity: bool, dtype=np.float32) -> bytes:
    """Two convs sharing ``w`` (one reads it through an Identity when ``via_identity``),
    their sum batch-normalised with statistics read through Identities, Relu, global
    pooling. Without ``via_identity`` the same network with two copies ``w1``, ``w2``."""
    inits = initial()
    if via_identity:
        nodes = [helper.make_node("Identity", ["w"], ["w_id"]),
                 helper.make_node("Identity", ["m"], ["m_id"]),
                 helper.make_node("Identity", ["m_id"], ["m_id2"]),  # a chain
                 helper.make_node("Identity", ["v"], ["v_id"]),
                 conv("x", "w_id", "c1", "b"), conv("x", "w", "c2"),
                 helper.make_node("Add", ["c1", "c2"], ["s"]),
                 helper.make_node("BatchNormalization", ["s", "g", "be", "m_id2", "v_id"],
                                  ["n"])]
    else:
        inits["w1"] = inits["w2"] = inits.pop("w")
        nodes = [conv("x", "w1", "c1", "b"), conv("x", "w2", "c2"),
                 helper.make_node("Add", ["c1", "c2"], ["s"]),
                 helper.make_node("BatchNormalization", ["s", "g", "be", "m", "v"], ["n"])]
    nodes += [helper.make_node("Relu", ["n"], ["r"]),
              helper.make_node("GlobalAveragePool", ["r"], ["y"])]
    return model_bytes(nodes, inits, dtype)


def ort_run(blob_or_path, x: np.ndarray) -> np.ndarray:
    source = blob_or_path if isinstance(blob_or_path, bytes) else str(blob_or_path)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def train_step(model, x: np.ndarray, *, lr: float = 0.1) -> None:
    model.train()
    optimizer = optim.SGD(model.parameters(), lr=lr)
    optimizer.zero_grad()
    (model(Tensor(x)) * np.arange(4.0).reshape(1, 4, 1, 1).astype(x.dtype)).sum().backward()
    optimizer.step()
    model.eval()


def sample(dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(X_SHAPE).astype(dtype)


def test_identity_of_initializers_is_the_initializer_itself():
    model = load(shared_graph(via_identity=True))
    assert [name for name, _ in model.named_parameters()] == ["w", "b", "g", "be"]
    assert dict(model.named_buffers()).keys() == {"m", "v"}
    assert len({id(p) for p in model.parameters()}) == 4
    assert model.state_dict().keys() == {"w", "b", "g", "be", "m", "v"}
    # the weight is laid out for the convs once, as any conv weight
    assert model.state_dict()["w"].shape == (3, 3, 3, 4)
    x = sample()
    np.testing.assert_allclose(model(x), ort_run(shared_graph(via_identity=True), x),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_shared_weight_gradient_sums_its_uses(mode):
    shared, split = load(shared_graph(via_identity=True)), load(shared_graph(via_identity=False))
    x, g = sample(), np.random.default_rng(2).standard_normal((2, 4, 1, 1))
    for model in (shared, split):
        model.train(mode == "train")
        (model(Tensor(x)) * g).sum().backward()
    w = shared.file_layout("w", dict(shared.named_parameters())["w"].grad)
    w1, w2 = (split.file_layout(name, dict(split.named_parameters())[name].grad)
              for name in ("w1", "w2"))
    np.testing.assert_allclose(w, w1 + w2, rtol=1e-4, atol=1e-5)
    assert np.abs(w1).max() > 1e-3 and np.abs(w2).max() > 1e-3


def test_fine_tuned_statistics_and_weights_are_saved(tmp_path):
    """One training step updates the shared weight and the running statistics read through
    Identities; the saved file gives, in ONNX Runtime, what the fine-tuned model gives."""
    model = load(shared_graph(via_identity=True))
    x = sample()
    before = {name: model.file_layout(name).copy() for name in model.state_dict()}
    train_step(model, x)
    after = {name: model.file_layout(name) for name in model.state_dict()}
    for name in ("w", "m", "v"):
        assert np.abs(after[name] - before[name]).max() > 1e-3, name
    save(model, tmp_path / "tuned.onnx")
    np.testing.assert_allclose(ort_run(tmp_path / "tuned.onnx", x), model(x),
                               rtol=1e-4, atol=1e-5)
    stored = {t.name: numpy_helper.to_array(t)
              for t in onnx.load(str(tmp_path / "tuned.onnx")).graph.initializer}
    for name in ("w", "m", "v"):
        np.testing.assert_allclose(stored[name], after[name], rtol=1e-6)
    # and back: the saved file loads to the same model
    again = load(tmp_path / "tuned.onnx")
    np.testing.assert_allclose(again(x), model(x), rtol=1e-5, atol=1e-6)


def dedup_graph(*, via_identity: bool) -> bytes:
    """A fresh batch norm as exporters deduplicate it: the running variance (ones) is the
    scale's initializer (through an Identity or read directly), the running mean (zeros)
    the shift's."""
    inits = initial()
    inits["g"], inits["be"] = np.ones(4), np.zeros(4)
    del inits["m"], inits["v"]
    stats = ["be_id", "g_id"] if via_identity else ["be", "g"]
    nodes = [helper.make_node("Identity", ["g"], ["g_id"]),
             helper.make_node("Identity", ["be"], ["be_id"])] if via_identity else []
    nodes += [conv("x", "w", "c", "b"),
              helper.make_node("BatchNormalization", ["c", "g", "be", *stats], ["n"]),
              helper.make_node("GlobalAveragePool", ["n"], ["y"])]
    return model_bytes(nodes, inits)


@pytest.mark.parametrize("via_identity", [True, False])
def test_statistics_sharing_a_parameter_initializer_are_buffers_of_their_own(
        tmp_path, via_identity):
    blob = dedup_graph(via_identity=via_identity)
    model = load(blob)
    assert [name for name, _ in model.named_parameters()] == ["w", "b", "g", "be"]
    assert len(dict(model.named_buffers())) == 2
    x = sample()
    np.testing.assert_allclose(model(x), ort_run(blob, x), rtol=1e-4, atol=1e-5)
    params = dict(model.named_parameters())
    g0 = params["g"].data.copy()
    model.train()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    (model(Tensor(x)) * np.arange(4.0).reshape(1, 4, 1, 1)).sum().backward()
    grad = params["g"].grad.copy()
    optimizer.step()
    model.eval()
    # the statistics' update went to the buffers, not into the scale
    np.testing.assert_allclose(params["g"].data, g0 - 0.1 * grad, rtol=1e-6)
    buffers = dict(model.named_buffers())
    assert all(np.abs(b - s).max() > 1e-3 for b, s in zip(buffers.values(), ([0.0], [1.0])))
    save(model, tmp_path / "tuned.onnx")
    np.testing.assert_allclose(ort_run(tmp_path / "tuned.onnx", x), model(x),
                               rtol=1e-4, atol=1e-5)
    again = load(tmp_path / "tuned.onnx")
    np.testing.assert_allclose(again(x), model(x), rtol=1e-5, atol=1e-6)


def test_saved_statistics_named_as_read_replace_their_identity(tmp_path):
    model = load(dedup_graph(via_identity=True))
    assert dict(model.named_buffers()).keys() == {"be_id", "g_id"}
    save(model, tmp_path / "a.onnx")
    saved = onnx.load(str(tmp_path / "a.onnx")).graph
    assert [node.op_type for node in saved.node] == ["Conv", "BatchNormalization",
                                                     "GlobalAveragePool"]
    assert list(saved.node[1].input) == ["c", "g", "be", "be_id", "g_id"]


def test_fresh_torchscript_batch_norm_fine_tunes_as_in_torch(tmp_path):
    """PyTorch's TorchScript exporter deduplicates a fresh batch norm's statistics with
    its scale and shift (``bn.running_var = Identity(bn.weight)``): one training step
    updates parameters and statistics by PyTorch's names as PyTorch does, and ``save``
    keeps them."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    import io

    torch.manual_seed(0)
    # one batch norm: two fresh ones would share their scales too (one parameter here)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                              torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))
    buffer = io.BytesIO()
    torch.onnx.export(net.eval(), torch.zeros(X_SHAPE), buffer, dynamo=False,
                      do_constant_folding=False, input_names=["x"])
    model = load(buffer.getvalue())
    state = dict(net.state_dict())
    assert {name for name, _ in model.named_parameters()} == {
        name for name, _ in net.named_parameters()}
    assert dict(model.named_buffers()).keys() == {
        name for name in state if "running" in name}
    x = sample()
    net.train()
    torch_opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.from_numpy(x)).sum().backward()
    torch_opt.step()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    model.train()
    model(Tensor(x)).sum().backward()
    optimizer.step()
    model.eval()
    for name, value in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        np.testing.assert_allclose(model.file_layout(name), value.numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)
    save(model, tmp_path / "tuned.onnx")
    np.testing.assert_allclose(ort_run(tmp_path / "tuned.onnx", x), model(x),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model(x), net.eval()(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-4)


def test_outputs_never_share_memory_with_the_model():
    """Graph outputs that are a weight (through an Identity), a constant initializer or a
    folded constant are copies: writing into them leaves the model as it was."""
    w, a = np.arange(4, dtype=np.float32), np.arange(3, dtype=np.float32)
    nodes = [helper.make_node("Add", ["x", "w"], ["y"]),
             helper.make_node("Identity", ["w"], ["z"]),
             helper.make_node("Mul", ["a", "a"], ["k"]),
             helper.make_node("Reshape", ["w", "shape"], ["r"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, [4])],
        [helper.make_tensor_value_info(n, TP.FLOAT, None) for n in ("y", "z", "k", "a", "r")],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(a, "a"),
         numpy_helper.from_array(np.array([2, 2], np.int64), "shape")])
    model = load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]
                                   ).SerializeToString())
    x = np.zeros(4, np.float32)
    expected = [o.copy() for o in model(x)]
    for out in model(x):
        out[...] = 100
    for out, want in zip(model(x), expected):
        np.testing.assert_array_equal(out, want)
