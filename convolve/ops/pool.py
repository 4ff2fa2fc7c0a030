"""Max and average pooling of channels-last images, each forward beside its backward.

Tap ``(r, c)`` of every window is one strided slice of the padded input, so the loops run
over the few taps of the pool, never over pixels. Max pooling pads with -inf; ceil_mode's
overhang past the padded input is padded the same way and never counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from convolve import _args
from convolve.ops.algorithms._common import tap_slice
from convolve.ops.pool_fast import max_2x2, max_2x2_backward, max_tiled, max_tiled_backward, tiled
from convolve.shapes import PoolGeometry, pool_geometry
from convolve.tensor import data, needs_grad, record


def _taps(g: PoolGeometry) -> Iterator[tuple[int, tuple[slice, slice, slice]]]:
    """``(t, slice)`` for each tap, ``t = r * KW + c`` in window (row-major) order."""
    kh, kw = g.kernel
    for r in range(kh):
        for c in range(kw):
            yield r * kw + c, tap_slice(r, c, g.out_hw, g.stride, g.dilation)


def _padded(x4: np.ndarray, g: PoolGeometry, fill: float) -> np.ndarray:
    (top, bottom), (left, right) = g.pads
    width = ((0, 0), (top, bottom + g.overhang[0]), (left, right + g.overhang[1]), (0, 0))
    if not any(sum(w) for w in width):
        return x4
    return np.pad(x4, width, constant_values=fill)


def _unpadded(dxp: np.ndarray, g: PoolGeometry) -> np.ndarray:
    (top, _), (left, _) = g.pads
    h, w = g.input_shape[-3:-1]
    if dxp.shape[1:3] == (h, w):
        return dxp  # not a view: Tensor.backward keeps it as a leaf's gradient uncopied
    return dxp[:, top:top + h, left:left + w]


def _first_valid_tap(g: PoolGeometry, dtype: np.dtype) -> np.ndarray:
    """``(H_out, W_out, 1)``: each window's first tap on an input pixel (PyTorch starts its
    search there, so an all -inf window sends its gradient to that pixel); ``KH * KW`` for
    a window with none."""
    axes = []
    for n, k, s, d, (p0, _), o in zip(g.input_shape[-3:-1], g.kernel, g.stride, g.dilation,
                                      g.pads, g.out_hw):
        start = np.arange(o) * s - p0
        first = np.maximum(0, -(start // d))  # ceil(-start / d) for start < 0
        axes.append((first, (first < k) & (start + first * d < n)))
    (rows, rows_ok), (cols, cols_ok) = axes
    kh, kw = g.kernel
    tap = np.where(rows_ok[:, None] & cols_ok[None, :], rows[:, None] * kw + cols[None, :],
                   kh * kw)
    return tap.astype(dtype)[:, :, None]


def _max_with_index(xp: np.ndarray, g: PoolGeometry) -> tuple[np.ndarray, np.ndarray]:
    """The window maxima and, for each, the tap holding the first maximum in window order
    (the last NaN if any, as PyTorch)."""
    shape = (xp.shape[0], *g.out_hw, xp.shape[3])
    best = np.full(shape, -np.inf, dtype=xp.dtype)
    index_dtype = np.min_scalar_type(g.kernel[0] * g.kernel[1])
    index = np.broadcast_to(_first_valid_tap(g, index_dtype), shape).copy()
    tap = np.empty_like(best)  # strided reads are costly: each tap is read once
    for t, window in _taps(g):
        np.copyto(tap, xp[window])
        better = tap > best
        better |= np.isnan(tap)
        np.maximum(best, tap, out=best)
        # A better tap is an input pixel, so t is at least the first valid tap and every
        # earlier pick: the maximum sets it, without np.where's slow random branching.
        np.maximum(index, better * index_dtype.type(t), out=index)
    return best, index


def _max(xp: np.ndarray, g: PoolGeometry) -> np.ndarray:
    taps = _taps(g)
    y = xp[next(taps)[1]].copy()
    for _, window in taps:
        np.maximum(y, xp[window], out=y)
    return y


MaxPath = Literal["pairs", "tiled", "indexed", "plain"]


def _max_forward(xp: np.ndarray, g: PoolGeometry, wants_grad: bool
                 ) -> tuple[MaxPath, np.ndarray, np.ndarray | None]:
    """The window maxima of ``xp`` by the fastest path that applies, the path's name for
    the backward, and what it keeps for it (each maximum's tap, or None):

    - ``"pairs"``: 2x2 stride-2 windows without padding (``max_2x2``); nothing kept;
    - ``"tiled"``: other non-overlapping windows without padding (``max_tiled``);
    - ``"indexed"``: any window, keeping each maximum's tap (``_max_with_index``), also
      where the fast paths meet a NaN maximum;
    - ``"plain"``: the maxima only, when no gradient is wanted.
    """
    if not wants_grad:
        return "plain", _max(xp, g), None
    if tiled(g):
        if g.kernel == (2, 2) and (y := max_2x2(xp)) is not None:
            return "pairs", y, None
        if (found := max_tiled(xp, g)) is not None:
            return "tiled", *found
    return "indexed", *_max_with_index(xp, g)


def max_pool2d(
    x: Any, pool_size: Any = 2, *, stride: Any = None, padding: Any = 0, dilation: Any = 1,
    ceil_mode: bool = False,
) -> Any:
    """The maximum of each (dilated) window, per channel.

    Arguments:
        x: ``(N, H, W, C)`` or ``(H, W, C)``; float32 or float64.
        pool_size, dilation: int or ``(ph, pw)``, each >= 1.
        stride: int or pair; None means ``pool_size``.
        padding: an int, ``(ph, pw)``, ``((top, bottom), (left, right))``, ``"valid"`` or
            ``"same"``; each pad at most ``pool_size // 2``. Pads hold -inf, never zeros.
        ceil_mode: round the output size up (PyTorch's rule: the last window must start
            inside the input or its top/left padding).

    Returns:
        ``(N, H_out, W_out, C)`` (or unbatched), with
        ``H_out = floor((H + top + bottom - dilation * (ph - 1) - 1) / stride) + 1``
        (ceil with ``ceil_mode``). The gradient of each window goes to its first maximum in
        row-major window order, as PyTorch's.
    """
    xa = _args.float_array(data(x), "x")
    g = pool_geometry(xa.shape, pool_size, stride=stride, padding=padding,
                      dilation=dilation, ceil_mode=ceil_mode)
    xp = _padded(xa if g.batched else xa[None], g, -np.inf)
    path, y, index = _max_forward(xp, g, needs_grad(x))
    xp_shape = xp.shape
    del xp

    def backward(grad: np.ndarray) -> tuple[np.ndarray]:
        g4 = grad if g.batched else grad[None]
        if path == "pairs":  # the maxima found again in the (unpadded) input
            dxp = max_2x2_backward(g4.astype(xa.dtype, copy=False),
                                   xa if g.batched else xa[None], y)
        elif path == "tiled":
            dxp = max_tiled_backward(g4.astype(xa.dtype, copy=False), index, g, xp_shape)
        else:  # "indexed"
            dxp = np.zeros(xp_shape, dtype=xa.dtype)
            for t, window in _taps(g):
                dxp[window] += (index == t) * g4  # a product: many times faster than np.where
        dx = _unpadded(dxp, g)
        return (dx if g.batched else dx[0],)

    return record(y if g.batched else y[0], (x,), backward)


def _window_counts(g: PoolGeometry, count_include_pad: bool, dtype: np.dtype) -> np.ndarray:
    """``(H_out, W_out, 1)``: how many pixels each window averages over. The overhang past
    the padded input never counts; the padding counts with ``count_include_pad``."""
    counts = []
    for n, k, s, (p0, p1), o in zip(g.input_shape[-3:-1], g.kernel, g.stride, g.pads,
                                    g.out_hw):
        start = np.arange(o) * s - p0
        if count_include_pad:
            counts.append(np.minimum(start + k, n + p1) - start)
        else:
            counts.append(np.minimum(start + k, n) - np.maximum(start, 0))
    return (counts[0][:, None] * counts[1][None, :]).astype(dtype)[:, :, None]


def avg_pool2d(
    x: Any, pool_size: Any = 2, *, stride: Any = None, padding: Any = 0,
    ceil_mode: bool = False, count_include_pad: bool = True,
) -> Any:
    """The mean of each window, per channel.

    Arguments:
        x: ``(N, H, W, C)`` or ``(H, W, C)``; float32 or float64.
        pool_size: int or ``(ph, pw)``, each >= 1.
        stride: int or pair; None means ``pool_size``.
        padding: as ``max_pool2d``; pads hold zeros.
        ceil_mode: as ``max_pool2d``; the overhang past the padded input never counts.
        count_include_pad: whether padded zeros count in the divisor (PyTorch's default).
            Keras' ``padding="same"`` averages exclude them: pass False for that.

    Returns:
        ``(N, H_out, W_out, C)`` (or unbatched), sized as ``max_pool2d`` with dilation 1.
    """
    xa = _args.float_array(data(x), "x")
    g = pool_geometry(xa.shape, pool_size, stride=stride, padding=padding, dilation=1,
                      ceil_mode=ceil_mode)
    count_include_pad = _args.flag(count_include_pad, "count_include_pad")
    xp = _padded(xa if g.batched else xa[None], g, 0.0)
    counts = _window_counts(g, count_include_pad, xa.dtype)
    taps = _taps(g)
    y = xp[next(taps)[1]].copy()
    for _, window in taps:
        y += xp[window]
    y /= counts
    xp_shape = xp.shape
    del xp

    def backward(grad: np.ndarray) -> tuple[np.ndarray]:
        share = (grad if g.batched else grad[None]) / counts
        dxp = np.zeros(xp_shape, dtype=xa.dtype)
        for _, window in _taps(g):
            dxp[window] += share
        dx = _unpadded(dxp, g)
        return (dx if g.batched else dx[0],)

    return record(y if g.batched else y[0], (x,), backward)


def _image(x: Any) -> np.ndarray:
    xa = _args.float_array(data(x), "x")
    _args.rank(xa.shape, "x", _args.IMAGE)
    _args.pixels(xa.shape, "x")
    return xa


def global_avg_pool2d(x: Any) -> Any:
    """The mean over all pixels, per channel: ``(N, H, W, C) -> (N, C)`` (Keras'
    GlobalAveragePooling2D), or ``(H, W, C) -> (C,)``."""
    xa = _image(x)
    h, w = xa.shape[-3:-1]

    def backward(grad: np.ndarray) -> tuple[np.ndarray]:
        share = grad[..., None, None, :] / (h * w)
        return (np.broadcast_to(share, xa.shape).astype(xa.dtype),)

    return record(xa.mean(axis=(-3, -2)), (x,), backward)


def global_max_pool2d(x: Any) -> Any:
    """The maximum over all pixels, per channel: ``(N, H, W, C) -> (N, C)``, or
    ``(H, W, C) -> (C,)``. The gradient goes to the first maximum in row-major order, or
    to the last NaN where there is one (PyTorch's rule)."""
    xa = _image(x)
    flat = xa.reshape(*xa.shape[:-3], xa.shape[-3] * xa.shape[-2], xa.shape[-1])
    first = np.argmax(flat, axis=-2)  # the first NaN, where there is one
    nan = np.isnan(flat)
    if nan.any():
        last_nan = flat.shape[-2] - 1 - np.argmax(nan[..., ::-1, :], axis=-2)
        first = np.where(nan.any(axis=-2), last_nan, first)
    index = np.expand_dims(first, -2)
    y = np.take_along_axis(flat, index, axis=-2)[..., 0, :]

    def backward(grad: np.ndarray) -> tuple[np.ndarray]:
        dflat = np.zeros_like(flat)
        np.put_along_axis(dflat, index, grad[..., None, :], axis=-2)
        return (dflat.reshape(xa.shape),)

    return record(y, (x,), backward)


__all__ = ["avg_pool2d", "global_avg_pool2d", "global_max_pool2d", "max_pool2d"]
