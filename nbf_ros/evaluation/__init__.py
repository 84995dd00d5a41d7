"""Evaluation protocol pieces shared by the benchmarks: occluders, adversarial search, metrics."""
