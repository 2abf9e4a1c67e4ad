"""Stage 3: parity (quantized vs float) and benchmarks of every backend."""
