"""Layers: modules that hold parameters and call the functional ops."""

from convolve.nn.activation import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from convolve.nn.container import Sequential
from convolve.nn.conv import Conv2D, ConvTranspose2D, DepthwiseConv2D
from convolve.nn.dense import Dense, Flatten
from convolve.nn.module import Module
from convolve.nn.norm import BatchNorm2D
from convolve.nn.pool import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D
from convolve.nn.regularization import Dropout
from convolve.nn.summary import Summary, SummaryRow

__all__ = [
    "GELU",
    "AvgPool2D",
    "BatchNorm2D",
    "Conv2D",
    "ConvTranspose2D",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "LeakyReLU",
    "MaxPool2D",
    "Module",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Summary",
    "SummaryRow",
    "Tanh",
]
