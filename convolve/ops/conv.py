"""conv2d and conv_transpose2d: checks, then a conv method's passes, forward beside backward."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from convolve import _args
from convolve.ops.algorithms.empty import NO_WORK, has_no_work
from convolve.ops.algorithms.method import ConvMethod, PaddedInput, check_supported
from convolve.ops.algorithms.select import select_algorithm
from convolve.ops.channels import channel_sum, tile, widen
from convolve.ops.pad import check_pads, pad, pad_adjoint
from convolve.runtime import single_threaded_blas
from convolve.shapes import ConvGeometry, conv_geometry, conv_transpose_geometry, effective_kernel
from convolve.tensor import data, needs_grad, record


def _operands(x: Any, w: Any, b: Any
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.dtype]:
    """conv2d's and conv_transpose2d's ``x``, ``w`` and ``b`` as floating-point arrays,
    and the dtype they compute in (NumPy's promotion of the three). An image without
    pixels is refused here (the sizes functions, such as ``explain``, still answer)."""
    xa, wa = _args.float_array(data(x), "x"), _args.float_array(data(w), "w")
    _args.rank(xa.shape, "x", _args.IMAGE)
    _args.pixels(xa.shape, "x")
    ba = None if b is None else _args.float_array(data(b), "b")
    dtype = np.result_type(xa, wa, *(() if ba is None else (ba,)))
    # float16 is stored, never multiplied in: its products run in float32 (Winograd in
    # float16 was off by 0.12), the output rounded to float16 once.
    return xa, wa, ba, np.promote_types(dtype, np.float32)


def _biased(y: np.ndarray, b: np.ndarray | None, batched: bool) -> np.ndarray:
    """The output ``y: (N, H, W, C_out)`` plus the bias (in place where ``y`` is
    C-contiguous, as the methods make it), and unbatched unless the input was batched."""
    if b is not None:
        y = np.ascontiguousarray(y)  # so that the wide rows are a view of it
        wide, r = widen(y)
        wide += tile(b.astype(y.dtype, copy=False), r)
    return y if batched else y[0]


def _clamped(conv: ConvGeometry) -> ConvGeometry:
    """``conv`` with each stride at most ``Hp - span + 1``: a larger one leaves one window
    along that axis, as that stride does, and an astronomical one (``2**70``) overflows
    NumPy's slices."""
    sizes = conv.padded_shape[1:3]
    stride = tuple(min(s, n - effective_kernel(k, d) + 1) for s, n, k, d in
                   zip(conv.stride, sizes, conv.weight_shape[:2], conv.dilation))
    return conv if stride == conv.stride else dataclasses.replace(conv, stride=stride)


def _check_sizes(conv: ConvGeometry, output_shape: tuple[int, ...], dtype: np.dtype,
                 op: str) -> None:
    """Refuse, before allocating, an output or padded input (the methods' largest
    arrays, with their gradients) larger than the machine's memory."""
    _args.check_fits(output_shape, dtype, f"{op}'s output")
    _args.check_fits(conv.padded_shape, dtype, f"{op}'s padded input")


def _setup(algorithm: str, conv: ConvGeometry, xa: np.ndarray, wa: np.ndarray,
           ba: np.ndarray | None, dtype: np.dtype, *, c_out: int, bias_note: str,
           mode: str | None = None) -> tuple[ConvMethod, np.ndarray, np.ndarray]:
    """The checks conv2d and conv_transpose2d make before any work, in order (the
    algorithm's name, with ``mode`` the padding, the bias, whether the method does the
    shape), then the method for ``conv`` (the convolution whose passes the call runs),
    ``x`` batched and ``w``, both in ``dtype``. A convolution of no work (an empty batch,
    no input or no output channels) runs ``NO_WORK`` whatever the algorithm."""
    method = select_algorithm(algorithm, conv, dtype)
    if mode is not None:
        check_pads(conv.pads, xa.shape[-3:-1], mode)
    if ba is not None:
        _args.vector(ba, "b", c_out, "C_out", bias_note)
    check_supported(method, conv)
    if has_no_work(conv):
        method = NO_WORK
    x4 = (xa if conv.batched else xa[None]).astype(dtype, copy=False)
    return method, x4, wa.astype(dtype, copy=False)


def _backward(inputs: tuple[Any, Any, Any], dtypes: tuple[Any, Any, Any], batched: bool,
              grad_x: Callable[[np.ndarray], np.ndarray],
              grad_w: Callable[[np.ndarray], np.ndarray]) -> Callable[..., tuple]:
    """The backward of conv2d or conv_transpose2d with inputs ``(x, w, b)``: ``grad_x``
    and ``grad_w`` map the batched output gradient to the batched input gradient and the
    weight gradient; each gradient is computed only when asked for, in its input's dtype
    (``dtypes``)."""
    x, w, b = inputs
    x_dtype, w_dtype, b_dtype = dtypes

    def backward(g: np.ndarray) -> tuple[Any, Any, Any]:
        g4 = g if batched else g[None]
        dx = dw = db = None
        with single_threaded_blas():
            if needs_grad(x):
                dx = grad_x(g4)
                dx = (dx if batched else dx[0]).astype(x_dtype, copy=False)
            if needs_grad(w):
                dw = grad_w(g4).astype(w_dtype, copy=False)
        if needs_grad(b):
            db = channel_sum(g4).astype(b_dtype, copy=False)
        return dx, dw, db

    return backward


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
        algorithm: ``"auto"`` (by shape: :func:`select_algorithm`, or timed once per
            shape with :func:`~convolve.set_autotune`), or one method: ``"gemm"``,
            ``"shift_gemm"``, ``"winograd"`` (F(4x4)), ``"winograd_f2"``, ``"fft"`` or
            ``"direct"``.

    Returns:
        ``(N, H_out, W_out, C_out)`` (or ``(H_out, W_out, C_out)``), with
        ``H_out = floor((H + top + bottom - dilation * (KH - 1) - 1) / stride) + 1``.
        A Tensor, recorded for backpropagation, if any input is a Tensor.
    """
    xa, wa, ba, dtype = _operands(x, w, b)
    geometry = conv_geometry(xa.shape, wa.shape, stride=stride, padding=padding,
                             dilation=dilation, groups=groups)
    mode = _args.padding_mode(padding_mode)
    _check_sizes(geometry, geometry.output_shape, dtype, "conv2d")
    method, x4, wc = _setup(algorithm, geometry, xa, wa, ba, dtype, c_out=wa.shape[3],
                            bias_note=f"to match w of shape {wa.shape}", mode=mode)
    geometry = _clamped(geometry)
    # Keep only what the backward needs: the padded input only for the weight gradient.
    with single_threaded_blas():
        x_in = PaddedInput(x4, geometry.pads, mode)
        y = method.forward(x_in, wc, geometry)
        saved_xp = x_in.array if needs_grad(w) else None
    y = _biased(y, ba, geometry.batched)
    size = xa.shape[-3:-1]
    dtypes = (xa.dtype, wa.dtype, None if ba is None else ba.dtype)
    del x_in, x4, xa

    def grad_x(g4: np.ndarray) -> np.ndarray:
        return pad_adjoint(method.grad_input(g4, wc, geometry), geometry.pads, mode, size)

    def grad_w(g4: np.ndarray) -> np.ndarray:
        return method.grad_weight(saved_xp, g4, geometry)

    y = y.astype(np.result_type(*(d for d in dtypes if d is not None)), copy=False)
    return record(y, (x, w, b), _backward((x, w, b), dtypes, geometry.batched, grad_x, grad_w))


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
        algorithm: ``"auto"`` (by shape: :func:`select_algorithm`, or timed once per
            shape with :func:`~convolve.set_autotune`), or one method: ``"gemm"``,
            ``"shift_gemm"``, ``"winograd"`` (F(4x4)), ``"winograd_f2"``, ``"fft"`` or
            ``"direct"``.

    Returns:
        ``(N, H_out, W_out, C_out)`` (or unbatched), with ``H_out = (H - 1) * stride - top -
        bottom + dilation * (KH - 1) + output_padding + 1``. A Tensor, recorded for
        backpropagation, if any input is a Tensor.
    """
    xa, wa, ba, dtype = _operands(x, w, b)
    geometry = conv_transpose_geometry(xa.shape, wa.shape, stride=stride, padding=padding,
                                       output_padding=output_padding, dilation=dilation,
                                       groups=groups)
    conv = geometry.transposed  # maps this call's output back to its input
    _check_sizes(conv, geometry.output_shape, dtype, "conv_transpose2d")
    method, x4, wc = _setup(algorithm, conv, xa, wa, ba, dtype,
                            c_out=geometry.output_shape[-1],
                            bias_note=f"to match w of shape {wa.shape} and groups={groups}")
    conv = _clamped(conv)
    (top, _), (left, _) = geometry.pads
    out_h, out_w = geometry.out_hw
    with single_threaded_blas():
        yp = method.grad_input(x4, wc, conv)
    y = np.ascontiguousarray(yp[:, top:top + out_h, left:left + out_w])
    y = _biased(y, ba, geometry.batched)
    saved_x4 = x4 if needs_grad(w) else None
    dtypes = (xa.dtype, wa.dtype, None if ba is None else ba.dtype)
    del yp, xa

    # The adjoint of cutting the padding off is padding with zeros.
    def grad_x(g4: np.ndarray) -> np.ndarray:
        return method.forward(PaddedInput(g4, geometry.pads, "zeros"), wc, conv)

    def grad_w(g4: np.ndarray) -> np.ndarray:
        return method.grad_weight(pad(g4, geometry.pads, "zeros"), saved_x4, conv)

    y = y.astype(np.result_type(*(d for d in dtypes if d is not None)), copy=False)
    return record(y, (x, w, b), _backward((x, w, b), dtypes, geometry.batched, grad_x, grad_w))
