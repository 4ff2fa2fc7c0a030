"""A seeded, bounded differential fuzzer against PyTorch for the public sliding-window ops:
conv2d (any algorithm), conv_transpose2d, max_pool2d, avg_pool2d, the global pools and
batch_norm (training, with its running statistics), forward and every gradient, float32
or float64.

It draws settings from ``tests.strategies`` and compares with ``tests.torch_ref``'s oracles.
``edges=True`` also puts a few non-finite or large values (inf, -inf, NaN, +-1e4) into the
input; the positions of non-finite outputs must then match PyTorch's as well (NaN equals
NaN, inf must be inf). Tests call ``fuzz``; a longer campaign runs from the shell::

    python -m tests.fuzz_torch conv2d --algorithm fft --dtype float32 --seconds 300 --edges
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis import strategies as st

import convolve
from convolve import Tensor
from tests.reference import transpose_pads_for
from tests.strategies import (
    ALGORITHM_LIMITS,
    PoolCase,
    conv_cases,
    conv_transpose_cases,
    pool_cases,
)
from tests.torch_ref import (
    F,
    conv2d_with_grads,
    conv_transpose2d_with_grads,
    nchw,
    nhwc,
    pool_with_grads,
    torch,
)

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


@st.composite
def image_cases(draw: Any, dtype: Any = np.float64, max_size: int = 7) -> PoolCase:
    """A batch of images ``(N, H, W, C)``, half of them with few distinct values (ties);
    ``kwargs`` holds batch_norm's settings (the global pools take none)."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, max_size)),
             draw(st.integers(1, max_size)), draw(st.integers(1, 4)))
    assume(shape[0] * shape[1] * shape[2] >= 2)  # batch_norm's variance needs two values
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        x = rng.integers(-1, 2, shape).astype(dtype)
    else:
        x = (rng.standard_normal(shape) * draw(st.sampled_from([1e-3, 1.0, 100.0]))).astype(dtype)
    kwargs = dict(momentum=draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
                  eps=draw(st.sampled_from([1e-5, 1e-3, 0.5])))
    return PoolCase(x, kwargs)


def _check_global(kind: str, case: Any) -> None:
    dtype = case.x.dtype.type
    x = Tensor(case.x, requires_grad=True)
    y = (convolve.global_max_pool2d if kind == "max" else convolve.global_avg_pool2d)(x)
    g = _upstream(y.shape, dtype)
    y.backward(g)
    xt = nchw(case.x).requires_grad_(True)
    pool = F.adaptive_max_pool2d if kind == "max" else F.adaptive_avg_pool2d
    yt = pool(xt, 1)[:, :, 0, 0]
    yt.backward(torch.from_numpy(g))
    assert y.dtype == dtype
    _close(y.data, yt.detach().numpy(), dtype, "output")
    _close(x.grad, nhwc(xt.grad), dtype, "dx")


def check_batch_norm(case: Any, algorithm: str = "auto") -> None:
    """Training mode: output, dx, dgamma, dbeta and the running statistics."""
    dtype = case.x.dtype.type
    c = case.x.shape[-1]
    rng = np.random.default_rng(1)
    gamma, beta = (rng.standard_normal(c).astype(dtype) for _ in range(2))
    mean, var = np.zeros(c, dtype), np.ones(c, dtype)
    x, gt, bt = (Tensor(a, requires_grad=True) for a in (case.x, gamma, beta))
    y = convolve.batch_norm(x, gt, bt, mean, var, training=True, **case.kwargs)
    g = _upstream(y.shape, dtype)
    y.backward(g)
    xt = nchw(case.x).requires_grad_(True)
    gamma_t, beta_t = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (gamma, beta))
    mean_t, var_t = torch.zeros(c, dtype=xt.dtype), torch.ones(c, dtype=xt.dtype)
    yt = F.batch_norm(xt, mean_t, var_t, gamma_t, beta_t, training=True, **case.kwargs)
    yt.backward(nchw(g))
    expected = (nhwc(yt), nhwc(xt.grad), gamma_t.grad.numpy(), beta_t.grad.numpy(),
                mean_t.numpy(), var_t.numpy())
    ours = (y.data, x.grad, gt.grad, bt.grad, mean, var)
    for what, a, b in zip(("output", "dx", "dgamma", "dbeta", "running_mean",
                           "running_var"), ours, expected):
        _close(a, b, dtype, what)


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
    "global_max_pool2d": Op(lambda dtype, algorithm: image_cases(dtype),
                            lambda case, algorithm: _check_global("max", case)),
    "global_avg_pool2d": Op(lambda dtype, algorithm: image_cases(dtype),
                            lambda case, algorithm: _check_global("avg", case)),
    "batch_norm": Op(lambda dtype, algorithm: image_cases(dtype), check_batch_norm),
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


class _TimeUp(BaseException):
    """Raised to stop hypothesis when the time bound passes: not an Exception, so it is
    no failure to shrink (returning early instead still draws every remaining case)."""


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
            raise _TimeUp
        OPS[op].check(case, algorithm)
        checked += 1

    with contextlib.suppress(_TimeUp):
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
