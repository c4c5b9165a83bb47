"""xrbench: frozen-encoder evaluation of X-ray foundation models."""
__version__ = "0.1.0"
