"""PyTorch as an oracle: channels-last arrays in, PyTorch's NCHW ops underneath."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference import pads_for, source_pixel

torch = pytest.importorskip("torch", reason="torch is not installed: conformance tests skipped")
F = torch.nn.functional
# The oracle's tensors are tiny: worker threads only add start-up and contention costs.
torch.set_num_threads(1)
# oneDNN (mkldnn) in PyTorch 2.13 corrupts the heap on some tiny strided, dilated float32
# convolutions (a flaky segfault in CI); the native kernels are the oracle instead.
torch.backends.mkldnn.enabled = False

TORCH_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
              "circular": "circular"}


def nchw(x: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def oihw(w: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))


def pad_nchw(x, pads, mode):
    (pt, pb), (pl, pr) = pads
    if mode in TORCH_MODE:
        return F.pad(x, (pl, pr, pt, pb), mode=TORCH_MODE[mode])
    # symmetric has no PyTorch mode: gather rows and columns by the reference's index rule
    h, w = x.shape[2], x.shape[3]
    rows = torch.tensor([source_pixel(p, h, mode) for p in range(-pt, h + pb)])
    cols = torch.tensor([source_pixel(p, w, mode) for p in range(-pl, w + pr)])
    return x.index_select(2, rows).index_select(3, cols)


def conv2d_with_grads(x, w, b, g, *, stride, padding, dilation, groups, padding_mode):
    """PyTorch's output and (dx, dw, db) for upstream gradient ``g``, all channels-last."""
    xt = nchw(x).requires_grad_(True)
    wt = oihw(w).requires_grad_(True)
    bt = None if b is None else torch.from_numpy(b).requires_grad_(True)
    pads = pads_for(padding, x.shape[1:3], w.shape[:2], stride, dilation)
    y = F.conv2d(pad_nchw(xt, pads, padding_mode), wt, bt, stride=stride,
                 dilation=dilation, groups=groups)
    y.backward(nchw(g))
    grads = (xt.grad.numpy().transpose(0, 2, 3, 1), wt.grad.numpy().transpose(2, 3, 1, 0),
             None if bt is None else bt.grad.numpy())
    return y.detach().numpy().transpose(0, 2, 3, 1), grads


def nhwc(t) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def pool_with_grads(kind, x, g, *, pool_size, stride, padding, ceil_mode, dilation=(1, 1),
                    count_include_pad=True, backward=True):
    """PyTorch's max_pool2d / avg_pool2d output and input gradient, channels-last.

    Ask for no gradient (``backward=False``, it is then None) when a window lies wholly in
    padding (a dilated max pool): PyTorch's backward indexes outside the input there, and
    aborts.
    """
    xt = nchw(x).requires_grad_(True)
    if kind == "max":
        y = F.max_pool2d(xt, pool_size, stride, padding, dilation, ceil_mode=ceil_mode)
    else:
        y = F.avg_pool2d(xt, pool_size, stride, padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad)
    if not backward:
        return nhwc(y), None
    y.backward(nchw(g))
    return nhwc(y), nhwc(xt.grad)


def conv_transpose2d_with_grads(x, w, b, g, *, pads, output_padding, stride, dilation,
                                groups):
    """PyTorch's conv_transpose2d output and (dx, dw, db), channels-last; per-side pads
    PyTorch cannot take are cut from its unpadded output."""
    xt = nchw(x).requires_grad_(True)
    wt = oihw(w).requires_grad_(True)  # (C_in, C_out // groups, KH, KW)
    bt = None if b is None else torch.from_numpy(b).requires_grad_(True)
    (pt, pb), (pl, pr) = pads
    if pt == pb and pl == pr:
        y = F.conv_transpose2d(xt, wt, bt, stride, (pt, pl), output_padding, groups,
                               dilation)
    else:
        y = F.conv_transpose2d(xt, wt, bt, stride, 0, output_padding, groups, dilation)
        y = y[:, :, pt:y.shape[2] - pb, pl:y.shape[3] - pr]
    y.backward(nchw(g))
    grads = (nhwc(xt.grad), wt.grad.numpy().transpose(2, 3, 1, 0),
             None if bt is None else bt.grad.numpy())
    return nhwc(y), grads


def assert_output_and_grads(y, inputs, expected, grads, dtype, tol):
    """``y`` equals ``expected`` and each Tensor input's grad equals PyTorch's, in ``dtype``."""
    assert y.dtype == dtype
    np.testing.assert_allclose(y.data, expected, rtol=tol, atol=tol)
    for name, ours, theirs in zip("xwb", inputs, grads):
        if ours is not None:
            assert ours.grad.dtype == dtype
            np.testing.assert_allclose(ours.grad, theirs, rtol=tol, atol=tol,
                                       err_msg=f"d{name}")
