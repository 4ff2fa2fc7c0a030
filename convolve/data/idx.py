"""The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the values in row-major order, big-endian. MNIST images are type 0x08
(uint8) with ndim 3 (magic 2051), labels are uint8 with ndim 1 (magic 2049).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

# IDX type byte -> big-endian dtype.
_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str | os.PathLike) -> bytes:
    """The content of ``path``, decompressed when it is gzip (detected by content, not name)."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except EOFError:
        raise ValueError(
            f"{path} is a truncated gzip file (it ends before the end of its compressed "
            f"stream); delete it and fetch it again"
        ) from None
    except (OSError, zlib.error) as error:
        raise ValueError(f"{path} is not a valid gzip file: {error}") from None


def read_idx(path: str | os.PathLike, *, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (raw or gzip) into an array of its stored shape and type.

    Arguments:
        path: the file.
        ndim: the number of dimensions the caller expects (3 for images, 1 for labels);
            another number in the file's magic is an error. ``None`` accepts any.

    Returns:
        An array shaped as the header says, in native byte order (``uint8`` for MNIST).

    Raises ``ValueError`` for a wrong magic number and for a truncated or oversized file.
    """
    path = Path(path)
    data = read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise ValueError(
            f"{path} is not an IDX file: its magic number is {data[:4].hex() or 'missing'}, "
            f"expected 0000 followed by a type byte (08 for uint8) and the number of dimensions"
        )
    file_ndim = data[3]
    if ndim is not None and file_ndim != ndim:
        expected_magic = 0x0800 + ndim
        raise ValueError(
            f"{path} has the wrong magic number {int.from_bytes(data[:4], 'big')} "
            f"({file_ndim}-D data); expected {expected_magic} ({ndim}-D data)"
        )
    header_size = 4 + 4 * file_ndim
    if len(data) < header_size:
        raise ValueError(
            f"{path} is truncated: its header needs {header_size} bytes, the file has {len(data)}"
        )
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(file_ndim)
    )
    dtype = np.dtype(_TYPES[data[2]])
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        problem = "is truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(
            f"{path} {problem}: its header promises shape {shape} ({expected} bytes in all), "
            f"the file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)
