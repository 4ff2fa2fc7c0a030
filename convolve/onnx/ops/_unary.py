"""Converters of ops that map each element on its own: the layout passes through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from convolve.onnx.layout import Value
from convolve.onnx.registry import Context, Node, converter


def unary(*op_types: str, since: int = 1, until: int = 10**6
          ) -> Callable[[Callable[[Node], Callable[[Any], Any]]], Any]:
    """Register ``make(node) -> f`` where ``f`` maps the input's data to the output's: the
    converter keeps the input's layout."""
    def register(make: Callable[[Node], Callable[[Any], Any]]) -> Any:
        @converter(*op_types, since=since, until=until)
        def build(node: Node) -> Any:
            f = make(node)

            def run(ctx: Context, inputs: list[Any]) -> Value:
                x = inputs[0]
                return Value(f(x.data), x.perm)

            return run

        return make

    return register
