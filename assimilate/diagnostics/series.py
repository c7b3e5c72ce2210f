"""The extreme-value analysis of one series: peaks over threshold and block maxima.

``extreme_values`` takes the series ``diagnose`` chose (dissipation, the spatial maximum or
the field itself; small, in memory) and returns the GPD fit of its declustered peaks over
threshold, the threshold-stability fits, the GEV of its block maxima (calendar blocks for
dated data, with return periods in years) and, on request, the GEV with a trend in
location (:mod:`assimilate.diagnostics.trend`) with its test and effective return levels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from assimilate.diagnostics import calendar, extremes
from assimilate.diagnostics import trend as trend_model
from assimilate.diagnostics.settings import ExtremeSettings

if TYPE_CHECKING:
    from assimilate.diagnostics.layout import Layout

__all__ = ["INTERVAL", "STABILITY_QUANTILES", "extreme_values"]

# object dtype: Zarr v3 stores variable-length strings by its spec, fixed-width ones not
INTERVAL = np.array(["estimate", "lower", "upper"], dtype=object)


def _series_matrix(series: xr.DataArray, lay: Layout) -> np.ndarray:
    """``(realisation, time)`` values of a series (realisation dims flattened row-major)."""
    values = series.transpose(*lay.realisation, lay.time).values
    return values.reshape(-1, series.sizes[lay.time])


def extreme_values(series: xr.DataArray, lay: Layout, settings: ExtremeSettings, *,
                   covariate: xr.DataArray | None = None,
                   source: str = "the data") -> tuple[xr.Dataset, dict]:
    """POT/GPD and block-maxima/GEV analysis of one series; ``(variables, attrs)``.

    ``covariate`` (a series along time) replaces time as what the GEV location follows
    when ``settings.trend``. A fit the data cannot support leaves a note in the attrs (and
    a warning) instead of failing the whole diagnosis; bad options (a calendar block on a
    plain time axis, a block longer than the record) raise.
    """
    name = str(series.name)
    x = _series_matrix(series, lay)
    coordinate = series[lay.time] if lay.time in series.coords else None
    step, units = calendar.time_step(coordinate)
    calendar_block = settings.block if isinstance(settings.block, str) else None
    calendar.check_block(coordinate, calendar_block, source)
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        raise ValueError(f"series '{name}' holds no finite values")
    run_length = settings.run_length or extremes.decorrelation_steps(x)
    attrs = {"extremes_series": name, "pot_run_length": int(run_length),
             "pot_quantile": settings.pot_quantile, "confidence": settings.confidence,
             "time_units": units}
    threshold = float(np.quantile(finite, settings.pot_quantile))
    out, fit, rate = _peaks_over_threshold(series, lay, x, threshold, run_length, settings,
                                           attrs)
    out = out.merge(_threshold_stability(x, run_length, step, settings.confidence, name))
    blocks = _Blocks.of(series, lay, x, settings.block, run_length, source)
    attrs["block_length"], attrs["block"] = blocks.length, blocks.name
    maxima = blocks.maxima[blocks.kept]
    out["block_maximum"] = ("block", maxima)
    gev = _gev(maxima, settings.confidence, blocks.what, attrs)
    if gev is not None:
        for key in ("shape", "location", "scale"):
            out[f"gev_{key}"] = ("interval", list(gev.parameters[key]))
    periods = _return_periods(settings.return_periods, units == "years", rate,
                              blocks.length, x.size * step)
    if settings.trend:
        found, trend_attrs = _trend_of_blocks(blocks, series, lay, covariate, settings, periods,
                                              gev, source, units)
        out, attrs = out.merge(found), {**attrs, **trend_attrs}
    out = out.assign_coords(return_period=("return_period", periods, {"units": units}),
                            interval=INTERVAL)
    if fit is not None:
        out["return_level"] = (("return_period", "interval"),
                               extremes.gpd_return_levels(fit, threshold, rate, periods))
    if gev is not None:
        out["gev_return_level"] = (("return_period", "interval"),
                                   extremes.gev_return_levels(gev, blocks.length, periods))
    return out, attrs


def _peaks_over_threshold(series: xr.DataArray, lay: Layout, x: np.ndarray, threshold: float,
                          run_length: int, settings: ExtremeSettings, attrs: dict
                          ) -> tuple[xr.Dataset, extremes.ExtremeValueFit | None, float | None]:
    """The declustered peaks above ``threshold`` and their GPD, with the cluster rate; a
    note in ``attrs`` where there is no fit."""
    name = str(series.name)
    step, _ = calendar.time_step(series[lay.time] if lay.time in series.coords else None)
    out, rate = xr.Dataset(), None
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
        fit = extremes.fit_gpd(peaks.values - threshold, settings.confidence,
                               name=f"the cluster maxima of '{name}' above its "
                                    f"{settings.pot_quantile} quantile")
    except ValueError as error:
        attrs["pot_note"] = str(error)
        warnings.warn(f"no GPD fit: {error}", stacklevel=3)
        return out, None, rate
    out["gpd_shape"] = ("interval", list(fit.parameters["shape"]))
    out["gpd_scale"] = ("interval", list(fit.parameters["scale"]))
    return out, fit, rate


def _gev(maxima: np.ndarray, confidence: float, what: str,
         attrs: dict) -> extremes.ExtremeValueFit | None:
    try:
        return extremes.fit_gev(maxima, confidence, name=what)
    except ValueError as error:
        attrs["gev_note"] = str(error)
        warnings.warn(f"no GEV fit: {error}", stacklevel=3)
        return None


def _return_periods(periods: Sequence[float] | None, dated: bool, rate: float | None,
                    block_length: float, duration: float) -> np.ndarray:
    """The periods asked for, or by default: years for dated data, else twelve from the
    shorter of two clusters and two blocks to ten times the record."""
    if periods is None:
        if dated:
            periods = calendar.RETURN_PERIODS
        else:
            shortest = max(2.0 / rate if rate else 0.0, 2.0 * block_length)
            periods = np.geomspace(shortest, max(10.0 * duration, 2 * shortest), 12)
    return np.asarray(periods, dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class _Blocks:
    """The block maxima of a series ``(realisation, block)``, NaN-free where ``kept``."""

    maxima: np.ndarray
    kept: np.ndarray
    length: float  # in time units (years for calendar blocks)
    name: str
    what: str  # the maxima, in words
    covariate: np.ndarray  # per block: its start in years, or its middle in time units
    calendar_blocks: calendar.CalendarBlocks | None
    steps: int | None

    @classmethod
    def of(cls, series: xr.DataArray, lay: Layout, x: np.ndarray, block: str | int | None,
           run_length: int, source: str) -> _Blocks:
        name = str(series.name)
        coordinate = series[lay.time] if lay.time in series.coords else None
        step, units = calendar.time_step(coordinate)
        if units == "years" and (block is None or isinstance(block, str)):
            blocks = calendar.blocks(series[lay.time], block or "year", source)
            per_block = blocks.maxima(x)  # (realisation, block)
            covariate = calendar.decimal_years(xr.DataArray(blocks.start, dims="block"))
            return cls(per_block, np.isfinite(per_block), blocks.period, blocks.block,
                       f"'{name}' ({blocks.block} maxima)", covariate, blocks, None)
        steps = int(block) if block is not None else \
            extremes.default_block_steps(run_length, x.shape[1], x.shape[0])
        if steps > x.shape[1]:
            raise ValueError(f"a block of {steps} steps is longer than the record of "
                             f"{source} ({x.shape[1]} steps); choose --block-steps <= "
                             f"{x.shape[1]}")
        per_block = extremes.block_maxima(x, steps).reshape(x.shape[0], -1)
        covariate = (np.arange(per_block.shape[1]) + 0.5) * steps * step
        return cls(per_block, np.isfinite(per_block), steps * step, f"{steps} steps",
                   f"'{name}' (blocks of {steps} steps)", covariate, None, steps)


def _trend_of_blocks(blocks: _Blocks, series: xr.DataArray, lay: Layout,
                     covariate: xr.DataArray | None, settings: ExtremeSettings,
                     periods: np.ndarray, gev: extremes.ExtremeValueFit | None, source: str,
                     units: str) -> tuple[xr.Dataset, dict]:
    """The trend fit against the covariate (or time), one value per kept block maximum."""
    if covariate is not None:
        covariates = _block_covariate(covariate, series, lay, blocks.calendar_blocks,
                                      blocks.maxima.shape[1], blocks.steps, source)
        label = str(covariate.name or "covariate")
    else:
        covariates = blocks.covariate
        label = "year" if units == "years" else f"time ({units})"
    covariates = np.broadcast_to(covariates, blocks.maxima.shape)[blocks.kept]
    found, attrs = _trend(blocks.maxima[blocks.kept], covariates, settings, blocks.what,
                          periods, blocks.length, gev)
    return found, {"trend_covariate": label, **attrs}


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


def _trend(maxima: np.ndarray, covariates: np.ndarray, settings: ExtremeSettings,
           what: str, periods: np.ndarray, block_length: float,
           stationary: extremes.ExtremeValueFit | None) -> tuple[xr.Dataset, dict]:
    """The GEV with a linear trend in location, its test and effective return levels
    (``stationary``: the GEV already fitted to the same maxima, None if it failed)."""
    fit = trend_model.fit_gev_trend(maxima, covariates, settings.confidence, name=what,
                                    stationary=stationary)
    at = float(covariates.max() if settings.trend_at is None else settings.trend_at)
    blocks_per_period = periods / block_length
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
