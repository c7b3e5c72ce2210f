"""Shared pieces of the methods that update states linearly in observation space."""

from __future__ import annotations

import numpy as np

from assimilate.da.contract import Observed

__all__ = ["linear_targets", "update_each", "valid"]


def linear_targets(operator, values: np.ndarray) -> np.ndarray:
    """Observations mapped back to the linear part of ``operator``: for the saturating map
    ``y = w / (1 + |w|)`` the inverse ``w = y / (1 - |y|)``, with ``|y|`` kept below 1."""
    if operator.is_linear:
        return values
    clipped = np.clip(values, -0.999, 0.999)
    return clipped / (1 - np.abs(clipped))


def valid(observed: Observed, trajectory: int):
    """``(operator, values, error_std)`` of the observations present for one trajectory."""
    mask = observed.mask[trajectory] & np.isfinite(observed.values[trajectory])
    operator = observed.operator.subset(mask)
    return operator, observed.values[trajectory][mask], observed.error_std[mask]


def update_each(prior: np.ndarray, observed: Observed, correction) -> np.ndarray:
    """The analysis ``(trajectory, member, *space)``: each trajectory's members ``(member,
    n_grid)`` plus ``correction(h, misfit, error_std)`` ``(member, n_grid)``, with ``h`` the
    operator's matrix and ``misfit`` the linearised innovations ``(member, n_obs)`` of the
    observations present; trajectories with none are left as they are."""
    analysis = prior.copy()
    for i in range(prior.shape[0]):
        operator, values, error_std = valid(observed, i)
        if operator.n_obs == 0:
            continue
        h = operator.matrix()
        flat = prior[i].reshape(prior.shape[1], -1).astype(np.float64)
        misfit = linear_targets(operator, values)[None] - flat @ h.T
        analysis[i] = (flat + correction(h, misfit, error_std)).reshape(prior.shape[1:])
    return analysis
