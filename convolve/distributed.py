"""Data-parallel training over MPI: ``mpirun -n K`` processes train one model together.

Needs the ``mpi`` extra (``mpi4py`` and Open MPI's wheels, which bring ``mpirun``), imported
only when a run has more than one process. ``fit`` and ``evaluate`` call into this module.

Why K processes end where one process ends (to float rounding):

- every process holds the same model (built from the one seed) and reads the same data
  order; each takes rows ``[start, stop)`` of every global batch (``bounds``: uneven where K
  does not divide the batch, empty where the batch has fewer rows than processes);
- each backpropagates its slice's mean loss scaled by its share ``n / total``, so the sum of
  the processes' gradients (one Allreduce of a flat buffer per step, which also carries
  the loss and metric sums) is the gradient of the global batch's mean loss;
- batch normalisation normalises with the global batch's statistics (``BatchNorm2D``'s
  ``allreduce``), and its input gradient accounts for them; ``sync_batchnorm=False`` keeps
  them per process and averages the running statistics at the end of every epoch;
- dropout draws the masks of the whole global batch from the layer's generator (the same on
  every process) and keeps the process's rows, so an example gets the same mask for any K;
  augmentation, done by the data loader on the global batch, likewise.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve.nn.module import Module
from convolve.nn.norm import BatchNorm2D
from convolve.nn.regularization import global_batch_rows

# Set by mpirun (Open MPI), mpiexec (MPICH, Intel MPI) and MVAPICH in every process.
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


# How long a process waiting in a collective polls before it naps between polls.
SPIN_SECONDS = 1e-3
NAP_SECONDS = 1e-4


def launched_size() -> int:
    """The number of processes the MPI launcher started (1 when none did), from its
    environment, without importing MPI."""
    sizes = [int(os.environ[v]) for v in _SIZE_VARIABLES if os.environ.get(v, "").isdigit()]
    return max(sizes, default=1)


def _mpi() -> Any:
    # A process waiting in a collective gives its core away instead of spinning: on a busy
    # or oversubscribed machine the spinning took the core the slower process needed (2
    # processes on 2 shared cores: 134 ms per mnist_cnn step waiting, 48 ms yielding).
    os.environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError(
            f"this process is one of {launched_size()} started by an MPI launcher, but "
            "mpi4py is not installed: pip install 'convolve[mpi]'") from None
    return MPI


def world(comm: Any = None) -> Any:
    """The communicator to train over: ``comm`` when given, else ``MPI.COMM_WORLD`` when
    an MPI launcher started more than one process, else None (one process)."""
    if comm is not None:
        return comm
    if launched_size() <= 1:
        return None
    return _mpi().COMM_WORLD


def bounds(total: int, rank: int, size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of a global batch of ``total`` rows that process ``rank`` of
    ``size`` takes: contiguous, disjoint, covering the batch, sizes differing by at most 1."""
    return total * rank // size, total * (rank + 1) // size


