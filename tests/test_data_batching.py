"""DataLoader / batches: coverage, determinism by (seed, epoch), drop_last, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convolve import data


def arrays(n=23):
    images = np.arange(n * 2 * 2, dtype=np.float32).reshape(n, 2, 2, 1)
    return images, np.arange(n)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), shuffle=st.booleans(),
       drop_last=st.booleans(), seed=st.integers(0, 2**32))
def test_every_sample_once_per_epoch(n, batch_size, shuffle, drop_last, seed):
    images, labels = arrays(n)
    loader = data.DataLoader(images, labels, batch_size, shuffle=shuffle, seed=seed,
                             drop_last=drop_last)
    for epoch in range(2):
        out = list(loader)
        assert len(out) == len(loader)
        sizes = [len(y) for _, y in out]
        assert all(s == batch_size for s in sizes[:-1])
        seen = np.concatenate([y for _, y in out]) if out else np.zeros(0, int)
        if drop_last:
            assert len(out) == n // batch_size and all(s == batch_size for s in sizes)
            assert len(np.unique(seen)) == len(seen) == (n // batch_size) * batch_size
        else:
            assert sorted(seen.tolist()) == list(range(n))
        np.testing.assert_array_equal(loader.order(epoch)[: len(seen)], seen)
        for x, y in out:  # images travel with their labels
            np.testing.assert_array_equal(x, images[y])
        if not shuffle:
            assert seen.tolist() == list(range(len(seen)))


def test_len():
    images, labels = arrays(23)
    assert len(data.DataLoader(images, labels, 5)) == 5
    assert len(data.DataLoader(images, labels, 5, drop_last=True)) == 4
    assert len(data.DataLoader(images, labels, 30, drop_last=True)) == 0
    assert len(data.DataLoader(images, labels, 23, drop_last=True)) == 1


def order(loader):
    return np.concatenate([y for _, y in loader]).tolist()


def test_determinism_by_seed_and_epoch():
    images, labels = arrays(50)
    a = data.DataLoader(images, labels, 7, seed=3)
    b = data.DataLoader(images, labels, 7, seed=3)
    first, second = order(a), order(a)
    assert first != second  # a new order every pass
    assert [order(b), order(b)] == [first, second]
    assert order(data.DataLoader(images, labels, 7, seed=4)) != first
    assert a.epoch == 2
    resumed = data.DataLoader(images, labels, 7, seed=3)
    resumed.epoch = 1  # resume after one pass
    assert order(resumed) == second
    # the batch size does not change which order a (seed, epoch) gives
    assert order(data.DataLoader(images, labels, 50, seed=3)) == first
    assert order(data.batches(images, labels, 7, seed=3)) == first


def test_seed_none_is_random_but_recorded():
    images, labels = arrays(50)
    a, b = (data.DataLoader(images, labels, 50) for _ in range(2))
    assert a.seed != b.seed
    again = data.DataLoader(images, labels, 50, seed=a.seed)
    assert order(a) == order(again)


def test_no_shuffle_yields_views_in_order():
    images, labels = arrays(10)
    (x, y), *_ = data.batches(images, labels, 4, shuffle=False)
    assert np.shares_memory(x, images) and y.tolist() == [0, 1, 2, 3]


def test_augment_is_seeded_and_leaves_the_order_alone():
    images, labels = arrays(30)
    calls = []

    def augment(x, *, rng):
        calls.append(len(x))
        return x + rng.random(len(x))[:, None, None, None].astype(np.float32)

    plain = data.DataLoader(images, labels, 8, seed=1)
    augmented = data.DataLoader(images, labels, 8, seed=1, augment=augment)
    again = data.DataLoader(images, labels, 8, seed=1, augment=augment)
    out, out_again = list(augmented), list(again)
    assert calls == [8, 8, 8, 6] * 2
    assert order(plain) == np.concatenate([y for _, y in out]).tolist()
    for (x, y), (x2, _) in zip(out, out_again):
        np.testing.assert_array_equal(x, x2)
        assert not np.array_equal(x, images[y])


def test_works_with_the_cifar_augmentation():
    images = np.random.default_rng(0).random((20, 8, 8, 3), dtype=np.float32)
    loader = data.DataLoader(images, np.arange(20), 6, seed=0, augment=data.Augment(padding=2))
    shapes = [x.shape for x, _ in loader]
    assert shapes == [(6, 8, 8, 3)] * 3 + [(2, 8, 8, 3)]


def test_errors():
    images, labels = arrays(5)
    with pytest.raises(ValueError, match=(
        r"^images and labels must hold the same number of samples along axis 0; received "
        r"images ndarray of shape \(5, 2, 2, 1\) and dtype float32 and labels ndarray of "
        r"shape \(4,\) and dtype int64$"
    )):
        data.DataLoader(images, labels[:4], 2)
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1; received 0$"):
        data.DataLoader(images, labels, 0)
    with pytest.raises(TypeError, match=r"^batch_size must be an int; received 2\.0$"):
        data.batches(images, labels, 2.0)
    with pytest.raises(ValueError, match=r"^seed must be >= 0; received -1$"):
        data.DataLoader(images, labels, 2, seed=-1)
    with pytest.raises(TypeError, match=r"^seed must be an int; received 'x'$"):
        data.DataLoader(images, labels, 2, seed="x")
    with pytest.raises(TypeError, match=r"^augment must be callable or None; received 'flip'$"):
        data.DataLoader(images, labels, 2, augment="flip")
