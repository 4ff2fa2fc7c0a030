"""Bad model files: truncated, bit-flipped and structurally mutated copies of a small valid
model. ``load`` must either refuse one with its own error (a ``ValueError``) or give a
model that runs; never another exception, a hang, or a huge allocation."""

from __future__ import annotations

import signal
import time
import tracemalloc

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed: convolve.onnx tests skipped")

from convolve import onnx as convolve_onnx  # noqa: E402
from convolve.onnx.errors import OnnxError  # noqa: E402

helper, numpy_helper, TensorProto = onnx.helper, onnx.numpy_helper, onnx.TensorProto
SEED = 20261202
BUDGET_S = 12.0  # for all cases together
CASE_LIMIT_S = 10  # one case longer than this is a hang
MEMORY_LIMIT = 256 * 2**20  # bytes allocated at once by one case
INPUT_SHAPE = (1, 3, 8, 8)


def small_model() -> bytes:
    """Conv + BatchNorm + Relu + MaxPool + Flatten + Gemm + Softmax on ``(N, 3, 8, 8)``."""
    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1),
    ]
    inits = [init("w", 4, 3, 3, 3), init("b", 4), init("g", 4), init("beta", 4),
             init("mean", 4), numpy_helper.from_array(np.full(4, 0.5, np.float32), "var"),
             init("w2", 5, 64), init("b2", 5)]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def truncated(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def bit_flipped(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        position = int(rng.integers(0, len(out)))
        out[position] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def mutated(data: bytes, rng: np.random.Generator) -> bytes:
    """A well-formed protobuf with one hostile edit: huge or negative dims, attributes out
    of range, a node reading its own output (a cycle), a dropped node, or an initializer
    whose bytes do not match its shape."""
    model = onnx.load_from_string(data)
    graph = model.graph
    choice = int(rng.integers(0, 7))
    if choice == 0:
        tensor = graph.initializer[int(rng.integers(0, len(graph.initializer)))]
        tensor.dims[int(rng.integers(0, len(tensor.dims)))] = int(
            rng.choice([0, -1, 2**31, 2**40, 7]))
    elif choice == 1:
        node = graph.node[int(rng.integers(0, len(graph.node)))]
        for attribute in node.attribute:
            if attribute.ints:
                attribute.ints[int(rng.integers(0, len(attribute.ints)))] = int(
                    rng.choice([0, -3, 2**20, 2**62]))
            elif attribute.type == onnx.AttributeProto.INT:
                attribute.i = int(rng.choice([-5, 99, 2**62]))
    elif choice == 2:
        node = graph.node[int(rng.integers(0, len(graph.node)))]
        node.input[0] = node.output[0]
    elif choice == 3:
        del graph.node[int(rng.integers(0, len(graph.node)))]
    elif choice == 4:
        tensor = graph.initializer[int(rng.integers(0, len(graph.initializer)))]
        tensor.raw_data = tensor.raw_data[: int(rng.integers(0, len(tensor.raw_data)))]
    elif choice == 5:
        dim = graph.input[0].type.tensor_type.shape.dim[int(rng.integers(0, 4))]
        dim.dim_value = int(rng.choice([0, 1, 2**40]))
    else:
        a, b = (int(i) for i in rng.choice(len(graph.node), 2, replace=False))
        graph.node[a].input[0], graph.node[b].input[0] = graph.node[b].input[0], \
            graph.node[a].input[0]
    return model.SerializeToString()


class _HangError(Exception):
    pass


def _alarm(signum, frame):
    raise _HangError


def check_case(data: bytes, x: np.ndarray) -> str:
    """What happened to one file: "refused", "ran" or "refused at run"; raises on a crash
    of another kind, a hang or a huge allocation."""
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    signal.alarm(CASE_LIMIT_S)
    try:
        try:
            net = convolve_onnx.load(data)
        except OnnxError as error:
            assert str(error), "the error has a message"
            return "refused"
        try:
            net.run({net.input_names[0]: x})
        except (ValueError, TypeError):
            # the file declares one shape (or type) and computes another: found when it runs
            return "refused at run"
        return "ran"
    except _HangError:
        raise AssertionError(f"a case ran past {CASE_LIMIT_S} s") from None
    finally:
        signal.alarm(0)
        peak = tracemalloc.get_traced_memory()[1] - before
        assert peak < MEMORY_LIMIT, f"a case allocated {peak / 2**20:.0f} MiB"


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM to catch hangs")
def test_corrupt_files_are_refused_or_run():
    valid = small_model()
    x = np.random.default_rng(1).standard_normal(INPUT_SHAPE).astype(np.float32)
    rng = np.random.default_rng(SEED)
    outcomes: dict[str, dict[str, int]] = {}
    previous = signal.signal(signal.SIGALRM, _alarm)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        assert check_case(valid, x) == "ran"
        while time.perf_counter() - start < BUDGET_S:
            for corrupt in (truncated, bit_flipped, mutated):
                data = corrupt(valid, rng)
                try:
                    outcome = check_case(data, x)
                except AssertionError:
                    raise
                except Exception as error:
                    raise AssertionError(
                        f"{corrupt.__name__} file ({len(data)} bytes) raised "
                        f"{type(error).__name__}: {error}") from error
                counts = outcomes.setdefault(corrupt.__name__, {})
                counts[outcome] = counts.get(outcome, 0) + 1
    finally:
        tracemalloc.stop()
        signal.signal(signal.SIGALRM, previous)
    # every kind of damage was tried and most truncations were refused at load
    assert set(outcomes) == {"truncated", "bit_flipped", "mutated"}
    assert outcomes["truncated"].get("refused", 0) > 0
