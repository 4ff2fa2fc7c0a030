"""What tests/test_mpi.py runs in each process, alone or under ``mpirun -n K``.

    python tests/mpi_worker.py train OUT EPOCHS [resume]   three small models, checkpoints
    python tests/mpi_worker.py raise | kill | tiny-batch    a fault on one rank, or all

``train`` fits, for EPOCHS epochs (continuing from OUT's checkpoints with ``resume``):
``bn.npz`` a model with batch norm and dropout, ``plain.npz`` one without batch norm
(dropout kept, SGD, random crops and flips), and ``local-bn-rank{R}.npz`` (every rank's own
file) the batch-norm model with ``sync_batchnorm=False`` (on 48 samples). 50 samples in
batches of 16: 3 processes get uneven slices, and the last batch of 2 leaves one of them
without a row.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np

from convolve import checkpoint, distributed, fit, losses, nn
from convolve.data import Augment


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.random((50, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 50)


def model(batch_norm: bool) -> nn.Sequential:
    layers = [nn.Conv2D(4, 3, use_bias=not batch_norm, seed=2)]
    if batch_norm:
        layers.append(nn.BatchNorm2D())
    layers += [nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
               nn.Dense(16, activation="relu", seed=3), nn.Dropout(0.3, seed=4),
               nn.Dense(3, seed=5)]
    net = nn.Sequential(layers)
    net.build((8, 8, 1))
    return net


def train(out: Path, epochs: int, resume: bool) -> None:
    images, labels = data()
    settings = {"epochs": epochs, "batch_size": 16, "verbose": False, "resume": resume,
                "validation_data": (images[:20], labels[:20]), "lr_schedule": "cosine"}
    fit(model(True), (images, labels), checkpoint_path=out / "bn.npz", **settings)
    fit(model(False), (images, labels), optimizer="sgd", checkpoint_path=out / "plain.npz",
        augment=Augment(padding=1), **settings)
    local = model(True)
    # per-process statistics need a row of every batch on every process: 48 = 3 x 16
    fit(local, (images[:48], labels[:48]), sync_batchnorm=False, **settings)
    parallel = distributed.data_parallel()
    rank = 0 if parallel is None else parallel.rank
    checkpoint.save(out / f"local-bn-rank{rank}.npz", local.state_dict(), {})


def fault(kind: str) -> None:
    images, labels = data()
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", 0))
    steps = []

    def loss(logits, target):
        steps.append(1)
        if rank == 1 and len(steps) == 2:
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("a deliberate failure")
        return losses.cross_entropy(logits, target)

    if kind == "tiny-batch":  # per-process statistics of a batch smaller than the ranks
        fit(model(True), (images, labels), batch_size=1, sync_batchnorm=False, verbose=False)
    else:
        fit(model(False), (images, labels), loss=loss, epochs=100, batch_size=16,
            verbose=False)


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:] == ["resume"])
    else:
        fault(sys.argv[1])
