"""``convolve train``: train a zoo model on a dataset and report its test accuracy."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from convolve import checkpoint, data, distributed, models, train
from convolve.commands import CommandError

# Dataset name on the command line -> (loader name, default model, augmentation).
DATASETS = {
    "default": ("embedded-mnist", "digits_cnn", False),
    "mnist": ("mnist", "mnist_cnn", False),
    "fashion-mnist": ("fashion-mnist", "mnist_cnn", False),
    "cifar10": ("cifar10", "cifar_cnn", True),
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train", help="train a model and report its test accuracy",
        description="Train a model from the zoo on a dataset. With no arguments: the small "
                    "MNIST subset shipped inside the package, offline. Prints the model "
                    "summary, a progress bar per epoch and the final test accuracy. Started "
                    "by mpirun -n K (extra mpi), it trains data-parallel on K processes.")
    parser.add_argument("--dataset", choices=tuple(DATASETS), default="default",
                        help="default: the embedded MNIST subset (default)")
    parser.add_argument("--data-dir", help="folder holding the dataset's standard files")
    parser.add_argument("--download", action="store_true",
                        help="fetch the dataset's files once, checked by SHA-256")
    parser.add_argument("--model", choices=tuple(models.MODELS),
                        help="default: the dataset's own (digits_cnn, mnist_cnn, cifar_cnn)")
    parser.add_argument("--epochs", type=int,
                        help="default: the model's (3 for digits_cnn and mnist_cnn)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="images per step (default 64; under mpirun the global batch)")
    parser.add_argument("--lr", type=float,
                        help="learning rate (default: the model's for adam, e.g. 2e-3 for "
                             "mnist_cnn; 0.01 for sgd)")
    parser.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default="adam",
                        help="default adam")
    parser.add_argument("--schedule", choices=("none", "step", "cosine"), default="cosine",
                        help="learning-rate schedule (default cosine)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the weights, shuffling and augmentation (default 0)")
    parser.add_argument("--checkpoint", help="a .safetensors or .npz file written after "
                                             "every epoch")
    parser.add_argument("--resume", action="store_true",
                        help="continue from --checkpoint if it exists")
    parser.add_argument("--json", action="store_true",
                        help="end the output with one JSON line of results")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the test accuracy line (and the --json line): no "
                             "model summary, progress bars or per-epoch lines")
    parser.add_argument("--no-divergence-check", dest="divergence_check",
                        action="store_false",
                        help="keep training when the loss grows to 100 times its first value "
                             "(by default that stops training with an error, as NaN does)")
    parser.set_defaults(run=run)


def _check(args: argparse.Namespace) -> None:
    """Every argument, before any work."""
    if args.resume and not args.checkpoint:
        raise CommandError("--resume needs --checkpoint PATH")
    if args.checkpoint:  # an unwritable folder is reported before any data is read
        checkpoint.check_writable(args.checkpoint)
    if args.data_dir is not None and not os.path.isdir(args.data_dir) and not args.download:
        raise CommandError(f"--data-dir {args.data_dir!r} is not a folder")
    if args.epochs is not None and args.epochs < 1:
        raise CommandError(f"--epochs must be >= 1; received {args.epochs}")
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1; received {args.batch_size}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise CommandError(f"--lr must be a finite number > 0; received {args.lr}")
    if args.seed < 0:
        raise CommandError(f"--seed must be >= 0; received {args.seed}")
    if args.checkpoint is not None:
        checkpoint.check_path(args.checkpoint)


def _dataset(name: str, args: argparse.Namespace) -> data.Dataset:
    if name == "embedded-mnist":
        return data.embedded_mnist()
    try:
        return data.load(name, args.data_dir, download=args.download)
    except FileNotFoundError as error:  # the library's hint names its argument, not the flag
        raise FileNotFoundError(str(error).replace("pass download=True", "pass --download")
                                ) from None


def run(args: argparse.Namespace) -> int:
    """Train; under ``mpirun -n K`` data-parallel, rank 0 printing, any rank's error
    ending every rank."""
    parallel = distributed.data_parallel()
    if parallel is None:
        return _run(args, None)
    with distributed.abort_on_error(parallel.comm, "convolve train", plain=(
            CommandError, ValueError, TypeError, OSError, ImportError)):
        return _run(args, parallel)


def _run(args: argparse.Namespace, parallel: distributed.DataParallel | None) -> int:
    root = parallel is None or parallel.is_root
    comm = None if parallel is None else parallel.comm
    loader_name, default_model, augment = DATASETS[args.dataset]
    _check(args)
    model_name = args.model or default_model
    with distributed.root_first(parallel if args.download else None):  # one download
        dataset = _dataset(loader_name, args)
    model = models.get_model(model_name, input_shape=dataset.image_shape,
                             num_classes=len(dataset.classes), seed=args.seed)
    defaults = models.training_defaults(model_name)
    epochs = defaults["epochs"] if args.epochs is None else args.epochs
    lr = args.lr
    if lr is None and args.optimizer != "sgd":
        lr = defaults["lr"]
    if not args.quiet and root:
        model.summary(dataset.image_shape)
    began = time.perf_counter()
    try:
        history = train.fit(
            model, dataset.train, epochs=epochs, optimizer=args.optimizer, lr=lr,
            batch_size=args.batch_size, lr_schedule=None if args.schedule == "none"
            else args.schedule, checkpoint_path=args.checkpoint, resume=args.resume,
            augment=data.Augment() if augment else None, seed=args.seed,
            verbose=not args.quiet, classes=dataset.classes,
            divergence_check=args.divergence_check, comm=comm)
    except (train.NonFiniteLossError, train.DivergenceError) as error:
        raise CommandError(str(error)) from None
    seconds = time.perf_counter() - began
    result = train.evaluate(model, dataset.test, comm=comm)
    trained = history.get("seconds", [])
    ranks = None if parallel is None else parallel.gather(_rank_numbers(history))
    if not root:
        return 0
    print(f"test accuracy {result['accuracy']:.4f} (loss {result['loss']:.4f}) after "
          f"{history.epochs} epoch{'s' * (history.epochs != 1)} in {seconds:.1f} s")
    if args.json:
        images = len(dataset.train.labels) * len(trained)
        print(json.dumps({
            "dataset": loader_name, "model": model_name,
            "test_accuracy": round(result["accuracy"], 6),
            "test_loss": round(result["loss"], 6), "epochs": history.epochs,
            "seconds": round(seconds, 3),
            "images_per_second": round(images / max(sum(trained), 1e-9), 1),
            **_parallel_numbers(ranks, math.ceil(len(dataset.train.labels) / args.batch_size)
                                * len(trained)),
        }))
    sys.stdout.flush()
    return 0


def _rank_numbers(history: train.History) -> tuple[float, float]:
    """This process's training images per second and seconds in collectives, over the
    epochs this run trained."""
    seconds = history.get("seconds", [])
    rates = history.get("rank_images_per_second", [])
    images = sum(r * t for r, t in zip(rates, seconds))
    return images / max(sum(seconds), 1e-9), sum(history.get("communication_seconds", []))


def _parallel_numbers(ranks: list[tuple[float, float]] | None, steps: int) -> dict:
    """``--json``'s data-parallel entries: the process count, each one's images per
    second, and the mean seconds per step spent in collectives."""
    if ranks is None:
        return {"world_size": 1}
    return {
        "world_size": len(ranks),
        "rank_images_per_second": [round(rate, 1) for rate, _ in ranks],
        "communication_seconds_per_step": round(
            sum(c for _, c in ranks) / len(ranks) / max(steps, 1), 6),
    }
