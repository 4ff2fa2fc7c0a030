"""Direct convolution: one grouped product per kernel tap, accumulated.

Tap ``(r, s)`` reads a strided slice of the padded input, ``(N, H_out, W_out, C_in)``, and
multiplies it by ``w[r, s]: (C_in // groups, C_out)``. No patch matrix; the workspace is
one slice and one product. Good for depthwise and few-channel convolutions.

With one input and one output channel per group (single-channel image filtering and
depthwise convolutions) the products are per-channel scalings, done as shift-and-add in
blocks of output rows small enough to stay in cache through all the taps (streaming the
whole image through memory once per tap made 3x3 filtering 3-4x slower). Kernels of rank
one (box, Gaussian, Sobel, Prewitt, Scharr) run as a column pass and a row pass,
``KH + KW`` taps instead of ``KH * KW``. Taps of weight 0 are skipped and weights of +-1
add without multiplying.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convolve.ops.algorithms._common import (
    grouped_matmul,
    grouped_weight_transpose,
    parallel,
    spread_gradient,
    tap_slice,
)

# Bytes of one row block: a few blocks (input rows, partial sums, output) fit in L2.
BLOCK_BYTES = 1 << 19
# Kernels shared by all channels, not of rank one, from this many taps: banded GEMMs.
BANDED_MIN_TAPS = 36
BAND_ROWS = 8
BAND_CHUNK_BYTES = 2 << 20


def forward(xp: np.ndarray, w: np.ndarray, *, stride: tuple[int, int],
            dilation: tuple[int, int], groups: int, out_hw: tuple[int, int]) -> np.ndarray:
    kh, kw = w.shape[:2]
    if w.shape[2] == 1 and w.shape[3] == groups:
        return _depthwise(xp, w[:, :, 0, :], stride, dilation, out_hw)
    y = np.zeros((xp.shape[0], *out_hw, w.shape[3]), dtype=xp.dtype)
    for r in range(kh):
        for s in range(kw):
            y += grouped_matmul(xp[tap_slice(r, s, out_hw, stride, dilation)], w[r, s], groups)
    return y


def grad_weight(xp: np.ndarray, g: np.ndarray, *, w_shape: tuple[int, ...],
                stride: tuple[int, int], dilation: tuple[int, int],
                groups: int) -> np.ndarray:
    kh, kw, cg, c_out = w_shape
    og = c_out // groups
    out_hw = g.shape[1:3]
    g3 = g.reshape(-1, groups, og).transpose(1, 0, 2)  # (groups, M, og)
    dw = np.empty(w_shape, dtype=xp.dtype)
    for r in range(kh):
        for s in range(kw):
            x_tap = xp[tap_slice(r, s, out_hw, stride, dilation)].reshape(-1, groups, cg)
            product = np.matmul(x_tap.transpose(1, 2, 0), g3)  # (groups, cg, og)
            dw[r, s] = product.transpose(1, 0, 2).reshape(cg, c_out)
    return dw


def grad_input(g: np.ndarray, w: np.ndarray, *, xp_shape: tuple[int, ...],
               stride: tuple[int, int], dilation: tuple[int, int],
               groups: int) -> np.ndarray:
    kh, kw = w.shape[:2]
    out_hw = g.shape[1:3]
    if w.shape[2] == 1 and w.shape[3] == groups and stride == (1, 1):
        # the transposed correlation is itself depthwise: g padded by the kernel's span
        return _depthwise(spread_gradient(g, w.shape[:2], dilation, xp_shape),
                          w[::-1, ::-1, 0, :], stride, dilation, tuple(xp_shape[1:3]))
    dxp = np.zeros(xp_shape, dtype=g.dtype)
    for r in range(kh):
        for s in range(kw):
            w_t = grouped_weight_transpose(w[r, s], groups)
            dxp[tap_slice(r, s, out_hw, stride, dilation)] += grouped_matmul(g, w_t, groups)
    return dxp


def _depthwise(xp: np.ndarray, k: np.ndarray, stride: tuple[int, int],
               dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """``xp: (N, Hp, Wp, C)`` correlated channel by channel with ``k: (KH, KW, C)``."""
    n, _, wp, c = xp.shape
    kh, kw = k.shape[:2]
    (sh, sw), (dh, dw) = stride, dilation
    ho, wo = out_hw
    factors = rank_one_factors(k)
    shared = bool(np.all(k == k[:, :, :1]))
    if factors is None and shared and stride == (1, 1) and kh * kw >= BANDED_MIN_TAPS:
        return _banded(xp, k[:, :, 0], dilation, out_hw)
    y = np.empty((n, ho, wo, c), dtype=xp.dtype)
    rows = max(1, BLOCK_BYTES // (wp * c * xp.itemsize))
    cols = [slice(s * dw, s * dw + (wo - 1) * sw + 1, sw) for s in range(kw)]
    if factors is None:
        weights = [_weight(k[r, s]) for r in range(kh) for s in range(kw)]
    else:
        col_weights = [_weight(v) for v in factors[0]]
        row_weights = [_weight(v) for v in factors[1]]

    def run(blocks: list[tuple[int, int, int]]) -> None:
        partial_rows = np.empty((rows, wp, c), dtype=xp.dtype)
        scratch = np.empty((rows, wp, c), dtype=xp.dtype)
        for b, i0, i1 in blocks:
            out = y[b, i0:i1]
            taps = [xp[b, i0 * sh + r * dh:(i1 - 1) * sh + r * dh + 1:sh] for r in range(kh)]
            if factors is None:
                _accumulate(out, weights, [t[:, s] for t in taps for s in cols], scratch)
            else:
                partial = partial_rows[:i1 - i0]
                _accumulate(partial, col_weights, taps, scratch)
                _accumulate(out, row_weights, [partial[:, s] for s in cols], scratch)

    parallel(run, [(b, i0, min(ho, i0 + rows)) for b in range(n) for i0 in range(0, ho, rows)])
    return y


def _banded(xp: np.ndarray, k: np.ndarray, dilation: tuple[int, int],
             out_hw: tuple[int, int]) -> np.ndarray:
    """Stride-1 correlation of every channel of ``xp: (N, Hp, Wp, C)`` with one kernel
    ``k: (KH, KW)``, as matrix products.

    For ``BAND_ROWS`` output rows, ``Z[s] = band_s @ X`` mixes the input rows they read
    (``band_s[i, i + r * dH] = k[r, s]``, one banded matrix per kernel column ``s``) over
    whole rows of ``Wp * C`` values; the output rows are then ``sum_s Z[s]`` shifted by
    ``s * dW`` pixels. The ``KW`` band matrices are stacked into one, and many row blocks
    laid side by side, so one GEMM serves a large chunk of the image: few BLAS calls
    (thousands of small ones stalled on a busy machine, each waiting for BLAS's second
    thread). The bands cost ``2 * KW * (BAND_ROWS + dH * (KH - 1))`` multiply-adds per
    pixel instead of ``KH * KW``, paid back by BLAS's speed from 6x6 up (2048^2 7x7, one
    thread: 40 ms, against 77 ms for shift-and-add; 2 MB chunks measured best, 16 MB
    ran 1.8x slower). On a loaded machine BLAS's threads still stall now and then.
    """
    n, hp, wp, c = xp.shape
    kh, kw = k.shape
    dh, dw = dilation
    ho, wo = out_hw
    span = dh * (kh - 1)
    rows = BAND_ROWS
    band = np.zeros((kw, rows, rows + span), dtype=xp.dtype)
    for r in range(kh):
        for i in range(rows):
            band[:, i, i + r * dh] = k[r]
    width = wp * c
    y = np.empty((n, ho, wo, c), dtype=xp.dtype)
    per_chunk = max(1, BAND_CHUNK_BYTES // (kw * rows * width * xp.itemsize))
    for b in range(n):
        image = xp[b].reshape(hp, width)
        full = ho // rows
        for g0 in range(0, full, per_chunk):
            g1 = min(full, g0 + per_chunk)
            blocks = as_strided(image[g0 * rows:], (rows + span, g1 - g0, width),
                                (image.strides[0], rows * image.strides[0], image.strides[1]),
                                writeable=False)
            z = band.reshape(kw * rows, -1) @ np.ascontiguousarray(blocks).reshape(
                rows + span, -1)
            _shift_sum(y[b, g0 * rows:g1 * rows].reshape(g1 - g0, rows, wo * c),
                       z.reshape(kw, rows, g1 - g0, width).transpose(0, 2, 1, 3), dw * c)
        if full * rows < ho:
            rest = ho - full * rows
            z = band[:, :rest, :rest + span].reshape(kw * rest, -1) @ image[full * rows:]
            _shift_sum(y[b, full * rows:].reshape(1, rest, wo * c),
                       z.reshape(kw, 1, rest, width), dw * c)
    return y


def _shift_sum(out: np.ndarray, z: np.ndarray, step: int) -> None:
    """``out = sum_s z[s][..., s * step : s * step + out.shape[-1]]``."""
    size = out.shape[-1]
    np.copyto(out, z[0][..., :size])
    for s in range(1, z.shape[0]):
        np.add(out, z[s][..., s * step:s * step + size], out=out)


def rank_one_factors(k: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(col: (KH, C), row: (KW, C))`` with ``k[r, s, c] = col[r, c] * row[s, c]`` to
    rounding, or None when some channel's kernel is not of rank one (or when one pass
    would do: a single row or column)."""
    kh, kw = k.shape[:2]
    if kh == 1 or kw == 1:
        return None
    u, sv, vt = np.linalg.svd(k.transpose(2, 0, 1).astype(np.float64))
    if np.any(sv[:, 1] > 8 * np.finfo(k.dtype).eps * sv[:, 0]):
        return None
    scale = np.sqrt(sv[:, 0])
    col = (u[:, :, 0] * scale[:, None]).T
    row = (vt[:, 0, :] * scale[:, None]).T
    return col.astype(k.dtype), row.astype(k.dtype)


def _weight(w: np.ndarray) -> Any:
    """A tap's per-channel weights ``(C,)``, or one scalar when all channels share it."""
    return w[0] if np.all(w == w[0]) else w


def _accumulate(out: np.ndarray, weights: list, views: list, scratch: np.ndarray) -> None:
    """``out = sum(weight * view)``; scalar weights 0 are skipped, +-1 add or subtract."""
    first = True
    tmp = scratch.reshape(-1)[:out.size].reshape(out.shape)
    for weight, view in zip(weights, views):
        scalar = weight.ndim == 0
        if scalar and weight == 0:
            continue
        if first:
            if scalar and weight == 1:
                np.copyto(out, view)
            elif scalar and weight == -1:
                np.negative(view, out=out)
            else:
                np.multiply(view, weight, out=out)
            first = False
        elif scalar and weight == 1:
            np.add(out, view, out=out)
        elif scalar and weight == -1:
            np.subtract(out, view, out=out)
        else:
            np.multiply(view, weight, out=tmp)
            np.add(out, tmp, out=out)
    if first:
        out.fill(0)
