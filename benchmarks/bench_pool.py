"""max_pool2d 2x2/2 forward+backward against torch.nn.functional.max_pool2d."""

from _run import arguments, write

if __name__ == "__main__":
    args = arguments(__doc__, "results_pool.md")
    from convolve.perf.pool import pool_rows
    from convolve.perf.report import pool_table

    write(args.out, "max_pool2d vs torch (ratio = torch time / convolve time)",
          pool_table(pool_rows(rounds=args.rounds, calls=args.calls)))
