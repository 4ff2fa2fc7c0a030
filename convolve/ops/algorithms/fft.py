"""FFT convolution: products of spectra, channels mixed per frequency.

With ``P >= Hp`` and ``Q >= Wp`` (sizes with small prime factors), the circular
cross-correlation of the padded input with the (dilated) kernel equals the valid one for
every output pixel, since no window wraps: ``Y = irfft2(X * conj(W))``. Strides subsample
that stride-1 result. The cost barely depends on the kernel size (2048^2 single-channel:
about 40 ms whatever the kernel), so this is the method for large kernels; for small
ones the per-pixel work of direct methods is less.

Backward: the input gradient is the linear convolution of the (zero-upsampled) output
gradient with the kernel, ``irfft2(G * W)``, and the weight gradient the correlation of
input and gradient summed over the batch, ``irfft2(sum_n X * conj(G))``, cut to the
kernel's taps. Images are processed in chunks that keep the spectra within the workspace
budget.
"""

from __future__ import annotations

import numpy as np

from convolve.ops.algorithms._common import workspace_budget


def fast_size(n: int) -> int:
    """The smallest size >= ``n`` whose prime factors are 2, 3, 5 and 7 (fast FFTs)."""
    while True:
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _dilated(w: np.ndarray, dilation: tuple[int, int]) -> np.ndarray:
    kh, kw = w.shape[:2]
    dh, dw = dilation
    if (dh, dw) == (1, 1):
        return w
    out = np.zeros((dh * (kh - 1) + 1, dw * (kw - 1) + 1, *w.shape[2:]), dtype=w.dtype)
    out[::dh, ::dw] = w
    return out


def _mix(a: np.ndarray, b: np.ndarray, groups: int) -> np.ndarray:
    """Per frequency and group, ``a: (N, groups * ca, P, F)`` times
    ``b: (ca, groups * cb, P, F)``: ``(N, groups * cb, P, F)``."""
    n, c_a, p, f = a.shape
    ca, cb = c_a // groups, b.shape[1] // groups
    if ca == 1 and cb == 1:
        return a * b[0]
    a4 = a.reshape(n, groups, ca, p * f).transpose(3, 1, 0, 2)
    b4 = b.reshape(ca, groups, cb, p * f).transpose(3, 1, 0, 2)
    return np.matmul(a4, b4).transpose(2, 1, 3, 0).reshape(n, groups * cb, p, f)


def _spectrum(x: np.ndarray, grid: tuple[int, int], stride: tuple[int, int] = (1, 1)
              ) -> np.ndarray:
    """``x: (N, H, W, C)``, spread by ``stride`` (zeros between pixels), as channels-first
    spectra ``(N, C, P, Q // 2 + 1)``; the transforms run on contiguous rows."""
    n, h, w, c = x.shape
    planes = np.zeros((n, c, (h - 1) * stride[0] + 1, (w - 1) * stride[1] + 1), x.dtype)
    planes[:, :, ::stride[0], ::stride[1]] = x.transpose(0, 3, 1, 2)
    return np.fft.rfft2(planes, s=grid)


def _kernel_spectrum(w: np.ndarray, dilation: tuple[int, int], grid: tuple[int, int]
                     ) -> np.ndarray:
    """``w: (KH, KW, ca, cb)`` dilated, as spectra ``(ca, cb, P, Q // 2 + 1)``."""
    return np.fft.rfft2(np.ascontiguousarray(_dilated(w, dilation).transpose(2, 3, 0, 1)),
                        s=grid)


def _step(n: int, grid: tuple[int, int], channels: int, itemsize: int,
          output_bytes: int) -> int:
    """Images per chunk: spectra and their transposed copies within the budget."""
    image_bytes = grid[0] * grid[1] * channels * 8 * itemsize
    return max(1, workspace_budget(output_bytes) // image_bytes)


def _grid(shape: tuple[int, ...]) -> tuple[int, int]:
    return fast_size(shape[1]), fast_size(shape[2])


def forward(xp: np.ndarray, w: np.ndarray, *, stride: tuple[int, int],
            dilation: tuple[int, int], groups: int, out_hw: tuple[int, int]) -> np.ndarray:
    n, c_out = xp.shape[0], w.shape[3]
    grid = _grid(xp.shape)
    wf = np.conj(_kernel_spectrum(w, dilation, grid))
    y = np.empty((n, *out_hw, c_out), dtype=xp.dtype)
    rows = slice(0, (out_hw[0] - 1) * stride[0] + 1, stride[0])
    cols = slice(0, (out_hw[1] - 1) * stride[1] + 1, stride[1])
    step = _step(n, grid, xp.shape[3] + c_out, xp.itemsize, y.nbytes)
    for n0 in range(0, n, step):
        full = np.fft.irfft2(_mix(_spectrum(xp[n0:n0 + step], grid), wf, groups), s=grid)
        y[n0:n0 + step] = full[:, :, rows, cols].transpose(0, 2, 3, 1)
    return y


def grad_input(g: np.ndarray, w: np.ndarray, *, xp_shape: tuple[int, ...],
               stride: tuple[int, int], dilation: tuple[int, int],
               groups: int) -> np.ndarray:
    kh, kw, cg, c_out = w.shape
    og = c_out // groups
    n, hp, wp, c = xp_shape
    grid = _grid(xp_shape)
    swapped = w.reshape(kh, kw, cg, groups, og).transpose(0, 1, 4, 3, 2).reshape(
        kh, kw, og, groups * cg)
    wf = _kernel_spectrum(swapped, dilation, grid)
    dxp = np.empty(xp_shape, dtype=g.dtype)
    step = _step(n, grid, c + c_out, g.itemsize, dxp.nbytes)
    for n0 in range(0, n, step):
        full = np.fft.irfft2(_mix(_spectrum(g[n0:n0 + step], grid, stride), wf, groups),
                             s=grid)
        dxp[n0:n0 + step] = full[:, :, :hp, :wp].transpose(0, 2, 3, 1)
    return dxp


def grad_weight(xp: np.ndarray, g: np.ndarray, *, w_shape: tuple[int, ...],
                stride: tuple[int, int], dilation: tuple[int, int],
                groups: int) -> np.ndarray:
    kh, kw, cg, c_out = w_shape
    og = c_out // groups
    n, c = xp.shape[0], xp.shape[3]
    grid = _grid(xp.shape)
    total = None
    step = _step(n, grid, c + c_out, xp.itemsize, g.nbytes)
    for n0 in range(0, n, step):
        xf = _spectrum(xp[n0:n0 + step], grid)
        gf = np.conj(_spectrum(g[n0:n0 + step], grid, stride))
        nb, freq = xf.shape[0], xf.shape[2] * xf.shape[3]
        # sum over images of X[c] * conj(G[k]) per group: (freq, groups, cg, og)
        a = xf.reshape(nb, groups, cg, freq).transpose(3, 1, 2, 0)
        b = gf.reshape(nb, groups, og, freq).transpose(3, 1, 0, 2)
        part = np.matmul(a, b)
        total = part if total is None else total + part
    spectra = total.transpose(2, 1, 3, 0).reshape(cg, c_out, grid[0], -1)
    full = np.fft.irfft2(spectra, s=grid)
    dh, dw = dilation
    taps = full[:, :, :dh * (kh - 1) + 1:dh, :dw * (kw - 1) + 1:dw]
    return np.ascontiguousarray(taps.transpose(2, 3, 0, 1)).astype(xp.dtype, copy=False)
