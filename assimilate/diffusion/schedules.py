"""Noise-level schedules: descending ``sigmas`` of shape ``(n_steps + 1,)`` ending with 0.

A sampler takes ``n_steps`` steps ``sigmas[i] -> sigmas[i + 1]``; the last one lands on
``sigma = 0`` (clean data).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["flow_sigmas", "karras_sigmas"]


def _check_steps(n_steps: int) -> None:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r} must be an integer >= 1")


def karras_sigmas(
    n_steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """The EDM schedule, shape ``(n_steps + 1,)``:

        sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
        i = 0..N-1,  sigma_N = 0.

    ``rho = 7`` concentrates steps at small sigma, where the ODE curves most.
    Reference: "Elucidating the Design Space of Diffusion-Based Generative Models"
    (Karras et al., arXiv 2206.00364), Eq. 5. With ``n_steps = 1`` it is ``[sigma_max, 0]``.
    """
    _check_steps(n_steps)
    if not (math.isfinite(sigma_max) and 0 < sigma_min < sigma_max):
        raise ValueError(
            f"karras_sigmas: need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min!r}, "
            f"sigma_max={sigma_max!r}"
        )
    if not (math.isfinite(rho) and rho > 0):
        raise ValueError(f"karras_sigmas: rho={rho!r} must be finite and > 0")
    ramp = torch.linspace(0.0, 1.0, n_steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(device=device, dtype=dtype)


def flow_sigmas(
    n_steps: int,
    t_start: float = 1.0 / 81.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Steps uniform in flow time ``t`` from ``t_start`` to 1, as ``sigma = (1 - t)/t``.

    Shape ``(n_steps + 1,)``, from ``sigma_max = (1 - t_start)/t_start`` (80 by default)
    down to 0; the usual Euler schedule of flow matching, expressed for the sigma-space
    samplers (see :mod:`assimilate.diffusion.flow`). ``t = 0`` itself is ``sigma = inf``,
    hence ``t_start`` in (0, 1).
    """
    _check_steps(n_steps)
    if not 0.0 < t_start < 1.0:
        raise ValueError(f"flow_sigmas: t_start={t_start!r} must lie in (0, 1)")
    t = torch.linspace(t_start, 1.0, n_steps + 1, dtype=torch.float64)
    sigmas = (1.0 - t) / t
    sigmas[-1] = 0.0  # exact, not a rounding residue
    return sigmas.to(device=device, dtype=dtype)
