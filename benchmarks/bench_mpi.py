"""Data-parallel training over MPI: processes against threads, and scaling with processes.

For each model (mnist_cnn, digits_cnn), ``convolve train`` on the embedded MNIST subset
(16,000 training images, global batch 64, the model's default Adam) for ``--epochs``
epochs in each configuration, launched as a user would:

- ``1x2``: one process with two threads (no mpirun);
- ``2x1``: ``mpirun -n 2``, one thread per process;
- ``1x1``, ``2x1``, ``4x1``: the scaling of one-thread processes; 4 exceeds the machine's 2
  cores (``--oversubscribe``, reported as such).

Reported: training images/s, test accuracy, seconds per step spent in collectives (the
mean over processes; waiting for the slower process included), and the largest absolute
difference of any weight from the ``1x2`` run's checkpoint (the same training, so float
rounding alone). Aim: ``2x1`` at least 1.3x the images/s of ``1x2``.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mpi.py \\
        [--epochs 1] [--models mnist_cnn,digits_cnn] [--out benchmarks/results_mpi.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _run import ROOT, write

from convolve import checkpoint

# (label, processes, threads per process)
CONFIGS = (("1x2", 1, 2), ("2x1", 2, 1), ("1x1", 1, 1), ("4x1", 4, 1))


def mpirun() -> str:
    found = shutil.which("mpirun") or shutil.which("mpirun", path=str(Path(sys.executable).parent))
    if found is None:
        sys.exit("bench_mpi: needs mpirun: pip install -e '.[mpi]'")
    return found


def run(model: str, processes: int, threads: int, epochs: int, folder: Path) -> dict:
    """One ``convolve train --json`` run; its JSON line plus ``checkpoint``."""
    path = folder / f"{model}-{processes}x{threads}.npz"
    command = [sys.executable, "-m", "convolve", "train", "--model", model, "--epochs",
               str(epochs), "--quiet", "--json", "--checkpoint", str(path)]
    if processes > 1:
        command = [mpirun(), "-n", str(processes), "--bind-to", "none",
                   *(["--oversubscribe"] if processes > (os.cpu_count() or 1) else []),
                   *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONVOLVE_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"bench_mpi: {' '.join(command)} failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["checkpoint"] = path
    return result


def weight_difference(path: Path, reference: Path) -> str:
    """The largest absolute difference of any model array from the reference run's, with
    the array's name and the difference relative to the array's largest magnitude."""
    arrays, expected = checkpoint.read_arrays(path), checkpoint.read_arrays(reference)
    worst = max((float(np.max(np.abs(arrays[k].astype(np.float64) - expected[k]))), k)
                for k in expected if k.startswith("model."))
    scale = float(np.max(np.abs(expected[worst[1]])))
    return f"{worst[0]:.1e} ({worst[1][len('model.'):]}, {worst[0] / scale:.0e} relative)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--models", default="mnist_cnn,digits_cnn")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results_mpi.md"))
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rows = ["| model | processes x threads | images/s | vs 1x2 | test accuracy | "
            "collectives ms/step | max weight difference vs 1x2 |",
            "|---|---|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(prefix="bench-mpi-") as tmp:
        for model in args.models.split(","):
            results = {}
            for label, processes, threads in CONFIGS:
                results[label] = run(model, processes, threads, args.epochs, Path(tmp))
                print(label, model, {k: v for k, v in results[label].items()
                                     if k != "checkpoint"}, flush=True)
            base = results["1x2"]
            for label, processes, threads in CONFIGS:
                r = results[label]
                note = " (oversubscribed)" if processes * threads > cores else ""
                comm = r.get("communication_seconds_per_step")
                rows.append(
                    f"| {model} | {label}{note} | {r['images_per_second']:.0f} | "
                    f"{r['images_per_second'] / base['images_per_second']:.2f} | "
                    f"{r['test_accuracy']:.4f} | "
                    f"{'-' if comm is None else f'{comm * 1e3:.2f}'} | "
                    f"{weight_difference(r['checkpoint'], base['checkpoint'])} |")
    body = (f"`convolve train` on the embedded MNIST subset, {args.epochs} epoch(s), global "
            "batch 64; images/s of training only.\n\n" + "\n".join(rows))
    write(args.out, "Data-parallel training over MPI", body)


if __name__ == "__main__":
    main()
