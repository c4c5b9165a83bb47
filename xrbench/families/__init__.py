"""Task families: the contract (:mod:`base`) and one module per family, registered by name and
imported when a task of that family is built (``FAMILY_MODULES``)."""
from xrbench.families.base import FAMILIES, FAMILY_MODULES, TaskFamily, create_family, family_class

__all__ = ["FAMILIES", "FAMILY_MODULES", "TaskFamily", "create_family", "family_class"]
