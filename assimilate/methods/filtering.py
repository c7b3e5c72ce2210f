"""What the ensemble Kalman filters share as DA methods: the per-trajectory update.

Each filter file holds its pure analysis function (JAX) and a method value deriving from
:class:`EnsembleFilter`; this module applies the analysis to the prior ensemble of every
trajectory with its own observations. Missing observations reach the analysis as NaN, so
shapes stay static and a jitted analysis is compiled once per observation count.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from assimilate.da import Method, Observed, Problem

__all__ = ["EnsembleFilter", "grid_locations"]


def grid_locations(problem: Problem) -> np.ndarray:
    """``(n_grid, d)`` physical positions of the flattened grid, dims in grid order."""
    mesh = np.meshgrid(*problem.coordinates.values(), indexing="ij")
    return np.stack([axis.ravel() for axis in mesh], axis=-1)


class EnsembleFilter(Method):
    """Base of EnKF, ETKF and LETKF: ``inflation`` multiplies the forecast anomalies."""

    inflation: float
    model: str

    def _analysis(self, ensemble: jax.Array, observed: jax.Array, y: jax.Array,
                  error_std: jax.Array, operator: Any, problem: Problem) -> jax.Array:
        raise NotImplementedError

    def analyse(self, prior: np.ndarray, observed: Observed, problem: Problem) -> np.ndarray:
        if prior.shape[1] < 2:
            raise ValueError(f"method '{self.name}' needs at least 2 members, got "
                             f"{prior.shape[1]}")
        operator = observed.operator
        analysis = prior.copy()
        for i in range(prior.shape[0]):
            if not observed.mask[i].any():  # nothing observed: no analysis, so no inflation
                continue
            grid = jnp.asarray(prior[i])  # (member, *space): the operator reads the grid
            members = grid.reshape(prior.shape[1], -1)
            values = np.where(observed.mask[i], observed.values[i], np.nan)
            result = self._analysis(members, operator.apply(grid), jnp.asarray(values),
                                    jnp.asarray(observed.error_std, dtype=members.dtype),
                                    operator, problem)
            analysis[i] = np.asarray(result).reshape(prior.shape[1:])
        return analysis
