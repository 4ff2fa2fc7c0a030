"""Reductions over axes: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd,
ReduceSumSquare, ReduceL1, ReduceL2, ReduceLogSumExp (axes an attribute before op set 13
for ReduceSum and 18 for the others, an input from then), ArgMax and ArgMin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convolve.onnx.layout import Value
from convolve.onnx.registry import Context, Node, converter
from convolve.ops import elementwise
from convolve.ops import math as ops_math
from convolve.tensor import data


def _sum(x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return ops_math.sum(x, axis=axes, keepdims=keep)


def _mean(x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return ops_math.mean(x, axis=axes, keepdims=keep)


def _max(x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return elementwise.reduce_extreme(x, axes, keep, largest=True)


def _min(x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return elementwise.reduce_extreme(x, axes, keep, largest=False)


def _sum_square(x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return _sum(ops_math.multiply(x, x), axes, keep)


def _l1(x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return _sum(elementwise.absolute(x), axes, keep)


def _l2(x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return elementwise.sqrt(_sum_square(x, axes, keep))


def _log_sum_exp(x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return ops_math.log(_sum(ops_math.exp(x), axes, keep))


def _prod(x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return np.prod(np.asarray(data(x)), axis=axes, keepdims=keep)


_REDUCTIONS: dict[str, tuple[Callable[..., Any], int]] = {  # op: (function, axes input from)
    "ReduceSum": (_sum, 13), "ReduceMean": (_mean, 18), "ReduceMax": (_max, 18),
    "ReduceMin": (_min, 18), "ReduceProd": (_prod, 18), "ReduceSumSquare": (_sum_square, 18),
    "ReduceL1": (_l1, 18), "ReduceL2": (_l2, 18), "ReduceLogSumExp": (_log_sum_exp, 18),
}


def _reduction(f: Callable[..., Any], axes_input_since: int, node: Node) -> Any:
    keep = bool(node.attr("keepdims", 1))
    noop_empty = bool(node.attr("noop_with_empty_axes", 0))
    from_input = node.version >= axes_input_since

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        if from_input:
            given = len(inputs) > 1 and inputs[1] is not None
            axes = [int(a) for a in inputs[1].numpy().reshape(-1)] if given else []
        else:
            axes = list(node.attr("axes", []))
        if not axes:
            if noop_empty:
                return x
            axes = list(range(x.ndim))
        axes = sorted({a + x.ndim if a < 0 else a for a in axes})
        physical = tuple(sorted(x.axis(a) for a in axes))
        y = f(x.data, physical, keep)
        if keep or x.perm is None:
            return Value(y, x.perm)
        kept = [a for a in x.perm if a not in axes]
        return Value(y, [a - sum(r < a for r in axes) for a in kept])

    return run


for _op, (_f, _since) in _REDUCTIONS.items():
    converter(_op, static=(1,))(lambda node, f=_f, since=_since: _reduction(f, since, node))


def _arg(largest: bool, node: Node) -> Any:
    axis = int(node.attr("axis", 0))
    keep = bool(node.attr("keepdims", 1))
    last = bool(node.attr("select_last_index", 0))
    find = np.argmax if largest else np.argmin

    def run(ctx: Context, inputs: list[Any]) -> Value:
        x = inputs[0]
        ax = axis + x.ndim if axis < 0 else axis
        p = x.axis(ax)
        a = np.asarray(data(x.data))
        if last:
            index = a.shape[p] - 1 - find(np.flip(a, axis=p), axis=p)
        else:
            index = find(a, axis=p)
        index = index.astype(np.int64)
        if keep:
            return Value(np.expand_dims(index, p), x.perm)
        if x.perm is None:
            return Value(index)
        return Value(index, [a - (a > ax) for a in x.perm if a != ax])

    return run


converter("ArgMax")(lambda node: _arg(True, node))
converter("ArgMin")(lambda node: _arg(False, node))
