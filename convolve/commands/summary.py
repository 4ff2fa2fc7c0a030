"""``convolve summary``: a zoo model's layers, output shapes and parameter counts."""

from __future__ import annotations

import argparse

from convolve import models
from convolve.commands import CommandError, ints


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "summary", help="print a model's layers, output shapes and parameter counts",
        description="Build a model from the zoo and print a Keras-like table: each layer's "
                    "output shape and parameter count, and the totals.")
    parser.add_argument("--model", default="lenet5",
                        help=f"one of {', '.join(models.MODELS)} (default lenet5)")
    parser.add_argument("--input-shape", help="H,W,C without the batch axis (default: the "
                                              "model's own, e.g. 32,32,3 for lenet5)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.input_shape is None:
        shape = models.default_input_shape(args.model)
    else:
        shape = ints(args.input_shape, "--input-shape")
        if len(shape) != 3:
            raise CommandError(f"--input-shape must be H,W,C (three integers, no batch axis); "
                               f"received {args.input_shape!r}")
    model = models.get_model(args.model, input_shape=shape, num_classes=args.num_classes,
                             seed=0)
    model.summary(shape)
    return 0
