"""Diffusion core: noise families, EDM/t-EDM denoiser, t-Flow, losses, schedules, samplers.

The four nouns are kept apart: a *noise* family draws standard noise; a *denoiser* wraps
a backbone with preconditioning and satisfies ``D(x, sigma, cond=None)``; a *loss* is
per-sample and unreduced; a *sampler* is a pure function
``sample(denoiser, x, sigmas, *, cond, callback, correction)`` over a *schedule*.

Imports nothing of the project: pure torch.
"""

from __future__ import annotations

from assimilate.diffusion.counting import EvaluationCounter
from assimilate.diffusion.denoiser import Denoiser, DenoiserFn, expand_to, sigma_per_sample
from assimilate.diffusion.flow import FlowDenoiser, TimeSampler, flow_loss, sample_flow_times
from assimilate.diffusion.loss import edm_loss, sample_training_sigmas
from assimilate.diffusion.noise import GaussianNoise, Noise, StudentTNoise, make_noise
from assimilate.diffusion.samplers import (
    Callback,
    Churn,
    Correction,
    Guidance,
    SubStep,
    prior_sample,
    sample_euler,
    sample_heun,
    sample_stochastic,
)
from assimilate.diffusion.schedules import flow_sigmas, karras_sigmas

__all__ = [
    "Callback",
    "Churn",
    "Correction",
    "Denoiser",
    "DenoiserFn",
    "EvaluationCounter",
    "FlowDenoiser",
    "GaussianNoise",
    "Guidance",
    "Noise",
    "StudentTNoise",
    "SubStep",
    "TimeSampler",
    "edm_loss",
    "expand_to",
    "flow_loss",
    "flow_sigmas",
    "karras_sigmas",
    "make_noise",
    "prior_sample",
    "sample_euler",
    "sample_flow_times",
    "sample_heun",
    "sample_stochastic",
    "sample_training_sigmas",
    "sigma_per_sample",
]
