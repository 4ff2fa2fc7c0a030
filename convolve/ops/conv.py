"""conv2d and conv_transpose2d: validation, padding, then dispatch to an algorithm; each
forward beside its backward."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from convolve import _args
from convolve.ops.algorithms import direct, gemm
from convolve.ops.pad import check_pads, pad, pad_adjoint
from convolve.shapes import ConvGeometry, conv_geometry, conv_transpose_geometry
from convolve.tensor import data, needs_grad, record

ALGORITHMS: dict[str, ModuleType] = {"gemm": gemm, "direct": direct}


def select_algorithm(name: str, geometry: ConvGeometry) -> ModuleType:
    """The algorithm module for ``name``; ``"auto"`` picks by shape.

    auto: depthwise-style convolutions (one input channel per group) run ``direct``, whose
    per-tap products are plain broadcasts there; everything else runs ``gemm``.
    """
    _args.choice(name, "algorithm", ("auto", *ALGORITHMS))
    if name != "auto":
        return ALGORITHMS[name]
    cg = geometry.weight_shape[2]
    return direct if cg == 1 else gemm


def conv2d(
    x: Any, w: Any, b: Any = None, *, stride: Any = 1, padding: Any = "valid",
    dilation: Any = 1, groups: int = 1, padding_mode: str = "zeros",
    algorithm: str = "auto",
) -> Any:
    """2-D cross-correlation of channels-last images with a bank of filters.

    Arguments:
        x: ``(N, H, W, C_in)`` or one image ``(H, W, C_in)``; float32 or float64.
        w: ``(KH, KW, C_in // groups, C_out)``.
        b: ``(C_out,)`` or None.
        stride, dilation: int or ``(sh, sw)``, each >= 1.
        padding: ``"valid"``, ``"same"`` (output ``ceil(in / stride)``, the odd pixel
            bottom/right), ``"full"`` (``dilation * (k - 1)`` each side), an int,
            ``(ph, pw)`` or ``((top, bottom), (left, right))``.
        groups: input and output channels split into this many independent groups.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or
            ``"symmetric"``.
        algorithm: ``"auto"``, ``"gemm"`` or ``"direct"``.

    Returns:
        ``(N, H_out, W_out, C_out)`` (or ``(H_out, W_out, C_out)``), with
        ``H_out = floor((H + top + bottom - dilation * (KH - 1) - 1) / stride) + 1``.
        A Tensor, recorded for backpropagation, if any input is a Tensor.
    """
    xa = _args.float_array(data(x), "x")
    wa = _args.float_array(data(w), "w")
    ba = None if b is None else _args.float_array(data(b), "b")
    geometry = conv_geometry(xa.shape, wa.shape, stride=stride, padding=padding,
                             dilation=dilation, groups=groups)
    mode = _args.padding_mode(padding_mode)
    method = select_algorithm(algorithm, geometry)
    size = xa.shape[-3:-1]
    check_pads(geometry.pads, size, mode)
    c_out = wa.shape[3]
    if ba is not None:
        _args.vector(ba, "b", c_out, "C_out", f"to match w of shape {wa.shape}")
    dtype = np.result_type(xa, wa, *(() if ba is None else (ba,)))
    settings = dict(stride=geometry.stride, dilation=geometry.dilation, groups=groups)
    xp = pad((xa if geometry.batched else xa[None]).astype(dtype, copy=False),
             geometry.pads, mode)
    wc = wa.astype(dtype, copy=False)
    y = method.forward(xp, wc, out_hw=geometry.out_hw, **settings)
    if ba is not None:
        y += ba.astype(dtype, copy=False)
    if not geometry.batched:
        y = y[0]
    # Keep only what the backward needs: the padded input only for the weight gradient.
    saved_xp = xp if needs_grad(w) else None
    xp_shape, x_dtype, w_shape, w_dtype = xp.shape, xa.dtype, wa.shape, wa.dtype
    b_dtype = None if ba is None else ba.dtype
    del xp, xa

    def backward(g: np.ndarray) -> tuple[Any, Any, Any]:
        g4 = g if geometry.batched else g[None]
        dx = dw = db = None
        if needs_grad(x):
            dxp = method.grad_input(g4, wc, xp_shape=xp_shape, **settings)
            dx = pad_adjoint(dxp, geometry.pads, mode, size)
            dx = (dx if geometry.batched else dx[0]).astype(x_dtype, copy=False)
        if needs_grad(w):
            dw = method.grad_weight(saved_xp, g4, w_shape=w_shape, **settings)
            dw = dw.astype(w_dtype, copy=False)
        if needs_grad(b):
            db = g4.sum(axis=(0, 1, 2)).astype(b_dtype, copy=False)
        return dx, dw, db

    return record(y, (x, w, b), backward)


def conv_transpose2d(
    x: Any, w: Any, b: Any = None, *, stride: Any = 1, padding: Any = 0,
    output_padding: Any = 0, dilation: Any = 1, groups: int = 1, algorithm: str = "auto",
) -> Any:
    """The transposed convolution: the input-gradient of ``conv2d(., w)`` applied to ``x``.

    ``w`` has conv2d's layout for the convolution being transposed, which maps ``C_out``
    channels to ``C_in``; each input pixel scatters ``x[i, j] @ w[r, s].T`` to output pixel
    ``(i * stride + r * dilation - top, j * stride + s * dilation - left)``.

    Arguments:
        x: ``(N, H, W, C_in)`` or one image ``(H, W, C_in)``; float32 or float64.
        w: ``(KH, KW, C_out // groups, C_in)`` (PyTorch's is ``(C_in, C_out // groups, KH,
            KW)``).
        b: ``(C_out,)`` or None.
        stride, dilation: int or ``(sh, sw)``, each >= 1.
        padding: an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``: the conv's
            padding, cut from the output; ``"valid"`` (0), ``"full"``, or ``"same"``
            (output ``H * stride``, Keras' Conv2DTranspose).
        output_padding: int or pair, added to the bottom/right; each smaller than the
            stride or the dilation (it picks among the input sizes the conv maps to ``H``).
        groups: input and output channels split into this many independent groups.
        algorithm: ``"auto"``, ``"gemm"`` or ``"direct"``.

    Returns:
        ``(N, H_out, W_out, C_out)`` (or unbatched), with ``H_out = (H - 1) * stride - top -
        bottom + dilation * (KH - 1) + output_padding + 1``. A Tensor, recorded for
        backpropagation, if any input is a Tensor.
    """
    xa = _args.float_array(data(x), "x")
    wa = _args.float_array(data(w), "w")
    ba = None if b is None else _args.float_array(data(b), "b")
    geometry = conv_transpose_geometry(xa.shape, wa.shape, stride=stride, padding=padding,
                                       output_padding=output_padding, dilation=dilation,
                                       groups=groups)
    method = select_algorithm(algorithm, geometry.transposed)
    c_out = geometry.output_shape[-1]
    if ba is not None:
        _args.vector(ba, "b", c_out, "C_out",
                     f"to match w of shape {wa.shape} and groups={groups}")
    dtype = np.result_type(xa, wa, *(() if ba is None else (ba,)))
    settings = dict(stride=geometry.stride, dilation=geometry.dilation, groups=groups)
    x4 = (xa if geometry.batched else xa[None]).astype(dtype, copy=False)
    wc = wa.astype(dtype, copy=False)
    (top, bottom), (left, right) = geometry.pads
    out_h, out_w = geometry.out_hw
    yp_shape = (x4.shape[0], out_h + top + bottom, out_w + left + right, c_out)
    yp = method.grad_input(x4, wc, xp_shape=yp_shape, **settings)
    y = np.ascontiguousarray(yp[:, top:top + out_h, left:left + out_w])
    if ba is not None:
        y += ba.astype(dtype, copy=False)
    if not geometry.batched:
        y = y[0]
    saved_x4 = x4 if needs_grad(w) else None
    x_dtype, w_dtype = xa.dtype, wa.dtype
    b_dtype = None if ba is None else ba.dtype
    del yp, xa

    def backward(g: np.ndarray) -> tuple[Any, Any, Any]:
        # The adjoint of cutting the padding off is padding with zeros.
        g4 = g if geometry.batched else g[None]
        gp = pad(g4, geometry.pads, "zeros")
        dx = dw = db = None
        if needs_grad(x):
            dx = method.forward(gp, wc, out_hw=geometry.input_shape[-3:-1], **settings)
            dx = (dx if geometry.batched else dx[0]).astype(x_dtype, copy=False)
        if needs_grad(w):
            dw = method.grad_weight(gp, saved_x4, w_shape=wc.shape, **settings)
            dw = dw.astype(w_dtype, copy=False)
        if needs_grad(b):
            db = g4.sum(axis=(0, 1, 2)).astype(b_dtype, copy=False)
        return dx, dw, db

    return record(y, (x, w, b), backward)
