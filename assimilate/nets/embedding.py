"""Noise-level embedding: one scalar per sample becomes a vector every residual block reads.

Sinusoidal features, as in the transformer position encoding ("Attention Is All You Need",
arXiv:1706.03762) and the DDPM timestep embedding ("Denoising Diffusion Probabilistic
Models", Ho et al. 2020, arXiv:2006.11239), followed by a two-layer MLP, as in EDM
("Elucidating the Design Space of Diffusion-Based Generative Models", arXiv:2206.00364):

    features(c) = [cos(c w_0), ..., cos(c w_{n-1}), sin(c w_0), ..., sin(c w_{n-1})],
    w_i = max_period^(-i / n),  i = 0, ..., n - 1,
    embedding(c) = silu(W_2 silu(W_1 features(c) + b_1) + b_2).

The frequencies run geometrically from 1 down to about 1 / max_period, so values of
``c_noise`` from O(0.1) to O(max_period) are resolved. The backbone does not know what
``c_noise`` means; the preconditioning chooses it (EDM: ln(sigma) / 4; DDPM: the step).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["NoiseEmbedding", "sinusoidal_features"]


def sinusoidal_features(
    c_noise: torch.Tensor, dim: int, max_period: float = 10_000.0
) -> torch.Tensor:
    """Sinusoidal features of ``c_noise`` (batch,) -> (batch, dim), computed in float32."""
    if dim < 2 or dim % 2:
        raise ValueError(f"sinusoidal_features: dim must be an even integer >= 2, got {dim}")
    half = dim // 2
    exponents = torch.arange(half, device=c_noise.device, dtype=torch.float32) / half
    frequencies = torch.exp(-math.log(max_period) * exponents)
    angles = c_noise.to(torch.float32)[:, None] * frequencies[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class NoiseEmbedding(nn.Module):
    """``c_noise`` (batch,) -> (batch, embedding_dim): sinusoidal features, then an MLP.

    The output has already passed through SiLU, so each block reads it with one linear
    layer (its FiLM scale and shift), as in EDM's backbones.
    """

    def __init__(
        self, embedding_dim: int, features_dim: int | None = None, max_period: float = 10_000.0
    ) -> None:
        super().__init__()
        self.features_dim = embedding_dim if features_dim is None else features_dim
        if self.features_dim < 2 or self.features_dim % 2:
            raise ValueError(
                f"NoiseEmbedding: features_dim must be an even integer >= 2, "
                f"got {self.features_dim} (it defaults to embedding_dim={embedding_dim})"
            )
        self.max_period = max_period
        self.hidden = nn.Linear(self.features_dim, embedding_dim)
        self.out = nn.Linear(embedding_dim, embedding_dim)

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        features = sinusoidal_features(c_noise, self.features_dim, self.max_period)
        features = features.to(self.hidden.weight.dtype)
        return F.silu(self.out(F.silu(self.hidden(features))))
