"""Using a trained model: checkpoints that rebuild their model (models.load), loading into
unbuilt layers, predict, and the PyTorch/Keras habits (float(t), arrays out of eval-mode
layers, Sequential(input_shape=...), len(split))."""

import re

import numpy as np
import pytest

import convolve
from convolve import checkpoint, data, models, nn, optim, train
from convolve.model_info import ModelInfo
from convolve.tensor import Tensor, no_grad


def digits(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 28, 28, 1), dtype=np.float32),
            rng.integers(0, 10, n).astype(np.int64))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """digits_cnn after one short epoch, with its checkpoint."""
    path = tmp_path_factory.mktemp("ckpt") / "run.npz"
    images, labels = digits()
    split = data.Split(images, labels, tuple("abcdefghij"))
    model = models.get_model("digits_cnn", seed=0)
    train.fit(model, split, epochs=1, batch_size=16, checkpoint_path=path, verbose=False)
    return model, path


def test_a_checkpoint_holds_what_rebuilds_its_model(trained):
    _, path = trained
    meta = checkpoint.load(path)[1]["model"]
    assert meta == {"name": "digits_cnn", "args": {"input_shape": [28, 28, 1],
                                                   "num_classes": 10},
                    "input_shape": [28, 28, 1], "classes": list("abcdefghij"),
                    "mean": [0.0], "std": [1.0]}


def test_models_load_rebuilds_fills_and_evaluates(trained):
    model, path = trained
    loaded = models.load(path)
    assert not loaded.training and isinstance(loaded, nn.Sequential)
    assert loaded.info == ModelInfo("digits_cnn", {"input_shape": [28, 28, 1],
                                                   "num_classes": 10}, (28, 28, 1),
                                    tuple("abcdefghij"))
    images = digits(5, seed=3)[0]
    expected = convolve.predict(model, images)
    out = loaded(images)
    assert type(out) is np.ndarray  # eval mode on an array: no graph
    np.testing.assert_array_equal(out, expected)


def test_fit_takes_classes_and_normalization(tmp_path):
    path = tmp_path / "run.npz"
    model = models.get_model("digits_cnn", seed=0)
    train.fit(model, digits(16), epochs=1, batch_size=16, checkpoint_path=path,
              verbose=False, classes=[str(d) for d in range(10)],
              normalization={"mean": 0.1307, "std": 0.3081})
    info = models.load(path).info
    assert info.classes == tuple("0123456789")
    assert info.mean == (0.1307,) and info.std == (0.3081,)
    np.testing.assert_allclose(info.normalize(np.full((1, 2, 2, 1), 0.5)),
                               (0.5 - 0.1307) / 0.3081, rtol=1e-6)
    with pytest.raises(ValueError, match=r"^the normalisation mean has 3 values but the "
                                         r"images have 1 channels; give one value or one per "
                                         r"channel$"):
        ModelInfo(mean=(0.1, 0.2, 0.3), std=(1.0,)).normalize(np.zeros((2, 2, 1)))
    with pytest.raises(ValueError, match=r"^normalization must be \{'mean': ..., 'std': ...\}; "
                                         r"received \{'scale': 2\}$"):
        train.fit(model, digits(16), verbose=False, normalization={"scale": 2})
    with pytest.raises(ValueError, match=r"^normalization\['std'\] must be > 0; received "
                                         r"\(0.0,\)$"):
        train.fit(model, digits(16), verbose=False, normalization={"std": 0})
    with pytest.raises(TypeError, match=r"^classes must be a list of class names; received "):
        train.fit(model, digits(16), verbose=False, classes="0123456789")


def test_load_weights_fills_a_model_built_by_hand(trained, tmp_path):
    model, path = trained
    custom = nn.Sequential([nn.Conv2D(16, 3, activation="relu"), nn.MaxPool2D(2),
                            nn.Conv2D(32, 3, activation="relu"), nn.MaxPool2D(2),
                            nn.Flatten(), nn.Dense(10)])
    custom.load_state_dict(models.load_weights(path))  # unbuilt: built from the shapes
    images = digits(3, seed=4)[0]
    np.testing.assert_array_equal(convolve.predict(custom, images),
                                  convolve.predict(model, images))


def test_a_training_checkpoint_as_a_state_dict_says_what_to_do(trained):
    _, path = trained
    built = models.get_model("digits_cnn")
    with pytest.raises(ValueError, match=r"; and \d+ more \(keys starting with 'model.' are a "
                                         r"training checkpoint's arrays: load it with "
                                         r"convolve.models.load\(path\), or "):
        built.load_state_dict(checkpoint.load(path)[0])
    with pytest.raises(ValueError, match=r"^cannot build unbuilt layer 0 from the state_dict: "
                                         r"it lacks '0.weight', '0.bias' \(keys starting with "
                                         r"'model.'"):
        nn.Sequential([nn.Conv2D(2, 3)]).load_state_dict(checkpoint.load(path)[0])


