"""A seeded, bounded differential fuzzer against PyTorch for the public sliding-window ops:
conv2d (any algorithm), conv_transpose2d, max_pool2d and avg_pool2d, forward and every
gradient, float32 or float64.

It draws settings from ``tests.strategies`` and compares with ``tests.torch_ref``'s oracles.
``edges=True`` also puts a few non-finite or large values (inf, -inf, NaN, +-1e4) into the
input; the positions of non-finite outputs must then match PyTorch's as well (NaN equals
NaN, inf must be inf). Tests call ``fuzz``; a longer campaign runs from the shell::

    python -m tests.fuzz_torch conv2d --algorithm fft --dtype float32 --seconds 300 --edges
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

import convolve
from convolve import Tensor
from tests.reference import transpose_pads_for
from tests.strategies import ALGORITHM_LIMITS, conv_cases, conv_transpose_cases, pool_cases
from tests.torch_ref import conv2d_with_grads, conv_transpose2d_with_grads, pool_with_grads

TOLERANCE = {np.float64: 1e-9, np.float32: 1e-4}
EDGE_VALUES = (np.inf, -np.inf, np.nan, 1e4, -1e4)


def _close(ours: np.ndarray, theirs: np.ndarray, dtype: Any, what: str) -> None:
    tol = TOLERANCE[np.dtype(dtype).type]
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol, equal_nan=True, err_msg=what)


def _upstream(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _check_with_grads(y: Tensor, inputs: tuple, expected: np.ndarray, grads: tuple,
                      dtype: Any) -> None:
    assert y.dtype == dtype, f"output dtype {y.dtype}, expected {np.dtype(dtype)}"
    _close(y.data, expected, dtype, "output")
    for name, ours, theirs in zip("xwb", inputs, grads):
        if ours is not None:
            assert ours.grad.dtype == dtype, f"d{name} dtype {ours.grad.dtype}"
            _close(ours.grad, theirs, dtype, f"d{name}")


def check_conv2d(case: Any, algorithm: str = "auto") -> None:
    dtype = case.x.dtype.type
    x, w = Tensor(case.x, requires_grad=True), Tensor(case.w, requires_grad=True)
    b = None if case.b is None else Tensor(case.b, requires_grad=True)
    y = convolve.conv2d(x, w, b, algorithm=algorithm, **case.kwargs)
    g = _upstream(y.shape, dtype)
    y.backward(g)
    expected, grads = conv2d_with_grads(case.x, case.w, case.b, g, **case.kwargs)
    _check_with_grads(y, (x, w, b), expected, grads, dtype)


def check_conv_transpose2d(case: Any, algorithm: str = "auto") -> None:
    dtype = case.x.dtype.type
    x, w = Tensor(case.x, requires_grad=True), Tensor(case.w, requires_grad=True)
    b = None if case.b is None else Tensor(case.b, requires_grad=True)
    y = convolve.conv_transpose2d(x, w, b, algorithm=algorithm, **case.kwargs)
    g = _upstream(y.shape, dtype)
    y.backward(g)
    k = case.kwargs
    pads, extra = transpose_pads_for(k["padding"], case.x.shape[1:3], case.w.shape[:2],
                                     k["stride"], k["dilation"], k["output_padding"])
    expected, grads = conv_transpose2d_with_grads(
        case.x, case.w, case.b, g, pads=pads, output_padding=extra, stride=k["stride"],
        dilation=k["dilation"], groups=k["groups"])
    _check_with_grads(y, (x, w, b), expected, grads, dtype)


def _check_pool(kind: str, case: Any) -> None:
    dtype = case.x.dtype.type
    x = Tensor(case.x, requires_grad=True)
    y = (convolve.max_pool2d if kind == "max" else convolve.avg_pool2d)(x, **case.kwargs)
    g = _upstream(y.shape, dtype)
    y.backward(g)
    # PyTorch's max-pool backward aborts on a dilated window wholly in padding (its output
    # is -inf): the gradient is then not compared.
    backward = kind == "avg" or not np.isneginf(y.data).any()
    expected, dx = pool_with_grads(kind, case.x, g, **case.kwargs, backward=backward)
    assert y.dtype == dtype
    _close(y.data, expected, dtype, "output")
    if dx is not None:
        _close(x.grad, dx, dtype, "dx")


@dataclass(frozen=True)
class Op:
    """How to draw cases for one op and check one against PyTorch."""

    cases: Callable[[Any, str], st.SearchStrategy]  # (dtype, algorithm) -> strategy
    check: Callable[[Any, str], None]  # (case, algorithm) -> raises AssertionError


OPS = {
    "conv2d": Op(lambda dtype, algorithm: conv_cases(dtype=dtype,
                                                     **ALGORITHM_LIMITS[algorithm]),
                 check_conv2d),
    "conv_transpose2d": Op(lambda dtype, algorithm: conv_transpose_cases(dtype=dtype),
                           check_conv_transpose2d),
    "max_pool2d": Op(lambda dtype, algorithm: pool_cases("max", dtype=dtype, symmetric=True),
                     lambda case, algorithm: _check_pool("max", case)),
    "avg_pool2d": Op(lambda dtype, algorithm: pool_cases("avg", dtype=dtype, symmetric=True),
                     lambda case, algorithm: _check_pool("avg", case)),
}


@st.composite
def with_edges(draw: Any, cases: st.SearchStrategy) -> Any:
    """A case whose input holds one to three values from ``EDGE_VALUES``."""
    case = draw(cases)
    x = case.x.copy()
    flat = x.reshape(-1)
    for _ in range(draw(st.integers(1, min(3, flat.size)))):
        flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from(EDGE_VALUES))
    return replace(case, x=x)


def fuzz(op: str, *, dtype: Any = np.float64, algorithm: str = "auto", examples: int = 100,
         seconds: float | None = None, seed_value: int = 0, edges: bool = False) -> int:
    """Check up to ``examples`` cases of ``op`` drawn with ``seed_value``, stopping early
    after ``seconds``; returns how many were checked. The first mismatch raises (hypothesis
    shrinks it to a small case and prints it)."""
    cases = OPS[op].cases(dtype, algorithm)
    if edges:
        cases = with_edges(cases)
    end = None if seconds is None else time.monotonic() + seconds
    checked = 0

    @seed(seed_value)
    @settings(max_examples=examples, deadline=None, database=None,
              phases=(Phase.generate, Phase.shrink),
              suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def run(case: Any) -> None:
        nonlocal checked
        if end is not None and time.monotonic() > end:
            return
        OPS[op].check(case, algorithm)
        checked += 1

    run()
    return checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("op", choices=tuple(OPS))
    parser.add_argument("--algorithm", default="auto")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--examples", type=int, default=10**6)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--edges", action="store_true")
    args = parser.parse_args()
    began = time.monotonic()
    count = fuzz(args.op, dtype=np.dtype(args.dtype).type, algorithm=args.algorithm,
                 examples=args.examples, seconds=args.seconds, seed_value=args.seed,
                 edges=args.edges)
    print(f"{args.op}: {count} cases match PyTorch in {time.monotonic() - began:.1f} s")


if __name__ == "__main__":
    main()
