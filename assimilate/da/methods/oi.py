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

import dataclasses
import hashlib
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from pydantic.dataclasses import dataclass

from assimilate.da.contract import Method, Observed, Problem, Tuning
from assimilate.da.methods.linear import update_each

__all__ = ["OptimalInterpolation", "OptimalInterpolationState"]

MAX_GAINS = 32  # observation layouts whose gain is kept


@dataclasses.dataclass
class OptimalInterpolationState:
    """The climatology's covariance ``B`` ``(n_grid, n_grid)``, computed once per run, and
    the gains ``Kᵀ`` of the observation layouts met so far (the newest ``MAX_GAINS``)."""

    covariance: np.ndarray
    gains: dict[bytes, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class OptimalInterpolation(Method):
    """``scale``: background variance as a fraction of the climatological covariance."""

    name: ClassVar[str] = "oi"
    note: ClassVar[str] = ("updates every member with a scaled, homogenised climatological covariance (DAPPER's OptInterp: --members 1 --set scale=1)")
    tuning: ClassVar[Tuning] = Tuning("scale", (0.003, 0.01, 0.03, 0.1, 0.3), "s")
    scale: float = Field(0.1, gt=0, le=10)
    model: Literal["forecaster", "simulator"] = "simulator"

    def prepare(self, problem: Problem) -> OptimalInterpolationState:
        return OptimalInterpolationState(problem.climatology.covariance())

    def analyse(self, prior: np.ndarray, observed: Observed, problem: Problem,
                state: OptimalInterpolationState) -> np.ndarray:
        covariance, gains = state.covariance, state.gains

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
