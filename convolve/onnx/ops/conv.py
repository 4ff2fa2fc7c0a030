"""Conv and ConvTranspose, on convolve's conv2d and conv_transpose2d (1-D as 2-D with
height 1). Weights are held as ``(KH, KW, C_in // groups, C_out)`` from load."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.onnx.layout import Value, reshape
from convolve.onnx.ops._spatial import (
    from_image,
    image_size,
    padding,
    pair_list,
    spatial_rank,
    to_image,
)
from convolve.onnx.registry import Context, Node, checked_size, converter
from convolve.ops import autotune
from convolve.ops.algorithms.method import PaddedInput
from convolve.ops.algorithms.select import select_algorithm
from convolve.ops.conv import conv2d, conv_transpose2d
from convolve.runtime import single_threaded_blas
from convolve.shapes import conv_geometry
from convolve.tensor import data

HWIO = {4: (2, 3, 1, 0), 3: (2, 1, 0)}  # (O, I, KH, KW) -> (KH, KW, I, O)


def _weight_layout(node: Node) -> dict[int, tuple[int, ...]]:
    rank = len(node.attr("kernel_shape", ())) or len(node.shapes.get(1, (0, 0, 0, 0))) - 2
    return {1: HWIO.get(rank + 2, ())}


def _weight(w: Value, rank: int) -> Any:
    """The weight as ``(KH, KW, I, O)`` data (1-D: ``(1, K, I, O)``)."""
    hwio = w.to(HWIO[rank + 2])
    if rank == 1:
        k, i, o = data(hwio).shape
        return reshape(hwio, (1, k, i, o))
    return hwio


def _per_rank(node: Node, make: Any) -> Any:
    """``make(rank)``'s settings for the number of spatial axes, checked at load when the
    weight's shape or ``kernel_shape`` tells it, else at the first run."""
    cache: dict[int, Any] = {}
    if node.attr("kernel_shape") is not None or 1 in node.shapes:
        rank = spatial_rank(node, 1)
        cache[rank] = make(rank)

    def get(w: Value) -> Any:
        rank = w.ndim - 2
        if rank not in cache:
            if rank not in (1, 2):
                raise node.refuse(f"{rank}-D operation (only 1-D and 2-D are supported)")
            cache[rank] = make(rank)
        return rank, cache[rank]

    return get


@converter("Conv", layouts=_weight_layout)
def conv(node: Node) -> Any:
    groups = int(node.attr("group", 1))
    kernel: list[tuple[int, int]] = []

    def make(rank: int) -> Any:
        stride = pair_list(node, "strides", rank, 1)
        dilation = pair_list(node, "dilations", rank, 1)
        return stride, dilation, padding(node, rank, lambda: kernel[0], stride, dilation)

    settings = _per_rank(node, make)
    plans: dict[tuple[Any, ...], Any] = {}
    known = _constant_weight(node)

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, w, b = ([*inputs, None])[:3]
        rank, (stride, dilation, pads) = settings(w)
        weight = known[1] if known is not None and w.data is known[0] else _weight(w, rank)
        kernel[:] = [data(weight).shape[:2]]
        image, bias = to_image(x), None if b is None else b.logical()
        key = _plan_key(image, weight, bias)
        plan = plans.get(key) if key is not None else None
        if plan is not None:
            return from_image(_planned(plan, image, weight, bias), rank)
        padding = pads(image_size(x))
        y = conv2d(image, weight, bias, stride=stride, padding=padding, dilation=dilation,
                   groups=groups)
        if key is not None:  # checked by conv2d: later calls of this shape skip the checks
            geometry = conv_geometry(image.shape, weight.shape, stride=stride,
                                     padding=padding, dilation=dilation, groups=groups)
            plans[key] = geometry, select_algorithm("auto", geometry, image.dtype)
        return from_image(y, rank)

    return run


