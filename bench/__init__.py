"""Benchmarks: `make bench [SCALE=0.05]`. Each prints figure, baseline (same run) and ratio."""
