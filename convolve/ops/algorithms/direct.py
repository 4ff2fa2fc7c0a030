"""Direct convolution: one grouped product per kernel tap, accumulated.

Tap ``(r, s)`` reads a strided slice of the padded input, ``(N, H_out, W_out, C_in)``, and
multiplies it by ``w[r, s]: (C_in // groups, C_out)``. No patch matrix; the workspace is
one slice and one product. Good for depthwise and few-channel convolutions.
"""

from __future__ import annotations

import numpy as np

from convolve.ops.algorithms._common import grouped_matmul, grouped_weight_transpose, tap_slice


def forward(xp: np.ndarray, w: np.ndarray, *, stride: tuple[int, int],
            dilation: tuple[int, int], groups: int, out_hw: tuple[int, int]) -> np.ndarray:
    kh, kw = w.shape[:2]
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
    dxp = np.zeros(xp_shape, dtype=g.dtype)
    for r in range(kh):
        for s in range(kw):
            w_t = grouped_weight_transpose(w[r, s], groups)
            dxp[tap_slice(r, s, out_hw, stride, dilation)] += grouped_matmul(g, w_t, groups)
    return dxp
