"""Extreme-value analysis in calendar time: blocks, return periods in years, zero-inflated
records, a trend in the GEV location, and the errors bad records get."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from assimilate.diagnostics import DiagnoseSettings, calendar, diagnose, extremes, summary

GEV = {"shape": 0.1, "location": 30.0, "scale": 5.0}


def daily_record(years: int, seed: int, trend: float = 0.0, start: int = 1971) -> xr.DataArray:
    """Daily values whose annual maxima follow the GEV of ``GEV`` (location + trend * year
    offset): small noise on every day, and one day a year set to a GEV draw far above it."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(f"{start}-01-01", f"{start + years - 1}-12-31", freq="D")
    values = rng.gamma(2.0, 1.0, time.size)
    year = time.year.to_numpy()
    for k, y in enumerate(range(start, start + years)):
        day = rng.choice(np.flatnonzero(year == y))
        values[day] = stats.genextreme.rvs(-GEV["shape"], GEV["location"] + trend * k,
                                           GEV["scale"], random_state=rng)
    return xr.DataArray(values, dims="time", coords={"time": time}, name="tx",
                        attrs={"units": "degC"})


def test_calendar_blocks_follow_the_calendar() -> None:
    time = xr.DataArray(pd.date_range("2000-07-01", "2004-12-31", freq="D"), dims="time",
                        name="time")
    years = calendar.blocks(time, "year")
    assert list(years.kept) == [2001, 2002, 2003, 2004]  # the half year 2000 is incomplete
    seasons = calendar.blocks(time, "season")
    assert seasons.per_year == 4 and calendar.date(seasons.start[0]) == "2000-09-01"
    # December 2000 opens the DJF of 2001: Dec 2000 to Feb 2001 is one block
    december = np.flatnonzero(time.dt.month.values == 12)[0]
    assert seasons.label[december] == seasons.label[december + 31 + 31]  # 1 February
    assert len(calendar.blocks(time, "month").kept) == 54
    values = np.arange(time.size, dtype=float)[None]
    assert years.maxima(values)[0, 0] == np.flatnonzero(time.dt.year.values == 2001)[-1]


def test_calendar_maxima_recover_a_known_gev_at_the_stated_rate() -> None:
    """90 % profile intervals from the annual maxima that calendar blocks extract cover
    the GEV's parameters at about 90 % (binomial bounds over 30 records)."""
    hits = {key: 0 for key in GEV}
    n = 30
    for seed in range(n):
        record = daily_record(40, seed)
        maxima = calendar.blocks(record["time"], "year").maxima(record.values[None]).ravel()
        assert maxima.size == 40
        fit = extremes.fit_gev(maxima, 0.9)
        for key, true in GEV.items():
            _, lower, upper = fit.parameters[key]
            hits[key] += bool(lower <= true <= upper)
    low, high = stats.binom.ppf([0.001, 0.999], n, 0.9)
    for key, count in hits.items():
        assert low <= count <= high, f"{key}: {count} of {n} intervals cover"


def test_return_periods_in_years_equal_the_analytic_quantiles() -> None:
    diag = diagnose(daily_record(50, seed=1), DiagnoseSettings(pot_quantile=0.99))
    assert diag.attrs["time_units"] == "years" and diag.attrs["block"] == "year"
    assert list(diag["return_period"].values) == [2, 5, 10, 20, 50, 100]
    shape, location, scale = (float(diag[f"gev_{k}"].sel(interval="estimate"))
                              for k in ("shape", "location", "scale"))
    expected = stats.genextreme.isf(1.0 / diag["return_period"].values, -shape, location, scale)
    np.testing.assert_allclose(diag["gev_return_level"].sel(interval="estimate"), expected,
                               rtol=1e-6)
    # the clusters per year: the POT return level for T years uses lambda T clusters
    assert 0 < float(diag["cluster_rate"]) < 366
    assert "  2-year: GPD " in summary(diag) and "; GEV " in summary(diag)


