"""One small function per convolve layer type, writing that layer's ONNX nodes.

Each exporter takes the graph builder, the layer, its input ``Value`` and a ``Step`` (the
layer's name in the model and its output shape, found by running it) and returns the name
of its output tensor. Image values are held in NCHW (see ``graph_builder``): convolution
weights are written as OIHW, and channel axes, pads and Flatten's order are translated.
The graph is the model in evaluation mode: Dropout is left out and batch normalisation
uses the running statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from convolve import nn, shapes
from convolve.nn.activation import ACTIVATIONS
from convolve.onnx.graph_builder import GraphBuilder, Value
from convolve.tensor import data


@dataclass(frozen=True)
class Step:
    """One layer's name in the model (``"3"``, ``"2.1"`` in nested Sequentials) and its
    output shape without the batch axis."""

    name: str
    out_shape: tuple[int, ...]


class UnsupportedLayerError(ValueError):
    """A layer, or one of its settings, that has no ONNX form here."""


Exporter = Callable[[GraphBuilder, Any, Value, Step], str]
EXPORTERS: dict[type, Exporter] = {}


def exports(*types: type) -> Callable[[Exporter], Exporter]:
    """Register an exporter for layer ``types``."""

    def register(fn: Exporter) -> Exporter:
        for kind in types:
            EXPORTERS[kind] = fn
        return fn

    return register


def _array(parameter: Any) -> np.ndarray:
    return np.asarray(data(parameter))


def _flat_pads(pads: Any) -> list[int]:
    """convolve's ``((top, bottom), (left, right))`` as ONNX's ``[top, left, bottom, right]``."""
    (top, bottom), (left, right) = pads
    return [top, left, bottom, right]


def _optional(values: tuple[int, ...], default: int) -> list[int] | None:
    """An attribute list, or None (left out) when every entry is the ONNX default."""
    return None if all(v == default for v in values) else list(values)


# -- activations -------------------------------------------------------------------------
def _gelu(b: GraphBuilder, x: str, hint: str) -> str:
    if b.opset >= 20:
        return b.node("Gelu", [x], hint)
    scaled = b.node("Mul", [x, b.initializer(np.float32(1 / np.sqrt(2)), f"{hint}.rsqrt2")],
                    f"{hint}.scaled")
    erf = b.node("Erf", [scaled], f"{hint}.erf")
    one_plus = b.node("Add", [erf, b.initializer(np.float32(1), f"{hint}.one")],
                      f"{hint}.one_plus")
    half = b.node("Mul", [x, b.initializer(np.float32(0.5), f"{hint}.half")], f"{hint}.half_x")
    return b.node("Mul", [half, one_plus], hint)


def _softmax(b: GraphBuilder, x: Value, axis: int, hint: str) -> str:
    return b.node("Softmax", [x.name], hint, axis=x.onnx_axis(axis))


_NAMED = {
    "relu": lambda b, x, hint: b.node("Relu", [x.name], hint),
    "leaky_relu": lambda b, x, hint: b.node("LeakyRelu", [x.name], hint, alpha=0.01),
    "tanh": lambda b, x, hint: b.node("Tanh", [x.name], hint),
    "sigmoid": lambda b, x, hint: b.node("Sigmoid", [x.name], hint),
    "softmax": lambda b, x, hint: _softmax(b, x, -1, hint),
    "gelu": lambda b, x, hint: _gelu(b, x.name, hint),
}
_NAME_OF_FUNCTION = {fn: name for name, fn in ACTIVATIONS.items()}


def fused_activation(b: GraphBuilder, layer: Any, x: Value, step: Step) -> str:
    """The nodes of a weighted layer's ``activation=`` after its output ``x``."""
    fn = layer._activation
    if layer.activation is None:
        return x.name
    name = _NAME_OF_FUNCTION.get(fn)
    if name is not None:
        return _NAMED[name](b, x, f"{step.name}.{name}")
    exporter = EXPORTERS.get(type(fn))
    if isinstance(fn, nn.Module) and exporter is not None:
        return exporter(b, fn, x, Step(f"{step.name}.activation", x.shape))
    raise UnsupportedLayerError(
        f"its activation {layer.activation!r} has no ONNX form; use one of "
        f"{', '.join(map(repr, ACTIVATIONS))} or an activation layer")


@exports(nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU)
def _plain_activation(b: GraphBuilder, layer: Any, x: Value, step: Step) -> str:
    name = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.GELU: "gelu"}
    return _NAMED[name[type(layer)]](b, x, step.name)


