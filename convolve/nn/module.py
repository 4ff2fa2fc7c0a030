"""Module: the base of every layer. It holds parameters, buffers and sub-modules by name.

A parameter is a ``Tensor`` (``requires_grad=True`` when trainable); a lazy layer keeps the
slot as ``None`` until its first input tells it the input size. A buffer is a plain ndarray
that is saved with the model but not trained (BatchNorm2D's running statistics).
Sub-modules are found by attribute assignment, as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from convolve._args import describe, flag
from convolve.nn.observe import observers
from convolve.nn.summary import Summary, summarize, trace
from convolve.ops.math import astype
from convolve.tensor import Tensor, data, is_grad_enabled, no_grad


def cast_input(x: Any, dtype: np.dtype) -> Any:
    """Floating input in ``dtype``, as Keras layers do; other input goes on unchanged so that
    the op refuses integers with its own message."""
    if not isinstance(x, Tensor):
        x = np.asarray(x)
    if x.dtype.kind == "f" and x.dtype != dtype:
        return astype(x, dtype)
    return x


def _records(module: Module, args: tuple[Any, ...]) -> bool:
    """Whether a call records a graph: with a Tensor input, or in training mode with
    recording on. Arrays in evaluation mode or inside ``no_grad()`` give arrays."""
    if any(isinstance(a, Tensor) for a in args):
        return True
    return module.training and is_grad_enabled()


def _checkpoint_hint(arrays: Mapping[str, Any]) -> str:
    """What to do with a training checkpoint's arrays passed as a state_dict."""
    if not any(key.startswith("model.") for key in arrays):
        return ""
    return (" (keys starting with 'model.' are a training checkpoint's arrays: load it with "
            "convolve.models.load(path), or model.load_state_dict("
            "convolve.models.load_weights(path)))")


def _untensor(out: Any) -> Any:
    if isinstance(out, tuple):
        return tuple(_untensor(o) for o in out)
    return data(out)


