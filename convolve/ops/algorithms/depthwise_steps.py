"""Weighted sums of tap views as short programs of whole-array steps (depthwise filtering).

``sum_steps`` turns a pass's tap weights into a list of steps; ``run_steps`` applies them
to a block's tap views. Each step is one NumPy call over the block, writing ``dest``
(usually the accumulator ``acc`` itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Zero:
    """``dest = 0`` (every weight is 0)."""

    def apply(self, acc: np.ndarray, views: list, dest: np.ndarray, tmp: np.ndarray) -> None:
        dest.fill(0)


@dataclass(frozen=True)
class Copy:
    """``dest = views[tap]``."""

    tap: int

    def apply(self, acc: np.ndarray, views: list, dest: np.ndarray, tmp: np.ndarray) -> None:
        np.copyto(dest, views[self.tap])


@dataclass(frozen=True)
class Scaled:
    """``dest = views[tap] * weight`` (a scalar, or per-channel weights ``(C,)``)."""

    tap: int
    weight: Any

    def apply(self, acc: np.ndarray, views: list, dest: np.ndarray, tmp: np.ndarray) -> None:
        np.multiply(views[self.tap], self.weight, out=dest)


@dataclass(frozen=True)
class PairSum:
    """``dest = views[first] + views[second]`` (``-`` with ``subtract``)."""

    first: int
    second: int
    subtract: bool = False

    def apply(self, acc: np.ndarray, views: list, dest: np.ndarray, tmp: np.ndarray) -> None:
        (np.subtract if self.subtract else np.add)(views[self.first], views[self.second],
                                                   out=dest)


@dataclass(frozen=True)
class Accumulate:
    """``dest = acc + views[tap]`` (``-`` with ``subtract``)."""

    tap: int
    subtract: bool = False

    def apply(self, acc: np.ndarray, views: list, dest: np.ndarray, tmp: np.ndarray) -> None:
        (np.subtract if self.subtract else np.add)(acc, views[self.tap], out=dest)


@dataclass(frozen=True)
class Rescale:
    """``dest = acc * factor``."""

    factor: float

    def apply(self, acc: np.ndarray, views: list, dest: np.ndarray, tmp: np.ndarray) -> None:
        np.multiply(acc, self.factor, out=dest)


@dataclass(frozen=True)
class MultiplyAdd:
    """``dest = acc + views[tap] * weight``, the product in ``tmp``."""

    tap: int
    weight: Any

    def apply(self, acc: np.ndarray, views: list, dest: np.ndarray, tmp: np.ndarray) -> None:
        product = tmp.reshape(-1)[:acc.size].reshape(acc.shape)
        np.multiply(views[self.tap], self.weight, out=product)
        np.add(acc, product, out=dest)


Step = Zero | Copy | Scaled | PairSum | Accumulate | Rescale | MultiplyAdd


def sum_steps(weights: list, *, keep_scale: bool) -> tuple[list[Step], Any]:
    """Steps that compute ``sum(weights[i] * view[i]) / scale``, and ``scale`` (1 unless
    ``keep_scale``: then the caller folds it into a later pass).

    Scalar weights of equal magnitude are added (or subtracted) together and each such
    group scaled once, Horner-like: ``((g1 * c1/c2 + g2) * c2/c3 + ...) * c_m``. A block
    pass per tap and one per group, against two per tap (multiply, add) otherwise: a 3x3
    Gaussian's two passes take 7 block passes instead of 10. The rounding error stays
    that of a running sum, ``eps * sum_k |c_1 g_1 + ... + c_k g_k|``, whatever the
    ratios. Weights 0 are skipped; per-channel weights ``(C,)`` multiply and add."""
    taps = [(i, w) for i, w in enumerate(weights) if not (w.ndim == 0 and w == 0)]
    if not taps:
        return [Zero()], 1
    if any(w.ndim for _, w in taps):
        (i, w), *rest = taps
        return [Scaled(i, w)] + [MultiplyAdd(j, v) for j, v in rest], 1
    # Magnitudes within rounding of each other (as an SVD leaves a symmetric kernel's
    # factors) count as equal; so do ratios and scales within rounding of 1.
    tol = 8 * np.finfo(taps[0][1].dtype).eps
    groups: dict[float, list[tuple[int, float]]] = {}
    for i, w in taps:
        size = abs(float(w))
        key = next((g for g in groups if abs(g - size) <= tol * size), size)
        groups.setdefault(key, []).append((i, math.copysign(key, w)))
    # single taps first: their scaling is free; in a group, a positive weight first
    order = [sorted(g, key=lambda t: t[1] < 0) for g in sorted(groups.values(), key=len)]
    coefs = [members[0][1] for members in order]
    steps: list[Step] = []
    scale = coefs[-1] if keep_scale and abs(coefs[-1] - 1) > tol else 1.0
    for k, members in enumerate(order):
        c = coefs[k]
        ratio = c / coefs[k + 1] if k + 1 < len(order) else c / scale
        ratio = 1.0 if abs(ratio - 1) <= tol else ratio
        (i, _), *rest = members
        if k == 0 and not rest:
            steps.append(Scaled(i, ratio) if ratio != 1 else Copy(i))
            continue
        signed = [(j, w != c) for j, w in rest]  # (tap, subtract)
        if k == 0:
            steps.append(PairSum(i, signed[0][0], subtract=signed[0][1]))
            signed = signed[1:]
        else:
            steps.append(Accumulate(i))
        steps += [Accumulate(j, subtract=minus) for j, minus in signed]
        if ratio != 1:
            steps.append(Rescale(ratio))
    return steps, scale


def run_steps(steps: list[Step], acc: np.ndarray, views: list, tmp: np.ndarray,
              last: tuple[np.ndarray, np.ndarray, list] | None = None) -> None:
    """Apply ``steps`` to the accumulator ``acc`` and the tap ``views`` (each of ``acc``'s
    shape); ``tmp`` is room for one product.

    ``last = (target, acc_as, views_as)``: the last step reads ``acc`` and the views in
    these other shapes and writes ``target`` instead of ``acc``, which saves a copy."""
    for n, step in enumerate(steps):
        dest = acc
        if last is not None and n == len(steps) - 1:
            dest, acc, views = last
        step.apply(acc, views, dest, tmp)
