"""BatchNormalization (running statistics as buffers; batch statistics in train mode),
LRN (across channels), LayerNormalization and InstanceNormalization."""

from __future__ import annotations

from typing import Any

from convolve.onnx.layout import Value, aligned, channels_last, reshape
from convolve.onnx.registry import Context, Node, converter, outputs_used
from convolve.ops import elementwise
from convolve.ops import math as ops_math
from convolve.ops.norm import batch_norm
from convolve.tensor import data


@converter("BatchNormalization", buffers=(3, 4))
def batch_normalization(node: Node) -> Any:
    if node.attr("spatial", 1) != 1:
        raise node.refuse("spatial=0 is not supported")
    if node.attr("training_mode", 0) or outputs_used(node) > 1:
        raise node.refuse("training-mode outputs (running statistics) are not supported; "
                          "call model.train() to train with batch statistics instead")
    eps = float(node.attr("epsilon", 1e-5))
    momentum = 1 - float(node.attr("momentum", 0.9))

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, scale, bias, mean, var = inputs
        perm = channels_last(x.ndim)
        y = batch_norm(x.to(perm), scale.logical(), bias.logical(), mean.data, var.data,
                       training=ctx.training, momentum=momentum, eps=eps)
        return Value(y, perm)

    return run


@converter("LRN")
def lrn(node: Node) -> Any:
    size = int(node.attr("size"))
    alpha = float(node.attr("alpha", 1e-4))
    beta = float(node.attr("beta", 0.75))
    bias = float(node.attr("bias", 1.0))
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        perm = channels_last(x.ndim)
        xc = x.to(perm)
        c = data(xc).shape[-1]
        squares = ops_math.multiply(xc, xc)
        widths = [(0, 0)] * (x.ndim - 1) + [(before, after)]
        padded = elementwise.pad(squares, widths)
        total = None
        for i in range(size):
            part = ops_math.getitem(padded, (..., slice(i, i + c)))
            total = part if total is None else ops_math.add(total, part)
        scale = ops_math.add(ops_math.multiply(total, alpha / size), bias)
        return Value(ops_math.divide(xc, ops_math.power(scale, beta)), perm)

    return run


def _normalized(x: Any, axes: tuple[int, ...], eps: float) -> tuple[Any, Any, Any]:
    """``(x - mean) / sqrt(var + eps)`` over physical ``axes``, from recorded ops; with
    the mean and ``1 / sqrt(var + eps)`` (axes kept)."""
    mean = ops_math.mean(x, axis=axes, keepdims=True)
    centred = ops_math.subtract(x, mean)
    var = ops_math.mean(ops_math.multiply(centred, centred), axis=axes, keepdims=True)
    inv_std = elementwise.reciprocal(elementwise.sqrt(ops_math.add(var, eps)))
    return ops_math.multiply(centred, inv_std), mean, inv_std


def _affine(y: Value, scale: Value | None, bias: Value | None) -> Value:
    for operand, op in ((scale, ops_math.multiply), (bias, ops_math.add)):
        if operand is not None:
            (a, b), perm = aligned([y, operand])
            y = Value(op(a, b), perm)
    return y


@converter("LayerNormalization")
def layer_normalization(node: Node) -> Any:
    axis = int(node.attr("axis", -1))
    eps = float(node.attr("epsilon", 1e-5))

    def run(ctx: Context, inputs: list[Any]) -> list[Value]:
        x, scale, bias = ([*inputs, None])[:3]
        first = axis + x.ndim if axis < 0 else axis
        axes = tuple(sorted(x.axis(a) for a in range(first, x.ndim)))
        y, mean, inv_std = _normalized(x.data, axes, eps)
        return [_affine(Value(y, x.perm), scale, bias), Value(mean, x.perm),
                Value(inv_std, x.perm)]

    return run


@converter("InstanceNormalization")
def instance_normalization(node: Node) -> Any:
    eps = float(node.attr("epsilon", 1e-5))

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, scale, bias = inputs
        axes = tuple(sorted(x.axis(a) for a in range(2, x.ndim)))
        per_channel = (-1, *([1] * (x.ndim - 2)))
        scale, bias = (Value(reshape(v.logical(), per_channel)) for v in (scale, bias))
        return _affine(Value(_normalized(x.data, axes, eps)[0], x.perm), scale, bias)

    return run
