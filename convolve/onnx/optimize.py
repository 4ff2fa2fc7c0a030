"""Load-time rewrites of the step list for speed, exact in every mode.

- Conv followed by BatchNormalization (the conv's only reader): in eval mode the
  normalisation is folded into the conv's weights and bias on each call,
  ``w' = w * s``, ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``, a
  pass over the weights instead of one over the feature map; in train mode both run as
  written (batch statistics). The parameters stay the file's: ``parameters()``,
  ``state_dict()`` and fine-tuning see the unfolded network, and gradients flow through the
  fold (it is made of recorded ops).
- A Relu, a PRelu, or a Clip with constant bounds (ReLU6), reading only such a conv's
  output runs in place on it for NumPy inputs (no second feature map); for Tensor inputs
  it is the recorded op.
- A conv's output scaled and shifted by single-element constants, ``Mul(c, s) ->
  Add(., t)`` (PP-OCR's learnable affine blocks), is scaled and shifted in place in the
  conv's step for NumPy inputs of the constants' dtype; else the recorded ops.
- Hard-swish written out as ``Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(., 6)``
  (paddle2onnx's export) runs as one step: for NumPy inputs one new array and four
  passes in place on it, for Tensor inputs the four recorded ops as written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np

from convolve.onnx.layout import Value, aligned
from convolve.onnx.ops.conv import HWIO
from convolve.onnx.registry import Context
from convolve.ops import math as ops_math
from convolve.tensor import Tensor


def fuse(steps: list[Any], keep: set[str], ready: set[str]) -> list[Any]:
    """``steps`` with Conv -> BatchNormalization -> Relu chains merged into one step each
    (run where the conv was); values in ``keep`` (graph outputs) are never fused away, and
    a BatchNormalization is fused only when its statistics are in ``ready`` (parameters,
    buffers and constants, there before any step)."""
    readers = Counter(name for step in steps for name in step.inputs if name)
    by_input: dict[str, list[int]] = {}
    for i, step in enumerate(steps):
        for name in step.inputs:
            by_input.setdefault(name, []).append(i)

    def sole_reader(name: str, op_types: tuple[str, ...]) -> int | None:
        if name in keep or readers[name] != 1:
            return None
        (j,) = by_input[name]
        step = steps[j]
        return j if step.node.op_type in op_types and step.inputs[0] == name else None

    removed: set[int] = set()
    result = []
    for i, step in enumerate(steps):
        if i in removed:
            continue
        if step.node.op_type != "Conv" or len(step.outputs) != 1:
            result.append(step)
            continue
        bn_index = sole_reader(step.outputs[0], ("BatchNormalization",))
        bn = None if bn_index is None else steps[bn_index]
        if bn is not None and (len(bn.inputs) != 5 or len(step.inputs) > 3
                               or not set(bn.inputs[1:]) <= ready):
            bn = bn_index = None
        last = step if bn is None else bn
        relu_index = sole_reader(last.outputs[0], ("Relu", "Clip", "PRelu"))
        relu = None if relu_index is None else steps[relu_index]
        in_place = None if relu is None else _in_place(relu.node)
        if in_place is None:
            relu = relu_index = None
        if bn is None and relu is None:
            result.append(step)
            continue
        removed.update(j for j in (bn_index, relu_index) if j is not None)
        conv_inputs = ([*step.inputs, ""])[:3]
        inputs = (conv_inputs + (["", "", "", ""] if bn is None else bn.inputs[1:5])
                  + ([] if relu is None else relu.inputs[1:]))
        outputs = (relu or bn).outputs
        eps = 1e-5 if bn is None else float(bn.node.attr("epsilon", 1e-5))
        run = _fused(step.run, None if bn is None else bn.run,
                     None if relu is None else (relu.run, in_place), eps,
                     None if bn is None else _constant_fold(step.node, bn.node, eps))
        kinds = "+".join(s.node.op_type for s in (step, bn, relu) if s is not None)
        node = replace(step.node, op_type=kinds)
        result.append(replace(step, node=node, run=run, inputs=inputs, outputs=outputs))
    return result


def _in_place(node: Any) -> Any:
    """For a Relu, a PRelu, or a Clip whose bounds are known at load, the function
    applying it in place to an array Value, given the node's other inputs, and saying
    whether it could (else nothing is changed); else None."""
    if node.op_type == "Relu":
        return lambda y, extra: np.maximum(y.data, 0, out=y.data) is not None
    if node.op_type == "PRelu":
        return _prelu_in_place
    bounds = _clip_bounds(node)
    if bounds is None:
        return None
    low, high = bounds
    return lambda y, extra: np.clip(y.data, low, high, out=y.data) is not None


def _prelu_in_place(y: Value, extra: list[Any]) -> bool:
    """``y = x if x > 0 else slope * x``, the negative entries scaled in place, for a
    slope array of ``y``'s dtype that does not broadcast ``y`` larger."""
    slope = extra[0]
    if type(slope.data) is not np.ndarray or slope.dtype != y.dtype or \
            np.broadcast_shapes(y.shape, slope.shape) != y.shape:
        return False
    (a, factor), _ = aligned([y, slope])
    if a is not y.data:  # y would be moved to the slope's layout
        return False
    np.multiply(a, factor, out=a, where=a < 0)
    return True


