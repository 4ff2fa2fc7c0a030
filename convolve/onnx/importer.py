"""``load``: an ONNX file as an ``nn.Module`` that runs on NumPy with convolve's ops.

At load the graph is read and checked (``convolve.onnx.graph``), every node is turned into
a small function by its converter (``convolve.onnx.ops``; an op or a setting no converter
takes is refused here, before anything runs), initializers become parameters (floating
ones read by computing inputs), buffers (batch-norm statistics) or constants (shapes,
indices), and nodes whose inputs are all constants are computed once (constant folding).
Values keep their physical layout (``convolve.onnx.layout``): channels-last inside, the
file's layout at the inputs and outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from convolve.nn.module import Module
from convolve.onnx import graph as _graph
from convolve.onnx import ops as _ops  # noqa: F401  (registers the converters)
from convolve.onnx.errors import OnnxError
from convolve.onnx.layout import Value
from convolve.onnx.optimize import fuse, fuse_affine, fuse_hard_swish
from convolve.onnx.registry import Context, Node, Runner, Spec, lookup, outputs_used
from convolve.runtime import one_blas_thread
from convolve.tensor import Tensor


@dataclass
class Step:
    """One node to run: its converter's function and the names it reads and writes."""

    node: Node
    run: Runner
    inputs: list[str]
    outputs: list[str]


def load(path_or_bytes: Any) -> OnnxModel:
    """Load an ONNX model from a file path or the file's bytes.

    Raises :class:`~convolve.onnx.errors.OnnxError` (a ``ValueError``) for a file that is
    corrupt, hostile or uses an op this loader cannot run, naming the op, the node and the
    op set.
    """
    return OnnxModel(_graph.read(path_or_bytes))


def _version(op_type: str, domain: str, opset: int, name: str) -> int:
    import onnx

    if domain not in ("", "ai.onnx"):
        raise OnnxError(f"{op_type} node {name!r}: op domain {domain!r} is not supported "
                        "(only the default ONNX domain)")
    try:
        return onnx.defs.get_schema(op_type, opset, "").since_version
    except Exception:
        raise OnnxError(f"{op_type} node {name!r} (op set {opset}): no such op in the "
                        "ONNX standard at this op set") from None


def _attributes(proto: Any, opset: int) -> dict[str, Any]:
    import onnx

    declared = onnx.defs.get_schema(proto.op_type, opset, "").attributes
    result = {}
    for attr in proto.attribute:
        # a damaged file can hold an attribute of another type than the op's schema says
        # (an INTS "axis", an UNDEFINED "pads"): refused here, not met by a converter
        want = declared[attr.name].type if attr.name in declared else attr.type
        if attr.type != want or attr.type == onnx.AttributeProto.UNDEFINED:
            raise OnnxError(
                f"{proto.op_type} node {proto.name!r}: attribute {attr.name!r} must be of "
                f"type {onnx.AttributeProto.AttributeType.Name(want)}; the file has "
                f"{onnx.AttributeProto.AttributeType.Name(attr.type)}")
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            raise OnnxError(f"{proto.op_type} node {proto.name!r}: subgraph attributes "
                            "(control flow) are not supported")
        if attr.type == onnx.AttributeProto.TENSOR:
            result[attr.name] = _graph.tensor_array(
                attr.t, None, f"attribute {attr.name!r} of node {proto.name!r}")
        elif attr.type in (onnx.AttributeProto.SPARSE_TENSOR,
                           onnx.AttributeProto.SPARSE_TENSORS, onnx.AttributeProto.TENSORS):
            raise OnnxError(f"{proto.op_type} node {proto.name!r}: attribute "
                            f"{attr.name!r} of this type is not supported")
        else:
            value = onnx.helper.get_attribute_value(attr)
            result[attr.name] = value.decode() if isinstance(value, bytes) else value
    return result


