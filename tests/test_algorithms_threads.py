"""The threading helpers of the conv algorithms: every item once, BLAS threads restored."""

import threading

import pytest

from convolve.ops.algorithms import _common


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_parallel_and_run_chunks_cover_every_item_once(threads, monkeypatch):
    monkeypatch.setattr(_common, "THREADS", threads)
    for helper in (_common.parallel, _common.run_chunks):
        seen, lock = [], threading.Lock()

        def run(part, seen=seen, lock=lock):
            with lock:
                seen.extend(part)

        helper(run, list(range(7)))
        assert sorted(seen) == list(range(7))


def test_single_threaded_blas_restores_the_thread_count(monkeypatch):
    monkeypatch.setattr(_common, "THREADS", 2)
    found = _common._find_openblas()
    if not found:
        pytest.skip("NumPy's BLAS is not a bundled OpenBLAS")
    get, _ = found
    before = get()
    with _common.single_threaded_blas():
        assert get() == 1
    assert get() == before
