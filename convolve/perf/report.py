"""Markdown tables of benchmark rows: times in ms, ratios = reference time / convolve time
(above 1: convolve is faster), and geometric means of the ratios."""

from __future__ import annotations

from convolve.perf.timing import geomean, markdown_table


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3g}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def conv_table(forward: list[dict], backward: list[dict] | None = None) -> str:
    header = ["shape (N,H,W,C->K k s p)", "forward ms", "torch ms", "ratio"]
    if backward:
        header += ["fwd+bwd ms", "torch ms", "ratio"]
    rows = []
    for i, f in enumerate(forward):
        row = [f["shape"], _ms(f["convolve"]), _ms(f.get("torch")), _ratio(f.get("ratio"))]
        if backward:
            b = backward[i]
            row += [_ms(b["convolve"]), _ms(b.get("torch")), _ratio(b.get("ratio"))]
        rows.append(row)
    means = ["geometric mean", "", "", _ratio(_mean(forward))]
    if backward:
        means += ["", "", _ratio(_mean(backward))]
    return markdown_table(header, [*rows, means])


def filter_table(rows: list[dict]) -> str:
    peers = [p for p in ("torch", "scipy", "opencv") if any(p in r for r in rows)]
    header = ["kernel", "convolve ms", *(f"{p} ms" for p in peers),
              *(f"{p} / convolve" for p in peers)]
    body = [[r["kernel"], _ms(r["convolve"]), *(_ms(r.get(p)) for p in peers),
             *(_ratio(r[p] / r["convolve"]) if p in r else "-" for p in peers)]
            for r in rows]
    means = ["geometric mean", "", *([""] * len(peers)),
             *(_ratio(geomean([r[p] / r["convolve"] for r in rows if p in r]))
               for p in peers)]
    return markdown_table(header, [*body, means])


def pool_table(rows: list[dict]) -> str:
    header = ["max_pool2d 2x2/2 fwd+bwd", "convolve ms", "torch ms", "ratio"]
    body = [[r["shape"], _ms(r["convolve"]), _ms(r.get("torch")), _ratio(r.get("ratio"))]
            for r in rows]
    return markdown_table(header, [*body, ["geometric mean", "", "", _ratio(_mean(rows))]])


def _mean(rows: list[dict]) -> float | None:
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    return geomean(ratios) if ratios else None
