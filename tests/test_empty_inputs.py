"""Degenerate inputs, one rule per case for every algorithm and pass (issue 14):

- an empty batch, no input channels or no output channels: a result of the shape the
  sizes give (empty, or zeros plus the bias for the empty sum over no input channels) and
  gradients of the inputs' shapes (empty, or zeros), compared with PyTorch where it gives
  one (an empty batch);
- an image with no pixels (height or width 0): a ValueError saying so;
- batch_norm of an x with no values: an empty output, running statistics unchanged;
- pools: an empty batch or no channels give an empty output; no pixels is refused.
"""

import numpy as np
import pytest

import convolve
from convolve import Tensor
from convolve.ops.algorithms.select import METHODS

ALGORITHMS = ["auto", *METHODS]
# (x shape, w shape in conv2d's layout (KH, KW, C_in, C_out))
CASES = {
    "empty batch": ((0, 6, 6, 4), (3, 3, 4, 5)),
    "no input channels": ((2, 6, 6, 0), (3, 3, 0, 5)),
    "no output channels": ((2, 6, 6, 4), (3, 3, 4, 0)),
}
NO_PIXELS = r"^x must have height and width >= 1 \(an image with no pixels has no windows\); "


def _run(op, x_shape, w_shape, algorithm, **kwargs):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal(x_shape), requires_grad=True)
    w = Tensor(rng.standard_normal(w_shape), requires_grad=True)
    b = Tensor(rng.standard_normal(w_shape[3] if op is convolve.conv2d else w_shape[2]),
               requires_grad=True)
    y = op(x, w, b, algorithm=algorithm, padding=1, **kwargs)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    return x, w, b, y, g


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_conv_of_no_work_gives_zeros_and_zero_gradients(op, case, algorithm):
    x_shape, w_shape = CASES[case]
    if op == "conv_transpose2d":  # its w is (KH, KW, C_out, C_in)
        w_shape = (*w_shape[:2], w_shape[3], w_shape[2])
    fn = getattr(convolve, op)
    x, w, b, y, g = _run(fn, x_shape, w_shape, algorithm)
    c_out = b.shape[0]
    assert y.shape == (x_shape[0], 6, 6, c_out)
    np.testing.assert_array_equal(y.data, np.broadcast_to(b.data, y.shape))
    assert x.grad.shape == x_shape and not x.grad.any()
    assert w.grad.shape == w_shape and not w.grad.any()
    np.testing.assert_allclose(b.grad, g.sum(axis=(0, 1, 2)))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_an_empty_batch_matches_pytorch(op, algorithm):
    torch_ref = pytest.importorskip("tests.torch_ref")
    x_shape, w_shape = CASES["empty batch"]
    if op == "conv_transpose2d":
        w_shape = (*w_shape[:2], w_shape[3], w_shape[2])
    x, w, b, y, g = _run(getattr(convolve, op), x_shape, w_shape, algorithm)
    if op == "conv2d":
        expected, grads = torch_ref.conv2d_with_grads(
            x.data, w.data, b.data, g, stride=(1, 1), padding=1, dilation=(1, 1), groups=1,
            padding_mode="zeros")
    else:
        expected, grads = torch_ref.conv_transpose2d_with_grads(
            x.data, w.data, b.data, g, pads=((1, 1), (1, 1)), output_padding=(0, 0),
            stride=(1, 1), dilation=(1, 1), groups=1)
    assert y.shape == expected.shape
    for ours, theirs in zip((x.grad, w.grad, b.grad), grads):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("x_shape", [(1, 0, 6, 4), (1, 6, 0, 4), (6, 0, 4)])
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_an_image_without_pixels_is_refused(op, x_shape, algorithm):
    with pytest.raises(ValueError, match=NO_PIXELS):
        getattr(convolve, op)(np.zeros(x_shape, np.float32), np.zeros((1, 1, 4, 4), np.float32),
                              algorithm=algorithm)


