"""Extreme-value estimators against scipy.stats, analytic return levels and coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from assimilate.diagnostics.extremes import (
    block_maxima,
    decorrelation_steps,
    fit_gev,
    fit_gpd,
    gev_return_levels,
    gpd_return_levels,
    peaks_over_threshold,
)
from assimilate.diagnostics.fitting import gev_negative_log_likelihood, gpd_negative_log_likelihood


@pytest.mark.parametrize("shape", [0.3, 1e-9, -0.2])
def test_likelihoods_equal_scipy_log_densities(shape: float) -> None:
    rng = np.random.default_rng(1)
    y = stats.genpareto.rvs(shape, scale=1.5, size=50, random_state=rng)
    assert gpd_negative_log_likelihood(y, shape, 1.5) == pytest.approx(
        -stats.genpareto.logpdf(y, shape, scale=1.5).sum(), rel=1e-9)
    x = stats.genextreme.rvs(-shape, loc=2.0, scale=0.7, size=50, random_state=rng)
    assert gev_negative_log_likelihood(x, 2.0, 0.7, shape) == pytest.approx(
        -stats.genextreme.logpdf(x, -shape, 2.0, 0.7).sum(), rel=1e-9)
    assert gpd_negative_log_likelihood(y, shape, -1.0) == np.inf


def test_maximum_likelihood_at_least_as_good_as_scipy_fit() -> None:
    rng = np.random.default_rng(2)
    y = 3e-3 * stats.genpareto.rvs(0.25, size=400, random_state=rng)  # small units on purpose
    fit = fit_gpd(y)
    c, _, scale = stats.genpareto.fit(y, floc=0.0)
    assert fit.estimate("shape") == pytest.approx(c, abs=2e-3)
    assert fit.estimate("scale") == pytest.approx(scale, rel=2e-3)
    assert fit.negative_log_likelihood <= gpd_negative_log_likelihood(y, c, scale) + 1e-6
    shape_only = fit_gpd(y, scale_interval=False)  # same fit and shape interval, no scale's
    assert shape_only.parameters["shape"] == pytest.approx(fit.parameters["shape"])
    assert shape_only.estimate("scale") == fit.estimate("scale")
    assert np.isnan(shape_only.parameters["scale"][1:]).all()
    assert np.isfinite(fit.parameters["scale"]).all()
    x = stats.genextreme.rvs(-0.15, loc=40.0, scale=5.0, size=300, random_state=rng)
    gev = fit_gev(x)
    c, loc, scale = stats.genextreme.fit(x)
    assert gev.negative_log_likelihood <= gev_negative_log_likelihood(x, loc, scale, -c) + 1e-6
    assert gev.estimate("shape") == pytest.approx(-c, abs=5e-3)
    lower, estimate, upper = (gev.parameters["location"][i] for i in (1, 0, 2))
    assert lower < estimate < upper


def _covered(interval: tuple[float, float, float], truth: float) -> bool:
    return interval[1] <= truth <= interval[2]


def test_gpd_profile_intervals_cover_at_the_stated_rate() -> None:
    """90 % intervals over 60 samples of 250 cluster maxima: about 54 should cover."""
    rng = np.random.default_rng(3)
    shape, scale, threshold, rate, period = 0.2, 2.0, 10.0, 0.5, 200.0
    true_level = threshold + stats.genpareto.isf(1.0 / (rate * period), shape, scale=scale)
    hits = np.zeros(3, dtype=int)
    for _ in range(60):
        y = stats.genpareto.rvs(shape, scale=scale, size=250, random_state=rng)
        fit = fit_gpd(y, confidence=0.9)
        level = gpd_return_levels(fit, threshold, rate, [period])[0]
        hits += [_covered(fit.parameters["shape"], shape),
                 _covered(fit.parameters["scale"], scale),
                 _covered(tuple(level), true_level)]
    # binomial(60, 0.9): mean 54, sd 2.3; these bounds fail a wrong rate, not bad luck
    assert ((hits >= 47) & (hits <= 60)).all(), hits
    assert hits.mean() < 59.5, "intervals far too wide cover every time"


def test_gev_profile_intervals_cover_at_the_stated_rate() -> None:
    rng = np.random.default_rng(4)
    shape, location, scale, block, period = 0.1, 5.0, 2.0, 1.0, 100.0
    true_level = stats.genextreme.isf(block / period, -shape, location, scale)
    hits = np.zeros(4, dtype=int)
    for _ in range(30):
        x = stats.genextreme.rvs(-shape, location, scale, size=150, random_state=rng)
        fit = fit_gev(x, confidence=0.9)
        level = gev_return_levels(fit, block, [period])[0]
        hits += [_covered(fit.parameters["shape"], shape),
                 _covered(fit.parameters["location"], location),
                 _covered(fit.parameters["scale"], scale),
                 _covered(tuple(level), true_level)]
    # binomial(30, 0.9): mean 27, sd 1.6
    assert ((hits >= 22) & (hits <= 30)).all(), hits


def test_return_levels_match_the_analytic_quantiles_of_the_fit() -> None:
    rng = np.random.default_rng(5)
    y = stats.genpareto.rvs(0.1, scale=1.0, size=3000, random_state=rng)
    fit = fit_gpd(y)
    shape, scale = fit.estimate("shape"), fit.estimate("scale")
    rate, periods = 2.0, [0.4, 10.0, 1000.0]
    levels = gpd_return_levels(fit, 5.0, rate, periods)
    assert np.isnan(levels[0]).all(), "fewer than one cluster per period: no level"
    for (estimate, lower, upper), period in zip(levels[1:], periods[1:], strict=True):
        analytic = 5.0 + scale / shape * ((rate * period) ** shape - 1.0)
        assert estimate == pytest.approx(analytic, rel=1e-6)
        assert estimate == pytest.approx(
            5.0 + stats.genpareto.isf(1.0 / (rate * period), shape, scale=scale), rel=1e-6)
        assert lower < estimate < upper
    gev = fit_gev(stats.genextreme.rvs(0.0, size=500, random_state=rng))  # Gumbel
    (level, _, _), = gev_return_levels(gev, 2.0, [200.0])
    assert level == pytest.approx(stats.genextreme.isf(0.01, -gev.estimate("shape"),
                                                       gev.estimate("location"),
                                                       gev.estimate("scale")), rel=1e-9)


def test_runs_declustering_keeps_one_maximum_per_cluster() -> None:
    series = np.zeros((2, 30))
    series[0, [3, 4, 6]] = [5.0, 7.0, 6.0]  # one cluster: gaps of at most 2 steps
    series[0, 20] = 4.0  # another, 14 steps later
    series[1, [0, 29]] = [3.0, 9.0]  # separate realisations never merge
    peaks = peaks_over_threshold(series, threshold=1.0, run_length=2, time_step=0.5)
    np.testing.assert_array_equal(peaks.values, [7.0, 4.0, 3.0, 9.0])
    np.testing.assert_array_equal(peaks.time_index, [4, 20, 0, 29])
    np.testing.assert_array_equal(peaks.realisation, [0, 0, 1, 1])
    assert peaks.n_exceedances == 6 and peaks.extremal_index == pytest.approx(4 / 6)
    assert peaks.rate == pytest.approx(4 / (2 * 30 * 0.5))
    split = peaks_over_threshold(series, threshold=1.0, run_length=1)
    assert split.n_clusters == 5, "a gap of 2 ends a cluster when run_length is 1"
    with pytest.raises(ValueError, match="threshold 9 is not below the maximum"):
        peaks_over_threshold(series, 9.0, 2, name="dissipation")


def test_block_maxima_and_decorrelation_of_an_ar1_process() -> None:
    series = np.arange(20.0).reshape(2, 10)
    np.testing.assert_array_equal(block_maxima(series, 3), [2, 5, 8, 12, 15, 18])
    rng = np.random.default_rng(6)
    phi, n = 0.9, 20_000
    x = np.zeros((4, n))
    noise = rng.standard_normal((4, n))
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    # autocorrelation phi^k falls below 1/e at k = ceil(1 / -ln phi) = 10
    assert decorrelation_steps(x) == 10


def test_bad_samples_get_clear_messages() -> None:
    with pytest.raises(ValueError, match="only 5 excesses in dissipation.*at least 20"):
        fit_gpd(np.ones(5) + np.arange(5), name="dissipation")
    with pytest.raises(ValueError, match="non-finite"):
        fit_gev(np.r_[np.arange(30.0), np.nan])
    with pytest.raises(ValueError, match="are equal"):
        fit_gev(np.ones(30))
    with pytest.raises(ValueError, match="no finite values"):
        peaks_over_threshold(np.full((2, 5), np.nan), 0.0, 1)


def test_gev_return_levels_keep_their_estimates_where_no_interval_exists() -> None:
    """At a bounded tail the likelihood is not smooth: the Hessian holds inf and NaN, and
    the delta method has no covariance (once a lost diagnosis: "SVD did not converge")."""
    from assimilate.diagnostics.fitting import covariance

    with pytest.warns(UserWarning, match="not smooth"):
        assert covariance(np.array([[np.inf, 0.0], [0.0, np.nan]])) is None
    np.testing.assert_allclose(covariance(np.diag([4.0, 2.0])), np.diag([0.25, 0.5]))
