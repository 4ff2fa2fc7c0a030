"""Direct convolution: one grouped product per kernel tap, accumulated.

Tap ``(r, s)`` reads a strided slice of the padded input, ``(N, H_out, W_out, C_in)``, and
multiplies it by ``w[r, s]: (C_in // groups, C_out)``. No patch matrix; the workspace is
one slice and one product. Good for depthwise and few-channel convolutions.

With one input and one output channel per group (single-channel image filtering and
depthwise convolutions) the products are per-channel scalings, done as shift-and-add in
blocks of output rows that each pad the input rows they read into a buffer kept in cache
(streaming the whole image through memory once per tap made 3x3 filtering 3-4x slower;
padding the whole image first cost a copy of it). Kernels of rank one (box, Gaussian,
Sobel, Prewitt, Scharr) run as a column pass and a row pass, ``KH + KW`` taps instead of
``KH * KW``; taps of equal weight are summed before one scaling, weights 0 skipped (see
``_sum_steps``). One kernel shared by all channels, not of rank one, from 10 taps:
banded GEMMs (``_banded``).
"""

from __future__ import annotations

import math
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
NO_PADS: Pads = ((0, 0), (0, 0))


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
        steps, _ = _sum_steps([_weight(k[r, s]) for r in range(kh) for s in range(kw)],
                              keep_scale=False)
    else:
        # the column pass leaves out a factor, which the row pass takes on
        col_steps, scale = _sum_steps([_weight(v) for v in factors[0]], keep_scale=True)
        row_steps, _ = _sum_steps([_weight(v * scale) for v in factors[1]],
                                  keep_scale=False)
    columns = border_columns(wd, (left, right), mode)

    def run(blocks: list[tuple[int, int, int]]) -> None:
        window = scratch("direct.depthwise.window", ((rows - 1) * sh + (kh - 1) * dh + 1,
                                                     wp, c), x.dtype)
        partial_rows = scratch("direct.depthwise.partial", (rows, wp, c), x.dtype)
        sums = scratch("direct.depthwise.sums", (rows, wp, c), x.dtype)
        tmp = scratch("direct.depthwise.tmp", (rows, wp, c), x.dtype)

        def passes(count: int) -> tuple[np.ndarray, list[tuple]]:
            """For a block of ``count`` output rows: its window and its passes (steps,
            tap views, target: None for the output, and for the pass whose last step
            writes the output from other views, those views)."""
            xb = window[:(count - 1) * sh + (kh - 1) * dh + 1]
            if stride == (1, 1):
                return xb, flat_passes(xb, partial_rows[:count], sums[:count])
            taps = [xb[r * dh:r * dh + (count - 1) * sh + 1:sh] for r in range(kh)]
            if factors is None:
                return xb, [(steps, [t[:, s] for t in taps for s in cols], None, None)]
            partial = partial_rows[:count]
            return xb, [(col_steps, taps, partial, None),
                        (row_steps, [partial[:, s] for s in cols], None, None)]

        def flat_passes(xb: np.ndarray, partial: np.ndarray,
                         out: np.ndarray) -> list[tuple]:
            """Stride 1: the passes run over whole padded rows as 1-D runs, which NumPy's
            loops take 2-2.5x faster than the same values as 2-D views (the columns
            past ``W_out`` mix two rows and are never read into the output); the last
            step writes the output through 2-D views."""
            row, size = wp * c, out.size - (kw - 1) * dw * c

            def run_of(a: np.ndarray, start: int, length: int = size) -> np.ndarray:
                return a.reshape(-1)[start:start + length].reshape(-1, c)

            def grid_of(a: np.ndarray, start: int) -> np.ndarray:
                r, s = divmod(start, row)
                return a[r:r + out.shape[0], s // c:s // c + wo]

            if factors is None:
                offsets = [r * dh * row + s * dw * c for r in range(kh) for s in range(kw)]
                return [(steps, [run_of(xb, o) for o in offsets], run_of(out, 0),
                         (grid_of(out, 0), [grid_of(xb, o) for o in offsets]))]
            whole = partial.size
            offsets = [s * dw * c for s in range(kw)]
            return [(col_steps, [run_of(xb, r * dh * row, whole) for r in range(kh)],
                     run_of(partial, 0, whole), None),
                    (row_steps, [run_of(partial, o) for o in offsets], run_of(out, 0),
                     (grid_of(out, 0), [grid_of(partial, o) for o in offsets]))]

        # The views into this thread's buffers are made once per block size and
        # reused by every block of that size.
        made: dict[int, tuple] = {}
        for b, i0, i1 in blocks:
            if i1 - i0 not in made:
                made[i1 - i0] = passes(i1 - i0)
            xb, block_passes = made[i1 - i0]
            pad_rows(x[b], range(i0 * sh, i0 * sh + len(xb)), (top, bottom), mode,
                     xb[:, left:left + wd])
            pad_columns(xb, columns)
            block = y[b, i0:i1]
            for pass_steps, views, target, grids in block_passes:
                _run_steps(pass_steps, block if target is None else target, views, tmp,
                           None if grids is None else (block, *grids))

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


def _sum_steps(weights: list, *, keep_scale: bool) -> tuple[list[tuple], Any]:
    """Steps for ``_run_steps`` that compute ``out = sum(weights[i] * view[i]) / scale``,
    and ``scale`` (1 unless ``keep_scale``: then the caller folds it into a later pass).

    Scalar weights of equal magnitude are added (or subtracted) together and each such
    group scaled once, Horner-like: ``((g1 * c1/c2 + g2) * c2/c3 + ...) * c_m``. A block
    pass per tap and one per group, against two per tap (multiply, add) otherwise: a 3x3
    Gaussian's two passes take 7 block passes instead of 10. The rounding error stays
    that of a running sum, ``eps * sum_k |c_1 g_1 + ... + c_k g_k|``, whatever the
    ratios. Weights 0 are skipped; per-channel weights ``(C,)`` multiply and add."""
    taps = [(i, w) for i, w in enumerate(weights) if not (w.ndim == 0 and w == 0)]
    if not taps:
        return [("zero",)], 1
    if any(w.ndim for _, w in taps):
        (i, w), *rest = taps
        return [("mul", i, w)] + [("madd", j, v) for j, v in rest], 1
    # Magnitudes within rounding of each other (as an SVD leaves a symmetric kernel's
    # factors) count as equal; so do ratios and scales within rounding of 1.
    tol = 8 * np.finfo(taps[0][1].dtype).eps
    groups: dict[float, list[tuple[int, float]]] = {}
    for i, w in taps:
        size = abs(float(w))
        key = next((g for g in groups if abs(g - size) <= tol * size), size)
        groups.setdefault(key, []).append((i, math.copysign(key, w)))
    # single taps first: their scaling is free; in a group, a positive weight first
    order = [sorted(g, key=lambda t: t[1] < 0) for g in sorted(groups.values(), key=len)]
    coefs = [members[0][1] for members in order]
    steps: list[tuple] = []
    scale = coefs[-1] if keep_scale and abs(coefs[-1] - 1) > tol else 1.0
    for k, members in enumerate(order):
        c = coefs[k]
        ratio = c / coefs[k + 1] if k + 1 < len(order) else c / scale
        ratio = 1.0 if abs(ratio - 1) <= tol else ratio
        (i, _), *rest = members
        if k == 0 and not rest:
            steps.append(("mul", i, ratio) if ratio != 1 else ("copy", i))
            continue
        signed = [("add" if w == c else "sub", j) for j, w in rest]
        if k == 0:
            steps.append((signed[0][0] + "2", i, signed[0][1]))
            signed = signed[1:]
        else:
            steps.append(("add", i))
        steps += signed
        if ratio != 1:
            steps.append(("scale", ratio))
    return steps, scale


def _run_steps(steps: list[tuple], out: np.ndarray, views: list, scratch: np.ndarray,
               last: tuple[np.ndarray, np.ndarray, list] | None = None) -> None:
    """Apply ``_sum_steps``'s steps to ``out`` and the tap ``views`` (each out's shape).

    ``last = (target, out_as, views_as)``: the last step reads ``out`` and the views in
    these other shapes and writes ``target`` instead of ``out``, which saves a copy."""
    for n, (op, *args) in enumerate(steps):
        dest = out
        if last is not None and n == len(steps) - 1:
            dest, out, views = last
        if op == "mul":
            np.multiply(views[args[0]], args[1], out=dest)
        elif op == "copy":
            np.copyto(dest, views[args[0]])
        elif op in ("add2", "sub2"):
            (np.add if op == "add2" else np.subtract)(views[args[0]], views[args[1]],
                                                      out=dest)
        elif op in ("add", "sub"):
            (np.add if op == "add" else np.subtract)(out, views[args[0]], out=dest)
        elif op == "scale":
            np.multiply(out, args[0], out=dest)
        elif op == "madd":
            tmp = scratch.reshape(-1)[:out.size].reshape(out.shape)
            np.multiply(views[args[0]], args[1], out=tmp)
            np.add(out, tmp, out=dest)
        else:  # zero
            dest.fill(0)
