"""im2col + GEMM: copy each chunk of windows into a patch matrix, then one product.

The patch matrix of a chunk is ``(groups, M, KH * KW * C_in // groups)`` for ``M`` output
pixels; chunks (whole images, or row blocks of one image) keep it within the workspace
budget. Good for few input channels and strided kernels.
"""

from __future__ import annotations

import numpy as np

from convolve.ops.algorithms._common import blocks, windows, workspace_budget


def _weight_matrix(w: np.ndarray, groups: int) -> np.ndarray:
    """``(KH, KW, cg, groups * og)`` -> ``(groups, KH * KW * cg, og)``."""
    kh, kw, cg, c_out = w.shape
    og = c_out // groups
    return w.reshape(kh, kw, cg, groups, og).transpose(3, 0, 1, 2, 4).reshape(
        groups, kh * kw * cg, og)


def _chunks(xp: np.ndarray, kernel: tuple[int, int], out_hw: tuple[int, int],
            stride: tuple[int, int], dilation: tuple[int, int], groups: int,
            output_bytes: int):
    """Yield ``(n0, n1, h0, h1, patches)`` with ``patches: (groups, M, K)``."""
    n, c = xp.shape[0], xp.shape[3]
    kh, kw = kernel
    span = dilation[0] * (kh - 1) + 1
    row_bytes = out_hw[1] * kh * kw * c * xp.itemsize
    chunks = list(blocks(n, out_hw[0], row_bytes, workspace_budget(output_bytes)))
    # One buffer serves every chunk, so no two patch matrices are ever alive at once.
    largest = max((n1 - n0) * (h1 - h0) for n0, n1, h0, h1 in chunks)
    buffer = np.empty(largest * row_bytes // xp.itemsize, dtype=xp.dtype)
    for n0, n1, h0, h1 in chunks:
        rows = xp[n0:n1, h0 * stride[0]:(h1 - 1) * stride[0] + span]
        view = windows(rows, kernel, (h1 - h0, out_hw[1]), stride, dilation, groups)
        patches = buffer[:view.size].reshape(groups, *view.shape[:5], c // groups)
        np.copyto(patches, np.moveaxis(view, 5, 0))
        yield n0, n1, h0, h1, patches.reshape(groups, -1, kh * kw * (c // groups))


def forward(xp: np.ndarray, w: np.ndarray, *, stride: tuple[int, int],
            dilation: tuple[int, int], groups: int, out_hw: tuple[int, int]) -> np.ndarray:
    n, c_out = xp.shape[0], w.shape[3]
    y = np.empty((n, *out_hw, c_out), dtype=xp.dtype)
    wmat = _weight_matrix(w, groups)
    for n0, n1, h0, h1, patches in _chunks(xp, w.shape[:2], out_hw, stride, dilation,
                                           groups, y.nbytes):
        target = y[n0:n1, h0:h1].reshape(-1, c_out)  # blocks are contiguous: a view
        if groups == 1:
            np.matmul(patches[0], wmat[0], out=target)
        else:
            target[...] = np.matmul(patches, wmat).transpose(1, 0, 2).reshape(-1, c_out)
    return y


def grad_weight(xp: np.ndarray, g: np.ndarray, *, w_shape: tuple[int, ...],
                stride: tuple[int, int], dilation: tuple[int, int],
                groups: int) -> np.ndarray:
    kh, kw, cg, c_out = w_shape
    og = c_out // groups
    out_hw = g.shape[1:3]
    dw = np.zeros((groups, kh * kw * cg, og), dtype=xp.dtype)
    for n0, n1, h0, h1, patches in _chunks(xp, (kh, kw), out_hw, stride, dilation,
                                           groups, g.nbytes):
        gblock = g[n0:n1, h0:h1].reshape(-1, groups, og).transpose(1, 0, 2)
        dw += np.matmul(patches.transpose(0, 2, 1), gblock)
    return dw.reshape(groups, kh, kw, cg, og).transpose(1, 2, 3, 0, 4).reshape(w_shape)


def grad_input(g: np.ndarray, w: np.ndarray, *, xp_shape: tuple[int, ...],
               stride: tuple[int, int], dilation: tuple[int, int],
               groups: int) -> np.ndarray:
    """col2im: multiply by the transposed weight, then add each tap back into place."""
    kh, kw, cg, c_out = w.shape
    og = c_out // groups
    n, out_w = g.shape[0], g.shape[2]
    dxp = np.zeros(xp_shape, dtype=g.dtype)
    wmat_t = _weight_matrix(w, groups).transpose(0, 2, 1)  # (groups, og, K)
    row_bytes = out_w * kh * kw * cg * groups * g.itemsize
    for n0, n1, h0, h1 in blocks(n, g.shape[1], row_bytes, workspace_budget(dxp.nbytes)):
        gblock = g[n0:n1, h0:h1].reshape(-1, groups, og).transpose(1, 0, 2)
        dpatches = np.matmul(gblock, wmat_t).reshape(groups, n1 - n0, h1 - h0, out_w, kh,
                                                     kw, cg)
        for r in range(kh):
            for s in range(kw):
                r0 = h0 * stride[0] + r * dilation[0]
                s0 = s * dilation[1]
                target = dxp[n0:n1,
                             r0:r0 + (h1 - h0 - 1) * stride[0] + 1:stride[0],
                             s0:s0 + (out_w - 1) * stride[1] + 1:stride[1]]
                target.reshape(*target.shape[:3], groups, cg)[...] += np.moveaxis(
                    dpatches[:, :, :, :, r, s], 0, 3)
    return dxp
