"""``diagnose --units``: the field converted through pint before the pass, every number then
in the new units; fields without units or of another dimension refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from assimilate.diagnostics import DiagnoseSettings, diagnose
from assimilate.diagnostics.units import convert, magnitude

COMMAND = str(Path(sys.executable).with_name("assimilate"))


def temperature(units: str = "K") -> xr.Dataset:
    rng = np.random.default_rng(0)
    values = 280 + 3 * rng.standard_normal((2, 200, 6)).astype(np.float32)
    return xr.Dataset({"t2m": (("member", "time", "x"), values, {"units": units})},
                      coords={"time": np.arange(200.0), "x": np.arange(6.0)})


def test_kelvin_to_celsius_shifts_every_number() -> None:
    ds = temperature()
    kelvin = diagnose(ds, DiagnoseSettings(variable="t2m"))
    celsius = diagnose(ds, DiagnoseSettings(variable="t2m", units="degC"))
    assert celsius.attrs["units"] == "degC"
    np.testing.assert_allclose(float(celsius["mean"]), float(kelvin["mean"]) - 273.15,
                               atol=1e-3)
    np.testing.assert_allclose(float(celsius["variance"]), float(kelvin["variance"]), rtol=1e-4)
    np.testing.assert_allclose(celsius["quantile"].values, kelvin["quantile"].values - 273.15,
                               atol=2e-3)


def test_a_scale_conversion_and_its_refusals() -> None:
    wind = xr.DataArray(np.array([1.0, 2.0]), dims="x", name="u", attrs={"units": "m s-1"})
    np.testing.assert_allclose(convert(wind, "km h-1", "w").values, [3.6, 7.2])
    assert convert(wind, None, "w") is wind
    with pytest.raises(ValueError, match=r"--units degC: 'u' of w is in 'm s-1', which does "
                                         r"not convert to 'degC'"):
        convert(wind, "degC", "w")
    with pytest.raises(ValueError, match="carries no units attribute"):
        convert(wind.assign_attrs(units="1"), "degC", "w")


def test_diagnose_units_as_a_user_runs_it(tmp_path) -> None:
    temperature().to_zarr(tmp_path / "t.zarr")
    run = subprocess.run([COMMAND, "diagnose", str(tmp_path / "t.zarr"), "--var", "t2m",
                          "--units", "degC", "--out", str(tmp_path / "t.diag")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert xr.open_zarr(tmp_path / "t.diag").attrs["units"] == "degC"
    refused = subprocess.run([COMMAND, "diagnose", str(tmp_path / "t.zarr"), "--var", "t2m",
                              "--units", "mm", "--out", str(tmp_path / "u.diag")],
                             capture_output=True, text=True, timeout=300, check=False)
    assert refused.returncode != 0 and "does not convert to 'mm'" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "u.diag").exists()


def precipitation_flux() -> xr.Dataset:
    """Twenty-five years of daily precipitation as CF files carry it: a mass flux, kg m-2 s-1."""
    rng = np.random.default_rng(4)
    wet = rng.random((9125, 4)) < 0.4
    depth = np.where(wet, rng.gamma(0.8, 8.0, (9125, 4)), 0.0)  # mm/day
    import pandas as pd

    return xr.Dataset({"pr": (("time", "x"), depth / 86400.0, {"units": "kg m-2 s-1"})},
                      coords={"time": pd.date_range("2000-01-01", periods=9125, freq="D"),
                              "x": np.arange(4.0)})


def test_a_mass_flux_reads_as_a_depth_of_water_and_floors_take_quantities() -> None:
    """1 kg m-2 s-1 of liquid water is 86400 mm/day; a floor given as '1 mm/day' leaves out
    the same days in either units."""
    ds = precipitation_flux()
    field = ds["pr"]
    np.testing.assert_allclose(convert(field, "mm/day", "pr").values, field.values * 86400.0)
    assert magnitude("1 mm/day", field, "--floor", "pr") == pytest.approx(1 / 86400.0)
    in_mm = diagnose(ds, DiagnoseSettings(units="mm/day", floor="1 mm/day"))
    in_flux = diagnose(ds, DiagnoseSettings(floor="1 mm/day"))
    assert float(in_mm["below_floor_fraction"]) == float(in_flux["below_floor_fraction"]) > 0.6
    assert in_mm.attrs["floor"] == 1.0
    np.testing.assert_allclose(float(in_mm["mean"]), 86400.0 * float(in_flux["mean"]),
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"--floor '1 K' does not convert to the units of 'pr'"):
        diagnose(ds, DiagnoseSettings(floor="1 K"))


def test_a_floor_in_the_wrong_units_says_so() -> None:
    """A floor of 1 on a field in kg m-2 s-1 leaves out every value: the error says that,
    not that the field is all NaN."""
    with pytest.raises(ValueError, match=r"every value of 'pr' in .* lies below the floor 1 "
                                         r"kg m-2 s-1; give the floor"):
        diagnose(precipitation_flux(), DiagnoseSettings(floor=1.0))


NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


def test_every_printed_level_carries_its_unit(tmp_path) -> None:
    """The console of `diagnose --units mm/day --floor '1 mm/day'`, as a user runs it: every
    moment, quantile, threshold, scale and return level is followed by its unit; return
    periods say years; GPD and GEV at the same periods."""
    precipitation_flux().to_netcdf(tmp_path / "pr.nc")
    run = subprocess.run([COMMAND, "diagnose", str(tmp_path / "pr.nc"), "--units", "mm/day",
                          "--floor", "1 mm/day", "--out", str(tmp_path / "pr.diag")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    import re

    for label in ("mean", "std", "to", "0.99:", "above", "scale", "location"):
        for value in re.findall(rf"\b{re.escape(label)} ({NUMBER})(?: (\S+))?", out):
            assert value[1].startswith("mm/day"), (label, value, out)
    levels = [line for line in out.splitlines() if re.match(r"\s+\d+-year:", line)]
    assert len(levels) == 6 and all(line.count("mm/day") == 2 for line in levels), out
    assert "GPD or GEV: trust" in out
