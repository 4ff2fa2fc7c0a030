"""max_pool2d 2x2/2 forward+backward against torch.nn.functional.max_pool2d."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import convolve
from convolve.perf.timing import threads, time_interleaved

POOL_SHAPES: tuple[tuple[int, int, int, int], ...] = ((64, 32, 32, 32), (8, 112, 112, 64))


def pool_rows(shapes: Sequence[Sequence[int]] = POOL_SHAPES, *, rounds: int = 3,
              calls: int = 3, seed: int = 0) -> list[dict]:
    """One dict per shape: ``convolve`` and (when installed) ``torch`` seconds."""
    rng = np.random.default_rng(seed)
    rows = []
    for shape in shapes:
        x = rng.standard_normal(tuple(shape), dtype=np.float32)
        n, h, w, c = shape
        g = rng.standard_normal((n, h // 2, w // 2, c), dtype=np.float32)

        def ours(x=x, g=g) -> None:
            xt = convolve.Tensor(x, requires_grad=True)
            convolve.max_pool2d(xt, 2).backward(g)

        contenders = {"convolve": ours}
        try:
            import torch
        except ImportError:
            pass
        else:
            torch.set_num_threads(threads())
            for layout, fmt in (("nchw", torch.contiguous_format),
                                ("channels_last", torch.channels_last)):
                xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(
                    memory_format=fmt).requires_grad_(True)
                gt = torch.from_numpy(g.transpose(0, 3, 1, 2).copy()).contiguous(
                    memory_format=fmt)

                def theirs(xt=xt, gt=gt) -> None:
                    y = torch.nn.functional.max_pool2d(xt, 2)
                    torch.autograd.grad(y, (xt,), gt)

                contenders[f"torch {layout}"] = theirs
        best = time_interleaved(contenders, rounds=rounds, calls=calls)
        row = {"shape": "x".join(map(str, shape)), "convolve": best["convolve"]}
        if "torch nchw" in best:
            row["torch"] = min(best["torch nchw"], best["torch channels_last"])
            row["ratio"] = row["torch"] / row["convolve"]
        rows.append(row)
    return rows