@exports(nn.LeakyReLU)
def _leaky_relu(b: GraphBuilder, layer: nn.LeakyReLU, x: Value, step: Step) -> str:
    return b.node("LeakyRelu", [x.name], step.name, alpha=float(layer.negative_slope))


@exports(nn.Softmax)
def _softmax_layer(b: GraphBuilder, layer: nn.Softmax, x: Value, step: Step) -> str:
    return _softmax(b, x, layer.axis, step.name)


# -- convolutions ------------------------------------------------------------------------
def _padded_input(b: GraphBuilder, layer: Any, x: Value, pads: Any, step: Step
                  ) -> tuple[str, Any]:
    """The conv's input and the pads left for the Conv node: a non-zero ``padding_mode``
    pads with its own node first."""
    if layer.padding_mode == "zeros" or not any(pads[0] + pads[1]):
        return x.name, pads
    padded = b.pad_spatial(x, pads, layer.padding_mode, f"{step.name}.pad")
    return padded, ((0, 0), (0, 0))


@exports(nn.Conv2D, nn.DepthwiseConv2D)
def _conv(b: GraphBuilder, layer: Any, x: Value, step: Step) -> str:
    weight = _array(layer.weight)
    groups = layer.groups if isinstance(layer, nn.Conv2D) else layer.in_channels
    geometry = shapes.conv_geometry((1, *x.shape), weight.shape, stride=layer.stride,
                                    padding=layer.padding, dilation=layer.dilation,
                                    groups=groups)
    source, pads = _padded_input(b, layer, x, geometry.pads, step)
    inputs = [source, b.initializer(weight.transpose(3, 2, 0, 1), f"{step.name}.weight")]
    if layer.bias is not None:
        inputs.append(b.initializer(_array(layer.bias), f"{step.name}.bias"))
    y = b.node("Conv", inputs, f"{step.name}.conv", kernel_shape=list(weight.shape[:2]),
               strides=list(geometry.stride), pads=_flat_pads(pads),
               dilations=_optional(geometry.dilation, 1), group=groups)
    return fused_activation(b, layer, Value(y, step.out_shape), step)


@exports(nn.ConvTranspose2D)
def _conv_transpose(b: GraphBuilder, layer: nn.ConvTranspose2D, x: Value, step: Step) -> str:
    weight = _array(layer.weight)  # (KH, KW, C_out // groups, C_in)
    geometry = shapes.conv_transpose_geometry(
        (1, *x.shape), weight.shape, stride=layer.stride, padding=layer.padding,
        output_padding=layer.output_padding, dilation=layer.dilation, groups=layer.groups)
    # Rows past the last input's reach hold only the bias: output_padding and the bottom/right
    # pad cancel out, and what output_padding is left is written as a zero Pad when ONNX
    # Runtime would refuse it (it takes output_padding < stride, PyTorch also < dilation).
    pads, extra = [], []
    for (p0, p1), op in zip(geometry.pads, geometry.output_padding):
        pads.append((p0, p1 - min(p1, op)))
        extra.append(op - min(p1, op))
    padded = any(op >= s for op, s in zip(extra, geometry.stride))
    inputs = [x.name, b.initializer(weight.transpose(3, 2, 0, 1), f"{step.name}.weight")]
    bias = None if layer.bias is None else b.initializer(_array(layer.bias),
                                                         f"{step.name}.bias")
    if bias is not None and not padded:
        inputs.append(bias)
    y = b.node("ConvTranspose", inputs, f"{step.name}.conv_transpose",
               kernel_shape=list(weight.shape[:2]), strides=list(geometry.stride),
               pads=_flat_pads(pads), dilations=_optional(geometry.dilation, 1),
               output_padding=None if padded else _optional(tuple(extra), 0),
               group=layer.groups)
    if padded:
        widths = b.ints([0, 0, 0, 0, 0, 0, *extra], f"{step.name}.output_padding")
        y = b.node("Pad", [y, widths], f"{step.name}.output_padding")
        if bias is not None:
            shape = b.ints([-1, 1, 1], f"{step.name}.bias_shape")
            y = b.node("Add", [y, b.node("Reshape", [bias, shape], f"{step.name}.bias_chw")],
                       f"{step.name}.biased")
    return fused_activation(b, layer, Value(y, step.out_shape), step)


# -- pooling -----------------------------------------------------------------------------
def _pool_geometry(layer: Any, x: Value, dilation: Any) -> shapes.PoolGeometry:
    return shapes.pool_geometry((1, *x.shape), layer.pool_size, stride=layer.stride,
                                padding=layer.padding, dilation=dilation,
                                ceil_mode=layer.ceil_mode)


