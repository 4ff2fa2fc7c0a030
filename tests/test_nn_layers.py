"""Layers: each forward equals its functional op; lazy build, init, dtype, pinned errors."""

import math

import numpy as np
import pytest

import convolve
from convolve import Tensor, nn
from tests import reference
from tests.gradcheck import gradcheck

RNG = np.random.default_rng(0)


def images(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_seed_example_through_the_layer():
    layer = nn.Conv2D(6, 5, padding="same", activation="relu")
    image = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    y = layer(image)
    assert y.shape == (32, 32, 6) and y.dtype == np.float32
    assert layer.weight.shape == (5, 5, 3, 6) and layer.bias.shape == (6,)
    expected = np.maximum(reference.conv2d(image[None], layer.weight.data, layer.bias.data,
                                           padding="same")[0], 0)
    np.testing.assert_allclose(y.data, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(stride=2, padding="same", activation="tanh"),
    dict(padding=((1, 0), (2, 1)), dilation=(2, 1), groups=2, padding_mode="reflect",
         activation="leaky_relu"),
    dict(padding="full", use_bias=False, activation="sigmoid"),
    dict(padding=1, padding_mode="circular", activation="gelu"),
    dict(activation="softmax"),
    dict(activation=convolve.tanh),
])
def test_conv2d_layer_equals_functional(kwargs):
    layer = nn.Conv2D(4, 3, seed=1, **kwargs)
    x = images((2, 7, 8, 4))
    y = layer(x)
    conv_kwargs = {k: v for k, v in kwargs.items() if k not in ("activation", "use_bias")}
    z = convolve.conv2d(x, layer.weight.data, None if layer.bias is None else layer.bias.data,
                        **conv_kwargs)
    activation = kwargs.get("activation")
    if isinstance(activation, str):
        z = getattr(convolve, activation)(z)
    elif activation is not None:
        z = activation(z)
    np.testing.assert_array_equal(y.data, z)


def test_depthwise_conv2d_layer():
    layer = nn.DepthwiseConv2D(3, 2, padding="same", seed=0)
    x = images((2, 6, 6, 3))
    y = layer(x)
    assert layer.weight.shape == (3, 3, 1, 6) and layer.bias.shape == (6,)
    assert y.shape == (2, 6, 6, 6)
    z = convolve.conv2d(x, layer.weight.data, layer.bias.data, padding="same", groups=3)
    np.testing.assert_array_equal(y.data, z)
    # output channel c * depth_multiplier + m sees input channel c only
    only_channel_1 = np.zeros_like(x)
    only_channel_1[..., 1] = x[..., 1]
    out = layer(only_channel_1).data - layer.bias.data
    assert np.all(out[..., [0, 1, 4, 5]] == 0) and np.any(out[..., [2, 3]])


def test_conv_transpose2d_layer():
    layer = nn.ConvTranspose2D(5, 3, stride=2, padding=1, output_padding=1, seed=0)
    x = images((2, 4, 4, 3))
    y = layer(x)
    assert layer.weight.shape == (3, 3, 5, 3) and layer.bias.shape == (5,)
    assert y.shape == (2, 8, 8, 5)
    z = convolve.conv_transpose2d(x, layer.weight.data, layer.bias.data, stride=2, padding=1,
                                  output_padding=1)
    np.testing.assert_array_equal(y.data, z)


def test_conv_transpose2d_layer_with_groups_and_activation():
    layer = nn.ConvTranspose2D(4, (2, 3), groups=2, activation="relu", in_channels=6, seed=0)
    assert layer.weight.shape == (2, 3, 2, 6)
    y = layer(images((5, 5, 6)))
    assert y.shape == (6, 7, 4) and np.all(y.data >= 0)


