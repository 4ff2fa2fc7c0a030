"""Module: registration, traversal, modes, state_dict round trip and its errors, repr."""

import numpy as np
import pytest

from convolve import Tensor, nn, optim


def lenet(seed=0):
    from convolve import models

    return models.lenet5((32, 32, 3), seed=seed)


def test_named_parameters_and_buffers_use_dotted_names():
    model = nn.Sequential([nn.Conv2D(4, 3, in_channels=2), nn.BatchNorm2D(in_channels=4),
                           nn.ReLU(), nn.Flatten(), nn.Dense(3, in_features=4 * 4 * 4)])
    assert [n for n, _ in model.named_parameters()] == [
        "0.weight", "0.bias", "1.gamma", "1.beta", "4.weight", "4.bias"]
    assert [n for n, _ in model.named_buffers()] == ["1.running_mean", "1.running_var"]
    assert list(model.state_dict()) == [
        "0.weight", "0.bias", "1.gamma", "1.beta", "4.weight", "4.bias",
        "1.running_mean", "1.running_var"]
    assert all(p.requires_grad for p in model.parameters())


def test_shared_parameters_are_listed_once():
    layer = nn.Dense(2, in_features=2)
    model = nn.Sequential([layer, layer])
    assert len(model.parameters()) == 2


def test_lazy_layer_has_no_parameters_until_built():
    layer = nn.Conv2D(3, 3)
    assert layer.parameters() == [] and layer.state_dict() == {}
    assert layer.unbuilt() == ["Conv2D"]
    layer(np.zeros((1, 5, 5, 2), np.float32))
    assert [p.shape for p in layer.parameters()] == [(3, 3, 2, 3), (3,)]
    assert layer.unbuilt() == []


def test_train_and_eval_set_every_module():
    model = nn.Sequential([nn.Dense(2), nn.Sequential([nn.Dropout(0.5)])])
    assert model.eval() is model
    assert not any(m.training for _, m in model.named_modules())
    model.train()
    assert all(m.training for _, m in model.named_modules())


def test_state_dict_is_a_copy_and_round_trips(tmp_path):
    a, b = lenet(seed=1), lenet(seed=2)
    state = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["0.weight"][...] = 0  # a copy: the model is untouched
    assert np.any(a.state_dict()["0.weight"])
    np.savez(tmp_path / "m.npz", **a.state_dict())
    weight = b[0].weight
    opt = optim.SGD(b.parameters(), lr=0.1)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        b.load_state_dict(dict(f))
    assert b[0].weight is weight  # loaded in place: the optimizer still holds it
    assert opt.params[0] is weight
    x = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    np.testing.assert_array_equal(a(x).data, b(x).data)


def test_load_state_dict_restores_buffers():
    bn = nn.BatchNorm2D(in_channels=3)
    other = nn.BatchNorm2D(in_channels=3)
    bn(np.random.default_rng(0).standard_normal((4, 2, 2, 3)))
    other.load_state_dict(bn.state_dict())
    np.testing.assert_array_equal(other.running_mean, bn.running_mean)
    np.testing.assert_array_equal(other.running_var, bn.running_var)


def test_load_state_dict_accepts_tensors():
    a, b = nn.Dense(2, in_features=3, seed=0), nn.Dense(2, in_features=3, seed=1)
    b.load_state_dict({k: Tensor(v) for k, v in a.state_dict().items()})
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


def test_load_state_dict_missing_key():
    model = lenet()
    state = model.state_dict()
    del state["5.weight"]
    with pytest.raises(ValueError, match=r"load_state_dict: missing key '5.weight' "
                                         r"\(expected shape \(400, 120\)\)"):
        model.load_state_dict(state)


def test_load_state_dict_unexpected_key():
    model = lenet()
    state = model.state_dict()
    state["9.weight"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"load_state_dict: unexpected key '9.weight' "
                                         r"\(shape \(2, 2\)\)"):
        model.load_state_dict(state)


def test_load_state_dict_wrong_shape():
    model = lenet()
    state = model.state_dict()
    state["0.weight"] = np.zeros((3, 3, 3, 6), np.float32)
    before = model[0].weight.data.copy()
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(3, 3, 3, 6\) in the "
                                         r"state_dict but \(5, 5, 3, 6\) in the model"):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model[0].weight.data, before)  # nothing changed


def test_load_state_dict_wrong_dtype():
    model = lenet()
    state = model.state_dict()
    state["0.bias"] = state["0.bias"].astype(np.float64)
    with pytest.raises(ValueError, match=r"'0.bias' has dtype float64 in the state_dict but "
                                         "float32 in the model"):
        model.load_state_dict(state)


