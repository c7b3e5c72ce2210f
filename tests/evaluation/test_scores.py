"""The scores against hand-computed values on tiny data, independent references, Dask
laziness, and one number for one ensemble whichever command scores it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from assimilate.da.climatology import Climatology
from assimilate.da.contract import score
from assimilate.evaluation import scores
from assimilate.evaluation.forecast_skill import forecast_scores
from assimilate.training.batches import Normalisation
from pde.descriptor import KURAMOTO_SIVASHINSKY


def field_1d(values: np.ndarray) -> xr.DataArray:
    return xr.DataArray(values, dims=("time", "x"))


def ensemble(values) -> xr.DataArray:
    """``(member, x)`` from nested lists."""
    return xr.DataArray(np.array(values, dtype=np.float64), dims=("member", "x"))


def test_rmse_and_correlation_by_hand() -> None:
    truth = field_1d(np.array([[1.0, -1.0, 1.0, -1.0], [0.0, 1.0, 0.0, -1.0]]))
    forecast = truth * 2.0
    np.testing.assert_allclose(scores.rmse(forecast, truth), [1.0, np.sqrt(0.5)])
    np.testing.assert_allclose(scores.correlation(forecast, truth), [1.0, 1.0])
    np.testing.assert_allclose(scores.correlation(-forecast, truth), [-1.0, -1.0])
    where = xr.DataArray([True, False, False, True], dims="x")  # errors 1, 0 / 0, 1
    np.testing.assert_allclose(scores.rmse(forecast, truth, where=where), [1.0, np.sqrt(0.5)])
    np.testing.assert_allclose(scores.rmse(forecast, truth, where=~where), [1.0, np.sqrt(0.5)])
    np.testing.assert_allclose(scores.rmse(forecast, truth, ("time", "x"), where=where),
                               np.sqrt(3 / 4))


def test_a_non_finite_value_makes_its_scores_nan_not_skipped() -> None:
    truth = field_1d(np.zeros((2, 4)))
    forecast = truth.copy(data=[[1.0, np.nan, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(scores.rmse(forecast, truth), [np.nan, 1.0])
    members = xr.concat([forecast, forecast + 1], dim="member")
    assert np.isnan(scores.ensemble_spread(members).values[0])
    assert np.isnan(float(scores.spread_skill_ratio(members, truth, over=("time",))))


def test_high_correlation_time() -> None:
    corr = xr.DataArray([0.99, 0.9, 0.85, 0.7, 0.9], dims="time",
                        coords={"time": [0.0, 0.2, 0.4, 0.6, 0.8]})
    assert float(scores.high_correlation_time(corr)) == pytest.approx(0.6)
    assert float(scores.high_correlation_time(corr.clip(min=0.95))) == pytest.approx(0.8)


def test_climatological_std_is_the_one_of_climatology_and_normalisation() -> None:
    states = np.random.default_rng(4).normal(0.3, 2.0, (5, 7, 16)).astype(np.float32)
    assert scores.climatological_std(np.array([[1.0, 3.0], [1.0, 3.0]])) == 1.0  # ddof 0
    expected = scores.climatological_std(states)
    climatology = Climatology.of_states(states, "test")
    assert climatology.std == pytest.approx(expected, rel=1e-6)
    normalisation = Normalisation.of(xr.DataArray(states, dims=("trajectory", "time", "x")))
    assert normalisation.std == pytest.approx(expected, rel=1e-12)


def test_spread_by_hand_uses_the_unbiased_variance() -> None:
    members = ensemble([[1.0, -1.0], [3.0, 1.0]])  # per point var (M - 1) = 2, 2
    assert float(scores.ensemble_spread(members)) == pytest.approx(np.sqrt(2.0))
    assert np.isnan(float(scores.ensemble_spread(members.isel(member=[0]))))
    truth = xr.DataArray([0.0, 0.0], dims="x")  # mean (2, 0): RMSE sqrt(2)
    assert float(scores.spread_skill_ratio(members, truth)) == pytest.approx(1.0)
    assert float(scores.spread_skill_ratio(members, truth + 2.0)) == pytest.approx(
        np.sqrt(2.0) / np.sqrt(2.0))  # mean (2, 0) − 2: errors (0, −2), RMSE sqrt(2)
    late = xr.concat([members, 2 * members], dim="time")  # spreads √2, 2√2; RMSEs √2, 2√2
    ratio = scores.spread_skill_ratio(late, xr.concat([truth, truth], dim="time"),
                                      over=("time",))
    assert float(ratio) == pytest.approx(1.0)


def test_spread_skill_of_a_calibrated_ensemble_is_sqrt_m_over_m_plus_one() -> None:
    """Members and truth drawn from one distribution: E var = σ², E (mean − truth)² =
    σ²(1 + 1/M), so the ratio is sqrt(M / (M + 1)) (Fortin et al. 2014)."""
    rng = np.random.default_rng(2)
    truth = xr.DataArray(rng.standard_normal((400, 64)), dims=("time", "x"))
    for n_members in (4, 20):
        members = xr.DataArray(rng.standard_normal((n_members, 400, 64)),
                               dims=("member", "time", "x"))
        ratio = scores.spread_skill_ratio(members, truth, over=("time",))
        assert float(ratio) == pytest.approx(np.sqrt(n_members / (n_members + 1)), rel=0.01)
    under = scores.spread_skill_ratio(0.3 * members, truth, over=("time",))
    assert float(under) < 0.5


def test_crps_matches_definition_and_gaussian_closed_form() -> None:
    rng = np.random.default_rng(1)
    members = xr.DataArray(rng.standard_normal((3, 5)), dims=("member", "x"))
    truth = xr.DataArray(rng.standard_normal(5), dims="x")
    f, o = members.values, truth.values
    direct = (np.abs(f - o).mean(0)
              - 0.5 * np.abs(f[:, None] - f[None, :]).mean((0, 1)))
    np.testing.assert_allclose(scores.crps_ensemble(members, truth), direct, rtol=1e-10)
    pair = scores.crps_ensemble(ensemble([[0.0], [2.0]]), xr.DataArray([0.0], dims="x"))
    assert pair.item() == 0.5  # E|X − y| − ½ E|X − X'| = 1 − ½ · 1
    big = xr.DataArray(rng.standard_normal((20000, 1)), dims=("member", "x"))
    zero = xr.DataArray([0.0], dims="x")
    gaussian = (np.sqrt(2) - 1) / np.sqrt(np.pi)  # CRPS of N(0,1) at its mean
    assert scores.crps_ensemble(big, zero).item() == pytest.approx(gaussian, rel=0.02)


def test_rank_histogram_by_hand() -> None:
    members = ensemble([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    truth = xr.DataArray([-1.0, 0.5, 0.5, 2.0], dims="x")  # ranks 0, 1, 1, 2
    histogram = scores.rank_histogram(members, truth, ("x",))
    assert histogram.dims == ("rank",)
    np.testing.assert_array_equal(histogram, [1, 2, 1])
    # frequencies 1/4, 1/2, 1/4 against 1/3 each: 1/12 + 1/6 + 1/12
    assert float(scores.rank_reliability(histogram)) == pytest.approx(1 / 3)


def test_rank_reliability_is_zero_when_flat_and_largest_when_one_sided() -> None:
    flat = xr.DataArray([5, 5, 5, 5, 5], dims="rank")
    assert float(scores.rank_reliability(flat)) == 0.0
    one_sided = xr.DataArray([0, 0, 0, 0, 20], dims="rank")  # M = 4: 2M / (M + 1)
    assert float(scores.rank_reliability(one_sided)) == pytest.approx(8 / 5)


def test_energy_spectrum_parseval_and_single_modes() -> None:
    x = np.arange(32) * 2 * np.pi / 32
    u = field_1d(np.stack([3 * np.cos(5 * x), np.random.default_rng(0).standard_normal(32)]))
    spectrum = scores.energy_spectrum(u)
    np.testing.assert_allclose(spectrum.sum("wavenumber"), 0.5 * (u**2).mean("x"))
    assert int(spectrum.isel(time=0).argmax("wavenumber")) == 5
    y = x[:, None]
    w = xr.DataArray(np.sin(3 * x[None, :]) * np.cos(4 * y) + 0 * y, dims=("y", "x"))
    spectrum2 = scores.energy_spectrum(w)
    np.testing.assert_allclose(float(spectrum2.sum()), 0.5 * float((w**2).mean()))
    assert int(spectrum2.argmax("wavenumber")) == 5  # |(3, 4)| = 5


def test_log_spectral_distance_of_a_factor() -> None:
    a = xr.DataArray(np.array([1.0, 2.0, 3.0, 4.0]), dims="wavenumber")
    assert float(scores.log_spectral_distance(a, a)) == 0.0
    assert float(scores.log_spectral_distance(100 * a, a)) == pytest.approx(2.0)
    tail = xr.DataArray(np.array([1.0, 1.0, 1e-3, 1e-12]), dims="wavenumber")
    noisy = tail.copy(data=[1.0, 1.0, 1e-3, 1e-8])
    assert float(scores.log_spectral_distance(noisy, tail)) == pytest.approx(np.sqrt(16 / 3))
    assert float(scores.log_spectral_distance(noisy, tail, dynamic_range=1e-6)) == 0.0
    zero_mode = a.copy(data=[1e6, 2.0, 3.0, 4.0])  # wavenumber 0 never counts
    assert float(scores.log_spectral_distance(zero_mode, a, dynamic_range=1e-6)) == 0.0
    assert np.isnan(float(scores.log_spectral_distance(a * np.nan, a, dynamic_range=1e-6)))


def test_total_variation_is_periodic() -> None:
    u = xr.DataArray([0.0, 1.0, 0.0, -1.0], dims="x")
    assert float(scores.total_variation(u)) == 4.0


def test_relative_error_of_a_series_mean() -> None:
    actual = xr.DataArray([1.0, 3.0], dims="time")
    assert float(scores.relative_error(actual * 1.1, actual)) == pytest.approx(0.1)
    np.testing.assert_allclose(scores.relative_error(actual, actual + 2, ()), [-2 / 3, -0.4])


def test_stable_bounds_every_value_by_ten_climatological_stds() -> None:
    field = field_1d(np.array([[1.0, -1.0], [19.9, 0.0]]))  # mean 0, std 2: bound 20
    assert bool(scores.stable(field, mean=0.0, std=2.0, dims=("time", "x")))
    assert not bool(scores.stable(field, mean=-0.2, std=2.0, dims=("time", "x")))
    np.testing.assert_array_equal(scores.stable(field, mean=0.0, std=1.0, dims=("x",)),
                                  [True, False])
    for bad in (np.nan, np.inf):
        assert not bool(scores.stable(field.where(field < 10, bad), mean=0.0, std=2.0,
                                      dims=("time", "x")))


def test_scores_of_dask_inputs_stay_lazy() -> None:
    rng = np.random.default_rng(5)
    members = xr.DataArray(rng.standard_normal((3, 6, 16)),
                           dims=("member", "time", "x")).chunk({"time": 2})
    truth = xr.DataArray(rng.standard_normal((6, 16)), dims=("time", "x")).chunk({"time": 2})
    lazy = {
        "rmse": scores.rmse(members.mean("member"), truth),
        "spread_skill": scores.spread_skill_ratio(members, truth),
        "crps": scores.crps_ensemble(members, truth),
        "rank": scores.rank_histogram(members, truth, ("x",)),
        "stable": scores.stable(members, mean=0.0, std=1.0, dims=("member", "x")),
        "spectrum": scores.log_spectral_distance(scores.energy_spectrum(members),
                                                 scores.energy_spectrum(truth), 1e-6),
    }
    for name, value in lazy.items():
        assert value.chunks is not None, f"{name} computed eagerly"
    np.testing.assert_allclose(lazy["crps"].values,
                               scores.crps_ensemble(members.compute(), truth.compute()))


def test_analysis_scores_by_hand() -> None:
    """One trajectory, two members ±1 about a mean that misses the truth (0) by 1 at
    step 1 and by 2 at step 2, on four points of which the first two are observed."""
    offsets = np.array([0.0, 1.0, 2.0])[:, None]
    states = np.stack([offsets + 1 + np.zeros(4), offsets - 1 + np.zeros(4)])[None]
    states[0, :, 2, :2] += 2.0  # step 2: the observed points miss by 4, the others by 2
    truth = np.zeros((1, 3, 4))
    result = scores.analysis_scores(
        states, truth, std=2.0, mean=0.0, observed_points=np.array([1, 1, 0, 0], bool),
        horizons=(1, 5), spin_up=1, series=lambda field: np.abs(field).mean(-1)
    ).isel(trajectory=0)
    np.testing.assert_allclose(result["nrmse_time"], [0.0, 0.5, np.sqrt(10) / 2])
    assert float(result["nrmse_short"]) == pytest.approx(0.5)  # steps 1..1
    assert float(result["nrmse_long"]) == pytest.approx((0.5 + np.sqrt(10) / 2) / 2)
    assert float(result["nrmse_observed"]) == pytest.approx(np.sqrt((1 + 16) / 2) / 2)
    assert float(result["nrmse_unobserved"]) == pytest.approx(np.sqrt((1 + 4) / 2) / 2)
    # spread sqrt(2) at both steps; RMSE 1 and sqrt(10): ratio of the time means
    assert float(result["spread_ratio"]) == pytest.approx(np.sqrt(2) / ((1 + np.sqrt(10)) / 2))
    np.testing.assert_array_equal(result["rank_histogram"], [8, 0, 0])  # truth below all
    assert float(result["stable"]) == 1.0
    unstable = scores.analysis_scores(
        states, truth, std=0.2, mean=0.0, observed_points=np.ones(4, bool),
        horizons=(1, 5), spin_up=1, series=lambda field: field.mean(-1)).isel(trajectory=0)
    assert float(unstable["stable"]) == 0.0  # 5 > 10 × 0.2
    assert np.isnan(unstable["nrmse_unobserved"]).all()  # every point observed


def test_forecast_and_da_give_the_same_numbers_for_one_ensemble() -> None:
    """``evaluate forecast`` (:func:`forecast_scores`), ``evaluate da``
    (:func:`analysis_scores`) and ``run`` (:func:`score`) on one ensemble and truth:
    the DA scores after a spin-up of all but the last step are the forecast's at its last
    lead; the ensemble mean as a one-member forecast has the DA's nRMSE at every lead."""
    rng = np.random.default_rng(7)
    n_members, n_time, std, mean = 5, 4, 1.7, 0.2
    x = np.arange(32) * 2 * np.pi / 32
    truth = np.sin(x + 0.3 * np.arange(n_time)[:, None])[None] * 2.0  # (1, time, x)
    states = truth[:, None] + 0.4 * rng.standard_normal((1, n_members, n_time, 32))
    dims = ("initial", "member", "time", "x")
    forecast = forecast_scores(xr.DataArray(states, dims=dims),
                               xr.DataArray(truth, dims=("initial", "time", "x")),
                               std=std, mean=mean, physics=KURAMOTO_SIVASHINSKY, attrs={})
    da = scores.analysis_scores(
        states, truth, std=std, mean=mean, observed_points=np.ones(32, bool),
        horizons=(2, 3), spin_up=n_time - 1,
        series=lambda field: KURAMOTO_SIVASHINSKY.series(field)["total_variation"]
    ).isel(trajectory=0)
    last = forecast.isel(time=-1)
    assert float(da["crps"]) * std == pytest.approx(float(last["crps"]), rel=1e-12)
    assert float(da["spread_ratio"]) == pytest.approx(float(last["spread_skill"]), rel=1e-12)
    assert float(da["spectrum_error"]) == pytest.approx(float(forecast["spectrum_distance"]),
                                                        rel=1e-12)
    assert float(da["stable"]) == float(forecast["stable_fraction"]) == 1.0
    ensemble_mean = xr.DataArray(states.mean(axis=1, keepdims=True), dims=dims)
    one_member = forecast_scores(ensemble_mean, xr.DataArray(truth, dims=dims[::2] + ("x",)),
                                 std=std, mean=mean, physics=KURAMOTO_SIVASHINSKY, attrs={})
    np.testing.assert_allclose(one_member["nrmse"], da["nrmse_time"], rtol=1e-12)
    analysis = xr.Dataset({name: (("trajectory", "member", "time", "x"), states)
                           for name in ("u", "u_background")},
                          attrs={"observed_steps": json.dumps(list(range(n_time))),
                                 "climatological_std": std})
    run = score(analysis, truth, spin_up=n_time - 1)
    assert run["nrmse.a"] == pytest.approx(float(da["nrmse_time"][-1]), rel=1e-12)
    assert run["spread.a"] / run["rmse.a"] == pytest.approx(float(da["spread_ratio"]),
                                                            rel=1e-12)
    states[0, 1, 2, 5] = mean + 11 * std  # one member leaves the bound
    diverged = forecast_scores(xr.DataArray(states, dims=dims),
                               xr.DataArray(truth, dims=("initial", "time", "x")),
                               std=std, mean=mean, physics=KURAMOTO_SIVASHINSKY, attrs={})
    da = scores.analysis_scores(states, truth, std=std, mean=mean,
                                observed_points=np.ones(32, bool), horizons=(2, 3),
                                spin_up=1, series=lambda field: field.mean(-1)
                                ).isel(trajectory=0)
    assert float(diverged["stable_fraction"]) == pytest.approx(1 - 1 / n_members)
    assert float(da["stable"]) == 0.0


def test_tail_scores_of_an_analysis_against_its_truth() -> None:
    from assimilate.diagnostics.tails import analysis_tail_scores as tail_scores

    rng = np.random.default_rng(0)
    truth = rng.standard_normal((2, 400, 32))
    same_law = rng.standard_normal((2, 8, 400, 32))
    calibrated = tail_scores(same_law, truth, spin_up=10)
    np.testing.assert_allclose(calibrated["exceedance_ratio"], 1.0, atol=0.15)
    assert float(calibrated["tail_ks"].max()) < 0.15
    smoothed = tail_scores(0.3 * same_law, truth, spin_up=10)  # no member reaches the tail
    np.testing.assert_array_equal(smoothed["exceedance_ratio"], 0.0)
    np.testing.assert_array_equal(smoothed["tail_ks"], 1.0)
