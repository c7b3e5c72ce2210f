"""Extreme-value fits at every grid point of a field, lazily with Dask: return-level maps.

``fit_per_point(field, space=("lat", "lon"))`` fits, separately at each point, a GEV to the
block maxima (calendar blocks for a dated time axis, ``block`` steps otherwise) and a GPD
to the declustered peaks over the point's own ``pot_quantile`` threshold, and returns the
parameters and return levels as maps (see ``extremes`` for the models and notation).
Realisation dims (all dims besides time and space: members, trajectories) are pooled as
independent copies of the point's record.

Design. The field is rechunked so that time and the realisation dims are whole and space
is cut into chunks of about ``chunk_bytes`` (32 MiB); ``xarray.apply_ufunc`` (``dask=
"parallelized"``) then runs one NumPy kernel per space chunk, which takes the block maxima
of all its points at once (``np.fmax.reduceat`` over the runs of steps sharing a block)
and loops over the points for the fits. A task holds one input chunk, one point's series
in float64 and a few floats per point, so memory is bounded by the chunk size whatever
the size of the field; nothing is computed until the result is. Everything the kernel
needs besides the data (block boundaries, return periods) is fixed before the graph is
built, from the time coordinate alone; the one exception is a plain numeric time axis
without ``block``: the default block (``extremes.default_block_steps``, as in
``diagnose``) is then estimated from the first steps of a few points (a small read; pass
``block`` to avoid it).

Fits. The maximum-likelihood fits minimise ``extremes._gev_nll`` and ``_gpd_nll`` with
``extremes._minimise`` on standardised data, started from L-moment estimates (Hosking,
Wallis & Wood, "Estimation of the generalized extreme-value distribution by the method
of probability-weighted moments", Technometrics 27, 1985), which are closed-form and
usually within the basin of the maximum. Intervals are delta-method intervals with the
observed information (Coles 2001, sec. 3.3.3 and 4.3.3): the central-difference Hessian
of the negative log-likelihood at the optimum (``extremes._hessian``), inverted
(``extremes._covariance``), gives a normal interval for each parameter, and the gradient
of a return level gives its interval. POT return levels add the Poisson variance of the
cluster rate, var(lambda) = lambda / duration (Coles' binomial zeta_u). Profile-likelihood
intervals, which ``fit_gev``/``fit_gpd`` give one series, cost a constrained optimisation
per bound and parameter (some twenty fits per point): too slow for thousands of points,
and the delta method is the usual choice for maps. Its intervals are symmetric, so they
understate the upper uncertainty of long return levels of heavy tails. Points whose fit
is unsupported (fewer than ``extremes.MIN_PEAKS`` maxima or clusters, all-NaN points such
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

import contextlib
import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy import special, stats

from assimilate.diagnostics import calendar
from assimilate.diagnostics.extremes import (
    _SMALL_SHAPE,
    MIN_PEAKS,
    _covariance,
    _delta_variance,
    _gev_nll,
    _gpd_nll,
    _hessian,
    _minimise,
    decorrelation_steps,
    default_block_steps,
    gpd_excess,
    peaks_over_threshold,
)
from assimilate.diagnostics.trend import MIN_TREND_BLOCKS, fit_gev_trend

__all__ = [
    "CHUNK_BYTES",
    "OUTPUTS",
    "TREND_OUTPUTS",
    "count_unfitted",
    "fit_per_point",
]

CHUNK_BYTES = 32 * 2**20  # input bytes per space chunk
PRE_PASS_POINTS, PRE_PASS_STEPS = 16, 4096
INTERVAL = np.array(["estimate", "lower", "upper"], dtype=object)
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
SIGNIFICANCE = 0.05  # the level at which per-point trend tests are counted
"""With ``trend``: the GEV location's trend per year (or time unit) and its likelihood-ratio
p-value against the stationary GEV, at each point."""


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What every chunk needs besides its data, fixed before the graph is built."""

    run_starts: np.ndarray  # first step of each run of consecutive steps in one block
    kept: np.ndarray  # indices of the runs that are complete blocks
    block_probability: np.ndarray  # per return period: exceedance probability per block
    periods: np.ndarray  # years (calendar time) or time units
    step: float  # one time step, in the same units
    pot_quantile: float
    run_length: int | None  # None: each point's decorrelation steps, at most max_run_length
    max_run_length: int
    width: float  # standard normal quantile of the two-sided interval
    trend_covariate: np.ndarray | None = None  # per kept block: its start in years (trend)

    @property
    def outputs(self) -> dict[str, tuple[str, ...]]:
        return OUTPUTS if self.trend_covariate is None else {**OUTPUTS, **TREND_OUTPUTS}