def test_season_and_month_blocks_count_blocks_per_year() -> None:
    record = daily_record(10, seed=2)
    for block, per_year in (("season", 4), ("month", 12)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short record: the fits may warn
            diag = diagnose(record, DiagnoseSettings(block=block, return_periods=[1, 10]))
        assert diag.attrs["block"] == block
        assert diag.attrs["block_length"] == pytest.approx(1 / per_year)
        assert diag["block_maximum"].size >= 10 * per_year - 1


def test_a_zero_inflated_record_has_exact_zero_quantiles() -> None:
    rng = np.random.default_rng(4)
    time = pd.date_range("2001-01-01", periods=4 * 365, freq="D")
    wet = rng.random(time.size) < 0.3
    rain = np.where(wet, rng.gamma(0.7, 8.0, time.size), 0.0).astype(np.float32)
    record = xr.DataArray(rain, dims="time", coords={"time": time}, name="pr")
    diag = diagnose(record, DiagnoseSettings(return_periods=[1, 2]))
    quantiles = diag["quantile"].sel(probability=[0.01, 0.5]).values
    assert (quantiles == 0.0).all()  # exactly zero, not a denormal of the sketch's bin
    assert float(diag["atom"][0]) == 0.0
    assert float(diag["atom_probability"][0]) == pytest.approx(np.mean(rain == 0))
    exact = np.quantile(rain, [0.75, 0.95, 0.99])
    np.testing.assert_allclose(diag["quantile"].sel(probability=[0.75, 0.95, 0.99]), exact,
                               rtol=2**-7)
    # the density left out the atom: it integrates to the wet fraction
    widths = diag["bin_right"].values - diag["bin_left"].values
    assert float((diag["histogram_density"] * widths).sum()) == pytest.approx(np.mean(rain > 0),
                                                                              rel=1e-6)
    floored = diagnose(record, DiagnoseSettings(floor=1.0, return_periods=[1, 2]))
    assert float(floored["below_floor_fraction"]) == pytest.approx(np.mean(rain < 1.0))
    assert float(floored["count"]) == np.sum(rain >= 1.0)
    np.testing.assert_allclose(floored["quantile"].sel(probability=0.5),
                               np.median(rain[rain >= 1.0]), rtol=2**-7)
    assert int(floored["non_finite_count"]) == 0


def test_a_known_linear_trend_in_location_is_recovered() -> None:
    record = daily_record(60, seed=5, trend=0.2)
    diag = diagnose(record, DiagnoseSettings(trend=True, trend_at=2030.0, pot_quantile=0.99))
    _, lower, upper = diag["trend_gev_trend"].values
    assert lower < 0.2 < upper and lower > 0
    assert float(diag["trend_p_value"]) < 0.01
    assert diag.attrs["trend_covariate"] == "year" and diag.attrs["trend_at"] == 2030.0
    shape, location, trend, scale = (float(diag[f"trend_gev_{k}"].sel(interval="estimate"))
                                     for k in ("shape", "location", "trend", "scale"))
    expected = stats.genextreme.isf(1 / 20, -shape, location + trend * 2030.0, scale)
    assert float(diag["effective_return_level"].sel(return_period=20, interval="estimate")) \
        == pytest.approx(expected, rel=1e-6)


def test_a_covariate_series_drives_the_trend() -> None:
    record = daily_record(40, seed=6, trend=0.15)
    warming = xr.DataArray(np.linspace(0.0, 1.0, record.sizes["time"]), dims="time",
                           coords={"time": record["time"]}, name="gmst")
    diag = diagnose(record, DiagnoseSettings(trend=True, pot_quantile=0.99), covariate=warming)
    assert diag.attrs["trend_covariate"] == "gmst"
    # 0.15 per year over 39 years is 5.85 per unit of a covariate rising 1 over the record
    _, lower, upper = diag["trend_gev_trend"].values
    assert lower < 0.15 * 40 < upper


@pytest.mark.parametrize(("change", "message"), [
    ("shuffled", "not strictly increasing"),
    ("short", "longer than the record"),
    ("few years", "a trend needs at least 20"),
])
def test_bad_records_get_named_errors(change: str, message: str) -> None:
    record = daily_record(12, seed=7)
    options: dict = {}
    if change == "shuffled":
        order = np.arange(record.sizes["time"])
        order[[10, 11]] = order[[11, 10]]
        record = record.isel(time=order)
    elif change == "short":
        record = record.isel(time=slice(0, 200))
    else:
        options["trend"] = True
    with pytest.raises(ValueError, match=message):
        diagnose(record, DiagnoseSettings(**options), source="station.nc")


@pytest.mark.e2e
def test_the_cli_speaks_years_and_wet_days(tmp_path) -> None:
    record = daily_record(25, seed=8)
    record = record.where(record > 2.0, 0.0)  # dry days at exactly 0
    record.to_dataset().to_netcdf(tmp_path / "station.nc")
    run = subprocess.run(
        [sys.executable, "-m", "assimilate.cli", "diagnose", str(tmp_path / "station.nc"),
         "--out", str(tmp_path / "station.diag.zarr"), "--floor", "1", "--trend",
         "--return-periods", "2,10,50"],
        capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert "  2-year: GPD " in run.stdout
    diag = xr.open_zarr(tmp_path / "station.diag.zarr")
    assert list(diag["return_period"].values) == [2, 10, 50]
    assert "trend_gev_trend" in diag and diag.attrs["floor"] == 1.0


def test_a_calendar_block_on_plain_time_is_refused_before_any_work() -> None:
    plain = xr.DataArray(np.random.default_rng(9).normal(size=400), dims="time",
                         coords={"time": np.arange(400.0)}, name="u")
    with pytest.raises(ValueError, match="needs a calendar .* give --block-steps"):
        diagnose(plain, DiagnoseSettings(block="year"), source="run.zarr")
