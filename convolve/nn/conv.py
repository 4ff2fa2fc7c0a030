"""Convolution layers: they hold a weight and a bias and call the functional conv ops.

Every layer learns its input channels from ``in_channels`` or from the first input (lazy
build); a later input with other channels is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve import _args
from convolve.nn.activation import Activation
from convolve.nn.module import cast_input
from convolve.nn.weighted import Weighted
from convolve.ops.conv import conv2d, conv_transpose2d
from convolve.tensor import data


class _Conv(Weighted):
    """What every convolution layer shares: settings, lazy build, the channel check."""

    def __init__(self, *, stride: Any, padding: Any, dilation: Any, activation: Activation,
                 use_bias: bool, dtype: Any, seed: Any) -> None:
        super().__init__(activation=activation, use_bias=use_bias, dtype=dtype, seed=seed)
        self.stride = _args.pair(stride, "stride")
        self.padding = _args.padding_spec(padding)
        self.dilation = _args.pair(dilation, "dilation")
        self.in_channels: int | None = None

    def _filters_and_groups(self, filters: Any, groups: Any) -> None:
        self.filters = _args.integer(filters, "filters")
        self.groups = _args.integer(groups, "groups")
        if self.filters % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide filters; received filters={self.filters}")

    def _check_groups_divide(self, in_channels: int) -> None:
        if in_channels % self.groups:
            raise ValueError(f"groups={self.groups} must divide the input channels; "
                             f"received {in_channels} channels")

    def _weight_shape(self, in_channels: int) -> tuple[int, int, int, int]:
        raise NotImplementedError

    def _out_channels(self, in_channels: int) -> int:
        raise NotImplementedError

    def _build(self, in_channels: int) -> None:
        self._build_parameters(self._weight_shape(in_channels), self._out_channels(in_channels))
        self.in_channels = in_channels

    def build_from_shapes(self, shapes: Any) -> None:
        shape = tuple(shapes["weight"])
        if len(shape) != 4:
            raise ValueError(f"{type(self).__name__}'s weight must be 4-D (KH, KW, ., .); "
                             f"received shape {shape}")
        self._build(self._in_channels_of(shape))

    def _in_channels_of(self, weight_shape: tuple[int, ...]) -> int:
        """The input channels a weight of this shape is built for."""
        raise NotImplementedError

    def _prepare(self, x: Any) -> Any:
        """``x`` in the layer's dtype, after building on (or checking) its channels."""
        x = cast_input(x, self.dtype)
        array = data(x)
        if self.in_channels is None:
            _args.rank(array.shape, "x", _args.IMAGE)
            self._build(array.shape[-1])
        elif array.ndim < 1 or array.shape[-1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built for inputs with {self.in_channels} channels "
                f"(its weight has shape {self.weight.shape}); received x of shape "
                f"{array.shape}")
        return x

    def _settings_repr(self, defaults: dict[str, Any]) -> list[str]:
        parts = []
        for name, default in defaults.items():
            value = getattr(self, name)
            if value != default:
                parts.append(f"{name}={value!r}")
        return parts + self._shared_repr("in_channels")


class Conv2D(_Conv):
    """A 2-D convolution layer: ``activation(conv2d(x, weight, bias))``.

    Arguments:
        filters: output channels ``C_out``.
        kernel_size: int or ``(KH, KW)``.
        stride, padding, dilation, groups, padding_mode: as ``convolve.conv2d``.
        activation: a name (``"relu"``, ``"leaky_relu"``, ``"tanh"``, ``"sigmoid"``,
            ``"softmax"``, ``"gelu"``, ``"linear"``), None, or a callable on Tensors.
        use_bias: whether to add a learned bias.
        in_channels: ``C_in``; None learns it from the first input.
        dtype: of the parameters (float32 or float64); floating input is cast to it.
        seed: None, an int or a ``numpy.random.Generator`` for the initial weights.

    Shapes: ``x: (N, H, W, C_in)`` or ``(H, W, C_in)`` -> ``(N, H_out, W_out, C_out)``;
    ``weight: (KH, KW, C_in // groups, C_out)``, ``bias: (C_out,)``.
    """

    def __init__(self, filters: int, kernel_size: Any, *, stride: Any = 1,
                 padding: Any = "valid", dilation: Any = 1, groups: int = 1,
                 padding_mode: str = "zeros", activation: Activation = None,
                 use_bias: bool = True, in_channels: int | None = None,
                 dtype: Any = np.float32, seed: Any = None) -> None:
        super().__init__(stride=stride, padding=padding, dilation=dilation,
                         activation=activation, use_bias=use_bias, dtype=dtype, seed=seed)
        self._filters_and_groups(filters, groups)
        self.kernel_size = _args.pair(kernel_size, "kernel_size")
        self.padding_mode = _args.padding_mode(padding_mode)
        if in_channels is not None:
            self._build(_args.integer(in_channels, "in_channels"))

    def _weight_shape(self, in_channels: int) -> tuple[int, int, int, int]:
        self._check_groups_divide(in_channels)
        return (*self.kernel_size, in_channels // self.groups, self.filters)

    def _out_channels(self, in_channels: int) -> int:
        return self.filters

    def _in_channels_of(self, weight_shape: tuple[int, ...]) -> int:
        return weight_shape[2] * self.groups

    def forward(self, x: Any) -> Any:
        x = self._prepare(x)
        y = conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                   dilation=self.dilation, groups=self.groups, padding_mode=self.padding_mode)
        return self._activation(y)

    def extra_repr(self) -> str:
        defaults = {"stride": (1, 1), "padding": "valid", "dilation": (1, 1), "groups": 1,
                    "padding_mode": "zeros"}
        return ", ".join([str(self.filters), f"kernel_size={self.kernel_size}",
                          *self._settings_repr(defaults)])


