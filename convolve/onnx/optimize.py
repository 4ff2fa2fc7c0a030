"""Load-time rewrites of the step list for speed, exact in every mode.

- Conv followed by BatchNormalization (the conv's only reader): in eval mode the
  normalisation is folded into the conv's weights and bias on each call,
  ``w' = w * s``, ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``, a
  pass over the weights instead of one over the feature map; in train mode both run as
  written (batch statistics). The parameters stay the file's: ``parameters()``,
  ``state_dict()`` and fine-tuning see the unfolded network, and gradients flow through the
  fold (it is made of recorded ops).
- A Relu, or a Clip with constant bounds (ReLU6), reading only such a conv's output runs
  in place on it for NumPy inputs (no second feature map); for Tensor inputs it is the
  recorded op.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np

from convolve.onnx.layout import Value
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
        relu_index = sole_reader(last.outputs[0], ("Relu", "Clip"))
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
                     None if relu is None else (relu.run, in_place), eps)
        kinds = "+".join(s.node.op_type for s in (step, bn, relu) if s is not None)
        node = replace(step.node, op_type=kinds)
        result.append(replace(step, node=node, run=run, inputs=inputs, outputs=outputs))
    return result


def _in_place(node: Any) -> Any:
    """For a Relu, or a Clip whose bounds are known at load, the function applying it in
    place to an array; else None."""
    if node.op_type == "Relu":
        return lambda a: np.maximum(a, 0, out=a)
    if node.version < 11:
        low, high = node.attr("min"), node.attr("max")
    else:
        given = [i for i in (1, 2) if node.has(i)]
        if any(node.const(i) is None for i in given):
            return None
        low = node.const(1).item() if node.has(1) else None
        high = node.const(2).item() if node.has(2) else None
    return lambda a: np.clip(a, low, high, out=a)


def _fused(conv: Any, bn: Any, activation: Any, eps: float) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Any:
        x, w, b = inputs[:3]
        if bn is None:
            y = conv(ctx, [x, w, b])
        elif ctx.training:
            y = bn(ctx, [conv(ctx, [x, w, b]), *inputs[3:7]])
        else:
            y = conv(ctx, [x, *_folded(w, b, *inputs[3:7], eps)])
        if activation is None:
            return y
        recorded, in_place = activation
        if isinstance(y.data, Tensor):
            return recorded(ctx, [y, *inputs[7:]])
        in_place(y.data)  # the conv's fresh output: nothing else holds it
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


__all__ = ["fuse"]
