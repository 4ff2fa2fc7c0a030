"""The per-tap conv methods: direct convolution (``DIRECT``) and depthwise (``DEPTHWISE``).

Tap ``(r, s)`` reads a strided slice of the padded input, ``(N, H_out, W_out, C_in)``, and
multiplies it by ``w[r, s]: (C_in // groups, C_out)``. No patch matrix; the workspace is
one slice and one product. Good for depthwise and few-channel convolutions; with one input
and one output channel per group the products are per-channel scalings, which the
depthwise filtering engine (``depthwise.py``) does block by block.
"""

from __future__ import annotations

import numpy as np

from convolve.ops.algorithms._common import grouped_matmul, grouped_weight_transpose, tap_slice
from convolve.ops.algorithms.depthwise import filter_depthwise
from convolve.ops.algorithms.method import PaddedInput
from convolve.shapes import ConvGeometry


def _forward(xp: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """``(N, H_out, W_out, C_out)``: the sum over taps of each tap's slice of ``xp`` times
    ``w[r, s]``, per group."""
    stride, dilation, out_hw = geometry.stride, geometry.dilation, geometry.out_hw
    y = np.zeros((xp.shape[0], *out_hw, w.shape[3]), dtype=xp.dtype)
    for r in range(w.shape[0]):
        for s in range(w.shape[1]):
            y += grouped_matmul(xp[tap_slice(r, s, out_hw, stride, dilation)], w[r, s],
                                geometry.groups)
    return y


def _grad_weight(xp: np.ndarray, g: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """``weight_shape``: per tap, that tap's slice of ``xp`` transposed times ``g``, per
    group."""
    kh, kw, cg, c_out = w_shape = geometry.weight_shape
    groups = geometry.groups
    og = c_out // groups
    out_hw = g.shape[1:3]
    g3 = g.reshape(-1, groups, og).transpose(1, 0, 2)  # (groups, M, og)
    dw = np.empty(w_shape, dtype=xp.dtype)
    for r in range(kh):
        for s in range(kw):
            x_tap = xp[tap_slice(r, s, out_hw, geometry.stride, geometry.dilation)]
            product = np.matmul(x_tap.reshape(-1, groups, cg).transpose(1, 2, 0), g3)
            dw[r, s] = product.transpose(1, 0, 2).reshape(cg, c_out)
    return dw


def _grad_input(g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """``padded_shape``: each tap's product of ``g`` with ``w[r, s]`` transposed, added
    into the slice of the padded input the tap read."""
    groups, out_hw = geometry.groups, g.shape[1:3]
    dxp = np.zeros(geometry.padded_shape, dtype=g.dtype)
    for r in range(w.shape[0]):
        for s in range(w.shape[1]):
            w_t = grouped_weight_transpose(w[r, s], groups)
            dxp[tap_slice(r, s, out_hw, geometry.stride, geometry.dilation)] += (
                grouped_matmul(g, w_t, groups))
    return dxp


class Depthwise:
    """Depthwise filtering: one input and one output channel per group, each channel
    correlated with its own kernel by the depthwise filtering engine.

    Cost: at most ``KH * KW`` multiply-adds per output value (``KH + KW`` for kernels of
    rank one, fewer where taps share a weight), in NumPy loops over row blocks split over
    the threads; from ``BANDED_MIN_TAPS`` taps a kernel shared by all channels runs as
    banded GEMMs. Workspace: four row-block buffers of about ``BLOCK_BYTES`` per thread;
    no padded copy of the input. The input gradient of a stride-1 conv is itself depthwise
    filtering; otherwise, and for the weight gradient, one product per tap (``DIRECT``).

    Error: at most ``KH * KW * u * S`` (``u`` the unit roundoff, ``S = sum |w| * |x|``
    over the window). The banded GEMMs multiply pixels outside a window by zero, so an
    inf or NaN becomes NaN in nearby outputs; ``"auto"`` runs gemm on such data."""

    name = "depthwise"

    def supports(self, geometry: ConvGeometry) -> str | None:
        cg, c_out = geometry.weight_shape[2:]
        if cg == 1 and c_out == geometry.groups:
            return None
        return ("one input and one output channel per group; received w of shape "
                f"{geometry.weight_shape} with groups={geometry.groups}")

    def forward(self, x: PaddedInput, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return filter_depthwise(x.x, w[:, :, 0, :], x.pads, x.mode, geometry.stride,
                                geometry.dilation, geometry.out_hw)

    def grad_input(self, g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        if geometry.stride != (1, 1):
            return _grad_input(g, w, geometry)
        # the transposed correlation is itself depthwise: g padded by the kernel's span
        # before, and after as far as makes the padded input (more where rows were not
        # read)
        (kh, kw), (dh, dw) = geometry.weight_shape[:2], geometry.dilation
        xp_shape, out_hw = geometry.padded_shape, g.shape[1:3]
        pads = ((dh * (kh - 1), xp_shape[1] - out_hw[0]),
                (dw * (kw - 1), xp_shape[2] - out_hw[1]))
        return filter_depthwise(g, w[::-1, ::-1, 0, :], pads, "zeros", (1, 1),
                                geometry.dilation, tuple(xp_shape[1:3]))

    def grad_weight(self, xp: np.ndarray, g: np.ndarray,
                    geometry: ConvGeometry) -> np.ndarray:
        return _grad_weight(xp, g, geometry)


class Direct:
    """Direct convolution (module docstring); depthwise shapes go to ``DEPTHWISE``.

    Cost: ``N * H_out * W_out * KH * KW * C_in * C_out / groups`` multiply-adds, one
    grouped product per tap (BLAS, or NumPy's loops for one channel per group).
    Workspace: one tap's slice of the input and its product ``(N, H_out, W_out,
    C_out)``; the input gradient a zeroed padded input. Does every shape.

    Error: as gemm's, ``KH * KW * C_in / groups * u * S`` at most (``u`` the unit
    roundoff, ``S = sum |w| * |x|`` over the window); non-finite values as the
    depthwise engine's for depthwise shapes, else gemm's."""

    name = "direct"

    def supports(self, geometry: ConvGeometry) -> str | None:
        return None

    def forward(self, x: PaddedInput, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        if DEPTHWISE.supports(geometry) is None:
            return DEPTHWISE.forward(x, w, geometry)
        return _forward(x.array, w, geometry)

    def grad_input(self, g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        if DEPTHWISE.supports(geometry) is None:
            return DEPTHWISE.grad_input(g, w, geometry)
        return _grad_input(g, w, geometry)

    def grad_weight(self, xp: np.ndarray, g: np.ndarray,
                    geometry: ConvGeometry) -> np.ndarray:
        return _grad_weight(xp, g, geometry)


DEPTHWISE = Depthwise()
DIRECT = Direct()
