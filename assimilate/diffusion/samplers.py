"""Samplers for the probability-flow ODE ``dx/dsigma = (x - D(x, sigma)) / sigma``.

Every sampler is a pure function with one signature,

    sample_*(denoiser, x, sigmas, *, cond=None, callback=None, correction=None, ...) -> x_0

- ``denoiser``: the Denoiser contract ``D(x, sigma, cond) -> x_denoised``, called here with
  one sigma per sample, shape ``(batch,)`` (an EDM/t-EDM :class:`Denoiser`, a
  :class:`FlowDenoiser`, or a guidance wrapper that is itself a denoiser).
- ``x``: the initial state at ``sigmas[0]``, shape ``(batch, channels, *space)``, e.g. from
  :func:`prior_sample`.
- ``sigmas``: a descending schedule, shape ``(n_steps + 1,)``, ending with 0
  (:mod:`assimilate.diffusion.schedules`).
- ``callback(info)``: diagnostics, once per step ``i`` *before* the state moves, with
  ``info = dict(index=i, x=x, sigma=sigma_i, sigma_next=sigma_{i+1}, denoised=D(x, sigma_i))``
  (for the stochastic sampler ``x`` and ``sigma`` are the churned ``x_hat``, ``sigma_hat``).
- ``correction(x_next, step) -> x_next``: applied to the state after every step (to
  ``sigma_next``), before the next denoiser call, with ``step`` a :class:`SubStep` holding
  the index, the state ``x`` at ``sigma`` and the denoised estimate ``D(x, sigma)`` the
  sampler has just computed. This is the single place where guidance (a likelihood-gradient
  term) and a learned controller (an affine control term) enter: they are extra terms in
  the same loop, never a new loop, and they reuse ``D(x)`` instead of a second denoiser
  call. A :class:`Guidance` with ``differentiable=True`` gets ``x`` with ``requires_grad``
  and ``denoised`` with its autograd graph, even inside ``torch.no_grad()`` (likelihood
  guidance differentiates its misfit through ``D``).

Nothing here switches off autograd: a controller is trained by back-propagating through a
sampler, so wrap calls in ``torch.no_grad()`` yourself when only sampling.

Reference: "Elucidating the Design Space of Diffusion-Based Generative Models" (Karras
et al., arXiv 2206.00364), Algorithms 1 and 2. The deterministic Euler step is the DDIM
update ``x_next = D + (sigma_next / sigma) (x - D)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor

from assimilate.diffusion.denoiser import DenoiserFn
from assimilate.diffusion.noise import GaussianNoise, Noise

__all__ = [
    "Callback",
    "Churn",
    "Correction",
    "Guidance",
    "SubStep",
    "prior_sample",
    "sample_euler",
    "sample_heun",
    "sample_stochastic",
]

Callback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SubStep:
    """What a correction sees of one sampler step ``sigma -> sigma_next``."""

    index: int
    x: Tensor
    """The state at ``sigma`` the step started from, ``(batch, channels, *space)``."""
    sigma: float
    sigma_next: float
    denoised: Tensor
    """``D(x, sigma)``, computed once by the sampler."""


Correction = Callable[[Tensor, SubStep], Tensor]
"""``correction(x_next, step) -> x_next``: an extra term of the sampling step."""


@dataclass(frozen=True)
class Guidance:
    """A correction that says whether it differentiates through the step: with
    ``differentiable`` the sampler hands it ``x`` requiring grad and ``D(x)`` with its graph."""

    correct: Correction
    differentiable: bool = True

    def __call__(self, x_next: Tensor, step: SubStep) -> Tensor:
        return self.correct(x_next, step)


@dataclass(frozen=True)
class Churn:
    """EDM's stochasticity (Algorithm 2): ``amount`` (S_churn), applied for
    ``sigma_min <= sigma <= sigma_max`` (S_tmin, S_tmax), the added noise scaled by
    ``noise_scale`` (S_noise). Defaults: EDM's ImageNet-64 settings."""

    amount: float = 40.0
    sigma_min: float = 0.05
    sigma_max: float = 50.0
    noise_scale: float = 1.003


def prior_sample(
    shape: tuple[int, ...] | torch.Size,
    sigma_max: float,
    noise: Noise,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """``x_N = sigma_max * n``, ``n ~ noise`` (t prior: ``sigma_max z / sqrt(kappa)``)."""
    return sigma_max * noise.sample(shape, generator=generator, device=device, dtype=dtype)


def _levels(sigmas: Tensor) -> list[float]:
    """The schedule as Python floats (they steer control flow), after checking its shape."""
    sigmas = torch.as_tensor(sigmas)
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must have shape (n_steps + 1,) with n_steps >= 1, got "
                         f"{tuple(sigmas.shape)}")
    levels = [float(s) for s in sigmas.tolist()]  # one device-to-host copy
    if not (levels[-1] >= 0 and all(a > b for a, b in pairwise(levels))):
        raise ValueError(f"sigmas must be strictly decreasing and >= 0, got {levels}")
    return levels


def _denoise(denoiser: DenoiserFn, x: Tensor, sigma: float, cond: Tensor | None) -> Tensor:
    return denoiser(x, x.new_full((x.shape[0],), sigma), cond)


def _guided(correction: Correction | None, x: Tensor):
    """``(x, context)``: for a correction that differentiates, ``x`` requires grad and the
    context keeps autograd on for the denoiser call and the step."""
    if not (isinstance(correction, Guidance) and correction.differentiable):
        return x, nullcontext()
    return (x if x.requires_grad else x.detach().requires_grad_(True)), torch.enable_grad()


