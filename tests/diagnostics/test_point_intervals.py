"""Per-point return-level intervals that respect the support: the delta method on log scale.

Coverage is checked on iid daily records whose return levels are analytic: each day is
dry (0 mm) with probability 1 - WET, else 1 mm plus a GPD(XI, SIGMA) excess, so that
P(X > x) = WET (1 + XI (x - 1) / SIGMA)^(-1/XI) above 1 mm. The true T-year level of the
annual maxima (the GEV's) is F^{-1}((1 - 1/T)^(1/365.25)); the true POT level is the
daily value exceeded on average once in T years, P(X > x_T) = 1 / (365.25 T).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from assimilate.diagnostics.extremes import fit_gev, gev_return_levels
from assimilate.diagnostics.gridded import fit_per_point
from assimilate.diagnostics.settings import MapSettings
from assimilate.diagnostics.synthetic import precipitation

WET, XI, SIGMA, DAYS_PER_YEAR = 0.35, 0.1, 6.0, 365.2425
PERIODS = np.array([20.0, 100.0])


def daily_rain(n_points: int, years: int = 30, seed: int = 0) -> xr.DataArray:
    """(time, point) iid daily amounts from 1991 on: dry days at 0, wet days 1 + GPD."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("1991-01-01", f"{1990 + years}-12-31", freq="D")
    wet = rng.random((len(time), n_points)) < WET
    amount = 1.0 + stats.genpareto.rvs(XI, scale=SIGMA, size=wet.shape, random_state=rng)
    return xr.DataArray(np.where(wet, amount, 0.0), dims=("time", "point"),
                        coords={"time": time}, attrs={"units": "mm/day"})


def exceeded_with(probability: np.ndarray) -> np.ndarray:
    """The daily amount x with P(X > x) = ``probability`` (< WET)."""
    return 1.0 + stats.genpareto.isf(probability / WET, XI, scale=SIGMA)


def plain_delta(level: xr.DataArray, floor: np.ndarray | float, width: float) -> np.ndarray:
    """``(lower, upper)`` of the symmetric delta interval with the same standard error as
    the log-scale interval of ``level`` above ``floor``: se = d log((upper - floor) / d) / w."""
    e, upper = level.sel(interval="estimate").values, level.sel(interval="upper").values
    d = e - floor
    spread = d * np.log((upper - floor) / d) / width
    return np.stack([e - width * spread, e + width * spread])


def covered(bounds: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Fraction per return period of points whose ``(lower, upper)`` contain the truth."""
    return ((bounds[0] <= truth[:, None]) & (truth[:, None] <= bounds[1])).mean(axis=1)


@pytest.fixture(scope="module")
def rain() -> xr.Dataset:
    return fit_per_point(daily_rain(300), MapSettings(return_periods=list(PERIODS),
                                                      confidence=0.9),
                         space=["point"], lower_bound=0.0).compute()


def test_gpd_levels_cover_the_truth_and_never_fall_below_the_threshold(rain) -> None:
    level, threshold = rain["point_return_level"], rain["point_gpd_threshold"].values
    bounds = np.stack([level.sel(interval=k).values for k in ("lower", "upper")])
    assert np.isfinite(bounds).all()
    assert (bounds[0] > threshold).all()
    truth = exceeded_with(1.0 / (DAYS_PER_YEAR * PERIODS))
    coverage = covered(bounds, truth)
    # measured on these 300 points: 0.87 at 20 years and 0.857 at 100 years (90 % nominal,
    # binomial sd 1.7 %); the misses are mostly above the upper bound
    assert coverage[0] >= 0.85 and coverage[1] >= 0.85, coverage
    plain = covered(plain_delta(level, threshold, stats.norm.isf(0.05)), truth)
    assert np.abs(plain - coverage).max() < 0.03, "the log scale changes it little"


def test_gev_levels_profiled_over_the_shape_cover_the_truth(rain) -> None:
    """30 annual maxima with a fitted shape: the delta method's 90 % intervals covered
    0.84 of these points at 20 and 100 years (misses above the upper bound); profiled over
    the shape they cover at least 0.85, and none reaches below 0."""
    level = rain["point_gev_return_level"]
    bounds = np.stack([level.sel(interval=k).values for k in ("lower", "upper")])
    assert np.isfinite(bounds).all() and (bounds[0] > 0).all()
    truth = exceeded_with(1.0 - (1.0 - 1.0 / PERIODS) ** (1.0 / DAYS_PER_YEAR))
    coverage = covered(bounds, truth)
    # measured on these 300 points: 0.90 at 20 years and 0.88 at 100 years
    assert (coverage >= 0.85).all(), coverage
    assert (bounds[1] - bounds[0] > 0).all()
    assert rain.attrs["point_interval_method"] == ("delta method on log scale (scales, GPD "
                                                   "excess); GEV levels profiled over the "
                                                   "shape, on log scale above 0")
    assert rain.attrs["point_lower_bound"] == 0.0


def test_no_lower_bound_below_zero_for_rain_where_the_plain_delta_gives_some() -> None:
    """The example's heavy-tailed northern rows (wet days of at least 1 mm, as
    ``assimilate diagnose --per-point --floor 1``)."""
    pr = precipitation(30, 0)["pr"].isel(lat=slice(12, 16))
    result = fit_per_point(pr.where(pr >= 1.0), MapSettings(), space=("lat", "lon"),
                           lower_bound=0.0).compute()
    width = stats.norm.isf(0.025)
    for name, floor in (("point_gev_return_level", 0.0),
                        ("point_return_level", result["point_gpd_threshold"].values)):
        lower = result[name].sel(interval="lower").values
        assert np.isfinite(lower).all() and (lower >= floor).all(), name
        assert (plain_delta(result[name], floor, width)[0] < 0).sum() > 0, name
    for name in ("point_gev_scale", "point_gpd_scale"):
        assert (result[name].sel(interval="lower") > 0).all(), name


def test_series_gev_levels_with_a_lower_bound_never_fall_below_it() -> None:
    """The series' GEV levels, profiled over the shape: skewed upwards like the likelihood
    of a heavy tail, and above a given lower bound even where the interval without it
    crosses it (a 2-year level near 0)."""
    maxima = stats.genextreme.rvs(-0.4, loc=1.0, scale=5.0, size=30,
                                  random_state=np.random.default_rng(5))
    fit = fit_gev(maxima, confidence=0.95, intervals=False)
    periods = [2.0, 10.0, 100.0, 1000.0]
    unbounded = gev_return_levels(fit, 1.0, periods)
    bounded = gev_return_levels(fit, 1.0, periods, lower_bound=0.0)
    np.testing.assert_array_equal(bounded[:, 0], unbounded[:, 0])  # estimates unchanged
    np.testing.assert_allclose(bounded[:, 0], stats.genextreme.isf(
        1.0 / np.array(periods), -fit.estimate("shape"), fit.estimate("location"),
        fit.estimate("scale")), rtol=1e-8)
    assert unbounded[0, 1] < 0, "without the bound the 2-year interval crosses 0"
    assert (bounded[:, 1] > 0).all()
    above, below = bounded[:, 2] - bounded[:, 0], bounded[:, 0] - bounded[:, 1]
    assert (above[1:] > below[1:]).all(), "a heavy tail's long levels are skewed upwards"
