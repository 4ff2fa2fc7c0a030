"""The shape-specific fast paths inside the algorithms, against the float64 reference:
separable and shared-weight depthwise filtering, FFT, and auto's choices in float32."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
from convolve.ops.algorithms.depthwise import rank_one_factors
from convolve.ops.algorithms.gemm import FEW_CHANNELS
from tests import reference
from tests.strategies import MODES


@st.composite
def depthwise_cases(draw, separable: bool, shared: bool):
    """Depthwise convs (one in, one out channel per group) with rank-one kernels or one
    kernel of small integer weights (0, +-1 and others) shared by every channel."""
    c = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = draw(st.integers(dilation[0] * (kh - 1) + 1, 14))
    wd = draw(st.integers(dilation[1] * (kw - 1) + 1, 14))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if separable:
        k = rng.standard_normal((kh, 1, c)) * rng.standard_normal((1, kw, c))
    else:
        k = rng.integers(-2, 3, (kh, kw, 1)) * np.ones((1, 1, c))
    if shared:
        k = np.repeat(k[:, :, :1], c, axis=2)
    kwargs = dict(stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                  dilation=dilation,
                  padding=draw(st.sampled_from(["valid", "same", "full"])),
                  padding_mode=draw(st.sampled_from(("zeros", "replicate"))), groups=c)
    x = rng.standard_normal((draw(st.integers(1, 2)), h, wd, c))
    return x, k[:, :, None, :], kwargs


@pytest.mark.parametrize("separable, shared", [(True, False), (True, True), (False, True)])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_depthwise_fast_paths_match_reference(separable, shared, data):
    x, w, kwargs = data.draw(depthwise_cases(separable, shared))
    y = convolve.conv2d(x, w, algorithm="direct", **kwargs)
    np.testing.assert_allclose(y, reference.conv2d(x, w, **kwargs), rtol=1e-10, atol=1e-10)


def test_rank_one_factors_find_separable_kernels_only():
    a, b = np.array([1.0, 2.0, 1.0]), np.array([-1.0, 0.0, 1.0])
    sobel = np.outer(a, b)[:, :, None]
    col, row = rank_one_factors(sobel)
    np.testing.assert_allclose(col[:, None, 0] * row[None, :, 0], sobel[:, :, 0], atol=1e-12)
    laplacian = np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])[:, :, None]
    assert rank_one_factors(laplacian) is None
    assert rank_one_factors(np.ones((1, 5, 1))) is None


@pytest.mark.parametrize("mode", MODES)
def test_filtering_a_large_image_in_float32_stays_accurate(mode):
    """Row blocks, threads, banded products (5x5) and FFT (17x16) cover every pixel;
    float32 stays within 1e-5 of the largest output."""
    rng = np.random.default_rng(0)
    x = rng.random((1, 301, 257, 1))
    g = np.exp(-0.5 * (np.arange(-3, 4) / 1.5) ** 2)
    for k in (np.outer(g, g), rng.standard_normal((5, 5)), rng.standard_normal((17, 16))):
        w = k[:, :, None, None]
        kwargs = dict(padding="same", padding_mode=mode)
        expected = convolve.conv2d(x, w, algorithm="gemm", **kwargs)
        y = convolve.conv2d(x.astype(np.float32), w.astype(np.float32), **kwargs)
        assert y.dtype == np.float32
        scale = np.abs(expected).max()
        np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5 * scale)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_depthwise_backward_matches_gemm(data):
    """The depthwise input gradient (a depthwise correlation itself) against gemm's."""
    x, w, kwargs = data.draw(depthwise_cases(separable=False, shared=False))
    grads = []
    for algorithm in ("gemm", "direct"):
        xt, wt = convolve.Tensor(x, requires_grad=True), convolve.Tensor(w, requires_grad=True)
        y = convolve.conv2d(xt, wt, algorithm=algorithm, **kwargs)
        y.backward(np.random.default_rng(0).standard_normal(y.shape))
        grads.append((xt.grad, wt.grad))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dilation", [(1, 1), (2, 1), (1, 3)])
def test_banded_products_match_reference(dilation):
    """One non-separable kernel shared by all channels: banded GEMMs over row blocks,
    including a last block of fewer rows."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 37, 29, 2))
    k = rng.standard_normal((7, 6, 1, 1))
    w = np.repeat(k, 2, axis=3)
    kwargs = dict(padding="same", padding_mode="reflect", groups=2, dilation=dilation)
    y = convolve.conv2d(x, w, algorithm="direct", **kwargs)
    np.testing.assert_allclose(y, reference.conv2d(x, w, **kwargs), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size, channels", [(34, 16), (14, 64), (13, 32), (10, 16)])
def test_auto_3x3_choices_stay_accurate_in_float32(size, channels):
    """Where auto picks Winograd (F(4x4) from 12x12, F(2x2) from 10x10, whole tiles
    over the edges, chunks over threads), the float32 output and both gradients stay
    within 1e-4 of the largest value of a float64 gemm."""
    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, size, size, channels))
    w = rng.standard_normal((3, 3, channels, channels)) / (3 * np.sqrt(channels))
    g = rng.standard_normal((2, size, size, channels))
    results = []
    for dtype, algorithm in ((np.float64, "gemm"), (np.float32, "auto")):
        xt = convolve.Tensor(x.astype(dtype), requires_grad=True)
        wt = convolve.Tensor(w.astype(dtype), requires_grad=True)
        y = convolve.conv2d(xt, wt, padding="same", algorithm=algorithm)
        y.backward(g.astype(dtype))
        results.append((y.data, xt.grad, wt.grad))
    for expected, got in zip(*results):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("channels", [FEW_CHANNELS, FEW_CHANNELS + 1])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_gemm_patch_layouts_match_reference(channels, data):
    """gemm copies patches channels-first up to FEW_CHANNELS and channels-last above:
    both give the reference output, and the same gradients as ``direct``, over strides,
    dilations and the row blocks of a large image."""
    kh, kw = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    stride = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    dilation = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    h = data.draw(st.integers(dilation[0] * (kh - 1) + 1, 70))
    wd = data.draw(st.integers(dilation[1] * (kw - 1) + 1, 70))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((data.draw(st.integers(1, 3)), h, wd, channels))
    w = rng.standard_normal((kh, kw, channels, data.draw(st.integers(1, 5))))
    kwargs = dict(stride=stride, dilation=dilation,
                  padding=data.draw(st.sampled_from(["valid", "same"])))
    grads = []
    for algorithm in ("gemm", "direct"):
        xt, wt = convolve.Tensor(x, requires_grad=True), convolve.Tensor(w, requires_grad=True)
        y = convolve.conv2d(xt, wt, algorithm=algorithm, **kwargs)
        if algorithm == "gemm":
            np.testing.assert_allclose(y.data, reference.conv2d(x, w, **kwargs),
                                       rtol=1e-10, atol=1e-10)
        y.backward(np.random.default_rng(0).standard_normal(y.shape))
        grads.append((xt.grad, wt.grad))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
