"""filters.apply on Dask arrays: lazy, the input's chunks, the in-memory values for every
boundary mode and chunking (chunks thinner than the kernel's reach, uneven last chunks)."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convolve import filters
from tests.strategies import MODES

da = pytest.importorskip("dask.array", reason="Dask is not installed (extra 'dask')")

TOLERANCE = {np.float64: 1e-12, np.float32: 2e-5}


@st.composite
def chunkings(draw, size: int) -> tuple[int, ...]:
    """Any chunking of an axis of ``size``: random cuts, so thin and uneven chunks too."""
    if size == 1:
        return (1,)
    cuts = sorted(draw(st.sets(st.integers(1, size - 1), max_size=min(size - 1, 6))))
    edges = [0, *cuts, size]
    return tuple(np.diff(edges).tolist())


@st.composite
def filter_cases(draw):
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    channels = draw(st.sampled_from([None, 1, 3]))
    mode = draw(st.sampled_from(MODES))
    if draw(st.booleans()):
        kernel = draw(st.sampled_from(filters.NAMES))
        reach = filters.kernels_of(kernel)[0].shape
    else:
        reach = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
        kernel = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(reach)
    limit = {"reflect": -1, "circular": 0, "symmetric": 0}.get(mode)
    assume(limit is None or max(reach[0] // 2, reach[1] // 2) <= min(h, w) + limit)
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    shape = (h, w) if channels is None else (h, w, channels)
    chunks = (draw(chunkings(h)), draw(chunkings(w)))
    if channels is not None:
        chunks += (draw(chunkings(channels)),)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return rng.standard_normal(shape).astype(dtype), chunks, kernel, mode


@settings(max_examples=60, deadline=None)
@given(filter_cases())
def test_equals_the_in_memory_filter(case):
    image, chunks, kernel, mode = case
    lazy = filters.apply(da.from_array(image, chunks=chunks), kernel, mode=mode)
    assert isinstance(lazy, da.Array)
    expected_chunks = chunks if image.ndim == 2 else (*chunks[:2], (image.shape[2],))
    assert lazy.chunks == expected_chunks
    assert lazy.dtype == image.dtype
    result = lazy.compute(scheduler="threads")
    reference = filters.apply(image, kernel, mode=mode)
    assert result.dtype == reference.dtype and result.shape == reference.shape
    np.testing.assert_allclose(result, reference, rtol=0, atol=TOLERANCE[image.dtype.type])


def test_a_big_kernel_on_one_pixel_wide_chunks():
    image = np.random.default_rng(1).standard_normal((30, 33))
    lazy = filters.apply(da.from_array(image, chunks=1), np.ones((15, 15)), mode="symmetric")
    assert lazy.chunks == ((1,) * 30, (1,) * 33)
    np.testing.assert_allclose(lazy.compute(), filters.apply(image, np.ones((15, 15)),
                                                             mode="symmetric"), atol=1e-12)


def test_nothing_is_computed_until_asked():
    calls = []

    def source(block):
        calls.append(block.shape)
        return block

    image = da.ones((64, 64), chunks=16).map_blocks(source, dtype=np.float64)
    lazy = filters.apply(image, "gaussian_blur")
    assert calls == [] or all(0 in shape for shape in calls)  # only Dask's meta probes
    assert lazy.compute().shape == (64, 64)


def test_integer_dask_image_is_refused():
    with pytest.raises(TypeError, match=r"image must be a floating-point array \(float32 or "
                                        r"float64\); received Array of shape \(4, 4\) and "
                                        r"dtype uint8"):
        filters.apply(da.zeros((4, 4), dtype=np.uint8), "sharpen")


def test_wrong_rank_is_refused():
    with pytest.raises(ValueError, match="image must be"):
        filters.apply(da.zeros((2, 4, 4, 1)), "sharpen")


def test_padding_wider_than_the_image_is_refused_as_in_memory():
    with pytest.raises(ValueError) as in_memory:
        filters.apply(np.zeros((3, 3)), np.ones((9, 9)), mode="reflect")
    with pytest.raises(ValueError) as lazy:
        filters.apply(da.zeros((3, 3)), np.ones((9, 9)), mode="reflect")
    assert str(lazy.value) == str(in_memory.value)


@settings(max_examples=40, deadline=None)
@given(filter_cases(), st.integers(1, 24), st.booleans())
def test_source_read_chunk_by_chunk_equals_the_in_memory_filter(case, chunk, as_uint8):
    """chunked.apply_source: each chunk reads its own halo (the boundary where it leaves
    the image) from an array-like source; uint8 is scaled to [0, 1] first."""
    from convolve import chunked

    image, _, kernel, mode = case
    if as_uint8:
        image = np.round((image - image.min()) * 40).clip(0, 255).astype(np.uint8)
        unit = image.astype(np.float32) / np.float32(255)
    else:
        unit = image
    lazy = chunked.apply_source(image, kernel, mode=mode, chunk=chunk)
    assert lazy.dtype == unit.dtype
    assert all(c == chunk for axis in lazy.chunks[:2] for c in axis[:-1])
    np.testing.assert_allclose(lazy.compute(scheduler="threads"),
                               filters.apply(unit, kernel, mode=mode), rtol=0,
                               atol=TOLERANCE[unit.dtype.type])


def test_source_of_an_unsupported_dtype_is_refused():
    from convolve import chunked

    with pytest.raises(TypeError, match=r"slide.tif has pixels of dtype int16; supported: "
                                        r"uint8, uint16 \(scaled to \[0, 1\]\), float32 and "
                                        r"float64"):
        chunked.apply_source(np.zeros((4, 4), np.int16), "sharpen", name="slide.tif")
