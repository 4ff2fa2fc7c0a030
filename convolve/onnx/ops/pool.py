"""MaxPool, AveragePool (pads wider than half the window included), GlobalAveragePool and
GlobalMaxPool, on convolve's pooling ops (1-D as 2-D with height 1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.onnx.layout import Value
from convolve.onnx.ops._spatial import (
    from_image,
    image_size,
    padding,
    pair_list,
    spatial_rank,
    to_image,
)
from convolve.onnx.registry import Context, Node, converter, outputs_used
from convolve.ops import elementwise
from convolve.ops import math as ops_math
from convolve.ops.pool import avg_pool2d, max_pool2d
from convolve.tensor import data

Pads = tuple[tuple[int, int], tuple[int, int]]


def _settings(node: Node) -> tuple[int, tuple[int, int], tuple[int, int], tuple[int, int], Any]:
    if node.attr("kernel_shape") is None:
        raise node.refuse("kernel_shape is required")
    rank = spatial_rank(node)
    kernel = pair_list(node, "kernel_shape", rank, 1)
    stride = pair_list(node, "strides", rank, 1)
    dilation = pair_list(node, "dilations", rank, 1)
    return rank, kernel, stride, dilation, padding(node, rank, lambda: kernel, stride, dilation)


def _wide(pads: Pads, kernel: tuple[int, int]) -> bool:
    """Whether some pad exceeds half the window: convolve's pooling ops refuse that, so
    the converter pads explicitly."""
    return any(max(p) > k // 2 for p, k in zip(pads, kernel))


def _pad_image(x: Any, pads: Pads, fill: float) -> Any:
    (top, bottom), (left, right) = pads
    return elementwise.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)],
                           value=fill)


def _ceil_extra(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                dilation: tuple[int, int], pads: Pads) -> Pads:
    """Extra bottom/right padding that makes floor-mode pooling give ceil mode's output
    (the last window must start inside the input or its top/left padding)."""
    extra = []
    for n, k, s, d, (p0, p1) in zip(size, kernel, stride, dilation, pads):
        span = n + p0 + p1 - (k - 1) * d - 1
        out = -(-span // s) + 1
        if (out - 1) * s >= n + p0:
            out -= 1
        extra.append(max(0, (out - 1) * s + (k - 1) * d + 1 - (n + p0 + p1)))
    return (0, extra[0]), (0, extra[1])


@converter("MaxPool")
def max_pool(node: Node) -> Any:
    rank, kernel, stride, dilation, pads_for = _settings(node)
    ceil_mode = bool(node.attr("ceil_mode", 0))
    if outputs_used(node) > 1:
        raise node.refuse("the Indices output is not supported")
    if node.attr("storage_order", 0) != 0:
        raise node.refuse("storage_order=1 is not supported")

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        pads = pads_for(image_size(x))
        image = to_image(x)
        if _wide(pads, kernel):
            if ceil_mode:
                more = _ceil_extra(image_size(x), kernel, stride, dilation, pads)
                pads = tuple((p0, p1 + e) for (p0, p1), (_, e) in zip(pads, more))
            image = _pad_image(image, pads, -np.inf)
            y = max_pool2d(image, kernel, stride=stride, dilation=dilation)
        else:
            y = max_pool2d(image, kernel, stride=stride, padding=pads, dilation=dilation,
                           ceil_mode=ceil_mode)
        return from_image(y, rank)

    return run


@converter("AveragePool")
def average_pool(node: Node) -> Any:
    rank, kernel, stride, dilation, pads_for = _settings(node)
    if dilation != (1, 1):
        raise node.refuse(f"dilations={list(node.attr('dilations'))} are not supported "
                          "(only 1)")
    ceil_mode = bool(node.attr("ceil_mode", 0))
    include = bool(node.attr("count_include_pad", 0))

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        size = image_size(x)
        pads = pads_for(size)
        image = to_image(x)
        if not _wide(pads, kernel):
            y = avg_pool2d(image, kernel, stride=stride, padding=pads, ceil_mode=ceil_mode,
                           count_include_pad=include)
            return from_image(y, rank)
        if ceil_mode:
            more = _ceil_extra(size, kernel, stride, (1, 1), pads)
        else:
            more = ((0, 0), (0, 0))
        padded = _pad_image(image, pads, 0.0)
        if ceil_mode:
            padded = _pad_image(padded, more, 0.0)
        sums = avg_pool2d(padded, kernel, stride=stride)  # the window's mean over k*k
        divisor = _divisors(size, kernel, stride, pads, data(sums).shape[1:3], include)
        scale = (kernel[0] * kernel[1] / divisor).astype(data(sums).dtype)
        return from_image(ops_math.multiply(sums, scale), rank)

    return run


def _divisors(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
              pads: Pads, out_hw: tuple[int, int], include: bool) -> np.ndarray:
    """``(H_out, W_out, 1)``: each window's count of input pixels (and of padding with
    ``include``), never of the overhang past the padded input."""
    counts = []
    for n, k, s, (p0, p1), o in zip(size, kernel, stride, pads, out_hw):
        start = np.arange(o) * s - p0
        if include:
            counts.append(np.minimum(start + k, n + p1) - start)
        else:
            counts.append(np.maximum(np.minimum(start + k, n) - np.maximum(start, 0), 1))
    return (counts[0][:, None] * counts[1][None, :]).astype(np.float64)[:, :, None]


def _spatial_axes(x: Value) -> tuple[int, ...]:
    return tuple(x.axis(a) for a in range(2, x.ndim))


@converter("GlobalAveragePool")
def global_average_pool(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        return Value(ops_math.mean(x.data, axis=_spatial_axes(x), keepdims=True), x.perm)

    return run


@converter("GlobalMaxPool")
def global_max_pool(node: Node) -> Any:
    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        return Value(elementwise.reduce_extreme(x.data, _spatial_axes(x), True, largest=True),
                     x.perm)

    return run

