"""Filters and inference on Dask arrays (extra ``dask``), chunk by chunk.

An image larger than memory, or a batch of many images, is a Dask array; the functions here
return lazy Dask arrays whose chunks run convolve's in-memory code, on Dask's threads, its
processes or a ``distributed`` cluster. Dask is imported when one of them is called.

``apply`` gives each chunk of a Dask array the halo its kernel reaches into (``map_overlap``
with the depth of the kernel's footprint about its origin) and pads the chunks on the
image's edge in the boundary mode, so that every mode and every chunking give the in-memory
result. ``apply_source`` has each chunk read its own halo from a file-backed array instead:
no chunk waits for another, and memory holds a few chunks per thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve import _args, filters
from convolve.ops.pad import _NUMPY_MODE, check_pads, source_index


def _dask_array() -> Any:
    try:
        import dask.array
    except ImportError:
        raise ImportError(
            "Dask arrays need Dask: pip install 'convolve[dask]'") from None
    return dask.array


def apply(image: Any, kernel: Any, *, mode: str = "reflect") -> Any:
    """``filters.apply`` on a Dask array ``(H, W)`` or ``(H, W, C)``, lazily: each chunk
    with the halo its kernel reaches into from its neighbours (``map_overlap``), the
    chunks on the image's edge padded in ``mode`` (``circular``: the whole array is
    padded first, lazily).

    Returns:
        A Dask array of the image's shape, dtype and chunks (a channel axis in several
        chunks comes back in one). Chunks thinner than the kernel's reach are merged for
        the computation and split again after it.
    """
    da = _dask_array()
    if not isinstance(image, da.Array):
        raise TypeError(f"image must be a Dask array; received {_args.describe(image)}")
    if image.dtype.kind != "f":
        raise TypeError(
            "image must be a floating-point array (float32 or float64); received "
            f"{_args.describe(image)}. Convert it first, e.g. x.astype(np.float32) / 255"
        )
    _args.rank(image.shape, "image", {2: "(H, W)", 3: "(H, W, C)"})
    mode = _args.padding_mode(mode, "mode")
    kernels = filters.kernels_of(kernel)
    pads = filters.same_pads(kernels[0].shape)
    check_pads(pads, image.shape[:2], mode,
               name=f"the padding that a kernel of shape {kernels[0].shape} needs")
    if image.ndim == 3:
        image = image.rechunk({2: -1})
    if image.size == 0:
        return image
    # Each chunk at least one pixel wider than the reach: a chunk on the image's edge pads
    # itself from its own pixels (reflect needs pad + 1 of them).
    work = tuple(_halo_chunks(c, max(p) + 1) for c, p in zip(image.chunks, pads))
    depth = {axis: pads[axis] if len(work[axis]) > 1 else (0, 0) for axis in (0, 1)}
    depth.update({2: 0} if image.ndim == 3 else {})
    meta = np.empty((0,) * image.ndim, image.dtype)
    if mode == "circular":  # wraps around: pad the whole array first, then only halos
        padded = da.pad(image.rechunk(work + image.chunks[2:]),
                        [*pads, *[(0, 0)] * (image.ndim - 2)], mode=_NUMPY_MODE[mode])
        padded = padded.rechunk(tuple(
            _with_pads(c, p) for c, p in zip(work, pads)) + image.chunks[2:])
        result = da.map_overlap(
            _filter_chunk, padded, depth=depth, boundary="none", trim=False,
            allow_rechunk=False, chunks=work + image.chunks[2:], dtype=image.dtype,
            meta=meta, kernels=kernels, pads=((0, 0), (0, 0)), mode="zeros")
    else:
        result = da.map_overlap(
            _filter_chunk, image.rechunk(work + image.chunks[2:]), depth=depth,
            boundary="none", trim=False, allow_rechunk=False,
            chunks=work + image.chunks[2:], dtype=image.dtype, meta=meta, kernels=kernels,
            pads=pads, mode=mode)
    return result.rechunk(image.chunks)


def _filter_chunk(block: np.ndarray, *, kernels: list[np.ndarray], pads: _args.Pads,
                  mode: str, block_info: Any) -> np.ndarray:
    """The in-memory filter on a chunk that carries its neighbours' halo; on the sides
    where it meets the image's edge, padded by ``pads`` in ``mode`` from its own pixels.
    The output loses the halo."""
    (i, j), (rows, cols) = (block_info[None]["chunk-location"][:2],
                            block_info[None]["num-chunks"][:2])
    edges = ((pads[0][0] if i == 0 else 0, pads[0][1] if i == rows - 1 else 0),
             (pads[1][0] if j == 0 else 0, pads[1][1] if j == cols - 1 else 0))
    return filters.correlate(block, kernels, pads=edges, mode=mode)


def _halo_chunks(chunks: tuple[int, ...], reach: int) -> tuple[int, ...]:
    """``chunks`` along an axis, neighbours merged until each is at least ``reach``
    (the halo a neighbour takes from it); an axis shorter than ``reach`` is one chunk."""
    merged: list[int] = []
    for c in chunks:
        if merged and merged[-1] < reach:
            merged[-1] += c
        else:
            merged.append(c)
    if len(merged) > 1 and merged[-1] < reach:
        last = merged.pop()
        merged[-1] += last
    return tuple(merged)


def _with_pads(chunks: tuple[int, ...], pads: tuple[int, int]) -> tuple[int, ...]:
    """The chunks of an axis padded by ``pads``: the pads join the first and last chunk."""
    out = list(chunks)
    out[0] += pads[0]
    out[-1] += pads[1]
    return tuple(out)


def predict(model: Any, images: Any, *, batch_size: int = 256) -> Any:
    """``convolve.predict`` on a Dask array ``images: (N, H, W, C)``, lazily.

    One task per chunk of the batch axis (the other axes are merged into one chunk), each
    running the in-memory ``predict`` in batches of ``batch_size``. The tasks share one copy
    of the model, in evaluation mode, held in the graph once: a worker receives its weights
    once, whatever the number of chunks it runs.

    Returns:
        A Dask array ``(N, ...)`` of the model's outputs, chunked as the batch axis.
    """
    import copy
    import uuid

    import dask

    from convolve import train

    da = _dask_array()
    if not isinstance(images, da.Array):
        raise TypeError(f"images must be a Dask array; received {_args.describe(images)}")
    batch_size = _args.integer(batch_size, "batch_size")
    if images.ndim == 0 or images.shape[0] == 0:
        raise ValueError("images must be a batch (N, ...) with N >= 1; received an array of "
                         f"shape {images.shape}")
    frozen = copy.deepcopy(model).eval()
    # One image through the in-memory predict: the output's shape, and its errors now.
    try:
        probe = train.predict(frozen, np.zeros((1, *images.shape[1:]), images.dtype))
    except ValueError as error:
        raise ValueError(f"{error}; tried on one image like those of the Dask array of shape "
                         f"{images.shape}") from None
    shared = dask.delayed(frozen, name=f"convolve-model-{uuid.uuid4().hex}")
    images = images.rechunk({axis: -1 for axis in range(1, images.ndim)})
    outputs = [
        da.from_delayed(dask.delayed(_predict_block, pure=True)(shared, block, batch_size),
                        shape=(n, *probe.shape[1:]), dtype=probe.dtype,
                        meta=probe[:0])
        for n, block in zip(images.chunks[0], images.to_delayed().ravel())
    ]
    return da.concatenate(outputs) if len(outputs) > 1 else outputs[0]


def _predict_block(model: Any, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The outputs of a model already in evaluation mode, which threads may share (the
    in-memory ``predict`` switches the mode and back, one call at a time)."""
    from convolve.tensor import no_grad

    with no_grad():
        return np.concatenate([np.asarray(model(images[i:i + batch_size]))
                               for i in range(0, len(images), batch_size)])


