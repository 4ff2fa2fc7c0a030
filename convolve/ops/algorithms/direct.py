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

from convolve._args import Pads
from convolve.ops.algorithms._common import (
    grouped_matmul,
    grouped_weight_transpose,
    parallel,
    run_chunks,
    scratch,
    tap_slice,
)
from convolve.ops.pad import border_columns, pad, pad_columns, pad_rows

# forward takes the input unpadded, with its pads and mode (conv2d pads for the others).
pads_input = True
# Bytes of one row block: a few blocks (input rows, partial sums, output) fit in L2.
BLOCK_BYTES = 1 << 19
# Kernels shared by all channels, not of rank one, from this many taps: banded GEMMs.
BANDED_MIN_TAPS = 9
BAND_ROWS = 4
NO_PADS: Pads = ((0, 0), (0, 0))
BAND_CHUNK_BYTES = 2 << 20


def forward(x: np.ndarray, w: np.ndarray, *, stride: tuple[int, int],
            dilation: tuple[int, int], groups: int, out_hw: tuple[int, int],
            pads: Pads = NO_PADS, mode: str = "zeros") -> np.ndarray:
    """``x: (N, H, W, C_in)`` padded by ``pads`` in ``mode`` (here: depthwise filtering
    pads row block by row block), correlated with ``w: (KH, KW, C_in // groups, C_out)``."""
    kh, kw = w.shape[:2]
    if w.shape[2] == 1 and w.shape[3] == groups:
        return _depthwise(x, w[:, :, 0, :], pads, mode, stride, dilation, out_hw)
    xp = pad(x, pads, mode)
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
        # before, and after as far as makes ``xp_shape`` (more where rows were not read)
        eh, ew = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
        pads = ((eh, xp_shape[1] - out_hw[0]), (ew, xp_shape[2] - out_hw[1]))
        return _depthwise(g, w[::-1, ::-1, 0, :], pads, "zeros", stride, dilation,
                          tuple(xp_shape[1:3]))
    dxp = np.zeros(xp_shape, dtype=g.dtype)
    for r in range(kh):
        for s in range(kw):
            w_t = grouped_weight_transpose(w[r, s], groups)
            dxp[tap_slice(r, s, out_hw, stride, dilation)] += grouped_matmul(g, w_t, groups)
    return dxp


