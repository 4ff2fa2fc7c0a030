"""ONNX interop (extra ``convolve[onnx]``): run, fine-tune and export convolutional networks.

- ``load(path_or_bytes) -> OnnxModel``: an ``nn.Module`` that runs an ONNX graph on NumPy
  with convolve's ops (``convolve.onnx.importer``).
- ``save(model, path, *, input_shape, opset=17)``: a convolve model as an ONNX file
  (``convolve.onnx.exporter``).

Each name is imported on first use, so ``import convolve.onnx`` costs nothing until then.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"load": "importer", "OnnxModel": "importer", "save": "exporter",
          "OnnxError": "errors"}

__all__ = ["OnnxError", "OnnxModel", "load", "save"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'convolve.onnx' has no attribute {name!r}")
    return getattr(importlib.import_module(f"convolve.onnx.{home}"), name)
