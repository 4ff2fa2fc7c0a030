"""``convolve export``: a trained model's checkpoint as an ONNX file."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from convolve import models
from convolve.commands import CommandError
from convolve.commands.onnx_input import require_onnx


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export", help="write a training checkpoint's model as an ONNX file",
        description="Rebuild the model of a training checkpoint (written by convolve train "
                    "--checkpoint or fit(checkpoint_path=...)) and write it as ONNX: input "
                    "(N, H, W, C) float32 with a dynamic batch N, the model's output "
                    "(logits) in evaluation mode. The class names and input normalisation "
                    "go into the file's metadata (convolve.model_info).")
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a .safetensors or .npz training checkpoint")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL.onnx",
                        help="the ONNX file to write")
    parser.add_argument("--opset", type=int, default=17,
                        help="ONNX operator set, 13 to 21 (default 17)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if Path(args.output).suffix.lower() != ".onnx":
        raise CommandError(f"-o must name an .onnx file; received {args.output!r}")
    require_onnx()
    from convolve import onnx

    model = models.load(args.checkpoint)
    shape = model.info.input_shape
    onnx.save(model, args.output, input_shape=shape, opset=args.opset)
    params = sum(math.prod(p.shape) for p in model.parameters())
    print(f"wrote {args.output}: {model.info.name} ({params:,} parameters), input "
          f"(N, {', '.join(map(str, shape))}), opset {args.opset}")
    return 0
