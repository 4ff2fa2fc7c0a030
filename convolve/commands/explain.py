"""``convolve explain``: the sizes of a conv2d call, without running it."""

from __future__ import annotations

import argparse

import convolve
from convolve._args import PADDING_STRINGS
from convolve.commands import int_or_pair, ints


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "explain", help="explain the sizes of a conv2d call",
        description="Output size, per-side pads, pixels dropped by the floor, receptive "
                    "field and windows lying entirely in padding, for one conv2d call.")
    parser.add_argument("--input-shape", required=True, help="H,W,C or N,H,W,C")
    parser.add_argument("--weight-shape", required=True, help="KH,KW,C_in/groups,C_out")
    parser.add_argument("--stride", default="1", help="S or SH,SW (default 1)")
    parser.add_argument("--padding", default="valid",
                        help="valid, same, full, P or PH,PW (default valid)")
    parser.add_argument("--dilation", default="1", help="D or DH,DW (default 1)")
    parser.add_argument("--groups", type=int, default=1, help="G (default 1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    padding = args.padding
    if padding.lower() not in PADDING_STRINGS:
        padding = int_or_pair(padding, "--padding")
    print(convolve.explain(
        ints(args.input_shape, "--input-shape"), ints(args.weight_shape, "--weight-shape"),
        stride=int_or_pair(args.stride, "--stride"), padding=padding,
        dilation=int_or_pair(args.dilation, "--dilation"), groups=args.groups,
    ))
    return 0
