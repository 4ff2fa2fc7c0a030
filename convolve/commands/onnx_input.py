"""Feeding one picture to an imported ONNX model on the command line: which input, in
which layout, at which size and normalisation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from convolve.commands import CommandError
from convolve.model_info import ModelInfo


@dataclass(frozen=True)
class ImageInput:
    """A model's image input: its name, layout (``"NCHW"`` or ``"NHWC"``), channels, and
    height and width (None: any size)."""

    name: str
    layout: str
    channels: int
    size: tuple[int | None, int | None]

    def feeds(self, image: np.ndarray, info: ModelInfo, *, native_size: bool = False
              ) -> dict[str, np.ndarray]:
        """``{name: batch of one}`` for an image in ``[0, 1]``: grey or RGB as the model
        takes, resized to the model's fixed size (unless ``native_size`` or the size is
        dynamic), normalised by ``info``."""
        from convolve import inputs

        size = image.shape[:2] if native_size or None in self.size else self.size
        x = inputs.to_model_input(image, (*size, self.channels), info)[None]
        return {self.name: x.transpose(0, 3, 1, 2) if self.layout == "NCHW" else x}


def image_input(model: Any, path: str) -> ImageInput:
    """The one image input of ``model`` (an ``OnnxModel`` loaded from ``path``): the layout
    is told apart by where the 1 or 3 channels are, NCHW when both could be."""
    if len(model.graph.inputs) != 1:
        raise CommandError(f"{path} takes {len(model.graph.inputs)} inputs; an image model "
                           "takes one")
    name, _, dims = model.graph.inputs[0]
    if len(dims) != 4 or (dims[1] is None and dims[3] is None):
        shown = ", ".join("?" if d is None else str(d) for d in dims)
        raise CommandError(f"{path} takes input of shape ({shown}); an image model takes "
                           "(N, C, H, W) or (N, H, W, C) with a fixed channel count")
    if dims[1] in (1, 3) or dims[3] not in (1, 3):
        return ImageInput(name, "NCHW", dims[1], (dims[2], dims[3]))
    return ImageInput(name, "NHWC", dims[3], (dims[1], dims[2]))


def stored_info(model: Any) -> ModelInfo:
    """The description ``convolve.onnx.save`` keeps in a file's metadata (class names,
    normalisation); an empty one for other files."""
    from convolve.onnx.exporter import MODEL_INFO_KEY

    props = {p.key: p.value for p in model.graph.proto.metadata_props}
    if MODEL_INFO_KEY not in props:
        return ModelInfo()
    try:
        return ModelInfo.from_json(json.loads(props[MODEL_INFO_KEY]))
    except ValueError as error:
        raise CommandError(f"the model's {MODEL_INFO_KEY} metadata is malformed: "
                           f"{error}") from None
