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

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from convolve.ops.algorithms._common import workspace_budget
from convolve.ops.algorithms.method import PaddedInput
from convolve.runtime import parallel
from convolve.shapes import ConvGeometry


def fast_size(n: int) -> int:
    """The smallest size >= ``n`` whose prime factors are 2, 3 and 5 (fast FFTs; sizes
    with 7s ran 1.5x slower: 2058 = 2 * 3 * 7^3 against 2160 = 2^4 * 3^3 * 5)."""
    while True:
        m = n
        for p in (2, 3, 5):
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
    transposed spectra ``(N, C, Q // 2 + 1, P)``."""
    n, h, w, c = x.shape
    planes = np.zeros((n, c, (h - 1) * stride[0] + 1, grid[1]), x.dtype)
    planes[:, :, ::stride[0], :(w - 1) * stride[1] + 1:stride[1]] = x.transpose(0, 3, 1, 2)
    return _rfft2(planes, grid)


def _rfft2(planes: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``rfft2(planes, s=grid, norm="ortho")`` transposed, ``(..., Q // 2 + 1, P)``, for
    ``planes (..., h, Q)`` with ``h <= P``.

    Row transforms, a transposed copy, then row transforms again, each split over the
    threads (NumPy's FFTs release the GIL but run on one core): transforms along the
    strided column axis ran 2-4x slower, and ``rfft2(s=...)``'s own padding doubled the
    time. Spectra stay transposed until ``_inverse``."""
    p, q = grid
    h, f = planes.shape[-2], q // 2 + 1
    lead = planes.shape[:-2]
    ctype = np.result_type(planes.dtype, np.complex64)
    rows = np.empty((*lead, h, f), dtype=ctype)
    _split(h, lambda a, b: np.fft.rfft(planes[..., a:b, :], axis=-1, norm="ortho",
                                       out=rows[..., a:b, :]))
    cols = np.zeros((*lead, f, p), dtype=ctype)
    _split(f, lambda a, b: np.copyto(cols[..., a:b, :h], rows[..., a:b].swapaxes(-1, -2)))
    out = np.empty_like(cols)
    _split(f, lambda a, b: np.fft.fft(cols[..., a:b, :], axis=-1, norm="ortho",
                                      out=out[..., a:b, :]))
    return out


def _inverse(spectra: np.ndarray, grid: tuple[int, int], height: int) -> np.ndarray:
    """The first ``height`` rows of ``irfft2`` (``norm="ortho"``) of transposed spectra
    ``(..., Q // 2 + 1, P)``: ``(..., height, Q)``, threaded as ``_rfft2``."""
    q = grid[1]
    f = spectra.shape[-2]
    lead = spectra.shape[:-2]
    cols = np.empty_like(spectra)
    _split(f, lambda a, b: np.fft.ifft(spectra[..., a:b, :], axis=-1, norm="ortho",
                                       out=cols[..., a:b, :]))
    rows = np.empty((*lead, height, f), dtype=spectra.dtype)
    _split(height, lambda a, b: np.copyto(rows[..., a:b, :],
                                          cols[..., a:b].swapaxes(-1, -2)))
    out = np.empty((*lead, height, q), dtype=spectra.real.dtype)
    _split(height, lambda a, b: np.fft.irfft(rows[..., a:b, :], n=q, axis=-1, norm="ortho",
                                             out=out[..., a:b, :]))
    return out


def _split(n: int, run: Callable[[int, int], object]) -> None:
    """``run(start, stop)`` over contiguous ranges covering ``range(n)``, in parallel."""
    parallel(lambda part: run(part[0], part[-1] + 1), range(n))


_kernel_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
KERNEL_CACHE_SIZE = 4


def _kernel_spectrum(w: np.ndarray, dilation: tuple[int, int], grid: tuple[int, int]
                     ) -> np.ndarray:
    """``w: (KH, KW, ca, cb)`` dilated, as transposed spectra ``(ca, cb, Q // 2 + 1, P)``,
    scaled by ``sqrt(P * Q)`` so that its product with an orthonormal spectrum inverts
    with ``_inverse``. Small kernels' spectra are kept, keyed by their bytes, for the
    next image filtered with the same kernel (read-only: callers never write them)."""
    key = (w.tobytes(), w.shape, w.dtype.str, dilation, grid) if w.size <= 4096 else None
    if key is not None and key in _kernel_cache:
        _kernel_cache.move_to_end(key)
        return _kernel_cache[key]
    wd = _dilated(w, dilation)
    kh, kw = wd.shape[:2]
    planes = np.zeros((*wd.shape[2:], kh, grid[1]), dtype=w.dtype)
    planes[..., :kw] = wd.transpose(2, 3, 0, 1)
    spectra = _rfft2(planes, grid)
    spectra *= np.sqrt(grid[0] * grid[1]).astype(spectra.real.dtype)
    if key is not None:
        spectra.setflags(write=False)
        _kernel_cache[key] = spectra
        while len(_kernel_cache) > KERNEL_CACHE_SIZE:
            _kernel_cache.popitem(last=False)
    return spectra


def _step(n: int, grid: tuple[int, int], channels: int, itemsize: int,
          output_bytes: int) -> int:
    """Images per chunk: spectra and their transposed copies within the budget."""
    image_bytes = grid[0] * grid[1] * channels * 8 * itemsize
    return max(1, workspace_budget(output_bytes) // image_bytes)


def _grid(shape: tuple[int, ...]) -> tuple[int, int]:
    return fast_size(shape[1]), fast_size(shape[2])


def _forward(xp: np.ndarray, w: np.ndarray, *, stride: tuple[int, int],
             dilation: tuple[int, int], groups: int, out_hw: tuple[int, int]) -> np.ndarray:
    """``(N, H_out, W_out, C_out)``: per chunk of images, ``irfft2(X * conj(W))`` with the
    channels mixed per frequency, subsampled by the stride."""
    n, c_out = xp.shape[0], w.shape[3]
    grid = _grid(xp.shape)
    wf = np.conj(_kernel_spectrum(w, dilation, grid))
    y = np.empty((n, *out_hw, c_out), dtype=xp.dtype)
    rows = slice(0, (out_hw[0] - 1) * stride[0] + 1, stride[0])
    cols = slice(0, (out_hw[1] - 1) * stride[1] + 1, stride[1])
    step = _step(n, grid, xp.shape[3] + c_out, xp.itemsize, y.nbytes)
    for n0 in range(0, n, step):
        full = _inverse(_mix(_spectrum(xp[n0:n0 + step], grid), wf, groups), grid,
                        rows.stop)
        y[n0:n0 + step] = full[:, :, rows, cols].transpose(0, 2, 3, 1)
    return y


def _grad_input(g: np.ndarray, w: np.ndarray, *, xp_shape: tuple[int, ...],
                stride: tuple[int, int], dilation: tuple[int, int],
                groups: int) -> np.ndarray:
    """``xp_shape``: per chunk of images, ``irfft2(G * W)`` of the zero-upsampled output
    gradient with the kernel's in/out channels swapped."""
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
        full = _inverse(_mix(_spectrum(g[n0:n0 + step], grid, stride), wf, groups), grid,
                        hp)
        dxp[n0:n0 + step] = full[:, :, :hp, :wp].transpose(0, 2, 3, 1)
    return dxp


def _grad_weight(xp: np.ndarray, g: np.ndarray, *, w_shape: tuple[int, ...],
                 stride: tuple[int, int], dilation: tuple[int, int],
                 groups: int) -> np.ndarray:
    """``w_shape``: ``irfft2(sum_n X * conj(G))`` per channel pair, cut to the kernel's
    (dilated) taps."""
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
    dh, dw = dilation
    spectra = total.transpose(2, 1, 3, 0).reshape(cg, c_out, -1, grid[0])
    full = _inverse(spectra * np.sqrt(grid[0] * grid[1]), grid, dh * (kh - 1) + 1)
    taps = full[:, :, :dh * (kh - 1) + 1:dh, :dw * (kw - 1) + 1:dw]
    return np.ascontiguousarray(taps.transpose(2, 3, 0, 1)).astype(xp.dtype, copy=False)


class Fft:
    """FFT convolution (module docstring): products of spectra, channels mixed per
    frequency.

    Cost: ``O(N * P * Q * log(P * Q) * (C_in + C_out))`` for the transforms plus
    ``N * P * Q / 2 * C_in * C_out / groups`` complex multiply-adds, for ``P x Q`` the
    padded input's size rounded up to fast FFT sizes: nearly independent of the kernel
    size. Workspace: spectra of a chunk of images within ``workspace_budget`` (at least
    one image's, ``8 * P * Q * (C_in + C_out)`` values), and the kernel's spectra
    ``(C_in // groups, C_out, P, Q / 2)`` (small kernels' kept in a cache of
    ``KERNEL_CACHE_SIZE``). Does every shape.

    Error (``u`` the unit roundoff, ``S = sum |w| * |x|`` over the output's window; the
    bounds in ``fidelity.py``): about ``u * log2(P * Q) * max|x| * sum|w|`` at
    every output, whatever its window: one large value raises it everywhere (a 1e4 patch
    in a 0-1 float32 image: 5e-4 of ``S`` far from it). One inf or NaN makes every output
    NaN (and the weight gradient, even of a single inf pixel). ``"auto"`` runs it only
    where ``fidelity.fft_dtype`` allows."""

    name = "fft"

    def supports(self, geometry: ConvGeometry) -> str | None:
        return None

    def forward(self, x: PaddedInput, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return _forward(x.array, w, stride=geometry.stride, dilation=geometry.dilation,
                        groups=geometry.groups, out_hw=geometry.out_hw)

    def grad_input(self, g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return _grad_input(g, w, xp_shape=geometry.padded_shape, stride=geometry.stride,
                           dilation=geometry.dilation, groups=geometry.groups)

    def grad_weight(self, xp: np.ndarray, g: np.ndarray,
                    geometry: ConvGeometry) -> np.ndarray:
        return _grad_weight(xp, g, w_shape=geometry.weight_shape, stride=geometry.stride,
                            dilation=geometry.dilation, groups=geometry.groups)


FFT = Fft()
