"""Image files to float arrays and back (Pillow, imported when a file is read or written).

Read: PNG, JPEG and anything else Pillow decodes, to float in ``[0, 1]``: ``(H, W)`` for grey
(including 1-bit and 16-bit), ``(H, W, 3)`` for colour. Alpha is dropped, not composited;
palette images become RGB; the EXIF orientation of photographs is applied.

Write: 8-bit grey or RGB, either clipping to ``[0, 1]`` or rescaling first (``normalize``).
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Any

import numpy as np

from convolve import _args

SAMPLES = {"camera": "camera.png"}  # files in convolve/assets/, credited in CREDITS.md

# ITU-R BT.601 luma weights, as Pillow's "L" conversion uses.
LUMA = np.array([0.299, 0.587, 0.114])

_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
NORMALIZE = ("minmax", "symmetric")


def _pillow() -> Any:
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImportError(
            "reading and writing images needs Pillow: pip install 'convolve[image]'"
        ) from None
    return Image, ImageOps


def read_image(path: str | os.PathLike, *, dtype: Any = np.float32) -> np.ndarray:
    """Read an image file as floats in ``[0, 1]``.

    Returns:
        ``(H, W)`` for grey images (1-bit, 8-bit, 16-bit), ``(H, W, 3)`` for everything
        else: RGB, RGBA and grey+alpha (alpha dropped), palette, CMYK, YCbCr.
    """
    image_module, image_ops = _pillow()
    dtype = _args.float_dtype(dtype)
    try:
        with image_module.open(path) as opened:
            image = image_ops.exif_transpose(opened)
            image.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {os.fspath(path)}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"expected an image file, got a folder: {os.fspath(path)}"
                                ) from None
    except image_module.UnidentifiedImageError:
        raise ValueError(f"cannot read {os.fspath(path)}: not an image file that Pillow can "
                         "decode") from None
    except image_module.DecompressionBombError as error:  # a header declaring huge sizes
        raise ValueError(f"cannot read {os.fspath(path)}: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:  # truncated or damaged data
        raise ValueError(f"cannot read {os.fspath(path)}: {error}") from None
    if image.mode in _SIXTEEN_BIT_MODES:
        return (np.asarray(image, dtype=np.float64) / 65535.0).clip(0, 1).astype(dtype)
    if image.mode in ("1", "L", "LA", "La"):
        image = image.convert("L")
    elif image.mode != "RGB":
        if image.mode in ("P", "PA"):  # through RGBA, as Pillow asks for transparent palettes
            image = image.convert("RGBA")
        image = image.convert("RGB")
    return (np.asarray(image, dtype=dtype) / dtype.type(255)).astype(dtype, copy=False)


def sample_image(name: str = "camera", *, dtype: Any = np.float32) -> np.ndarray:
    """A photograph shipped with convolve, read with ``read_image``.

    ``"camera"``: 256x256 grey, CC0 (photographer Lav Varshney); returns ``(256, 256)``.
    """
    if name not in SAMPLES:
        raise ValueError(
            f"unknown sample image {name!r}; available: {', '.join(SAMPLES)}"
        )
    resource = importlib.resources.files("convolve") / "assets" / SAMPLES[name]
    with importlib.resources.as_file(resource) as path:
        return read_image(path, dtype=dtype)


def to_channels(image: Any, channels: int) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` as ``(H, W, channels)``, channels 1 or 3.

    Colour to grey takes the BT.601 luma; grey to colour repeats the grey.
    """
    array = _args.float_array(image, "image", any_width=True)
    _check_image_shape(array)
    if array.ndim == 2:
        array = array[..., None]
    if channels == array.shape[-1]:
        return array
    if channels == 1:
        return (array @ LUMA.astype(array.dtype))[..., None]
    if channels == 3:
        return np.repeat(array, 3, axis=-1)
    raise ValueError(f"channels must be 1 or 3; received {channels!r}")


def resize(image: Any, size: tuple[int, int]) -> np.ndarray:
    """``image: (H, W)`` or ``(H, W, C)`` floats resized to ``size = (height, width)``, each
    channel with Pillow's antialiased bilinear filter; float32, ``(height, width[, C])``."""
    image_module, _ = _pillow()
    array = _args.float_array(image, "image").astype(np.float32, copy=False)
    height, width = _args.pair(size, "size")
    if array.shape[:2] == (height, width):
        return array
    planes = array[..., None] if array.ndim == 2 else array
    resized = np.stack([
        np.asarray(image_module.fromarray(np.ascontiguousarray(planes[..., c]))
                   .resize((width, height), image_module.Resampling.BILINEAR))
        for c in range(planes.shape[-1])
    ], axis=-1)
    return resized[..., 0] if array.ndim == 2 else resized


