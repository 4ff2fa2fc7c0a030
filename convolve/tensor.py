"""Tensor, the tape and reverse-mode differentiation.

An op computes its output from plain arrays and, right beside it, a ``backward`` closure
mapping the output's gradient to one gradient per input (``None`` where none is needed).
A backward must not change the gradient it receives, nor keep the arrays it returns: a
leaf may keep one of them as its ``grad``. Ops keep their inputs and outputs by reference
for the backward (no copies): changing a Tensor's ``data`` in place between an op and
``backward()`` gives wrong gradients (PyTorch refuses it with an error).
``record`` wraps the output in a Tensor linked to its inputs whenever one of them is a
Tensor; with plain arrays in, the op returns a plain array and records nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from convolve import _args

Backward = Callable[[np.ndarray], Sequence["np.ndarray | None"]]

_state = threading.local()


def is_grad_enabled() -> bool:
    """False inside ``no_grad()``: ops then record nothing."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Within this block ops record nothing: outputs are Tensors without history."""
    previous = is_grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous


class Tensor:
    """An ndarray that remembers how it was computed.

    Arguments:
        data: anything ``np.asarray`` accepts (a Tensor's data is taken, not copied).
        requires_grad: whether ``backward()`` should fill ``self.grad``.
    """

    __array_ufunc__ = None  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        self.data = np.asarray(data.data if isinstance(data, Tensor) else data)
        self.requires_grad = _args.flag(requires_grad, "requires_grad")
        self.grad: np.ndarray | None = None
        self._inputs: tuple[Any, ...] = ()
        self._backward: Backward | None = None

    # -- array protocol ---------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def T(self) -> Tensor:  # noqa: N802 - NumPy's name
        return self.transpose()

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> Any:
        return self.data.item()

    def __float__(self) -> float:
        return float(self._one("float"))

    def __int__(self) -> int:
        return int(self._one("int"))

    def _one(self, to: str) -> Any:
        if self.data.size != 1:
            raise TypeError(f"only a one-element Tensor converts to {to}; received a Tensor "
                            f"of shape {self.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        return Tensor(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, prefix='Tensor(')}{grad})"

    # -- differentiation --------------------------------------------------------------
    def backward(self, grad: Any = None) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf requiring it.

        ``grad`` is the gradient flowing into ``self``; it defaults to 1 for a scalar.
        """
        if not self.requires_grad:
            raise ValueError("backward() called on a Tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    "grad must be given for a non-scalar Tensor; received None for a "
                    f"Tensor of shape {self.shape}"
                )
            grad = np.ones_like(self.data)
        grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad)
        if grad.shape != self.shape:
            raise ValueError(
                f"grad must have the Tensor's shape {self.shape}; received shape {grad.shape}"
            )
        grads: dict[int, np.ndarray] = {id(self): grad.astype(self.dtype, copy=False)}
        owned: set[int] = set()  # nodes whose pending gradient nothing else refers to
        for node in _topological_order(self):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:
                if node.grad is not None:
                    node.grad = node.grad + g
                else:
                    node.grad = g if id(node) in owned else g.copy()
                continue
            parent_grads = node._backward(g)
            for parent, pg in zip(node._inputs, parent_grads):
                if pg is None or not (isinstance(parent, Tensor) and parent.requires_grad):
                    continue
                key = id(parent)
                if key in grads:
                    grads[key] = grads[key] + pg
                    owned.add(key)
                else:
                    grads[key] = pg
                    if _fresh(pg, g, parent_grads):
                        owned.add(key)

    # -- operators (defined in convolve.ops.math) -------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _math.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _math.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _math.subtract(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _math.subtract(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _math.multiply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _math.multiply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _math.divide(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _math.divide(other, self)

    def __pow__(self, exponent: float) -> Tensor:
        return _math.power(self, exponent)

    def __neg__(self) -> Tensor:
        return _math.negative(self)

    def __matmul__(self, other: Any) -> Tensor:
        return _math.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _math.matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return _math.getitem(self, index)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _math.sum(self, axis=axis, keepdims=_args.flag(keepdims, "keepdims"))

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _math.mean(self, axis=axis, keepdims=_args.flag(keepdims, "keepdims"))

    def reshape(self, *shape: Any) -> Tensor:
        return _math.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes: Any) -> Tensor:
        return _math.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def exp(self) -> Tensor:
        return _math.exp(self)

    def log(self) -> Tensor:
        return _math.log(self)

    def astype(self, dtype: Any) -> Tensor:
        return _math.astype(self, dtype)

    # Comparisons give plain boolean arrays: they have no gradient.
    def __lt__(self, other: Any) -> np.ndarray:
        return self.data < data(other)

    def __le__(self, other: Any) -> np.ndarray:
        return self.data <= data(other)

    def __gt__(self, other: Any) -> np.ndarray:
        return self.data > data(other)

    def __ge__(self, other: Any) -> np.ndarray:
        return self.data >= data(other)


def _fresh(pg: np.ndarray, incoming: np.ndarray, parent_grads: Sequence[Any]) -> bool:
    """Whether a leaf may keep ``pg`` as its ``grad`` uncopied: a writeable C-ordered array
    owning its memory (as a copy would be), neither the incoming gradient (which may be
    the caller's array) nor given to another parent. Views are copied: they may share
    memory with either. Backwards keep no reference to what they return, so nothing else
    can change it; a leaf's gradient stored this way saves a copy of its size (8 MB for
    64x32x32x32 float32)."""
    return (pg.flags.owndata and pg.flags.writeable and pg.flags.c_contiguous
            and pg is not incoming and sum(other is pg for other in parent_grads) == 1)


def _topological_order(root: Tensor) -> list[Tensor]:
    """Nodes requiring grad, each after every node that consumes it (root first)."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for parent in node._inputs:
            if isinstance(parent, Tensor) and parent.requires_grad and id(parent) not in seen:
                stack.append((parent, False))
    return order[::-1]


def data(value: Any) -> Any:
    """The array behind a Tensor; anything else unchanged."""
    return value.data if isinstance(value, Tensor) else value


def needs_grad(value: Any) -> bool:
    """Whether ``value`` is a Tensor that a backward pass must send a gradient to."""
    return isinstance(value, Tensor) and value.requires_grad


def record(out: np.ndarray, inputs: Sequence[Any], backward: Backward) -> Any:
    """Return ``out`` as a Tensor linked to ``inputs`` when any input is a Tensor."""
    if not any(isinstance(i, Tensor) for i in inputs):
        return out
    result = Tensor(out)
    if is_grad_enabled() and any(needs_grad(i) for i in inputs):
        result.requires_grad = True
        result._inputs = tuple(inputs)
        result._backward = backward
    return result


from convolve.ops import math as _math  # noqa: E402  (the operators' implementations)
