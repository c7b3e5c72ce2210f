"""Shared pieces of the methods that update states linearly in observation space."""

from __future__ import annotations

import numpy as np

from assimilate.da import Observed

__all__ = ["linear_targets", "valid"]


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
