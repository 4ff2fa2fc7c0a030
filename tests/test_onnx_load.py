"""convolve.onnx.load: layouts against ONNX Runtime, gradients through imported graphs,
parameters, summaries, and every refusal (unsupported ops, hostile files)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed: convolve.onnx tests skipped")

from convolve import Tensor, optim  # noqa: E402
from convolve.onnx import OnnxModel, load  # noqa: E402
from convolve.onnx.errors import OnnxError  # noqa: E402
from convolve.tensor import data  # noqa: E402

helper, numpy_helper, TP = onnx.helper, onnx.numpy_helper, onnx.TensorProto
RNG = np.random.default_rng(0)


def model_bytes(nodes, inputs, outputs, inits=(), opset=17, elem=TP.FLOAT) -> bytes:
    """A model from nodes; ``inputs``/``outputs``: ``{name: shape}`` (None: unknown)."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, elem, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, elem, s) for n, s in outputs.items()],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in dict(inits).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]
                             ).SerializeToString()


def ort_run(blob: bytes, feeds: dict) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, feeds)


def weights(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


CONV = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1] * 4)]
CONV_INITS = {"w": weights(4, 3, 3, 3), "b": weights(4)}

# A conv (NCHW in, channels-last inside) followed by ops that must see ONNX's axes.
LAYOUT_CASES = {
    "flatten": ([helper.make_node("Flatten", ["c"], ["y"])], {}),
    "reshape": ([helper.make_node("Reshape", ["c", "s"], ["y"])],
                {"s": np.array([0, 4, -1], np.int64)}),
    "transpose_reshape": ([helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
                           helper.make_node("Reshape", ["t", "s"], ["y"])],
                          {"s": np.array([2, -1, 4], np.int64)}),
    "softmax_axis1": ([helper.make_node("Softmax", ["c"], ["y"], axis=1)], {}),
    "logsoftmax_axis1": ([helper.make_node("LogSoftmax", ["c"], ["y"], axis=1)], {}),
    "concat_channels": ([helper.make_node("Concat", ["c", "x"], ["y"], axis=1)], {}),
    "split_channels": ([helper.make_node("Split", ["c", "sp"], ["y", "z"], axis=1)],
                       {"sp": np.array([1, 3], np.int64)}),
    "slice_channels": ([helper.make_node("Slice", ["c", "st", "en", "ax"], ["y"])],
                       {"st": np.array([1], np.int64), "en": np.array([3], np.int64),
                        "ax": np.array([1], np.int64)}),
    "gather_channels": ([helper.make_node("Gather", ["c", "i"], ["y"], axis=1)],
                        {"i": np.array([[2, 0], [1, 1]], np.int64)}),
    "gather_scalar_width": ([helper.make_node("Gather", ["c", "i"], ["y"], axis=3)],
                            {"i": np.array(-1, np.int64)}),
    "reduce_mean_channels": ([helper.make_node("ReduceMean", ["c"], ["y"], axes=[1],
                                               keepdims=0)], {}),
    "reduce_max_spatial": ([helper.make_node("ReduceMax", ["c"], ["y"], axes=[2, 3])], {}),
    "add_channel_bias": ([helper.make_node("Add", ["c", "cb"], ["y"])],
                         {"cb": weights(4, 1, 1)}),
    "mul_graph_input": ([helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[1, 1]),
                         helper.make_node("Mul", ["c1", "x"], ["y"])],
                        {"w1": weights(3, 3, 1, 1)}),
    "global_pool_squeeze": ([helper.make_node("GlobalAveragePool", ["c"], ["g"]),
                             helper.make_node("Squeeze", ["g", "sq"], ["y"])],
                            {"sq": np.array([2, 3], np.int64)}),
    "unsqueeze_then_reduce": ([helper.make_node("Unsqueeze", ["c", "us"], ["u"]),
                               helper.make_node("ReduceSum", ["u", "rs"], ["y"], keepdims=0)],
                              {"us": np.array([1], np.int64), "rs": np.array([2], np.int64)}),
    "pad_reflect": ([helper.make_node("Pad", ["c", "p"], ["y"], mode="reflect")],
                    {"p": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)}),
    "resize_nearest": ([helper.make_node("Resize", ["c", "", "sc"], ["y"], mode="nearest")],
                       {"sc": np.array([1, 1, 2, 2], np.float32)}),
    "resize_linear_sizes": ([helper.make_node(
        "Resize", ["c", "", "", "sz"], ["y"], mode="linear",
        coordinate_transformation_mode="pytorch_half_pixel")],
        {"sz": np.array([2, 4, 11, 7], np.int64)}),
    "maxpool_wide_pads": ([helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3, 3],
                                            pads=[1, 2, 2, 1])], {}),
    "maxpool_wide_pads_ceil": ([helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3, 3],
                                                 pads=[2, 0, 2, 2], strides=[2, 2],
                                                 ceil_mode=1)], {}),
    "avgpool_wide_pads_include": ([helper.make_node(
        "AveragePool", ["c"], ["y"], kernel_shape=[3, 3], pads=[2, 1, 2, 2], strides=[2, 2],
        count_include_pad=1)], {}),
    "avgpool_wide_pads_exclude_ceil": ([helper.make_node(
        "AveragePool", ["c"], ["y"], kernel_shape=[3, 3], pads=[2, 2, 2, 2], strides=[2, 2],
        ceil_mode=1)], {}),
    "avgpool_ceil": ([helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[3, 3],
                                       strides=[2, 2], ceil_mode=1)], {}),
    "depth_to_space": ([helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=2)], {}),
    "dynamic_flatten": ([helper.make_node("Shape", ["c"], ["sh"]),
                         helper.make_node("Gather", ["sh", "zero"], ["n"], axis=0),
                         helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
                         helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
                         helper.make_node("Reshape", ["c", "shape"], ["y"])],
                        {"zero": np.array(0, np.int64), "ax0": np.array([0], np.int64),
                         "minus1": np.array([-1], np.int64)}),
    "relu6_fused_in_place": ([helper.make_node("Clip", ["c", "lo", "hi"], ["y"])],
                             {"lo": np.array(0, np.float32), "hi": np.array(0.5, np.float32)}),
    "hard_swish_written_out": ([helper.make_node("Add", ["c", "three"], ["t"]),
                                helper.make_node("Clip", ["t", "lo0", "hi6"], ["u"]),
                                helper.make_node("Mul", ["c", "u"], ["v"]),
                                helper.make_node("Div", ["v", "six"], ["y"])],
                               {"three": np.array(3, np.float32), "six": np.array(6, np.float32),
                                "lo0": np.array(0, np.float32), "hi6": np.array(6, np.float32)}),
    "prelu_fused_in_place": ([helper.make_node("PRelu", ["c", "slope"], ["y"])],
                             {"slope": weights(4, 1, 1)}),
    "prelu_shared_slope": ([helper.make_node("PRelu", ["c", "slope1"], ["y"])],
                           {"slope1": weights(1)}),
    "scale_shift_fused_in_place": ([  # constants of one element, as Paddle exports them
        helper.make_node("Constant", [], ["s1"], value=numpy_helper.from_array(
            np.array([1.5], np.float32))),
        helper.make_node("Constant", [], ["t1"], value=numpy_helper.from_array(
            np.array([-0.25], np.float32))),
        helper.make_node("Mul", ["s1", "c"], ["m"]),
        helper.make_node("Add", ["m", "t1"], ["y"])], {}),
    "instance_norm": ([helper.make_node("InstanceNormalization", ["c", "g", "be"], ["y"])],
                      {"g": weights(4), "be": weights(4)}),
    "layer_norm_from_channels": ([helper.make_node("LayerNormalization", ["c", "ln", "lb"],
                                                   ["y", "mu"], axis=1)],
                                 {"ln": weights(4, 6, 5), "lb": weights(6, 5)}),
    "layer_norm_last_axis": ([helper.make_node("LayerNormalization", ["c", "l5"], ["y"])],
                             {"l5": weights(5)}),
    "argmax_channels": ([helper.make_node("ArgMax", ["c"], ["am"], axis=1, keepdims=0),
                         helper.make_node("Cast", ["am"], ["y"], to=TP.FLOAT)], {}),
    "channel_shuffle": ([helper.make_node("Reshape", ["c", "s1"], ["r1"]),
                         helper.make_node("Transpose", ["r1"], ["t"], perm=[0, 2, 1, 3, 4]),
                         helper.make_node("Reshape", ["t", "s2"], ["r2"]),
                         helper.make_node("Conv", ["r2", "w1"], ["y"], kernel_shape=[1, 1])],
                        {"s1": np.array([0, 2, 2, 6, 5], np.int64),
                         "s2": np.array([0, -1, 6, 5], np.int64), "w1": weights(3, 4, 1, 1)}),
    "squeeze_excitation": ([helper.make_node("GlobalAveragePool", ["c"], ["g"]),
                            helper.make_node("Flatten", ["g"], ["f"]),
                            helper.make_node("Gemm", ["f", "se", "seb"], ["e"], transB=1),
                            helper.make_node("Sigmoid", ["e"], ["sg"]),
                            helper.make_node("Reshape", ["sg", "s4"], ["r"]),
                            helper.make_node("Mul", ["c", "r"], ["y"])],
                           {"se": weights(4, 4), "seb": weights(4),
                            "s4": np.array([-1, 4, 1, 1], np.int64)}),
    "where_expand_tile": ([helper.make_node("Greater", ["c", "zero_f"], ["m"]),
                           helper.make_node("Where", ["m", "c", "x1"], ["wh"]),
                           helper.make_node("Tile", ["wh", "rep"], ["y"])],
                          {"zero_f": np.array(0, np.float32), "x1": weights(1, 4, 1, 1),
                           "rep": np.array([1, 2, 1, 2], np.int64)}),
}