class OnnxModel(Module):
    """An imported ONNX graph (see :func:`load`).

    ``model(*arrays)`` takes the graph's inputs in order, in the file's layout (NCHW for
    image models, as ONNX Runtime), and returns the output (a tuple for several outputs,
    in graph order); ``model.run(feeds)`` returns ``{output name: array}``. NumPy inputs
    give NumPy outputs in eval mode; a ``Tensor`` input, or any input in train mode (as
    ``fit`` runs it), gives Tensor outputs recorded for backpropagation into the
    parameters (the floating initializers, held in convolve's layout: conv weights
    ``(KH, KW, C_in // groups, C_out)``). Loaded in eval mode; in
    train mode batch normalisation uses and updates batch statistics and Dropout drops.
    """

    def __init__(self, graph: _graph.Graph) -> None:
        super().__init__()
        self.graph = graph
        self.input_names = [name for name, _, _ in graph.inputs]
        self.output_names = list(graph.outputs)
        self._input_specs = {name: (dtype, shape) for name, dtype, shape in graph.inputs}
        nodes, specs = self._nodes(graph)
        nodes, specs = _own_buffers(graph, nodes, specs)
        roles, layouts = self._roles(graph, nodes, specs)
        self._perms: dict[str, tuple[int, ...] | None] = {}
        constants: dict[str, np.ndarray] = {}
        for name, array in graph.initializers.items():
            role = roles.get(name, "constant")
            if role == "parameter":
                perm = layouts.get(name)
                stored = array if perm is None else np.ascontiguousarray(array.transpose(perm))
                self.register_parameter(name, Tensor(stored, requires_grad=True))
                self._perms[name] = perm
            elif role == "buffer":
                self.register_buffer(name, array.copy())
            else:
                constants[name] = array
        steps = self._fold(nodes, specs, constants)
        ready = {*constants, *self._parameters, *self._buffers}
        keep = set(self.output_names)
        self.steps = fuse_hard_swish(fuse_affine(fuse(steps, keep, ready), keep), keep)
        self.constants = constants
        self._last_use = self._lifetimes()
        self.eval()

    # -- building -----------------------------------------------------------------------
    @staticmethod
    def _nodes(graph: _graph.Graph) -> tuple[list[Node], list[Spec]]:
        """A Node per NodeProto and its registration; unknown ops are refused here."""
        nodes, specs = [], []
        for i, proto in enumerate(graph.nodes):
            name = proto.name or f"{proto.op_type}_{i}"
            version = _version(proto.op_type, proto.domain, graph.opset, name)
            node = Node(name, proto.op_type, version, graph.opset,
                        _attributes(proto, graph.opset), list(proto.input), list(proto.output))
            _check_arity(node)
            spec = lookup(proto.op_type, version)
            if spec is None:
                raise node.refuse("this op (at this version) is not supported by convolve's "
                                  "ONNX loader")
            nodes.append(node)
            specs.append(spec)
        return nodes, specs

    @staticmethod
    def _roles(graph: _graph.Graph, nodes: list[Node], specs: list[Spec]
               ) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
        """Each initializer's role (parameter, buffer, constant) and, for parameters, the
        physical layout all their readers want (None where they disagree). Scalars are
        constants: exporters store literals of the code (``x + 1``) as scalar
        initializers, while layers' parameters have at least one axis."""
        rank = {"constant": 0, "buffer": 1, "parameter": 2}
        roles: dict[str, str] = {}
        wanted: dict[str, set[Any]] = {}
        for node, spec in zip(nodes, specs):
            prefs = spec.layouts(node) if spec.layouts else {}
            for i, name in enumerate(node.inputs):
                array = graph.initializers.get(name)
                if array is None:
                    continue
                if i in spec.static or array.dtype.kind != "f" or array.ndim == 0:
                    role = "constant"
                elif i in spec.buffers:
                    role = "buffer"
                else:
                    role = "parameter"
                if rank[role] > rank[roles.get(name, "constant")]:
                    roles[name] = role
                perm = prefs.get(i)
                wanted.setdefault(name, set()).add(
                    perm if perm is not None and len(perm) == array.ndim else None)
        layouts = {name: next(iter(perms)) for name, perms in wanted.items()
                   if len(perms) == 1 and next(iter(perms)) is not None}
        return roles, layouts

    def _fold(self, nodes: list[Node], specs: list[Spec],
              constants: dict[str, np.ndarray]) -> list[Step]:
        """Build every node's runner; compute at once the nodes whose inputs are all
        constants, storing their outputs in ``constants``."""
        shapes = {name: tuple(p.shape) if self._perms.get(name) is None else
                  tuple(np.shape(np.transpose(p.data, np.argsort(self._perms[name]))))
                  for name, p in self._parameters.items()}
        shapes.update((name, b.shape) for name, b in self._buffers.items())
        shapes.update((name, shape) for name, _, shape in self.graph.inputs if shape)
        steps = []
        context = Context(training=False)
        for node, spec in zip(nodes, specs):
            node.constants = {i: constants[name] for i, name in enumerate(node.inputs)
                              if name in constants}
            node.shapes = {i: constants[name].shape if name in constants else shapes[name]
                           for i, name in enumerate(node.inputs)
                           if name in constants or name in shapes}
            run = spec.build(node)
            given = [name for name in node.inputs if name]
            if spec.foldable and all(name in constants for name in given):
                values = [Value(constants[name]) if name else None for name in node.inputs]
                results = _as_list(_guarded(node, run, context, values))
                for name, value in zip(node.outputs, results):
                    if name:
                        constants[name] = np.asarray(value.numpy())
                continue
            steps.append(Step(node, run, list(node.inputs), node.outputs[:outputs_used(node)]))
        return steps

    def _lifetimes(self) -> dict[str, int]:
        """For each computed value, the index of the last step reading it."""
        last: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            for name in step.inputs:
                if name:
                    last[name] = i
        return last

    # -- running ------------------------------------------------------------------------
    def forward(self, *arrays: Any) -> Any:
        if len(arrays) != len(self.input_names):
            raise TypeError(f"the model takes {len(self.input_names)} input(s) "
                            f"({', '.join(self.input_names)}); received {len(arrays)}")
        results = self.run(dict(zip(self.input_names, arrays)))
        outputs = tuple(results[name] for name in self.output_names)
        return outputs[0] if len(outputs) == 1 else outputs

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Every graph output by name for the inputs ``feeds`` (``{input name: array}``),
        as ONNX Runtime's ``InferenceSession.run``."""
        return self._execute(feeds)

    def _execute(self, feeds: Mapping[str, Any],
                 observe: Callable[[Step, list[Value]], None] | None = None) -> dict[str, Any]:
        env = self._feed(feeds)
        keep = set(self.output_names)
        context = Context(training=self.training)
        with one_blas_thread():
            for i, step in enumerate(self.steps):
                values = [self._value(env, name) if name else None for name in step.inputs]
                outputs = _as_list(_guarded(step.node, step.run, context, values))
                if observe is not None:
                    observe(step, outputs)
                for name, value in zip(step.outputs, outputs):
                    if name:
                        env[name] = value
                for name in step.inputs:
                    if name and self._last_use.get(name) == i and name not in keep:
                        env.pop(name, None)
        return {name: _output(self._value(env, name)) for name in self.output_names}

    def _feed(self, feeds: Mapping[str, Any]) -> dict[str, Value]:
        if not isinstance(feeds, Mapping):
            raise TypeError(f"feeds must be a mapping of input names to arrays; received "
                            f"{type(feeds).__name__}")
        missing = [name for name in self.input_names if name not in feeds]
        unknown = [name for name in feeds if name not in self._input_specs]
        if missing or unknown:
            raise ValueError(
                f"feeds must give exactly the model's inputs {self.input_names}; "
                + (f"missing {missing}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unknown {unknown}" if unknown else ""))
        env = {}
        # in train mode (``fit``) NumPy batches also give Tensors, recorded for the update
        tensors = self.training or any(isinstance(v, Tensor) for v in feeds.values())
        for name, value in feeds.items():
            dtype, shape = self._input_specs[name]
            array = value if isinstance(value, Tensor) else np.asarray(value)
            if array.dtype != dtype:
                if isinstance(array, Tensor):
                    from convolve.ops.math import astype

                    array = astype(array, dtype)
                else:
                    array = array.astype(dtype)
            if shape and (len(array.shape) != len(shape) or any(
                    d is not None and d != n for d, n in zip(shape, array.shape))):
                want = tuple("?" if d is None else d for d in shape)
                raise ValueError(f"input {name!r} must have shape {want} (? any size); "
                                 f"received an array of shape {tuple(array.shape)}")
            env[name] = Value(array)
        for name, p in self._parameters.items():
            env[name] = Value(p if tensors else p.data, self._perms.get(name))
        for name, b in self._buffers.items():
            env[name] = Value(b)
        return env

    def _value(self, env: dict[str, Value], name: str) -> Value:
        value = env.get(name)
        if value is None:
            return Value(self.constants[name])
        return value

    def file_layout(self, name: str, array: Any = None) -> np.ndarray:
        """Parameter or buffer ``name`` in the file's own layout: its current value, or
        ``array`` held as the parameter is (its gradient). Conv weights are held as
        ``(KH, KW, C_in // groups, C_out)``, the file's ``(C_out, C_in // groups, KH, KW)``."""
        if array is None:
            held = self._parameters.get(name)
            array = self._buffers[name] if held is None else held.data
        perm = self._perms.get(name)
        return np.asarray(array) if perm is None else np.transpose(array, np.argsort(perm))

    # -- describing ---------------------------------------------------------------------
    def summary(self, inputs: Any = None, *,
                print_fn: Callable[[str], Any] | None = print) -> OnnxSummary:
        """Per node: op, output shape(s) for ``inputs`` and parameter count.

        ``inputs``: a shape (one-input graphs), ``{name: shape or array}``, or None (the
        declared shapes, dynamic sizes taken as 1); zeros of those shapes are run, in the
        file's layout. Prints the table with ``print_fn`` (None: silent); returns it.
        """
        feeds = self._summary_feeds(inputs)
        rows: list[SummaryRow] = []
        counted: set[str] = set()

        def observe(step: Step, outputs: list[Value]) -> None:
            params = 0
            for name in step.inputs:
                if name in self._parameters and name not in counted:
                    counted.add(name)
                    params += self._parameters[name].size
            rows.append(SummaryRow(step.node.name, step.node.op_type,
                                   [tuple(v.shape) for v in outputs], params))

        training = self.training
        self.eval()
        try:
            self._execute(feeds, observe)
        finally:
            self.train(training)
        result = OnnxSummary(rows, sum(p.size for p in self._parameters.values()))
        if print_fn is not None:
            print_fn(str(result))
        return result

    def _summary_feeds(self, inputs: Any) -> dict[str, np.ndarray]:
        if inputs is None:
            inputs = {name: tuple(1 if d is None else d for d in shape)
                      for name, (_, shape) in self._input_specs.items()}
        elif not isinstance(inputs, Mapping):
            if len(self.input_names) != 1:
                raise TypeError(f"inputs must be a mapping {{name: shape}} for a model with "
                                f"{len(self.input_names)} inputs; received {inputs!r}")
            inputs = {self.input_names[0]: inputs}
        feeds = {}
        for name, value in inputs.items():
            if isinstance(value, (tuple, list)):
                dtype = self._input_specs.get(name, (np.float32, ()))[0]
                feeds[name] = np.zeros(tuple(int(d) for d in value), dtype)
            else:
                feeds[name] = value
        return feeds

    def extra_repr(self) -> str:
        return (f"inputs={self.input_names}, outputs={self.output_names}, "
                f"nodes={len(self.steps)}, opset={self.graph.opset}")


