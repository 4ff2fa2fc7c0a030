"""Spatial padding of NHWC arrays in every boundary mode, and its adjoint.

Modes follow PyTorch: ``reflect`` mirrors without repeating the edge (SciPy's "mirror"),
``replicate`` repeats the edge, ``circular`` wraps around; ``symmetric`` mirrors repeating
the edge (SciPy's "reflect").
"""

from __future__ import annotations

import numpy as np

from convolve._args import Pads

_NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
               "circular": "wrap", "symmetric": "symmetric"}


def check_pads(pads: Pads, size: tuple[int, int], mode: str, name: str = "padding") -> None:
    """Refuse pads wider than ``mode`` can take from an input of spatial ``size``."""
    limit = {"reflect": -1, "circular": 0, "symmetric": 0}.get(mode)
    if limit is None:
        return
    for axis, n, (p0, p1) in zip(("height", "width"), size, pads):
        if max(p0, p1) > n + limit:
            raise ValueError(
                f"{name} with padding_mode={mode!r} must be at most {n + limit} along the "
                f"{axis} for an input of {n} pixels; received pads ({p0}, {p1})"
            )


def source_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each padded position along an axis, the input position it copies."""
    return _source(np.arange(-before, n + after), n, mode)


def _source(p: np.ndarray, n: int, mode: str) -> np.ndarray:
    """The input positions that positions ``p`` (relative to the input's start) copy."""
    if mode == "replicate":
        return np.clip(p, 0, n - 1)
    if mode == "circular":
        return p % n
    if mode == "reflect":
        m = p % (2 * n - 2) if n > 1 else np.zeros_like(p)
        return np.where(m < n, m, 2 * n - 2 - m)
    m = p % (2 * n)  # symmetric
    return np.where(m < n, m, 2 * n - 1 - m)


def pad(x: np.ndarray, pads: Pads, mode: str) -> np.ndarray:
    """Pad axes -3 and -2 (H, W) of ``x`` by ``pads`` in ``mode``."""
    if not any(pads[0] + pads[1]):
        return x
    if mode == "zeros":  # np.pad's bookkeeping cost 10x the copy on small images
        (top, bottom), (left, right) = pads
        h, w = x.shape[-3:-1]
        out = np.zeros((*x.shape[:-3], h + top + bottom, w + left + right, x.shape[-1]),
                       dtype=x.dtype)
        out[..., top:top + h, left:left + w, :] = x
        return out
    width = [(0, 0)] * (x.ndim - 3) + [pads[0], pads[1], (0, 0)]
    return np.pad(x, width, mode=_NUMPY_MODE[mode])


def pad_adjoint(g: np.ndarray, pads: Pads, mode: str, size: tuple[int, int]) -> np.ndarray:
    """The gradient of ``pad``: fold each padded pixel's gradient back onto its source."""
    if not any(pads[0] + pads[1]):
        return g  # itself, not a view: Tensor.backward keeps a fresh array uncopied
    if mode == "zeros":  # one contiguous copy of the inside
        (top, _), (left, _) = pads
        return np.ascontiguousarray(g[..., top:top + size[0], left:left + size[1], :])
    for axis, n, (p0, p1) in ((-3, size[0], pads[0]), (-2, size[1], pads[1])):
        if p0 == 0 and p1 == 0:
            continue
        g = np.moveaxis(g, axis, 0)
        inner = g[p0:p0 + n].copy()
        if mode != "zeros":
            index = source_index(n, p0, p1, mode)
            for i in (*range(p0), *range(p0 + n, p0 + n + p1)):
                inner[index[i]] += g[i]
        g = np.moveaxis(inner, 0, axis)
    return g


def pad_rows(x: np.ndarray, rows: range, pads: tuple[int, int], mode: str,
             out: np.ndarray) -> None:
    """``out[i] = xp[rows[i]]``, where ``xp`` is ``x: (H, ...)`` padded along its first
    axis by ``pads = (before, after)`` in ``mode``; ``out: (len(rows), ...)``.

    For filters that pad block by block into a buffer that stays in cache, instead of
    writing (and reading back) a padded copy of the whole image. ``rows`` has a positive
    step and lies within the padded extent."""
    h, (top, bottom) = x.shape[0], pads
    start, step, count = rows.start, rows.step, len(rows)
    first = min(count, max(0, -((rows.start - top) // step)))  # rows[first] >= top
    stop = max(first, min(count, -((start - top - h) // step)))  # rows[stop] >= top + h
    if first < stop:
        i = rows[first] - top
        out[first:stop] = x[i:i + (stop - first - 1) * step + 1:step]
    border = [*range(first), *range(stop, count)]
    if not border:
        return
    if mode == "zeros":
        out[border] = 0
    else:
        out[border] = x[source_index(h, top, bottom, mode)[[rows[i] for i in border]]]


Columns = list[tuple[slice, "slice | np.ndarray | None"]]


def border_columns(w: int, pads: tuple[int, int], mode: str) -> Columns:
    """For rows of ``w`` values padded by ``pads = (left, right)`` in ``mode``: each
    side's padding columns and the columns they copy (None: zeros), for ``pad_columns``.
    Worked out once per image: per block, NumPy's small-array calls cost more than the
    copy."""
    left, right = pads
    sides = []
    for first, stop in ((-left, 0), (w, w + right)):
        if first < stop:
            source = None if mode == "zeros" else _as_slice(
                _source(np.arange(first, stop), w, mode) + left)
            sides.append((slice(left + first, left + stop), source))
    return sides


def pad_columns(out: np.ndarray, columns: Columns) -> None:
    """Fill the padding columns of rows ``out: (..., Wp, C)`` (``border_columns``)."""
    for target, source in columns:
        out[..., target, :] = 0 if source is None else out[..., source, :]


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """``index`` as a slice where it is an arithmetic sequence (each mode's border is one
    in the widths ``check_pads`` allows; a slice copies without fancy indexing's cost)."""
    step = int(index[1] - index[0]) if len(index) > 1 else 1
    if np.any(np.diff(index) != step):
        return index
    if step == 0:  # one column, repeated: broadcast
        return slice(int(index[0]), int(index[0]) + 1)
    stop = int(index[-1]) + step
    return slice(int(index[0]), stop if stop >= 0 else None, step)
