"""convolve.predict on Dask arrays: lazy, one task per batch chunk, the in-memory outputs,
the model sent to each worker of a real LocalCluster once."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
from convolve import nn

da = pytest.importorskip("dask.array", reason="Dask is not installed (extra 'dask')")

UNPICKLED = [0]  # per process: how many times a CountingModel was unpickled there


class CountingModel(nn.Sequential):
    """A Sequential that counts its unpickling in each process (a worker's copy of it)."""

    def __setstate__(self, state):
        UNPICKLED[0] += 1
        self.__dict__.update(state)


def unpickled_here():
    """Run on a worker by reference (a lambda would carry the caller's count by value)."""
    return UNPICKLED[0]


def small_net(dtype=np.float64, *, head=True):
    layers = [nn.Conv2D(4, 3, padding="same", activation="relu", dtype=dtype, seed=0),
              nn.BatchNorm2D(dtype=dtype), nn.MaxPool2D(2),
              nn.Conv2D(5, 3, activation="tanh", dtype=dtype, seed=1)]
    if head:
        layers += [nn.Flatten(), nn.Dense(3, dtype=dtype, seed=2)]
    return CountingModel(layers)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 23), cuts=st.sets(st.integers(1, 22), max_size=4),
       batch_size=st.integers(1, 9), head=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_equals_the_in_memory_predict(n, cuts, batch_size, head, dtype):
    model = small_net(dtype, head=head)
    images = np.random.default_rng(n).random((n, 10, 12, 2)).astype(dtype)
    edges = [0, *sorted(c for c in cuts if c < n), n]
    chunks = tuple(np.diff(edges).tolist())
    reference = convolve.predict(model, images, batch_size=7)
    lazy = convolve.predict(model, da.from_array(images, chunks=(chunks, 5, 6, 1)),
                            batch_size=batch_size)
    assert isinstance(lazy, da.Array)
    assert lazy.shape == reference.shape and lazy.dtype == reference.dtype
    assert lazy.chunks[0] == chunks
    result = lazy.compute(scheduler="threads")
    np.testing.assert_allclose(result, reference, rtol=0,
                               atol=1e-12 if dtype == np.float64 else 2e-5)


def test_one_task_per_batch_chunk_sharing_one_model():
    images = da.zeros((20, 10, 12, 2), chunks=(6, 10, 12, 2))
    lazy = convolve.predict(small_net(), images)
    graph = dict(lazy.__dask_graph__())
    models = [key for key in graph if "convolve-model" in str(key)]
    predictions = [key for key in graph if "_predict_block" in str(key)]
    assert len(models) == 1 and len(predictions) == 4


def test_the_caller_model_keeps_its_mode():
    model = small_net()
    model.train()
    convolve.predict(model, da.zeros((4, 10, 12, 2), chunks=2)).compute()
    assert model.training


def test_numpy_images_are_refused_by_the_dask_path():
    from convolve import chunked

    with pytest.raises(TypeError, match=r"images must be a Dask array; received ndarray of "
                                        r"shape \(2, 3\)"):
        chunked.predict(small_net(), np.zeros((2, 3)))


def test_an_empty_batch_is_refused():
    with pytest.raises(ValueError, match=r"images must be a batch \(N, \.\.\.\) with N >= 1; "
                                         r"received an array of shape \(0, 10, 12, 2\)"):
        convolve.predict(small_net(), da.zeros((0, 10, 12, 2)))


def test_on_a_local_cluster_each_worker_unpickles_the_model_once():
    distributed = pytest.importorskip("distributed")
    model = small_net(np.float32)
    images = np.random.default_rng(0).random((48, 10, 12, 2)).astype(np.float32)
    reference = convolve.predict(model, images)
    lazy = convolve.predict(model, da.from_array(images, chunks=(4, 10, 12, 2)),
                            batch_size=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = lazy.compute()
        counts = client.run(unpickled_here)
    np.testing.assert_allclose(result, reference, rtol=0, atol=2e-5)
    assert len(counts) == 2 and all(c <= 1 for c in counts.values()), counts
    assert sum(counts.values()) >= 1


def test_images_the_model_cannot_take_are_refused_before_anything_runs():
    from convolve import models

    with pytest.raises(ValueError, match=r"images must be \(N, 32, 32, 3\) for this model, "
                                         r"the shape it was trained on; received an array of "
                                         r"shape \(1, 28, 28, 3\) .*; tried on one image "
                                         r"like those of the Dask array of shape "
                                         r"\(8, 28, 28, 3\)"):
        convolve.predict(models.lenet5(seed=0), da.zeros((8, 28, 28, 3), chunks=4))
