"""One controlled forecast step: the frozen forecaster's sampler with the controller's
correction in every sub-step, as used by training (with gradients, checkpointed) and by
data assimilation (without).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from assimilate.control.inputs import ControlInputs, ensemble_statistics
from assimilate.control.network import ControllerNet
from assimilate.diffusion import SubStep
from assimilate.models.forecaster import Forecaster

__all__ = ["controlled_step", "correction_for"]


def correction_for(forecaster: Forecaster, controller: ControllerNet, history: torch.Tensor,
                   inputs: ControlInputs, energies: list[torch.Tensor] | None = None):
    """The samplers' correction hook: the controller's affine correction in every sub-step,
    each sub-step's control energy appended to ``energies`` (if given)."""
    norm = forecaster.normalisation

    def correction(x_next: torch.Tensor, sub: SubStep) -> torch.Tensor:
        estimate = forecaster.state_of(history, sub.denoised)
        if inputs.current is None:
            innovation = covered = torch.zeros_like(inputs.previous)
        else:
            innovation, covered = inputs.current.innovation(estimate)
        pooled = None
        if controller.ensemble:
            noise = 0.0 if inputs.current is None else inputs.current.noise
            pooled = ensemble_statistics((estimate - norm.mean) / norm.std, innovation,
                                         covered, noise, inputs.members)
        sigma = sub.x.new_full((sub.x.shape[0],), sub.sigma)
        scale, shift = controller(sub.x, sigma, sub.denoised, inputs.previous, innovation,
                                  covered, inputs.preview, inputs.features, pooled)
        control = scale * x_next + shift
        if energies is not None:
            energies.append(control.pow(2).flatten(1).mean(1))
        return x_next + control

    return correction


def controlled_step(forecaster: Forecaster, controller: ControllerNet, history: torch.Tensor,
                    noise: torch.Tensor, inputs: ControlInputs, *, sub_steps: int | None = None,
                    checkpointed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(next, energy)``: the next normalised state ``(batch, 1, *space)`` from the prior
    draw ``noise`` and the normalised ``history``, and each sample's control energy, the
    sum over sub-steps of the mean squared correction ``(batch,)``.

    ``checkpointed``: keep no activations of the sub-steps; recompute them in the backward
    pass (the sampler must be deterministic, so the recomputation is exact).
    """
    def run(noise: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        energies: list[torch.Tensor] = []
        following = forecaster.step_from(
            noise, history, sub_steps=sub_steps,
            correction=correction_for(forecaster, controller, history, inputs, energies))
        return following, torch.stack(energies).sum(0)

    if checkpointed:
        if forecaster.config.forecaster.sampling.sampler == "stochastic":
            raise ValueError("a controller trains through a deterministic sampler (euler or "
                             "heun); this forecaster samples with 'stochastic'")
        return checkpoint(run, noise, history, use_reentrant=False)
    return run(noise, history)
