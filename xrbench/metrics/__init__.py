"""Metrics: registered metric functions, their all-replicates versions, bootstrap CIs."""
from xrbench.metrics import classification, regression, retrieval, weighted  # noqa: F401  (registers metrics)

weighted.attach()