def _constant_weight(node: Node) -> tuple[Any, Any] | None:
    """A weight known at load (a constant, not a parameter: Paddle's exports) and its
    ``(KH, KW, I, O)`` copy, made once instead of on every call; else None."""
    w = node.const(1)
    if w is None or w.ndim not in (3, 4) or w.dtype.kind != "f":
        return None
    return w, data(_weight(Value(w), w.ndim - 2))


def _plan_key(image: Any, weight: Any, bias: Any) -> tuple[Any, ...] | None:
    """For NumPy operands of one floating dtype (nothing to record, nothing to promote):
    what a conv's method and geometry depend on, else None (conv2d then runs as is)."""
    if type(image) is not np.ndarray or type(weight) is not np.ndarray or \
            (bias is not None and (type(bias) is not np.ndarray or bias.dtype != image.dtype)):
        return None
    if image.dtype != weight.dtype or image.dtype not in (np.float32, np.float64):
        return None
    return image.shape, weight.shape, image.dtype, autotune.autotune_enabled()


def _planned(plan: Any, image: np.ndarray, weight: np.ndarray,
             bias: np.ndarray | None) -> np.ndarray:
    """conv2d's forward for operands it has checked before at this shape: the method's
    pass on the cached geometry, then the bias, in place."""
    geometry, method = plan
    with single_threaded_blas():
        y = method.forward(PaddedInput(image, geometry.pads, "zeros"), weight, geometry)
    if bias is not None:
        np.add(y, bias, out=y)
    return y


@converter("ConvTranspose", layouts=_weight_layout)
def conv_transpose(node: Node) -> Any:
    groups = int(node.attr("group", 1))
    output_shape = node.attr("output_shape")
    auto = node.choice("auto_pad", "NOTSET", ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"))

    def make(rank: int) -> Any:
        stride = pair_list(node, "strides", rank, 1)
        dilation = pair_list(node, "dilations", rank, 1)
        extra = pair_list(node, "output_padding", rank, 0)
        explicit = padding(node, rank, lambda: (1, 1), stride, dilation) \
            if auto in ("NOTSET", "VALID") else None
        return stride, dilation, extra, explicit

    settings = _per_rank(node, make)

    def pads_for(size: tuple[int, int], kernel: tuple[int, int], rank: int, stride: Any,
                 dilation: Any, extra: Any, explicit: Any) -> Any:
        if output_shape is None and explicit is not None:
            return explicit(size), extra
        if output_shape is not None:
            target = (1, output_shape[-1]) if rank == 1 else tuple(output_shape[-2:])
        else:
            target = tuple(n * s for n, s in zip(size, stride))
        sides, out_pad = [], []
        for n, k, s, d, e, t in zip(size, kernel, stride, dilation, extra, target):
            total = s * (n - 1) + e + (k - 1) * d + 1 - t
            if total < 0:  # the target is larger: the difference is output padding
                sides.append((0, 0))
                out_pad.append(e - total)
                continue
            small = total // 2
            sides.append((small, total - small) if auto == "SAME_UPPER"
                         else (total - small, small))
            out_pad.append(e)
        return tuple(sides), tuple(out_pad)

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, w, b = ([*inputs, None])[:3]
        rank, (stride, dilation, extra, explicit) = settings(w)
        weight = _weight(w, rank)
        pads, out_pad = pads_for(image_size(x), data(weight).shape[:2], rank, stride,
                                 dilation, extra, explicit)
        size = image_size(x)
        checked_size(node, [x.shape[0], data(weight).shape[2] * groups] + [
            (n - 1) * s + (k - 1) * d + 1 + e - p0 - p1 for n, s, k, d, e, (p0, p1) in
            zip(size, stride, data(weight).shape[:2], dilation, out_pad, pads)])
        y = conv_transpose2d(to_image(x), weight, None if b is None else b.logical(),
                             stride=stride, padding=pads, output_padding=out_pad,
                             dilation=dilation, groups=groups)
        return from_image(y, rank)

    return run
