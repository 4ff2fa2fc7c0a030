"""im2col + GEMM: copy each chunk of windows into a patch matrix, then one product.

The patch matrix of a chunk is ``(groups, M, KH * KW * C_in // groups)`` for ``M`` output
pixels (for a 1x1 kernel, the pixels it reads); chunks (whole images, or row blocks of one
image) keep it in cache and within the workspace budget, and run on threads. Good for few
input channels, strided and 1x1 kernels. An ungrouped 1x1 kernel's three passes are one
product each, over the pixels it reads, which BLAS threads itself.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convolve import runtime
from convolve.ops.algorithms._common import (
    blocks,
    grouped_matmul,
    grouped_weight_transpose,
    windows,
    workspace_budget,
)
from convolve.ops.algorithms.method import PaddedInput
from convolve.shapes import ConvGeometry


def _weight_matrix(w: np.ndarray, groups: int) -> np.ndarray:
    """``(KH, KW, cg, groups * og)`` -> ``(groups, KH * KW * cg, og)``."""
    kh, kw, cg, c_out = w.shape
    og = c_out // groups
    return w.reshape(kh, kw, cg, groups, og).transpose(3, 0, 1, 2, 4).reshape(
        groups, kh * kw * cg, og)


def _subsample(xp: np.ndarray, out_hw: tuple[int, int], stride: tuple[int, int]
               ) -> np.ndarray:
    """The pixels a 1x1 kernel reads: ``(N, H_out, W_out, C_in)``, a view."""
    return xp[:, :out_hw[0] * stride[0]:stride[0], :out_hw[1] * stride[1]:stride[1]]


def _pixels(xp: np.ndarray, out_hw: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """A 1x1 kernel's patch matrix: the pixels it reads as ``(M, C_in)`` (a view for
    stride 1)."""
    return np.ascontiguousarray(_subsample(xp, out_hw, stride)).reshape(-1, xp.shape[3])


# Chunks hold patch matrices of about CHUNK_BYTES, so that a chunk's patches are still in
# the core's cache when its product reads them, and at least two chunks go to each thread
# (even shares), but every chunk has at least CHUNK_PIXELS rows, so that each product
# stays an efficient GEMM (a large weight matrix is not re-read for every few rows) and a
# small conv is not handed to threads at all (1x32x32x3->6 k5: 0.25 ms on this thread,
# 0.39 ms split over two). Chunks run on ``run_chunks``' threads, each copying and
# multiplying its own: 64x32x32x3->32 forward took 5.3 ms as one copy then one threaded
# product, 3.3-3.7 ms chunked (2 threads).
CHUNK_BYTES = 1 << 20
CHUNK_PIXELS = 1024
# The weight gradient's few large chunks may hold this much workspace in all.
WEIGHT_GRADIENT_WORKSPACE_BYTES = 32 << 20


def _chunk_list(n: int, c: int, itemsize: int, kernel: tuple[int, int],
                out_hw: tuple[int, int], output_bytes: int) -> list[tuple[int, int, int, int]]:
    """The ``(n0, n1, h0, h1)`` output-row blocks, each one patch matrix of ``M`` rows of
    ``KH * KW * C_in`` values."""
    k_bytes = kernel[0] * kernel[1] * c * itemsize
    share = -(-n * out_hw[0] * out_hw[1] // (2 * runtime.THREADS))  # two chunks a thread
    pixels = max(CHUNK_PIXELS, min(CHUNK_BYTES // k_bytes, share))
    budget = min(pixels * k_bytes, workspace_budget(output_bytes) // runtime.THREADS)
    return list(blocks(n, out_hw[0], out_hw[1] * k_bytes, budget))


# Up to this many input channels the patches are copied from a channels-first copy of
# the chunk's rows, as ``(K, M)`` with whole output rows innermost: with channels last
# the copy moves runs of ``KW * C_in`` values (9 for a 3x3 kernel on RGB), and took 3x
# as long (64x32x32x3->32, a chunk of 9 images: 0.28 ms, 0.09 channels-first).
FEW_CHANNELS = 4


def _patches(xp: np.ndarray, chunk: tuple[int, int, int, int], kernel: tuple[int, int],
             out_w: int, stride: tuple[int, int], dilation: tuple[int, int],
             groups: int) -> np.ndarray:
    """The patch matrix ``(groups, M, KH * KW * C_in // groups)`` of one chunk's ``M``
    output pixels, in this thread's scratch buffer (reused by the next chunk); with few
    channels, the transpose of a C-ordered ``(K, M)`` matrix."""
    n0, n1, h0, h1 = chunk
    c = xp.shape[3]
    span = dilation[0] * (kernel[0] - 1) + 1
    rows = xp[n0:n1, h0 * stride[0]:(h1 - 1) * stride[0] + span]
    if groups == 1 and c <= FEW_CHANNELS:
        patches = _channels_first_patches(rows, kernel, (h1 - h0, out_w), stride, dilation)
        return patches.reshape(kernel[0] * kernel[1] * c, -1).T[None]
    view = windows(rows, kernel, (h1 - h0, out_w), stride, dilation, groups)
    patches = runtime.scratch("gemm.patches", (groups, *view.shape[:5], c // groups), xp.dtype)
    np.copyto(patches, view.transpose(5, 0, 1, 2, 3, 4, 6))
    return patches.reshape(groups, -1, kernel[0] * kernel[1] * (c // groups))


def _channels_first_patches(rows: np.ndarray, kernel: tuple[int, int],
                            out_hw: tuple[int, int], stride: tuple[int, int],
                            dilation: tuple[int, int]) -> np.ndarray:
    """``(KH, KW, C_in, N, H_out, W_out)`` patches of ``rows: (N, R, W, C_in)``.

    The rows are first copied channels-first; with a column stride (and no dilation)
    each channel's columns are split into ``sw`` phases, so that every tap reads whole
    runs of neighbouring values: one strided copy per phase, each of its taps ``sw``
    apart (8x224x224x3->64 k7/2, one row block: 0.10 ms reading every other value,
    0.06 from phases).
    """
    n, hr, wr, c = rows.shape
    sh, sw = stride
    phases = sw if dilation[1] == 1 else 1
    width = -(-wr // phases)
    planes = runtime.scratch("gemm.planes", (c, phases, n, hr, width), rows.dtype)
    for b in range(phases):
        np.copyto(planes[:, b, :, :, :len(range(b, wr, phases))],
                  rows[:, :, b::phases].transpose(3, 0, 1, 2))
    patches = runtime.scratch("gemm.patches", (*kernel, c, n, *out_hw), rows.dtype)
    s_c, _, s_n, s_r, s_q = planes.strides
    for b in range(min(phases, kernel[1])):
        taps = patches[:, b::phases]
        np.copyto(taps, as_strided(
            planes[:, b], taps.shape,
            (s_r * dilation[0], s_q * dilation[1], s_c, s_n, s_r * sh, s_q * (sw // phases)),
            writeable=False))
    return patches


def _forward(xp: np.ndarray, w: np.ndarray, *, stride: tuple[int, int],
             dilation: tuple[int, int], groups: int, out_hw: tuple[int, int]) -> np.ndarray:
    """``(N, H_out, W_out, C_out)``: each chunk's patch matrix times the weight matrix."""
    n, c_out = xp.shape[0], w.shape[3]
    y = np.empty((n, *out_hw, c_out), dtype=xp.dtype)
    if w.shape[:2] == (1, 1) and groups == 1:
        # One product, which BLAS threads itself (8x56x56x64->128 1x1/2: 1.16 ms in
        # chunks on two threads, 0.81 as one copy and one product).
        pixels = _pixels(xp, out_hw, stride)
        runtime.run_chunks(lambda _: np.matmul(pixels, w[0, 0], out=y.reshape(-1, c_out)), [None])
        return y
    wmat = _weight_matrix(w, groups)

    def run(chunks: list[tuple[int, int, int, int]]) -> None:
        for chunk in chunks:
            n0, n1, h0, h1 = chunk
            patches = _patches(xp, chunk, w.shape[:2], out_hw[1], stride, dilation, groups)
            target = y[n0:n1, h0:h1].reshape(-1, c_out)  # blocks are contiguous: a view
            if groups == 1:
                np.matmul(patches[0], wmat[0], out=target)
            else:
                target[...] = np.matmul(patches, wmat).transpose(1, 0, 2).reshape(-1, c_out)

    runtime.run_chunks(run, _chunk_list(n, xp.shape[3], xp.itemsize, w.shape[:2], out_hw, y.nbytes))
    return y


def _grad_weight(xp: np.ndarray, g: np.ndarray, *, w_shape: tuple[int, ...],
                 stride: tuple[int, int], dilation: tuple[int, int],
                 groups: int) -> np.ndarray:
    """``w_shape``: each chunk's transposed patch matrix times its output gradient,
    summed over the chunks (one partial sum per thread)."""
    kh, kw, cg, c_out = w_shape
    og = c_out // groups
    out_hw = g.shape[1:3]
    if (kh, kw) == (1, 1) and groups == 1:  # one product, as the forward's
        pixels = _pixels(xp, out_hw, stride)
        dw = np.empty((cg, c_out), dtype=np.result_type(xp, g))
        runtime.run_chunks(lambda _: np.matmul(pixels.T, g.reshape(-1, c_out), out=dw), [None])
        return dw.reshape(w_shape)
    partials: list[np.ndarray] = []

    def run(chunks: list[tuple[int, int, int, int]]) -> None:
        dw = None
        for chunk in chunks:
            n0, n1, h0, h1 = chunk
            patches = _patches(xp, chunk, (kh, kw), out_hw[1], stride, dilation, groups)
            gblock = g[n0:n1, h0:h1].reshape(-1, groups, og).transpose(1, 0, 2)
            part = np.matmul(patches.transpose(0, 2, 1), gblock)
            dw = part if dw is None else np.add(dw, part, out=dw)
        partials.append(dw)

    n = xp.shape[0]
    chunks = _chunk_list(n, xp.shape[3], xp.itemsize, (kh, kw), out_hw, g.nbytes)
    k_bytes = kh * kw * xp.shape[3] * xp.itemsize
    if k_bytes * og > CHUNK_BYTES:
        # Each chunk's product is a whole (K, C_out) partial sum, costly to add up when
        # C_in * C_out is large: one chunk a thread where the workspace allows
        # (8x7x7x512->512: 28 ms in chunks of two images, 19 ms as one chunk a thread;
        # where the weight is small, large chunks were slower: 64x32x32x32->32 16 vs 26).
        share = -(-n * out_hw[0] * out_hw[1] // runtime.THREADS) * k_bytes
        budget = max(workspace_budget(g.nbytes), WEIGHT_GRADIENT_WORKSPACE_BYTES) // runtime.THREADS
        chunks = list(blocks(n, out_hw[0], out_hw[1] * k_bytes, min(share, budget)))
    runtime.run_chunks(run, chunks)
    partials = [p for p in partials if p is not None]  # None: no chunk (an empty batch)
    dw = (sum(partials[1:], partials[0]) if partials
          else np.zeros((groups, kh * kw * cg, og), dtype=xp.dtype))
    return dw.reshape(groups, kh, kw, cg, og).transpose(1, 2, 3, 0, 4).reshape(w_shape)


def _grad_input(g: np.ndarray, w: np.ndarray, *, xp_shape: tuple[int, ...],
                stride: tuple[int, int], dilation: tuple[int, int],
                groups: int) -> np.ndarray:
    """col2im: multiply by the transposed weight, then add each tap back into place.

    The product is laid out taps-first, ``(KH, KW, C_in, pixels)``, and the sums go into
    one channels-first array per stride phase (``dxp[:, a::sh, b::sw]``) that a tap
    reaches, where every tap's contribution is a dense block with whole output rows
    innermost; NHWC order with only ``C_in`` contiguous values (3 for images) made these
    adds 10x slower. Phases no tap reaches (strides beyond the kernel's span) stay zeros:
    at most ``KH * KW`` phase arrays, whatever the stride.
    """
    kh, kw, cg, c_out = w.shape
    og = c_out // groups
    n, out_h, out_w = g.shape[:3]
    if (kh, kw) == (1, 1):
        return _grad_input_1x1(g, w, xp_shape, stride, groups)
    sh, sw = stride
    hp, wp, c = xp_shape[1:]
    reached = {(r * dilation[0] % sh, s * dilation[1] % sw)
               for r in range(kh) for s in range(kw)}
    phases = {(a, b): np.zeros((c, n, -(-(hp - a) // sh), -(-(wp - b) // sw)), g.dtype)
              for a, b in sorted(reached)}
    wmat = _weight_matrix(w, groups)  # (groups, K, og)
    dxp = (np.empty if len(reached) == sh * sw else np.zeros)(xp_shape, dtype=g.dtype)
    images: dict[int, list[tuple[int, int, int, int]]] = {}
    # Large chunks (the adds run one NumPy call per tap and chunk), but enough for every
    # thread.
    row_bytes = out_w * kh * kw * c * g.itemsize
    budget = min(workspace_budget(g.nbytes) // runtime.THREADS,
                 -(-n // runtime.THREADS) * out_h * row_bytes)
    for chunk in blocks(n, out_h, row_bytes, budget):
        images.setdefault(chunk[0], []).append(chunk)

    def run(parts: list[list[tuple[int, int, int, int]]]) -> None:
        """Whole images per thread: row blocks of one image overlap where they add."""
        for chunks in parts:
            for n0, n1, h0, h1 in chunks:
                gblock = g[n0:n1, h0:h1].reshape(-1, groups, og).transpose(1, 2, 0)
                cols = np.matmul(wmat, gblock, out=runtime.scratch(
                    "gemm.cols", (groups, kh * kw * cg, gblock.shape[2]), g.dtype))
                cols = cols.reshape(groups, kh, kw, cg, n1 - n0, h1 - h0, out_w)
                for r in range(kh):
                    for s in range(kw):
                        u, v = r * dilation[0], s * dilation[1]
                        phase = phases[u % sh, v % sw]
                        i0, j0 = h0 + u // sh, v // sw
                        phase[:, n0:n1, i0:i0 + h1 - h0, j0:j0 + out_w] += cols[
                            :, r, s].reshape(c, n1 - n0, h1 - h0, out_w)
            n0, n1 = chunks[0][0], chunks[-1][1]
            for (a, b), phase in phases.items():
                dxp[n0:n1, a::sh, b::sw] = phase[:, n0:n1].transpose(1, 2, 3, 0)

    runtime.run_chunks(run, list(images.values()))
    return dxp


def _grad_input_1x1(g: np.ndarray, w: np.ndarray, xp_shape: tuple[int, ...],
                    stride: tuple[int, int], groups: int) -> np.ndarray:
    """A 1x1 kernel's input gradient: one product per chunk of images, into the pixels
    the kernel read (zeros elsewhere: between them for strides above 1, and rows or
    columns it never read)."""
    n, out_h, out_w = g.shape[:3]
    covered = stride == (1, 1) and (out_h, out_w) == tuple(xp_shape[1:3])
    dxp = (np.empty if covered else np.zeros)(xp_shape, dtype=g.dtype)
    wt = grouped_weight_transpose(w[0, 0], groups)
    target = _subsample(dxp, (out_h, out_w), stride)
    if groups == 1:  # one product (into dxp itself where it covers every pixel)
        def product(_: object) -> None:
            g2 = g.reshape(-1, g.shape[3])
            if covered:
                np.matmul(g2, wt, out=dxp.reshape(-1, xp_shape[3]))
            else:
                target[...] = np.matmul(g2, wt).reshape(target.shape)

        runtime.run_chunks(product, [None])
        return dxp

    def run(chunks: list[tuple[int, int, int, int]]) -> None:
        for n0, n1, h0, h1 in chunks:
            target[n0:n1, h0:h1] = grouped_matmul(g[n0:n1, h0:h1], wt, groups)

    chunks = _chunk_list(n, g.shape[3], g.itemsize, (1, 1), (out_h, out_w), g.nbytes)
    runtime.run_chunks(run, chunks)
    return dxp


class Gemm:
    """im2col + GEMM: each chunk of output pixels copies its windows into a patch matrix
    ``(M, KH * KW * C_in // groups)`` per group, then one product with the weight.

    Cost: ``N * H_out * W_out * KH * KW * C_in * C_out / groups`` multiply-adds, in
    BLAS, plus the patch copies (``KH * KW`` reads of each pixel). Workspace: one patch
    matrix per thread, about ``CHUNK_BYTES`` and within ``workspace_budget`` (the weight
    gradient's chunks up to ``WEIGHT_GRADIENT_WORKSPACE_BYTES``; the input gradient
    sums into channels-first stride phases as large as the padded input). Does every
    shape.

    Error (``u`` the unit roundoff, ``S = sum |w| * |x|`` over the output's window; the
    bounds in ``fidelity.py``): at most ``KH * KW * C_in / groups * u * S``
    (a few ``u * S`` in practice). inf and NaN stay in the outputs whose window holds
    them: the direct definition's set, PyTorch's."""

    name = "gemm"

    def supports(self, geometry: ConvGeometry) -> str | None:
        return None

    def forward(self, x: PaddedInput, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return _forward(x.array, w, stride=geometry.stride, dilation=geometry.dilation,
                        groups=geometry.groups, out_hw=geometry.out_hw)

    def grad_input(self, g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        return _grad_input(g, w, xp_shape=geometry.padded_shape, stride=geometry.stride,
                           dilation=geometry.dilation, groups=geometry.groups)

    def grad_weight(self, xp: np.ndarray, g: np.ndarray,
                    geometry: ConvGeometry) -> np.ndarray:
        return _grad_weight(xp, g, w_shape=geometry.weight_shape, stride=geometry.stride,
                            dilation=geometry.dilation, groups=geometry.groups)


GEMM = Gemm()
