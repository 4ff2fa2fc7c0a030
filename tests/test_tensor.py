"""Tensor, the tape and the elementwise ops: values, shapes and finite-difference grads."""

import numpy as np
import pytest

import convolve
from convolve import Tensor, no_grad
from convolve.ops import math as M  # noqa: N812
from tests.gradcheck import gradcheck

rng = np.random.default_rng(0)


def test_asarray_and_attributes():
    t = Tensor(np.arange(6.0).reshape(2, 3))
    assert np.asarray(t) is t.data
    assert t.shape == (2, 3) and t.dtype == np.float64 and t.ndim == 2 and len(t) == 2
    assert np.asarray(t, dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize(
    "fn, shapes",
    [
        (lambda a, b: a + b, [(2, 3), (3,)]),
        (lambda a, b: a - b, [(2, 1), (1, 3)]),
        (lambda a, b: a * b, [(2, 3), (2, 3)]),
        (lambda a, b: a / b, [(4, 3), (1,)]),
        (lambda a: -a, [(3,)]),
        (lambda a: a**3, [(2, 2)]),
        (lambda a, b: a @ b, [(3, 4), (4, 2)]),
        (lambda a, b: a @ b, [(2, 3, 4), (4,)]),
        (lambda a, b: a @ b, [(4,), (2, 4, 3)]),
        (lambda a, b: a @ b, [(5, 3, 4), (4, 2)]),
        (lambda a: a.sum(), [(2, 3)]),
        (lambda a: a.sum(axis=1), [(2, 3, 2)]),
        (lambda a: a.sum(axis=(0, 2), keepdims=True), [(2, 3, 2)]),
        (lambda a: a.mean(), [(2, 3)]),
        (lambda a: a.mean(axis=-1), [(2, 3)]),
        (lambda a: a.reshape(3, 2), [(2, 3)]),
        (lambda a: a.reshape((6,)), [(2, 3)]),
        (lambda a: a.transpose(), [(2, 3)]),
        (lambda a: a.transpose(2, 0, 1), [(2, 3, 4)]),
        (lambda a: a.T, [(2, 3)]),
        (lambda a: a[1:, ::2], [(3, 4)]),
        (lambda a: a[np.array([0, 0, 2])], [(3, 2)]),
        (lambda a: M.exp(a), [(2, 3)]),
        (lambda a: M.maximum(a, 0.1), [(3, 3)]),
        (lambda a, b: M.maximum(a, b), [(3, 3), (3,)]),
        (lambda a, b: M.concatenate([a, b], axis=1), [(2, 1), (2, 3)]),
        (lambda a: 2.0 - a * 3.0 + 1.0 / (a * a + 1.0), [(4,)]),
    ],
)
def test_op_gradients(fn, shapes):
    gradcheck(fn, [rng.standard_normal(s) for s in shapes])


@pytest.mark.parametrize("exponent", [np.float64(2.0), np.int64(2), 2, 2.0])
def test_power_keeps_float32_whatever_the_exponent_type(exponent):
    a = Tensor(np.array([1.5, -2.0], np.float32), requires_grad=True)
    y = a**exponent
    y.backward(np.ones(2, np.float32))
    assert y.dtype == np.float32 and a.grad.dtype == np.float32
    np.testing.assert_array_equal(y.data, [2.25, 4.0])
    assert M.power(np.array([3.0], np.float32), exponent).dtype == np.float32


def test_power_refuses_a_non_number_exponent():
    with pytest.raises(TypeError, match=r"^exponent must be a real number; received '2'$"):
        Tensor(np.ones(2)) ** "2"


def test_log_gradient():
    gradcheck(lambda a: M.log(a), [rng.random((3, 2)) + 0.5])


def test_numpy_array_on_the_left_gives_tensor():
    a = Tensor(np.ones(3), requires_grad=True)
    out = np.arange(3.0) * a + np.ones(3)
    assert isinstance(out, Tensor)
    out.sum().backward()
    np.testing.assert_array_equal(a.grad, np.arange(3.0))


def test_tensor_used_twice_accumulates():
    a = Tensor(np.array([2.0, 3.0]), requires_grad=True)
    (a * a + a).sum().backward()
    np.testing.assert_array_equal(a.grad, [5.0, 7.0])


def test_backward_twice_accumulates_into_grad():
    a = Tensor(np.array([1.0]), requires_grad=True)
    (a * 2).sum().backward()
    (a * 2).sum().backward()
    np.testing.assert_array_equal(a.grad, [4.0])


def test_leaf_grad_never_aliases_the_callers_gradient():
    """A leaf keeps a gradient uncopied only when no one else can reach it: never the
    caller's array, passed through (add) or viewed (reshape, transpose, getitem-free
    views), and never one array shared by two leaves."""
    g = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])  # owns its memory
    leaf = Tensor(np.zeros((2, 3)), requires_grad=True)
    a = Tensor(np.zeros((2, 3)), requires_grad=True)
    b = Tensor(np.zeros(6), requires_grad=True)
    c = Tensor(np.zeros((3, 2)), requires_grad=True)
    leaf.backward(g)  # the root itself
    (a + 1.0).backward(g)  # add returns the incoming gradient as it is
    b.reshape(2, 3).backward(g)  # a view of it
    c.T.backward(g)
    for t in (leaf, a, b, c):
        assert not np.shares_memory(t.grad, g)
    p = Tensor(np.zeros(3), requires_grad=True)
    q = Tensor(np.zeros(3), requires_grad=True)
    ((p + q) * 2.0).backward(np.ones(3))  # one fresh array sent to both
    assert not np.shares_memory(p.grad, q.grad)
    p.grad += 1
    np.testing.assert_array_equal(q.grad, [2.0, 2.0, 2.0])


