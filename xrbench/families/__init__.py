"""Task families: the contract (:mod:`base`) and one module per family, registered by name."""
from xrbench.families import global_features  # noqa: F401  (registers the global-feature families)
from xrbench.families import report_generation  # noqa: F401  (registers report-generation)
from xrbench.families.base import FAMILIES, TaskFamily, create_family

__all__ = ["FAMILIES", "TaskFamily", "create_family"]
