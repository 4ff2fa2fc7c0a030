"""``convolve filter`` on Dask: an image larger than the memory it may use, streamed from
TIFF to Zarr and to TIFF (values, peak memory), the same bytes on a LocalCluster of two
processes, collections of files, and bad input."""

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from convolve import filters
from convolve.cli import main

tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed (extra 'dask')")
zarr = pytest.importorskip("zarr", reason="zarr is not installed (extra 'dask')")
pytest.importorskip("dask.array", reason="Dask is not installed (extra 'dask')")
pytest.importorskip("distributed", reason="distributed is not installed (extra 'dask')")
Image = pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parents[1]
BIG = 8192  # 8192 x 8192 float32: 256 MiB, streamed in chunks of CHUNK
CHUNK = 512
THREADS = 2  # Dask's threads in the measured runs (DASK_NUM_WORKERS)
STRIP = 1024  # rows of the reference compared at a time
PEAK_KB = "VmHWM:"
# The peak RSS of this process image (VmHWM; getrusage's ru_maxrss would also count the
# parent's RSS when the child was forked from it), printed on stderr after the command.
MEASURED = ("import sys; from convolve.cli import main; code = main(sys.argv[1:]); "
            "sys.stderr.write(open('/proc/self/status').read()); sys.exit(code)")


def write_tiled(path, height, width, seed):
    """A float32 tiled BigTIFF written tile row by tile row (never whole in memory)."""
    rng = np.random.default_rng(seed)

    def tiles():
        for _ in range(0, height, 256):
            strip = rng.random((256, width), dtype=np.float32)
            for left in range(0, width, 256):
                yield strip[:, left:left + 256]

    tifffile.imwrite(path, tiles(), shape=(height, width), dtype=np.float32,
                     tile=(256, 256), bigtiff=True)


