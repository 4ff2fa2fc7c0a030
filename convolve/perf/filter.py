"""Single-channel image filtering, 2048x2048, against torch, scipy.ndimage and OpenCV.

Every contender computes the same "same"-size correlation with reflected borders
(convolve's ``reflect`` = SciPy's ``mirror`` = OpenCV's ``BORDER_REFLECT_101``; torch pads
with ``F.pad(mode="reflect")`` first). Two kernels per size: a Gaussian (separable) and a
random one (not), since convolve splits rank-one kernels into two passes and the peers
do not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import convolve
from convolve.perf.timing import threads, time_interleaved

SIZES = (3, 7, 15)


def gaussian(k: int) -> np.ndarray:
    a = np.exp(-0.5 * ((np.arange(k) - k // 2) / (k / 4)) ** 2)
    a /= a.sum()
    return np.outer(a, a).astype(np.float32)


def filter_rows(sizes: Sequence[int] = SIZES, *, side: int = 2048, rounds: int = 3,
                calls: int = 3, seed: int = 0) -> list[dict]:
    """One dict per (kernel size, kind): seconds of each available contender."""
    rng = np.random.default_rng(seed)
    image = rng.random((side, side), dtype=np.float32)
    rows = []
    for k in sizes:
        for kind, kernel in (("gaussian", gaussian(k)),
                             ("random", rng.standard_normal((k, k)).astype(np.float32))):
            contenders = {"convolve": _convolve(image, kernel), **_peers(image, kernel)}
            best = time_interleaved(contenders, rounds=rounds, calls=calls)
            rows.append({"kernel": f"{k}x{k} {kind}", **best})
    return rows


def _convolve(image: np.ndarray, kernel: np.ndarray) -> Callable[[], object]:
    k = kernel.shape[0]
    w = kernel[:, :, None, None]
    x = image[:, :, None]
    return lambda: convolve.conv2d(x, w, padding=k // 2, padding_mode="reflect")


def _peers(image: np.ndarray, kernel: np.ndarray) -> dict[str, Callable[[], object]]:
    peers: dict[str, Callable[[], object]] = {}
    k = kernel.shape[0]
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(threads())
        xt = torch.from_numpy(image)[None, None]
        wt = torch.from_numpy(kernel)[None, None]
        F = torch.nn.functional  # noqa: N806 - PyTorch's name

        def run_torch() -> object:
            with torch.no_grad():
                return F.conv2d(F.pad(xt, (k // 2,) * 4, mode="reflect"), wt)

        peers["torch"] = run_torch
    try:
        from scipy import ndimage
    except ImportError:
        pass
    else:
        peers["scipy"] = lambda: ndimage.correlate(image, kernel, mode="mirror")
    try:
        import cv2
    except ImportError:
        pass
    else:
        cv2.setNumThreads(threads())
        peers["opencv"] = lambda: cv2.filter2D(image, -1, kernel,
                                               borderType=cv2.BORDER_REFLECT_101)
    return peers
