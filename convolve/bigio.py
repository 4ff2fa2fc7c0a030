"""Images larger than memory (extra ``dask``): TIFF and Zarr read lazily as Dask arrays, and
Dask arrays written chunk by chunk to Zarr or to tiled BigTIFF.

TIFF: classic and BigTIFF, tiled, striped or contiguous, compressed or not (tifffile); the
first series, level 0 of a pyramid; ``(H, W)`` or ``(H, W, S)`` with samples last. Zarr: a v2
or v3 array ``(H, W)`` or ``(H, W, C)``. Writing goes to a temporary name beside the output,
renamed when every chunk is written, so that an interrupted run leaves nothing under the
output's name. Every reader and writer here pickles to a path, for Dask's worker processes.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr",)
SUFFIXES = TIFF_SUFFIXES + ZARR_SUFFIXES

TILE_MULTIPLE = 16  # TIFF tiles are multiples of 16 pixels wide and high
# Zarr outputs: Blosc's LZ4 over shuffled bytes, about half the CPU time of Zarr's default
# Zstandard to write and a third to read, and as small on float32 images
ZARR_CODEC = {"cname": "lz4", "clevel": 5, "shuffle": "shuffle"}


def zarr_compressors() -> Any:
    """The compressors ``save`` writes Zarr chunks with (``ZARR_CODEC``), for
    ``zarr.create_array(compressors=...)``."""
    _, _, zarr = _modules()
    return zarr.codecs.BloscCodec(**ZARR_CODEC)


def _modules() -> tuple[Any, Any, Any]:
    try:
        import dask.array as da
        import tifffile
        import zarr
    except ImportError as error:
        raise ImportError(f"images larger than memory need {error.name}: "
                          "pip install 'convolve[dask]'") from None
    return da, tifffile, zarr


def kind(path: str | os.PathLike) -> str | None:
    """``"tiff"``, ``"zarr"`` or None (another format), from the suffix."""
    suffix = Path(path).suffix.lower()
    return "tiff" if suffix in TIFF_SUFFIXES else "zarr" if suffix in ZARR_SUFFIXES else None


def open_source(path: str | os.PathLike, *, cache_bytes: int = 0) -> TiffSource | ZarrSource:
    """The image in a TIFF file or a Zarr array, read region by region when indexed.

    ``cache_bytes``: keep up to that many bytes of decoded tiles (or Zarr chunks) per
    process, least recently used dropped first, so that neighbouring regions read with
    their halos decode each tile about once instead of up to four times."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"image file not found: {path}")
    source = ZarrSource(path) if kind(path) == "zarr" else TiffSource(path)
    source.cache_bytes = int(cache_bytes)
    source.token = uuid.uuid4().hex
    return source


