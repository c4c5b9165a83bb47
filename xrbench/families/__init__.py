"""Task families: the contract (:mod:`base`) and one module per family, registered by name."""
from xrbench.families import global_features  # noqa: F401  (registers the global-feature families)
from xrbench.families import landmarks  # noqa: F401  (registers the landmarks family)
from xrbench.families import localization  # noqa: F401  (registers the localization family)
from xrbench.families import grounding, report_retrieval  # noqa: F401  (register grounding, report-retrieval)
from xrbench.families import segmentation  # noqa: F401  (registers the segmentation family)
from xrbench.families.base import FAMILIES, TaskFamily, create_family

__all__ = ["FAMILIES", "TaskFamily", "create_family"]
