"""The ``convolve`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import convolve


class CommandError(Exception):
    """A user error: printed as one line on stderr, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convolve",
        description="Convolutional layers and networks on NumPy.",
    )
    parser.add_argument("--version", action="version", version=convolve.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    explain = sub.add_parser("explain", help="explain the sizes of a conv2d call")
    explain.add_argument("--input-shape", required=True, help="H,W,C or N,H,W,C")
    explain.add_argument("--weight-shape", required=True, help="KH,KW,C_in/groups,C_out")
    explain.add_argument("--stride", default="1")
    explain.add_argument("--padding", default="valid")
    explain.add_argument("--dilation", default="1")
    explain.set_defaults(run=_explain)
    return parser


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise CommandError(f"{name} must be comma-separated integers; received {text!r}") from None


def _int_or_pair(text: str, name: str) -> int | tuple[int, ...]:
    values = _ints(text, name)
    return values[0] if len(values) == 1 else values


def _explain(args: argparse.Namespace) -> int:
    padding = args.padding
    if padding not in ("valid", "same", "full"):
        padding = _int_or_pair(padding, "--padding")
    result = convolve.explain(
        _ints(args.input_shape, "--input-shape"), _ints(args.weight_shape, "--weight-shape"),
        stride=_int_or_pair(args.stride, "--stride"), padding=padding,
        dilation=_int_or_pair(args.dilation, "--dilation"),
    )
    print(result)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except (CommandError, ValueError, TypeError, OSError) as error:
        print(f"convolve {args.command}: error: {error}", file=sys.stderr)
        return 2