@dataclass(frozen=True)
class SummaryRow:
    """One node's line: name, op, output shapes (logical), parameters first read here."""

    name: str
    op: str
    output_shapes: list[tuple[int, ...]]
    params: int


@dataclass(frozen=True)
class OnnxSummary:
    """``OnnxModel.summary()``'s table; ``str()`` formats it."""

    rows: list[SummaryRow]
    total_params: int

    def __str__(self) -> str:
        lines = [("node", "op", "output shape", "params")]
        for row in self.rows:
            shapes = ", ".join(str(s) for s in row.output_shapes)
            lines.append((row.name, row.op, shapes, f"{row.params:,}"))
        widths = [max(len(line[i]) for line in lines) for i in range(4)]
        text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                for line in lines]
        text.insert(1, "-" * len(text[0]))
        text.append(f"Total params: {self.total_params:,}")
        return "\n".join(text)


def _check_arity(node: Node) -> None:
    """Refuse a node whose inputs or outputs do not fit its op's schema (too few, too
    many, a required one left empty): converters may then index them freely."""
    import onnx

    schema = onnx.defs.get_schema(node.op_type, node.opset, "")
    n_in, n_out = len(node.inputs), len(node.outputs)
    if not schema.min_input <= n_in <= schema.max_input:
        raise node.refuse(f"{n_in} inputs given; the op takes {schema.min_input} to "
                          f"{schema.max_input}")
    if not schema.min_output <= n_out <= schema.max_output:
        raise node.refuse(f"{n_out} outputs given; the op gives {schema.min_output} to "
                          f"{schema.max_output}")
    single = onnx.defs.OpSchema.FormalParameterOption.Single
    for i, formal in enumerate(schema.inputs[:n_in]):
        if formal.option == single and not node.inputs[i]:
            raise node.refuse(f"required input {i} ({formal.name}) is missing")
    if not node.outputs or not node.outputs[0]:
        raise node.refuse("its first output is not named")


