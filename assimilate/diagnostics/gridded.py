"""Extreme-value fits at every grid point of a field, lazily with Dask: return-level maps.

``fit_per_point(field, MapSettings(), space=("lat", "lon"))`` fits, separately at each
point, a GEV to the block maxima (calendar blocks for a dated time axis, ``block`` steps
otherwise) and a GPD to the declustered peaks over the point's own ``pot_quantile``
threshold, and returns the parameters and return levels as maps (see ``fitting`` for the
models and notation).
Realisation dims (all dims besides time and space: members, trajectories) are pooled as
independent copies of the point's record.

Design. The field is rechunked so that time and the realisation dims are whole and space
is cut into chunks of about ``chunk_bytes`` (32 MiB); ``xarray.apply_ufunc`` (``dask=
"parallelized"``) then runs one NumPy kernel per space chunk (``pointwise.fit_chunk``),
which takes the block maxima of all its points at once and fits the points one by one. A task holds one input chunk, one point's series
in float64 and a few floats per point, so memory is bounded by the chunk size whatever
the size of the field; nothing is computed until the result is. Everything the kernel
needs besides the data (block boundaries, return periods) is fixed before the graph is
built, from the time coordinate alone; the one exception is a plain numeric time axis
without ``block``: the default block (``extremes.default_block_steps``, as in
``diagnose``) is then estimated from the first steps of a few points (a small read; pass
``block`` to avoid it).

Fits. The maximum-likelihood fits minimise the negative log-likelihoods of
:mod:`assimilate.diagnostics.fitting` (the fitter of the series fits too) on standardised
data, started from L-moment estimates (Hosking,
Wallis & Wood, "Estimation of the generalized extreme-value distribution by the method
of probability-weighted moments", Technometrics 27, 1985), which are closed-form and
usually within the basin of the maximum. Intervals are delta-method intervals with the
observed information (Coles 2001, sec. 3.3.3 and 4.3.3): the central-difference Hessian
of the negative log-likelihood at the optimum (``fitting.hessian``), inverted
(``fitting.covariance``), gives a normal interval for each parameter, and the gradient
of a return level gives its interval. POT return levels add the Poisson variance of the
cluster rate, var(lambda) = lambda / duration (Coles' binomial zeta_u). Profile-likelihood
intervals, which ``fit_gev``/``fit_gpd`` give one series, cost a constrained optimisation
per bound and parameter (some twenty fits per point): too slow for thousands of points,
and the delta method is the usual choice for maps. Plain delta intervals are symmetric
and cross the support (negative 100-year rain at 33 of the example's 512 points), so
positive quantities are taken on the log scale (``fitting.delta_bounds``): the scales
(log sigma), the POT level's excess over the threshold, e_T = x_T - u, and, with
``lower_bound`` L (0 for rain; ``diagnose`` passes 0 when no analysed value is
negative), the GEV level's height z_T - L, each as d exp(-+w se(d) / d), at no extra
cost. The GEV levels of some thirty maxima need more: their delta intervals, on the log
scale or not, cover the truth 0.82-0.84 of the time where 0.9 is asked, missing above the
upper bound, because the likelihood of a long level is skewed by the shape. Their intervals
come from the likelihood profiled over the shape, quadratic in location and scale at each
shape (:mod:`assimilate.diagnostics.shape_profile`; above L on log(z_T - L) when L is
known): 0.88-0.90 at 20 and 100 years on the same records, for about 45 ms more a point
(every period at once), where the full profile costs ~200 ms a point and period.
Measured on 300 points of 30 years of iid daily rain with known levels (65 % dry, wet
days 1 mm plus a GPD excess, shape 0.1; ``tests/diagnostics/test_point_intervals.py``),
90 % intervals cover the truth at: GPD 0.87-0.89 (20 years) and 0.86-0.89 (100 years);
GEV 0.90 and 0.88. Points whose fit
is unsupported (fewer than ``fitting.MIN_PEAKS`` maxima or clusters, all-NaN points such
as ocean in a land field, equal values, an optimiser that fails) are NaN, never an error;
``count_unfitted`` counts them by cause. A point whose likelihood is not smooth at the
fit (a bounded tail ending at the sample maximum) keeps its estimates without intervals.

Against a loop of ``scipy.stats.genextreme.fit`` and ``genpareto.fit``: the same maxima
(our likelihood was at least scipy's at all 256 points of the benchmark), with intervals,
in about half the CPU time per point (measured: 10 ms against 19 ms for scipy's two fits
alone, 30 years of daily data), and the kernel spreads over Dask workers and streams
fields larger than memory (``benchmarks/diagnostics.py --sections gridded``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy import stats

from assimilate.diagnostics import calendar
from assimilate.diagnostics.extremes import decorrelation_steps, default_block_steps
from assimilate.diagnostics.fitting import MIN_PEAKS
from assimilate.diagnostics.pointwise import PointPlan, fit_chunk
from assimilate.diagnostics.series import INTERVAL, INTERVALS
from assimilate.diagnostics.settings import ExtremeSettings, MapSettings

__all__ = [
    "CHUNK_BYTES",
    "SIGNIFICANCE",
    "count_unfitted",
    "fit_per_point",
    "trend_tests",
]

CHUNK_BYTES = 32 * 2**20  # input bytes per space chunk
PRE_PASS_POINTS, PRE_PASS_STEPS = 16, 4096
SIGNIFICANCE = 0.05  # the level at which per-point trend tests are counted


# --- the graph -----------------------------------------------------------------------------


def fit_per_point(field: xr.DataArray, settings: ExtremeSettings | None = None, *,
                  time: str = "time", space: Sequence[str], source: str = "the data",
                  chunk_bytes: int = CHUNK_BYTES,
                  lower_bound: float | None = None) -> xr.Dataset:
    """GEV and GPD fits at every point of ``field`` (dims ``time``, ``space`` and any
    realisation dims, in any order), lazy.

    ``settings.block``: ``"year"`` (default), ``"season"`` or ``"month"`` for a calendar time
    axis, a number of steps otherwise (default ``extremes.default_block_steps`` of a sample
    of points, the same for all points).
    Return periods are in years for calendar time, else in the time coordinate's units;
    a block's exceedance probability is its length over the period. ``run_length``
    declusters the peaks (a duration such as ``"2D"`` for calendar time, time units
    otherwise, ``"none"``; default: each point's own, chosen as the series' is by the
    intervals estimator of its extremal index, Ferro & Segers 2003, at most a quarter
    block: it costs O(time steps) a point). ``season`` (calendar time) fits each year's
    maximum within that season and the peaks within it, rates still per year. ``trend``
    adds ``pointwise.TREND_OUTPUTS``: a GEV whose location moves linearly
    with time (years for calendar time) at each point, its trend and the likelihood-ratio
    test's p-value (about 0.03 s more per point). Returns the variables of
    ``pointwise.OUTPUTS`` with dims ``(*space, interval)``, ``(return_period, *space,
    interval)`` or ``space``, backed by Dask; see the module docstring for the method.
    ``settings`` default to ``MapSettings()``. ``lower_bound``: the variable's physical
    lower bound (0 for precipitation), which the GEV levels' intervals then respect.
    """
    settings = settings or MapSettings()
    realisation = _check(field, time, space, settings, source)
    if settings.season is not None:  # out of season: NaN, as in the series analysis
        calendar.check_season(field[time] if time in field.coords else None, settings.season,
                              source)
        field = field.where(xr.DataArray(calendar.in_season(field[time], settings.season),
                                         dims=time))
    plan, units, label, block_length = _plan(field, time, space, realisation, settings, source)
    plan = dataclasses.replace(plan, lower_bound=None if lower_bound is None
                               else float(lower_bound))
    data = _rechunked(field.transpose(*space, *realisation, time), len(space), chunk_bytes)
    core = [*realisation, time]
    results = xr.apply_ufunc(
        fit_chunk, data, input_core_dims=[core],
        output_core_dims=list(plan.outputs.values()),
        kwargs={"plan": plan, "n_core": len(core)}, dask="parallelized",
        output_dtypes=[np.float64] * len(plan.outputs),
        dask_gufunc_kwargs={"output_sizes": {"interval": 3,
                                             "return_period": len(plan.periods)}})
    out = xr.Dataset(dict(zip(plan.outputs, results, strict=True)))
    out = _described(out, field, space, plan, units)
    out.attrs = {"point_block": label, "point_block_length": block_length,
                 "point_confidence": settings.confidence,
                 "point_pot_quantile": settings.pot_quantile,
                 **_declustering_attrs(plan, field[time] if time in field.coords else None),
                 "point_season": settings.season or "all",
                 "point_interval_method": _interval_method(lower_bound),
                 "point_time_units": units,
                 "point_realisation_dims": ", ".join(map(str, realisation)),
                 **({} if lower_bound is None else {"point_lower_bound": float(lower_bound)})}
    return out


def _interval_method(lower_bound: float | None) -> str:
    """The ``point_interval_method`` attribute: what was taken on the log scale."""
    above = "" if lower_bound is None else f", on log scale above {lower_bound:g}"
    return ("delta method on log scale (scales, GPD excess); GEV levels profiled over the "
            f"shape{above}")


def _declustering_attrs(plan: PointPlan, coordinate: xr.DataArray | None) -> dict:
    """How the peaks were declustered: the run length in steps and in time, and how it was
    chosen (each point's own, under a cap, by default)."""
    steps = plan.run_length
    if steps is None:
        return {"point_run_length": f"each point's own, at most {plan.max_run_length} steps",
                "point_run_length_time": "at most " + calendar.describe_steps(
                    plan.max_run_length, coordinate),
                "point_run_length_method": INTERVALS}
    return {"point_run_length": steps,
            "point_run_length_time": calendar.describe_steps(steps, coordinate),
            "point_run_length_method": "none" if steps == 0 else "given"}


def _plan(field: xr.DataArray, time: str, space: Sequence[str], realisation: tuple[str, ...],
          settings: ExtremeSettings, source: str) -> tuple[PointPlan, str, str, float]:
    """The kernel's plan, the time units, the block's name and its length in those units."""
    n_time = field.sizes[time]
    coordinate = field[time] if time in field.coords else None
    n_copies = math.prod(field.sizes[d] for d in realisation)
    dated = coordinate is not None and calendar.is_calendar(coordinate)
    if dated:
        runs, kept, block_length, label, step = _calendar_blocks(coordinate, settings.block,
                                                                 source, settings.season)
        steps_per_block, units = block_length / step, "years"
        starts = calendar.decimal_years(coordinate.isel({time: runs[kept]}))
    else:
        step, units = calendar.time_step(coordinate)
        steps_per_block = _block_steps(field, time, space, settings.block, n_copies, source)
        runs, kept = np.arange(0, n_time, steps_per_block), np.arange(n_time // steps_per_block)
        block_length, label = steps_per_block * step, f"{steps_per_block} steps"
        starts = runs[kept] * step + (float(coordinate.values[0]) if coordinate is not None
                                      else 0.0)
    periods = _periods(settings.return_periods, dated, block_length,
                       n_copies * n_time * step)
    probability = block_length / periods
    plan = PointPlan(runs, kept, np.where(probability < 1.0, probability, np.nan), periods,
                     step, settings.pot_quantile,
                     calendar.run_length_steps(settings.run_length, coordinate, source),
                     max(1, min(n_time // (4 * MIN_PEAKS), int(steps_per_block) // 4)),
                     float(stats.norm.isf(0.5 * (1.0 - settings.confidence))),
                     np.asarray(starts, dtype=np.float64) if settings.trend else None,
                     month_index=calendar.month_count(coordinate) if dated else None,
                     season_fraction=float(calendar.in_season(coordinate, settings.season).mean())
                     if settings.season else 1.0)
    return plan, units, label, block_length


def _described(out: xr.Dataset, field: xr.DataArray, space: Sequence[str], plan: PointPlan,
               units: str) -> xr.Dataset:
    """The kernel's outputs with their dims ordered, coordinates and units."""
    unit = units.removesuffix("s")
    if "point_gev_trend" in out:
        out["point_gev_trend"].attrs["units"] = \
            f"{field.attrs.get('units', '')} per {unit}".strip()
    for name in ("point_gev_return_level", "point_return_level"):
        out[name] = out[name].transpose("return_period", *space, "interval")
    out = out.assign_coords(interval=INTERVAL,
                            return_period=("return_period", plan.periods, {"units": units}))
    for name in ("point_gev_location", "point_gev_scale", "point_gev_return_level",
                 "point_gpd_threshold", "point_gpd_scale", "point_return_level"):
        out[name].attrs["units"] = str(field.attrs.get("units", ""))
    out["point_gpd_rate"].attrs["units"] = f"clusters per {unit}"
    return out


def _check(field: xr.DataArray, time: str, space: Sequence[str], settings: ExtremeSettings,
           source: str) -> tuple[str, ...]:
    """The realisation dims of a valid ``field``; a named ValueError otherwise."""
    if not isinstance(field, xr.DataArray):
        raise TypeError(f"field of {source} must be an xarray.DataArray, got "
                        f"{type(field).__name__}")
    wanted = [time, *space]
    missing = [d for d in wanted if d not in field.dims]
    if missing or len(set(wanted)) != len(wanted):
        raise ValueError(f"fit_per_point: {source} lacks the dims {missing or wanted} (time "
                         f"'{time}', space {list(space)}, each once); its dims are "
                         f"{', '.join(map(str, field.dims))}")
    if not np.issubdtype(field.dtype, np.number):
        raise ValueError(f"fit_per_point: '{field.name}' of {source} is not numeric "
                         f"(dtype {field.dtype})")
    if not settings.pot_quantile < 1.0:  # each point's maximum: nothing would exceed it
        raise ValueError(f"pot_quantile must lie strictly between 0 and 1, got "
                         f"{settings.pot_quantile}")
    if time in field.coords:
        calendar.check_time(field[time], source)
    return tuple(d for d in field.dims if d not in wanted)


def _calendar_blocks(coordinate: xr.DataArray, block: str | int | None, source: str,
                     season: str | None = None
                     ) -> tuple[np.ndarray, np.ndarray, float, str, float]:
    """Run starts, kept runs, block length (years), name, and the time step (years); with a
    ``season``, one block a year: that season."""
    if block is not None and not isinstance(block, str):
        raise ValueError(f"time '{coordinate.name}' of {source} holds dates: block must be "
                         f"one of {', '.join(calendar.BLOCKS)}, got {block!r}")
    blocks = calendar.blocks(coordinate, "season" if season else block or "year", source,
                             season)
    runs = np.flatnonzero(np.r_[True, blocks.label[1:] != blocks.label[:-1]])
    kept = np.flatnonzero(np.isin(blocks.label[runs], blocks.kept))
    return runs, kept, blocks.period, blocks.block, calendar.step_years(coordinate)


def _block_steps(field: xr.DataArray, time: str, space: Sequence[str], block, n_copies: int,
                 source: str) -> int:
    n_time = field.sizes[time]
    if block is None:
        return default_block_steps(_sampled_decorrelation(field, time, space), n_time, n_copies)
    if isinstance(block, str) or not float(block).is_integer():
        raise ValueError(f"time '{time}' of {source} is not a calendar axis: block must be a "
                         f"whole number of steps, got {block!r}")
    if not 1 <= int(block) <= n_time:
        raise ValueError(f"a block of {block} steps is longer than the record of {source} "
                         f"({n_time} steps along '{time}') or not positive; choose a block "
                         f"in [1, {n_time}]")
    return int(block)


def _sampled_decorrelation(field: xr.DataArray, time: str, space: Sequence[str]) -> int:
    """Decorrelation steps of the first ``PRE_PASS_STEPS`` of up to ``PRE_PASS_POINTS``
    points spread over space (the one read made before the graph is computed)."""
    shape = tuple(field.sizes[d] for d in space)
    flat = np.unique(np.linspace(0, math.prod(shape) - 1, PRE_PASS_POINTS).astype(int))
    where = {d: xr.DataArray(i, dims="sample") for d, i in
             zip(space, np.unravel_index(flat, shape), strict=True)} if space else {}
    window = field.isel({time: slice(0, PRE_PASS_STEPS), **where})
    rows = window.transpose(..., time).values.reshape(-1, window.sizes[time])
    rows = rows[np.isfinite(rows).all(axis=1)]
    return decorrelation_steps(rows) if len(rows) else 1


def _periods(periods: Sequence[float] | None, dated: bool, block_length: float,
             duration: float) -> np.ndarray:
    if periods is None:
        return np.array(calendar.RETURN_PERIODS) if dated else \
            np.geomspace(2 * block_length, max(10 * duration, 4 * block_length), 12)
    out = np.atleast_1d(np.asarray(periods, dtype=np.float64))
    if out.ndim != 1 or not len(out) or not (np.isfinite(out) & (out > 0)).all():
        raise ValueError(f"return_periods must be positive numbers, got {list(periods)}")
    return out


def _rechunked(field: xr.DataArray, n_space: int, chunk_bytes: int) -> xr.DataArray:
    """``field`` ``(*space, *core)`` whole along the core dims and cut into chunks of about
    ``chunk_bytes`` over space (the last space dim filled first)."""
    budget = max(1, chunk_bytes // (field.dtype.itemsize * math.prod(field.shape[n_space:])))
    chunks: dict = {d: -1 for d in field.dims[n_space:]}
    for d in reversed(field.dims[:n_space]):
        chunks[d] = min(field.sizes[d], budget)
        budget = max(1, budget // chunks[d])
    return field.chunk(chunks)


# --- counting --------------------------------------------------------------------------------


def trend_tests(result: xr.Dataset) -> tuple[int, int, float]:
    """``(passed, tested, by_chance)``: points whose trend test rejects a constant location
    at ``SIGNIFICANCE``, points tested, and how many would pass by chance alone."""
    p_value = result["point_trend_p_value"]
    tested = int(p_value.notnull().sum())
    return int((p_value < SIGNIFICANCE).sum()), tested, SIGNIFICANCE * tested


def count_unfitted(result: xr.Dataset) -> dict[str, int]:
    """Points without a GEV or GPD fit, by cause (computes ``result`` where it is lazy)."""
    blocks, clusters = result["point_n_blocks"].values, result["point_n_clusters"].values
    threshold = result["point_gpd_threshold"].values
    no_gev = np.isnan(result["point_gev_shape"].sel(interval="estimate").values)
    no_gpd = np.isnan(result["point_gpd_shape"].sel(interval="estimate").values)
    no_data = np.isnan(threshold)
    return {"points": int(no_data.size), "no_data": int(no_data.sum()),
            "too_few_blocks": int((~no_data & (blocks < MIN_PEAKS)).sum()),
            "gev_failed": int((no_gev & (blocks >= MIN_PEAKS)).sum()),
            "too_few_clusters": int((~no_data & (clusters < MIN_PEAKS)).sum()),
            "gpd_failed": int((no_gpd & (clusters >= MIN_PEAKS)).sum())}
