"""Task families: the contract (:mod:`base`) and one module per family, registered by name."""
from xrbench.families import global_features  # noqa: F401  (registers the global-feature families)
from xrbench.families import segmentation  # noqa: F401  (registers the segmentation family)
from xrbench.families.base import FAMILIES, TaskFamily, create_family

__all__ = ["FAMILIES", "TaskFamily", "create_family"]
