"""``save``: a convolve model (or an imported ``OnnxModel``) as an ONNX file.

A ``Sequential`` of convolve's layers (nested Sequentials included) is run once on a zero
batch of ``input_shape`` to learn each layer's sizes, then each layer writes its nodes
(``convolve.onnx.export_layers``). The graph takes convolve's NHWC input, float32, with a
dynamic batch axis named ``N``, transposes it to NCHW once, and gives what the model gives
in evaluation mode.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from convolve import _args, checkpoint, model_info, nn
from convolve.onnx.export_layers import EXPORTERS, Step, UnsupportedLayerError
from convolve.onnx.graph_builder import BATCH, GraphBuilder, Value
from convolve.tensor import data, no_grad

OPSETS = range(13, 22)
DEFAULT_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"
# metadata_props key of the model's description (zoo name, classes, normalisation).
MODEL_INFO_KEY = "convolve.model_info"


def save(model: nn.Module, path: str | os.PathLike, *,
         input_shape: tuple[int, ...] | None = None, opset: int | None = None) -> None:
    """Write ``model`` to ``path`` as an ONNX file that ``onnx.checker`` accepts.

    Arguments:
        model: an ``nn.Sequential`` of convolve's layers, one such layer, or an
            ``OnnxModel`` from ``convolve.onnx.load`` (written back with its current
            parameter values, e.g. after fine-tuning).
        path: the ``.onnx`` file to write (atomically: a temporary file renamed over it).
        input_shape: ``(H, W, C)`` (or ``(F,)`` for a model of Dense layers) without the
            batch axis; required for a convolve model, not taken for an ``OnnxModel``.
        opset: the ONNX operator set, 13 to 21; default 17. An ``OnnxModel`` keeps its
            file's own opset.

    The saved graph's input ``"input"`` is ``(N, H, W, C)`` float32 with ``N`` dynamic;
    its output ``"output"`` is what ``model`` returns in evaluation mode (Dropout off,
    batch normalisation with the running statistics). A model that knows its description
    (``model.info``: zoo name, class names, input normalisation) keeps it as JSON in the
    file's ``metadata_props`` under ``"convolve.model_info"``.
    """
    if _is_onnx_model(model):
        if input_shape is not None:
            raise ValueError("input_shape is taken from the graph of an OnnxModel; received "
                             f"input_shape={input_shape!r}")
        proto = model_to_proto(model, opset)
    else:
        proto = sequential_to_proto(model, input_shape=input_shape,
                                    opset=DEFAULT_OPSET if opset is None else opset)
    write_file(Path(path), proto.SerializeToString())


def _is_onnx_model(model: Any) -> bool:
    # An OnnxModel exists only once the importer is imported: no need to import it here.
    importer = sys.modules.get("convolve.onnx.importer")
    return importer is not None and isinstance(model, importer.OnnxModel)


def model_to_proto(model: Any, opset: int | None) -> Any:
    """An imported ``OnnxModel``'s graph with its current parameter and buffer values, in
    the file's layout and dtypes (external data written inline), checked."""
    import onnx
    from onnx import numpy_helper

    own = model.graph.opset
    if opset is not None and opset != own:
        raise ValueError(f"an OnnxModel is saved at its file's own opset {own}; received "
                         f"opset={opset!r}")
    current = {name: model.file_layout(name)
               for name, _ in (*model.named_parameters(), *model.named_buffers())}
    proto = onnx.ModelProto()
    proto.CopyFrom(model.graph.proto)
    for tensor in proto.graph.initializer:
        if tensor.name in current or tensor.data_location == onnx.TensorProto.EXTERNAL:
            array = current.get(tensor.name, model.graph.initializers[tensor.name])
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
            tensor.CopyFrom(numpy_helper.from_array(
                np.ascontiguousarray(array, dtype=dtype), tensor.name))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _check_opset(opset: Any) -> int:
    if not _args.is_int(opset) or int(opset) not in OPSETS:
        raise ValueError(f"opset must be an integer from {OPSETS[0]} to {OPSETS[-1]}; "
                         f"received {opset!r}")
    return int(opset)


