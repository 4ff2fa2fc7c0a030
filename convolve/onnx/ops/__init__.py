"""The converters, one module per op family; importing this package registers them all."""

from convolve.onnx.ops import (  # noqa: F401
    activation,
    conv,
    elementwise,
    linear,
    norm,
    pool,
    reduce,
    resize,
    shape,
)
