"""Protocols: what is trained on frozen features (linear probe, kNN, ridge, retrieval)."""
from xrbench.protocols import knn, linear, retrieval, ridge  # noqa: F401  (registers protocols)
