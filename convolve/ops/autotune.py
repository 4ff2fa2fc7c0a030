"""Autotuning: optional one-time timing of the conv methods per shape (off by default).

Like PyTorch's ``torch.backends.cudnn.benchmark``: with autotuning on, ``algorithm="auto"``
times every method that supports a shape (``ConvMethod.supports``), once per
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

from convolve import _args
from convolve.ops.algorithms.method import ConvMethod, PaddedInput
from convolve.runtime import single_threaded_blas
from convolve.shapes import ConvGeometry

REPEATS = 3
_enabled = False
_lock = threading.Lock()
_plans: dict[Any, tuple[ConvMethod, ConvMethod, ConvMethod]] = {}


def set_autotune(enabled: bool) -> None:
    """Turn autotuning of ``algorithm="auto"`` on or off (process-wide; layers use "auto").

    Plans already timed are kept, and used again if autotuning is turned back on."""
    global _enabled
    _enabled = _args.flag(enabled, "enabled")


def autotune_enabled() -> bool:
    """Whether ``algorithm="auto"`` times the methods (see :func:`set_autotune`)."""
    return _enabled


def tuned_passes(key: Any, methods: Mapping[str, ConvMethod], geometry: ConvGeometry,
                 dtype: np.dtype) -> tuple[ConvMethod, ConvMethod, ConvMethod]:
    """The fastest methods ``(forward, grad_input, grad_weight)`` for ``geometry`` among
    those of ``methods`` that support it (gemm supports every shape), timed once per
    ``key``. One thread times a new key while others wait, so that their work does not
    skew its timings."""
    with _lock:
        if key not in _plans:
            able = {name: m for name, m in methods.items() if m.supports(geometry) is None}
            _plans[key] = _tune(able, geometry, dtype)
        return _plans[key]


def _tune(methods: Mapping[str, ConvMethod], geometry: ConvGeometry, dtype: np.dtype
          ) -> tuple[ConvMethod, ConvMethod, ConvMethod]:
    """Time each pass of every method on random arrays of the shape."""
    rng = np.random.default_rng(0)
    n = geometry.padded_shape[0]
    x = PaddedInput(rng.standard_normal((n, *geometry.input_shape[-3:])).astype(dtype),
                    geometry.pads, "zeros")
    w = rng.standard_normal(geometry.weight_shape).astype(dtype)
    g = rng.standard_normal((n, *geometry.out_hw, geometry.out_channels)).astype(dtype)
    passes = {
        "forward": lambda m: lambda: m.forward(x, w, geometry),
        "grad_input": lambda m: lambda: m.grad_input(g, w, geometry),
        "grad_weight": lambda m: lambda: m.grad_weight(x.array, g, geometry),
    }
    with single_threaded_blas():
        names = [_fastest({name: call(m) for name, m in methods.items()})
                 for call in passes.values()]
    forward, grad_input, grad_weight = (methods[name] for name in names)
    return forward, grad_input, grad_weight


def _fastest(calls: Mapping[str, Callable[[], Any]]) -> str:
    """The name of the fastest call (best of REPEATS after a warm-up)."""
    best: dict[str, float] = {}
    for name, call in calls.items():
        call()
        seconds = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        best[name] = min(seconds)
    return min(best, key=best.__getitem__)
