"""The table from (op type, op set version) to a converter, and the node a converter reads.

A converter is registered with :func:`converter` and called once per node at load with a
:class:`Node`: it checks the node's attributes (refusing what it cannot run, by name) and
returns the function that runs the node, ``run(ctx, inputs) -> outputs`` on
:class:`~convolve.onnx.layout.Value` s. Per op the registrations cover version ranges of
the op's own schema (``since`` inclusive, ``until`` exclusive), as in onnx2torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convolve.onnx.errors import OnnxError
from convolve.onnx.graph import MAX_ELEMENTS
from convolve.onnx.layout import Value


@dataclass
class Context:
    """What a running node may ask of the model: its mode."""

    training: bool = False


Runner = Callable[[Context, list["Value | None"]], "Value | Sequence[Value]"]


@dataclass(frozen=True)
class Spec:
    """One registration: the converter ``build`` for ``op_type`` versions ``[since,
    until)``. ``static``: inputs that are shapes, axes or indices (an initializer there
    stays a constant, never a parameter); ``buffers``: inputs that are running statistics
    (buffers: saved, not trained); ``layouts(node)``: the physical layout wanted for
    parameter inputs, ``{input index: perm}``; ``foldable``: whether a node whose inputs
    are all constants may be computed once at load (not Dropout: it depends on the mode).
    """

    op_type: str
    since: int
    until: int
    build: Callable[[Node], Runner]
    static: tuple[int, ...] = ()
    buffers: tuple[int, ...] = ()
    layouts: Callable[[Node], dict[int, tuple[int, ...]]] | None = None
    foldable: bool = True


REGISTRY: dict[str, list[Spec]] = {}


def converter(*op_types: str, since: int = 1, until: int = 10**6,
              static: Sequence[int] = (), buffers: Sequence[int] = (),
              layouts: Callable[[Node], dict[int, tuple[int, ...]]] | None = None,
              foldable: bool = True) -> Callable[[Callable[[Node], Runner]],
                                                 Callable[[Node], Runner]]:
    """Register the decorated function as the converter of ``op_types``."""
    def register(build: Callable[[Node], Runner]) -> Callable[[Node], Runner]:
        for op_type in op_types:
            REGISTRY.setdefault(op_type, []).append(
                Spec(op_type, since, until, build, tuple(static), tuple(buffers), layouts,
                     foldable))
        return build
    return register


def lookup(op_type: str, version: int) -> Spec | None:
    """The registration covering ``version`` of ``op_type``'s schema, or None."""
    for spec in REGISTRY.get(op_type, ()):
        if spec.since <= version < spec.until:
            return spec
    return None


@dataclass
class Node:
    """A node as a converter sees it at load.

    ``version`` is the since-version of the op's schema in the model's op set;
    ``constants`` maps the node's input positions to the arrays known at load (initializers
    that are not parameters, and values folded from them); ``shapes`` the logical shapes of
    inputs known at load (constants, parameters, and graph inputs as declared, with None
    for dynamic sizes).
    """

    name: str
    op_type: str
    version: int
    opset: int
    attributes: dict[str, Any]
    inputs: list[str]
    outputs: list[str]
    constants: dict[int, np.ndarray] = field(default_factory=dict)
    shapes: dict[int, tuple[int | None, ...]] = field(default_factory=dict)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attributes.get(name, default)

    def has(self, index: int) -> bool:
        """Whether optional input ``index`` is given."""
        return index < len(self.inputs) and bool(self.inputs[index])

    def const(self, index: int) -> np.ndarray | None:
        """Input ``index`` when it is known at load, else None."""
        return self.constants.get(index)

    def refuse(self, what: str) -> OnnxError:
        """The error for a setting this loader cannot run (raise it)."""
        return OnnxError(f"{self.op_type} node {self.name!r} (op set {self.opset}, "
                         f"{self.op_type}-{self.version}): {what}")

    def choice(self, name: str, default: Any, allowed: Sequence[Any]) -> Any:
        """Attribute ``name``, refused unless one of ``allowed``."""
        value = self.attr(name, default)
        if isinstance(value, bytes):
            value = value.decode()
        if value not in allowed:
            raise self.refuse(f"{name}={value!r} is not supported (supported: "
                              f"{', '.join(map(repr, allowed))})")
        return value


def checked_size(node: Node, shape: Any) -> tuple[int, ...]:
    """A shape computed at run time from the file's values, refused (before anything is
    allocated) when negative or larger than ``MAX_ELEMENTS``."""
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims) or math.prod(dims) > MAX_ELEMENTS:
        raise OnnxError(f"{node.op_type} node {node.name!r} would make a tensor of shape "
                        f"{dims}: refused (more than {MAX_ELEMENTS} elements or negative)")
    return dims


def outputs_used(node: Node) -> int:
    """How many leading outputs the graph uses (trailing optional ones left empty)."""
    return max((i + 1 for i, name in enumerate(node.outputs) if name), default=0)


__all__ = ["REGISTRY", "Context", "Node", "Runner", "Spec", "checked_size", "converter",
           "lookup", "outputs_used"]
