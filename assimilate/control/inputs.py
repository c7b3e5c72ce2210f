"""What the controller sees at one forecast step, built the same way in training and in
data assimilation.

Observations enter on the model grid: each observation's value is spread over the grid
points it sums (weighted by |weight|; a point covered by several observations gets their
weighted mean), with a mask of the covered points. Everything is in the forecaster's
normalised units, so one controller serves any observation layout its operators can
describe:

- ``innovation`` (computed per sub-step, see :class:`StepObservations`): ``y − H(x̂)`` of
  the denoised estimate ``x̂`` of the state being generated, on the grid, with its mask;
- ``preview``: the raw observations of the next ``Λ − 1`` steps after it, on the grid,
  with their masks (nothing later: the controller is causal);
- ``features``: per sample, the observation noise (climatological stds), the observed
  fraction of the grid, the steps since the last observation and until the next one
  (both over ``Λ``), and whether the step being generated is observed;
- ``pooled`` (an ensemble-aware controller only, per sub-step, see
  :func:`ensemble_statistics`): statistics over the members of the sample's ensemble —
  the ensemble mean and spread of the denoised estimate, the mean innovation, the
  local gain ``s² / (s² + r²)`` at the observed points (spread s, noise r): what a Kalman
  gain is made of, and two ensemble-regression increments that carry each observation's
  information to the points between the observations as the ensemble's covariance says:
  ``δ_i = Σ_j ρ(i − j) cov(x_i, x_j) d_j / (s_j² + r²)`` over the observed points j (mean
  innovation d), with a Gaussian taper ρ of a narrow and a broad width (a sixteenth and a
  quarter of the domain): the mean update of a localised EnKF that assimilates each
  observation as if it were the only one. Each is a symmetric function of the members,
  and every other input is per member, so the controller is permutation-equivariant over
  members (members stay a batch, "Deep Sets", Zaheer et al., arXiv 1703.06114).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from assimilate.observe import Operator

__all__ = ["N_FEATURES", "N_POOLED", "ControlInputs", "GridPlacement", "StepObservations",
           "ensemble_statistics", "features_of", "preview_of", "regression_increment"]

N_FEATURES = 5
N_POOLED = 6
TAPER_WIDTHS = (1 / 16, 1 / 4)  # the increments' Gaussian taper stds, in domain lengths


class GridPlacement:
    """Spreads observation values ``(batch, n_obs)`` of one operator over the grid."""

    def __init__(self, operator: Operator, device: torch.device) -> None:
        self.space = operator.space
        self.n_grid = operator.n_grid
        self.index = torch.tensor(operator.indices.reshape(-1), device=device)
        self.weight = torch.tensor(np.abs(operator.weights), dtype=torch.float32,
                                      device=device)  # (n_obs, support)

    def __call__(self, values: torch.Tensor, mask: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(field, covered)``, both ``(batch, *space)``: the weighted mean of the present
        observations covering each point (0 elsewhere) and 1 where any does."""
        batch = values.shape[0]
        present = mask.to(values.dtype)
        weight = self.weight[None] * present[..., None]  # (batch, n_obs, support)
        total = values.new_zeros(batch, self.n_grid).index_add_(
            1, self.index, (weight * torch.where(mask, values, 0)[..., None]).reshape(batch, -1))
        count = values.new_zeros(batch, self.n_grid).index_add_(
            1, self.index, weight.reshape(batch, -1))
        covered = count > 0
        field = torch.where(covered, total / count.clamp_min(1e-12), 0)
        return field.reshape(batch, *self.space), covered.to(values.dtype).reshape(
            batch, *self.space)


@dataclass
class StepObservations:
    """The observations of one model step for a batch: physical ``values`` and ``mask``
    ``(batch, n_obs)`` of an ``operator`` on physical states, and the forecaster's
    normalisation (``mean``, ``std``) that puts them in the controller's units."""

    operator: Operator
    values: torch.Tensor
    mask: torch.Tensor
    noise: float
    """Mean observation-error std, in climatological (normalisation) stds."""
    mean: float
    std: float
    placement: GridPlacement

    @classmethod
    def for_members(cls, operator: Operator, values: np.ndarray, error_std: np.ndarray,
                    mask: np.ndarray, normalisation, n_members: int,
                    placement: GridPlacement) -> StepObservations:
        """One step's observations ``(trajectory, n_obs)`` repeated for every member
        (members of a trajectory together, as the DA loop batches them); NaN is missing."""
        device = placement.index.device
        values = torch.as_tensor(values, dtype=torch.float32, device=device)
        present = torch.as_tensor(mask, device=device) & torch.isfinite(values)
        values = torch.where(present, values, 0).repeat_interleave(n_members, dim=0)
        noise = float(np.mean(error_std)) / normalisation.std if len(error_std) else 0.0
        return cls(operator, values, present.repeat_interleave(n_members, dim=0), noise,
                   normalisation.mean, normalisation.std, placement)

    def on_grid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised observations on the grid and their mask."""
        return self.placement((self.values - self.mean) / self.std, self.mask)

    def innovation(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y − H(state)) / std`` on the grid, and its mask, for physical ``state``."""
        residual = (self.values - self.operator.apply(state)) / self.std
        return self.placement(torch.where(self.mask, residual, 0), self.mask)

    @property
    def fraction(self) -> float:
        """The share of grid points observed."""
        return float(np.unique(self.operator.indices).size) / self.operator.n_grid


