"""Runnable benchmarks (`make bench` runs every benchmarks/bench_*.py); each prints its figures and ratios."""