# dtype of a source -> (the float dtype it is filtered in, the value that maps to 1.0)
FLOAT_OF = {np.dtype(np.uint8): (np.dtype(np.float32), 255),
            np.dtype(np.uint16): (np.dtype(np.float32), 65535),
            np.dtype(np.float32): (np.dtype(np.float32), None),
            np.dtype(np.float64): (np.dtype(np.float64), None)}


def float_dtype(dtype: Any, name: str) -> np.dtype:
    """The dtype that pixels of ``dtype`` are filtered in; other dtypes refused (``name``
    says whose pixels)."""
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_OF:
        raise TypeError(f"{name} has pixels of dtype {dtype}; supported: uint8, uint16 "
                        "(scaled to [0, 1]), float32 and float64")
    return FLOAT_OF[dtype][0]


def apply_source(source: Any, kernel: Any, *, mode: str = "reflect", chunk: int = 2048,
                 name: str = "source") -> Any:
    """``filters.apply`` on an image that reads the regions it is indexed with (a Zarr
    array, a memory map, ``bigio.TiffSource``), as a lazy Dask array.

    Each output chunk is one task that reads its own region and halo from ``source`` (the
    boundary taken in ``mode`` where the halo leaves the image) and filters it: no task
    waits for another, so memory holds a few chunks per worker, whatever the image's size.

    Arguments:
        source: ``(H, W)`` or ``(H, W, C)``, float32, float64, or uint8 / uint16 (scaled to
            ``[0, 1]`` as float32).
        chunk: the output's chunks, ``chunk x chunk`` pixels (all channels).

    Returns:
        A Dask array of the source's shape, in its float dtype.
    """
    da = _dask_array()
    shape = tuple(int(n) for n in source.shape)
    _args.rank(shape, name, {2: "(H, W)", 3: "(H, W, C)"})
    dtype = float_dtype(source.dtype, name)
    chunk = _args.integer(chunk, "chunk")
    mode = _args.padding_mode(mode, "mode")
    kernels = filters.kernels_of(kernel)
    pads = filters.same_pads(kernels[0].shape)
    check_pads(pads, shape[:2], mode,
               name=f"the padding that a kernel of shape {kernels[0].shape} needs")
    chunks = tuple(_even_chunks(n, chunk) for n in shape[:2]) + tuple((n,) for n in shape[2:])
    return da.map_blocks(_read_and_filter, dtype=dtype, chunks=chunks,
                         meta=np.empty((0,) * len(shape), dtype), source=source,
                         kernels=kernels, pads=pads, mode=mode, shape=shape)