def _clip_bounds(node: Any) -> tuple[Any, Any] | None:
    """A Clip's ``(low, high)`` (None: no bound) where known at load, else None."""
    if node.version < 11:
        return node.attr("min"), node.attr("max")
    given = [i for i in (1, 2) if node.has(i)]
    if any(node.const(i) is None or node.const(i).size != 1 for i in given):
        return None
    low = node.const(1).item() if node.has(1) else None
    high = node.const(2).item() if node.has(2) else None
    return low, high


def _scalar_operand(step: Any, value: float) -> str | None:
    """For a two-input step one of whose inputs is a constant of one element equal to
    ``value``: the name of the other input, else None."""
    if len(step.inputs) != 2 or len(step.outputs) != 1:
        return None
    for i in (0, 1):
        const = step.node.const(i)
        if const is not None and const.size == 1 and const.dtype.kind == "f" \
                and float(const.item()) == value and step.node.const(1 - i) is None:
            return step.inputs[1 - i]
    return None


def fuse_affine(steps: list[Any], keep: set[str]) -> list[Any]:
    """``steps`` with each conv step (fused or not) whose output is read only by a
    ``Mul`` by a single-element constant, itself read only by an ``Add`` of one (or
    not), merged into one step."""
    readers = Counter(name for step in steps for name in step.inputs if name)
    by_input: dict[str, int] = {}
    for i, step in enumerate(steps):
        for name in step.inputs:
            by_input[name] = i

    def sole(name: str, op_type: str) -> tuple[int, str] | None:
        """The index of the only reader of ``name``, an ``op_type`` by a single-element
        constant, and the constant's input name; else None."""
        if name in keep or readers[name] != 1:
            return None
        j = by_input[name]
        step = steps[j]
        if step.node.op_type != op_type or len(step.inputs) != 2 or len(step.outputs) != 1:
            return None
        other = 1 - step.inputs.index(name)
        const = step.node.const(other)
        if const is None or const.size != 1 or const.dtype.kind != "f":
            return None
        return j, step.inputs[other]

    removed: set[int] = set()
    result = []
    for i, step in enumerate(steps):
        if i in removed:
            continue
        found = None
        if step.node.op_type.startswith("Conv") and not step.node.op_type.startswith(
                "ConvTranspose") and len(step.outputs) == 1:
            found = sole(step.outputs[0], "Mul")
        if found is None:
            result.append(step)
            continue
        m, scale = found
        shift = sole(steps[m].outputs[0], "Add")
        parts = [steps[m]] + ([] if shift is None else [steps[shift[0]]])
        removed.update(j for j in (m, None if shift is None else shift[0]) if j is not None)
        constants = [(steps[m].node.const(steps[m].inputs.index(scale)))] + (
            [] if shift is None else [steps[shift[0]].node.const(
                steps[shift[0]].inputs.index(shift[1]))])
        node = replace(step.node, op_type="+".join(
            [step.node.op_type, *(p.node.op_type for p in parts)]))
        result.append(replace(step, node=node, outputs=parts[-1].outputs,
                              run=_affine(step, parts, constants)))
    return result


def _affine(conv: Any, parts: list[Any], constants: list[np.ndarray]) -> Any:
    ufuncs = (np.multiply, np.add)

    def run(ctx: Context, inputs: list[Any]) -> Any:
        y = conv.run(ctx, inputs)
        if type(y.data) is np.ndarray and all(
                c.dtype == y.dtype and c.ndim <= y.ndim for c in constants):
            for ufunc, c in zip(ufuncs, constants):
                ufunc(y.data, c.reshape(()), out=y.data)  # the conv's fresh output
            return y
        values = {conv.outputs[0]: y}
        for step in parts:
            operands = [values[name] if step.node.const(i) is None else
                        Value(step.node.const(i)) for i, name in enumerate(step.inputs)]
            y = values[step.outputs[0]] = step.run(ctx, operands)
        return y

    return run


