"""``convolve predict``: classify image files with a trained model (a training checkpoint or
an ONNX file) and print the most probable classes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from convolve.commands import CommandError
from convolve.commands.onnx_input import load_image_model, resolve_model_option
from convolve.data import cifar, datasets
from convolve.model_info import ModelInfo

CLASS_SETS = {  # --classes NAME: a dataset's class names
    "digits": datasets.MNIST_CLASSES,
    "fashion-mnist": datasets.FASHION_MNIST_CLASSES,
    "cifar10": cifar.CLASSES,
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "predict", help="classify image files with a trained model",
        description="Classify images with a model trained by convolve train (its checkpoint "
                    "rebuilds it) or an ONNX file. Each image is read as grey or RGB, "
                    "resized (stretched, antialiased) to the model's input size and "
                    "normalised as in training; prints the most probable classes with their "
                    "probabilities, one line per image.")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="PNG/JPEG/... files, folders (their image files) or glob patterns "
                             "such as 'digits/*.png'; sample:camera for the shipped photograph")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="CKPT",
                        help="a .safetensors or .npz training checkpoint (convolve train "
                             "--checkpoint); an .onnx file is taken as --model")
    source.add_argument("--model", metavar="M.onnx",
                        help="an ONNX model (its input NCHW or NHWC; images resized to its "
                             "height and width, kept at their own size where those are "
                             "dynamic; normalised as a file from convolve export says, else "
                             "fed in [0, 1] unless --mean/--std)")
    parser.add_argument("--top", type=int, default=3, metavar="K",
                        help="how many classes to show per image (default 3)")
    parser.add_argument("--json", action="store_true",
                        help='one JSON line per image: {"path", "index", "label", '
                             '"probability", "top": [[label, p], ...]}')
    parser.add_argument("--classes", metavar="NAMES",
                        help=f"class names: {', '.join(CLASS_SETS)}, or comma-separated names "
                             "(default: those of the checkpoint or of a file from convolve "
                             "export; class numbers for other ONNX files)")
    parser.add_argument("--mean", metavar="M", help="input normalisation (ONNX models): "
                        "mean, one value or one per channel, comma-separated")
    parser.add_argument("--std", metavar="S", help="input normalisation (ONNX models): std")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="images classified at a time (default 64)")
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Classifier:
    """A model as the command uses it: ``(N, H, W, C)`` images in, ``(N, K)`` out;
    ``input_shape`` ``(H, W, C)``, H and W None where any size goes."""

    run: Callable[[np.ndarray], np.ndarray]
    input_shape: tuple[int | None, int | None, int]
    info: ModelInfo


def _from_checkpoint(path: str, batch_size: int) -> Classifier:
    from convolve import models, train

    model = models.load(path)
    shape = model.info.input_shape
    if shape is None or len(shape) != 3:
        raise CommandError(f"checkpoint {path} does not record an image input shape (H, W, C)")
    return Classifier(lambda x: train.predict(model, x, batch_size=batch_size), shape,
                      model.info)


def _from_onnx(path: str, batch_size: int) -> Classifier:
    from convolve import train

    model, source = load_image_model(path)
    if len(model.output_names) != 1:
        raise CommandError(f"{path} gives {len(model.output_names)} outputs; convolve predict "
                           "needs a model with one output of class scores")

    def run(images: np.ndarray) -> np.ndarray:
        return train.predict(model, source.in_file_layout(images),
                             batch_size=batch_size).reshape(len(images), -1)

    return Classifier(run, source.shape, source.info)


def _values(text: str, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(np.isfinite(values)):
        raise CommandError(f"{name} must be comma-separated numbers; received {text!r}")
    return values


def _classes(text: str) -> tuple[str, ...]:
    if text in CLASS_SETS:
        return CLASS_SETS[text]
    names = tuple(name.strip() for name in text.split(","))
    if len(names) < 2 or not all(names):
        raise CommandError(f"--classes must be one of {', '.join(CLASS_SETS)} or "
                           f"comma-separated names; received {text!r}")
    return names


def probabilities(outputs: np.ndarray) -> np.ndarray:
    """``(N, K)`` class probabilities: the outputs themselves when each row already is a
    distribution (a model ending in softmax), else their softmax (logits)."""
    outputs = np.asarray(outputs, np.float64)
    if (outputs >= 0).all() and np.allclose(outputs.sum(axis=1), 1, atol=1e-4):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _check(args: argparse.Namespace) -> None:
    if args.top < 1:
        raise CommandError(f"--top must be >= 1; received {args.top}")
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1; received {args.batch_size}")
    if args.checkpoint is not None and (args.mean or args.std):
        raise CommandError("--mean and --std apply only to ONNX models (--model): a checkpoint "
                           "holds the normalisation it was trained with")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint file not found: {args.checkpoint}")


def run(args: argparse.Namespace) -> int:
    from convolve import inputs

    resolve_model_option(args)
    _check(args)
    classes = None if args.classes is None else _classes(args.classes)
    names = inputs.find_images(args.images)
    model = (_from_checkpoint(args.checkpoint, args.batch_size) if args.checkpoint
             else _from_onnx(args.model, args.batch_size))
    info = model.info
    if args.mean:  # else the model's own (a file from convolve export keeps it)
        info = replace(info, mean=_values(args.mean, "--mean"))
    if args.std:
        info = replace(info, std=_values(args.std, "--std"))
        if min(info.std) <= 0:
            raise CommandError(f"--std must be > 0; received {args.std}")
    if classes is not None:
        info = replace(info, classes=classes)
    for start in range(0, len(names), args.batch_size):
        chunk = names[start:start + args.batch_size]
        probs = probabilities(np.concatenate([
            model.run(images) for images in inputs.batches(chunk, model.input_shape, info)]))
        if classes is not None and probs.shape[1] != len(classes):
            raise CommandError(f"--classes names {len(classes)} classes but the model has "
                               f"{probs.shape[1]} outputs")
        for name, row in zip(chunk, probs):
            print(_line(name, row, info, args.top, args.json), flush=True)
    return 0


def _line(name: str, row: np.ndarray, info: ModelInfo, top: int, as_json: bool) -> str:
    order = np.argsort(-row, kind="stable")[:top]
    best = int(order[0])
    if as_json:
        return json.dumps({
            "path": name, "index": best, "label": info.label(best),
            "probability": round(float(row[best]), 6),
            "top": [[info.label(int(k)), round(float(row[k]), 6)] for k in order],
        })
    return f"{name}: " + ", ".join(f"{info.label(int(k))} {row[k]:.1%}" for k in order)
