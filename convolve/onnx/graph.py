"""Reading an ONNX file safely: parse, check, and order its graph.

Model files are data, never code. The protobuf is parsed without following external-data
references; those are read here, only from files inside the model's own folder. Every
tensor's declared size is checked against the bytes actually stored before anything is
allocated, and the graph is checked for undefined names, duplicate outputs and cycles.
Each problem is one :class:`OnnxError`.
"""

from __future__ import annotations

import heapq
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convolve.onnx.errors import OnnxError

# Opsets of the default domain this loader reads (the ops' semantics per version are the
# converters' business: convolve/onnx/ops).
MIN_OPSET = 7
MAX_OPSET = 30
# Element types the loader computes with: NumPy's own.
DTYPES = frozenset(np.dtype(t) for t in (
    np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8,
    np.uint16, np.uint32, np.uint64, np.bool_))
# A limit on any one tensor, in elements, whether stored or computed from a shape.
MAX_ELEMENTS = 2**31


@dataclass
class Graph:
    """A checked graph: what the importer builds on.

    ``inputs``: ``(name, dtype, shape)`` of each input the caller feeds, shape entries
    ints or None (dynamic); ``initializers``: arrays by name, logical layout;
    ``nodes``: the NodeProtos, each after the nodes producing its inputs.
    """

    proto: Any
    opset: int
    inputs: list[tuple[str, np.dtype, tuple[int | None, ...]]]
    outputs: list[str]
    initializers: dict[str, np.ndarray]
    nodes: list[Any]


def read(source: Any) -> Graph:
    """Parse and check a model from a path (``str`` / ``os.PathLike``) or ``bytes``."""
    import onnx  # the extra: imported only when a model is loaded

    folder: Path | None = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        blob = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise OnnxError(f"no ONNX file at {str(path)!r}")
        folder = path.resolve().parent
        blob = path.read_bytes()
    else:
        raise TypeError("path_or_bytes must be a path (str or os.PathLike) or the file's "
                        f"bytes; received {type(source).__name__}")
    try:
        proto = onnx.ModelProto.FromString(blob)
    except Exception as error:  # protobuf's DecodeError and friends
        raise OnnxError(f"not a readable ONNX model (corrupt or truncated file): "
                        f"{error}") from None
    if not proto.HasField("graph"):
        raise OnnxError("not an ONNX model: the file holds no graph (corrupt, truncated or "
                        "another kind of file)")
    return _checked(proto, folder)


def _checked(proto: Any, folder: Path | None) -> Graph:
    opset = _opset(proto)
    graph = proto.graph
    initializers = {}
    for tensor in graph.initializer:
        if tensor.name in initializers:
            raise OnnxError(f"initializer {tensor.name!r} is defined twice")
        initializers[tensor.name] = tensor_array(tensor, folder, f"initializer {tensor.name!r}")
    if len(graph.sparse_initializer):
        raise OnnxError("sparse initializers are not supported")
    inputs = []
    for info in graph.input:
        if info.name in initializers:
            continue  # an initializer listed as an input (IR < 4): a constant here
        inputs.append((info.name, _input_dtype(info), _input_shape(info)))
    nodes = _ordered(graph.node, {name for name, _, _ in inputs} | set(initializers))
    defined = {out for node in nodes for out in node.output if out}
    defined |= set(initializers) | {name for name, _, _ in inputs}
    outputs = [info.name for info in graph.output]
    for name in outputs:
        if name not in defined:
            raise OnnxError(f"graph output {name!r} is not produced by any node")
    return Graph(proto, opset, inputs, outputs, initializers, nodes)


def _opset(proto: Any) -> int:
    versions = {entry.domain: entry.version for entry in proto.opset_import}
    version = versions.get("", versions.get("ai.onnx"))
    if version is None:
        raise OnnxError("the model imports no version of the default ONNX op set")
    if not MIN_OPSET <= version <= MAX_OPSET:
        raise OnnxError(f"op set version {version} is not supported: this loader reads "
                        f"versions {MIN_OPSET} to {MAX_OPSET} (tested 9 to 21)")
    return version


def _input_dtype(info: Any) -> np.dtype:
    import onnx

    kind = info.type.WhichOneof("value")
    if kind != "tensor_type":
        raise OnnxError(f"graph input {info.name!r} is a {kind}, not a tensor")
    elem = info.type.tensor_type.elem_type
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    except Exception:
        dtype = None
    if dtype not in DTYPES:
        raise OnnxError(f"graph input {info.name!r} has an unsupported element type "
                        f"{dtype or elem} (supported: NumPy's float, int and bool types)")
    return dtype


def _input_shape(info: Any) -> tuple[int | None, ...]:
    if not info.type.tensor_type.HasField("shape"):
        return ()
    # some converters (paddle2onnx) write -1 for a dynamic size, as ONNX Runtime takes it
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None
                 for d in info.type.tensor_type.shape.dim)


