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


def pool_output_size(n, k, s, d, p0, p1, ceil_mode):
    """PyTorch's pooling output size, written out from its definition."""
    span = n + p0 + p1 - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else math.floor(span / s)) + 1
    if ceil_mode and (out - 1) * s >= n + p0:  # the last window must start in input/pad
        out -= 1
    return out


def _pool(x, kind, pool_size, stride, padding, dilation, ceil_mode, count_include_pad):
    """Loops over output pixels and window taps of x (N, H, W, C)."""
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    stride = pool_size if stride is None else stride
    (pt, pb), (pl, pr) = pads_for(padding, (h, w), pool_size, stride, dilation)
    ho = pool_output_size(h, pool_size[0], stride[0], dilation[0], pt, pb, ceil_mode)
    wo = pool_output_size(w, pool_size[1], stride[1], dilation[1], pl, pr, ceil_mode)
    y = np.zeros((n, ho, wo, c))
    for i in range(ho):
        for j in range(wo):
            values, in_padded = [], 0
            for r in range(pool_size[0]):
                for s in range(pool_size[1]):
                    row = i * stride[0] + r * dilation[0] - pt
                    col = j * stride[1] + s * dilation[1] - pl
                    if -pt <= row < h + pb and -pl <= col < w + pr:
                        in_padded += 1
                    if 0 <= row < h and 0 <= col < w:
                        values.append(x[:, row, col])
            if kind == "max":
                y[:, i, j] = np.max(values, axis=0) if values else -np.inf
            else:
                total = np.sum(values, axis=0) if values else 0.0
                y[:, i, j] = total / (in_padded if count_include_pad else len(values))
    return y


def max_pool2d(x, pool_size, *, stride=None, padding=0, dilation=(1, 1), ceil_mode=False):
    return _pool(x, "max", pool_size, stride, padding, dilation, ceil_mode, None)


def avg_pool2d(x, pool_size, *, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    return _pool(x, "avg", pool_size, stride, padding, (1, 1), ceil_mode, count_include_pad)


def transpose_pads_for(padding, size, kernel, stride, dilation, output_padding):
    """Per-side pads and output padding of conv_transpose2d, from DESIGN.md's rules."""
    if padding == "same":
        pads = tuple(same_pads(n * s, k, s, d)
                     for n, k, s, d in zip(size, kernel, stride, dilation))
        extra = tuple(n * s - ((n - 1) * s - p0 - p1 + d * (k - 1) + 1)
                      for n, k, s, d, (p0, p1) in zip(size, kernel, stride, dilation, pads))
        return pads, extra
    return pads_for(padding, size, kernel, stride, dilation), tuple(output_padding)


def conv_transpose2d(x, w, b=None, *, stride=(1, 1), padding=0, output_padding=(0, 0),
                     dilation=(1, 1), groups=1):
    """Scatters every input pixel through every tap; x (N, H, W, C_in),
    w (KH, KW, C_out / groups, C_in)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c_in = x.shape
    kh, kw, og, _ = w.shape
    cg = c_in // groups
    pads, extra = transpose_pads_for(padding, (h, wd), (kh, kw), stride, dilation,
                                     output_padding)
    (pt, pb), (pl, pr) = pads
    ho = (h - 1) * stride[0] - pt - pb + dilation[0] * (kh - 1) + extra[0] + 1
    wo = (wd - 1) * stride[1] - pl - pr + dilation[1] * (kw - 1) + extra[1] + 1
    y = np.zeros((n, ho, wo, og * groups))
    for i in range(h):
        for j in range(wd):
            for r in range(kh):
                for s in range(kw):
                    oi = i * stride[0] + r * dilation[0] - pt
                    oj = j * stride[1] + s * dilation[1] - pl
                    if not (0 <= oi < ho and 0 <= oj < wo):
                        continue
                    for g in range(groups):
                        xs = x[:, i, j, g * cg:(g + 1) * cg]
                        wg = w[r, s, :, g * cg:(g + 1) * cg]
                        y[:, oi, oj, g * og:(g + 1) * og] += xs @ wg.T
    if b is not None:
        y += np.asarray(b, np.float64)
    return y


def relu(x):
    return np.vectorize(lambda v: v if v > 0 else 0.0)(np.asarray(x, np.float64))


def leaky_relu(x, negative_slope=0.01):
    return np.vectorize(lambda v: v if v > 0 else v * negative_slope)(
        np.asarray(x, np.float64))


def tanh(x):
    return np.vectorize(math.tanh)(np.asarray(x, np.float64))


def sigmoid(x):
    def one(v):
        return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))
    return np.vectorize(one)(np.asarray(x, np.float64))


def gelu(x, approximate="none"):
    def one(v):
        if approximate == "tanh":
            return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))
        return 0.5 * v * math.erfc(-v / math.sqrt(2))
    return np.vectorize(one)(np.asarray(x, np.float64))


def _along(x, axis, one):
    """Apply ``one`` (a list of floats -> a list of floats) to every 1-D slice along axis."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    y = np.empty_like(x)
    for index in np.ndindex(x.shape[:-1]):
        y[index] = one(list(x[index]))
    return np.moveaxis(y, -1, axis)


def softmax(x, axis=-1):
    def one(values):
        top = max(values)
        total = math.fsum(math.exp(v - top) for v in values)
        return [math.exp(v - top) / total for v in values]
    return _along(x, axis, one)


def log_softmax(x, axis=-1):
    def one(values):
        top = max(values)
        log_total = math.log(math.fsum(math.exp(v - top) for v in values))
        return [(v - top) - log_total for v in values]
    return _along(x, axis, one)


def batch_norm(x, gamma, beta, running_mean, running_var, *, training, momentum=0.1,
               eps=1e-5):
    """Channel by channel; returns y and the new running statistics (or None)."""
    x = np.asarray(x, np.float64)
    c = x.shape[-1]
    flat = x.reshape(-1, c)
    y = np.empty_like(flat)
    new_mean = None if running_mean is None else np.array(running_mean, np.float64)
    new_var = None if running_var is None else np.array(running_var, np.float64)
    for k in range(c):
        values = list(flat[:, k])
        if training:
            mean = math.fsum(values) / len(values)
            var = math.fsum((v - mean) ** 2 for v in values) / len(values)
            if new_mean is not None:
                new_mean[k] = (1 - momentum) * new_mean[k] + momentum * mean
                unbiased = var * len(values) / (len(values) - 1)
                new_var[k] = (1 - momentum) * new_var[k] + momentum * unbiased
        else:
            mean, var = running_mean[k], running_var[k]
        scale = 1.0 if gamma is None else gamma[k]
        shift = 0.0 if beta is None else beta[k]
        y[:, k] = [(v - mean) / math.sqrt(var + eps) * scale + shift for v in values]
    return y.reshape(x.shape), new_mean, new_var
