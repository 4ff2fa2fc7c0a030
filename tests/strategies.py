"""Hypothesis strategies for random conv2d settings that the op must accept."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from tests.reference import pads_for

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
