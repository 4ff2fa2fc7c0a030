"""Argument normalisation: the one place that turns user settings into canonical form.

Every int-or-pair setting, padding spec, padding mode, flag and dtype check goes through
here, and this module owns the error text for them, as for sizes that cannot fit in memory
(``check_fits``).
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import sys
from typing import Any

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate", "circular", "symmetric")
PADDING_STRINGS = ("valid", "same", "full")

Pads = tuple[tuple[int, int], tuple[int, int]]


def describe(value: Any) -> str:
    """A short description of a received value, with its full shape for arrays."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    return repr(value)


def is_dask_array(value: Any) -> bool:
    """Without importing Dask: a Dask array exists only once ``dask.array`` is imported."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(value, dask_array.Array)


def is_int(value: Any) -> bool:
    """An integer of any kind (NumPy's included), but not a bool."""
    if type(value) is int:  # the common case, without the abstract-class check
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def pair(value: Any, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Normalise an int or a pair of ints to a pair, each at least ``minimum``."""
    if is_int(value):
        result = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(is_int(v) for v in value)
    ):
        result = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints; received {describe(value)}")
    if min(result) < minimum:
        raise ValueError(f"{name} must be >= {minimum}; received {describe(value)}")
    return result


def padding_spec(padding: Any) -> str | Pads:
    """Normalise a padding argument.

    Returns one of the strings ``"valid"``, ``"same"``, ``"full"`` (resolved later, since
    they depend on sizes) or explicit per-side pads ``((top, bottom), (left, right))``.
    """
    if isinstance(padding, str):
        key = padding.lower()
        if key not in PADDING_STRINGS:
            raise ValueError(
                f"padding must be one of {', '.join(map(repr, PADDING_STRINGS))}, an int, "
                f"(ph, pw) or ((top, bottom), (left, right)); received {padding!r}"
            )
        return key
    expected = (
        "padding must be 'valid', 'same', 'full', an int, (ph, pw) "
        "or ((top, bottom), (left, right))"
    )
    if is_int(padding):
        pads = ((int(padding),) * 2, (int(padding),) * 2)
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(is_int(p) for p in padding):
            pads = ((int(padding[0]),) * 2, (int(padding[1]),) * 2)
        elif all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(is_int(q) for q in p)
            for p in padding
        ):
            pads = tuple((int(p[0]), int(p[1])) for p in padding)
        else:
            raise TypeError(f"{expected}; received {describe(padding)}")
    else:
        raise TypeError(f"{expected}; received {describe(padding)}")
    if min(min(p) for p in pads) < 0:
        raise ValueError(f"padding must be non-negative; received {describe(padding)}")
    return pads  # type: ignore[return-value]


def padding_mode(mode: Any, name: str = "padding_mode") -> str:
    """One of ``PADDING_MODES``, in lower case."""
    if not isinstance(mode, str) or mode.lower() not in PADDING_MODES:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, PADDING_MODES))}; "
            f"received {mode!r}"
        )
    return mode.lower()


def choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    """``value`` if it is one of ``options`` (case-sensitive)."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, options))}; received {value!r}"
        )
    return value


def integer(value: Any, name: str, *, minimum: int = 1, odd: bool = False) -> int:
    """An int at least ``minimum`` (and odd when ``odd``); bools are refused."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int; received {describe(value)}")
    if value < minimum or (odd and value % 2 == 0):
        what = f"an odd int >= {minimum}" if odd else f">= {minimum}"
        raise ValueError(f"{name} must be {what}; received {value!r}")
    return int(value)


def flag(value: Any, name: str) -> bool:
    """A boolean setting: ``True``, ``False`` or a NumPy bool, as a Python bool. Anything
    else (``"no"``, ``0``, ``None``) is refused, since its truth value is rarely what was
    meant."""
    if type(value) is bool or isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be a bool (True or False); received {describe(value)}")


def _real(value: Any, name: str) -> float:
    """``value`` as a Python float: a setting such as ``np.float64(0.2)`` must not promote
    float32 data to float64 (NumPy scalars take part in type promotion)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number; received {describe(value)}")
    return float(value)


def number(value: Any, name: str) -> float:
    """A finite real number, as a Python float."""
    result = _real(value, name)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite number; received {value!r}")
    return result


def real(value: Any, name: str, *, positive: bool = False) -> float:
    """A finite real number (strictly positive when ``positive``, else non-negative), as a
    Python float."""
    result = _real(value, name)
    if not math.isfinite(result) or result < 0 or (positive and result == 0):
        what = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {what}; received {value!r}")
    return result


# The float dtypes the ops take: float16 (ONNX graphs hold it; the convolutions compute
# its products in float32, rounding once), float32 and float64. longdouble is refused:
# the BLAS products would silently round it to float64.
OP_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def float_array(value: Any, name: str, *, any_width: bool = False) -> np.ndarray:
    """The ndarray behind ``value``: float16, float32 or float64 (any floating-point
    width with ``any_width``, for pictures read or written); refuses integer, boolean and
    complex data, and longdouble."""
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a floating-point array (float32 or float64); received "
            f"{describe(array)}. Convert it first, e.g. x.astype(np.float32) / 255"
        )
    if not any_width and array.dtype not in OP_DTYPES:
        raise TypeError(
            f"{name} must be float16, float32 or float64; received {describe(array)}. Cast "
            f"it first: {name}.astype(np.float64)"
        )
    return array


