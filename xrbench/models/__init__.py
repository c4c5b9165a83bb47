"""Encoders: the contract, the timm adapter, and the registered model zoo."""
from xrbench.models.base import RANDOM_INIT, Encoder, EncoderMeta
from xrbench.models.zoo import create_encoder

__all__ = ["RANDOM_INIT", "Encoder", "EncoderMeta", "create_encoder"]
