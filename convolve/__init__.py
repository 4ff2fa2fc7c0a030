"""convolve: convolutional layers and networks on NumPy, channels-last."""

# filters, io and viz load their heavy dependencies (Pillow, matplotlib) only when used.
from convolve import filters, io, viz
from convolve.ops.conv import conv2d
from convolve.shapes import conv2d_output_shape, explain
from convolve.tensor import Tensor, is_grad_enabled, no_grad

__version__ = "0.1.0"

__all__ = [
           "Tensor",
           "__version__",
           "conv2d",
           "conv2d_output_shape",
           "explain",
           "filters",
           "io",
           "is_grad_enabled",
           "no_grad",
           "viz",
]
