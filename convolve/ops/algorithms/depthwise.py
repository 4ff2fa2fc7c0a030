"""Depthwise filtering engine: each channel correlated with its own kernel, in row blocks.

With one input and one output channel per group (single-channel image filtering and
depthwise convolutions) a conv's products are per-channel scalings, done here as
shift-and-add in blocks of output rows that each pad the input rows they read into a
buffer kept in cache (streaming the whole image through memory once per tap made 3x3
filtering 3-4x slower; padding the whole image first cost a copy of it). Kernels of rank
one (box, Gaussian, Sobel, Prewitt, Scharr) run as a column pass and a row pass, ``KH +
KW`` taps instead of ``KH * KW``; taps of equal weight are summed before one scaling,
weights 0 skipped (``depthwise_steps``). One kernel shared by all channels, not of rank
one, from ``BANDED_MIN_TAPS`` taps: banded GEMMs (``_banded``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convolve._args import Pads
from convolve.ops.algorithms.depthwise_steps import Step, run_steps, sum_steps
from convolve.ops.pad import Columns, border_columns, pad_columns, pad_rows
from convolve.runtime import parallel, run_chunks, scratch

# Bytes of one shift-and-add row block. 2048x2048 Gaussians, ms, 1 thread (2 threads),
# 256 KB / 512 KB / 1 MB / 2 MB blocks: 3x3 9.6 (8.0) / 8.7 (6.2) / 8.3 (5.5) / 8.2 (6.2);
# 7x7 15.6 (14.1) / 14.3 (10.6) / 13.9 (9.4) / 13.8 (9.6): smaller blocks pay NumPy's
# per-call cost more often than they gain from the cache.
BLOCK_BYTES = 1 << 20
# Kernels shared by all channels, not of rank one, from this many taps: banded GEMMs of
# BAND_ROWS output rows, a chunk of BAND_CHUNK_BYTES of products at a time. 2048x2048
# 7x7, 1 thread, ms: 4 rows 25.7 (1 MB chunks 28.3, 4 MB 26.1), 2 rows 27.6, 6 rows
# 28.7, 8 rows 27.5. 3x3 stays with shift-and-add (1-D runs): 14.3 ms against 15.2
# banded, 8.8 against 9.6 on 2 threads.
BANDED_MIN_TAPS = 10
BAND_ROWS = 4
BAND_CHUNK_BYTES = 2 << 20


def filter_depthwise(x: np.ndarray, k: np.ndarray, pads: Pads, mode: str,
                     stride: tuple[int, int], dilation: tuple[int, int],
                     out_hw: tuple[int, int]) -> np.ndarray:
    """``x: (N, H, W, C)`` padded by ``pads`` in ``mode`` and correlated channel by channel
    with ``k: (KH, KW, C)``, giving ``(N, H_out, W_out, C)``.

    Each block of output rows pads the input rows it reads into a buffer that stays in
    cache (``pad_rows``), so the image is read from memory once and no padded copy of it
    is written."""
    kh, kw = k.shape[:2]
    factors = rank_one_factors(k)
    shared = bool(np.all(k == k[:, :, :1]))
    if factors is None and shared and stride == (1, 1) and kh * kw >= BANDED_MIN_TAPS:
        return _banded(x, k[:, :, 0], pads, mode, dilation, out_hw)
    if factors is None:
        sums = (sum_steps([_weight(k[r, s]) for r in range(kh) for s in range(kw)],
                          keep_scale=False)[0],)
    else:
        # the column pass leaves out a factor, which the row pass takes on
        col_steps, scale = sum_steps([_weight(v) for v in factors[0]], keep_scale=True)
        row_steps, _ = sum_steps([_weight(v * scale) for v in factors[1]], keep_scale=False)
        sums = (col_steps, row_steps)
    n, _, wd, c = x.shape
    (left, right) = pads[1]
    job = _ShiftAdd(x, pads, mode, stride, dilation, (kh, kw), out_hw, sums,
                    rows=max(1, BLOCK_BYTES // ((wd + left + right) * c * x.itemsize)),
                    columns=border_columns(wd, (left, right), mode))
    y = np.empty((n, *out_hw, c), dtype=x.dtype)
    ho = out_hw[0]
    blocks = [(b, i0, min(ho, i0 + job.rows)) for b in range(n) for i0 in range(0, ho, job.rows)]
    parallel(functools.partial(job.run, y), blocks)
    return y


@dataclass(frozen=True)
class _Pass:
    """One weighted sum of a block: ``steps`` over tap ``views`` into ``target`` (None:
    the output block); ``last``, where the last step writes the output block through
    other views of the accumulator and taps (``(acc_as, views_as)``), else None."""

    steps: list[Step]
    views: list[np.ndarray]
    target: np.ndarray | None
    last: tuple[np.ndarray, list[np.ndarray]] | None = None


@dataclass(frozen=True)
class _ShiftAdd:
    """One shift-and-add filtering: its settings, the steps of its one pass (``sums`` of
    one list) or of its column and row passes (two), and how it cuts the output into
    blocks of ``rows`` rows."""

    x: np.ndarray
    pads: Pads
    mode: str
    stride: tuple[int, int]
    dilation: tuple[int, int]
    kernel: tuple[int, int]
    out_hw: tuple[int, int]
    sums: tuple[list[Step], ...]
    rows: int
    columns: Columns

    def run(self, y: np.ndarray, blocks: list[tuple[int, int, int]]) -> None:
        """Filter the output row ``blocks`` ``(image, first, stop)`` of ``y`` on this
        thread, in its scratch buffers. The views into them are made once per block size
        and reused by every block of that size."""
        (top, bottom), (left, _) = self.pads
        wd, c = self.x.shape[2:]
        wp = wd + left + self.pads[1][1]
        rows, sh = self.rows, self.stride[0]
        span = (self.kernel[0] - 1) * self.dilation[0] + 1
        dtype = self.x.dtype
        window = scratch("depthwise.window", ((rows - 1) * sh + span, wp, c), dtype)
        partial = scratch("depthwise.partial", (rows, wp, c), dtype)
        acc = scratch("depthwise.acc", (rows, wp, c), dtype)
        tmp = scratch("depthwise.tmp", (rows, wp, c), dtype)
        made: dict[int, tuple[np.ndarray, list[_Pass]]] = {}
        for b, i0, i1 in blocks:
            count = i1 - i0
            if count not in made:
                xb = window[:(count - 1) * sh + span]
                made[count] = xb, (self._flat_passes(xb, partial[:count], acc[:count])
                                   if self.stride == (1, 1)
                                   else self._strided_passes(xb, count, partial[:count]))
            xb, passes = made[count]
            pad_rows(self.x[b], range(i0 * sh, i0 * sh + len(xb)), (top, bottom), self.mode,
                     xb[:, left:left + wd])
            pad_columns(xb, self.columns)
            block = y[b, i0:i1]
            for p in passes:
                run_steps(p.steps, block if p.target is None else p.target, p.views, tmp,
                          None if p.last is None else (block, *p.last))

    def _strided_passes(self, xb: np.ndarray, count: int,
                        partial: np.ndarray) -> list[_Pass]:
        """The passes of a block of ``count`` output rows read from its padded input rows
        ``xb`` through strided 2-D views (any stride)."""
        (sh, sw), (dh, dw), (kh, kw) = self.stride, self.dilation, self.kernel
        wo = self.out_hw[1]
        cols = [slice(s * dw, s * dw + (wo - 1) * sw + 1, sw) for s in range(kw)]
        taps = [xb[r * dh:r * dh + (count - 1) * sh + 1:sh] for r in range(kh)]
        if len(self.sums) == 1:
            return [_Pass(self.sums[0], [t[:, s] for t in taps for s in cols], None)]
        return [_Pass(self.sums[0], taps, partial),
                _Pass(self.sums[1], [partial[:, s] for s in cols], None)]

    def _flat_passes(self, xb: np.ndarray, partial: np.ndarray,
                     acc: np.ndarray) -> list[_Pass]:
        """Stride 1: the passes run over whole padded rows as 1-D runs, which NumPy's
        loops take 2-2.5x faster than the same values as 2-D views (the columns past
        ``W_out`` mix two rows and are never read into the output); the last step
        writes the output through 2-D views."""
        (dh, dw), (kh, kw) = self.dilation, self.kernel
        wo, c = self.out_hw[1], xb.shape[2]
        row, size = xb.shape[1] * c, acc.size - (kw - 1) * dw * c

        def run_of(a: np.ndarray, start: int, length: int = size) -> np.ndarray:
            return a.reshape(-1)[start:start + length].reshape(-1, c)

        def grid_of(a: np.ndarray, start: int) -> np.ndarray:
            r, s = divmod(start, row)
            return a[r:r + acc.shape[0], s // c:s // c + wo]

        if len(self.sums) == 1:
            offsets = [r * dh * row + s * dw * c for r in range(kh) for s in range(kw)]
            return [_Pass(self.sums[0], [run_of(xb, o) for o in offsets], run_of(acc, 0),
                          (grid_of(acc, 0), [grid_of(xb, o) for o in offsets]))]
        whole = partial.size
        offsets = [s * dw * c for s in range(kw)]
        return [_Pass(self.sums[0], [run_of(xb, r * dh * row, whole) for r in range(kh)],
                      run_of(partial, 0, whole)),
                _Pass(self.sums[1], [run_of(partial, o) for o in offsets], run_of(acc, 0),
                      (grid_of(acc, 0), [grid_of(partial, o) for o in offsets]))]


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
    paid back by BLAS's speed (7x7: 2 ms of GEMM for each 1 of summing).
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
            xb = scratch("depthwise.banded.x", (r + span, count, wp, c), x.dtype)
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
            z = scratch("depthwise.banded.z", (kw * r, count * width), x.dtype)
            np.matmul(matrix, xb.reshape(r + span, -1), out=z)
            _shift_sum(y[b, i0:i1].reshape(count, r, wo * c), z.reshape(kw, r, count, width),
                       dw * c)

    chunks = [(b, i0, min(full, i0 + step)) for b in range(n) for i0 in range(0, full, step)]
    chunks += [(b, full, ho) for b in range(n) if full < ho]
    run_chunks(run, chunks)
    return y


def _shift_sum(out: np.ndarray, z: np.ndarray, step: int) -> None:
    """``out[g, i] = sum_s z[s, i, g][s * step : s * step + out.shape[-1]]`` for
    ``out: (G, R, L)`` and ``z: (KW, R, G, width)`` (contiguous).

    All sums but the last run over ``z[0]`` as one 1-D run (2-2.5x faster in NumPy's
    loops than 3-D views; the values past ``L`` in each row mix rows and are not read);
    the last writes ``out`` through 3-D views."""
    kw, size = z.shape[0], out.shape[-1]
    target = out.transpose(1, 0, 2)
    if kw == 1:
        np.copyto(target, z[0, ..., :size])
        return
    flat, whole = z.reshape(-1), z[0].size
    length = whole - (kw - 1) * step
    for s in range(1, kw - 1):
        start = s * whole + s * step
        np.add(flat[:length], flat[start:start + length], out=flat[:length])
    last = (kw - 1) * step
    np.add(z[0, ..., :size], z[kw - 1, ..., last:last + size], out=target)


def _near_rank_one(k: np.ndarray) -> bool:
    """False when some channel of ``k: (KH, KW, C)`` is far from rank one: its kernel
    differs from the outer product of the row and column through its largest entry by
    more than 1% of that entry. A cheap screen before the SVD (a learned depthwise kernel
    fails it: MobileNet's 3x3 and 5x5 ones took 0.6-1.5 ms of SVD per call, more than
    the convolution); a rank-one kernel passes it with any rounding."""
    flat = np.abs(k.reshape(-1, k.shape[2]))
    pivot = flat.argmax(axis=0)
    rows, cols = np.unravel_index(pivot, k.shape[:2])
    channels = np.arange(k.shape[2])
    top = k[rows, cols, channels]
    safe = np.where(top == 0, 1, top)
    outer = k[:, cols, channels][:, None, :] * k[rows, :, channels].T[None, :, :] / safe
    return bool(np.all(np.abs(k - outer) <= 0.01 * np.abs(top)))


def rank_one_factors(k: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(col: (KH, C), row: (KW, C))`` with ``k[r, s, c] = col[r, c] * row[s, c]`` to
    rounding, or None when some channel's kernel is not of rank one (or when one pass
    would do: a single row or column)."""
    kh, kw = k.shape[:2]
    if kh == 1 or kw == 1 or not _near_rank_one(k):
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
