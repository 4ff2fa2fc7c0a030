"""``convolve filter`` on Dask (extra ``dask``): an image larger than memory streamed chunk by
chunk from TIFF or Zarr to Zarr or tiled BigTIFF, and collections of files filtered in
parallel, one task per file; on Dask's threads, a local cluster (``--workers``) or an
existing one (``--scheduler``)."""

from __future__ import annotations

import argparse
import glob
import logging
import math
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from convolve import bigio, filters, runtime
from convolve.commands import CommandError, read_input_image

DEFAULT_CHUNK = 2048
CACHED_CHUNKS = 4  # decoded tiles kept per process, in chunks of --chunk
IN_MEMORY_COPIES = 4  # an image filtered in memory needs about this many float copies of it
GLOB_CHARACTERS = "*?["
_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20,
          "MIB": 2**20, "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40,
          "TIB": 2**40}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``convolve filter`` for big images, collections and clusters."""
    group = parser.add_argument_group(
        "large images and collections (extra dask)",
        "A TIFF or Zarr input written to .tif or .zarr, an input over --memory, and any "
        ".zarr output are streamed chunk by chunk: the output keeps the filter's float "
        "values (uint8 and uint16 inputs scaled to [0, 1]); TIFF output is an "
        "uncompressed tiled BigTIFF. Several inputs, or a quoted pattern such as "
        "'photos/*.jpg', are filtered in parallel, one task per file, into the folder -o. "
        "--scheduler and --workers apply to these two; one small image is filtered in "
        "memory, as without them.")
    group.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, metavar="PIXELS",
                       help=f"chunk side when streaming (default {DEFAULT_CHUNK}; at least "
                            "the kernel's size; TIFF output rounds it up to a multiple of "
                            "16). Memory holds a few chunks per worker thread")
    group.add_argument("--memory", metavar="SIZE", type=parse_size, default=None,
                       help="memory one image may take when filtered in memory, about 4 "
                            "times its float size, e.g. 2G or 500M; bigger ones stream "
                            "(default: a quarter of this machine's memory)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://host:8786")
    where.add_argument("--workers", type=int, metavar="N",
                       help="start a local Dask cluster of N processes (default: Dask's "
                            "threads in this process)")
    group.add_argument("--overwrite", action="store_true",
                       help="replace outputs that exist (streamed and collection outputs "
                            "are otherwise refused)")


def parse_size(text: str) -> int:
    """``"2G"``, ``"500MB"``, ``"1.5GiB"``, ``"1000000"`` as bytes."""
    stripped = text.strip().upper()
    number = stripped.rstrip("KMGTIB")
    unit = stripped[len(number):]
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"expected a size such as 2G, 500M or 1000000; received {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive; received {text!r}")
    return int(value)


def default_memory() -> int:
    """A quarter of the machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


