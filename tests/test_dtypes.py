"""One dtype rule for ops and layers (issue 14): they compute in float32 or float64 only.
float16 (Winograd was off by 0.12 in it) and longdouble (BLAS would round it to float64)
are refused with a TypeError that says what to cast to; integers are refused as before."""

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
NARROW_AND_WIDE = [(np.float16, "float32"), (np.longdouble, "float64")]


@pytest.mark.parametrize("dtype, target", NARROW_AND_WIDE)
@pytest.mark.parametrize("op", list(OPS))
def test_ops_refuse_float16_and_longdouble_saying_what_to_cast_to(op, dtype, target):
    if np.dtype(dtype) == np.float64:
        pytest.skip("longdouble is float64 on this platform")
    x = X4.astype(dtype)
    name = "logits" if op == "cross_entropy" else "x"
    with pytest.raises(TypeError, match=rf"^{name} must be float32 or float64; received "
                                        rf".*dtype {np.dtype(dtype)}\. Cast it first: "
                                        rf"{name}\.astype\(np\.{target}\)$"):
        OPS[op](x)


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ops_take_float32_and_float64(op, dtype):
    result = OPS[op](X4.astype(dtype))
    assert result.dtype == dtype


def test_winograd_in_float16_is_refused_rather_than_wrong():
    x = np.random.default_rng(0).standard_normal((1, 12, 12, 16)).astype(np.float16)
    with pytest.raises(TypeError, match=re.escape("x.astype(np.float32)")):
        convolve.conv2d(x, np.ones((3, 3, 16, 16), np.float16), algorithm="winograd")


def test_layers_compute_in_the_same_dtypes():
    """A layer's dtype is float32 or float64; its input is cast to it (the layers' rule),
    so nothing computes in float16."""
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        nn.Conv2D(4, 3, dtype=np.float16)
    assert nn.Conv2D(2, 3)(X4.astype(np.float16)).dtype == np.float32


def test_filters_refuse_float16_images():
    with pytest.raises(TypeError, match=r"^image must be float32 or float64; "):
        filters.apply(np.ones((8, 8), np.float16), "box_blur")


def test_pictures_keep_any_float_width(tmp_path):
    pytest.importorskip("PIL")
    path = convolve.io.write_image(tmp_path / "a.png", np.ones((4, 4), np.float16))
    assert path.exists()
