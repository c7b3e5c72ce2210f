"""Skill metrics against hand-computed values and independent references."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from assimilate.evaluation import metrics


def field_1d(values: np.ndarray) -> xr.DataArray:
    return xr.DataArray(values, dims=("time", "x"))


def test_rmse_and_correlation_by_hand() -> None:
    truth = field_1d(np.array([[1.0, -1.0, 1.0, -1.0], [0.0, 1.0, 0.0, -1.0]]))
    forecast = truth * 2.0
    np.testing.assert_allclose(metrics.rmse(forecast, truth), [1.0, np.sqrt(0.5)])
    np.testing.assert_allclose(metrics.correlation(forecast, truth), [1.0, 1.0])
    np.testing.assert_allclose(metrics.correlation(-forecast, truth), [-1.0, -1.0])


def test_high_correlation_time() -> None:
    corr = xr.DataArray([0.99, 0.9, 0.85, 0.7, 0.9], dims="time",
                        coords={"time": [0.0, 0.2, 0.4, 0.6, 0.8]})
    assert float(metrics.high_correlation_time(corr)) == pytest.approx(0.6)
    assert float(metrics.high_correlation_time(corr.clip(min=0.95))) == pytest.approx(0.8)


def test_energy_spectrum_parseval_and_single_modes() -> None:
    x = np.arange(32) * 2 * np.pi / 32
    u = field_1d(np.stack([3 * np.cos(5 * x), np.random.default_rng(0).standard_normal(32)]))
    spectrum = metrics.energy_spectrum(u)
    np.testing.assert_allclose(spectrum.sum("wavenumber"), 0.5 * (u**2).mean("x"))
    assert int(spectrum.isel(time=0).argmax("wavenumber")) == 5
    y = x[:, None]
    w = xr.DataArray(np.sin(3 * x[None, :]) * np.cos(4 * y) + 0 * y, dims=("y", "x"))
    spectrum2 = metrics.energy_spectrum(w)
    np.testing.assert_allclose(float(spectrum2.sum()), 0.5 * float((w**2).mean()))
    assert int(spectrum2.argmax("wavenumber")) == 5  # |(3, 4)| = 5


def test_log_spectral_distance_of_a_factor() -> None:
    a = xr.DataArray(np.array([1.0, 2.0, 3.0, 4.0]), dims="wavenumber")
    assert float(metrics.log_spectral_distance(a, a)) == 0.0
    assert float(metrics.log_spectral_distance(100 * a, a)) == pytest.approx(2.0)
    tail = xr.DataArray(np.array([1.0, 1.0, 1e-3, 1e-12]), dims="wavenumber")
    noisy = tail.copy(data=[1.0, 1.0, 1e-3, 1e-8])
    assert float(metrics.log_spectral_distance(noisy, tail)) == pytest.approx(np.sqrt(16 / 3))
    assert float(metrics.log_spectral_distance(noisy, tail, dynamic_range=1e-6)) == 0.0


def test_total_variation_is_periodic() -> None:
    u = xr.DataArray([0.0, 1.0, 0.0, -1.0], dims="x")
    assert float(metrics.total_variation(u)) == 4.0


def test_crps_matches_definition_and_gaussian_closed_form() -> None:
    rng = np.random.default_rng(1)
    members = xr.DataArray(rng.standard_normal((3, 5)), dims=("member", "x"))
    truth = xr.DataArray(rng.standard_normal(5), dims="x")
    f, o = members.values, truth.values
    direct = (np.abs(f - o).mean(0)
              - 0.5 * np.abs(f[:, None] - f[None, :]).mean((0, 1)))
    np.testing.assert_allclose(metrics.crps_ensemble(members, truth), direct, rtol=1e-10)
    big = xr.DataArray(rng.standard_normal((20000, 1)), dims=("member", "x"))
    zero = xr.DataArray([0.0], dims="x")
    gaussian = (np.sqrt(2) - 1) / np.sqrt(np.pi)  # CRPS of N(0,1) at its mean
    assert metrics.crps_ensemble(big, zero).item() == pytest.approx(gaussian, rel=0.02)


def test_spread_skill_of_a_calibrated_ensemble_is_one() -> None:
    rng = np.random.default_rng(2)
    truth = xr.DataArray(rng.standard_normal((400, 64)), dims=("time", "x"))
    members = xr.DataArray(rng.standard_normal((20, 400, 64)), dims=("member", "time", "x"))
    ratio = metrics.spread_skill_ratio(members, truth).mean("time")
    assert float(ratio) == pytest.approx(1.0, abs=0.03)
    under = metrics.spread_skill_ratio(0.3 * members, truth).mean("time")
    assert float(under) < 0.5


def test_bounded() -> None:
    field = field_1d(np.ones((3, 4)))
    assert bool(metrics.bounded(field, climatological_energy=1.0))
    assert not bool(metrics.bounded(field * 10, climatological_energy=1.0))
    assert not bool(metrics.bounded(field * np.nan, climatological_energy=1.0))
