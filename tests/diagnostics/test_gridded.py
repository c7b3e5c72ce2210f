"""fit_per_point(): per-point GEV/GPD maps against scipy, analytic levels, laziness, coverage."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from assimilate.diagnostics import calendar
from assimilate.diagnostics.extremes import peaks_over_threshold
from assimilate.diagnostics.fitting import (
    gev_negative_log_likelihood,
    gpd_negative_log_likelihood,
)
from assimilate.diagnostics.gridded import count_unfitted, fit_per_point
from assimilate.diagnostics.pointwise import OUTPUTS
from assimilate.diagnostics.settings import MapSettings

GEV = {"shape": 0.1, "location": 10.0, "scale": 2.0}  # xi > 0: heavy tail (scipy c = -xi)


def daily_field(years: int = 40, ny: int = 4, nx: int = 5, seed: int = 0) -> xr.DataArray:
    """(time, lat, lon) daily N(0, 1) noise with one day a year replaced by a GEV draw far
    above it, so that every point's annual maxima are GEV draws."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("1981-01-01", f"{1980 + years}-12-31", freq="D")
    values = rng.standard_normal((len(time), ny, nx))
    year = time.year.values
    for y in np.unique(year):
        days = np.flatnonzero(year == y)
        values[rng.choice(days, ny * nx), np.arange(ny).repeat(nx), np.tile(np.arange(nx), ny)] = \
            stats.genextreme.rvs(-GEV["shape"], GEV["location"], GEV["scale"], ny * nx,
                                 random_state=rng)
    return xr.DataArray(values, dims=("time", "lat", "lon"), name="tasmax",
                        coords={"time": time, "lat": 40.0 + np.arange(ny),
                                "lon": 5.0 + np.arange(nx)}, attrs={"units": "K"})


def gev_draws(n_years: int, n_points: int, seed: int, members: int = 0) -> xr.DataArray:
    """(time, point[, member]) GEV draws on a numeric time axis in years: with blocks of one
    step, the block maxima are the draws themselves."""
    rng = np.random.default_rng(seed)
    shape = (n_years, n_points, *((members,) if members else ()))
    values = stats.genextreme.rvs(-GEV["shape"], GEV["location"], GEV["scale"], shape,
                                  random_state=rng)
    dims = ("time", "point", *(("member",) if members else ()))
    return xr.DataArray(values, dims=dims,
                        coords={"time": ("time", np.arange(n_years, dtype=float),
                                         {"units": "years"})})


@pytest.fixture(scope="module")
def daily() -> tuple[xr.DataArray, xr.Dataset]:
    field = daily_field()
    return field, fit_per_point(field, MapSettings(run_length="2D"), space=("lat", "lon")).compute()


def test_fits_equal_scipy_maximum_likelihood_on_the_same_data(daily) -> None:
    field, result = daily
    blocks = calendar.blocks(field["time"], "year")
    for lat, lon in [(0, 0), (1, 3), (3, 4)]:
        x = field.isel(lat=lat, lon=lon).values
        point = result.isel(lat=lat, lon=lon).sel(interval="estimate")
        maxima = blocks.maxima(x).ravel()
        c, loc, scale = stats.genextreme.fit(maxima)
        ours = [float(point[f"point_gev_{k}"]) for k in ("location", "scale", "shape")]
        assert gev_negative_log_likelihood(maxima, *ours) <= gev_negative_log_likelihood(maxima, loc, scale, -c) + 1e-6
        np.testing.assert_allclose(ours, [loc, scale, -c], rtol=1e-2, atol=1e-2)

        threshold = float(point["point_gpd_threshold"])
        assert threshold == pytest.approx(np.quantile(x, 0.95))
        peaks = peaks_over_threshold(x, threshold, 2)
        assert int(point["point_n_clusters"]) == peaks.n_clusters
        excesses = peaks.values - threshold
        c, _, scale = stats.genpareto.fit(excesses, floc=0.0)
        ours = [float(point["point_gpd_shape"]), float(point["point_gpd_scale"])]
        assert gpd_negative_log_likelihood(excesses, *ours) <= gpd_negative_log_likelihood(excesses, c, scale) + 1e-6
        np.testing.assert_allclose(ours, [c, scale], rtol=1e-2, atol=1e-2)
        assert float(point["point_gpd_rate"]) == pytest.approx(peaks.n_clusters / 40, rel=1e-3)


