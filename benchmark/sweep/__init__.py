"""Sweeps: the benchmark at several generated dataset sizes and rater panels (learning curves, power)."""