@pytest.mark.parametrize(("layer", "op"), [
    (nn.MaxPool2D(3, stride=2, padding=1, dilation=1, ceil_mode=True),
     lambda x: convolve.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)),
    (nn.MaxPool2D(), lambda x: convolve.max_pool2d(x, 2)),
    (nn.AvgPool2D(3, stride=1, padding=1, count_include_pad=False),
     lambda x: convolve.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)),
    (nn.AvgPool2D(2), lambda x: convolve.avg_pool2d(x, 2)),
    (nn.GlobalAvgPool2D(), convolve.global_avg_pool2d),
    (nn.GlobalMaxPool2D(), convolve.global_max_pool2d),
    (nn.ReLU(), convolve.relu),
    (nn.LeakyReLU(0.2), lambda x: convolve.leaky_relu(x, 0.2)),
    (nn.Tanh(), convolve.tanh),
    (nn.Sigmoid(), convolve.sigmoid),
    (nn.GELU(), convolve.gelu),
    (nn.Softmax(), convolve.softmax),
    (nn.Softmax(axis=1), lambda x: convolve.softmax(x, axis=1)),
])
def test_parameterless_layers_equal_functional(layer, op):
    x = images((2, 7, 6, 3), np.float64)
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(op(x)))
    xt = Tensor(x, requires_grad=True)
    layer(xt).sum().backward()
    assert xt.grad.shape == x.shape


def test_dense_layer():
    layer = nn.Dense(4, activation="relu", seed=0)
    x = images((3, 5))
    y = layer(x)
    assert layer.weight.shape == (5, 4) and layer.bias.shape == (4,) and y.shape == (3, 4)
    expected = np.maximum(x.astype(np.float64) @ layer.weight.data + layer.bias.data, 0)
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-6)
    assert layer(x[0]).shape == (4,)  # one example in, one out
    assert layer(images((2, 3, 5))).shape == (2, 3, 4)  # the last axis, as Keras


def test_linear_gradcheck_and_torch():
    torch = pytest.importorskip("torch")
    x, w, b = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((4, 5)), RNG.standard_normal(5)
    gradcheck(convolve.linear, [x, w, b])
    gradcheck(lambda x, w: convolve.linear(x, w), [x[0, 0], w])
    expected = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w.T),
                                          torch.from_numpy(b))
    np.testing.assert_allclose(convolve.linear(x, w, b), expected.numpy(), rtol=1e-12)


def test_linear_with_no_output_features_has_zero_gradients():
    x = convolve.Tensor(np.ones((3, 4)), requires_grad=True)
    w = convolve.Tensor(np.ones((4, 0)), requires_grad=True)
    convolve.linear(x, w).backward(np.ones((3, 0)))
    assert x.grad.shape == (3, 4) and not x.grad.any()
    assert w.grad.shape == (4, 0)


def test_linear_large_products_split_over_threads_match_numpy():
    """Products of at least 512 rows run in row blocks on threads (the forward, and the
    weight gradient's ``x.T @ g``): the same values as one product."""
    x, w = RNG.standard_normal((700, 513)), RNG.standard_normal((513, 9))
    g = RNG.standard_normal((700, 9))
    xt, wt = convolve.Tensor(x, requires_grad=True), convolve.Tensor(w, requires_grad=True)
    y = convolve.linear(xt, wt)
    y.backward(g)
    np.testing.assert_allclose(y.data, x @ w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xt.grad, g @ w.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.grad, x.T @ g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("args", "error", "match"), [
    ((np.zeros((2, 3)), np.zeros((4, 5))), ValueError,
     r"x must have F_in = 4 features on its last axis to match w of shape \(4, 5\); "
     r"received an array of shape \(2, 3\)"),
    ((np.zeros((2, 4)), np.zeros(4)), ValueError,
     r"w must be 2-D \(F_in, F_out\); received an array of shape \(4,\)"),
    ((np.zeros((2, 4)), np.zeros((4, 5)), np.zeros(4)), ValueError,
     r"b must have shape \(F_out,\) = \(5,\) to match w of shape \(4, 5\); received shape "
     r"\(4,\)"),
    ((np.zeros((2, 4), int), np.zeros((4, 5))), TypeError,
     "x must be a floating-point array"),
])
def test_linear_errors(args, error, match):
    with pytest.raises(error, match=match):
        convolve.linear(*args)