def _ordered(nodes: Any, known: set[str]) -> list[Any]:
    """The nodes in an order where each comes after the producers of its inputs (Kahn's
    algorithm, the file's order among ready nodes); an input nothing defines, an output
    defined twice or a cycle is an error."""
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in known:
                raise OnnxError(f"value {out!r} is defined twice (by node "
                                f"{_label(node, i)})")
            producer[out] = i
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            if not name or name in known:
                continue
            if name not in producer:
                raise OnnxError(f"node {_label(node, i)} reads {name!r}, which no graph "
                                "input, initializer or node defines")
            waiting[i] += 1
            users.setdefault(producer[name], []).append(i)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        for user in users.get(i, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) != len(nodes):
        stuck = [_label(nodes[i], i) for i, n in enumerate(waiting) if n][:3]
        raise OnnxError(f"the graph has a cycle (through node(s) {', '.join(stuck)})")
    return order


def _label(node: Any, index: int) -> str:
    return f"{node.name!r} ({node.op_type})" if node.name else f"#{index} ({node.op_type})"


_FIELDS = {  # where each element type keeps typed (non-raw) data
    1: "float_data", 2: "int32_data", 3: "int32_data", 4: "int32_data", 5: "int32_data",
    6: "int32_data", 7: "int64_data", 9: "int32_data", 10: "int32_data", 11: "double_data",
    12: "uint64_data", 13: "uint64_data",
}


def tensor_array(tensor: Any, folder: Path | None, what: str) -> np.ndarray:
    """A TensorProto as an array, its declared size checked against its stored data (and
    external data read only from inside ``folder``) before anything is allocated."""
    import onnx
    from onnx import numpy_helper

    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise OnnxError(f"{what} declares a negative dimension: {dims}")
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise OnnxError(f"{what} declares {count} elements (shape {dims}), more than the "
                        f"{MAX_ELEMENTS} this loader accepts")
    if tensor.data_type not in _FIELDS:
        raise OnnxError(f"{what} has an unsupported element type {tensor.data_type} "
                        "(supported: floats, integers and bool)")
    itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raw = _external(tensor, folder, what, count * itemsize)
        tensor = _copy_with_raw(tensor, raw)
    elif tensor.HasField("raw_data"):
        if len(tensor.raw_data) != count * itemsize:
            raise OnnxError(f"{what} declares shape {dims} ({count * itemsize} bytes) but "
                            f"stores {len(tensor.raw_data)} bytes")
    else:
        stored = len(getattr(tensor, _FIELDS[tensor.data_type]))
        if stored != count:
            raise OnnxError(f"{what} declares shape {dims} ({count} elements) but stores "
                            f"{stored}")
    try:
        return np.array(numpy_helper.to_array(tensor))
    except Exception as error:
        raise OnnxError(f"{what} cannot be read: {error}") from None


def _copy_with_raw(tensor: Any, raw: bytes) -> Any:
    import onnx

    copy = onnx.TensorProto()
    copy.CopyFrom(tensor)
    del copy.external_data[:]
    copy.data_location = onnx.TensorProto.DEFAULT
    copy.raw_data = raw
    return copy


def _external(tensor: Any, folder: Path | None, what: str, size: int) -> bytes:
    """The bytes of an external-data tensor, from a file inside ``folder`` only."""
    entries = {e.key: e.value for e in tensor.external_data}
    location = entries.get("location", "")
    if folder is None:
        raise OnnxError(f"{what} keeps its data in an external file ({location!r}); load "
                        "the model from its path, not from bytes")
    if not location or os.path.isabs(location) or Path(location).is_absolute() or \
            ".." in Path(location).parts or location.startswith(("/", "\\")):
        raise OnnxError(f"{what}'s external data location {location!r} must be a relative "
                        "path inside the model's folder")
    path = (folder / location).resolve()
    if folder not in path.parents:
        raise OnnxError(f"{what}'s external data location {location!r} leaves the "
                        "model's folder")
    if not path.is_file():
        raise OnnxError(f"{what}'s external data file {location!r} does not exist")
    try:
        offset = int(entries.get("offset", 0))
        length = int(entries["length"]) if "length" in entries else None
    except ValueError:
        raise OnnxError(f"{what} has an unreadable external data offset or length: "
                        f"{entries}") from None
    available = path.stat().st_size
    if length is None:
        length = size
    if offset < 0 or length != size or offset + length > available:
        raise OnnxError(f"{what} declares {size} bytes of external data but its entry "
                        f"(offset {offset}, length {length}) does not match {location!r} "
                        f"({available} bytes)")
    with open(path, "rb") as file:
        file.seek(offset)
        return file.read(length)


__all__ = ["DTYPES", "MAX_ELEMENTS", "MAX_OPSET", "MIN_OPSET", "Graph", "read", "tensor_array"]
