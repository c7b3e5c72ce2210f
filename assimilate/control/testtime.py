"""Test-time optimisation of a correction: shared by ``optimised-control`` (per-sub-step
affine controls found from zero, no network) and the controller's ``refine=K`` (a shift
on top of the network's proposal).

The samplers call a correction first at sub-step 0, whose ``x`` is the prior draw of the
forecast step. There the parameters are optimised: the whole step is rerun from that same
draw with the parametrised correction, and Adam descends

    misfit = mean over observations of ((y − H(x_{t+1})) / σ_obs)²  +  energy · E(u),

E the control energy of the step (the sum over sub-steps of the mean squared correction),
back-propagated through every sub-step. The sampler then takes the step with the
optimised correction; its denoiser calls are counted like any others.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from assimilate.control.inputs import StepObservations
from assimilate.diffusion import Correction, SubStep
from assimilate.models.forecaster import Forecaster

__all__ = ["optimised"]

# (parameters, energies or None) -> the correction they define
Parametrised = Callable[[list[torch.Tensor], list[torch.Tensor] | None], Correction]


def optimised(forecaster: Forecaster, history: torch.Tensor, observed: StepObservations,
              parametrised: Parametrised, parameters: list[torch.Tensor], *, iterations: int,
              rate: float, energy: float = 0.0) -> Correction:
    """The correction of ``parametrised`` with ``parameters`` optimised (module doc) when
    the sampler first calls it."""
    error_std = observed.noise * observed.std
    done: dict[str, Correction] = {}

    def objective(noise: torch.Tensor) -> torch.Tensor:
        energies: list[torch.Tensor] = []
        following = forecaster.step_from(noise, history,
                                         correction=parametrised(parameters, energies))
        outcome = forecaster.normalisation.denormalise(following[:, 0])
        residual = (observed.values - observed.operator.apply(outcome)) / error_std
        misfit = torch.where(observed.mask, residual, 0).pow(2).sum(-1) \
            / observed.mask.sum(-1).clamp_min(1)
        total = misfit + energy * torch.stack(energies).sum(0) if energies else misfit
        return total.sum()

    def correction(x_next: torch.Tensor, sub: SubStep) -> torch.Tensor:
        if "final" not in done:  # the first sub-step: sub.x is the prior draw
            with torch.enable_grad():
                for parameter in parameters:
                    parameter.requires_grad_(True)
                optimiser = torch.optim.Adam(parameters, lr=rate)
                for _ in range(iterations):
                    optimiser.zero_grad()
                    objective(sub.x.detach()).backward()
                    optimiser.step()
            done["final"] = parametrised([p.detach() for p in parameters], None)
        return done["final"](x_next, sub)

    return correction
