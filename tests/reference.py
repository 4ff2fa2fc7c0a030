"""Slow, obviously-correct float64 references, independent of the library's code paths."""

from __future__ import annotations

import math

import numpy as np


def source_pixel(p: int, n: int, mode: str) -> int | None:
    """Which input pixel padded position ``p`` (input coordinates, may be outside) copies."""
    if 0 <= p < n:
        return p
    if mode == "zeros":
        return None
    if mode == "replicate":
        return min(max(p, 0), n - 1)
    if mode == "circular":
        return p % n
    while not 0 <= p < n:
        if mode == "reflect":  # mirror without repeating the edge
            p = -p if p < 0 else 2 * (n - 1) - p
        else:  # symmetric: mirror repeating the edge
            p = -p - 1 if p < 0 else 2 * n - 1 - p
    return p


def same_pads(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    out = math.ceil(n / s)
    total = max(0, (out - 1) * s + d * (k - 1) + 1 - n)
    return total // 2, total - total // 2


def pads_for(padding, size, kernel, stride, dilation):
    """Per-side pads from any padding spec, written out from DESIGN.md's rules."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "full":
        return tuple((d * (k - 1), d * (k - 1)) for k, d in zip(kernel, dilation))
    if padding == "same":
        return tuple(same_pads(*a) for a in zip(size, kernel, stride, dilation))
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if isinstance(padding[0], int):
        return ((padding[0],) * 2, (padding[1],) * 2)
    return tuple(tuple(p) for p in padding)


def conv2d(x, w, b=None, *, stride=(1, 1), padding="valid", dilation=(1, 1), groups=1,
           padding_mode="zeros"):
    """Loops over output pixels and kernel taps; x (N, H, W, C), w (KH, KW, C/g, O)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, _ = x.shape
    kh, kw, cg, o = w.shape
    og = o // groups
    (pt, pb), (pl, pr) = pads_for(padding, (h, wd), (kh, kw), stride, dilation)
    ho = (h + pt + pb - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + pl + pr - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, ho, wo, o))
    for i in range(ho):
        for j in range(wo):
            for r in range(kh):
                for s in range(kw):
                    pi = source_pixel(i * stride[0] + r * dilation[0] - pt, h, padding_mode)
                    pj = source_pixel(j * stride[1] + s * dilation[1] - pl, wd, padding_mode)
                    if pi is None or pj is None:
                        continue
                    for g in range(groups):
                        xs = x[:, pi, pj, g * cg:(g + 1) * cg]
                        y[:, i, j, g * og:(g + 1) * og] += xs @ w[r, s, :, g * og:(g + 1) * og]
    if b is not None:
        y += np.asarray(b, np.float64)
    return y
