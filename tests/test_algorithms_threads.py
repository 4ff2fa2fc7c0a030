"""The threading helpers of the conv algorithms: every item once, BLAS threads restored."""

import threading

import pytest

from convolve import runtime


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_parallel_and_run_chunks_cover_every_item_once(threads, monkeypatch):
    monkeypatch.setattr(runtime, "THREADS", threads)
    for helper in (runtime.parallel, runtime.run_chunks):
        seen, lock = [], threading.Lock()

        def run(part, seen=seen, lock=lock):
            with lock:
                seen.extend(part)

        helper(run, list(range(7)))
        assert sorted(seen) == list(range(7))


def test_single_threaded_blas_restores_the_thread_count(monkeypatch):
    get, _ = _blas_or_skip(monkeypatch)
    before = get()
    with runtime.single_threaded_blas():
        assert get() == 1
    assert get() == before


def _blas_or_skip(monkeypatch):
    monkeypatch.setattr(runtime, "THREADS", 2)
    found = runtime._blas()
    if found is None:
        pytest.skip("NumPy's BLAS is not a bundled OpenBLAS")
    return found.get, found.set


def test_overlapping_blocks_on_two_threads_restore_the_outer_count(monkeypatch):
    """A block that opens while another thread's is open, and closes after it, must not
    restore the 1 it found: the last block to close restores the count from before."""
    get, _ = _blas_or_skip(monkeypatch)
    before = get()
    first_open, second_open, first_closed = (threading.Event() for _ in range(3))
    inside = []

    def first():
        with runtime.single_threaded_blas():
            first_open.set()
            second_open.wait(5)
        first_closed.set()

    def second():
        first_open.wait(5)
        with runtime.single_threaded_blas():
            second_open.set()
            first_closed.wait(5)
            inside.append(get())

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside == [1]  # still single-threaded after the first block closed
    assert get() == before


def test_one_chunk_keeps_the_callers_blas_thread_count(monkeypatch):
    """run_chunks with one chunk inside a block gives BLAS the count the caller had
    before the block, never more, and sets 1 again after."""
    get, put = _blas_or_skip(monkeypatch)
    before = get()
    seen = []
    try:
        put(1)  # a caller limiting BLAS to one thread (e.g. threadpoolctl)
        with runtime.single_threaded_blas():
            runtime.run_chunks(lambda part: seen.append(get()), [0])
            assert get() == 1
        assert seen == [1]
    finally:
        put(before)
