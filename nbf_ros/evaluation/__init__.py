"""Evaluation: the metrics (one copy each, ``metrics``) and the occlusion protocol shared by the
benchmarks (``occlusion``: occluders, adversarial search)."""
