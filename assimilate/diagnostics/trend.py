"""A GEV whose location follows a covariate: trends in block maxima.

Non-stationary block maxima (Coles 2001, ch. 6; as ``fevd(x, location.fun = ~ t)`` in
extRemes: Gilleland & Katz, "extRemes 2.0: An Extreme Value Analysis Package in R",
Journal of Statistical Software 72(8), 2016): a GEV whose location moves linearly with a
covariate c, one value per block (the year, or a climate index), mu(c) = mu0 + mu1 c,
with constant scale and shape. The trend mu1 carries a profile-likelihood interval; the
deviance D = 2 (l_trend - l_stationary) against chi2_1 tests it against the stationary
fit, which is nested in it (mu1 = 0). The "effective" return level at a covariate value
is the GEV quantile of that block's distribution, with delta-method intervals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from assimilate.diagnostics.extremes import ExtremeValueFit, fit_gev
from assimilate.diagnostics.fitting import (
    check_sample,
    covariance,
    delta_variance,
    gev_negative_log_likelihood,
    hessian,
    minimise,
    profile_bounds,
)

__all__ = [
    "MIN_TREND_BLOCKS",
    "TrendFit",
    "effective_return_levels",
    "fit_gev_trend",
    "gev_trend_negative_log_likelihood",
]

MIN_TREND_BLOCKS = 20  # fewer block maxima than this do not support a trend in location


# --- non-stationary GEV: location linear in a covariate ------------------------------------

_TREND_PARAMETERS = ("location", "trend", "scale", "shape")


@dataclasses.dataclass(frozen=True)
class TrendFit:
    """GEV of block maxima with location mu0 + mu1 c, beside the stationary GEV it nests.

    Intervals are NaN where unbounded; see ``fit_gev_trend`` for how each is made.
    """

    parameters: dict[str, tuple[float, float, float]]
    """name -> (estimate, lower, upper): "location" (mu0, the location at covariate value 0
    in the covariate's units), "trend" (mu1, per covariate unit), "scale" and "shape"."""
    negative_log_likelihood: float
    confidence: float
    data: np.ndarray
    """The block maxima ``(blocks,)``."""
    covariate: np.ndarray
    """The covariate ``(blocks,)``, one value per block maximum."""
    stationary: ExtremeValueFit
    """The GEV with constant location (mu1 = 0) fitted to the same maxima."""

    def estimate(self, name: str) -> float:
        return self.parameters[name][0]

    def location_at(self, value: float | np.ndarray) -> float | np.ndarray:
        """mu0 + mu1 * value: the GEV location of a block whose covariate is ``value``."""
        location = self.estimate("location") + self.estimate("trend") * np.asarray(value)
        return float(location) if location.ndim == 0 else location

    @property
    def likelihood_ratio(self) -> float:
        """Deviance D = 2 (nll_stationary - nll_trend), clipped at 0 (Coles 2001, ch. 6)."""
        return max(2.0 * (self.stationary.negative_log_likelihood
                          - self.negative_log_likelihood), 0.0)

    @property
    def p_value(self) -> float:
        """P(chi2_1 > D): the chance of so large a deviance were there no trend."""
        return float(stats.chi2.sf(self.likelihood_ratio, 1))


@dataclasses.dataclass(frozen=True)
class _TrendScaling:
    """The fit runs on z = (x - centre) / unit against s = (c - covariate_centre) /
    covariate_unit, where the parameters (a0, a1, b, xi) are of order one and nearly
    uncorrelated: mu0 = centre + unit (a0 - a1 covariate_centre / covariate_unit),
    mu1 = unit a1 / covariate_unit, sigma = unit b."""

    centre: float
    unit: float
    covariate_centre: float
    covariate_unit: float

    @classmethod
    def of(cls, maxima: np.ndarray, covariate: np.ndarray) -> _TrendScaling:
        return cls(maxima.mean(), maxima.std(), covariate.mean(), covariate.std())

    def standardise(self, maxima: np.ndarray, covariate: np.ndarray) -> tuple:
        return ((maxima - self.centre) / self.unit,
                (covariate - self.covariate_centre) / self.covariate_unit)

    def standard_covariate(self, value: float) -> float:
        return (value - self.covariate_centre) / self.covariate_unit

    def to_data(self, theta: np.ndarray) -> np.ndarray:
        """(a0, a1, b, xi) -> (mu0, mu1, sigma, xi)."""
        trend = self.unit * theta[1] / self.covariate_unit
        return np.array([self.centre + self.unit * theta[0] - trend * self.covariate_centre,
                         trend, self.unit * theta[2], theta[3]])

    def to_standard(self, parameters: Sequence[float]) -> np.ndarray:
        """(mu0, mu1, sigma, xi) -> (a0, a1, b, xi)."""
        location, trend, scale, shape = parameters
        return np.array([(location - self.centre + trend * self.covariate_centre) / self.unit,
                         trend * self.covariate_unit / self.unit, scale / self.unit, shape])


def gev_trend_negative_log_likelihood(x: np.ndarray, covariate: np.ndarray, location: float,
                                      trend: float, scale: float, shape: float) -> float:
    """GEV negative log-likelihood of ``x`` with location ``location + trend * covariate``."""
    return gev_negative_log_likelihood(x, location + trend * covariate, scale, shape)


def _check_trend_sample(maxima: np.ndarray, covariate: np.ndarray, name: str) -> tuple:
    x = np.asarray(maxima, dtype=np.float64).ravel()
    c = np.asarray(covariate, dtype=np.float64).ravel()
    for values, what in ((x, name), (c, f"the covariate of {name}")):
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise ValueError(f"{what} holds {len(bad)} non-finite values (first at index "
                             f"{bad[0]})")
    if len(c) != len(x):
        raise ValueError(f"the covariate of {name} has {len(c)} values; it needs one per "
                         f"block maximum, {len(x)}")
    if len(x) < MIN_TREND_BLOCKS:
        raise ValueError(f"only {len(x)} block maxima in {name}; a trend needs at least "
                         f"{MIN_TREND_BLOCKS} (e.g. {MIN_TREND_BLOCKS} years of annual maxima)")
    if np.ptp(c) == 0:
        raise ValueError(f"the covariate of {name} is constant ({c[0]:.6g}); a trend needs "
                         "it to vary")
    return check_sample(x, name, "block maxima"), c


def fit_gev_trend(maxima: np.ndarray, covariate: np.ndarray, confidence: float = 0.95, *,
                  name: str = "the block maxima", intervals: bool = True,
                  stationary: ExtremeValueFit | None = None) -> TrendFit:
    """Maximum-likelihood GEV of block ``maxima`` ``(blocks,)`` with location mu0 + mu1 c.

    ``covariate`` ``(blocks,)`` is c for each block: its year, or an index such as a
    global-mean temperature. The search starts from the stationary fit (mu1 = 0), so the
    trend fit is never the worse of the two. The trend carries a profile-likelihood
    interval; mu0, sigma and xi carry the delta method's (see ``_trend_bounds``).
    ``intervals=False`` leaves every bound, the stationary fit's too, NaN: the
    likelihood-ratio test alone costs a tenth as much. ``stationary``, the ``fit_gev`` of
    the same maxima where the caller has made it already, saves refitting it.
    """
    x, c = _check_trend_sample(maxima, covariate, name)
    if stationary is None:
        stationary = fit_gev(x, confidence, name=name, intervals=intervals)
    elif stationary.distribution != "gev" or not np.array_equal(stationary.data, x):
        raise ValueError(f"the stationary fit passed is not fit_gev of the same {len(x)} "
                         f"block maxima of {name}")
    scaling = _TrendScaling.of(x, c)
    z, s = scaling.standardise(x, c)

    def nll(p: np.ndarray) -> float:
        return gev_trend_negative_log_likelihood(z, s, *p)

    start = scaling.to_standard([stationary.estimate("location"), 0.0,
                                 stationary.estimate("scale"), stationary.estimate("shape")])
    result = minimise(nll, start)
    bounds = _trend_bounds(nll, result.x, scaling, confidence) if intervals \
        else np.full((4, 2), np.nan)
    parameters = {k: (float(estimate), float(lower), float(upper)) for k, estimate, (lower, upper)
                  in zip(_TREND_PARAMETERS, scaling.to_data(result.x), bounds, strict=True)}
    return TrendFit(parameters, float(result.fun) + len(x) * np.log(scaling.unit), confidence,
                    x, c, stationary)


def _trend_bounds(nll: Callable[[np.ndarray], float], theta: np.ndarray,
                  scaling: _TrendScaling, confidence: float) -> np.ndarray:
    """``(4, 2)``: lower and upper bounds of mu0, mu1, sigma, xi in data units.

    mu1's is the profile-likelihood interval. The others come from the delta method with
    the observed information (the normal approximation, extRemes' default), which costs
    one Hessian instead of a profile each: mu0, the location at c = 0 (often far outside
    the observed covariates, the year 0), is linear in the parameters; sigma's interval
    is taken on the log scale, so it stays positive; xi's is symmetric, and often narrower
    than a profile's on the heavy side (the stationary fit carries xi's profile interval).
    """
    trend = profile_bounds(nll, theta, 1, confidence, 0.1 * theta[2], (-np.inf, np.inf))
    found = covariance(hessian(nll, theta), "GEV trend fit")
    found = np.full((4, 4), np.nan) if found is None else found
    width = stats.norm.isf(0.5 * (1.0 - confidence)) * np.array([-1.0, 1.0])
    gradient = np.array([1.0, scaling.standard_covariate(0.0), 0.0, 0.0])  # of mu0 / unit
    location_spread = np.sqrt(max(gradient @ found @ gradient, 0.0))
    location, _, scale, shape = scaling.to_data(theta)
    relative_scale_spread = np.sqrt(max(found[2, 2], 0.0)) / theta[2]
    return np.array([location + scaling.unit * location_spread * width,
                     scaling.unit / scaling.covariate_unit * np.asarray(trend),
                     scale * np.exp(relative_scale_spread * width),
                     shape + np.sqrt(max(found[3, 3], 0.0)) * width])


def effective_return_levels(fit: TrendFit, covariate_value: float,
                            periods_in_blocks: Sequence[float]) -> np.ndarray:
    """``(len(periods_in_blocks), 3)``: estimate, lower, upper of the effective return level.

    The level exceeded with probability 1 / T in a block whose covariate is
    ``covariate_value`` (T in blocks): the GEV quantile with location
    mu0 + mu1 covariate_value. Intervals come from the delta method with the observed
    information, as for ``gev_return_levels``; periods T <= 1 block are NaN.
    """
    scaling = _TrendScaling.of(fit.data, fit.covariate)
    z, s = scaling.standardise(fit.data, fit.covariate)
    theta = scaling.to_standard([fit.estimate(k) for k in _TREND_PARAMETERS])
    parameter_covariance = covariance(hessian(lambda q: gev_trend_negative_log_likelihood(
        z, s, *q), theta), "effective return levels")
    s_value = scaling.standard_covariate(covariate_value)
    width = stats.norm.isf(0.5 * (1.0 - fit.confidence))
    out = np.full((len(periods_in_blocks), 3), np.nan)
    for i, period in enumerate(periods_in_blocks):
        if not float(period) > 1.0:
            continue
        p = 1.0 / float(period)

        def level(q: np.ndarray, p: float = p) -> float:
            return float(stats.genextreme.isf(p, -q[3], q[0] + q[1] * s_value, q[2]))

        variance = delta_variance(level, theta, parameter_covariance)
        spread = scaling.unit * float(np.sqrt(max(variance, 0.0)))
        estimate = stats.genextreme.isf(p, -fit.estimate("shape"),
                                        fit.location_at(covariate_value), fit.estimate("scale"))
        out[i] = estimate + width * spread * np.array([0.0, -1.0, 1.0])
    return out