class DepthwiseConv2D(_Conv):
    """Each input channel convolved with its own ``depth_multiplier`` filters.

    A grouped ``conv2d`` with ``groups = C_in``: ``weight: (KH, KW, 1, C_in *
    depth_multiplier)``, output channel ``c * depth_multiplier + m`` from input channel
    ``c`` (Keras's order). The other arguments are as ``Conv2D``'s.
    """

    def __init__(self, kernel_size: Any, depth_multiplier: int = 1, *, stride: Any = 1,
                 padding: Any = "valid", dilation: Any = 1, padding_mode: str = "zeros",
                 activation: Activation = None, use_bias: bool = True,
                 in_channels: int | None = None, dtype: Any = np.float32,
                 seed: Any = None) -> None:
        super().__init__(stride=stride, padding=padding, dilation=dilation,
                         activation=activation, use_bias=use_bias, dtype=dtype, seed=seed)
        self.kernel_size = _args.pair(kernel_size, "kernel_size")
        self.depth_multiplier = _args.integer(depth_multiplier, "depth_multiplier")
        self.padding_mode = _args.padding_mode(padding_mode)
        if in_channels is not None:
            self._build(_args.integer(in_channels, "in_channels"))

    def _weight_shape(self, in_channels: int) -> tuple[int, int, int, int]:
        return (*self.kernel_size, 1, in_channels * self.depth_multiplier)

    def _out_channels(self, in_channels: int) -> int:
        return in_channels * self.depth_multiplier

    def _in_channels_of(self, weight_shape: tuple[int, ...]) -> int:
        return weight_shape[3] // self.depth_multiplier

    def forward(self, x: Any) -> Any:
        x = self._prepare(x)
        y = conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                   dilation=self.dilation, groups=self.in_channels,
                   padding_mode=self.padding_mode)
        return self._activation(y)

    def extra_repr(self) -> str:
        defaults = {"depth_multiplier": 1, "stride": (1, 1), "padding": "valid",
                    "dilation": (1, 1), "padding_mode": "zeros"}
        return ", ".join([f"kernel_size={self.kernel_size}", *self._settings_repr(defaults)])


class ConvTranspose2D(_Conv):
    """A transposed convolution layer: ``activation(conv_transpose2d(x, weight, bias))``.

    ``weight: (KH, KW, filters // groups, C_in)``, the layout of the conv2d it transposes;
    ``bias: (filters,)``. Output size per axis ``(in - 1) * stride - pad_before - pad_after
    + dilation * (k - 1) + output_padding + 1``. The other arguments are as ``Conv2D``'s.
    """

    def __init__(self, filters: int, kernel_size: Any, *, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, dilation: Any = 1, groups: int = 1,
                 activation: Activation = None, use_bias: bool = True,
                 in_channels: int | None = None, dtype: Any = np.float32,
                 seed: Any = None) -> None:
        super().__init__(stride=stride, padding=padding, dilation=dilation,
                         activation=activation, use_bias=use_bias, dtype=dtype, seed=seed)
        self._filters_and_groups(filters, groups)
        self.kernel_size = _args.pair(kernel_size, "kernel_size")
        self.output_padding = _args.pair(output_padding, "output_padding", minimum=0)
        if in_channels is not None:
            self._build(_args.integer(in_channels, "in_channels"))

    def _weight_shape(self, in_channels: int) -> tuple[int, int, int, int]:
        self._check_groups_divide(in_channels)
        return (*self.kernel_size, self.filters // self.groups, in_channels)

    def _out_channels(self, in_channels: int) -> int:
        return self.filters

    def _in_channels_of(self, weight_shape: tuple[int, ...]) -> int:
        return weight_shape[3]

    def forward(self, x: Any) -> Any:
        x = self._prepare(x)
        y = conv_transpose2d(x, self.weight, self.bias, stride=self.stride,
                             padding=self.padding, output_padding=self.output_padding,
                             dilation=self.dilation, groups=self.groups)
        return self._activation(y)

    def extra_repr(self) -> str:
        defaults = {"stride": (1, 1), "padding": ((0, 0), (0, 0)), "output_padding": (0, 0),
                    "dilation": (1, 1), "groups": 1}
        return ", ".join([str(self.filters), f"kernel_size={self.kernel_size}",
                          *self._settings_repr(defaults)])
