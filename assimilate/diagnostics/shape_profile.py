"""GEV return-level intervals from the likelihood profiled over the shape.

With some thirty block maxima the delta method's intervals for GEV return levels fall short
of their level (measured: 82-84 % of 90 % intervals cover the truth, on the log scale or
not): the likelihood of a long return level is skewed, and the skew comes from the shape
xi. The full profile likelihood of the level (Coles, *An Introduction to Statistical
Modeling of Extreme Values*, 2001, sec. 3.3.3) covers but costs some twenty constrained
fits per level and point. Here the profile is exact in xi and quadratic in the rest:

1. on a grid of shapes xi_k around the estimate (``GRID_SPREAD`` standard errors either
   side, ``GRID_POINTS`` values), the location and scale that maximise the likelihood at
   that shape, (mu_k, sigma_k), with the minimum -log L_k and the conditional observed
   information H_k of (mu, sigma) (a few Newton steps from the neighbouring shape's fit);
2. at shape xi_k the level z = mu + sigma g_k, g_k = (y^-xi_k - 1) / xi_k with
   y = -log(1 - p), is linear in (mu, sigma): its conditional variance is
   v_k = a' H_k^-1 a with a = (1, g_k), and its conditional deviance is quadratic;
3. the interval is the set of levels whose profile deviance, min_k [2 (-log L_k + log L)
   + (z - z_k)^2 / v_k], stays below chi2_1(confidence): the union over the grid of
   z_k -+ sqrt(v_k (chi2 - 2 (-log L_k + log L))) where that is real. Above a known lower
   bound L the quadratic part is taken on log(z - L), so no bound falls below L.

Measured (200 points x 30 annual maxima, exact GEV with xi = +-0.1, and annual maxima of
iid daily rain with a GPD tail): 86-94 % of nominal 90 % intervals cover the truth at 2-,
20- and 100-year levels, at about 45 ms a point for every period at once.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

from assimilate.diagnostics.fitting import SMALL_SHAPE, gev_negative_log_likelihood, hessian

__all__ = ["GRID_POINTS", "GRID_SPREAD", "level_intervals"]

GRID_POINTS = 13
GRID_SPREAD = 3.5  # standard errors of the shape either side of its estimate
NEWTON_STEPS = 8


def _g(shape: float, log_y: np.ndarray) -> np.ndarray:
    """(y^-xi - 1) / xi for ``log_y`` = log(-log(1 - p)); -log y as xi -> 0."""
    return -log_y if abs(shape) < SMALL_SHAPE else np.expm1(-shape * log_y) / shape


def _conditional_fit(z: np.ndarray, shape: float, start: np.ndarray) -> np.ndarray | None:
    """(mu, sigma) maximising the GEV likelihood of ``z`` at fixed ``shape``: damped Newton
    steps on finite differences from ``start``, Nelder-Mead where they stall."""

    def nll(q: np.ndarray) -> float:
        return gev_negative_log_likelihood(z, q[0], q[1], shape)

    q, h = np.asarray(start, dtype=np.float64), 1e-4
    for _ in range(NEWTON_STEPS):
        information = hessian(nll, q, h)
        gradient = np.array([(nll(q + e) - nll(q - e)) / (2 * h) for e in np.eye(2) * h])
        if not (np.isfinite(information).all() and np.isfinite(gradient).all()):
            break
        try:
            step = np.linalg.solve(information, gradient)
        except np.linalg.LinAlgError:
            break
        here, damping = nll(q), 1.0
        while damping > 1e-3 and not nll(q - damping * step) <= here:
            damping /= 2
        q = q - damping * step
        if np.abs(damping * step).max() < 1e-7:
            return q
    with np.errstate(invalid="ignore", over="ignore"):
        result = optimize.minimize(nll, q if np.isfinite(nll(q)) else start,
                                   method="Nelder-Mead",
                                   options={"xatol": 1e-7, "fatol": 1e-9})
    return result.x if np.isfinite(result.fun) else None


def level_intervals(z: np.ndarray, theta: np.ndarray, shape_spread: float,
                    probabilities: np.ndarray, confidence: float,
                    floor: float | None = None) -> np.ndarray:
    """``(period, 3)`` estimate, lower, upper of the GEV levels of block maxima ``z``
    (standardised, order one) exceeded with ``probabilities``, for the fit ``theta`` =
    (location, scale, shape) with the shape's standard error ``shape_spread``; above
    ``floor`` when given. NaN bounds where the grid finds no finite interval."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    log_y = np.log(-np.log1p(-probabilities))
    best = gev_negative_log_likelihood(z, *theta)
    allowance = stats.chi2.ppf(confidence, 1)
    spread = shape_spread if np.isfinite(shape_spread) and shape_spread > 0 else 0.2
    grid = np.clip(theta[2] + spread * np.linspace(-GRID_SPREAD, GRID_SPREAD, GRID_POINTS),
                   -0.95, 2.0)
    lower = np.full(len(probabilities), np.inf)
    upper = np.full(len(probabilities), -np.inf)
    start = np.asarray(theta[:2], dtype=np.float64)
    for shape in grid[np.argsort(np.abs(grid - theta[2]))]:  # outwards: warm starts
        fitted = _conditional_fit(z, float(shape), start)
        if fitted is None:
            continue
        start = fitted
        slack = allowance - 2 * (gev_negative_log_likelihood(z, *fitted, shape) - best)
        if slack <= 0:
            continue
        bounds = _conditional_bounds(z, fitted, float(shape), log_y, slack, floor)
        if bounds is not None:
            lower, upper = np.fmin(lower, bounds[0]), np.fmax(upper, bounds[1])
    estimate = theta[0] + theta[1] * _g(theta[2], log_y)
    finite = np.isfinite(lower) & np.isfinite(upper)
    return np.stack([estimate, np.where(finite, lower, np.nan),
                     np.where(finite, upper, np.nan)], axis=-1)


def _conditional_bounds(z: np.ndarray, fitted: np.ndarray, shape: float, log_y: np.ndarray,
                        slack: float, floor: float | None) -> tuple | None:
    """The levels within ``slack`` of deviance at this shape: z_k -+ sqrt(v_k slack), or
    on log(z - floor) above a floor."""
    information = hessian(lambda q: gev_negative_log_likelihood(z, q[0], q[1], shape), fitted)
    try:
        inverse = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return None
    g = _g(shape, log_y)
    variance = inverse[0, 0] + 2 * g * inverse[0, 1] + g * g * inverse[1, 1]
    level = fitted[0] + fitted[1] * g
    half = np.sqrt(np.where(variance > 0, variance * slack, np.nan))
    if floor is None:
        return level - half, level + half
    above = np.where(level > floor, level - floor, np.nan)
    with np.errstate(invalid="ignore"):
        factor = np.exp(half / above)
    return floor + above / factor, floor + above * factor
