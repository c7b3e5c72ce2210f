"""Noise families for diffusion: Gaussian (EDM) and multivariate Student-t (t-EDM).

A noise family draws *standard* noise ``n`` of a given shape; the forward process is
``x_sigma = x_0 + sigma * n``. The first dimension is the batch: everything after it
(channels and space) belongs to one sample.

- Gaussian: ``n = z``, ``z ~ N(0, I)``.
- Student-t with ``nu`` degrees of freedom: ``n = z / sqrt(kappa)``, ``kappa ~ chi2_nu / nu``,
  with **one kappa per sample**, shared by all channels and pixels of that sample. This is
  the multivariate t of "Heavy-Tailed Diffusion Models" (Pandey et al., arXiv 2410.14171):
  each coordinate is marginally t(nu), and the coordinates of one sample are dependent
  (they share a scale), which is what makes whole fields extreme together.

``variance_factor`` is ``Var(n_i)``: 1 for Gaussian and ``nu / (nu - 2)`` for Student-t,
which is why ``nu > 2`` is required (the t-EDM preconditioning divides by it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["GaussianNoise", "Noise", "StudentTNoise", "make_noise"]


class Noise(Protocol):
    """What the denoiser, losses and samplers need from a noise family."""

    @property
    def variance_factor(self) -> float: ...

    def sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor: ...


def _resolve_device(
    device: torch.device | str | None, generator: torch.Generator | None
) -> torch.device | str | None:
    # A CUDA generator cannot draw CPU tensors, so default to where the generator lives.
    if device is None and generator is not None:
        return generator.device
    return device


@dataclass(frozen=True)
class GaussianNoise:
    """Standard normal noise ``n ~ N(0, I)`` (EDM, arXiv 2206.00364)."""

    @property
    def variance_factor(self) -> float:
        return 1.0

    def sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Draw ``n`` of ``shape`` ``(batch, *rest)``."""
        device = _resolve_device(device, generator)
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


@dataclass(frozen=True)
class StudentTNoise:
    """Multivariate Student-t noise ``n = z / sqrt(kappa)``, one ``kappa ~ chi2_nu/nu`` per sample.

    Reference: "Heavy-Tailed Diffusion Models" (Pandey et al., arXiv 2410.14171).
    ``nu`` must be finite and ``> 2`` so that the variance ``nu / (nu - 2)`` exists.
    """

    nu: float

    def __post_init__(self) -> None:
        nu = float(self.nu)
        if not math.isfinite(nu) or nu <= 2.0:
            raise ValueError(
                f"StudentTNoise: nu={self.nu!r} is not allowed; nu > 2 is required (finite "
                "variance nu/(nu-2)); use GaussianNoise (or make_noise(None)) for nu = inf"
            )
        object.__setattr__(self, "nu", nu)

    @property
    def variance_factor(self) -> float:
        return self.nu / (self.nu - 2.0)

    def sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Draw ``n`` of ``shape`` ``(batch, *rest)``; ``kappa`` is shared along ``rest``."""
        shape = tuple(shape)
        if len(shape) == 0:
            raise ValueError("StudentTNoise.sample: shape must have a batch dimension, got ()")
        device = _resolve_device(device, generator)
        z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        # chi2_nu = 2 * Gamma(nu / 2, 1); drawn after z so Gaussian and t share the z stream.
        chi2 = 2.0 * _standard_gamma(
            self.nu / 2.0, shape[0], generator=generator, device=z.device, dtype=z.dtype
        )
        kappa = chi2 / self.nu
        return z / kappa.sqrt().reshape((shape[0],) + (1,) * (len(shape) - 1))


def _standard_gamma(
    alpha: float,
    count: int,
    *,
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """Draw ``count`` values of Gamma(alpha, 1) for ``alpha >= 1``, shape ``(count,)``.

    Marsaglia & Tsang, "A Simple Method for Generating Gamma Variables" (ACM TOMS, 2000):
    with ``d = alpha - 1/3``, ``c = 1/sqrt(9 d)``, ``v = (1 + c x)^3``, ``x ~ N(0, 1)``,
    accept ``d v`` when ``ln u < x^2/2 + d - d v + d ln v``. Written out (rather than
    ``torch.distributions``) because it must honour an explicit ``generator``.
    """
    d = alpha - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(count, device=device, dtype=dtype)
    pending = torch.arange(count, device=device)
    while pending.numel() > 0:  # acceptance rate > 95 %, so this loops a few times
        x = torch.randn(pending.numel(), generator=generator, device=device, dtype=dtype)
        u = torch.rand(pending.numel(), generator=generator, device=device, dtype=dtype)
        v = (1.0 + c * x) ** 3
        log_v = torch.log(v.clamp_min(torch.finfo(dtype).tiny))
        accept = (v > 0) & (torch.log(u) < 0.5 * x**2 + d - d * v + d * log_v)
        out[pending[accept]] = d * v[accept]
        pending = pending[~accept]
    return out


def make_noise(nu: float | None) -> GaussianNoise | StudentTNoise:
    """The noise family for ``nu``: Gaussian for ``None`` or ``inf``, else Student-t(nu)."""
    if nu is None or nu == math.inf:
        return GaussianNoise()
    return StudentTNoise(float(nu))
