"""Extreme-value statistics of time series: peaks over threshold and block maxima.

Peaks over threshold (POT): exceedances of a high threshold u are declustered by the runs
method (a run of ``run_length`` or more values at or below u ends a cluster; 0: every
exceedance its own cluster) and the cluster maxima are modelled by a generalised Pareto
distribution (GPD) of the excess y = x - u,

    P(Y > y) = (1 + xi y / sigma)^(-1/xi)     (exp(-y / sigma) when xi = 0),

fitted by maximum likelihood. Block maxima follow the generalised extreme-value
distribution (GEV) with location mu, scale sigma and shape xi. Throughout, xi > 0 is a
heavy (Frechet-type) tail; scipy's ``genpareto`` uses c = xi and ``genextreme`` c = -xi.

Confidence intervals are profile-likelihood intervals (Coles, *An Introduction to
Statistical Modeling of Extreme Values*, 2001, ch. 2.6 and 4.3): the set of values of one
parameter whose profile log-likelihood lies within chi2_1(level) / 2 of the maximum. They
are asymmetric where the likelihood is, which matters for return levels of heavy tails.
Peaks-over-threshold return levels use the same device, with the likelihood
re-parametrised so that the return level is itself a parameter; GEV return levels use
the likelihood profiled over the shape (see ``gev_return_levels``).

The T-return level is the level exceeded on average once every T time units: for POT with
cluster rate lambda (clusters per time unit), x_T = u + sigma / xi ((lambda T)^xi - 1);
for blocks of length B, the GEV quantile with exceedance probability B / T.

The default run length is chosen from the data by the intervals estimator of the extremal
index (Ferro & Segers, "Inference for clusters of extreme values", J. R. Statist. Soc. B
65, 2003; ``intervals_declustering``) rather than from the autocorrelation, which a
seasonal cycle stretches to months.

The likelihoods, the optimiser and the interval machinery are those of
:mod:`assimilate.diagnostics.fitting`, which the per-point fits of maps share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import stats

from assimilate.diagnostics.fitting import (
    MIN_PEAKS,
    SMALL_SHAPE,
    check_sample,
    gev_negative_log_likelihood,
    gpd_excess,
    gpd_negative_log_likelihood,
    minimise,
    profile_bounds,
)
from assimilate.diagnostics.shape_profile import level_intervals

__all__ = [
    "ExtremeValueFit",
    "Peaks",
    "block_maxima",
    "decorrelation_steps",
    "default_block_steps",
    "fit_gev",
    "fit_gpd",
    "gev_return_levels",
    "gpd_return_levels",
    "inter_exceedance_times",
    "intervals_declustering",
    "intervals_estimate",
    "peaks_over_threshold",
]

BLOCK_DECORRELATIONS = 25  # the default block, in decorrelation times


@dataclasses.dataclass(frozen=True)
class Peaks:
    """Declustered exceedances of ``threshold`` in series ``(realisation, time)``."""

    values: np.ndarray
    """Cluster maxima, in the order found (realisation-major, then time)."""
    time_index: np.ndarray
    realisation: np.ndarray
    threshold: float
    n_exceedances: int
    duration: float
    """Total observed time (number of realisations times the span of one), time units."""

    @property
    def n_clusters(self) -> int:
        return len(self.values)

    @property
    def rate(self) -> float:
        """Clusters per time unit."""
        return self.n_clusters / self.duration

    @property
    def extremal_index(self) -> float:
        """Clusters per exceedance: 1 for independent exceedances, smaller when they bunch."""
        return self.n_clusters / max(self.n_exceedances, 1)


@dataclasses.dataclass(frozen=True)
class ExtremeValueFit:
    """Maximum-likelihood parameters with profile-likelihood intervals (NaN = unbounded)."""

    distribution: str  # "gpd" or "gev"
    parameters: dict[str, tuple[float, float, float]]
    """name -> (estimate, lower, upper); "shape", "scale" and, for the GEV, "location"."""
    data: np.ndarray
    """What was fitted: the excesses over the threshold (GPD) or the block maxima (GEV)."""
    negative_log_likelihood: float
    confidence: float

    def estimate(self, name: str) -> float:
        return self.parameters[name][0]


# --- series to extremes --------------------------------------------------------------------


def decorrelation_steps(series: np.ndarray, max_lag: int | None = None) -> int:
    """First lag at which the mean autocorrelation of the rows of ``series`` drops below 1/e."""
    x = np.atleast_2d(np.asarray(series, dtype=np.float64))
    x = x - x.mean(axis=1, keepdims=True)
    variance = (x**2).mean(axis=1)
    x, variance = x[variance > 0], variance[variance > 0]
    if len(x) == 0:
        return 1
    max_lag = min(max_lag or x.shape[1] // 2, x.shape[1] - 1)
    for lag in range(1, max_lag + 1):
        r = ((x[:, lag:] * x[:, :-lag]).mean(axis=1) / variance).mean()
        if r < np.exp(-1.0):
            return lag
    return max(max_lag, 1)


def peaks_over_threshold(series: np.ndarray, threshold: float, run_length: int,
                         time_step: float = 1.0, *, name: str = "series") -> Peaks:
    """Cluster maxima of ``series`` ``(realisation, time)`` above ``threshold`` (runs method).

    Clusters never span two realisations. ``time_step`` converts steps to time units.
    ``run_length`` 0 makes every exceedance its own cluster; NaN never exceeds.
    """
    x = np.atleast_2d(np.asarray(series, dtype=np.float64))
    if run_length < 0:
        raise ValueError(f"run_length must be >= 0 steps, got {run_length}")
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        raise ValueError(f"{name} holds no finite values")
    if threshold >= finite.max():
        raise ValueError(f"threshold {threshold:.6g} is not below the maximum of {name} "
                         f"({finite.max():.6g}): nothing exceeds it")
    values, times, rows, n_exceedances = [], [], [], 0
    for row, line in enumerate(x):
        above = np.flatnonzero(line > threshold)
        n_exceedances += len(above)
        if len(above) == 0:
            continue
        # a gap of more than run_length steps between exceedances starts a new cluster
        starts = np.concatenate([[0], np.flatnonzero(np.diff(above) > run_length) + 1])
        for first, last in zip(starts, [*starts[1:], len(above)], strict=True):
            members = above[first:last]
            peak = members[np.argmax(line[members])]
            values.append(line[peak])
            times.append(peak)
            rows.append(row)
    duration = x.shape[0] * x.shape[1] * time_step
    return Peaks(np.array(values), np.array(times, dtype=np.int64),
                 np.array(rows, dtype=np.int64), float(threshold), n_exceedances, duration)


def inter_exceedance_times(series: np.ndarray, threshold: float,
                           segments: np.ndarray | None = None) -> tuple[np.ndarray, int, int]:
    """Steps between consecutive exceedances of ``threshold`` in ``series`` ``(realisation,
    time)``: ``(times, n_exceedances, n_stretches)``.

    A gap is counted only between exceedances of one realisation and one segment
    (``segments``: a label per time step, e.g. the years of a seasonal record, so that the
    months with no extremes between two summers are not one long gap); ``n_stretches``
    counts the (realisation, segment) pairs holding an exceedance.
    """
    x = np.atleast_2d(np.asarray(series, dtype=np.float64))
    labels = np.zeros(x.shape[1], dtype=np.int64) if segments is None else np.asarray(segments)
    times, n_exceedances, n_stretches = [], 0, 0
    with np.errstate(invalid="ignore"):
        for line in x:
            above = np.flatnonzero(line > threshold)
            same = labels[above[1:]] == labels[above[:-1]]
            times.append(np.diff(above)[same])
            n_exceedances += len(above)
            n_stretches += len(above) - int(same.sum())
    return np.concatenate(times), n_exceedances, n_stretches


def intervals_estimate(times: np.ndarray) -> float:
    """The intervals estimator of the extremal index from inter-exceedance ``times`` (steps).

    Ferro & Segers (2003, eq. 4), with T_i the m times:
    theta = min(1, 2 (sum T_i)^2 / (m sum T_i^2)) when every T_i <= 2, else
    theta = min(1, 2 (sum (T_i - 1))^2 / (m sum (T_i - 1)(T_i - 2))), which is unbiased for
    the limiting cluster law; NaN without a time.
    """
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        return float("nan")
    if t.max() <= 2:
        return float(min(1.0, 2.0 * t.sum() ** 2 / (t.size * (t**2).sum())))
    return float(min(1.0, 2.0 * (t - 1).sum() ** 2 / (t.size * ((t - 1) * (t - 2)).sum())))


def intervals_declustering(series: np.ndarray, threshold: float,
                           segments: np.ndarray | None = None) -> tuple[int, float]:
    """``(run_length, theta)``: the estimated extremal index and the run length (steps) that
    declusters ``series`` ``(realisation, time)`` into about theta N clusters.

    Ferro & Segers (2003, sec. 5): of N exceedances, the C - 1 largest inter-exceedance
    times separate clusters, C = floor(theta N) + 1; the runs method does that with the run
    length T_(C), the C-th largest time (ties merge, giving fewer clusters). Each
    (realisation, segment) stretch opens its own cluster, so C less their number of the
    times are taken. 0 (no declustering) where theta N clusters need every gap.
    """
    times, n, n_stretches = inter_exceedance_times(series, threshold, segments)
    theta = intervals_estimate(times)
    splits = int(np.floor((1.0 if np.isnan(theta) else theta) * n)) + 1 - n_stretches
    if splits >= len(times):
        return 0, theta
    return int(np.sort(times)[::-1][max(splits, 0)]), theta


def default_block_steps(decorrelation: int, n_time: int, n_copies: int) -> int:
    """Blocks of ``BLOCK_DECORRELATIONS`` decorrelation times (maxima of many nearly
    independent values), halved until ``n_copies`` series of ``n_time`` steps give at
    least twice ``MIN_PEAKS`` of them."""
    block = BLOCK_DECORRELATIONS * decorrelation
    while block > 1 and n_copies * (n_time // block) < 2 * MIN_PEAKS:
        block //= 2
    return max(1, min(block, n_time))


def block_maxima(series: np.ndarray, block_steps: int) -> np.ndarray:
    """Maxima of consecutive blocks of ``block_steps`` values of each row (partial blocks dropped)."""
    x = np.atleast_2d(np.asarray(series, dtype=np.float64))
    if not 1 <= block_steps <= x.shape[1]:
        raise ValueError(f"block length {block_steps} steps must lie in [1, {x.shape[1]}]")
    n_blocks = x.shape[1] // block_steps
    blocks = x[:, : n_blocks * block_steps].reshape(x.shape[0], n_blocks, block_steps)
    return np.nanmax(blocks, axis=2).ravel()


# --- generalised Pareto --------------------------------------------------------------------


def fit_gpd(excesses: np.ndarray, confidence: float = 0.95, *,
            name: str = "the excesses", scale_interval: bool = True) -> ExtremeValueFit:
    """Maximum-likelihood GPD of ``excesses`` (values minus the threshold, all > 0).

    Profile-likelihood intervals for shape and scale; ``scale_interval=False`` leaves the
    scale's bounds NaN (half the work, for callers that need only the shape).
    """
    y = check_sample(excesses, name, "excesses")
    if y.min() < 0:
        raise ValueError(f"{name} must be non-negative (values above the threshold minus it)")
    unit = y.mean()
    z = y / unit  # fit in units of the mean excess; the scale is multiplied back
    c, _, scale = stats.genpareto.fit(z, floc=0.0)
    result = minimise(lambda p: gpd_negative_log_likelihood(z, p[0], p[1]), np.array([c, scale]))
    theta = result.x

    def nll(p: np.ndarray) -> float:
        return gpd_negative_log_likelihood(z, p[0], p[1])

    shape = (theta[0], *profile_bounds(nll, theta, 0, confidence, 0.05, (-1.0, 10.0)))
    scale_bounds = profile_bounds(nll, theta, 1, confidence, 0.1 * theta[1], (1e-12, np.inf)) \
        if scale_interval else (np.nan, np.nan)
    scale = unit * np.array([theta[1], *scale_bounds])
    return ExtremeValueFit("gpd", {"shape": shape, "scale": tuple(scale)}, y,
                           float(result.fun) + len(y) * np.log(unit), confidence)


def _pot_scale(excess_level: float, shape: float, m: float) -> float:
    """GPD scale whose (m clusters)-return excess level is ``excess_level``."""
    if abs(shape) < SMALL_SHAPE:
        return excess_level / np.log(m)
    return excess_level * shape / np.expm1(shape * np.log(m))


def gpd_return_levels(fit: ExtremeValueFit, threshold: float, rate: float,
                      periods: Sequence[float]) -> np.ndarray:
    """``(len(periods), 3)``: estimate, lower, upper of the POT return level per period.

    ``rate`` is clusters per time unit; periods in time units. Periods with fewer than one
    expected cluster (``rate * T <= 1``) have no return level above the threshold (NaN).
    """
    unit = fit.data.mean()
    z = fit.data / unit
    shape, scale = fit.estimate("shape"), fit.estimate("scale") / unit
    out = np.full((len(periods), 3), np.nan)
    for i, period in enumerate(periods):
        m = rate * float(period)
        if m <= 1:
            continue
        excess = gpd_excess(shape, scale, m)

        def nll(p: np.ndarray, m: float = m) -> float:
            if p[0] <= 0:
                return np.inf
            return gpd_negative_log_likelihood(z, p[1], _pot_scale(p[0], p[1], m))

        lower, upper = profile_bounds(nll, np.array([excess, shape]), 0, fit.confidence,
                                       0.1 * excess, (0.0, np.inf))
        out[i] = threshold + unit * np.array([excess, lower, upper])
    return out


# --- generalised extreme value -------------------------------------------------------------


def fit_gev(maxima: np.ndarray, confidence: float = 0.95, *,
            name: str = "the block maxima", intervals: bool = True) -> ExtremeValueFit:
    """Maximum-likelihood GEV of block ``maxima``.

    ``intervals=False`` leaves every bound NaN: a tenth of the work, for callers that need
    only the estimates and the likelihood (a likelihood-ratio test at many grid points).
    """
    x = check_sample(maxima, name, "block maxima")
    centre, unit = x.mean(), x.std()
    z = (x - centre) / unit  # fit standardised maxima; location and scale are mapped back
    c, loc, scale = stats.genextreme.fit(z)
    result = minimise(lambda p: gev_negative_log_likelihood(z, *p), np.array([loc, scale, -c]))
    theta = result.x

    def nll(p: np.ndarray) -> float:
        return gev_negative_log_likelihood(z, *p)

    def bounds(index: int, step: float, limits: tuple[float, float]) -> tuple:
        if not intervals:
            return np.nan, np.nan
        return profile_bounds(nll, theta, index, confidence, step, limits)

    step = 0.1 * theta[1]
    location = centre + unit * np.array([theta[0], *bounds(0, step, (-np.inf, np.inf))])
    scale = unit * np.array([theta[1], *bounds(1, step, (1e-12, np.inf))])
    shape = (theta[2], *bounds(2, 0.05, (-1.0, 10.0)))
    return ExtremeValueFit("gev", {"location": tuple(location), "scale": tuple(scale),
                                   "shape": shape}, x,
                           float(result.fun) + len(x) * np.log(unit), confidence)


def gev_return_levels(fit: ExtremeValueFit, block_length: float, periods: Sequence[float],
                      *, lower_bound: float | None = None) -> np.ndarray:
    """``(len(periods), 3)``: estimate, lower, upper of the GEV return level per period.

    A period T (time units) is the upper quantile with probability ``block_length / T``;
    periods no longer than one block are NaN. Intervals come from the likelihood profiled
    over the shape, quadratic in location and scale at each shape
    (:mod:`assimilate.diagnostics.shape_profile`: the delta method's intervals fall short
    of their level with a few tens of maxima). With the variable's physical
    ``lower_bound`` L (0 for rain) the quadratic part is taken on log(z_T - L), so that no
    bound falls below L.
    """
    centre, unit = fit.data.mean(), fit.data.std()
    z = (fit.data - centre) / unit
    location, scale, shape = (fit.estimate(k) for k in ("location", "scale", "shape"))
    theta = np.array([(location - centre) / unit, scale / unit, shape])
    width = stats.norm.isf(0.5 * (1.0 - fit.confidence))
    _, low, high = fit.parameters["shape"]
    spread = (high - low) / (2 * width) if np.isfinite(high - low) else np.nan
    p = block_length / np.asarray(periods, dtype=np.float64)
    p = np.where((p > 0) & (p < 1), p, np.nan)
    floor = None if lower_bound is None else (lower_bound - centre) / unit  # standardised
    return centre + unit * level_intervals(z, theta, spread, p, fit.confidence, floor)