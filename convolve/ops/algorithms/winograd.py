"""Winograd minimal filtering F(m x m, 3 x 3) for 3x3 kernels with stride 1 and dilation 1.

Each ``(m + 2) x (m + 2)`` input tile ``d`` (tiles step by ``m``) and each 3x3 filter ``g``
are transformed, ``V = B^T d B`` and ``U = G g G^T``; the channels are then mixed by one
matrix product per transformed position, ``M[p] = V[p] @ U[p]`` (``(m + 2)^2`` of them in one
batched matmul), and ``A^T M A`` gives an ``m x m`` output tile. ``m * m * 9`` multiplications
per tile and channel pair become ``(m + 2)^2``: 2.25x fewer for F(2x2), 4x for F(4x4).

The 2-D transforms are single GEMMs with the Kronecker matrices ``B^T (x) B^T`` and
``A^T (x) A^T`` on tiles laid out as ``((m + 2)^2, tiles * channels)``; work proceeds in
chunks of tile rows that stay within the workspace budget, split over threads with
single-threaded BLAS (``run_chunks``). The matrices are those of
Lavin & Gray (2016). F(4x4)'s larger constants cost accuracy: about 1e-5 relative error in
float32, against 5e-7 for F(2x2) (measured; both ~1e-15 in float64).

The input gradient is the transposed convolution, itself a 3x3 stride-1 convolution, so
it runs through the same transform; the weight gradient runs the forward's products
backwards through the same tiles.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convolve import runtime
from convolve.ops.algorithms._common import blocks, transposed_kernel, workspace_budget
from convolve.ops.algorithms.method import PaddedInput
from convolve.shapes import ConvGeometry

# Chunks of tiles small enough to stay in cache through the three products (measured:
# 1-4 MB chunks ran 1.2-1.5x faster than whole batches), but of at least CHUNK_TILES tiles
# so that the batched channel products stay efficient GEMMs: each product re-packs its
# (C_in, C_out) transformed filter, which with 16 tiles per chunk took longer than the
# multiplications (8x14x14x256->256: 41 ms in chunks of 16 tiles, 16 ms in chunks of 64).
# Chunks never hold fewer tiles than that to split the work evenly over the threads, and
# their workspace stays within the larger of the usual budget and TILE_WORKSPACE_BYTES. A chunk
# alternates between two scratch buffers, each stage overwriting the one before last:
# input tiles -> "a", V -> "b", the products M -> "a", the output tiles -> "b".
CHUNK_BYTES = 4 << 20
CHUNK_TILES = 256
TILE_WORKSPACE_BYTES = 32 << 20

_MATRICES = {
    2: (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    4: (
        [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}


def _placed(a: np.ndarray, size: tuple[int, int], at: tuple[int, int],
            slot: str) -> np.ndarray:
    """``a: (N, H, W, C)`` at rows/columns ``at`` of a zero ``(N, *size, C)`` scratch array
    (only the border is zeroed: a fresh array's page faults cost as much as the copy)."""
    n, h, w, c = a.shape
    (i, j), (hh, ww) = at, size
    out = runtime.scratch(slot, (n, hh, ww, c), a.dtype)
    out[:, :i], out[:, i + h:], out[:, i:i + h, :j], out[:, i:i + h, j + w:] = 0, 0, 0, 0
    out[:, i:i + h, j:j + w] = a
    return out


class Winograd:
    """Winograd F(m x m, 3 x 3) (module docstring), a conv method.

    Cost: ``(m + 2)^2 / m^2`` multiply-adds per output pixel and channel pair, against 9
    for im2col (F(2x2) 4, F(4x4) 2.25), in batched BLAS products, plus the transforms
    (``O(C_in + C_out)`` per tile). Workspace: two scratch buffers per thread holding one
    chunk of tiles (about ``CHUNK_BYTES``, all threads within the larger of
    ``workspace_budget`` and ``TILE_WORKSPACE_BYTES``) and the transformed filter
    ``U``. 3x3 kernels, stride 1, dilation 1 only.

    Error (``u`` the unit roundoff, ``S = sum |w| * |x|`` over the output's window; the
    bounds in ``fidelity.py``): F(2x2) about ``2 * u * S``, F(4x4) about
    ``50 * u * S`` (float32 3e-6), over the output's input tile. inf or NaN spreads to
    its tile's outputs (as NaN); ``"auto"`` runs gemm on such data."""

    def __init__(self, m: int, name: str) -> None:
        bt, g, at = (np.array(a, dtype=np.float64) for a in _MATRICES[m])
        self.m, self.name = m, name
        self._kron = {"B": np.kron(bt, bt), "G": np.kron(g, g), "A": np.kron(at, at)}

    def _matrix(self, key: str, dtype: np.dtype) -> np.ndarray:
        return self._kron[key].astype(dtype, copy=False)

    def supports(self, geometry: ConvGeometry) -> str | None:
        kernel, stride, dilation = geometry.weight_shape[:2], geometry.stride, geometry.dilation
        if kernel == (3, 3) and stride == (1, 1) and dilation == (1, 1):
            return None
        return ("a 3x3 kernel with stride 1 and dilation 1; received kernel "
                f"{kernel[0]}x{kernel[1]}, stride {stride}, dilation {dilation}")

    def filter_transform(self, w: np.ndarray, groups: int) -> np.ndarray:
        """``w: (3, 3, cg, groups * og)`` -> ``U: ((m + 2)^2, groups, cg, og)``."""
        _, _, cg, c_out = w.shape
        u = np.matmul(self._matrix("G", w.dtype), w.reshape(9, cg * c_out),
                      out=runtime.scratch("winograd.u", (self._kron["G"].shape[0], cg * c_out),
                                  w.dtype))
        return u.reshape(-1, cg, groups, c_out // groups).transpose(0, 2, 1, 3)

    def forward(self, x: PaddedInput, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        """The input padded up to whole tiles, then ``_tiles``."""
        xp, out_hw, groups = x.array, geometry.out_hw, geometry.groups
        hp, wp = xp.shape[1:3]
        grid = self._grid(out_hw)
        if (hp, wp) != grid:
            xp = _placed(xp, grid, (0, 0), "winograd.input")
        y = self._tiles(xp, w, groups)
        if y.shape[1:3] != tuple(out_hw):
            y = np.ascontiguousarray(y[:, :out_hw[0], :out_hw[1]])
        return y

    def grad_input(self, g: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
        """The transposed convolution: ``g`` zero-padded by 2 on every side (and up to
        whole tiles), correlated with the flipped kernel whose in/out channels are
        swapped."""
        xp_shape, groups = geometry.padded_shape, geometry.groups
        gp = _placed(g, self._grid(xp_shape[1:3]), (2, 2), "winograd.input")
        dxp = self._tiles(gp, transposed_kernel(w, groups), groups)
        return dxp[:, :xp_shape[1], :xp_shape[2]]

    def _grid(self, out_hw: tuple[int, ...]) -> tuple[int, int]:
        """The input size whose tiles cover ``out_hw`` exactly."""
        m = self.m
        return -(-out_hw[0] // m) * m + 2, -(-out_hw[1] // m) * m + 2

    def _chunks(self, n: int, th: int, tw: int, c: int, c_out: int, itemsize: int,
                output_bytes: int) -> list[tuple[int, int, int, int]]:
        """``(n0, n1, h0, h1)`` blocks of tile rows for ``run_chunks``: about
        ``CHUNK_BYTES`` of workspace, at least ``CHUNK_TILES`` tiles unless that leaves a
        thread idle, and all threads' chunks within the workspace budget."""
        t = self.m + 2
        tile_bytes = t * t * 2 * (c + c_out) * itemsize
        tiles = max(CHUNK_TILES, CHUNK_BYTES // tile_bytes)
        tiles = min(tiles, -(-n * th * tw // runtime.THREADS))
        budget = max(workspace_budget(output_bytes), TILE_WORKSPACE_BYTES) // runtime.THREADS
        tiles = max(tw, min(tiles, budget // tile_bytes))
        return list(blocks(n, th, tw * tile_bytes, tiles * tile_bytes))

    def _tile_view(self, xp: np.ndarray, th: int, tw: int) -> np.ndarray:
        """A read-only view ``(N, th, tw, m + 2, m + 2, C)`` of the overlapping input tiles."""
        m, t = self.m, self.m + 2
        sn, sh, sw, sc = xp.strides
        return as_strided(xp, (xp.shape[0], th, tw, t, t, xp.shape[3]),
                          (sn, m * sh, m * sw, sh, sw, sc), writeable=False)

    def _input_transform(self, b: np.ndarray, tiles: np.ndarray, groups: int) -> np.ndarray:
        """``B^T d B`` for a chunk of tiles ``(nb, rh, tw, t, t, C)``, as one product with
        the Kronecker matrix ``b``: ``(t * t, nb * rh * tw, groups, C // groups)``."""
        t = self.m + 2
        nb, rh, tw, _, _, c = tiles.shape
        d = runtime.scratch("winograd.a", (t, t, nb, rh, tw, c), tiles.dtype)
        np.copyto(d, tiles.transpose(3, 4, 0, 1, 2, 5))
        v = np.matmul(b, d.reshape(t * t, -1),
                      out=runtime.scratch("winograd.b", (t * t, nb * rh * tw * c), tiles.dtype))
        return v.reshape(t * t, nb * rh * tw, groups, c // groups)

    def _tiles(self, xp: np.ndarray, w: np.ndarray, groups: int) -> np.ndarray:
        """The convolution of ``xp`` whose size ``(th * m + 2, tw * m + 2)`` is whole
        tiles: ``(N, th * m, tw * m, C_out)``."""
        m, t = self.m, self.m + 2
        n, hp, wp, c = xp.shape
        c_out = w.shape[3]
        th, tw = (hp - 2) // m, (wp - 2) // m
        tiles = self._tile_view(xp, th, tw)
        u = self.filter_transform(w, groups)
        b, a = self._matrix("B", xp.dtype), self._matrix("A", xp.dtype)
        y = np.empty((n, th * m, tw * m, c_out), dtype=xp.dtype)

        def run(chunks: list[tuple[int, int, int, int]]) -> None:
            for n0, n1, h0, h1 in chunks:
                nb, rh = n1 - n0, h1 - h0
                count = nb * rh * tw
                v = self._input_transform(b, tiles[n0:n1, h0:h1], groups)
                if groups == 1:
                    prod = np.matmul(v[:, :, 0], u[:, 0], out=runtime.scratch(
                        "winograd.a", (t * t, count, c_out), xp.dtype))
                else:
                    prod = np.matmul(v.transpose(0, 2, 1, 3), u).transpose(0, 2, 1, 3)
                out = np.matmul(a, prod.reshape(t * t, -1), out=runtime.scratch(
                    "winograd.b", (m * m, count * c_out), xp.dtype))
                out = out.reshape(m, m, nb, rh, tw, c_out)
                target = y[n0:n1, h0 * m:h1 * m].reshape(nb, rh, m, tw, m, c_out)
                np.copyto(target, out.transpose(2, 3, 0, 4, 1, 5))

        runtime.run_chunks(run, self._chunks(n, th, tw, c, c_out, xp.itemsize, y.nbytes))
        return y

    def grad_weight(self, xp: np.ndarray, g: np.ndarray,
                    geometry: ConvGeometry) -> np.ndarray:
        """The forward's products run backwards: per tile, ``dM = A g A^T`` (the output
        gradient sent back through the output transform), ``dU[p] = V[p]^T @ dM[p]``
        summed over tiles, then ``dw = G^T dU G``: (m + 2)^2 / (9 m^2) of im2col's
        multiplications."""
        w_shape, groups = geometry.weight_shape, geometry.groups
        m, t = self.m, self.m + 2
        n, hp, wp, c = xp.shape
        c_out = w_shape[3]
        cg, og = c // groups, c_out // groups
        grid = self._grid(g.shape[1:3])
        if (hp, wp) != grid:
            xp = _placed(xp[:, :grid[0], :grid[1]], grid, (0, 0), "winograd.input")
        th, tw = (grid[0] - 2) // m, (grid[1] - 2) // m
        if g.shape[1:3] != (th * m, tw * m):
            g = _placed(g, (th * m, tw * m), (0, 0), "winograd.gradient")
        tiles = self._tile_view(xp, th, tw)
        b, a_t = self._matrix("B", xp.dtype), self._matrix("A", xp.dtype).T
        partials: list[np.ndarray] = []

        def run(chunks: list[tuple[int, int, int, int]]) -> None:
            du = np.zeros((t * t, groups, cg, og), dtype=xp.dtype)
            for n0, n1, h0, h1 in chunks:
                nb, rh = n1 - n0, h1 - h0
                count = nb * rh * tw
                v = self._input_transform(b, tiles[n0:n1, h0:h1], groups)
                gt = runtime.scratch("winograd.a", (m, m, nb, rh, tw, c_out), g.dtype)
                np.copyto(gt, g[n0:n1, h0 * m:h1 * m].reshape(nb, rh, m, tw, m, c_out)
                          .transpose(2, 4, 0, 1, 3, 5))
                dm = np.matmul(a_t, gt.reshape(m * m, -1), out=runtime.scratch(
                    "winograd.dm", (t * t, count * c_out), g.dtype))
                dm = dm.reshape(t * t, count, groups, og)
                du += np.matmul(v.transpose(0, 2, 3, 1), dm.transpose(0, 2, 1, 3))
            partials.append(du)

        runtime.run_chunks(run, self._chunks(n, th, tw, c, c_out, xp.itemsize, g.nbytes))
        du = sum(partials[1:], partials[0])
        dw = self._matrix("G", xp.dtype).T @ du.transpose(0, 2, 1, 3).reshape(t * t, -1)
        return dw.reshape(w_shape)


F2 = Winograd(2, "winograd_f2")
F4 = Winograd(4, "winograd")
