"""One dtype rule for the ops (issue 14): float16, float32 and float64 are taken, nothing
multiplies in float16 (the convolutions compute its products in float32 and round the
output once: Winograd in float16 was off by 0.12), and longdouble is refused (BLAS would
round it to float64 silently) with a TypeError that says what to cast to. The layers hold
float32 or float64 parameters and cast their input to them."""

import re

import numpy as np
import pytest

import convolve
from convolve import filters, losses, nn

X4 = np.ones((1, 6, 6, 2))
OPS = {
    "conv2d": lambda x: convolve.conv2d(x, np.ones((3, 3, 2, 2), x.dtype)),
    "conv_transpose2d": lambda x: convolve.conv_transpose2d(x, np.ones((3, 3, 2, 2), x.dtype)),
    "max_pool2d": lambda x: convolve.max_pool2d(x, 2),
    "avg_pool2d": lambda x: convolve.avg_pool2d(x, 2),
    "global_avg_pool2d": convolve.global_avg_pool2d,
    "global_max_pool2d": convolve.global_max_pool2d,
    "batch_norm": lambda x: convolve.batch_norm(x, None, None, None, None, training=True),
    "dropout": lambda x: convolve.dropout(x, 0.5, rng=0),
    "relu": convolve.relu,
    "linear": lambda x: convolve.linear(x.reshape(1, -1), np.ones((72, 3), x.dtype)),
    "cross_entropy": lambda x: losses.cross_entropy(x.reshape(1, -1), np.zeros(1, int)),
}


@pytest.mark.parametrize("op", list(OPS))
def test_ops_refuse_longdouble_saying_what_to_cast_to(op):
    if np.dtype(np.longdouble) == np.float64:
        pytest.skip("longdouble is float64 on this platform")
    name = "logits" if op == "cross_entropy" else "x"
    with pytest.raises(TypeError, match=rf"^{name} must be float16, float32 or float64; "
                                        rf"received .*dtype {np.dtype(np.longdouble)}\. "
                                        rf"Cast it first: {name}\.astype\(np\.float64\)$"):
        OPS[op](X4.astype(np.longdouble))


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_ops_keep_the_dtype(op, dtype):
    assert OPS[op](X4.astype(dtype)).dtype == dtype


@pytest.mark.parametrize("algorithm", ["auto", "winograd", "winograd_f2", "fft", "gemm"])
def test_float16_convolutions_multiply_in_float32(algorithm):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 12, 12, 16)).astype(np.float16)
    w = rng.standard_normal((3, 3, 16, 16)).astype(np.float16)
    y = convolve.conv2d(x, w, algorithm=algorithm)
    exact = convolve.conv2d(x.astype(np.float64), w.astype(np.float64), algorithm="direct")
    assert y.dtype == np.float16
    np.testing.assert_allclose(y, exact, rtol=2e-3, atol=2e-2)  # float16's own rounding


def test_layers_compute_in_float32_or_float64():
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        nn.Conv2D(4, 3, dtype=np.float16)
    assert nn.Conv2D(2, 3)(X4.astype(np.float16)).dtype == np.float32


def test_filters_refuse_longdouble_images():
    if np.dtype(np.longdouble) == np.float64:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(TypeError, match=re.escape("image must be float16, float32 or float64")):
        filters.apply(np.ones((8, 8), np.longdouble), "box_blur")


def test_pictures_keep_any_float_width(tmp_path):
    pytest.importorskip("PIL")
    path = convolve.io.write_image(tmp_path / "a.png", np.ones((4, 4), np.longdouble))
    assert path.exists()
