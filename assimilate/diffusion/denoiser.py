"""EDM / t-EDM preconditioning: wrap a backbone ``F`` into a denoiser ``D(x, sigma, cond)``.

With ``v = noise.variance_factor`` (1 for Gaussian, ``nu/(nu-2)`` for Student-t noise):

    c_skip(sigma)  = sigma_d^2 / (v sigma^2 + sigma_d^2)
    c_out(sigma)   = sqrt(v) sigma sigma_d / sqrt(v sigma^2 + sigma_d^2)
    c_in(sigma)    = 1 / sqrt(v sigma^2 + sigma_d^2)
    c_noise(sigma) = ln(sigma) / 4
    D(x, sigma)    = c_skip x + c_out F(c_in x, c_noise, cond)
    lambda(sigma)  = 1 / c_out^2          (loss weight)

These make the backbone's input and its regression target unit-variance when the noisy
input is ``x_0 + sigma n`` with ``Var(x_0) = sigma_d^2`` and ``Var(n) = v``.

References: "Elucidating the Design Space of Diffusion-Based Generative Models" (Karras
et al., arXiv 2206.00364), Table 1; "Heavy-Tailed Diffusion Models" (Pandey et al.,
arXiv 2410.14171), which replaces ``sigma^2`` by the Student-t variance ``v sigma^2``.

The Denoiser contract shared by samplers, guidance and controllers (see DESIGN.md) is the
call ``D(x_noisy, sigma, cond=None) -> x_denoised`` with ``sigma`` a float or one value
per sample, shape ``(batch,)``.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor, nn

from assimilate.diffusion.noise import GaussianNoise, Noise

__all__ = ["Denoiser", "DenoiserFn", "expand_to", "sigma_per_sample"]


class DenoiserFn(Protocol):
    """Anything called as ``D(x, sigma, cond=None)``; ``x`` is ``(batch, channels, *space)``."""

    def __call__(self, x: Tensor, sigma: Tensor | float, cond: Tensor | None = None) -> Tensor:
        ...


def sigma_per_sample(sigma: Tensor | float, x: Tensor) -> Tensor:
    """``sigma`` as one value per sample of ``x``: shape ``(batch,)``, ``x``'s dtype/device.

    Accepts a Python float, a 0-d tensor or a ``(batch,)`` tensor.
    """
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        return sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(
            f"sigma has shape {tuple(sigma.shape)}; expected a scalar or one value per "
            f"sample, shape ({x.shape[0]},), for x of shape {tuple(x.shape)}"
        )
    return sigma


def expand_to(values: Tensor, x: Tensor) -> Tensor:
    """Reshape per-sample ``values`` ``(batch,)`` to ``(batch, 1, ..., 1)`` to broadcast on ``x``."""
    return values.reshape(values.shape + (1,) * (x.ndim - values.ndim))


class Denoiser(nn.Module):
    """EDM / t-EDM preconditioned denoiser ``D(x, sigma, cond) = c_skip x + c_out F(...)``.

    Args:
        backbone: module called as ``backbone(x_in, c_noise, cond) -> F`` with ``x_in`` of
            shape ``(batch, channels, *space)``, ``c_noise`` ``(batch,)`` and ``cond``
            ``(batch, cond_channels, *space)`` or ``None``; ``F`` has ``x_in``'s shape.
        noise: the noise family the model is trained with (sets ``v``); Gaussian if None.
        sigma_data: standard deviation of the (normalised) data, ``> 0``.
    """

    def __init__(
        self, backbone: nn.Module, noise: Noise | None = None, sigma_data: float = 0.5
    ) -> None:
        super().__init__()
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"Denoiser: sigma_data={sigma_data!r} must be finite and > 0")
        self.backbone = backbone
        self.noise: Noise = GaussianNoise() if noise is None else noise
        self.sigma_data = float(sigma_data)

    def preconditioning(self, sigma: Tensor | float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in, c_noise)``, each with ``sigma``'s shape."""
        sigma = torch.as_tensor(sigma)
        v, sd2 = self.noise.variance_factor, self.sigma_data**2
        total = v * sigma**2 + sd2  # Var(x_0 + sigma n) per coordinate
        c_skip = sd2 / total
        c_out = math.sqrt(v) * sigma * self.sigma_data / total.sqrt()
        c_in = total.rsqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def loss_weight(self, sigma: Tensor | float) -> Tensor:
        """``lambda(sigma) = 1 / c_out(sigma)^2``, with ``sigma``'s shape."""
        _, c_out, _, _ = self.preconditioning(sigma)
        return c_out.reciprocal().square()

    def forward(self, x: Tensor, sigma: Tensor | float, cond: Tensor | None = None) -> Tensor:
        """Denoise ``x`` ``(batch, channels, *space)`` at ``sigma`` (float or ``(batch,)``)."""
        sigma = sigma_per_sample(sigma, x)
        c_skip, c_out, c_in, c_noise = self.preconditioning(sigma)
        out = self.backbone(expand_to(c_in, x) * x, c_noise, cond)
        return expand_to(c_skip, x) * x + expand_to(c_out, x) * out
