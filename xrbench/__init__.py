"""xrbench."""
