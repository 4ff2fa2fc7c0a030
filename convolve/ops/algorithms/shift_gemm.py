"""Shift-GEMM: one accumulated matrix product per kernel tap, with no patch matrix.

Seen as a matrix ``X: (N * Hp * Wp, C_in)``, the padded input holds every tap's operand as
a contiguous block of rows: output pixel ``q = (n * Hp + i) * Wp + j`` reads, for tap
``(r, s)``, row ``q + r * dH * Wp + s * dW`` (stride 1). So the products are computed for
every ``q`` of that padded grid, ``Y[q] = sum_taps X[q + offset] @ w[r, s]``, and the
``(H_out, W_out)`` corner of each image is kept; the rows in between (``Wp - W_out``
columns per row, ``Hp - H_out`` rows per image) are the price, and no patch copy is made.

Rows are processed in chunks that stay in cache while all taps accumulate into them.
Stride 1 only; the input gradient is the same product on the zero-padded output gradient
with the flipped, transposed kernel, and the weight gradient one product per tap over the
whole grid (the taps split over ``run_chunks``' threads).
"""

from __future__ import annotations

import numpy as np

from convolve.ops.algorithms._common import embed_gradient, spread_gradient, transposed_kernel
from convolve.ops.algorithms.method import PaddedInput
from convolve.runtime import run_chunks
from convolve.shapes import ConvGeometry

# Output rows computed per chunk: small enough that the chunk's accumulator stays in cache.
CHUNK_BYTES = 1 << 19


def _offsets(kernel: tuple[int, int], dilation: tuple[int, int], wp: int) -> list[int]:
    return [r * dilation[0] * wp + s * dilation[1]
            for r in range(kernel[0]) for s in range(kernel[1])]


def _forward(xp: np.ndarray, w: np.ndarray, *, dilation: tuple[int, int], groups: int,
             out_hw: tuple[int, int]) -> np.ndarray:
    """``(N, H_out, W_out, C_out)``: every tap's product accumulated over the padded grid,
    chunk by chunk, and the output's corner of each image kept."""
    n, hp, wp, c = xp.shape
    kh, kw, cg, c_out = w.shape
    og = c_out // groups
    x = np.ascontiguousarray(xp).reshape(-1, c)
    offsets = _offsets((kh, kw), dilation, wp)
    taps = w.reshape(kh * kw, cg, c_out)
    rows = (n - 1) * hp * wp + (out_hw[0] - 1) * wp + out_hw[1]
    grid = np.empty((n * hp * wp, c_out), dtype=xp.dtype)
    step = max(256, CHUNK_BYTES // (c_out * xp.itemsize))
    tmp = np.empty((min(step, rows), og), dtype=xp.dtype)
    for q0 in range(0, rows, step):
        q1 = min(rows, q0 + step)
        for gi in range(groups):
            acc = grid[q0:q1, gi * og:(gi + 1) * og]
            t = tmp[:q1 - q0]
            for k, off in enumerate(offsets):
                a = x[q0 + off:q1 + off, gi * cg:(gi + 1) * cg]
                b = taps[k, :, gi * og:(gi + 1) * og]
                if k == 0:
                    if groups == 1:
                        np.matmul(a, b, out=acc)
                    else:
                        acc[...] = a @ b
                else:
                    np.matmul(a, b, out=t)
                    acc += t
    y = grid.reshape(n, hp, wp, c_out)[:, :out_hw[0], :out_hw[1]]
    return np.ascontiguousarray(y)


def _grad_input(g: np.ndarray, w: np.ndarray, *, xp_shape: tuple[int, ...],
                dilation: tuple[int, int], groups: int) -> np.ndarray:
    """The transposed convolution: ``g`` padded by the dilated kernel's span less one on
    every side, correlated with the flipped kernel whose in/out channels are swapped."""
    gp = spread_gradient(g, w.shape[:2], dilation, xp_shape)
    return _forward(gp, transposed_kernel(w, groups), dilation=dilation, groups=groups,
                    out_hw=tuple(xp_shape[1:3]))


def _grad_weight(xp: np.ndarray, g: np.ndarray, *, w_shape: tuple[int, ...],
                 dilation: tuple[int, int], groups: int) -> np.ndarray:
    """``dw[r, s] = X[rows + offset]^T @ G`` with ``G`` the gradient placed on the padded
    grid (zeros where no output pixel is)."""
    _, hp, wp, c = xp.shape
    kh, kw, cg, c_out = w_shape
    og = c_out // groups
    x = np.ascontiguousarray(xp).reshape(-1, c)
    gg, rows = embed_gradient(g, (hp, wp))
    dw = np.empty((kh * kw, cg, c_out), dtype=xp.dtype)

    def run(taps: list[tuple[int, int]]) -> None:
        for k, off in taps:
            for gi in range(groups):
                a = x[off:off + rows, gi * cg:(gi + 1) * cg]
                dw[k, :, gi * og:(gi + 1) * og] = a.T @ gg[:, gi * og:(gi + 1) * og]

    run_chunks(run, list(enumerate(_offsets((kh, kw), dilation, wp))))
    return dw.reshape(w_shape)


class ShiftGemm:
    """Shift-GEMM (module docstring): one accumulated product per tap on the padded grid.

    Cost: ``N * Hp * Wp * KH * KW * C_in * C_out / groups`` multiply-adds (the padded
    grid's, not only the output's), in BLAS, and no copies of the input. Workspace: the
    whole padded grid's output ``(N * Hp * Wp, C_out)`` and one chunk's products; the
    input gradient a zero-padded copy of the output gradient. Stride 1 only.

    Error (``u`` the unit roundoff, ``S = sum |w| * |x|`` over the output's window; the
    bounds in ``fidelity.py``): at most ``KH * KW * C_in / groups * u * S``,
    as gemm. inf or NaN meets the zero gradients of the rows between outputs in the
    weight gradient (NaN where the definition has a value); ``"auto"`` runs gemm on such
    data."""

    name = "shift_gemm"

    def supports(self, geometry: ConvGeometry) -> str | None:
        if geometry.stride != (1, 1):
            return f"stride 1; received stride {geometry.stride}"
        return None

    def forward(self, x: PaddedInput, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return _forward(x.array, w, dilation=geometry.dilation, groups=geometry.groups,
                        out_hw=geometry.out_hw)

    def grad_input(self, g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return _grad_input(g, w, xp_shape=geometry.padded_shape, dilation=geometry.dilation,
                           groups=geometry.groups)

    def grad_weight(self, xp: np.ndarray, g: np.ndarray,
                    geometry: ConvGeometry) -> np.ndarray:
        return _grad_weight(xp, g, w_shape=geometry.weight_shape,
                            dilation=geometry.dilation, groups=geometry.groups)


SHIFT_GEMM = ShiftGemm()
