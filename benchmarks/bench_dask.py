"""Filtering an image larger than memory to disk on Dask: convolve against dask-image.

A SIZE x SIZE float32 image (default 16384: 1 GiB) is generated once as a Zarr array
(stored in 512 x 512 chunks, as a tiled TIFF's tiles), then
filtered to a new Zarr array with 3x3, 7x7 and 15x15 random kernels (reflected borders),
with the same chunks and Dask's threaded scheduler (--threads threads, one BLAS thread
each), by:

- ``convolve filter IN.zarr --kernel-file K.npy -o OUT.zarr``: the command line, each chunk
  reading its own halo (``chunked.apply_source``), written by ``bigio.save``;
- ``filters.apply(da.from_zarr(IN), K).to_zarr(OUT)``: convolve's Dask-array API
  (``map_overlap``);
- ``dask_image.ndfilters.correlate(da.from_zarr(IN), K, mode="mirror").to_zarr(OUT)``.

Each run is a child process: wall time (imports excluded) and peak RSS (VmHWM). Outputs are
checked against each other. Then images per second of ``convolve.predict`` on a Dask array
against the in-memory ``predict``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONTENDERS = ("convolve filter", "convolve filters.apply", "dask-image")


def peak_rss() -> int:
    """This process image's peak resident set size in bytes (VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def child(args: argparse.Namespace) -> None:
    import dask
    import dask.array as da
    import numpy as np
    import tifffile  # noqa: F401  (imported before the clock starts, as the others)
    import zarr  # noqa: F401

    from convolve import filters
    from convolve.cli import main

    if args.child == "dask-image":
        import dask_image.ndfilters  # noqa: F401
    kernel = np.load(args.kernel)
    dask.config.set(scheduler="threads", num_workers=args.threads)
    start = time.perf_counter()
    if args.child == "convolve filter":
        code = main(["filter", args.input, "--kernel-file", args.kernel, "-o", args.output,
                     "--chunk", str(args.chunk)])
        if code:
            raise SystemExit(code)
    elif args.child == "convolve filters.apply":
        image = da.from_zarr(args.input, chunks=args.chunk)
        filters.apply(image, kernel, mode="reflect").to_zarr(args.output)
    else:
        from dask_image import ndfilters

        image = da.from_zarr(args.input, chunks=args.chunk)
        ndfilters.correlate(image, kernel, mode="mirror").to_zarr(args.output)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak": peak_rss()}))


def run_child(args: argparse.Namespace, contender: str, kernel: pathlib.Path,
              output: pathlib.Path) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "CONVOLVE_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", contender, "--input", str(args.input),
         "--kernel", str(kernel), "--output", str(output), "--chunk", str(args.chunk),
         "--stored-chunk", str(args.stored_chunk),
         "--threads", str(args.threads)], capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"{contender} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def make_input(path: pathlib.Path, size: int, chunk: int) -> None:
    import dask.array as da
    import numpy as np

    image = da.random.default_rng(0).random((size, size), dtype=np.float32,
                                              chunks=chunk)
    image.to_zarr(str(path), compute=True)


