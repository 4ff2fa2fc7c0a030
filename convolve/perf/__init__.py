"""Benchmarks of convolve against PyTorch, SciPy and OpenCV (imported only when run)."""
