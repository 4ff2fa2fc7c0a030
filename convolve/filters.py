"""Classic image filters as 2-D kernels, applied with the library's own ``conv2d``.

Kernels are cross-correlation kernels (as everywhere in convolve): ``sobel_x`` is positive
where the intensity increases from left to right, ``sobel_y`` where it increases downwards.
Edge kernels are not normalised (``sobel_x`` has weights 1, 2, 1, like
``scipy.ndimage.sobel`` and OpenCV), so a unit step gives a response of 4.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from convolve import _args
from convolve.ops.conv import conv2d
from convolve.ops.pad import check_pads


def _identity() -> np.ndarray:
    k = np.zeros((3, 3))
    k[1, 1] = 1.0
    return k


def _box_blur(*, size: int = 3) -> np.ndarray:
    size = _args.integer(size, "size")
    _args.check_fits((size, size), np.float64, "the box_blur kernel")
    return np.full((size, size), 1.0 / (size * size))


def _gaussian_blur(*, sigma: float = 1.0, size: int | None = None) -> np.ndarray:
    sigma = _args.real(sigma, "sigma", positive=True)
    if size is None:
        size = 2 * math.ceil(3 * sigma) + 1
    size = _args.integer(size, "size", odd=True)
    _args.check_fits((size, size), np.float64, "the gaussian_blur kernel")
    x = np.arange(size) - size // 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    g /= g.sum()
    return np.outer(g, g)


def _sharpen() -> np.ndarray:
    return np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)


def _unsharp_mask(*, amount: float = 1.0, sigma: float = 1.0) -> np.ndarray:
    # image + amount * (image - blurred), as one kernel
    amount = _args.real(amount, "amount")
    blur = _gaussian_blur(sigma=sigma)
    identity = np.zeros_like(blur)
    identity[blur.shape[0] // 2, blur.shape[1] // 2] = 1.0
    return (1.0 + amount) * identity - amount * blur


def _gradient(smooth: tuple[float, float, float]) -> Callable[[], np.ndarray]:
    def build() -> np.ndarray:
        return np.outer(smooth, [-1.0, 0.0, 1.0])
    return build


def _transposed(build: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
    def build_t() -> np.ndarray:
        return build().T.copy()
    return build_t


def _laplacian() -> np.ndarray:
    return np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)


def _emboss() -> np.ndarray:
    return np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)


def _outline() -> np.ndarray:
    return np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64)


_sobel_x = _gradient((1.0, 2.0, 1.0))
_prewitt_x = _gradient((1.0, 1.0, 1.0))
_scharr_x = _gradient((3.0, 10.0, 3.0))

KERNELS: dict[str, Callable[..., np.ndarray]] = {
    "identity": _identity,
    "box_blur": _box_blur,
    "gaussian_blur": _gaussian_blur,
    "sharpen": _sharpen,
    "unsharp_mask": _unsharp_mask,
    "sobel_x": _sobel_x,
    "sobel_y": _transposed(_sobel_x),
    "prewitt_x": _prewitt_x,
    "prewitt_y": _transposed(_prewitt_x),
    "scharr_x": _scharr_x,
    "scharr_y": _transposed(_scharr_x),
    "laplacian": _laplacian,
    "emboss": _emboss,
    "outline": _outline,
}

# Names that ``apply`` takes for the gradient magnitude sqrt(gx^2 + gy^2).
MAGNITUDES: dict[str, tuple[str, str]] = {
    "sobel": ("sobel_x", "sobel_y"),
    "prewitt": ("prewitt_x", "prewitt_y"),
    "scharr": ("scharr_x", "scharr_y"),
}

NAMES = (*KERNELS, *MAGNITUDES)


def _unknown(name: Any) -> ValueError:
    return ValueError(
        f"unknown kernel {name!r}; known kernels: {', '.join(KERNELS)} (and, in apply, "
        f"the gradient magnitudes {', '.join(MAGNITUDES)})"
    )


def kernel(name: str, **params: Any) -> np.ndarray:
    """The 2-D float64 kernel ``(KH, KW)`` called ``name``.

    Parameters: ``box_blur(size=3)``; ``gaussian_blur(sigma=1.0, size=2*ceil(3*sigma)+1)``,
    which sums to 1; ``unsharp_mask(amount=1.0, sigma=1.0)``, the kernel of
    ``image + amount * (image - gaussian_blur(image))``. The others take none: identity,
    sharpen, sobel_x/y, prewitt_x/y, scharr_x/y, laplacian, emboss, outline.
    """
    if not isinstance(name, str):
        raise TypeError(f"kernel name must be a str; received {_args.describe(name)}")
    if name in MAGNITUDES:
        x, y = MAGNITUDES[name]
        raise ValueError(
            f"{name!r} is a gradient magnitude, not one kernel: use kernel({x!r}) and "
            f"kernel({y!r}), or filters.apply(image, {name!r})"
        )
    build = KERNELS.get(name)
    if build is None:
        raise _unknown(name)
    accepted = tuple(inspect.signature(build).parameters)
    unexpected = [p for p in params if p not in accepted]
    if unexpected:
        takes = f"parameters {', '.join(accepted)}" if accepted else "no parameters"
        raise TypeError(
            f"kernel {name!r} takes {takes}; received {', '.join(unexpected)}"
        )
    return build(**params)


def _kernel_array(value: Any) -> np.ndarray:
    if isinstance(value, str):
        if value not in KERNELS:
            raise _unknown(value)
        return kernel(value)
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise TypeError(
            "kernel must be a name or a 2-D array of real numbers; received "
            f"{_args.describe(array)}"
        )
    if array.ndim != 2 or array.size == 0:
        raise ValueError(
            f"kernel must be a non-empty 2-D array (KH, KW); received an array of shape "
            f"{tuple(array.shape)}"
        )
    bad = np.count_nonzero(~np.isfinite(array))
    if bad:
        raise ValueError(f"kernel must hold finite numbers; received {bad} NaN or infinite "
                         f"values in an array of shape {tuple(array.shape)}")
    return array


def same_pads(kernel_shape: tuple[int, int]) -> _args.Pads:
    """Per-side pads that keep the size and centre a kernel at ``(KH // 2, KW // 2)``.

    This is SciPy's origin (``scipy.ndimage.correlate``); for even sizes it puts the odd
    pixel of padding before, where conv2d's ``"same"`` (the TensorFlow rule) puts it after.
    """
    kh, kw = kernel_shape
    return ((kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2))


def apply(image: Any, kernel: Any, *, mode: str = "reflect") -> np.ndarray:
    """Filter each channel of ``image`` with one 2-D kernel; the output has the same size.

    Arguments:
        image: ``(H, W)`` or ``(H, W, C)``, float32 or float64 (integer images are refused;
            convert first, e.g. with ``convolve.io.read_image``).
        kernel: a name from ``NAMES`` or an array ``(KH, KW)``. ``"sobel"``, ``"prewitt"``
            and ``"scharr"`` give the gradient magnitude ``sqrt(gx^2 + gy^2)``.
        mode: the boundary, as conv2d's ``padding_mode``: ``"zeros"``, ``"reflect"``
            (mirror without repeating the edge), ``"replicate"``, ``"circular"`` or
            ``"symmetric"`` (mirror repeating the edge).

    A Dask array (extra ``dask``) gives a lazy Dask array with the image's chunks, filtered
    chunk by chunk with the halo the kernel needs (``convolve.chunked.apply``), equal to the
    in-memory result for every mode and chunking.

    Returns:
        An array of the image's shape and dtype, equal to ``scipy.ndimage.correlate`` with
        mode ``"constant"``, ``"mirror"``, ``"nearest"``, ``"wrap"`` or ``"reflect"``
        respectively. The kernel is centred at ``(KH // 2, KW // 2)``.
    """
    if _args.is_dask_array(image):
        from convolve import chunked

        return chunked.apply(image, kernel, mode=mode)
    array = _args.float_array(image, "image")
    _args.rank(array.shape, "image", {2: "(H, W)", 3: "(H, W, C)"})
    mode = _args.padding_mode(mode, "mode")
    kernels = kernels_of(kernel)
    for k in kernels:
        pads = same_pads(k.shape)
        check_pads(pads, array.shape[:2], mode,
                   name=f"the padding that a kernel of shape {k.shape} needs")
        (top, bottom), (left, right) = pads
        channels = array.shape[2] if array.ndim == 3 else 1
        _args.check_fits((array.shape[0] + top + bottom, array.shape[1] + left + right,
                          channels), array.dtype,
                         f"the image padded for a kernel of shape {k.shape}")
    return correlate(array, kernels, pads=same_pads(kernels[0].shape), mode=mode)


def kernels_of(kernel: Any) -> list[np.ndarray]:
    """The kernels ``(KH, KW)`` behind ``apply``'s ``kernel``: two for a gradient
    magnitude (its x and y kernels, of one shape), else one."""
    if isinstance(kernel, str) and kernel in MAGNITUDES:
        return [_kernel_array(n) for n in MAGNITUDES[kernel]]
    return [_kernel_array(kernel)]


def correlate(image: np.ndarray, kernels: list[np.ndarray], *, pads: _args.Pads,
              mode: str) -> np.ndarray:
    """Each channel of ``image: (H, W)`` or ``(H, W, C)`` as one group of a depthwise
    conv2d padded by ``pads`` in ``mode``; with two kernels, the magnitude
    ``sqrt(y1^2 + y2^2)`` of their responses."""
    x = image if image.ndim == 3 else image[..., None]
    c = x.shape[-1]
    ys = [conv2d(x, np.repeat(k.astype(image.dtype)[:, :, None, None], c, axis=3),
                 padding=pads, padding_mode=mode, groups=c) for k in kernels]
    y = ys[0] if len(ys) == 1 else np.hypot(*ys)
    return y if image.ndim == 3 else y[..., 0]
