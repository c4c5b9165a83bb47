"""Encoders: the contract, the adapters, and the registered model zoo.

Importing this package registers every model without importing torch (``xrbench list models``
stays fast); ``Encoder`` and the adapters load torch when first used.
"""
from xrbench.models.meta import RANDOM_INIT, EncoderMeta, ModelCard
from xrbench.models.zoo import create_encoder

__all__ = ["RANDOM_INIT", "Encoder", "EncoderMeta", "ModelCard", "create_encoder"]


def __getattr__(name: str):
    if name == "Encoder":
        from xrbench.models.base import Encoder

        return Encoder
    raise AttributeError(f"module 'xrbench.models' has no attribute {name!r}")