# What an op raises on inputs it cannot take (a damaged file computing wrong shapes or
# types): reported as the node's error.
_RUN_ERRORS = (TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError,
               MemoryError)


def _guarded(node: Node, run: Runner, context: Context, values: list[Any]) -> Any:
    try:
        return run(context, values)
    except OnnxError:
        raise
    except _RUN_ERRORS as error:
        raise OnnxError(f"{node.op_type} node {node.name!r} cannot run on its inputs: "
                        f"{error}") from error


def _own_buffers(graph: _graph.Graph, nodes: list[Node], specs: list[Spec]
                 ) -> tuple[list[Node], list[Spec]]:
    """Give each buffer input (running statistics) an initializer of its own.

    Exporters deduplicate equal initializers: a fresh BatchNorm's running variance (ones)
    may be an Identity of its scale. Training updates buffers in place, so a buffer
    reached through Identity nodes becomes a copy of the initializer under its own name,
    and Identity nodes whose outputs all became initializers are dropped."""
    source = {n.outputs[0]: n.inputs[0] for n in nodes if n.op_type == "Identity"}
    for node, spec in zip(nodes, specs):
        for i in spec.buffers:
            name = node.inputs[i] if i < len(node.inputs) else ""
            origin = name
            while origin in source:
                origin = source[origin]
            if name and name not in graph.initializers and origin in graph.initializers:
                graph.initializers[name] = graph.initializers[origin].copy()
    kept = [(n, s) for n, s in zip(nodes, specs)
            if not (n.op_type == "Identity" and n.outputs[0] in graph.initializers)]
    return [n for n, _ in kept], [s for _, s in kept]


def _as_list(result: Any) -> list[Value]:
    return [result] if isinstance(result, Value) else list(result)


def _output(value: Value) -> Any:
    out = value.logical()
    if isinstance(out, Tensor):
        return out
    out = np.asarray(out)
    return out if out.flags.c_contiguous else np.ascontiguousarray(out)


__all__ = ["OnnxModel", "OnnxSummary", "load"]
