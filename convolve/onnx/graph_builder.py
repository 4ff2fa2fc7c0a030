"""An ONNX graph under construction: unique names, initializers, and the ops whose form
changes across the opsets the exporter writes (13 to 21).

Values keep convolve's meaning: an image value ``(H, W, C)`` (batch left out) is held by
the graph in ONNX's ``(N, C, H, W)``; a flat value ``(F,)`` is ``(N, F)`` in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from convolve.ops.pad import source_index

# convolve's NHWC axis -> the same axis's position in ONNX's NCHW.
NCHW_POSITION = (0, 2, 3, 1)
BATCH = "N"

# Pad modes ONNX's Pad op has (``wrap`` from opset 19); the rest are built with Gather.
_PAD_OP_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}


@dataclass(frozen=True)
class Value:
    """A graph tensor: its name and convolve's shape for it without the batch axis."""

    name: str
    shape: tuple[int, ...]

    @property
    def image(self) -> bool:
        return len(self.shape) == 3

    def onnx_axis(self, axis: int) -> int:
        """The graph's axis for convolve's ``axis`` of the batched value."""
        axis %= len(self.shape) + 1
        return NCHW_POSITION[axis] if self.image else axis


class GraphBuilder:
    """Nodes and initializers of one graph, written at one opset."""

    def __init__(self, opset: int) -> None:
        from onnx import helper, numpy_helper

        self._helper = helper
        self._numpy_helper = numpy_helper
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()

    def unique(self, hint: str) -> str:
        """``hint``, or ``hint_2``, ``hint_3``, ... when taken."""
        name, n = hint, 1
        while name in self._names:
            n += 1
            name = f"{hint}_{n}"
        self._names.add(name)
        return name

    def initializer(self, array: np.ndarray, hint: str) -> str:
        """A constant tensor of the graph; float arrays are written as float32."""
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        name = self.unique(hint)
        self.initializers.append(self._numpy_helper.from_array(np.ascontiguousarray(array),
                                                               name))
        return name

    def ints(self, values: Any, hint: str) -> str:
        return self.initializer(np.asarray(values, np.int64), hint)

    def node(self, op: str, inputs: list[str], hint: str, **attributes: Any) -> str:
        """Add one node with one output, named ``hint`` (made unique); returns that name.
        An empty input name is an omitted optional input; None attributes are left out."""
        out = self.unique(hint)
        attributes = {k: v for k, v in attributes.items() if v is not None}
        self.nodes.append(self._helper.make_node(op, inputs, [out], name=out, **attributes))
        return out

    def reduce(self, op: str, x: str, axes: list[int], hint: str, *, keepdims: int) -> str:
        """``ReduceMean``/``ReduceMax``: axes an attribute before opset 18, an input from."""
        if self.opset >= 18:
            return self.node(op, [x, self.ints(axes, f"{hint}.axes")], hint,
                             keepdims=keepdims)
        return self.node(op, [x], hint, axes=axes, keepdims=keepdims)

    def pad_spatial(self, x: Value, pads: tuple[tuple[int, int], tuple[int, int]],
                    mode: str, hint: str) -> str:
        """Pad an image value's height and width by ``((top, bottom), (left, right))`` in
        one of convolve's padding modes: ONNX's Pad where it has the mode, else a Gather
        of the source rows and columns (``symmetric``, and ``circular`` before opset 19)."""
        (top, bottom), (left, right) = pads
        onnx_mode = _PAD_OP_MODES.get(mode)
        if mode == "circular" and self.opset >= 19:
            onnx_mode = "wrap"
        if onnx_mode is not None:
            widths = self.ints([0, 0, top, left, 0, 0, bottom, right], f"{hint}.pads")
            return self.node("Pad", [x.name, widths], hint, mode=onnx_mode)
        name = x.name
        for axis, n, (before, after) in ((2, x.shape[0], pads[0]), (3, x.shape[1], pads[1])):
            if before or after:
                rows = self.ints(source_index(n, before, after, mode), f"{hint}.index")
                name = self.node("Gather", [name, rows], hint, axis=axis)
        return name

    def rename_output(self, old: str, new: str) -> bool:
        """Rename the output of the node producing ``old`` (the graph's last value);
        False when no node produces it (it is the graph input)."""
        for node in reversed(self.nodes):
            if old in node.output:
                node.output[list(node.output).index(old)] = new
                return True
        return False
