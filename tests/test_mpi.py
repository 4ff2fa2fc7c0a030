"""Data-parallel training over MPI: K processes end where one process ends.

The batch-norm and dropout pieces are checked in this process (K threads stand in for K
processes summing their statistics); training itself runs in real ``mpirun`` processes
(``tests/mpi_worker.py``), skipped when mpi4py or mpirun is missing.
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
from convolve import Tensor, checkpoint, distributed

ROOT = Path(__file__).resolve().parent.parent
WORKER = str(ROOT / "tests" / "mpi_worker.py")


# -- in this process ------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(total=st.integers(0, 200), size=st.integers(1, 9))
def test_bounds_split_a_batch_into_disjoint_near_equal_slices(total, size):
    parts = [distributed.bounds(total, rank, size) for rank in range(size)]
    assert parts[0][0] == 0 and parts[-1][1] == total
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    lengths = [stop - start for start, stop in parts]
    assert max(lengths) - min(lengths) <= 1


class ThreadGroup:
    """K threads summing arrays as K processes would with MPI's Allreduce."""

    def __init__(self, size):
        self.size = size
        self.barrier = threading.Barrier(size)
        self.parts = [None] * size

    def allreduce_of(self, rank):
        def allreduce(values):
            self.parts[rank] = np.array(values)
            self.barrier.wait()
            total = sum(self.parts[1:], self.parts[0].copy())
            self.barrier.wait()
            return total
        return allreduce

    def run(self, fn):
        results = [None] * self.size
        errors = []

        def target(rank):
            try:
                results[rank] = fn(rank, self.allreduce_of(rank))
            except BaseException as error:  # reported below, not lost in the thread
                errors.append(error)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 9), size=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_synchronised_batch_norm_equals_batch_norm_of_the_global_batch(n, size, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3, 2, 4))
    weight = rng.normal(size=x.shape)  # loss = sum(y * weight)
    gamma, beta = rng.normal(size=4), rng.normal(size=4)

    def run(rows, allreduce=None):
        """batch_norm of rows ``[start, stop)`` of x, then loss = sum(y * weight)."""
        xt = Tensor(x[slice(*rows)], requires_grad=True)
        gt, bt = Tensor(gamma, requires_grad=True), Tensor(beta, requires_grad=True)
        mean, var = np.zeros(4), np.ones(4)
        y = convolve.batch_norm(xt, gt, bt, mean, var, training=True, allreduce=allreduce)
        (y * weight[slice(*rows)]).sum().backward()
        return np.asarray(y), xt.grad, gt.grad, bt.grad, mean, var

    y, dx, dgamma, dbeta, mean, var = run((0, n))

    def rank_run(rank, allreduce):
        return run(distributed.bounds(n, rank, size), allreduce)

    parts = ThreadGroup(size).run(rank_run)
    np.testing.assert_allclose(np.concatenate([p[0] for p in parts]), y, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), dx, atol=1e-12)
    np.testing.assert_allclose(sum(p[2] for p in parts), dgamma, atol=1e-12)
    np.testing.assert_allclose(sum(p[3] for p in parts), dbeta, atol=1e-12)
    for p in parts:  # every process's running statistics are the global batch's
        np.testing.assert_allclose(p[4], mean, atol=1e-12)
        np.testing.assert_allclose(p[5], var, atol=1e-12)


def test_synchronised_batch_norm_counts_values_over_every_process():
    def run(rank, allreduce):  # one value per channel in all: no variance to compute
        return convolve.batch_norm(np.zeros((rank, 3)), None, None, None, None,
                                   training=True, allreduce=allreduce)

    with pytest.raises(ValueError, match=re.escape(
            "batch_norm in training needs more than one value per channel to compute the "
            "variance; received x of shape (")):
        ThreadGroup(2).run(run)


