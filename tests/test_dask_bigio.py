"""convolve.bigio: TIFF and Zarr images read region by region (through the tile cache or
not), and Dask arrays written to Zarr and tiled BigTIFF."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convolve import filters

tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (extra 'dask')")
zarr = pytest.importorskip("zarr", reason="zarr is not installed (extra 'dask')")
da = pytest.importorskip("dask.array", reason="Dask is not installed (extra 'dask')")

from convolve import bigio, chunked  # noqa: E402

IMAGE = np.random.default_rng(0).random((100, 130, 3)).astype(np.float32)
TILE = 32


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    tifffile.imwrite(folder / "tiled.tif", IMAGE, tile=(TILE, TILE), compression="zlib",
                     photometric="rgb")
    tifffile.imwrite(folder / "contiguous.tif", IMAGE[..., 0])
    array = zarr.create_array(store=str(folder / "image.zarr"), shape=IMAGE.shape,
                              chunks=(TILE, 48, 3), dtype=np.float32)
    array[:] = IMAGE
    return folder


@settings(max_examples=40, deadline=None)
@given(r0=st.integers(0, 99), c0=st.integers(0, 129), h=st.integers(1, 80),
       w=st.integers(1, 80), cache_tiles=st.sampled_from([0, 1, 3, 50]),
       name=st.sampled_from(["tiled.tif", "image.zarr", "contiguous.tif"]))
def test_regions_equal_the_image(files, r0, c0, h, w, cache_tiles, name):
    source = bigio.open_source(files / name, cache_bytes=cache_tiles * TILE * 48 * 3 * 4)
    expected = IMAGE if name != "contiguous.tif" else IMAGE[..., 0]
    assert source.shape == expected.shape and source.dtype == np.float32
    region = np.s_[r0:r0 + h, c0:c0 + w]
    np.testing.assert_array_equal(source[region], expected[region])


@pytest.mark.parametrize("chunk", [20, 45, 200])
@pytest.mark.parametrize("name", ["tiled.tif", "image.zarr"])
def test_filtered_through_the_tile_cache_on_threads(files, chunk, name):
    source = bigio.open_source(files / name, cache_bytes=4 * TILE * TILE * 3 * 4)
    lazy = chunked.apply_source(source, "gaussian_blur", mode="symmetric", chunk=chunk)
    np.testing.assert_allclose(lazy.compute(scheduler="threads", num_workers=4),
                               filters.apply(IMAGE, "gaussian_blur", mode="symmetric"),
                               rtol=0, atol=2e-5)


@pytest.mark.parametrize("suffix", [".zarr", ".tif"])
def test_save_writes_every_chunk_and_only_the_final_name(tmp_path, suffix):
    image = da.from_array(IMAGE, chunks=(48, 64, 3))
    path = bigio.save(image, tmp_path / f"out{suffix}")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    if suffix == ".zarr":
        written = zarr.open_array(path, mode="r")
        assert written.chunks == (48, 64, 3)
        np.testing.assert_array_equal(written[:], IMAGE)
    else:
        with tifffile.TiffFile(path) as tif:
            assert tif.is_bigtiff and tif.pages[0].tilewidth == 16
            np.testing.assert_array_equal(tif.asarray(), IMAGE)


def test_save_refuses_what_it_cannot_write(tmp_path):
    image = da.zeros((40, 40), chunks=20)
    with pytest.raises(ValueError, match=r"cannot write .*out.png chunk by chunk: the suffix "
                                         r"must be one of .tif, .tiff, .zarr"):
        bigio.save(image, tmp_path / "out.png")
    with pytest.raises(ValueError, match=r"writing TIFF tiles needs chunks of a multiple of "
                                         r"16 pixels; received chunks of 20 x 20"):
        bigio.save(image, tmp_path / "out.tif")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "out.zarr").mkdir()
    with pytest.raises(FileExistsError, match="output exists"):
        bigio.save(image, tmp_path / "out.zarr")
