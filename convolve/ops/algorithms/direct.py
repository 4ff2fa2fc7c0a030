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

from convolve.ops.algorithms._common import (
    grouped_matmul,
    grouped_weight_transpose,
    parallel,
    tap_slice,
)

# Bytes of one row block: a few blocks (input rows, partial sums, output) fit in L2.
BLOCK_BYTES = 1 << 19


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
        eh, ew = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
        gp = np.pad(g, ((0, 0), (eh, eh), (ew, ew), (0, 0)))
        return _depthwise(gp, w[::-1, ::-1, 0, :], stride, dilation, tuple(xp_shape[1:3]))
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
    y = np.empty((n, ho, wo, c), dtype=xp.dtype)
    factors = rank_one_factors(k)
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
