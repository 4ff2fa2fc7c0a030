"""linear: the dense layer's affine map on the last axis, forward beside backward."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from convolve import _args, runtime
from convolve.tensor import data, needs_grad, record


def linear(x: Any, w: Any, b: Any = None) -> Any:
    """``x @ w + b`` on the last axis.

    Arguments:
        x: ``(..., F_in)``, at least 1-D; float32 or float64.
        w: ``(F_in, F_out)``.
        b: ``(F_out,)`` or None.

    Returns:
        ``(..., F_out)``; a Tensor, recorded for backpropagation, if any input is a Tensor.
    """
    xa = _args.float_array(data(x), "x")
    wa = _args.float_array(data(w), "w")
    ba = None if b is None else _args.float_array(data(b), "b")
    _args.rank(wa.shape, "w", {2: "(F_in, F_out)"})
    if xa.ndim < 1 or xa.shape[-1] != wa.shape[0]:
        raise ValueError(
            f"x must have F_in = {wa.shape[0]} features on its last axis to match w of shape "
            f"{wa.shape}; received an array of shape {xa.shape}")
    if ba is not None:
        _args.vector(ba, "b", wa.shape[1], "F_out", f"to match w of shape {wa.shape}")
    dtype = np.result_type(xa, wa, *(() if ba is None else (ba,)))
    x2 = xa.reshape(-1, wa.shape[0]).astype(dtype, copy=False)
    wc = wa.astype(dtype, copy=False)
    y = _product(x2, wc)
    if ba is not None:
        y += ba.astype(dtype, copy=False)
    y = y.reshape(*xa.shape[:-1], wa.shape[1])
    saved_x = x2 if needs_grad(w) else None
    x_shape, x_dtype, w_dtype = xa.shape, xa.dtype, wa.dtype
    b_dtype = None if ba is None else ba.dtype

    def backward(g: np.ndarray) -> tuple[Any, Any, Any]:
        g2 = g.reshape(math.prod(x_shape[:-1]), wc.shape[1])
        dx = dw = None
        if needs_grad(x):
            dx = _product(g2, wc.T).reshape(x_shape).astype(x_dtype, copy=False)
        if needs_grad(w):
            dw = _product(saved_x.T, g2).astype(w_dtype, copy=False)
        db = g2.sum(axis=0).astype(b_dtype, copy=False) if needs_grad(b) else None
        return dx, dw, db

    return record(y, (x, w, b), backward)


# Rows of a product per chunk, at least: smaller products run on the calling thread.
PRODUCT_ROWS = 256


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for ``a: (M, K)`` and ``b: (K, N)``, in blocks of rows on ``run_chunks``'
    threads with BLAS single-threaded, as conv2d's passes: BLAS's own threads, left
    spinning after a product, slowed the conv passes that follow (a mnist_cnn training
    step: 84 ms median with BLAS-threaded dense layers, 67-75 ms without)."""
    m = a.shape[0]
    out = np.empty((m, b.shape[1]), dtype=np.result_type(a, b))
    parts = max(1, min(m // PRODUCT_ROWS, 4 * runtime.THREADS))
    bounds = [m * i // parts for i in range(parts + 1)]

    def run(chunks: list[tuple[int, int]]) -> None:
        for r0, r1 in chunks:
            np.matmul(a[r0:r1], b, out=out[r0:r1])

    with runtime.single_threaded_blas():
        if parts == 1:
            np.matmul(a, b, out=out)
        else:
            runtime.run_chunks(run, list(itertools.pairwise(bounds)))
    return out
