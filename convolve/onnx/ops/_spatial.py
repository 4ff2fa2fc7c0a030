"""Shared by conv and pooling converters: channels-last images from 1-D and 2-D ONNX
tensors, and ONNX's padding attributes as per-side pads."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from convolve.onnx.layout import Value, channels_last, reshape
from convolve.onnx.registry import Node
from convolve.tensor import data

# Larger pads are a damaged or hostile file: no network pads an image by more, and a pad
# of 2**20 pixels would make a conv's output take gigabytes.
MAX_PAD = 2**15


def spatial_rank(node: Node, weight_index: int | None = None) -> int:
    """The number of spatial axes (1 or 2; others are refused) from ``kernel_shape`` or
    the weight's known shape."""
    kernel = node.attr("kernel_shape")
    known = node.shapes.get(weight_index) if weight_index is not None else None
    if kernel is not None and known is not None and None not in known and \
            tuple(known[2:]) != tuple(kernel):
        raise node.refuse(f"kernel_shape {list(kernel)} does not match the weight's shape "
                          f"{tuple(known)}")
    if kernel is not None:
        rank = len(kernel)
    elif weight_index is not None and weight_index in node.shapes:
        rank = len(node.shapes[weight_index]) - 2
    else:
        rank = 2
    if rank not in (1, 2):
        raise node.refuse(f"{rank}-D operation (only 1-D and 2-D are supported)")
    return rank


def pair_list(node: Node, name: str, rank: int, default: int) -> tuple[int, int]:
    """An attribute with one entry per spatial axis, as ``(h, w)`` (1-D: ``(default,
    w)``, the height of 1 that 1-D operations run with)."""
    values = list(node.attr(name, [default] * rank))
    if len(values) != rank:
        raise node.refuse(f"{name} must have {rank} entries; received {values}")
    return (default, values[0]) if rank == 1 else (values[0], values[1])


def explicit_pads(node: Node, rank: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``pads`` (``[begins..., ends...]``) as ``((top, bottom), (left, right))``."""
    pads = list(node.attr("pads", [0] * 2 * rank))
    if len(pads) != 2 * rank or min(pads) < 0 or max(pads) > MAX_PAD:
        raise node.refuse(f"pads must be {2 * rank} ints in [0, {MAX_PAD}]; received {pads}")
    if rank == 1:
        return (0, 0), (pads[0], pads[1])
    return (pads[0], pads[2]), (pads[1], pads[3])


def padding(node: Node, rank: int, kernel: Callable[[], tuple[int, int]],
            stride: tuple[int, int], dilation: tuple[int, int]) -> Callable[[tuple[int, int]], Any]:
    """A function from the input's ``(H, W)`` to per-side pads, from ``auto_pad``."""
    auto = node.choice("auto_pad", "NOTSET", ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"))
    if auto == "VALID":
        return lambda size: ((0, 0), (0, 0))
    if auto == "NOTSET":
        pads = explicit_pads(node, rank)
        return lambda size: pads

    def same(size: tuple[int, int]) -> tuple[tuple[int, int], ...]:
        sides = []
        for n, k, s, d in zip(size, kernel(), stride, dilation):
            out = math.ceil(n / s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
            small = total // 2
            sides.append((small, total - small) if auto == "SAME_UPPER"
                         else (total - small, small))
        return tuple(sides)

    return same


def to_image(x: Value) -> Any:
    """``x`` (logical ``(N, C, H, W)`` or ``(N, C, L)``) as channels-last ``(N, H, W, C)``
    data (``(N, 1, L, C)`` for 1-D)."""
    if x.ndim == 4:
        return x.to(channels_last(4))
    if x.ndim == 3:
        y = x.to(channels_last(3))
        n, length, c = data(y).shape
        return reshape(y, (n, 1, length, c))
    raise ValueError(f"expected a 3-D (N, C, L) or 4-D (N, C, H, W) input; received "
                     f"shape {x.shape}")


def from_image(y: Any, rank: int) -> Value:
    """A channels-last result of ``to_image``'s layout as a Value of ONNX rank
    ``rank + 2``."""
    if rank == 1:
        n, _, length, c = data(y).shape
        return Value(reshape(y, (n, length, c)), channels_last(3))
    return Value(y, channels_last(4))


def image_size(x: Value) -> tuple[int, int]:
    shape = x.shape
    return (1, shape[2]) if len(shape) == 3 else (shape[2], shape[3])


def ints(values: Sequence[Any]) -> list[int]:
    return [int(v) for v in values]