@pytest.mark.parametrize("case", sorted(LAYOUT_CASES))
def test_layouts_after_a_conv_match_onnxruntime(case: str) -> None:
    nodes, inits = LAYOUT_CASES[case]
    outputs = {o: None for o in nodes[-1].output}
    blob = model_bytes(CONV + nodes, {"x": ["N", 3, 6, 5]}, outputs, {**CONV_INITS, **inits})
    x = weights(2, 3, 6, 5)
    model = load(blob)
    got = model.run({"x": x})
    for name, want in zip(model.output_names, ort_run(blob, {"x": x})):
        assert got[name].shape == want.shape
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("case, fused, inner", [
    ("hard_swish_written_out", ["Conv", "HardSwish(Add+Clip+Mul+Div)"], "u"),
    ("scale_shift_fused_in_place", ["Conv+Mul+Add"], "c"),
])
def test_fused_chains_are_one_step_and_keep_their_gradients(case: str, fused: list[str],
                                                            inner: str) -> None:
    nodes, inits = LAYOUT_CASES[case]
    blob = model_bytes(CONV + nodes, {"x": ["N", 3, 6, 5]}, {"y": None},
                       {**CONV_INITS, **inits})
    model = load(blob)
    assert [s.node.op_type for s in model.steps] == fused
    x = weights(2, 3, 6, 5) * 4
    np.testing.assert_allclose(model(x), ort_run(blob, {"x": x})[0], rtol=1e-5, atol=1e-5)
    model.train()
    model(Tensor(x)).sum().backward()
    # the same network with an intermediate value also an output is not fused
    kept = model_bytes(CONV + nodes, {"x": ["N", 3, 6, 5]}, {"y": None, inner: None},
                       {**CONV_INITS, **inits})
    plain = load(kept)
    assert len(plain.steps) == 1 + sum(n.op_type != "Constant" for n in nodes)
    plain.train()
    plain(Tensor(x))[0].sum().backward()
    grads = [(p.grad, q.grad) for p, q in zip(model.parameters(), plain.parameters())]
    for got, want in grads:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _constant(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array))


