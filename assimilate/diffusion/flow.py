"""t-Flow: flow matching with Gaussian or Student-t source noise, seen as a denoiser.

Flow matching (conditional / rectified flow) with the straight interpolant

    x_t = t x_data + (1 - t) n,        t in [0, 1],  n ~ noise (one kappa per sample),
    v   = d x_t / d t = x_data - n,

trains a backbone ``v_hat(x_t, t, cond)`` to regress ``v``; sampling integrates
``dx_t/dt = v_hat`` from ``t = 0`` (pure noise) to ``t = 1``. With Student-t ``n`` this is
the t-Flow of "Heavy-Tailed Diffusion Models" (Pandey et al., arXiv 2410.14171).

**The same samplers as EDM.** Rescale by ``1/t``: ``x~ = x_t / t = x_data + sigma n`` with
``sigma = (1 - t)/t`` (so ``t = 1/(1 + sigma)``). Since ``x_data = x_t + (1 - t) v``,

    D(x~, sigma) = E[x_data | x~] = x_t + (1 - t) v_hat(x_t, t),   x_t = t x~.

Substituting, ``dx~/dsigma = (dx~/dt)/(dsigma/dt)`` with ``dsigma/dt = -1/t^2`` gives
``x_t - t v_hat``, and ``(x~ - D)/sigma`` equals the same ``x_t - t v_hat``. So the EDM
probability-flow ODE ``dx~/dsigma = (x~ - D)/sigma`` *is* the flow ODE: any sampler of
:mod:`assimilate.diffusion.samplers` runs a flow model unchanged, started from
``sigma_max n`` (``t = 1/(1 + sigma_max)``, ``x_t ~ n``) on any descending sigma schedule
(e.g. :func:`assimilate.diffusion.schedules.flow_sigmas`, uniform in ``t``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from assimilate.diffusion.denoiser import expand_to, sigma_per_sample
from assimilate.diffusion.noise import GaussianNoise, Noise

__all__ = ["FlowDenoiser", "TimeSampler", "flow_loss", "sample_flow_times"]

TimeSampler = Literal["logit_normal", "uniform"]


class FlowDenoiser(nn.Module):
    """A velocity backbone exposed through the Denoiser contract ``D(x~, sigma, cond)``.

    Args:
        backbone: module called as ``backbone(x_t, c_noise, cond) -> v_hat`` with
            ``c_noise = t`` of shape ``(batch,)``; output has ``x_t``'s shape
            ``(batch, channels, *space)``.
        noise: source noise family (Gaussian if None; Student-t gives t-Flow).
    """

    def __init__(self, backbone: nn.Module, noise: Noise | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.noise: Noise = GaussianNoise() if noise is None else noise

    def velocity(self, x_t: Tensor, t: Tensor | float, cond: Tensor | None = None) -> Tensor:
        """``v_hat(x_t, t, cond)`` for ``x_t`` ``(batch, channels, *space)``, ``t`` ``(batch,)``."""
        return self.backbone(x_t, sigma_per_sample(t, x_t), cond)

    def forward(self, x: Tensor, sigma: Tensor | float, cond: Tensor | None = None) -> Tensor:
        """``D(x~, sigma) = x_t + (1 - t) v_hat(x_t, t)`` with ``t = 1/(1+sigma)``, ``x_t = t x~``."""
        t = 1.0 / (1.0 + sigma_per_sample(sigma, x))
        x_t = expand_to(t, x) * x
        return x_t + expand_to(1.0 - t, x) * self.velocity(x_t, t, cond)


def sample_flow_times(
    batch: int,
    t_sampler: TimeSampler = "logit_normal",
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Training times ``t`` in (0, 1), shape ``(batch,)``.

    ``"logit_normal"``: ``t = sigmoid(z)``, ``z ~ N(0, 1)``, which spends more samples at
    intermediate ``t`` ("Scaling Rectified Flow Transformers for High-Resolution Image
    Synthesis", Esser et al., arXiv 2403.03206); ``"uniform"``: ``t ~ U(0, 1)``.
    """
    if t_sampler == "logit_normal":
        z = torch.randn(batch, generator=generator, device=device, dtype=dtype)
        return torch.sigmoid(z)
    if t_sampler == "uniform":
        return torch.rand(batch, generator=generator, device=device, dtype=dtype)
    raise ValueError(f"t_sampler={t_sampler!r} is not one of 'logit_normal', 'uniform'")


def flow_loss(
    model: FlowDenoiser,
    x0: Tensor,
    *,
    generator: torch.Generator | None = None,
    cond: Tensor | None = None,
    t_sampler: TimeSampler = "logit_normal",
) -> Tensor:
    """Per-sample flow-matching loss ``mean((v_hat(x_t, t) - (x0 - n))^2)``, shape ``(batch,)``.

    ``x0`` is clean data ``(batch, channels, *space)``; ``t`` is drawn by ``t_sampler`` and
    ``n`` from ``model.noise`` (one kappa per sample for Student-t). Unreduced over the
    batch so the caller chooses the reduction (and any weighting).
    """
    t = sample_flow_times(
        x0.shape[0], t_sampler, generator=generator, device=x0.device, dtype=x0.dtype
    )
    n = model.noise.sample(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    t_b = expand_to(t, x0)
    x_t = t_b * x0 + (1.0 - t_b) * n
    residual = model.velocity(x_t, t, cond) - (x0 - n)
    return residual.square().flatten(1).mean(dim=1)
