"""convolve.ops.elementwise: forwards against NumPy/SciPy formulas, gradients against
finite differences (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convolve import Tensor
from convolve.ops import elementwise as ew
from tests.gradcheck import gradcheck

RNG = np.random.default_rng(0)


def away_from(points: list[float], shape: tuple[int, ...] = (3, 4)) -> np.ndarray:
    """Random values at least 0.05 from each of ``points`` (kinks of the function)."""
    x = RNG.uniform(-3, 3, shape)
    for p in points:
        x = np.where(np.abs(x - p) < 0.05, p + 0.1, x)
    return x


UNARY = {
    "sqrt": (ew.sqrt, np.sqrt, lambda: RNG.uniform(0.2, 3, (3, 4))),
    "absolute": (ew.absolute, np.abs, lambda: away_from([0])),
    "reciprocal": (ew.reciprocal, lambda x: 1 / x, lambda: RNG.uniform(0.3, 3, (3, 4))),
    "erf": (ew.erf, np.vectorize(math.erf), lambda: away_from([])),
    "elu": (lambda x: ew.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)),
            lambda: away_from([0])),
    "selu": (lambda x: ew.selu(x, 1.5, 1.1),
             lambda x: 1.1 * np.where(x > 0, x, 1.5 * np.expm1(x)), lambda: away_from([0])),
    "softplus": (ew.softplus, lambda x: np.log1p(np.exp(x)), lambda: away_from([])),
    "hard_sigmoid": (lambda x: ew.hard_sigmoid(x, 0.3, 0.4),
                     lambda x: np.clip(0.3 * x + 0.4, 0, 1), lambda: away_from([-4 / 3, 2])),
    "clip": (lambda x: ew.clip(x, -1, 0.5), lambda x: np.clip(x, -1, 0.5),
             lambda: away_from([-1, 0.5])),
    "reduce_max": (lambda x: ew.reduce_extreme(x, (1,), False, largest=True),
                   lambda x: x.max(axis=1), lambda: away_from([])),
    "reduce_min_keepdims": (lambda x: ew.reduce_extreme(x, (0, 1), True, largest=False),
                            lambda x: x.min(axis=(0, 1), keepdims=True),
                            lambda: away_from([])),
    "broadcast_to": (lambda x: ew.broadcast_to(x[:, :1], (2, 3, 4)),
                     lambda x: np.broadcast_to(x[:, :1], (2, 3, 4)), lambda: away_from([])),
    "tile": (lambda x: ew.tile(x, (2, 3)), lambda x: np.tile(x, (2, 3)),
             lambda: away_from([])),
    "pad_constant": (lambda x: ew.pad(x, [(1, 2), (0, 3)], value=0.5),
                     lambda x: np.pad(x, [(1, 2), (0, 3)], constant_values=0.5),
                     lambda: away_from([])),
    "pad_reflect": (lambda x: ew.pad(x, [(2, 1), (3, 2)], mode="reflect"),
                    lambda x: np.pad(x, [(2, 1), (3, 2)], mode="reflect"),
                    lambda: away_from([])),
    "pad_edge": (lambda x: ew.pad(x, [(2, 1), (3, 2)], mode="edge"),
                 lambda x: np.pad(x, [(2, 1), (3, 2)], mode="edge"), lambda: away_from([])),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_forward_and_gradient(name: str) -> None:
    op, reference, sample = UNARY[name]
    x = sample()
    np.testing.assert_allclose(op(x), reference(x), rtol=1e-12, atol=1e-12)
    gradcheck(op, [x])


def test_binary_ops() -> None:
    a, b = away_from([0]), RNG.uniform(-3, 3, (1, 4))
    b = np.where(np.abs(a - b) < 0.05, b + 0.2, b)
    np.testing.assert_array_equal(ew.minimum(a, b), np.minimum(a, b))
    gradcheck(ew.minimum, [a, b])
    condition = a > 0
    np.testing.assert_array_equal(ew.where(condition, a, b), np.where(condition, a, b))
    gradcheck(lambda x, y: ew.where(condition, x, y), [a, b])
    base, exponent = RNG.uniform(0.5, 2, (3, 4)), RNG.uniform(-2, 2, (4,))
    np.testing.assert_allclose(ew.power(base, exponent), base ** exponent)
    gradcheck(ew.power, [base, exponent])


def test_rounding_has_zero_gradient_and_ties_share_the_extreme() -> None:
    x = Tensor(np.array([[1.5, -0.5, 2.5]]), requires_grad=True)
    y = ew.rint(x)
    np.testing.assert_array_equal(y.data, [[2, -0, 2]])
    (ew.floor(x) + ew.ceil(x) + ew.sign(x) + y).sum().backward()
    np.testing.assert_array_equal(x.grad, 0)
    t = Tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    ew.reduce_extreme(t, None, False, largest=True).backward()
    np.testing.assert_array_equal(t.grad, [0, 0.5, 0.5])
    assert ew.reduce_extreme(np.zeros((0, 2)), (0,), False, largest=True)[0] == -np.inf
