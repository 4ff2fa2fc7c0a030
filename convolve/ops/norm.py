"""Batch normalisation per channel (the last axis): forward beside backward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convolve import _args
from convolve.ops.channels import fold, tile, widen
from convolve.runtime import over_rows
from convolve.tensor import data, needs_grad, record


def _channel_array(value: Any, name: str, channels: int, x_shape: tuple[int, ...]
                   ) -> np.ndarray | None:
    if value is None:
        return None
    if name.startswith("running") and not isinstance(data(value), np.ndarray):
        raise TypeError(
            f"{name} must be an ndarray (or Tensor), updated in place; received "
            f"{_args.describe(value)}"
        )
    array = _args.float_array(data(value), name)
    _args.vector(array, name, channels, "C", f"for x of shape {x_shape}")
    return array


def batch_norm(
    x: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any, *, training: bool,
    momentum: float = 0.1, eps: float = 1e-5,
    allreduce: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Any:
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` per channel (the last axis).

    In training the statistics are the batch's, over every axis but the last (biased
    variance), and ``running_mean`` / ``running_var`` (when given) are updated in place:
    ``running = (1 - momentum) * running + momentum * batch``, with the unbiased batch
    variance, as PyTorch. In evaluation the running statistics are used.

    Arguments:
        x: ``(N, H, W, C)``, ``(N, C)`` or any ``(..., C)`` with at least 2 axes.
        gamma, beta: ``(C,)`` or None (scale 1, shift 0).
        running_mean, running_var: ``(C,)`` float ndarrays (or Tensors), or None; required
            when ``training`` is False.
        training: use (and record) the batch statistics.
        allreduce: ``fn(array) -> array`` summing a float64 vector over the processes of a
            data-parallel step (``convolve.distributed``), or None. With it, training
            statistics are those of the global batch (every process's ``x`` together) and
            ``x``'s gradient accounts for them, as PyTorch's SyncBatchNorm; gamma's and
            beta's gradients stay this process's share, summed with the others' later.

    Returns:
        An array (or recorded Tensor) of ``x``'s shape; gradients flow to x, gamma, beta.
        An ``x`` with no values (an empty batch, no pixels or no channels) gives an empty
        output and leaves the running statistics as they are (PyTorch's rule).
    """
    xa = _args.float_array(data(x), "x")
    if xa.ndim < 2:
        raise ValueError(
            f"x must have at least 2 axes (..., C), channels last; received an array of "
            f"shape {xa.shape}"
        )
    training = _args.flag(training, "training")
    momentum = _args.fraction(momentum, "momentum")
    eps = _args.real(eps, "eps")
    c = xa.shape[-1]
    ga, be, rm, rv = (_channel_array(v, n, c, xa.shape) for v, n in (
        (gamma, "gamma"), (beta, "beta"), (running_mean, "running_mean"),
        (running_var, "running_var")))
    if not training and (rm is None or rv is None):
        raise ValueError(
            "running_mean and running_var are required when training=False; received "
            f"{'None' if rm is None else 'an array'} and "
            f"{'None' if rv is None else 'an array'}"
        )
    if xa.size == 0 and (allreduce is None or c == 0):  # else the other processes' values
        return _empty(x, gamma, beta, xa, ga, be)
    count = xa.size // c
    x2, r = widen(xa)  # (M / r, r * C): per-channel work in long rows
    across = _summed_over_processes(allreduce)

    def blocks(fn: Any) -> list[Any]:
        """``fn`` over row blocks of ``x2``'s size, one per thread."""
        return over_rows(fn, x2.shape[0], x2.nbytes)

    normalized = np.empty(x2.shape, dtype=xa.dtype)  # (x - mean) / std, for the backward
    if training:
        local_sum = fold(sum(blocks(lambda rows: x2[rows].sum(axis=0))), r)
        local_sum, count = across(local_sum, count)
        if count < 2:
            raise ValueError(
                "batch_norm in training needs more than one value per channel to compute "
                f"the variance; received x of shape {xa.shape}"
            )
        mean = local_sum / count
        centre = tile(mean, r)

        def centred(rows: slice) -> np.ndarray:
            block = np.subtract(x2[rows], centre, out=normalized[rows])
            return _column_dot(block, block)

        var = across(fold(sum(blocks(centred)), r))[0] / count
        for running, batch in ((rm, mean), (rv, var * (count / (count - 1)))):
            if running is not None:
                running *= 1 - momentum
                running += momentum * batch
    else:
        centre = tile(rm.astype(xa.dtype, copy=False), r)
        blocks(lambda rows: np.subtract(x2[rows], centre, out=normalized[rows]))
        var = rv.astype(xa.dtype, copy=False)
    inv_std = (1 / np.sqrt(var + eps)).astype(xa.dtype, copy=False)
    # gamma may widen the output; beta is added into it (as NumPy's y += beta)
    y = np.empty(normalized.shape, xa.dtype if ga is None else np.result_type(xa, ga))
    scale, gain = tile(inv_std, r), None if ga is None else tile(ga, r)
    shift = None if be is None else tile(be, r)

    def affine(rows: slice) -> None:
        block = normalized[rows]
        block *= scale
        if gain is None:
            y[rows] = block
        else:
            np.multiply(block, gain, out=y[rows])
        if shift is not None:
            y[rows] += shift

    blocks(affine)
    y = y.reshape(xa.shape)

    def backward(g: np.ndarray) -> tuple[Any, Any, Any]:
        """With per-channel sums ``S = sum(g)`` and ``T = sum(g * normalized)`` (also
        dbeta and dgamma), ``dx = gamma / std * (g - S / n - normalized * T / n)`` in
        training, ``gamma / std * g`` in evaluation: two passes over x's size, in row
        blocks on threads."""
        g2 = g.reshape(normalized.shape)
        want_total = needs_grad(beta) or (training and needs_grad(x))
        want_paired = needs_grad(gamma) or (training and needs_grad(x))
        sums = blocks(lambda rows: (
            g2[rows].sum(axis=0) if want_total else 0,
            _column_dot(g2[rows], normalized[rows]) if want_paired else 0))
        total = fold(sum(s[0] for s in sums), r) if want_total else None
        paired = fold(sum(s[1] for s in sums), r) if want_paired else None
        dx = dgamma = dbeta = None
        if needs_grad(x):
            factor = inv_std if ga is None else inv_std * ga
            dx = np.empty(normalized.shape, dtype=normalized.dtype)
            times = tile(factor, r)
            if training:
                all_total, all_paired = across(total, paired)
                slope = tile(factor * all_paired / count, r)
                offset = tile(factor * all_total / count, r)

            def gradient(rows: slice) -> None:
                block = np.multiply(g2[rows], times, out=dx[rows])
                if training:
                    block -= normalized[rows] * slope
                    block -= offset

            blocks(gradient)
            dx = dx.reshape(xa.shape).astype(xa.dtype, copy=False)
        if needs_grad(gamma):
            dgamma = paired.astype(ga.dtype, copy=False)
        if needs_grad(beta):
            dbeta = total.astype(be.dtype, copy=False)
        return dx, dgamma, dbeta

    return record(y, (x, gamma, beta), backward)


