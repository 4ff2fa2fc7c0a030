"""A small model zoo for the command line and training, each returned built; and loading
a trained model back from its checkpoint."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from convolve import _args, checkpoint
from convolve.model_info import ModelInfo
from convolve.nn import (
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Sequential,
)


def _zoo_model(model: Sequential, name: str, input_shape: tuple[int, ...]) -> Sequential:
    """``model`` built for ``input_shape``, carrying what rebuilds it (``model.info``)."""
    model.build(input_shape)
    shape = tuple(int(n) for n in input_shape)
    model.info = ModelInfo(name=name, args={"input_shape": list(shape),
                                            "num_classes": model[-1].units},
                           input_shape=shape)
    return model


def lenet5(input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10, *,
           seed: Any = None) -> Sequential:
    """LeNet-5 with ReLU and max pooling: valid 5x5 convs with 6 and 16 filters, each
    followed by a 2x2 max pool, then dense 120-84-``num_classes`` (logits).
    62,006 parameters on (32, 32, 3) with 10 classes."""
    rng = _args.generator(seed, "seed")
    model = Sequential([
        Conv2D(6, 5, activation="relu", seed=rng),
        MaxPool2D(2),
        Conv2D(16, 5, activation="relu", seed=rng),
        MaxPool2D(2),
        Flatten(),
        Dense(120, activation="relu", seed=rng),
        Dense(84, activation="relu", seed=rng),
        Dense(_args.integer(num_classes, "num_classes"), seed=rng),
    ])
    return _zoo_model(model, "lenet5", input_shape)


def mnist_cnn(input_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10, *,
              seed: Any = None) -> Sequential:
    """The default MNIST model: two blocks of a valid 3x3 convolution (32, then 64 filters),
    batch normalisation, ReLU and a 2x2 max pool; then dense 128 (ReLU), dropout 0.3 and
    dense ``num_classes`` (logits). 225,322 parameters (192 of them running statistics).

    Measured: 3 epochs of Adam (lr 2e-3, batch 64, cosine decay to 0) reach 99.2% MNIST test
    accuracy in about 6.5 minutes on 2 shared CPU cores. Twice the convolutions per block
    (conv-conv-pool) cost 2.5 times as much per step for little gain in that budget.
    """
    rng = _args.generator(seed, "seed")

    def block(filters: int) -> list[Any]:
        return [Conv2D(filters, 3, use_bias=False, seed=rng), BatchNorm2D(), ReLU(),
                MaxPool2D(2)]

    model = Sequential([
        *block(32), *block(64),
        Flatten(),
        Dense(128, activation="relu", seed=rng),
        Dropout(0.3, seed=rng),
        Dense(_args.integer(num_classes, "num_classes"), seed=rng),
    ])
    return _zoo_model(model, "mnist_cnn", input_shape)


def digits_cnn(input_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10, *,
               seed: Any = None) -> Sequential:
    """A small, fast digit model for the embedded MNIST subset: valid 3x3 convolutions
    with 16 and 32 filters, each followed by ReLU and a 2x2 max pool, then dense
    ``num_classes`` (logits)."""
    rng = _args.generator(seed, "seed")
    model = Sequential([
        Conv2D(16, 3, activation="relu", seed=rng), MaxPool2D(2),
        Conv2D(32, 3, activation="relu", seed=rng), MaxPool2D(2),
        Flatten(),
        Dense(_args.integer(num_classes, "num_classes"), seed=rng),
    ])
    return _zoo_model(model, "digits_cnn", input_shape)


def cifar_cnn(input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10, *,
              seed: Any = None) -> Sequential:
    """A CIFAR-10 model: three blocks of two same-padded 3x3 convolutions (32, 64, 128
    filters, batch normalisation, ReLU) and a 2x2 max pool, then global average pooling
    and dense ``num_classes`` (logits)."""
    rng = _args.generator(seed, "seed")

    def conv_block(filters: int) -> list[Any]:
        return [Conv2D(filters, 3, padding="same", use_bias=False, seed=rng), BatchNorm2D(),
                ReLU()]

    model = Sequential([
        *conv_block(32), *conv_block(32), MaxPool2D(2),
        *conv_block(64), *conv_block(64), MaxPool2D(2),
        *conv_block(128), *conv_block(128), MaxPool2D(2),
        GlobalAvgPool2D(),
        Dense(_args.integer(num_classes, "num_classes"), seed=rng),
    ])
    return _zoo_model(model, "cifar_cnn", input_shape)


MODELS: dict[str, Callable[..., Sequential]] = {
    "lenet5": lenet5, "mnist_cnn": mnist_cnn, "digits_cnn": digits_cnn, "cifar_cnn": cifar_cnn,
}

# Epochs `convolve train` runs each model for by default.
# How `convolve train` trains each model by default (Adam, cosine schedule).
TRAINING_DEFAULTS = {
    "lenet5": {"epochs": 10, "lr": 1e-3},
    "mnist_cnn": {"epochs": 3, "lr": 2e-3},
    "digits_cnn": {"epochs": 3, "lr": 1e-3},
    "cifar_cnn": {"epochs": 30, "lr": 1e-3},
}


def _lookup(name: str) -> Callable[..., Sequential]:
    return MODELS[_args.choice(name, "model", tuple(MODELS))]


def get_model(name: str, **kwargs: Any) -> Sequential:
    """The zoo model ``name`` built with ``kwargs`` (``input_shape``, ``num_classes``,
    ``seed``)."""
    return _lookup(name)(**kwargs)


def default_input_shape(name: str) -> tuple[int, ...]:
    """The input shape (without the batch axis) model ``name`` is built for by default."""
    return inspect.signature(_lookup(name)).parameters["input_shape"].default


def training_defaults(name: str) -> dict[str, float]:
    """The ``epochs`` and Adam ``lr`` that ``convolve train`` uses for model ``name``."""
    _lookup(name)
    return dict(TRAINING_DEFAULTS[name])


TRAINING_FORMAT = "convolve-training-checkpoint-1"


def _training_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    arrays, meta = checkpoint.load(path)
    if meta.get("format") != TRAINING_FORMAT:
        raise checkpoint.CheckpointError(
            f"checkpoint {os.fspath(path)!r} is not a training checkpoint (it has no model); "
            "write one with fit(checkpoint_path=...) or convolve train --checkpoint")
    return arrays, meta


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The model's parameters and buffers from a training checkpoint (``fit``'s), by the
    names ``model.state_dict()`` uses: ``model.load_state_dict(load_weights(path))``."""
    arrays, _ = _training_checkpoint(path)
    return {key.removeprefix("model."): a for key, a in arrays.items()
            if key.startswith("model.")}


