"""Every benchmark of the speed issue in one run, written to benchmarks/results.md: conv2d
forward and forward+backward, filtering, max pooling and (with torch and the model zoo)
one training step of the default MNIST model against the same model in PyTorch."""

from _run import ROOT, arguments, write


def train_table(model: str) -> str:
    from bench_train import throughput

    from convolve.perf.timing import markdown_table

    tp = throughput(model)
    return markdown_table(
        ["model (batch 64, Adam)", "convolve img/s", "torch img/s", "ratio"],
        [[model, f"{tp['convolve']:.0f}", f"{tp['torch']:.0f}", f"{tp['ratio']:.2f}x"]])


if __name__ == "__main__":
    args = arguments(__doc__, "results.md")
    from convolve.perf.conv import conv_rows
    from convolve.perf.filter import filter_rows
    from convolve.perf.pool import pool_rows
    from convolve.perf.report import conv_table, filter_table, pool_table

    settings = dict(rounds=args.rounds, calls=args.calls)
    sections = [
        "### conv2d vs torch (ratio = torch time / convolve time)\n\n" + conv_table(
            conv_rows(backward=False, **settings), conv_rows(backward=True, **settings)),
        "### Filtering 2048x2048, one channel, reflect borders (ratio = peer time / "
        "convolve time)\n\n" + filter_table(filter_rows(**settings)),
        "### max_pool2d 2x2/2 forward+backward (ratio = torch time / convolve time)\n\n"
        + pool_table(pool_rows(**settings)),
    ]
    if (ROOT / "benchmarks" / "bench_train.py").exists():
        sections.append("### One training step, default MNIST model (median of 30, "
                        "ratio = convolve img/s / torch img/s)\n\n" + train_table("mnist_cnn"))
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        pass
    else:
        from bench_onnx import onnx_section

        sections.append(onnx_section(rounds=args.rounds, calls=args.calls,
                                     threads=args.threads))
    write(args.out, "Benchmark results", "\n\n".join(sections))
