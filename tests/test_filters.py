"""Named kernels: their defining properties, responses to a step edge, and pinned errors."""

import numpy as np
import pytest

from convolve import filters

SUM_ONE = ["identity", "box_blur", "gaussian_blur", "sharpen", "unsharp_mask", "emboss"]
SUM_ZERO = ["sobel_x", "sobel_y", "prewitt_x", "prewitt_y", "scharr_x", "scharr_y",
            "laplacian", "outline"]
SYMMETRIC = ["identity", "box_blur", "gaussian_blur", "sharpen", "unsharp_mask",
             "laplacian", "outline"]
GRADIENTS = {"sobel": 4.0, "prewitt": 3.0, "scharr": 16.0}  # response to a unit step


def test_every_kernel_is_listed_once():
    assert sorted(SUM_ONE + SUM_ZERO) == sorted(filters.KERNELS)
    assert (*filters.KERNELS, "sobel", "prewitt", "scharr") == filters.NAMES


@pytest.mark.parametrize("name", list(filters.KERNELS))
def test_kernel_is_2d_float64(name):
    k = filters.kernel(name)
    assert k.ndim == 2 and k.dtype == np.float64 and np.isfinite(k).all()
    assert k.shape[0] % 2 == 1 and k.shape[1] % 2 == 1


@pytest.mark.parametrize("name", SUM_ONE)
def test_kernels_that_keep_flat_regions_sum_to_one(name):
    assert filters.kernel(name).sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", SUM_ZERO)
def test_derivative_kernels_sum_to_zero(name):
    assert filters.kernel(name).sum() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", SYMMETRIC)
def test_symmetric_kernels(name):
    k = filters.kernel(name)
    np.testing.assert_allclose(k, k[::-1], atol=1e-15)
    np.testing.assert_allclose(k, k[:, ::-1], atol=1e-15)
    np.testing.assert_allclose(k, k.T, atol=1e-15)


@pytest.mark.parametrize("family", ["sobel", "prewitt", "scharr"])
def test_gradient_kernels_are_odd_along_their_axis(family):
    kx, ky = filters.kernel(f"{family}_x"), filters.kernel(f"{family}_y")
    np.testing.assert_array_equal(kx[:, ::-1], -kx)
    np.testing.assert_array_equal(kx[::-1], kx)
    np.testing.assert_array_equal(ky, kx.T)
    assert kx[:, 2].sum() == GRADIENTS[family]
    assert kx[1, 2] == kx[:, 2].max()


def test_emboss_is_identity_plus_an_odd_part():
    k = filters.kernel("emboss")
    np.testing.assert_array_equal(k + k[::-1, ::-1], 2 * filters.kernel("identity"))


@pytest.mark.parametrize(("sigma", "size"), [(0.5, 5), (1.0, 7), (1.2, 9), (2.0, 13)])
def test_gaussian_default_size_and_shape(sigma, size):
    k = filters.kernel("gaussian_blur", sigma=sigma)
    assert k.shape == (size, size)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    assert k.argmax() == k.size // 2
    x = np.arange(size) - size // 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    np.testing.assert_allclose(k, np.outer(g, g) / np.outer(g, g).sum(), rtol=1e-12)


def test_gaussian_given_size_and_box_blur_size():
    assert filters.kernel("gaussian_blur", sigma=3, size=5).shape == (5, 5)
    np.testing.assert_array_equal(filters.kernel("box_blur", size=5), np.full((5, 5), 0.04))
    assert filters.kernel("box_blur").shape == (3, 3)


