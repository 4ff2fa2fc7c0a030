"""``convolve bench``: a short speed run against PyTorch, SciPy and OpenCV where installed."""

from __future__ import annotations

import argparse

SUITES = ("conv", "filter", "pool")

# Each peer library: (import name, what to pip install, the suites that compare with it).
PEERS = {
    "torch": ("torch", "torch", ("conv", "filter", "pool")),
    "scipy": ("scipy", "scipy", ("filter",)),
    "opencv": ("cv2", "opencv-python-headless", ("filter",)),
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench", help="time conv2d, filtering and pooling against other libraries",
        description="A short benchmark: conv2d forward (and with --backward forward+"
                    "backward) on the nine benchmark shapes against torch, 2048x2048 "
                    "filtering against torch, scipy.ndimage and OpenCV, and max_pool2d "
                    "against torch; peers that are not installed are left out. Ratios are "
                    "the peer's time over convolve's. For the full, slower run use the "
                    "scripts in benchmarks/.")
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"any of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--backward", action="store_true",
                        help="also time conv2d forward+backward")
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds per contender (default 2)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from convolve.commands import CommandError
    from convolve.perf import report
    from convolve.perf.timing import environment
    from convolve.runtime import keep_freed_memory

    if args.rounds < 1:
        raise CommandError(f"--rounds must be >= 1; received {args.rounds}")
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        raise CommandError(f"SUITE must be one of {', '.join(SUITES)}; received {unknown[0]!r}")
    suites = args.suites or SUITES
    keep_freed_memory()  # as in training (fit)
    print(environment())
    for line in missing_peers(suites):
        print(line)
    settings = dict(rounds=args.rounds, calls=2)
    if "conv" in suites:
        from convolve.perf.conv import conv_rows

        forward = conv_rows(backward=False, **settings)
        backward = conv_rows(backward=True, **settings) if args.backward else None
        print("\nconv2d (ratio = torch time / convolve time)\n")
        print(report.conv_table(forward, backward))
    if "filter" in suites:
        from convolve.perf.filter import filter_rows

        print("\nfiltering 2048x2048 (ratio = peer time / convolve time)\n")
        print(report.filter_table(filter_rows(**settings)))
    if "pool" in suites:
        from convolve.perf.pool import pool_rows

        print("\nmax_pool2d 2x2/2 forward+backward (ratio = torch time / convolve time)\n")
        print(report.pool_table(pool_rows(**settings)))
    return 0


def missing_peers(suites: tuple[str, ...] | list[str]) -> list[str]:
    """A line per peer the chosen suites compare with that is not installed, naming the
    package to install for its columns."""
    import importlib

    lines = []
    for peer, (module, package, used_by) in PEERS.items():
        if not any(suite in used_by for suite in suites):
            continue
        try:
            importlib.import_module(module)
        except ImportError:
            lines.append(f"{peer} is not installed: its columns are left out (pip install "
                         f"{package}; all peers: pip install 'convolve[bench]')")
    return lines