def convolve_filter(*argv, measure=False):
    """``convolve filter ARGV`` in a child process: (exit code, stderr, peak RSS in bytes)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_NUM_WORKERS": str(THREADS),
           "CONVOLVE_NUM_THREADS": str(THREADS)}
    command = [sys.executable, "-c", MEASURED] if measure else [sys.executable, "-m",
                                                                 "convolve"]
    done = subprocess.run([*command, "filter", *map(str, argv)], capture_output=True,
                          text=True, env=env, timeout=300)
    peak = [int(line.split()[1]) * 1024 for line in done.stderr.splitlines()
            if line.startswith(PEAK_KB)]
    return done.returncode, done.stderr, peak[0] if peak else None


def strips(path):
    """The rows of a TIFF or Zarr image, STRIP at a time, read lazily."""
    if path.suffix == ".zarr":
        array = zarr.open_array(path, mode="r")
    else:
        array = zarr.open_array(tifffile.imread(path, aszarr=True), mode="r")
    for top in range(0, array.shape[0], STRIP):
        yield top, np.asarray(array[top:top + STRIP])


def reference_strips(source, kernel):
    """The in-memory filter, a strip of rows at a time: each strip is filtered with the rows
    its kernel reaches above and below (none beyond the image's edges), so that its rows
    are those of the whole image filtered at once."""
    image = zarr.open_array(tifffile.imread(source, aszarr=True), mode="r")
    reach = kernel.shape[0] // 2
    height = image.shape[0]
    for top in range(0, height, STRIP):
        first, last = max(0, top - reach), min(height, top + STRIP + reach)
        result = filters.apply(np.asarray(image[first:last]), kernel)
        yield top, result[top - first:top - first + min(STRIP, height - top)]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.tif"
    write_tiled(path, BIG, BIG, seed=0)
    return path


@pytest.fixture(scope="module")
def baseline_peak(tmp_path_factory):
    """Peak RSS of the same command on a small image: the interpreter and its imports."""
    folder = tmp_path_factory.mktemp("small")
    write_tiled(folder / "small.tif", 512, 512, seed=1)
    code, err, peak = convolve_filter(folder / "small.tif", "-k", "gaussian_blur", "-o",
                                      folder / "small.zarr", "--chunk", CHUNK, measure=True)
    assert code == 0, err
    return peak


@pytest.mark.parametrize("suffix", [".zarr", ".tif"])
def test_an_image_over_the_memory_budget_streams_with_memory_bounded_by_the_chunk(
        big, baseline_peak, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    code, err, peak = convolve_filter(big, "-k", "gaussian_blur", "-o", out, "--chunk",
                                      CHUNK, "--memory", "64M", measure=True)
    assert code == 0, err
    image_bytes = BIG * BIG * 4
    chunk_bytes = CHUNK * CHUNK * 4
    # the chunks in flight: the read region, its float copy, the filter's own buffers
    assert peak - baseline_peak < 40 * chunk_bytes * THREADS < image_bytes / 3, (
        peak, baseline_peak)
    kernel = filters.kernel("gaussian_blur")
    for (top, result), (_, expected) in zip(strips(out), reference_strips(big, kernel)):
        assert result.dtype == np.float32 and result.shape == expected.shape, top
        np.testing.assert_allclose(result, expected, rtol=0, atol=2e-5, err_msg=str(top))
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of two worker processes, for --scheduler."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_a_local_cluster_of_two_processes_writes_the_same_bytes(tmp_path, capsys, cluster):
    source = tmp_path / "in.tif"
    write_tiled(source, 1536, 1280, seed=2)
    command = ["filter", source, "-k", "sobel", "--mode", "circular", "--chunk", 512]
    for folder in ("threads", "cluster"):
        (tmp_path / folder).mkdir()
    for suffix in (".zarr", ".tif"):
        assert run(capsys, *command, "-o", tmp_path / f"threads/out{suffix}")[0] == 0
    # the same command on a cluster: one started by --workers, one at --scheduler ADDRESS
    code, err, _ = convolve_filter(*command[1:], "--workers", 2, "-o",
                                   tmp_path / "cluster/out.tif")
    assert code == 0, err
    assert run(capsys, *command, "--scheduler", cluster.scheduler_address, "-o",
               tmp_path / "cluster/out.zarr")[0] == 0
    assert filecmp.cmp(tmp_path / "threads/out.tif", tmp_path / "cluster/out.tif",
                       shallow=False)
    files = [str(p.relative_to(tmp_path / "threads/out.zarr"))
             for p in (tmp_path / "threads/out.zarr").rglob("*") if p.is_file()]
    assert len(files) == 1 + 3 * 3  # zarr.json and one file per chunk
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "threads/out.zarr",
                                           tmp_path / "cluster/out.zarr", files, shallow=False)
    assert (mismatch, errors) == ([], [])
    np.testing.assert_allclose(tifffile.imread(tmp_path / "cluster/out.tif"),
                               filters.apply(tifffile.imread(source), "sobel",
                                             mode="circular"), rtol=0, atol=2e-5)


def test_interrupted_run_leaves_nothing_under_the_output_name(big, tmp_path):
    out = tmp_path / "out.zarr"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Ctrl-C's handler even where this test runs with SIGINT ignored (in the background)
    interruptible = ("import signal, sys; signal.signal(signal.SIGINT, "
                     "signal.default_int_handler); from convolve.cli import main; "
                     "sys.exit(main(sys.argv[1:]))")
    child = subprocess.Popen(
        [sys.executable, "-c", interruptible, "filter", big, "-k", "box_blur", "-o", out,
         "--chunk", "256"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".out.zarr.partial") for p in tmp_path.iterdir()):
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # well into the chunks
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert (child.returncode, err) == (130, "convolve filter: interrupted\n")
    assert list(tmp_path.iterdir()) == []


# In-process runs of small images: bad input, collections.

def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


@pytest.fixture
def small_tif(tmp_path):
    path = tmp_path / "small.tif"
    tifffile.imwrite(path, np.random.default_rng(3).random((100, 120, 3)).astype(np.float32),
                     tile=(64, 64), compression="zlib", photometric="rgb")
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float64])
def test_integer_and_float64_tiffs_to_zarr(tmp_path, capsys, dtype):
    rng = np.random.default_rng(4)
    image = (rng.random((70, 50)) * (np.iinfo(dtype).max if dtype != np.float64 else 1))
    image = image.astype(dtype)
    tifffile.imwrite(tmp_path / "in.tif", image)
    code, out, err = run(capsys, "filter", tmp_path / "in.tif", "-k", "sharpen", "--mode",
                         "symmetric", "-o", tmp_path / "out.zarr", "--chunk", 16)
    assert (code, err) == (0, "")
    assert out == f"wrote {tmp_path / 'out.zarr'} (50x70, " \
                  f"{'float64' if dtype == np.float64 else 'float32'}, chunks of 16 pixels)\n"
    unit = image if dtype == np.float64 else image.astype(np.float32) / np.float32(
        np.iinfo(dtype).max)
    result = zarr.open_array(tmp_path / "out.zarr", mode="r")
    assert result.chunks == (16, 16)
    np.testing.assert_allclose(result[:], filters.apply(unit, "sharpen", mode="symmetric"),
                               atol=2e-5 if dtype != np.float64 else 1e-12)


def test_zarr_to_tif_and_a_png_to_zarr(tmp_path, capsys, small_tif):
    image = tifffile.imread(small_tif)
    assert run(capsys, "filter", small_tif, "-k", "emboss", "-o", tmp_path / "a.zarr")[0] == 0
    code, _, err = run(capsys, "filter", tmp_path / "a.zarr", "-k", "laplacian", "-o",
                       tmp_path / "b.tif", "--chunk", 40)
    assert (code, err) == (0, "")
    with tifffile.TiffFile(tmp_path / "b.tif") as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled and tif.pages[0].tilewidth == 16
        result = tif.asarray()
    twice = filters.apply(filters.apply(image, "emboss"), "laplacian")
    np.testing.assert_allclose(result, twice, atol=2e-5)
    Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / "c.png")
    code, _, err = run(capsys, "filter", tmp_path / "c.png", "-k", "sharpen", "-o",
                       tmp_path / "c.zarr", "--chunk", 32)
    assert (code, err) == (0, "")
    from convolve import io

    np.testing.assert_allclose(zarr.open_array(tmp_path / "c.zarr", mode="r")[:],
                               filters.apply(io.read_image(tmp_path / "c.png"), "sharpen"),
                               atol=2e-5)


def test_a_small_tiff_to_png_stays_in_memory(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "in.tif", np.full((20, 30), 128, np.uint8))
    code, out, _ = run(capsys, "filter", tmp_path / "in.tif", "-k", "box_blur", "-o",
                       tmp_path / "out.png")
    assert (code, out) == (0, f"wrote {tmp_path / 'out.png'} (30x20)\n")


def test_a_corrupt_tiff(tmp_path, capsys, small_tif):
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a tiff at all" * 20)
    assert fails(capsys, "filter", garbage, "-k", "sharpen", "-o", tmp_path / "o.zarr") == (
        f"convolve filter: error: cannot read {garbage} as TIFF: not a TIFF file: "
        "header=b'not '")
    truncated = tmp_path / "truncated.tif"
    data = small_tif.read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    message = fails(capsys, "filter", truncated, "-k", "sharpen", "-o", tmp_path / "o.zarr")
    assert message.startswith(f"convolve filter: error: cannot read {truncated}: "), message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.tif", "small.tif",
                                                          "truncated.tif"]


def test_an_existing_output_is_refused_unless_overwrite(tmp_path, capsys, small_tif):
    out = tmp_path / "out.tif"
    out.write_bytes(b"keep me")
    assert fails(capsys, "filter", small_tif, "-k", "sharpen", "-o", out) == (
        f"convolve filter: error: output exists: {out} (overwrite it with --overwrite, or "
        "overwrite=True)")
    assert out.read_bytes() == b"keep me"
    assert run(capsys, "filter", small_tif, "-k", "sharpen", "-o", out, "--overwrite")[0] == 0
    assert tifffile.imread(out).shape == (100, 120, 3)
    zarr_out = tmp_path / "out.zarr"
    for _ in range(2):
        assert run(capsys, "filter", small_tif, "-k", "sharpen", "-o", zarr_out,
                   "--overwrite")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "out.zarr", "small.tif"]


def test_a_chunk_smaller_than_the_kernel(tmp_path, capsys, small_tif):
    assert fails(capsys, "filter", small_tif, "-k", "gaussian_blur", "--sigma", "2", "-o",
                 tmp_path / "o.zarr", "--chunk", "8") == (
        "convolve filter: error: --chunk must be at least the kernel's size 13x13; "
        "received 8")


@pytest.mark.parametrize("dtype", [np.int32, np.complex64])
def test_an_unsupported_dtype(tmp_path, capsys, dtype):
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, np.zeros((10, 10), dtype))
    assert fails(capsys, "filter", path, "-k", "sharpen", "-o", tmp_path / "o.zarr") == (
        f"convolve filter: error: {path} has pixels of dtype {np.dtype(dtype)}; "
        "supported: uint8, uint16 (scaled to [0, 1]), float32 and float64")


def test_a_stack_is_not_one_image(tmp_path, capsys):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((3, 10, 12), np.float32), photometric="minisblack")
    assert fails(capsys, "filter", path, "-k", "sharpen", "-o", tmp_path / "o.zarr") == (
        f"convolve filter: error: {path} must hold one image (H, W) or (H, W, C); received "
        "a series of shape (3, 10, 12) (axes QYX)")


def test_over_the_budget_to_a_png_and_normalize_when_streaming(tmp_path, capsys, small_tif):
    assert fails(capsys, "filter", small_tif, "-k", "sharpen", "-o", tmp_path / "o.png",
                 "--memory", "100K") == (
        f"convolve filter: error: {small_tif} (120x100x3) needs 562.5 KiB to filter in "
        "memory, over --memory 100.0 KiB: write it to .zarr or .tif, which are written "
        "chunk by chunk")
    assert fails(capsys, "filter", small_tif, "-k", "sharpen", "-o", tmp_path / "o.tif",
                 "--normalize") == (
        "convolve filter: error: --normalize and --normalize-symmetric need the whole "
        "result at once; a streamed .zarr or .tif output keeps the filter's values")


def test_a_bad_memory_size(tmp_path, capsys, small_tif):
    with pytest.raises(SystemExit) as exit_:
        main(["filter", str(small_tif), "-k", "sharpen", "-o", str(tmp_path / "o.tif"),
              "--memory", "lots"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --memory: expected a size such as 2G, 500M or 1000000; received " \
           "'lots'" in err and err.count("\n") == 1


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for name in ("a.png", "b.jpg", "c.png"):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.png").write_bytes(b"not a picture")
    return folder


def expected_file(source, kernel):
    from convolve import io

    result = filters.apply(io.read_image(source), kernel)
    return np.rint(np.clip(result, 0, 1) * 255).astype(np.uint8)


def test_a_collection_reports_the_file_that_fails_and_finishes_the_rest(tmp_path, capsys,
                                                                         photos):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "filter", f"{photos}/*", "-k", "sharpen", "-o", out)
    assert code == 2
    assert err.splitlines() == [
        f"convolve filter: error: {photos / 'broken.png'}: cannot read "
        f"{photos / 'broken.png'}: not an image file that Pillow can decode",
        "convolve filter: 1 of 4 files failed"]
    assert sorted(stdout.splitlines()) == [f"wrote {out / n} (32x24)"
                                           for n in ("a.png", "b.jpg", "c.png")]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg", "c.png"]
    for name in ("a.png", "c.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)),
                                      expected_file(photos / name, "sharpen"))


def test_a_collection_on_a_cluster_and_its_existing_outputs(tmp_path, capsys, photos,
                                                             cluster):
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.png").write_bytes(b"old")
    pattern = f"{photos}/*.png"
    assert fails(capsys, "filter", pattern, "-k", "box_blur", "-o", out) == (
        f"convolve filter: error: output exists: {out / 'c.png'}; replace with --overwrite")
    code, stdout, _ = run(capsys, "filter", photos / "a.png", photos / "c.png", "-k",
                          "box_blur", "-o", out, "--overwrite", "--scheduler",
                          cluster.scheduler_address)
    assert code == 0 and len(stdout.splitlines()) == 2
    np.testing.assert_array_equal(np.asarray(Image.open(out / "c.png")),
                                  expected_file(photos / "c.png", "box_blur"))


def test_collection_errors(tmp_path, capsys, photos):
    assert fails(capsys, "filter", f"{tmp_path}/*.gif", "-k", "sharpen", "-o",
                 tmp_path / "out") == f"convolve filter: error: no files match " \
                                      f"'{tmp_path}/*.gif'"
    (tmp_path / "file").write_bytes(b"")
    assert fails(capsys, "filter", f"{photos}/*.png", "-k", "sharpen", "-o",
                 tmp_path / "file") == (
        f"convolve filter: error: -o must be a folder for several inputs; received the "
        f"file {tmp_path / 'file'}")
