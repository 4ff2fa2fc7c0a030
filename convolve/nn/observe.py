"""Watching module calls: ``observe_calls`` reports each module's output while it is open
(``model.summary`` and ``model.build`` find output shapes this way)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

_observers = threading.local()


@contextlib.contextmanager
def observe_calls(callback: Callable[[Any, Any], None]) -> Iterator[None]:
    """Within this block every module call reports ``(module, output)`` to ``callback``."""
    stack = observers()
    stack.append(callback)
    try:
        yield
    finally:
        stack.remove(callback)


def observers() -> list[Callable[[Any, Any], None]]:
    """This thread's open ``observe_calls`` callbacks, outermost first."""
    if not hasattr(_observers, "stack"):
        _observers.stack = []
    return _observers.stack
