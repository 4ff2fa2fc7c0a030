"""Conv and ConvTranspose, on convolve's conv2d and conv_transpose2d (1-D as 2-D with
height 1). Weights are held as ``(KH, KW, C_in // groups, C_out)`` from load."""

from __future__ import annotations

from typing import Any

from convolve.onnx.layout import Value, reshape
from convolve.onnx.ops._spatial import (
    from_image,
    image_size,
    padding,
    pair_list,
    spatial_rank,
    to_image,
)
from convolve.onnx.registry import Context, Node, converter
from convolve.ops.conv import conv2d, conv_transpose2d
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


@converter("Conv", layouts=_weight_layout)
def conv(node: Node) -> Any:
    rank = spatial_rank(node, 1)
    stride = pair_list(node, "strides", rank, 1)
    dilation = pair_list(node, "dilations", rank, 1)
    groups = int(node.attr("group", 1))
    kernel: list[tuple[int, int]] = []
    pads = padding(node, rank, lambda: kernel[0], stride, dilation)

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, w, b = ([*inputs, None])[:3]
        weight = _weight(w, rank)
        kernel[:] = [data(weight).shape[:2]]
        y = conv2d(to_image(x), weight, None if b is None else b.logical(), stride=stride,
                   padding=pads(image_size(x)), dilation=dilation, groups=groups)
        return from_image(y, rank)

    return run


@converter("ConvTranspose", layouts=_weight_layout)
def conv_transpose(node: Node) -> Any:
    rank = spatial_rank(node, 1)
    stride = pair_list(node, "strides", rank, 1)
    dilation = pair_list(node, "dilations", rank, 1)
    extra = pair_list(node, "output_padding", rank, 0)
    groups = int(node.attr("group", 1))
    output_shape = node.attr("output_shape")
    auto = node.choice("auto_pad", "NOTSET", ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"))
    explicit = padding(node, rank, lambda: (1, 1), stride, dilation) \
        if auto in ("NOTSET", "VALID") else None

    def pads_for(size: tuple[int, int], kernel: tuple[int, int]) -> Any:
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
                out_pad.append(-total)
                continue
            small = total // 2
            sides.append((small, total - small) if auto == "SAME_UPPER"
                         else (total - small, small))
            out_pad.append(0)
        return tuple(sides), tuple(out_pad)

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x, w, b = ([*inputs, None])[:3]
        weight = _weight(w, rank)
        pads, out_pad = pads_for(image_size(x), data(weight).shape[:2])
        y = conv_transpose2d(to_image(x), weight, None if b is None else b.logical(),
                             stride=stride, padding=pads, output_padding=out_pad,
                             dilation=dilation, groups=groups)
        return from_image(y, rank)

    return run
