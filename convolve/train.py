"""Training loop: ``fit``, ``evaluate``, ``predict``, early stopping and checkpoints.

A checkpoint written by ``fit`` holds the model's parameters and buffers, the optimizer's
and the schedule's state, the epoch count, the history, the data order's seed and the state
of every random generator the model owns (dropout masks), so that a run stopped after
epoch ``k`` and resumed ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from convolve import _args, checkpoint, distributed, losses, model_info, optim, runtime
from convolve.data import DataLoader, Split
from convolve.nn.module import Module
from convolve.tensor import Tensor, no_grad

LossFn = Callable[[Any, Any], Tensor]
Metric = Callable[[np.ndarray, np.ndarray], float]

LOSSES: dict[str, LossFn] = {"cross_entropy": losses.cross_entropy, "mse": losses.mse}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of rows whose largest logit is at the label."""
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


METRICS: dict[str, Metric] = {"accuracy": accuracy}


class History(dict):
    """Per-epoch values by name (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
    ``lr``, ``seconds``, ``images_per_second``): a dict of lists, one entry per epoch."""

    @property
    def epochs(self) -> int:
        return len(self.get("loss", ()))

    def append(self, logs: Mapping[str, float]) -> None:
        for key, value in logs.items():
            self.setdefault(key, []).append(float(value))


class NonFiniteLossError(ArithmeticError):
    """The loss stopped being finite."""


class DivergenceError(ArithmeticError):
    """The loss grew to ``DIVERGENCE_FACTOR`` times its first value: training diverges."""


DIVERGENCE_FACTOR = 100.0


class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Arguments:
        monitor: a history key, e.g. ``"val_loss"`` (lower is better) or
            ``"val_accuracy"`` (higher is better; any key with "acc" in it).
        patience: epochs without improvement before stopping.
        restore_best_weights: load the best epoch's weights into the model when stopping.
    """

    def __init__(self, monitor: str = "val_loss", *, patience: int = 3, min_delta: float = 0.0,
                 restore_best_weights: bool = False) -> None:
        self.monitor = monitor
        self.patience = _args.integer(patience, "patience")
        self.min_delta = _args.real(min_delta, "min_delta")
        self.restore_best_weights = _args.flag(restore_best_weights, "restore_best_weights")
        self.higher_is_better = "acc" in monitor
        self.best: float | None = None
        self.wait = 0
        self.best_state: dict[str, np.ndarray] | None = None

    def __call__(self, model: Module, logs: Mapping[str, float]) -> bool:
        """Record an epoch's ``logs``; True means stop."""
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which the epoch's logs "
                             f"lack; available: {', '.join(sorted(logs))}")
        value = logs[self.monitor]
        sign = 1 if self.higher_is_better else -1
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_state = model.state_dict()
            return False
        self.wait += 1
        if self.wait < self.patience:
            return False
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]


def _generators(model: Module) -> list[tuple[str, np.random.Generator]]:
    """Every distinct random generator held by the model's modules, by dotted name."""
    found, seen = [], set()
    for prefix, module in model.named_modules():
        for name, value in vars(module).items():
            if isinstance(value, np.random.Generator) and id(value) not in seen:
                seen.add(id(value))
                found.append((f"{prefix}.{name}" if prefix else name, value))
    return found


def _as_loader(data: Any, name: str, batch_size: int, *, shuffle: bool, seed: int | None,
               augment: Any = None) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Split):
        return DataLoader(data.images, data.labels, batch_size, shuffle=shuffle, seed=seed,
                          augment=augment)
    if isinstance(data, Sequence) and len(data) == 2:
        return DataLoader(data[0], data[1], batch_size, shuffle=shuffle, seed=seed,
                          augment=augment)
    raise TypeError(f"{name} must be (images, labels) or a DataLoader; received "
                    f"{_args.describe(data)}")


def _resolve_loss(loss: str | LossFn) -> LossFn:
    if callable(loss):
        return loss
    return LOSSES[_args.choice(loss, "loss", tuple(LOSSES))]


def _resolve_metrics(metrics: Iterable[str | Metric]) -> dict[str, Metric]:
    resolved = {}
    for metric in metrics:
        if callable(metric):
            resolved[getattr(metric, "__name__", "metric")] = metric
        else:
            resolved[metric] = METRICS[_args.choice(metric, "metrics", tuple(METRICS))]
    return resolved


