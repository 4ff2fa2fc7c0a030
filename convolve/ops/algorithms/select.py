"""Choosing a conv method: by name, or for ``"auto"`` by the crossover table or autotuning.

``CROSSOVERS`` holds the sizes where one method overtakes another; how they were measured,
with the timings, is in ``benchmarks/README.md`` ("Crossovers of algorithm='auto'"). The
rule for ``"auto"``:

- one input and one output channel per group (single-channel filtering, depthwise):
  the depthwise filtering engine, or FFT from ``fft_min_taps`` taps for kernels not of
  rank one, and for rank-one kernels with ``KH + KW >= fft_min_separable_taps``;
- other convolutions with one input channel per group and several groups: ``direct``;
- with :func:`~convolve.set_autotune` on, everything else is timed once per shape and
  dtype (``TUNED`` methods, each pass separately);
- 3x3, stride 1, dilation 1, at least ``winograd_min_channels`` channels per group (the
  fewer of input and output): Winograd F(4x4) where both output sides are at least
  ``f4_min_side`` and its tiles overhang the output by at most ``f4_overhang`` (or
  ``f4_overhang_wide`` with ``wide_channels`` channels or more), F(2x2) where both sides
  are at least ``f2_min_side`` and its tiles overhang by at most ``f2_overhang``. The
  weight gradient follows the forward's choice; the input gradient (a 3x3 stride-1
  convolution of the output gradient into the padded input) the same rule for its size;
- everything else: ``gemm``.

What ``"auto"`` asks of the data (``fidelity.py``): Winograd, FFT, shift-GEMM and the
depthwise engine (whose products over the whole grid, or banded products, meet pixels
outside a window with zero weights) run only on finite operands, pass by pass; on inf
or NaN the direct definition runs instead (gemm), which puts them where PyTorch does. FFT
runs only where the data's dynamic range lets it meet its error bound, in the dtype that
does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from convolve import _args
from convolve.ops import autotune
from convolve.ops.algorithms.depthwise import rank_one_factors
from convolve.ops.algorithms.direct import DEPTHWISE, DIRECT
from convolve.ops.algorithms.fft import FFT
from convolve.ops.algorithms.fidelity import all_finite, fft_dtype
from convolve.ops.algorithms.gemm import GEMM
from convolve.ops.algorithms.method import ConvMethod, PaddedInput
from convolve.ops.algorithms.shift_gemm import SHIFT_GEMM
from convolve.ops.algorithms.winograd import F2, F4
from convolve.shapes import ConvGeometry

# Every method by its ``algorithm=`` name.
METHODS: dict[str, ConvMethod] = {
    "gemm": GEMM, "direct": DIRECT, "shift_gemm": SHIFT_GEMM,
    "winograd": F4, "winograd_f2": F2, "fft": FFT,
}
# The methods autotuning times (the channel-mixing ones; FFT's workspace grows with
# C_in * C_out).
TUNED: dict[str, ConvMethod] = {"gemm": GEMM, "shift_gemm": SHIFT_GEMM, "winograd": F4,
                                "winograd_f2": F2}


@dataclass(frozen=True)
class Crossovers:
    """Where ``"auto"`` switches methods (measurements: ``benchmarks/README.md``)."""

    winograd_min_channels: int = 16  # channels per group, the fewer of input and output
    f2_min_side: int = 10  # output sides below this: gemm
    f2_overhang: float = 1.06  # F(2x2)'s tiles / the output, along the worse side
    f4_min_side: int = 12
    f4_overhang: float = 1.06
    wide_channels: int = 128  # from here the products dominate the transforms
    f4_overhang_wide: float = 1.15
    fft_min_taps: int = 256  # depthwise kernels not of rank one
    fft_min_separable_taps: int = 72  # rank-one kernels, KH + KW


CROSSOVERS = Crossovers()


@dataclass(frozen=True)
class Plan:
    """A conv method made of the methods ``"auto"`` chose for each pass."""

    name: ClassVar[str] = "auto"
    forward_by: ConvMethod
    grad_input_by: ConvMethod
    grad_weight_by: ConvMethod

    def supports(self, geometry: ConvGeometry) -> str | None:
        return None

    def forward(self, x: PaddedInput, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return self.forward_by.forward(x, w, geometry)

    def grad_input(self, g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return self.grad_input_by.grad_input(g, w, geometry)

    def grad_weight(self, xp: np.ndarray, g: np.ndarray,
                    geometry: ConvGeometry) -> np.ndarray:
        return self.grad_weight_by.grad_weight(xp, g, geometry)


@dataclass(frozen=True)
class FiniteOnly:
    """``method`` on finite operands; ``exact`` (the direct definition), pass by pass,
    where an operand holds inf or NaN. Cost: one sum over each operand, then the
    method's."""

    name: ClassVar[str] = "auto"
    method: ConvMethod
    exact: ConvMethod

    def supports(self, geometry: ConvGeometry) -> str | None:
        return self.method.supports(geometry)

    def forward(self, x: PaddedInput, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        by = self.method if all_finite(x.x, w) else self.exact
        return by.forward(x, w, geometry)

    def grad_input(self, g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        by = self.method if all_finite(g, w) else self.exact
        return by.grad_input(g, w, geometry)

    def grad_weight(self, xp: np.ndarray, g: np.ndarray,
                    geometry: ConvGeometry) -> np.ndarray:
        by = self.method if all_finite(xp, g) else self.exact
        return by.grad_weight(xp, g, geometry)


class LargeKernelFilter:
    """Depthwise filtering with a kernel of ``fft_min_taps`` taps or more: FFT, in the
    dtype ``fft_dtype`` says, unless the kernel is of rank one and its two passes are
    short (``KH + KW < fft_min_separable_taps``) or ``fft_dtype`` allows no FFT (values
    not finite, or a dynamic range beyond FFT's error bound): the depthwise engine. Which one
    is known only from the values, so the forward decides; the gradients are
    ``DEPTHWISE``'s.

    Cost and workspace: those of the method it picks."""

    name = "auto"

    def supports(self, geometry: ConvGeometry) -> str | None:
        return DEPTHWISE.supports(geometry)

    def forward(self, x: PaddedInput, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        kh, kw = w.shape[:2]
        dtype = None
        if (kh + kw >= CROSSOVERS.fft_min_separable_taps
                or rank_one_factors(w[:, :, 0]) is None):
            dtype = fft_dtype(x.x, w)
        if dtype is None:
            return DEPTHWISE.forward(x, w, geometry)
        if dtype == x.x.dtype:
            return FFT.forward(x, w, geometry)
        wide = PaddedInput(x.x.astype(dtype), x.pads, x.mode)
        return FFT.forward(wide, w.astype(dtype), geometry).astype(x.x.dtype)

    def grad_input(self, g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return DEPTHWISE.grad_input(g, w, geometry)

    def grad_weight(self, xp: np.ndarray, g: np.ndarray,
                    geometry: ConvGeometry) -> np.ndarray:
        return DEPTHWISE.grad_weight(xp, g, geometry)


LARGE_KERNEL_FILTER = LargeKernelFilter()


def select_algorithm(name: str, geometry: ConvGeometry, dtype: Any = np.float64
                     ) -> ConvMethod:
    """The method for ``algorithm=name``; for ``"auto"`` the one for ``geometry`` and
    ``dtype`` by the rule in this module's docstring (a :class:`Plan` where passes
    differ). A named method may not support the shape: ``check_supported`` says."""
    _args.choice(name, "algorithm", ("auto", *METHODS))
    if name != "auto":
        return METHODS[name]
    kh, kw, cg, c_out = geometry.weight_shape
    og = c_out // geometry.groups
    if cg == 1 and og == 1:
        return FiniteOnly(LARGE_KERNEL_FILTER if kh * kw >= CROSSOVERS.fft_min_taps
                          else DEPTHWISE, GEMM)
    if cg == 1 and geometry.groups > 1:
        return DIRECT
    tuned = _tuned(geometry, dtype) if autotune.autotune_enabled() else None
    if tuned is None:
        forward = _winograd_for(geometry, min(cg, og), geometry.out_hw) or GEMM
        backward = _winograd_for(geometry, min(cg, og), geometry.padded_shape[1:3]) or GEMM
        plan = Plan(forward, backward, forward)
    else:
        plan = tuned
    if {plan.forward_by, plan.grad_input_by, plan.grad_weight_by} == {GEMM}:
        return GEMM if tuned is None else tuned
    return FiniteOnly(plan, GEMM)


def _tuned(geometry: ConvGeometry, dtype: Any) -> Plan | None:
    """Autotuning's plan for ``geometry``, or None where there is no work to time: then
    the table decides."""
    if 0 in (*geometry.padded_shape, geometry.out_channels, *geometry.out_hw):
        return None
    dtype = np.dtype(dtype)
    passes = autotune.tuned_passes((geometry, dtype.str), TUNED, geometry, dtype)
    return Plan(*passes)


def _winograd_for(geometry: ConvGeometry, channels: int, out_hw: tuple[int, ...]
                  ) -> ConvMethod | None:
    """The Winograd variant for a 3x3 stride-1 product between groups of ``channels``
    channels (the fewer of input and output: transforms are paid on both sides, the
    saving only on their product) into ``out_hw`` pixels, or None where GEMM is
    faster."""
    table = CROSSOVERS
    if (F4.supports(geometry) is not None or channels < table.winograd_min_channels
            or min(out_hw) < table.f2_min_side):
        return None
    allowed = table.f4_overhang_wide if channels >= table.wide_channels else table.f4_overhang
    if min(out_hw) >= table.f4_min_side and _overhang(out_hw, 4) <= allowed:
        return F4
    return F2 if _overhang(out_hw, 2) <= table.f2_overhang else None


def _overhang(out_hw: tuple[int, ...], m: int) -> float:
    """How many times longer than the output the whole ``m x m`` tiles reach along its
    longer-reaching side."""
    return max(-(-side // m) * m / side for side in out_hw)