def test_load_state_dict_lists_every_problem():
    model = lenet()
    state = model.state_dict()
    del state["0.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"missing key '0.bias' \(expected shape \(6,\)\); "
                                         r"unexpected key 'extra' \(shape \(1,\)\)"):
        model.load_state_dict(state)


def test_load_state_dict_into_unbuilt_layers_needs_their_entries():
    model = nn.Sequential([nn.Conv2D(2, 3), nn.Flatten(), nn.Dense(2)])
    with pytest.raises(ValueError, match=r"^cannot build unbuilt layer 0 from the state_dict: "
                                         r"it lacks '0.weight', '0.bias'$"):
        model.load_state_dict({})


def test_load_state_dict_refuses_non_mapping():
    with pytest.raises(TypeError, match="state must be a mapping of names to arrays; "
                                        "received 3"):
        nn.Dense(2, in_features=2).load_state_dict(3)


def test_build_returns_output_shape_and_keeps_modes_and_statistics():
    model = nn.Sequential([nn.Conv2D(4, 3), nn.BatchNorm2D(), nn.Dropout(0.5),
                           nn.GlobalAvgPool2D()])
    assert model.build((9, 9, 2)) == (4,)
    assert model.training and model[1].training
    np.testing.assert_array_equal(model[1].running_mean, np.zeros(4))
    assert all(p.grad is None for p in model.parameters())


def test_repr_is_readable():
    model = nn.Sequential([nn.Conv2D(6, 5, padding="same", activation="relu"),
                           nn.MaxPool2D(2), nn.Flatten(), nn.Dense(10)])
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Conv2D(6, kernel_size=(5, 5), padding='same', activation='relu')\n"
        "  (1): MaxPool2D(pool_size=(2, 2))\n"
        "  (2): Flatten()\n"
        "  (3): Dense(10)\n"
        ")")
    model.build((8, 8, 3))
    assert "Conv2D(6, kernel_size=(5, 5), padding='same', activation='relu', in_channels=3)" \
        in repr(model)
    assert "Dense(10, in_features=96)" in repr(model)


def test_nested_repr_indents():
    model = nn.Sequential([nn.Sequential([nn.ReLU()])])
    assert repr(model) == "Sequential(\n  (0): Sequential(\n    (0): ReLU()\n  )\n)"


def test_custom_module_registers_by_assignment():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Conv2D(2, 3, in_channels=1)
            self.head = nn.Dense(1, in_features=2)
            self.scale = Tensor(np.ones(1, np.float32), requires_grad=True)

        def forward(self, x):
            return self.head(nn.GlobalAvgPool2D()(self.features(x))) * self.scale

    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "scale", "features.weight", "features.bias", "head.weight", "head.bias"]
    assert net(np.zeros((2, 5, 5, 1), np.float32)).shape == (2, 1)
    summary = net.summary((5, 5, 1), print_fn=None)
    assert [r.name for r in summary.rows] == ["features", "head"]
    assert summary.total == 2 * 9 + 2 + 2 + 1 + 1


def test_forgetting_super_init_is_explained():
    class Bad(nn.Module):
        def __init__(self):
            self.layer = nn.ReLU()

    with pytest.raises(AttributeError, match=r"Bad.__init__ must call super\(\).__init__\(\) "
                                             "before assigning attributes"):
        Bad()


def test_register_parameter_refuses_arrays():
    with pytest.raises(TypeError, match="parameter 'w' must be a Tensor or None; received "
                                        r"ndarray of shape \(2,\)"):
        nn.Module().register_parameter("w", np.zeros(2))


def test_sequential_errors():
    with pytest.raises(TypeError, match="layers must be a list of Modules; received"):
        nn.Sequential(nn.ReLU())
    with pytest.raises(TypeError, match=r"layers\[1\] must be a Module \(a layer\); received "
                                        "<built-in function abs>"):
        nn.Sequential([nn.ReLU(), abs])


def test_sequential_indexing():
    model = nn.Sequential([nn.ReLU(), nn.Tanh(), nn.Sigmoid()])
    assert isinstance(model[1], nn.Tanh) and isinstance(model[-1], nn.Sigmoid)
    assert len(model[1:]) == 2 and isinstance(model[1:], nn.Sequential)
    assert [type(m).__name__ for m in model] == ["ReLU", "Tanh", "Sigmoid"]