def _resolve_optimizer(optimizer: Any, model: Module, lr: float | None) -> optim.Optimizer:
    if isinstance(optimizer, optim.Optimizer):
        return optimizer
    name = _args.choice(optimizer, "optimizer", ("sgd", "adam", "adamw"))
    if name == "sgd":
        return optim.SGD(model.parameters(), lr=0.01 if lr is None else lr, momentum=0.9)
    cls = optim.Adam if name == "adam" else optim.AdamW
    return cls(model.parameters(), lr=1e-3 if lr is None else lr)


def _resolve_schedule(schedule: Any, optimizer: optim.Optimizer,
                      epochs: int) -> optim.LRSchedule | None:
    if schedule is None or isinstance(schedule, optim.LRSchedule):
        return schedule
    name = _args.choice(schedule, "lr_schedule", ("step", "cosine"))
    if name == "cosine":
        return optim.CosineAnnealingLR(optimizer, t_max=epochs)
    return optim.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)


class _Progress:
    """A tqdm bar per epoch when tqdm is installed and output is wanted; else silence."""

    def __init__(self, verbose: bool, total: int, epoch: int, epochs: int) -> None:
        self.bar = None
        if verbose:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch",
                                file=sys.stderr, leave=True, dynamic_ncols=True,
                                disable=None)  # no bar when stderr is not a terminal

    def update(self, **postfix: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)

    def close(self, **postfix: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()})
            self.bar.close()


def evaluate(model: Module, data: Any, *, batch_size: int = 256,
             loss: str | LossFn = "cross_entropy",
             metrics: Iterable[str | Metric] = ("accuracy",), comm: Any = None
             ) -> dict[str, float]:
    """Mean loss and metrics of ``model`` over ``data``, in evaluation mode without
    recording; the model's mode is restored. With ``comm`` (an mpi4py communicator) every
    process evaluates its share of each batch and all get the sums over the processes.

    ``data``: ``(images, labels)`` (``images: (N, H, W, C)``, ``labels: (N,)``) or a
    DataLoader. Returns ``{"loss": ..., "accuracy": ...}`` (one entry per metric).
    """
    loader = _as_loader(data, "data", batch_size, shuffle=False, seed=0)
    loss_fn, metric_fns = _resolve_loss(loss), _resolve_metrics(metrics)
    totals = dict.fromkeys(["loss", *metric_fns], 0.0)
    count = 0
    parallel = None if comm is None else distributed.data_parallel(comm)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for images, labels in loader:
                if parallel is not None:
                    images, labels = parallel.local(images, labels)
                    if len(labels) == 0:
                        continue
                logits = np.asarray(model(images))
                n = len(labels)
                totals["loss"] += float(np.asarray(loss_fn(logits, labels))) * n
                for name, fn in metric_fns.items():
                    totals[name] += fn(logits, labels) * n
                count += n
    finally:
        model.train(was_training)
    if parallel is not None:
        *sums, count = parallel.sum_values([*totals.values(), count])
        totals = dict(zip(totals, sums))
    if count == 0:
        raise ValueError("data must hold at least one sample; received an empty dataset")
    return {name: total / count for name, total in totals.items()}


