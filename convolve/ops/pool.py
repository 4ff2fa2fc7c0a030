"""Max and average pooling of channels-last images, each forward beside its backward.

Tap ``(r, c)`` of every window is one strided slice of the padded input, so the loops run
over the few taps of the pool, never over pixels. Max pooling pads with -inf; ceil_mode's
overhang past the padded input is padded the same way and never counted.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from convolve import _args
from convolve.ops.algorithms._common import blocks, tap_slice
from convolve.runtime import parallel, scratch
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


def _tiled(g: PoolGeometry) -> bool:
    """Whether the fast path applies: non-overlapping windows (stride = pool size, no
    dilation) on the unpadded input."""
    return (g.stride == g.kernel and g.dilation == (1, 1)
            and not any(g.pads[0] + g.pads[1] + g.overhang))


def _tiles(xp: np.ndarray, g: PoolGeometry) -> np.ndarray:
    """``(N, H_out, KH, W_out, KW, C)``: the windows of a non-overlapping pool, a view."""
    (oh, ow), (kh, kw) = g.out_hw, g.kernel
    return xp[:, :oh * kh, :ow * kw].reshape(xp.shape[0], oh, kh, ow, kw, xp.shape[3])


def _tile_taps(t: np.ndarray) -> list[np.ndarray]:
    """The taps of tiles ``(..., KH, W_out, KW, C)`` in window order, each a view
    ``(..., W_out, C)``."""
    return [t[..., r, :, c, :] for r in range(t.shape[-4]) for c in range(t.shape[-2])]


# Output rows per block of the tiled fast path: every pass over a block stays in cache.
BLOCK_BYTES = 1 << 18


def _tile_blocks(g: PoolGeometry, itemsize: int) -> list[tuple[int, int, int]]:
    """``(image, first, stop)`` output-row blocks of about ``BLOCK_BYTES`` of input."""
    n, c = g.input_shape[0] if g.batched else 1, g.input_shape[-1]
    (oh, ow), (kh, kw) = g.out_hw, g.kernel
    rows = max(1, BLOCK_BYTES // (kh * kw * ow * c * itemsize))
    return [(b, i, min(oh, i + rows)) for b in range(n) for i in range(0, oh, rows)]


def _max_tiled(xp: np.ndarray, g: PoolGeometry) -> tuple[np.ndarray, np.ndarray] | None:
    """Non-overlapping windows without padding: the maxima by ``maximum`` over the taps,
    and the first maximum's tap as the count of taps passed before one equals it (whole-
    array arithmetic; ``copyto(..., where=)`` took 10x longer per pass). Blocks of rows
    that stay in cache through the dozen passes, split over threads, made it 3x faster
    than whole-array passes. None when a maximum is NaN, whose PyTorch rule (the last
    NaN) ``_max_with_index`` keeps."""
    tiles = _tiles(xp, g)
    y = np.empty((xp.shape[0], *g.out_hw, xp.shape[3]), dtype=xp.dtype)
    index = np.empty(y.shape, dtype=np.min_scalar_type(g.kernel[0] * g.kernel[1]))
    nan = []

    def run(blocks: list[tuple[int, int, int]]) -> None:
        for b, i0, i1 in blocks:
            taps = _tile_taps(tiles[b, i0:i1])
            best, at = y[b, i0:i1], index[b, i0:i1]
            np.maximum(taps[0], taps[1], out=best) if len(taps) > 1 else np.copyto(
                best, taps[0])
            for v in taps[2:]:
                np.maximum(best, v, out=best)
            if np.isnan(best).any():
                nan.append(True)
                return
            at.fill(0)
            found = taps[0] == best
            missing = np.empty_like(found)
            for v in taps[1:]:
                np.add(at, np.logical_not(found, out=missing), out=at)
                found |= v == best

    parallel(run, _tile_blocks(g, xp.itemsize))
    return None if nan else (y, index)


def _max_tiled_backward(grad: np.ndarray, index: np.ndarray, g: PoolGeometry,
                        xp_shape: tuple[int, ...]) -> np.ndarray:
    """Each tap of each window gets the window's gradient where it held the first
    maximum, zero elsewhere: written once, block by block."""
    (oh, ow), (kh, kw) = g.out_hw, g.kernel
    covered = xp_shape[1:3] == (oh * kh, ow * kw)
    dxp = (np.empty if covered else np.zeros)(xp_shape, dtype=grad.dtype)
    tiles = _tiles(dxp, g)

    def run(blocks: list[tuple[int, int, int]]) -> None:
        for b, i0, i1 in blocks:
            gb, at = grad[b, i0:i1], index[b, i0:i1]
            for t, target in enumerate(_tile_taps(tiles[b, i0:i1])):
                np.multiply(gb, at == t, out=target)

    parallel(run, _tile_blocks(g, grad.itemsize))
    return dxp


# Input bytes per block of the 2x2 path. Each block is a few NumPy calls on strided views,
# and each such call costs microseconds: with 64 KB blocks 64x32x32x32 forward+backward
# took twice as long as with 1 MB ones; 4 MB blocks were no faster (noisy 2-core machine).
PAIR_BLOCK_BYTES = 1 << 20


def _pairs(a: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """``(N, H_out, 2, W_out, 2, C)``: the 2x2 stride-2 windows of ``a: (N, H, W, C)``, a
    view (an odd last row or column is in none). In NHWC a window's two rows are whole
    contiguous image rows and its two columns are adjacent ``C``-blocks."""
    (oh, ow), (n, c) = out_hw, (a.shape[0], a.shape[3])
    return a[:, :2 * oh, :2 * ow].reshape(n, oh, 2, ow, 2, c)


def _pair_blocks(x: np.ndarray, out_hw: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """``(n0, n1, h0, h1)`` blocks of output rows with about ``PAIR_BLOCK_BYTES`` of input."""
    (oh, ow), (n, c) = out_hw, (x.shape[0], x.shape[3])
    return list(blocks(n, oh, 4 * ow * c * x.itemsize, PAIR_BLOCK_BYTES))


def _max_2x2(x: np.ndarray) -> np.ndarray | None:
    """``(N, H // 2, W // 2, C)``: the maxima of the 2x2 stride-2 windows of
    ``x: (N, H, W, C)``; None when one is NaN (the general path keeps PyTorch's NaN rule).

    Per block, on ``parallel``'s threads: the maximum of each row pair (long contiguous
    rows), then of each column pair. Nothing else is kept for the backward."""
    out_hw = (x.shape[1] // 2, x.shape[2] // 2)
    windows = _pairs(x, out_hw)
    y = np.empty((x.shape[0], *out_hw, x.shape[3]), dtype=x.dtype)
    nan = []

    def run(parts: list[tuple[int, int, int, int]]) -> None:
        for n0, n1, h0, h1 in parts:
            xb = windows[n0:n1, h0:h1]
            rows = scratch("pool.max_2x2.rows", (n1 - n0, h1 - h0, *xb.shape[3:]), x.dtype)
            np.maximum(xb[:, :, 0], xb[:, :, 1], out=rows)
            yb = np.maximum(rows[..., 0, :], rows[..., 1, :], out=y[n0:n1, h0:h1])
            if np.isnan(yb.max(initial=-np.inf)):
                nan.append(True)
                return

    parallel(run, _pair_blocks(x, out_hw))
    return None if nan else y


def _max_2x2_backward(grad: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)``: ``grad: (N, H // 2, W // 2, C)`` sent to the first maximum, in
    row-major window order, of each 2x2 window of ``x: (N, H, W, C)`` whose maxima
    ``_max_2x2`` gave as ``y`` (no NaN).

    Recomputed from ``x`` and ``y`` rather than kept from the forward: per block, where
    ``x`` equals its window's maximum (``y`` spread over the window once), ties reduced
    to the first, then ``grad`` spread the same way times that mask; each pass reads or
    writes the block in order. Ties (common after a ReLU) cost six passes over the mask
    (``_first_of_ties``), only in blocks that have one."""
    out_hw = grad.shape[1:3]
    dx = np.empty(x.shape, dtype=grad.dtype)
    windows, dwindows = _pairs(x, out_hw), _pairs(dx, out_hw)

    def run(parts: list[tuple[int, int, int, int]]) -> None:
        for n0, n1, h0, h1 in parts:
            xb, yb = windows[n0:n1, h0:h1], y[n0:n1, h0:h1]
            spread = scratch("pool.max_2x2_backward.spread", (n1 - n0, h1 - h0, 1, *xb.shape[3:]),
                             y.dtype)
            np.copyto(spread, yb[:, :, None, :, None])
            first = np.equal(xb, spread, out=scratch("pool.max_2x2_backward.first", xb.shape,
                                                     bool))
            if np.count_nonzero(first) != yb.size:
                _first_of_ties(first)
            np.copyto(spread, grad[n0:n1, h0:h1, None, :, None])
            np.multiply(spread, first, out=dwindows[n0:n1, h0:h1])

    parallel(run, _pair_blocks(x, out_hw))
    dx[:, 2 * out_hw[0]:] = 0  # an odd last row or column is in no window
    dx[:, :, 2 * out_hw[1]:] = 0
    return dx


@functools.lru_cache(maxsize=4)
def _tie_patterns(c: int, length: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For ``size`` flags laid out as ``(..., 2, W_out, 2, C)`` with ``length = W_out * 2
    * C``: where the right columns are, and where the top rows' left columns are."""
    at = np.arange(size)
    right = (at // c) % 2 == 1
    top_left = ~right & ((at // length) % 2 == 0)
    right.flags.writeable = top_left.flags.writeable = False
    return right, top_left


def _first_of_ties(maxima: np.ndarray) -> None:
    """Keep, in place, only the first True of each window of ``maxima:
    (..., 2, W_out, 2, C)`` (contiguous) in row-major window order.

    On the flags as one flat array, a window's right column is ``C`` flags after its left
    and its bottom row ``W_out * 2 * C`` after its top: shifted whole-array operations,
    masked by fixed patterns, replace strided ones on ``C`` flags at a time (a third of
    the time on a block of 32 rows of 16x32 windows, measured)."""
    c, length = maxima.shape[-1], math.prod(maxima.shape[-3:])
    flat = maxima.reshape(-1)
    n = flat.size
    right, top_left = _tie_patterns(c, length, n)
    # a right column loses to a True left column in its row
    beaten = np.logical_and(flat[:-c], right[c:], out=scratch(
        "pool.first_of_ties.beaten", (n - c,), bool))
    np.greater(flat[c:], beaten, out=flat[c:])
    # the bottom row loses to a True anywhere in the top row, found at the top left
    top = np.logical_or(flat[:-c], flat[c:], out=beaten)
    np.logical_and(top, top_left[:-c], out=top)
    np.greater(flat[length:], top[:n - length], out=flat[length:])
    np.greater(flat[length + c:], top[:n - length - c], out=flat[length + c:])


def _max(xp: np.ndarray, g: PoolGeometry) -> np.ndarray:
    taps = _taps(g)
    y = xp[next(taps)[1]].copy()
    for _, window in taps:
        np.maximum(y, xp[window], out=y)
    return y


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
    pairs = (_tiled(g) and g.kernel == (2, 2) and needs_grad(x)
             and (y := _max_2x2(xp)) is not None)
    tiled = (not pairs and _tiled(g) and needs_grad(x)
             and (found := _max_tiled(xp, g)) is not None)
    if pairs:
        index = None  # the backward finds the maxima again in the (unpadded) input
    elif tiled:
        y, index = found
    elif needs_grad(x):
        y, index = _max_with_index(xp, g)
    else:
        y, index = _max(xp, g), None
    xp_shape = xp.shape
    del xp

    def backward(grad: np.ndarray) -> tuple[np.ndarray]:
        g4 = grad if g.batched else grad[None]
        if pairs:
            dxp = _max_2x2_backward(g4.astype(xa.dtype, copy=False),
                                    xa if g.batched else xa[None], y)
        elif tiled:
            dxp = _max_tiled_backward(g4.astype(xa.dtype, copy=False), index, g, xp_shape)
        else:
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
    ``(H, W, C) -> (C,)``. The gradient goes to the first maximum in row-major order."""
    xa = _image(x)
    flat = xa.reshape(*xa.shape[:-3], -1, xa.shape[-1])
    index = np.expand_dims(np.argmax(flat, axis=-2), -2)
    y = np.take_along_axis(flat, index, axis=-2)[..., 0, :]

    def backward(grad: np.ndarray) -> tuple[np.ndarray]:
        dflat = np.zeros_like(flat)
        np.put_along_axis(dflat, index, grad[..., None, :], axis=-2)
        return (dflat.reshape(xa.shape),)

    return record(y, (x,), backward)


__all__ = ["avg_pool2d", "global_avg_pool2d", "global_max_pool2d", "max_pool2d"]
