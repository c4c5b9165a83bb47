"""The synthetic multi-anatomy phantom: the embedded default data (labelled synthetic everywhere)."""