def _check_input_shape(input_shape: Any) -> tuple[int, ...]:
    expected = ("input_shape must be (H, W, C) or (F,) without the batch axis, positive "
                "integers")
    if input_shape is None:
        raise TypeError(f"{expected}; it is required to export a convolve model")
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) not in (1, 3)
            or not all(_args.is_int(n) and n > 0 for n in input_shape)):
        raise ValueError(f"{expected}; received {input_shape!r}")
    return tuple(int(n) for n in input_shape)


def sequential_to_proto(model: nn.Module, *, input_shape: Any, opset: Any) -> Any:
    """The ONNX ``ModelProto`` of a convolve model (see ``save``), checked."""
    import onnx
    from onnx import helper

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a convolve nn.Module (a Sequential or a layer) or an "
                        f"OnnxModel; received {_args.describe(model)}")
    opset = _check_opset(opset)
    shape = _check_input_shape(input_shape)
    builder = GraphBuilder(opset)
    x = Value(INPUT_NAME, shape)
    if x.image:
        x = Value(builder.node("Transpose", [INPUT_NAME], "nchw", perm=[0, 3, 1, 2]), shape)
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    modes = [(module, module.training) for _, module in model.named_modules()]
    model.eval()
    try:
        with no_grad():
            sample = np.zeros((1, *shape), np.float32)
            y, _ = _export_layers(builder, layers, x, sample, prefix="", index=None)
    finally:
        for module, training in modes:
            object.__setattr__(module, "training", training)
    out = y.name
    if y.image:
        out = builder.node("Transpose", [out], "nhwc", perm=[0, 2, 3, 1])
    if not builder.rename_output(out, OUTPUT_NAME):
        builder.node("Identity", [out], OUTPUT_NAME)
    graph = helper.make_graph(
        builder.nodes, "convolve",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [BATCH, *shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT,
                                       [BATCH, *y.shape])],
        builder.initializers)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="convolve",
                              ir_version=helper.find_min_ir_version_for(opsets))
    info = model_info.of(model)
    if info != model_info.ModelInfo():
        helper.set_model_props(proto, {MODEL_INFO_KEY: json.dumps(info.to_json())})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _export_layers(builder: GraphBuilder, layers: list[nn.Module], x: Value,
                   sample: np.ndarray, *, prefix: str, index: int | None
                   ) -> tuple[Value, np.ndarray]:
    """Each layer's nodes after ``x``; ``sample`` is a batch of one that the layers run on
    (building lazy ones) to give every output's shape. ``index``: the top-level layer
    these are inside."""
    for i, layer in enumerate(layers):
        name = f"{prefix}{i}"
        top = i if index is None else index
        if isinstance(layer, nn.Sequential):
            x, sample = _export_layers(builder, list(layer), x, sample, prefix=f"{name}.",
                                       index=top)
            continue
        exporter = EXPORTERS.get(type(layer))
        if exporter is None:
            known = ", ".join(sorted(kind.__name__ for kind in EXPORTERS))
            raise TypeError(f"cannot export layer {name} ({type(layer).__name__}, index "
                            f"{top} of the model) to ONNX; the exporter knows Sequential, "
                            f"{known}")
        sample = np.asarray(data(layer(sample)))
        step = Step(name, sample.shape[1:])
        try:
            x = Value(exporter(builder, layer, x, step), step.out_shape)
        except UnsupportedLayerError as error:
            raise UnsupportedLayerError(
                f"cannot export layer {name} ({type(layer).__name__}, index {top} of the "
                f"model) to ONNX: {error}") from None
    return x, sample


def write_file(path: Path, payload: bytes) -> None:
    """``payload`` to ``path`` atomically (``convolve.checkpoint.write_atomically``)."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder "
                                f"{str(path.parent)!r} does not exist")
    checkpoint.write_atomically(path, lambda f: f.write(payload))
