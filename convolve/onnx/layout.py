"""Values flowing through an imported graph, each with its physical layout.

ONNX names axes in its own (logical) order: NCHW for images. convolve's ops run
channels-last, so a value keeps ``perm``: physical axis ``i`` holds logical axis
``perm[i]`` (``None``: the logical order itself). A conv's output is NHWC in memory with
``perm = (0, 2, 3, 1)``; an op that cares about axes maps them through ``perm``, and a value
is transposed to the logical order only where an op needs it (a Reshape, a MatMul).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from convolve.ops import math as ops_math
from convolve.tensor import Tensor, data

Perm = tuple[int, ...]
CHANNELS_LAST = (0, 2, 3, 1)


def channels_last(ndim: int) -> Perm:
    """The perm that puts logical axis 1 (the channels) last: ``(0, 2, ..., ndim - 1, 1)``."""
    return (0, *range(2, ndim), 1)


def transpose(x: Any, axes: Sequence[int]) -> Any:
    """``x`` with its axes permuted: recorded for a Tensor, a contiguous copy for an array
    (the ops that follow read it many times)."""
    if isinstance(x, Tensor):
        return ops_math.transpose(x, tuple(axes))
    return np.ascontiguousarray(np.transpose(x, axes))


def _normal(perm: Sequence[int] | None) -> Perm | None:
    if perm is None or tuple(perm) == tuple(range(len(perm))):
        return None
    return tuple(int(p) for p in perm)


class Value:
    """An array or Tensor (``data``, in physical order) and its ``perm``."""

    __slots__ = ("data", "perm")

    def __init__(self, array: Any, perm: Sequence[int] | None = None) -> None:
        self.data = array
        self.perm = None if perm is None else _normal(perm)

    @property
    def ndim(self) -> int:
        return np.ndim(data(self.data))

    @property
    def shape(self) -> tuple[int, ...]:
        """The logical shape."""
        physical = np.shape(data(self.data))
        if self.perm is None:
            return physical
        logical = [0] * len(physical)
        for i, axis in enumerate(self.perm):
            logical[axis] = physical[i]
        return tuple(logical)

    @property
    def dtype(self) -> np.dtype:
        return np.asarray(data(self.data)).dtype

    def axis(self, logical: int) -> int:
        """The physical position of logical axis ``logical`` (negative counts from the end)."""
        logical = logical + self.ndim if logical < 0 else logical
        return logical if self.perm is None else self.perm.index(logical)

    def to(self, perm: Sequence[int] | None) -> Any:
        """The data laid out with ``perm`` (``None``: logical order)."""
        target = _normal(perm)
        if target == self.perm:
            return self.data
        current = self.perm or tuple(range(self.ndim))
        wanted = target or tuple(range(self.ndim))
        return transpose(self.data, [current.index(axis) for axis in wanted])

    def logical(self) -> Any:
        """The data in ONNX's axis order."""
        return self.to(None)

    def numpy(self) -> np.ndarray:
        """The logical data as a plain array (for shapes, indices and other settings)."""
        return np.asarray(data(self.logical()))


def reshaped(value: Value, target: Sequence[int]) -> Value:
    """``value`` reshaped to the logical shape ``target`` (no -1 or 0 entries), without
    moving data where the layout allows it.

    A reshape only splits and merges runs of logical axes. Where each run lies in physical
    memory in the same order (size-1 axes aside), the physical data is reshaped directly:
    a channels-last ``(N, C, H, W)`` split into ``(N, g, C / g, H, W)`` (a channel
    shuffle) or ``(N, C, 1, 1)`` flattened to ``(N, C)`` stays where it is. Otherwise the
    value is brought to the logical order first.
    """
    target = [int(n) for n in target]
    order = None if value.perm is None else _physical_reshape(value.shape, value.perm, target)
    if order is None:
        return Value(_reshape(value.logical(), target))
    return Value(_reshape(value.data, [target[j] for j in order]), order)


def _physical_reshape(shape: Sequence[int], perm: Sequence[int], target: Sequence[int]
                      ) -> list[int] | None:
    """For a value of logical ``shape`` held with ``perm``: the order of the ``target``
    axes in physical memory if ``target`` can be reached by reshaping the physical data,
    else None."""
    if 0 in shape or math.prod(shape) != math.prod(target):
        return None
    axes = [a for a in range(len(shape)) if shape[a] != 1]
    dims = [j for j in range(len(target)) if target[j] != 1]
    groups: list[tuple[list[int], list[int]]] = []  # (logical axes, target axes)
    i = j = 0
    while i < len(axes):
        group_axes, group_dims = [axes[i]], [dims[j]]
        left, right = shape[axes[i]], target[dims[j]]
        i, j = i + 1, j + 1
        while left != right:
            if left < right:
                group_axes.append(axes[i])
                left *= shape[axes[i]]
                i += 1
            else:
                group_dims.append(dims[j])
                right *= target[dims[j]]
                j += 1
        groups.append((group_axes, group_dims))
    physical = [a for a in perm if shape[a] != 1]
    position = {a: k for k, a in enumerate(physical)}
    for group_axes, _ in groups:
        places = [position[a] for a in group_axes]
        if places != list(range(places[0], places[0] + len(places))):
            return None
    groups.sort(key=lambda g: position[g[0][0]])
    order = [j for _, group_dims in groups for j in group_dims]
    return order + [j for j in range(len(target)) if target[j] == 1]


def aligned(values: Sequence[Value]) -> tuple[list[Any], Perm | None]:
    """The operands of a broadcasting elementwise op, in one physical layout.

    The layout is that of the first operand of the highest rank that has one; each other
    operand is broadcast to that rank by NumPy's rule (leading axes of size 1) and
    transposed to it. Returns the physical operands and the output's ``perm``.
    """
    rank = max(v.ndim for v in values)
    owner = next((v for v in values if v.ndim == rank and v.perm is not None), None)
    if owner is None:
        return [v.data for v in values], None
    perm = owner.perm
    operands = []
    for v in values:
        if v.ndim == rank and v.perm == perm:
            operands.append(v.data)
            continue
        x = v.logical()
        if v.ndim < rank:
            x = _reshape(x, (1,) * (rank - v.ndim) + v.shape)
        operands.append(transpose(x, perm) if np.size(data(x)) > 1 or isinstance(x, Tensor)
                        else np.reshape(x, [np.shape(x)[a] for a in perm]))
    return operands, perm


def _reshape(x: Any, shape: Sequence[int]) -> Any:
    return ops_math.reshape(x, tuple(shape)) if isinstance(x, Tensor) else np.reshape(x, shape)


def reshape(x: Any, shape: Sequence[int]) -> Any:
    """``x`` (an array or Tensor) reshaped, recorded for a Tensor."""
    return _reshape(x, shape)


__all__ = ["CHANNELS_LAST", "Perm", "Value", "aligned", "channels_last", "reshape",
           "reshaped", "transpose"]