def _drop_late_window(b: GraphBuilder, y: str, geometry: shapes.PoolGeometry, step: Step
                      ) -> str:
    """ONNX's ceil_mode rounds up without PyTorch's rule that the last window starts inside
    the input or the top/left padding: a Slice drops the window it adds."""
    onnx_size = [-(-(n + p0 + p1 - shapes.effective_kernel(k, d)) // s) + 1
                 for n, (p0, p1), k, d, s in zip(geometry.input_shape[1:3], geometry.pads,
                                                  geometry.kernel, geometry.dilation,
                                                  geometry.stride)]
    if onnx_size == list(geometry.out_hw):
        return y
    return b.node("Slice", [y, b.ints([0, 0], f"{step.name}.starts"),
                            b.ints(list(geometry.out_hw), f"{step.name}.ends"),
                            b.ints([2, 3], f"{step.name}.axes")], f"{step.name}.slice")


@exports(nn.MaxPool2D)
def _max_pool(b: GraphBuilder, layer: nn.MaxPool2D, x: Value, step: Step) -> str:
    geometry = _pool_geometry(layer, x, layer.dilation)
    y = b.node("MaxPool", [x.name], f"{step.name}.max_pool", kernel_shape=list(geometry.kernel),
               strides=list(geometry.stride), pads=_flat_pads(geometry.pads),
               dilations=_optional(geometry.dilation, 1),
               ceil_mode=1 if layer.ceil_mode else None)
    return _drop_late_window(b, y, geometry, step)


@exports(nn.AvgPool2D)
def _avg_pool(b: GraphBuilder, layer: nn.AvgPool2D, x: Value, step: Step) -> str:
    geometry = _pool_geometry(layer, x, 1)
    y = b.node("AveragePool", [x.name], f"{step.name}.avg_pool",
               kernel_shape=list(geometry.kernel), strides=list(geometry.stride),
               pads=_flat_pads(geometry.pads), ceil_mode=1 if layer.ceil_mode else None,
               count_include_pad=1 if layer.count_include_pad else None)
    return _drop_late_window(b, y, geometry, step)


@exports(nn.GlobalAvgPool2D, nn.GlobalMaxPool2D)
def _global_pool(b: GraphBuilder, layer: Any, x: Value, step: Step) -> str:
    op = "ReduceMean" if isinstance(layer, nn.GlobalAvgPool2D) else "ReduceMax"
    return b.reduce(op, x.name, [2, 3], step.name, keepdims=0)


# -- the rest ----------------------------------------------------------------------------
@exports(nn.BatchNorm2D)
def _batch_norm(b: GraphBuilder, layer: nn.BatchNorm2D, x: Value, step: Step) -> str:
    inputs = [x.name] + [b.initializer(_array(getattr(layer, name)), f"{step.name}.{name}")
                         for name in ("gamma", "beta", "running_mean", "running_var")]
    return b.node("BatchNormalization", inputs, step.name, epsilon=float(layer.eps))


@exports(nn.Dense)
def _dense(b: GraphBuilder, layer: nn.Dense, x: Value, step: Step) -> str:
    weight = _array(layer.weight)  # (F_in, F_out)
    bias = [] if layer.bias is None else [b.initializer(_array(layer.bias),
                                                         f"{step.name}.bias")]
    if x.image:  # on each pixel's channels: a 1x1 convolution
        w = b.initializer(weight.T[:, :, None, None], f"{step.name}.weight")
        y = b.node("Conv", [x.name, w, *bias], f"{step.name}.dense", kernel_shape=[1, 1])
    else:
        w = b.initializer(weight, f"{step.name}.weight")
        y = b.node("Gemm", [x.name, w, *bias], f"{step.name}.dense")
    return fused_activation(b, layer, Value(y, step.out_shape), step)


@exports(nn.Flatten)
def _flatten(b: GraphBuilder, layer: nn.Flatten, x: Value, step: Step) -> str:
    if not x.image:
        return x.name
    h, w, c = x.shape
    source = x.name
    if c > 1 and h * w > 1:  # convolve flattens (H, W, C) in channels-last order
        source = b.node("Transpose", [x.name], f"{step.name}.nhwc", perm=[0, 2, 3, 1])
    return b.node("Flatten", [source], step.name, axis=1)


@exports(nn.Dropout)
def _dropout(b: GraphBuilder, layer: nn.Dropout, x: Value, step: Step) -> str:
    return x.name
