"""Timing helpers shared by ``benchmarks/`` and ``convolve bench``: fair, interleaved, min-of.

Contenders run in blocks, one block per contender per round, rounds interleaved, so that
load from other processes hits all of them alike. A pause before each block lets the
previous library's idle BLAS/OpenMP threads stop spinning: OpenBLAS workers busy-wait for
about 0.1 s after a call (measured: threaded NumPy work right after a GEMM ran 1.8x
slower, 0.1 s later at full speed) and would steal a core from the next contender. Each
block starts with one untimed call; the reported time is the minimum over all timed
calls.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence

# The conv2d shapes of the benchmark: (N, H, W, C_in, C_out, k, stride, pad).
CONV_SHAPES: tuple[tuple[int, ...], ...] = (
    (1, 32, 32, 3, 6, 5, 1, 2),
    (64, 32, 32, 3, 32, 3, 1, 1),
    (64, 32, 32, 32, 32, 3, 1, 1),
    (8, 56, 56, 64, 64, 3, 1, 1),
    (8, 28, 28, 128, 128, 3, 1, 1),
    (8, 14, 14, 256, 256, 3, 1, 1),
    (8, 7, 7, 512, 512, 3, 1, 1),
    (8, 224, 224, 3, 64, 7, 2, 3),
    (8, 56, 56, 64, 128, 1, 2, 0),
)


def threads() -> int:
    """Threads per contender: ``CONVOLVE_NUM_THREADS`` (set by the scripts' --threads
    together with the BLAS variables), else 2, the benchmark machine's cores."""
    return int(os.environ.get("CONVOLVE_NUM_THREADS", "2"))


def shape_label(shape: Sequence[int]) -> str:
    n, h, w, c, k_out, k, s, p = shape
    return f"{n}x{h}x{w}x{c}->{k_out} k{k} s{s} p{p}"


def time_interleaved(contenders: dict[str, Callable[[], object]], *, rounds: int = 3,
                     calls: int = 3, pause: float = 0.2, budget: float = 2.0,
                     statistic: Callable[[list[float]], float] = min) -> dict[str, float]:
    """The seconds of one call of each contender: ``statistic`` (the minimum, by default)
    of its timed calls.

    Arguments:
        contenders: name -> a callable taking no arguments.
        rounds: blocks per contender, interleaved round by round.
        calls: timed calls per block (after one untimed warm-up call).
        pause: seconds to sleep before each block.
        budget: seconds per contender after which the remaining rounds run one call only.
        statistic: reduces a contender's list of call times to one (e.g. a median).
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            time.sleep(pause)
            fn()
            count = 1 if sum(times[name]) > budget else calls
            for _ in range(count):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: statistic(t) for name, t in times.items()}


def geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def environment() -> str:
    """One Markdown paragraph: versions, cores, load and BLAS settings of this run."""
    import platform

    import numpy as np

    parts = [f"NumPy {np.__version__}", f"Python {platform.python_version()}",
             f"{os.cpu_count()} cores"]
    try:
        import torch
    except ImportError:
        pass
    else:
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    if hasattr(os, "getloadavg"):
        parts.append("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "CONVOLVE_NUM_THREADS"):
        if name in os.environ:
            parts.append(f"{name}={os.environ[name]}")
    return "Environment: " + ", ".join(parts) + "."
