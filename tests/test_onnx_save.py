"""convolve.onnx.save: random Sequentials and the zoo, checked by onnx.checker (full check)
and run by a real ONNX Runtime session, which must give what convolve gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convolve import models, nn
from convolve.tensor import data, no_grad

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from convolve.onnx import save  # noqa: E402

OPSETS = range(13, 22)
MODES = ("zeros", "reflect", "replicate", "circular", "symmetric")
ACTIVATIONS = (None, "relu", "leaky_relu", "tanh", "sigmoid", "gelu", "softmax")


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def run_convolve(model, x):
    model.eval()
    with no_grad():
        return np.asarray(data(model(x)))


def assert_same_as_onnx_runtime(model, input_shape, path, *, opset=17, seed=0):
    """Save, full-check, and compare ONNX Runtime with convolve at batch 3 and batch 1 of
    the same file."""
    save(model, path, input_shape=input_shape, opset=opset)
    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == opset
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    x = np.random.default_rng(seed).standard_normal((3, *input_shape)).astype(np.float32)
    want = run_convolve(model, x)
    scale = max(1.0, float(np.abs(want).max()))
    for batch in (x, x[:1]):
        got = run_onnx(path, batch)
        assert got.shape == want[: len(batch)].shape
        np.testing.assert_allclose(got, want[: len(batch)], rtol=1e-4, atol=1e-4 * scale)


def _randomise(model, rng):
    """Weights away from their initial values (nonzero biases, BN statistics)."""
    for _, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2D):
            c = module.in_channels
            module.running_mean = rng.standard_normal(c).astype(np.float32)
            module.running_var = rng.uniform(0.5, 2, c).astype(np.float32)
            module.gamma.data[...] = rng.uniform(0.5, 1.5, c)
            module.beta.data[...] = rng.standard_normal(c)
        elif getattr(module, "bias", None) is not None:
            module.bias.data[...] = rng.standard_normal(module.bias.shape) * 0.1


@st.composite
def padding(draw, *, strings=("valid", "same"), most=2):
    form = draw(st.sampled_from([*strings, "int", "pair", "sides"]))
    if form in strings:
        return form
    side = st.integers(0, most)
    if form == "int":
        return draw(side)
    if form == "pair":
        return (draw(side), draw(side))
    return ((draw(side), draw(side)), (draw(side), draw(side)))


@st.composite
def image_layers(draw, channels):
    """One image-to-image layer; returns it and its output channels (None: unchanged)."""
    kind = draw(st.sampled_from(["conv", "conv", "depthwise", "transpose", "max", "avg",
                                 "bn", "act", "dropout"]))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    activation = draw(st.sampled_from(ACTIVATIONS))
    if kind == "conv":
        groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
        filters = groups * draw(st.integers(1, 3))
        return nn.Conv2D(filters, k, stride=stride,
                         padding=draw(padding(strings=("valid", "same", "full"))),
                         dilation=dilation, groups=groups,
                         padding_mode=draw(st.sampled_from(MODES)), activation=activation,
                         use_bias=draw(st.booleans()), seed=0), filters
    if kind == "depthwise":
        multiplier = draw(st.integers(1, 2))
        return nn.DepthwiseConv2D(k, multiplier, stride=stride, padding=draw(padding()),
                                  dilation=dilation, padding_mode=draw(st.sampled_from(MODES)),
                                  activation=activation, seed=0), channels * multiplier
    if kind == "transpose":
        groups = draw(st.sampled_from([g for g in (1, 2) if channels % g == 0]))
        filters = groups * draw(st.integers(1, 2))
        pad = draw(padding(strings=("valid", "same", "full"), most=1))
        extra = (0, 0) if pad == "same" else (
            draw(st.integers(0, max(stride[0], dilation[0]) - 1)),
            draw(st.integers(0, max(stride[1], dilation[1]) - 1)))
        return nn.ConvTranspose2D(filters, k, stride=stride, padding=pad,
                                  output_padding=extra, dilation=dilation, groups=groups,
                                  activation=activation, seed=0), filters
    if kind in ("max", "avg"):
        pool = (draw(st.integers(2, 3)), draw(st.integers(1, 3)))
        half = st.tuples(st.integers(0, pool[0] // 2), st.integers(0, pool[1] // 2))
        pad = draw(st.one_of(st.just("valid"), st.just("same"), half,
                             st.tuples(half, half).map(lambda t: tuple(zip(*t)))))
        window = dict(stride=draw(st.one_of(st.none(), st.just(stride))), padding=pad,
                      ceil_mode=draw(st.booleans()))
        if kind == "max":
            return nn.MaxPool2D(pool, dilation=dilation, **window), channels
        return nn.AvgPool2D(pool, count_include_pad=draw(st.booleans()), **window), channels
    if kind == "bn":
        return nn.BatchNorm2D(eps=draw(st.sampled_from([1e-5, 1e-3]))), channels
    if kind == "dropout":
        return nn.Dropout(0.5, seed=0), channels
    return draw(st.sampled_from([nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.GELU(),
                                 nn.LeakyReLU(0.2), nn.Softmax(), nn.Softmax(axis=1),
                                 nn.Softmax(axis=-2)])), channels


@st.composite
def sequentials(draw):
    shape = (draw(st.integers(5, 10)), draw(st.integers(5, 10)), draw(st.integers(1, 4)))
    layers, channels = [], shape[2]
    for _ in range(draw(st.integers(1, 4))):
        layer, channels = draw(image_layers(channels))
        layers.append(layer)
    head = draw(st.sampled_from(["image", "flatten", "global_avg", "global_max", "pixels"]))
    if head == "flatten":
        layers += [nn.Flatten(), nn.Dense(draw(st.integers(1, 5)), seed=0,
                                          activation=draw(st.sampled_from(ACTIVATIONS)),
                                          use_bias=draw(st.booleans()))]
    elif head in ("global_avg", "global_max"):
        layers += [nn.GlobalAvgPool2D() if head == "global_avg" else nn.GlobalMaxPool2D(),
                   nn.Dense(draw(st.integers(1, 5)), seed=0)]
    elif head == "pixels":  # Dense on each pixel's channels
        layers.append(nn.Dense(draw(st.integers(1, 4)), activation="relu", seed=0))
    if head != "image" and draw(st.booleans()):
        layers.append(nn.Softmax())
    model = nn.Sequential(layers)
    try:
        model.build(shape)
    except ValueError:  # a window larger than the input, pads wider than a mode allows
        assume(False)
    _randomise(model, np.random.default_rng(draw(st.integers(0, 2**16))))
    return model, shape


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.filter_too_much])
@given(case=sequentials(), opset=st.sampled_from(OPSETS), seed=st.integers(0, 2**16))
def test_random_sequentials_match_onnx_runtime(tmp_path_factory, case, opset, seed):
    model, shape = case
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert_same_as_onnx_runtime(model, shape, path, opset=opset, seed=seed)


@pytest.mark.parametrize("opset", OPSETS)
def test_every_opset(tmp_path, opset):
    """Ops whose form changes across opsets: Pad (wrap from 19), ReduceMean/ReduceMax (axes
    an input from 18), Gelu (an op from 20), and a Gather-built symmetric pad."""
    model = nn.Sequential([
        nn.Conv2D(4, 3, padding="same", padding_mode="circular", activation="gelu", seed=0),
        nn.Conv2D(4, 3, stride=2, padding="same", padding_mode="symmetric", seed=1),
        nn.BatchNorm2D(), nn.GELU(),
        nn.Sequential([nn.MaxPool2D(2, ceil_mode=True), nn.Conv2D(6, 1, seed=2)]),
        nn.GlobalMaxPool2D(),
    ])
    model.build((9, 9, 3))
    _randomise(model, np.random.default_rng(opset))
    assert_same_as_onnx_runtime(model, (9, 9, 3), tmp_path / "m.onnx", opset=opset)
    second = nn.Sequential([nn.Conv2D(3, 3, seed=0), nn.GlobalAvgPool2D(), nn.Dense(2)])
    assert_same_as_onnx_runtime(second, (6, 6, 2), tmp_path / "g.onnx", opset=opset)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_zoo_models(tmp_path, name):
    model = models.get_model(name, seed=0)
    _randomise(model, np.random.default_rng(0))
    assert_same_as_onnx_runtime(model, models.default_input_shape(name),
                                tmp_path / f"{name}.onnx")


def test_flatten_keeps_channels_last_order(tmp_path):
    """Dense after Flatten reads features in convolve's (H, W, C) order."""
    model = nn.Sequential([nn.Conv2D(3, 2, seed=0), nn.Flatten(), nn.Dense(4, seed=1)])
    model.build((5, 4, 2))
    assert_same_as_onnx_runtime(model, (5, 4, 2), tmp_path / "m.onnx")
    nodes = [node.op_type for node in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert nodes == ["Transpose", "Conv", "Transpose", "Flatten", "Gemm"]


def test_float64_and_unbuilt_models(tmp_path):
    """float64 layers are written as float32; lazy layers are built by save."""
    wide = nn.Sequential([nn.Conv2D(3, 3, dtype=np.float64, seed=0), nn.BatchNorm2D(
        dtype=np.float64), nn.Flatten(), nn.Dense(2, dtype=np.float64, seed=1)])
    assert_same_as_onnx_runtime(wide, (6, 5, 2), tmp_path / "wide.onnx")
    lazy = nn.Sequential([nn.Conv2D(2, 3, seed=0), nn.GlobalAvgPool2D(), nn.Dense(2, seed=1)])
    save(lazy, tmp_path / "lazy.onnx", input_shape=(5, 5, 3))
    assert lazy[0].weight.shape == (3, 3, 3, 2)
    types = {t.data_type for t in onnx.load(str(tmp_path / "wide.onnx")).graph.initializer}
    assert types == {onnx.TensorProto.FLOAT}


def test_dense_only_model_and_single_layer(tmp_path):
    mlp = nn.Sequential([nn.Dense(5, activation="tanh", seed=0), nn.Dropout(0.5),
                         nn.Dense(3, seed=1), nn.Softmax()])
    assert_same_as_onnx_runtime(mlp, (7,), tmp_path / "mlp.onnx")
    conv = nn.Conv2D(2, 3, padding=((0, 2), (1, 0)), activation=nn.LeakyReLU(0.3), seed=0)
    assert_same_as_onnx_runtime(conv, (6, 5, 1), tmp_path / "conv.onnx")


def test_graph_names_layers_and_parameters(tmp_path):
    model = models.lenet5(seed=0)
    save(model, tmp_path / "m.onnx", input_shape=(32, 32, 3))
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["output"]
    assert [d.dim_value or d.dim_param for d in graph.output[0].type.tensor_type.shape.dim] \
        == ["N", 10]
    weights = {t.name: tuple(t.dims) for t in graph.initializer}
    assert weights["0.weight"] == (6, 3, 5, 5)  # OIHW
    assert weights["5.weight"] == (400, 120)
    assert "0.relu" in {node.name for node in graph.node}


def test_training_mode_is_restored(tmp_path):
    model = models.mnist_cnn(seed=0)
    model.train()
    save(model, tmp_path / "m.onnx", input_shape=(28, 28, 1))
    assert all(module.training for _, module in model.named_modules())


def test_overwrites_atomically(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    save(nn.Sequential([nn.ReLU()]), path, input_shape=(2, 2, 1))
    onnx.checker.check_model(str(path), full_check=True)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def square(x):
    return x * x


class Custom(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize(("model", "kwargs", "error", "message"), [
    ("not a model", {}, TypeError,
     "model must be a convolve nn.Module (a Sequential or a layer) or an OnnxModel; "
     "received 'not a model'"),
    (None, {"input_shape": None}, TypeError,
     "input_shape must be (H, W, C) or (F,) without the batch axis, positive integers; it "
     "is required to export a convolve model"),
    (None, {"input_shape": (1, 8, 8, 3)}, ValueError,
     "input_shape must be (H, W, C) or (F,) without the batch axis, positive integers; "
     "received (1, 8, 8, 3)"),
    (None, {"input_shape": (8, 0, 3)}, ValueError, "received (8, 0, 3)"),
    (None, {"opset": 12}, ValueError, "opset must be an integer from 13 to 21; received 12"),
    (None, {"opset": "17"}, ValueError,
     "opset must be an integer from 13 to 21; received '17'"),
    (nn.Sequential([nn.ReLU(), nn.Sequential([nn.Tanh(), Custom()])]), {}, TypeError,
     "cannot export layer 1.1 (Custom, index 1 of the model) to ONNX; the exporter knows "
     "Sequential, AvgPool2D, BatchNorm2D,"),
    (nn.Sequential([nn.Conv2D(2, 3, activation=square)]), {}, ValueError,
     "cannot export layer 0 (Conv2D, index 0 of the model) to ONNX: its activation "
     "'square' has no ONNX form; use one of 'relu', 'leaky_relu', 'tanh', 'sigmoid', "
     "'softmax', 'gelu' or an activation layer"),
    (nn.Sequential([nn.Flatten(), nn.MaxPool2D()]), {}, ValueError,
     "x must be 4-D (N, H, W, C) or 3-D (H, W, C); received an array of shape (1, 192)"),
    (nn.Sequential([nn.Conv2D(2, 9)]), {}, ValueError,
     "the kernel is larger than the padded input along the height"),
])
def test_errors(tmp_path, model, kwargs, error, message):
    model = nn.Sequential([nn.Conv2D(2, 3)]) if model is None else model
    kwargs = {"input_shape": (8, 8, 3), **kwargs}
    with pytest.raises(error) as info:
        save(model, tmp_path / "m.onnx", **kwargs)
    assert message in str(info.value)
    assert not (tmp_path / "m.onnx").exists()


def test_missing_folder(tmp_path):
    path = tmp_path / "no" / "m.onnx"
    with pytest.raises(FileNotFoundError) as info:
        save(nn.Sequential([nn.ReLU()]), path, input_shape=(2, 2, 1))
    assert str(info.value) == (f"cannot write {str(path)!r}: folder {str(path.parent)!r} "
                               "does not exist")


def test_regressions(tmp_path):
    """Cases hypothesis found: output_padding not below the stride (ONNX Runtime refuses
    it: written as a Pad and a bias Add), and ceil_mode's window past the input (ONNX rounds
    up without PyTorch's rule: a Slice drops it)."""
    transpose = nn.Sequential([nn.ConvTranspose2D(2, 2, dilation=2, output_padding=1,
                                                  activation="relu", seed=0)])
    transpose.build((5, 4, 3))
    _randomise(transpose, np.random.default_rng(0))
    assert_same_as_onnx_runtime(transpose, (5, 4, 3), tmp_path / "t.onnx")
    ops = [node.op_type for node in onnx.load(str(tmp_path / "t.onnx")).graph.node]
    assert ops[:5] == ["Transpose", "ConvTranspose", "Pad", "Reshape", "Add"]
    pool = nn.Sequential([nn.Conv2D(1, 1, stride=(1, 2), seed=0),
                          nn.MaxPool2D((2, 1), stride=(1, 2), ceil_mode=True)])
    assert_same_as_onnx_runtime(pool, (5, 7, 1), tmp_path / "p.onnx", opset=13)
    assert "Slice" in [node.op_type for node in onnx.load(str(tmp_path / "p.onnx")).graph.node]


def test_imported_model_saves_back_with_fine_tuned_values(tmp_path):
    """load -> one training step (weights and batch-norm statistics change) -> save: ONNX
    Runtime gives what the fine-tuned OnnxModel gives; the conv weights go back to OIHW."""
    from convolve import losses, optim
    from convolve.onnx import load
    from convolve.tensor import Tensor

    model = models.mnist_cnn(seed=0)
    save(model, tmp_path / "a.onnx", input_shape=(28, 28, 1))
    imported = load(tmp_path / "a.onnx")
    x = np.random.default_rng(0).standard_normal((4, 28, 28, 1)).astype(np.float32)
    before = run_onnx(tmp_path / "a.onnx", x)
    imported.train()
    optimizer = optim.SGD(imported.parameters(), lr=0.1)
    losses.cross_entropy(imported(Tensor(x)), np.array([1, 2, 3, 4])).backward()
    optimizer.step()
    imported.eval()
    save(imported, tmp_path / "b.onnx")
    onnx.checker.check_model(str(tmp_path / "b.onnx"), full_check=True)
    after = run_onnx(tmp_path / "b.onnx", x)
    np.testing.assert_allclose(after, imported(x), rtol=1e-4, atol=1e-4)
    assert np.abs(after - before).max() > 0.1
    weights = {t.name: tuple(t.dims) for t in onnx.load(str(tmp_path / "b.onnx")).graph.initializer}
    assert weights["0.weight"] == (32, 1, 3, 3)


def test_file_layout_gives_each_initializer_as_the_file_holds_it(tmp_path):
    """OnnxModel.file_layout: parameters (conv weights held HWIO) and buffers back in the
    file's layout, and a gradient of a conv weight in OIHW."""
    from onnx import numpy_helper

    from convolve.onnx import load

    save(models.mnist_cnn(seed=0), tmp_path / "a.onnx", input_shape=(28, 28, 1))
    imported = load(tmp_path / "a.onnx")
    stored = {t.name: numpy_helper.to_array(t)
              for t in onnx.load(str(tmp_path / "a.onnx")).graph.initializer}
    names = [name for name, _ in (*imported.named_parameters(), *imported.named_buffers())]
    assert set(names) <= set(stored) and any(stored[name].ndim == 4 for name in names)
    for name in names:
        np.testing.assert_array_equal(imported.file_layout(name), stored[name])
    held = dict(imported.named_parameters())["0.weight"]
    assert held.shape == (3, 3, 1, 32)
    grad = np.random.default_rng(0).standard_normal(held.shape)
    np.testing.assert_array_equal(imported.file_layout("0.weight", grad),
                                  grad.transpose(3, 2, 0, 1))


def test_imported_model_errors(tmp_path):
    from convolve.onnx import load

    save(nn.Sequential([nn.ReLU()]), tmp_path / "a.onnx", input_shape=(2, 2, 1), opset=15)
    imported = load(tmp_path / "a.onnx")
    with pytest.raises(ValueError) as info:
        save(imported, tmp_path / "b.onnx", opset=17)
    assert str(info.value) == ("an OnnxModel is saved at its file's own opset 15; received "
                               "opset=17")
    with pytest.raises(ValueError) as info:
        save(imported, tmp_path / "b.onnx", input_shape=(2, 2, 1))
    assert str(info.value) == ("input_shape is taken from the graph of an OnnxModel; "
                               "received input_shape=(2, 2, 1)")
    save(imported, tmp_path / "b.onnx", opset=15)
    assert run_onnx(tmp_path / "b.onnx", -np.ones((1, 2, 2, 1), np.float32)).max() == 0