def test_flatten_keeps_the_batch_axis():
    flatten = nn.Flatten()
    assert flatten(images((2, 3, 4, 5))).shape == (2, 60)
    assert flatten(images((3, 4, 5))).shape == (60,)
    assert flatten(images((0, 3, 4, 5))).shape == (0, 60)
    assert flatten(images((2, 7))).shape == (2, 7)
    x = Tensor(images((2, 3, 4, 5)), requires_grad=True)
    flatten(x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, H, W, C\), 3-D \(H, W, C\), 2-D "
                                         r"\(N, F\) or 1-D \(F,\); received an array of shape "
                                         r"\(1, 1, 1, 1, 1\)"):
        flatten(np.zeros((1, 1, 1, 1, 1)))


def test_dropout_layer_trains_and_evaluates():
    layer = nn.Dropout(0.5, seed=0)
    x = np.ones((200, 50), np.float32)
    y = layer(x)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.45 < np.mean(y == 0) < 0.55
    np.testing.assert_array_equal(nn.Dropout(0.5, seed=0)(x), y)  # seeded
    layer.eval()
    assert layer(x) is x


def test_batch_norm_layer_against_torch():
    torch = pytest.importorskip("torch")
    layer = nn.BatchNorm2D(momentum=0.2, eps=1e-3, dtype=np.float64)
    ref = torch.nn.BatchNorm2d(3, momentum=0.2, eps=1e-3, dtype=torch.float64)
    for step in range(3):
        x = images((4, 5, 5, 3), np.float64, seed=step) * 3 + 1
        y = layer(x)
        expected = ref(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy()
        np.testing.assert_allclose(y.data, expected.transpose(0, 2, 3, 1), rtol=1e-10,
                                   atol=1e-10)
    np.testing.assert_allclose(layer.running_mean, ref.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-12)
    layer.eval()
    ref.eval()
    x = images((2, 5, 5, 3), np.float64, seed=9)
    expected = ref(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy()
    np.testing.assert_allclose(layer(x).data, expected.transpose(0, 2, 3, 1), rtol=1e-10,
                               atol=1e-10)


def test_batch_norm_layer_shapes_and_parameters():
    layer = nn.BatchNorm2D()
    layer(images((2, 3, 3, 4)))
    assert layer.gamma.shape == layer.beta.shape == (4,)
    assert layer.running_mean.dtype == np.float32
    with pytest.raises(ValueError, match=r"BatchNorm2D was built for inputs with 4 channels; "
                                         r"received x of shape \(2, 3, 3, 5\)"):
        layer(images((2, 3, 3, 5)))


def test_small_network_gradcheck_float64():
    model = nn.Sequential([
        nn.Conv2D(2, 3, padding="same", activation="tanh", dtype=np.float64, seed=0),
        nn.AvgPool2D(2), nn.Flatten(), nn.Dense(3, dtype=np.float64, seed=1)])
    x = images((2, 4, 4, 1), np.float64)
    gradcheck(lambda t: model(t), [x])
    model(x)  # built: now check the weights' gradients by swapping them in
    w = model[0].weight

    def through_weight(t):
        model[0].weight = t if isinstance(t, Tensor) else Tensor(t)
        try:
            return model(x)
        finally:
            model[0].weight = w

    gradcheck(through_weight, [w.data.copy()])


# -- lazy build and channel checks --------------------------------------------------------
def test_lazy_build_takes_channels_from_first_input():
    layer = nn.Conv2D(8, 3)
    assert layer.weight is None and layer.in_channels is None
    layer(images((1, 5, 5, 7)))
    assert layer.in_channels == 7 and layer.weight.shape == (3, 3, 7, 8)


def test_in_channels_builds_at_construction():
    layer = nn.Conv2D(8, 3, groups=2, in_channels=4)
    assert layer.weight.shape == (3, 3, 2, 8)
    assert nn.Dense(3, in_features=5).weight.shape == (5, 3)
    assert nn.DepthwiseConv2D(3, 2, in_channels=4).weight.shape == (3, 3, 1, 8)


@pytest.mark.parametrize(("layer", "first", "second", "match"), [
    (nn.Conv2D(6, 5), (1, 8, 8, 3), (1, 8, 8, 4),
     r"Conv2D was built for inputs with 3 channels \(its weight has shape \(5, 5, 3, 6\)\); "
     r"received x of shape \(1, 8, 8, 4\)"),
    (nn.Conv2D(6, 3, in_channels=2), (4, 4, 2), (4, 4, 1),
     r"Conv2D was built for inputs with 2 channels .* received x of shape \(4, 4, 1\)"),
    (nn.DepthwiseConv2D(3), (1, 5, 5, 2), (1, 5, 5, 3),
     r"DepthwiseConv2D was built for inputs with 2 channels \(its weight has shape "
     r"\(3, 3, 1, 2\)\)"),
    (nn.ConvTranspose2D(2, 3), (1, 5, 5, 2), (1, 5, 5, 3),
     r"ConvTranspose2D was built for inputs with 2 channels \(its weight has shape "
     r"\(3, 3, 2, 2\)\)"),
    (nn.Dense(3), (2, 5), (2, 6),
     r"Dense was built for inputs with 5 features on the last axis \(its weight has shape "
     r"\(5, 3\)\); received x of shape \(2, 6\)"),
])
def test_channel_change_after_build_is_an_error(layer, first, second, match):
    layer(np.zeros(first, np.float32))
    with pytest.raises(ValueError, match=match):
        layer(np.zeros(second, np.float32))


def test_lazy_build_refuses_bad_rank_without_building():
    layer = nn.Conv2D(2, 3)
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, H, W, C\) or 3-D \(H, W, C\); "
                                         r"received an array of shape \(5, 5\)"):
        layer(np.zeros((5, 5), np.float32))
    assert layer.weight is None


