"""Climate-extremes indices: the yearly series equal the ETCCDI definitions computed
directly (loops over years), from a CF flux in kg m-2 s-1, and feed `diagnose` as a user
runs it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from assimilate.diagnostics.indices import indices
from assimilate.diagnostics.synthetic import precipitation


@pytest.fixture(scope="module")
def rain() -> xr.DataArray:
    return precipitation(years=4, seed=2, n_lat=2, n_lon=3, cf=True)["pr"]


def _longest_run(dry: np.ndarray) -> int:
    longest = run = 0
    for day in dry:
        run = run + 1 if day else 0
        longest = max(longest, run)
    return longest


def test_indices_equal_their_definitions(rain) -> None:
    found = indices(rain, ["rx1day", "rx5day", "cdd", "r95ptot"])
    depth = rain * 86400.0  # mm/day of liquid water
    years = depth["time"].dt.year
    np.testing.assert_allclose(found["rx1day"].values, depth.groupby(years).max().values,
                               rtol=1e-5)
    five = depth.rolling(time=5).sum().groupby(years).max()
    np.testing.assert_allclose(found["rx5day"].values, five.values, rtol=1e-5)
    assert found["rx1day"].attrs["units"] == "mm/day" and found["rx5day"].attrs["units"] == "mm"
    point = depth.isel(lat=1, lon=2)
    assert np.isfinite(point).all()
    for i, year in enumerate(np.unique(years)):
        dry = (point.sel(time=str(year)) < 1.0).values
        assert found["cdd"].isel(lat=1, lon=2, time=i) == _longest_run(dry)
    values = point.values
    wet = values >= 1.0
    percentile = np.quantile(values[wet], 0.95)
    for i, year in enumerate(np.unique(years)):
        here = (years == year).values
        heavy = values[here & wet & (values > percentile)].sum()
        assert found["r95ptot"].isel(lat=1, lon=2, time=i) == pytest.approx(
            heavy / values[here & wet].sum(), rel=1e-5)
    temperature = (280.0 + 10 * np.sin(np.arange(rain.sizes["time"]) / 58.0))
    tas = xr.DataArray(temperature, dims="time", coords={"time": rain["time"]}, name="tas",
                       attrs={"units": "K"})
    hottest = indices(tas, ["txx", "tnn"])
    np.testing.assert_array_equal(hottest["txx"].values, tas.groupby(years).max().values)
    np.testing.assert_array_equal(hottest["tnn"].values, tas.groupby(years).min().values)
    assert found["rx1day"].isel(lon=0).isnull().all(), "the sea stays missing"


def test_unknown_index_and_wrong_quantity_are_refused(rain) -> None:
    with pytest.raises(ValueError, match=r"unknown index 'rx7day'; choose from rx1day"):
        indices(rain, ["rx7day"])
    with pytest.raises(ValueError, match=r"index txx: 'pr' of the data is in 'kg m-2 s-1', "
                                         r"not a temperature"):
        indices(rain, ["txx"])
    with pytest.raises(ValueError, match=r"is not daily"):
        indices(rain.isel(time=slice(None, None, 2)), ["rx1day"])


@pytest.mark.e2e
def test_indices_then_diagnose_as_a_user_runs_them(tmp_path) -> None:
    """The annual Rx1day of each point, fitted by a GEV per point."""
    precipitation(years=24, seed=4, n_lat=2, n_lon=3, cf=True).to_netcdf(tmp_path / "pr.nc")
    for command in (["indices", str(tmp_path / "pr.nc"), "--index", "rx1day,rx5day,cdd,r95ptot",
                     "--out", str(tmp_path / "idx.nc")],
                    ["diagnose", str(tmp_path / "idx.nc"), "--var", "rx5day", "--per-point",
                     "--out", str(tmp_path / "idx.diag")]):
        run = subprocess.run([sys.executable, "-m", "assimilate.cli", *command],
                             capture_output=True, text=True, timeout=600, check=False)
        assert run.returncode == 0, run.stderr[-3000:]
    written = xr.open_dataset(tmp_path / "idx.nc")
    assert set(written.data_vars) == {"rx1day", "rx5day", "cdd", "r95ptot"}
    assert int(written["cdd"].isel(lon=1).min()) >= 1
    diag = xr.open_zarr(tmp_path / "idx.diag")
    fitted = diag["point_gev_shape"].sel(interval="estimate").notnull()
    assert int(fitted.sum()) >= 4 and diag.attrs["variable"] == "rx5day"
    refused = subprocess.run([sys.executable, "-m", "assimilate.cli", "indices",
                              str(tmp_path / "pr.nc"), "--index", "rx9day", "--out",
                              str(tmp_path / "bad.nc")], capture_output=True, text=True,
                             timeout=300, check=False)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.nc").exists()
