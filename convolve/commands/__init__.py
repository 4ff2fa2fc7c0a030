"""Subcommands of the ``convolve`` command line and their shared argument parsing."""

from __future__ import annotations

import numpy as np

from convolve._args import PADDING_MODES


class CommandError(Exception):
    """A user error on the command line: printed as one line on stderr, exit code 2."""


def ints(text: str, name: str) -> tuple[int, ...]:
    """Parse ``"3,4"`` into ``(3, 4)``; a CommandError naming ``name`` otherwise."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise CommandError(
            f"{name} must be comma-separated integers; received {text!r}") from None


def int_or_pair(text: str, name: str) -> int | tuple[int, ...]:
    values = ints(text, name)
    if len(values) not in (1, 2):
        raise CommandError(f"{name} must be one integer or two; received {text!r}")
    return values[0] if len(values) == 1 else values


MODE_HELP = f"boundary: {', '.join(PADDING_MODES)} (default reflect)"

IMAGE_HELP = ("image file (PNG, JPEG, ...), or sample:camera for the photograph shipped with "
              "convolve")


def read_input_image(text: str) -> np.ndarray:
    """The image named on the command line: a file, or ``sample:NAME`` for a shipped one."""
    from convolve import inputs

    return inputs.read(text)
