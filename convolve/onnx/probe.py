"""What any node of an imported graph computes: its outputs by node or tensor name, for
feature-map pictures and debugging."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from convolve.onnx.importer import OnnxModel


def tensor_name(model: OnnxModel, name: str) -> str:
    """The tensor ``name`` means: a node's (first) output when it names a node, else the
    graph input or a node output of that name. A ValueError lists the nodes otherwise."""
    tensors = {name for name, _, _ in model.graph.inputs}
    for node in model.graph.nodes:
        if node.name == name and node.output:
            return node.output[0]
        tensors.update(node.output)
    if name in tensors:
        return name
    nodes = [node.name or node.output[0] for node in model.graph.nodes]
    shown = ", ".join(nodes[:12]) + (f", ... ({len(nodes)} in all)" if len(nodes) > 12 else "")
    raise ValueError(f"{name!r} is neither a node nor a tensor of the graph; its nodes: "
                     f"{shown}")


def node_outputs(model: OnnxModel, names: list[str], feeds: Mapping[str, Any]
                 ) -> dict[str, Any]:
    """The values of the tensors ``names`` (see ``tensor_name``; in the file's layout) for
    the inputs ``feeds``, as ``model.run`` gives graph outputs."""
    tensors = [tensor_name(model, name) for name in names]
    probe = OnnxModel(dataclasses.replace(model.graph, outputs=tensors))
    probe.load_state_dict(model.state_dict())
    probe.train(model.training)
    results = probe.run(feeds)
    return {name: results[tensor] for name, tensor in zip(names, tensors)}
