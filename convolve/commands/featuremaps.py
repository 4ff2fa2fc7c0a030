"""``convolve featuremaps``: the feature maps a bank of kernels, or a conv weight from a
checkpoint, produces for an image, as one picture."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

import convolve
from convolve import _args, checkpoint, filters, viz
from convolve.commands import IMAGE_HELP, MODE_HELP, CommandError, read_input_image


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "featuremaps", help="picture the feature maps of a kernel bank or a conv weight",
        description="Filter an image with a bank of named kernels (the image in grey, one "
                    "map per kernel), or with a conv weight (KH, KW, C_in, C_out) from a "
                    ".npz or .safetensors file (the image as C_in = 1 or 3 channels, "
                    "'same' padding, no bias or activation, one map per output channel), "
                    "and draw the maps as one grid of tiles.")
    parser.add_argument("input", metavar="IN", help=IMAGE_HELP)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--kernels", metavar="NAMES",
                        help="comma-separated kernel names, e.g. sobel_x,sobel_y,laplacian; "
                             f"known: {', '.join(filters.NAMES)}")
    source.add_argument("--checkpoint", metavar="CKPT",
                        help=".npz or .safetensors file holding a conv weight "
                             "(KH, KW, C_in, C_out)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--key", help="the weight's name in the checkpoint")
    which.add_argument("--layer", type=int,
                       help="the N-th (from 0) 4-D array of the checkpoint, names in natural "
                            "order (conv2 before conv10); default 0")
    parser.add_argument("--mode", default="reflect", help=MODE_HELP)
    parser.add_argument("--scale", default="per-tile", metavar="SCALE",
                        help="per-tile: each map stretched to its own min..max (default); "
                             "shared: one min..max for all maps")
    parser.add_argument("--tile", type=int, default=256,
                        help="pixels per tile (default 256); the picture is columns * tile "
                             "by rows * tile pixels, columns = ceil(sqrt(maps))")
    parser.add_argument("--columns", type=int, help="tiles per row")
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


def conv_weight(path: str, *, key: str | None, layer: int | None) -> tuple[str, np.ndarray]:
    """The named (or the ``layer``-th 4-D) array of a checkpoint: ``(KH, KW, C_in, C_out)``."""
    arrays = load_arrays(path)
    if key is not None:
        if key not in arrays:
            raise CommandError(f"--key {key!r} is not in {path}; it holds "
                               f"{', '.join(sorted(arrays, key=_natural)) or 'nothing'}")
        if arrays[key].ndim != 4:
            raise CommandError(f"--key {key!r} must name a conv weight (KH, KW, C_in, C_out); "
                               f"received an array of shape {arrays[key].shape}")
        return key, arrays[key]
    weights = sorted((k for k, a in arrays.items() if a.ndim == 4), key=_natural)
    layer = 0 if layer is None else layer
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


def _checkpoint_maps(image: np.ndarray, args: argparse.Namespace
                     ) -> tuple[np.ndarray, list[str]]:
    from convolve import io

    key, weight = conv_weight(args.checkpoint, key=args.key, layer=args.layer)
    if weight.dtype.kind != "f":
        raise CommandError(f"{key} must be a floating-point conv weight; received dtype "
                           f"{weight.dtype}")
    if weight.size == 0:
        raise CommandError(f"{key} of shape {weight.shape} holds no filters")
    c_in = weight.shape[2]
    if c_in not in (1, 3):
        raise CommandError(
            f"{key} of shape {weight.shape} takes {c_in} input channels, but an image has 1 "
            f"or 3; choose a first-layer weight with --key or --layer"
        )
    x = io.to_channels(image, c_in)
    maps = convolve.conv2d(x, weight.astype(np.float32), padding="same",
                           padding_mode=args.mode)
    return maps, [f"{key}[{i}]" for i in range(maps.shape[-1])]


def run(args: argparse.Namespace) -> int:
    if args.checkpoint is None and (args.key is not None or args.layer is not None):
        raise CommandError("--key and --layer apply only with --checkpoint")
    _args.choice(args.scale, "--scale", viz.SCALES)
    from convolve import io

    io.image_format(args.output)  # a suffix no format has is refused before any work
    image = read_input_image(args.input)
    if args.kernels is not None:
        maps, titles = _kernel_bank_maps(image, args.kernels, args.mode)
    else:
        maps, titles = _checkpoint_maps(image, args)
    path = viz.plot_feature_maps(maps, args.output, scale=args.scale, tile=args.tile,
                                 columns=args.columns, titles=titles)
    height, width, count = maps.shape
    print(f"wrote {path}: {count} feature maps of {width}x{height}")
    return 0
