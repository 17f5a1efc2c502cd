"""Benchmarks of DESIGN section 8: data, scoring, baselines and peers."""