class Module:
    """Base class of layers and models: ``__call__`` runs ``forward``.

    Called in training mode (the default after construction) a module records a graph for
    ``backward()``; called on NumPy arrays in evaluation mode (``model.eval()``) or inside
    ``no_grad()`` it records nothing and returns arrays, as the functional ops do.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _records(self, args):
            out = self.forward(*args, **kwargs)
        else:  # arrays in, outside training: arrays out, as the functional ops do
            with no_grad():
                out = _untensor(self.forward(*args, **kwargs))
        for callback in list(observers()):
            callback(self, out)
        return out

    # -- registration -----------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}.__init__ must call super().__init__() before "
                f"assigning attributes (assigning {name!r})")
        if isinstance(value, Tensor):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self._discard(name)
            self._modules[name] = value
        elif name in self._parameters:
            self.register_parameter(name, value)
        elif name in self._buffers:
            self.register_buffer(name, value)
        else:
            self._discard(name)
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: parameters, buffers and modules live here.
        for store in ("_parameters", "_buffers", "_modules"):
            table = self.__dict__.get(store, {})
            if name in table:
                return table[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _discard(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        self.__dict__.pop(name, None)

    def register_parameter(self, name: str, value: Tensor | None) -> None:
        """Add a parameter slot; ``None`` marks a lazy parameter not built yet."""
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(
                f"parameter {name!r} must be a Tensor or None; received {describe(value)}")
        if name not in self._parameters:
            self._discard(name)
        self._parameters[name] = value

    def register_buffer(self, name: str, value: Any) -> None:
        """Add a non-trained array saved in ``state_dict`` (``None``: not built yet)."""
        if name not in self._buffers:
            self._discard(name)
        self._buffers[name] = None if value is None else np.asarray(value)

    # -- traversal --------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> list[Module]:
        return list(self._modules.values())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module (named ``prefix``) and every sub-module, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def _named(self, store: str) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        for prefix, module in self.named_modules():
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        """``(dotted name, Tensor)`` for every built parameter, each shared one once."""
        return self._named("_parameters")

    def parameters(self) -> list[Tensor]:
        """Every built parameter: what an optimizer takes."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        return self._named("_buffers")

    def unbuilt(self) -> list[str]:
        """Dotted names of the lazy modules whose parameters are not built yet."""
        return [
            prefix or type(module).__name__
            for prefix, module in self.named_modules()
            if any(v is None for v in (*module._parameters.values(),
                                       *module._buffers.values()))
        ]

    # -- modes ------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active, batch statistics); returns self."""
        mode = flag(mode, "mode")
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off, running statistics); returns self."""
        return self.train(False)

    # -- saving and loading -----------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by dotted name (plain ndarrays)."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update((name, b.copy()) for name, b in self.named_buffers())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy arrays into the parameters and buffers in place (optimizers keep working).

        Every key must be present with the same shape and dtype; no value is changed unless
        all of them are. Lazy layers not built yet are built from the shapes in ``state``
        (a Conv2D's input channels from its weight), as PyTorch's lazy modules do.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping of names to arrays; received "
                            f"{describe(state)}")
        arrays = {name: np.asarray(data(value)) for name, value in state.items()}
        self._build_from(arrays)
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(self.named_buffers())
        problems = [
            f"missing key {name!r} (expected shape {t.shape})"
            for name, t in targets.items() if name not in arrays
        ]
        problems += [
            f"unexpected key {name!r} (shape {a.shape})"
            for name, a in arrays.items() if name not in targets
        ]
        for name, a in arrays.items():
            t = targets.get(name)
            if t is None:
                continue
            if a.shape != t.shape:
                problems.append(f"{name!r} has shape {a.shape} in the state_dict but "
                                f"{t.shape} in the model")
            elif a.dtype != t.dtype:
                problems.append(f"{name!r} has dtype {a.dtype} in the state_dict but "
                                f"{t.dtype} in the model")
        if problems:
            raise ValueError("load_state_dict: " + "; ".join(problems[:6])
                             + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
                             + _checkpoint_hint(arrays))
        for name, t in targets.items():
            np.copyto(t, arrays[name])

    def _build_from(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Build every unbuilt sub-module from the shapes of its entries in ``arrays``."""
        for prefix, module in self.named_modules():
            slots = (*module._parameters.items(), *module._buffers.items())
            if all(value is not None for _, value in slots):
                continue
            keys = {name: f"{prefix}.{name}" if prefix else name for name, _ in slots}
            missing = [key for key in keys.values() if key not in arrays]
            if missing:
                raise ValueError(
                    f"cannot build unbuilt layer {prefix or type(module).__name__} from the "
                    f"state_dict: it lacks {', '.join(map(repr, missing))}"
                    f"{_checkpoint_hint(arrays)}")
            module.build_from_shapes({name: arrays[key].shape for name, key in keys.items()})

    def build_from_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Build this lazy layer's parameters from their shapes (by slot name): how
        ``load_state_dict`` builds a layer that has not seen an input yet."""
        raise ValueError(f"{type(self).__name__} cannot be built from a state_dict: call "
                         "model.build(input_shape) first")

    # -- building and describing ------------------------------------------------------
    def build(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Build lazy layers by running a zero input of ``(1, *input_shape)``; returns the
        output shape without the batch axis. Modes and running statistics are unchanged."""
        return trace(self, input_shape).output_shape

    def summary(self, input_shape: tuple[int, ...], *,
                print_fn: Callable[[str], Any] | None = print) -> Summary:
        """A Keras-like table of layers, output shapes and parameter counts.

        Builds lazy layers (see ``build``). Prints the table with ``print_fn`` (None: do not
        print) and returns a ``Summary`` whose ``str()`` is the table.
        """
        result = summarize(self, input_shape)
        if print_fn is not None:
            print_fn(str(result))
        return result

    def extra_repr(self) -> str:
        """The settings shown inside this module's repr."""
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, child in self._modules.items():
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        return "\n".join(lines) + "\n)"
