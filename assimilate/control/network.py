"""The controller u_ψ: a small periodic convolutional network, FiLM-conditioned on the
noise level and the regime features, that returns an affine correction per grid point.

Inside every denoising sub-step of the frozen forecaster the sampler's next state becomes

    x_next <- x_next + u,   u = scale ⊙ x_next + shift,

with ``(scale, shift) = u_ψ(x, σ, D(x), previous state, innovation of D(x) and its mask,
previewed observations and masks; regime features; with ``ensemble``, the pooled
ensemble statistics)`` (inputs: :mod:`.inputs`). The output
layer starts at zero, so an untrained controller leaves the forecaster untouched
("Control-Augmented Autoregressive Diffusion for Data Assimilation", Srivastava et al.,
arXiv 2510.06637).

A ``stochastic`` controller is a Gaussian policy: it also returns the log-scale ρ of its
control's noise, ``|ρ| < 1`` (see :func:`assimilate.control.steer.correction_for`; "Hierarchical
Variational Policies for Reward-Guided Diffusion", arXiv 2605.21661).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from assimilate.control.inputs import N_FEATURES, N_POOLED
from assimilate.nets.embedding import NoiseEmbedding
from assimilate.nets.unet import ResidualBlock, same_conv

__all__ = ["ControllerNet"]

_SCALE_LIMIT = 0.5  # |scale| < 0.5: a sub-step may shrink or grow the state by half at most
_LOG_SCALE_LIMIT = 1.0  # a stochastic policy's noise is e^-1 to e times the sub-step's


class ControllerNet(nn.Module):
    """``(scale, shift)``, each ``(batch, 1, *space)``, for one sub-step (module doc); a
    ``stochastic`` one returns ``(scale, shift, log_scale)``."""

    def __init__(self, dims: int, lookahead: int, width: int = 64, blocks: int = 4,
                 embedding: int = 64, ensemble: bool = False, stochastic: bool = False) -> None:
        super().__init__()
        if lookahead < 1:
            raise ValueError(f"lookahead must be >= 1 step, got {lookahead}")
        self.dims, self.lookahead, self.ensemble = dims, lookahead, ensemble
        self.stochastic = stochastic
        in_channels = 5 + 2 * (lookahead - 1) + (N_POOLED if ensemble else 0)
        self.noise_embedding = NoiseEmbedding(embedding)
        self.feature_embedding = nn.Sequential(nn.Linear(N_FEATURES, embedding), nn.SiLU(),
                                               nn.Linear(embedding, embedding), nn.SiLU())
        self.inputs = same_conv(dims, in_channels, width)
        self.blocks = nn.ModuleList(ResidualBlock(dims, width, width, embedding, 0.0)
                                    for _ in range(blocks))
        self.outputs = same_conv(dims, width, 3 if stochastic else 2)
        nn.init.zeros_(self.outputs.weight)
        nn.init.zeros_(self.outputs.bias)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor,
                previous: torch.Tensor, innovation: torch.Tensor, covered: torch.Tensor,
                preview: torch.Tensor, features: torch.Tensor,
                pooled: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``x``, ``denoised`` ``(batch, 1, *space)``; ``sigma`` ``(batch,)``; ``previous``,
        ``innovation``, ``covered`` ``(batch, *space)``; ``preview`` ``(batch, 2 (Λ − 1),
        *space)``; ``features`` ``(batch, N_FEATURES)``; ``pooled`` ``(batch, N_POOLED,
        *space)``, given exactly when the controller is ensemble-aware."""
        if (pooled is not None) != self.ensemble:
            raise ValueError("an ensemble-aware controller reads pooled ensemble statistics "
                             "and no other controller does")
        # the sampler's variable is O(sigma) at high noise: feed it at unit scale
        scale_in = (1 + sigma**2).rsqrt().reshape(-1, *(1,) * (x.ndim - 1))
        extra = [] if pooled is None else [pooled]
        h = torch.cat([x * scale_in, denoised, previous[:, None], innovation[:, None],
                       covered[:, None], preview, *extra], dim=1)
        emb = self.noise_embedding(sigma.log() / 4) + self.feature_embedding(features)
        h = self.inputs(h)
        for block in self.blocks:
            h = block(h, emb)
        scale, shift, *log_scale = self.outputs(F.silu(h)).split(1, dim=1)
        if self.stochastic:
            return _SCALE_LIMIT * torch.tanh(scale), shift, _LOG_SCALE_LIMIT * torch.tanh(
                log_scale[0])
        return _SCALE_LIMIT * torch.tanh(scale), shift
