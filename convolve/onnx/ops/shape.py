"""Ops that move, select or make values: Reshape, Flatten, Transpose, Squeeze, Unsqueeze,
Concat, Split, Slice, Gather, Shape, Size, Constant, ConstantOfShape, Expand, Range,
Tile, Pad, DepthToSpace and SpaceToDepth.

Each maps ONNX's (logical) axes to physical ones through the value's ``perm``; Reshape,
Flatten and the like, whose meaning depends on the order of the elements, work on the
logical layout.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from convolve.onnx.layout import Value, reshape, reshaped, transpose
from convolve.onnx.registry import Context, Node, checked_size, converter
from convolve.ops import elementwise
from convolve.ops import math as ops_math
from convolve.tensor import Tensor, data


def _axes(node: Node, inputs: list[Any], index: int, attr: str = "axes") -> list[int] | None:
    """Axes from input ``index`` (newer op sets) or the attribute (older ones)."""
    if index < len(inputs) and inputs[index] is not None:
        return [int(a) for a in inputs[index].numpy().reshape(-1)]
    value = node.attr(attr)
    return None if value is None else [int(a) for a in value]


def _normal_axes(axes: list[int], ndim: int) -> list[int]:
    return [a + ndim if a < 0 else a for a in axes]


@converter("Reshape", static=(1,))
def _reshape(node: Node) -> Any:
    if node.version < 5:
        raise node.refuse("Reshape-1 (shape attribute) is not supported")
    allow_zero = bool(node.attr("allowzero", 0))

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, shape = inputs
        target = [int(d) for d in shape.numpy().reshape(-1)]
        current = x.shape
        if not allow_zero:
            target = [current[i] if d == 0 else d for i, d in enumerate(target)]
        if -1 in target:
            known = math.prod(d for d in target if d != -1)
            target[target.index(-1)] = math.prod(current) // known if known else 0
        return reshaped(x, target)

    return run


@converter("Flatten")
def _flatten(node: Node) -> Any:
    axis = int(node.attr("axis", 1))

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        shape = x.shape
        ax = axis + len(shape) if axis < 0 else axis
        return reshaped(x, (math.prod(shape[:ax]), math.prod(shape[ax:])))

    return run


@converter("Transpose")
def _transpose(node: Node) -> Any:
    perm = node.attr("perm")

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        p = list(range(x.ndim))[::-1] if perm is None else [int(a) for a in perm]
        inverse = np.argsort(p)
        current = x.perm or tuple(range(x.ndim))
        return Value(x.data, [int(inverse[a]) for a in current])

    return run


@converter("Squeeze", static=(1,))
def _squeeze(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        shape = x.shape
        axes = _axes(node, inputs, 1 if node.version >= 13 else 99)
        axes = [i for i, n in enumerate(shape) if n == 1] if axes is None else \
            _normal_axes(axes, len(shape))
        current = x.perm or tuple(range(x.ndim))
        kept = [a for a in current if a not in axes]
        physical = [np.shape(data(x.data))[i] for i, a in enumerate(current) if a not in axes]
        renumber = {a: a - sum(r < a for r in axes) for a in kept}
        return Value(reshape(x.data, physical), [renumber[a] for a in kept])

    return run


@converter("Unsqueeze", static=(1,))
def _unsqueeze(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        axes = _axes(node, inputs, 1 if node.version >= 13 else 99)
        rank = x.ndim + len(axes)
        axes = sorted(_normal_axes(axes, rank))
        old = [a for a in range(rank) if a not in axes]  # new number of each old axis
        if x.perm is None:
            shape = list(x.shape)
            for a in axes:
                shape.insert(a, 1)
            return Value(reshape(x.data, shape))
        perm = [old[a] for a in x.perm] + axes
        return Value(reshape(x.data, (*np.shape(data(x.data)), *[1] * len(axes))), perm)

    return run


def _common_perm(values: list[Value]) -> tuple[int, ...] | None:
    return next((v.perm for v in values if v.perm is not None), None)


@converter("Concat")
def _concat(node: Node) -> Any:
    axis = int(node.attr("axis"))

    def run(ctx: Context, inputs: list[Any]) -> Value:
        values = [v for v in inputs if v is not None]
        perm = _common_perm(values)
        first = values[0]
        ax = first.axis(axis) if perm is None else perm.index(
            axis + first.ndim if axis < 0 else axis)
        parts = [v.to(perm) for v in values]
        if any(isinstance(p, Tensor) for p in parts):
            return Value(ops_math.concatenate(parts, axis=ax), perm)
        return Value(np.concatenate([np.asarray(p) for p in parts], axis=ax), perm)

    return run


@converter("Split", static=(1,))
def _split(node: Node) -> Any:
    axis = int(node.attr("axis", 0))
    count = len(node.outputs)

    def run(ctx: Context, inputs: list[Any]) -> list[Value]:
        x = inputs[0]
        ax = x.axis(axis)
        n = np.shape(data(x.data))[ax]
        sizes = _axes(node, inputs, 1 if node.version >= 13 else 99, "split")
        if sizes is None:
            parts = node.attr("num_outputs", count)
            step = -(-n // parts)
            sizes = [min(step, n - i * step) for i in range(parts)]
        bounds = np.cumsum([0, *sizes])
        out = []
        for start, stop in itertools.pairwise(bounds):
            index = (slice(None),) * ax + (slice(int(start), int(stop)),)
            out.append(Value(ops_math.getitem(x.data, index), x.perm))
        return out

    return run


@converter("Slice", static=(1, 2, 3, 4))
def _slice(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        if node.version < 10:
            starts, ends = node.attr("starts"), node.attr("ends")
            axes, steps = node.attr("axes"), None
        else:
            starts, ends = inputs[1].numpy(), inputs[2].numpy()
            axes = None if len(inputs) < 4 or inputs[3] is None else inputs[3].numpy()
            steps = None if len(inputs) < 5 or inputs[4] is None else inputs[4].numpy()
        axes = list(range(len(starts))) if axes is None else _normal_axes(
            [int(a) for a in axes], x.ndim)
        steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
        index = [slice(None)] * x.ndim
        for a, start, end, step in zip(axes, starts, ends, steps):
            index[x.axis(a)] = slice(_bounded(start), _bounded(end), step)
        return Value(ops_math.getitem(x.data, tuple(index)), x.perm)

    return run


def _bounded(v: Any) -> int:
    return int(max(min(int(v), 2**62), -(2**62)))


@converter("Gather", static=(1,))
def _gather(node: Node) -> Any:
    axis = int(node.attr("axis", 0))

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, indices = inputs
        idx = indices.numpy().astype(np.int64)
        ax = axis + x.ndim if axis < 0 else axis
        n = x.shape[ax]
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise ValueError(f"Gather node {node.name!r}: indices out of range for an axis "
                             f"of {n}")
        idx = np.where(idx < 0, idx + n, idx)
        p = x.axis(ax)
        if not isinstance(x.data, Tensor):
            out = np.take(np.asarray(x.data), idx, axis=p)
        else:
            out = ops_math.getitem(x.data, (slice(None),) * p + (idx,))
        k = idx.ndim
        current = x.perm or tuple(range(x.ndim))
        moved = [a if a < ax else a - 1 + k for a in current]
        perm = moved[:p] + [ax + j for j in range(k)] + moved[p + 1:]
        return Value(out, perm)

    return run


@converter("Shape")
def _shape(node: Node) -> Any:
    start, end = node.attr("start", 0), node.attr("end")

    def run(ctx: Context, inputs: list[Any]) -> Value:
        shape = inputs[0].shape
        return Value(np.array(shape[start:end], dtype=np.int64))

    return run


@converter("Size")
def _size(node: Node) -> Any:
    return lambda ctx, inputs: Value(np.array(math.prod(inputs[0].shape), dtype=np.int64))


@converter("Constant")
def _constant(node: Node) -> Any:
    attributes = node.attributes
    if "value" in attributes:
        value = np.asarray(attributes["value"])
    elif "value_float" in attributes:
        value = np.array(attributes["value_float"], dtype=np.float32)
    elif "value_floats" in attributes:
        value = np.array(attributes["value_floats"], dtype=np.float32)
    elif "value_int" in attributes:
        value = np.array(attributes["value_int"], dtype=np.int64)
    elif "value_ints" in attributes:
        value = np.array(attributes["value_ints"], dtype=np.int64)
    else:
        raise node.refuse(f"attribute {sorted(attributes)} is not supported (value, "
                          "value_float(s), value_int(s) are)")
    return lambda ctx, inputs: Value(value)


@converter("ConstantOfShape", static=(0,))
def _constant_of_shape(node: Node) -> Any:
    fill = node.attr("value")
    fill = np.zeros(1, np.float32) if fill is None else np.asarray(fill).reshape(-1)

    def run(ctx: Context, inputs: list[Any]) -> Value:
        shape = checked_size(node, inputs[0].numpy().reshape(-1))
        return Value(np.full(shape, fill[0], dtype=fill.dtype))

    return run


@converter("Expand", static=(1,))
def _expand(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, shape = inputs
        target = np.broadcast_shapes(x.shape, tuple(int(d) for d in shape.numpy()))
        checked_size(node, target)
        if x.perm is not None and len(target) == x.ndim:
            physical = tuple(target[a] for a in x.perm)
            return Value(elementwise.broadcast_to(x.data, physical), x.perm)
        return Value(elementwise.broadcast_to(x.logical(), target))

    return run


@converter("Range")
def _range(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        start, limit, delta = (np.asarray(v.numpy()).reshape(()) for v in inputs)
        count = max(int(np.ceil((limit - start) / delta)), 0) if delta != 0 else 0
        checked_size(node, (count,))
        return Value(np.arange(start, limit, delta, dtype=np.result_type(start))[:count])

    return run


@converter("Tile", static=(1,))
def _tile(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, repeats = inputs
        reps = [int(r) for r in repeats.numpy().reshape(-1)]
        checked_size(node, [n * r for n, r in zip(x.shape, reps)])
        physical = reps if x.perm is None else [reps[a] for a in x.perm]
        return Value(elementwise.tile(x.data, tuple(physical)), x.perm)

    return run


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


@converter("Pad", static=(1, 2, 3))
def _pad(node: Node) -> Any:
    mode = node.choice("mode", "constant", tuple(_PAD_MODES))

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        if node.version < 11:
            pads, value, axes = list(node.attr("pads")), float(node.attr("value", 0.0)), None
        else:
            pads = [int(p) for p in inputs[1].numpy().reshape(-1)]
            value = 0.0 if len(inputs) < 3 or inputs[2] is None else \
                inputs[2].numpy().reshape(-1)[0]
            axes = None if len(inputs) < 4 or inputs[3] is None else \
                _normal_axes([int(a) for a in inputs[3].numpy()], x.ndim)
        axes = list(range(x.ndim)) if axes is None else axes
        half = len(pads) // 2
        widths = [(0, 0)] * x.ndim
        for i, a in enumerate(axes):
            widths[x.axis(a)] = (pads[i], pads[half + i])
        if min(min(w) for w in widths) < 0:
            return Value(_cropped(x, widths, mode, value), x.perm)
        checked_size(node, [n + b + e for n, (b, e) in
                             zip(np.shape(data(x.data)), widths)])
        return Value(elementwise.pad(x.data, widths, mode=_PAD_MODES[mode], value=value),
                     x.perm)

    return run


def _cropped(x: Value, widths: list[tuple[int, int]], mode: str, value: Any) -> Any:
    """Negative pads crop: pad by the positive parts, then cut the negative ones."""
    positive = [(max(b, 0), max(e, 0)) for b, e in widths]
    padded = elementwise.pad(x.data, positive, mode=_PAD_MODES[mode], value=value)
    index = tuple(slice(-min(b, 0), n - max(0, -e) if e < 0 else None)
                  for (b, e), n in zip(widths, np.shape(data(padded))))
    return ops_math.getitem(padded, index)


@converter("DepthToSpace")
def _depth_to_space(node: Node) -> Any:
    block = int(node.attr("blocksize"))
    mode = node.choice("mode", "DCR", ("DCR", "CRD"))

    def run(ctx: Context, inputs: list[Any]) -> Value:
        n, c, h, w = inputs[0].shape
        x = inputs[0].logical()
        if mode == "DCR":
            y = transpose(reshape(x, (n, block, block, c // block**2, h, w)), (0, 3, 4, 1, 5, 2))
        else:
            y = transpose(reshape(x, (n, c // block**2, block, block, h, w)), (0, 1, 4, 2, 5, 3))
        return Value(reshape(y, (n, c // block**2, h * block, w * block)))

    return run


@converter("SpaceToDepth")
def _space_to_depth(node: Node) -> Any:
    block = int(node.attr("blocksize"))
    order = (0, 3, 5, 1, 2, 4) if node.choice("mode", "DCR", ("DCR", "CRD")) == "DCR" \
        else (0, 1, 3, 5, 2, 4)

    def run(ctx: Context, inputs: list[Any]) -> Value:
        n, c, h, w = inputs[0].shape
        x = reshape(inputs[0].logical(), (n, c, h // block, block, w // block, block))
        y = transpose(x, order)
        return Value(reshape(y, (n, c * block * block, h // block, w // block)))

    return run
