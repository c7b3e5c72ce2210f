"""Training-time perturbations of a forecaster's conditioning history.

A forecaster trained only on clean states never learns to remove errors from its input,
yet in data assimilation every input is an imperfect analysis. ``perturb_history`` adds
noise of random amplitude and random spectral colour to the history of a random part of
each batch; the target stays the clean next state, so the model learns the contraction
back to the attractor that the physics performs ("Learning to Simulate Complex Physics
with Graph Networks", Sanchez-Gonzalez et al., arXiv 2002.09405; SCIENCE.md §6).
"""

from __future__ import annotations

import torch
from torch import Tensor

from assimilate.config import ConditioningNoise

__all__ = ["coloured_noise", "observation_marks", "perturb_history"]


def coloured_noise(shape: tuple[int, ...], slope: Tensor, generator: torch.Generator) -> Tensor:
    """Zero-mean noise of unit std per sample with power spectrum ∝ |k|^-slope.

    ``shape`` is ``(batch, channels, *space)`` with one or two periodic space dims;
    ``slope`` has shape ``(batch,)``: 0 is white noise, 2 is red (Brownian-like).
    """
    space = shape[2:]
    white = torch.randn(shape, generator=generator, device=generator.device)
    spectrum = torch.fft.rfftn(white, dim=tuple(range(2, len(shape))))
    frequencies = [torch.fft.fftfreq(n, 1.0 / n, device=white.device) for n in space[:-1]]
    frequencies.append(torch.fft.rfftfreq(space[-1], 1.0 / space[-1], device=white.device))
    grids = torch.meshgrid(*frequencies, indexing="ij")
    wavenumber = torch.sqrt(sum(grid**2 for grid in grids))
    wavenumber[(0,) * len(space)] = 1.0  # the mean mode is removed below
    amplitude = wavenumber ** (-0.5 * slope.reshape(-1, *(1,) * (len(shape) - 1)))
    amplitude[(slice(None), slice(None), *(0,) * len(space))] = 0.0
    noise = torch.fft.irfftn(spectrum * amplitude, s=space, dim=tuple(range(2, len(shape))))
    return noise / noise.flatten(2).std(dim=2).clamp_min(1e-12).reshape(*shape[:2], *(1,) * len(space))


MARK_STRIDES = (2, 4, 8, 16)
MARK_NOISE = 0.2


def observation_marks(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Random regular lattices ``(batch, 1, *space)`` (1 on a lattice point): each sample
    a stride from ``MARK_STRIDES`` (at most half the smallest dim) and a random offset."""
    space = shape[2:]
    allowed = torch.tensor([s for s in MARK_STRIDES if 2 * s <= min(space)] or [1],
                           device=generator.device)
    batch = shape[0]
    pick = torch.randint(len(allowed), (batch,), generator=generator, device=generator.device)
    stride = allowed[pick]
    marks = torch.ones((batch, 1, *space), device=generator.device)
    for axis, size in enumerate(space):
        offset = (torch.rand(batch, generator=generator, device=generator.device)
                  * stride).long()
        position = torch.arange(size, device=generator.device)
        on = ((position[None, :] - offset[:, None]) % stride[:, None] == 0).float()
        marks = marks * on.reshape(batch, 1, *(size if i == axis else 1
                                               for i in range(len(space))))
    return marks


def perturb_history(history: Tensor, settings: ConditioningNoise,
                    generator: torch.Generator) -> Tensor:
    """``history`` ``(batch, k, *space)`` (normalised) with noise on a random part of it.

    With ``settings.amplitude == 0`` the history is returned untouched and no random
    number is drawn, so training is exactly that of an unperturbed run.
    """
    if settings.amplitude == 0:
        return history
    batch, shape = history.shape[0], tuple(history.shape)
    uniform = torch.rand((3, batch), generator=generator, device=generator.device)
    chosen = (uniform[0] < settings.probability).to(history.dtype)
    amplitude = settings.amplitude * uniform[1] * chosen
    noise = coloured_noise(shape, settings.slope * uniform[2], generator)
    perturbation = amplitude.reshape(-1, *(1,) * (history.ndim - 1)) * noise.to(history.dtype)
    if settings.marks > 0:
        draws = torch.rand((2, batch), generator=generator, device=generator.device)
        marked = ((draws[0] < settings.marks).to(history.dtype) * chosen).reshape(
            -1, *(1,) * (history.ndim - 1))
        lattice = observation_marks(shape, generator) * marked
        error = MARK_NOISE * draws[1].reshape(-1, *(1,) * (history.ndim - 1)) * torch.randn(
            shape, generator=generator, device=generator.device)
        perturbation = perturbation * (1 - lattice) + error.to(history.dtype) * lattice
    return history + perturbation