def test_leaf_grad_from_a_backward_is_kept_uncopied_unless_shared():
    """A backward's own result becomes the leaf's grad as it is (no copy); the same array
    returned for two inputs, or a read-only broadcast, is copied for each."""
    from convolve.tensor import record

    x, y = Tensor(np.zeros(3), requires_grad=True), Tensor(np.zeros(3), requires_grad=True)
    made = []

    def fresh(g):
        made.append(g * 2.0)
        return (made[-1],)

    record(x.data * 2.0, (x,), fresh).backward(np.ones(3))
    assert x.grad is made[-1]

    def shared(g):
        t = g * 2.0
        return t, t

    x.grad = None
    record(x.data + y.data, (x, y), shared).backward(np.ones(3))
    assert not np.shares_memory(x.grad, y.grad)
    x.grad = y.grad = None
    record(x.data * 2.0, (x,), lambda g: (np.broadcast_to(g.sum(), (3,)),)).backward(
        np.ones(3))
    assert x.grad.flags.writeable
    np.testing.assert_array_equal(x.grad, [3.0, 3.0, 3.0])
    m = Tensor(np.zeros((2, 3)), requires_grad=True)
    record(m.data * 2.0, (m,), lambda g: (np.asfortranarray(g * 2.0),)).backward(
        np.ones((2, 3)))
    assert m.grad.flags.c_contiguous  # as a copy would be


def test_deep_chain_has_no_recursion_limit():
    a = Tensor(np.array(1.0), requires_grad=True)
    out = a
    for _ in range(5000):
        out = out + 1.0
    out.backward()
    assert a.grad == 1.0


def test_diamond_graph():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = a * 3.0
    c = b + a
    d = b * c
    d.sum().backward()
    # d = 3a * 4a = 12 a^2
    np.testing.assert_allclose(a.grad, 24 * a.data)


def test_no_grad_records_nothing():
    a = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        b = a * 2
    assert isinstance(b, Tensor) and not b.requires_grad
    assert convolve.is_grad_enabled()


def test_arrays_in_arrays_out():
    assert type(M.add(np.ones(2), np.ones(2))) is np.ndarray


def test_float32_stays_float32():
    a = Tensor(np.ones(3, np.float32), requires_grad=True)
    out = (a * 2.5 + 1.0).mean()
    assert out.dtype == np.float32
    out.backward()
    assert a.grad.dtype == np.float32


def test_gradient_only_for_leaves_requiring_it():
    a = Tensor(np.ones(2), requires_grad=True)
    b = Tensor(np.ones(2))
    (a * b).sum().backward()
    assert b.grad is None and a.grad is not None


def test_backward_errors():
    with pytest.raises(ValueError, match="does not require grad"):
        Tensor(np.ones(2)).backward()
    a = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match=r"grad must be given for a non-scalar Tensor; "
                                         r"received None for a Tensor of shape \(2,\)"):
        (a * 2).backward()
    with pytest.raises(ValueError, match=r"grad must have the Tensor's shape \(2,\); "
                                         r"received shape \(3,\)"):
        (a * 2).backward(np.ones(3))


def test_comparisons_give_arrays():
    t = Tensor(np.array([1.0, -1.0]))
    assert type(t > 0) is np.ndarray
    np.testing.assert_array_equal(t > 0, [True, False])
