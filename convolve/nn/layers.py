"""A model's layers by number or name, and what one of them outputs for an input.

Layers are the modules without sub-modules, in call-definition order (depth first):
for a flat ``Sequential`` the same rows as ``model.summary()``. Each has a number (from 0),
its dotted path (``"3"``, ``"block.conv"``) and a Keras-like name: the lower-case type and
its count among layers of that type, from 1 (``conv2d_2`` is the second Conv2D).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convolve.nn.module import Module
from convolve.nn.observe import observe_calls
from convolve.tensor import data, no_grad


@dataclass(frozen=True)
class Layer:
    """One layer of a model: ``number``, dotted ``path``, Keras-like ``name``, ``module``."""

    number: int
    path: str
    name: str
    module: Module

    def __str__(self) -> str:
        return f"{self.name} (layer {self.number})"


def layers(model: Module) -> list[Layer]:
    """Every layer of ``model`` (modules without sub-modules), numbered from 0."""
    found, counts = [], {}
    for path, module in model.named_modules():
        if module.children():
            continue
        kind = type(module).__name__.lower()
        counts[kind] = counts.get(kind, 0) + 1
        found.append(Layer(len(found), path or kind, f"{kind}_{counts[kind]}", module))
    return found


def find(model: Module, key: str | int) -> Layer:
    """The layer numbered ``key`` (an int or digits) or named ``key`` (Keras-like name or
    dotted path); a ValueError listing the model's layers otherwise."""
    every = layers(model)
    text = str(key).strip()
    for layer in every:
        if (text.isdigit() and int(text) == layer.number) or text in (layer.name, layer.path):
            return layer
    listing = ", ".join(f"{layer.number} {layer.name}" for layer in every)
    raise ValueError(f"layer {text!r} is not a layer of this model; its layers: {listing}")


class _ReachedError(Exception):
    """Raised by the observer once the wanted layer has run: nothing after it runs."""

    def __init__(self, output: Any) -> None:
        super().__init__()
        self.output = output


def output_of(model: Module, layer: Layer, x: Any) -> Any:
    """What ``layer`` outputs when ``model`` runs on ``x``, running the model only up to
    it, in evaluation mode without recording (every module's mode is restored)."""

    def observe(module: Module, out: Any) -> None:
        if module is layer.module:
            raise _ReachedError(data(out))

    modes = [(module, module.training) for _, module in model.named_modules()]
    model.eval()
    try:
        with no_grad(), observe_calls(observe):
            model(x)
    except _ReachedError as reached:
        return reached.output
    finally:
        for module, training in modes:
            object.__setattr__(module, "training", training)
    raise ValueError(f"{layer} did not run when the model ran on an input of shape "
                     f"{getattr(x, 'shape', None)}")
