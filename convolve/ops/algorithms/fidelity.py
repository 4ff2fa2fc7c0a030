"""What ``"auto"`` asks of the data before it runs a method that spreads errors.

Each method's error, for an output ``y = sum w * x`` over its window, with ``u`` the
unit roundoff (6e-8 in float32, 1.1e-16 in float64) and ``S = sum |w| * |x|`` over the
same window (measured maxima of ``|error| / S`` on random data in brackets):

- ``gemm``, ``shift_gemm``, ``direct``, the depthwise engine: at most ``K * u * S`` for
  ``K`` products per output, a few ``u * S`` in practice (float32 2.6e-7);
- ``winograd_f2``: about ``2 * u * S_tile``, ``winograd`` (F(4x4)) about ``50 * u *
  S_tile`` (3.1e-6), with ``S_tile`` the sum over the output's 4x4 or 6x6 input tile: the
  error stays near its tile;
- ``fft``: about ``u * log2(P * Q) * max|x| * sum|w|`` at EVERY output: one large value
  anywhere raises the error everywhere (a 1e4 patch in a 0-1 image: 5e-4 of ``S`` far
  from it in float32, 8e-13 in float64).

Non-finite values: the direct definition (gemm and PyTorch) puts inf or NaN only in the
outputs whose window holds one (``inf * 0`` is NaN). Winograd's transforms spread them over
the tile, FFT over the whole image (one inf pixel: every output NaN).

So ``"auto"`` runs Winograd only on finite operands (else gemm), and FFT only on finite
operands whose dynamic range ``D = max|x| / mean|x|`` its error allows (else the
depthwise engine), by ``fft_dtype``: in float32 for float32 data with ``D <= 10``
(measured 2.3e-7 of ``S`` at D = 20, gemm's), in float64 for float32 data up to
``D <= 1e6`` (within float32's rounding) and for float64 data up to ``D <= 100``
(5e-15 of ``S`` at D = 170). Named methods run as asked, errors and spreading included.
"""

from __future__ import annotations

import numpy as np

# By input dtype, the dynamic ranges max|x| / mean|x| up to which auto's FFT meets the
# bound, each with the dtype FFT computes in.
FFT_RANGES = {
    np.dtype(np.float32): ((10.0, np.dtype(np.float32)), (1e6, np.dtype(np.float64))),
    np.dtype(np.float64): ((1e2, np.dtype(np.float64)),),
}


def all_finite(*arrays: np.ndarray) -> bool:
    """Whether every value is finite: one pass, no temporary. A sum is non-finite when a
    term is (NaN spreads, inf stays or meets -inf in a NaN); a finite sum that overflows
    counts as non-finite too, which only sends the work to the exact method. The sum runs
    in the array's own dtype (float16 in float32): a float64 accumulator converts every
    element and took 3.2 ms instead of 0.9 on a 2048x2048 float32 image."""
    return all(np.isfinite(a.sum(dtype=np.float32 if a.dtype == np.float16 else None))
               for a in arrays)


def fft_dtype(x: np.ndarray, w: np.ndarray) -> np.dtype | None:
    """The dtype auto's FFT of ``x`` by ``w`` computes in to meet its bound, or None where
    no FFT may (a value not finite, or ``x``'s dynamic range too large): two passes."""
    if x.size == 0 or not all_finite(w):
        return None
    magnitude = np.abs(x)
    peak, mean = float(magnitude.max()), float(magnitude.mean(dtype=np.float64))
    if not np.isfinite(peak):
        return None
    return next((dtype for limit, dtype in FFT_RANGES[x.dtype] if peak <= limit * mean), None)
