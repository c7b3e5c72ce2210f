"""The one maximum-likelihood fitter of the generalised Pareto (GPD) and extreme-value (GEV)
distributions, for a series and for every point of a map alike.

Parametrisation (Coles, *An Introduction to Statistical Modeling of Extreme Values*, 2001):
the GPD of excesses y over a threshold has scale sigma and shape xi,

    P(Y > y) = (1 + xi y / sigma)^(-1/xi)     (exp(-y / sigma) when xi = 0);

the GEV has location mu, scale sigma and shape xi. xi > 0 is a heavy (Frechet-type) tail;
scipy's ``genpareto`` uses c = xi and ``genextreme`` c = -xi. Parameters are fitted on
standardised data (of order one), so absolute tolerances suit every data set.

The pieces, each used by the series fits (:mod:`assimilate.diagnostics.extremes`), the
per-point fits of maps (:mod:`assimilate.diagnostics.pointwise`) and the GEV with a trend
(:mod:`assimilate.diagnostics.trend`):

- likelihoods: ``gpd_negative_log_likelihood``, ``gev_negative_log_likelihood``;
- the optimiser: ``minimise`` (Nelder-Mead with restarts), ``best_minimum`` (from the first
  of several starts inside the support), starts from L-moments (``gev_start``,
  ``gpd_start``; Hosking, Wallis & Wood, Technometrics 27, 1985);
- intervals: ``profile_bounds`` (profile likelihood, Coles 2001, ch. 2.6 and 4.3), and the
  delta method with the observed information (Coles 2001, sec. 3.3.3): ``hessian``,
  ``covariance``, ``delta_variance``, ``delta_intervals``, ``delta_bounds`` (on
  the log scale of a positive quantity);
- quantiles: ``gev_quantile`` and ``gpd_excess``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import optimize, special, stats

__all__ = [
    "MIN_PEAKS",
    "SMALL_SHAPE",
    "best_minimum",
    "check_sample",
    "covariance",
    "delta_bounds",
    "delta_intervals",
    "delta_variance",
    "gev_negative_log_likelihood",
    "gev_quantile",
    "gev_start",
    "gpd_excess",
    "gpd_negative_log_likelihood",
    "gpd_start",
    "hessian",
    "minimise",
    "profile_bounds",
]

MIN_PEAKS = 20  # fewer cluster maxima or blocks than this do not support a fit
SMALL_SHAPE = 1e-7  # |xi| below this uses the exponential / Gumbel limit

NegativeLogLikelihood = Callable[[np.ndarray], float]


# --- likelihoods ---------------------------------------------------------------------------


def gpd_negative_log_likelihood(y: np.ndarray, shape: float, scale: float) -> float:
    """-log L of the GPD for excesses ``y`` ``(n,)``; inf outside the parameter space."""
    # shape < -1: the likelihood is unbounded near the sample maximum (no MLE exists)
    if scale <= 0 or shape < -1.0:
        return np.inf
    z = y / scale
    if abs(shape) < SMALL_SHAPE:
        return len(y) * np.log(scale) + z.sum()
    t = shape * z
    if np.any(t <= -1.0):
        return np.inf
    return len(y) * np.log(scale) + (1.0 + 1.0 / shape) * np.log1p(t).sum()


def gev_negative_log_likelihood(x: np.ndarray, location: float | np.ndarray, scale: float,
                                shape: float) -> float:
    """-log L of the GEV for maxima ``x`` ``(n,)`` (``location`` a number or ``(n,)``)."""
    if scale <= 0 or shape < -1.0:
        return np.inf
    z = (x - location) / scale
    if abs(shape) < SMALL_SHAPE:
        return len(x) * np.log(scale) + z.sum() + np.exp(-z).sum()
    t = shape * z
    if np.any(t <= -1.0):
        return np.inf
    log_t = np.log1p(t)
    return len(x) * np.log(scale) + (1.0 + 1.0 / shape) * log_t.sum() + np.exp(-log_t / shape).sum()


def check_sample(data: np.ndarray, name: str, what: str) -> np.ndarray:
    """``data`` as finite float64 ``(n,)`` with at least ``MIN_PEAKS`` unequal values;
    a ValueError naming ``what`` in ``name`` otherwise."""
    data = np.asarray(data, dtype=np.float64).ravel()
    if not np.isfinite(data).all():
        raise ValueError(f"{name} holds non-finite values")
    if len(data) < MIN_PEAKS:
        raise ValueError(f"only {len(data)} {what} in {name}; a fit needs at least {MIN_PEAKS} "
                         "(lower the threshold quantile, shorten the blocks or add data)")
    if np.ptp(data) == 0:
        raise ValueError(f"all {len(data)} {what} in {name} are equal; nothing to fit")
    return data


# --- the optimiser -------------------------------------------------------------------------


def minimise(nll: NegativeLogLikelihood, start: np.ndarray,
             tolerance: float = 1e-7) -> optimize.OptimizeResult:
    """The minimum of ``nll`` from ``start`` (parameters of order one)."""
    # The initial simplex is set explicitly because scipy's shrinks to 2.5e-4 around zeros.
    # A start outside the support (infinite nll: a fixed return level moved the support
    # past a data point) leaves Nelder-Mead's simplex stuck; Powell's line searches leave it.
    start = np.asarray(start, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf outside the support
        if not np.isfinite(nll(start)):
            return optimize.minimize(nll, start, method="Powell",
                                     options={"xtol": tolerance, "ftol": tolerance**2})
        # Nelder-Mead's simplex can collapse in a curved valley: restart it from where
        # it stopped until a restart no longer improves (a 1-D simplex, a segment, cannot).
        best = None
        for _ in range(4 if len(start) > 1 else 1):
            simplex = start + np.vstack([np.zeros(len(start)),
                                         np.diag(0.1 * np.maximum(np.abs(start), 0.5))])
            result = optimize.minimize(nll, start, method="Nelder-Mead",
                                       options={"xatol": tolerance, "fatol": tolerance,
                                                "maxiter": 400 * len(start),
                                                "initial_simplex": simplex})
            improved = best is None or result.fun < best.fun - tolerance
            if best is None or result.fun < best.fun:
                best = result
            if not improved:
                break
            start = result.x
        return best


def best_minimum(nll: NegativeLogLikelihood, *starts: np.ndarray) -> np.ndarray | None:
    """The minimiser of ``nll`` from the first start inside the support; None on failure."""
    start = next((s for s in starts if np.isfinite(nll(s))), starts[-1])
    result = minimise(nll, start)
    return result.x if np.isfinite(result.fun) and np.isfinite(result.x).all() else None


def _l_moments(z: np.ndarray) -> tuple[float, float, float]:
    """First three sample L-moments, from the probability-weighted moments b0, b1, b2."""
    x, n = np.sort(z), len(z)
    i = np.arange(n)
    b0 = x.mean()
    b1 = (i * x).sum() / (n * (n - 1))
    b2 = (i * (i - 1) * x).sum() / (n * (n - 1) * (n - 2))
    return b0, 2 * b1 - b0, 6 * b2 - 6 * b1 + b0


def gev_start(z: np.ndarray) -> np.ndarray:
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


def gpd_start(z: np.ndarray) -> np.ndarray:
    """L-moment GPD (shape, scale) with location 0: l1 / l2 = 2 - xi, sigma = l1 (1 - xi)."""
    l1, l2, _ = _l_moments(z)
    shape = float(np.clip(2.0 - l1 / l2, -0.5, 0.9))
    return np.array([shape, l1 * (1.0 - shape)])


# --- profile-likelihood intervals ----------------------------------------------------------


def profile_bounds(nll: NegativeLogLikelihood, theta: np.ndarray, index: int,
                   confidence: float, step: float, limits: tuple[float, float]) -> tuple:
    """Where the profile of parameter ``index`` rises chi2_1(confidence) / 2 above the
    minimum at ``theta``: ``(lower, upper)``, NaN where the likelihood stays high up to the
    parameter's ``limits``. The search walks out in steps doubling from ``step``."""
    target = nll(theta) + 0.5 * stats.chi2.ppf(confidence, 1)

    def profile(value: float) -> float:
        nonlocal nuisance

        def conditional(rest: np.ndarray) -> float:
            return nll(np.insert(rest, index, value))

        result = minimise(conditional, nuisance, 1e-5)
        if np.isfinite(result.fun):
            nuisance = result.x  # warm start for the next value
        return result.fun

    def bound(direction: float, limit: float) -> float:
        nonlocal nuisance
        nuisance = np.delete(theta, index)
        inside = theta[index]
        for k in range(16):  # up to 2^15 initial steps away
            candidate = theta[index] + direction * step * 2.0**k
            if direction * (candidate - limit) > 0:
                return np.nan
            if profile(candidate) > target:
                return _crossing(lambda v: profile(v) - target, inside, candidate)
            inside = candidate
        return np.nan

    nuisance = np.delete(theta, index)
    return bound(-1.0, limits[0]), bound(1.0, limits[1])