def vector(array: np.ndarray, name: str, size: int, symbol: str, context: str) -> None:
    """Refuse ``array`` unless its shape is ``(size,)``; ``symbol`` names the size and
    ``context`` says where it comes from, e.g. ``"to match w of shape (3, 3, 4, 6)"``."""
    if array.shape != (size,):
        raise ValueError(f"{name} must have shape ({symbol},) = ({size},) {context}; "
                         f"received shape {array.shape}")


# Layouts by rank for ``rank``: a batch of images or one image, channels last.
IMAGE = {4: "(N, H, W, C)", 3: "(H, W, C)"}


def rank(shape: tuple[int, ...], name: str, layouts: dict[int, str]) -> None:
    """Refuse an array of ``shape`` unless its rank is a key of ``layouts`` (rank -> layout),
    e.g. ``rank(x.shape, "x", IMAGE)``."""
    if len(shape) not in layouts:
        options = [f"{r}-D {layout}" for r, layout in layouts.items()]
        expected = " or ".join([", ".join(options[:-1]), options[-1]] if len(options) > 1
                               else options)
        raise ValueError(
            f"{name} must be {expected}; received an array of shape {tuple(shape)}")


def pixels(shape: tuple[int, ...], name: str) -> None:
    """Refuse an image ``(..., H, W, C)`` with no pixels (``H`` or ``W`` zero): it has no
    window to slide over or reduce. An empty batch or no channels is allowed (the result
    is then empty, or zeros)."""
    if 0 in shape[-3:-1]:
        raise ValueError(f"{name} must have height and width >= 1 (an image with no pixels "
                         f"has no windows); received an array of shape {tuple(shape)}")


def shape(value: Any, name: str) -> tuple[int, ...]:
    """An array shape given by the user: a tuple (or list) of ints, each >= 0."""
    if not isinstance(value, (tuple, list)) or not all(is_int(v) for v in value):
        raise TypeError(f"{name} must be a tuple of ints; received {describe(value)}")
    if min(value, default=0) < 0:
        raise ValueError(f"{name} must hold sizes >= 0; received {tuple(value)!r}")
    return tuple(int(v) for v in value)


def float_dtype(value: Any, name: str = "dtype") -> np.dtype:
    """float32 or float64 as an ``np.dtype``; anything else is refused."""
    try:
        dtype = None if value is None else np.dtype(value)
    except TypeError:
        dtype = None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{name} must be float32 or float64; received {value!r}")
    return dtype


def axis(value: Any, ndim: int, name: str = "axis") -> int:
    """Normalise an axis of an ``ndim``-D array to a non-negative int."""
    if not is_int(value) or not -ndim <= value < ndim:
        raise ValueError(
            f"{name} must be an int in [-{ndim}, {ndim}) for a {ndim}-D input; "
            f"received {value!r}"
        )
    return int(value) % ndim


def generator(value: Any, name: str = "rng") -> np.random.Generator:
    """A NumPy Generator from None (fresh entropy), an int seed >= 0 or a Generator."""
    if isinstance(value, np.random.Generator):
        return value
    if value is not None and not is_int(value):
        raise TypeError(
            f"{name} must be None, an int seed or a numpy.random.Generator; received "
            f"{describe(value)}"
        )
    if value is not None and value < 0:
        raise ValueError(f"{name} must be None, an int seed >= 0 or a numpy.random.Generator; "
                         f"received {value!r}")
    return np.random.default_rng(value)


def fraction(value: Any, name: str) -> float:
    """A real number in [0, 1]: a TypeError for anything but a number, as ``real``."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number in [0, 1]; received {describe(value)}")
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1]; received {value!r}")
    return float(value)


@functools.cache
def memory_budget() -> int | None:
    """The machine's physical memory in bytes (None where the system does not say): no
    single array larger than this can be made without swapping or being killed."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX, or no such setting
        return None


def _bytes_text(count: int) -> str:
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    scaled, unit = float(count), 0
    while scaled >= 1024 and unit < len(units) - 1:
        scaled, unit = scaled / 1024, unit + 1
    human = f" ({scaled:.1f} {units[unit]})" if unit else ""
    return f"{count:,} bytes{human}"


def check_fits(shape: tuple[int, ...], dtype: Any, what: str) -> int:
    """The bytes an array of ``shape`` and ``dtype`` needs; a ValueError (saying how many,
    and ``what`` the array is, e.g. ``"the box_blur kernel"``) when that is more than the
    machine's memory. Call it before allocating anything sized by the user."""
    itemsize = np.dtype(dtype).itemsize
    needed = math.prod(int(n) for n in shape) * itemsize  # Python ints: no overflow
    budget = memory_budget()
    if budget is not None and needed > budget:
        raise ValueError(
            f"{what} of shape {tuple(int(n) for n in shape)} ({np.dtype(dtype)}) would need "
            f"{_bytes_text(needed)}, more than this machine's memory of {_bytes_text(budget)}")
    return needed
