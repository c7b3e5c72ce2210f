"""Backbones: networks that map (field, noise level, conditioning) to a field.

They know nothing of noise schedules or preconditioning (see ``diffusion/``).

Imports nothing of the project: pure torch.
"""

from __future__ import annotations

from assimilate.nets.embedding import NoiseEmbedding, sinusoidal_features
from assimilate.nets.unet import UNET_SIZES, UNet, build_unet, count_parameters

__all__ = [
    "UNET_SIZES",
    "NoiseEmbedding",
    "UNet",
    "build_unet",
    "count_parameters",
    "sinusoidal_features",
]
