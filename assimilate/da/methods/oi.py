"""``oi``: optimal interpolation (3D-Var) with a climatological background covariance.

Each member is updated with the static gain of the climatology,

    x_a = x_f + K (y - H x_f),   K = s B H^T (s H B H^T + R)^{-1},

``B`` the circulant covariance of the climatology (homogeneous statistics on a periodic
domain, :meth:`assimilate.da.climatology.Climatology.covariance`), ``s`` a tuned scale (the
background error is smaller than the climatological variance once the run is
synchronised), ``R`` the observation error variances. The cheap classical reference: no
ensemble statistics, and one gain per observation layout, computed the first time the
layout is met (a fixed network costs one linear solve per run). Saturating observations
are mapped back through the inverse map (no outer loop).

DAPPER's ``OptInterp`` is the same update of one state with ``s = 1`` and the sample
covariance of the truth; here every member is updated (from its own first background)
and ``B`` is homogenised (circulant), so ``--members 1 --set scale=1`` is DAPPER's method
up to that homogenisation.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from pydantic.dataclasses import dataclass

from assimilate.da.contract import Method, Observed, Problem
from assimilate.da.methods.linear import update_each

__all__ = ["OptimalInterpolation"]

MAX_GAINS = 32  # observation layouts whose gain is kept


@dataclass(frozen=True)
class OptimalInterpolation(Method):
    """``scale``: background variance as a fraction of the climatological covariance."""

    name: ClassVar[str] = "oi"
    scale: float = Field(0.1, gt=0, le=10)
    model: Literal["forecaster", "simulator"] = "simulator"

    def analyse(self, prior: np.ndarray, observed: Observed, problem: Problem) -> np.ndarray:
        covariance = _covariance(problem)
        gains = problem.cache.setdefault("oi_gains", {})

        def correction(h, misfit, error_std):  # K misfit, K = s B H^T (s H B H^T + R)^{-1}
            layout = hashlib.blake2b(h.tobytes() + error_std.tobytes()).digest()
            if layout not in gains:
                if len(gains) >= MAX_GAINS:  # an irregular network: keep the newest ones
                    gains.pop(next(iter(gains)))
                bh = self.scale * covariance @ h.T  # (n_grid, n_obs)
                innovation = h @ bh + np.diag(error_std.astype(np.float64) ** 2)
                gains[layout] = np.linalg.solve(innovation, bh.T)  # Kᵀ (n_obs, n_grid)
            return misfit @ gains[layout]

        return update_each(prior, observed, correction)


def _covariance(problem: Problem) -> np.ndarray:
    """The climatology's covariance, computed once per problem."""
    if "oi_covariance" not in problem.cache:
        problem.cache["oi_covariance"] = problem.climatology.covariance()
    return problem.cache["oi_covariance"]
