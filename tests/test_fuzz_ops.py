"""Every public op against PyTorch by the seeded differential fuzzer (tests/fuzz_torch.py),
each bounded to a few seconds: conv2d per algorithm, conv_transpose2d, the pools, the
global pools and batch_norm, forward and every gradient; with ``edges`` also inf, NaN and
+-1e4 in the input, whose non-finite outputs must sit where PyTorch's do (auto's rule;
the named Winograd, FFT, shift-GEMM and direct, whose depthwise shapes run the depthwise
engine, spread them, as documented, and are fuzzed on finite inputs only)."""

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch is not installed: fuzzing against it skipped")

from convolve.ops.algorithms.select import METHODS
from tests import fuzz_torch

SEED = 14


def _fuzz(op, seconds, **kwargs):
    checked = fuzz_torch.fuzz(op, examples=10**5, seconds=seconds, seed_value=SEED, **kwargs)
    assert checked >= 3, f"{op}: only {checked} cases in {seconds} s"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("algorithm", ["auto", *METHODS])
def test_conv2d(algorithm):
    _fuzz("conv2d", 5, algorithm=algorithm)


@pytest.mark.parametrize("algorithm", ["auto", "winograd", "fft"])
def test_conv2d_float32(algorithm):
    _fuzz("conv2d", 3, algorithm=algorithm, dtype=np.float32)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("algorithm", ["auto", "gemm"])
def test_conv2d_non_finite(algorithm):
    _fuzz("conv2d", 5, algorithm=algorithm, edges=True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("op", ["conv_transpose2d", "max_pool2d", "avg_pool2d",
                                "global_max_pool2d", "global_avg_pool2d", "batch_norm"])
@pytest.mark.parametrize("edges", [False, True], ids=["finite", "non-finite"])
def test_op(op, edges):
    _fuzz(op, 3 if edges else 4, edges=edges)
