"""Sequential: layers applied one after another."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from convolve._args import describe
from convolve.nn.module import Module


class Sequential(Module):
    """``layers[-1](...layers[1](layers[0](x)))``; its layers are named ``"0"``, ``"1"``, ...

    Arguments:
        layers: a list (or tuple) of Modules.
        input_shape: ``(H, W, C)`` (without the batch axis) builds every lazy layer now, as
            Keras does, so that ``parameters()`` is complete before the first call.
    """

    def __init__(self, layers: Sequence[Module] = (), *,
                 input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if not isinstance(layers, (list, tuple)):
            raise TypeError(f"layers must be a list of Modules; received {describe(layers)}")
        for layer in layers:
            self.append(layer)
        if input_shape is not None:
            self.build(input_shape)

    def append(self, layer: Module) -> Sequential:
        """Add ``layer`` at the end; returns self."""
        if not isinstance(layer, Module):
            raise TypeError(f"layers[{len(self)}] must be a Module (a layer); received "
                            f"{describe(layer)}")
        self._modules[str(len(self))] = layer
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Any:
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(layers[index])
        return layers[index]

    def forward(self, x: Any) -> Any:
        for layer in self._modules.values():
            x = layer(x)
        return x
