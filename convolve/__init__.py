"""convolve: convolutional layers and networks on NumPy, channels-last."""

# filters, io and viz load their heavy dependencies (Pillow, matplotlib) only when used.
from convolve import data, filters, io, losses, models, nn, optim, viz
from convolve.ops.activation import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from convolve.ops.autotune import autotune_enabled, set_autotune
from convolve.ops.conv import conv2d, conv_transpose2d
from convolve.ops.dropout import dropout
from convolve.ops.linear import linear
from convolve.ops.norm import batch_norm
from convolve.ops.pool import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d
from convolve.shapes import conv2d_output_shape, explain
from convolve.tensor import Tensor, is_grad_enabled, no_grad
from convolve.train import evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
           "Tensor",
           "__version__",
           "autotune_enabled",
           "avg_pool2d",
           "batch_norm",
           "conv2d",
           "conv2d_output_shape",
           "conv_transpose2d",
           "data",
           "dropout",
           "evaluate",
           "explain",
           "filters",
           "fit",
           "gelu",
           "global_avg_pool2d",
           "global_max_pool2d",
           "io",
           "is_grad_enabled",
           "leaky_relu",
           "linear",
           "log_softmax",
           "losses",
           "max_pool2d",
           "models",
           "nn",
           "no_grad",
           "optim",
           "predict",
           "relu",
           "set_autotune",
           "sigmoid",
           "softmax",
           "tanh",
           "viz",
]
