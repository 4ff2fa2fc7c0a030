"""model.summary(), the model zoo and ``convolve summary``."""

import numpy as np
import pytest

from convolve import models, nn
from convolve.cli import main

LENET_ROWS = [
    ("0", "Conv2D", (28, 28, 6), 456),
    ("1", "MaxPool2D", (14, 14, 6), 0),
    ("2", "Conv2D", (10, 10, 16), 2416),
    ("3", "MaxPool2D", (5, 5, 16), 0),
    ("4", "Flatten", (400,), 0),
    ("5", "Dense", (120,), 48120),
    ("6", "Dense", (84,), 10164),
    ("7", "Dense", (10,), 850),
]


def test_lenet5_totals_62006_parameters():
    model = models.lenet5((32, 32, 3), seed=0)
    summary = model.summary((32, 32, 3), print_fn=None)
    assert summary.total == summary.trainable == 62_006
    assert summary.non_trainable == 0
    assert [(r.name, r.kind, r.output_shape, r.params) for r in summary.rows] == LENET_ROWS
    assert summary.output_shape == (10,)
    assert sum(p.size for p in model.parameters()) == 62_006


def test_summary_builds_a_lazy_model_and_prints_the_table(capsys):
    model = nn.Sequential([
        nn.Conv2D(6, 5, activation="relu"), nn.MaxPool2D(2),
        nn.Conv2D(16, 5, activation="relu"), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(120, activation="relu"), nn.Dense(84, activation="relu"),
        nn.Dense(10)])
    summary = model.summary((32, 32, 3))
    printed = capsys.readouterr().out
    assert printed.strip() == str(summary)
    assert model[0].weight.shape == (5, 5, 3, 6)
    lines = printed.splitlines()
    assert lines[0] == 'Model: "Sequential"   input (None, 32, 32, 3)'
    assert lines[2].split() == ["Layer", "(type)", "Output", "shape", "Param", "#"]
    assert lines[4].split() == ["0", "(Conv2D)", "(None,", "28,", "28,", "6)", "456"]
    assert lines[9].split() == ["5", "(Dense)", "(None,", "120)", "48,120"]
    assert "Total params: 62,006" in lines
    assert "Trainable params: 62,006" in lines
    assert "Non-trainable params: 0" in lines
    assert all(p.grad is None for p in model.parameters())


def test_batch_norm_statistics_count_as_non_trainable():
    model = nn.Sequential([nn.Conv2D(4, 3, use_bias=False), nn.BatchNorm2D(), nn.ReLU()])
    summary = model.summary((8, 8, 2), print_fn=None)
    assert summary.trainable == 3 * 3 * 2 * 4 + 2 * 4
    assert summary.non_trainable == 2 * 4
    assert summary.rows[1].params == 16
    assert "Non-trainable params: 8" in str(summary)


def test_summary_of_a_single_layer():
    summary = nn.Conv2D(6, 5, padding="same", activation="relu").summary((32, 32, 3),
                                                                         print_fn=None)
    assert [(r.name, r.output_shape, r.params) for r in summary.rows] == [
        ("conv2d", (32, 32, 6), 456)]


@pytest.mark.parametrize(("shape", "error", "match"), [
    ((32, 32, 0), ValueError, "input_shape entries must be >= 1; received 0"),
    (32, TypeError, r"input_shape must be a tuple of ints without the batch axis, e\.g\. "
                    r"\(32, 32, 3\); received 32"),
    ((), TypeError, "input_shape must be a tuple of ints"),
])
def test_summary_input_shape_errors(shape, error, match):
    with pytest.raises(error, match=match):
        models.lenet5().summary(shape, print_fn=None)


def test_mnist_cnn_shapes_and_forward():
    model = models.mnist_cnn(seed=0)
    summary = model.summary((28, 28, 1), print_fn=None)
    assert summary.output_shape == (10,)
    assert summary.non_trainable == 2 * (32 + 64)
    assert summary.total == 225_322
    y = model(np.zeros((2, 28, 28, 1), np.float32))
    assert y.shape == (2, 10)


def test_models_are_seeded():
    a, b = models.lenet5(seed=3), models.lenet5(seed=3)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_get_model():
    model = models.get_model("lenet5", input_shape=(28, 28, 1), num_classes=4)
    assert model.build((28, 28, 1)) == (4,)
    assert models.default_input_shape("mnist_cnn") == (28, 28, 1)
    with pytest.raises(ValueError, match=r"^model must be one of 'lenet5', 'mnist_cnn', "
                                         r"'digits_cnn', 'cifar_cnn'; received 'resnet'$"):
        models.get_model("resnet")
    with pytest.raises(ValueError, match="num_classes must be >= 1; received 0"):
        models.lenet5(num_classes=0)


def test_cli_summary(capsys):
    assert main(["summary", "--model", "lenet5", "--input-shape", "32,32,3"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 62,006" in out and "(None, 5, 5, 16)" in out
    assert main(["summary", "--model", "mnist_cnn"]) == 0
    assert 'input (None, 28, 28, 1)' in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["summary", "--model", "vgg"],
     "convolve summary: error: model must be one of 'lenet5', 'mnist_cnn'"),
    (["summary", "--input-shape", "32,x,3"],
     "convolve summary: error: --input-shape must be comma-separated integers; received "
     "'32,x,3'"),
    (["summary", "--input-shape", "4,4,3"],
     "convolve summary: error: the kernel is larger than the padded input along the height"),
    (["summary", "--input-shape", "32,32"],
     "convolve summary: error: --input-shape must be H,W,C (three integers, no batch axis); "
     "received '32,32'\n"),
])
def test_cli_summary_errors(argv, message, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(message)
