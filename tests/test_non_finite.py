"""Non-finite values and precision under algorithm="auto" (issue 14): auto gives the same
set of inf and NaN outputs as the direct definition (gemm, PyTorch, scipy), and meets each
method's error bound (convolve/ops/algorithms/fidelity.py)."""

import numpy as np
import pytest

import convolve
from convolve import Tensor, filters
from convolve.ops.algorithms import fidelity

VALUES = [np.inf, -np.inf, np.nan]


def _same_non_finite(ours, reference):
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(reference))
    np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(reference))


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auto_keeps_non_finite_values_where_gemm_puts_them(dtype, value):
    """A Winograd-sized convolution (3x3, 16 channels, 20x20): one non-finite pixel in
    the input, then in the output gradient; every pass as gemm's."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 20, 20, 16)).astype(dtype)
    x[0, 7, 11, 3] = value
    w = rng.standard_normal((3, 3, 16, 16)).astype(dtype)
    g = rng.standard_normal((1, 20, 20, 16)).astype(dtype)
    g[0, 2, 5, 1] = value
    results = {}
    for algorithm in ("auto", "gemm"):
        xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        y = convolve.conv2d(xt, wt, padding=1, algorithm=algorithm)
        y.backward(g)
        results[algorithm] = (y.data, xt.grad, wt.grad)
    assert not np.isfinite(results["gemm"][0]).all()
    for ours, reference in zip(results["auto"], results["gemm"]):
        _same_non_finite(ours, reference)
        finite = np.isfinite(reference)
        np.testing.assert_allclose(ours[finite], reference[finite], rtol=1e-4, atol=1e-3)


def test_named_methods_spread_non_finite_values_as_documented():
    x = np.zeros((1, 20, 20, 16))
    x[0, 7, 11, 3] = np.inf
    w = np.ones((3, 3, 16, 16))
    gemm = convolve.conv2d(x, w, padding=1, algorithm="gemm")
    assert np.isinf(gemm).sum() == 9 * 16
    assert np.isnan(convolve.conv2d(x, w, padding=1, algorithm="fft")).all()


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_filters_apply_keeps_scipys_non_finite_set(dtype, value):
    """A 17x17 kernel not of rank one (auto's FFT size): scipy.ndimage.correlate's set."""
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(1)
    image = rng.random((64, 64)).astype(dtype)
    image[30, 20] = value
    kernel = rng.standard_normal((17, 17))
    ours = filters.apply(image, kernel, mode="zeros")
    theirs = ndimage.correlate(image.astype(np.float64), kernel, mode="constant")
    _same_non_finite(ours, theirs)
    assert np.isnan(ours).sum() + np.isinf(ours).sum() == 17 * 17
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 2e-6), (np.float64, 1e-14)])
def test_auto_filters_a_large_valued_patch_within_its_bound(dtype, tolerance):
    """A 1e4 patch in a 0-1 image: FFT in float32 errs by ~5e-4 of sum |w| * |x| far from
    it; auto stays within the direct methods' bound everywhere."""
    rng = np.random.default_rng(2)
    image = rng.random((1, 128, 128, 1)).astype(dtype)
    image[:, :8, :8] = 1e4
    k = rng.standard_normal((17, 17, 1, 1)).astype(dtype)
    exact = convolve.conv2d(image.astype(np.float64), k.astype(np.float64), padding=8,
                            algorithm="direct")
    scale = convolve.conv2d(np.abs(image).astype(np.float64), np.abs(k).astype(np.float64),
                            padding=8, algorithm="direct")
    error = np.abs(convolve.conv2d(image, k, padding=8) - exact) / scale
    assert error.max() < tolerance
    if dtype == np.float32:  # the method auto avoids here
        fft = np.abs(convolve.conv2d(image, k, padding=8, algorithm="fft") - exact) / scale
        assert fft.max() > 1e-4


def test_fft_dtype_follows_the_dynamic_range():
    w = np.ones((17, 17, 1, 1))
    low = np.random.default_rng(3).random((1, 64, 64, 1))
    high = low.copy()
    high[0, :2, :2] = 1e4
    assert fidelity.fft_dtype(low.astype(np.float32), w) == np.float32
    assert fidelity.fft_dtype(high.astype(np.float32), w) == np.float64
    assert fidelity.fft_dtype(low, w) == np.float64
    assert fidelity.fft_dtype(high, w) is None
    low[0, 0, 0] = np.nan
    assert fidelity.fft_dtype(low, w) is None
    assert fidelity.fft_dtype(high, np.full((17, 17, 1, 1), np.inf)) is None


def test_all_finite_is_one_sum_per_array():
    assert fidelity.all_finite(np.ones(3), np.zeros(2))
    assert not fidelity.all_finite(np.array([1.0, np.inf, -np.inf]))
    assert not fidelity.all_finite(np.ones(3), np.array([np.nan]))
