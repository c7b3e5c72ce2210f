"""The EDM / t-EDM denoising loss, per sample and unreduced.

    ln sigma ~ N(P_mean, P_std^2),  x_noisy = x_0 + sigma n,  n ~ denoiser.noise,
    L_b = mean over (channels, *space) of  lambda(sigma) (D(x_noisy, sigma) - x_0)^2,
    lambda(sigma) = 1 / c_out(sigma)^2.

References: "Elucidating the Design Space of Diffusion-Based Generative Models" (Karras
et al., arXiv 2206.00364), Section 5; with Student-t ``n`` and the t-EDM ``c_out`` this is
the loss of "Heavy-Tailed Diffusion Models" (Pandey et al., arXiv 2410.14171).
"""

from __future__ import annotations

import torch
from torch import Tensor

from assimilate.diffusion.denoiser import Denoiser, expand_to

__all__ = ["edm_loss", "sample_training_sigmas"]


def sample_training_sigmas(
    batch: int,
    *,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Training noise levels, ``ln sigma ~ N(p_mean, p_std^2)``, shape ``(batch,)``."""
    if not p_std > 0:
        raise ValueError(f"p_std={p_std!r} must be > 0")
    z = torch.randn(batch, generator=generator, device=device, dtype=dtype)
    return torch.exp(p_mean + p_std * z)


def edm_loss(
    denoiser: Denoiser,
    x0: Tensor,
    *,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    generator: torch.Generator | None = None,
    cond: Tensor | None = None,
) -> Tensor:
    """Per-sample weighted denoising loss for clean ``x0`` ``(batch, channels, *space)``.

    Returns shape ``(batch,)``; the caller reduces. Draws ``sigma`` first, then ``n``.
    """
    sigma = sample_training_sigmas(
        x0.shape[0], p_mean=p_mean, p_std=p_std, generator=generator,
        device=x0.device, dtype=x0.dtype,
    )
    n = denoiser.noise.sample(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    denoised = denoiser(x0 + expand_to(sigma, x0) * n, sigma, cond)
    squared_error = (denoised - x0).square().flatten(1).mean(dim=1)
    return denoiser.loss_weight(sigma) * squared_error