def test_models_load_refuses_what_it_cannot_rebuild(tmp_path):
    path = tmp_path / "custom.npz"
    custom = nn.Sequential([nn.Flatten(), nn.Dense(10)], input_shape=(28, 28, 1))
    train.fit(custom, digits(16), epochs=1, batch_size=16, checkpoint_path=path,
              verbose=False)
    with pytest.raises(checkpoint.CheckpointError, match=(
            rf"^checkpoint {re.escape(repr(str(path)))} does not name a zoo model \(lenet5, "
            r"mnist_cnn, digits_cnn, cifar_cnn\), so convolve cannot rebuild it: build the "
            r"model and call "
            r"model.load_state_dict\(convolve.models.load_weights\(path\)\)$")):
        models.load(path)
    plain = tmp_path / "plain.npz"
    checkpoint.save(plain, {"w": np.ones(2)}, {})
    with pytest.raises(checkpoint.CheckpointError, match=(
            rf"^checkpoint {re.escape(repr(str(plain)))} is not a training checkpoint \(it has "
            r"no model\); write one with fit\(checkpoint_path=...\) or convolve train "
            r"--checkpoint$")):
        models.load(plain)
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        models.load(tmp_path / "none.npz")


@pytest.mark.parametrize("make", [
    lambda: nn.Conv2D(4, 3, groups=2, padding="same", seed=1),
    lambda: nn.DepthwiseConv2D(3, 2, seed=1),
    lambda: nn.ConvTranspose2D(3, 2, stride=2, seed=1),
    lambda: nn.Dense(3, seed=1),
    lambda: nn.BatchNorm2D(),
])
def test_load_state_dict_builds_an_unbuilt_layer_from_the_shapes(make):
    source, target = make(), make()
    x = np.random.default_rng(0).random((2, 5, 5, 4), dtype=np.float32)
    source(x)
    state = {k: v + 0.5 for k, v in source.state_dict().items()}
    source.load_state_dict(state)
    target.load_state_dict(state)
    source.eval(), target.eval()
    np.testing.assert_array_equal(target(x), source(x))


def test_load_state_dict_refuses_a_weight_of_the_wrong_rank():
    with pytest.raises(ValueError, match=r"^Conv2D's weight must be 4-D \(KH, KW, ., .\); "
                                         r"received shape \(3, 3\)$"):
        nn.Conv2D(2, 3).load_state_dict({"weight": np.ones((3, 3)), "bias": np.ones(2)})


def test_sequential_input_shape_builds_so_an_optimizer_can_start():
    model = nn.Sequential([nn.Conv2D(4, 3), nn.Flatten(), nn.Dense(2)], input_shape=(6, 6, 1))
    assert [p.shape for p in model.parameters()] == [(3, 3, 1, 4), (4,), (64, 2), (2,)]
    optim.Adam(model.parameters())
    assert not nn.Sequential([nn.Dense(2)]).parameters()  # lazy without input_shape


def test_float_and_int_of_a_one_element_tensor():
    assert float(Tensor(np.array([[2.5]]))) == 2.5
    assert int(Tensor(np.float32(3.7))) == 3
    with pytest.raises(TypeError, match=r"^only a one-element Tensor converts to float; "
                                        r"received a Tensor of shape \(2,\)$"):
        float(Tensor(np.ones(2)))


def test_layers_on_arrays_record_only_in_training():
    layer = nn.Conv2D(2, 3, seed=0)
    x = np.ones((1, 5, 5, 1), np.float32)
    trained_out = layer(x)
    assert isinstance(trained_out, Tensor) and trained_out.requires_grad
    with no_grad():
        assert type(layer(x)) is np.ndarray
    layer.eval()
    out = layer(x)
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, trained_out.data)
    assert isinstance(layer(Tensor(x)), Tensor)  # a Tensor in: a Tensor out, as the ops


def test_len_and_repr_of_a_split():
    split = data.embedded_mnist().test
    assert len(split) == 2000
    assert repr(split) == ("Split(2000 examples, images (28, 28, 1) float32, labels int64, "
                           "10 classes)")
    images, labels = split
    assert images.shape == (2000, 28, 28, 1) and labels.shape == (2000,)


def test_predict_batches_in_eval_mode_without_a_graph(trained):
    model, _ = trained
    model.train()
    images = digits(7, seed=5)[0]
    out = convolve.predict(model, images, batch_size=3)
    assert type(out) is np.ndarray and out.shape == (7, 10) and model.training
    model.eval()
    np.testing.assert_allclose(out, model(images), rtol=1e-5, atol=1e-6)


def test_predict_names_the_input_shape_the_model_was_trained_on(trained):
    model, _ = trained
    with pytest.raises(ValueError, match=r"^images must be \(N, 28, 28, 1\) for this model, "
                                         r"the shape it was trained on; received an array of "
                                         r"shape \(2, 32, 32, 1\) \(Dense was built for "):
        convolve.predict(model, np.zeros((2, 32, 32, 1), np.float32))
    with pytest.raises(ValueError, match=r"^images must be \(N, 28, 28, 1\) for this model, "
                                         r"the shape it was trained on; received an array of "
                                         r"shape \(2, 28, 28, 3\) \(Conv2D was built for "):
        convolve.predict(model, np.zeros((2, 28, 28, 3), np.float32))
    fully_convolutional = models.get_model("cifar_cnn", seed=0)  # global pooling: any size
    assert convolve.predict(fully_convolutional, np.zeros((1, 16, 16, 3), np.float32)).shape \
        == (1, 10)