def inputs(texts: Sequence[str]) -> tuple[list[str], bool]:
    """The input paths, patterns expanded, and whether they are a collection (several
    inputs or a pattern) rather than one image."""
    paths: list[str] = []
    pattern = False
    for text in texts:
        if any(c in text for c in GLOB_CHARACTERS) and not os.path.exists(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise CommandError(f"no files match {text!r}")
            paths += [m for m in matches if not os.path.isdir(m) or bigio.kind(m)]
            pattern = True
        else:
            paths.append(text)
    return paths, pattern or len(paths) > 1


def wants_dask(args: argparse.Namespace) -> bool:
    """Whether ``convolve filter`` needs this module: a collection, or one image to
    stream (else the in-memory path, unchanged)."""
    paths, collection = inputs(args.input)
    return collection or _streams(paths[0], args)


def _streams(path: str, args: argparse.Namespace) -> bool:
    source, target = bigio.kind(path), bigio.kind(args.output)
    if source == "zarr" or target == "zarr":
        return True
    if source != "tiff":
        return False
    return target == "tiff" or _in_memory_bytes(_open_source(path)) > _budget(args)


def _budget(args: argparse.Namespace) -> int:
    return args.memory if args.memory is not None else default_memory()


def _in_memory_bytes(source: Any) -> int:
    from convolve import chunked

    dtype = chunked.float_dtype(source.dtype, source.path)
    return IN_MEMORY_COPIES * math.prod(source.shape) * dtype.itemsize


def _open_source(path: str) -> Any:
    logging.getLogger("tifffile").setLevel(logging.ERROR)  # its warnings come as errors
    return bigio.open_source(path)


def run(args: argparse.Namespace, kernel: str | np.ndarray) -> int:
    paths, collection = inputs(args.input)
    if args.workers is not None and args.workers < 1:
        raise CommandError(f"--workers must be at least 1; received {args.workers}")
    if collection:
        return _run_collection(paths, args, kernel)
    return _run_stream(paths[0], args, kernel)


def _run_stream(path: str, args: argparse.Namespace, kernel: str | np.ndarray) -> int:
    from convolve import chunked

    target = bigio.kind(args.output)
    if target is None:
        source = _open_source(path)
        raise CommandError(
            f"{path} ({_size_text(source.shape)}) needs "
            f"{_bytes_text(_in_memory_bytes(source))} to filter in memory, over --memory "
            f"{_bytes_text(_budget(args))}: write it to .zarr or .tif, which are written "
            "chunk by chunk")
    if args.normalize:
        raise CommandError("--normalize and --normalize-symmetric need the whole result at "
                           "once; a streamed .zarr or .tif output keeps the filter's values")
    chunk = _chunk(args.chunk, kernel, tiff=target == "tiff")
    bigio.check_output(args.output, overwrite=args.overwrite)
    runtime.return_freed_memory()  # each chunk's arrays live once: give them back at once
    if bigio.kind(path) is None:  # a PNG, JPEG, ... to Zarr: read whole, filtered lazily
        import dask.array as da

        image = read_input_image(path)
        result = filters.apply(da.from_array(image, chunks=(chunk, chunk, *image.shape[2:])),
                               kernel, mode=args.mode)
    else:
        source = _open_source(path)
        # Decoded tiles kept for the neighbours' halos: with four chunks' worth, a chunk
        # of 2048 over tiles of 512 decodes 1.5 tiles per tile, not 2.25
        source.cache_bytes = CACHED_CHUNKS * chunk * chunk * math.prod(source.shape[2:]) * \
            source.dtype.itemsize
        result = chunked.apply_source(source, kernel, mode=args.mode, chunk=chunk, name=path)
    with scheduler(args) as client:
        bigio.save(result, args.output, overwrite=args.overwrite,
                   run=lambda flags: compute_with_progress(
                       list(flags.to_delayed().ravel()), client, unit="chunk"))
    print(f"wrote {args.output} ({_size_text(result.shape)}, {result.dtype}, chunks of "
          f"{chunk} pixels)")
    return 0


def _chunk(chunk: int, kernel: str | np.ndarray, *, tiff: bool) -> int:
    size = filters.kernels_of(kernel)[0].shape
    if chunk < max(size):
        raise CommandError(f"--chunk must be at least the kernel's size {size[0]}x{size[1]}; "
                           f"received {chunk}")
    multiple = bigio.TILE_MULTIPLE
    return -(-chunk // multiple) * multiple if tiff else chunk


def _size_text(shape: tuple[int, ...]) -> str:
    channels = f"x{shape[2]}" if len(shape) == 3 else ""
    return f"{shape[1]}x{shape[0]}{channels}"


def _bytes_text(nbytes: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} bytes"


def _run_collection(paths: list[str], args: argparse.Namespace,
                    kernel: str | np.ndarray) -> int:
    import dask

    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"-o must be a folder for several inputs; received the file "
                           f"{folder}")
    names = [Path(p).name for p in paths]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CommandError(f"inputs from different folders share the name {repeated[0]}; "
                           "their outputs in one folder would collide")
    outputs = [folder / n for n in names]
    existing = [o for o in outputs if o.exists()]
    if existing and not args.overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CommandError(f"output exists: {existing[0]}{more}; replace with --overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [dask.delayed(filter_file, pure=False, name=f"filter-file-{uuid.uuid4().hex}")(
        source, output, kernel, args.mode, args.normalize)
        for source, output in zip(paths, outputs)]
    with scheduler(args) as client:
        outcomes = compute_with_progress(tasks, client, unit="file")
    failed = 0
    for source, outcome in zip(paths, outcomes):
        if outcome.startswith("wrote "):
            print(outcome)
        else:
            failed += 1
            print(f"convolve filter: error: {source}: {outcome}", file=sys.stderr)
    if failed:
        print(f"convolve filter: {failed} of {len(paths)} files failed", file=sys.stderr)
        return 2
    return 0


def filter_file(source: str, output: Path, kernel: str | np.ndarray, mode: str,
                normalize: bool | str) -> str:
    """Filter one file of a collection in memory, written under a temporary name, renamed
    when complete; returns ``"wrote ..."`` or the error's message (the rest go on)."""
    from convolve import io

    temporary = output.with_name(f".{output.stem}.partial-{uuid.uuid4().hex[:8]}"
                                 f"{output.suffix}")
    try:
        result = filters.apply(read_input_image(source), kernel, mode=mode)
        io.write_image(temporary, result, normalize=normalize)
        os.replace(temporary, output)
    except (ValueError, TypeError, OSError, MemoryError, ImportError) as error:
        return str(error) or type(error).__name__
    finally:
        if temporary.exists():
            temporary.unlink()
    height, width = result.shape[:2]
    return f"wrote {output} ({width}x{height})"


@contextmanager
def scheduler(args: argparse.Namespace) -> Iterator[Any]:
    """A ``distributed.Client`` for ``--scheduler`` or ``--workers`` (a local cluster of
    processes, closed at the end), else None: Dask's threaded scheduler."""
    if args.scheduler is None and args.workers is None:
        yield None
        return
    try:
        import distributed
    except ImportError:
        raise ImportError("--scheduler and --workers need distributed: pip install "
                          "'convolve[dask]'") from None
    if args.scheduler is not None:
        try:
            client = distributed.Client(args.scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as error:
            raise CommandError(f"cannot reach the Dask scheduler at {args.scheduler}: "
                               f"{error}") from None
        with client:
            yield client
        return
    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                  processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def compute_with_progress(tasks: list[Any], client: Any, *, unit: str) -> list[Any]:
    """Compute Dask ``tasks`` (delayed values) with a progress bar on stderr when it is a
    terminal; on ``client``'s cluster, else on Dask's threads."""
    bar = _progress_bar(len(tasks), unit)
    try:
        if client is None:
            import dask
            from dask.callbacks import Callback

            names = {_key_name(t.key) for t in tasks}

            class Advance(Callback):
                def _posttask(self, key: Any, *_: Any) -> None:
                    if _key_name(key) in names:
                        bar.update()

            with Advance():
                return list(dask.compute(*tasks, scheduler="threads"))
        import distributed

        futures = client.compute(tasks)
        for _ in distributed.as_completed(futures):
            bar.update()
        return client.gather(futures)
    finally:
        bar.close()


def _key_name(key: Any) -> str:
    return key[0] if isinstance(key, tuple) else str(key)


def _progress_bar(total: int, unit: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, unit=unit, file=sys.stderr, disable=None, leave=False)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
