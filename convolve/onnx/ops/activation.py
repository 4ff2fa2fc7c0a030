"""Activations, Softmax and LogSoftmax (per op set: a flattened axis range before 13)."""

from __future__ import annotations

import math
from typing import Any

from convolve.onnx.layout import Value, aligned, reshape
from convolve.onnx.ops._unary import unary
from convolve.onnx.registry import Context, Node, converter
from convolve.ops import activation, elementwise
from convolve.ops import math as ops_math
from convolve.tensor import data


@unary("Relu")
def _relu(node: Node) -> Any:
    return activation.relu


@unary("LeakyRelu")
def _leaky_relu(node: Node) -> Any:
    slope = float(node.attr("alpha", 0.01))
    return lambda x: activation.leaky_relu(x, slope)


@unary("Sigmoid")
def _sigmoid(node: Node) -> Any:
    return activation.sigmoid


@unary("Tanh")
def _tanh(node: Node) -> Any:
    return activation.tanh


@unary("Elu")
def _elu(node: Node) -> Any:
    alpha = float(node.attr("alpha", 1.0))
    return lambda x: elementwise.elu(x, alpha)


@unary("Selu")
def _selu(node: Node) -> Any:
    alpha = float(node.attr("alpha", 1.67326319217681884765625))
    gamma = float(node.attr("gamma", 1.05070102214813232421875))
    return lambda x: elementwise.selu(x, alpha, gamma)


@unary("HardSigmoid")
def _hard_sigmoid(node: Node) -> Any:
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    return lambda x: elementwise.hard_sigmoid(x, alpha, beta)


@unary("HardSwish")
def _hard_swish(node: Node) -> Any:
    return lambda x: ops_math.multiply(x, elementwise.hard_sigmoid(x, 1 / 6, 0.5))


@unary("Softplus")
def _softplus(node: Node) -> Any:
    return elementwise.softplus


@unary("Softsign")
def _softsign(node: Node) -> Any:
    return lambda x: ops_math.divide(x, ops_math.add(elementwise.absolute(x), 1.0))


@unary("Mish")
def _mish(node: Node) -> Any:
    return lambda x: ops_math.multiply(x, activation.tanh(elementwise.softplus(x)))


@unary("Erf")
def _erf(node: Node) -> Any:
    return elementwise.erf


@unary("Gelu")
def _gelu(node: Node) -> Any:
    approximate = node.choice("approximate", "none", ("none", "tanh"))
    return lambda x: activation.gelu(x, approximate=approximate)


@unary("Clip", until=11)
def _clip_attributes(node: Node) -> Any:
    low, high = node.attr("min"), node.attr("max")
    return lambda x: elementwise.clip(x, low, high)


@converter("Clip", since=11, static=(1, 2))
def _clip(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, low, high = ([*inputs, None, None])[:3]
        return Value(elementwise.clip(x.data, None if low is None else low.numpy(),
                                      None if high is None else high.numpy()), x.perm)

    return run


@converter("PRelu")
def _prelu(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        (x, slope), perm = aligned(inputs)
        negative = ops_math.multiply(x, slope)
        return Value(elementwise.where(data(x) > 0, x, negative), perm)

    return run


def _softmax(log: bool, node: Node) -> Any:
    axis = int(node.attr("axis", -1 if node.version >= 13 else 1))
    f = activation.log_softmax if log else activation.softmax

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        ax = axis + x.ndim if axis < 0 else axis
        if node.version >= 13 or ax == x.ndim - 1:
            return Value(f(x.data, axis=x.axis(ax)), x.perm)
        shape = x.shape  # before 13: softmax over axes ax.. flattened together
        flat = reshape(x.logical(), (math.prod(shape[:ax]), math.prod(shape[ax:])))
        return Value(reshape(f(flat, axis=-1), shape))

    return run


@converter("Softmax")
def _softmax_op(node: Node) -> Any:
    return _softmax(False, node)


@converter("LogSoftmax")
def _log_softmax_op(node: Node) -> Any:
    return _softmax(True, node)
