"""One season analysed alone (``season``): each year's maximum within it, peaks within it,
rates per calendar year, in the series analysis, the per-point fits and the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from assimilate.diagnostics import DiagnoseSettings, diagnose, extremes
from assimilate.diagnostics.gridded import fit_per_point
from assimilate.diagnostics.settings import ExtremeSettings, MapSettings

YEARS = 30


def daily_field(seed: int = 0, n_points: int = 2) -> xr.DataArray:
    """(time, point) daily values: a seasonal cycle plus Gumbel noise, so that every
    season's maxima differ (the summer's are largest) and a pooled fit would not match."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("1981-01-01", f"{1980 + YEARS}-12-31", freq="D")
    cycle = 10.0 * np.cos(2 * np.pi * (time.day_of_year.to_numpy() - 196) / 365.25)
    noise = stats.gumbel_r.rvs(size=(time.size, n_points), random_state=rng)
    return xr.DataArray(20.0 + cycle[:, None] + 2.0 * noise, dims=("time", "point"),
                        coords={"time": time}, name="tx", attrs={"units": "degC"})


def season_maxima(series: pd.Series, months: tuple[int, ...]) -> np.ndarray:
    """Each year's maximum over ``months``, December counted with the next year, complete
    seasons only (at least 80 days), computed directly from the dates."""
    dates = series.index
    chosen = series[dates.month.isin(months)]
    year = chosen.index.year + (chosen.index.month == 12)
    grouped = chosen.groupby(year)
    return grouped.max()[grouped.count() >= 80].to_numpy()


@pytest.mark.parametrize(("season", "months"), [("JJA", (6, 7, 8)), ("DJF", (12, 1, 2))])
def test_the_season_gev_is_the_fit_of_that_season_maxima(season: str, months) -> None:
    field = daily_field()
    series = field.isel(point=0)
    maxima = season_maxima(series.to_pandas(), months)
    assert maxima.size == (YEARS if season == "JJA" else YEARS - 1)  # Jan-Feb 1981 incomplete
    expected = extremes.fit_gev(maxima)
    diag = diagnose(series.to_dataset(), DiagnoseSettings(season=season, run_length="2D"))
    np.testing.assert_allclose(np.sort(diag["block_maximum"].values), np.sort(maxima))
    for name in ("location", "scale", "shape"):
        assert float(diag[f"gev_{name}"].sel(interval="estimate")) == \
            pytest.approx(expected.estimate(name), rel=1e-6, abs=1e-9)
    assert diag.attrs["season"] == season and diag.attrs["block_length"] == 1.0
    # peaks only from the season, above the season's own quantile; rates per calendar year
    in_season = series.sel(time=series["time"].dt.month.isin(months)).values
    assert float(diag["pot_threshold"]) == pytest.approx(np.quantile(in_season, 0.9))
    assert set(pd.DatetimeIndex(diag["peak_time"].values).month) <= set(months)
    assert float(diag["cluster_rate"]) == pytest.approx(int(diag["n_clusters"]) / YEARS,
                                                        rel=2e-3)
    # the same record without a season: its GEV is of the calendar years' maxima
    if season == "DJF":
        whole = diagnose(series.to_dataset(), DiagnoseSettings(run_length="2D"))
        assert float(whole["gev_location"][0]) > float(diag["gev_location"][0]) + 10.0


def test_per_point_season_fits_equal_the_season_maxima_fits() -> None:
    field = daily_field(seed=1)
    result = fit_per_point(field, MapSettings(season="JJA", run_length="2D"),
                           space=("point",)).compute()
    assert result.attrs["point_season"] == "JJA" and result.attrs["point_block"] == "JJA"
    assert result.attrs["point_run_length"] == 2
    for point in range(field.sizes["point"]):
        series = field.isel(point=point)
        expected = extremes.fit_gev(season_maxima(series.to_pandas(), (6, 7, 8)))
        fitted = result.isel(point=point).sel(interval="estimate")
        ours = [float(fitted[f"point_gev_{k}"]) for k in ("location", "scale", "shape")]
        np.testing.assert_allclose(ours, [expected.estimate(k) for k in
                                          ("location", "scale", "shape")], rtol=1e-2, atol=1e-2)
        summer = series.sel(time=series["time"].dt.month.isin((6, 7, 8))).values
        threshold = np.quantile(summer, 0.95)
        assert float(fitted["point_gpd_threshold"]) == pytest.approx(threshold)
        peaks = extremes.peaks_over_threshold(
            np.where(series["time"].dt.month.isin((6, 7, 8)), series.values, np.nan)[None],
            threshold, 2)
        assert float(fitted["point_n_clusters"]) == peaks.n_clusters
        assert float(fitted["point_gpd_rate"]) == pytest.approx(peaks.n_clusters / YEARS,
                                                                rel=2e-3)  # per year


def test_the_per_point_default_run_length_is_each_points_own() -> None:
    from tests.diagnostics.test_declustering import CAP, seasonal_record

    record, n_clusters, _ = seasonal_record(years=20)
    field = record.expand_dims(point=[0]).transpose("time", "point")
    result = fit_per_point(field, MapSettings(pot_quantile=0.9), space=("point",)).compute()
    assert "intervals estimator" in result.attrs["point_run_length_method"]
    assert float(result["point_gpd_threshold"][0]) == CAP
    assert abs(float(result["point_n_clusters"][0]) - n_clusters) <= 0.1 * n_clusters


def test_seasons_refused_where_they_cannot_be_read() -> None:
    field = daily_field().isel(point=0)
    numeric = field.assign_coords(time=np.arange(field.size, dtype=float))
    with pytest.raises(ValueError, match="season 'JJA' needs a calendar .*time axis"):
        diagnose(numeric.to_dataset(), DiagnoseSettings(season="JJA"))
    with pytest.raises(ValueError, match="season must be one of DJF, MAM, JJA, SON, got 'jja'"):
        DiagnoseSettings(season="jja")
    for block in ({"block": "month"}, {"block": "season"}, {"block_steps": 10}):
        with pytest.raises(ValueError, match="season JJA takes the maximum of each year's JJA"):
            DiagnoseSettings(season="JJA", **block)
    assert ExtremeSettings(season="JJA", block="year").season == "JJA"


@pytest.mark.e2e
def test_the_cli_analyses_one_season_with_a_run_length_in_days(tmp_path) -> None:
    daily_field().isel(point=0).to_dataset().to_netcdf(tmp_path / "station.nc")
    out = tmp_path / "station.diag.zarr"
    command = [sys.executable, "-m", "assimilate.cli", "diagnose", str(tmp_path / "station.nc")]
    run = subprocess.run([*command, "--season", "JJA", "--run-length", "2D", "--out", str(out),
                          "--quiet"], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    attrs = xr.open_zarr(out).attrs
    assert attrs["season"] == "JJA" and attrs["block"] == "JJA"
    assert attrs["pot_run_length"] == 2 and attrs["pot_run_length_time"] == "2 days"
    assert attrs["pot_run_length_method"] == "given"
    assert 0 < attrs["extremal_index_estimate"] <= 1
    bad = subprocess.run([*command, "--run-length", "abc", "--out", str(tmp_path / "x.zarr")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "'abc'" in bad.stderr, bad.stderr
    assert not (tmp_path / "x.zarr").exists()
