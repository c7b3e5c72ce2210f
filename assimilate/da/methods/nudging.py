"""``nudging``: Newtonian relaxation of the observed quantities toward the observations.

After each model step every member moves by ``alpha`` of the minimum-norm correction that
makes its observed values equal the observations,

    x_a = x_f + alpha H^T (H H^T)^{-1} (y - H x_f),

which for point observations replaces the observed grid values by ``(1 - alpha) x_f +
alpha y``: ``alpha = 1`` is direct insertion. The simplest classical DA; with the KS
simulator and every 8th point observed it synchronises with the truth (normalised RMSE
about 0.05). Saturating observations are first mapped back through the inverse map.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from pydantic.dataclasses import dataclass

from assimilate.da.contract import Method, Observed, Problem, Tuning
from assimilate.da.methods.linear import update_each

__all__ = ["Nudging"]


@dataclass(frozen=True)
class Nudging(Method):
    """``alpha``: relaxation strength in (0, 1]; ``model``: the dynamics."""

    name: ClassVar[str] = "nudging"
    tuning: ClassVar[Tuning] = Tuning("alpha", (0.25, 0.5, 1.0), "α")
    alpha: float = Field(1.0, gt=0, le=1)
    model: Literal["forecaster", "simulator"] = "forecaster"

    def analyse(self, prior: np.ndarray, observed: Observed, problem: Problem,
                state: None) -> np.ndarray:
        def insert(h, misfit, error_std):  # alpha H^T (H H^T)^{-1} misfit
            return self.alpha * np.linalg.solve(h @ h.T, misfit.T).T @ h

        return update_each(prior, observed, insert)
