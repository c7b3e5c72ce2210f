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
from assimilate.diagnostics.units import convert

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