@settings(max_examples=50, deadline=None)
@given(total=st.integers(1, 20), size=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_dropout_of_a_slice_keeps_the_global_batch_mask(total, size, seed):
    x = np.random.default_rng(seed).normal(size=(total, 7)).astype(np.float32)
    whole = convolve.dropout(x, 0.4, rng=np.random.default_rng(seed))
    parts = []
    for rank in range(size):
        start, stop = distributed.bounds(total, rank, size)
        parts.append(convolve.dropout(x[start:stop], 0.4, rng=np.random.default_rng(seed),
                                      rows=(start, total)))
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_dropout_rows_outside_the_batch_are_refused():
    with pytest.raises(ValueError, match=re.escape(
            "rows must be (start, total) with 0 <= start <= total - len(x); received (3, 4) "
            "for x of shape (2, 5)")):
        convolve.dropout(np.ones((2, 5)), 0.5, rng=0, rows=(3, 4))


def test_the_launcher_is_read_from_the_environment(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.launched_size() == 1
    assert distributed.world() is None and distributed.data_parallel() is None
    monkeypatch.setenv("PMI_SIZE", "3")
    assert distributed.launched_size() == 3


def test_importing_convolve_and_training_alone_import_no_mpi():
    code = ("import sys, numpy as np, convolve\n"
            "from convolve import nn\n"
            "m = nn.Sequential([nn.Flatten(), nn.Dense(2, seed=0)]); m.build((2, 2, 1))\n"
            "convolve.fit(m, (np.ones((4, 2, 2, 1)), np.arange(4) % 2), verbose=False)\n"
            "print('mpi4py' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if "OMPI" not in k and "PMI" not in k}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(ROOT)}, check=True)
    assert out.stdout.strip() == "False"


def test_json_numbers_of_a_data_parallel_run():
    from convolve.commands.train import _parallel_numbers

    assert _parallel_numbers(None, 10) == {"world_size": 1}
    assert _parallel_numbers([(100.0, 0.5), (90.04, 0.3)], 10) == {
        "world_size": 2, "rank_images_per_second": [100.0, 90.0],
        "communication_seconds_per_step": 0.04}


# -- real mpirun processes ------------------------------------------------------------
def _mpirun():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    return shutil.which("mpirun") or shutil.which("mpirun", path=str(Path(sys.executable).parent))


MPIRUN = _mpirun()
needs_mpi = pytest.mark.skipif(MPIRUN is None, reason="needs mpi4py and mpirun (the mpi extra)")

# Root may run mpirun in CI containers; more ranks than cores; one thread each (tiny models).
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
           "CONVOLVE_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def launch(processes, *args, timeout=120):
    """Run ``args`` (after ``python``) in one process without MPI, or under ``mpirun -n``."""
    command = [sys.executable, *args]
    if processes > 1:
        command = [MPIRUN, "-n", str(processes), "--bind-to", "none", *command]
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **MPI_ENV}, cwd=ROOT)
    return result, time.perf_counter() - began


def train(folder, processes, epochs, *extra):
    folder.mkdir(parents=True, exist_ok=True)
    result, _ = launch(processes, WORKER, "train", str(folder), str(epochs), *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two epochs of the worker's models by 1, 2 and 3 processes, and by 2 processes
    stopped after one epoch and resumed."""
    base = tmp_path_factory.mktemp("mpi")
    folders = {k: train(base / f"k{k}", k, 2) for k in (1, 2, 3)}
    train(base / "resumed", 2, 1)
    folders["resumed"] = train(base / "resumed", 2, 2, "resume")
    return folders


TIMING = ("seconds", "images_per_second", "rank_images_per_second", "communication_seconds")


def assert_same_checkpoint(path, reference):
    arrays, meta = checkpoint.load(path)
    expected, expected_meta = checkpoint.load(reference)
    assert arrays.keys() == expected.keys()
    for name in arrays:
        np.testing.assert_allclose(arrays[name], expected[name], rtol=0, atol=2e-6,
                                   err_msg=name)
    for key in ("format", "epoch", "optimizer", "schedule", "generators"):
        assert meta[key] == expected_meta[key], key
    history = {k: v for k, v in meta["history"].items() if k not in TIMING}
    expected_history = {k: v for k, v in expected_meta["history"].items() if k not in TIMING}
    assert history.keys() == expected_history.keys()
    for key in history:
        np.testing.assert_allclose(history[key], expected_history[key], rtol=1e-5)


@needs_mpi
@pytest.mark.parametrize("processes", [2, 3])
@pytest.mark.parametrize("name", ["bn.npz", "plain.npz"])
def test_k_processes_end_with_one_process_weights_and_checkpoint(runs, processes, name):
    assert_same_checkpoint(runs[processes] / name, runs[1] / name)


@needs_mpi
@pytest.mark.parametrize("name", ["bn.npz", "plain.npz"])
def test_resuming_under_mpi_equals_an_uninterrupted_run(runs, name):
    assert_same_checkpoint(runs["resumed"] / name, runs[2] / name)


@needs_mpi
@pytest.mark.parametrize("processes", [2, 3])
def test_per_process_batch_statistics_leave_every_process_the_same_model(runs, processes):
    states = [checkpoint.read_arrays(runs[processes] / f"local-bn-rank{r}.npz")
              for r in range(processes)]
    for state in states[1:]:
        for name in state:
            np.testing.assert_array_equal(state[name], states[0][name], err_msg=name)
    synchronised = checkpoint.read_arrays(runs[processes] / "bn.npz")
    assert not np.allclose(states[0]["1.running_var"], synchronised["model.1.running_var"])


@needs_mpi
@pytest.mark.parametrize(("kind", "line"), [
    ("raise", "convolve: error: rank 1: RuntimeError: a deliberate failure"),
    ("kill", "rank 1"),
    ("tiny-batch", "convolve: error: rank 0: ValueError: with sync_batchnorm=False every "
                   "process needs a sample of every batch; a batch of 1 samples over 2 "
                   "processes leaves some without one (use sync_batchnorm=True or another "
                   "batch size)"),
])
def test_a_failing_rank_ends_the_job_quickly(kind, line):
    result, seconds = launch(2, WORKER, kind, timeout=60)
    assert result.returncode != 0
    assert seconds < 30
    if kind == "tiny-batch":  # raised by every rank: whichever aborts first is named
        line = line if "rank 0" in result.stderr else line.replace("rank 0", "rank 1")
    assert line in result.stderr, result.stderr[-3000:]


@needs_mpi
def test_cli_errors_under_mpi_name_the_rank():
    result, seconds = launch(2, "-m", "convolve", "train", "--resume", timeout=60)
    assert result.returncode != 0 and seconds < 30
    assert re.search(r"^convolve train: error: rank [01]: --resume needs --checkpoint PATH$",
                     result.stderr, re.MULTILINE), result.stderr[-3000:]


@needs_mpi
def test_cli_trains_under_mpi_and_rank_0_alone_reports(tmp_path):
    result, _ = launch(2, "-m", "convolve", "train", "--epochs", "1", "--batch-size", "400",
                       "--quiet", "--json", "--checkpoint", str(tmp_path / "c.npz"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("test accuracy ")
    report = json.loads(lines[1])
    assert report["world_size"] == 2 and len(report["rank_images_per_second"]) == 2
    assert report["test_accuracy"] > 0.8
    assert checkpoint.load(tmp_path / "c.npz")[1]["epoch"] == 1
