"""``convolve filter``: filter an image file with a named or given kernel."""

from __future__ import annotations

import argparse
import math

import numpy as np

from convolve import checkpoint, filters
from convolve.commands import IMAGE_HELP, MODE_HELP, CommandError, filter_dask, read_input_image

KERNEL_TEXT_HELP = ("rows separated by ';', numbers by ',', e.g. '1,0,-1;2,0,-2;1,0,-1' "
                    "(a cross-correlation kernel, centred at (KH // 2, KW // 2))")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "filter", help="filter an image with a named or given kernel",
        description="Filter each channel of an image with one 2-D kernel (convolve's "
                    "conv2d, SciPy's centring) and write the result, of the same size. "
                    "Results outside [0, 1] are clipped unless --normalize or "
                    "--normalize-symmetric rescales them.")
    parser.add_argument("input", metavar="IN", nargs="+",
                        help=f"{IMAGE_HELP}; several files or a quoted pattern such as "
                             "'photos/*.jpg' filter a collection into the folder -o; a TIFF "
                             "or Zarr (.zarr) image can be larger than memory")
    kernel = parser.add_mutually_exclusive_group(required=True)
    kernel.add_argument("-k", "--name", metavar="NAME",
                        help=f"a named kernel: {', '.join(filters.NAMES)} (sobel, prewitt "
                             "and scharr: gradient magnitude)")
    kernel.add_argument("--kernel", metavar="ROWS", help=KERNEL_TEXT_HELP)
    kernel.add_argument("--kernel-file", metavar="K.npy",
                        help="a .npy file holding one 2-D array (KH, KW)")
    parser.add_argument("--mode", default="reflect", help=MODE_HELP)
    parser.add_argument("--sigma", type=float, help="sigma of gaussian_blur or unsharp_mask")
    parser.add_argument("--size", type=int, help="size of box_blur or gaussian_blur")
    parser.add_argument("--amount", type=float, help="amount of unsharp_mask")
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--normalize", dest="normalize", action="store_const",
                       const="minmax", default=False,
                       help="stretch the result's min..max to black..white")
    scale.add_argument("--normalize-symmetric", dest="normalize", action="store_const",
                       const="symmetric",
                       help="map -m..m to black..white with 0 mid-grey, m = max |result| "
                            "(signed results such as sobel_x)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="image file to write; the format follows the suffix (.png, .jpg, "
                             ".tif, .bmp, .webp, ...; .zarr and .tif from a TIFF or Zarr "
                             "input keep float values); a folder for a collection")
    filter_dask.add_arguments(parser)
    parser.set_defaults(run=run)


def parse_kernel(text: str) -> np.ndarray:
    """``"1,0,-1;2,0,-2;1,0,-1"`` as a ``(3, 3)`` array."""
    try:
        rows = [[float(v) for v in row.split(",")] for row in text.split(";")]
    except ValueError:
        rows = []
    if not rows or len({len(row) for row in rows}) != 1 or not all(
            math.isfinite(v) for row in rows for v in row):
        raise CommandError(
            f"--kernel must be {KERNEL_TEXT_HELP.split(' (')[0]}, all rows the same length; "
            f"received {text!r}"
        )
    return np.array(rows)


def load_kernel_file(path: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"kernel file not found: {path}") from None
    except (OSError, ValueError, EOFError) as error:
        refused = checkpoint.refused_pickle(error)
        if refused:
            raise CommandError(f"kernel file {path} {refused}") from None
        raise CommandError(f"cannot read kernel file {path} as .npy: {error}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise CommandError(f"--kernel-file must be a .npy file holding one 2-D array; "
                           f"received an .npz archive: {path}")
    if array.ndim != 2:
        raise CommandError(f"--kernel-file must hold a 2-D array (KH, KW); received an array "
                           f"of shape {array.shape} in {path}")
    return array


def chosen_kernel(args: argparse.Namespace) -> str | np.ndarray:
    params = {name: getattr(args, name) for name in ("sigma", "size", "amount")
              if getattr(args, name) is not None}
    if args.name is None:
        if params:
            raise CommandError("--sigma, --size and --amount apply only to a named kernel "
                               "(-k NAME)")
        if args.kernel is not None:
            return parse_kernel(args.kernel)
        return load_kernel_file(args.kernel_file)
    if not params:
        return args.name  # apply() knows the names, the gradient magnitudes included
    if args.name in filters.MAGNITUDES:
        raise CommandError(f"kernel {args.name!r} takes no parameters; received "
                           f"{', '.join(params)}")
    return filters.kernel(args.name, **params)


def run(args: argparse.Namespace) -> int:
    from convolve import io

    kernel = chosen_kernel(args)
    if filter_dask.wants_dask(args):
        return filter_dask.run(args, kernel)
    io.image_format(args.output)  # a suffix no format has is refused before any work
    image = read_input_image(args.input[0])
    result = filters.apply(image, kernel, mode=args.mode)
    path = io.write_image(args.output, result, normalize=args.normalize)
    height, width = result.shape[:2]
    print(f"wrote {path} ({width}x{height})")
    return 0
