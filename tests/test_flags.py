"""Boolean settings of the public API take only bools (NumPy's included): a string such as
"no" is true in Python, so taking it silently would do the opposite of what was meant."""

import re

import numpy as np
import pytest

import convolve
from convolve import _args, data, nn, optim, train, viz
from convolve.ops import math as ops_math
from convolve.tensor import Tensor

X = np.zeros((1, 4, 4, 2), np.float32)
IMAGES, LABELS = np.zeros((4, 4, 4, 1), np.float32), np.zeros(4, np.int64)


def model():
    layers = nn.Sequential([nn.Flatten(), nn.Dense(2, seed=0)])
    layers.build((4, 4, 1))
    return layers


# name -> a call taking the flag's value
FLAGS = {
    "max_pool2d ceil_mode": ("ceil_mode", lambda v: convolve.max_pool2d(X, 2, ceil_mode=v)),
    "avg_pool2d ceil_mode": ("ceil_mode", lambda v: convolve.avg_pool2d(X, 2, ceil_mode=v)),
    "MaxPool2D ceil_mode": ("ceil_mode", lambda v: nn.MaxPool2D(2, ceil_mode=v)),
    "AvgPool2D ceil_mode": ("ceil_mode", lambda v: nn.AvgPool2D(2, ceil_mode=v)),
    "AvgPool2D count_include_pad": ("count_include_pad",
                                    lambda v: nn.AvgPool2D(2, count_include_pad=v)),
    "Conv2D use_bias": ("use_bias", lambda v: nn.Conv2D(2, 3, use_bias=v)),
    "DepthwiseConv2D use_bias": ("use_bias", lambda v: nn.DepthwiseConv2D(3, use_bias=v)),
    "ConvTranspose2D use_bias": ("use_bias", lambda v: nn.ConvTranspose2D(2, 3, use_bias=v)),
    "Dense use_bias": ("use_bias", lambda v: nn.Dense(2, use_bias=v)),
    "Module.train mode": ("mode", lambda v: model().train(v)),
    "Tensor requires_grad": ("requires_grad", lambda v: Tensor(X, requires_grad=v)),
    "Tensor.sum keepdims": ("keepdims", lambda v: Tensor(X).sum(axis=0, keepdims=v)),
    "Tensor.mean keepdims": ("keepdims", lambda v: Tensor(X).mean(keepdims=v)),
    "SGD nesterov": ("nesterov", lambda v: optim.SGD(model().parameters(), 0.1, momentum=0.9,
                                                     nesterov=v)),
    "EarlyStopping restore_best_weights": (
        "restore_best_weights", lambda v: train.EarlyStopping(restore_best_weights=v)),
    "fit resume": ("resume", lambda v: train.fit(model(), (IMAGES, LABELS), resume=v,
                                                 verbose=False)),
    "fit verbose": ("verbose", lambda v: train.fit(model(), (IMAGES, LABELS), verbose=v)),
    "DataLoader shuffle": ("shuffle", lambda v: data.DataLoader(IMAGES, LABELS, 2, shuffle=v)),
    "DataLoader drop_last": ("drop_last",
                             lambda v: data.DataLoader(IMAGES, LABELS, 2, drop_last=v)),
    "batches shuffle": ("shuffle", lambda v: next(data.batches(IMAGES, LABELS, 2, shuffle=v))),
    "mnist download": ("download", lambda v: data.mnist("/nonexistent", download=v)),
    "fashion_mnist download": ("download",
                               lambda v: data.fashion_mnist("/nonexistent", download=v)),
    "cifar10 download": ("download", lambda v: data.cifar10("/nonexistent", download=v)),
    "load download": ("download", lambda v: data.load("embedded-mnist", download=v)),
    "plot_filters per_channel": ("per_channel", lambda v: viz.plot_filters(
        np.ones((3, 3, 1, 2)), "/nonexistent/f.png", per_channel=v)),
}

# Flags read only inside convolve/ops (no public boundary outside it): checked there.
OPS_FLAGS = {
    "avg_pool2d count_include_pad": (
        "count_include_pad", lambda v: convolve.avg_pool2d(X, 2, padding=1,
                                                           count_include_pad=v)),
    "dropout training": ("training", lambda v: convolve.dropout(X, 0.5, training=v, rng=0)),
    "batch_norm training": ("training", lambda v: convolve.batch_norm(
        X, None, None, np.zeros(2, np.float32), np.ones(2, np.float32), training=v)),
    "set_autotune enabled": ("enabled", lambda v: convolve.set_autotune(v)),
    "ops sum keepdims": ("keepdims", lambda v: ops_math.sum(X, axis=0, keepdims=v)),
    "ops mean keepdims": ("keepdims", lambda v: ops_math.mean(X, axis=0, keepdims=v)),
}


@pytest.mark.parametrize("value", ["no", "x", 1, 0, None, np.array([True])])
@pytest.mark.parametrize("case", list(FLAGS))
def test_non_bools_are_refused_naming_the_argument(case, value):
    name, call = FLAGS[case]
    with pytest.raises(TypeError, match=rf"^{name} must be a bool \(True or False\); "
                                        rf"received {re.escape(_args.describe(value))}$"):
        call(value)


@pytest.mark.parametrize("case", ["max_pool2d ceil_mode", "AvgPool2D count_include_pad",
                                  "Tensor requires_grad", "DataLoader shuffle"])
def test_numpy_bools_are_bools(case):
    _, call = FLAGS[case]
    call(np.True_)
    call(np.False_)


def test_ceil_mode_message_in_full():
    with pytest.raises(TypeError, match=r"^ceil_mode must be a bool \(True or False\); "
                                        r"received 'no'$"):
        convolve.max_pool2d(X, 2, ceil_mode="no")
    with pytest.raises(TypeError, match=r"^count_include_pad must be a bool \(True or False\); "
                                        r"received ndarray of shape \(1,\) and dtype bool$"):
        nn.AvgPool2D(2, count_include_pad=np.array([True]))


def test_flag_keeps_bools():
    assert _args.flag(np.True_, "f") is True and _args.flag(False, "f") is False


def test_write_image_normalize(tmp_path):
    pytest.importorskip("PIL", reason="Pillow is not installed")
    from convolve import io

    with pytest.raises(TypeError, match=r"^normalize must be False, True, 'minmax' or "
                                        r"'symmetric'; received 1$"):
        io.write_image(tmp_path / "a.png", np.zeros((2, 2)), normalize=1)
    io.write_image(tmp_path / "a.png", np.ones((2, 2)), normalize=np.True_)


@pytest.mark.parametrize("value", ["no", 1, None])
@pytest.mark.parametrize("case", list(OPS_FLAGS))
def test_ops_flags_refuse_non_bools(case, value):
    name, call = OPS_FLAGS[case]
    with pytest.raises(TypeError, match=rf"^{name} must be a bool \(True or False\); "
                                        rf"received {re.escape(_args.describe(value))}$"):
        call(value)


@pytest.mark.parametrize("case", list(OPS_FLAGS))
def test_ops_flags_take_numpy_bools(case):
    OPS_FLAGS[case][1](np.False_)
