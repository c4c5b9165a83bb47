"""Metrics: registered metric functions and bootstrap confidence intervals."""
from xrbench.metrics import classification, regression, retrieval  # noqa: F401  (registers metrics)
