"""Compiled Cython kernels of pyconv (internal; the public API is pyconv.signal/nn/grad)."""
