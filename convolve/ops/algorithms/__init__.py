"""The convolution methods (one module each, behind ``method.ConvMethod``), and ``select``."""