def test_groups_must_divide_input_channels_at_build():
    layer = nn.Conv2D(4, 3, groups=2)
    with pytest.raises(ValueError, match="groups=2 must divide the input channels; received 3 "
                                         "channels"):
        layer(np.zeros((1, 5, 5, 3), np.float32))
    assert layer.weight is None


# -- initialisation -----------------------------------------------------------------------
def test_he_uniform_for_relu_glorot_otherwise():
    relu = nn.Conv2D(64, 3, activation="relu", in_channels=32, seed=0)
    plain = nn.Conv2D(64, 3, in_channels=32, seed=0)
    he, glorot = math.sqrt(6 / (9 * 32)), math.sqrt(6 / (9 * 32 + 9 * 64))
    for layer, limit in ((relu, he), (plain, glorot)):
        w = layer.weight.data
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.98 * limit
        np.testing.assert_allclose(w.var(), limit ** 2 / 3, rtol=0.05)
        np.testing.assert_array_equal(layer.bias.data, 0)
    dense = nn.Dense(300, activation="relu", in_features=200, seed=0)
    assert np.abs(dense.weight.data).max() <= math.sqrt(6 / 200)


def test_seeding_is_reproducible_and_accepts_generators():
    a = nn.Conv2D(4, 3, in_channels=2, seed=7).weight.data
    b = nn.Conv2D(4, 3, in_channels=2, seed=7).weight.data
    c = nn.Conv2D(4, 3, in_channels=2, seed=np.random.default_rng(7)).weight.data
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, nn.Conv2D(4, 3, in_channels=2, seed=8).weight.data)


# -- dtypes ---------------------------------------------------------------------------------
def test_layers_cast_floating_input_to_their_dtype():
    layer = nn.Conv2D(2, 3, seed=0)
    y = layer(images((1, 5, 5, 1), np.float64))
    assert layer.weight.dtype == np.float32 and y.dtype == np.float32
    x = Tensor(images((1, 5, 5, 1), np.float64), requires_grad=True)
    layer(x).sum().backward()
    assert x.grad.dtype == np.float64  # the cast is recorded: the gradient comes back
    wide = nn.Dense(2, dtype=np.float64, seed=0)
    assert wide(images((1, 3), np.float32)).dtype == np.float64
    assert wide.weight.dtype == np.float64


def test_layers_refuse_integer_input():
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        nn.Conv2D(2, 3)(np.zeros((1, 5, 5, 1), np.uint8))
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        nn.Dense(2)(np.zeros((1, 5), np.int64))


