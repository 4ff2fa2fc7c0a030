"""conv2d forward and forward+backward (dx and dw) on the nine benchmark shapes against
torch.nn.functional.conv2d (2 threads, the better of NCHW and channels_last)."""

from _run import arguments, write

if __name__ == "__main__":
    args = arguments(__doc__, "results_conv.md")
    from convolve.perf.conv import conv_rows
    from convolve.perf.report import conv_table

    forward = conv_rows(backward=False, rounds=args.rounds, calls=args.calls)
    backward = conv_rows(backward=True, rounds=args.rounds, calls=args.calls)
    write(args.out, "conv2d vs torch (ratio = torch time / convolve time)",
          conv_table(forward, backward))
