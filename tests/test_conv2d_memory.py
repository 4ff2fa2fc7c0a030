"""conv2d's temporary memory stays within a few times its output (numpy reports to
tracemalloc)."""

import tracemalloc

import numpy as np
import pytest

import convolve
from convolve.ops.algorithms.select import METHODS


@pytest.mark.parametrize("algorithm", sorted(METHODS))
def test_forward_workspace_within_four_outputs(algorithm):
    x = np.ones((32, 64, 64, 32), np.float32)
    w = np.ones((3, 3, 32, 32), np.float32)
    try:
        convolve.conv2d(x[:1, :8, :8], w, padding="same", algorithm=algorithm)
    except ValueError:
        pytest.skip(f"{algorithm} does not do this shape")
    tracemalloc.start()
    try:
        y = convolve.conv2d(x, w, padding="same", algorithm=algorithm)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    extra = peak - y.nbytes
    assert extra <= 4 * y.nbytes, f"{algorithm}: {extra / y.nbytes:.2f}x the output"
