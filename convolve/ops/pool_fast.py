"""Max pooling's fast paths for non-overlapping windows: tiled windows, and 2x2 stride 2.

Both work in blocks of output rows that stay in cache, split over ``runtime.parallel``'s
threads, and give up (return None) on a NaN maximum, whose PyTorch rule (the last NaN)
the general path keeps.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from convolve.ops.algorithms._common import blocks
from convolve.runtime import parallel, scratch
from convolve.shapes import PoolGeometry


def tiled(g: PoolGeometry) -> bool:
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


def max_tiled(xp: np.ndarray, g: PoolGeometry) -> tuple[np.ndarray, np.ndarray] | None:
    """Non-overlapping windows without padding: the maxima by ``maximum`` over the taps,
    and the first maximum's tap as the count of taps passed before one equals it (whole-
    array arithmetic; ``copyto(..., where=)`` took 10x longer per pass). Blocks of rows
    that stay in cache through the dozen passes, split over threads, made it 3x faster
    than whole-array passes. None when a maximum is NaN, whose PyTorch rule (the last
    NaN) the general path (``pool._max_with_index``) keeps."""
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


def max_tiled_backward(grad: np.ndarray, index: np.ndarray, g: PoolGeometry,
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


def max_2x2(x: np.ndarray) -> np.ndarray | None:
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
            rows = scratch("pool_fast.max_2x2.rows", (n1 - n0, h1 - h0, *xb.shape[3:]), x.dtype)
            np.maximum(xb[:, :, 0], xb[:, :, 1], out=rows)
            yb = np.maximum(rows[..., 0, :], rows[..., 1, :], out=y[n0:n1, h0:h1])
            if np.isnan(yb.max(initial=-np.inf)):
                nan.append(True)
                return

    parallel(run, _pair_blocks(x, out_hw))
    return None if nan else y


def max_2x2_backward(grad: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)``: ``grad: (N, H // 2, W // 2, C)`` sent to the first maximum, in
    row-major window order, of each 2x2 window of ``x: (N, H, W, C)`` whose maxima
    ``max_2x2`` gave as ``y`` (no NaN).

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
            spread = scratch("pool_fast.max_2x2_backward.spread",
                             (n1 - n0, h1 - h0, 1, *xb.shape[3:]), y.dtype)
            np.copyto(spread, yb[:, :, None, :, None])
            first = np.equal(xb, spread, out=scratch("pool_fast.max_2x2_backward.first",
                                                     xb.shape, bool))
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
        "pool_fast.first_of_ties.beaten", (n - c,), bool))
    np.greater(flat[c:], beaten, out=flat[c:])
    # the bottom row loses to a True anywhere in the top row, found at the top left
    top = np.logical_or(flat[:-c], flat[c:], out=beaten)
    np.logical_and(top, top_left[:-c], out=top)
    np.greater(flat[length:], top[:n - length], out=flat[length:])
    np.greater(flat[length + c:], top[:n - length - c], out=flat[length + c:])
