"""The kernel of the return-level maps: the extreme-value fits of every point of one chunk.

``fit_chunk`` is what ``gridded.fit_per_point`` applies to each space chunk with
``xarray.apply_ufunc`` (xclim's ``stats.fit`` pattern: one fit, applied point by point):
it takes the block maxima of all the chunk's points at once (``np.fmax.reduceat`` over
the runs of steps sharing a block), then fits each point on its own, with the fitter of
:mod:`assimilate.diagnostics.fitting`: a GEV of the block maxima and a GPD of the peaks
over the point's own threshold, both started from L-moments and given delta-method
intervals (on the log scale for scales and the GPD level's excess over the threshold),
the GEV levels' intervals from the likelihood profiled over the shape
(:mod:`assimilate.diagnostics.shape_profile`, above ``PointPlan.lower_bound`` on the log
scale), and with a
``PointPlan.trend_covariate`` the GEV with a trend in location.
Points whose fit is unsupported are NaN, never an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np
from scipy import stats

from assimilate.diagnostics.calendar import exceedance_years
from assimilate.diagnostics.extremes import intervals_declustering, peaks_over_threshold
from assimilate.diagnostics.fitting import (
    MIN_PEAKS,
    best_minimum,
    delta_intervals,
    gev_negative_log_likelihood,
    gev_quantile,
    gev_start,
    gpd_excess,
    gpd_negative_log_likelihood,
    gpd_start,
)
from assimilate.diagnostics.shape_profile import level_intervals
from assimilate.diagnostics.trend import MIN_TREND_BLOCKS, fit_gev_trend

__all__ = ["OUTPUTS", "TREND_OUTPUTS", "PointPlan", "fit_chunk"]

_PARAMETER, _LEVEL = ("interval",), ("return_period", "interval")
OUTPUTS = {
    "point_gev_location": _PARAMETER, "point_gev_scale": _PARAMETER,
    "point_gev_shape": _PARAMETER, "point_gev_return_level": _LEVEL,
    "point_gpd_threshold": (), "point_gpd_shape": _PARAMETER, "point_gpd_scale": _PARAMETER,
    "point_gpd_rate": (), "point_return_level": _LEVEL,
    "point_n_blocks": (), "point_n_clusters": (),
}
"""Output variables and their dims besides space (all float64)."""
TREND_OUTPUTS = {"point_gev_trend": (), "point_trend_p_value": ()}
"""With a trend: the GEV location's trend per year (or time unit) and its likelihood-ratio
p-value against the stationary GEV, at each point."""


@dataclasses.dataclass(frozen=True)
class PointPlan:
    """What every chunk needs besides its data, fixed before the graph is built."""

    run_starts: np.ndarray  # first step of each run of consecutive steps in one block
    kept: np.ndarray  # indices of the runs that are complete blocks
    block_probability: np.ndarray  # per return period: exceedance probability per block
    periods: np.ndarray  # years (calendar time) or time units
    step: float  # one time step, in the same units
    pot_quantile: float
    run_length: int | None  # steps (0: none); None: each point's own, at most max_run_length
    max_run_length: int
    width: float  # standard normal quantile of the two-sided interval
    trend_covariate: np.ndarray | None = None  # per kept block: its start in years (trend)
    lower_bound: float | None = None  # the variable's physical lower bound (0: rain), if any
    month_index: np.ndarray | None = None  # per step 12 year + month - 1 (calendar time)
    season_fraction: float = 1.0  # the analysed season's share of the steps (1: all year)

    @property
    def outputs(self) -> dict[str, tuple[str, ...]]:
        return OUTPUTS if self.trend_covariate is None else {**OUTPUTS, **TREND_OUTPUTS}


def fit_chunk(chunk: np.ndarray, plan: PointPlan, n_core: int) -> tuple[np.ndarray, ...]:
    """Fits at every point of ``chunk`` ``(*space, *realisation, time)``; one array per
    entry of ``plan.outputs``, of shape ``(*space, *its dims)``."""
    space = chunk.shape[: chunk.ndim - n_core]
    series = chunk.reshape(math.prod(space), -1, chunk.shape[-1])  # (point, realisation, time)
    sizes = {"interval": 3, "return_period": len(plan.periods)}
    out = {name: np.full((len(series), *(sizes[d] for d in dims)), np.nan)
           for name, dims in plan.outputs.items()}
    if series.size:
        maxima = np.fmax.reduceat(series, plan.run_starts, axis=-1)[..., plan.kept]
        covariate = None if plan.trend_covariate is None else \
            np.tile(plan.trend_covariate, series.shape[1])  # realisation-major, as maxima
        # overflow and inf - inf where the optimiser probes outside the support
        with np.errstate(all="ignore"):
            for i, (x, m) in enumerate(zip(series, maxima.reshape(len(series), -1),
                                           strict=True)):
                ok = np.isfinite(m)
                _fit_point(x.astype(np.float64), m[ok].astype(np.float64), plan, out, i)
                if covariate is not None:
                    _fit_trend(m[ok].astype(np.float64), covariate[ok], out, i)
    return tuple(out[name].reshape((*space, *out[name].shape[1:])) for name in plan.outputs)


def _fit_trend(maxima: np.ndarray, covariate: np.ndarray, out: dict, i: int) -> None:
    """The trend of one point's GEV location and its likelihood-ratio p-value (no
    intervals: a map of trends wants the estimate and its test, at a tenth of the cost)."""
    if len(maxima) < MIN_TREND_BLOCKS or np.ptp(maxima) == 0:
        return
    with contextlib.suppress(ValueError):
        fit = fit_gev_trend(maxima, covariate, intervals=False)
        out["point_gev_trend"][i], out["point_trend_p_value"][i] = \
            fit.estimate("trend"), fit.p_value


def _fit_point(x: np.ndarray, maxima: np.ndarray, plan: PointPlan, out: dict, i: int) -> None:
    """Write the fits of one point (``x`` its ``(realisation, time)`` series) into row i."""
    out["point_n_blocks"][i] = len(maxima)
    out["point_n_clusters"][i] = 0
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return
    gev = _gev(maxima, plan)
    if gev is not None:
        for name, row in zip(("location", "scale", "shape"), gev[0], strict=True):
            out[f"point_gev_{name}"][i] = row
        out["point_gev_return_level"][i] = gev[1]
    threshold = float(np.quantile(finite, plan.pot_quantile))
    out["point_gpd_threshold"][i] = threshold
    run_length = _run_length(x, threshold, plan) if plan.run_length is None \
        else plan.run_length
    try:
        peaks = peaks_over_threshold(x, threshold, run_length, plan.step)
    except ValueError:  # nothing exceeds the threshold
        return
    # observed time only; in-season time over the season's share of the year: rates per year
    duration = finite.size * plan.step / plan.season_fraction
    rate = peaks.n_clusters / duration
    out["point_n_clusters"][i], out["point_gpd_rate"][i] = peaks.n_clusters, rate
    gpd = _gpd(peaks.values - threshold, rate, duration, plan)
    if gpd is not None:
        out["point_gpd_shape"][i], out["point_gpd_scale"][i] = gpd[0]
        out["point_return_level"][i] = threshold + gpd[1]


def _run_length(x: np.ndarray, threshold: float, plan: PointPlan) -> int:
    """The point's own run length, chosen as the series' is: by the intervals estimator of
    its extremal index (Ferro & Segers 2003; ``extremes.intervals_declustering``), gaps
    counted within its exceedance years for calendar time; at most ``plan.max_run_length``.
    O(time steps) per point, against the fit's tens of likelihood evaluations."""
    segments = None if plan.month_index is None else \
        exceedance_years(plan.month_index, x > threshold)
    return min(intervals_declustering(x, threshold, segments)[0], plan.max_run_length)