# --- the kernel: one space chunk -----------------------------------------------------------


def _fit_chunk(chunk: np.ndarray, plan: _Plan, n_core: int) -> tuple[np.ndarray, ...]:
    """Fits at every point of ``chunk`` ``(*space, *realisation, time)``; one array per
    entry of ``OUTPUTS``, of shape ``(*space, *its dims)``."""
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


def _fit_point(x: np.ndarray, maxima: np.ndarray, plan: _Plan, out: dict, i: int) -> None:
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
    run_length = plan.run_length or _decorrelation(x, plan.max_run_length)
    try:
        peaks = peaks_over_threshold(x, threshold, run_length, plan.step)
    except ValueError:  # nothing exceeds the threshold
        return
    duration = finite.size * plan.step  # observed time only
    rate = peaks.n_clusters / duration
    out["point_n_clusters"][i], out["point_gpd_rate"][i] = peaks.n_clusters, rate
    gpd = _gpd(peaks.values - threshold, rate, duration, plan)
    if gpd is not None:
        out["point_gpd_shape"][i], out["point_gpd_scale"][i] = gpd[0]
        out["point_return_level"][i] = threshold + gpd[1]


def _decorrelation(x: np.ndarray, cap: int) -> int:
    rows = x[np.isfinite(x).any(axis=1)]
    rows = np.where(np.isfinite(rows), rows, np.nanmean(rows, axis=1, keepdims=True))
    return decorrelation_steps(rows, max_lag=cap) if len(rows) else 1


def _gev(maxima: np.ndarray, plan: _Plan) -> tuple[np.ndarray, np.ndarray] | None:
    """``(location, scale, shape) x (estimate, lower, upper)`` and ``(period, 3)`` levels."""
    if len(maxima) < MIN_PEAKS or np.ptp(maxima) == 0:
        return None
    centre, unit = maxima.mean(), maxima.std()
    z = (maxima - centre) / unit  # fitted standardised; location and scale mapped back

    def nll(p: np.ndarray) -> float:
        return _gev_nll(z, *p)

    theta = _maximum(nll, _gev_start(z), np.array([-0.45, 0.78, 0.0]))  # Gumbel moments
    if theta is None:
        return None
    parameters, levels = _delta(nll, theta, lambda p: _gev_level(p, plan.block_probability),
                                plan.width)
    parameters[:2] *= unit
    parameters[0] += centre
    return parameters, centre + unit * levels


def _gpd(excesses: np.ndarray, rate: float, duration: float,
         plan: _Plan) -> tuple[np.ndarray, np.ndarray] | None:
    """``(shape, scale) x (estimate, lower, upper)`` and ``(period, 3)`` return levels
    above the threshold (x_T - u)."""
    if len(excesses) < MIN_PEAKS or np.ptp(excesses) == 0:
        return None
    unit = excesses.mean()
    z = excesses / unit  # fitted in units of the mean excess

    def nll(p: np.ndarray) -> float:
        return _gpd_nll(z, p[0], p[1])

    theta = _maximum(nll, _gpd_start(z), np.array([0.0, 1.0]))  # exponential
    if theta is None:
        return None
    m = rate * plan.periods
    m = np.where(m > 1.0, m, np.nan)  # fewer than one cluster expected: no level above u
    # the cluster rate is estimated too: d x_T / d lambda = sigma T m^(xi - 1)
    rate_spread = theta[1] * plan.periods * m ** (theta[0] - 1.0) * math.sqrt(rate / duration)
    parameters, levels = _delta(nll, theta, lambda p: gpd_excess(p[0], p[1], m), plan.width,
                                rate_spread)
    parameters[1] *= unit
    return parameters, unit * levels


def _maximum(nll, *starts: np.ndarray) -> np.ndarray | None:
    """The minimiser of ``nll`` from the first start inside the support; None on failure."""
    start = next((s for s in starts if np.isfinite(nll(s))), starts[-1])
    result = _minimise(nll, start)
    return result.x if np.isfinite(result.fun) and np.isfinite(result.x).all() else None


