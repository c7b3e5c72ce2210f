"""``dps``: likelihood guidance inside the forecaster's sampler (Diffusion Posterior Sampling).

At every denoising sub-step of an observed forecast step the sampler's state moves down
the gradient of the observation misfit of its own denoised estimate,

    x_next <- x_next - zeta * grad_x || (y - H(x0_hat(x))) / sigma_obs ||,
    x0_hat(x) = the physical next state implied by D(x, sigma),

the step of "Diffusion Posterior Sampling for General Noisy Inverse Problems" (Chung et
al., arXiv 2209.14687), which normalises the step by taking the gradient of the norm, not
of its square. ``D(x)`` comes from the sampler (no second denoiser call); the gradient
costs one backward pass through the denoiser per sub-step. Missing observations count zero.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from pydantic.dataclasses import dataclass

from assimilate.da.contract import Method, Observed, Problem, Tuning
from assimilate.diffusion import Guidance, SubStep
from assimilate.models.forecaster import Control

__all__ = ["DiffusionPosteriorSampling"]


@dataclass(frozen=True)
class DiffusionPosteriorSampling(Method):
    """``zeta``: guidance step per sub-step, in the sampler's (normalised) units."""

    name: ClassVar[str] = "dps"
    tuning: ClassVar[Tuning] = Tuning("zeta", (0.3, 1.0, 3.0, 10.0), "ζ")
    cost: ClassVar[int] = 1  # a backward pass through the denoiser per sub-step
    zeta: float = Field(0.5, ge=0, le=1000)
    model: Literal["forecaster"] = "forecaster"

    def guide(self, observed: Observed, problem: Problem, state: None) -> Control:
        model = problem.model
        device = model.device
        n_members = problem.n_members
        values = torch.as_tensor(observed.values, dtype=torch.float32, device=device)
        present = torch.as_tensor(observed.mask, device=device) & torch.isfinite(values)
        values = torch.where(present, values, torch.zeros_like(values))
        # (trajectory, n) -> (trajectory * member, n), members of one trajectory together
        values = values.repeat_interleave(n_members, dim=0)
        present = present.repeat_interleave(n_members, dim=0)
        error_std = torch.as_tensor(observed.error_std, dtype=torch.float32, device=device)
        operator, zeta = observed.operator, self.zeta

        def control(step: int, history: torch.Tensor) -> Guidance:
            def correction(x_next: torch.Tensor, sub: SubStep) -> torch.Tensor:
                state = model.state_of(history, sub.denoised)
                residual = torch.where(present, (values - operator.apply(state)) / error_std,
                                       torch.zeros_like(values))
                misfit = residual.pow(2).sum(-1).clamp_min(1e-12).sqrt()  # (batch,)
                (gradient,) = torch.autograd.grad(misfit.sum(), sub.x)
                return (x_next - zeta * gradient).detach()

            return Guidance(correction, differentiable=True)

        return control