def _depthwise(x: np.ndarray, k: np.ndarray, pads: Pads, mode: str,
               stride: tuple[int, int], dilation: tuple[int, int],
               out_hw: tuple[int, int]) -> np.ndarray:
    """``x: (N, H, W, C)`` padded by ``pads`` in ``mode`` and correlated channel by channel
    with ``k: (KH, KW, C)``, giving ``(N, H_out, W_out, C)``.

    Each block of output rows pads the input rows it reads into a buffer that stays in
    cache (``pad_rows``), so the image is read from memory once and no padded copy of it
    is written."""
    n, _, wd, c = x.shape
    (top, bottom), (left, right) = pads
    wp = wd + left + right
    kh, kw = k.shape[:2]
    (sh, sw), (dh, dw) = stride, dilation
    ho, wo = out_hw
    factors = rank_one_factors(k)
    shared = bool(np.all(k == k[:, :, :1]))
    if factors is None and shared and stride == (1, 1) and kh * kw >= BANDED_MIN_TAPS:
        return _banded(x, k[:, :, 0], pads, mode, dilation, out_hw)
    y = np.empty((n, ho, wo, c), dtype=x.dtype)
    rows = max(1, BLOCK_BYTES // (wp * c * x.itemsize))
    cols = [slice(s * dw, s * dw + (wo - 1) * sw + 1, sw) for s in range(kw)]
    if factors is None:
        weights = [_weight(k[r, s]) for r in range(kh) for s in range(kw)]
    else:
        col_weights = [_weight(v) for v in factors[0]]
        row_weights = [_weight(v) for v in factors[1]]
    padded = any(pads[0] + pads[1])
    columns = border_columns(wd, (left, right), mode)

    def run(blocks: list[tuple[int, int, int]]) -> None:
        reach = (rows - 1) * sh + (kh - 1) * dh + 1
        window = scratch("direct.depthwise.window", (reach, wp, c), x.dtype)
        partial_rows = scratch("direct.depthwise.partial", (rows, wp, c), x.dtype)
        tmp = scratch("direct.depthwise.tmp", (rows, wp, c), x.dtype)
        for b, i0, i1 in blocks:
            reach = (i1 - i0 - 1) * sh + (kh - 1) * dh + 1
            if padded:
                xb = window[:reach]
                pad_rows(x[b], range(i0 * sh, i0 * sh + reach), (top, bottom), mode,
                         xb[:, left:left + wd])
                pad_columns(xb, columns)
            else:
                xb = x[b, i0 * sh:i0 * sh + reach]
            out = y[b, i0:i1]
            taps = [xb[r * dh:r * dh + (i1 - i0 - 1) * sh + 1:sh] for r in range(kh)]
            if factors is None:
                _accumulate(out, weights, [t[:, s] for t in taps for s in cols], tmp)
            else:
                partial = partial_rows[:i1 - i0]
                _accumulate(partial, col_weights, taps, tmp)
                _accumulate(out, row_weights, [partial[:, s] for s in cols], tmp)

    parallel(run, [(b, i0, min(ho, i0 + rows)) for b in range(n) for i0 in range(0, ho, rows)])
    return y


def _banded(x: np.ndarray, k: np.ndarray, pads: Pads, mode: str,
            dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Stride-1 correlation of every channel of ``x: (N, H, W, C)``, padded by ``pads``
    in ``mode``, with one kernel ``k: (KH, KW)``, as matrix products.

    For ``R = BAND_ROWS`` output rows, ``Z[s] = band_s @ X`` mixes the ``R + dH * (KH - 1)``
    padded input rows they read (``band_s[i, i + r * dH] = k[r, s]``, one banded matrix
    per kernel column ``s``) over whole rows of ``Wp * C`` values; the output rows are
    then ``sum_s Z[s]`` shifted by ``s * dW`` pixels. The ``KW`` band matrices are
    stacked into one, and the row blocks of a chunk of the image laid side by side in
    one buffer (padded there, ``pad_rows``), so one GEMM serves the chunk; chunks run on
    threads with single-threaded BLAS (``run_chunks``). The bands cost
    ``2 * KW * (R + dH * (KH - 1))`` multiply-adds per pixel instead of ``KH * KW``,
    paid back by BLAS's speed.
    """
    n, h, wd, c = x.shape
    (top, bottom), (left, right) = pads
    wp = wd + left + right
    kh, kw = k.shape
    dh, dw = dilation
    ho, wo = out_hw
    span = dh * (kh - 1)
    rows = BAND_ROWS
    band = np.zeros((kw, rows, rows + span), dtype=x.dtype)
    for r in range(kh):
        for i in range(rows):
            band[:, i, i + r * dh] = k[r]
    width = wp * c
    y = np.empty((n, ho, wo, c), dtype=x.dtype)
    columns = border_columns(wd, (left, right), mode)
    stacked = band.reshape(kw * rows, -1)
    step = rows * max(1, BAND_CHUNK_BYTES // (kw * rows * width * x.itemsize))
    full = ho // rows * rows

    def run(chunks: list[tuple[int, int, int]]) -> None:
        for b, i0, i1 in chunks:
            r = min(rows, i1 - i0)  # fewer in the last block
            count = (i1 - i0) // r
            xb = scratch("direct.banded.x", (r + span, count, wp, c), x.dtype)
            inner = xb[:, :, left:left + wd]
            if top <= i0 and i1 + span <= top + h:  # no padded rows: one copy
                image = x[b, i0 - top:]
                sr = image.strides[0]
                np.copyto(inner, as_strided(image, inner.shape, (sr, r * sr, *image.strides[1:]),
                                            writeable=False))
            else:
                for t in range(r + span):
                    pad_rows(x[b], range(i0 + t, i1 + t, r), (top, bottom), mode, inner[t])
            pad_columns(xb, columns)
            matrix = stacked if r == rows else band[:, :r, :r + span].reshape(kw * r, -1)
            z = scratch("direct.banded.z", (kw * r, count * width), x.dtype)
            np.matmul(matrix, xb.reshape(r + span, -1), out=z)
            _shift_sum(y[b, i0:i1].reshape(count, r, wo * c),
                       z.reshape(kw, r, count, width).transpose(0, 2, 1, 3), dw * c)

    chunks = [(b, i0, min(full, i0 + step)) for b in range(n) for i0 in range(0, full, step)]
    chunks += [(b, full, ho) for b in range(n) if full < ho]
    run_chunks(run, chunks)
    return y


def _shift_sum(out: np.ndarray, z: np.ndarray, step: int) -> None:
    """``out = sum_s z[s][..., s * step : s * step + out.shape[-1]]``."""
    size = out.shape[-1]
    if z.shape[0] == 1:
        np.copyto(out, z[0][..., :size])
        return
    np.add(z[0][..., :size], z[1][..., step:step + size], out=out)
    for s in range(2, z.shape[0]):
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
