"""conv2d forward and forward+backward (dx and dw) against torch.nn.functional.conv2d."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import convolve
from convolve.perf.timing import CONV_SHAPES, shape_label, threads, time_interleaved


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads())
    return torch


def conv_rows(shapes: Sequence[Sequence[int]] = CONV_SHAPES, *, backward: bool,
              rounds: int = 3, calls: int = 3, algorithm: str = "auto",
              seed: int = 0) -> list[dict]:
    """One dict per shape: ``convolve`` seconds and, when torch is installed, ``torch``
    seconds (the better of NCHW and channels_last) and ``ratio`` = torch / convolve."""
    torch = _torch()
    rng = np.random.default_rng(seed)
    rows = []
    for shape in shapes:
        n, h, w, c, k_out, k, s, p = shape
        x = rng.standard_normal((n, h, w, c), dtype=np.float32)
        wt = (rng.standard_normal((k, k, c, k_out), dtype=np.float32)
              / np.float32(np.sqrt(k * k * c)))
        y_shape = convolve.conv2d_output_shape(x.shape, wt.shape, stride=s, padding=p)
        g = rng.standard_normal(y_shape, dtype=np.float32)
        settings = dict(stride=s, padding=p, algorithm=algorithm)
        contenders = {"convolve": _convolve_fn(x, wt, g, settings, backward)}
        if torch is not None:
            for layout in ("nchw", "channels_last"):
                contenders[f"torch {layout}"] = _torch_fn(torch, x, wt, g, s, p, layout,
                                                          backward)
        best = time_interleaved(contenders, rounds=rounds, calls=calls)
        row = {"shape": shape_label(shape), "convolve": best["convolve"]}
        if torch is not None:
            row["torch"] = min(best["torch nchw"], best["torch channels_last"])
            row["ratio"] = row["torch"] / row["convolve"]
        rows.append(row)
    return rows


def _convolve_fn(x, w, g, settings, backward):
    if not backward:
        return lambda: convolve.conv2d(x, w, **settings)

    def step():
        xt = convolve.Tensor(x, requires_grad=True)
        wt = convolve.Tensor(w, requires_grad=True)
        convolve.conv2d(xt, wt, **settings).backward(g)

    return step


def _torch_fn(torch, x, w, g, stride, pad, layout, backward):
    F = torch.nn.functional  # noqa: N806 - PyTorch's name
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
    wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).contiguous(memory_format=fmt)
    gt = torch.from_numpy(g.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
    if not backward:
        def forward():
            with torch.no_grad():
                F.conv2d(xt, wt, stride=stride, padding=pad)
        return forward
    xt.requires_grad_(True)
    wt.requires_grad_(True)

    def step():
        y = F.conv2d(xt, wt, stride=stride, padding=pad)
        torch.autograd.grad(y, (xt, wt), gt)

    return step
