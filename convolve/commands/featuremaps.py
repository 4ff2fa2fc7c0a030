"""``convolve featuremaps``: the feature maps a bank of kernels, a conv weight from a
checkpoint, a trained model's layer or any node of an ONNX model produces for an image, as
one picture."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import convolve
from convolve import _args, checkpoint, filters, viz
from convolve.commands import IMAGE_HELP, MODE_HELP, CommandError, read_input_image
from convolve.commands.onnx_input import load_image_model, resolve_model_option
from convolve.nn.module import Module


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "featuremaps", help="picture the feature maps of a trained model, a kernel bank or a "
                            "conv weight",
        description="Draw feature maps as one grid of tiles. With a training checkpoint "
                    "(convolve train --checkpoint): the activations of one layer of the "
                    "model (--layer, any depth) for the image, converted to the model's "
                    "input as convolve predict does, or with --weights that layer's "
                    "kernels. With --kernels: the image in grey filtered by named kernels. "
                    "With any other .npz or .safetensors file: a conv weight (KH, KW, C_in, "
                    "C_out) applied to the image (C_in = 1 or 3, 'same' padding, no bias). "
                    "With --model M.onnx: the output of any node of an ONNX model (--layer "
                    "NAME) for the image made the model's input.")
    parser.add_argument("input", metavar="IN", help=IMAGE_HELP)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--kernels", metavar="NAMES",
                        help="comma-separated kernel names, e.g. sobel_x,sobel_y,laplacian; "
                             f"known: {', '.join(filters.NAMES)}")
    source.add_argument("--checkpoint", metavar="CKPT",
                        help="a training checkpoint, or a .npz or .safetensors file holding a "
                             "conv weight (KH, KW, C_in, C_out); an .onnx file is taken as "
                             "--model")
    source.add_argument("--model", metavar="M.onnx",
                        help="an ONNX image model; --layer names one of its nodes or tensors "
                             "(see convolve summary M.onnx), default the first Conv node")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--key", help="the weight's name in a file of weights")
    which.add_argument("--layer", metavar="N|NAME",
                       help="a training checkpoint's model layer: its number (as in convolve "
                            "summary, from 0) or name (conv2d_2: the second Conv2D); default "
                            "0. A file of weights: its N-th 4-D array, names in natural order "
                            "(conv2 before conv10). An ONNX model: a node or tensor name")
    parser.add_argument("--weights", action="store_true",
                        help="draw the layer's kernels instead of its activations")
    parser.add_argument("--native-size", action="store_true",
                        help="run the model on the image at its own size instead of resizing "
                             "it to the model's input (convolutions and pooling take any "
                             "size)")
    parser.add_argument("--mode", default="reflect", help=MODE_HELP)
    parser.add_argument("--scale", default="per-tile", metavar="SCALE",
                        help="per-tile: each map stretched to its own min..max (default); "
                             "shared: one min..max for all maps, drawn as a colour bar")
    parser.add_argument("--shared-scale", dest="scale", action="store_const", const="shared",
                        help="the same as --scale shared")
    parser.add_argument("--tile", type=int, default=256,
                        help="pixels per tile, wide (default 256); tiles are as high as the "
                             "maps' aspect ratio says")
    parser.add_argument("--columns", type=int, help="tiles per row (default: a square grid)")
    parser.add_argument("-o", "--output", required=True, metavar="GRID.png",
                        help="image file to write; the format follows the suffix (.png, "
                             ".jpg, .tif, .bmp, .webp, ...)")
    parser.set_defaults(run=run)


def _natural(key: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def load_arrays(path: str) -> dict[str, np.ndarray]:
    """The numeric arrays in a ``.npz`` (no pickles) or ``.safetensors`` file, by name:
    any such file, ``convolve.checkpoint.save``'s included."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".npz", ".safetensors"):
        raise CommandError(f"--checkpoint must be a .npz or .safetensors file; "
                           f"received {path}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    arrays = checkpoint.read_arrays(path)
    return {key: a for key, a in arrays.items() if a.dtype.kind in "iuf"}


def conv_weight(path: str, *, key: str | None, layer: int) -> tuple[str, np.ndarray]:
    """The named (or the ``layer``-th 4-D) array of a file of weights (of a training
    checkpoint: the model's only): ``(KH, KW, C_in, C_out)``."""
    arrays = load_arrays(path)
    if key is not None:
        if key not in arrays:
            raise CommandError(f"--key {key!r} is not in {path}; it holds "
                               f"{', '.join(sorted(arrays, key=_natural)) or 'nothing'}")
        if arrays[key].ndim != 4:
            raise CommandError(f"--key {key!r} must name a conv weight (KH, KW, C_in, C_out); "
                               f"received an array of shape {arrays[key].shape}")
        return key, arrays[key]
    if any(k.startswith("model.") for k in arrays) and any(
            k.startswith("optimizer.") for k in arrays):  # a training checkpoint's
        arrays = {k: a for k, a in arrays.items() if k.startswith("model.")}
    weights = sorted((k for k, a in arrays.items() if a.ndim == 4), key=_natural)
    if not 0 <= layer < len(weights):
        raise CommandError(f"--layer {layer} is out of range: {path} holds {len(weights)} "
                           f"4-D arrays ({', '.join(weights) or 'none'})")
    return weights[layer], arrays[weights[layer]]


def _kernel_bank_maps(image: np.ndarray, names_text: str, mode: str
                      ) -> tuple[np.ndarray, list[str]]:
    names = [name.strip() for name in names_text.split(",")]
    if not all(names):
        raise CommandError(f"--kernels must be comma-separated kernel names; "
                           f"received {names_text!r}")
    from convolve import io

    grey = io.to_channels(image, 1)[..., 0]
    return np.stack([filters.apply(grey, name, mode=mode) for name in names], axis=-1), names


def _weights_layer(text: str | None) -> int:
    if text is None:
        return 0
    if not text.isdigit():
        raise CommandError(f"--layer must be a number for a file of weights (it holds no "
                           f"model to name layers in); received {text!r}")
    return int(text)


def _weight_file_maps(image: np.ndarray, args: argparse.Namespace) -> Drawing:
    from convolve import io

    key, weight = conv_weight(args.checkpoint, key=args.key, layer=_weights_layer(args.layer))
    if weight.dtype.kind != "f":
        raise CommandError(f"{key} must be a floating-point conv weight; received dtype "
                           f"{weight.dtype}")
    if weight.size == 0:
        raise CommandError(f"{key} of shape {weight.shape} holds no filters")
    if args.weights:
        return Drawing(weight, "filters", f"{key} {weight.shape}")
    c_in = weight.shape[2]
    if c_in not in (1, 3):
        raise CommandError(
            f"{key} of shape {weight.shape} takes {c_in} input channels, but an image has 1 "
            f"or 3; choose a first-layer weight with --key or --layer"
        )
    x = io.to_channels(image, c_in)
    maps = convolve.conv2d(x, weight.astype(np.float32), padding="same",
                           padding_mode=args.mode)
    return Drawing(maps, "maps", f"{key} on {args.input}",
                   [f"{key}[{i}]" for i in range(maps.shape[-1])])


def _model_maps(model: Module, image: np.ndarray, args: argparse.Namespace) -> Drawing:
    from convolve import inputs
    from convolve.nn import layers

    if args.key is not None:
        raise CommandError("--key names an array of a file of weights; a training "
                           "checkpoint's model takes --layer N or --layer NAME")
    layer = layers.find(model, "0" if args.layer is None else args.layer)
    info = model.info
    if args.weights:
        weight = getattr(layer.module, "weight", None)
        if weight is None or weight.ndim != 4:
            raise CommandError(f"{layer} is a {type(layer.module).__name__}: it has no conv "
                               "kernels to draw; choose a convolution layer")
        weight = np.asarray(weight.data)
        return Drawing(weight, "filters", f"{layer} of {info.name}: kernels {weight.shape}")
    shape = (None, None, info.input_shape[2]) if args.native_size else info.input_shape
    x = inputs.to_model_input(image, shape, info)
    maps = layers.output_of(model, layer, x[None])[0]
    if maps.ndim != 3:
        listing = ", ".join(f"{each.number} {each.name}" for each in layers.layers(model))
        raise CommandError(f"{layer} outputs shape {maps.shape}, not feature maps (H, W, C); "
                           f"choose another layer: {listing}")
    return Drawing(maps, "maps", f"{layer} of {info.name} on {args.input}")


@dataclass(frozen=True)
class Drawing:
    """What to draw: ``maps (H, W, C)`` or ``filters (KH, KW, C_in, C_out)``."""

    array: np.ndarray
    kind: str
    title: str
    titles: list[str] | None = None


def _trained_model(path: str) -> Module | None:
    """The model of a training checkpoint that names a zoo model; None for other files."""
    from convolve import models

    try:
        meta = checkpoint.load(path)[1]
    except checkpoint.CheckpointError:
        return None  # a file of arrays without convolve's metadata (read again, with errors)
    if meta.get("format") != models.TRAINING_FORMAT or not (meta.get("model") or {}).get(
            "name"):
        return None
    return models.load(path)


def _onnx_maps(image: np.ndarray, args: argparse.Namespace) -> Drawing:
    from convolve.onnx.probe import node_outputs, tensor_name

    model, source = load_image_model(args.model)
    layer = args.layer
    if layer is None:
        convs = [node.name or node.output[0] for node in model.graph.nodes
                 if node.op_type == "Conv"]
        if not convs:
            raise CommandError(f"{args.model} has no Conv node; name one with --layer")
        layer = convs[0]
    try:
        tensor_name(model, layer)
    except ValueError as error:
        raise CommandError(f"--layer {error}") from None
    feeds = source.feeds(image, native_size=args.native_size)
    out = np.asarray(node_outputs(model, [layer], feeds)[layer])
    if out.ndim != 4 or out.dtype.kind != "f":
        raise CommandError(f"--layer {layer!r} gives {out.dtype} of shape {out.shape}, not "
                           "feature maps (N, C, H, W)")
    # 4-D values inside a graph are NCHW (ONNX's convolutions); the input is as declared.
    maps = out[0] if layer == source.name and source.layout == "NHWC" else out[0].transpose(
        1, 2, 0)
    return Drawing(maps, "maps", f"{layer} of {Path(args.model).name} on {args.input}")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def run(args: argparse.Namespace) -> int:
    from convolve import io

    resolve_model_option(args)
    if args.checkpoint is None and (args.key is not None or args.weights or (
            args.layer is not None and args.model is None)):
        raise CommandError("--key, --layer and --weights apply only with --checkpoint "
                           "(--layer also with --model)")
    _args.choice(args.scale, "--scale", viz.SCALES)
    io.image_format(args.output)  # a suffix no format has is refused before any work
    _args.integer(args.tile, "--tile", minimum=32)
    if args.checkpoint is not None:
        load_arrays(args.checkpoint)  # a wrong suffix, a missing or damaged file: said now
    image = read_input_image(args.input)
    if args.kernels is not None:
        maps, titles = _kernel_bank_maps(image, args.kernels, args.mode)
        drawing = Drawing(maps, "maps", f"{args.kernels} on {args.input}", titles)
    elif args.model is not None:
        drawing = _onnx_maps(image, args)
    else:
        model = _trained_model(args.checkpoint)
        drawing = (_weight_file_maps(image, args) if model is None
                   else _model_maps(model, image, args))
    if drawing.kind == "filters":
        path = viz.plot_filters(drawing.array, args.output, tile=args.tile,
                                columns=args.columns, title=drawing.title)
        kh, kw, _, count = drawing.array.shape
        print(f"wrote {path}: {_plural(count, 'filter')} of {kw}x{kh}")
        return 0
    path = viz.plot_feature_maps(drawing.array, args.output, scale=args.scale,
                                 tile=args.tile, columns=args.columns, titles=drawing.titles,
                                 title=drawing.title)
    height, width, count = drawing.array.shape
    print(f"wrote {path}: {_plural(count, 'feature map')} of {width}x{height}")
    return 0
