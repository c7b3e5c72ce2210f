"""What the ensemble Kalman filters share as DA methods: the update of every trajectory.

Each filter file holds its pure analysis function (JAX) and a method value deriving from
:class:`EnsembleFilter`; this module applies the analysis to the prior ensembles of every
observed trajectory at once (they share the step's operator; a value missing in one
trajectory reaches its analysis as NaN, so shapes stay static and a jitted analysis is
compiled once per observation count), then inflates and rotates on the analysis side
when asked.

Inflation multiplies the ensemble anomalies by ``inflation``: before the update
(``inflate="forecast"``, on E and HE, as Hunt et al. 2007 do) or after it
(``inflate="analysis"``, DAPPER's ``infl``). ``rotate`` turns the analysis anomalies by a
random mean-preserving rotation (DAPPER's ``rot=True``;
:func:`assimilate.da.methods.ensemble.mean_preserving_rotation`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import jax
import numpy as np
from pydantic import Field
from pydantic.dataclasses import dataclass

from assimilate.da.contract import Method, Observed, Problem, Tuning
from assimilate.da.methods.ensemble import post_process

__all__ = ["EnsembleFilter", "Inflate"]

Inflate = Literal["forecast", "analysis"]


@dataclass(frozen=True)
class EnsembleFilter(Method):
    """Base of EnKF, ETKF and LETKF: ``inflation`` on the ``inflate`` side, ``rotate``, on
    the true simulator (default) or the forecaster as ``model``."""

    tuning: ClassVar[Tuning | None] = Tuning("inflation", (1.0, 1.05, 1.1, 1.2, 1.4), "i")

    inflation: float = Field(1.02, ge=1, le=3)
    inflate: Inflate = "forecast"
    rotate: bool = False
    model: Literal["forecaster", "simulator"] = "simulator"

    def _analysis(self, ensembles: np.ndarray, observed: np.ndarray, y: np.ndarray,
                  error_std: np.ndarray, inflation: float, operator: Any,
                  problem: Problem, state: Any) -> jax.Array:
        """Analyses ``(T, N, n)`` of ensembles ``(T, N, n)`` with H(members) ``(T, N, m)``,
        observations ``y (T, m)`` (NaN: missing) and ``error_std (m,)``; ``inflation`` is
        the forecast-side factor (1.0 when inflating on the analysis side); ``state``: what
        :meth:`prepare` returned."""
        raise NotImplementedError

    def analyse(self, prior: np.ndarray, observed: Observed, problem: Problem,
                state: Any) -> np.ndarray:
        n_members, space = prior.shape[1], prior.shape[2:]
        if n_members < 2:
            raise ValueError(f"method '{self.name}' needs at least 2 members, got "
                             f"{n_members}")
        active = observed.mask.any(axis=1)  # nothing observed: no analysis, no inflation
        if not active.any():
            return prior
        grids = prior[active]  # (T, N, *space): the operator reads the grid
        values = np.where(observed.mask, observed.values, np.nan)[active]
        forecast_side = self.inflation if self.inflate == "forecast" else 1.0
        result = self._analysis(grids.reshape(len(grids), n_members, -1),
                                observed.operator.apply(grids), values.astype(prior.dtype),
                                np.asarray(observed.error_std, dtype=prior.dtype),
                                forecast_side, observed.operator, problem, state)
        if self.inflate == "analysis" or self.rotate:
            gaussian = problem.rng.standard_normal(
                (len(grids), n_members - 1, n_members - 1)).astype(prior.dtype) \
                if self.rotate else None
            result = post_process(result, self.inflation if self.inflate == "analysis" else 1.0,
                                  gaussian)
        analysis = prior.copy()
        analysis[active] = np.asarray(result).reshape(-1, n_members, *space)
        return analysis
