"""Defaults of ``assimilate evaluate`` that depend on the physics, one entry per PDE.

Keyed by the descriptor's name (:mod:`pde.descriptor`); a new PDE adds its entry here.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

__all__ = ["DEFAULTS", "AssimilationDefaults", "EvaluationDefaults", "ForecastDefaults",
           "evaluation_defaults"]


@dataclasses.dataclass(frozen=True)
class ForecastDefaults:
    """Defaults of ``assimilate evaluate forecast``.

    ``steps``: forecast length in stored intervals. Nudging synchronisation: observations
    of noise ``nudging_noise`` (in climatological stds) on every ``nudging_stride``-th point
    along each spatial dim, inserted at every step; steps ``nudging_window`` scored.
    ``climatology_errors``: ``(result name, series)`` pairs, the series whose climatology
    (mean over all leads) is compared with the truth's as a relative error.
    """

    steps: int
    nudging_stride: int
    nudging_noise: float
    nudging_window: tuple[int, int]
    climatology_errors: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class AssimilationDefaults:
    """Defaults of ``assimilate evaluate da``.

    ``horizons``: the short and long evaluation horizons in stored intervals (those of
    "Control-Augmented Autoregressive Diffusion for Data Assimilation", arXiv 2510.06637);
    ``series``: the physical series whose run mean is scored against the truth's.
    """

    horizons: tuple[int, int]
    series: str


@dataclasses.dataclass(frozen=True)
class EvaluationDefaults:
    forecast: ForecastDefaults
    assimilation: AssimilationDefaults


DEFAULTS: Mapping[str, EvaluationDefaults] = types.MappingProxyType({
    "kuramoto_sivashinsky": EvaluationDefaults(
        # Regime 1's every 8th point.
        forecast=ForecastDefaults(steps=640, nudging_stride=8, nudging_noise=0.1,
                                  nudging_window=(100, 200),
                                  climatology_errors=(("tv_error", "total_variation"),)),
        assimilation=AssimilationDefaults(horizons=(140, 640), series="total_variation")),
    "kolmogorov": EvaluationDefaults(
        # Every 2nd point along each dim (1 in 4): with regime 1's sparser 1 in 16 (or 1 in
        # 8) points even the true simulator does not synchronise (normalised RMSE 1.10 /
        # 0.82 over steps 60-180; 1 in 4: 0.24), which would make the figure say nothing
        # about the model.
        forecast=ForecastDefaults(steps=180, nudging_stride=2, nudging_noise=0.1,
                                  nudging_window=(60, 180),
                                  climatology_errors=(("enstrophy_error", "enstrophy"),
                                                      ("dissipation_error", "dissipation"))),
        assimilation=AssimilationDefaults(horizons=(60, 180), series="dissipation")),
    "imported": EvaluationDefaults(
        # Imported data are hourly or coarser, cut into segments of a day or more: the
        # horizons are half a day and two days of hourly states (the harness tunes on 6).
        forecast=ForecastDefaults(steps=24, nudging_stride=2, nudging_noise=0.1,
                                  nudging_window=(6, 24),
                                  climatology_errors=(("mean_error", "area_mean"),)),
        assimilation=AssimilationDefaults(horizons=(12, 48), series="area_mean")),
})


def evaluation_defaults(pde: str) -> EvaluationDefaults:
    """The defaults of the PDE named ``pde``; a ``ValueError`` lists the known names."""
    if pde not in DEFAULTS:
        raise ValueError(f"no evaluation defaults for pde {pde!r}; known: "
                         f"{', '.join(DEFAULTS)}")
    return DEFAULTS[pde]
