"""Feeding pictures to an ONNX model on the command line (``convolve predict --model`` and
``convolve featuremaps --model``): which input, in which layout, at which size, with which
normalisation and class names.

The layout comes from the input's declared shape: a file convolve wrote
(``convolve.onnx.save``) takes NHWC; any other is NCHW when its axis 1 holds 1 or 3
channels, else NHWC when its last axis does. The size is the declared height and width, or
the image's own where they are dynamic. The class names and normalisation are those
``convolve.onnx.save`` keeps in the file's metadata (``convolve.model_info``); a file
without them takes images in ``[0, 1]`` and names classes by number.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convolve.commands import CommandError
from convolve.model_info import ModelInfo

IMAGE_CHANNELS = (1, 3)


@dataclass(frozen=True)
class ImageInput:
    """A model's image input: its name, layout (``"NCHW"`` or ``"NHWC"``), channels,
    height and width (None: any size), and the description stored in the file."""

    name: str
    layout: str
    channels: int
    size: tuple[int | None, int | None]
    info: ModelInfo

    @property
    def shape(self) -> tuple[int | None, int | None, int]:
        """``(H, W, C)`` as ``convolve.inputs.to_model_input`` takes it (None: the
        image's own size)."""
        return (*self.size, self.channels)

    def in_file_layout(self, images: np.ndarray) -> np.ndarray:
        """``images: (N, H, W, C)`` as the model takes them: ``(N, C, H, W)`` for NCHW."""
        return images.transpose(0, 3, 1, 2) if self.layout == "NCHW" else images

    def feeds(self, image: np.ndarray, *, native_size: bool = False
              ) -> dict[str, np.ndarray]:
        """``{name: batch of one}`` for an image in ``[0, 1]``: grey or RGB as the model
        takes, resized to the model's size (unless ``native_size``), normalised as the
        file says."""
        from convolve import inputs

        shape = (None, None, self.channels) if native_size else self.shape
        return {self.name: self.in_file_layout(
            inputs.to_model_input(image, shape, self.info)[None])}


def resolve_model_option(args: argparse.Namespace) -> None:
    """``--checkpoint M.onnx`` taken as ``--model M.onnx``; ``--model`` must name an
    existing ``.onnx`` file."""
    if args.checkpoint is not None and Path(args.checkpoint).suffix.lower() == ".onnx":
        args.model, args.checkpoint = args.checkpoint, None
    if args.model is None:
        return
    if Path(args.model).suffix.lower() != ".onnx":
        raise CommandError(f"--model must be an .onnx file; received {args.model} (a "
                           "training checkpoint goes with --checkpoint)")
    if not Path(args.model).is_file():
        raise FileNotFoundError(f"model file not found: {args.model}")


def require_onnx() -> None:
    """An ImportError naming the extra when the onnx package is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ImportError("ONNX models need the onnx package: pip install "
                          "'convolve[onnx]'") from None


def load_image_model(path: str) -> tuple[Any, ImageInput]:
    """The ``OnnxModel`` in the file ``path`` and its image input; a CommandError for a
    file that cannot be read or takes no image."""
    require_onnx()
    from convolve.onnx import load
    from convolve.onnx.errors import OnnxError

    try:
        model = load(path)
    except OnnxError as error:
        raise CommandError(f"cannot read {path} as an ONNX model ({error})") from None
    return model, image_input(model, path)


def image_input(model: Any, path: str) -> ImageInput:
    """The one image input of ``model`` (an ``OnnxModel`` loaded from ``path``)."""
    if len(model.graph.inputs) != 1:
        raise CommandError(f"{path} takes {len(model.graph.inputs)} inputs; an image model "
                           "takes one")
    name, dtype, dims = model.graph.inputs[0]
    info = stored_info(model)
    if len(dims) == 4 and _written_by_convolve(model, info):
        channel_axis = 3 if dims[3] in IMAGE_CHANNELS else None
    elif len(dims) == 4:
        channel_axis = next((axis for axis in (1, 3) if dims[axis] in IMAGE_CHANNELS), None)
    else:
        channel_axis = None
    if channel_axis is None:
        shown = ", ".join("?" if d is None else str(d) for d in dims)
        raise CommandError(f"{path} takes input of shape ({shown}); an image model takes "
                           f"(N, C, H, W) or (N, H, W, C) with 1 or 3 channels")
    if dtype.kind != "f":
        raise CommandError(f"{path} takes {dtype} input; an image model here takes floats")
    if channel_axis == 1:
        return ImageInput(name, "NCHW", dims[1], (dims[2], dims[3]), info)
    return ImageInput(name, "NHWC", dims[3], (dims[1], dims[2]), info)


def _written_by_convolve(model: Any, info: ModelInfo) -> bool:
    return model.graph.proto.producer_name == "convolve" or info != ModelInfo()


def stored_info(model: Any) -> ModelInfo:
    """The description ``convolve.onnx.save`` keeps in a file's metadata (zoo name, class
    names, normalisation); an empty one for other files."""
    from convolve.onnx.exporter import MODEL_INFO_KEY

    props = {p.key: p.value for p in model.graph.proto.metadata_props}
    if MODEL_INFO_KEY not in props:
        return ModelInfo()
    try:
        return ModelInfo.from_json(json.loads(props[MODEL_INFO_KEY]))
    except ValueError as error:
        raise CommandError(f"the model's {MODEL_INFO_KEY} metadata is malformed: "
                           f"{error}") from None