def test_unsharp_mask_is_image_plus_amount_times_detail():
    amount, sigma = 0.7, 1.5
    blur = filters.kernel("gaussian_blur", sigma=sigma)
    delta = np.zeros_like(blur)
    delta[blur.shape[0] // 2, blur.shape[1] // 2] = 1
    k = filters.kernel("unsharp_mask", amount=amount, sigma=sigma)
    np.testing.assert_allclose(k, delta + amount * (delta - blur), atol=1e-15)
    identity7 = np.zeros((7, 7))
    identity7[3, 3] = 1
    np.testing.assert_allclose(filters.kernel("unsharp_mask", amount=0), identity7, atol=1e-15)


def step(height=9, width=16, *, vertical=False):
    """0 on the left half, 1 on the right half (or top/bottom when ``vertical``)."""
    image = np.zeros((height, width))
    image[:, width // 2:] = 1
    return image.T.copy() if vertical else image


@pytest.mark.parametrize("family", ["sobel", "prewitt", "scharr"])
def test_gradient_response_to_a_step_edge(family):
    image = step()
    gx = filters.apply(image, f"{family}_x", mode="replicate")
    expected = np.zeros_like(image)
    expected[:, 7:9] = GRADIENTS[family]  # the two columns either side of the edge
    np.testing.assert_allclose(gx, expected, atol=1e-12)
    np.testing.assert_allclose(filters.apply(image, f"{family}_y", mode="replicate"), 0,
                               atol=1e-12)
    np.testing.assert_allclose(filters.apply(image, family, mode="replicate"), expected,
                               atol=1e-12)
    gy = filters.apply(step(vertical=True), f"{family}_y", mode="replicate")
    np.testing.assert_allclose(gy, expected.T, atol=1e-12)
    # a falling edge gives the opposite sign, and the same magnitude
    np.testing.assert_allclose(filters.apply(1 - image, f"{family}_x", mode="replicate"),
                               -expected, atol=1e-12)
    np.testing.assert_allclose(filters.apply(1 - image, family, mode="replicate"),
                               expected, atol=1e-12)


@pytest.mark.parametrize(("name", "dark", "bright"),
                         [("laplacian", 1, -1), ("outline", -3, 3), ("sharpen", -1, 2)])
def test_second_derivative_response_to_a_step_edge(name, dark, bright):
    image = step()
    y = filters.apply(image, name, mode="replicate")
    expected = image.copy() if name == "sharpen" else np.zeros_like(image)
    expected[:, 7], expected[:, 8] = dark, bright
    np.testing.assert_allclose(y, expected, atol=1e-12)


@pytest.mark.parametrize(("name", "params"), [("box_blur", {}), ("box_blur", {"size": 5}),
                                              ("gaussian_blur", {"sigma": 1.5})])
def test_blur_response_to_a_step_edge(name, params):
    image = step(width=24)
    k = filters.kernel(name, **params)
    y = filters.apply(image, k, mode="replicate")
    r = k.shape[1] // 2
    np.testing.assert_allclose(y[:, :12 - r], 0, atol=1e-12)  # far from the edge: unchanged
    np.testing.assert_allclose(y[:, 12 + r:], 1, atol=1e-12)
    assert (np.diff(y, axis=1) >= -1e-12).all()  # a blurred step still rises monotonically
    assert 0 < y[0, 11] < 0.5 < y[0, 12] < 1
    np.testing.assert_allclose(y[:, ::-1], 1 - y, atol=1e-12)  # symmetric about the edge


@pytest.mark.parametrize("name", ["unsharp_mask", "emboss"])
def test_edge_enhancers_overshoot_and_keep_flat_regions(name):
    image = step(width=24)
    y = filters.apply(image, name, mode="replicate")
    np.testing.assert_allclose(y[:, :6], 0, atol=1e-12)
    np.testing.assert_allclose(y[:, -6:], 1, atol=1e-12)
    assert y.max() > 1


def test_identity_and_integer_kernels_return_the_image():
    image = np.random.default_rng(0).random((7, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(filters.apply(image, "identity"), image)
    np.testing.assert_array_equal(filters.apply(image, [[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
                                  image)
    np.testing.assert_array_equal(filters.apply(image, np.ones((1, 1))), image)


def test_shapes_and_dtypes():
    rng = np.random.default_rng(1)
    for shape in [(6, 7), (6, 7, 1), (6, 7, 3), (6, 7, 5)]:
        for dtype in (np.float32, np.float64):
            image = rng.random(shape).astype(dtype)
            for kernel in ("sobel", "gaussian_blur", rng.random((4, 2))):
                y = filters.apply(image, kernel, mode="zeros")
                assert y.shape == shape and y.dtype == dtype


def test_channels_are_filtered_independently():
    rng = np.random.default_rng(2)
    image = rng.random((8, 9, 3))
    y = filters.apply(image, "emboss", mode="circular")
    for c in range(3):
        np.testing.assert_array_equal(y[..., c], filters.apply(image[..., c], "emboss",
                                                               mode="circular"))


def test_apply_runs_the_library_conv2d(monkeypatch):
    calls = []
    original = filters.conv2d

    def spy(x, w, *args, **kwargs):
        calls.append((x.shape, w.shape, kwargs))
        return original(x, w, *args, **kwargs)

    monkeypatch.setattr(filters, "conv2d", spy)
    filters.apply(np.zeros((10, 12, 3)), np.ones((4, 2)), mode="symmetric")
    assert calls == [((10, 12, 3), (4, 2, 1, 3),
                      {"padding": ((2, 1), (1, 0)), "padding_mode": "symmetric",
                       "groups": 3})]


def test_same_pads_follow_scipy_centring():
    assert filters.same_pads((3, 5)) == ((1, 1), (2, 2))
    assert filters.same_pads((4, 2)) == ((2, 1), (1, 0))
    assert filters.same_pads((1, 1)) == ((0, 0), (0, 0))


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: filters.kernel("nope"), ValueError,
     r"^unknown kernel 'nope'; known kernels: identity, box_blur, gaussian_blur, sharpen, "
     r"unsharp_mask, sobel_x, sobel_y, prewitt_x, prewitt_y, scharr_x, scharr_y, laplacian, "
     r"emboss, outline \(and, in apply, the gradient magnitudes sobel, prewitt, scharr\)$"),
    (lambda: filters.kernel("sobel"), ValueError,
     r"^'sobel' is a gradient magnitude, not one kernel: use kernel\('sobel_x'\) and "
     r"kernel\('sobel_y'\), or filters.apply\(image, 'sobel'\)$"),
    (lambda: filters.kernel(3), TypeError, r"^kernel name must be a str; received 3$"),
    (lambda: filters.kernel("sobel_x", size=3), TypeError,
     r"^kernel 'sobel_x' takes no parameters; received size$"),
    (lambda: filters.kernel("gaussian_blur", radius=2), TypeError,
     r"^kernel 'gaussian_blur' takes parameters sigma, size; received radius$"),
    (lambda: filters.kernel("gaussian_blur", sigma=0), ValueError,
     r"^sigma must be a finite number > 0; received 0$"),
    (lambda: filters.kernel("gaussian_blur", sigma=-1.5), ValueError,
     r"^sigma must be a finite number > 0; received -1.5$"),
    (lambda: filters.kernel("gaussian_blur", sigma=float("nan")), ValueError,
     r"^sigma must be a finite number > 0; received nan$"),
    (lambda: filters.kernel("unsharp_mask", sigma=float("inf")), ValueError,
     r"^sigma must be a finite number > 0; received inf$"),
    (lambda: filters.kernel("gaussian_blur", sigma="1"), TypeError,
     r"^sigma must be a real number; received '1'$"),
    (lambda: filters.kernel("gaussian_blur", size=4), ValueError,
     r"^size must be an odd int >= 1; received 4$"),
    (lambda: filters.kernel("box_blur", size=0), ValueError,
     r"^size must be >= 1; received 0$"),
    (lambda: filters.kernel("box_blur", size=2.5), TypeError,
     r"^size must be an int; received 2.5$"),
    (lambda: filters.kernel("box_blur", size=True), TypeError,
     r"^size must be an int; received True$"),
    (lambda: filters.kernel("unsharp_mask", amount=-1), ValueError,
     r"^amount must be a finite number >= 0; received -1$"),
])
def test_kernel_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


IMAGE = np.zeros((4, 5))


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: filters.apply(np.zeros((4, 5), np.uint8), "sobel"), TypeError,
     r"^image must be a floating-point array \(float32 or float64\); received ndarray of "
     r"shape \(4, 5\) and dtype uint8\. Convert it first"),
    (lambda: filters.apply(np.zeros((1, 4, 5, 1)), "sobel"), ValueError,
     r"^image must be 2-D \(H, W\) or 3-D \(H, W, C\); received an array of shape "
     r"\(1, 4, 5, 1\)$"),
    (lambda: filters.apply(IMAGE, "nope"), ValueError, r"^unknown kernel 'nope'; known"),
    (lambda: filters.apply(IMAGE, np.ones((3, 3, 1))), ValueError,
     r"^kernel must be a non-empty 2-D array \(KH, KW\); received an array of shape "
     r"\(3, 3, 1\)$"),
    (lambda: filters.apply(IMAGE, np.ones((0, 3))), ValueError,
     r"^kernel must be a non-empty 2-D array \(KH, KW\); received an array of shape "
     r"\(0, 3\)$"),
    (lambda: filters.apply(IMAGE, np.ones((3, 3), complex)), TypeError,
     r"^kernel must be a name or a 2-D array of real numbers; received ndarray of shape "
     r"\(3, 3\) and dtype complex128$"),
    (lambda: filters.apply(IMAGE, "sobel", mode="wrap"), ValueError,
     r"^mode must be one of 'zeros', 'reflect', 'replicate', 'circular', 'symmetric'; "
     r"received 'wrap'$"),
    (lambda: filters.apply(IMAGE, np.ones((9, 3))), ValueError,
     r"^the padding that a kernel of shape \(9, 3\) needs with padding_mode='reflect' must "
     r"be at most 3 along the height for an input of 4 pixels; received pads \(4, 4\)$"),
])
def test_apply_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_large_kernels_work_in_zeros_and_replicate_modes():
    image = np.random.default_rng(3).random((4, 5))
    for mode in ("zeros", "replicate"):
        assert filters.apply(image, np.ones((9, 11)), mode=mode).shape == (4, 5)
