"""A finite-difference gradient checker in float64, for any op on Tensors."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from convolve import Tensor


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[np.ndarray], *, eps: float = 1e-6,
              rtol: float = 1e-5, atol: float = 1e-7, seed: int = 0,
              wrt: Sequence[int] | None = None) -> None:
    """Compare ``fn``'s backward with central differences of ``sum(fn(*inputs) * g)``.

    ``inputs`` are float64 arrays; ``wrt`` picks which ones to check (default all).
    Raises AssertionError with the worst element on a mismatch.
    """
    arrays = [np.array(a, dtype=np.float64) for a in inputs]
    wrt = range(len(arrays)) if wrt is None else wrt
    tensors = [Tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    out = fn(*tensors)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(g)

    def objective() -> float:
        return float(np.sum(np.asarray(fn(*arrays)) * g))

    for i in wrt:
        numeric = np.zeros_like(arrays[i])
        flat = arrays[i].reshape(-1)
        for k in range(flat.size):
            saved = flat[k]
            flat[k] = saved + eps
            up = objective()
            flat[k] = saved - eps
            down = objective()
            flat[k] = saved
            numeric.reshape(-1)[k] = (up - down) / (2 * eps)
        analytic = tensors[i].grad
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")
