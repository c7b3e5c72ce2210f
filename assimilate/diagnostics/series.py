"""The extreme-value analysis of one series: peaks over threshold and block maxima.

``extreme_values`` takes the series ``diagnose`` chose (dissipation, the spatial maximum or
the field itself; small, in memory) and returns the GPD fit of its declustered peaks over
threshold, the threshold-stability fits, the GEV of its block maxima (calendar blocks for
dated data, with return periods in years) and, on request, the GEV with a trend in
location (:mod:`assimilate.diagnostics.trend`) with its test and effective return levels.

Declustering. The runs method's run length is given (a duration such as ``2D``, a number of
time units, or none) or, by default, chosen from the data by the intervals estimator of the
extremal index (Ferro & Segers, "Inference for clusters of extreme values", J. R. Statist.
Soc. B 65, 2003): so that about theta N of the N exceedances head a cluster. For dated data
the inter-exceedance times are counted within years that begin in the month of fewest
exceedances (``calendar.exceedance_years``), so that the wait from one summer's heat to
the next is not taken for a gap between clusters. The attrs record the run length in
steps and in time, how it was chosen and the estimated extremal index; fewer than
``MIN_CLUSTERS_PER_YEAR`` clusters a year (dated data) warn and leave a ``pot_note``.

Seasons. With ``settings.season`` only that season's values are analysed (the others are
NaN: they neither exceed nor set the threshold); the GEV is fitted to each year's maximum
within the season (December with the next January and February); cluster rates stay per
calendar year, so return periods are in years.
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

__all__ = ["INTERVAL", "INTERVALS", "MIN_CLUSTERS_PER_YEAR", "STABILITY_QUANTILES",
           "extreme_values"]

# object dtype: Zarr v3 stores variable-length strings by its spec, fixed-width ones not
INTERVAL = np.array(["estimate", "lower", "upper"], dtype=object)
MIN_CLUSTERS_PER_YEAR = 2  # fewer, for dated data, and the declustering is suspect
INTERVALS = "intervals estimator (Ferro & Segers 2003)"  # the default run length's method


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
    coordinate = series[lay.time] if lay.time in series.coords else None
    x = _analysed(series, lay, settings, coordinate, source)
    step, units = calendar.time_step(coordinate)
    finite = x[np.isfinite(x)]
    attrs = {"extremes_series": name, "pot_quantile": settings.pot_quantile,
             "confidence": settings.confidence, "time_units": units,
             "season": settings.season or "all"}
    threshold = float(np.quantile(finite, settings.pot_quantile)) \
        if settings.pot_threshold is None else float(settings.pot_threshold)
    run_length = _run_length(x, threshold, settings.run_length, coordinate, source, attrs)
    out, fit, rate = _peaks_over_threshold(series, lay, x, threshold, run_length, settings,
                                           attrs)
    out = out.merge(_threshold_stability(x, run_length, step, settings.confidence, name))
    blocks = _Blocks.of(series, lay, x, settings.block, settings.season, source)
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
                                   extremes.gev_return_levels(gev, blocks.length, periods,
                                                              lower_bound=settings.lower_bound))
    return out, attrs


def _analysed(series: xr.DataArray, lay: Layout, settings: ExtremeSettings,
              coordinate: xr.DataArray | None, source: str) -> np.ndarray:
    """The ``(realisation, time)`` values analysed: NaN outside ``settings.season``."""
    calendar.check_block(coordinate, settings.block if isinstance(settings.block, str)
                         else None, source)
    calendar.check_season(coordinate, settings.season, source)
    x = _series_matrix(series, lay)
    if settings.season is not None:  # out of season: neither exceeds nor sets the threshold
        x = np.where(calendar.in_season(coordinate, settings.season), x, np.nan)
    if not np.isfinite(x).any():
        raise ValueError(f"series '{series.name}' holds no finite values"
                         + (f" in {settings.season}" if settings.season else ""))
    return x


def _run_length(x: np.ndarray, threshold: float, given: str | float | None,
                coordinate: xr.DataArray | None, source: str, attrs: dict) -> int:
    """The declustering run length in steps: ``given`` (a duration, a number of time
    units, none) or chosen by ``extremes.intervals_declustering``; recorded in ``attrs``
    with the extremal index estimated from the inter-exceedance times."""
    segments = None
    if coordinate is not None and calendar.is_calendar(coordinate):  # off-seasons apart
        segments = calendar.exceedance_years(calendar.month_count(coordinate), x > threshold)
    chosen, theta = extremes.intervals_declustering(x, threshold, segments)
    steps = calendar.run_length_steps(given, coordinate, source)
    method = INTERVALS if steps is None else "none" if steps == 0 else "given"
    steps = chosen if steps is None else steps
    attrs.update(pot_run_length=steps,
                 pot_run_length_time=calendar.describe_steps(steps, coordinate),
                 pot_run_length_method=method, extremal_index_estimate=theta)
    return steps


def _few_clusters(peaks: extremes.Peaks, units: str, attrs: dict) -> None:
    """Warn, and note in ``attrs``, where fewer than two clusters a year remain: the peaks
    are then a season's largest event, not independent extremes."""
    if units != "years" or peaks.rate >= MIN_CLUSTERS_PER_YEAR:
        return
    note = (f"{peaks.n_clusters} clusters in {peaks.duration:.4g} years ({peaks.rate:.2g} a "
            f"year) after declustering with a run length of {attrs['pot_run_length_time']} "
            f"({attrs['pot_run_length_method']}): fewer than {MIN_CLUSTERS_PER_YEAR} a year; "
            "give a shorter --run-length (e.g. 2D) or a --season")
    attrs["pot_note"] = note
    warnings.warn(note, stacklevel=4)


def _peaks_over_threshold(series: xr.DataArray, lay: Layout, x: np.ndarray, threshold: float,
                          run_length: int, settings: ExtremeSettings, attrs: dict
                          ) -> tuple[xr.Dataset, extremes.ExtremeValueFit | None, float | None]:
    """The declustered peaks above ``threshold`` and their GPD, with the cluster rate; a
    note in ``attrs`` where there is no fit."""
    name = str(series.name)
    step, units = calendar.time_step(series[lay.time] if lay.time in series.coords else None)
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
        _few_clusters(peaks, units, attrs)
        fit = extremes.fit_gpd(peaks.values - threshold, settings.confidence,
                               name=f"the cluster maxima of '{name}' above its "
                                    f"{settings.pot_quantile} quantile")
    except ValueError as error:
        attrs["pot_note"] = "; ".join(filter(None, (attrs.get("pot_note"), str(error))))
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
           season: str | None, source: str) -> _Blocks:
        """The block maxima; with a ``season``, that season's maximum of each year."""
        name = str(series.name)
        coordinate = series[lay.time] if lay.time in series.coords else None
        step, units = calendar.time_step(coordinate)
        if units == "years" and (block is None or isinstance(block, str)):
            blocks = calendar.blocks(series[lay.time], "season" if season else block or "year",
                                     source, season)
            per_block = blocks.maxima(x)  # (realisation, block)
            covariate = calendar.decimal_years(xr.DataArray(blocks.start, dims="block"))
            return cls(per_block, np.isfinite(per_block), blocks.period, blocks.block,
                       f"'{name}' ({blocks.block} maxima)", covariate, blocks, None)
        steps = int(block) if block is not None else \
            extremes.default_block_steps(extremes.decorrelation_steps(x), x.shape[1], x.shape[0])
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
