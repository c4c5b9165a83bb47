"""Protocols: what is trained on frozen features (linear probe, kNN, ...)."""
from xrbench.protocols import knn, linear  # noqa: F401  (registers protocols)
