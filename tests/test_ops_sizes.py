"""Absurd sizes in the ops fail fast (issue 14): an output or padded input that cannot fit
is refused before anything is allocated, saying how many bytes it needs; a stride larger
than the input leaves one window, as it says; transposed convolution with a large stride
costs the output's size, not one array per stride phase."""

import numpy as np
import pytest

import convolve
from convolve import Tensor, _args
from convolve.ops.algorithms.select import METHODS

ALGORITHMS = ["auto", *METHODS]
X = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
W = np.arange(9, dtype=np.float32).reshape(3, 3, 1, 1)


@pytest.fixture
def sixteen_gib(monkeypatch):
    monkeypatch.setattr(_args, "memory_budget", lambda: 16 * 2**30)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_huge_padding_is_refused_with_the_bytes_it_needs(algorithm, sixteen_gib):
    with pytest.raises(ValueError, match=r"^conv2d's output of shape \(1, 200002, 200002, 1\) "
                                         r"\(float32\) would need 160,003,200,016 bytes "
                                         r"\(149\.0 GiB\), more than this machine's memory"):
        convolve.conv2d(X, W, padding=10**5, algorithm=algorithm)


def test_a_huge_padded_input_is_refused_too(sixteen_gib):
    with pytest.raises(ValueError, match=r"^conv2d's padded input of shape "
                                         r"\(1, 200004, 200004, 1\) \(float32\) would need "):
        convolve.conv2d(X, W, padding=10**5, stride=10**5)


@pytest.mark.parametrize("stride", [10**6, 2**70])
def test_transposed_outputs_that_cannot_fit_are_refused(stride, sixteen_gib):
    with pytest.raises(ValueError, match=r"^conv_transpose2d's output of shape \(1, \d+, \d+, "
                                         r"1\) \(float32\) would need [\d,]+ bytes"):
        convolve.conv_transpose2d(X, W, stride=stride)


@pytest.mark.parametrize("algorithm", ["auto", "gemm", "shift_gemm", "fft", "direct"])
def test_a_stride_beyond_the_input_leaves_one_window(algorithm):
    expected = convolve.conv2d(X[:, :3, :3], W, algorithm="direct")
    for stride in (4, 10**9, 2**70):
        if algorithm == "shift_gemm":
            with pytest.raises(ValueError, match=r"needs stride 1; received stride "
                                                 rf"\({stride}, {stride}\)"):
                convolve.conv2d(X, W, stride=stride, algorithm=algorithm)
            continue
        y = convolve.conv2d(X, W, stride=stride, algorithm=algorithm)
        np.testing.assert_allclose(y, expected, rtol=1e-6)
    y = convolve.conv_transpose2d(X[:, :1, :1], W, stride=2**70)
    np.testing.assert_array_equal(y, convolve.conv_transpose2d(X[:, :1, :1], W))


@pytest.mark.parametrize("algorithm", ["auto", "gemm", "direct"])
def test_a_large_stride_transposed_convolution_equals_pytorch(algorithm):
    torch_ref = pytest.importorskip("tests.torch_ref")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 3, 4))
    w = rng.standard_normal((3, 3, 5, 4))
    b = rng.standard_normal(5)
    xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
    y = convolve.conv_transpose2d(xt, wt, bt, stride=(1000, 700), algorithm=algorithm)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    expected, grads = torch_ref.conv_transpose2d_with_grads(
        x, w, b, g, pads=((0, 0), (0, 0)), output_padding=(0, 0), stride=(1000, 700),
        dilation=(1, 1), groups=1)
    torch_ref.assert_output_and_grads(y, (xt, wt, bt), expected, grads, np.float64, 1e-9)