class DataParallel:
    """One process's side of a data-parallel run over communicator ``comm`` (mpi4py).

    ``communication_seconds`` sums the time spent in collectives (waiting for the slower
    processes included) since ``reset_counters``; ``images`` the rows this process trained.
    """

    def __init__(self, comm: Any, *, sync_batchnorm: bool = True) -> None:
        self.MPI = _mpi()
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.sync_batchnorm = bool(sync_batchnorm)
        self._buffer: np.ndarray | None = None
        self.reset_counters()

    def reset_counters(self) -> None:
        self.communication_seconds = 0.0
        self.images = 0

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def local(self, images: Any, labels: Any) -> tuple[Any, Any]:
        """This process's rows of a global batch."""
        start, stop = bounds(len(labels), self.rank, self.size)
        return images[start:stop], labels[start:stop]

    # -- collectives ------------------------------------------------------------------
    def allreduce(self, values: np.ndarray) -> np.ndarray:
        """``values`` summed over the processes (a new array)."""
        out = np.array(values)
        self._sum_in_place(out)
        return out

    def _sum_in_place(self, buffer: np.ndarray) -> None:
        """``buffer`` summed over the processes. A process that waits for the others spins
        briefly, then naps: on a busy machine the spinning took the core that a slower
        process needed."""
        began = time.perf_counter()
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        while not request.Test():
            if time.perf_counter() - began > SPIN_SECONDS:
                time.sleep(NAP_SECONDS)
        self.communication_seconds += time.perf_counter() - began

    def sum_values(self, values: Sequence[float]) -> list[float]:
        """Numbers summed over the processes, in float64."""
        return self.allreduce(np.asarray(values, dtype=np.float64)).tolist()

    def gather(self, value: Any) -> list[Any] | None:
        """Every process's ``value`` in rank order on rank 0; None elsewhere."""
        return self.comm.gather(value, root=0)

    def _sum_gradients(self, params: Sequence[Any], extras: Sequence[float]) -> list[float]:
        """Sum every parameter's gradient (None counts as zeros and stays None) and
        ``extras`` over the processes, in one Allreduce of one flat buffer."""
        sizes = [p.data.size for p in params]
        total = sum(sizes) + len(extras)
        dtype = np.result_type(*(p.data.dtype for p in params))
        if self._buffer is None or self._buffer.size != total or self._buffer.dtype != dtype:
            self._buffer = np.empty(total, dtype)
        buffer, offset = self._buffer, 0
        for p, size in zip(params, sizes):
            part = buffer[offset:offset + size]
            if p.grad is None:
                part[:] = 0
            else:
                part[:] = p.grad.ravel()
            offset += size
        buffer[offset:] = extras
        self._sum_in_place(buffer)
        offset = 0
        for p, size in zip(params, sizes):
            if p.grad is not None:
                p.grad = buffer[offset:offset + size].reshape(p.data.shape).copy()
            offset += size
        return buffer[offset:].astype(np.float64).tolist()

    # -- training ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _synchronised(self, model: Module) -> Iterator[None]:
        """Batch normalisation over the global batch within this block (when asked)."""
        norms = [m for _, m in model.named_modules() if isinstance(m, BatchNorm2D)]
        if not self.sync_batchnorm:
            yield
            return
        for m in norms:
            m.allreduce = self.allreduce
        try:
            yield
        finally:
            for m in norms:
                m.allreduce = None

    def step(self, model: Module, images: Any, labels: Any, loss_fn: Callable[..., Any],
             metric_fns: dict[str, Callable[..., float]], optimizer: Any
             ) -> tuple[float, int, dict[str, float]]:
        """Forward and backward of this process's rows of the global batch ``images``,
        ``labels``, then the gradients summed over the processes into every parameter's
        ``grad`` (the optimizer steps next).

        Returns the global batch's mean loss, its size and its metric sums (metric times
        rows, summed)."""
        total = len(labels)
        start, stop = bounds(total, self.rank, self.size)
        images, labels = images[start:stop], labels[start:stop]
        n = stop - start
        if not self.sync_batchnorm and total < self.size and any(
                isinstance(m, BatchNorm2D) for _, m in model.named_modules()):
            raise ValueError(
                f"with sync_batchnorm=False every process needs a sample of every batch; a "
                f"batch of {total} samples over {self.size} processes leaves some without "
                "one (use sync_batchnorm=True or another batch size)")
        optimizer.zero_grad()
        with self._synchronised(model):
            with global_batch_rows(start, total):  # every process draws the same masks
                logits = model(images)
            if n:
                value = loss_fn(logits, labels)
                loss = float(np.asarray(value.data))
                value.backward(np.asarray(n / total, dtype=value.dtype))
                outputs = np.asarray(logits.data)
                sums = [fn(outputs, labels) * n for fn in metric_fns.values()]
            else:  # nothing to learn from, but batch norm's collectives must run
                logits.backward(np.zeros(logits.shape, logits.dtype))
                loss, sums = 0.0, [0.0] * len(metric_fns)
        summed = self._sum_gradients(optimizer.params, [loss * n, *sums, n])
        self.images += n
        return summed[0] / total, total, dict(zip(metric_fns, summed[1:-1]))

    def end_epoch(self, model: Module) -> None:
        """With per-process batch statistics, every running statistic becomes the
        processes' mean, so that all processes hold the same model."""
        if self.sync_batchnorm:
            return
        for _, m in model.named_modules():
            if isinstance(m, BatchNorm2D) and m.running_mean is not None:
                for name in ("running_mean", "running_var"):
                    buffer = getattr(m, name)
                    buffer[...] = self.allreduce(buffer.astype(np.float64)) / self.size

    @contextlib.contextmanager
    def resume_source(self, path: str | os.PathLike) -> Iterator[str | os.PathLike | None]:
        """The checkpoint at ``path`` on rank 0, as a path this process can read: rank 0's
        file is sent to the others (which need not see rank 0's disk). None where rank 0
        has no such file."""
        payload = Path(path).read_bytes() if self.is_root and os.path.exists(path) else None
        size = self.comm.bcast(None if payload is None else len(payload), root=0)
        if size is None:
            yield None
            return
        buffer = (np.frombuffer(payload, np.uint8).copy() if self.is_root
                  else np.empty(size, np.uint8))
        self.comm.Bcast(buffer, root=0)
        if self.is_root:
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="convolve-resume-") as folder:
            copy = Path(folder) / Path(path).name
            copy.write_bytes(buffer.tobytes())
            yield copy


