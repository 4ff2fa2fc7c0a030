"""model.summary(): output shape and parameter count per layer, as a Keras-like table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from convolve import _args
from convolve.nn.observe import observe_calls
from convolve.tensor import data, no_grad

if TYPE_CHECKING:  # a module's summary() calls this file: no import back at run time
    from convolve.nn.module import Module


@dataclass(frozen=True)
class Trace:
    """Shapes seen in one run: ``shapes`` maps ``id(module)`` to its first output's shape."""

    output_shape: tuple[int, ...]
    shapes: dict[int, tuple[int, ...]]


def trace(model: Module, input_shape: Any) -> Trace:
    """Run a zero batch ``(1, *input_shape)`` through ``model`` without recording a tape,
    in evaluation mode (running statistics untouched), then restore every module's mode."""
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise TypeError("input_shape must be a tuple of ints without the batch axis, e.g. "
                        f"(32, 32, 3); received {input_shape!r}")
    dims = tuple(_args.integer(n, "input_shape entries") for n in input_shape)
    _args.check_fits((1, *dims), np.float32, "the input")
    shapes: dict[int, tuple[int, ...]] = {}

    def observe(module: Module, out: Any) -> None:
        shapes.setdefault(id(module), np.shape(data(out))[1:])

    modes = [(module, module.training) for _, module in model.named_modules()]
    model.eval()
    try:
        with no_grad(), observe_calls(observe):
            out = model(np.zeros((1, *dims), np.float32))
    finally:
        for module, training in modes:
            object.__setattr__(module, "training", training)
    return Trace(np.shape(data(out))[1:], shapes)


@dataclass(frozen=True)
class SummaryRow:
    """One layer's line of the table: name, type, output shape and parameter counts."""

    name: str
    kind: str
    output_shape: tuple[int, ...] | None  # without the batch axis; None: not called
    trainable: int
    non_trainable: int

    @property
    def params(self) -> int:
        return self.trainable + self.non_trainable


@dataclass(frozen=True)
class Summary:
    """Per-layer rows and totals; ``str()`` is the table. Shapes exclude the batch axis."""

    model: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    rows: tuple[SummaryRow, ...]
    trainable: int
    non_trainable: int

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def __str__(self) -> str:
        table = [("Layer (type)", "Output shape", "Param #")]
        table += [(f"{r.name} ({r.kind})", _batch_shape(r.output_shape), f"{r.params:,}")
                  for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        width = widths[0] + widths[1] + widths[2] + 6

        def line(cells: tuple[str, str, str]) -> str:
            return f"{cells[0]:<{widths[0]}}   {cells[1]:<{widths[1]}}   {cells[2]:>{widths[2]}}"

        return "\n".join([
            f'Model: "{self.model}"   input {_batch_shape(self.input_shape)}',
            "_" * width, line(table[0]), "=" * width, *map(line, table[1:]), "=" * width,
            f"Total params: {self.total:,}",
            f"Trainable params: {self.trainable:,}",
            f"Non-trainable params: {self.non_trainable:,}",
            "_" * width,
        ])


def _batch_shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join(["None", *map(str, shape)]) + ")"


def _counts(module: Module) -> tuple[int, int]:
    trainable = non_trainable = 0
    for _, p in module.named_parameters():
        if p.requires_grad:
            trainable += p.size
        else:
            non_trainable += p.size
    non_trainable += sum(b.size for _, b in module.named_buffers())
    return trainable, non_trainable


def summarize(model: Module, input_shape: Any) -> Summary:
    """Trace ``model`` on ``input_shape`` and count its parameters: a row per direct child
    (or one row for a model without children). Buffers count as non-trainable."""
    traced = trace(model, input_shape)
    layers = list(model.named_children()) or [(type(model).__name__.lower(), model)]
    rows = tuple(
        SummaryRow(name, type(layer).__name__, traced.shapes.get(id(layer)), *_counts(layer))
        for name, layer in layers
    )
    return Summary(type(model).__name__, tuple(input_shape), traced.output_shape, rows,
                   *_counts(model))
