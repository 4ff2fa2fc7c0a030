"""Optional one-time timing of the conv methods per shape, like PyTorch's
``torch.backends.cudnn.benchmark``: off by default.

With autotuning on, ``algorithm="auto"`` times every method that can do a shape, once per
shape and dtype, on random arrays of that shape: each pass (forward, input gradient,
weight gradient) separately, the best of ``REPEATS`` calls after an untimed one, and keeps
the fastest for the rest of the process. The first call of each new shape pays for the
timing (``1 + REPEATS`` runs of each pass for every method). Where the timings are close, a busy
machine can pick differently from run to run; every method is exact to float tolerance
(the Winograd ones within 1e-4 of the largest value in float32), so only the speed changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from convolve.ops.algorithms._common import single_threaded_blas

REPEATS = 3
_enabled = False
_lock = threading.Lock()
_plans: dict[Any, tuple[Callable[..., np.ndarray], ...] | None] = {}  # None: the table


def set_autotune(enabled: bool) -> None:
    """Turn autotuning of ``algorithm="auto"`` on or off (process-wide; layers use "auto").

    Plans already timed are kept, and used again if autotuning is turned back on."""
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False; received {enabled!r}")
    _enabled = enabled


def autotune_enabled() -> bool:
    """Whether ``algorithm="auto"`` times the methods (see :func:`set_autotune`)."""
    return _enabled


def tuned_passes(key: Any, methods: Mapping[str, Any], xp_shape: tuple[int, ...],
                 w_shape: tuple[int, ...], out_hw: tuple[int, int], dtype: np.dtype,
                 settings: Mapping[str, Any]) -> tuple[Callable[..., np.ndarray], ...] | None:
    """The fastest ``(forward, grad_input, grad_weight)`` among ``methods`` (modules with
    the algorithm interface) for a padded input of ``xp_shape``, timed once per ``key``;
    None where every method refuses some pass (a ValueError). One thread times a new key
    while others wait, so that their work does not skew its timings."""
    with _lock:
        if key not in _plans:
            _plans[key] = _tune(methods, xp_shape, w_shape, out_hw, dtype, settings)
        return _plans[key]


def _tune(methods: Mapping[str, Any], xp_shape: tuple[int, ...], w_shape: tuple[int, ...],
          out_hw: tuple[int, int], dtype: np.dtype, settings: Mapping[str, Any]
          ) -> tuple[Callable[..., np.ndarray], ...] | None:
    """Time each pass of every method on random arrays of the shape."""
    rng = np.random.default_rng(0)
    xp = rng.standard_normal(xp_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    g = rng.standard_normal((xp_shape[0], *out_hw, w_shape[3])).astype(dtype)
    passes = {
        "forward": lambda m: lambda: m.forward(xp, w, out_hw=out_hw, **settings),
        "grad_input": lambda m: lambda: m.grad_input(g, w, xp_shape=xp_shape,
                                                     **settings),
        "grad_weight": lambda m: lambda: m.grad_weight(xp, g, w_shape=w_shape,
                                                       **settings),
    }
    with single_threaded_blas():
        names = {step: _fastest({name: call(m) for name, m in methods.items()})
                 for step, call in passes.items()}
    if None in names.values():
        return None
    return tuple(getattr(methods[name], step) for step, name in names.items())


def _fastest(calls: Mapping[str, Callable[[], Any]]) -> str | None:
    """The name of the fastest call (best of REPEATS after a warm-up); None where all
    refuse."""
    best: dict[str, float] = {}
    for name, call in calls.items():
        try:
            call()
        except ValueError:
            continue
        seconds = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        best[name] = min(seconds)
    return min(best, key=best.__getitem__) if best else None