def _delta(nll, theta: np.ndarray, level, width: float,
           extra_spread: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Delta-method intervals: ``(parameter, 3)`` and ``(period, 3)`` of estimate, lower,
    upper; NaN bounds where the observed information is not finite or not positive."""
    estimate = level(theta)
    hessian = _hessian(nll, theta)
    covariance = _covariance(hessian) if np.isfinite(hessian).all() else None
    if covariance is None:
        spread, level_spread = np.full(len(theta), np.nan), np.full(len(estimate), np.nan)
    else:
        variance = _delta_variance(level, theta, covariance)  # (period,)
        spread = np.sqrt(np.where(np.diag(covariance) >= 0, np.diag(covariance), np.nan))
        level_spread = np.sqrt(np.where(variance >= 0, variance, np.nan) + extra_spread**2)
    return (np.stack([theta, theta - width * spread, theta + width * spread], axis=-1),
            np.stack([estimate, estimate - width * level_spread,
                      estimate + width * level_spread], axis=-1))


def _gev_level(theta: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """GEV quantile exceeded with ``probability``: mu + sigma / xi (y^-xi - 1), y = -log(1-p)."""
    location, scale, shape = theta
    log_y = np.log(-np.log1p(-probability))
    if abs(shape) < _SMALL_SHAPE:
        return location - scale * log_y
    return location + scale * np.expm1(-shape * log_y) / shape


def _l_moments(z: np.ndarray) -> tuple[float, float, float]:
    """First three sample L-moments, from the probability-weighted moments b0, b1, b2."""
    x, n = np.sort(z), len(z)
    i = np.arange(n)
    b0 = x.mean()
    b1 = (i * x).sum() / (n * (n - 1))
    b2 = (i * (i - 1) * x).sum() / (n * (n - 1) * (n - 2))
    return b0, 2 * b1 - b0, 6 * b2 - 6 * b1 + b0


def _gev_start(z: np.ndarray) -> np.ndarray:
    """L-moment GEV (location, scale, shape), Hosking et al. (1985): k = -xi from tau_3."""
    l1, l2, l3 = _l_moments(z)
    c = 2.0 / (3.0 + l3 / l2) - math.log(2) / math.log(3)
    k = float(np.clip(7.8590 * c + 2.9554 * c * c, -0.9, 0.9))
    if abs(k) < 1e-6:
        scale = l2 / math.log(2)
        return np.array([l1 - np.euler_gamma * scale, scale, 0.0])
    g = special.gamma(1.0 + k)
    scale = l2 * k / ((1.0 - 2.0**-k) * g)
    return np.array([l1 - scale * (1.0 - g) / k, scale, -k])


def _gpd_start(z: np.ndarray) -> np.ndarray:
    """L-moment GPD (shape, scale) with location 0: l1 / l2 = 2 - xi, sigma = l1 (1 - xi)."""
    l1, l2, _ = _l_moments(z)
    shape = float(np.clip(2.0 - l1 / l2, -0.5, 0.9))
    return np.array([shape, l1 * (1.0 - shape)])


# --- the graph -----------------------------------------------------------------------------


def fit_per_point(field: xr.DataArray, *, time: str = "time", space: Sequence[str],
                  block: str | int | None = None, return_periods: Sequence[float] | None = None,
                  pot_quantile: float = 0.95, run_length: int | None = None,
                  confidence: float = 0.95, trend: bool = False, source: str = "the data",
                  chunk_bytes: int = CHUNK_BYTES) -> xr.Dataset:
    """GEV and GPD fits at every point of ``field`` (dims ``time``, ``space`` and any
    realisation dims, in any order), lazy.

    ``block``: ``"year"`` (default), ``"season"`` or ``"month"`` for a calendar time axis,
    a number of steps otherwise (default ``extremes.default_block_steps`` of a sample of
    points, the same for all points).
    Return periods are in years for calendar time, else in the time coordinate's units;
    a block's exceedance probability is its length over the period. ``run_length``
    declusters the peaks (default: each point's decorrelation steps, at most a quarter
    block). ``trend`` adds ``TREND_OUTPUTS``: a GEV whose location moves linearly with
    time (years for calendar time) at each point, its trend and the likelihood-ratio test's
    p-value (about 0.03 s more per point). Returns the variables of ``OUTPUTS`` with dims
    ``(*space, interval)``,
    ``(return_period, *space, interval)`` or ``space``, backed by Dask; see the module
    docstring for the method.
    """
    realisation = _check(field, time, space, pot_quantile, confidence, run_length, source)
    n_time = field.sizes[time]
    coordinate = field[time] if time in field.coords else None
    dated = coordinate is not None and calendar.is_calendar(coordinate)
    n_copies = math.prod(field.sizes[d] for d in realisation)
    if dated:
        runs, kept, block_length, label, step = _calendar_blocks(coordinate, block, source)
        steps_per_block, units = block_length / step, "years"
        starts = calendar.decimal_years(coordinate.isel({time: runs[kept]}))
    else:
        step, units = calendar.time_step(coordinate)
        steps_per_block = _block_steps(field, time, space, block, n_copies, source)
        runs, kept = np.arange(0, n_time, steps_per_block), np.arange(n_time // steps_per_block)
        block_length, label = steps_per_block * step, f"{steps_per_block} steps"
        starts = runs[kept] * step + (float(coordinate.values[0]) if coordinate is not None
                                      else 0.0)
    periods = _periods(return_periods, dated, block_length, n_copies * n_time * step)
    probability = block_length / periods
    plan = _Plan(runs, kept, np.where(probability < 1.0, probability, np.nan), periods, step,
                 pot_quantile, None if run_length is None else int(run_length),
                 max(1, min(n_time // (4 * MIN_PEAKS), int(steps_per_block) // 4)),
                 float(stats.norm.isf(0.5 * (1.0 - confidence))),
                 np.asarray(starts, dtype=np.float64) if trend else None)
    data = _rechunked(field.transpose(*space, *realisation, time), len(space), chunk_bytes)
    core = [*realisation, time]
    results = xr.apply_ufunc(
        _fit_chunk, data, input_core_dims=[core],
        output_core_dims=list(plan.outputs.values()),
        kwargs={"plan": plan, "n_core": len(core)}, dask="parallelized",
        output_dtypes=[np.float64] * len(plan.outputs),
        dask_gufunc_kwargs={"output_sizes": {"interval": 3, "return_period": len(periods)}})
    out = xr.Dataset(dict(zip(plan.outputs, results, strict=True)))
    if trend:
        out["point_gev_trend"].attrs["units"] = \
            f"{field.attrs.get('units', '')} per {units.removesuffix('s')}".strip()
    for name in ("point_gev_return_level", "point_return_level"):
        out[name] = out[name].transpose("return_period", *space, "interval")
    out = out.assign_coords(interval=INTERVAL,
                            return_period=("return_period", periods, {"units": units}))
    for name in ("point_gev_location", "point_gev_scale", "point_gev_return_level",
                 "point_gpd_threshold", "point_gpd_scale", "point_return_level"):
        out[name].attrs["units"] = str(field.attrs.get("units", ""))
    out["point_gpd_rate"].attrs["units"] = f"clusters per {units.removesuffix('s')}"
    out.attrs = {"point_block": label, "point_block_length": block_length,
                 "point_confidence": confidence, "point_pot_quantile": pot_quantile,
                 "point_run_length": run_length or f"decorrelation, at most "
                                                   f"{plan.max_run_length} steps",
                 "point_interval_method": "delta", "point_time_units": units,
                 "point_realisation_dims": ", ".join(map(str, realisation))}
    return out


def _check(field: xr.DataArray, time: str, space: Sequence[str], pot_quantile: float,
           confidence: float, run_length: int | None, source: str) -> tuple[str, ...]:
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
    if not 0.0 < pot_quantile < 1.0:
        raise ValueError(f"pot_quantile must lie strictly between 0 and 1, got {pot_quantile}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if run_length is not None and not (float(run_length).is_integer() and run_length >= 1):
        raise ValueError(f"run_length must be a whole number of steps >= 1, got {run_length!r}")
    if time in field.coords:
        calendar.check_time(field[time], source)
    return tuple(d for d in field.dims if d not in wanted)


def _calendar_blocks(coordinate: xr.DataArray, block: str | int | None,
                     source: str) -> tuple[np.ndarray, np.ndarray, float, str, float]:
    """Run starts, kept runs, block length (years), name, and the time step (years)."""
    if block is not None and not isinstance(block, str):
        raise ValueError(f"time '{coordinate.name}' of {source} holds dates: block must be "
                         f"one of {', '.join(calendar.BLOCKS)}, got {block!r}")
    blocks = calendar.blocks(coordinate, block or "year", source)
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
