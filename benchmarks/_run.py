"""Shared by the benchmark scripts: run from the repository root without installing."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def arguments(description: str, default_out: str) -> argparse.Namespace:
    """Parse the common options; ``--threads`` takes effect here, before NumPy loads
    its BLAS (so import convolve only after calling this)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for every contender: BLAS, torch, OpenCV and "
                             "convolve's own (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per round (3)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / default_out),
                        help=f"Markdown file to write (benchmarks/{default_out})")
    args = parser.parse_args()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    os.environ["CONVOLVE_NUM_THREADS"] = str(args.threads)
    from convolve.runtime import keep_freed_memory

    keep_freed_memory()  # as in training (fit): see convolve/runtime.py
    return args


def write(path: str, title: str, body: str) -> None:
    from convolve.perf.timing import environment

    text = f"## {title}\n\n{environment()}\n\n{body}\n"
    pathlib.Path(path).write_text(text)
    print(text)