def predict(model: Module, images: Any, *, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for ``images: (N, H, W, C)`` as one array: in evaluation mode
    (the model's mode is restored), without recording, ``batch_size`` images at a time.

    Images of another size than a model was trained on (``model.info``) run when the model
    can take them (convolutions and global pooling can); when it cannot, the error names
    the shape it was trained on.

    A Dask array gives a lazy Dask array of outputs, one task per batch chunk
    (``convolve.chunked.predict``, extra ``dask``).
    """
    if _args.is_dask_array(images):
        from convolve import chunked

        return chunked.predict(model, images, batch_size=batch_size)
    images = np.asarray(images)
    batch_size = _args.integer(batch_size, "batch_size")
    if images.ndim == 0 or len(images) == 0:
        raise ValueError("images must be a batch (N, ...) with N >= 1; received an array of "
                         f"shape {images.shape}")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            outs = [np.asarray(model(images[i:i + batch_size]))
                    for i in range(0, len(images), batch_size)]
    except ValueError as error:
        expected = model_info.of(model).input_shape
        if expected is None or images.shape[1:] == expected:
            raise
        raise ValueError(f"images must be (N, {', '.join(map(str, expected))}) for this model, "
                         f"the shape it was trained on; received an array of shape "
                         f"{images.shape} ({error})") from None
    finally:
        model.train(was_training)
    return np.concatenate(outs)


@distributed.collective
def fit(
    model: Module, train_data: Any, *, epochs: int = 1, optimizer: Any = "adam",
    lr: float | None = None, loss: str | LossFn = "cross_entropy", batch_size: int = 64,
    validation_data: Any = None, metrics: Iterable[str | Metric] = ("accuracy",),
    early_stopping: EarlyStopping | None = None, lr_schedule: Any = None,
    checkpoint_path: str | os.PathLike | None = None, resume: bool = False,
    augment: Any = None, seed: int = 0, verbose: bool = True,
    callbacks: Iterable[Callable[[int, Mapping[str, float]], Any]] = (),
    classes: Sequence[str] | None = None, normalization: Mapping[str, Any] | None = None,
    divergence_check: bool = True, comm: Any = None, sync_batchnorm: bool = True,
) -> History:
    """Train ``model`` by mini-batch gradient descent; returns the per-epoch ``History``.

    Arguments:
        model: a ``Module`` mapping images to logits.
        train_data: ``(images, labels)`` (``images: (N, H, W, C)``, ``labels: (N,)``) or a
            ``DataLoader``.
        epochs: the total number of epochs (a resumed run continues up to it).
        optimizer: an ``Optimizer`` or ``"adam"`` / ``"adamw"`` / ``"sgd"`` (momentum 0.9),
            with learning rate ``lr``.
        loss: ``"cross_entropy"``, ``"mse"`` or ``fn(outputs, labels) -> scalar Tensor``.
        validation_data: evaluated after every epoch into ``val_*`` entries.
        metrics: names (``"accuracy"``) or ``fn(logits, labels) -> float``.
        early_stopping: an ``EarlyStopping``, consulted after every epoch.
        lr_schedule: an ``LRSchedule``, ``"step"`` or ``"cosine"``; stepped per epoch.
        checkpoint_path: ``.safetensors`` or ``.npz`` file rewritten atomically after every
            epoch; with ``resume=True`` an existing one is loaded first.
        augment: ``augment(images, rng=...)`` applied to training batches.
        seed: the data order's seed (order of epoch ``e`` depends on ``(seed, e)``).
        verbose: a progress bar per epoch (tqdm) and a line of metrics per epoch.
        callbacks: ``fn(epoch, logs)`` called after every epoch, once its checkpoint is
            written.
        classes: the class names (default: ``train_data.classes`` of a dataset split),
            kept in ``model.info`` and the checkpoint.
        normalization: ``{"mean": ..., "std": ...}`` (one value or one per channel) when
            the images were standardised from ``[0, 1]``; kept for ``convolve predict``.
        divergence_check: stop with ``DivergenceError`` when a batch's loss reaches 100
            times the first batch's loss of this run.
        comm: an mpi4py communicator to train data-parallel over; by default
            ``MPI.COMM_WORLD`` when ``mpirun`` started more than one process. Each process
            trains on its rows of every batch (``batch_size`` is the global batch), the
            result equals one process's to float rounding (``convolve.distributed``);
            rank 0 alone prints and writes checkpoints; callbacks run on every process;
            an exception on any process ends them all (``comm.Abort``).
        sync_batchnorm: with several processes, batch normalisation over the global batch;
            False keeps each process's own statistics.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the message names epoch and step).
        DivergenceError: the loss grew 100-fold (see ``divergence_check``).
    """
    epochs = _args.integer(epochs, "epochs")
    resume, verbose = _args.flag(resume, "resume"), _args.flag(verbose, "verbose")
    runtime.keep_freed_memory()  # a training step's large arrays reuse freed memory
    if checkpoint_path is not None:  # refused now, not after the first epoch's training
        checkpoint.check_writable(checkpoint_path)
    loader = _as_loader(train_data, "train_data", batch_size, shuffle=True, seed=seed,
                        augment=augment)
    loss_fn, metric_fns = _resolve_loss(loss), _resolve_metrics(metrics)
    model.info = model_info.for_training(
        model, loader.images, normalization=normalization,
        classes=classes if classes is not None else getattr(train_data, "classes", None) or None)
    optimizer = _resolve_optimizer(optimizer, model, lr)
    schedule = _resolve_schedule(lr_schedule, optimizer, epochs)
    history = History()
    divergence = _Divergence() if divergence_check else None
    start = 0
    parallel = distributed.data_parallel(comm, sync_batchnorm=sync_batchnorm)
    verbose = verbose and (parallel is None or parallel.is_root)
    if resume and checkpoint_path is not None:
        with distributed.resume_source(checkpoint_path, parallel) as source:
            if source is not None:
                start = _restore(source, model, optimizer, schedule, early_stopping, history)
                if verbose:
                    print(f"resumed from {checkpoint_path} after epoch {start}",
                          file=sys.stderr)
    for epoch in range(start, epochs):
        loader.epoch = epoch
        logs = _train_epoch(model, loader, loss_fn, metric_fns, optimizer, epoch, epochs,
                            verbose, divergence, parallel)
        logs["lr"] = optimizer.lr
        if validation_data is not None:
            val = evaluate(model, validation_data, loss=loss_fn, metrics=metric_fns.values(),
                           comm=None if parallel is None else parallel.comm)
            logs.update({f"val_{k}": v for k, v in val.items()})
        history.append(logs)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: " + ", ".join(
                f"{k} {v:.4g}" for k, v in logs.items()), file=sys.stderr)
        if schedule is not None:
            schedule.step()
        stop = early_stopping is not None and early_stopping(model, logs)
        if checkpoint_path is not None and (parallel is None or parallel.is_root):
            _save(checkpoint_path, model, optimizer, schedule, early_stopping, history,
                  epoch + 1)
        for callback in callbacks:
            callback(epoch, logs)
        if stop:
            if verbose:
                print(f"early stopping after epoch {epoch + 1}: {early_stopping.monitor} has "
                      f"not improved for {early_stopping.patience} epochs", file=sys.stderr)
            break
    return history


class _Divergence:
    """The run's first loss, and whether a later one has grown 100-fold from it."""

    def __init__(self) -> None:
        self.first: float | None = None

    def grew(self, loss: float) -> bool:
        if self.first is None:
            self.first = loss
        return self.first > 0 and loss >= DIVERGENCE_FACTOR * self.first


def _train_epoch(model: Module, loader: DataLoader, loss_fn: LossFn,
                 metric_fns: dict[str, Metric], optimizer: optim.Optimizer, epoch: int,
                 epochs: int, verbose: bool,
                 divergence: _Divergence | None = None,
                 parallel: distributed.DataParallel | None = None) -> dict[str, float]:
    model.train()
    totals = dict.fromkeys(["loss", *metric_fns], 0.0)
    count = 0
    progress = _Progress(verbose, len(loader), epoch + 1, epochs)
    if parallel is not None:
        parallel.reset_counters()
    began = time.perf_counter()
    for step, (images, labels) in enumerate(loader, start=1):
        if parallel is None:
            logits = model(images)
            value = loss_fn(logits, labels)
            current, n = float(np.asarray(value.data)), len(labels)
        else:  # this process's rows, gradients summed over the processes
            current, n, sums = parallel.step(model, images, labels, loss_fn, metric_fns,
                                             optimizer)
        if not math.isfinite(current):
            progress.close()
            raise NonFiniteLossError(
                f"the loss became {current} at epoch {epoch + 1}, step {step}; try a lower "
                f"learning rate (now {optimizer.lr:g})")
        if divergence is not None and divergence.grew(current):
            progress.close()
            raise DivergenceError(
                f"the loss grew from {divergence.first:.4g} to {current:.4g} at epoch "
                f"{epoch + 1}, step {step}: training diverges; try a lower learning rate (now "
                f"{optimizer.lr:g}), or turn this check off (divergence_check=False, "
                "--no-divergence-check)")
        if parallel is None:
            optimizer.zero_grad()
            value.backward()
            sums = {name: fn(np.asarray(logits.data), labels) * n
                    for name, fn in metric_fns.items()}
        optimizer.step()
        count += n
        totals["loss"] += current * n
        for name, value_sum in sums.items():
            totals[name] += value_sum
        seconds = time.perf_counter() - began
        progress.update(**{k: v / count for k, v in totals.items()},
                        img_s=count / max(seconds, 1e-9))
    seconds = time.perf_counter() - began
    logs = {k: v / max(count, 1) for k, v in totals.items()}
    logs["seconds"] = seconds
    logs["images_per_second"] = count / max(seconds, 1e-9)
    if parallel is not None:
        parallel.end_epoch(model)
        logs["rank_images_per_second"] = parallel.images / max(seconds, 1e-9)
        logs["communication_seconds"] = parallel.communication_seconds
    progress.close(**{k: logs[k] for k in totals}, img_s=logs["images_per_second"])
    return logs


# What ``_restore`` needs of a checkpoint's metadata (``checkpoint.validate``); other fields
# are allowed.
_SCHEMA = {
    "format": "str",
    "epoch": "count",
    "optimizer": {"type": "str", "numbers": checkpoint.each("scalar")},
    "schedule": checkpoint.nullable({"base_lr": "number", "epoch": "count"}),
    "early_stopping": checkpoint.nullable({"best": checkpoint.nullable("number"),
                                           "wait": "count"}),
    "history": checkpoint.each(checkpoint.list_of("number")),
    "generators": checkpoint.each({"bit_generator": "str"}),
}


def _save(path: Any, model: Module, optimizer: optim.Optimizer,
          schedule: optim.LRSchedule | None, early_stopping: EarlyStopping | None,
          history: History, epoch: int) -> None:
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    numbers: dict[str, Any] = {}
    for key, value in optimizer.state_dict().items():
        if isinstance(value, np.ndarray):
            arrays[f"optimizer.{key}"] = value
        else:
            numbers[key] = value
    meta = {
        "format": "convolve-training-checkpoint-1",
        "epoch": epoch,
        "optimizer": {"type": type(optimizer).__name__, "numbers": numbers},
        "schedule": None if schedule is None else schedule.state_dict(),
        "early_stopping": None if early_stopping is None else early_stopping.state_dict(),
        "history": dict(history),
        "generators": {name: g.bit_generator.state for name, g in _generators(model)},
        "model": model_info.of(model).to_json(),  # what convolve.models.load rebuilds
    }
    checkpoint.save(path, arrays, meta)


def _checked_generator_states(path: Any, model: Module, states: Mapping[str, Any],
                              ) -> list[tuple[np.random.Generator, Any]]:
    """``(generator, state)`` for each of the model's generators the checkpoint holds, each
    state tried on a fresh bit generator of the same kind first."""
    found = []
    for name, generator in _generators(model):
        if name in states:
            kind = type(generator.bit_generator)
            try:
                kind().state = states[name]
            except (KeyError, TypeError, ValueError) as error:
                raise checkpoint.CheckpointError(
                    f"checkpoint {str(path)!r} has malformed metadata: field "
                    f"'generators.{name}' is not a {kind.__name__} state "
                    f"({type(error).__name__}: {error})") from None
            found.append((generator, states[name]))
    return found


def _restore(path: Any, model: Module, optimizer: optim.Optimizer,
             schedule: optim.LRSchedule | None, early_stopping: EarlyStopping | None,
             history: History) -> int:
    arrays, meta = checkpoint.load(path)
    if meta.get("format") != "convolve-training-checkpoint-1":
        raise checkpoint.CheckpointError(
            f"checkpoint {str(path)!r} is not a training checkpoint (it has no model, "
            "optimizer and epoch); write one with fit(checkpoint_path=...)")
    checkpoint.validate(meta, _SCHEMA, path)
    generators = _checked_generator_states(path, model, meta["generators"])
    if meta["optimizer"]["type"] != type(optimizer).__name__:
        raise checkpoint.CheckpointError(
            f"checkpoint {str(path)!r} holds {meta['optimizer']['type']} state but the "
            f"optimizer is {type(optimizer).__name__}")
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in arrays.items()
                               if k.startswith("model.")})
        optimizer.load_state_dict({
            **{k[len("optimizer."):]: v for k, v in arrays.items()
               if k.startswith("optimizer.")},
            **meta["optimizer"]["numbers"],
        })
    except ValueError as error:
        raise checkpoint.CheckpointError(
            f"checkpoint {str(path)!r} does not match this model or optimizer: {error}"
        ) from None
    for generator, state in generators:
        generator.bit_generator.state = state
    if schedule is not None and meta["schedule"] is not None:
        schedule.load_state_dict(meta["schedule"])
    if early_stopping is not None and meta["early_stopping"] is not None:
        early_stopping.load_state_dict(meta["early_stopping"])
    history.clear()
    history.update(meta["history"])
    return int(meta["epoch"])
