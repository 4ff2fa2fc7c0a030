"""The wide views behind per-channel sums and broadcasts."""

import numpy as np
import pytest

from convolve.ops.channels import WIDE, channel_sum, fold, tile, widen


@pytest.mark.parametrize("shape", [(64, 26, 26, 32), (7, 13, 3), (1, 1, 1, 600), (97, 5),
                                   (2, 0, 3, 4), (3, 2, 0)])
def test_wide_views_give_per_channel_sums_and_broadcasts(shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape)
    v = rng.standard_normal(shape[-1])
    wide, r = widen(a)
    assert np.shares_memory(wide, a) or a.size == 0
    assert wide.shape[1] == r * shape[-1]
    assert r == 1 or wide.shape[1] <= WIDE + shape[-1]
    expected = a.sum(axis=tuple(range(a.ndim - 1)))
    np.testing.assert_allclose(fold(wide.sum(axis=0), r), expected, atol=1e-9)
    np.testing.assert_allclose(channel_sum(a), expected, atol=1e-9)
    np.testing.assert_array_equal((wide + tile(v, r)).reshape(shape), a + v)


def test_rows_that_do_not_divide_stay_narrow():
    wide, r = widen(np.zeros((1009, 5)))  # 1009 is prime
    assert (r, wide.shape) == (1, (1009, 5))
