"""glibc's malloc settings for the large arrays of a training step (Linux only).

By default glibc maps arrays of more than a few MB straight from the system and returns
their memory when they are freed (directly, or by trimming the top of its heap), so the
next array of that size starts on fresh pages, and touching each page costs a fault.
A training step makes and drops arrays of that size in every op: mnist_cnn made about
2,000 page faults per step, and took 61 ms a step (median) against 35 ms with the
settings below (batch_norm forward and backward of 64x26x26x32: 14.4 ms, 6.5 ms).
``import convolve`` therefore asks glibc to serve blocks of up to ``MMAP_THRESHOLD``
from its heap and to keep up to ``TRIM_THRESHOLD`` of freed memory for reuse, as a
caching allocator does; the process's memory then shrinks later than it would. Set
``CONVOLVE_KEEP_MEMORY=0`` (or ``false``, ``no``, ``off``) to leave malloc as it is.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest on 64-bit systems
TRIM_THRESHOLD = 128 << 20


def keep_freed_memory() -> bool:
    """Apply the settings above where the C library is glibc; returns whether it did."""
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
    """Undo ``keep_freed_memory``: glibc's default thresholds (128 KB) again, so that large
    arrays are mapped afresh and freed memory goes back to the system at once. For work
    whose peak memory matters more than page faults, such as streaming an image larger
    than memory chunk by chunk; returns whether it applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, 128 << 10) and mallopt(_M_TRIM_THRESHOLD, 128 << 10))