def test_the_issues_lines():
    f = np.float32
    y = convolve.conv2d(np.zeros((1, 6, 6, 0), f), np.zeros((3, 3, 0, 5), f))
    assert y.shape == (1, 4, 4, 5) and not y.any()
    y = convolve.conv2d(np.zeros((1, 6, 6, 4), f), np.zeros((3, 3, 4, 0), f),
                        algorithm="shift_gemm")
    assert y.shape == (1, 4, 4, 0)
    with pytest.raises(ValueError, match=NO_PIXELS):
        convolve.conv_transpose2d(np.zeros((1, 0, 6, 4), f), np.zeros((3, 3, 5, 4), f))
    y = convolve.batch_norm(np.zeros((2, 3, 3, 0), f), None, None, None, None, training=True)
    assert y.shape == (2, 3, 3, 0)
    x = Tensor(np.zeros((0, 6, 6, 4)), requires_grad=True)
    w = Tensor(np.ones((3, 3, 4, 5)), requires_grad=True)
    y = convolve.conv2d(x, w, algorithm="fft")
    y.backward(np.zeros(y.shape))
    assert x.grad.shape == (0, 6, 6, 4) and w.grad.shape == (3, 3, 4, 5) and not w.grad.any()


POOLS = {
    "max_pool2d": lambda x: convolve.max_pool2d(x, 3, stride=1, padding=1),
    "avg_pool2d": lambda x: convolve.avg_pool2d(x, 3, stride=1, padding=1),
    "global_avg_pool2d": convolve.global_avg_pool2d,
    "global_max_pool2d": convolve.global_max_pool2d,
}


@pytest.mark.parametrize("x_shape", [(0, 4, 4, 3), (2, 4, 4, 0)],
                         ids=["empty batch", "no channels"])
@pytest.mark.parametrize("pool", list(POOLS))
def test_pools_of_no_values_are_empty(pool, x_shape):
    x = Tensor(np.ones(x_shape), requires_grad=True)
    y = POOLS[pool](x)
    assert y.size == 0 and y.shape[0] == x_shape[0] and y.shape[-1] == x_shape[-1]
    y.backward(np.ones(y.shape))
    assert x.grad.shape == x_shape


@pytest.mark.parametrize("x_shape", [(2, 0, 4, 3), (2, 4, 0, 3), (4, 0, 3)])
@pytest.mark.parametrize("pool", list(POOLS))
def test_pools_refuse_an_image_without_pixels(pool, x_shape):
    with pytest.raises(ValueError, match=NO_PIXELS):
        POOLS[pool](np.ones(x_shape))


@pytest.mark.parametrize("x_shape", [(0, 4, 4, 3), (2, 4, 4, 0), (2, 0, 4, 3), (0, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_of_no_values_is_empty_and_keeps_the_running_statistics(x_shape, training):
    c = x_shape[-1]
    x = Tensor(np.ones(x_shape), requires_grad=True)
    gamma, beta = (Tensor(np.full(c, 2.0), requires_grad=True) for _ in range(2))
    mean, var = np.full(c, 0.5), np.full(c, 3.0)
    y = convolve.batch_norm(x, gamma, beta, mean, var, training=training)
    assert y.shape == x_shape
    y.backward(np.ones(y.shape))
    assert x.grad.shape == x_shape
    assert gamma.grad.shape == (c,) and not gamma.grad.any() and not beta.grad.any()
    np.testing.assert_array_equal(mean, np.full(c, 0.5))
    np.testing.assert_array_equal(var, np.full(c, 3.0))
    torch = pytest.importorskip("torch")
    if len(x_shape) == 4:
        theirs = torch.nn.functional.batch_norm(
            torch.ones(x_shape[0], c, *x_shape[1:3]), torch.full((c,), 0.5),
            torch.full((c,), 3.0), training=training)
        assert tuple(theirs.shape) == (x_shape[0], c, *x_shape[1:3])