def _gev(maxima: np.ndarray, plan: PointPlan) -> tuple[np.ndarray, np.ndarray] | None:
    """``(location, scale, shape) x (estimate, lower, upper)`` and ``(period, 3)`` levels;
    delta-method intervals, the scale's on the log scale, the levels' on the log scale of
    their height above ``plan.lower_bound`` where one is known."""
    if len(maxima) < MIN_PEAKS or np.ptp(maxima) == 0:
        return None
    centre, unit = maxima.mean(), maxima.std()
    z = (maxima - centre) / unit  # fitted standardised; location and scale mapped back

    def nll(p: np.ndarray) -> float:
        return gev_negative_log_likelihood(z, *p)

    theta = best_minimum(nll, gev_start(z), np.array([-0.45, 0.78, 0.0]))  # Gumbel moments
    if theta is None:
        return None
    parameters, _ = delta_intervals(nll, theta,
                                    lambda p: gev_quantile(p, plan.block_probability),
                                    plan.width, positive=(1,))
    # the levels' intervals from the likelihood profiled over the shape, above a known
    # lower bound L on log(z_T - L) (standardised units)
    floor = None if plan.lower_bound is None else (plan.lower_bound - centre) / unit
    levels = level_intervals(z, theta, (parameters[2, 2] - theta[2]) / plan.width,
                             plan.block_probability, 1.0 - 2.0 * stats.norm.sf(plan.width),
                             floor)
    parameters[:2] *= unit
    parameters[0] += centre
    return parameters, centre + unit * levels


def _gpd(excesses: np.ndarray, rate: float, duration: float,
         plan: PointPlan) -> tuple[np.ndarray, np.ndarray] | None:
    """``(shape, scale) x (estimate, lower, upper)`` and ``(period, 3)`` return levels
    above the threshold (x_T - u); delta-method intervals of the scale and of the excess
    x_T - u on the log scale, the cluster rate's Poisson spread included."""
    if len(excesses) < MIN_PEAKS or np.ptp(excesses) == 0:
        return None
    unit = excesses.mean()
    z = excesses / unit  # fitted in units of the mean excess

    def nll(p: np.ndarray) -> float:
        return gpd_negative_log_likelihood(z, p[0], p[1])

    theta = best_minimum(nll, gpd_start(z), np.array([0.0, 1.0]))  # exponential
    if theta is None:
        return None
    m = rate * plan.periods
    m = np.where(m > 1.0, m, np.nan)  # fewer than one cluster expected: no level above u
    # the cluster rate is estimated too: d x_T / d lambda = sigma T m^(xi - 1)
    rate_spread = theta[1] * plan.periods * m ** (theta[0] - 1.0) * math.sqrt(rate / duration)
    # the excess x_T - u > 0 on the log scale: never below the threshold
    parameters, levels = delta_intervals(nll, theta, lambda p: gpd_excess(p[0], p[1], m),
                                         plan.width, rate_spread, positive=(1,),
                                         level_floor=0.0)
    parameters[1] *= unit
    return parameters, unit * levels