@pytest.mark.parametrize("bias", [True, False])
def test_conv_with_constant_weights_and_batch_norm_repeats_onnxruntime(bias: bool) -> None:
    """Weights from Constant nodes (Paddle's exports) are laid out and folded once: every
    call gives ONNX Runtime's result."""
    stats = [weights(5) + 2, weights(5), weights(5), np.abs(weights(5)) + 0.5]
    nodes = [_constant("kw", weights(5, 4, 3, 3)), _constant("kb", weights(5)),
             *(_constant(f"s{i}", a) for i, a in enumerate(stats)),
             helper.make_node("Conv", ["c", "kw", *(["kb"] if bias else [])], ["k"],
                              kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("BatchNormalization", ["k", "s0", "s1", "s2", "s3"], ["n"]),
             helper.make_node("Conv", ["n", "kw2"], ["y"], kernel_shape=[1, 1])]
    blob = model_bytes(CONV + nodes, {"x": ["N", 3, 6, 5]}, {"y": None},
                       {**CONV_INITS, "kw2": weights(2, 5, 1, 1)})
    model = load(blob)
    x = weights(2, 3, 6, 5)
    want = ort_run(blob, {"x": x})[0]
    for _ in range(2):
        np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)


def test_outputs_keep_the_file_layout_and_call_returns_tuples() -> None:
    nodes = [*CONV, helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2])]
    blob = model_bytes(nodes, {"x": ["N", 3, 6, 6]}, {"p": None, "c": None}, CONV_INITS)
    model = load(blob)
    assert model.input_names == ["x"] and model.output_names == ["p", "c"]
    x = weights(1, 3, 6, 6)
    p, c = model(x)
    assert p.shape == (1, 4, 3, 3) and c.shape == (1, 4, 6, 6)
    assert isinstance(p, np.ndarray) and p.flags.c_contiguous
    want_p, want_c = ort_run(blob, {"x": x})
    np.testing.assert_allclose(p, want_p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, want_c, rtol=1e-5, atol=1e-6)


