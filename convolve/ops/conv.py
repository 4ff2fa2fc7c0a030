"""conv2d and conv_transpose2d: validation, padding, then dispatch to an algorithm; each
forward beside its backward."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from convolve import _args
from convolve.ops import autotune
from convolve.ops.algorithms import direct, fft, gemm, shift_gemm, winograd
from convolve.ops.algorithms._common import single_threaded_blas
from convolve.ops.channels import channel_sum, tile, widen
from convolve.ops.pad import check_pads, pad, pad_adjoint
from convolve.shapes import ConvGeometry, conv_geometry, conv_transpose_geometry
from convolve.tensor import data, needs_grad, record

ALGORITHMS: dict[str, Any] = {
    "gemm": gemm, "direct": direct, "shift_gemm": shift_gemm,
    "winograd": winograd.F4, "winograd_f2": winograd.F2, "fft": fft,
}


@dataclass(frozen=True)
class Plan:
    """The methods ``"auto"`` chose for one shape, one per pass (same interface as an
    algorithm module)."""

    forward: Callable[..., np.ndarray]
    grad_input: Callable[..., np.ndarray]
    grad_weight: Callable[..., np.ndarray]
    pads_input: bool = False


def select_algorithm(name: str, geometry: ConvGeometry, dtype: Any = np.float64) -> Any:
    """The algorithm for ``name``: a module with ``forward``, ``grad_input`` and
    ``grad_weight``; for ``"auto"`` a :class:`Plan` picking each pass by shape (with
    :func:`~convolve.set_autotune` on, by timing the ``TUNED`` methods once per shape and
    ``dtype``, except for depthwise convolutions, which keep this table).

    The auto table, from single-thread CPU times on the 2-core benchmark machine (ms,
    forward / input gradient / weight gradient; 3x3 stride 1 pad 1; F4/F2 = Winograd
    F(4x4)/F(2x2); the machine was shared, so figures are good to ~20%):

    ==================  ==============  ==============  ==============  ==============
    N,H,W,C->K          gemm            F4              F2              chosen
    ==================  ==============  ==============  ==============  ==============
    64,32,32,3->32      6.1/7.5/6.4     11/22/13        12/27/16        gemm
    64,32,32,32->32     33/58/24        24/26/20        32/37/30        F4
    8,56,56,64->64      26/39/27        16/22/18        21/24/22        F4
    8,28,28,128->128    24/32/26        14/20/15        18/23/19        F4
    8,14,14,256->256    26/32/28        17/18/19        18/24/18        F4
    8,7,7,512->512      26/31/31        24/44/37        23/39/31        gemm
    ==================  ==============  ==============  ==============  ==============

    - 3x3, stride 1, dilation 1, at least ``WINOGRAD_MIN_CHANNELS`` channels per group:
      Winograd F(4x4) when both output sides are >= 12 and its 4x4 tiles overhang the
      output by at most 15% with >= 128 channels (14x14 runs as 16x16), 6% with fewer
      (34x34 as 36x36), F(2x2) when >= 10 and its 2x2 tiles overhang by at most 6%
      (not 11x11 or 13x13), else ``gemm``
      (at 7x7 and its 9x9 input gradient the tiles' overhang costs what Winograd
      saves). The weight gradient follows the forward's choice; the input gradient (a
      3x3 stride-1 convolution of the output gradient) the same rule with the channels
      swapped;
    - one input and one output channel per group (single-channel filtering, depthwise):
      ``direct`` (shift-and-add in row blocks that stay in cache; rank-one kernels in a
      column and a row pass; one kernel shared by all channels from 10 taps as banded
      GEMMs; stride-1 blocks pad themselves and run as 1-D runs: random 3x3 8.8 ms,
      banded 9.6, Gaussian 3x3 5.5, 7x7 9.4, on 2 threads, after that rewrite),
      or ``fft`` from ``FFT_MIN_TAPS`` taps (16x16) for kernels not of rank one, and for
      rank-one kernels with ``KH + KW >= 72``. 2048x2048, 2 threads, best of 3 on the
      shared machine (load ~2.8), ms, shift-add / banded / fft: random 3x3 29 / 26 /
      143; 4x4 46 / 33 / 121; 7x7 84 / 34 / 100; 11x11 224 / 52 / 103; 15x15 254 / 68 /
      91; 19x19 649 / 135 / 94 (fft barely depends on the size); Gaussian 15x15 two
      passes 37, fft 92; 31x31: 66 / 81;
    - other depthwise convolutions (one input channel per group, several groups):
      ``direct``; one input channel and many outputs (a first layer on gray images) is a
      GEMM with few columns: gemm;
    - everything else: ``gemm`` (im2col; for 1x1 kernels the patches are the pixels read;
      shift-GEMM never won by enough to be chosen).

    Float32 error of these choices stays within ~1e-5 of the largest output of a float64
    reference (F(4x4) measured 4e-6 to 1.1e-5 on these shapes, its weight gradient 4e-6;
    gemm and F(2x2) ~5e-7).
    """
    _args.choice(name, "algorithm", ("auto", *ALGORITHMS))
    if name != "auto":
        return ALGORITHMS[name]
    kh, kw, cg, c_out = geometry.weight_shape
    og = c_out // geometry.groups
    if cg == 1 and og == 1:
        return Plan(_filter if kh * kw >= FFT_MIN_TAPS else direct.forward,
                    direct.grad_input, direct.grad_weight, pads_input=True)
    if cg == 1 and geometry.groups > 1:
        return direct
    tuned = _tuned(geometry, dtype) if autotune.autotune_enabled() else None
    if tuned is not None:
        return tuned
    forward = _winograd_for(geometry, min(cg, og), geometry.out_hw) or gemm
    backward = _winograd_for(geometry, min(cg, og), geometry.padded_shape[1:3]) or gemm
    return Plan(forward.forward, backward.grad_input, forward.grad_weight)


def _tuned(geometry: ConvGeometry, dtype: Any) -> Plan | None:
    """Autotuning's plan for ``geometry``, or None (no work to time, or every method
    refuses a pass): then the table decides."""
    xp_shape = geometry.padded_shape
    if 0 in (*xp_shape, geometry.out_channels, *geometry.out_hw):
        return None
    dtype = np.dtype(dtype)
    settings = dict(stride=geometry.stride, dilation=geometry.dilation, groups=geometry.groups)
    passes = autotune.tuned_passes((geometry, dtype.str), TUNED, xp_shape,
                                   geometry.weight_shape, geometry.out_hw, dtype, settings)
    return None if passes is None else Plan(*passes)


WINOGRAD_MIN_CHANNELS = 16
# The methods autotuning times (the channel-mixing ones; FFT's workspace grows with
# C_in * C_out).
TUNED = {"gemm": gemm, "shift_gemm": shift_gemm, "winograd": winograd.F4,
         "winograd_f2": winograd.F2}
# Single-channel / depthwise filtering: FFT from this many taps unless the kernel is of
# rank one; separable kernels from FFT_MIN_SEPARABLE_TAPS taps in their two passes.
FFT_MIN_TAPS = 256
FFT_MIN_SEPARABLE_TAPS = 72


def _filter(x: np.ndarray, w: np.ndarray, *, pads: _args.Pads, mode: str,
            **settings: Any) -> np.ndarray:
    """Forward of a one-channel-per-group conv with a large kernel: FFT, unless the kernel
    is separable and its two passes are short enough for direct shift-and-add."""
    kh, kw = w.shape[:2]
    if kh + kw < FFT_MIN_SEPARABLE_TAPS and direct.rank_one_factors(w[:, :, 0]) is not None:
        return direct.forward(x, w, pads=pads, mode=mode, **settings)
    return fft.forward(pad(x, pads, mode), w, **settings)


def _operands(x: Any, w: Any, b: Any
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.dtype]:
    """conv2d's and conv_transpose2d's ``x``, ``w`` and ``b`` as floating-point arrays,
    and the dtype they compute in (NumPy's promotion of the three)."""
    xa, wa = _args.float_array(data(x), "x"), _args.float_array(data(w), "w")
    ba = None if b is None else _args.float_array(data(b), "b")
    return xa, wa, ba, np.result_type(xa, wa, *(() if ba is None else (ba,)))


def _biased(y: np.ndarray, b: np.ndarray | None, batched: bool) -> np.ndarray:
    """The output ``y: (N, H, W, C_out)`` plus the bias (in place where ``y`` is
    C-contiguous, as the methods make it), and unbatched unless the input was batched."""
    if b is not None:
        y = np.ascontiguousarray(y)  # so that the wide rows are a view of it
        wide, r = widen(y)
        wide += tile(b.astype(y.dtype, copy=False), r)
    return y if batched else y[0]


def _forward(method: Any, x: np.ndarray, w: np.ndarray, pads: _args.Pads, mode: str,
             keep_padded: bool = False, **settings: Any
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """``method``'s forward of ``x: (N, H, W, C_in)`` padded by ``pads`` in ``mode``
    (padded here unless the method pads as it goes, ``pads_input``), and with
    ``keep_padded`` the padded input for the weight gradient (else None)."""
    if getattr(method, "pads_input", False):
        y = method.forward(x, w, pads=pads, mode=mode, **settings)
        return y, pad(x, pads, mode) if keep_padded else None
    xp = pad(x, pads, mode)
    return method.forward(xp, w, **settings), xp if keep_padded else None


def _winograd_for(geometry: ConvGeometry, channels: int, out_hw: tuple[int, ...]) -> Any:
    """The Winograd variant for a 3x3 stride-1 product between groups of ``channels``
    channels (the fewer of input and output: transforms are paid on both sides, the
    saving only on their product; 64x32x32x3->32's input gradient took 31 ms through
    Winograd, 6 through gemm) into ``out_hw`` pixels, or None where GEMM is faster."""
    if (geometry.weight_shape[:2] != (3, 3) or geometry.stride != (1, 1)
            or geometry.dilation != (1, 1) or channels < WINOGRAD_MIN_CHANNELS):
        return None
    if min(out_hw) < 10:
        return None
    # F(4x4) wherever its whole tiles cover few more pixels than the output: up to 15%
    # more with many channels (the products dominate), 6% with fewer (64,14,14,32->64
    # forward+backward: F(4x4) 26 ms, F(2x2) 22, gemm 25); F(2x2) likewise within 6%,
    # else gemm (64,11,11,32->64, 1 thread, ms, gemm / F(4x4) / F(2x2): forward 3.1 /
    # 4.1 / 5.1, weight gradient 3.1 / 5.0 / 5.4; its 13x13 input gradient 5.2 / 7.5 /
    # 6.5: mnist_cnn's second conv).
    allowed = 1.15 if channels >= 128 else 1.06
    if min(out_hw) >= 12 and _overhang(out_hw, 4) <= allowed:
        return winograd.F4
    return winograd.F2 if _overhang(out_hw, 2) <= 1.06 else None


def _overhang(out_hw: tuple[int, ...], m: int) -> float:
    """How many times longer than the output the whole ``m x m`` tiles reach along its
    longer-reaching side."""
    return max(-(-side // m) * m / side for side in out_hw)


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
    method = select_algorithm(algorithm, geometry, dtype)
    size = xa.shape[-3:-1]
    check_pads(geometry.pads, size, mode)
    c_out = wa.shape[3]
    if ba is not None:
        _args.vector(ba, "b", c_out, "C_out", f"to match w of shape {wa.shape}")
    settings = dict(stride=geometry.stride, dilation=geometry.dilation, groups=groups)
    x4 = (xa if geometry.batched else xa[None]).astype(dtype, copy=False)
    wc = wa.astype(dtype, copy=False)
    # Keep only what the backward needs: the padded input only for the weight gradient.
    with single_threaded_blas():
        y, saved_xp = _forward(method, x4, wc, geometry.pads, mode, needs_grad(w),
                               out_hw=geometry.out_hw, **settings)
    y = _biased(y, ba, geometry.batched)
    xp_shape = geometry.padded_shape
    x_dtype, w_shape, w_dtype = xa.dtype, wa.shape, wa.dtype
    b_dtype = None if ba is None else ba.dtype
    del x4, xa

    def backward(g: np.ndarray) -> tuple[Any, Any, Any]:
        g4 = g if geometry.batched else g[None]
        dx = dw = db = None
        with single_threaded_blas():
            if needs_grad(x):
                dxp = method.grad_input(g4, wc, xp_shape=xp_shape, **settings)
                dx = pad_adjoint(dxp, geometry.pads, mode, size)
                dx = (dx if geometry.batched else dx[0]).astype(x_dtype, copy=False)
            if needs_grad(w):
                dw = method.grad_weight(saved_xp, g4, w_shape=w_shape, **settings)
                dw = dw.astype(w_dtype, copy=False)
        if needs_grad(b):
            db = channel_sum(g4).astype(b_dtype, copy=False)
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
    method = select_algorithm(algorithm, geometry.transposed, dtype)
    c_out = geometry.output_shape[-1]
    if ba is not None:
        _args.vector(ba, "b", c_out, "C_out",
                     f"to match w of shape {wa.shape} and groups={groups}")
    settings = dict(stride=geometry.stride, dilation=geometry.dilation, groups=groups)
    x4 = (xa if geometry.batched else xa[None]).astype(dtype, copy=False)
    wc = wa.astype(dtype, copy=False)
    (top, _), (left, _) = geometry.pads
    out_h, out_w = geometry.out_hw
    with single_threaded_blas():
        yp = method.grad_input(x4, wc, xp_shape=geometry.transposed.padded_shape, **settings)
    y = np.ascontiguousarray(yp[:, top:top + out_h, left:left + out_w])
    y = _biased(y, ba, geometry.batched)
    saved_x4 = x4 if needs_grad(w) else None
    x_dtype, w_dtype = xa.dtype, wa.dtype
    b_dtype = None if ba is None else ba.dtype
    del yp, xa

    def backward(g: np.ndarray) -> tuple[Any, Any, Any]:
        # The adjoint of cutting the padding off is padding with zeros.
        g4 = g if geometry.batched else g[None]
        dx = dw = db = None
        with single_threaded_blas():
            if needs_grad(x):
                dx, _ = _forward(method, g4, wc, geometry.pads, "zeros",
                                 out_hw=geometry.input_shape[-3:-1], **settings)
                dx = (dx if geometry.batched else dx[0]).astype(x_dtype, copy=False)
            if needs_grad(w):
                dw = method.grad_weight(pad(g4, geometry.pads, "zeros"), saved_x4,
                                        w_shape=wc.shape, **settings)
                dw = dw.astype(w_dtype, copy=False)
        if needs_grad(b):
            db = channel_sum(g4).astype(b_dtype, copy=False)
        return dx, dw, db

    return record(y, (x, w, b), backward)
