"""linear: the dense layer's affine map on the last axis, forward beside backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve import _args
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
    y = x2 @ wc
    if ba is not None:
        y += ba.astype(dtype, copy=False)
    y = y.reshape(*xa.shape[:-1], wa.shape[1])
    saved_x = x2 if needs_grad(w) else None
    x_shape, x_dtype, w_dtype = xa.shape, xa.dtype, wa.dtype
    b_dtype = None if ba is None else ba.dtype

    def backward(g: np.ndarray) -> tuple[Any, Any, Any]:
        g2 = g.reshape(-1, wc.shape[1])
        dx = (g2 @ wc.T).reshape(x_shape).astype(x_dtype, copy=False) if needs_grad(x) else None
        dw = (saved_x.T @ g2).astype(w_dtype, copy=False) if needs_grad(w) else None
        db = g2.sum(axis=0).astype(b_dtype, copy=False) if needs_grad(b) else None
        return dx, dw, db

    return record(y, (x, w, b), backward)
