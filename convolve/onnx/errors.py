"""The one error type of the ONNX loader."""

from __future__ import annotations


class OnnxError(ValueError):
    """A model file convolve cannot load: corrupt, hostile, or using an op (or a setting of
    one) it cannot run. The message names the file's part at fault."""


__all__ = ["OnnxError"]
