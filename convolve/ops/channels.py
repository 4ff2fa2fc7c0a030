"""Per-channel sums and broadcasts over channels-last arrays, fast when channels are few.

NumPy runs an operation between ``(M, C)`` and a ``(C,)`` vector (or a sum over axis 0)
as one inner loop per row: with 32 channels, 32 values a loop. Viewed as
``(M / r, r * C)`` with the vector tiled ``r`` times, the same work runs in loops of
``r * C`` values, 3-8x faster (``(43264, 32)`` float32: subtracting the mean 1.2 ms, 0.35
wide; the per-channel sum 1.26 ms, 0.16 wide).
"""

from __future__ import annotations

import numpy as np

# Rows of at least this many values where the row count allows.
WIDE = 512


def widen(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a: (..., C)`` as ``(M / r, r * C)`` (a view where ``a`` is C-contiguous), with
    ``r`` the largest divisor of ``M`` up to ``ceil(WIDE / C)``; returns ``(view, r)``."""
    c = a.shape[-1]
    m = a.size // c if c else 0
    r = next(r for r in range(max(1, min(m, -(-WIDE // max(c, 1)))), 0, -1) if m % r == 0)
    return a.reshape(m // r, r * c), r


def fold(v: np.ndarray, r: int) -> np.ndarray:
    """A wide row ``(r * C,)`` of per-column sums summed into ``(C,)``."""
    return v.reshape(r, len(v) // r).sum(axis=0)


def tile(v: np.ndarray, r: int) -> np.ndarray:
    """A per-channel vector ``(C,)`` repeated for a wide row: ``(r * C,)``."""
    return np.tile(v, r)


def channel_sum(a: np.ndarray) -> np.ndarray:
    """``a: (..., C)`` summed over every axis but the last: ``(C,)``."""
    wide, r = widen(a)
    return fold(wide.sum(axis=0), r)
