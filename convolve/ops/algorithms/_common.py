"""Pieces shared by the conv algorithms: window views, grouped products, work chunks.

Every algorithm works on a padded input ``xp: (N, Hp, Wp, C_in)`` with a weight
``w: (KH, KW, C_in // groups, C_out)`` and produces ``(N, H_out, W_out, C_out)`` with no
further padding; ``conv2d`` pads and unpads around it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

# Temporary buffers stay within this multiple of the output's size (or this floor).
WORKSPACE_FACTOR = 2
WORKSPACE_FLOOR = 4 << 20


def tap_slice(r: int, s: int, out_hw: tuple[int, int], stride: tuple[int, int],
              dilation: tuple[int, int]) -> tuple[slice, slice, slice]:
    """The (batch, rows, cols) slice of ``xp`` that kernel tap ``(r, s)`` reads."""
    r0, s0 = r * dilation[0], s * dilation[1]
    return (slice(None),
            slice(r0, r0 + (out_hw[0] - 1) * stride[0] + 1, stride[0]),
            slice(s0, s0 + (out_hw[1] - 1) * stride[1] + 1, stride[1]))


def windows(xp: np.ndarray, kernel: tuple[int, int], out_hw: tuple[int, int],
            stride: tuple[int, int], dilation: tuple[int, int], groups: int) -> np.ndarray:
    """A read-only view ``(N, H_out, W_out, KH, KW, groups, C_in // groups)`` of ``xp``."""
    n, _, _, c = xp.shape
    sn, sh, sw, sc = xp.strides
    shape = (n, *out_hw, *kernel, groups, c // groups)
    strides = (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1],
               sc * (c // groups), sc)
    return as_strided(xp, shape, strides, writeable=False)


def grouped_matmul(a: np.ndarray, b: np.ndarray, groups: int) -> np.ndarray:
    """Per-group products: ``a: (..., groups * ka)`` times ``b: (ka, groups * kb)``.

    Group ``g`` multiplies channels ``g*ka:(g+1)*ka`` of ``a`` by columns
    ``g*kb:(g+1)*kb`` of ``b``. Returns ``(..., groups * kb)``.
    """
    ka, kb = b.shape[0], b.shape[1] // groups
    lead = a.shape[:-1]
    if groups == 1:
        return (a.reshape(-1, ka) @ b).reshape(*lead, kb)
    if ka == 1:
        return (a[..., :, None] * b.reshape(groups, kb)).reshape(*lead, groups * kb)
    a3 = a.reshape(-1, groups, ka).transpose(1, 0, 2)
    b3 = b.reshape(ka, groups, kb).transpose(1, 0, 2)
    return np.matmul(a3, b3).transpose(1, 0, 2).reshape(*lead, groups * kb)


def grouped_weight_transpose(w_tap: np.ndarray, groups: int) -> np.ndarray:
    """For a tap's weight ``(cg, groups * og)``, the per-group transpose ``(og, groups*cg)``."""
    cg, og = w_tap.shape[0], w_tap.shape[1] // groups
    return w_tap.reshape(cg, groups, og).transpose(2, 1, 0).reshape(og, groups * cg)


def blocks(n: int, out_h: int, row_bytes: int, budget: int
           ) -> Iterator[tuple[int, int, int, int]]:
    """Chunks ``(n0, n1, h0, h1)`` of output rows whose workspace fits ``budget`` bytes,
    given ``row_bytes`` of workspace per output row: whole images where they fit."""
    rows = max(1, budget // max(1, row_bytes))
    if rows >= out_h:
        images = rows // out_h
        for n0 in range(0, n, images):
            yield n0, min(n, n0 + images), 0, out_h
        return
    for n0 in range(n):
        for h0 in range(0, out_h, rows):
            yield n0, n0 + 1, h0, min(out_h, h0 + rows)


def workspace_budget(output_bytes: int) -> int:
    return max(WORKSPACE_FLOOR, WORKSPACE_FACTOR * output_bytes)


def require(condition: bool, algorithm: str, needs: str) -> None:
    """Refuse a shape that the named ``algorithm`` cannot do."""
    if not condition:
        raise ValueError(f"algorithm={algorithm!r} needs {needs}")


def transposed_kernel(w: np.ndarray, groups: int) -> np.ndarray:
    """The kernel of the transposed convolution: ``w: (KH, KW, cg, groups * og)`` flipped
    in space, each group's channels swapped, giving ``(KH, KW, og, groups * cg)``."""
    kh, kw, cg, c_out = w.shape
    og = c_out // groups
    flipped = w[::-1, ::-1].reshape(kh, kw, cg, groups, og)
    return np.ascontiguousarray(flipped.transpose(0, 1, 4, 3, 2)).reshape(
        kh, kw, og, groups * cg)


def spread_gradient(g: np.ndarray, kernel: tuple[int, ...], dilation: tuple[int, int],
                    xp_shape: tuple[int, ...]) -> np.ndarray:
    """The input of the transposed stride-1 correlation: ``g: (N, H_out, W_out, C)`` with
    the dilated kernel's span less one of zeros before it, and after it as many as make
    the correlation ``xp_shape``'s size (more than the span where rows of ``xp`` were
    never read, as with conv_transpose2d's output_padding)."""
    eh, ew = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
    n, ho, wo, c = g.shape
    gp = np.zeros((n, xp_shape[1] + eh, xp_shape[2] + ew, c), dtype=g.dtype)
    gp[:, eh:eh + ho, ew:ew + wo] = g
    return gp


def embed_gradient(g: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, int]:
    """``g: (N, H_out, W_out, C)`` placed at the top-left of each ``grid = (Hp, Wp)`` image,
    zeros elsewhere, as a matrix of its first ``rows`` rows (the last one a pixel of ``g``).
    Returns ``(matrix: (rows, C), rows)``."""
    n, ho, wo, c = g.shape
    hp, wp = grid
    rows = (n - 1) * hp * wp + (ho - 1) * wp + wo
    if (ho, wo) == (hp, wp):
        return np.ascontiguousarray(g).reshape(-1, c), rows
    full = np.zeros((n, hp, wp, c), dtype=g.dtype)
    full[:, :ho, :wo] = g
    return full.reshape(-1, c)[:rows], rows


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# NumPy's elementwise loops and FFTs release the GIL but run on one core; methods built of
# them (shift-and-add filtering, FFT, pooling) split their work over these threads
# (CONVOLVE_NUM_THREADS, else the cores, at most 8). BLAS threads itself.
THREADS = int(os.environ.get("CONVOLVE_NUM_THREADS", 0)) or min(8, _cores())
_pool: ThreadPoolExecutor | None = None


def parallel(run: Callable[[list], Any], items: Sequence) -> None:
    """``run(part)`` on ``THREADS`` contiguous parts of ``items`` at once."""
    global _pool
    parts = min(THREADS, len(items))
    if parts <= 1:
        run(list(items))
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="convolve")
    bounds = [len(items) * i // parts for i in range(parts + 1)]
    futures = [_pool.submit(run, list(items[a:b])) for a, b in itertools.pairwise(bounds)]
    for future in futures:
        future.result()


# Passes over arrays smaller than this run on the calling thread: handing work to another
# thread costs tens of microseconds.
PARALLEL_BYTES = 4 << 20


def over_rows(fn: Callable[[slice], Any], rows: int, nbytes: int) -> list[Any]:
    """``fn(rows_slice)`` over contiguous slices covering ``range(rows)`` of an array of
    ``nbytes``: one slice per thread on ``parallel``'s threads (one slice on this thread
    below ``PARALLEL_BYTES``). Returns the results in row order."""
    parts = max(1, min(rows, THREADS if nbytes >= PARALLEL_BYTES else 1))
    bounds = [rows * i // parts for i in range(parts + 1)]
    results: list[Any] = [None] * parts

    def run(items: list[tuple[int, slice]]) -> None:
        for i, rows_slice in items:
            results[i] = fn(rows_slice)

    parallel(run, [(i, slice(a, b)) for i, (a, b) in enumerate(itertools.pairwise(bounds))])
    return results


def _find_openblas() -> Any:
    """NumPy's bundled OpenBLAS as a ctypes library with ``get``/``set`` thread counts,
    or None where NumPy uses another BLAS (or none is found)."""
    import ctypes
    import glob

    here = os.path.dirname(np.__file__)
    paths = [*glob.glob(os.path.join(here, os.pardir, "numpy.libs", "*openblas*")),
             *glob.glob(os.path.join(here, ".dylibs", "*openblas*"))]
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""),
                               ("openblas", "64_"), ("openblas", "")):
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                return get, put
    return None


_openblas: Any = None


# single_threaded_blas changes one process-wide setting: the outermost block over all
# threads saves BLAS's thread count and the last one to close restores it.
_blas_lock = threading.Lock()
_blas_depth = 0  # blocks open, over all threads
_blas_outer = 0  # BLAS's thread count when the outermost one began


def _blas() -> Any:
    """NumPy's OpenBLAS thread controls ``(get, set)``, or False where not found."""
    global _openblas
    if _openblas is None:
        _openblas = _find_openblas() or False
    return _openblas


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Within this block NumPy's OpenBLAS runs each call on the calling thread.

    conv2d runs every pass within it, and its methods split their work over ``parallel``'s
    threads (``run_chunks``). Mixing the two kinds of threads cost more than either: after
    a multi-threaded product OpenBLAS's idle workers spin for about 0.1 s, and threads
    starting then share a core with them (8x56x56x64->64 forward+backward: 94 ms with
    one multi-threaded product per pass beside the chunks, 41 ms without). With BLAS's
    threads for every product, each waited for its second thread, and on a busy 2-core
    machine that stretched a 3x3 conv's forward and backward from 85 ms to 2.9 s. A no-op
    where the library is not found. The setting is process-wide: while any thread is in
    such a block, other threads' own BLAS calls run single-threaded too."""
    global _blas_depth, _blas_outer
    if not _blas() or THREADS <= 1:
        yield
        return
    get, put = _openblas
    with _blas_lock:
        if _blas_depth == 0:
            _blas_outer = get()
            put(1)
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                put(_blas_outer)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within this block every OpenBLAS call runs on the calling thread, also the one-chunk
    products that ``run_chunks`` otherwise lets BLAS thread.

    For a whole network's pass (an imported ONNX graph): its many small products each
    woke BLAS's workers, whose 0.1 s of spinning then slowed every following op on
    convolve's threads (PP-OCR's MobileNetV3 classifier, batch 1: 184 ms a pass with two
    BLAS threads, 15 ms with one). A no-op inside a ``single_threaded_blas`` block, where
    BLAS is on one thread already, and where the library is not found."""
    if not _blas() or THREADS <= 1:
        yield
        return
    get, put = _openblas
    with _blas_lock:
        outer = get() if _blas_depth == 0 else None
        if outer is not None:
            put(1)
    try:
        yield
    finally:
        if outer is not None:
            with _blas_lock:
                put(outer)


def run_chunks(run: Callable[[list], Any], chunks: Sequence) -> None:
    """``run`` over ``chunks`` of work made of many BLAS products: split over
    ``parallel``'s threads with BLAS single-threaded, or with one chunk on this thread
    with the BLAS threads the caller had (one large product, e.g. 8x7x7x512->512's
    forward)."""
    if THREADS <= 1 or not _blas():
        run(list(chunks))
        return
    if len(chunks) < 2:
        _, put = _openblas
        with _blas_lock:
            inside = _blas_depth > 0
            if inside:
                put(_blas_outer)
        try:
            run(list(chunks))
        finally:
            if inside:
                with _blas_lock:
                    if _blas_depth > 0:
                        put(1)
        return
    with single_threaded_blas():
        parallel(run, chunks)


# Temporaries that never leave the function using them are taken from a small per-thread
# cache instead of fresh allocations: a fresh large array is fresh pages from the system,
# and their page faults cost as much as the work (2x2 max pooling forward+backward of
# 64x32x32x32: 20.6 ms allocating, 11.5 ms with memory kept). Each slot keeps its largest
# buffer up to SCRATCH_BYTES.
SCRATCH_BYTES = 64 << 20
_scratch = threading.local()


def scratch(slot: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array of ``shape`` for a temporary; ``slot`` names it, unique
    among the temporaries alive at once on a thread (use ``module.function.name``)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > SCRATCH_BYTES:
        return np.empty(shape, dtype)
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    buffer = buffers.get(slot)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = buffers[slot] = np.empty(max(nbytes, 1), np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)