def same_values(outputs: list[pathlib.Path], size: int, chunk: int) -> float:
    """The largest difference between the outputs on the corner and the middle chunks."""
    import numpy as np
    import zarr

    worst = 0.0
    for top in (0, max(0, size // 2 - chunk // 2), max(0, size - chunk)):
        region = np.s_[top:top + chunk, top:top + chunk]
        arrays = [zarr.open_array(str(o), mode="r")[region] for o in outputs]
        worst = max(worst, *(float(np.abs(a - arrays[0]).max()) for a in arrays[1:]))
    return worst


def predict_rates(images: int, threads: int, chunk: int) -> tuple[float, float]:
    import dask
    import dask.array as da
    import numpy as np

    import convolve
    from convolve import models

    model = models.lenet5(seed=0)
    x = np.random.default_rng(0).random((images, 32, 32, 3), dtype=np.float32)
    lazy = da.from_array(x, chunks=(chunk, 32, 32, 3))
    best = {"memory": float("inf"), "dask": float("inf")}
    for _ in range(3):
        start = time.perf_counter()
        convolve.predict(model, x, batch_size=chunk)
        best["memory"] = min(best["memory"], time.perf_counter() - start)
        start = time.perf_counter()
        with dask.config.set(scheduler="threads", num_workers=threads):
            convolve.predict(model, lazy, batch_size=chunk).compute()
        best["dask"] = min(best["dask"], time.perf_counter() - start)
    return images / best["memory"], images / best["dask"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=16384, help="image side (16384: 1 GiB)")
    parser.add_argument("--chunk", type=int, default=2048, help="chunk side (2048)")
    parser.add_argument("--stored-chunk", type=int, default=512,
                        help="chunk side of the Zarr image on disk, as a tiled TIFF's tiles "
                             "(512)")
    parser.add_argument("--kernels", default="3,7,15", help="kernel sides (3,7,15)")
    parser.add_argument("--threads", type=int, default=2, help="Dask threads (2)")
    parser.add_argument("--dir", help="folder for the image (default: a temporary one, "
                                      "removed at the end); an existing image is reused")
    parser.add_argument("--predict-images", type=int, default=4096,
                        help="images for predict's rate (4096; 0 skips it)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results_dask.md"))
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--kernel", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import numpy as np

    folder = pathlib.Path(args.dir or tempfile.mkdtemp(prefix="bench_dask_"))
    folder.mkdir(parents=True, exist_ok=True)
    args.input = folder / f"image_{args.size}_{args.stored_chunk}.zarr"
    image_bytes = args.size * args.size * 4
    rows = []
    try:
        if not args.input.exists():
            start = time.perf_counter()
            make_input(args.input, args.size, args.stored_chunk)
            print(f"wrote {args.input} in {time.perf_counter() - start:.1f} s", flush=True)
        for side in (int(k) for k in args.kernels.split(",")):
            kernel = folder / f"kernel_{side}.npy"
            np.save(kernel, np.random.default_rng(side).standard_normal((side, side))
                    .astype(np.float32))
            outputs, results = [], {}
            for contender in CONTENDERS:
                output = folder / f"out_{len(outputs)}.zarr"
                results[contender] = run_child(args, contender, kernel, output)
                outputs.append(output)
                print(side, contender, results[contender], flush=True)
            difference = same_values(outputs, args.size, args.chunk)
            for output in outputs:
                shutil.rmtree(output)
            rows.append((side, results, difference))
        rates = predict_rates(args.predict_images, args.threads, 256) \
            if args.predict_images else None
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    write_table(args, rows, rates, image_bytes)


def write_table(args: argparse.Namespace, rows: list, rates: tuple[float, float] | None,
                image_bytes: int) -> None:
    from convolve.perf.timing import environment

    lines = [
        f"## Filtering a {args.size}x{args.size} float32 image ({image_bytes / 2**30:.2f} "
        f"GiB) from Zarr (stored in chunks of {args.stored_chunk}) to Zarr, chunks of "
        f"{args.chunk}, Dask threads: {args.threads}",
        "", environment(), "",
        "| kernel | contender | seconds | peak RSS (MiB) | peak / image | dask-image time / "
        "this |",
        "| --- | --- | ---: | ---: | ---: | ---: |"]
    for side, results, difference in rows:
        peer = results["dask-image"]["seconds"]
        for contender, result in results.items():
            lines.append(
                f"| {side}x{side} | {contender} | {result['seconds']:.2f} | "
                f"{result['peak'] / 2**20:.0f} | {result['peak'] / image_bytes:.2f} | "
                f"{peer / result['seconds']:.2f} |")
        lines.append(f"| {side}x{side} | largest difference between outputs | "
                     f"{difference:.1e} | | | |")
    if rates is not None:
        lines += ["", f"predict, lenet5 on {args.predict_images} images of 32x32x3 "
                      f"(batches / chunks of 256): in memory {rates[0]:,.0f} images/s, on a "
                      f"Dask array ({args.threads} threads) {rates[1]:,.0f} images/s"]
    text = "\n".join(lines) + "\n"
    pathlib.Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