# -- pinned construction errors -----------------------------------------------------------
@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda: nn.Conv2D(0, 3), ValueError, "filters must be >= 1; received 0"),
    (lambda: nn.Conv2D(2.5, 3), TypeError, "filters must be an int; received 2.5"),
    (lambda: nn.Conv2D(4, (3, 3, 3)), TypeError,
     r"kernel_size must be an int or a pair of ints; received \(3, 3, 3\)"),
    (lambda: nn.Conv2D(4, 0), ValueError, "kernel_size must be >= 1; received 0"),
    (lambda: nn.Conv2D(4, 3, stride=0), ValueError, "stride must be >= 1; received 0"),
    (lambda: nn.Conv2D(4, 3, padding="half"), ValueError,
     "padding must be one of 'valid', 'same', 'full'"),
    (lambda: nn.Conv2D(4, 3, padding_mode="wrap"), ValueError,
     "padding_mode must be one of 'zeros', 'reflect'"),
    (lambda: nn.Conv2D(4, 3, activation="swish"), ValueError,
     "activation must be one of 'relu', 'leaky_relu', 'tanh', 'sigmoid', 'softmax', 'gelu', "
     "'linear', None or a callable; received 'swish'"),
    (lambda: nn.Conv2D(4, 3, activation=3), TypeError,
     "activation must be a name, None or a callable; received 3"),
    (lambda: nn.Conv2D(5, 3, groups=2), ValueError,
     "groups=2 must divide filters; received filters=5"),
    (lambda: nn.Conv2D(4, 3, groups=2, in_channels=3), ValueError,
     "groups=2 must divide the input channels; received 3 channels"),
    (lambda: nn.Conv2D(4, 3, in_channels=0), ValueError, "in_channels must be >= 1"),
    (lambda: nn.Conv2D(4, 3, dtype=np.float16), TypeError,
     "dtype must be float32 or float64; received <class 'numpy.float16'>"),
    (lambda: nn.Conv2D(4, 3, dtype="int32"), TypeError,
     "dtype must be float32 or float64; received 'int32'"),
    (lambda: nn.Conv2D(4, 3, seed="x"), TypeError,
     "seed must be None, an int seed or a numpy.random.Generator; received 'x'"),
    (lambda: nn.Dense(4, seed=-1), ValueError,
     "seed must be None, an int seed >= 0 or a numpy.random.Generator; received -1"),
    (lambda: nn.DepthwiseConv2D(3, 0), ValueError, "depth_multiplier must be >= 1; received 0"),
    (lambda: nn.ConvTranspose2D(3, 3, groups=2), ValueError,
     "groups=2 must divide filters; received filters=3"),
    (lambda: nn.ConvTranspose2D(4, 3, output_padding=-1), ValueError,
     "output_padding must be >= 0; received -1"),
    (lambda: nn.Dense(0), ValueError, "units must be >= 1; received 0"),
    (lambda: nn.Dense(3, in_features=-2), ValueError, "in_features must be >= 1; received -2"),
    (lambda: nn.Dense(3, activation="relu6"), ValueError, "activation must be one of"),
    (lambda: nn.MaxPool2D(0), ValueError, "pool_size must be >= 1; received 0"),
    (lambda: nn.MaxPool2D(2, stride=(1, 0)), ValueError, r"stride must be >= 1; received "
                                                          r"\(1, 0\)"),
    (lambda: nn.AvgPool2D(2, padding=-1), ValueError, "padding must be non-negative"),
    (lambda: nn.Dropout(1.5), ValueError, r"rate must be a number in \[0, 1\]; received 1.5"),
    (lambda: nn.BatchNorm2D(momentum=2), ValueError,
     r"momentum must be a number in \[0, 1\]; received 2"),
    (lambda: nn.BatchNorm2D(eps=-1), ValueError, "eps must be a finite number >= 0; received -1"),
])
def test_construction_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_pool_errors_come_from_the_op():
    with pytest.raises(ValueError, match="the pool is larger than the padded input along the "
                                         "height: pool size 5 with dilation 1 spans 5 pixels"):
        nn.MaxPool2D(5)(np.zeros((1, 3, 3, 1), np.float32))


def test_module_activation_is_not_a_child():
    layer = nn.Conv2D(2, 3, activation=nn.ReLU(), seed=0)
    assert layer.children() == []
    assert "activation='ReLU'" in repr(layer)
    y = layer(images((1, 5, 5, 1)))
    assert np.all(y.data >= 0)
    summary = layer.summary((5, 5, 1), print_fn=None)
    assert [r.kind for r in summary.rows] == ["Conv2D"]
