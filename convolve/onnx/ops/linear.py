"""Gemm and MatMul, on convolve's linear (``x @ w + b`` on the last axis) and matmul."""

from __future__ import annotations

from typing import Any

from convolve.onnx.layout import Value, transpose
from convolve.onnx.registry import Context, Node, converter
from convolve.ops import math as ops_math
from convolve.ops.linear import linear
from convolve.tensor import data


def _gemm_layouts(node: Node) -> dict[int, tuple[int, ...]]:
    return {1: (1, 0)} if node.attr("transB", 0) else {}


@converter("Gemm", layouts=_gemm_layouts)
def gemm(node: Node) -> Any:
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    trans_a, trans_b = bool(node.attr("transA", 0)), bool(node.attr("transB", 0))

    def run(ctx: Context, inputs: list[Any]) -> Value:
        a, b, c = ([*inputs, None])[:3]
        x = a.logical()
        if trans_a:
            x = transpose(x, (1, 0))
        w = b.to((1, 0) if trans_b else None)  # (K, N)
        bias = None
        if c is not None and beta != 0:
            bias = c.logical()
            if beta != 1:
                bias = ops_math.multiply(bias, beta)
        if alpha == 1 and (bias is None or (data(bias).ndim == 1 and
                           data(bias).shape[0] == data(w).shape[1])):
            return Value(linear(x, w, bias))
        y = ops_math.matmul(x, w)
        if alpha != 1:
            y = ops_math.multiply(y, alpha)
        return Value(y if bias is None else ops_math.add(y, bias))

    return run


@converter("MatMul")
def matmul(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        a, b = inputs
        x, w = a.logical(), b.logical()
        if data(w).ndim == 2 and data(x).ndim >= 2 and data(x).dtype == data(w).dtype and \
                data(x).dtype.kind == "f":
            return Value(linear(x, w))
        return Value(ops_math.matmul(x, w))

    return run
