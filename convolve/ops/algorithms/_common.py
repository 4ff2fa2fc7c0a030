"""Array layouts shared by the conv methods: window views, grouped products, work chunks.

The methods read a padded input ``xp: (N, Hp, Wp, C_in)`` with a weight
``w: (KH, KW, C_in // groups, C_out)`` and produce ``(N, H_out, W_out, C_out)`` with no
further padding (see ``method.ConvMethod``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import as_strided

# Temporary buffers stay within this multiple of the output's size, or MIN_WORKSPACE_BYTES
# for small outputs.
WORKSPACE_FACTOR = 2
MIN_WORKSPACE_BYTES = 4 << 20


def tap_slice(r: int, s: int, out_hw: tuple[int, int], stride: tuple[int, int],
              dilation: tuple[int, int]) -> tuple[slice, slice, slice]:
    """The (batch, rows, cols) slice of ``xp`` that kernel tap ``(r, s)`` reads."""
    r0, s0 = r * dilation[0], s * dilation[1]
    return (slice(None),
            slice(r0, r0 + (out_hw[0] - 1) * stride[0] + 1, stride[0]),
            slice(s0, s0 + (out_hw[1] - 1) * stride[1] + 1, stride[1]))


def windows(xp: np.ndarray, kernel: tuple[int, int], out_hw: tuple[int, int],
            stride: tuple[int, int], dilation: tuple[int, int], groups: int) -> np.ndarray:
    """A read-only view ``(N, H_out, W_out, KH, KW, groups, C_in // groups)`` of ``xp``."""
    n, _, _, c = xp.shape
    sn, sh, sw, sc = xp.strides
    shape = (n, *out_hw, *kernel, groups, c // groups)
    strides = (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1],
               sc * (c // groups), sc)
    return as_strided(xp, shape, strides, writeable=False)


def grouped_matmul(a: np.ndarray, b: np.ndarray, groups: int) -> np.ndarray:
    """Per-group products: ``a: (..., groups * ka)`` times ``b: (ka, groups * kb)``.

    Group ``g`` multiplies channels ``g*ka:(g+1)*ka`` of ``a`` by columns
    ``g*kb:(g+1)*kb`` of ``b``. Returns ``(..., groups * kb)``.
    """
    ka, kb = b.shape[0], b.shape[1] // groups
    lead = a.shape[:-1]
    if groups == 1:
        return (a.reshape(-1, ka) @ b).reshape(*lead, kb)
    if ka == 1:
        return (a[..., :, None] * b.reshape(groups, kb)).reshape(*lead, groups * kb)
    a3 = a.reshape(-1, groups, ka).transpose(1, 0, 2)
    b3 = b.reshape(ka, groups, kb).transpose(1, 0, 2)
    return np.matmul(a3, b3).transpose(1, 0, 2).reshape(*lead, groups * kb)


def grouped_weight_transpose(w_tap: np.ndarray, groups: int) -> np.ndarray:
    """For a tap's weight ``(cg, groups * og)``, the per-group transpose ``(og, groups*cg)``."""
    cg, og = w_tap.shape[0], w_tap.shape[1] // groups
    return w_tap.reshape(cg, groups, og).transpose(2, 1, 0).reshape(og, groups * cg)


def blocks(n: int, out_h: int, row_bytes: int, budget: int
           ) -> Iterator[tuple[int, int, int, int]]:
    """Chunks ``(n0, n1, h0, h1)`` of output rows whose workspace fits ``budget`` bytes,
    given ``row_bytes`` of workspace per output row: whole images where they fit."""
    rows = max(1, budget // max(1, row_bytes))
    if rows >= out_h:
        images = rows // out_h
        for n0 in range(0, n, images):
            yield n0, min(n, n0 + images), 0, out_h
        return
    for n0 in range(n):
        for h0 in range(0, out_h, rows):
            yield n0, n0 + 1, h0, min(out_h, h0 + rows)


def workspace_budget(output_bytes: int) -> int:
    """The bytes of temporaries a pass producing ``output_bytes`` may hold at once."""
    return max(MIN_WORKSPACE_BYTES, WORKSPACE_FACTOR * output_bytes)


def transposed_kernel(w: np.ndarray, groups: int) -> np.ndarray:
    """The kernel of the transposed convolution: ``w: (KH, KW, cg, groups * og)`` flipped
    in space, each group's channels swapped, giving ``(KH, KW, og, groups * cg)``."""
    kh, kw, cg, c_out = w.shape
    og = c_out // groups
    flipped = w[::-1, ::-1].reshape(kh, kw, cg, groups, og)
    return np.ascontiguousarray(flipped.transpose(0, 1, 4, 3, 2)).reshape(
        kh, kw, og, groups * cg)


def spread_gradient(g: np.ndarray, kernel: tuple[int, ...], dilation: tuple[int, int],
                    xp_shape: tuple[int, ...]) -> np.ndarray:
    """The input of the transposed stride-1 correlation: ``g: (N, H_out, W_out, C)`` with
    the dilated kernel's span less one of zeros before it, and after it as many as make
    the correlation ``xp_shape``'s size (more than the span where rows of ``xp`` were
    never read, as with conv_transpose2d's output_padding)."""
    eh, ew = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
    n, ho, wo, c = g.shape
    gp = np.zeros((n, xp_shape[1] + eh, xp_shape[2] + ew, c), dtype=g.dtype)
    gp[:, eh:eh + ho, ew:ew + wo] = g
    return gp


def embed_gradient(g: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, int]:
    """``g: (N, H_out, W_out, C)`` placed at the top-left of each ``grid = (Hp, Wp)`` image,
    zeros elsewhere, as a matrix of its first ``rows`` rows (the last one a pixel of ``g``).
    Returns ``(matrix: (rows, C), rows)``."""
    n, ho, wo, c = g.shape
    hp, wp = grid
    rows = (n - 1) * hp * wp + (ho - 1) * wp + wo
    if (ho, wo) == (hp, wp):
        return np.ascontiguousarray(g).reshape(-1, c), rows
    full = np.zeros((n, hp, wp, c), dtype=g.dtype)
    full[:, :ho, :wo] = g
    return full.reshape(-1, c)[:rows], rows