@dataclass
class ControlInputs:
    """Everything the controller reads at one forecast step besides the sampler's state."""

    previous: torch.Tensor
    """The last normalised state ``(batch, *space)``."""
    current: StepObservations | None
    """The observations of the step being generated (None: not observed)."""
    preview: torch.Tensor
    """``(batch, 2 (Λ − 1), *space)``: the next steps' observations on the grid and masks."""
    features: torch.Tensor
    """``(batch, N_FEATURES)``."""
    noise: torch.Tensor | None = None
    """A stochastic controller's noise, drawn before the step: ``(sub_steps, batch, 1,
    *space)``."""
    members: int = 1
    """Members per ensemble: the batch is ``(ensemble, member)`` flattened, members of an
    ensemble adjacent (what the pooled statistics of an ensemble-aware controller pool)."""


def ensemble_statistics(estimate: torch.Tensor, innovation: torch.Tensor,
                        covered: torch.Tensor, noise: float, members: int) -> torch.Tensor:
    """``(batch, N_POOLED, *space)``: per sample, its ensemble's mean and spread of the
    normalised ``estimate`` ``(batch, *space)``, mean ``innovation``, the local gain at
    ``covered`` points for observation noise ``noise`` and the two regression increments
    (module doc), repeated for every member of the ensemble."""
    batch, space = estimate.shape[0], estimate.shape[1:]
    if members < 2 or batch % members:
        raise ValueError(f"an ensemble-aware controller needs ensembles of at least 2 "
                         f"members filling the batch; got {members} members in a batch of "
                         f"{batch}")
    grouped = estimate.reshape(batch // members, members, *space)
    mean = grouped.mean(1)
    spread = grouped.var(1).clamp_min(1e-12).sqrt()
    mean_innovation = innovation.reshape(grouped.shape).mean(1)
    observed = covered.reshape(grouped.shape)[:, 0]
    gain = spread**2 / (spread**2 + noise**2) * observed
    weight = mean_innovation * observed / (spread**2 + noise**2)  # d_j / (s_j² + r²)
    anomalies = grouped - mean[:, None]
    increments = [regression_increment(anomalies, weight, width) for width in TAPER_WIDTHS]
    pooled = torch.stack([mean, spread, mean_innovation, gain, *increments], dim=1)
    return pooled.repeat_interleave(members, dim=0)


def regression_increment(anomalies: torch.Tensor, weight: torch.Tensor, width: float
                         ) -> torch.Tensor:
    """``Σ_j ρ(i − j) cov(x_i, x_j) weight_j`` ``(ensembles, *space)`` from the members'
    ``anomalies`` ``(ensembles, members, *space)``: a periodic convolution with the
    Gaussian taper ρ of std ``width`` domain lengths per dim (ρ(0) = 1)."""
    space = tuple(anomalies.shape[2:])
    dims = tuple(range(-len(space), 0))
    taper = _taper_spectrum(space, width, anomalies.device, anomalies.dtype)
    spread_out = torch.fft.irfftn(torch.fft.rfftn(anomalies * weight[:, None], dim=dims)
                                  * taper, s=space, dim=dims)
    return (anomalies * spread_out).sum(1) / (anomalies.shape[1] - 1)


@functools.lru_cache(maxsize=16)
def _taper_spectrum(space: tuple[int, ...], width: float, device: torch.device,
                    dtype: torch.dtype) -> torch.Tensor:
    """The real FFT of the periodic Gaussian taper of :func:`regression_increment`, built
    once per grid (it is read twice in every sub-step)."""
    taper = torch.ones((), device=device, dtype=dtype)
    for axis, n in enumerate(space):
        offset = torch.arange(n, device=device, dtype=dtype)
        offset = torch.minimum(offset, n - offset) / (width * n)
        shape = [1] * len(space)
        shape[axis] = n
        taper = taper * torch.exp(-0.5 * offset**2).reshape(shape)
    return torch.fft.rfftn(taper, dim=tuple(range(-len(space), 0)))


def features_of(current: StepObservations | None, upcoming: list[StepObservations | None],
                since: int, lookahead: int, batch: int, device: torch.device) -> torch.Tensor:
    """The per-sample regime features (module doc) of one forecast step."""
    known = [obs for obs in [current, *upcoming] if obs is not None]
    noise = known[0].noise if known else 0.0
    fraction = known[0].fraction if known else 0.0
    until = next((j for j, obs in enumerate([current, *upcoming]) if obs is not None),
                 lookahead)
    values = [noise, fraction, min(since, lookahead) / lookahead, until / lookahead,
              float(current is not None)]
    return torch.tensor(values, dtype=torch.float32, device=device).expand(batch, N_FEATURES)


def preview_of(upcoming: list[StepObservations | None], like: torch.Tensor) -> torch.Tensor:
    """``(batch, 2 len(upcoming), *space)``: each upcoming step's grid values, then masks."""
    fields, masks = [], []
    for obs in upcoming:
        if obs is None:
            fields.append(torch.zeros_like(like))
            masks.append(torch.zeros_like(like))
        else:
            field, covered = obs.on_grid()
            fields.append(field)
            masks.append(covered)
    if not fields:
        return like.new_zeros(like.shape[0], 0, *like.shape[1:])
    return torch.stack(fields + masks, dim=1)
