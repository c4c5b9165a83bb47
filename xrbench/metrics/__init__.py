"""Metrics: registered metric functions and bootstrap confidence intervals."""
from xrbench.metrics import classification  # noqa: F401  (registers metrics)
