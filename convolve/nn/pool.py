"""Pooling layers: settings only; the functional pooling ops do the work."""

from __future__ import annotations

from typing import Any

from convolve import _args
from convolve.nn.module import Module
from convolve.ops import pool


class _Pool(Module):
    """The window settings MaxPool2D and AvgPool2D share; ``stride=None`` is the pool size."""

    def __init__(self, pool_size: Any, stride: Any, padding: Any, ceil_mode: bool) -> None:
        super().__init__()
        self.pool_size = _args.pair(pool_size, "pool_size")
        self.stride = self.pool_size if stride is None else _args.pair(stride, "stride")
        self.padding = _args.padding_spec(padding)
        self.ceil_mode = _args.flag(ceil_mode, "ceil_mode")

    def _window_repr(self) -> list[str]:
        parts = [f"pool_size={self.pool_size}"]
        if self.stride != self.pool_size:
            parts.append(f"stride={self.stride}")
        if self.padding != ((0, 0), (0, 0)):
            parts.append(f"padding={self.padding!r}")
        return parts


class MaxPool2D(_Pool):
    """Maximum over each window, padding with -inf: ``convolve.max_pool2d``.

    Shapes: ``x: (N, H, W, C)`` or ``(H, W, C)`` -> ``(N, H_out, W_out, C)``.
    """

    def __init__(self, pool_size: Any = 2, *, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, ceil_mode: bool = False) -> None:
        super().__init__(pool_size, stride, padding, ceil_mode)
        self.dilation = _args.pair(dilation, "dilation")

    def forward(self, x: Any) -> Any:
        return pool.max_pool2d(x, self.pool_size, stride=self.stride, padding=self.padding,
                               dilation=self.dilation, ceil_mode=self.ceil_mode)

    def extra_repr(self) -> str:
        parts = self._window_repr()
        if self.dilation != (1, 1):
            parts.append(f"dilation={self.dilation}")
        if self.ceil_mode:
            parts.append("ceil_mode=True")
        return ", ".join(parts)


class AvgPool2D(_Pool):
    """Mean over each window: ``convolve.avg_pool2d``; ``count_include_pad`` counts the
    zero padding in the divisor, as PyTorch does by default."""

    def __init__(self, pool_size: Any = 2, *, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__(pool_size, stride, padding, ceil_mode)
        self.count_include_pad = _args.flag(count_include_pad, "count_include_pad")

    def forward(self, x: Any) -> Any:
        return pool.avg_pool2d(x, self.pool_size, stride=self.stride, padding=self.padding,
                               ceil_mode=self.ceil_mode,
                               count_include_pad=self.count_include_pad)

    def extra_repr(self) -> str:
        parts = self._window_repr()
        if self.ceil_mode:
            parts.append("ceil_mode=True")
        if not self.count_include_pad:
            parts.append("count_include_pad=False")
        return ", ".join(parts)


class GlobalAvgPool2D(Module):
    """Mean over height and width: ``(N, H, W, C)`` -> ``(N, C)``."""

    def forward(self, x: Any) -> Any:
        return pool.global_avg_pool2d(x)


class GlobalMaxPool2D(Module):
    """Maximum over height and width: ``(N, H, W, C)`` -> ``(N, C)``."""

    def forward(self, x: Any) -> Any:
        return pool.global_max_pool2d(x)
