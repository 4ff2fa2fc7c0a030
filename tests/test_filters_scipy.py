"""filters.apply against scipy.ndimage on the shipped photograph: every mode, grey and RGB,
float32 and float64, every named kernel and kernels of odd and even sizes."""

import math
import os
from pathlib import Path

import numpy as np
import pytest

from convolve import filters, io

ndimage = pytest.importorskip("scipy.ndimage")
pytest.importorskip("PIL")

SCIPY_MODE = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest",
              "circular": "wrap", "symmetric": "reflect"}
MODES = list(SCIPY_MODE)
TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


def shared_data():
    """$CONVOLVE_SHARED_DATA, else the nearest ``shared/data`` folder above this file."""
    if "CONVOLVE_SHARED_DATA" in os.environ:
        return Path(os.environ["CONVOLVE_SHARED_DATA"])
    for folder in Path(__file__).resolve().parents:
        if (folder / "shared" / "data").is_dir():
            return folder / "shared" / "data"
    return None


@pytest.fixture(scope="module")
def photo():
    return io.sample_image("camera", dtype=np.float64)


@pytest.fixture(scope="module")
def crop(photo):
    return photo[96:160, 80:144]  # 64x64: the camera and the man's hands


def in_colour(grey):
    """Three different channels made from one grey photograph."""
    return np.stack([grey, grey[::-1], grey.T], axis=-1)


def prepare(grey, colour, dtype):
    return (in_colour(grey) if colour == "rgb" else grey).astype(dtype)


def correlate(image, kernel, mode):
    """scipy.ndimage.correlate in float64, each channel on its own."""
    k = np.asarray(kernel, np.float64)
    image = np.asarray(image, np.float64)
    return ndimage.correlate(image, k[..., None] if image.ndim == 3 else k,
                             mode=SCIPY_MODE[mode])


def check(image, kernel, mode, expected=None):
    got = filters.apply(image, kernel, mode=mode)
    assert got.shape == image.shape and got.dtype == image.dtype
    if expected is None:
        expected = correlate(image, kernel, mode)
    tol = TOLERANCE[image.dtype.type]
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("colour", ["grey", "rgb"])
@pytest.mark.parametrize("mode", MODES)
def test_whole_photograph_matches_scipy(photo, mode, colour, dtype):
    image = prepare(photo, colour, dtype)
    for name in ("sobel_x", "gaussian_blur"):
        check(image, name, mode, correlate(image, filters.kernel(name), mode))


RNG = np.random.default_rng(0)
ARRAYS = [RNG.standard_normal(shape) for shape in [(2, 2), (4, 3), (1, 5), (6, 1), (5, 5)]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("colour", ["grey", "rgb"])
@pytest.mark.parametrize("mode", MODES)
def test_every_kernel_matches_scipy_on_a_crop(crop, mode, colour, dtype):
    image = prepare(crop, colour, dtype)
    for name in filters.KERNELS:
        check(image, name, mode, correlate(image, filters.kernel(name), mode))
    for array in ARRAYS:
        check(image, array, mode)
    big = filters.kernel("gaussian_blur", sigma=3.0)  # 19x19
    check(image, big, mode)


def per_channel(scipy_filter, image, **kwargs):
    """ndimage.sobel and prewitt smooth along every other axis, channels too: split them."""
    return np.stack([scipy_filter(image[..., c], **kwargs) for c in range(image.shape[-1])],
                    axis=-1)


@pytest.mark.parametrize("mode", MODES)
def test_gradient_magnitudes_match_scipy(crop, mode):
    image = in_colour(crop)
    m = SCIPY_MODE[mode]
    for family, scipy_filter in (("sobel", ndimage.sobel), ("prewitt", ndimage.prewitt)):
        gy, gx = (per_channel(scipy_filter, image, axis=a, mode=m) for a in (0, 1))
        check(image, family, mode, np.hypot(gx, gy))
        # scipy's own definitions agree with the kernels, axis 1 being x
        check(image, f"{family}_x", mode, gx)
        check(image, f"{family}_y", mode, gy)
    kx = filters.kernel("scharr_x")
    check(image, "scharr", mode, np.hypot(correlate(image, kx, mode),
                                          correlate(image, kx.T, mode)))


@pytest.mark.parametrize("mode", MODES)
def test_blurs_and_laplacian_match_scipy_filters(crop, mode):
    m = SCIPY_MODE[mode]
    check(crop, "laplacian", mode, ndimage.laplace(crop, mode=m))
    check(crop, filters.kernel("box_blur", size=5), mode,
          ndimage.uniform_filter(crop, size=5, mode=m))
    for sigma in (0.7, 1.0, 2.5):
        check(crop, filters.kernel("gaussian_blur", sigma=sigma), mode,
              ndimage.gaussian_filter(crop, sigma, mode=m, radius=math.ceil(3 * sigma)))


@pytest.mark.parametrize("mode", MODES)
def test_a_real_colour_photograph(mode):
    root = shared_data()
    path = None if root is None else root / "images" / "astronaut.png"
    if path is None or not path.is_file():
        pytest.skip("the shared photographs (shared/data/images) are not here")
    image = io.read_image(path)[:96, 200:296]
    assert image.shape == (96, 96, 3) and image.dtype == np.float32
    for kernel in ("sobel_y", "sharpen", ARRAYS[1]):
        check(image, kernel, mode, correlate(image, filters.kernel(kernel)
                                             if isinstance(kernel, str) else kernel, mode))
