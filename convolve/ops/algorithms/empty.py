"""The conv of no work (``NO_WORK``): an empty batch, or no input or output channels.

Such a convolution has an exact answer that needs no method: the forward is zeros
(empty, or the empty sum over no input channels), and so is each gradient (empty, or a
sum over no images or no output channels). ``conv2d`` and ``conv_transpose2d`` run it in
place of whichever method was chosen, so every algorithm and pass behaves the same.
"""

from __future__ import annotations

import numpy as np

from convolve.ops.algorithms.method import PaddedInput
from convolve.shapes import ConvGeometry


def has_no_work(geometry: ConvGeometry) -> bool:
    """Whether ``geometry`` has no image, no input channel per group or no output
    channel: every pass is then zeros."""
    n = geometry.padded_shape[0]
    _, _, cg, c_out = geometry.weight_shape
    return 0 in (n, cg, c_out)


class NoWork:
    """Zeros of each pass's shape. Cost: the zeros; workspace: none."""

    name = "no_work"

    def supports(self, geometry: ConvGeometry) -> str | None:
        return None if has_no_work(geometry) else "an empty batch or no channels"

    def forward(self, x: PaddedInput, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return np.zeros((x.x.shape[0], *geometry.out_hw, geometry.out_channels), w.dtype)

    def grad_input(self, g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return np.zeros(geometry.padded_shape, g.dtype)

    def grad_weight(self, xp: np.ndarray, g: np.ndarray,
                    geometry: ConvGeometry) -> np.ndarray:
        return np.zeros(geometry.weight_shape, g.dtype)


NO_WORK = NoWork()