def _crossing(f: Callable[[float], float], inside: float, outside: float) -> float:
    """Where ``f`` turns positive between ``inside`` (f <= 0) and ``outside`` (f > 0).

    Brent's method, falling back to bisection: the profile is only known to the
    optimiser's tolerance, so re-evaluated end points may disagree in sign.
    """
    try:
        return optimize.brentq(f, min(inside, outside), max(inside, outside), xtol=1e-6,
                               rtol=1e-6)
    except ValueError:
        pass
    for _ in range(60):
        if abs(outside - inside) <= 1e-6 * max(1.0, abs(inside)):
            break
        middle = 0.5 * (inside + outside)
        if f(middle) > 0:
            outside = middle
        else:
            inside = middle
    return 0.5 * (inside + outside)


# --- delta-method intervals ----------------------------------------------------------------


def hessian(f: NegativeLogLikelihood, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``x`` (parameters of order one)."""
    n = len(x)
    steps = np.eye(n) * h
    out = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            out[i, j] = out[j, i] = (f(x + steps[i] + steps[j]) - f(x + steps[i] - steps[j])
                                     - f(x - steps[i] + steps[j])
                                     + f(x - steps[i] - steps[j])) / (4 * h * h)
    return out


def covariance(observed_information: np.ndarray,
               what: str = "GEV return levels") -> np.ndarray | None:
    """The inverse observed information, or ``None`` where it does not exist: at a shape on
    the boundary of the support (a bounded tail) the likelihood is not smooth, the
    Hessian is not finite, and ``what`` keeps its estimates without intervals."""
    if not np.isfinite(observed_information).all():
        warnings.warn(f"{what}: the likelihood is not smooth at the fit (a tail bounded at "
                      "the sample maximum); no delta-method intervals", stacklevel=3)
        return None
    try:
        return np.linalg.pinv(observed_information)
    except np.linalg.LinAlgError:
        warnings.warn(f"{what}: the observed information cannot be inverted; no "
                      "delta-method intervals", stacklevel=3)
        return None


def delta_variance(f: Callable[[np.ndarray], float | np.ndarray], theta: np.ndarray,
                   parameter_covariance: np.ndarray | None) -> np.ndarray:
    """The delta method's variance of ``f(theta)`` (a number or an array of them) for
    parameters with ``parameter_covariance``: NaN without one. Callers choose how to read
    a slightly negative value (numerical noise)."""
    if parameter_covariance is None:
        return np.full(np.shape(f(theta)), np.nan)
    gradient = _gradient(f, theta)  # (parameter, *shape of f)
    return np.einsum("k...,kl,l...->...", gradient, parameter_covariance, gradient)


def _gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    steps = np.eye(len(x)) * h
    return np.array([(f(x + e) - f(x - e)) / (2 * h) for e in steps])


def delta_intervals(nll: NegativeLogLikelihood, theta: np.ndarray,
                    level: Callable[[np.ndarray], np.ndarray], width: float,
                    extra_spread: np.ndarray | float = 0.0, *, positive: Sequence[int] = (),
                    level_floor: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Delta-method intervals of the parameters and of ``level(theta)`` ``(period,)``:
    ``(parameter, 3)`` and ``(period, 3)`` of estimate, lower, upper, ``width`` standard
    errors apart (``extra_spread`` adds independent spread to the levels); NaN bounds where
    the observed information is not finite or not positive.

    The parameters indexed by ``positive`` (scales) and, with ``level_floor``, the levels'
    distances above it are treated on the log scale (``delta_bounds``), so that their
    intervals never cross zero or the floor."""
    estimate = level(theta)
    information = hessian(nll, theta)
    found = covariance(information) if np.isfinite(information).all() else None
    if found is None:
        spread, level_spread = np.full(len(theta), np.nan), np.full(len(estimate), np.nan)
    else:
        variance = delta_variance(level, theta, found)  # (period,)
        spread = np.sqrt(np.where(np.diag(found) >= 0, np.diag(found), np.nan))
        level_spread = np.sqrt(np.where(variance >= 0, variance, np.nan) + extra_spread**2)
    floors = np.full(len(theta), np.nan)
    floors[list(positive)] = 0.0
    return (delta_bounds(theta, spread, width, floors),
            delta_bounds(estimate, level_spread, width, level_floor))


def delta_bounds(estimate: np.ndarray, spread: np.ndarray, width: float,
                 floor: float | np.ndarray | None = None) -> np.ndarray:
    """``(*shape, 3)``: estimate, lower, upper of normal intervals ``width`` standard
    errors ``spread`` wide; where ``floor`` is a number (not None or NaN), the delta method
    on log(estimate - floor): se(log d) = se / d for d = estimate - floor, and the interval
    floor + d exp(-+ width se / d), which stays above the floor (NaN bounds where d <= 0).

    Why: the plain interval is symmetric, and for a long return level of a heavy tail its
    lower bound can fall below a physical bound (negative rain); on the log scale the
    interval is asymmetric like the likelihood's, at no extra cost."""
    estimate, spread = np.asarray(estimate, dtype=np.float64), np.asarray(spread, np.float64)
    plain = np.stack([estimate, estimate - width * spread, estimate + width * spread], -1)
    if floor is None:
        return plain
    floor = np.broadcast_to(np.asarray(floor, dtype=np.float64), estimate.shape)
    above = estimate - floor
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.exp(width * spread / np.where(above > 0, above, np.nan))
        logged = np.stack([estimate, floor + above / factor, floor + above * factor], -1)
    return np.where(np.isnan(floor)[..., None], plain, logged)


# --- quantiles -----------------------------------------------------------------------------


def gev_quantile(theta: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """GEV quantile exceeded with ``probability``: mu + sigma / xi (y^-xi - 1), y = -log(1-p),
    for ``theta`` = (location, scale, shape)."""
    location, scale, shape = theta
    log_y = np.log(-np.log1p(-probability))
    if abs(shape) < SMALL_SHAPE:
        return location - scale * log_y
    return location + scale * np.expm1(-shape * log_y) / shape


def gpd_excess(shape: float, scale: float, m: float | np.ndarray) -> float | np.ndarray:
    """The excess over the threshold exceeded once in ``m`` clusters: sigma / xi (m^xi - 1)."""
    if abs(shape) < SMALL_SHAPE:
        return scale * np.log(m)
    return scale * np.expm1(shape * np.log(m)) / shape