def _check_image_shape(array: np.ndarray) -> None:
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3))):
        raise ValueError(
            "image must be (H, W), (H, W, 1) or (H, W, 3); received an array of shape "
            f"{tuple(array.shape)}"
        )


def scale_to_unit(image: np.ndarray, normalize: str) -> np.ndarray:
    """Map ``image`` onto ``[0, 1]`` with one scale for all its pixels and channels.

    ``"minmax"``: min -> 0, max -> 1 (a constant image gives 0). ``"symmetric"``:
    ``[-m, m]`` -> ``[0, 1]`` with ``m = max |image|``, so that 0 stays mid-grey and the
    signs of edge responses stay visible.
    """
    _args.choice(normalize, "normalize", NORMALIZE)
    image = np.asarray(image, dtype=np.float64)
    if normalize == "minmax":
        low, span = image.min(), np.ptp(image)
        return (image - low) / span if span > 0 else np.zeros_like(image)
    m = np.abs(image).max()
    return 0.5 + image / (2 * m) if m > 0 else np.full_like(image, 0.5)


def _normalize_flag(value: Any) -> bool:
    try:
        return _args.flag(value, "normalize")
    except TypeError:
        raise TypeError(f"normalize must be False, True, {' or '.join(map(repr, NORMALIZE))}; "
                        f"received {_args.describe(value)}") from None


def write_image(path: str | os.PathLike, image: Any, *,
                normalize: bool | str = False) -> Path:
    """Write a float image as an 8-bit grey or RGB file; the format follows the suffix.

    Arguments:
        image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` floats, finite.
        normalize: ``False`` clips to ``[0, 1]``; ``True`` or ``"minmax"`` maps min..max to
            0..255; ``"symmetric"`` maps ``-m..m`` to 0..255 (0 is mid-grey 128),
            ``m = max |image|``. One scale for the whole image, all channels together.

    Returns:
        The path written.
    """
    image_format(path)  # refused before any work (and Pillow's absence reported)
    array = _args.float_array(image, "image", any_width=True)
    _check_image_shape(array)
    if not np.isfinite(array).all():
        raise ValueError(
            f"image must be finite; received {np.count_nonzero(~np.isfinite(array))} "
            "NaN or infinite values"
        )
    if not isinstance(normalize, str):
        normalize = "minmax" if _normalize_flag(normalize) else False
    unit = scale_to_unit(array, normalize) if normalize else array.astype(np.float64)
    pixels = np.rint(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8)
    return write_pixels(path, pixels)


def image_format(path: str | os.PathLike) -> str:
    """The image format the suffix of ``path`` names, as Pillow calls it (``"PNG"``,
    ``"JPEG"``, ...): the one rule for every file of pixels convolve writes. A ValueError
    for a suffix that names no format Pillow can write (or none), a FileNotFoundError for a
    folder that does not exist."""
    image_module, _ = _pillow()
    suffix = Path(path).suffix.lower()
    kind = image_module.registered_extensions().get(suffix)
    if kind is None or kind not in image_module.SAVE:
        raise ValueError(f"cannot write {os.fspath(path)}: unknown file extension: "
                         f"{suffix or '(none)'} (use a suffix such as .png or .jpg)")
    folder = Path(path).parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {os.fspath(path)}: folder {folder} does not "
                                "exist")
    return kind


def write_pixels(path: str | os.PathLike, pixels: np.ndarray) -> Path:
    """Write 8-bit pixels ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` in the format
    ``image_format`` names for ``path``; returns the path."""
    image_module, _ = _pillow()
    kind = image_format(path)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    path = Path(path)
    try:
        image_module.fromarray(np.ascontiguousarray(pixels)).save(path, format=kind)
    except (OSError, ValueError) as error:  # e.g. a format that cannot hold these pixels
        path.unlink(missing_ok=True)
        raise ValueError(f"cannot write {path} as {kind}: {error}") from None
    return path