def fuse_hard_swish(steps: list[Any], keep: set[str]) -> list[Any]:
    """``steps`` with each ``Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(., 6)`` chain
    (the intermediate values read by the chain alone, none in ``keep``) merged into one
    step, run where the Div was."""
    readers = Counter(name for step in steps for name in step.inputs if name)
    producer = {name: i for i, step in enumerate(steps) for name in step.outputs}

    def inner(name: str) -> bool:
        return name not in keep and readers[name] == 1

    chains: dict[int, tuple[int, int, int]] = {}  # Div index -> Add, Clip, Mul indices
    for d, div in enumerate(steps):
        if div.node.op_type != "Div" or div.node.const(1) is None:
            continue
        product = _scalar_operand(div, 6.0)
        m = producer.get(product) if product is not None and div.inputs[0] == product \
            else None
        if m is None or not inner(product) or steps[m].node.op_type != "Mul" \
                or len(steps[m].inputs) != 2:
            continue
        mul = steps[m]
        for clipped, x in (mul.inputs, mul.inputs[::-1]):
            c = producer.get(clipped)
            if c is None or not inner(clipped) or steps[c].node.op_type != "Clip" \
                    or _clip_bounds(steps[c].node) != (0.0, 6.0):
                continue
            shifted = steps[c].inputs[0]
            a = producer.get(shifted)
            if a is None or not inner(shifted) or steps[a].node.op_type != "Add" \
                    or _scalar_operand(steps[a], 3.0) != x:
                continue
            chains[d] = (a, c, m)
            break
    if not chains:
        return steps
    removed = {i for chain in chains.values() for i in chain}
    result = []
    for i, step in enumerate(steps):
        if i in removed:
            continue
        if i in chains:
            parts = [steps[j] for j in chains[i]] + [step]
            x = _scalar_operand(parts[0], 3.0)
            node = replace(step.node, op_type="HardSwish(Add+Clip+Mul+Div)")
            step = replace(step, node=node, run=_hard_swish(parts, x), inputs=[x])
        result.append(step)
    return result


def _hard_swish(parts: list[Any], x_name: str) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Any:
        (x,) = inputs
        if isinstance(x.data, Tensor):  # the recorded ops, as written
            values = {x_name: x}
            for step in parts:
                operands = [values[name] if step.node.const(i) is None else
                            Value(step.node.const(i)) for i, name in enumerate(step.inputs)]
                values[step.outputs[0]] = step.run(ctx, operands)
            return values[parts[-1].outputs[0]]
        a = x.data
        y = np.add(a, np.asarray(3, a.dtype))
        np.clip(y, np.asarray(0, a.dtype), np.asarray(6, a.dtype), out=y)
        np.multiply(y, a, out=y)
        np.divide(y, np.asarray(6, a.dtype), out=y)
        return Value(y, x.perm)

    return run


def _constant_fold(conv: Any, bn: Any, eps: float) -> tuple[Value, Value] | None:
    """The folded weight and bias where the conv's weight and bias and the
    normalisation's four inputs are all constants (Paddle's exports), computed once at
    load; else None (parameters can change: they are folded on each call)."""
    arrays = [conv.const(1), *([conv.const(2)] if conv.has(2) else []),
              *(bn.const(i) for i in range(1, 5))]
    if any(a is None or a.dtype.kind != "f" for a in arrays):
        return None
    w, *rest = arrays
    b = rest.pop(0) if conv.has(2) else None
    return _folded(Value(w), None if b is None else Value(b), *map(Value, rest), eps)


def _fused(conv: Any, bn: Any, activation: Any, eps: float,
           constant: tuple[Value, Value] | None = None) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Any:
        x, w, b = inputs[:3]
        if bn is None:
            y = conv(ctx, [x, w, b])
        elif ctx.training:
            y = bn(ctx, [conv(ctx, [x, w, b]), *inputs[3:7]])
        elif constant is not None:
            y = conv(ctx, [x, *constant])
        else:
            y = conv(ctx, [x, *_folded(w, b, *inputs[3:7], eps)])
        if activation is None:
            return y
        recorded, in_place = activation
        # in place on the conv's fresh output (nothing else holds it) where it can be
        if isinstance(y.data, Tensor) or not in_place(y, inputs[7:]):
            return recorded(ctx, [y, *inputs[7:]])
        return y

    return run


def _folded(w: Value, b: Value | None, gamma: Value, beta: Value, mean: Value, var: Value,
            eps: float) -> tuple[Value, Value]:
    """The conv weight (held ``(..., C_out)``) and bias with the normalisation folded in."""
    perm = HWIO[w.ndim]
    weight = w.to(perm)
    inv_std = 1 / np.sqrt(np.asarray(var.data, dtype=np.float64) + eps)
    scale = ops_math.multiply(gamma.logical(), inv_std.astype(gamma.dtype))
    shift = ops_math.negative(mean.logical()) if b is None else \
        ops_math.subtract(b.logical(), mean.logical())
    bias = ops_math.add(ops_math.multiply(shift, scale), beta.logical())
    return Value(ops_math.multiply(weight, scale), perm), Value(bias)


__all__ = ["fuse", "fuse_affine", "fuse_hard_swish"]