def _slope(denoiser: DenoiserFn, x: Tensor, sigma: float, cond: Tensor | None) -> Tensor:
    """``dx/dsigma = (x - D(x, sigma)) / sigma``."""
    return (x - _denoise(denoiser, x, sigma, cond)) / sigma


def _report(callback: Callback | None, index: int, x: Tensor, sigma: float,
            sigma_next: float, denoised: Tensor) -> None:
    if callback is not None:
        info = {"index": index, "x": x, "sigma": sigma, "sigma_next": sigma_next,
                "denoised": denoised}
        callback(info)


def _correct(correction: Correction | None, x_next: Tensor, x: Tensor, sigma: float,
             sigma_next: float, index: int, denoised: Tensor) -> Tensor:
    if correction is None:
        return x_next
    return correction(x_next, SubStep(index, x, sigma, sigma_next, denoised))


def sample_euler(
    denoiser: DenoiserFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: Callback | None = None,
    correction: Correction | None = None,
) -> Tensor:
    """Explicit Euler on the probability-flow ODE (= deterministic DDIM); first order.

    One denoiser evaluation per step. Shapes as in the module docstring.
    """
    levels = _levels(sigmas)
    for i, (sigma, sigma_next) in enumerate(pairwise(levels)):
        x, context = _guided(correction, x)
        with context:
            denoised = _denoise(denoiser, x, sigma, cond)
            _report(callback, i, x, sigma, sigma_next, denoised)
            slope = (x - denoised) / sigma  # dx/dsigma at (x, sigma)
            x_next = x + (sigma_next - sigma) * slope
            x = _correct(correction, x_next, x, sigma, sigma_next, i, denoised)
    return x


def sample_heun(
    denoiser: DenoiserFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: Callback | None = None,
    correction: Correction | None = None,
) -> Tensor:
    """Heun's second-order method on the probability-flow ODE (EDM Algorithm 1).

    Two denoiser evaluations per step, except the last step to ``sigma = 0``, which is an
    Euler step (the slope is undefined at 0).
    """
    levels = _levels(sigmas)
    for i, (sigma, sigma_next) in enumerate(pairwise(levels)):
        x, context = _guided(correction, x)
        with context:
            denoised = _denoise(denoiser, x, sigma, cond)
            _report(callback, i, x, sigma, sigma_next, denoised)
            slope = (x - denoised) / sigma
            x_next = _heun_update(denoiser, x, slope, sigma, sigma_next, cond)
            x = _correct(correction, x_next, x, sigma, sigma_next, i, denoised)
    return x


def _heun_update(denoiser: DenoiserFn, x: Tensor, slope: Tensor, sigma: float,
                 sigma_next: float, cond: Tensor | None) -> Tensor:
    """One step ``sigma -> sigma_next`` given the slope at ``(x, sigma)`` (EDM Alg. 1, 5-8)."""
    # Euler predictor (Alg. 1 line 5).
    x_next = x + (sigma_next - sigma) * slope
    if sigma_next == 0:
        return x_next
    # Trapezoidal corrector with the slope at the predicted point (lines 7-8).
    slope_next = _slope(denoiser, x_next, sigma_next, cond)
    return x + (sigma_next - sigma) * 0.5 * (slope + slope_next)


def sample_stochastic(
    denoiser: DenoiserFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Tensor | None = None,
    callback: Callback | None = None,
    correction: Correction | None = None,
    churn: Churn = Churn(),
    noise: Noise | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """EDM's stochastic sampler (Algorithm 2): churn noise in, then a Heun step.

    At each step with ``churn.sigma_min <= sigma_i <= churn.sigma_max`` the state is raised
    to ``sigma_hat = (1 + gamma) sigma_i``, ``gamma = min(churn.amount / n_steps,
    sqrt(2) - 1)``, by adding ``churn.noise_scale * sqrt(sigma_hat^2 - sigma_i^2) * eps``,
    ``eps ~ noise``; then a Heun step goes from ``sigma_hat`` to ``sigma_{i+1}``
    (:class:`Churn`: EDM's ImageNet-64 settings by default). With Student-t ``noise``
    (one kappa per sample) the added noise keeps the t family's scale but the sum of two
    t draws is only approximately t: a heuristic, exact in the Gaussian limit.
    """
    levels = _levels(sigmas)
    noise = GaussianNoise() if noise is None else noise
    gamma_max = min(churn.amount / (len(levels) - 1), math.sqrt(2.0) - 1.0)
    for i, (sigma, sigma_next) in enumerate(pairwise(levels)):
        # Alg. 2 lines 4-6: temporarily increase the noise level (churn).
        gamma = gamma_max if churn.sigma_min <= sigma <= churn.sigma_max else 0.0
        sigma_hat = sigma * (1.0 + gamma)
        if gamma > 0:
            eps = noise.sample(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + churn.noise_scale * math.sqrt(sigma_hat**2 - sigma**2) * eps
        # Lines 7-11: a Heun step from sigma_hat down to sigma_next.
        x, context = _guided(correction, x)
        with context:
            denoised = _denoise(denoiser, x, sigma_hat, cond)
            _report(callback, i, x, sigma_hat, sigma_next, denoised)
            slope = (x - denoised) / sigma_hat
            x_next = _heun_update(denoiser, x, slope, sigma_hat, sigma_next, cond)
            x = _correct(correction, x_next, x, sigma_hat, sigma_next, i, denoised)
    return x