def _tiny_graph(dtype: type = np.float64) -> bytes:
    """Conv -> BatchNorm -> Relu -> Transpose -> Reshape -> Gemm -> Softmax, float64."""
    rng = np.random.default_rng(3)
    inits = {"w": rng.standard_normal((3, 2, 3, 3)), "b": rng.standard_normal(3),
             "g": rng.uniform(0.5, 1.5, 3), "be": rng.standard_normal(3),
             "m": rng.standard_normal(3), "v": rng.uniform(0.5, 2, 3),
             "s": np.array([2, -1], np.int64), "fw": rng.standard_normal((5, 3 * 4 * 4)),
             "fb": rng.standard_normal(5)}
    inits = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in inits.items()}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["n"]),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 3, 2, 1]),
             helper.make_node("Reshape", ["t", "s"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["l"], transB=1),
             helper.make_node("Softmax", ["l"], ["y"], axis=1)]
    return model_bytes(nodes, {"x": [2, 2, 4, 4]}, {"y": [2, 5]}, inits, opset=15,
                       elem=TP.DOUBLE)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_gradients_match_finite_differences(mode: str) -> None:
    model = load(_tiny_graph())
    model.train(mode == "train")
    x = np.random.default_rng(4).standard_normal((2, 2, 4, 4))
    g = np.random.default_rng(5).standard_normal((2, 5))
    xt = Tensor(x.copy(), requires_grad=True)
    out = model(xt)
    assert isinstance(out, Tensor)
    (out * g).sum().backward()

    def objective() -> float:
        return float(np.sum(np.asarray(data(model(xt.data))) * g))

    rng = np.random.default_rng(6)
    targets = [(xt.data, xt.grad)] + [(p.data, p.grad) for p in model.parameters()]
    for array, grad in targets:
        for k in rng.choice(array.size, size=min(4, array.size), replace=False):
            flat = array.reshape(-1)
            saved = flat[k]
            flat[k] = saved + 1e-6
            up = objective()
            flat[k] = saved - 1e-6
            down = objective()
            flat[k] = saved
            np.testing.assert_allclose(grad.reshape(-1)[k], (up - down) / 2e-6,
                                       rtol=1e-4, atol=1e-7)


def test_parameters_state_dict_and_fine_tuning() -> None:
    model = load(_tiny_graph(np.float32))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["w", "b", "g", "be", "fw", "fb"]  # integers are constants
    assert dict(model.named_buffers()).keys() == {"m", "v"}  # running statistics
    assert model.state_dict()["w"].shape == (3, 3, 2, 3)  # (KH, KW, C_in, C_out)
    x = np.random.default_rng(4).standard_normal((2, 2, 4, 4)).astype(np.float32)
    before = model(x)
    state = model.state_dict()
    model.train()
    optimizer = optim.SGD(model.parameters(), lr=0.5)
    labels = np.array([1, 3])
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        probabilities = model(Tensor(x))
        loss = -(probabilities[np.arange(2), labels]).sum()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.load_state_dict(state)
    model.eval()
    np.testing.assert_allclose(model(x), before, rtol=1e-6)


