"""The extreme-value analysis of one series: peaks over threshold and block maxima.

``extreme_values`` takes the series ``diagnose`` chose (dissipation, the spatial maximum or
the field itself; small, in memory) and returns the GPD fit of its declustered peaks over
threshold, the threshold-stability fits, the GEV of its block maxima (calendar blocks for
dated data, with return periods in years) and, on request, the GEV with a trend in
location (:mod:`assimilate.diagnostics.trend`) with its test and effective return levels.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from assimilate.diagnostics import calendar, extremes
from assimilate.diagnostics import trend as trend_model

if TYPE_CHECKING:
    from assimilate.diagnostics.diagnose import Layout

__all__ = ["INTERVAL", "STABILITY_QUANTILES", "extreme_values"]

# object dtype: Zarr v3 stores variable-length strings by its spec, fixed-width ones not
INTERVAL = np.array(["estimate", "lower", "upper"], dtype=object)


def _series_matrix(series: xr.DataArray, lay: Layout) -> np.ndarray:
    """``(realisation, time)`` values of a series (realisation dims flattened row-major)."""
    values = series.transpose(*lay.realisation, lay.time).values
    return values.reshape(-1, series.sizes[lay.time])


def extreme_values(series: xr.DataArray, lay: Layout, *, pot_quantile: float = 0.9,
                   run_length: int | None = None, block_steps: int | None = None,
                   block: str | None = None, return_periods: Sequence[float] | None = None,
                   confidence: float = 0.95, trend: bool = False,
                   covariate: xr.DataArray | None = None, trend_at: float | None = None,
                   source: str = "the data") -> tuple[xr.Dataset, dict]:
    """POT/GPD and block-maxima/GEV analysis of one series; ``(variables, attrs)``.

    A fit the data cannot support leaves a note in the attrs (and a warning) instead of
    failing the whole diagnosis; bad options (a calendar block on a plain time axis, a
    block longer than the record) raise.
    """
    name = str(series.name)
    x = _series_matrix(series, lay)
    coordinate = series[lay.time] if lay.time in series.coords else None
    step, units = calendar.time_step(coordinate)
    dated = units == "years"
    calendar.check_block(coordinate, block, source)
    if block is not None and block_steps is not None:
        raise ValueError("give a calendar block or a block length in steps, not both")
    blocks = calendar.blocks(series[lay.time], block or "year", source) \
        if dated and block_steps is None else None
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        raise ValueError(f"series '{name}' holds no finite values")
    run_length = run_length or extremes.decorrelation_steps(x)
    attrs = {"extremes_series": name, "pot_run_length": int(run_length),
             "pot_quantile": pot_quantile, "confidence": confidence, "time_units": units}
    out = xr.Dataset()
    threshold = float(np.quantile(finite, pot_quantile))
    duration = x.size * step
    rate = fit = gev = None
    try:
        peaks = extremes.peaks_over_threshold(x, threshold, run_length, step, name=name)
        times = series[lay.time].values[peaks.time_index] if lay.time in series.coords \
            else peaks.time_index * step
        out = out.assign(peak_value=("peak", peaks.values), peak_time=("peak", times),
                         peak_realisation=("peak", peaks.realisation),
                         pot_threshold=threshold, n_exceedances=peaks.n_exceedances,
                         n_clusters=peaks.n_clusters, cluster_rate=peaks.rate,
                         extremal_index=peaks.extremal_index)
        rate = peaks.rate
        fit = extremes.fit_gpd(peaks.values - threshold, confidence,
                               name=f"the cluster maxima of '{name}' above its "
                                    f"{pot_quantile} quantile")
        out["gpd_shape"] = ("interval", list(fit.parameters["shape"]))
        out["gpd_scale"] = ("interval", list(fit.parameters["scale"]))
    except ValueError as error:
        attrs["pot_note"] = str(error)
        warnings.warn(f"no GPD fit: {error}", stacklevel=2)
    out = out.merge(_threshold_stability(x, run_length, step, confidence, name))
    if blocks is not None:
        attrs["block_length"], attrs["block"] = blocks.period, blocks.block
        per_block = blocks.maxima(x)  # (realisation, block)
        covariates = calendar.decimal_years(xr.DataArray(blocks.start, dims="block"))
        what = f"'{name}' ({blocks.block} maxima)"
    else:
        if block_steps is None:
            block_steps = extremes.default_block_steps(run_length, x.shape[1], x.shape[0])
        if block_steps > x.shape[1]:
            raise ValueError(f"a block of {block_steps} steps is longer than the record of "
                             f"{source} ({x.shape[1]} steps); choose --block-steps <= "
                             f"{x.shape[1]}")
        attrs["block_length"], attrs["block"] = block_steps * step, f"{block_steps} steps"
        per_block = extremes.block_maxima(x, block_steps).reshape(x.shape[0], -1)
        covariates = (np.arange(per_block.shape[1]) + 0.5) * block_steps * step
        what = f"'{name}' (blocks of {block_steps} steps)"
    kept = np.isfinite(per_block)
    maxima = per_block[kept]
    try:
        out["block_maximum"] = ("block", maxima)
        gev = extremes.fit_gev(maxima, confidence, name=what)
        for key in ("shape", "location", "scale"):
            out[f"gev_{key}"] = ("interval", list(gev.parameters[key]))
    except ValueError as error:
        attrs["gev_note"] = str(error)
        warnings.warn(f"no GEV fit: {error}", stacklevel=2)
    if return_periods is None:
        if dated:
            return_periods = calendar.RETURN_PERIODS
        else:
            shortest = max(2.0 / rate if rate else 0.0, 2.0 * attrs["block_length"])
            return_periods = np.geomspace(shortest, max(10.0 * duration, 2 * shortest), 12)
    if trend:
        if covariate is not None:
            covariates = _block_covariate(covariate, series, lay, blocks, per_block.shape[1],
                                          block_steps, source)
            attrs["trend_covariate"] = str(covariate.name or "covariate")
        else:
            attrs["trend_covariate"] = "year" if dated else f"time ({units})"
        covariates = np.broadcast_to(covariates, per_block.shape)[kept]
        found, trend_attrs = _trend(maxima, covariates, confidence, what, trend_at,
                                    return_periods, attrs["block_length"], gev)
        out, attrs = out.merge(found), {**attrs, **trend_attrs}
    periods = np.asarray(return_periods, dtype=np.float64)
    out = out.assign_coords(return_period=("return_period", periods, {"units": units}),
                            interval=INTERVAL)
    if fit is not None:
        out["return_level"] = (("return_period", "interval"),
                               extremes.gpd_return_levels(fit, threshold, rate, periods))
    if gev is not None:
        out["gev_return_level"] = (("return_period", "interval"),
                                   extremes.gev_return_levels(gev, attrs["block_length"],
                                                              periods))
    return out, attrs


def _block_covariate(covariate: xr.DataArray, series: xr.DataArray, lay: Layout,
                     blocks: calendar.CalendarBlocks | None, n_blocks: int,
                     block_steps: int | None, source: str) -> np.ndarray:
    """A covariate series on the time axis, averaged over each block."""
    name = covariate.name or "covariate"
    if covariate.dims != (lay.time,):
        raise ValueError(f"covariate '{name}' must be a series along '{lay.time}' only, got "
                         f"dims {covariate.dims}")
    try:
        values = covariate.reindex({lay.time: series[lay.time].values}).values.astype(float) \
            if lay.time in covariate.coords else covariate.values.astype(float)
    except (ValueError, TypeError) as error:
        raise ValueError(f"covariate '{name}' does not fit the time axis of {source}: "
                         f"{error}") from None
    if values.shape != (series.sizes[lay.time],):
        raise ValueError(f"covariate '{name}' has {values.size} values, {source} has "
                         f"{series.sizes[lay.time]} times")
    if blocks is not None:
        means = [np.nanmean(values[blocks.index == j]) for j in range(n_blocks)]
    else:
        means = np.nanmean(values[: n_blocks * block_steps].reshape(n_blocks, -1), axis=1)
    means = np.asarray(means, dtype=np.float64)
    if not np.isfinite(means).all():
        raise ValueError(f"covariate '{name}' has no finite value in some block")
    return means


def _trend(maxima: np.ndarray, covariates: np.ndarray, confidence: float, what: str,
           trend_at: float | None, periods: Sequence[float], block_length: float,
           stationary: extremes.ExtremeValueFit | None) -> tuple[xr.Dataset, dict]:
    """The GEV with a linear trend in location, its test and effective return levels
    (``stationary``: the GEV already fitted to the same maxima, None if it failed)."""
    fit = trend_model.fit_gev_trend(maxima, covariates, confidence, name=what,
                                    stationary=stationary)
    at = float(covariates.max() if trend_at is None else trend_at)
    blocks_per_period = np.asarray(periods, dtype=np.float64) / block_length
    out = xr.Dataset({f"trend_gev_{key}": ("interval", list(fit.parameters[key]))
                      for key in ("location", "trend", "scale", "shape")})
    out["trend_likelihood_ratio"] = fit.likelihood_ratio
    out["trend_p_value"] = fit.p_value
    out["effective_return_level"] = (("return_period", "interval"),
                                     trend_model.effective_return_levels(fit, at,
                                                                      blocks_per_period))
    return out, {"trend_at": at}


STABILITY_QUANTILES = (0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)


def _threshold_stability(x: np.ndarray, run_length: int, step: float, confidence: float,
                         name: str) -> xr.Dataset:
    """GPD shape against the threshold: where the tail model holds, the estimate settles.

    The parameter-stability plot of Coles (2001, sec. 4.3.4); thresholds where the cluster
    maxima cannot support a fit are NaN.
    """
    finite = x[np.isfinite(x)]
    thresholds = np.quantile(finite, STABILITY_QUANTILES)
    shapes = np.full((len(thresholds), 3), np.nan)
    clusters = np.zeros(len(thresholds), dtype=np.int64)
    for i, threshold in enumerate(thresholds):
        with contextlib.suppress(ValueError):
            peaks = extremes.peaks_over_threshold(x, threshold, run_length, step, name=name)
            clusters[i] = peaks.n_clusters
            fit = extremes.fit_gpd(peaks.values - threshold, confidence,
                                   scale_interval=False)
            shapes[i] = fit.parameters["shape"]
    return xr.Dataset(
        {"stability_threshold": ("stability_quantile", thresholds),
         "stability_clusters": ("stability_quantile", clusters),
         "stability_shape": (("stability_quantile", "interval"), shapes)},
        coords={"stability_quantile": list(STABILITY_QUANTILES), "interval": INTERVAL})
