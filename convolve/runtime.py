"""Process-level machinery: convolve's threads, NumPy's BLAS threads, scratch memory, malloc.

The interface is small:

- ``THREADS``: how many threads the NumPy-loop methods split their work over
  (``CONVOLVE_NUM_THREADS``, else the cores, at most 8);
- ``parallel(run, items)`` and ``over_rows(fn, rows, nbytes)``: work on those threads;
- ``single_threaded_blas()`` and ``run_chunks(run, chunks)``: BLAS products beside them,
  ``one_blas_thread()`` around a whole network's pass;
- ``scratch(slot, shape, dtype)``: a reused temporary;
- ``keep_freed_memory()``: glibc's malloc settings for training (``fit``, ``convolve
  train`` and the benchmarks apply them; ``import convolve`` changes nothing in the
  process).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# NumPy's elementwise loops and FFTs release the GIL but run on one core; methods built of
# them (shift-and-add filtering, FFT, pooling) split their work over these threads.
# BLAS threads itself.
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


class _Blas:
    """NumPy's bundled OpenBLAS thread count, read and set through threadpoolctl from any
    Python thread (threadpoolctl lets one thread at a time set a process-wide pool: each
    set here hands that role back at once)."""

    def __init__(self, library: Any) -> None:
        self._library = library

    def get(self) -> int:
        return self._library.get_num_threads()

    def set(self, threads: int) -> None:
        from threadpoolctl import OpenBLASController

        self._library.set_num_threads(threads)
        OpenBLASController.clear_controlling_thread()


_blas_found: _Blas | bool | None = None  # None: not looked for; False: not found


def _blas() -> _Blas | None:
    """NumPy's own OpenBLAS (in ``numpy.libs`` or ``numpy/.dylibs``), or None where NumPy
    uses another BLAS (or none is found)."""
    global _blas_found
    if _blas_found is None:
        from threadpoolctl import ThreadpoolController

        here = os.path.dirname(os.path.realpath(np.__file__))
        folders = {os.path.join(os.path.dirname(here), "numpy.libs"),
                   os.path.join(here, ".dylibs")}
        found = [lib for lib in ThreadpoolController().lib_controllers
                 if lib.internal_api == "openblas"
                 and os.path.dirname(os.path.realpath(lib.filepath)) in folders]
        _blas_found = _Blas(found[0]) if found else False
    return _blas_found or None


# single_threaded_blas changes one process-wide setting: the outermost block over all
# threads saves BLAS's thread count and the last one to close restores it.
_blas_lock = threading.Lock()
_blas_depth = 0  # blocks open, over all threads
_blas_outer = 0  # BLAS's thread count when the outermost one began
_blas_pinned = 0  # one_blas_thread blocks open: BLAS stays on one thread throughout


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
    blas = _blas()
    if blas is None or THREADS <= 1:
        yield
        return
    with _blas_lock:
        if _blas_depth == 0:
            _blas_outer = blas.get()
            blas.set(1)
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                blas.set(_blas_outer)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within this block every OpenBLAS call runs on the calling thread, also the one-chunk
    products that ``run_chunks`` otherwise lets BLAS thread.

    For a whole network's pass (an imported ONNX graph): its many small products each
    woke BLAS's workers, whose 0.1 s of spinning then slowed every following op on
    convolve's threads (PP-OCR's MobileNetV3 classifier, batch 1: 184 ms a pass with two
    BLAS threads, 15 ms with one). A no-op inside a ``single_threaded_blas`` block, where
    BLAS is on one thread already, and where the library is not found."""
    global _blas_pinned
    # counted as a single_threaded_blas block, so that conv2d's blocks and run_chunks
    # inside it leave the setting alone: each set costs about 10 us through
    # threadpoolctl, and a pass made four per conv (mobilenetv3, batch 1: 56 sets)
    with single_threaded_blas():
        with _blas_lock:
            _blas_pinned += 1
        try:
            yield
        finally:
            with _blas_lock:
                _blas_pinned -= 1


def run_chunks(run: Callable[[list], Any], chunks: Sequence) -> None:
    """``run`` over ``chunks`` of work made of many BLAS products: split over
    ``parallel``'s threads with BLAS single-threaded, or with one chunk on this thread
    with the BLAS threads the caller had (one large product, e.g. 8x7x7x512->512's
    forward)."""
    blas = _blas()
    if THREADS <= 1 or blas is None:
        run(list(chunks))
        return
    if len(chunks) < 2:
        with _blas_lock:
            inside = _blas_depth > 0 and _blas_pinned == 0
            if inside:
                blas.set(_blas_outer)
        try:
            run(list(chunks))
        finally:
            if inside:
                with _blas_lock:
                    if _blas_depth > 0:
                        blas.set(1)
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


# glibc's malloc maps arrays of more than a few MB straight from the system and returns
# their memory when they are freed (directly, or by trimming the top of its heap), so the
# next array of that size starts on fresh pages, and touching each page costs a fault. A
# training step makes and drops arrays of that size in every op: mnist_cnn made about
# 2,000 page faults per step, and took 61 ms a step (median) against 35 ms with the
# settings below (batch_norm forward and backward of 64x26x26x32: 14.4 ms, 6.5 ms).
_M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest on 64-bit systems
TRIM_THRESHOLD = 128 << 20


def keep_freed_memory() -> bool:
    """Ask glibc (Linux) to serve blocks of up to ``MMAP_THRESHOLD`` from its heap and to
    keep up to ``TRIM_THRESHOLD`` of freed memory for reuse, as a caching allocator does;
    the process's memory then shrinks later than it would. ``CONVOLVE_KEEP_MEMORY=0`` (or
    ``false``, ``no``, ``off``) leaves malloc as it is. Returns whether it applied them."""
    setting = os.environ.get("CONVOLVE_KEEP_MEMORY", "").strip().lower()
    if not sys.platform.startswith("linux") or setting in ("0", "false", "no", "off"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library Python runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # Setting either fixes both (glibc stops adjusting them): the trim threshold alone,
    # with the mapping threshold left at 128 KB, would map every large array afresh.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def return_freed_memory() -> bool:
    """The opposite setting, for work whose peak memory matters more than page faults
    (streaming an image larger than memory chunk by chunk): glibc (Linux) maps every block
    over 128 KB afresh and trims its heap past 128 KB free, so that each freed chunk goes
    back to the system at once. glibc's own default raises the mapping threshold to the
    largest block freed so far: chunk-sized arrays then stay in its heaps, and the
    process's memory grows with its threads' fragments. Returns whether it applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, 128 << 10) and mallopt(_M_TRIM_THRESHOLD, 128 << 10))
