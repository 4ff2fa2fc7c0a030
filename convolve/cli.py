"""The ``convolve`` command line: one module per command in ``convolve.commands``."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import convolve
from convolve.commands import CommandError

# Each module defines ``register(subparsers)``, which adds its parser and sets ``run``.
COMMANDS = ("explain", "filter", "featuremaps", "summary", "train", "bench", "predict", "export")

# A value made of numbers that starts with "-", e.g. "-1,28,28,1" or "-1,0,1;-2,0,2".
_NUMBERS = re.compile(r"^-[\d.][\d.,;eE+\- ]*$")


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, as every other error (subcommand parsers
    are made of the same class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Values such as "-1,28,28,1" or "-1,0,1;-2,0,2" are numbers, as argparse takes "-1":
        # none of our options starts with "-" and a digit.
        self._negative_number_matcher = _NUMBERS

    def error(self, message: str) -> NoReturn:
        if message.endswith("expected one argument"):
            message += " (attach a value that starts with '-' with '=', e.g. --option=-VALUE)"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="convolve", description="Convolutional layers and networks on NumPy."
    )
    parser.add_argument("--version", action="version", version=convolve.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"convolve.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line on stderr and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    # ImportError: an optional dependency (Pillow, matplotlib, ...) is missing.
    except (CommandError, ValueError, TypeError, OSError, ImportError) as error:
        print(f"convolve {args.command}: error: {error}", file=sys.stderr)
        return 2
    except MemoryError as error:  # sizes asked for on the command line that cannot fit
        print(f"convolve {args.command}: error: out of memory: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"convolve {args.command}: interrupted", file=sys.stderr)
        return 130
