"""Elementwise arithmetic with broadcasting, comparisons, rounding, casts, Identity and
Dropout. Operands of different layouts are brought to one (``layout.aligned``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np

from convolve.onnx.errors import OnnxError
from convolve.onnx.graph import DTYPES
from convolve.onnx.layout import Value, aligned
from convolve.onnx.ops._unary import unary
from convolve.onnx.registry import Context, Node, converter, outputs_used
from convolve.ops import elementwise
from convolve.ops import math as ops_math
from convolve.ops.dropout import dropout
from convolve.tensor import Tensor, data


def _binary(f: Callable[[Any, Any], Any]) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        operands, perm = aligned(inputs[:2])
        return Value(f(*operands), perm)

    return run


def _plain(f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` on the arrays behind its operands: for results without a gradient."""
    return lambda *args: f(*(np.asarray(data(a)) for a in args))


def _int_safe(ufunc: Any, tensor_op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """The recorded op for Tensors and floats, NumPy's for integer arrays (shape math)."""
    def f(a: Any, b: Any) -> Any:
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            return tensor_op(a, b)
        a, b = np.asarray(a), np.asarray(b)
        out = ufunc(a, b)
        return out.astype(np.result_type(a.dtype, b.dtype)) if out.dtype != a.dtype and \
            a.dtype.kind in "iu" and b.dtype.kind in "iu" else out
    return f


def _divide(a: Any, b: Any) -> Any:
    if not isinstance(a, Tensor) and not isinstance(b, Tensor) and \
            np.asarray(a).dtype.kind in "iu" and np.asarray(b).dtype.kind in "iu":
        return np.trunc(np.asarray(a) / np.asarray(b)).astype(np.result_type(a, b))
    return ops_math.divide(a, b)


_BINARY = {
    "Add": _int_safe(np.add, ops_math.add),
    "Sub": _int_safe(np.subtract, ops_math.subtract),
    "Mul": _int_safe(np.multiply, ops_math.multiply),
    "Div": _divide,
    "Pow": elementwise.power,
    "Equal": _plain(np.equal),
    "Less": _plain(np.less),
    "LessOrEqual": _plain(np.less_equal),
    "Greater": _plain(np.greater),
    "GreaterOrEqual": _plain(np.greater_equal),
    "And": _plain(np.logical_and),
    "Or": _plain(np.logical_or),
    "Xor": _plain(np.logical_xor),
}

@converter("Mod")
def _mod(node: Node) -> Any:
    return _binary(_plain(np.fmod if node.attr("fmod", 0) else np.mod))


for _op, _f in _BINARY.items():
    converter(_op)(lambda node, f=_f: _binary(f))

_VARIADIC = {"Sum": ops_math.add, "Max": ops_math.maximum, "Min": elementwise.minimum}


def _variadic(f: Callable[[Any, Any], Any], mean: bool) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        operands, perm = aligned(inputs)
        total = reduce(f, operands)
        return Value(ops_math.multiply(total, 1 / len(operands)) if mean else total, perm)

    return run


for _op, _f in _VARIADIC.items():
    converter(_op)(lambda node, f=_f: _variadic(f, False))
converter("Mean")(lambda node: _variadic(ops_math.add, True))


@converter("Where")
def _where(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        (condition, a, b), perm = aligned(inputs)
        return Value(elementwise.where(condition, a, b), perm)

    return run


_UNARY = {
    "Sqrt": elementwise.sqrt, "Exp": ops_math.exp, "Log": ops_math.log,
    "Neg": ops_math.negative, "Abs": elementwise.absolute, "Floor": elementwise.floor,
    "Ceil": elementwise.ceil, "Reciprocal": elementwise.reciprocal, "Sign": elementwise.sign,
    "Round": elementwise.rint,
    "Not": _plain(np.logical_not), "Identity": lambda x: x,
}

for _op, _f in _UNARY.items():
    unary(_op)(lambda node, f=_f: f)


def _cast_to(x: Any, dtype: np.dtype) -> Any:
    if dtype not in DTYPES:
        raise OnnxError(f"cast to {dtype} is not supported (only NumPy's float, int and "
                        "bool types)")
    if isinstance(x, Tensor) and dtype.kind == "f":
        return ops_math.astype(x, dtype)
    return np.asarray(data(x)).astype(dtype)


@unary("Cast")
def _cast(node: Node) -> Any:
    import onnx

    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(node.attr("to")))
    except Exception:
        raise node.refuse(f"cast to element type {node.attr('to')} is not supported") from None
    if dtype not in DTYPES:
        raise node.refuse(f"cast to {dtype} is not supported")
    return lambda x: _cast_to(x, dtype)


@converter("CastLike")
def _cast_like(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, like = inputs
        return Value(_cast_to(x.data, like.dtype), x.perm)

    return run


@converter("Dropout", static=(1, 2), foldable=False)
def _dropout(node: Node) -> Any:
    ratio = float(node.attr("ratio", 0.5))
    mask = outputs_used(node) > 1

    def run(ctx: Context, inputs: list[Any]) -> list[Value]:
        x = inputs[0]
        rate = ratio if len(inputs) < 2 or inputs[1] is None else float(inputs[1].numpy())
        forced = len(inputs) > 2 and inputs[2] is not None and bool(inputs[2].numpy())
        y = dropout(x.data, rate, training=ctx.training or forced) \
            if np.asarray(data(x.data)).dtype.kind == "f" else x.data
        out = [Value(y, x.perm)]
        if mask:
            kept = np.asarray(data(y)) != 0 if (ctx.training or forced) else \
                np.ones(np.shape(data(x.data)), dtype=bool)
            out.append(Value(kept, x.perm))
        return out

    return run
