"""Functional ops: arrays in, arrays out; Tensors in, a recorded Tensor out."""