def load(path: str | os.PathLike) -> Sequential:
    """The trained model of a checkpoint written by ``fit`` or ``convolve train``: rebuilt
    from the zoo, filled with the checkpoint's weights, in evaluation mode.

    ``model.info`` (a ``ModelInfo``) holds its input shape ``(H, W, C)``, class names and
    input normalisation. Raises ``CheckpointError`` (a ValueError) for a file that is
    missing, damaged, not a training checkpoint, or of a model not from the zoo (then build
    the model yourself and call ``model.load_state_dict(load_weights(path))``).
    """
    meta = _training_checkpoint(path)[1]
    where = f"checkpoint {os.fspath(path)!r}"
    try:
        info = ModelInfo.from_json(meta.get("model") or {})
    except ValueError as error:
        raise checkpoint.CheckpointError(f"{where}: {error}") from None
    if info.name is None:
        raise checkpoint.CheckpointError(
            f"{where} does not name a zoo model ({', '.join(MODELS)}), so convolve cannot "
            "rebuild it: build the model and call "
            "model.load_state_dict(convolve.models.load_weights(path))")
    if info.name not in MODELS:
        raise checkpoint.CheckpointError(
            f"{where} holds model {info.name!r}, which this convolve does not know; known: "
            f"{', '.join(MODELS)}")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in info.args.items()}
    try:
        model = get_model(info.name, **args)
        model.load_state_dict(load_weights(path))
    except (TypeError, ValueError) as error:
        raise checkpoint.CheckpointError(
            f"{where} does not rebuild its model {info.name!r}: {error}") from None
    model.info = info
    return model.eval()