class _Source:
    """An image file as an array-like ``(H, W)`` or ``(H, W, C)`` that reads the regions it
    is indexed with, through the process's tile cache where ``cache_bytes`` allows. Holds
    only the path and sizes: the file is opened per read (and per process)."""

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    ndim: int
    stored: tuple[int, int] | None = None  # the tiles' (or chunks') rows and columns
    cache_bytes = 0
    token = ""  # names this opening's tile cache in every process that reads it

    def _read(self, key: Any) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            if (self.stored and self.cache_bytes and isinstance(key, tuple) and len(key) == 2
                    and all(isinstance(k, slice) and k.step in (None, 1) for k in key)):
                return self._through_cache(*(k.indices(n)[:2] for k, n in zip(key, self.shape)))
            return self._read(key)
        except Exception as error:  # each codec raises its own types on damaged data
            raise ValueError(f"cannot read {self.path}: {type(error).__name__}: {error}"
                             ) from None

    def _through_cache(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        (r0, r1), (c0, c1), (th, tw) = rows, cols, self.stored
        out = np.empty((max(0, r1 - r0), max(0, c1 - c0), *self.shape[2:]), self.dtype)
        cache = _cache(self.token, self.cache_bytes)
        for i in range(r0 // th, -(-r1 // th)):
            row = range(c0 // tw, -(-c1 // tw))
            tiles = {j: cache.lookup((i, j)) for j in row}
            # The tiles not held, read in runs along the row: one read (and one call into
            # the codec) per run rather than per tile
            for run in _runs([j for j in row if tiles[j] is None]):
                strip = self._read((slice(i * th, min((i + 1) * th, self.shape[0])),
                                    slice(run[0] * tw, min((run[-1] + 1) * tw,
                                                           self.shape[1]))))
                for j in run:
                    tile = strip[:, (j - run[0]) * tw:(j - run[0] + 1) * tw]
                    # Tiles a full tile inside the region are this region's alone: a
                    # neighbouring region's halo reaches only the tiles along its edges.
                    inside = (r0 + th <= i * th and (i + 2) * th <= r1
                              and c0 + tw <= j * tw and (j + 2) * tw <= c1)
                    tiles[j] = tile if inside else cache.put((i, j), tile.copy())
            top, bottom = max(r0, i * th), min(r1, (i + 1) * th)
            for j in row:
                left, right = max(c0, j * tw), min(c1, (j + 1) * tw)
                out[top - r0:bottom - r0, left - c0:right - c0] = \
                    tiles[j][top - i * th:bottom - i * th, left - j * tw:right - j * tw]
        return out


def _runs(indices: list[int]) -> list[list[int]]:
    """Sorted ``indices`` in runs of consecutive values."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


class _TileCache:
    """Decoded tiles by index, least recently used dropped past ``capacity`` bytes."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.nbytes = capacity, 0
        self.tiles: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    def lookup(self, index: tuple[int, int]) -> np.ndarray | None:
        """The tile at ``index`` if held, else None."""
        with self.lock:
            if index in self.tiles:
                self.tiles.move_to_end(index)
                return self.tiles[index]
        return None

    def put(self, index: tuple[int, int], tile: np.ndarray) -> np.ndarray:
        """Keep ``tile`` at ``index`` (another thread's copy if it came first); returns
        the tile kept."""
        with self.lock:
            if index in self.tiles:
                return self.tiles[index]
            self.tiles[index] = tile
            self.nbytes += tile.nbytes
            while self.nbytes > self.capacity and len(self.tiles) > 1:
                _, dropped = self.tiles.popitem(last=False)
                self.nbytes -= dropped.nbytes
        return tile


_caches: OrderedDict[str, _TileCache] = OrderedDict()
_caches_lock = threading.Lock()
CACHES_KEPT = 2  # a long-lived worker keeps the tiles of the two sources it read last


def _cache(token: str, capacity: int) -> _TileCache:
    """This process's tile cache for the source opened as ``token`` (one per
    ``open_source`` call, so that a file written again is read again)."""
    with _caches_lock:
        if token not in _caches:
            _caches[token] = _TileCache(capacity)
            while len(_caches) > CACHES_KEPT:
                _caches.popitem(last=False)
        _caches.move_to_end(token)
        return _caches[token]


class TiffSource(_Source):
    """The image of a TIFF file: contiguous uncompressed data is memory-mapped (read
    exactly, never cached); tiles and strips are decoded through tifffile's Zarr store."""

    def __init__(self, path: str | os.PathLike) -> None:
        _, tifffile, zarr = _modules()
        self.path = os.fspath(path)
        try:
            with tifffile.TiffFile(self.path) as tif:
                if not tif.series:
                    raise ValueError("it holds no image")
                series = tif.series[0]
                self.shape = tuple(int(n) for n in series.shape)
                self.dtype = np.dtype(series.dtype)
                self.offset = series.dataoffset
                axes = series.axes
                if self.offset is None and axes in ("YX", "YXS"):
                    with series.aszarr(level=0) as store:
                        self.stored = tuple(zarr.open_array(store, mode="r").chunks[:2])
        except (tifffile.TiffFileError, IndexError, ValueError, struct.error) as error:
            raise ValueError(f"cannot read {self.path} as TIFF: {error}") from None
        if axes not in ("YX", "YXS"):
            raise ValueError(f"{self.path} must hold one image (H, W) or (H, W, C); "
                             f"received a series of shape {self.shape} (axes {axes})")
        self.ndim = len(self.shape)

    def _read(self, key: Any) -> np.ndarray:
        _, tifffile, zarr = _modules()
        if self.offset is not None:
            data = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset,
                             shape=self.shape)
            return np.array(data[key])
        with tifffile.TiffFile(self.path) as tif, tif.series[0].aszarr(level=0) as store:
            return np.asarray(zarr.open_array(store, mode="r")[key])


class ZarrSource(_Source):
    """A Zarr array ``(H, W)`` or ``(H, W, C)`` (v2 or v3)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        array = self._open()
        self.shape, self.dtype, self.ndim = tuple(array.shape), np.dtype(array.dtype), array.ndim
        if self.ndim not in (2, 3):
            raise ValueError(f"{self.path} must hold one image (H, W) or (H, W, C); "
                             f"received an array of shape {self.shape}")
        self.stored = tuple(array.chunks[:2])

    def _open(self) -> Any:
        _, _, zarr = _modules()
        try:
            return zarr.open_array(self.path, mode="r")
        except Exception as error:  # zarr raises several unrelated types for bad stores
            raise ValueError(f"cannot read {self.path} as a Zarr array: "
                             f"{type(error).__name__}: {error}") from None

    def _read(self, key: Any) -> np.ndarray:
        return np.asarray(self._open()[key])


def check_output(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """``path`` as a Path, refused if it exists and ``overwrite`` is false."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(f"output exists: {path} (overwrite it with --overwrite, or "
                              "overwrite=True)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder not found: {path.parent}")
    return path


@contextmanager
def replacing(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block
    ends normally, removed when it raises (or is interrupted)."""
    final = check_output(path, overwrite=overwrite)
    temporary = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        yield temporary
        if final.exists() or final.is_symlink():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            os.replace(temporary, final)
            _remove(old)
        else:
            os.replace(temporary, final)
    finally:
        _remove(temporary)


def _remove(path: Path) -> None:
    """Remove ``path``; a folder again until it stays gone (for up to 10 s): after a Ctrl-C
    the scheduler's threads still finish the chunks they were writing into it."""
    if path.is_dir() and not path.is_symlink():
        deadline = time.monotonic() + 10
        while path.exists() and time.monotonic() < deadline:
            shutil.rmtree(path, ignore_errors=True)
            time.sleep(0.2)
    elif path.exists() or path.is_symlink():
        path.unlink()


class TiffTiles:
    """An uncompressed tiled BigTIFF, created empty, whose tiles are written in place by
    ``tiles[region] = block`` from any thread or process (regions aligned with tiles)."""

    def __init__(self, path: str | os.PathLike, shape: tuple[int, ...], dtype: Any, *,
                 tile: int) -> None:
        _, tifffile, _ = _modules()
        self.path, self.shape, self.tile = os.fspath(path), tuple(shape), tile
        photometric = "rgb" if len(shape) == 3 and shape[2] == 3 else "minisblack"
        tifffile.imwrite(self.path, shape=self.shape, dtype=dtype, tile=(tile, tile),
                         bigtiff=True, photometric=photometric, planarconfig="contig",
                         metadata=None)
        with tifffile.TiffFile(self.path) as tif:
            page = tif.pages[0]
            self.offsets = np.asarray(page.dataoffsets, dtype=np.int64)
            self.dtype = np.dtype(dtype).newbyteorder(tif.byteorder)
        self.across = -(-self.shape[1] // tile)  # tiles in a row

    def __setitem__(self, key: tuple[slice, ...], block: np.ndarray) -> None:
        t = self.tile
        (r0, r1), (c0, c1) = ((s.start or 0, s.stop) for s in key[:2])
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for top in range(r0, r1, t):
                for left in range(c0, c1, t):
                    tile = np.zeros((t, t, *self.shape[2:]), self.dtype)
                    part = block[top - r0:top - r0 + t, left - c0:left - c0 + t]
                    tile[:part.shape[0], :part.shape[1]] = part
                    index = (top // t) * self.across + left // t
                    os.pwrite(fd, tile.tobytes(), int(self.offsets[index]))
        finally:
            os.close(fd)


def tile_size(chunks: tuple[tuple[int, ...], ...]) -> int:
    """A TIFF tile (512 pixels or less) that divides the chunk size of every axis of
    several chunks, so that each chunk writes whole tiles."""
    sizes = [c[0] for c in chunks[:2] if len(c) > 1]
    for tile in (512, 256, 128, 64, 32, 16):
        if all(size % tile == 0 for size in sizes):
            return tile
    raise ValueError(f"writing TIFF tiles needs chunks of a multiple of {TILE_MULTIPLE} "
                     f"pixels; received chunks of {sizes[0]} x {sizes[-1]}")


def save(image: Any, path: str | os.PathLike, *, overwrite: bool = False,
         run: Callable[[Any], Any] | None = None) -> Path:
    """Write the Dask array ``image: (H, W)`` or ``(H, W, C)`` to ``path`` (``.zarr``, or
    ``.tif`` / ``.tiff`` as an uncompressed tiled BigTIFF), chunk by chunk; Zarr chunks
    compressed by Blosc-LZ4 with byte shuffle (``zarr_compressors``).

    Arguments:
        image: chunked along H and W (uneven chunks are evened out to the largest); for
            TIFF, chunks of a multiple of 16 pixels.
        overwrite: replace an existing output (else FileExistsError).
        run: computes the lazy array of per-chunk write flags it is given (a progress bar,
            a cluster); by default ``flags.compute()``.

    Returns:
        The path written, complete: until then the data is under a temporary name.
    """
    _, _, zarr = _modules()
    where = kind(path)
    if where is None:
        raise ValueError(f"cannot write {os.fspath(path)} chunk by chunk: the suffix must be "
                         f"one of {', '.join(SUFFIXES)}")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C); received an array of shape "
                         f"{image.shape}")
    size = tuple(max(c) for c in image.chunks[:2]) + image.shape[2:]
    image = image.rechunk(size)  # a no-op on even chunks
    with replacing(path, overwrite=overwrite) as temporary:
        if where == "zarr":
            target = zarr.create_array(store=str(temporary), shape=image.shape, chunks=size,
                                       dtype=image.dtype, compressors=zarr_compressors())
        else:
            target = TiffTiles(temporary, image.shape, image.dtype,
                               tile=tile_size(image.chunks))
        flags = stored(image, target)
        (run or (lambda f: f.compute()))(flags)
    return Path(path)


def stored(image: Any, target: Any) -> Any:
    """A lazy array of one flag per chunk of ``image``, whose computing writes that chunk
    into ``target[region]``."""
    return image.map_blocks(_store_block, target=target, dtype=bool,
                            chunks=tuple((1,) * len(c) for c in image.chunks),
                            name=f"store-{uuid.uuid4().hex}")


def _store_block(block: np.ndarray, *, target: Any, block_info: Any = None) -> np.ndarray:
    location = block_info[0]["array-location"]
    target[tuple(slice(a, b) for a, b in location)] = block
    return np.ones((1,) * block.ndim, dtype=bool)