def _empty(x: Any, gamma: Any, beta: Any, xa: np.ndarray, ga: np.ndarray | None,
           be: np.ndarray | None) -> Any:
    """batch_norm of an ``x`` with no values (an empty batch, no pixels or no channels),
    PyTorch's rule: an empty output, the running statistics unchanged, gradients zeros."""
    y = np.empty(xa.shape, xa.dtype if ga is None else np.result_type(xa, ga))

    def backward(g: np.ndarray) -> tuple[Any, Any, Any]:
        return tuple(None if not needs_grad(t) else np.zeros_like(a) for t, a in
                     ((x, xa), (gamma, ga), (beta, be)))

    return record(y, (x, gamma, beta), backward)


def _summed_over_processes(allreduce: Callable[[np.ndarray], np.ndarray] | None) -> Any:
    """``across(*values)``: each value (a ``(C,)`` array or a number) summed over the
    processes in one ``allreduce`` call, in its own dtype; the values unchanged without one."""

    def across(*values: Any) -> tuple[Any, ...]:
        if allreduce is None:
            return values
        flat = [np.ravel(v).astype(np.float64) for v in values]
        summed = allreduce(np.concatenate(flat))
        bounds = np.cumsum([0, *(len(f) for f in flat)])
        return tuple(
            np.asarray(summed[a:b]).reshape(np.shape(v)).astype(np.asarray(v).dtype)
            if isinstance(v, np.ndarray) else type(v)(summed[a])
            for v, a, b in zip(values, bounds[:-1], bounds[1:]))

    return across


def _column_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a * b).sum(axis=0)`` for ``(M, C)`` arrays, without the ``(M, C)`` temporary."""
    return np.einsum("mc,mc->c", a, b)


__all__ = ["batch_norm"]
