"""Resize and Upsample: nearest and linear interpolation, one axis at a time (both are
separable), with the coordinate transformations exporters write (half_pixel,
pytorch_half_pixel, align_corners, asymmetric, ...)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convolve.onnx.layout import Value
from convolve.onnx.registry import Context, Node, checked_size, converter
from convolve.ops import math as ops_math
from convolve.tensor import Tensor, data

_TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
               "half_pixel_symmetric", "tf_half_pixel_for_nearest")
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")


def source_coordinates(transform: str, m: int, n: int, scale: float) -> np.ndarray:
    """For each of ``m`` output positions along an axis of ``n`` input positions, the
    (fractional) input position it samples. The output length in the formulas is
    ``scale * n``, which differs from ``m`` when the scale does not divide evenly (as the
    ONNX reference)."""
    y = np.arange(m, dtype=np.float64)
    length = scale * n
    if transform == "align_corners":
        return np.zeros(m) if length == 1 else y * (n - 1) / (length - 1)
    if transform == "asymmetric":
        return y / scale
    if transform == "pytorch_half_pixel":
        return np.full(m, -0.5) if length == 1 else (y + 0.5) / scale - 0.5
    if transform == "tf_half_pixel_for_nearest":
        return (y + 0.5) / scale
    if transform == "half_pixel_symmetric":
        offset = n / 2 * (1 - m / (scale * n))
        return offset + (y + 0.5) / scale - 0.5
    return (y + 0.5) / scale - 0.5  # half_pixel


def nearest_index(x: np.ndarray, mode: str, scale: float, n: int) -> np.ndarray:
    """The input position each source coordinate ``x`` takes its value from."""
    low = np.floor(x)
    fraction = x - low
    if mode == "round_prefer_floor":
        index = np.where(fraction > 0.5, low + 1, low)
    elif mode == "round_prefer_ceil":
        index = np.where(fraction >= 0.5, low + 1, low)
    elif mode == "ceil" or (mode == "simple" and scale < 1):
        index = np.ceil(x)
    else:  # floor, and "simple" upsampling (Upsample and Resize-10)
        index = low
    return np.clip(index, 0, n - 1).astype(np.intp)


def _take(x: Any, index: np.ndarray, axis: int) -> Any:
    if isinstance(x, Tensor):
        return ops_math.getitem(x, (slice(None),) * axis + (index,))
    return np.take(x, index, axis=axis)


def resize_axis(x: Any, axis: int, m: int, scale: float, *, mode: str, transform: str,
                nearest: str) -> Any:
    """``x`` resized to ``m`` positions along physical ``axis``."""
    n = np.shape(data(x))[axis]
    source = source_coordinates(transform, m, n, scale)
    if mode == "nearest":
        return _take(x, nearest_index(source, nearest, scale, n), axis)
    low = np.floor(source)
    weight = source - low
    first = np.clip(low, 0, n - 1).astype(np.intp)
    second = np.clip(low + 1, 0, n - 1).astype(np.intp)
    shape = [1] * np.ndim(data(x))
    shape[axis] = m
    dtype = np.asarray(data(x)).dtype if not isinstance(x, Tensor) else x.dtype
    w = weight.reshape(shape).astype(dtype)
    return ops_math.add(ops_math.multiply(_take(x, first, axis), 1 - w),
                        ops_math.multiply(_take(x, second, axis), w))


def _resize(node: Node, x: Value, sizes: list[int], scales: list[float],
            **settings: Any) -> Value:
    checked_size(node, sizes)
    y = x.data
    for logical, (m, scale) in enumerate(zip(sizes, scales)):
        if m == x.shape[logical] and scale == 1:
            continue
        y = resize_axis(y, x.axis(logical), m, scale, **settings)
    return Value(y, x.perm)


@converter("Resize", static=(1, 2, 3))
def _resize_op(node: Node) -> Any:
    mode = node.choice("mode", "nearest", ("nearest", "linear"))
    if node.version < 11:
        transform, nearest = "asymmetric", "simple"
    else:
        transform = node.choice("coordinate_transformation_mode", "half_pixel", _TRANSFORMS)
        nearest = node.choice("nearest_mode", "round_prefer_floor", _NEAREST[:4])
    if node.attr("antialias", 0):
        raise node.refuse("antialias=1 is not supported")
    policy = node.choice("keep_aspect_ratio_policy", "stretch",
                         ("stretch", "not_larger", "not_smaller"))
    axes_attr = node.attr("axes")

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        shape = x.shape
        rank = len(shape)
        axes = list(range(rank)) if axes_attr is None else \
            [a + rank if a < 0 else a for a in axes_attr]
        scale_input = inputs[1] if node.version < 11 else \
            (inputs[2] if len(inputs) > 2 else None)
        size_input = inputs[3] if node.version >= 11 and len(inputs) > 3 else None
        given_scales = None if scale_input is None else \
            [float(s) for s in scale_input.numpy().reshape(-1)]
        scales, sizes = [1.0] * rank, list(shape)
        if given_scales:
            for a, s in zip(axes, given_scales):
                scales[a], sizes[a] = s, math.floor(shape[a] * s)
        elif size_input is not None:
            wanted = [int(v) for v in size_input.numpy().reshape(-1)]
            for a, m in zip(axes, wanted):
                scales[a], sizes[a] = m / shape[a], m
            if policy != "stretch":
                pick = min if policy == "not_larger" else max
                common = pick(scales[a] for a in axes)
                for a in axes:
                    scales[a], sizes[a] = common, int(common * shape[a] + 0.5)
        return _resize(node, x, sizes, scales, mode=mode, transform=transform, nearest=nearest)

    return run


@converter("Upsample", static=(1,))
def _upsample(node: Node) -> Any:
    mode = node.choice("mode", "nearest", ("nearest", "linear", "bilinear"))
    mode = "linear" if mode == "bilinear" else mode
    attr_scales = node.attr("scales")

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        scales = [float(s) for s in (attr_scales if attr_scales is not None
                                     else inputs[1].numpy().reshape(-1))]
        sizes = [math.floor(n * s) for n, s in zip(x.shape, scales)]
        return _resize(node, x, sizes, scales, mode=mode, transform="asymmetric", nearest="simple")

    return run
