"""Single-channel 2048x2048 filtering with 3x3, 7x7 and 15x15 kernels (Gaussian and
random) against torch, scipy.ndimage.correlate and cv2.filter2D."""

from _run import arguments, write

if __name__ == "__main__":
    args = arguments(__doc__, "results_filter.md")
    from convolve.perf.filter import filter_rows
    from convolve.perf.report import filter_table

    rows = filter_rows(rounds=args.rounds, calls=args.calls)
    write(args.out, "Filtering 2048x2048 (ratio = peer time / convolve time)",
          filter_table(rows))
