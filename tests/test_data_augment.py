"""random_crop, random_flip and Augment against per-image loop references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convolve import data


def batch(n=16, h=6, w=5, c=3, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random((n, h, w, c)).astype(dtype)


def crop_reference(image, padding, top, left):
    """One image, zero-padded, then the window starting at (top, left), by loops."""
    h, w, _ = image.shape
    out = np.zeros_like(image)
    for i in range(h):
        for j in range(w):
            r, q = top + i - padding, left + j - padding
            if 0 <= r < h and 0 <= q < w:
                out[i, j] = image[r, q]
    return out


@settings(max_examples=25, deadline=None)
@given(padding=st.integers(0, 4), seed=st.integers(0, 1000), n=st.integers(1, 8),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_crop_is_a_window_of_the_padded_image(padding, seed, n, dtype):
    x = batch(n=n, dtype=dtype)
    out = data.random_crop(x, padding, rng=seed)
    assert out.shape == x.shape and out.dtype == x.dtype
    for k in range(n):
        matches = [(t, q) for t in range(2 * padding + 1) for q in range(2 * padding + 1)
                   if np.array_equal(out[k], crop_reference(x[k], padding, t, q))]
        assert matches, f"image {k} is no window of its padded original"


def test_crop_offsets_are_uniform_over_the_range():
    x = np.zeros((4000, 1, 1, 1), np.float32)
    x[:] = 1  # a 1x1 image: the crop keeps it (offset = padding) or takes a zero
    kept = data.random_crop(x, 1, rng=0)[:, 0, 0, 0].mean()
    # keep probability: the centre offset on both axes = 1/3 * 1/3
    assert abs(kept - 1 / 9) < 0.02


def test_crop_without_padding_is_a_copy():
    x = batch()
    out = data.random_crop(x, 0, rng=0)
    np.testing.assert_array_equal(out, x)
    assert not np.shares_memory(out, x)


def test_flip_is_a_flip():
    x = batch(n=200)
    np.testing.assert_array_equal(data.random_flip(x, p=1.0, rng=0), x[:, :, ::-1])
    np.testing.assert_array_equal(data.random_flip(x, p=0.0, rng=0), x)
    out = data.random_flip(x, rng=0)
    flipped = [np.array_equal(out[k], x[k, :, ::-1]) for k in range(len(x))]
    kept = [np.array_equal(out[k], x[k]) for k in range(len(x))]
    assert all(f != k for f, k in zip(flipped, kept))  # each image: one or the other
    assert 70 < sum(flipped) < 130
    np.testing.assert_array_equal(out[:, :, ::-1][flipped], x[flipped])


def test_determinism_and_inputs_untouched():
    x = batch()
    before = x.copy()
    for fn in (lambda rng: data.random_crop(x, 2, rng=rng),
               lambda rng: data.random_flip(x, rng=rng),
               lambda rng: data.Augment()(x, rng=rng)):
        np.testing.assert_array_equal(fn(7), fn(7))
        np.testing.assert_array_equal(fn(np.random.default_rng(7)), fn(7))
        assert not np.array_equal(fn(7), fn(8))
    np.testing.assert_array_equal(x, before)


def test_augment_is_crop_then_flip():
    x = batch(n=10, h=8, w=8)
    rng = np.random.default_rng(5)
    expected = data.random_flip(data.random_crop(x, 4, rng=rng), rng=rng)
    np.testing.assert_array_equal(data.Augment()(x, rng=5), expected)
    np.testing.assert_array_equal(data.Augment(padding=0, flip_p=1.0)(x, rng=0), x[:, :, ::-1])


def test_errors():
    with pytest.raises(ValueError, match=r"^images must be 4-D \(N, H, W, C\); received an "
                                         r"array of shape \(6, 5, 3\)$"):
        data.random_crop(batch()[0], 2)
    with pytest.raises(ValueError, match=r"^padding must be >= 0; received -1$"):
        data.random_crop(batch(), -1)
    with pytest.raises(ValueError, match=r"^p must be a number in \[0, 1\]; "
                                         r"received 1\.5$"):
        data.random_flip(batch(), p=1.5)
    with pytest.raises(TypeError, match=r"^rng must be None, an int seed or a "
                                        r"numpy.random.Generator; received 'x'$"):
        data.random_crop(batch(), 2, rng="x")
    with pytest.raises(ValueError, match=r"^flip_p must be a number in \[0, 1\]; "
                                         r"received 2$"):
        data.Augment(flip_p=2)
    with pytest.raises(TypeError, match=r"^padding must be an int; received 1\.5$"):
        data.Augment(padding=1.5)
