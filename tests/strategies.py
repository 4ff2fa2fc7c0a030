"""Hypothesis strategies for random op settings that the ops must accept."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from tests.reference import pads_for, pool_output_size, transpose_pads_for

MODES = ("zeros", "reflect", "replicate", "circular", "symmetric")


@dataclass
class ConvCase:
    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    kwargs: dict

    def __repr__(self) -> str:
        return (f"ConvCase(x={self.x.shape}, w={self.w.shape}, "
                f"b={None if self.b is None else self.b.shape}, {self.kwargs})")


# What each named conv2d algorithm can do: conv_cases() keyword limits for its tests.
ALGORITHM_LIMITS = {
    "auto": {},
    "gemm": {},
    "direct": {},
    "shift_gemm": {"max_stride": 1},
    "fft": {},
    "winograd": {"max_stride": 1, "max_dilation": 1, "kernel": (3, 3)},
    "winograd_f2": {"max_stride": 1, "max_dilation": 1, "kernel": (3, 3)},
}


@st.composite
def conv_cases(draw, dtype=np.float64, modes=MODES, max_size=9, max_stride=3,
               max_dilation=3, kernel=None):
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    cg = draw(st.integers(1, 3))
    og = draw(st.integers(1, 3))
    if draw(st.booleans()):  # depthwise
        groups, cg = draw(st.integers(1, 4)), 1
    n = draw(st.integers(1, 2))
    h, wd = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    kh, kw = kernel or (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    dilation = (draw(st.integers(1, max_dilation)), draw(st.integers(1, max_dilation)))
    padding = draw(st.one_of(
        st.sampled_from(["valid", "same", "full"]),
        st.integers(0, 3),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)),
                  st.tuples(st.integers(0, 3), st.integers(0, 3))),
    ))
    mode = draw(st.sampled_from(modes))
    pads = pads_for(padding, (h, wd), (kh, kw), stride, dilation)
    for size, (p0, p1), k, d in zip((h, wd), pads, (kh, kw), dilation):
        assume(size + p0 + p1 >= d * (k - 1) + 1)
        limit = {"reflect": size - 1, "circular": size, "symmetric": size}.get(mode)
        assume(limit is None or max(p0, p1) <= limit)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, h, wd, groups * cg)).astype(dtype)
    w = rng.standard_normal((kh, kw, cg, groups * og)).astype(dtype)
    b = rng.standard_normal(groups * og).astype(dtype) if draw(st.booleans()) else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=mode)
    return ConvCase(x, w, b, kwargs)


@dataclass
class PoolCase:
    x: np.ndarray
    kwargs: dict

    def __repr__(self) -> str:
        return f"PoolCase(x={self.x.shape}, {self.kwargs})"


@st.composite
def pool_cases(draw, kind="max", dtype=np.float64, max_size=9, symmetric=False, ties=True):
    """Random pooling settings, padding often at its limit (pool_size // 2), ceil_mode
    often on; ``symmetric`` keeps to PyTorch's own padding (an int or a pair). With
    ``ties``, half the inputs hold few distinct values, so windows have ties."""
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, wd = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    pool = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    dilation = (1, 1)
    if kind == "max":
        dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))

    def pad(k):
        return draw(st.one_of(st.just(k // 2), st.integers(0, k // 2)))

    form = draw(st.sampled_from(["int", "pair"] if symmetric
                                else ["valid", "same", "int", "pair", "sides"]))
    if form in ("valid", "same"):
        padding = form
    elif form == "int":
        padding = pad(min(pool))
    elif form == "pair":
        padding = (pad(pool[0]), pad(pool[1]))
    else:
        padding = ((pad(pool[0]), pad(pool[0])), (pad(pool[1]), pad(pool[1])))
    ceil_mode = draw(st.booleans())
    strides = pool if stride is None else stride
    pads = pads_for(padding, (h, wd), pool, strides, dilation)
    for size, k, s, d, (p0, p1) in zip((h, wd), pool, strides, dilation, pads):
        assume(max(p0, p1) <= k // 2)
        assume(pool_output_size(size, k, s, d, p0, p1, ceil_mode) >= 1)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if ties and draw(st.booleans()):
        x = rng.integers(-1, 2, (n, h, wd, c)).astype(dtype)
    else:
        x = rng.standard_normal((n, h, wd, c)).astype(dtype)
    kwargs = dict(pool_size=pool, stride=stride, padding=padding, ceil_mode=ceil_mode)
    if kind == "max":
        kwargs["dilation"] = dilation
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
    return PoolCase(x, kwargs)


@st.composite
def conv_transpose_cases(draw, dtype=np.float64, max_size=6, symmetric=False, max_stride=3,
                         max_dilation=3, kernel=None):
    """Random conv_transpose2d settings; ``symmetric`` keeps to PyTorch's own padding.
    The other limits are those of ``ALGORITHM_LIMITS``."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(1, 2))
    h, wd = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    kh, kw = kernel or (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    dilation = (draw(st.integers(1, max_dilation)), draw(st.integers(1, max_dilation)))
    small = st.integers(0, 3)
    if symmetric:
        padding = draw(st.one_of(small, st.tuples(small, small)))
    else:
        padding = draw(st.one_of(
            st.sampled_from(["valid", "same", "full"]), small, st.tuples(small, small),
            st.tuples(st.tuples(small, small), st.tuples(small, small))))
    output_padding = (0, 0)
    if padding != "same":
        output_padding = tuple(draw(st.integers(0, max(s, d) - 1))
                               for s, d in zip(stride, dilation))
    pads, extra = transpose_pads_for(padding, (h, wd), (kh, kw), stride, dilation,
                                     output_padding)
    for size, k, s, d, (p0, p1), op in zip((h, wd), (kh, kw), stride, dilation, pads, extra):
        assume((size - 1) * s + d * (k - 1) + 1 + op - p0 - p1 >= 1)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, h, wd, groups * cg)).astype(dtype)
    w = rng.standard_normal((kh, kw, og, groups * cg)).astype(dtype)
    b = rng.standard_normal(groups * og).astype(dtype) if draw(st.booleans()) else None
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding,
                  dilation=dilation, groups=groups)
    return ConvCase(x, w, b, kwargs)
