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
rounding alone). Then ``--steps`` training steps alone per configuration, timed one by one:
images/s from the median step and from the fastest tenth of steps, which a busy shared
machine disturbs less. Aim: ``2x1`` at least 1.3x the images/s of ``1x2``.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mpi.py \\
        [--epochs 1] [--steps 60] [--models mnist_cnn,digits_cnn] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
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


def launch(args: list[str], processes: int, threads: int) -> str:
    """``python ARGS`` in one process or under ``mpirun -n``; its standard output."""
    command = [sys.executable, *args]
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
    return out.stdout


def run(model: str, processes: int, threads: int, epochs: int, folder: Path) -> dict:
    """One ``convolve train --json`` run; its JSON line plus ``checkpoint``."""
    path = folder / f"{model}-{processes}x{threads}.npz"
    out = launch(["-m", "convolve", "train", "--model", model, "--epochs", str(epochs),
                  "--quiet", "--json", "--checkpoint", str(path)], processes, threads)
    result = json.loads(out.strip().splitlines()[-1])
    result["checkpoint"] = path
    return result


def step_times(model_name: str, steps: int) -> None:
    """Worker: time ``steps`` training steps (global batch 64) as ``fit`` takes them, and
    print the seconds of each (rank 0 under MPI, where the step ends when every process
    has sent its gradients) and the CPU seconds of all steps (over all processes) as one
    JSON line."""
    from convolve import data, distributed, losses, models, optim

    mnist = data.embedded_mnist()
    model = models.get_model(model_name, seed=0)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    parallel = distributed.data_parallel()
    times, cpu = [], 0.0
    for step in range(steps + 3):  # 3 untimed warm-up steps
        if step == 3:
            cpu = -time.process_time()
        window = slice(64 * step, 64 * (step + 1))
        images, labels = mnist.train.images[window], mnist.train.labels[window]
        began = time.perf_counter()
        if parallel is None:
            loss = losses.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
        else:
            parallel.step(model, images, labels, losses.cross_entropy, {}, optimizer)
        optimizer.step()
        times.append(time.perf_counter() - began)
    cpu += time.process_time()
    if parallel is not None:  # every process's CPU time
        cpu = parallel.sum_values([cpu])[0]
    if parallel is None or parallel.is_root:
        print(json.dumps({"seconds": times[3:], "cpu_seconds": cpu}))


def weight_difference(path: Path, reference: Path) -> str:
    """The largest absolute difference of any model array from the reference run's, with
    the array's name and the difference relative to the array's largest magnitude."""
    arrays, expected = checkpoint.read_arrays(path), checkpoint.read_arrays(reference)
    worst = max((float(np.max(np.abs(arrays[k].astype(np.float64) - expected[k]))), k)
                for k in expected if k.startswith("model."))
    scale = float(np.max(np.abs(expected[worst[1]])))
    return f"{worst[0]:.1e} ({worst[1][len('model.'):]}, {worst[0] / scale:.0e} relative)"


def note(processes: int, threads: int) -> str:
    return " (oversubscribed)" if processes * threads > (os.cpu_count() or 1) else ""


def epoch_table(models: list[str], epochs: int) -> str:
    rows = ["| model | processes x threads | images/s | vs 1x2 | test accuracy | "
            "collectives ms/step | max weight difference vs 1x2 |",
            "|---|---|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(prefix="bench-mpi-") as tmp:
        for model in models:
            results = {}
            for label, processes, threads in CONFIGS:
                results[label] = run(model, processes, threads, epochs, Path(tmp))
                print(label, model, {k: v for k, v in results[label].items()
                                     if k != "checkpoint"}, flush=True)
            base = results["1x2"]
            for label, processes, threads in CONFIGS:
                r = results[label]
                comm = r.get("communication_seconds_per_step")
                rows.append(
                    f"| {model} | {label}{note(processes, threads)} | "
                    f"{r['images_per_second']:.0f} | "
                    f"{r['images_per_second'] / base['images_per_second']:.2f} | "
                    f"{r['test_accuracy']:.4f} | "
                    f"{'-' if comm is None else f'{comm * 1e3:.2f}'} | "
                    f"{weight_difference(r['checkpoint'], base['checkpoint'])} |")
    return (f"`convolve train` on the embedded MNIST subset, {epochs} epoch(s), global batch "
            "64; images/s of training only.\n\n" + "\n".join(rows))


def step_table(models: list[str], steps: int) -> str:
    rows = ["| model | processes x threads | images/s (median step) | vs 1x2 | "
            "images/s (fastest tenth of steps) | vs 1x2 | CPU ms per step, all processes |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for model in models:
        rates = {}
        for label, processes, threads in CONFIGS:
            out = launch([__file__, "--worker", model, "--steps", str(steps)], processes,
                         threads)
            result = json.loads(out.strip().splitlines()[-1])
            seconds = np.array(result["seconds"])
            rates[label] = median, best = 64 / np.median(seconds), 64 / np.quantile(seconds, 0.1)
            cpu_ms = 1e3 * result["cpu_seconds"] / steps
            print(label, model, f"median {median:.0f}, best tenth {best:.0f} images/s, "
                  f"{cpu_ms:.1f} CPU ms/step", flush=True)
            rows.append(f"| {model} | {label}{note(processes, threads)} | {median:.0f} | "
                        f"{median / rates['1x2'][0]:.2f} | {best:.0f} | "
                        f"{best / rates['1x2'][1]:.2f} | {cpu_ms:.1f} |")
    return (f"Training steps alone ({steps} per configuration, global batch 64, Adam): images/s "
            "from the median step time and from the fastest tenth of steps (closer to what "
            "a quiet machine gives).\n\n" + "\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="0 leaves the epoch table out")
    parser.add_argument("--steps", type=int, default=60,
                        help="timed steps per configuration, 0 leaves the step table out")
    parser.add_argument("--models", default="mnist_cnn,digits_cnn")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results_mpi.md"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # MODEL: time steps, print
    args = parser.parse_args()
    if args.worker:
        step_times(args.worker, args.steps)
        return
    models = args.models.split(",")
    parts = ([epoch_table(models, args.epochs)] if args.epochs else []) + \
        ([step_table(models, args.steps)] if args.steps else [])
    write(args.out, "Data-parallel training over MPI", "\n\n".join(parts))


if __name__ == "__main__":
    main()