def _even_chunks(n: int, chunk: int) -> tuple[int, ...]:
    return (chunk,) * (n // chunk) + ((n % chunk,) if n % chunk else ()) or (0,)


def _read_and_filter(*, source: Any, kernels: list[np.ndarray], pads: _args.Pads,
                     mode: str, shape: tuple[int, ...], block_info: Any) -> np.ndarray:
    (r0, r1), (c0, c1) = block_info[None]["array-location"][:2]
    rows = _axis_reads(r0, r1, pads[0], shape[0], mode)
    cols = _axis_reads(c0, c1, pads[1], shape[1], mode)
    region = _join([_join([np.asarray(source[a:b, c:d]) for c, d in cols[0]], axis=1)
                    for a, b in rows[0]], axis=0)
    to, scale = FLOAT_OF[np.dtype(region.dtype)]
    for axis, index in ((0, rows[1]), (1, cols[1])):
        if index is None:
            continue
        if mode == "zeros":  # index -1 picks the zeros appended here
            region = np.pad(region, [(0, int(a == axis)) for a in range(region.ndim)])
        region = np.take(region, index, axis=axis)
    region = region.astype(to, copy=False)
    if scale is not None:
        region /= to.type(scale)
    return filters.correlate(region, kernels, pads=((0, 0), (0, 0)), mode="zeros")


def _join(parts: list[np.ndarray], *, axis: int) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)


def _axis_reads(start: int, stop: int, pads: tuple[int, int], n: int, mode: str,
                ) -> tuple[list[tuple[int, int]], np.ndarray | None]:
    """The reads along an axis for the output positions ``start:stop`` with their halo:
    runs ``[(a, b), ...]`` of source positions, and the index of each padded position in
    the runs laid end to end (-1: a zero), or None when that is the runs themselves."""
    first, last = start - pads[0], stop + pads[1]
    if first >= 0 and last <= n:
        return [(first, last)], None
    positions = np.arange(first, last)
    if mode == "zeros":
        source = np.where((positions >= 0) & (positions < n), positions, -1)
    else:
        source = source_index(n, pads[0], pads[1], mode)[first + pads[0]:last + pads[0]]
    needed = np.unique(source[source >= 0])
    breaks = np.flatnonzero(np.diff(needed) != 1) + 1
    runs = [(int(r[0]), int(r[-1]) + 1) for r in np.split(needed, breaks) if r.size]
    index = np.searchsorted(needed, source)
    index[source < 0] = -1
    return runs, index