def test_return_levels_are_the_model_quantiles_at_the_fit(daily) -> None:
    _, result = daily
    estimate = result.sel(interval="estimate")
    periods = result["return_period"].values
    assert list(periods) == [2, 5, 10, 20, 50, 100]
    assert result["return_period"].attrs["units"] == "years"
    mu, sigma, xi = (estimate[f"point_gev_{k}"].values for k in ("location", "scale", "shape"))
    expected = stats.genextreme.isf(1.0 / periods[:, None, None], -xi, mu, sigma)
    np.testing.assert_allclose(estimate["point_gev_return_level"].values, expected, rtol=1e-9)
    u, rate = estimate["point_gpd_threshold"].values, estimate["point_gpd_rate"].values
    xi, sigma = estimate["point_gpd_shape"].values, estimate["point_gpd_scale"].values
    m = rate * periods[:, None, None]
    np.testing.assert_allclose(estimate["point_return_level"].values,
                               u + sigma / xi * (m**xi - 1.0), rtol=1e-9)
    for name, dims in OUTPUTS.items():
        values = result[name].transpose(*(d for d in dims if d == "return_period"),
                                        "lat", "lon", *(d for d in dims if d == "interval"))
        assert values.dtype == np.float64
        if "interval" in dims:
            e, lo, hi = (values.sel(interval=k).values for k in ("estimate", "lower", "upper"))
            assert (np.isfinite(lo) & (lo < e) & (e < hi)).all(), name
    assert result.attrs["point_block"] == "year"
    assert result.attrs["point_interval_method"] == \
        "delta method on log scale (scales, GPD excess); GEV levels profiled over the shape"
    assert "point_lower_bound" not in result.attrs


def test_building_the_result_computes_nothing() -> None:
    field = daily_field(years=22, ny=2, nx=3).chunk({"time": 1000})
    calls, lock = [], threading.Lock()

    def load(block: np.ndarray) -> np.ndarray:
        with lock:
            calls.append(block.shape)
        return block

    counted = field.copy(data=da.map_blocks(load, field.data, dtype=field.dtype))
    calls.clear()  # map_blocks calls load once on an empty array to learn its output type
    result = fit_per_point(counted, MapSettings(block="season"), space=("lat", "lon"))
    assert calls == [], "fit_per_point() computes nothing until asked"
    assert all(isinstance(v.data, da.Array) for v in result.data_vars.values())
    computed = result.compute()
    assert len(calls) >= counted.data.npartitions
    # 22 years of seasons less the first DJF (no December) and the last (December alone)
    assert (computed["point_n_blocks"] == 4 * 22 - 1).all()


def test_delta_intervals_of_the_20_year_level_cover_the_truth_at_the_stated_rate() -> None:
    field = gev_draws(n_years=100, n_points=300, seed=7)
    result = fit_per_point(field, MapSettings(block=1, return_periods=[20.0], confidence=0.9),
                           space=["point"]).compute()
    assert result["return_period"].attrs["units"] == "years"
    truth = stats.genextreme.isf(1 / 20, -GEV["shape"], GEV["location"], GEV["scale"])
    level = result["point_gev_return_level"].sel(return_period=20.0)
    covered = (level.sel(interval="lower") <= truth) & (truth <= level.sel(interval="upper"))
    # 90 % nominal, binomial sd 1.7 % on 300 points; the symmetric delta interval runs about
    # 3 % under its level on 100 heavy-tailed maxima (0.84-0.91 over seeds 7-14)
    assert 0.80 <= float(covered.mean()) <= 0.96
    shape = result["point_gev_shape"]
    assert 0.80 <= float(((shape.sel(interval="lower") <= GEV["shape"])
                          & (GEV["shape"] <= shape.sel(interval="upper"))).mean()) <= 0.96


def test_realisations_are_pooled() -> None:
    field = gev_draws(n_years=15, n_points=2, seed=3, members=2)
    result = fit_per_point(field, MapSettings(block=1, return_periods=[20.0]),
                           space=["point"]).compute()
    assert (result["point_n_blocks"] == 30).all()
    maxima = field.isel(point=0).values.ravel()
    c, loc, scale = stats.genextreme.fit(maxima)
    ours = [float(result[f"point_gev_{k}"][0, 0]) for k in ("location", "scale", "shape")]
    assert gev_negative_log_likelihood(maxima, *ours) <= gev_negative_log_likelihood(maxima, loc, scale, -c) + 1e-6


def test_numeric_time_defaults_and_a_store_round_trip(tmp_path) -> None:
    field = gev_draws(n_years=60, n_points=2, seed=2)  # independent draws: 1 decorrelation step
    result = fit_per_point(field, space=["point"])
    # 25 decorrelation steps, halved until the record holds 40 blocks
    assert result.attrs["point_block"] == "1 steps"
    np.testing.assert_allclose(result["return_period"], np.geomspace(2.0, 600.0, 12))
    result.to_zarr(tmp_path / "maps.zarr", zarr_format=3)
    xr.testing.assert_identical(xr.open_zarr(tmp_path / "maps.zarr").compute(),
                                result.compute())


