"""Host toolchain: pruning, quantization, the memory format, the golden model, the driver."""
