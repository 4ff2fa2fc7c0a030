"""Training targets of the training issue, measured (not unit tests).

1. ``convolve train`` with no arguments (embedded MNIST subset): test accuracy and seconds.
2. MNIST from a folder (default ``../shared/data/mnist``) with the default MNIST model:
   test accuracy and seconds (``--full``; takes minutes).
3. Training throughput (images/s) of the same model in convolve and in PyTorch (CPU, 2
   threads), measured in this run, and their ratio.

    python benchmarks/bench_train.py [--full] [--mnist-dir DIR] [--model mnist_cnn]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from convolve import losses, models, optim, runtime
from convolve.perf.timing import time_interleaved


def run_cli(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "convolve", "train", "--json", "--quiet", *args],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def torch_twin(model_name: str):
    """The zoo model rebuilt in PyTorch (NCHW), layer for layer."""
    import torch

    t = torch.nn
    if model_name == "digits_cnn":
        return t.Sequential(t.Conv2d(1, 16, 3), t.ReLU(), t.MaxPool2d(2), t.Conv2d(16, 32, 3),
                            t.ReLU(), t.MaxPool2d(2), t.Flatten(), t.Linear(800, 10))
    if model_name == "mnist_cnn":
        def block(cin, cout):
            return [t.Conv2d(cin, cout, 3, bias=False), t.BatchNorm2d(cout), t.ReLU(),
                    t.MaxPool2d(2)]
        return t.Sequential(*block(1, 32), *block(32, 64), t.Flatten(), t.Linear(1600, 128),
                            t.ReLU(), t.Dropout(0.3), t.Linear(128, 10))
    raise ValueError(f"no PyTorch twin for {model_name!r}")


def throughput(model_name: str, batch_size: int = 64, steps: int = 30) -> dict:
    """Training images/s of one model in convolve and in PyTorch, interleaved."""
    import torch

    torch.set_num_threads(2)
    runtime.keep_freed_memory()  # as fit does
    rng = np.random.default_rng(0)
    images = rng.random((batch_size, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, batch_size)
    model = models.get_model(model_name, seed=0)
    opt = optim.Adam(model.parameters())
    twin = torch_twin(model_name)
    topt = torch.optim.Adam(twin.parameters())
    x_t = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    y_t = torch.from_numpy(labels)

    def ours():
        loss = losses.cross_entropy(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def theirs():
        loss = torch.nn.functional.cross_entropy(twin(x_t), y_t)
        topt.zero_grad()
        loss.backward()
        topt.step()

    seconds = time_interleaved({"convolve": ours, "torch": theirs}, rounds=-(-steps // 10),
                               calls=10, budget=math.inf, statistic=statistics.median)
    result = {name: batch_size / t for name, t in seconds.items()}
    result["ratio"] = result["convolve"] / result["torch"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also train on full MNIST")
    parser.add_argument("--mnist-dir", default=str(Path(__file__).resolve().parents[2] /
                                                   "shared" / "data" / "mnist"))
    parser.add_argument("--model", default="mnist_cnn")
    args = parser.parse_args()

    rows = []
    default = run_cli()
    rows.append(("convolve train (embedded, defaults)", f"{default['test_accuracy']:.4f}",
                 f"{default['seconds']:.1f}", f"{default['images_per_second']:.0f}"))
    if args.full:
        full = run_cli("--dataset", "mnist", "--data-dir", args.mnist_dir)
        rows.append((f"convolve train --dataset mnist ({full['model']})",
                     f"{full['test_accuracy']:.4f}", f"{full['seconds']:.1f}",
                     f"{full['images_per_second']:.0f}"))
    for name in ("digits_cnn", args.model):
        tp = throughput(name)
        rows.append((f"train step {name}: convolve / torch img/s",
                     f"ratio {tp['ratio']:.2f}", "",
                     f"{tp['convolve']:.0f} / {tp['torch']:.0f}"))
    header = ("run", "test accuracy", "seconds", "images/s")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    print("\n".join(lines))



if __name__ == "__main__":
    main()