def test_torch_cnn_matches_torch_and_onnxruntime() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.b1 = torch.nn.BatchNorm2d(8)
            self.c2 = torch.nn.Conv2d(8, 16, 3, stride=2, groups=2)
            self.fc = torch.nn.Linear(16 * 3 * 3, 10)

        def forward(self, x):
            x = torch.relu(self.b1(self.c1(x)))
            x = torch.nn.functional.max_pool2d(x, 2)
            x = torch.relu(self.c2(x))
            return self.fc(torch.flatten(x, 1)) + 1, torch.softmax(x, 1)

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():
        net.b1.running_mean.uniform_(-1, 1)
        net.b1.running_var.uniform_(0.5, 2)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    buffer = io.BytesIO()
    torch.onnx.export(net, (torch.from_numpy(x),), buffer, input_names=["x"], dynamo=False,
                      do_constant_folding=False, dynamic_axes={"x": {0: "N"}})
    blob = buffer.getvalue()
    model = load(blob)
    assert "b1.running_var" in dict(model.named_buffers())
    with torch.no_grad():
        want = [t.numpy() for t in net(torch.from_numpy(x))]
    for got, ort_out, torch_out in zip(model(x), ort_run(blob, {"x": x}), want):
        np.testing.assert_allclose(got, ort_out, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got, torch_out, rtol=1e-4, atol=1e-5)
    summary = model.summary((2, 3, 16, 16), print_fn=None)
    assert summary.total_params == sum(p.numel() for p in net.parameters())
    assert [r.op for r in summary.rows][:2] == ["Conv+BatchNormalization+Relu", "MaxPool"]
    assert summary.rows[0].output_shapes == [(2, 8, 16, 16)]
    assert "Total params" in str(summary)


# -- refusals ------------------------------------------------------------------------------
def _expect(blob: bytes, *fragments: str) -> None:
    with pytest.raises(OnnxError) as error:
        load(blob)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_unsupported_op_is_refused_at_load_by_name_node_and_opset() -> None:
    blob = model_bytes([helper.make_node("Relu", ["x"], ["r"]),
                        helper.make_node("Det", ["r"], ["y"], name="det1")],
                       {"x": [2, 2]}, {"y": []})
    _expect(blob, "Det node 'det1'", "op set 17", "not supported")


def test_unsupported_setting_is_refused_at_load() -> None:
    blob = model_bytes([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic",
                                         name="up")],
                       {"x": [1, 1, 2, 2]}, {"y": None}, {"s": np.ones(4, np.float32)},
                       opset=13)
    _expect(blob, "Resize node 'up'", "op set 13", "mode='cubic'")


def test_opset_domain_and_input_errors() -> None:
    relu = [helper.make_node("Relu", ["x"], ["y"])]
    _expect(model_bytes(relu, {"x": [1]}, {"y": [1]}, opset=5), "op set version 5")
    other = [helper.make_node("Relu", ["x"], ["y"], domain="com.example")]
    _expect(model_bytes(other, {"x": [1]}, {"y": [1]}), "domain 'com.example'")
    model = load(model_bytes(relu, {"x": ["N", 3]}, {"y": None}))
    with pytest.raises(ValueError, match=r"input 'x' must have shape \('\?', 3\)"):
        model(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"missing \['x'\]; unknown \['z'\]"):
        model.run({"z": np.zeros(3)})
    with pytest.raises(TypeError, match="takes 1 input"):
        model(np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(TypeError, match="path_or_bytes must be a path"):
        load(3)


# -- hostile files --------------------------------------------------------------------------
def _relu_bytes() -> bytes:
    return model_bytes([helper.make_node("Add", ["x", "a"], ["y"])], {"x": [2]}, {"y": [2]},
                       {"a": np.ones(2, np.float32)})


def test_truncated_and_garbage_files_are_refused() -> None:
    blob = _relu_bytes()
    for cut in (len(blob) // 3, len(blob) - 3):
        with pytest.raises(OnnxError):
            load(blob[:cut])
    _expect(b"\x00\x01garbage\xff" * 10, "ONNX")
    _expect(b"", "no graph")


def test_huge_declared_shapes_are_refused_before_allocating() -> None:
    model = onnx.load_from_string(_relu_bytes())
    tensor = model.graph.initializer[0]
    tensor.dims[:] = [10**12]
    _expect(model.SerializeToString(), "initializer 'a'", "10000000000")
    tensor.dims[:] = [1000]
    _expect(model.SerializeToString(), "initializer 'a'", "stores 8 bytes")
    big = model_bytes([helper.make_node("ConstantOfShape", ["x"], ["y"])], {"x": [2]},
                      {"y": None}, elem=TP.INT64)
    with pytest.raises(OnnxError, match=r"ConstantOfShape node .* refused"):
        load(big).run({"x": np.array([10**6, 10**6], np.int64)})
    resize = model_bytes([helper.make_node("Resize", ["x", "", "", "s"], ["y"])],
                         {"x": [1, 1, 2, 2]}, {"y": None}, {"s": np.array([1, 1, 10**5, 10**5])})
    with pytest.raises(OnnxError, match=r"Resize node .* refused"):
        load(resize).run({"x": np.zeros((1, 1, 2, 2), np.float32)})
    transpose = model_bytes(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], output_shape=[10**5, 10**5])],
        {"x": [1, 1, 2, 2]}, {"y": None}, {"w": np.ones((1, 1, 1, 1), np.float32)})
    with pytest.raises(OnnxError, match=r"ConvTranspose node .* refused"):
        load(transpose).run({"x": np.zeros((1, 1, 2, 2), np.float32)})


