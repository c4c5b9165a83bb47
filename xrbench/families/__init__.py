"""Task families: the contract (:mod:`base`) and one module per family, registered by name."""
from xrbench.families import (  # noqa: F401  (each module registers its family)
    global_features, grounding, landmarks, localization, report_generation, report_retrieval, segmentation)
from xrbench.families.base import FAMILIES, TaskFamily, create_family

__all__ = ["FAMILIES", "TaskFamily", "create_family"]