def test_nan_points_and_short_records_give_nan_not_errors() -> None:
    field = daily_field(years=6, ny=2, nx=2)
    field[:, 0, 0] = np.nan  # "ocean"
    result = fit_per_point(field, space=("lat", "lon")).compute()
    for name in OUTPUTS:
        if not name.startswith("point_n_"):
            assert np.isnan(result[name].isel(lat=0, lon=0)).all(), name
    assert np.isnan(result["point_gev_shape"]).all(), "6 annual maxima support no fit"
    assert int(result["point_n_blocks"][0, 1]) == 6 and int(result["point_n_blocks"][0, 0]) == 0
    assert np.isfinite(result["point_gpd_shape"][1, 1]).all(), "but enough clusters"
    assert count_unfitted(result) == {"points": 4, "no_data": 1, "too_few_blocks": 3,
                                      "gev_failed": 0, "too_few_clusters": 0, "gpd_failed": 0}


def test_chunked_input_gives_the_same_result_as_one_chunk() -> None:
    field = gev_draws(n_years=30, n_points=24, seed=5).expand_dims(lat=[0.0, 1.0], axis=1)
    whole = fit_per_point(field, space=("lat", "point"))
    chunked = fit_per_point(field.chunk({"point": 5}), space=("lat", "point"),
                            chunk_bytes=30 * 8 * 4)
    assert whole["point_gev_shape"].data.npartitions == 1
    assert chunked["point_gev_shape"].data.npartitions == 12
    xr.testing.assert_identical(whole.compute(), chunked.compute())


def test_bad_input_is_named() -> None:
    field = gev_draws(n_years=30, n_points=3, seed=1)
    with pytest.raises(ValueError, match=r"lacks the dims \['lat'\]"):
        fit_per_point(field, space=["lat"])
    backwards = field.assign_coords(time=field["time"].values[::-1])
    with pytest.raises(ValueError, match="not strictly increasing"):
        fit_per_point(backwards, space=["point"])
    with pytest.raises(ValueError, match="block of 31 steps is longer than the record"):
        fit_per_point(field, MapSettings(block=31), space=["point"])
    with pytest.raises(ValueError, match="not a calendar axis: block must be a whole number"):
        fit_per_point(field, MapSettings(block="year"), space=["point"])
    days = daily_field(years=1, ny=1, nx=1).isel(time=slice(0, 100))
    with pytest.raises(ValueError, match="a year block is longer than the record"):
        fit_per_point(days, space=["lat", "lon"])
    with pytest.raises(ValueError, match="block must be one of year, season, month"):
        fit_per_point(days, MapSettings(block="decade"), space=["lat", "lon"])
    with pytest.raises(ValueError, match="return_periods must be positive"):
        fit_per_point(field, MapSettings(block=1, return_periods=[0.0]), space=["point"])


def test_per_point_trends_equal_the_trend_fit_of_each_point() -> None:
    """With ``trend``, each point's trend and p-value are those of ``fit_gev_trend`` on its
    annual maxima against the year; a point given a strong trend is found, and without
    ``trend`` the maps are absent."""
    from assimilate.diagnostics.trend import fit_gev_trend

    field = daily_field(years=30, ny=2, nx=3, seed=5)
    years = field["time"].dt.year - 1981
    field[{"lat": 1, "lon": 2}] = field.isel(lat=1, lon=2) + 0.3 * years  # 9 K over the record
    result = fit_per_point(field, MapSettings(run_length="2D", trend=True),
                           space=("lat", "lon")).compute()
    blocks = calendar.blocks(field["time"], "year")
    for lat, lon in [(0, 0), (1, 2)]:
        maxima = blocks.maxima(field.isel(lat=lat, lon=lon).values).ravel()
        direct = fit_gev_trend(maxima, np.arange(1981, 2011, dtype=float), intervals=False)
        point = result.isel(lat=lat, lon=lon)
        assert float(point["point_gev_trend"]) == pytest.approx(direct.estimate("trend"),
                                                                rel=1e-6, abs=1e-9)
        assert float(point["point_trend_p_value"]) == pytest.approx(direct.p_value, rel=1e-6,
                                                                    abs=1e-12)
    assert float(result["point_trend_p_value"].isel(lat=1, lon=2)) < 1e-3
    assert result["point_gev_trend"].attrs["units"] == "K per year"
    plain = fit_per_point(field, MapSettings(run_length="2D"), space=("lat", "lon"))
    assert "point_gev_trend" not in plain and "point_trend_p_value" not in plain
