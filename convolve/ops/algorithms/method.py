"""The interface every conv method implements (``ConvMethod``) and the input it reads.

A method computes the three passes of one 2-D cross-correlation, described by a
:class:`~convolve.shapes.ConvGeometry` (stride, dilation, groups, pads, sizes), on arrays
in one layout, NHWC with batched arrays (``N = 1`` for an unbatched call):

- ``forward(x, w, geometry)``: ``x`` a :class:`PaddedInput` (the input ``(N, H, W, C_in)``
  and its padding), ``w: (KH, KW, C_in // groups, C_out)``; returns
  ``(N, H_out, W_out, C_out)``, C-contiguous.
- ``grad_input(g, w, geometry)``: ``g: (N, H_out, W_out, C_out)``; returns the gradient of
  the padded input, ``geometry.padded_shape``.
- ``grad_weight(xp, g, geometry)``: ``xp`` the padded input ``(N, Hp, Wp, C_in)``; returns
  ``geometry.weight_shape``.

``supports(geometry)`` says, before any work, whether the method can do a shape: None, or
the reason it cannot, worded to follow "needs" (``"stride 1; received stride (2, 2)"``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from convolve._args import Pads
from convolve.ops.pad import pad
from convolve.shapes import ConvGeometry


@dataclass
class PaddedInput:
    """A conv's input ``x: (N, H, W, C_in)`` padded by ``pads`` in ``mode``.

    ``array``, the padded input ``(N, Hp, Wp, C_in)``, is made on first use and kept, so
    that the forward and the weight gradient share it; the depthwise filtering engine
    pads block by block from ``x`` and never makes it."""

    x: np.ndarray
    pads: Pads
    mode: str

    @functools.cached_property
    def array(self) -> np.ndarray:
        return pad(self.x, self.pads, self.mode)


class ConvMethod(Protocol):
    """One way to compute a convolution's forward, input gradient and weight gradient
    (layout in this module's docstring)."""

    name: str

    def supports(self, geometry: ConvGeometry) -> str | None:
        """None where the method can do ``geometry``, else what it needs."""

    def forward(self, x: PaddedInput, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        """``(N, H_out, W_out, C_out)``."""

    def grad_input(self, g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        """The padded input's gradient, ``geometry.padded_shape``."""

    def grad_weight(self, xp: np.ndarray, g: np.ndarray,
                    geometry: ConvGeometry) -> np.ndarray:
        """The weight's gradient, ``geometry.weight_shape``."""


def check_supported(method: ConvMethod, geometry: ConvGeometry) -> None:
    """Refuse, with a ValueError naming the algorithm, a shape ``method`` cannot do."""
    needs = method.supports(geometry)
    if needs is not None:
        raise ValueError(f"algorithm={method.name!r} needs {needs}")
