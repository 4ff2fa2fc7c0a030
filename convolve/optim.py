"""Optimizers (SGD, Adam, AdamW) and learning-rate schedules.

An optimizer takes the parameter list (``model.parameters()``) and updates each Tensor's data
in place from its ``.grad``, step for step as ``torch.optim`` does. Its state (moment
estimates, step counts, hyperparameters) is a flat dict of plain arrays and numbers, so a
training checkpoint can store it in ``.npz`` or safetensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from convolve import _args
from convolve.tensor import Tensor


def _parameter_list(params: Any) -> list[Tensor]:
    from convolve.nn.module import Module

    if isinstance(params, (Module, Tensor)) or not isinstance(params, Iterable):
        raise TypeError("params must be an iterable of Tensors such as model.parameters(); "
                        f"received {_args.describe(params)}")
    params = list(params)
    if not params:
        raise ValueError("params is empty: nothing to optimize (build lazy layers first, "
                         "e.g. model.build(input_shape), then pass model.parameters())")
    seen: dict[int, int] = {}
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"params[{i}] must be a Tensor; received {_args.describe(p)}")
        if id(p) in seen:
            raise ValueError(f"params[{i}] is the same Tensor as params[{seen[id(p)]}]")
        seen[id(p)] = i
    return params


class Optimizer:
    """Base class: ``zero_grad()``, ``step()``, ``state_dict()``, ``load_state_dict()``.

    Subclasses name their hyperparameters in ``HYPERPARAMETERS`` (restored by
    ``load_state_dict``), their per-parameter arrays in ``SLOTS`` and define ``_update``.
    """

    HYPERPARAMETERS: tuple[str, ...] = ("lr",)
    SLOTS: tuple[str, ...] = ()

    def __init__(self, params: Any, lr: float) -> None:
        self.params = _parameter_list(params)
        self.lr = lr
        self.state: list[dict[str, Any]] = [
            {"step": 0, **{slot: np.zeros_like(p.data) for slot in self.SLOTS}}
            for p in self.params
        ]

    @property
    def lr(self) -> float:
        """The learning rate; a schedule or training loop may set it between steps."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _args.real(value, "lr")

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``grad = None``) before the next backward."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            state["step"] += 1
            self._update(p.data, p.grad.astype(p.dtype, copy=False), state)

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters by name (numbers) and ``"state.<i>.<slot>"`` per parameter."""
        result: dict[str, Any] = {name: getattr(self, name) for name in self.HYPERPARAMETERS}
        for i, state in enumerate(self.state):
            for slot, value in state.items():
                result[f"state.{i}.{slot}"] = value.copy() if slot != "step" else value
        return result

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore hyperparameters and per-parameter state saved by ``state_dict``.

        Numbers may come back as 0-d arrays (as from ``.npz``). Nothing changes unless every
        key is present with the right shape.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping; received {_args.describe(state)}")
        expected = self.state_dict()
        problems = [f"missing key {k!r}" for k in expected if k not in state]
        problems += [f"unexpected key {k!r}" for k in state if k not in expected]
        for key, value in state.items():
            if key in expected and isinstance(expected[key], np.ndarray):
                shape = np.shape(value)
                if shape != expected[key].shape:
                    problems.append(f"{key!r} has shape {shape} in the state but "
                                    f"{expected[key].shape} for this optimizer's parameter")
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        for name in self.HYPERPARAMETERS:
            setattr(self, name, np.asarray(state[name]).item())
        for i, slots in enumerate(self.state):
            for slot in slots:
                value = state[f"state.{i}.{slot}"]
                if slot == "step":
                    slots[slot] = int(np.asarray(value))
                else:
                    slots[slot] = np.array(value, dtype=self.params[i].dtype)

    def __repr__(self) -> str:
        settings = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.HYPERPARAMETERS)
        return f"{type(self).__name__}({len(self.params)} parameters, {settings})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay.

    ``d = grad + weight_decay * p``; with momentum ``buf = momentum * buf + d`` and
    ``d = d + momentum * buf`` (Nesterov) or ``d = buf``; then ``p -= lr * d``.
    """

    HYPERPARAMETERS = ("lr", "momentum", "nesterov", "weight_decay")
    SLOTS = ("momentum_buffer",)

    def __init__(self, params: Any, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        self.momentum = _args.real(momentum, "momentum")
        self.nesterov = _args.flag(nesterov, "nesterov")
        self.weight_decay = _args.real(weight_decay, "weight_decay")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0; received momentum=0")
        super().__init__(params, lr)

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad


def _beta(value: Any, name: str) -> float:
    beta = _args.fraction(value, name)
    if beta == 1:  # the bias correction 1 - beta ** t would divide by zero
        raise ValueError(f"{name} must be < 1; received {value!r}")
    return beta


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` adds ``wd * p`` to the
    gradient (L2), as ``torch.optim.Adam`` does. See ``AdamW`` for decoupled decay."""

    HYPERPARAMETERS = ("lr", "beta1", "beta2", "eps", "weight_decay")
    SLOTS = ("exp_avg", "exp_avg_sq")

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2); received {betas!r}")
        self.beta1, self.beta2 = (_beta(b, f"betas[{i}]") for i, b in enumerate(betas))
        self.eps = _args.real(eps, "eps")
        self.weight_decay = _args.real(weight_decay, "weight_decay")
        super().__init__(params, lr)

    def _decay(self, param: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return grad + self.weight_decay * param if self.weight_decay else grad

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        grad = self._decay(param, grad)
        m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        m += (1 - self.beta1) * (grad - m)
        v *= self.beta2
        v += (1 - self.beta2) * grad * grad
        step_size = self.lr / (1 - self.beta1 ** t)
        denom = np.sqrt(v) / math.sqrt(1 - self.beta2 ** t) + self.eps
        param -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * wd`` before
    the Adam step, as ``torch.optim.AdamW`` does."""

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def _decay(self, param: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if self.weight_decay:
            param *= 1 - self.lr * self.weight_decay
        return grad


class LRSchedule:
    """Sets ``optimizer.lr`` from the epoch count; call ``step()`` once per epoch."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an Optimizer; received "
                            f"{_args.describe(optimizer)}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        """Advance one epoch, set the optimizer's ``lr`` and return it."""
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr

    def state_dict(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "epoch": self.epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.base_lr = float(np.asarray(state["base_lr"]))
        self.epoch = int(np.asarray(state["epoch"]))
        self.optimizer.lr = self.lr_at(self.epoch)


class StepLR(LRSchedule):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = _args.integer(step_size, "step_size")
        self.gamma = _args.real(gamma, "gamma")

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRSchedule):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2``, from
    ``base_lr`` at epoch 0 down to ``eta_min`` at ``t_max`` (PyTorch's closed form)."""

    def __init__(self, optimizer: Optimizer, t_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.t_max = _args.integer(t_max, "t_max")
        self.eta_min = _args.real(eta_min, "eta_min")

    def lr_at(self, epoch: int) -> float:
        cosine = (1 + math.cos(math.pi * epoch / self.t_max)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * cosine
