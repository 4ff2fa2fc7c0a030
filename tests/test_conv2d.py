"""conv2d against the float64 loop reference, for every algorithm and setting."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
from convolve import Tensor
from tests import reference
from tests.strategies import ALGORITHM_LIMITS, conv_cases

ALGORITHMS = list(ALGORITHM_LIMITS)


def test_seed_example():
    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3), dtype=np.float32)
    filters = rng.standard_normal((5, 5, 3, 6)).astype(np.float32)
    y = convolve.conv2d(image, filters, stride=1, padding="same")
    y = np.maximum(y, 0)
    assert y.shape == (32, 32, 6)
    assert y.dtype == np.float32
    expected = np.maximum(reference.conv2d(image[None], filters, padding="same")[0], 0)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_forward_matches_reference_float64(algorithm, data):
    case = data.draw(conv_cases(**ALGORITHM_LIMITS[algorithm]))
    y = convolve.conv2d(case.x, case.w, case.b, algorithm=algorithm, **case.kwargs)
    expected = reference.conv2d(case.x, case.w, case.b, **case.kwargs)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_forward_float32_stays_float32(algorithm, data):
    case = data.draw(conv_cases(dtype=np.float32, **ALGORITHM_LIMITS[algorithm]))
    y = convolve.conv2d(case.x, case.w, case.b, algorithm=algorithm, **case.kwargs)
    assert y.dtype == np.float32
    expected = reference.conv2d(case.x, case.w, case.b, **case.kwargs)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS if a not in ("auto", "gemm")])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_algorithms_agree_on_gradients(algorithm, data):
    """Every method's backward gives the same dx, dw, db as gemm's."""
    case = data.draw(conv_cases(**ALGORITHM_LIMITS[algorithm]))
    results = []
    for name in ("gemm", algorithm):
        x, w = Tensor(case.x, requires_grad=True), Tensor(case.w, requires_grad=True)
        b = None if case.b is None else Tensor(case.b, requires_grad=True)
        y = convolve.conv2d(x, w, b, algorithm=name, **case.kwargs)
        y.backward(np.random.default_rng(1).standard_normal(y.shape))
        results.append([t.grad for t in (x, w, b) if t is not None])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_unbatched_gives_unbatched():
    x = np.ones((5, 6, 2))
    w = np.ones((3, 3, 2, 4))
    assert convolve.conv2d(x, w).shape == (3, 4, 4)
    assert convolve.conv2d(x[None], w).shape == (1, 3, 4, 4)


def test_mixed_dtypes_promote_as_numpy():
    x = np.ones((1, 4, 4, 1), np.float32)
    w = np.ones((2, 2, 1, 1), np.float64)
    assert convolve.conv2d(x, w).dtype == np.float64


def test_arrays_in_array_out_tensor_in_tensor_out():
    x = np.ones((1, 4, 4, 1))
    w = np.ones((2, 2, 1, 1))
    assert type(convolve.conv2d(x, w)) is np.ndarray
    assert isinstance(convolve.conv2d(Tensor(x), w), Tensor)
    assert isinstance(convolve.conv2d(x, Tensor(w)), Tensor)


def test_large_chunked_input_matches_reference(monkeypatch):
    """Row-block chunking (one image larger than the workspace) gives exact results: with
    64 KB patch matrices gemm's forward runs one output row per chunk."""
    from convolve import runtime
    from convolve.ops.algorithms import gemm

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 200, 180, 8))
    w = rng.standard_normal((3, 3, 8, 4))
    monkeypatch.setattr(gemm, "CHUNK_BYTES", 1 << 16)
    monkeypatch.setattr(gemm, "CHUNK_PIXELS", 64)
    chunk_lists, run_chunks = [], runtime.run_chunks
    monkeypatch.setattr(runtime, "run_chunks",
                        lambda run, chunks: chunk_lists.append(chunks) or run_chunks(run, chunks))
    y = convolve.conv2d(x, w, padding="same", algorithm="gemm", stride=(2, 1))
    assert chunk_lists == [[(n, n + 1, h, h + 1) for n in range(2) for h in range(100)]]
    expected = convolve.conv2d(x, w, padding="same", algorithm="direct", stride=(2, 1))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
