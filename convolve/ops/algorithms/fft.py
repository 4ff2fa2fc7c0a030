"""FFT convolution: products of spectra, channels mixed per frequency.

All transforms use ``norm="ortho"``: in NumPy 2.4 the unscaled direction of each
transform (the forward one by default) ran 2-3x slower than the scaled one (measured:
rfft2 of 2058^2 float32, 91 ms default, 32 ms ortho; irfft2 42 and 33 ms).

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

from collections.abc import Callable

import numpy as np

from convolve.ops.algorithms._common import parallel, workspace_budget


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
    spectra ``(N, C, P, Q // 2 + 1)``. The planes are laid out at the full grid size:
    letting ``rfft2(s=...)`` pad them cost twice the transform."""
    n, h, w, c = x.shape
    planes = np.zeros((n, c, *grid), x.dtype)
    planes[:, :, :(h - 1) * stride[0] + 1:stride[0],
           :(w - 1) * stride[1] + 1:stride[1]] = x.transpose(0, 3, 1, 2)
    return _rfft2(planes)


def _rfft2(planes: np.ndarray) -> np.ndarray:
    """``rfft2(planes, norm="ortho")`` as row transforms, then column transforms, each
    split over the threads (NumPy's FFTs release the GIL but run on one core)."""
    p, q = planes.shape[-2:]
    ctype = np.result_type(planes.dtype, np.complex64)
    rows = np.empty((*planes.shape[:-1], q // 2 + 1), dtype=ctype)
    out = np.empty_like(rows)
    _split(p, lambda a, b: np.fft.rfft(planes[..., a:b, :], axis=-1, norm="ortho",
                                       out=rows[..., a:b, :]))
    _split(q // 2 + 1, lambda a, b: np.fft.fft(rows[..., a:b], axis=-2, norm="ortho",
                                               out=out[..., a:b]))
    return out


def _inverse(spectra: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``irfft2(spectra, s=grid, norm="ortho")``, split over the threads as ``_rfft2``."""
    p, q = grid
    cols = np.empty_like(spectra)
    out = np.empty((*spectra.shape[:-1], q), dtype=spectra.real.dtype)
    _split(spectra.shape[-1], lambda a, b: np.fft.ifft(
        spectra[..., a:b], axis=-2, norm="ortho", out=cols[..., a:b]))
    _split(p, lambda a, b: np.fft.irfft(cols[..., a:b, :], n=q, axis=-1, norm="ortho",
                                        out=out[..., a:b, :]))
    return out


def _split(n: int, run: Callable[[int, int], object]) -> None:
    """``run(start, stop)`` over contiguous ranges covering ``range(n)``, in parallel."""
    parallel(lambda part: run(part[0], part[-1] + 1), range(n))


def _kernel_spectrum(w: np.ndarray, dilation: tuple[int, int], grid: tuple[int, int]
                     ) -> np.ndarray:
    """``w: (KH, KW, ca, cb)`` dilated, as spectra ``(ca, cb, P, Q // 2 + 1)``, scaled by
    ``sqrt(P * Q)`` so that its product with an orthonormal spectrum inverts with
    ``_inverse``. A kernel has few nonzero rows and columns, so its transform is two
    small products with DFT matrices rather than an FFT of the whole grid."""
    wd = _dilated(w, dilation)
    kh, kw = wd.shape[:2]
    p, q = grid
    ctype = np.result_type(w.dtype, np.complex64)
    rows = np.exp(-2j * np.pi * np.outer(np.arange(p), np.arange(kh)) / p).astype(ctype)
    cols = np.exp(-2j * np.pi * np.outer(np.arange(kw), np.arange(q // 2 + 1)) / q)
    planes = wd.transpose(2, 3, 0, 1).astype(ctype)
    return rows @ (planes @ cols.astype(ctype))


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
        full = _inverse(_mix(_spectrum(xp[n0:n0 + step], grid), wf, groups), grid)
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
        full = _inverse(_mix(_spectrum(g[n0:n0 + step], grid, stride), wf, groups), grid)
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
    full = _inverse(spectra * np.sqrt(grid[0] * grid[1]), grid)
    dh, dw = dilation
    taps = full[:, :, :dh * (kh - 1) + 1:dh, :dw * (kw - 1) + 1:dw]
    return np.ascontiguousarray(taps.transpose(2, 3, 0, 1)).astype(xp.dtype, copy=False)