def test_graph_structure_errors() -> None:
    cycle = model_bytes([helper.make_node("Relu", ["b"], ["a"], name="r1"),
                         helper.make_node("Relu", ["a"], ["b"], name="r2")],
                        {"x": [1]}, {"b": [1]})
    _expect(cycle, "cycle")
    undefined = model_bytes([helper.make_node("Relu", ["nothing"], ["y"], name="r")],
                            {"x": [1]}, {"y": [1]})
    _expect(undefined, "node 'r' (Relu) reads 'nothing'")
    twice = model_bytes([helper.make_node("Relu", ["x"], ["y"]),
                         helper.make_node("Relu", ["x"], ["y"])], {"x": [1]}, {"y": [1]})
    _expect(twice, "'y' is defined twice")
    no_output = model_bytes([helper.make_node("Relu", ["x"], ["y"])], {"x": [1]}, {"z": [1]})
    _expect(no_output, "graph output 'z'")
    arity = model_bytes([helper.make_node("Conv", ["x"], ["y"], name="c")], {"x": [1]},
                        {"y": None})
    _expect(arity, "Conv node 'c'", "1 inputs given")


def _external_model(folder, location: str, data: bytes = b"\x00" * 8) -> str:
    """A model whose initializer 'a' (2 float32) lives in external file ``location``."""
    model = onnx.load_from_string(_relu_bytes())
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TP.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "8")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = os.path.join(folder, "model.onnx")
    with open(path, "wb") as file:
        file.write(model.SerializeToString())
    return path


def test_external_data_is_read_only_from_the_model_folder(tmp_path) -> None:
    inner = tmp_path / "model"
    inner.mkdir()
    (inner / "weights.bin").write_bytes(np.array([1.5, -2], np.float32).tobytes())
    model = load(_external_model(inner, "weights.bin"))
    np.testing.assert_array_equal(model(np.zeros(2, np.float32)), [1.5, -2])
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x01" * 8)
    for location in ("../secret.bin", str(secret), "sub/../../secret.bin"):
        with pytest.raises(OnnxError, match="external data location"):
            load(_external_model(inner, location))
    (inner / "link.bin").symlink_to(secret)
    with pytest.raises(OnnxError, match="leaves the model's folder"):
        load(_external_model(inner, "link.bin"))
    (inner / "short.bin").write_bytes(b"\x00" * 4)
    with pytest.raises(OnnxError, match="does not match"):
        load(_external_model(inner, "short.bin"))
    _external_model(inner, "weights.bin")
    with pytest.raises(OnnxError, match="from its path, not from bytes"):
        load((inner / "model.onnx").read_bytes())


def test_loaded_model_is_an_nn_module_in_eval_mode() -> None:
    model = load(_tiny_graph(np.float32))
    assert isinstance(model, OnnxModel) and not model.training
    assert "OnnxModel(inputs=['x']" in repr(model)
