"""``convolve summary``: a model's layers, output shapes and parameter counts: a zoo model,
or an ONNX file's graph node by node."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from convolve import _args, models
from convolve.commands import CommandError, ints
from convolve.commands.onnx_input import require_onnx


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "summary", help="print a model's layers, output shapes and parameter counts",
        description="Build a model from the zoo and print a Keras-like table: each layer's "
                    "output shape and parameter count, and the totals. Given an ONNX file, "
                    "print its graph node by node: op, output shapes (in the file's "
                    "layout, for one input of the declared shape, dynamic sizes as 1) and "
                    "the parameters each node reads first.")
    parser.add_argument("onnx_file", nargs="?", metavar="MODEL.onnx",
                        help="an ONNX file to describe instead of a zoo model")
    parser.add_argument("--model", help=f"one of {', '.join(models.MODELS)} (default "
                                        "lenet5)")
    parser.add_argument("--input-shape", help="H,W,C without the batch axis (default: the "
                                              "model's own, e.g. 32,32,3 for lenet5); for "
                                              "an ONNX file the whole input shape in its "
                                              "layout, e.g. 1,3,224,224")
    parser.add_argument("--num-classes", type=int, default=10,
                        help="outputs of the last layer (default 10)")
    parser.set_defaults(run=run)


def _onnx_summary(args: argparse.Namespace) -> int:
    if args.model is not None:
        raise CommandError("give either an ONNX file or --model, not both")
    if Path(args.onnx_file).suffix.lower() != ".onnx":
        raise CommandError(f"MODEL.onnx must be an .onnx file; received {args.onnx_file!r}")
    require_onnx()
    from convolve import onnx

    model = onnx.load(args.onnx_file)
    shape = None
    if args.input_shape is not None:
        shape = ints(args.input_shape, "--input-shape")
        if min(shape) < 1:
            raise CommandError(f"--input-shape must be positive integers; received "
                               f"{args.input_shape!r}")
        _args.check_fits(shape, np.float32, "the input of --input-shape")
    model.summary(shape)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.onnx_file is not None:
        return _onnx_summary(args)
    name = args.model or "lenet5"
    if args.input_shape is None:
        shape = models.default_input_shape(name)
    else:
        shape = ints(args.input_shape, "--input-shape")
        if len(shape) != 3:
            raise CommandError(f"--input-shape must be H,W,C (three integers, no batch axis); "
                               f"received {args.input_shape!r}")
    model = models.get_model(name, input_shape=shape, num_classes=args.num_classes, seed=0)
    model.summary(shape)
    return 0