def data_parallel(comm: Any = None, *, sync_batchnorm: bool = True) -> DataParallel | None:
    """This process's ``DataParallel`` over ``world(comm)``; None for one process."""
    comm = world(comm)
    if comm is None or comm.Get_size() == 1:
        return None
    return DataParallel(comm, sync_batchnorm=sync_batchnorm)


@contextlib.contextmanager
def root_first(parallel: DataParallel | None) -> Iterator[None]:
    """Rank 0 runs this block before the other processes do (e.g. a download into a cache
    they share); the block as is for one process."""
    if parallel is not None and not parallel.is_root:
        parallel.comm.Barrier()
    yield
    if parallel is not None and parallel.is_root:
        parallel.comm.Barrier()


@contextlib.contextmanager
def resume_source(path: str | os.PathLike, parallel: DataParallel | None
                  ) -> Iterator[str | os.PathLike | None]:
    """The checkpoint to resume from: ``path`` when it exists (rank 0's file under MPI,
    copied to every process), else None."""
    if parallel is not None:
        with parallel.resume_source(path) as source:
            yield source
    else:
        yield path if os.path.exists(path) else None


_guarding = False  # an abort_on_error block is open in this process


@contextlib.contextmanager
def abort_on_error(comm: Any, program: str, *, plain: tuple[type, ...] = ()
                   ) -> Iterator[None]:
    """An exception leaving this block ends every process of ``comm``: one line on stderr,
    ``PROGRAM: error: rank R: ...``, then ``comm.Abort(1)``, so that the others never wait
    for a process that has stopped. Exceptions of the ``plain`` types print their message
    alone, others ``Type: message``. Inside another such block this one does nothing."""
    global _guarding
    if _guarding or comm is None:
        yield
        return
    _guarding = True
    try:
        yield
    except BaseException as error:  # KeyboardInterrupt and SystemExit too: never hang
        text = str(error) if isinstance(error, plain) else f"{type(error).__name__}: {error}"
        print(f"{program}: error: rank {comm.Get_rank()}: {' '.join(text.split())}",
              file=sys.stderr, flush=True)
        comm.Abort(1)
        raise  # pragma: no cover - Abort does not return
    finally:
        _guarding = False


def collective(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` (which takes ``comm=``) inside ``abort_on_error`` when it runs on more
    than one process."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        comm = world(kwargs.get("comm"))
        if comm is None or comm.Get_size() == 1:
            return fn(*args, **kwargs)
        with abort_on_error(comm, "convolve"):
            return fn(*args, **kwargs)

    return wrapper
