"""``oi``: optimal interpolation (3D-Var) with a climatological background covariance.

Each member is updated with the static gain of the climatology,

    x_a = x_f + K (y - H x_f),   K = s B H^T (s H B H^T + R)^{-1},

``B`` the circulant covariance of the climatology (homogeneous statistics on a periodic
domain, :meth:`assimilate.climatology.Climatology.covariance`), ``s`` a tuned scale (the
background error is smaller than the climatological variance once the run is
synchronised), ``R`` the observation error variances. The cheap classical reference: one
linear solve in observation space per step, no ensemble statistics. Saturating
observations are mapped back through the inverse map (no outer loop).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from pydantic.dataclasses import dataclass

from assimilate.da import Method, Observed, Problem
from assimilate.methods.linear import update_each

__all__ = ["OptimalInterpolation"]


@dataclass(frozen=True)
class OptimalInterpolation(Method):
    """``scale``: background variance as a fraction of the climatological covariance."""

    name: ClassVar[str] = "oi"
    scale: float = Field(0.1, gt=0, le=10)
    model: Literal["forecaster", "simulator"] = "simulator"

    def analyse(self, prior: np.ndarray, observed: Observed, problem: Problem) -> np.ndarray:
        covariance = _covariance(problem)

        def gain(h, misfit, error_std):  # K misfit, K = s B H^T (s H B H^T + R)^{-1}
            bh = self.scale * covariance @ h.T  # (n_grid, n_obs)
            innovation = h @ bh + np.diag(error_std.astype(np.float64) ** 2)
            return np.linalg.solve(innovation, misfit.T).T @ bh.T

        return update_each(prior, observed, gain)


def _covariance(problem: Problem) -> np.ndarray:
    """The climatology's covariance, computed once per problem."""
    if "oi_covariance" not in problem.cache:
        problem.cache["oi_covariance"] = problem.climatology.covariance()
    return problem.cache["oi_covariance"]
