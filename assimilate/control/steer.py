"""One controlled forecast step: the frozen forecaster's sampler with the controller's
correction in every sub-step, as used by training (with gradients, checkpointed) and by
data assimilation (without).

A deterministic controller adds ``u = scale ⊙ x_next + shift`` to the sampler's step and
counts ``‖u‖²`` (mean over the grid) as its energy. A stochastic one (the variational
objective) first makes the sub-step stochastic: the Euler step becomes the ancestral one
(the same marginals, "Elucidating the Design Space of Diffusion-Based Generative Models",
arXiv 2206.00364, with its noise split as in DDPM), whose transition is Gaussian,
``N(m, s² I)`` with ``s² = σ'² (σ² − σ'²) / σ²`` from ``σ`` to ``σ'``. Its policy moves the
mean by ``s μ``, ``μ = scale ⊙ m / √(1 + σ'²) + shift`` in units of the transition's std
(so one output costs alike at every sub-step; in state units a move would cost 1/s²), and
scales the noise by ``e^ρ``: the controlled transition is ``N(m + s μ, e^{2ρ} s² I)``, and
its energy is the exact KL divergence to the uncontrolled transition,
``½ mean_grid (e^{2ρ} − 1 − 2ρ + μ²)``: summed over
sub-steps, the path KL of the controlled chain to the forecaster's ("Variational Control
for Guidance in Diffusion Models", arXiv 2502.03686). The last sub-step (``σ' = 0``) is
deterministic in both chains and is not controlled. The noise is drawn before the step
(``ControlInputs.noise``), so a checkpointed step recomputes the same sample.
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

from assimilate.control.inputs import ControlInputs, ensemble_statistics
from assimilate.control.network import ControllerNet
from assimilate.diffusion import SubStep
from assimilate.models.forecaster import Forecaster

__all__ = ["controlled_step", "correction_for", "policy_noise"]


def correction_for(forecaster: Forecaster, controller: ControllerNet, history: torch.Tensor,
                   inputs: ControlInputs, energies: list[torch.Tensor] | None = None):
    """The samplers' correction hook: the controller's affine correction in every sub-step,
    each sub-step's control energy appended to ``energies`` (if given)."""
    norm = forecaster.normalisation

    def correction(x_next: torch.Tensor, sub: SubStep) -> torch.Tensor:
        observed = inputs.current is not None
        # the estimate of the state being generated: what innovations and pooled statistics read
        estimate = forecaster.state_of(history, sub.denoised) \
            if observed or controller.ensemble else None
        if observed:
            innovation, covered = inputs.current.innovation(estimate)
        else:
            innovation = covered = torch.zeros_like(inputs.previous)
        pooled = None
        if controller.ensemble:
            noise = inputs.current.noise if observed else 0.0
            pooled = ensemble_statistics((estimate - norm.mean) / norm.std, innovation,
                                         covered, noise, inputs.members)
        sigma = sub.x.new_full((sub.x.shape[0],), sub.sigma)
        outputs = controller(sub.x, sigma, sub.denoised, inputs.previous, innovation,
                             covered, inputs.preview, inputs.features, pooled)
        if controller.stochastic:
            return _stochastic(x_next, sub, outputs, inputs, energies)
        scale, shift = outputs
        control = scale * x_next + shift
        if energies is not None:
            energies.append(control.pow(2).flatten(1).mean(1))
        return x_next + control

    return correction


def policy_noise(forecaster: Forecaster, controller: ControllerNet, history: torch.Tensor,
                 sub_steps: int | None, generator: torch.Generator) -> torch.Tensor | None:
    """A stochastic controller's noise for one step from ``history`` (None for a
    deterministic one): ``(sub_steps, batch, 1, *space)``."""
    if not controller.stochastic:
        return None
    n_sub = sub_steps or forecaster.config.forecaster.sampling.steps
    shape = (n_sub, history.shape[0], 1, *history.shape[2:])
    return torch.randn(shape, generator=generator, device=history.device)


def _stochastic(x_next: torch.Tensor, sub: SubStep, outputs, inputs: ControlInputs,
                energies: list[torch.Tensor] | None) -> torch.Tensor:
    """The ancestral sub-step with the Gaussian policy's control (module doc)."""
    sigma, following = sub.sigma, sub.sigma_next
    up = math.sqrt(following**2 * (sigma**2 - following**2)) / sigma
    down = math.sqrt(following**2 - up**2)
    mean = x_next + (down - following) / sigma * (sub.x - sub.denoised)
    if up == 0:  # the last sub-step: deterministic, left alone
        if energies is not None:
            energies.append(x_next.new_zeros(x_next.shape[0]))
        return mean
    if inputs.noise is None:
        raise ValueError("a stochastic controller needs the sub-steps' noise drawn before "
                         "the step (ControlInputs.noise)")
    scale, shift, log_scale = outputs
    # the policy's mean move in units of the transition's std: the KL weighs it alike at
    # every sub-step, where a move in state units would cost 1/s² (large at the last ones)
    drift = scale * mean / math.sqrt(1 + following**2) + shift
    if energies is not None:
        kl = (2 * log_scale).exp() - 1 - 2 * log_scale + drift.pow(2)
        energies.append(0.5 * kl.flatten(1).mean(1))
    return mean + up * (drift + log_scale.exp() * inputs.noise[sub.index])


def controlled_step(forecaster: Forecaster, controller: ControllerNet, history: torch.Tensor,
                    noise: torch.Tensor, inputs: ControlInputs, *, sub_steps: int | None = None,
                    checkpointed: bool = False, clock: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(next, energy)``: the next normalised state ``(batch, 1, *space)`` from the prior
    draw ``noise`` and the normalised ``history``, and each sample's control energy, the
    sum over sub-steps of the mean squared correction ``(batch,)``.

    ``checkpointed``: keep no activations of the sub-steps; recompute them in the backward
    pass (the sampler must be deterministic, so the recomputation is exact). ``clock``: the
    next state's calendar features, for a forecaster conditioned on them.
    """
    def run(noise: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        energies: list[torch.Tensor] = []
        following = forecaster.step_from(
            noise, history, sub_steps=sub_steps, clock=clock,
            correction=correction_for(forecaster, controller, history, inputs, energies))
        return following, torch.stack(energies).sum(0)

    if checkpointed:
        if forecaster.config.forecaster.sampling.sampler == "stochastic":
            raise ValueError("a controller trains through a deterministic sampler (euler or "
                             "heun); this forecaster samples with 'stochastic'")
        return checkpoint(run, noise, history, use_reentrant=False)
    return run(noise, history)
